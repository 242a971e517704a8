"""The erasure route of the operator API (``operator`` role only; others get 403).

``POST /v1/admin/erase/{kind}/{ident}`` with the body ``{"reason": "..."}`` erases an
incident's (``kind`` ``incident``) or a statement's (``statement``) private text, as
``ledger erase`` does (:func:`services.protection.erasure.erase`): it appends the redaction
event and destroys the data key. 200 with what was done; 404 when no such incident or statement was
recorded; 422 for an unknown kind, a malformed id or a missing reason; 409 when this
process's store does not seal private text (nothing to erase with).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
import structlog
from litestar import MediaType, Request, Response, post
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.params import PathParameter

from events import InvalidEventError
from services.http.deps import deps_of
from services.protection.auth import PermissionDeniedError
from services.protection.erasure import Erasure, erase
from services.store.base import AppendRejectedError
from services.store.compaction import CompactionError

__all__ = ["ERASE_ROUTES", "EraseBody"]

log = structlog.get_logger(__name__)


class EraseBody(msgspec.Struct, frozen=True):
    """Why the text is erased (recorded in the redaction event; keep it free of the text)."""

    reason: str


class EraseError(msgspec.Struct, frozen=True):
    """An error answer of the erasure route: a short code and a message."""

    error: str
    message: str


_encoder: Final = msgspec.json.Encoder()


def _json(status: int, body: Any) -> Response[Any]:
    return Response(_encoder.encode(body), status_code=status, media_type=MediaType.JSON)


def _error(status: int, code: str, message: str) -> Response[Any]:
    return _json(status, EraseError(code, message))


@post(
    "/v1/admin/erase/{kind:str}/{ident:str}",
    status_code=200,
    summary="Erase an incident's or a statement's private text",
    description="Appends incident.redacted or statement.redacted and destroys the data key: "
    "notes, source urls and speaker names read `[erased]` everywhere from then on.",
    tags=["operations"],
    responses={
        code: ResponseSpec(EraseError, description=text)
        for code, text in {
            401: "no valid bearer token",
            403: "not an operator token",
            404: "no such incident or statement",
            409: "this process's store does not seal private text",
            422: "unknown kind, malformed id, or no reason",
            503: "the key was destroyed but Redis's files could not be rewritten: erase again",
        }.items()
    },
)
async def admin_erase(
    request: Request[Any, Any, Any],
    kind: Annotated[str, PathParameter(description="incident or statement")],
    ident: Annotated[str, PathParameter(description="the incident's or statement's id")],
) -> Response[Erasure]:
    """Erase the private text of one incident or statement."""
    token = deps_of(request).auth.authenticate(request.headers.get("authorization"))
    if token.role != "operator":
        raise PermissionDeniedError(f"a {token.role} token may not erase")
    if kind not in ("incident", "statement"):
        return _error(422, "invalid", f"kind must be incident or statement, got {kind!r}")
    try:
        body = msgspec.json.decode(await request.body(), type=EraseBody)
    except msgspec.DecodeError as exc:
        return _error(422, "invalid", f'the body must be {{"reason": "..."}}: {exc}')
    store = deps_of(request).sealing
    if store is None:
        return _error(409, "not_sealing", "this process's store does not seal private text")
    try:
        done = await erase(store, kind, ident, body.reason)  # type: ignore[arg-type]
    except InvalidEventError as exc:
        return _error(422, "invalid", str(exc))
    except AppendRejectedError as exc:
        return _error(404, "not_found", exc.message)
    except CompactionError as exc:  # the key is destroyed; Redis's files are not rewritten yet
        log.warning("erase.files_not_rewritten", error=str(exc), by=token.name)
        return _error(503, "files_not_rewritten", f"the key was destroyed, but {exc}; erase again")
    log.info("erase.done", entity=done.entity, event_id=done.event_id, by=token.name)
    return _json(200, done)


ERASE_ROUTES: Final[list[HTTPRouteHandler]] = [admin_erase]
"""The erasure route, registered beside the other operator routes."""
