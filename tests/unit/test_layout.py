"""The layout's one-way rule, read from the source: the engine imports no entry point (cli,
api, workers, lab_feed) nor the simulation that drives it, and SQLAlchemy stays out of the
services and the domain."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = {"cli", "api", "workers", "lab_feed", "simulation"}

#: Services that still import SQLAlchemy, relative to the repository root. The unit of work is
#: where the session lives; the others are on their way to engine/adapters/. Shrink-only: the
#: test fails when a listed file no longer imports it, so remove the entry with the import.
SQLALCHEMY_IN_SERVICES = {
    "engine/services/unit_of_work.py",  # the SQLAlchemy unit of work (session, commit, retry)
    "engine/services/idempotency.py",  # Session in a type hint only
}


def imported_packages(path: Path) -> set[str]:
    """The top-level package of every absolute import in a module, at any depth (including
    imports inside functions and `if TYPE_CHECKING:` blocks)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def modules_under(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_the_engine_imports_no_entry_point():
    offenders = {
        relative(path): sorted(imported_packages(path) & ENTRY_POINTS)
        for path in modules_under("engine")
        if imported_packages(path) & ENTRY_POINTS
    }
    assert offenders == {}


def test_the_domain_and_services_import_no_sqlalchemy_outside_the_allow_list():
    importing = {
        relative(path)
        for folder in ("engine/domain", "engine/services")
        for path in modules_under(folder)
        if "sqlalchemy" in imported_packages(path)
    }
    assert importing - SQLALCHEMY_IN_SERVICES == set(), "new SQL belongs in engine/adapters/"
    assert SQLALCHEMY_IN_SERVICES - importing == set(), (
        "these no longer import sqlalchemy: remove them from SQLALCHEMY_IN_SERVICES"
    )


def test_the_import_reader_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "sample.py"
    module.write_text(
        "import os.path\nfrom . import sibling\n"
        "def late():\n    from api.main import app\n    return app\n"
    )
    assert imported_packages(module) == {"os", "api"}
