"""Meta-test: every rule ID of the clinical spec is named by at least one scenario test."""

from __future__ import annotations

import importlib
import pkgutil

import tests.scenarios as scenarios
from tests.fixtures_domain import COVERAGE, spec_rule_ids


def _load_all_scenarios() -> None:
    """Import every scenario module so the `covers` registry is complete under -k too."""
    for module in pkgutil.iter_modules(scenarios.__path__):
        if module.name.startswith("test_"):
            importlib.import_module(f"{scenarios.__name__}.{module.name}")


def test_the_spec_has_the_42_rule_ids():
    ids = spec_rule_ids()

    assert len(ids) == len(set(ids)) == 42
    assert {"SCR-TPMT", "TAP-7.5", "LT-RELAPSE-RISK"} <= set(ids)


def test_every_spec_rule_is_covered_by_a_scenario_test():
    _load_all_scenarios()

    missing = [rule for rule in spec_rule_ids() if not COVERAGE.get(rule)]

    assert missing == [], f"rules without a scenario test: {missing}"


def test_scenarios_only_cite_rules_that_exist():
    _load_all_scenarios()

    unknown = sorted(set(COVERAGE) - set(spec_rule_ids()))

    assert unknown == [], f"scenario tests cite unknown rules: {unknown}"
