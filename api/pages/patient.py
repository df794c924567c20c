"""One patient: the header (who they are, the facts that drive the pathway with their dates,
the regimen against the expected dose, open alerts first), state and why, next milestones, the
timeline plot, history, and (for clinicians) the order form: its dose fields are guided by the
dose range the pathway would check, and a refused order is shown at the top of the page (rule
ID, sentence, sources, and the override form where the pathway allows one) with focus on it.

Numbers are written by `engine.services.clinical_display` (the lab's and the drug's
precision, units as a clinician writes them): the template shows text, never a raw float."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.pages.session import EventRecorder, Form, PatientViewer, Prescriber, base, render
from api.pages.timeline import timeline_figure
from engine.bootstrap import UnitOfWorkFactory
from engine.domain.errors import DomainError, HardBlock, InvalidInput
from engine.services import clinical_display as show
from engine.services import pathway_catalogue
from engine.services import patients as patient_service
from engine.services.access import Principal
from engine.services.admission import Admission
from engine.services.patient_header import patient_header
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
    return _page(request, principal, patient_id, done={"ordered": ordered, "recorded": recorded})


@router.post("/{patient_id}/events")
def record_event(
    request: Request, principal: EventRecorder, patient_id: PatientId, form: Form
) -> Response:
    """Record a dated clinical event (a fact that changed: weight, cirrhosis, pregnancy...);
    each `f_<field>` is read by the field's type in the pathway data."""
    uow = _admitted(request, principal, "event.record")
    kind = str(form.get("kind", "")).strip()
    try:
        status = patient_service.patient_status(uow(), principal.actor, patient_id)
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
            uow(),
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
    uow = _admitted(request, principal, "order.place")
    entered = {k: form.get(k, "") for k in ("drug", "mg_per_day", "mg_per_kg_day", "route")}
    overrides = _overrides(form)
    try:
        patient_service.order_medication(
            uow(),
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
            "reason": refused.reason,  # the sentence alone: the rule IDs are shown once, apart
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
    uow = _admitted(request, principal, "patient.read")
    status_view = patient_service.patient_status(uow(), principal.actor, patient_id)
    history = patient_service.patient_history(uow(), principal.actor, patient_id)
    header = patient_header(uow(), principal.actor, patient_id)
    series = timeline_series(status_view, history, request.app.state.clock.now())
    pathway = pathway_catalogue.pathway(status_view["pathway"]["key"])
    extra["notice"] = _confirmed(history, **extra.pop("done", {})) or extra.get("notice", "")
    refusal = extra.get("refusal")
    if refusal:
        refusal["why"] = pathway.explain(refusal["rules"])
        refusal["sources"] = [_source(pathway.sources, s) for s in refusal["sources"]]
    context = {
        "active": "patients",
        "patient": status_view,
        "header": header,
        "history": history,
        "labs": _lab_rows(pathway, history["labs"]),
        "orders": _order_rows(pathway, history["orders"]),
        "timeline": timeline_figure(series),
        "series": series,
        "drugs": sorted(header["dose_guide"]),
        "order_drug": _likely_drug(header),
        "events": pathway.events,
        "refusal": None,
        "order_error": "",
        "event_error": "",
        "entered": {},
        "notice": "",
        **extra,
    }
    return render(request, "patient.html", context, status)


def _confirmed(
    history: dict[str, Any], ordered: str | None = None, recorded: str | None = None
) -> str:
    """The notice after an order or a record, only if the patient's history holds it: the
    redirect's query names it, and a crafted link must not confirm what was not done."""
    if ordered and ordered in {order["drug"] for order in history["orders"]}:
        return f"Order placed: {ordered}."
    if recorded and recorded in {event["kind"] for event in history["events"]}:
        return f"Recorded: {recorded}."
    return ""


def _likely_drug(header: dict[str, Any]) -> str:
    """The drug the order form starts on: the state's expected drug, else today's first."""
    expected = next((d for d, g in header["dose_guide"].items() if g["prefill"]), None)
    current = header["regimen"][0]["drug"] if header["regimen"] else None
    return expected or current or next(iter(header["dose_guide"]), "")


def _source(sources: dict[str, dict[str, Any]], source_id: str) -> str:
    """`S1: Treatment of ... (2026)`: a source id with its title, as the pathway cites it."""
    found = sources.get(source_id, {})
    year = f" ({found['year']})" if found.get("year") else ""
    return f"{source_id}: {found['title']}{year}" if found.get("title") else source_id


def _lab_rows(pathway: Any, labs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lab history, newest first, each value to its lab's precision in the clinic's unit."""
    rows = []
    for lab in reversed(labs):
        definition = pathway.labs.get(lab["code"])
        value = lab["value"]
        if isinstance(value, int | float) and not isinstance(value, bool):
            precision = definition.precision if definition else None
            shown = show.quantity(value, lab["unit"], precision)
        else:
            shown = str(value)
        given, _, given_unit = lab["reported"].partition(" ")  # as the sender wrote it
        reported = f"{given} {show.unit_text(given_unit)}".strip()
        rows.append(
            {
                **lab,
                "shown": shown,
                "reported": reported,
                "name": definition.name if definition else "",
            }
        )
    return rows


def _order_rows(pathway: Any, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order history with each dose written to the drug's precision."""
    rows = []
    for order in orders:
        precision = pathway.drugs.get(order["drug"], {}).get("dose", {}).get("precision", 1)
        text = show.dose(order["mg_per_day"], "mg_per_day", precision)
        if order.get("given_as") == "mg_per_kg_day" and order["mg_per_kg_day"] is not None:
            text += f" ({show.dose(order['mg_per_kg_day'], 'mg_per_kg_day')})"
        rows.append({**order, "dose_text": text or "dose not recorded"})
    return rows


def _admitted(request: Request, principal: Principal, action: str) -> UnitOfWorkFactory:
    """Units of work that admit the caller to the patient they load, as in the API: a patient
    of another site is 'unknown' (the policy's answer), checked in the use case's transaction."""
    return partial(request.app.state.uow_factory, admission=Admission(principal, action))


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
