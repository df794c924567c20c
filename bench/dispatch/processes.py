"""Bench dispatch, processes: start and stop them, their CPU and RSS, the sink's log."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
CELERY = str(Path(PYTHON).with_name("celery"))
INTERVAL_S = 1.0  # AIHP_DISPATCH_INTERVAL_SECONDS


class Procs:
    """Child processes this benchmark starts, stopped by their own pid."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        handle = log.open("ab")
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=handle, stderr=handle
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # the worker's own children first, then the worker
                with contextlib.suppress(psutil.Error):
                    for child in psutil.Process(proc.pid).children(recursive=True):
                        child.kill()
                proc.kill()
                proc.wait(timeout=10)
        with contextlib.suppress(ValueError):
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in list(self.procs):
            with contextlib.suppress(Exception):
                self.stop(proc)


def worker_env(database_url: str, broker_url: str, sink_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIHP_DATABASE_URL=database_url,
        AIHP_BROKER_URL=broker_url,
        AIHP_SMTP_HOST="127.0.0.1",
        AIHP_SMTP_PORT=str(sink_port),
        AIHP_DISPATCH_INTERVAL_SECONDS=str(INTERVAL_S),
        PYTHONPATH=str(ROOT),
    )
    return env


def start_worker(procs: Procs, env: dict[str, str], name: str, log: Path, concurrency: int = 2):
    argv = [
        CELERY,
        "-A",
        "workers",
        "worker",
        f"--concurrency={concurrency}",
        "--loglevel=warning",
        "-n",
        f"{name}@%h",
    ]
    return procs.start(argv, env, log)


def wait_worker_ready(app: Any, name: str, timeout: float = 60.0) -> float:
    """Seconds until the worker answers a control ping."""
    t0 = time.monotonic()
    hostname = f"{name}@{os.uname().nodename}"
    while time.monotonic() - t0 < timeout:
        if app.control.ping(destination=[hostname], timeout=1.0):
            return time.monotonic() - t0
    raise RuntimeError(f"worker {hostname} not ready after {timeout:.0f} s")


def rss_of(pid: int) -> list[tuple[str, int]]:
    """[(role, RSS bytes)] of a process and its children (VmRSS from /proc)."""
    out = []
    parent = psutil.Process(pid)
    for proc in [parent, *parent.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            role = "main" if proc.pid == pid else "child"
            out.append((role, proc.memory_info().rss))
    return out


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU seconds of a process; with `children`, also of its children, live
    ones and those that have exited and been reaped (a database backend whose client left)."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        parent = psutil.Process(pid)
        for proc in [parent, *(parent.children(recursive=True) if children else [])]:
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
                if children:
                    total += t.children_user + t.children_system
    return total


class SinkLog:
    """Reads the sink process's JSONL as it grows: first receive time per Message-ID."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.first: dict[str, float] = {}
        self.received: Counter[str] = Counter()

    def poll(self) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n")
        if end < 0:
            return
        self.offset += end + 1
        for line in data[: end + 1].splitlines():
            record = json.loads(line)
            mid = record["message_id"].strip("<>")
            reminder = mid.split("@", 1)[0].removeprefix("reminder-")
            self.received[reminder] += 1
            self.first.setdefault(reminder, record["received_at"])

    def count(self, prefix: str) -> int:
        return sum(1 for r in self.first if r.startswith(prefix))


def app_for(broker_url: str) -> Any:
    """A second Celery app with the workers' configuration on another broker (control, publish).

    The tasks stay those of `workers.celery_app.app`; `apply_async(producer=...)` sends them
    through this app's connection.
    """
    from celery import Celery

    from workers import celeryconfig

    other = Celery("aihp")
    other.config_from_object(celeryconfig)
    other.conf.broker_url = broker_url
    return other


def wait_port(port: int, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on port {port}")
