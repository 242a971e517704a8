"""Several projector processes share the partitions; one is killed, the survivor takes over.

The log has three partitions, so each of the four projections has three partition views,
twelve leases in all. Two projector processes (``ledger project``) split
them by
their fair share; one is killed with SIGKILL while events keep coming, the survivor takes
its leases once they expire, and at the end the merged views equal the merge of the folds
of every partition: no event lost, none applied twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.store.keys import Keys
from tests.support.scenarios import kill_one_of_two

PARTITIONS = 3


class TestRebalanceAcrossProcesses:
    """Leases per (projection, partition) move between processes without double-applying."""

    @pytest.mark.timeout(300)
    async def test_survivor_takes_the_killed_process_s_partitions_and_views_equal_the_fold(
        self, redis_url: str, redis_client: aioredis.Redis, key_prefix: str, tmp_path: Path
    ) -> None:
        """Two processes split the 12 leases; after one is killed the other holds all 12."""
        await kill_one_of_two(redis_url, redis_client, Keys(key_prefix, PARTITIONS), tmp_path, {})
