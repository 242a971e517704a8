"""Private text: listing and replacing it, sealing round trips, tampering, erasure in memory.

The sealing store runs over the in-memory event store and keyring here; the same store over
Redis is tested end to end in ``tests/integration/test_erasure.py``.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import cast

import msgspec
import pytest
from hypothesis import given, settings

from events import (
    ERASED,
    SEALED,
    AnyEvent,
    CodecError,
    Event,
    IncidentDisputed,
    IncidentRedacted,
    IncidentReported,
    Recorded,
    Source,
    Speaker,
    StatementIssued,
    StatementRedacted,
    masked,
    private_fields,
    private_paths,
    recorded_at_of,
    sealed_form,
    with_private,
)
from projections import PROJECTIONS, fold
from projections import community_victims as victims_projection
from projections import country_stance as stance_projection
from projections import incidents as incidents_projection
from services.protection.erasure import erase
from services.store.base import AppendRejectedError, IdReusedError
from services.store.keyring import DataKey, MemoryKeyring
from services.store.memory import InMemoryEventStore
from services.store.rules import DIGEST_CHARS, OPERATOR_FEED
from services.store.sealing import (
    NONCE_BYTES,
    SealingStore,
    TamperedError,
    blob_key_id,
    blob_paths,
    key_entity,
    private_digest,
    seal,
    unseal,
)
from tests.support import builders as f
from tests.support.strategies import histories

NOTES = "Witness Jane Roe-Example saw the strike"
URL = "https://example.org/people/jane-roe-example"
NAME = "Envoy Pierre Exemple"


GOLDEN_BLOB = (
    '{"k":"00112233aabbccdd","p":["notes","sources[0].url"],"c":"+6DkCPGVKwoYQvhrKQ10ediuSWWo'
    "nhDlcRpukftwDBwwbMdTMdcDOKPZL/VCshJDoLyKUsCUj6qOWCkyB9WeStyjGn/+CYKLJ+flQvl21zAt6io1SNpD"
    'MLcG/WlUwY86fqGvosfeTSYcymEGvZVokkdhw9lzniiJF56ZnGMZdChpCoyflWX2dLNxidSCrQ=="}'
)
"""A blob :func:`seal` made before keys and nonces were shared per batch (key: bytes 0-31),
of the JSON form."""
GOLDEN_KEY = DataKey("00112233aabbccdd", bytes(range(32)))
GOLDEN_EVENT = uuid.UUID("0192f0a4-7c1e-7d2a-9b3c-5d6e7f8091a2")
GOLDEN_COMPACT = (
    "2|00112233aabbccdd|notes,sources[0].url|POkdANGHcFkOgbdVJt4fy+WTFLJBvlO6mvi/U42ADHJ2hVqj"
    "WskS+9by1qVJw57AA8vCEuBZm36Mm4i6ueNi2RxY9tAqV5TO/wNKgkJ/0vLh+ANOgtXF3qETisIDlQhHP6Ygs0A2"
    "U5fgxctHdfSH710BnQ=="
)
"""The same text sealed in the compact form under the same key and event."""


def _report(incident_id: str = "i-1") -> IncidentReported:
    return f.reported(
        incident_id,
        notes=NOTES,
        sources=[Source(publisher="SOHR", url=URL), Source(publisher="Local radio")],
    )


def _statement(statement_id: str = "s-1") -> StatementIssued:
    return f.statement(
        statement_id,
        speakers=[Speaker(country="FRA", name=NAME), Speaker(country="DEU", name="Office")],
        sources=[Source(publisher="France Diplomatie", url=URL)],
    )


def _dispute() -> IncidentDisputed:
    return IncidentDisputed(
        event_id=uuid.uuid4(),
        source="acled",
        incident_id="i-1",
        reason="fewer dead by our count",
        sources=[Source(publisher="Local radio"), Source(publisher="ACLED", url=URL)],
    )


def _redacted(incident_id: str = "i-1") -> IncidentRedacted:
    return IncidentRedacted(
        event_id=uuid.uuid4(),
        source=OPERATOR_FEED,
        schema_version=1,
        incident_id=incident_id,
        reason="erasure request",
    )


@pytest.fixture
def sealing() -> SealingStore:
    return SealingStore(InMemoryEventStore(), MemoryKeyring())


class TestPrivateFields:
    """Which fields are private, and rebuilding events with them replaced."""

    def test_lists_notes_urls_and_speaker_names_by_path(self) -> None:
        """Notes, each source url that is set, and every speaker name, by path."""
        assert private_fields(_report()) == {"notes": NOTES, "sources[0].url": URL}
        assert private_fields(_statement()) == {
            "speakers[0].name": NAME,
            "speakers[1].name": "Office",
            "sources[0].url": URL,
        }

    def test_a_disputes_source_urls_are_private(self) -> None:
        """incident.disputed carries sources like a report: their urls are private text."""
        dispute = _dispute()
        assert private_fields(dispute) == {
            "sources[1].url": URL,
            "reason": "fewer dead by our count",
        }
        hidden = with_private(dispute, masked(private_fields(dispute), SEALED))
        assert [s.url for s in hidden.sources] == [None, None]
        assert hidden.reason == SEALED
        assert with_private(hidden, private_fields(dispute)) == dispute

    def test_every_reason_is_private_text(self) -> None:
        """Retractions, merges and redactions carry free text in ``reason``: it is private."""
        for event in (f.retracted(), f.merged(), _redacted()):
            reason = event.reason
            assert private_fields(event) == {"reason": reason}
            assert with_private(event, masked(["reason"], SEALED)).reason == SEALED

    def test_events_without_text_have_no_private_fields(self) -> None:
        """Reports without notes or urls list nothing: places and codes stay clear."""
        assert private_fields(f.reported(sources=[Source(publisher="P")])) == {}

    def test_with_private_puts_each_value_at_its_path(self) -> None:
        """Replacing by the listed paths restores exactly the original event."""
        event = _statement()
        hidden = with_private(event, masked(private_fields(event), SEALED))
        assert [s.name for s in hidden.speakers] == [SEALED, SEALED]
        assert hidden.sources[0].url is None
        assert with_private(hidden, private_fields(event)) == event

    def test_the_sealed_form_is_the_masking_by_paths(self) -> None:
        """:func:`sealed_form`, built directly, is what masking every private path gives,
        for each kind of event that holds private text and for one that holds none."""
        plain = f.reported(sources=[Source(publisher="P")])
        for event in (_report(), _statement(), _dispute(), f.retracted(), f.merged(), _redacted()):
            expected = with_private(event, masked(private_fields(event), SEALED))
            assert sealed_form(event) == expected
            assert private_fields(sealed_form(event)) == private_fields(expected)
        assert sealed_form(plain) == plain

    @given(histories())
    @settings(max_examples=60, deadline=None)
    def test_the_sealed_form_of_any_event_is_the_masking_by_paths(
        self, history: list[Event]
    ) -> None:
        """Over generated histories (reports with notes, revisions, retractions, merges,
        statements): the same equality for every event."""
        for event in history:
            assert sealed_form(event) == with_private(event, masked(private_paths(event), SEALED))

    @pytest.mark.parametrize("path", ["notes", "sources[3].url", "speakers[0].role", "x"])
    def test_a_path_the_event_lacks_is_a_codec_error(self, path: str) -> None:
        """A path that does not fit the event is refused, not ignored."""
        with pytest.raises(CodecError):
            with_private(_statement(), {path: "text"})


class TestSealRoundTrip:
    """seal/unseal: the text comes back, and any alteration is an error, never garbage."""

    def test_unseal_returns_what_was_sealed(self) -> None:
        """A blob, ``2|key id|paths|base64``, opens under its key and event id to the
        original map; its key id and paths read without the key, its text does not."""
        key, event_id = DataKey.new(), uuid.uuid4()
        fields = {"notes": NOTES, "sources[0].url": URL}
        blob = seal(key, event_id, fields)
        assert NOTES not in blob
        assert URL not in blob
        assert blob.startswith(f"2|{key.key_id}|notes,sources[0].url|")
        assert (blob_key_id(blob), blob_paths(blob)) == (key.key_id, list(fields))
        assert unseal(key, event_id, blob) == fields

    def test_two_seals_of_one_text_differ(self) -> None:
        """Random nonces: the same text never seals to the same bytes."""
        key, event_id = DataKey.new(), uuid.uuid4()
        assert seal(key, event_id, {"notes": NOTES}) != seal(key, event_id, {"notes": NOTES})

    def test_a_flipped_ciphertext_byte_is_tampering(self) -> None:
        """One bit changed in the ciphertext fails authentication, in either form."""
        key, event_id = DataKey.new(), uuid.uuid4()
        head, _, body = seal(key, event_id, {"notes": NOTES}).rpartition("|")
        raw = bytearray(base64.b64decode(body))
        raw[-1] ^= 1
        with pytest.raises(TamperedError):
            unseal(key, event_id, f"{head}|{base64.b64encode(bytes(raw)).decode()}")
        document = json.loads(GOLDEN_BLOB)
        raw = bytearray(base64.b64decode(document["c"]))
        raw[-1] ^= 1
        document["c"] = base64.b64encode(bytes(raw)).decode()
        with pytest.raises(TamperedError):
            unseal(GOLDEN_KEY, GOLDEN_EVENT, json.dumps(document))

    def test_a_blob_moved_to_another_event_is_tampering(self) -> None:
        """The event id is associated data: the blob does not open for another event."""
        key = DataKey.new()
        blob = seal(key, uuid.uuid4(), {"notes": NOTES})
        with pytest.raises(TamperedError):
            unseal(key, uuid.uuid4(), blob)

    def test_altered_paths_are_tampering(self) -> None:
        """The readable path list is authenticated too, in either form; and a blob of one
        form does not open as the other."""
        key, event_id = DataKey.new(), uuid.uuid4()
        blob = seal(key, event_id, {"notes": NOTES})
        with pytest.raises(TamperedError):
            unseal(key, event_id, blob.replace("|notes|", "|reason|"))
        document = json.loads(GOLDEN_BLOB)
        document["p"] = ["sources[0].url", "notes"]
        with pytest.raises(TamperedError):
            unseal(GOLDEN_KEY, GOLDEN_EVENT, json.dumps(document))
        _, key_id, paths, body = blob.split("|")
        as_json = json.dumps({"k": key_id, "p": paths.split(","), "c": body})
        with pytest.raises(TamperedError):
            unseal(key, event_id, as_json)

    def test_a_blob_sealed_before_batch_sealing_still_opens(self) -> None:
        """A blob of the JSON form, written by the one-event-at-a-time sealing (kept here as
        it was stored), opens to its text, and its key id and paths read."""
        fields = {"notes": NOTES, "sources[0].url": URL}
        assert unseal(GOLDEN_KEY, GOLDEN_EVENT, GOLDEN_BLOB) == fields
        assert blob_key_id(GOLDEN_BLOB) == GOLDEN_KEY.key_id
        assert blob_paths(GOLDEN_BLOB) == list(fields)

    def test_a_compact_blob_as_stored_still_opens(self) -> None:
        """A blob of the compact form, kept here as it was stored, opens to its text."""
        fields = {"notes": NOTES, "sources[0].url": URL}
        assert unseal(GOLDEN_KEY, GOLDEN_EVENT, GOLDEN_COMPACT) == fields

    @pytest.mark.parametrize(
        "blob",
        [
            "",
            "{}",
            "not json",
            '{"k": "a", "p": [], "c": "!!"}',
            "2|",
            "2|00112233aabbccdd|notes",
            "2||notes|AAAA",
            "2|00112233aabbccdd||AAAA",
            "2|00112233aabbccdd|notes|!!",
            "2|00112233aabbccdd|notes|AAAA",
            "2|00112233aabbccdd|notes|AAAA|more",
        ],
    )
    def test_a_malformed_blob_is_tampering(self, blob: str) -> None:
        """A blob that is not a sealed blob at all is refused."""
        with pytest.raises(TamperedError):
            unseal(DataKey.new(), uuid.uuid4(), blob)


class TestSealingStore:
    """The store edge: placeholders rest in the log, reads restore the text."""

    async def test_the_inner_log_holds_placeholders_and_a_blob(self, sealing: SealingStore) -> None:
        """What the inner store keeps has no plaintext; reads through sealing restore it."""
        event = _report()
        await sealing.append([event])
        (stored,) = await sealing.inner.read()
        assert isinstance(stored.event, IncidentReported)
        assert stored.event.notes == SEALED
        assert stored.event.sources[0].url is None
        assert stored.sealed is not None
        assert NOTES not in stored.sealed
        assert URL not in stored.sealed
        (restored,) = await sealing.read()
        assert restored.event == event
        assert await sealing.read_entity("incident:i-1") == [restored]

    async def test_a_batch_seals_each_event_under_its_entity_s_key_with_its_own_nonce(
        self, sealing: SealingStore
    ) -> None:
        """Events of one entity in a batch share its key, every blob has a nonce of its own,
        opens with unseal and carries the digest private_digest gives."""
        events: list[AnyEvent] = [
            _report("i-1"),
            f.revised("i-1", notes="A second witness"),
            _report("i-2"),
            _statement(),
        ]
        stored, blobs, digests = await sealing._sealed(events)
        assert [e.event_id for e in stored] == [e.event_id for e in events]
        nonces = set()
        for event, blob, digest in zip(events, blobs, digests, strict=True):
            assert blob is not None
            fields = private_fields(event)
            key = await sealing.keyring.get(key_entity(event))
            assert key is not None
            assert blob_key_id(blob) == key.key_id
            assert unseal(key, event.event_id, blob) == fields
            assert digest == private_digest(key, fields)
            nonces.add(base64.b64decode(blob.rpartition("|")[2])[:NONCE_BYTES])
        assert len(nonces) == len(events)
        assert blob_key_id(blobs[0] or "") == blob_key_id(blobs[1] or "")

    async def test_erasure_makes_the_text_read_erased(self, sealing: SealingStore) -> None:
        """After erase, notes and names read [erased] and urls are gone, listed as erased."""
        await sealing.append([_report(), _statement()])
        done = await erase(sealing, "incident", "i-1", "erasure request")
        await erase(sealing, "statement", "s-1", "erasure request")
        assert done.key_destroyed
        (report, _redaction) = await sealing.open_entity("incident:i-1")
        assert isinstance(report.recorded.event, IncidentReported)
        assert report.recorded.event.notes == ERASED
        assert report.recorded.event.sources[0].url is None
        assert set(report.erased) == {"notes", "sources[0].url"}
        (issued, _) = await sealing.read_entity("statement:s-1")
        assert isinstance(issued, Recorded)
        assert isinstance(issued.event, StatementIssued)
        assert [s.name for s in issued.event.speakers] == [ERASED, ERASED]
        assert await sealing.length() == 4

    async def test_a_reason_rests_sealed_and_reads_back(self, sealing: SealingStore) -> None:
        """A retraction's reason is a placeholder in the log and restored on reading; after
        an erasure it reads [erased], while the redaction's own reason stays readable."""
        retraction = f.retracted(reason="the witness Hortensia Example recanted")
        await sealing.append([_report(), retraction])
        stored = [r.event for r in await sealing.inner.read()]
        assert [getattr(e, "reason", None) for e in stored] == [None, SEALED]
        assert (await sealing.read())[1].event == retraction
        await erase(sealing, "incident", "i-1", "an erasure request of 2025-03-12")
        stored = [r.event for r in await sealing.inner.read()]
        assert getattr(stored[2], "reason", None) == SEALED
        _, retracted, redaction = await sealing.read_entity("incident:i-1")
        assert getattr(retracted.event, "reason", None) == ERASED
        assert getattr(redaction.event, "reason", None) == "an erasure request of 2025-03-12"

    async def test_erasing_an_unknown_incident_is_rejected(self, sealing: SealingStore) -> None:
        """Nothing is appended for an incident that was never reported."""
        with pytest.raises(AppendRejectedError, match="never reported"):
            await erase(sealing, "incident", "nope", "erasure request")
        assert await sealing.length() == 0

    async def test_a_retracted_incident_can_be_erased_and_stays_retracted(
        self, sealing: SealingStore
    ) -> None:
        """Erasure reaches every status and keeps it; the version counts the redaction."""
        await sealing.append([_report(), f.retracted()])
        await erase(sealing, "incident", "i-1", "erasure request")
        state = await sealing.entity("incident:i-1")
        assert state is not None
        assert (state.status, state.version) == ("retracted", 3)

    async def test_a_feed_cannot_append_a_redaction(self, sealing: SealingStore) -> None:
        """A redaction from a feed would show text erased that is not: refused."""
        await sealing.append([_report()])
        forged = msgspec.structs.replace(_redacted(), source="sohr")
        with pytest.raises(AppendRejectedError, match="operators only"):
            await sealing.append([forged])
        assert await sealing.length() == 1

    async def test_text_sent_after_an_erasure_is_sealed_anew_and_readable(
        self, sealing: SealingStore
    ) -> None:
        """A later revision's url gets a new key; the erased report stays erased."""
        await sealing.append([_report()])
        await erase(sealing, "incident", "i-1", "erasure request")
        later = "https://example.org/r/after"
        await sealing.append([f.revised(sources=[Source(publisher="SOHR", url=later)])])
        report, _, revision = await sealing.open_entity("incident:i-1")
        assert report.erased
        assert revision.erased == ()
        assert revision.recorded.event.sources[0].url == later  # type: ignore[attr-defined]

    async def test_a_tampered_log_entry_fails_the_read(self, sealing: SealingStore) -> None:
        """A blob swapped onto another event of the same entity is refused on read."""
        await sealing.append([_report(), f.revised(sources=[Source(publisher="P", url=URL)])])
        first, second = await sealing.inner.read()
        swapped = Recorded(second.position, recorded_at_of(second.position), second.event)
        forged = msgspec.structs.replace(swapped, sealed=first.sealed)
        with pytest.raises(TamperedError):
            await sealing.open_all([forged])


class TestPrivateTextUnderAKnownId:
    """The idempotency index compares private text by a digest keyed with the entity's key."""

    async def test_the_same_text_again_is_a_duplicate(self, sealing: SealingStore) -> None:
        """Resending a report with its notes and url answers duplicate."""
        report = _report()
        (first,) = await sealing.append([report])
        (again,) = await sealing.append([report])
        assert (again.status, again.position) == ("duplicate", first.position)

    async def test_other_notes_under_the_id_are_refused(self, sealing: SealingStore) -> None:
        """Only the sealed notes differ: the placeholders match, the keyed digest does not."""
        report = _report()
        await sealing.append([report])
        with pytest.raises(IdReusedError) as caught:
            await sealing.append([msgspec.structs.replace(report, notes="Another witness")])
        assert caught.value.reason == "id_reused"

    async def test_an_export_taken_after_an_erasure_imports_as_duplicates(
        self, sealing: SealingStore
    ) -> None:
        """The erased report reads [erased] and no url: importing it again writes nothing."""
        await sealing.append([_report()])
        await erase(sealing, "incident", "i-1", "erasure request")
        exported = [cast("AnyEvent", r.event) for r in await sealing.read()]
        answers = await sealing.append(exported)
        assert [a.status for a in answers] == ["duplicate", "duplicate"]

    def test_the_digest_depends_on_the_key(self) -> None:
        """Without the entity's key the digest of the text cannot be recomputed."""
        fields = {"notes": NOTES}
        one, two = private_digest(DataKey.new(), fields), private_digest(DataKey.new(), fields)
        assert len(one) == len(two) == DIGEST_CHARS
        assert one != two
        assert private_digest(DataKey.new(), {"notes": ERASED}) == ""


class TestProjectionsOfRedactions:
    """The folds record redactions; counts stay."""

    def _log(self) -> list[Recorded]:
        events = [
            f.reported(notes=SEALED),
            _statement(),
            _redacted(),
            StatementRedacted(
                event_id=uuid.uuid4(),
                source=OPERATOR_FEED,
                schema_version=1,
                statement_id="s-1",
                reason="erasure request",
            ),
        ]
        return [
            Recorded(f"{1700000000000 + i}-0", recorded_at_of(f"{1700000000000 + i}-0"), e)  # type: ignore[arg-type]
            for i, e in enumerate(events)
        ]

    def test_incidents_marks_the_incident_erased_in_its_history(self) -> None:
        """erased is set, notes read [erased], the redaction is in the history (the
        incident as its answer folds it from the log; the view's row marks it erased)."""
        state = fold(PROJECTIONS[incidents_projection.NAME], self._log())
        row = incidents_projection.document(state, "i-1")
        view = incidents_projection.incident_of("i-1", self._log())
        assert row is not None
        assert view is not None
        assert row.erased
        assert (row.notes, row.history_total) == (None, 2)  # an answer's field: not in the row
        assert view.erased
        assert view.notes == ERASED
        assert view.status == "live"
        assert view.version == 2
        assert [h.type for h in view.history] == ["incident.reported", "incident.redacted"]
        assert view.history[-1].reason == "erasure request"

    def test_country_stance_marks_the_timeline_entries_erased(self) -> None:
        """Each speaker's entry shows [erased]; the stance row still counts the statement."""
        state = fold(PROJECTIONS[stance_projection.NAME], self._log())
        for country in ("FRA", "DEU"):
            (entry,) = stance_projection.timeline(state, country)
            assert entry.erased
            assert entry.speaker == ERASED
        rows = stance_projection.stances(state, country="FRA")
        assert [r.statements for r in rows] == [1]

    def test_community_victims_ignores_redactions(self) -> None:
        """The counts with and without the redactions are the same."""
        log = self._log()
        projection = PROJECTIONS[victims_projection.NAME]
        with_redactions = fold(projection, log)
        without = fold(projection, [r for r in log if "redacted" not in r.event.type])
        assert victims_projection.query(with_redactions) == victims_projection.query(without)
