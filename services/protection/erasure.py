"""Erasure in an append-only log: a redaction event, then the entity's data key destroyed.

``ledger erase incident <id> --reason "…"`` (or ``statement``, or ``POST
/v1/admin/erase/{kind}/{id}``) appends ``incident.redacted``/``statement.redacted`` from the
reserved feed :data:`~services.store.rules.OPERATOR_FEED` and destroys the entity's key in the
keyring: the log stays append-only and replayable, and the sealed text of every earlier
event of the entity is unreadable for good (:mod:`services.store.sealing`), in the log, its
replicas and backups alike. Then the store's files are rewritten
(:class:`~services.store.compaction.RedisFiles`: ``BGREWRITEAOF`` and a fresh RDB, waited
for), so no file under Redis's data directory keeps the key (with the Redis keyring) or an
inbox submission's plain text. A key of the file keyring is overwritten with zeros in its
page and the page synced (:class:`~services.store.keyring.FileKeyring`).
"""

from __future__ import annotations

import uuid
from typing import Literal

import msgspec

from events import AnyEvent, IncidentRedacted, StatementRedacted, parse_submission
from services.store.rules import OPERATOR_FEED
from services.store.sealing import SealingStore

__all__ = ["ErasableKind", "Erasure", "erase"]

ErasableKind = Literal["incident", "statement"]


class Erasure(msgspec.Struct, frozen=True):
    """What :func:`erase` did: the redaction's event id and position, and the key's fate."""

    entity: str
    event_id: str
    position: str
    key_destroyed: bool
    """Whether a key was there to destroy (``False``: the entity never had private text,
    or an earlier erasure destroyed it already)."""


async def erase(store: SealingStore, kind: ErasableKind, ident: str, reason: str) -> Erasure:
    """Erase an incident's or statement's private text: redaction event, then key destroyed.

    Raises :class:`~events.InvalidEventError` for a malformed id or reason,
    :class:`AppendRejectedError` when no such incident or statement was ever recorded
    (nothing is destroyed then), and the store's other errors. Running it again is harmless
    (a second redaction event; no key left to destroy), and the way to retry when the files
    could not be rewritten (:class:`~services.store.compaction.CompactionError`, raised after
    the key was destroyed).
    """
    draft: AnyEvent
    event_id = uuid.uuid4()
    if kind == "incident":
        draft = IncidentRedacted(
            event_id=event_id,
            source=OPERATOR_FEED,
            schema_version=IncidentRedacted.SCHEMA_VERSION,
            incident_id=ident,
            reason=reason,
        )
    else:
        draft = StatementRedacted(
            event_id=event_id,
            source=OPERATOR_FEED,
            schema_version=StatementRedacted.SCHEMA_VERSION,
            statement_id=ident,
            reason=reason,
        )
    event = parse_submission(msgspec.json.encode(draft))  # the schema's checks, or raises
    appended = await store.append_redaction(event)
    destroyed = await store.keyring.destroy(event.entity)
    if store.files is not None:
        await store.files.compact()
    return Erasure(event.entity, str(event_id), appended.position, destroyed)
