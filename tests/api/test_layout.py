"""The layout of api/ (docs/architecture.md, "The office API"): routes for programs, web
pages for people, services for what both offer. Read from the source, so that a change that
breaks a rule fails here and says where."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

API = Path(__file__).resolve().parents[2] / "api"
SQL = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE)\b.*\b(FROM|INTO|SET|WHERE)\b|\bWITH\b\s+\w+\s+AS\b",
    re.S | re.IGNORECASE,
)
OWN_TABLES = {"users.py", "audit.py"}
"""The modules that keep SQL on the API's own tables (logins, the audit log)."""


def modules(folder: str) -> list[Path]:
    return sorted((API / folder).glob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in the file names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("routes", "api.web"),
        ("web", "api.routes"),
        ("services", "api.routes"),
        ("services", "api.web"),
    ],
)
def test_routes_pages_and_services_do_not_import_each_other(folder: str, forbidden: str) -> None:
    wrong = {
        f"{p.name}: {name}"
        for p in modules(folder)
        for name in imported(p)
        if name == forbidden or name.startswith(forbidden + ".")
    }
    assert wrong == set()


def test_no_domain_sql_in_the_web_layer() -> None:
    """Handlers and services call the packages' query modules; only the API's own tables
    (users.py, audit.py) have SQL in api/ (the reports are checked by their own tests)."""
    files = [*modules("routes"), *modules("web"), *modules("services"), *sorted(API.glob("*.py"))]
    with_sql = sorted(
        str(p.relative_to(API))
        for p in files
        if p.name not in OWN_TABLES
        and p.name != "reports.py"
        and any(
            isinstance(n, ast.Constant) and isinstance(n.value, str) and SQL.search(n.value)
            for n in ast.walk(ast.parse(p.read_text()))
        )
    )
    assert with_sql == []


def test_the_old_payments_package_is_gone() -> None:
    """Its modules moved by audience (routes, web, services); a new file there would bring
    the third layout back."""
    assert not list((API / "payments").glob("*.py"))
