"""A whole Redis Cluster as child processes: for the cluster tests, benchmarks and fault tests.

:class:`RedisClusterProcesses` runs one cluster-enabled
:class:`~services.runtime.redis_server.RedisProcess` per node (its own port, data directory,
``nodes.conf`` and AOF), joined by ``redis-cli --cluster create``, with the methods fault
tests need (which node is master of a slot, ``kill -9`` a node, wait for its replica to take
over, restart it). What the nodes say of the cluster is read in
:mod:`services.runtime.cluster_nodes`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import redis.exceptions as rexc
from redis.crc import key_slot

from services.errors import LedgerError
from services.runtime.acl import ADMIN_USER, REPLICA_USER, SERVICE_USER, cluster_acl_file
from services.runtime.binaries import (
    find_redis_cli,
    find_redis_server,
)
from services.runtime.cluster_nodes import (
    CLUSTER_SLOTS,
    NodeLine,
    cluster,
    first_slot,
    node_problem,
    parse_info,
    parse_nodes,
    rewrite_problem,
)
from services.runtime.redis_server import RedisProcess, RedisStartError

__all__ = [
    "CLUSTER_SLOTS",
    "ClusterUsers",
    "RedisClusterFailoverError",
    "RedisClusterNotReadyError",
    "RedisClusterProcesses",
    "RedisClusterStartError",
]


class RedisClusterNotReadyError(LedgerError):
    """Raised when the running nodes of a cluster do not settle before the deadline.

    Settled means: every running node reports ``cluster_state:ok`` with all 16384 slots
    served by running masters, all running nodes agree on each one's role (which slots a
    master serves, which master a replica follows), none is flagged as failing, and every
    running replica's link to its master is up, synced and its AOF written. The message says
    what was still wrong at the deadline.
    """


class RedisClusterStartError(RedisStartError):
    """Raised when :meth:`RedisClusterProcesses.start` cannot bring a cluster up.

    A node did not start, ``redis-cli --cluster create`` failed (its output is in the
    message), or the new cluster did not settle in time. Every node started is killed first.
    """


class RedisClusterFailoverError(RedisClusterNotReadyError):
    """Raised when no replica of a killed master has taken over its slots before the deadline.

    Either the cluster never settled again (the message says what was wrong: too few masters
    left for a majority, a replica too far behind to be elected, ...) or the killed node was
    not a master serving slots in the first place.
    """


@dataclass(frozen=True)
class ClusterUsers:
    """The deployment's ACL users on every node (:func:`services.runtime.acl.cluster_acl_file`,
    ``deploy/cluster-users.acl.in``): the cluster is created and watched as ``ledger-admin``,
    replicas sync as ``ledger-replica``, and :attr:`RedisClusterProcesses.service_url`
    connects as ``ledger``, to the keys under ``prefix``."""

    prefix: str
    service_password: str
    admin_password: str
    replica_password: str


class RedisClusterProcesses:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each, as child processes.

    Every node is a cluster-enabled :class:`RedisProcess` in ``data_dir/node-<n>`` on a port of
    its own (append-only file on). :meth:`start` starts them, joins them with ``redis-cli
    --cluster create`` and returns once the cluster has settled (see
    :class:`RedisClusterNotReadyError`). Roles change with failovers, so :meth:`masters`,
    :meth:`master_for_slot` and :meth:`replica_of` ask the running nodes each time.
    ``cluster_node_timeout_ms`` is how long a node may be unreachable before it is failed
    over; tests use 1000-2000 ms for a quick failover. With ``users`` the nodes hold the
    deployment's users (:class:`ClusterUsers`) instead of one user of ``username`` and
    ``password``.
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        masters: int = 3,
        replicas: int = 1,
        cluster_node_timeout_ms: int = 5000,
        password: str | None = None,
        username: str | None = None,
        fsync: str = "everysec",
        binary: str | None = None,
        cli: str | None = None,
        users: ClusterUsers | None = None,
    ) -> None:
        if masters < 3:
            raise ValueError("a Redis Cluster needs at least 3 masters")
        if replicas < 0:
            raise ValueError("replicas must not be negative")
        self.data_dir = Path(data_dir)
        self.masters_count = masters
        self.replicas_count = replicas
        self.users = users
        if users is not None:
            password, username = users.admin_password, ADMIN_USER
        self.password = password
        self.username = username if password else None
        self._binary = binary
        self._cli = cli
        self._acl_file = self.data_dir / "users.acl" if users is not None else None
        replication = None if users is None else (REPLICA_USER, users.replica_password)
        self._nodes = tuple(
            RedisProcess(
                data_dir=self.data_dir / f"node-{n}",
                fsync=fsync,
                password=password,
                username=self.username,
                binary=binary,
                cluster=True,
                cluster_node_timeout_ms=cluster_node_timeout_ms,
                acl_file=self._acl_file,
                replication=replication,
            )
            for n in range(1, masters * (1 + replicas) + 1)
        )
        self._ids: dict[int, str] = {}
        self._slots_when_killed: dict[int, tuple[tuple[int, int], ...]] = {}

    # --- what it is -------------------------------------------------------------------------

    @property
    def nodes(self) -> tuple[RedisProcess, ...]:
        """Every node, running or not, in a fixed order."""
        return self._nodes

    @property
    def running_nodes(self) -> tuple[RedisProcess, ...]:
        """The nodes whose process is alive."""
        return tuple(node for node in self._nodes if node.running)

    def _running_node(self) -> RedisProcess:
        running = self.running_nodes
        if not running:
            raise RedisClusterNotReadyError("no node of the cluster is running")
        return running[0]

    @property
    def url(self) -> str:
        """The ``redis://`` URL of one running node; a cluster client discovers the others."""
        return self._running_node().url

    @property
    def service_url(self) -> str:
        """The URL of one running node as the service's user (with ``users``), else :attr:`url`."""
        if self.users is None:
            return self.url
        password = quote(self.users.service_password, safe="")
        return f"redis://{SERVICE_USER}:{password}@127.0.0.1:{self._running_node().port}/0"

    def node_id(self, node: RedisProcess) -> str:
        """The cluster node id of ``node`` (kept in its ``nodes.conf`` across restarts)."""
        try:
            return self._ids[node.port]
        except KeyError:
            raise ValueError(f"{node!r} is not a node of this cluster") from None

    def masters(self) -> list[RedisProcess]:
        """The masters serving slots now, as the running nodes see it, in slot order."""
        view = self._view()
        serving = sorted((line for line in view if line.is_master and line.slots), key=first_slot)
        return [self._node_at(line.port) for line in serving]

    def master_for_slot(self, slot: int) -> RedisProcess:
        """The master serving hash slot ``slot`` (0-16383) now."""
        if not 0 <= slot < CLUSTER_SLOTS:
            raise ValueError(f"a slot is in 0..{CLUSTER_SLOTS - 1}, not {slot}")
        for line in self._view():
            if line.is_master and any(first <= slot <= last for first, last in line.slots):
                return self._node_at(line.port)
        raise RedisClusterNotReadyError(f"no master serves slot {slot}")

    def master_for_key(self, key: str | bytes) -> RedisProcess:
        """The master serving ``key`` now (its hash tag, if any, decides the slot)."""
        return self.master_for_slot(key_slot(key.encode() if isinstance(key, str) else key))

    def replicas_of(self, master: RedisProcess) -> list[RedisProcess]:
        """The replicas of ``master`` now, as the running nodes see it."""
        master_id = self.node_id(master)
        return [
            self._node_at(line.port)
            for line in self._view()
            if not line.is_master and line.master_id == master_id
        ]

    def replica_of(self, master: RedisProcess) -> RedisProcess:
        """One replica of ``master`` (``ValueError`` when it has none)."""
        replicas = self.replicas_of(master)
        if not replicas:
            raise ValueError(f"{master!r} has no replica")
        return replicas[0]

    def _node_at(self, port: int) -> RedisProcess:
        for node in self._nodes:
            if node.port == port:
                return node
        raise RedisClusterNotReadyError(f"the cluster names a node on port {port} it never had")

    def _view(self) -> list[NodeLine]:
        """``CLUSTER NODES`` from the first running node that answers."""
        for node in self.running_nodes:
            client = node._client()
            try:
                return parse_nodes(cluster(client, "NODES"))
            except rexc.RedisError:
                continue
            finally:
                client.close()
        raise RedisClusterNotReadyError("no running node of the cluster answers")

    # --- life cycle -------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Start every node, create the cluster and wait until it has settled.

        A cluster started before (and stopped) is not created again: its nodes come back with
        their ``nodes.conf`` and data. Raises :class:`RedisClusterStartError` (after killing
        every node) when it cannot.
        """
        if any(node.running for node in self._nodes):
            raise RedisClusterStartError("the cluster is already (partly) running")
        deadline = time.monotonic() + timeout
        try:
            # absolute paths: each node runs in its own directory
            binary = os.path.abspath(self._binary or find_redis_server())
            cli = os.path.abspath(self._cli or find_redis_cli())
            if self.users is not None and self._acl_file is not None:
                self._write_users(self.users, self._acl_file)
            for node in self._nodes:
                node._binary = binary
                node.start(timeout=max(1.0, deadline - time.monotonic()))
            if not self._ids:
                self._create(cli, deadline)
                self._ids = {node.port: self._my_id(node) for node in self._nodes}
            self.wait_until_ready(timeout=max(1.0, deadline - time.monotonic()))
        except RedisClusterNotReadyError as exc:
            self._kill_all()
            raise RedisClusterStartError(f"the new cluster did not settle: {exc}") from exc
        except BaseException:
            self._kill_all()
            raise

    @staticmethod
    def _write_users(users: ClusterUsers, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(
            cluster_acl_file(
                users.prefix, users.service_password, users.admin_password, users.replica_password
            ),
            encoding="utf-8",
        )

    def _create(self, cli: str, deadline: float) -> None:
        command = [cli, "--cluster", "create"]
        command += [f"127.0.0.1:{node.port}" for node in self._nodes]
        command += ["--cluster-replicas", str(self.replicas_count), "--cluster-yes"]
        if self.username:
            command += ["--user", self.username]
        env = dict(os.environ)
        env.pop("REDISCLI_AUTH", None)
        if self.password:
            env["REDISCLI_AUTH"] = self.password  # not on the command line, not in `ps`
        try:
            done = subprocess.run(  # noqa: S603  # our own redis-cli and arguments
                command,
                capture_output=True,
                text=True,
                timeout=max(1.0, deadline - time.monotonic()),
                env=env,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RedisClusterStartError("redis-cli --cluster create did not finish") from exc
        if done.returncode != 0:
            output = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
            raise RedisClusterStartError(
                f"redis-cli --cluster create exited with {done.returncode}:\n{output}"
            )

    @staticmethod
    def _my_id(node: RedisProcess) -> str:
        client = node._client()
        try:
            return cluster(client, "MYID")
        finally:
            client.close()

    def wait_until_ready(self, timeout: float = 30) -> None:
        """Poll until the running nodes have settled (:class:`RedisClusterNotReadyError`)."""
        deadline = time.monotonic() + timeout
        while True:
            problem = self._problem()
            if problem is None:
                return
            if time.monotonic() > deadline:
                raise RedisClusterNotReadyError(f"after {timeout} s: {problem}")
            time.sleep(0.05)

    def _problem(self) -> str | None:
        """What keeps the running nodes from being a settled cluster, or ``None``."""
        running = self.running_nodes
        if not running:
            return "no node is running"
        running_ports = {node.port for node in running}
        agreed: set[tuple[str, str | None, tuple[tuple[int, int], ...]]] | None = None
        for node in running:
            client = node._client()
            try:
                info = parse_info(cluster(client, "INFO"))
                view = parse_nodes(cluster(client, "NODES"))
                replication = client.info("replication")
                persistence = client.info("persistence")
            except rexc.RedisError as exc:
                return f"node on port {node.port} does not answer: {exc}"
            finally:
                client.close()
            problem = node_problem(node.port, info, view, replication, running_ports)
            problem = problem or rewrite_problem(node.port, persistence)
            if problem is not None:
                return problem
            serving = [line for line in view if line.is_master and line.slots]
            if len(serving) != self.masters_count:
                return f"node on port {node.port} sees {len(serving)} masters serving slots"
            # every node must know every running node's role: who serves which slots, and
            # which master each replica follows
            roles = {
                (line.node_id, None if line.is_master else line.master_id, line.slots)
                for line in view
                if line.port in running_ports
            }
            if agreed is not None and roles != agreed:
                return f"node on port {node.port} disagrees on the roles of the nodes"
            agreed = roles
        return None

    def kill(self, node: RedisProcess) -> None:
        """``kill -9`` one node; a master's slots are remembered for :meth:`wait_for_failover`."""
        if node not in self._nodes:
            raise ValueError(f"{node!r} is not a node of this cluster")
        if node.running:
            with contextlib.suppress(RedisClusterNotReadyError, KeyError):
                node_id = self._ids[node.port]
                for line in self._view():
                    if line.node_id == node_id and line.is_master and line.slots:
                        self._slots_when_killed[node.port] = line.slots
        node.kill()

    def wait_for_failover(self, old_master: RedisProcess, timeout: float = 30) -> RedisProcess:
        """Wait until a replica of the killed ``old_master`` serves its slots; return it.

        Returns once the running nodes have settled again (every one ``cluster_state:ok``);
        raises :class:`RedisClusterFailoverError` when that does not happen before the deadline.
        """
        slots = self._slots_when_killed.get(old_master.port)
        if slots is None:
            raise RedisClusterFailoverError(
                f"{old_master!r} was not a master serving slots when it was killed"
            )
        try:
            self.wait_until_ready(timeout)
        except RedisClusterNotReadyError as exc:
            raise RedisClusterFailoverError(f"no failover of {old_master!r}: {exc}") from exc
        new_master = self.master_for_slot(slots[0][0])
        if new_master is old_master:
            raise RedisClusterFailoverError(f"{old_master!r} still serves its slots")
        del self._slots_when_killed[old_master.port]
        return new_master

    def restart(self, node: RedisProcess, timeout: float = 30) -> None:
        """Start a stopped or killed node again (same port and data) and wait until settled.

        A master that was failed over comes back as a replica of the node that took over.
        """
        if node not in self._nodes:
            raise ValueError(f"{node!r} is not a node of this cluster")
        deadline = time.monotonic() + timeout
        node.start(timeout=timeout)
        self.wait_until_ready(timeout=max(1.0, deadline - time.monotonic()))

    def stop(self, timeout: float = 10) -> None:
        """Shut every node down cleanly.

        A node still writing its AOF (a replica just after a full sync) refuses to shut down,
        so each node is first given up to ``timeout`` seconds to finish that.
        """
        for node in self._nodes:
            if node.running:
                self._wait_for_rewrite(node, timeout)
            node.stop(timeout)

    @staticmethod
    def _wait_for_rewrite(node: RedisProcess, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = node._client()
        try:
            while time.monotonic() < deadline:
                if rewrite_problem(node.port, client.info("persistence")) is None:
                    return
                time.sleep(0.05)
        except rexc.RedisError:
            return  # stop() falls back to SIGTERM and, at worst, SIGKILL
        finally:
            client.close()

    def _kill_all(self) -> None:
        for node in self._nodes:
            node.kill()

    def __enter__(self) -> RedisClusterProcesses:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        ports = [node._port for node in self._nodes]
        return f"RedisClusterProcesses(ports={ports}, data_dir={str(self.data_dir)!r})"
