"""One patient: state and why, regimen, next milestones, alerts, the timeline plot, history,
and (for clinicians) the order form, which shows a refused order's rule IDs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import scoped_patient
from api.pages.session import EventRecorder, Form, PatientViewer, Prescriber, base, render
from api.pages.timeline import timeline_figure
from engine.domain.errors import DomainError, HardBlock, InvalidInput
from engine.services import pathway_catalogue
from engine.services import patients as patient_service
from engine.services.access import Principal
from engine.services.patient_timeline import timeline_series

router = APIRouter(prefix="/patients", include_in_schema=False)
PatientId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("/{patient_id}", response_class=HTMLResponse)
def patient_page(
    request: Request,
    principal: PatientViewer,
    patient_id: PatientId,
    ordered: Annotated[str | None, Query(max_length=64)] = None,
    recorded: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    notice = f"Order placed: {ordered}." if ordered else ""
    notice = f"Recorded: {recorded}." if recorded else notice
    return _page(request, principal, patient_id, notice=notice)


@router.post("/{patient_id}/events")
def record_event(
    request: Request, principal: EventRecorder, patient_id: PatientId, form: Form
) -> Response:
    """Record a dated clinical event (a fact that changed: weight, cirrhosis, pregnancy...);
    each `f_<field>` is read by the field's type in the pathway data."""
    _visible(request, principal, patient_id, "event.record")
    kind = str(form.get("kind", "")).strip()
    try:
        status = patient_service.patient_status(
            request.app.state.uow_factory(), principal.actor, patient_id
        )
        definition = pathway_catalogue.pathway(status["pathway"]["key"]).event(kind)
        data = {
            name: _field(str(form.get(f"f_{name}", "")), spec, name)
            for name, spec in definition.fields.items()
            if str(form.get(f"f_{name}", "")).strip()
        }
        unknown = sorted(
            key for key in form if key.startswith("f_") and key[2:] not in definition.fields
        )
        if unknown:
            raise InvalidInput(f"{kind} does not take {', '.join(k[2:] for k in unknown)}")
        patient_service.record_clinical_event(
            request.app.state.uow_factory(),
            principal.actor,
            patient_id,
            kind=kind,
            data=data,
            occurred_at=str(form.get("occurred_at", "")).strip() or None,
        )
    except HardBlock as refused:
        return _page(request, principal, patient_id, event_error=refused.message, status=422)
    except DomainError as problem:
        return _page(request, principal, patient_id, event_error=problem.message, status=422)
    return RedirectResponse(
        f"{base(request)}/patients/{patient_id}?recorded={kind}", status_code=303
    )


@router.post("/{patient_id}/orders")
def order(request: Request, principal: Prescriber, patient_id: PatientId, form: Form) -> Response:
    """Order through the pathway's hard blocks; a refusal is shown with its rule IDs."""
    _visible(request, principal, patient_id, "order.place")
    entered = {k: form.get(k, "") for k in ("drug", "mg_per_day", "mg_per_kg_day", "route")}
    overrides = _overrides(form)
    try:
        patient_service.order_medication(
            request.app.state.uow_factory(),
            principal.actor,
            patient_id,
            drug=entered["drug"],
            mg_per_day=_amount(entered["mg_per_day"], "mg/day"),
            mg_per_kg_day=_amount(entered["mg_per_kg_day"], "mg/kg/day"),
            route=entered["route"] or "oral",
            overrides=overrides,
        )
    except HardBlock as refused:
        refusal = {
            "block": refused.block_id,
            "rules": list(refused.rule_ids),
            "reason": refused.message,
            "sources": list(refused.sources),
            "overridable": refused.overridable,
        }
        return _page(
            request,
            principal,
            patient_id,
            refusal=refusal,
            entered=entered,
            given_overrides=list(overrides.items()),
            status=422,
        )
    except DomainError as problem:
        return _page(
            request, principal, patient_id, order_error=problem.message, entered=entered, status=422
        )
    return RedirectResponse(
        f"{base(request)}/patients/{patient_id}?ordered={entered['drug']}", status_code=303
    )


def _page(
    request: Request, principal: Principal, patient_id: str, status: int = 200, **extra: Any
) -> HTMLResponse:
    _visible(request, principal, patient_id, "patient.read")
    uow = request.app.state.uow_factory
    status_view = patient_service.patient_status(uow(), principal.actor, patient_id)
    history = patient_service.patient_history(uow(), principal.actor, patient_id)
    series = timeline_series(status_view, history, request.app.state.clock.now())
    pathway = pathway_catalogue.pathway(status_view["pathway"]["key"])
    context = {
        "patient": status_view,
        "history": history,
        "timeline": timeline_figure(series),
        "series": series,
        "drugs": sorted(pathway.drugs),
        "events": pathway.events,
        "refusal": None,
        "order_error": "",
        "event_error": "",
        "entered": {},
        "notice": "",
        **extra,
    }
    return render(request, "patient.html", context, status)


def _visible(request: Request, principal: Principal, patient_id: str, action: str) -> None:
    """The policy's answer, as in the API: a patient of another site is 'unknown'."""
    scoped_patient(request.app.state.uow_factory, principal, action, patient_id)


def _overrides(form: dict[str, str]) -> dict[str, str]:
    """`override`/`override_reason`, and the ones an earlier refusal carried forward as
    `override_<n>`/`override_reason_<n>`: each block or range id with its reason."""
    found: dict[str, str] = {}
    for key, value in form.items():
        suffix = key.removeprefix("override")
        if value and key.startswith("override") and not key.startswith("override_reason"):
            found[value] = form.get(f"override_reason{suffix}", "")
    return found


def _field(text: str, spec: dict[str, Any], name: str) -> Any:
    """A form field as the event field's type wants it (the domain checks ranges)."""
    text = text.strip()
    if spec["type"] == "boolean":
        if text not in ("true", "false"):
            raise InvalidInput(f"{name} must be yes or no")
        return text == "true"
    if spec["type"] == "number":
        try:
            return float(text)
        except ValueError:
            raise InvalidInput(f"{name} must be a number") from None
    return text


def _amount(text: str, unit: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(f"the dose in {unit} must be a number") from None
