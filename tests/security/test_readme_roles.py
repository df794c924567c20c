"""The README's role table is the access policy's table: generated here from `POLICY` and the
routes that ask for each action, and compared with the README between its markers. When the
policy or a route changes, the failure prints the table to paste.
"""

from __future__ import annotations

from pathlib import Path

from engine.services.access_policy import POLICY, ROLES
from tests.security.test_policy_matrix import PAGES, ROUTES

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = (
    "<!-- role-table: generated from engine/services/access_policy.py -->",
    "<!-- /role-table -->",
)


def role_table() -> str:
    """The Markdown table: each action, who may take it, and where it is offered."""
    lines = ["| action | who | native API | FHIR | pages |", "|---|---|---|---|---|"]
    for action, rule in POLICY.items():
        who = ", ".join(role for role in ROLES if role in rule.roles)
        api = _routes(action, lambda path: not path.startswith(("/fhir", "/ui")))
        fhir = _routes(action, lambda path: path.startswith("/fhir"))
        pages = sorted({f"`{m} {p}`" for m, p, a in PAGES if a == action})
        lines.append(f"| `{action}`: {rule.what} | {who} | {api} | {fhir} | {', '.join(pages)} |")
    return "\n".join(lines)


def _routes(action: str, where) -> str:
    return ", ".join(sorted({f"`{m} {p}`" for m, p, a in ROUTES if a == action and where(p)}))


def test_the_readme_role_table_is_the_policy():
    text = README.read_text()
    assert START in text and END in text, "the README lost its role-table markers"
    shown = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert shown == role_table(), "paste this table into README.md:\n" + role_table()
