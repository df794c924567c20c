"""`aihp`: the command line. Every command calls the service layer; errors exit 2 with a reason."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cli import tables
from cli.console import (
    Actor,
    AsJson,
    actor_default,
    err,
    listening_socket,
    out,
    run_service,
    serve,
)
from engine.config import get_settings
from engine.domain.errors import DomainError
from engine.services import patients as service
from engine.services.access_policy import ROLES

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
    from cli.verify import run_verify

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
def status(patient_id: str, actor: Actor = "", as_json: AsJson = False) -> None:
    """Where the patient is, what is due, and why (tables; --json for scripts)."""
    run_service(
        service.patient_status,
        actor or actor_default(),
        patient_id,
        view=tables.status_view,
        as_json=as_json,
    )


@app.command()
def history(patient_id: str, actor: Actor = "", as_json: AsJson = False) -> None:
    """Transitions, labs, events, orders, milestones and refusals (tables; --json for scripts)."""
    run_service(
        service.patient_history,
        actor or actor_default(),
        patient_id,
        view=tables.history_view,
        as_json=as_json,
    )


@app.command("what-if")
def what_if(
    patient_id: str,
    kind: Annotated[str, typer.Argument(help="lab | event | order")],
    given: Annotated[list[str], typer.Argument(help="key=value, e.g. code=ALT value=80 unit=U/L")],
    actor: Actor = "",
    as_json: AsJson = False,
) -> None:
    """Evaluate a hypothetical lab, event or order; nothing is written (--json for scripts)."""
    run_service(
        service.what_if,
        actor or actor_default(),
        patient_id,
        kind=kind,
        view=tables.what_if_view,
        as_json=as_json,
        **_pairs(given),
    )


# ---- HTTP API: users, tokens, server ---------------------------------------------------------


PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input (never echoed or logged).",
    ),
]


def _read_password(from_stdin: bool) -> str:
    """The password from stdin's first line, or asked twice without echo on a terminal."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        err.print("[bold red]error[/] give the password on standard input with --password-stdin")
        raise typer.Exit(2)
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


def _sign_in_policy():
    from engine.services.sign_in import SignInPolicy

    return SignInPolicy.from_settings(get_settings())


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option(help="|".join(ROLES))],
    site: Annotated[str | None, typer.Option(help="Scope the user to one site.")] = None,
    password_stdin: PasswordStdin = False,
    actor: Actor = "",
) -> None:
    """Create a user (with --password-stdin, one who can log in to the pages)."""
    from engine.services import access

    password = _read_password(True) if password_stdin else None
    run_service(
        access.create_user,
        actor or actor_default(),
        name=name,
        role=role,
        site=site,
        password=password,
        password_policy=_sign_in_policy(),
    )


@user_app.command("set-password")
def user_set_password(
    user: Annotated[str, typer.Argument(help="User name or id.")],
    password_stdin: PasswordStdin = False,
    actor: Actor = "",
) -> None:
    """Set a user's password (asked without echo, or --password-stdin); their open sessions
    end and a lockout of their name is lifted."""
    from engine.services.sign_in import set_password

    password = _read_password(password_stdin)
    run_service(set_password, actor or actor_default(), user, password, _sign_in_policy())


@user_app.command("list")
def user_list(as_json: AsJson = False) -> None:
    """Every user: name, role, site, whether active (a table; --json for scripts)."""
    from engine.services import access

    run_service(access.list_users, view=tables.users_view, as_json=as_json)


@token_app.command("list")
def token_list(
    user: Annotated[str | None, typer.Option(help="Only this user's (name or id).")] = None,
    as_json: AsJson = False,
) -> None:
    """API tokens: whose, issued, expiring, revoked (never the tokens themselves)."""
    from engine.services import access

    run_service(access.list_tokens, user, view=tables.tokens_view, as_json=as_json)


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
    """Serve the HTTP API (OpenAPI at /docs) with uvicorn; the API's own access log, no PHI.
    The port is bound first: if it is taken, exit 2 before anything starts (no dispatch)."""
    import logging

    sock = listening_socket(host, port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    serve("api.main:app", sock)


# Care-team, cohort and demo commands live in their own modules (they import the helpers above).
from cli import care_team, cohort  # noqa: E402

care_team.register(app)
cohort.register(app)

from lab_feed.cli import app as hl7_app  # noqa: E402

app.add_typer(hl7_app, name="hl7")


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="aihp")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
