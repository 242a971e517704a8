"""Redis's files rewritten for erasure, when a save or rewrite starts under the compaction's
feet: Redis refuses the command, and the compaction waits that one out and asks again.

Each test starts a redis-server of its own (AOF on) and slows its saves down
(``rdb-key-save-delay``) so that the interloping save is still running when the compaction's
own command arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.runtime.redis_server import RedisProcess
from services.store.compaction import RedisFiles
from services.store.connection import connect


class Interloper:
    """A server's client that, before passing on the first command named ``before``, starts
    ``start`` itself on the server (as a replica's sync or Redis's own save rules would)."""

    def __init__(self, client: aioredis.Redis, before: str, start: str) -> None:
        self.client = client
        self.before = before
        self.start = start
        self.sent: list[str] = []

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        name = str(args[0]).upper()
        if name == self.before and name not in self.sent:
            await self.client.execute_command(self.start)  # type: ignore[no-untyped-call]
        if name != "INFO":
            self.sent.append(name)
        return await self.client.execute_command(*args, **options)  # type: ignore[no-untyped-call]


@pytest.fixture
async def slow_saves(tmp_path: Path) -> AsyncIterator[aioredis.Redis]:
    """A client of a redis-server of this test alone, AOF on, whose saves and rewrites take
    about a second (200 keys, 5 ms each)."""
    with RedisProcess(data_dir=tmp_path / "redis", appendonly=True) as server:
        client = connect(server.url, socket_timeout=30)
        try:
            await client.mset({f"k{i}": "v" for i in range(200)})
            await client.config_set("rdb-key-save-delay", 5000)
            yield client
        finally:
            await client.aclose()


async def persistence(client: aioredis.Redis) -> dict[str, Any]:
    info: dict[str, Any] = await client.info("persistence")
    return info


class TestACompactionMeetingAnotherSave:
    @pytest.mark.parametrize(
        ("before", "start", "counter"),
        [("BGSAVE", "BGSAVE", "rdb_saves"), ("BGREWRITEAOF", "BGREWRITEAOF", "aof_rewrites")],
    )
    async def test_it_waits_for_the_other_and_runs_its_own(
        self, slow_saves: aioredis.Redis, before: str, start: str, counter: str
    ) -> None:
        """Given a save (or rewrite) that starts just before the compaction's own, when the
        compaction runs, then Redis refused its first command, it sent it again once the
        other ended, and the files were written twice: the other's and its own."""
        done = int((await persistence(slow_saves))[counter])
        node = Interloper(slow_saves, before, start)
        await RedisFiles(node, timeout=60).compact()
        assert node.sent.count(before) == 2
        info = await persistence(slow_saves)
        assert int(info[counter]) == done + 2
        assert info["rdb_last_bgsave_status"] == "ok"
        assert info["aof_last_bgrewrite_status"] == "ok"
