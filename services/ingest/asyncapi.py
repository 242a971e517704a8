"""The AsyncAPI 3.0 document of the Redis inbox: exactly what a feed may write, and where.

Written by hand from the inbox's own rules (:mod:`services.ingest.submissions`) rather than
generated from the FastStream subscribers, whose generated payload would describe the
inbox's internal parser, not what a feed sends. It describes:

- the channel ``<prefix>:inbox:{feed}``, one stream per feed, which the ledger receives on:
  an entry is either *raw* (the field ``event``) or *FastStream* (the field ``__data__``,
  FastStream's envelope as ``RedisBroker.publish`` writes it); either way the body is one
  event or a JSON array of events (the ``SubmissionBody`` schema, the event schemas of
  ``POST /v1/events``);
- the channel ``<prefix>:inbox:rejected``, where the ledger writes what it refused.

It names no server: the document is served to any token holder (``/asyncapi.json``), and
where Redis runs, and as whom a feed writes there, is told to each feed by its operators.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from events import AnyEvent
from services.ingest.submissions import RejectedEntry
from services.store.keys import INBOX_GROUP, Keys

__all__ = ["VERSION", "asyncapi_document"]

VERSION: Final = "2.0.0"
"""The document's version: 2 since each feed has its own stream."""

_BODY = (
    "The body, as POST /v1/events takes it: one event object, or a JSON array of at most "
    "5,000 events (schema SubmissionBody). Every event's source must be the feed of the "
    "stream. An entry is one unit: if any of its events is invalid or refused, none is "
    "written and the entry goes to the rejected stream."
)


def _asyncapi_schema(schema: Any) -> Any:
    """``schema`` (JSON Schema as msgspec writes it for OpenAPI) in AsyncAPI's dialect, where
    ``discriminator`` is the name of the property, not an object."""
    if isinstance(schema, list):
        return [_asyncapi_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    found = {key: _asyncapi_schema(value) for key, value in schema.items()}
    if isinstance(found.get("discriminator"), dict):
        found["discriminator"] = found["discriminator"]["propertyName"]
    return found


def _schemas() -> dict[str, Any]:
    (body,), components = msgspec.json.schema_components(
        [AnyEvent | list[AnyEvent]], ref_template="#/components/schemas/{name}"
    )
    schemas: dict[str, Any] = _asyncapi_schema(components)
    return {**schemas, "SubmissionBody": {**_asyncapi_schema(body), "description": _BODY}}


def _rejected_schema() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [RejectedEntry], ref_template="#/components/schemas/{name}"
    )
    schema: dict[str, Any] = components[RejectedEntry.__name__]
    schema["additionalProperties"] = {
        "type": "string",
        "description": "orig.<field>: each field of the refused entry, as it came",
    }
    return schema


def asyncapi_document(keys: Keys) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the inbox of the deployment with these ``keys``."""
    inbox = f"{keys.prefix}:inbox:{{feed}}"
    schemas = _schemas()
    schemas["RejectedEntry"] = _rejected_schema()
    body_ref = {"$ref": "#/components/schemas/SubmissionBody"}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "incident-ledger inbox",
            "version": VERSION,
            "description": (
                "Feeds that live on Redis submit events by writing to their own stream, "
                f"{inbox}, as their own Redis user (ledger feeds add NAME creates it), which "
                "may do nothing but XADD there. The feed of an entry is the stream it came "
                "on, never a field. Refused entries land on the rejected stream with their "
                "problems. Ask the ledger's operators for the Redis address and your "
                "feed's password."
            ),
        },
        "defaultContentType": "application/json",
        "channels": {
            "feedInbox": {
                "address": inbox,
                "title": "A feed's inbox stream",
                "description": (
                    f"A Redis stream per feed, read in the consumer group {INBOX_GROUP}. "
                    "Raw: XADD <stream> * event '<body>'. FastStream: await "
                    "RedisBroker(url).publish(body, stream='<stream>'). Each entry is "
                    "appended to the log or written to the rejected stream, then "
                    "acknowledged and deleted."
                ),
                "parameters": {
                    "feed": {
                        "description": "The feed's name (the feed: part of its token).",
                        "examples": ["sohr"],
                    }
                },
                "messages": {
                    "raw": {"$ref": "#/components/messages/RawSubmission"},
                    "fastStream": {"$ref": "#/components/messages/FastStreamSubmission"},
                },
            },
            "rejected": {
                "address": keys.inbox_rejected,
                "title": "Refused submissions",
                "description": "What the inbox refused, with the problems, capped in length.",
                "messages": {"rejectedEntry": {"$ref": "#/components/messages/RejectedEntry"}},
            },
        },
        "operations": {
            "receiveSubmission": {
                "action": "receive",
                "channel": {"$ref": "#/channels/feedInbox"},
                "summary": "The ledger reads each feed's stream and appends what is valid.",
                "messages": [
                    {"$ref": "#/channels/feedInbox/messages/raw"},
                    {"$ref": "#/channels/feedInbox/messages/fastStream"},
                ],
            },
            "sendRejected": {
                "action": "send",
                "channel": {"$ref": "#/channels/rejected"},
                "summary": "The ledger records a refused entry with its problems.",
                "messages": [{"$ref": "#/channels/rejected/messages/rejectedEntry"}],
            },
        },
        "components": {
            "messages": {
                "RawSubmission": {
                    "name": "RawSubmission",
                    "title": "Raw entry",
                    "summary": "XADD <prefix>:inbox:<feed> * event '<body>'",
                    "payload": {
                        "type": "object",
                        "required": ["event"],
                        "properties": {
                            "event": {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "description": _BODY,
                                "x-body": body_ref,
                            }
                        },
                    },
                },
                "FastStreamSubmission": {
                    "name": "FastStreamSubmission",
                    "title": "FastStream entry",
                    "summary": "RedisBroker(url).publish(body, stream='<prefix>:inbox:<feed>')",
                    "payload": {
                        "type": "object",
                        "required": ["__data__"],
                        "properties": {
                            "__data__": {
                                "type": "string",
                                "contentEncoding": "binary",
                                "description": (
                                    "FastStream's envelope, as its RedisBroker writes it by "
                                    "default: the binary frame of FastStream 0.6 and later "
                                    "(headers such as correlation_id and content-type, then "
                                    "the JSON body) or the older JSON form "
                                    '{"data": "<body>", "headers": {...}}. The headers are '
                                    "read and ignored. " + _BODY
                                ),
                                "x-body": body_ref,
                            }
                        },
                    },
                },
                "RejectedEntry": {
                    "name": "RejectedEntry",
                    "title": "Refused entry",
                    "payload": {"$ref": "#/components/schemas/RejectedEntry"},
                },
            },
            "schemas": schemas,
        },
    }
