"""How `aihp` shows a service's answer to a person: rich tables for a patient's status, history,
a what-if, users and tokens (`--json` prints the service's JSON instead, for scripts).

Every id is printed whole (never wrapped or cut), so it can be copied into the next command.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from engine.services import clinical_display as show

View = Callable[[Console, Any], None]
#: Columns holding ids: printed whole, never wrapped or cut.
ID_COLUMNS = {"id", "patient_id", "record_id", "user_id", "token_id"}


def cell(value: Any) -> str:
    """One value as a person reads it: times to the minute in UTC, lists joined, no `None`."""
    if value is None or value == [] or value == {}:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):  # never 1.23457e+06: a lab value keeps its digits
        return show.trimmed(value, 6)
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, str):
        return _moment(value) or value
    if isinstance(value, list | tuple):
        return ", ".join(cell(item) for item in value)
    if isinstance(value, dict):
        if "rule" in value:
            return str(value["rule"])
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items())
    return str(value)


def _moment(text: str) -> str | None:
    if len(text) < 19 or text[4] != "-" or text[10] != "T":
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return f"{moment:%Y-%m-%d %H:%M}"


def table(title: str, rows: Iterable[dict[str, Any]], columns: list[str] | None = None) -> Table:
    """Rows of dicts as a table (columns: the given keys, else the first row's)."""
    rows = list(rows)
    columns = columns or (list(rows[0]) if rows else [])
    shown = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        whole = column in ID_COLUMNS
        shown.add_column(
            column.replace("_", " "),
            no_wrap=whole,
            overflow="ignore" if whole else "fold",
            min_width=32 if whole else None,
        )
    for row in rows:
        shown.add_row(*(cell(row.get(column)) for column in columns))
    return shown


def _section(console: Console, title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    if rows:
        console.print(table(title, rows, columns))
    else:
        console.print(f"[bold]{title}[/]: none")


def _why(items: list[dict[str, Any]]) -> str:
    return "; ".join(f"{w['rule']}: {w.get('text', '')}" for w in items)


def status_view(console: Console, status: dict[str, Any]) -> None:
    """A patient's state, regimen, next milestones and alerts, with the rules behind them."""
    pathway = status.get("pathway") or {}
    console.print(
        f"[bold]Patient[/] {status['patient_id']}  site {status.get('site')}, "
        f"clinician {status.get('clinician')}, external id {status.get('external_id') or '-'}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"[bold]Pathway[/] {pathway.get('key')} ({pathway.get('review_status')})", highlight=False
    )
    console.print(
        f"[bold]State[/] {status['state']} since {cell(status.get('state_since'))}: "
        f"{status.get('state_text', '')}",
        highlight=False,
    )
    if status.get("state_why"):
        console.print(f"  why: {_why(status['state_why'])}", highlight=False)
    if status.get("treatment_start"):
        console.print(f"[bold]Treatment start[/] {cell(status['treatment_start'])}")
    facts = status.get("facts") or {}
    console.print(f"[bold]Facts[/] {cell(facts) or 'none recorded'}", highlight=False)
    expected = status.get("expected_dose") or {}
    if expected:
        console.print(f"[bold]Expected dose[/] {cell(expected)}", highlight=False)
    regimen = status.get("regimen") or []
    _section(console, "Regimen", regimen, ["drug", "mg_per_day", "mg_per_kg_day", "route", "since"])
    milestones = _with_rules(status.get("next_milestones"))
    columns = ["due_at", "title", "status", "urgent", "recipients", "rules"]
    _section(console, "Next milestones", milestones, columns)
    alerts = _with_rules(status.get("open_alerts"))
    _section(console, "Open alerts", alerts, ["severity", "alert", "message", "rules"])


def _with_rules(items: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Each item with the rule IDs of its `why` as a `rules` column."""
    return [{**item, "rules": [w["rule"] for w in item.get("why", [])]} for item in items or []]


HISTORY_COLUMNS = {
    "transitions": ["at", "from", "to", "rules"],
    "labs": ["taken_at", "code", "reported", "value", "unit", "source"],
    "events": None,
    "orders": ["ordered_at", "drug", "mg_per_day", "mg_per_kg_day", "route", "status", "ended_at"],
    "milestones": ["due_at", "title", "status", "closed_at", "reason"],
    "refusals": None,
    "reminders": ["due_at", "milestone", "purpose", "recipient", "status", "sent_at", "id"],
    "care_team_actions": None,
}


def history_view(console: Console, history: dict[str, Any]) -> None:
    """Every section of a patient's history as its own table."""
    console.print(f"[bold]History of patient[/] {history['patient_id']}", highlight=False)
    for section, columns in HISTORY_COLUMNS.items():
        rows = history.get(section) or []
        chosen = columns or (list(rows[0]) if rows else [])
        _section(console, section.replace("_", " ").capitalize(), rows, chosen)


def what_if_view(console: Console, answer: dict[str, Any]) -> None:
    """What a hypothetical input would do (nothing was written)."""
    about = f" for patient {answer['patient_id']}" if answer.get("patient_id") else ""
    console.print(f"[bold]What if[/] (nothing is written){about}", highlight=False)
    if not answer.get("allowed", True):
        refused = answer.get("refused") or {}
        console.print(
            f"[bold red]Refused[/] by {cell(refused.get('rules'))}: {refused.get('reason', '')} "
            f"(sources {cell(refused.get('sources'))})",
            highlight=False,
        )
        return
    console.print(
        f"[bold]State[/] {answer.get('state_before')} -> {answer.get('state')}"
        f"{'' if answer.get('transition') else ' (no transition)'}",
        highlight=False,
    )
    if answer.get("transition"):
        console.print(f"  transition: {cell(answer['transition'])}", highlight=False)
    for key in ("alerts_raised", "alerts_resolved", "milestones_scheduled", "milestones_closed"):
        items = answer.get(key) or []
        label = key.replace("_", " ").capitalize()
        console.print(f"[bold]{label}[/]: {cell(items) or 'none'}", highlight=False)


def users_view(console: Console, users: list[dict[str, Any]]) -> None:
    console.print(table("Users", users, ["name", "role", "site", "active", "created_at", "id"]))


def tokens_view(console: Console, tokens: list[dict[str, Any]]) -> None:
    columns = ["id", "user", "created_at", "expires_at", "revoked_at"]
    console.print(table("API tokens (only their hashes are stored)", tokens, columns))


def as_json(console: Console, result: Any) -> None:
    """The service's answer as JSON, exactly as `aihp` has always printed it."""
    console.print_json(json.dumps(result, default=str))
