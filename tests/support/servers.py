"""Real PostgreSQL and Redis servers for the test suite.

Each server runs as a child process on 127.0.0.1 on a free port, with its data in a
throw-away directory under /tmp.  The handles can stop, start and restart their server
(keeping the data), which chaos tests use to simulate outages.

Environment overrides:

* ``AIHP_TEST_POSTGRES_URL`` - use this PostgreSQL server instead of starting one.
* ``AIHP_TEST_REDIS_URL`` - use this Redis server instead of starting one.

External servers cannot be stopped or restarted; ``managed`` is False for them.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql
from sqlalchemy.engine import URL, make_url

POSTGRES_URL_ENV = "AIHP_TEST_POSTGRES_URL"
REDIS_URL_ENV = "AIHP_TEST_REDIS_URL"
POSTGRES_OS_USER = "postgres"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
HOST = "127.0.0.1"
OWNER_FILE = "owner.pid"


class ServiceError(RuntimeError):
    """A test service could not be found, started or reached."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _is_root() -> bool:
    return os.geteuid() == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _sweep_stale_workdirs(parent: Path, prefix: str) -> None:
    """Delete work dirs left by test runs that were killed before they could clean up."""
    for old in parent.glob(f"{prefix}*"):
        owner = _read_pid(old / OWNER_FILE)
        server = _read_pid(old / "data" / "postmaster.pid")
        if owner is None or _pid_alive(owner) or (server is not None and _pid_alive(server)):
            continue
        shutil.rmtree(old, ignore_errors=True)


def _make_workdir(prefix: str) -> Path:
    """Create a world-traversable temp dir directly under /tmp (or $TMPDIR when not root)."""
    parent = Path("/tmp" if _is_root() else tempfile.gettempdir())
    _sweep_stale_workdirs(parent, prefix)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    path.chmod(0o755)
    (path / OWNER_FILE).write_text(f"{os.getpid()}\n")
    return path


def _tail(path: Path, limit: int = 6000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<log unreadable: {exc}>"
    return text[-limit:]


try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None
_PR_SET_PDEATHSIG = 1


def _parent_death_signal(sig: signal.Signals) -> Callable[[], None]:
    """Return a preexec hook so the child gets ``sig`` if the test process dies (Linux).

    The signal fires when the *thread* that spawned the child exits, so servers should be
    started from the main thread (pytest fixtures are).
    """

    def hook() -> None:
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return hook


def _terminate(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> None:
    """Send ``sig`` to ``proc``, escalate to SIGKILL after ``timeout`` and reap it."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------- cleanup

_LIVE: set[Any] = set()


def _close_all() -> None:
    for service in list(_LIVE):
        with contextlib.suppress(Exception):
            service.close()


atexit.register(_close_all)


# --------------------------------------------------------------------------- PostgreSQL


def find_postgres_binary(name: str) -> Path:
    """Locate a PostgreSQL server binary: PATH, then ``pg_config --bindir``, then Debian dirs."""
    found = shutil.which(name)
    if found:
        return Path(found)
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            bindir = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(bindir) / name)

    def version(p: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", p.parent.parent.name)) or (0,)

    debian = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=version, reverse=True)
    candidates.extend(debian)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceError(
        f"PostgreSQL binary {name!r} not found on PATH, via pg_config --bindir or in "
        f"/usr/lib/postgresql/*/bin. Install the PostgreSQL 15 server or set {POSTGRES_URL_ENV}."
    )


def _postgres_os_user() -> pwd.struct_passwd:
    """Return the ``postgres`` OS account (creating it) for running the server as root."""
    try:
        return pwd.getpwnam(POSTGRES_OS_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [useradd, "--system", "--no-create-home", POSTGRES_OS_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(
                f"cannot create OS user {POSTGRES_OS_USER!r} to run PostgreSQL as root: "
                f"{result.stderr.strip()}"
            ) from None
        return pwd.getpwnam(POSTGRES_OS_USER)


class PostgresServer:
    """Handle on a PostgreSQL server: a private one we run, or an external one by URL."""

    def __init__(self, base_url: str, *, workdir: Path | None = None) -> None:
        url = make_url(base_url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        self._base: URL = url
        self.workdir = workdir
        self.managed = workdir is not None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- construction

    @classmethod
    def external(cls, url: str) -> PostgresServer:
        """Wrap an already running server; databases are created on it, it is never stopped."""
        return cls(url)

    @classmethod
    def launch(cls, port: int | None = None) -> PostgresServer:
        """initdb a fresh cluster in a temp dir and start it on ``port`` (free port if None)."""
        initdb = find_postgres_binary("initdb")
        find_postgres_binary("postgres")
        workdir = _make_workdir("aihp-pg-")
        server = cls(
            f"postgresql+psycopg://postgres@{HOST}:{port or free_port()}/postgres", workdir=workdir
        )
        _LIVE.add(server)
        try:
            if _is_root():
                user = _postgres_os_user()
                os.chown(workdir, user.pw_uid, user.pw_gid)
            server._run_checked(
                [
                    str(initdb),
                    "-D",
                    str(server.data_dir),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
            )
            server._start(retry_ports=port is None)
        except BaseException:
            server.close()
            raise
        return server

    @classmethod
    def from_env(cls) -> PostgresServer:
        """Use ``AIHP_TEST_POSTGRES_URL`` if set, otherwise launch a private server."""
        url = os.environ.get(POSTGRES_URL_ENV)
        return cls.external(url) if url else cls.launch()

    # -- addressing

    @property
    def port(self) -> int:
        """TCP port of the server."""
        return int(self._base.port or 5432)

    @property
    def data_dir(self) -> Path:
        """Data directory of a managed server."""
        return self._require_managed() / "data"

    @property
    def log_path(self) -> Path:
        """Server log file of a managed server."""
        return self._require_managed() / "postgres.log"

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL (``postgresql+psycopg://...``) for database ``dbname``."""
        return self._base.set(database=dbname).render_as_string(hide_password=False)

    def conninfo(self, dbname: str = "postgres") -> str:
        """libpq connection string for database ``dbname`` (for psycopg directly)."""
        u = self._base
        return psycopg.conninfo.make_conninfo(
            host=u.host or HOST,
            port=self.port,
            user=u.username or "postgres",
            password=u.password or None,
            dbname=dbname,
        )

    def connect(self, dbname: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        """Open an autocommit psycopg connection (default: the admin database)."""
        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 5)
        return psycopg.connect(self.conninfo(dbname or self._admin_db), **kwargs)

    @property
    def _admin_db(self) -> str:
        return self._base.database or "postgres"

    # -- databases

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` and return its SQLAlchemy URL."""
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, terminating its connections."""
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def unique_database(self, prefix: str = "aihp_test") -> str:
        """Create a database with a unique name and return that name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.create_database(name)
        return name

    # -- lifecycle

    @property
    def running(self) -> bool:
        """Whether the managed server process is alive (always True for external servers)."""
        if not self.managed:
            return True
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the managed server on its port with its existing data; no-op if running."""
        self._require_managed()
        if not self.running:
            self._start(retry_ports=False)

    def stop(self, mode: str = "fast") -> None:
        """Stop the managed server.

        ``mode`` is ``fast`` (SIGINT), ``smart`` (SIGTERM) or ``immediate`` (SIGQUIT, which
        behaves like a crash: the next start runs crash recovery).
        """
        self._require_managed()
        signals = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
        if mode not in signals:
            raise ValueError(f"unknown stop mode {mode!r}")
        if self._proc is not None:
            _terminate(self._proc, signals[mode], STOP_TIMEOUT)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, mode: str = "fast") -> None:
        """Stop then start the managed server, keeping its data and port."""
        self.stop(mode)
        self.start()

    def ensure_running(self) -> None:
        """Start the managed server if a previous test left it stopped."""
        if self.managed and not self.running:
            self.start()

    def close(self) -> None:
        """Stop a managed server and delete its directory; idempotent."""
        _LIVE.discard(self)
        if not self.managed or self.workdir is None:
            return
        with contextlib.suppress(Exception):
            self.stop("fast")
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- internals

    def _require_managed(self) -> Path:
        if self.workdir is None:
            raise ServiceError(f"external PostgreSQL ({POSTGRES_URL_ENV}) cannot be controlled")
        return self.workdir

    def _popen_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"cwd": str(self.workdir), "stdin": subprocess.DEVNULL}
        if _is_root():
            user = _postgres_os_user()
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        return kwargs

    def _run_checked(self, argv: list[str]) -> None:
        result = subprocess.run(
            argv, capture_output=True, text=True, check=False, **self._popen_kwargs()
        )
        if result.returncode != 0:
            raise ServiceError(
                f"{argv[0]} failed with exit code {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )

    def _start(self, *, retry_ports: bool) -> None:
        attempts = 3 if retry_ports else 1
        for attempt in range(attempts):
            try:
                self._spawn_and_wait()
                return
            except ServiceError:
                port_lost = self._proc is not None and self._proc.poll() is not None
                self.stop("immediate")
                if attempt == attempts - 1 or not port_lost:
                    raise
                self._base = self._base.set(port=free_port())

    def _spawn_and_wait(self) -> None:
        postgres = find_postgres_binary("postgres")
        workdir = self._require_managed()
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [
                str(postgres),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-k",
                str(workdir),
                "-c",
                f"listen_addresses={HOST}",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "max_connections=200",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_parent_death_signal(signal.SIGQUIT),
            **self._popen_kwargs(),
        )
        deadline = time.monotonic() + START_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServiceError(
                    f"postgres exited with code {self._proc.returncode} on port {self.port}; "
                    f"log {self.log_path}:\n{_tail(self.log_path)}"
                )
            try:
                with psycopg.connect(self.conninfo(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last_error = exc
                time.sleep(0.1)
        raise ServiceError(
            f"postgres on port {self.port} not ready after {START_TIMEOUT:.0f}s ({last_error}); "
            f"log {self.log_path}:\n{_tail(self.log_path)}"
        )


# --------------------------------------------------------------------------- Redis


def find_redis_server() -> Path:
    """Locate the ``redis-server`` binary on PATH."""
    found = shutil.which("redis-server")
    if not found:
        raise ServiceError(
            "redis-server not found on PATH. Run `make services` (installs it with apt-get) "
            f"or set {REDIS_URL_ENV}."
        )
    return Path(found)


class RedisServer:
    """Handle on a Redis server: a private one we run, or an external one by URL."""

    def __init__(self, url: str, *, workdir: Path | None = None) -> None:
        self.url = url
        self.workdir = workdir
        self.managed = workdir is not None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @classmethod
    def external(cls, url: str) -> RedisServer:
        """Wrap an already running server; it is never stopped."""
        return cls(url)

    @classmethod
    def launch(cls, port: int | None = None) -> RedisServer:
        """Start a private, non-persistent redis-server on ``port`` (free port if None)."""
        find_redis_server()
        workdir = _make_workdir("aihp-redis-")
        server = cls(f"redis://{HOST}:{port or free_port()}/0", workdir=workdir)
        _LIVE.add(server)
        try:
            server._start(retry_ports=port is None)
        except BaseException:
            server.close()
            raise
        return server

    @classmethod
    def from_env(cls) -> RedisServer:
        """Use ``AIHP_TEST_REDIS_URL`` if set, otherwise launch a private server."""
        url = os.environ.get(REDIS_URL_ENV)
        return cls.external(url) if url else cls.launch()

    @property
    def port(self) -> int:
        """TCP port of the server."""
        return urlsplit(self.url).port or 6379

    @property
    def log_path(self) -> Path:
        """Server log file of a managed server."""
        return self._require_managed() / "redis.log"

    def client(self, **kwargs: Any) -> redis.Redis:
        """Return a new client for :attr:`url`."""
        kwargs.setdefault("socket_timeout", 5)
        kwargs.setdefault("socket_connect_timeout", 5)
        return redis.Redis.from_url(self.url, **kwargs)

    def flush(self) -> None:
        """Empty the server: every database if managed, only the URL's database if external."""
        with self.client() as client:
            if self.managed:
                client.flushall()
            else:
                client.flushdb()

    @property
    def running(self) -> bool:
        """Whether the managed server process is alive (always True for external servers)."""
        if not self.managed:
            return True
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the managed server on its port; no-op if running."""
        self._require_managed()
        if not self.running:
            self._start(retry_ports=False)

    def stop(self) -> None:
        """Stop the managed server (SIGTERM, then SIGKILL)."""
        self._require_managed()
        if self._proc is not None:
            _terminate(self._proc, signal.SIGTERM, STOP_TIMEOUT)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """Kill the managed server abruptly (SIGKILL)."""
        self._require_managed()
        if self._proc is not None:
            _terminate(self._proc, signal.SIGKILL, STOP_TIMEOUT)
        self.stop()

    def restart(self) -> None:
        """Stop then start the managed server on the same port (data is not persisted)."""
        self.stop()
        self.start()

    def ensure_running(self) -> None:
        """Start the managed server if a previous test left it stopped."""
        if self.managed and not self.running:
            self.start()

    def close(self) -> None:
        """Stop a managed server and delete its directory; idempotent."""
        _LIVE.discard(self)
        if not self.managed or self.workdir is None:
            return
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _require_managed(self) -> Path:
        if self.workdir is None:
            raise ServiceError(f"external Redis ({REDIS_URL_ENV}) cannot be controlled")
        return self.workdir

    def _start(self, *, retry_ports: bool) -> None:
        attempts = 3 if retry_ports else 1
        for attempt in range(attempts):
            try:
                self._spawn_and_wait()
                return
            except ServiceError:
                port_lost = self._proc is not None and self._proc.poll() is not None
                self.stop()
                if attempt == attempts - 1 or not port_lost:
                    raise
                self.url = f"redis://{HOST}:{free_port()}/0"

    def _spawn_and_wait(self) -> None:
        workdir = self._require_managed()
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [
                str(find_redis_server()),
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
                "--daemonize",
                "no",
            ],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_parent_death_signal(signal.SIGTERM),
        )
        deadline = time.monotonic() + START_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServiceError(
                    f"redis-server exited with code {self._proc.returncode} on port {self.port}; "
                    f"log {self.log_path}:\n{_tail(self.log_path)}"
                )
            try:
                with self.client(socket_connect_timeout=1, socket_timeout=1) as client:
                    client.ping()
                return
            except redis.RedisError as exc:
                last_error = exc
                time.sleep(0.05)
        raise ServiceError(
            f"redis-server on port {self.port} not ready after {START_TIMEOUT:.0f}s "
            f"({last_error}); log {self.log_path}:\n{_tail(self.log_path)}"
        )
