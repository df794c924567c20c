"""`aihp`: the command line. Every command calls the service layer; errors exit 2 with a reason."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from engine.bootstrap import unit_of_work_factory
from engine.config import get_settings
from engine.domain.errors import DomainError, HardBlock
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
out = Console()
err = Console(stderr=True)

Actor = Annotated[str, typer.Option(help="Who is acting (recorded in the audit log).")]


def _actor_default() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "cli"


def _run(call, *args: Any, **kwargs: Any) -> None:
    """Call a service, print its JSON answer, or exit 2 with the domain error's reason."""
    try:
        result = call(unit_of_work_factory()(), *args, **kwargs)
    except HardBlock as refused:
        err.print(f"[bold red]refused[/] {refused.message}")
        raise typer.Exit(3) from None
    except DomainError as problem:
        err.print(f"[bold red]error[/] ({problem.code}) {problem.message}")
        raise typer.Exit(2) from None
    except Exception as problem:  # a bug or an outage: a message and exit 1, never a traceback
        err.print(f"[bold red]failed[/] {type(problem).__name__}; see the service log")
        raise typer.Exit(1) from None
    out.print_json(json.dumps(result, default=str))


def _pairs(items: list[str]) -> dict[str, Any]:
    """`key=value` options -> dict; values parsed as JSON when they can be (true, 12.5)."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            err.print(f"[bold red]error[/] expected key=value, got {item!r}")
            raise typer.Exit(2)
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
    _run(
        service.enrol_patient,
        actor or _actor_default(),
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
    _run(
        service.record_lab_result,
        actor or _actor_default(),
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
    _run(
        service.record_clinical_event,
        actor or _actor_default(),
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
    actor: Actor = "",
) -> None:
    """Order a medication through the pathway's hard blocks."""
    _run(
        service.order_medication,
        actor or _actor_default(),
        patient_id,
        drug=drug,
        mg_per_day=mg_per_day,
        mg_per_kg_day=mg_per_kg_day,
        route=route,
    )


@app.command()
def status(patient_id: str, actor: Actor = "") -> None:
    """Where the patient is, what is due, and why."""
    _run(service.patient_status, actor or _actor_default(), patient_id)


@app.command()
def history(patient_id: str, actor: Actor = "") -> None:
    """Transitions, labs, events, orders, milestones and refusals."""
    _run(service.patient_history, actor or _actor_default(), patient_id)


@app.command("what-if")
def what_if(
    patient_id: str,
    kind: Annotated[str, typer.Argument(help="lab | event | order")],
    given: Annotated[list[str], typer.Argument(help="key=value, e.g. code=ALT value=80")],
    actor: Actor = "",
) -> None:
    """Evaluate a hypothetical lab, event or order; nothing is written."""
    _run(service.what_if, actor or _actor_default(), patient_id, kind=kind, **_pairs(given))


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="aihp")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
