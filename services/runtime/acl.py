"""The Redis ACL users of a deployment: the service's own, an administrator, one per feed.

Redis itself, not the ledger, decides who may write what (``ACL SETUSER`` rules):

- **A feed** (user ``feed-<name>``, :func:`feed_rules`) may run one command, ``XADD``, on one
  key, its inbox stream ``<prefix>:inbox:<name>``. It cannot read anything (not even its own
  stream), write another feed's inbox, the log, the keyring or the audit stream, or run any
  other command: Redis answers ``NOPERM``. So the feed of an inbox entry is the stream it is
  on (:mod:`services.ingest.inbox`).
- **The service** (user ``ledger``, :func:`service_rules`) reads and writes the keys under its
  prefix only (``~<prefix>:*``; channels ``&<prefix>:*``), with the commands of the data types
  it uses (streams, hashes, sets, sorted sets, strings, scripts and transactions), ``WAIT``
  (strict mode), ``INFO`` and ``CONFIG GET`` (the start-up checks and ``ledger status``), and
  ``BGREWRITEAOF``/``BGSAVE`` (rewriting the files after an erasure) and ``ACL WHOAMI``; never the
  ``@dangerous`` and ``@admin`` commands otherwise: no ``FLUSHALL``, ``FLUSHDB``, ``KEYS``,
  ``CONFIG SET``, ``ACL``, ``DEBUG``, ``SHUTDOWN``, ``MONITOR``, ``MODULE``, ``REPLICAOF``
  or ``FUNCTION``.
- **The administrator** (user ``ledger-admin``, :func:`admin_rules`) manages users and nothing
  else: ``ACL SETUSER``/``GETUSER``/``DELUSER``/``LIST``/``SAVE``, and no key. Only
  ``ledger feeds add`` uses it; no running process holds its password.
- The ``default`` user is off.

On a Redis Cluster (``deploy/docker-compose.cluster.yml``, :func:`cluster_acl_file`) every
node holds the same users but for the feeds (the inbox is off there):

- **The service** also reads the slot map (``CLUSTER SLOTS``, :func:`cluster_service_rules`),
  which its cluster client asks any node for; no other ``CLUSTER`` command. It loses ``CONFIG
  GET``, which would show it the replicas' password (``masterauth``): it reads persistence
  from ``INFO`` there, so ``ledger status`` cannot show ``appendfsync``.
- **The administrator** administers the cluster instead of users (:func:`cluster_admin_rules`):
  every ``CLUSTER`` subcommand, ``INFO`` and ``PING``, and no key, so it can join the nodes
  (``redis-cli --cluster create``, the compose file's one-shot init job) and fail one over,
  but neither read nor write the ledger's data. No running service process holds it.
- **A replica** authenticates to its master as ``ledger-replica`` (:func:`replica_rules`):
  ``PSYNC``, ``REPLCONF`` and ``PING``, the commands of replication, and nothing else.

Passwords are stored hashed (``#<sha256>``) in ACL files; a clear password is only ever in a
secret file of the deployment, or printed once by ``ledger feeds add``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final

import redis.asyncio as aioredis
import redis.exceptions as rexc

from services.errors import LedgerError
from services.store.keys import Keys

__all__ = [
    "ADMIN_USER",
    "FEED_USER_PREFIX",
    "REPLICA_USER",
    "SERVICE_USER",
    "AclError",
    "acl_file",
    "acl_line",
    "add_feed_user",
    "admin_rules",
    "cluster_acl_file",
    "cluster_admin_rules",
    "cluster_service_rules",
    "feed_rules",
    "feed_user",
    "password_hash",
    "replica_rules",
    "service_rules",
]

SERVICE_USER: Final = "ledger"
"""The ACL user the service's processes connect as."""
ADMIN_USER: Final = "ledger-admin"
"""The ACL user ``ledger feeds add`` creates feed users as."""
FEED_USER_PREFIX: Final = "feed-"
REPLICA_USER: Final = "ledger-replica"
"""The ACL user a cluster's replicas authenticate to their masters as (``masteruser``)."""


class AclError(LedgerError):
    """Raised when Redis refuses to create a feed's user (a wrong or too weak admin user, a
    Redis without ACLs)."""


def feed_user(feed: str) -> str:
    """The ACL user name of ``feed``: ``feed-<name>``."""
    return f"{FEED_USER_PREFIX}{feed}"


def feed_rules(keys: Keys, feed: str) -> list[str]:
    """``XADD`` to ``feed``'s inbox stream, and nothing else."""
    return ["resetkeys", f"~{keys.inbox_of(feed)}", "resetchannels", "-@all", "+xadd"]


def service_rules(prefix: str) -> list[str]:
    """The service's keys and commands (module docstring)."""
    return [
        "resetkeys",
        f"~{prefix}:*",
        "resetchannels",
        f"&{prefix}:*",
        "-@all",
        *(
            f"+@{category}"
            for category in (
                "read",
                "write",
                "stream",
                "hash",
                "set",
                "sortedset",
                "string",
                "list",
                "keyspace",
                "scripting",
                "transaction",
                "connection",
            )
        ),
        "-@dangerous",
        "-@admin",
        "-function",
        "+info",
        "+config|get",
        "+wait",
        "+bgrewriteaof",
        "+bgsave",
        "+client|setname",
        "+acl|whoami",
    ]


def admin_rules() -> list[str]:
    """Managing users (module docstring)."""
    return [
        "resetkeys",
        "resetchannels",
        "-@all",
        "+acl|setuser",
        "+acl|getuser",
        "+acl|deluser",
        "+acl|list",
        "+acl|save",
        "+acl|whoami",
        "+ping",
        "+hello",
        "+auth",
        "+client|setname",
    ]


def cluster_service_rules(prefix: str) -> list[str]:
    """The service's rules (:func:`service_rules`) but ``CONFIG GET``, and the slot map a
    cluster client reads (module docstring)."""
    return [rule for rule in service_rules(prefix) if rule != "+config|get"] + ["+cluster|slots"]


def cluster_admin_rules() -> list[str]:
    """Administering a cluster's nodes, no key (module docstring)."""
    return ["resetkeys", "resetchannels", "-@all", "+cluster", "+info", "+ping", "+hello", "+auth"]


def replica_rules() -> list[str]:
    """What a replica sends its master: the commands of replication alone."""
    return ["resetkeys", "resetchannels", "-@all", "+psync", "+replconf", "+ping"]


def password_hash(password: str) -> str:
    """The SHA-256 of ``password`` as Redis ACLs keep it (``#<hex>``)."""
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def acl_line(user: str, password: str, rules: Iterable[str]) -> str:
    """One line of an ACL file: ``user`` on, with ``password`` (stored hashed) and ``rules``."""
    return " ".join(["user", user, "on", password_hash(password), *rules])


def acl_file(
    prefix: str, service_password: str, admin_password: str, feeds: Iterable[str] = ()
) -> str:
    """An ACL file: ``default`` off, the service, the administrator, and ``feeds`` (lines of
    feed users kept as they are, e.g. those ``ACL SAVE`` wrote)."""
    lines = [
        "user default off resetpass nocommands resetkeys resetchannels",
        acl_line(SERVICE_USER, service_password, service_rules(prefix)),
        acl_line(ADMIN_USER, admin_password, admin_rules()),
        *feeds,
    ]
    return "\n".join(lines) + "\n"


def cluster_acl_file(
    prefix: str, service_password: str, admin_password: str, replica_password: str
) -> str:
    """The ACL file of every node of a cluster: ``default`` off, the service, the cluster's
    administrator and the replicas' user (module docstring)."""
    lines = [
        "user default off resetpass nocommands resetkeys resetchannels",
        acl_line(SERVICE_USER, service_password, cluster_service_rules(prefix)),
        acl_line(ADMIN_USER, admin_password, cluster_admin_rules()),
        acl_line(REPLICA_USER, replica_password, replica_rules()),
    ]
    return "\n".join(lines) + "\n"


async def add_feed_user(admin: aioredis.Redis, keys: Keys, feed: str, password: str) -> bool:
    """Create (or reset) ``feed``'s user with ``password`` on the Redis of ``admin`` (a
    client of the administrator user); ``True`` when ``ACL SAVE`` also wrote it to the
    server's ACL file, ``False`` when the server has none (the user then lasts until a
    restart unless the deployment's ACL file gets it too). :class:`AclError` when refused."""
    user = feed_user(feed)
    try:
        await admin.execute_command(  # type: ignore[no-untyped-call]
            "ACL", "SETUSER", user, "reset", "on", password_hash(password), *feed_rules(keys, feed)
        )
    except rexc.RedisError as exc:
        raise AclError(f"Redis refused to create the user {user}: {exc}") from exc
    try:
        await admin.execute_command("ACL", "SAVE")  # type: ignore[no-untyped-call]
    except rexc.ResponseError:
        return False  # "There is no configured ACL file"
    return True
