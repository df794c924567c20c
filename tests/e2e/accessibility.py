"""Accessibility check for browser tests: axe-core run inside the page through Playwright.

`axe-playwright-python` bundles axe-core (axe.min.js), so the check needs no network. A page
fails on any violation axe rates serious or critical; the message lists each rule, its impact,
help text and the first few offending elements so the failure reads without a debugger.
"""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe

FAILING_IMPACTS = frozenset({"serious", "critical"})
NODES_SHOWN = 3

_axe = Axe()


def _describe(violation: dict[str, Any]) -> str:
    nodes = violation.get("nodes", [])
    targets = [" ".join(map(str, node.get("target", []))) for node in nodes[:NODES_SHOWN]]
    more = f" (+{len(nodes) - NODES_SHOWN} more)" if len(nodes) > NODES_SHOWN else ""
    return (
        f"- {violation['id']} [{violation.get('impact')}]: {violation.get('help', '')}\n"
        f"    elements: {'; '.join(targets)}{more}\n"
        f"    see: {violation.get('helpUrl', '')}"
    )


def serious_violations(page) -> list[dict[str, Any]]:
    """The serious and critical axe-core violations on the page as it is now."""
    results = _axe.run(page)
    violations = results.response.get("violations", [])
    return [v for v in violations if v.get("impact") in FAILING_IMPACTS]


def assert_accessible(page, *, context: str) -> None:
    """Fail when axe-core finds serious or critical violations on `page`.

    `context` names the page or state under test (e.g. "patient list, searched by name") so
    the failure says which screen broke.
    """
    found = serious_violations(page)
    if found:
        listing = "\n".join(_describe(v) for v in found)
        raise AssertionError(
            f"{len(found)} serious/critical accessibility violation(s) on {context} "
            f"({page.url}):\n{listing}"
        )
