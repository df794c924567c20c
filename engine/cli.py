"""`aihp`: the command line. Every command calls the service layer; errors exit 2 with a reason."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.bootstrap import unit_of_work_factory
from engine.cli_common import Actor, actor_default, err, out, run_service
from engine.config import get_settings
from engine.domain.errors import DomainError
from engine.services import patients as service

app = typer.Typer(
    no_args_is_help=True,
    help="AIH care-pathway engine.",
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
pathway_app = typer.Typer(no_args_is_help=True, help="Pathway data files.")
app.add_typer(db_app, name="db")
app.add_typer(pathway_app, name="pathway")
user_app = typer.Typer(no_args_is_help=True, help="API users (one role each, optional site).")
token_app = typer.Typer(no_args_is_help=True, help="API bearer tokens.")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")


def _pairs(items: list[str], *, as_text: bool = False) -> dict[str, Any]:
    """`key=value` options -> dict; values parsed as JSON when they can be (true, 12.5),
    unless `as_text` (reasons stay text)."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            err.print(f"[bold red]error[/] expected key=value, got {item!r}")
            raise typer.Exit(2)
        if as_text:
            parsed[key] = value
            continue
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the Alembic migrations to the configured database."""
    from engine.adapters.migrate import upgrade

    url = get_settings().database_url
    upgrade(url, revision)
    out.print(f"database at {revision}")


@pathway_app.command("validate")
def pathway_validate(files: list[Path] = typer.Argument(None)) -> None:  # noqa: B008
    """Validate pathway files against the schema and their cross-references."""
    from engine.adapters.pathway_files import load_pathway_file, pathway_files

    failed = False
    for path in files or pathway_files():
        try:
            p = load_pathway_file(path)
        except (DomainError, OSError, ValueError) as problem:
            err.print(f"[red]invalid[/] {path}: {problem}")
            failed = True
            continue
        out.print(
            f"[green]ok[/] {path.name}: {p.key} ({p.review['status']}), "
            f"{len(p.rules)} rules, {len(p.states)} states, {len(p.transitions)} transitions, "
            f"{len(p.milestones)} milestones, {len(p.alerts)} alerts, {len(p.blocks)} blocks"
        )
    if failed:
        raise typer.Exit(1)


@pathway_app.command("verify")
def pathway_verify(
    depth: Annotated[int | None, typer.Option(help="Most inputs in one sequence.")] = None,
    max_sequences: Annotated[int | None, typer.Option(help="Most sequences explored.")] = None,
    pathway: Annotated[Path | None, typer.Option(help="Pathway file (default: aih).")] = None,
) -> None:
    """Model-check the pathway: explore bounded input sequences and report findings."""
    from engine.cli_verify import run_verify

    run_verify(pathway, depth, max_sequences)


@app.command()
def enrol(
    site: Annotated[str, typer.Option()],
    clinician: Annotated[str, typer.Option()],
    birth_date: Annotated[str, typer.Option(help="YYYY-MM-DD")],
    sex: Annotated[str, typer.Option()],
    weight_kg: Annotated[float, typer.Option()],
    fact: Annotated[list[str], typer.Option(help="Patient fact, e.g. cirrhosis=true")] = [],  # noqa: B006
    email: str | None = None,
    external_id: str | None = None,
    actor: Actor = "",
) -> None:
    """Enrol a patient on the AIH pathway."""
    run_service(
        service.enrol_patient,
        actor or actor_default(),
        site=site,
        clinician=clinician,
        birth_date=birth_date,
        sex=sex,
        weight_kg=weight_kg,
        facts=_pairs(fact),
        email=email,
        external_id=external_id,
    )


@app.command()
def lab(
    patient_id: str,
    code: str,
    value: str,
    unit: str | None = None,
    taken_at: str | None = None,
    actor: Actor = "",
) -> None:
    """Record a lab result (code: ALT or LOINC 1742-6; value in `unit`)."""
    run_service(
        service.record_lab_result,
        actor or actor_default(),
        patient_id,
        code=code,
        value=value,
        unit=unit,
        taken_at=taken_at,
    )


@app.command()
def event(
    patient_id: str,
    kind: str,
    data: Annotated[list[str], typer.Option(help="Event field, e.g. drug=azathioprine")] = [],  # noqa: B006
    occurred_at: str | None = None,
    actor: Actor = "",
) -> None:
    """Record a clinical event (intolerance, pregnancy, decompensation, biopsy_resulted...)."""
    run_service(
        service.record_clinical_event,
        actor or actor_default(),
        patient_id,
        kind=kind,
        data=_pairs(data),
        occurred_at=occurred_at,
    )


@app.command()
def order(
    patient_id: str,
    drug: str,
    mg_per_day: float | None = None,
    mg_per_kg_day: float | None = None,
    route: str = "oral",
    override: Annotated[
        list[str] | None,
        typer.Option(help="ID=REASON: lift an overridable block or dose range, with a reason"),
    ] = None,
    actor: Actor = "",
) -> None:
    """Order a medication through the dose model and the pathway's hard blocks."""
    run_service(
        service.order_medication,
        actor or actor_default(),
        patient_id,
        drug=drug,
        mg_per_day=mg_per_day,
        mg_per_kg_day=mg_per_kg_day,
        route=route,
        overrides=_pairs(override or [], as_text=True),
    )


@app.command()
def status(patient_id: str, actor: Actor = "") -> None:
    """Where the patient is, what is due, and why."""
    run_service(service.patient_status, actor or actor_default(), patient_id)


@app.command()
def history(patient_id: str, actor: Actor = "") -> None:
    """Transitions, labs, events, orders, milestones and refusals."""
    run_service(service.patient_history, actor or actor_default(), patient_id)


@app.command("what-if")
def what_if(
    patient_id: str,
    kind: Annotated[str, typer.Argument(help="lab | event | order")],
    given: Annotated[list[str], typer.Argument(help="key=value, e.g. code=ALT value=80")],
    actor: Actor = "",
) -> None:
    """Evaluate a hypothetical lab, event or order; nothing is written."""
    run_service(service.what_if, actor or actor_default(), patient_id, kind=kind, **_pairs(given))


# ---- HTTP API: users, tokens, server ---------------------------------------------------------


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option(help="clinician|coordinator|lab-interface|auditor|admin")],
    site: Annotated[str | None, typer.Option(help="Scope the user to one site.")] = None,
    actor: Actor = "",
) -> None:
    """Create an API user."""
    from engine.services import access

    run_service(access.create_user, actor or actor_default(), name=name, role=role, site=site)


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option(help="User name or id.")],
    days: Annotated[int, typer.Option(help="Valid for this many days.")] = 30,
    actor: Actor = "",
) -> None:
    """Issue a bearer token for a user; it is printed once and stored only as a hash."""
    from engine.services import access

    run_service(access.issue_token, actor or actor_default(), user, days=days)


@app.command()
def api(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) with uvicorn; the API's own access log, no PHI."""
    import logging

    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run("api.main:app", host=host, port=port, access_log=False)


# ---- synthetic cohort: simulate and demo ----------------------------------------------------


def _simulation_clock(months: int):
    """A ManualClock `months` before now, so the simulated history ends today."""
    from datetime import UTC, datetime

    from engine.clock import ManualClock
    from engine.domain.durations import parse_duration

    now = datetime.now(UTC).replace(microsecond=0)
    return ManualClock(parse_duration(f"P{months}M").before(now))


def _run_cohort(url: str, patients: int, months: int, seed: int, enrol_over_months: float):
    """Simulate on `url` with a progress bar; exit 1 naming the patient if a plan breaks."""
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from engine.synthetic_cohort import SimulationError, simulate_cohort

    clock = _simulation_clock(months)
    uow_factory = unit_of_work_factory(get_settings(), clock, url)
    columns = (
        TextColumn("[bold]simulating[/]"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("", total=1.0)

        def progress(fraction: float, text: str) -> None:
            bar.update(task, completed=fraction, description=text)

        try:
            return simulate_cohort(
                uow_factory,
                clock,
                patients=patients,
                months=months,
                seed=seed,
                progress=progress,
                enrol_over_months=enrol_over_months,
            )
        except SimulationError as problem:
            err.print(f"[bold red]simulation failed[/] {problem}")
            raise typer.Exit(1) from None


def _print_cohort(summary) -> None:
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


@app.command()
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
    summary = _run_cohort(database_url, patients, months, seed, enrol_over_months)
    _print_cohort(summary)
    out.print(f"database: {database_url}", soft_wrap=True, highlight=False)


@app.command()
def demo(
    patients: Annotated[int, typer.Option(min=1, help="Cohort size.")] = 200,
    months: Annotated[int, typer.Option(min=1, help="History length, ending now.")] = 30,
    seed: int = 7,
    path: Annotated[Path, typer.Option(help="SQLite file (recreated).")] = Path("var/demo.db"),
    host: Annotated[str, typer.Option(help="Serve on this address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Serve on this port.")] = 8000,
    serve: Annotated[
        bool, typer.Option(help="Serve the API and pages after seeding (--no-serve: seed only).")
    ] = True,
) -> None:
    """Seed a demo database (a synthetic cohort at every stage of the pathway, the care team,
    demo logins, one reminder dispatch round), then serve the API, the coordinator's pages and
    the in-process reminder dispatcher."""
    from engine.adapters.migrate import upgrade

    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{path}"
    upgrade(url)
    out.print(f"migrated {path} (Alembic head); seeding {patients} patients over {months} months")
    summary = _run_cohort(url, patients, months, seed, enrol_over_months=months)
    _print_cohort(summary)
    from rich.table import Table

    from engine.synthetic_cohort import in_family

    examples = Table(title="A few patients to look at", title_justify="left")
    examples.add_column("state", no_wrap=True)
    examples.add_column("trajectory", no_wrap=True)
    examples.add_column("patient id", no_wrap=True, min_width=32)
    shown: set[str] = set()
    for record in sorted(summary.records, key=lambda r: (r.final_state or "", r.index)):
        stage = (record.final_state or "?").split(".")[0]
        if stage in shown or record.patient_id is None:
            continue
        shown.add(stage)
        examples.add_row(record.final_state or "?", record.trajectory, record.patient_id)
    out.print(examples)
    interesting = ("taper", "second_line", "maintenance", "induction")
    first = next(
        (r.patient_id for r in summary.records if in_family(r.final_state or "", interesting)),
        next((r.patient_id for r in summary.records if r.patient_id), "<id>"),
    )
    env = f"AIHP_DATABASE_URL={url}"
    out.print("\n[bold]Try:[/]")
    for command in ("status", "history", "what-if"):
        tail = " lab code=ALT value=250" if command == "what-if" else ""
        out.print(f"  {env} aihp {command} {first}{tail}", soft_wrap=True, highlight=False)
    settings = _demo_settings(url, path)
    logins = _demo_team(settings)
    site_url = f"http://{host}:{port}/ui/"
    out.print(f"\n[bold]Coordinator page:[/] {site_url}  (API: http://{host}:{port}/docs)")
    out.print("[bold]Demo logins[/] ([bold red]demo only[/]: new random passwords each start):")
    for login in logins:
        where = f" at {login.site}" if login.site else ""
        out.print(
            f"  {login.role:<11} {login.name}{where}: password {login.password}",
            highlight=False,
            soft_wrap=True,
        )
    out.print("[bold]API tokens[/] (Authorization: Bearer, or the login page's system option):")
    for login in logins:
        out.print(f"  {login.name}: {login.token}", highlight=False, soft_wrap=True)
    if serve:
        import uvicorn

        from api.main import create_app

        out.print(f"serving on {site_url} with in-process reminder dispatch; Ctrl-C stops")
        app = create_app(settings, dispatch=True)
        uvicorn.run(app, host=host, port=port, access_log=False)


def _demo_settings(url: str, path: Path):
    """The demo's settings: its database, and a Maildir outbox beside it (emptied)."""
    import shutil

    outbox = path.parent / "demo-outbox"
    shutil.rmtree(outbox, ignore_errors=True)
    return get_settings().model_copy(
        update={
            "database_url": url,
            "outbox_dir": outbox,
            "broker_url": None,
            "cookie_secure": False,  # the demo is served over plain http on localhost
        }
    )


def _demo_team(settings):
    """Clinicians with emails, one login per role, one dispatch round (queues and outbox)."""
    from engine.adapters.mail import mailer_from_settings
    from engine.demo_team import create_demo_logins, dispatch_round, register_cohort_clinicians
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
    out.print(f"\ndispatched the due reminders: {done} (mail in {settings.outbox_dir})")
    return logins


# Care-team commands live in their own module (it imports the helpers above).
from engine import cli_care_team  # noqa: E402

cli_care_team.register(app)

from lab_feed.cli import app as hl7_app  # noqa: E402

app.add_typer(hl7_app, name="hl7")


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="aihp")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
