"""The authorisation matrix: every route of the wired app x every kind of caller.

The routes are enumerated from the Litestar app that :func:`services.bootstrap.api` wires,
so a route added without an entry in :data:`POLICY` fails :class:`TestPolicyCoversEveryRoute`.
Each (route, method) is then called with no token, an unknown token, a feed token, a reader
token, an analyst token, an operator token and a metrics token, and must answer what its
policy says:

- ``public``: never 401/403, whoever asks;
- ``publish``: feed tokens (and operators' corrections); others 403, no or unknown token 401;
- ``read``: reader, analyst or operator (feed and metrics 403, no or unknown token 401);
- ``metrics``: metrics or operator (the others 403, no or unknown token 401);
- ``token``: any valid token (no or unknown token 401);
- ``operator``: operator only (the others 403, no or unknown token 401).

Allowed callers must not get 401/403 (the handler may still answer 404 for an unknown id or
422 for a missing query parameter: that is past authorisation). Refused callers must get
exactly 401 or 403, and the answer must not depend on the body or the parameters: the token
is checked first.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.routes import HTTPRoute
from structlog.testing import capture_logs

import events
from services.bootstrap import Service, api
from services.protection.auth import Authenticator
from services.settings import Settings, Token
from services.store.rules import OPERATOR_FEED
from tests.support.builders import reported, retracted
from tests.support.http import client_of

Access = Literal["public", "publish", "read", "metrics", "token", "operator"]
Caller = Literal["none", "wrong", "feed", "reader", "analyst", "operator", "metrics"]
CALLERS: tuple[Caller, ...] = (
    "none",
    "wrong",
    "feed",
    "reader",
    "analyst",
    "operator",
    "metrics",
)

SECRETS: dict[Caller, str] = {
    "wrong": "wrong-token-0123456789abcdefghij",
    "feed": "feed-sohr-token-0123456789abcdef",
    "reader": "reader-token-0123456789abcdef012",
    "analyst": "analyst-token-0123456789abcdef01",
    "operator": "operator-token-0123456789abcdef0",
    "metrics": "metrics-token-0123456789abcdef01",
}
OTHER_FEED = "feed-acled-token-0123456789abcde"
TOKENS = (
    Token(role="feed", secret=SECRETS["feed"], feed="sohr"),
    Token(role="feed", secret=OTHER_FEED, feed="acled"),
    Token(role="reader", secret=SECRETS["reader"]),
    Token(role="analyst", secret=SECRETS["analyst"]),
    Token(role="operator", secret=SECRETS["operator"]),
    Token(role="metrics", secret=SECRETS["metrics"]),
)

POLICY: list[tuple[str, str, Access]] = [
    # (methods regex, path regex, access): the first matching entry applies
    (r"POST", r"/v1/events", "publish"),
    (r"GET|HEAD", r"/healthz|/readyz", "public"),
    (r"GET|HEAD", r"/metrics", "metrics"),
    (r"GET|HEAD", r"/openapi\.json|/schema(/.*)?", "public"),
    (r"GET|HEAD", r"/asyncapi\.json", "token"),  # how to write the inbox, for token holders
    (r"GET|HEAD", r"/asyncapi", "public"),  # the page; it asks for a token
    (r"GET|HEAD", r"/|/static/.*", "public"),
    (r"GET|HEAD", r"/v1/(projections|incidents|live)(/.*)?", "read"),
    (r".*", r"/v1/admin(/.*)?", "operator"),
]
"""Who may call what. A route that matches no entry is a test failure, not a default."""

ALLOWED: dict[Access, set[Caller]] = {
    "public": set(CALLERS),
    "publish": {"feed", "operator"},
    "read": {"reader", "analyst", "operator"},
    "metrics": {"metrics", "operator"},
    "token": {"feed", "reader", "analyst", "operator", "metrics"},
    "operator": {"operator"},
}

PARAMETER_VALUES: dict[str, str] = {
    "file_path": "app.css",
    "path": "swagger",
    "projection": "no-such-projection",  # a live stream of a real one would never end
}
"""Values for path parameters whose name says what they are; others get a plausible id."""


def policy_of(method: str, path: str) -> Access | None:
    """The access of ``method path`` according to :data:`POLICY`."""
    for methods, paths, access in POLICY:
        if re.fullmatch(methods, method) and re.fullmatch(paths, path):
            return access
    return None


def concrete(route: HTTPRoute) -> str:
    """The route's path with every parameter filled in."""
    path = route.path
    for name, definition in route.path_parameters.items():
        if name in PARAMETER_VALUES:
            value = PARAMETER_VALUES[name]
        elif definition.type is int:
            value = "1"
        else:
            value = "i-1"
        path = path.replace(f"{{{definition.full}}}", value)
    return path


def wired(redis_url: str, prefix: str) -> Service:
    """The service as ``ledger serve`` wires it (nothing connects until a request)."""
    settings = Settings(redis_url=redis_url, tokens=TOKENS, key_prefix=prefix, projectors=False)
    return api(settings, projectors=False)


def endpoints(app: Litestar) -> list[tuple[str, str, str]]:
    """(method, route path, concrete path) of every route of ``app`` (OPTIONS left out)."""
    return [
        (method, route.path, concrete(route))
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for method in sorted(route.methods - {"OPTIONS"})
    ]


ROUTES = endpoints(wired("redis://127.0.0.1:1/0", "collect").app)
"""The routes of the wired app, enumerated at collection time (no connection is made)."""


@pytest.fixture
async def service(redis_url: str, key_prefix: str) -> AsyncIterator[Service]:
    """The wired service on this test's Redis and prefix; its client closed afterwards."""
    svc = wired(redis_url, key_prefix)
    try:
        yield svc
    finally:
        await svc.client.aclose()


@pytest.fixture
async def http(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the wired app."""
    async with client_of(service.app) as client:
        yield client


def headers_of(caller: Caller) -> dict[str, str]:
    """The Authorization header of ``caller`` (none for ``none``)."""
    headers = {"content-type": "application/json"}
    if caller != "none":
        headers["authorization"] = f"Bearer {SECRETS[caller]}"
    return headers


async def call(
    http: httpx.AsyncClient, method: str, path: str, caller: Caller, body: bytes | None = None
) -> httpx.Response:
    """One request as ``caller``; POSTs carry a valid event of the caller's feed by default
    (an operator's: a correction from ``ledger-operator``)."""
    if body is None and method in ("POST", "PUT", "PATCH"):
        body = b"{}"
        if path == "/v1/events":
            event = retracted("i-matrix", source=OPERATOR_FEED)
            body = events.encode(event if caller == "operator" else reported("i-matrix"))
    return await http.request(method, path, content=body, headers=headers_of(caller))


def expected(access: Access, caller: Caller) -> set[int] | None:
    """The statuses a refused caller must get, or ``None`` when the caller is allowed."""
    if caller in ALLOWED[access]:
        return None
    return {401} if caller in ("none", "wrong") else {403}


class TestPolicyCoversEveryRoute:
    """A route added without a policy entry fails here."""

    def test_every_route_has_a_policy_entry(self) -> None:
        """Each (method, path) of the wired app matches an entry of POLICY."""
        missing = [f"{m} {p}" for m, p, _ in ROUTES if policy_of(m, p) is None]
        assert missing == [], f"routes without an authorisation policy: {missing}"

    def test_the_enumeration_sees_the_known_routes(self) -> None:
        """The enumeration is not vacuous: ingest, metrics and the probes are there."""
        seen = {(m, p) for m, p, _ in ROUTES}
        assert {("POST", "/v1/events"), ("GET", "/metrics"), ("GET", "/healthz")} <= seen


class TestMatrix:
    """Every route x every caller answers as its policy says."""

    @pytest.mark.parametrize(
        ("method", "route", "path"), ROUTES, ids=[f"{m} {r}" for m, r, _ in ROUTES]
    )
    async def test_route_answers_each_caller_as_its_policy_says(
        self, http: httpx.AsyncClient, method: str, route: str, path: str
    ) -> None:
        """Allowed callers are let through, refused ones get exactly 401 or 403."""
        access = policy_of(method, route)
        assert access is not None, f"{method} {route} has no policy"
        wrong: list[str] = []
        for caller in CALLERS:
            response = await call(http, method, path, caller)
            refused_with = expected(access, caller)
            if refused_with is None:
                ok = response.status_code not in (401, 403)
            else:
                ok = response.status_code in refused_with
            if not ok:
                wrong.append(f"{caller}: {response.status_code} {response.text[:200]}")
            if response.status_code == 401:
                assert response.headers.get("www-authenticate") == "Bearer"
        assert wrong == [], f"{method} {path} ({access}) answered: {wrong}"

    @pytest.mark.parametrize(
        ("method", "route", "path"),
        [r for r in ROUTES if policy_of(r[0], r[1]) != "public"],
        ids=[f"{m} {r}" for m, r, _ in ROUTES if policy_of(m, r) != "public"],
    )
    async def test_a_refused_caller_is_refused_before_the_body_is_read(
        self, http: httpx.AsyncClient, method: str, route: str, path: str
    ) -> None:
        """With a broken body and odd query parameters, the refusal is still 401/403."""
        access = policy_of(method, route)
        assert access is not None
        for caller in CALLERS:
            refused_with = expected(access, caller)
            if refused_with is None:
                continue
            response = await http.request(
                method,
                path,
                params={"limit": "-1", "page": "x", "as_of": "yesterday"},
                content=b"{not json" if method != "GET" else None,
                headers=headers_of(caller),
            )
            assert response.status_code in refused_with, (caller, response.text[:200])


class TestPublishing:
    """Who may publish what: feeds their own events, operators corrections as
    ``ledger-operator``."""

    async def test_a_feed_cannot_publish_with_another_feeds_source(
        self, http: httpx.AsyncClient, redis_client: aioredis.Redis, service: Service
    ) -> None:
        """The sohr token publishing an acled event answers 403 and writes nothing."""
        body = msgspec.json.encode([reported("i-1"), reported("i-2", source="acled")])
        response = await call(http, "POST", "/v1/events", "feed", body)
        assert response.status_code == 403
        assert response.json()["index"] == 1
        assert await service.store.length() == 0

    @pytest.mark.parametrize("caller", ["reader", "analyst", "operator", "metrics"])
    async def test_readers_cannot_publish_even_valid_events_nor_operators_reports(
        self, http: httpx.AsyncClient, service: Service, caller: Caller
    ) -> None:
        """Readers never publish; operators publish corrections only, as ledger-operator;
        nothing is written for either."""
        body = events.encode(reported("i-matrix", source=OPERATOR_FEED))
        response = await call(http, "POST", "/v1/events", caller, body)
        assert response.status_code == 403
        assert await service.store.length() == 0


class TestSecretsStayOutOfLogs:
    """No token shows up in any log entry, over every route and caller."""

    async def test_no_secret_in_logs_across_the_whole_matrix(self, http: httpx.AsyncClient) -> None:
        """Run every route x caller once under log capture; no secret appears anywhere."""
        with capture_logs() as entries:
            for method, _, path in ROUTES:
                for caller in CALLERS:
                    await call(http, method, path, caller)
        assert len(entries) >= len(ROUTES)
        text = repr(entries)
        for secret in (*SECRETS.values(), OTHER_FEED):
            assert secret not in text


class TestConstantTimeComparison:
    """Tokens are compared in constant time: every known token, whatever the outcome."""

    @pytest.fixture
    def comparisons(self, monkeypatch: pytest.MonkeyPatch) -> list[int]:
        """Count calls of ``hmac.compare_digest`` made by the authenticator."""
        calls: list[int] = []
        real = hmac.compare_digest

        def counting(a: Any, b: Any) -> bool:
            calls.append(1)
            return real(a, b)

        monkeypatch.setattr("services.protection.auth.hmac.compare_digest", counting)
        return calls

    @pytest.mark.parametrize(
        "presented", [SECRETS["feed"], SECRETS["operator"], SECRETS["wrong"]],
        ids=["first", "last", "unknown"],
    )  # fmt: skip
    def test_every_token_is_compared_whatever_matches(
        self, comparisons: list[int], presented: str
    ) -> None:
        """A match on the first, the last or no token costs the same number of comparisons."""
        authenticator = Authenticator(TOKENS)
        authenticator.resolve(presented)
        assert len(comparisons) == len(TOKENS)

    def test_the_authenticator_keeps_digests_not_plain_secrets(self) -> None:
        """Comparisons run on fixed-length digests, so the length of a guess tells nothing."""
        authenticator = Authenticator(TOKENS)
        stored = [known for known, _ in authenticator._tokens]
        assert {len(d) for d in stored} == {32}
        assert not any(t.secret.encode() in stored for t in TOKENS)
