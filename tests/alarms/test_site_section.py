"""The ``alarms:`` section of a site file, applied by ``suvnet site apply`` through the
``suvnet.site_sections`` entry point, in the same transaction as the rest of the file."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from suvnet.errors import FileFormatError
from suvnet.network import ChangeLog
from suvnet.site import apply_site, load_site
from tests.conftest import create_test_db, drop_test_db, with_dbname

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"

EXTRA = """
    - code: pt-s6-low
      kind: low
      point: pt-s6/pressure_bar
      unit: bar
      limit: 1.5
      deadband: 0.1
      on_delay_s: 300
      position: south-desk
    - code: DMA-S-mnf
      kind: mnf
      zone: DMA-S
      params: {min_history_days: 3}
  positions:
    - {code: south-desk, name: South dispatcher desk}
"""


@pytest.fixture
def fresh_db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    name = create_test_db(pg_server_url, template_db)
    try:
        yield with_dbname(pg_server_url, name)
    finally:
        drop_test_db(pg_server_url, name)


@pytest.fixture
def site_path(tmp_path: Path) -> Path:
    """A copy of the shipped example with two more rules and an operator position."""
    text = (EXAMPLES / "village-site.yaml").read_text(encoding="utf-8")
    assert text.rstrip().endswith("priority: high")
    (tmp_path / "site.yaml").write_text(text.rstrip("\n") + "\n" + EXTRA.lstrip("\n"))
    shutil.copy(EXAMPLES / "village.inp", tmp_path / "village.inp")
    return tmp_path / "site.yaml"


def _apply(url: str, path: Path, *, dry_run: bool = False) -> ChangeLog:
    with psycopg.connect(url) as conn:
        return apply_site(conn, load_site(path), dry_run=dry_run)


def _rules(url: str) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT r.code, r.kind, r.limit_value, r.deadband, r.on_delay_s, r.priority, "
            "d.code || '/' || p.name, z.code, ap.code, r.params, r.enabled, r.xmin::text "
            "FROM alarm_rules r LEFT JOIN points p ON p.id = r.point_id "
            "LEFT JOIN devices d ON d.id = p.device_id LEFT JOIN zones z ON z.id = r.zone_id "
            "JOIN alarm_positions ap ON ap.id = r.position_id ORDER BY r.code"
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def _line(path: Path, text: str) -> int:
    return next(i for i, t in enumerate(path.read_text().splitlines(), 1) if text in t)


def test_site_apply_creates_rules_and_second_apply_changes_nothing(
    fresh_db_url: str, site_path: Path
) -> None:
    log = _apply(fresh_db_url, site_path)
    assert sorted(log.names("alarm rules", "created")) == [
        "DMA-S-mnf",
        "dm-south-tamper",
        "prv-1-outlet-hh",
        "pt-s6-low",
    ]
    assert log.names("alarm positions", "created") == ["south-desk"]
    rules = _rules(fresh_db_url)
    assert rules["pt-s6-low"][:9] == (
        "low",
        1.5,
        0.1,
        300.0,
        "medium",
        "pt-s6/pressure_bar",
        None,
        "south-desk",
        {},
    )
    assert rules["DMA-S-mnf"][6] == "DMA-S" and rules["DMA-S-mnf"][8] == {"min_history_days": 3}
    assert rules["dm-south-tamper"][:2] == ("meter_flags", None)
    assert rules["prv-1-outlet-hh"][4] == "urgent"
    # the alarm worker accepts every stored rule
    from alarms.store import load_rules

    with psycopg.connect(fresh_db_url) as conn:
        assert sorted(r.code for r in load_rules(conn)) == sorted(rules)

    again = _apply(fresh_db_url, site_path)
    assert not again.changed
    assert len(again.names("alarm rules", "unchanged")) == 4
    assert again.names("alarm positions", "unchanged") == ["south-desk"]
    assert _rules(fresh_db_url) == rules  # same xmin: not even rewritten

    # one changed limit updates exactly that rule
    text = site_path.read_text().replace("limit: 1.5", "limit: 1.8")
    site_path.write_text(text)
    third = _apply(fresh_db_url, site_path)
    assert third.names("alarm rules", "updated") == ["pt-s6-low"]
    after = _rules(fresh_db_url)
    assert after["pt-s6-low"][1] == 1.8
    assert {k: v for k, v in after.items() if k != "pt-s6-low"} == {
        k: v for k, v in rules.items() if k != "pt-s6-low"
    }


def test_dry_run_reports_rules_and_writes_nothing(fresh_db_url: str, site_path: Path) -> None:
    log = _apply(fresh_db_url, site_path, dry_run=True)
    assert len(log.names("alarm rules", "created")) == 4
    assert _rules(fresh_db_url) == {}


@pytest.mark.parametrize(
    ("old", "new", "field", "words"),
    [
        ("      limit: 1.5\n", "", "alarms.rules[2].limit", "needs a limit"),
        ("point: pt-s6/pressure_bar", "point: pt-s6/nope", "alarms.rules[2].point", "no point"),
        ("      deadband: 0.1", "      deadbnad: 0.1", "alarms.rules[2].deadbnad", "unknown key"),
        (
            "      zone: DMA-S\n      params",
            "      zone: DMA-X\n      params",
            "alarms.rules[3].zone",
            "no zone",
        ),
        ("      kind: mnf", "      kind: mfn", "alarms.rules[3].kind", "Input should be"),
        ("position: south-desk", "position: west", "alarms.rules[2].position", "no operator"),
    ],
)
def test_bad_rule_names_file_line_field_and_nothing_is_applied(
    fresh_db_url: str, site_path: Path, old: str, new: str, field: str, words: str
) -> None:
    text = site_path.read_text()
    assert text.count(old) == 1
    site_path.write_text(text.replace(old, new))
    site = load_site(site_path)  # the section is checked inside the transaction
    with psycopg.connect(fresh_db_url) as conn, pytest.raises(FileFormatError) as info:
        apply_site(conn, site)
    err = info.value
    assert err.path == str(site_path)
    assert err.field == field
    assert words in err.message
    key = field.rsplit(".", 1)[1]
    start = _line(site_path, "code: pt-s6-low" if "[2]" in field else "code: DMA-S-mnf")
    if key == "limit":
        assert err.line == start  # a missing key: the line of the rule
    else:
        assert err.line is not None and err.line > start
        assert key in site_path.read_text().splitlines()[err.line - 1]
    with psycopg.connect(fresh_db_url) as conn:
        # nothing of the file was written: no rules, no devices, no zones
        assert conn.execute("SELECT count(*) FROM alarm_rules").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM devices").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM zones").fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM alarm_positions WHERE code = 'south-desk'"
        ).fetchone() == (0,)


def test_duplicate_rule_code_is_refused(fresh_db_url: str, site_path: Path) -> None:
    text = site_path.read_text().replace("code: DMA-S-mnf", "code: pt-s6-low")
    site_path.write_text(text)
    with psycopg.connect(fresh_db_url) as conn, pytest.raises(FileFormatError) as info:
        apply_site(conn, load_site(site_path))
    assert info.value.field == "alarms.rules[3].code"
    assert "appears twice (first at alarms.rules[2].code)" in info.value.message
    assert info.value.line == _line(site_path, "code: pt-s6-low") + 8


def test_unknown_section_is_refused_before_anything(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("site: Test\nalarm:\n  rules: []\n")
    with pytest.raises(FileFormatError) as info:
        load_site(path)
    assert info.value.field == "alarm" and info.value.line == 2
    assert "unknown section 'alarm'" in info.value.message


def test_empty_section_is_accepted(fresh_db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("site: Test\nzones:\n  - {code: Z1}\nalarms:\n")
    log = _apply(fresh_db_url, path)
    assert log.names("zones", "created") == ["Z1"]
    assert _rules(fresh_db_url) == {}
