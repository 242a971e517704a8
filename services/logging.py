"""Structured logging: structlog for our code, the standard library routed through it.

``configure_logging()`` is called once per process by the wiring (``services.bootstrap``).
It sets up
one processor chain for structlog loggers and for stdlib loggers (uvicorn, litestar,
faststream): context variables first, then level, logger name, an ISO UTC timestamp and the
redaction of secrets; JSON lines when stderr is not a terminal, colours on a terminal.

Redaction replaces, anywhere in a log line (nested dicts and lists included):

- the value of any key named like ``authorization``, ``token``, ``secret`` or ``password``;
- ``Bearer <anything>`` inside strings;
- every configured secret (the bearer tokens, the embedded Redis password) inside strings.

Per HTTP request the middleware calls :func:`bind_request` (``clear_contextvars`` then
``bind_contextvars(request_id=…)``) and the ingest handler binds the submitted event ids.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any, Final

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED: Final = "<redacted>"

_SENSITIVE_KEY = re.compile(r"authorization|token|secret|password|passwd|api[_-]?key", re.I)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s,;\"']+")
_URL_PASSWORD = re.compile(r"(?i)(rediss?://[^:/@\s]*:)[^@\s]+(@)")
_STDLIB_LOGGERS: Final = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "litestar",
    "faststream",
    "faststream.access.redis",
    "redis",
    "httpx",
)
_MAX_CONTEXT_EVENT_IDS: Final = 10


class Redactor:
    """The processor that keeps secrets out of log lines (see the module docstring)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: frozenset[str] = frozenset()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Also redact these values from now on (empty strings are ignored)."""
        self._secrets = self._secrets | {s for s in secrets if s}

    def redact_text(self, text: str) -> str:
        """``text`` with bearer tokens, URL passwords and every known secret replaced."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(2)}", text)

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, bytes):
            return self.redact_text(value.decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            return {k: self._item(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._value(v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.redact_text(str(value))

    def _item(self, key: str, value: Any) -> Any:
        if _SENSITIVE_KEY.search(key) and value not in (None, ""):
            return REDACTED
        return self._value(value)

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        for key, value in list(event_dict.items()):
            if key.startswith("_"):  # stdlib plumbing (_record, _from_structlog)
                continue
            event_dict[key] = self._item(key, value)
        return event_dict


_redactor: Final = Redactor()


def redactor() -> Redactor:
    """The process-wide redactor (add secrets learnt after start-up to it)."""
    return _redactor


def _renderer(json: bool) -> Processor:
    if json:
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=True)


def configure_logging(
    *, json: bool | None = None, level: str = "INFO", secrets: Iterable[str] = ()
) -> None:
    """Configure structlog and the stdlib loggers once for this process.

    ``json=None`` picks JSON when stderr is not a terminal. ``secrets`` are redacted from
    every line; calling again adds secrets and replaces the handler (it never stacks one).
    """
    _redactor.add(secrets)
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        _redactor,
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached, so structlog.testing.capture_logs() works after configuration too.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _renderer(json)],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name("ledger")
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != "ledger"]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _STDLIB_LOGGERS:
        stdlib_logger = logging.getLogger(name)
        stdlib_logger.handlers.clear()
        stdlib_logger.propagate = True
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))


def bind_request(request_id: str, **values: Any) -> None:
    """Start a request's log context: forget the previous one, bind ``request_id``."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id, **values)


def bind_event_ids(event_ids: Sequence[object]) -> None:
    """Bind the ids of the events being handled (the first ten as text, and how many there
    are); only those ten are converted to text, not the whole batch's."""
    structlog.contextvars.bind_contextvars(
        event_ids=[str(event_id) for event_id in event_ids[:_MAX_CONTEXT_EVENT_IDS]],
        event_count=len(event_ids),
    )


def context() -> MutableMapping[str, Any]:
    """The context variables bound now (for tests and diagnostics)."""
    return structlog.contextvars.get_contextvars()
