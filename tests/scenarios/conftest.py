"""Scenario tests name the clinical rules they cover with ``@covers("RULE-ID", ...)``."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "covers(*rule_ids): clinical rule IDs of the spec this scenario covers"
    )
