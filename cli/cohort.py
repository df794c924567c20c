"""`aihp simulate` and `aihp demo`: a synthetic cohort driven through the service layer on a
virtual clock, and the demo built on it (seeded once and reused, the care team, demo logins,
then the API and pages with the in-process reminder dispatcher).

Registered on the main `aihp` app by cli/main.py. Progress is a bar on a terminal and a line
every few seconds otherwise (a log, a pipe, CI). The demo binds its port before any work, so a
port in use stops it before anything is seeded or dispatched.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.console import err, listening_socket, out, serve
from engine.bootstrap import unit_of_work_factory
from engine.config import get_settings

#: Seconds between progress lines when the output is not a terminal.
PROGRESS_SECONDS = 5.0
#: The states the demo shows an example patient of, in pathway order.
EXAMPLE_STAGES = (
    "screening",
    "induction",
    "acute_severe",
    "taper",
    "maintenance",
    "second_line",
    "transplant_evaluation",
    "withdrawn",
    "relapse",
)


def _simulation_clock(months: int):
    """A ManualClock `months` before now, so the simulated history ends today."""
    from datetime import UTC, datetime

    from engine.clock import ManualClock
    from engine.domain.durations import parse_duration

    now = datetime.now(UTC).replace(microsecond=0)
    return ManualClock(parse_duration(f"P{months}M").before(now))


def run_cohort(
    url: str, patients: int, months: int, seed: int, enrol_over_months: float, workers: int = 1
):
    """Simulate on `url` with a progress bar (progress lines when stderr is not a terminal);
    exit 1 naming the patient if a plan breaks."""
    from simulation import SimulationError, simulate_cohort

    clock = _simulation_clock(months)
    uow_factory = unit_of_work_factory(get_settings(), clock, url)
    with _Progress() as progress:
        try:
            return simulate_cohort(
                uow_factory,
                clock,
                patients=patients,
                months=months,
                seed=seed,
                progress=progress,
                enrol_over_months=enrol_over_months,
                workers=workers,
            )
        except SimulationError as problem:
            err.print(f"[bold red]simulation failed[/] {problem}")
            raise typer.Exit(1) from None


class _Progress:
    """A rich progress bar on a terminal; otherwise a plain line at the start, every
    PROGRESS_SECONDS and at the end (so a log shows the seeding is alive)."""

    def __enter__(self):
        self.started = self.last = time.monotonic()
        self.fraction, self.text = 0.0, ""
        if err.is_terminal:
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            columns = (
                TextColumn("[bold]simulating[/]"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
            )
            self.bar = Progress(*columns, console=err, transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task("", total=1.0)
            return lambda fraction, text: self.bar.update(
                self.task, completed=fraction, description=text
            )
        self.bar = None
        self._line()
        return self._update

    def _update(self, fraction: float, text: str) -> None:
        self.fraction, self.text = fraction, text
        if time.monotonic() - self.last >= PROGRESS_SECONDS:
            self._line()

    def _line(self) -> None:
        self.last = time.monotonic()
        elapsed = self.last - self.started
        err.print(
            f"simulating {self.fraction:4.0%} after {elapsed:4.0f} s  {self.text}",
            highlight=False,
            soft_wrap=True,
        )

    def __exit__(self, *exc_info: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc_info)
        elif exc_info[0] is None:
            self.fraction = 1.0
            self._line()


def print_cohort(summary) -> None:
    """The cohort summary as rich tables."""
    from rich.table import Table

    out.print(
        f"[bold]{summary.patients} synthetic patients[/], {summary.months} months "
        f"({summary.started:%Y-%m-%d} -> {summary.ended:%Y-%m-%d}), seed {summary.seed}: "
        f"{summary.inputs:,} inputs, {summary.transitions:,} transitions, "
        f"{summary.reviews:,} due reviews in {summary.wall_seconds:.1f} s "
        f"([bold]{summary.inputs_per_second:,.0f} inputs/s[/])",
        soft_wrap=True,
    )
    states = Table(title="Final states", title_justify="left")
    states.add_column("state")
    states.add_column("patients", justify="right")
    states.add_column("share", justify="right")
    for state, n in sorted(summary.final_states.items()):
        states.add_row(state, str(n), f"{n / max(1, summary.patients):.0%}")
    out.print(states)
    cross = Table(title="Trajectory x final state", title_justify="left")
    cross.add_column("trajectory")
    cross.add_column("n", justify="right")
    cross.add_column("final states")
    for trajectory, found in summary.by_trajectory.items():
        cells = ", ".join(f"{state} {n}" for state, n in sorted(found.items()))
        cross.add_row(trajectory, str(sum(found.values())), cells)
    out.print(cross)
    refused = Table(title="Refused actions (hard blocks)", title_justify="left")
    refused.add_column("block")
    refused.add_column("rules")
    refused.add_column("refusals", justify="right")
    for block, n in sorted(summary.refusals_by_block.items()):
        refused.add_row(block, ", ".join(summary.block_rules.get(block, ())), str(n))
    out.print(refused)
    other = Table(title="Alerts raised and milestones overdue at the end", title_justify="left")
    other.add_column("kind")
    other.add_column("id")
    other.add_column("count", justify="right")
    for alert, n in sorted(summary.alerts.items()):
        other.add_row("alert", alert, str(n))
    for milestone, n in sorted(summary.overdue_milestones.items()):
        other.add_row("overdue", milestone, str(n))
    out.print(other)
    unexpected = summary.unexpected
    colour = "green" if not unexpected else "red"
    out.print(
        f"plans played out: {summary.finished}/{summary.patients}; "
        f"[{colour}]ended outside their expected states: {len(unexpected)}[/]"
    )
    for record in unexpected[:10]:
        out.print(
            f"  [red]{record.patient_id}[/] {record.trajectory} ({record.variant}) "
            f"ended in {record.final_state}, expected {'/'.join(record.expected)}"
        )


def simulate(
    patients: Annotated[int, typer.Option(min=0, help="Cohort size.")] = 1000,
    months: Annotated[int, typer.Option(min=1, help="Virtual months to simulate.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same cohort).")] = 7,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="Database to write to (default: a fresh temporary SQLite file). An existing "
            "database is used as it is; its due reviews are swept on the virtual clock too."
        ),
    ] = None,
    enrol_over_months: Annotated[
        float, typer.Option(help="Enrolment is spread over the first N months.")
    ] = 3.0,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=32,
            help="Processes sharing the cohort, each with its own patients (same result); "
            "default: one per CPU, at most 4.",
        ),
    ] = None,
) -> None:
    """Drive a synthetic cohort through the service layer on a virtual clock; print a summary."""
    import tempfile

    from engine.adapters.database import create_schema, make_engine

    if database_url is None:
        folder = Path(tempfile.mkdtemp(prefix="aihp-sim-"))
        database_url = f"sqlite:///{folder / 'cohort.db'}"
    engine = make_engine(database_url)
    try:
        create_schema(engine)  # creates only the tables that are missing
    finally:
        engine.dispose()
    workers = workers or min(os.cpu_count() or 1, 4)
    summary = run_cohort(database_url, patients, months, seed, enrol_over_months, workers)
    print_cohort(summary)
    out.print(f"database: {database_url}", soft_wrap=True, highlight=False)


def demo(
    patients: Annotated[int, typer.Option(min=1, help="Cohort size.")] = 200,
    months: Annotated[int, typer.Option(min=1, help="History length, ending now.")] = 30,
    seed: int = 7,
    path: Annotated[
        Path, typer.Option(help="SQLite file (reused when already seeded, unless --rebuild).")
    ] = Path("var/demo.db"),
    host: Annotated[str, typer.Option(help="Serve on this address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Serve on this port.")] = 8000,
    serve_pages: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve",
            help="Serve the API and pages after seeding (--no-serve: seed only).",
        ),
    ] = True,
    rebuild: Annotated[
        bool, typer.Option(help="Seed a new cohort even if the database is already seeded.")
    ] = False,
) -> None:
    """Seed a demo database once (a synthetic cohort at every stage of the pathway, the care
    team, demo logins, one reminder dispatch round), then serve the API, the coordinator's pages
    and the in-process reminder dispatcher. A later run reuses the seeded database."""
    sock = listening_socket(host, port) if serve_pages else None  # before any work
    path = path.resolve()
    url = f"sqlite:///{path}"
    seeded = None if rebuild else _seeded_patients(url)
    if seeded:
        from engine.adapters.migrate import upgrade

        upgrade(url)
        out.print(
            f"reusing {path} ({seeded} patients already seeded); "
            "--rebuild (make demo REBUILD=1) seeds a new cohort",
            highlight=False,
            soft_wrap=True,
        )
        examples = _examples_in_database(url)
    else:
        examples = _seed(path, url, patients, months, seed)
    _print_examples(examples, url)
    site_url = f"http://{host}:{port}/ui/"
    settings = demo_settings(url, path, empty_mailbox=not seeded, public_url=site_url[:-4])
    logins = _demo_team(settings)
    out.print(f"\n[bold]Coordinator page:[/] {site_url}  (API: http://{host}:{port}/docs)")
    out.print("[bold]Demo logins[/] ([bold red]demo only[/]: new random passwords each start):")
    for login in logins:
        where = f"site {login.site}" if login.site else "all sites"
        out.print(
            f"  {login.role:<12} {login.name:<18} {where:<11} password {login.password}",
            highlight=False,
            soft_wrap=True,
        )
    out.print("[bold]API tokens[/] (Authorization: Bearer, or the login page's system option):")
    for login in logins:
        out.print(f"  {login.name}: {login.token}", highlight=False, soft_wrap=True)
    if sock is not None:
        from api.main import create_app

        out.print(f"serving on {site_url} with in-process reminder dispatch; Ctrl-C stops")
        serve(create_app(settings, dispatch=True), sock)


def _seeded_patients(url: str) -> int:
    """How many patients an existing demo database holds (0: none, or no usable database)."""
    from sqlalchemy.exc import SQLAlchemyError

    from engine.services.patient_directory import list_patients

    if not Path(url.removeprefix("sqlite:///")).exists():
        return 0
    try:
        return int(list_patients(unit_of_work_factory(None, None, url)(), "demo", limit=1)["total"])
    except (SQLAlchemyError, KeyError):
        return 0


def _seed(path: Path, url: str, patients: int, months: int, seed: int) -> list[tuple[str, str]]:
    """A new demo database: migrate, simulate the cohort, print its summary; example patients
    (state, id), one per stage."""
    from engine.adapters.migrate import upgrade

    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    out.print(f"migrated {path} (Alembic head); seeding {patients} patients over {months} months")
    summary = run_cohort(url, patients, months, seed, enrol_over_months=months)
    print_cohort(summary)
    examples, shown = [], set()
    for record in sorted(summary.records, key=lambda r: (r.final_state or "", r.index)):
        stage = (record.final_state or "?").split(".")[0]
        if stage in shown or record.patient_id is None:
            continue
        shown.add(stage)
        examples.append((record.final_state or "?", record.patient_id))
    return examples


def _examples_in_database(url: str) -> list[tuple[str, str]]:
    """One patient per stage, read from a seeded demo database."""
    from engine.services.patient_directory import list_patients

    uow_factory = unit_of_work_factory(None, None, url)
    examples = []
    for stage in EXAMPLE_STAGES:
        found = list_patients(uow_factory(), "demo", state=stage, limit=1)["items"]
        if found:
            examples.append((found[0]["state"], found[0]["patient_id"]))
    return examples


def _print_examples(examples: list[tuple[str, str]], url: str) -> None:
    """Whole patient ids, and commands that run as printed (the full path to `aihp`)."""
    out.print("[bold]A few patients to look at[/] (state, patient id):")
    for state, patient_id in examples:
        out.print(f"  {state:<36} {patient_id}", highlight=False, soft_wrap=True)
    first = next(
        (i for s, i in examples if s.split(".")[0] in ("taper", "maintenance", "induction")),
        examples[0][1] if examples else "<patient id>",
    )
    command = f"AIHP_DATABASE_URL={shlex.quote(url)} {shlex.quote(str(aihp_path()))}"
    out.print("\n[bold]Try:[/]")
    for tail in ("status", "history", "what-if"):
        extra = " lab code=ALT value=250 unit=U/L" if tail == "what-if" else ""
        out.print(f"  {command} {tail} {first}{extra}", soft_wrap=True, highlight=False)
    out.print(f"  {command} status {first} --json", soft_wrap=True, highlight=False)


def aihp_path() -> Path:
    """The `aihp` of this installation, as an absolute path (`aihp` alone is rarely on PATH)."""
    beside = Path(sys.executable).with_name("aihp")
    return beside if beside.exists() else Path(sys.argv[0]).resolve()


def demo_settings(
    url: str, path: Path, *, empty_mailbox: bool = True, public_url: str | None = None
):
    """The demo's settings: its database, a local mailbox beside it (emptied for a new
    cohort, kept when the database is reused), and where its pages are served (clinician
    emails link there)."""
    import shutil

    mailbox = path.parent / "demo-mail"
    if empty_mailbox:
        shutil.rmtree(mailbox, ignore_errors=True)
    return get_settings().model_copy(
        update={
            "database_url": url,
            "mail_dir": mailbox,
            "broker_url": None,
            "cookie_secure": False,  # the demo is served over plain http on localhost
            "public_url": public_url or get_settings().public_url,
        }
    )


def _demo_team(settings):
    """Clinicians with emails, one login per role, one dispatch round (queues and outbox)."""
    from cli.demo_team import create_demo_logins, dispatch_round, register_cohort_clinicians
    from engine.adapters.mail import mailer_from_settings
    from engine.services.reminders import DeliveryPolicy
    from engine.services.sign_in import SignInPolicy

    uow_factory = unit_of_work_factory(settings)
    register_cohort_clinicians(uow_factory)
    logins = create_demo_logins(uow_factory, SignInPolicy.from_settings(settings))
    mailer = mailer_from_settings(settings)
    try:
        outcomes = dispatch_round(uow_factory, mailer, DeliveryPolicy.from_settings(settings))
    finally:
        mailer.close()
    done = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())) or "nothing due"
    out.print(f"\ndispatched the due reminders: {done} (mail in {settings.mail_dir})")
    return logins


def register(app: typer.Typer) -> None:
    """Add `simulate` and `demo` to the main `aihp` app."""
    app.command()(simulate)
    app.command()(demo)
