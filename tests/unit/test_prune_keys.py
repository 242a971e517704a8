"""Which projection version a key belongs to (:func:`services.ops.prune.owner_of`): every
name :class:`~services.store.keys.Keys` builds for a view version, in every layout, and no
other key."""

from __future__ import annotations

import pytest

from services.ops.prune import owner_of
from services.store.keys import Keys

LAYOUTS = [Keys("ledger"), Keys("ledger", partitions=3), Keys("ledger", cluster=True)]


def version_keys(keys: Keys, name: str, version: int) -> list[str]:
    """Every key :class:`Keys` names for one projection version."""
    built = []
    for partition in range(keys.partitions):
        for generation in ("", "g2", "until-1700000000000-0"):
            kind = keys.view(name, version, "incident", generation, partition)
            built += [
                kind,
                f"{kind}:1fff",  # a bucket
                keys.view_meta(name, version, generation, partition),
                keys.view_changes(name, version, generation, partition),
            ]
        built += [
            keys.view_pointer(name, version, partition),
            keys.lease(name, version, partition),
            keys.replay(name, version, partition),
            keys.replay_lock(name, version, partition),
        ]
    built += [
        keys.snapshot_index(name, version),
        keys.snapshot_data(name, version),
        keys.snapshot_links(name, version),
        keys.snapshot_lease(name, version),
    ]
    return built


@pytest.mark.parametrize("keys", LAYOUTS, ids=["one node", "partitions", "cluster"])
class TestOwner:
    def test_every_key_of_a_version_names_that_version(self, keys: Keys) -> None:
        for name in ("country-stance", "community-victims", "alignment", "incidents"):
            for version in (3, 30):
                for key in version_keys(keys, name, version):
                    assert owner_of(keys, key) == (name, version), key

    def test_keys_of_no_view_version_have_no_owner(self, keys: Keys) -> None:
        others = [
            *keys.logs,
            keys.entity_bucket_of(0, "i-1"),
            keys.history_of(0),
            keys.audit,
            keys.health,
            keys.projectors,
            keys.key_slot_bucket("i-1"),
            f"{keys.prefix}:other:{{view:country-stance:v3}}:meta",
        ]
        assert [key for key in others if owner_of(keys, key) is not None] == []

    def test_another_prefix_or_an_unknown_projection_is_not_ours(self, keys: Keys) -> None:
        longer = Keys(f"{keys.prefix}-x", keys.partitions, keys.cluster)
        assert owner_of(keys, longer.view_meta("country-stance", 3)) is None
        assert owner_of(keys, keys.view_meta("another-view", 3)) is None
        assert owner_of(keys, keys.view_meta("incidents", 3), ["country-stance"]) is None
