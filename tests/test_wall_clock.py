"""No test reads the wall clock: each one injects a clock, so the suite passes on any date.

A test that computed "now" from the real clock broke CI on 1 December 2026 (it billed
November with accounts that, by then, had been opened in December). This check fails on any
call of ``datetime.now()``, ``datetime.utcnow()``, ``datetime.today()``, ``date.today()``,
``time.time()`` or ``time.time_ns()`` in the tests; ``time.monotonic()`` (for timeouts) is
fine. The rare test that must talk to a process on the real clock says so on the line with
``# wall clock: <why>``.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent
FORBIDDEN = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
}


def wall_clock_calls(source: str) -> list[int]:
    """Line numbers of the wall-clock calls in ``source`` that carry no exemption."""
    lines = source.splitlines()
    found: list[int] = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
        if (name, node.func.attr) in FORBIDDEN and "# wall clock:" not in lines[node.lineno - 1]:
            found.append(node.lineno)
    return found


def test_the_check_finds_wall_clock_calls() -> None:
    src = (
        "import datetime, time\n"
        "a = datetime.datetime.now(UTC)\n"
        "b = date.today()\n"
        "c = time.time()\n"
        "d = time.monotonic()\n"
        "e = datetime.now()  # wall clock: talks to the real broker's clock\n"
        "f = clock.now\n"
    )
    assert wall_clock_calls(src) == [2, 3, 4]


def test_no_test_reads_the_wall_clock() -> None:
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line}"
        for path in sorted(TESTS.rglob("*.py"))
        for line in wall_clock_calls(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "inject a clock instead of reading the wall clock: " + ", ".join(
        offenders
    )
