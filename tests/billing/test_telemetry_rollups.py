"""Telemetry register readings feed the billing; consumption roll-ups add up."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest

from billing import consumption as cons
from billing.accounts import Address, create_account, install_meter
from billing.config import BillingConfig
from billing.demo import generate
from billing.run import RollupLevel, consumption_rollups, run_billing
from tests.billing.conftest import NOW

NOV = date(2026, 11, 1)


def test_telemetry_meter_and_rollups(db_url: str, cfg: BillingConfig) -> None:
    with psycopg.connect(db_url) as conn:
        info = generate(conn, 200, period=NOV, seed=11, tag="Tele")
        dev = conn.execute(
            "INSERT INTO devices (code, kind, profile) VALUES ('cm-1', 'customer_meter', 'x') "
            "RETURNING id"
        ).fetchone()
        assert dev is not None
        pt = conn.execute(
            "INSERT INTO points (device_id, name, unit, kind) VALUES (%s, 'volume', 'm3', "
            "'counter') RETURNING id",
            (dev[0],),
        ).fetchone()
        assert pt is not None
        acc, _ = create_account(
            conn,
            kind="household",
            name="Smart Meter",
            now=NOW,
            opened_on=date(2025, 1, 1),
            address=Address("Tele viloyati", "Tele tumani", "Aqlli MFY", "Raqam ko'chasi", "1"),
            zone_id=info.zone_ids[0],
        )
        install_meter(
            conn,
            acc,
            "TM-1",
            installed_at=datetime(2025, 1, 1, tzinfo=UTC),
            point_id=pt[0],
            zone_id=info.zone_ids[0],
        )
        # hourly register (local month = 31 Oct 19:00 UTC .. 30 Nov 19:00 UTC), 0.01 m³/h,
        # plus a comm-fail value that must be ignored
        start = datetime(2026, 10, 31, 19, tzinfo=UTC)
        rows = [(start + timedelta(hours=h), pt[0], 100.0 + 0.01 * h, 0) for h in range(721)]
        rows.append((start + timedelta(hours=5, minutes=30), pt[0], 99999.0, 2))
        with conn.cursor().copy("COPY readings (ts, point_id, value, quality) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)
        conn.commit()
        run_billing(conn, NOV, cfg, now=NOW)
        pc = conn.execute(
            "SELECT volume_m3, estimated_m3, flags, start_m3 FROM period_consumption "
            "WHERE account_id = %s",
            (acc,),
        ).fetchone()
        assert pc is not None
        assert pc[0] == pytest.approx(7.2) and pc[1] == 0.0 and pc[2] == 0
        assert pc[3] == pytest.approx(100.0)
        inv = conn.execute(
            "SELECT amount_tiyin FROM invoices WHERE account_id = %s", (acc,)
        ).fetchone()
        assert inv == (7_200 * 165,)
        _check_rollups(conn)


def _check_rollups(conn: psycopg.Connection[Any]) -> None:
    levels: tuple[RollupLevel, ...] = ("account", "street", "mahalla", "district", "zone")
    totals = {}
    for by in levels:
        rows = consumption_rollups(conn, NOV, by)
        totals[by] = (sum(r.volume_m3 for r in rows), sum(r.accounts for r in rows))
    metered = conn.execute(
        "SELECT sum(volume_m3), count(DISTINCT account_id) FROM period_consumption"
    ).fetchone()
    assert metered is not None
    for by, (vol, n) in totals.items():
        assert vol == pytest.approx(metered[0]), by
        assert n == metered[1], by
    view = dict(
        conn.execute(
            "SELECT zone_id, volume_m3 FROM billed_consumption_by_zone WHERE period = %s", (NOV,)
        ).fetchall()
    )
    for r in consumption_rollups(conn, NOV, "zone"):
        assert view[r.key] == pytest.approx(r.volume_m3)
    # the kernel roll-up equals a plain sum per group
    import numpy as np

    vals = np.arange(10, dtype=np.float64)
    assert list(cons.group_sum(vals, np.array([0, 1] * 5), 2)) == [20.0, 25.0]
