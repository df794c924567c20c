"""Real Celery worker and beat processes for chaos tests: start, SIGKILL, restart, read logs.

Each process is ``celery -A workers ...`` in its own process group (a prefork worker is a
parent and its pool children), configured only through ``AIHP_*`` environment variables, with
its log in the cluster's directory. ``kill()`` SIGKILLs the whole group, as a crashed machine
or an OOM kill would; ``stop()`` asks for a warm shutdown first.

Each worker signs its mail with its own envelope sender (``reminders+<name>@...``), so an SMTP
sink can tell which worker a message came from.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.servers import _parent_death_signal, _tail

CELERY = str(Path(sys.executable).with_name("celery"))
MESSAGE_DOMAIN = "chaos.aih-pathways.test"
STOP_TIMEOUT = 15.0

_LIVE: set[CeleryProcess] = set()


class CeleryProcess:
    """One ``celery`` command run as a process group that can be killed and started again."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        """Whether the main process is running."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> CeleryProcess:
        """Start the process (appending to its log); no-op if it is running."""
        if self.alive:
            return self
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {self.starts} at {time.time():.3f} =====\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_parent_death_signal(signal.SIGKILL),
            )
        _LIVE.add(self)
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group (the worker and its pool children) and reap it."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait(timeout=STOP_TIMEOUT)
        self._proc = None
        _LIVE.discard(self)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Warm shutdown (SIGTERM to the group); SIGKILL if it is not done within `timeout`."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=timeout)
        self.kill()

    def restart(self) -> CeleryProcess:
        """Kill (SIGKILL) and start again."""
        self.kill()
        return self.start()

    def log_tail(self, limit: int = 3000) -> str:
        return _tail(self.log_path, limit) if self.log_path.exists() else "<no log>"


class CeleryCluster:
    """Celery workers and one beat on the given database, broker and SMTP server."""

    def __init__(
        self,
        workdir: Path,
        *,
        database_url: str,
        broker_url: str,
        smtp_host: str,
        smtp_port: int,
        stale_claim_seconds: int = 8,
        dispatch_interval_seconds: float = 1.0,
        log_level: str = "warning",
    ):
        self.workdir = workdir
        self.log_level = log_level
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stale_claim_seconds = stale_claim_seconds
        self.dispatch_interval_seconds = dispatch_interval_seconds
        self.message_domain = MESSAGE_DOMAIN
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("AIHP_")}
        self.env = inherited | {
            "AIHP_DATABASE_URL": database_url,
            "AIHP_BROKER_URL": broker_url,
            "AIHP_SMTP_HOST": smtp_host,
            "AIHP_SMTP_PORT": str(smtp_port),
            "AIHP_SMTP_TIMEOUT_SECONDS": "10",
            "AIHP_MESSAGE_DOMAIN": self.message_domain,
            "AIHP_STALE_CLAIM_SECONDS": str(stale_claim_seconds),
            "AIHP_DISPATCH_INTERVAL_SECONDS": str(dispatch_interval_seconds),
            "AIHP_REVIEW_INTERVAL_SECONDS": "3600",
            "AIHP_DELIVERY_RETRY_BASE_SECONDS": "1",
            "AIHP_DELIVERY_RETRY_CAP_SECONDS": "4",
            "AIHP_DELIVERY_BATCH_SIZE": "10",  # a batch sends for at most half the lease
            "AIHP_DISPATCH_MAX_QUEUED": "40",  # what two workers drain well within a lease
            "AIHP_MAIL_DIR": str(workdir / "mail"),
            "PYTHONUNBUFFERED": "1",
        }
        self.workers: dict[str, CeleryProcess] = {}
        self.beat: CeleryProcess | None = None

    @staticmethod
    def sender_of(worker_name: str) -> str:
        """The envelope sender a worker's emails carry."""
        return f"reminders+{worker_name}@aih-pathways.test"

    def add_worker(self, name: str, concurrency: int = 1) -> CeleryProcess:
        """Start a prefork worker named `name` (its node name is unique to this cluster)."""
        argv = [
            CELERY, "-A", "workers", "worker",
            "--pool", "prefork", "--concurrency", str(concurrency),
            "-l", self.log_level, "-n", f"{name}-{os.getpid()}-{id(self):x}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        env = self.env | {"AIHP_MAIL_FROM": self.sender_of(name)}
        worker = CeleryProcess(name, argv, env, self.workdir)
        self.workers[name] = worker
        return worker.start()

    def start_beat(self) -> CeleryProcess:
        """Start (or restart) the single beat, its schedule file in the cluster's directory."""
        if self.beat is None:
            argv = [
                CELERY, "-A", "workers", "beat", "-l", self.log_level,
                "-s", str(self.workdir / "celerybeat-schedule"),
                "--pidfile", str(self.workdir / "celerybeat.pid"),
            ]  # fmt: skip
            self.beat = CeleryProcess("beat", argv, self.env, self.workdir)
        return self.beat.start()

    @property
    def processes(self) -> list[CeleryProcess]:
        return [*self.workers.values(), *([self.beat] if self.beat else [])]

    def stop_all(self, *, kill: bool = False) -> None:
        """Stop every process (SIGKILL at once with `kill`)."""
        for process in self.processes:
            process.kill() if kill else process.stop()

    def logs(self, limit: int = 2000) -> str:
        """The tail of every process log, for failure messages."""
        return "\n".join(
            f"----- {p.name} ({'alive' if p.alive else 'dead'}, {p.log_path}) -----\n"
            f"{p.log_tail(limit)}"
            for p in self.processes
        )

    def close(self) -> None:
        """Kill everything and remove the schedule files (logs stay for inspection)."""
        self.stop_all(kill=True)
        for leftover in self.workdir.glob("celerybeat-schedule*"):
            leftover.unlink(missing_ok=True)
        shutil.rmtree(self.workdir / "mail", ignore_errors=True)


def _kill_all() -> None:
    for process in list(_LIVE):
        with contextlib.suppress(Exception):
            process.kill()


atexit.register(_kill_all)
