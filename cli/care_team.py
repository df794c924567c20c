"""`aihp` commands for the care team: clinicians, coordinator queues, reminder dispatch, workers.

Registered on the main `aihp` app by cli/main.py; every command calls the service layer.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from functools import partial
from typing import Annotated, Any

import typer

from cli.console import Actor, actor_default, err, out, run_service
from engine.bootstrap import unit_of_work_factory
from engine.config import get_settings
from engine.domain.errors import UnknownWorkItem
from engine.services import access, access_policy, audit_trail, care_team, coordinator_queue

clinician_app = typer.Typer(no_args_is_help=True, help="The care-team directory.")
queue_app = typer.Typer(no_args_is_help=True, help="Care-coordinator queues.")
reminders_app = typer.Typer(no_args_is_help=True, help="Reminder delivery.")


@clinician_app.command("add")
def clinician_add(
    clinician_id: str,
    name: Annotated[str, typer.Option()],
    email: Annotated[str, typer.Option()] = "",
    site: Annotated[str, typer.Option()] = "",
    actor: Actor = "",
) -> None:
    """Add or update a clinician (the id patients are enrolled under) and their email."""
    run_service(
        care_team.register_clinician,
        actor or actor_default(),
        clinician_id,
        name=name,
        email=email or None,
        site=site or None,
    )


Token = Annotated[
    str,
    typer.Option(
        envvar="AIHP_TOKEN",
        help="Act as the API user of this token: the access policy and their site apply.",
    ),
]


def _as_caller(action: str, token: str, actor: str) -> dict[str, Any]:
    """Who acts, and within which site: the user of `token` if given (the access policy
    decides; exit 3 if it refuses), else the operator at this shell (`--actor`)."""
    if not token:
        return {"actor": actor or actor_default(), "scope": {}}
    principal = None
    try:
        principal = access.authenticate(unit_of_work_factory()(), token)
        access_policy.enforce(principal, action)
    except access.NotAuthenticated as problem:
        _audit_refusal(None, action, 401)
        err.print(f"[bold red]error[/] ({problem.code}) {problem.message}")
        raise typer.Exit(2) from None
    except access_policy.Forbidden as refused:
        _audit_refusal(principal.actor if principal else None, action, 403)
        err.print(f"[bold red]refused[/] {refused.message}")
        raise typer.Exit(3) from None
    scope = access_policy.queue_scope(principal)
    return {"actor": principal.actor, "scope": scope, "acting_as_user": True}


def _audit_refusal(actor: str | None, action: str, status: int) -> None:
    """Refused access from the CLI acting as a user is audited as on the other surfaces."""
    audit_trail.record_refusal(
        unit_of_work_factory()(), actor, surface="cli", method="CLI", route=action, status=status
    )


def _queue_change(call: Any, action: str, token: str, actor: str, *args: Any, **kw: Any) -> None:
    caller = _as_caller(action, token, actor)

    def audited(*given: Any, **named: Any) -> Any:
        try:
            return call(*given, **named)
        except UnknownWorkItem:
            if caller.get("acting_as_user"):
                _audit_refusal(caller["actor"], action, 404)
            raise

    run_service(audited, caller["actor"], *args, **caller["scope"], **kw)


@queue_app.command("list")
def queue_list(
    queue: Annotated[str, typer.Option(help="escalated, failed_delivery, overdue, ...")] = "",
    view: Annotated[str, typer.Option(help="live, mine, snoozed or completed")] = "live",
    site: str = "",
    clinician: str = "",
    state: str = "",
    sort: Annotated[str, typer.Option(help="urgency or due")] = "urgency",
    cursor: Annotated[str, typer.Option(help="next_cursor of the previous page")] = "",
    limit: int = 50,
    actor: Actor = "",
    token: Token = "",
) -> None:
    """List work items (with counts per queue); page on with --cursor."""
    caller = _as_caller("queue.read", token, actor)
    run_service(
        # `view` is also run_service's own keyword (how to print): bind the queue's view here
        partial(coordinator_queue.coordinator_queue, view=view),
        caller["actor"],
        queue=queue or None,
        site=site or None,
        clinician=clinician or None,
        state=state or None,
        sort=sort,
        cursor=cursor or None,
        limit=limit,
        **caller["scope"],
    )


@queue_app.command("outcomes")
def queue_outcomes() -> None:
    """The outcome codes an item is completed with (what was done)."""
    for code, text in coordinator_queue.outcomes().items():
        out.print(f"{code}\t{text}", highlight=False)


@queue_app.command("claim")
def queue_claim(item_id: str, actor: Actor = "", token: Token = "") -> None:
    """Take an item (exit 2, a conflict, if another coordinator holds it)."""
    _queue_change(coordinator_queue.claim_item, "queue.work", token, actor, item_id)


@queue_app.command("release")
def queue_release(item_id: str, actor: Actor = "", token: Token = "") -> None:
    """Give an item back (exit 2, a conflict, if another coordinator holds it)."""
    _queue_change(coordinator_queue.release_item, "queue.work", token, actor, item_id)


@queue_app.command("complete")
def queue_complete(
    item_id: str,
    outcome: Annotated[str, typer.Option(help="what was done (aihp queue outcomes)")],
    note: str = "",
    actor: Actor = "",
    token: Token = "",
) -> None:
    """Mark an item handled with what was done (exit 2, a conflict, if another coordinator
    holds it; exit 1 with the known outcomes for an unknown one)."""
    _queue_change(
        coordinator_queue.complete_item,
        "queue.work",
        token,
        actor,
        item_id,
        note=note,
        outcome=outcome,
    )


@queue_app.command("take-over")
def queue_take_over(
    item_id: str,
    reason: Annotated[str, typer.Option(help="Why (audited), e.g. 'holder on leave'.")],
    actor: Actor = "",
    token: Token = "",
) -> None:
    """Take over an item another coordinator holds, with a reason (audited)."""
    _queue_change(
        coordinator_queue.take_over_item, "queue.take_over", token, actor, item_id, reason=reason
    )


@queue_app.command("snooze")
def queue_snooze(
    item_id: str,
    until: Annotated[str, typer.Option(help="ISO date-time with timezone, at most 28 days on")],
    reason: Annotated[str, typer.Option()],
    actor: Actor = "",
    token: Token = "",
) -> None:
    """Hide an item until a later time, with a reason (exit 2 if someone else holds it)."""
    try:
        moment = datetime.fromisoformat(until)
    except ValueError:
        err.print(f"[bold red]error[/] --until {until!r} is not an ISO date-time")
        raise typer.Exit(2) from None
    _queue_change(
        coordinator_queue.snooze_item,
        "queue.work",
        token,
        actor,
        item_id,
        until=moment,
        reason=reason,
    )


@reminders_app.command("dispatch")
def reminders_dispatch(
    loop: Annotated[bool, typer.Option(help="Keep dispatching every interval.")] = False,
) -> None:
    """Deliver every due reminder in this process (the embedded default, or a cron job)."""
    from engine.adapters.mail import mailer_from_settings
    from engine.services.dispatch import dispatch_due_reminders
    from engine.services.patients import review_due_patients
    from engine.services.reminders import DeliveryPolicy

    settings = get_settings()
    uow_factory = unit_of_work_factory(settings)
    mailer, policy = mailer_from_settings(settings), DeliveryPolicy.from_settings(settings)
    try:
        while True:
            reviewed = review_due_patients(uow_factory, actor="system:review")
            outcomes = dispatch_due_reminders(
                uow_factory, mailer, policy, settings.dispatch_batch_size
            )
            out.print(f"reviewed {reviewed} patients; reminders: {dict(outcomes) or 'none due'}")
            if not loop:
                return
            time.sleep(settings.dispatch_interval_seconds)
    except KeyboardInterrupt:
        return
    finally:
        mailer.close()


def _celery(*arguments: str) -> None:
    """Replace this process with Celery (signals then reach Celery directly)."""
    if not get_settings().broker_url:
        err.print("[bold red]error[/] set AIHP_BROKER_URL (e.g. redis://localhost:6379/0)")
        raise typer.Exit(2)
    celery = os.path.join(os.path.dirname(sys.executable), "celery")
    os.execv(celery, [celery, "-A", "workers", *arguments])


def worker(concurrency: int = 2, loglevel: str = "info") -> None:
    """Run a Celery worker that delivers reminders (needs AIHP_BROKER_URL)."""
    _celery("worker", f"--concurrency={concurrency}", f"--loglevel={loglevel}")


def beat(loglevel: str = "info", schedule: str = "var/celerybeat-schedule") -> None:
    """Run Celery beat: claims due reminders and runs due reviews (needs AIHP_BROKER_URL)."""
    os.makedirs(os.path.dirname(schedule) or ".", exist_ok=True)
    _celery("beat", f"--loglevel={loglevel}", f"--schedule={schedule}")


def register(app: typer.Typer) -> None:
    """Add these commands to the main `aihp` app."""
    app.add_typer(clinician_app, name="clinician")
    app.add_typer(queue_app, name="queue")
    app.add_typer(reminders_app, name="reminders")
    app.command()(worker)
    app.command()(beat)
