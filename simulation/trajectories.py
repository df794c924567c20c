"""The clinical trajectories a synthetic patient can follow, how often, and where each may end.

Names only and their mix: the scripted courses themselves are in `simulation.plans`.
"""

from __future__ import annotations

from collections.abc import Iterable

TRAJECTORIES: dict[str, str] = {
    "responder": "standard induction, taper 30->10->7.5->5 mg, maintenance; some withdrawn",
    "non_responder": "ALT falls < 50% at 4 weeks -> second line -> MMF (-> tacrolimus)",
    "insufficient_response": "ALT normal, IgG not by 6 months -> review sweep -> second line",
    "partial_response": "ALT just above ULN on treatment (partial-response alert) -> second line",
    "intolerance": "azathioprine intolerance -> second line -> MMF",
    "acute_severe_responding": "IV methylprednisolone; bilirubin improving at day 14 -> induction",
    "acute_severe_failing": "IV methylprednisolone; bilirubin not improving -> transplant",
    "pregnancy": "pregnant on induction; MMF refused (SAFE-MMF-PREG) -> tacrolimus",
    "decompensation": "ascites etc.: severe inflammation -> steroid trial, else transplant eval.",
    "relapse_after_stop": "withdrawn after 2 years' response, ALT rises -> relapse -> re-induction",
    "budesonide": "non-cirrhotic, high steroid risk: budesonide + azathioprine",
    "child": "under 18: paediatric induction, taper; some treatment failures",
    "cirrhosis_budesonide": "cirrhosis: budesonide refused (SAFE-BUD-CIRRHOSIS) -> prednisolone",
}

DEFAULT_WEIGHTS: dict[str, float] = {
    "responder": 0.36,
    "non_responder": 0.06,
    "insufficient_response": 0.06,
    "partial_response": 0.05,
    "intolerance": 0.06,
    "acute_severe_responding": 0.04,
    "acute_severe_failing": 0.03,
    "pregnancy": 0.03,
    "decompensation": 0.05,
    "relapse_after_stop": 0.07,
    "budesonide": 0.07,
    "child": 0.07,
    "cirrhosis_budesonide": 0.05,
}

# Where a trajectory may end once its plan has played out (stage or full state names).
EXPECTED_FINAL: dict[str, tuple[str, ...]] = {
    "responder": ("taper", "maintenance", "withdrawn"),
    "non_responder": ("second_line", "maintenance"),
    "insufficient_response": ("second_line", "maintenance"),
    "partial_response": ("second_line", "maintenance"),
    "intolerance": ("second_line", "maintenance"),
    "acute_severe_responding": ("induction", "taper", "maintenance"),
    "acute_severe_failing": ("transplant_evaluation", "transplanted"),
    "pregnancy": ("second_line", "maintenance"),
    "decompensation": (
        "induction",
        "taper",
        "maintenance",
        "second_line",
        "transplant_evaluation",
        "transplanted",
    ),
    "relapse_after_stop": ("induction", "taper", "maintenance"),
    "budesonide": ("induction.budesonide", "maintenance"),
    "child": ("taper", "maintenance", "second_line"),
    "cirrhosis_budesonide": ("taper", "maintenance"),
}


def in_family(state: str, family: Iterable[str]) -> bool:
    """True when `state` is one of `family` or a sub-state of one."""
    return any(state == f or state.startswith(f + ".") for f in family)
