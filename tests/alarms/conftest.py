"""Fixtures for the alarm tests: a small registry in a real migrated database."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Site:
    zone_id: int
    device_id: int
    pressure_point: int
    flags_point: int


def make_site(db: psycopg.Connection[Any], tag: str, *, min_bar: float = 1.5) -> Site:
    z = db.execute(
        "INSERT INTO zones (code, name, min_service_pressure_bar) VALUES (%s, %s, %s) RETURNING id",
        (f"Z{tag}", f"zone {tag}", min_bar),
    ).fetchone()
    assert z is not None
    g = db.execute(
        "INSERT INTO gateways (code, zone_id) VALUES (%s, %s) RETURNING id", (f"gw{tag}", z[0])
    ).fetchone()
    assert g is not None
    d = db.execute(
        "INSERT INTO devices (code, gateway_id, kind, profile, zone_id) "
        "VALUES (%s, %s, 'pressure_sensor', 'generic', %s) RETURNING id",
        (f"PS{tag}", g[0], z[0]),
    ).fetchone()
    assert d is not None
    p = db.execute(
        "INSERT INTO points (device_id, name, unit) VALUES (%s, 'pressure', 'bar') RETURNING id",
        (d[0],),
    ).fetchone()
    f = db.execute(
        "INSERT INTO points (device_id, name, kind) VALUES (%s, 'flags', 'bitfield') RETURNING id",
        (d[0],),
    ).fetchone()
    assert p is not None and f is not None
    return Site(int(z[0]), int(d[0]), int(p[0]), int(f[0]))


def add_rule(db: psycopg.Connection[Any], code: str, kind: str, **kw: Any) -> int:
    cols = ["code", "kind", *kw]
    vals = [code, kind] + [json.dumps(v) if k == "params" else v for k, v in kw.items()]
    row = db.execute(
        f"INSERT INTO alarm_rules ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
        "RETURNING id",
        vals,
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_readings(
    db: psycopg.Connection[Any], point_id: int, rows: Iterable[tuple[datetime, float | None, int]]
) -> None:
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (ts, point_id, value, quality) VALUES (%s, %s, %s, %s)",
            [(ts, point_id, v, q) for ts, v, q in rows],
        )


def one(db: psycopg.Connection[Any], sql: str, args: Any = ()) -> tuple[Any, ...]:
    """The single row a query must return."""
    row = db.execute(sql, args).fetchone()
    assert row is not None, sql
    return tuple(row)


@pytest.fixture
def site_factory(db: psycopg.Connection[Any]) -> Any:
    counter = {"n": 0}

    def make(**kw: Any) -> Site:
        import uuid

        counter["n"] += 1
        return make_site(db, uuid.uuid4().hex[:8], **kw)

    return make
