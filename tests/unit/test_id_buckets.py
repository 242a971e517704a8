"""The buckets of the idempotency index: where an id is looked up must never move."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from services.store.keys import ID_BUCKETS, Keys, bucket_of, id_bucket


class TestIdBuckets:
    """``id_bucket`` is part of the stored layout, like a wire format."""

    @pytest.mark.parametrize(
        ("event_id", "bucket"),
        [
            ("00000000-0000-4000-8000-000000000001", "19b9"),
            ("1f8fcde7-e317-5bec-b1b9-b7f305941cd2", "42f"),
            ("ffffffff-ffff-4fff-bfff-ffffffffffff", "fce"),
        ],
    )
    def test_an_id_keeps_the_bucket_it_was_written_to(self, event_id: str, bucket: str) -> None:
        """Golden buckets: a change of the function or of ID_BUCKETS would hide every id
        written before it (their duplicates would be appended again)."""
        assert id_bucket(uuid.UUID(event_id)) == bucket

    def test_ids_spread_over_every_bucket(self) -> None:
        """Random ids fill the buckets evenly enough that none outgrows a listpack long
        before the others (no bucket above 3x the mean for 40 ids per bucket)."""
        counts = Counter(
            id_bucket(uuid.UUID(int=n * 0x9E3779B97F4A7C15 % 2**128))
            for n in range(40 * ID_BUCKETS)
        )
        assert len(counts) == ID_BUCKETS
        assert max(counts.values()) < 3 * 40

    def test_a_bucket_shares_its_partition_hash_tag(self) -> None:
        """The bucket's key carries the partition's hash tag: one cluster slot per script."""
        keys = Keys("ledger", partitions=4)
        event_id = uuid.UUID("00000000-0000-4000-8000-000000000001")
        assert keys.id_bucket_of(3, event_id) == "ledger:{p3}:ids:19b9"


class TestDocumentBuckets:
    """``bucket_of`` places the documents of a bucketed view kind: a stored layout too."""

    @pytest.mark.parametrize(
        ("ident", "bucket"),
        [("i-1", "1368"), ("incident:i-12345", "19a3"), ("Σ中", "14d5")],
    )
    def test_a_document_keeps_its_bucket(self, ident: str, bucket: str) -> None:
        """Golden buckets: the function is part of every stored bucketed view."""
        assert bucket_of(ident) == bucket
