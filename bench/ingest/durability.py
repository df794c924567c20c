"""The two database settings `bench ingest` reports, engine and floor under the same one.

* durable: SQLite in WAL with `synchronous=FULL` (every commit fsynced); PostgreSQL with
  `fsync=on`, `synchronous_commit=on`, `full_page_writes=on` (the server's defaults);
* relaxed (what the tests and the earlier figures use): SQLite `synchronous=NORMAL` (WAL: a
  commit is not fsynced, a power cut may lose the last ones, never corrupts); PostgreSQL
  `fsync=off`, `synchronous_commit=off`, `full_page_writes=off` (as the test support starts it).

`engine.adapters.database.make_engine` fixes SQLite's `synchronous=NORMAL` in its connect
hook and offers no option; the bench sets FULL itself on each new DBAPI connection at its first
checkout (`sqlite_synchronous`), on its own engines and, through an environment variable, on the
HTTP child's. PostgreSQL's `fsync` is a server-wide setting and the test support passes
`-c fsync=off` on the postmaster's command line (which outranks `ALTER SYSTEM`), so the durable
pass stops that private server and starts the same data directory again with the durable
settings (`durable_postgres`). Every pass reads its settings back from the database it measures.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import Engine, event, text

from engine.adapters.database import make_engine


@dataclass(frozen=True)
class Durability:
    """One database setting: a name and what it sets on each backend."""

    name: str
    sqlite_synchronous: str
    postgres: tuple[tuple[str, str], ...]


RELAXED = Durability(
    "relaxed",
    "NORMAL",
    (("fsync", "off"), ("synchronous_commit", "off"), ("full_page_writes", "off")),
)
DURABLE = Durability(
    "durable", "FULL", (("fsync", "on"), ("synchronous_commit", "on"), ("full_page_writes", "on"))
)
SETTINGS = (DURABLE, RELAXED)
SQLITE_SYNCHRONOUS_ENV = "BENCH_INGEST_SQLITE_SYNCHRONOUS"


def sqlite_synchronous(target: Any, level: str) -> None:
    """`PRAGMA synchronous=<level>` on every DBAPI connection of `target` (an engine, or the
    `Pool` class for every engine of the process), once, at its first checkout: after
    make_engine's own connect hook, which sets NORMAL."""

    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.get("bench_synchronous") != level:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA synchronous={level}")
            cursor.close()
            record.info["bench_synchronous"] = level

    event.listen(target, "checkout", on_checkout)


def bench_engine(url: str, durability: Durability, **kwargs: Any) -> Engine:
    """`make_engine(url)`, with SQLite's synchronous level set to the durability's."""
    engine = make_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        sqlite_synchronous(engine, durability.sqlite_synchronous)
    return engine


def read_back(engine: Engine) -> str:
    """The settings the database reports, for the report's heading."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            level = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
            return f"journal_mode={mode}, synchronous={level.get(sync, sync)}"
        names = ("fsync", "synchronous_commit", "full_page_writes")
        return ", ".join(f"{n}={conn.execute(text(f'SHOW {n}')).scalar()}" for n in names)


def postgres_matches(engine: Engine, durability: Durability) -> bool:
    """Whether the server runs with `durability`'s settings (an external one may not)."""
    with engine.connect() as conn:
        return all(
            conn.execute(text(f"SHOW {name}")).scalar() == value
            for name, value in durability.postgres
        )


def postmaster_pid(server: Any) -> int | None:
    """The pid of a managed server's postmaster (None for an external server)."""
    if not server.managed:
        return None
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((Path(server.data_dir) / "postmaster.pid").read_text().split()[0])
    return None


def server_cpu(pid: int | None) -> float:
    """CPU seconds of the postmaster, its exited children (reaped) and its live ones."""
    if pid is None:
        return 0.0
    try:
        postmaster = psutil.Process(pid)
        times = postmaster.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        children = postmaster.children()
    except psutil.Error:
        return 0.0
    for child in children:
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            total += times.user + times.system
    return total


@contextlib.contextmanager
def durable_postgres(server: Any) -> Iterator[None]:
    """The managed private server's data directory served again with the durable settings,
    on the same port; the relaxed server is started again afterwards."""
    from tests.support.servers import HOST, _parent_death_signal, find_postgres_binary

    server.stop("fast")
    log = (Path(server.workdir) / "durable.log").open("ab")
    settings = [("listen_addresses", HOST), *DURABLE.postgres, ("max_connections", "200")]
    argv = [
        str(find_postgres_binary("postgres")),
        "-D",
        str(server.data_dir),
        "-p",
        str(server.port),
        "-k",
        str(server.workdir),
    ]
    for name, value in settings:
        argv += ["-c", f"{name}={value}"]
    process = subprocess.Popen(  # dies with this process, like the test support's server
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_parent_death_signal(signal.SIGQUIT),
        **server._popen_kwargs(),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"durable postgres exited with code {process.returncode}")
            try:
                with server.connect() as conn:
                    conn.execute("SELECT 1")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield
    finally:
        process.send_signal(signal.SIGINT)  # fast shutdown
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        with contextlib.suppress(Exception):
            server.start()
