"""What the nodes of a Redis Cluster say of it: ``CLUSTER NODES`` and ``CLUSTER INFO``, read.

A cluster has settled when every running node reports ``cluster_state:ok`` with all 16384
slots served by running masters, all running nodes agree on each one's role, none is flagged
as failing, and every running replica's link to its master is up, synced and its AOF
written (:func:`node_problem`, :func:`rewrite_problem` say what is still wrong).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

__all__ = [
    "CLUSTER_SLOTS",
    "NodeLine",
    "cluster",
    "first_slot",
    "node_problem",
    "parse_info",
    "parse_nodes",
    "rewrite_problem",
]

CLUSTER_SLOTS = 16384
"""The number of hash slots of a Redis Cluster."""


@dataclass(frozen=True, slots=True)
class NodeLine:
    """One line of ``CLUSTER NODES``: a node as one member of the cluster sees it."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    connected: bool
    slots: tuple[tuple[int, int], ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failing(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "handshake", "noaddr"})


def parse_nodes(text: str) -> list[NodeLine]:
    lines = []
    for raw in text.splitlines():
        fields = raw.split()
        if len(fields) < 8:
            continue
        address = fields[1].split("@", 1)[0]
        port = int(address.rsplit(":", 1)[1])
        slots: list[tuple[int, int]] = []
        for item in fields[8:]:
            if item.startswith("["):
                continue  # a slot being imported or migrated
            first, _, last = item.partition("-")
            slots.append((int(first), int(last or first)))
        lines.append(
            NodeLine(
                node_id=fields[0],
                port=port,
                flags=frozenset(fields[2].split(",")),
                master_id=None if fields[3] == "-" else fields[3],
                connected=fields[7] == "connected",
                slots=tuple(sorted(slots)),
            )
        )
    return lines


def parse_info(text: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key: value.strip() for key, value in pairs}


def cluster(client: redis.Redis, subcommand: str) -> str:
    """``CLUSTER <subcommand>``'s raw reply as text (redis-py's parsers left out)."""
    reply = client.execute_command("CLUSTER", subcommand)  # type: ignore[no-untyped-call]
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def first_slot(line: NodeLine) -> int:
    return line.slots[0][0]


def node_problem(
    port: int,
    info: dict[str, str],
    view: list[NodeLine],
    replication: dict[str, object],
    running_ports: set[int],
) -> str | None:
    """What is wrong with one running node's state, or ``None``."""
    if info.get("cluster_state") != "ok":
        return f"node on port {port} reports cluster_state:{info.get('cluster_state')}"
    for key in ("cluster_slots_assigned", "cluster_slots_ok"):
        if info.get(key) != str(CLUSTER_SLOTS):
            return f"node on port {port} reports {key}:{info.get(key)}"
    seen = {line.port: line for line in view}
    for other in sorted(running_ports):
        line = seen.get(other)
        if line is None:
            return f"node on port {port} does not know the node on port {other}"
        if line.failing or not line.connected:
            return f"node on port {port} sees the node on port {other} as {','.join(line.flags)}"
    for line in view:
        if line.slots and line.port not in running_ports:
            return f"node on port {port} still sees the stopped node on port {line.port} serving"
    if replication.get("role") == "slave":
        if replication.get("master_link_status") != "up":
            return f"replica on port {port} has its master link down"
        if replication.get("master_sync_in_progress") not in (0, "0", None):
            return f"replica on port {port} is still syncing"
    return None


def rewrite_problem(port: int, persistence: dict[str, object]) -> str | None:
    """Whether the node is writing its AOF anew (it cannot shut down before it is done)."""
    for key in ("aof_rewrite_in_progress", "aof_rewrite_scheduled"):
        if persistence.get(key) not in (0, "0", None):
            return f"node on port {port} is rewriting its append-only file"
    return None
