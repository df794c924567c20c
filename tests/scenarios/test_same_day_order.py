"""Decisions independent of arrival order: same-day inputs give the same result in any order.

A clinic's inputs for one day (a lab panel, an order, an event) reach the engine in whatever
order the lab feed, the clinician and the coordinator happen to send them. For patients at
several points of the pathway, every permutation of a few same-day inputs must give the same
state, the same open alerts and milestones (ids and due times), the same facts and active
orders, and accept or refuse the same inputs - or, where a safety rule refused an order in one
order of arrival, the other order holds that order with the rule's critical alert open.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from itertools import permutations
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from engine.domain.errors import DomainError, HardBlock
from tests.fixtures_domain import (
    Chart,
    covers,
    make_patient,
    normal_labs,
    on_standard_induction,
    screened,
    start_prednisolone,
    to_taper_10mg,
)

Input = tuple[str, tuple[Any, ...], dict[str, Any]]


def _screened() -> Chart:
    chart = make_patient()
    screened(chart)
    return chart


def _week_4_of_induction() -> Chart:
    chart = on_standard_induction()
    chart.advance(days=14)
    return chart


def _week_4_of_prednisolone_alone() -> Chart:
    chart = make_patient()
    screened(chart)
    start_prednisolone(chart)
    chart.advance(weeks=4)
    return chart


def _taper() -> Chart:
    chart = to_taper_10mg()
    chart.advance(days=10)
    return chart


def _second_line() -> Chart:
    chart = on_standard_induction()
    chart.event("intolerance", drug="prednisolone")
    return chart


def _maintenance_candidate() -> Chart:
    chart = to_taper_10mg()
    chart.advance(days=7)
    normal_labs(chart)
    return chart


STARTS: dict[str, Callable[[], Chart]] = {
    "screened": _screened,
    "week 4 of induction": _week_4_of_induction,
    "week 4 of prednisolone alone": _week_4_of_prednisolone_alone,
    "taper at 10 mg": _taper,
    "second-line assessment": _second_line,
    "taper, labs normal": _maintenance_candidate,
}

SAME_DAY_INPUTS: list[Input] = [
    # results at representative multiples of the upper limit of normal
    ("lab", ("ALT", 20), {}),
    ("lab", ("ALT", 60), {}),
    ("lab", ("ALT", 250), {}),
    ("lab", ("ALT", 500), {}),
    ("lab", ("AST", 25), {}),
    ("lab", ("AST", 250), {}),
    ("lab", ("IgG", 12), {}),
    ("lab", ("IgG", 25), {}),
    ("lab", ("BILI", 15), {}),
    ("lab", ("TPMT", 10), {}),
    ("lab", ("HBSAG", "positive"), {}),
    ("lab", ("ANTI_HBC", "positive"), {}),
    # clinical events
    ("event", ("pregnancy",), {}),
    ("event", ("cirrhosis_diagnosed",), {"method": "biopsy"}),
    ("event", ("severity_scores",), {"meld": 18}),
    ("event", ("weight_recorded",), {"weight_kg": 80}),
    ("event", ("intolerance",), {"drug": "azathioprine"}),
    ("event", ("hcc_diagnosed",), {}),
    # orders
    ("order", ("prednisolone",), {"mg_per_day": 30}),
    ("order", ("prednisolone",), {"mg_per_day": 10}),
    ("order", ("prednisolone",), {"mg_per_day": 7.5}),
    ("order", ("azathioprine",), {"mg_per_kg_day": 1.5}),
    ("order", ("budesonide",), {"mg_per_day": 9}),
    ("order", ("mmf",), {"mg_per_day": 1000}),
    ("order", ("tacrolimus",), {"mg_per_kg_day": 0.075}),
]


def _one_decision_per_draw(item: Input) -> str:
    """Results and fact-recording events arrive from many hands in any order; a clinician's
    decisions of one day (orders, a recorded intolerance) keep the sequence they were made in
    (a second order corrects the first, an intolerance answers the order before it). So a draw
    permutes at most one decision with any results and events, and one result per lab (two
    results of one lab at one moment are an amended result, not two inputs)."""
    if item[0] == "order" or item[1][0] == "intolerance":
        return "decision"
    return f"lab {item[1][0]}" if item[0] == "lab" else repr(item)


def apply(chart: Chart, item: Input) -> str | None:
    """Apply one input now; None when accepted, else why it was refused (a block id)."""
    kind, args, kw = item
    try:
        if kind == "lab":
            chart.lab(*args)
        elif kind == "event":
            chart.event(*args, **kw)
        else:
            chart.order(*args, **kw)
    except HardBlock as refused:
        return refused.block_id
    except DomainError as refused:
        return type(refused).__name__
    return None


def result_of(start: str, inputs: list[Input]) -> tuple[dict[str, Any], Chart]:
    chart = STARTS[start]()
    refused = {repr(item): apply(chart, item) for item in inputs}
    p = chart.patient
    result = {
        "refused": {item: why for item, why in refused.items() if why is not None},
        "state": p.state,
        "alerts": sorted(a.alert_id for a in p.open_alerts()),
        "milestones": sorted((m.milestone_id, m.due_at) for m in p.open_milestones()),
        "facts": sorted(p.facts.items(), key=str),
        "orders": sorted((o.drug, o.mg_per_day) for o in p.active_orders()),
    }
    return result, chart


def assert_same_or_equally_safe(
    one: tuple[dict[str, Any], Chart], other: tuple[dict[str, Any], Chart], inputs: list[Input]
) -> None:
    """Where both orders accepted the same inputs, everything matches. Where a safety rule
    refused an input in one order of arrival and the other accepted it, the other holds it
    with that rule's alert open, or the rule does not refuse it where the other order ended
    (a rule of an earlier stage): no order of arrival lets an input pass that the day's final
    situation would refuse, silently."""
    if one[0]["refused"] == other[0]["refused"]:
        assert one[0] == other[0]
        return
    by_repr = {repr(item): item for item in inputs}
    for (a, _), (b, b_chart) in ((one, other), (other, one)):
        for item, block in a["refused"].items():
            if item in b["refused"] or block in b["alerts"]:
                continue
            again = copy.deepcopy(b_chart)
            assert apply(again, by_repr[item]) != block, (item, block, b)


@covers("RSP-NONRESP", "TAP-4W", "SCR-TPMT", "SAFE-MMF-PREG", "SAFE-BUD-CIRRHOSIS", "TX-IND")
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    start=st.sampled_from(sorted(STARTS)),
    inputs=st.lists(
        st.sampled_from(SAME_DAY_INPUTS), min_size=2, max_size=3, unique_by=_one_decision_per_draw
    ),
)
def test_permuting_same_day_inputs_gives_the_same_state_alerts_and_milestones(start, inputs):
    results = {
        tuple(repr(i) for i in order): result_of(start, list(order))
        for order in permutations(inputs)
    }

    first = next(iter(results.values()))
    for order, result in results.items():
        note(f"{start}: first order gives {first[0]}; {order} gives {result[0]}")
        assert_same_or_equally_safe(first, result, inputs)


@covers("RSP-NONRESP", "TAP-4W")
def test_a_non_response_result_and_a_taper_order_on_the_same_day_lead_to_second_line():
    for order in permutations(
        [("lab", ("ALT", 300), {}), ("order", ("prednisolone",), {"mg_per_day": 10})]
    ):
        result, _ = result_of("week 4 of induction", list(order))

        assert result["state"] == "second_line.assessment", order
