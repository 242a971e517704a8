"""Leases: a key one owner holds for a while (``SET NX PX``), renewed and released by it alone.

A projector holds its view's lease while it applies (``<prefix>:lease:<name>:v<version>``);
a rebuild holds its view's rebuild lock and, while it swaps, the view's lease; a dead-letter
retry holds the view's lease while it writes; the snapshot writer holds a lease per
projection. Renewing and releasing are compare-and-set scripts, so an owner whose lease
expired and was taken by another can neither extend nor drop the other's.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Final

import redis.asyncio as aioredis

__all__ = ["RELEASE_SCRIPT", "RENEW_SCRIPT", "Leases", "process_name"]

RENEW_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

RELEASE_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def process_name() -> str:
    """A name for this process as a lease owner: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Leases:
    """Takes, renews and releases leases on one Redis client."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._renew = client.register_script(RENEW_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)

    async def take(self, key: str, owner: str, ms: int) -> bool:
        """Take the lease for ``ms`` when it is free or ``owner``'s already; whether it is now."""
        if await self.client.set(key, owner, nx=True, px=ms):
            return True
        return await self.renew(key, owner, ms)  # ours already (a restart under the same name)?

    async def lock(self, key: str, owner: str, ms: int) -> bool:
        """Take the lease for ``ms`` only when it is free; whether it was."""
        return bool(await self.client.set(key, owner, nx=True, px=ms))

    async def seize(self, key: str, owner: str, ms: int) -> None:
        """Take the lease for ``ms`` whoever holds it (its holder finds it gone and stops)."""
        await self.client.set(key, owner, px=ms)

    async def renew(self, key: str, owner: str, ms: int) -> bool:
        """Extend ``owner``'s lease to ``ms`` from now; ``False`` when it is not ``owner``'s."""
        return bool(await self._renew(keys=[key], args=[owner, ms]))

    async def release(self, key: str, owner: str) -> bool:
        """Drop ``owner``'s lease; ``False`` when it was not ``owner``'s (left alone)."""
        return bool(await self._release(keys=[key], args=[owner]))
