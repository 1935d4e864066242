"""A small village in the database, with telemetry shaped so that every panel has rows.

The numbers are chosen so that the tests can check results by hand:

* PS1 (zone Z1, bar, placed at its node J1) reads 3.0 raw, 3.5 in readings_5m, 4.0 in
  readings_1h and 4.5 in readings_1d; so a panel shows which table it read.
* PS2 (zone Z2, kPa, placed by its own coordinates) reads 150 kPa raw: 1.5 bar, below Z2's
  2.0 bar service minimum.
* DM1 (inflow into Z1, m³/h): 10 m³/h in the local night hours 02-04, 40 otherwise;
  DM2 (outflow, flow_sign -1, L/s): 1 L/s = 3.6 m³/h always.
  Minimum night flow of Z1 = (10 - 3.6) / 3.6 L/s.
* Daily: DM1 averages 37.5 m³/h (900 m³), DM2 1 L/s (86.4 m³) out; customer meters CM1 and
  CM2 register 100 and 200 m³ a day. Z1's daily losses = 900 - 86.4 - 300 = 513.6 m³.
* PRV1 (a PRV controller on GW1, not yet placed in a zone, so the zone pressure panels leave
  it out and the device lists show it under every zone) holds 3.2 bar from 5.5 bar; its
  controller regulates on a critical point of 2.3 bar (the hourly buckets' lowest 2.1) with
  a target of 2.3, mode 4 (critical point), reason 4 (stepping), auto.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

TO = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
"""End of every time range in the tests (the clock of the test)."""

DAYS = 40
LOCAL = ZoneInfo("Asia/Tashkent")
PS1_BY_TABLE = {"readings": 3.0, "readings_5m": 3.5, "readings_1h": 4.0, "readings_1d": 4.5}
PS2_KPA_BY_TABLE = {
    "readings": 150.0,
    "readings_5m": 155.0,
    "readings_1h": 160.0,
    "readings_1d": 165.0,
}
Z1_MNF_LPS = (10 - 3.6) / 3.6
Z1_INFLOW_DAY_M3 = 37.5 * 24 - 3.6 * 24
Z1_CONSUMPTION_DAY_M3 = 300.0
Z1_NRW_PCT = 100 * (Z1_INFLOW_DAY_M3 - Z1_CONSUMPTION_DAY_M3) / Z1_INFLOW_DAY_M3


PRV1_POINTS: dict[str, tuple[str, str, float]] = {
    "setpoint_bar": ("bar", "setpoint", 3.2),
    "inlet_bar": ("bar", "analog", 5.5),
    "outlet_bar": ("bar", "analog", 3.2),
    "ctl_cp_bar": ("bar", "analog", 2.3),
    "ctl_target_bar": ("bar", "setpoint", 2.3),
    "ctl_setpoint_bar": ("bar", "setpoint", 3.2),
    "ctl_reason": ("", "status", 4.0),
    "ctl_mode": ("", "status", 4.0),
    "ctl_auto": ("", "status", 1.0),
}
"""PRV1's points: unit, kind and the value every reading and bucket has (ctl_cp_bar's
buckets have the lower minimum PRV1_CP_MIN)."""
PRV1_CP_MIN = 2.1
_DEVICE_REASON = {"online": "data received", "offline": "no good data for 180 s (3 x poll period)"}
"""The reasons ingest writes when a device goes online or offline (ingest/store.py)."""


def _ids(conn: psycopg.Connection[Any], sql: str, rows: list[tuple[Any, ...]]) -> list[int]:
    out = []
    for r in rows:
        row = conn.execute(sql, r).fetchone()
        assert row is not None
        out.append(int(row[0]))
    return out


def table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def seed(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Insert the village; returns point ids by name (``PS1.pressure`` ...)."""
    z1, z2 = _ids(
        conn,
        "INSERT INTO zones (code, name, min_service_pressure_bar, max_service_pressure_bar)"
        " VALUES (%s, %s, 2.0, 6.0) RETURNING id",
        [("Z1", "Qishloq markazi"), ("Z2", "Tepalik")],
    )
    (net,) = _ids(
        conn,
        "INSERT INTO networks (code, name, crs) VALUES (%s, %s, %s) RETURNING id",
        [("village", "Village", "EPSG:4326")],
    )
    (local_net,) = _ids(
        conn,
        "INSERT INTO networks (code, name, crs) VALUES (%s, %s, %s) RETURNING id",
        [("drawing", "Imported drawing", "local")],
    )
    j1, j2, _r1, _j3, _far = _ids(
        conn,
        "INSERT INTO nodes (code, kind, zone_id, x, y, elevation_m, network_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        [
            ("J1", "junction", z1, 64.500, 41.300, 210.0, net),
            ("J2", "junction", z1, 64.502, 41.301, 212.0, net),
            ("R1", "reservoir", z1, 64.498, 41.302, 240.0, net),
            ("J3", "junction", z2, 64.510, 41.310, 230.0, net),
            ("X9", "junction", z2, 1200.0, 3400.0, 0.0, local_net),  # planar: never on the map
        ],
    )
    conn.execute(
        "INSERT INTO pipes (code, from_node_id, to_node_id, diameter_mm, length_m, geometry,"
        " network_id) VALUES ('P1', %s, %s, 110, 170, %s, %s)",
        (
            j1,
            j2,
            json.dumps(
                {
                    "type": "LineString",
                    "coordinates": [[64.5, 41.3], [64.501, 41.3005], [64.502, 41.301]],
                }
            ),
            net,
        ),
    )
    conn.execute(
        "INSERT INTO pipes (code, from_node_id, to_node_id, diameter_mm, network_id)"
        " VALUES ('P2', %s, %s, 90, %s)",
        (j2, _r1, net),
    )
    gw1, gw2 = _ids(
        conn,
        "INSERT INTO gateways (code, name, zone_id) VALUES (%s, %s, %s) RETURNING id",
        [("GW1", "Markaz", z1), ("GW2", "Tepalik", z2)],
    )
    conn.execute(
        "INSERT INTO gateway_state (gateway_id, state, since, last_seen, boot, health) VALUES"
        " (%s, 'online', %s, %s, 'b1', %s), (%s, 'offline', %s, %s, 'b7', %s)",
        (
            gw1,
            TO - timedelta(days=2),
            TO - timedelta(seconds=30),
            json.dumps({"outbox_depth": 12, "dropped": 0, "poll_success": 0.98}),
            gw2,
            TO - timedelta(hours=3),
            TO - timedelta(hours=3),
            json.dumps({"queue_depth": 5, "dropped": 2}),
        ),
    )
    conn.execute(
        "INSERT INTO gateway_state_history (gateway_id, ts, state, reason) VALUES"
        " (%s, %s, 'offline', 'last will / offline message'), (%s, %s, 'online', 'birth')",
        (gw2, TO - timedelta(hours=3), gw1, TO - timedelta(days=2)),
    )
    devices = [
        # code, gateway, kind, node, zone, flow_sign, x, y
        ("PS1", gw1, "pressure_sensor", j1, z1, 1, None, None),
        ("PS2", gw2, "pressure_sensor", None, z2, 1, 64.511, 41.311),
        ("DM1", gw1, "district_meter", j2, z1, 1, None, None),
        ("DM2", gw1, "district_meter", j2, z1, -1, None, None),
        ("CM1", gw1, "customer_meter", j2, z1, 1, None, None),
        ("CM2", gw1, "customer_meter", j2, z1, 1, None, None),
        ("PRV1", gw1, "prv_controller", None, None, 1, None, None),
    ]
    dev_ids = _ids(
        conn,
        "INSERT INTO devices (code, gateway_id, kind, profile, node_id, zone_id, flow_sign, x, y)"
        " VALUES (%s, %s, %s, 'test', %s, %s, %s, %s, %s) RETURNING id",
        devices,
    )
    dev = dict(zip([d[0] for d in devices], dev_ids, strict=True))
    for code, state in [("PS1", "online"), ("PS2", "offline"), ("DM1", "online")]:
        conn.execute(
            "INSERT INTO device_state (device_id, state, since, last_seen, last_error)"
            " VALUES (%s, %s, %s, %s, %s)",
            (
                dev[code],
                state,
                TO - timedelta(hours=3),
                TO - timedelta(minutes=1),
                None if state == "online" else "timeout",
            ),
        )
        conn.execute(
            "INSERT INTO device_state_history (device_id, ts, state, reason)"
            " VALUES (%s, %s, %s, %s)",
            (dev[code], TO - timedelta(hours=3), state, _DEVICE_REASON[state]),
        )
    points = [
        ("PS1", "pressure", "bar", "analog"),
        ("PS2", "pressure", "kPa", "analog"),
        ("DM1", "flow", "m3/h", "analog"),
        ("DM2", "flow", "L/s", "analog"),
        ("CM1", "volume", "m3", "counter"),
        ("CM2", "volume", "m3", "counter"),
        *((("PRV1", name, unit, kind) for name, (unit, kind, _) in PRV1_POINTS.items())),
    ]
    pid = dict(
        zip(
            [f"{d}.{n}" for d, n, _, _ in points],
            _ids(
                conn,
                "INSERT INTO points (device_id, name, unit, kind) VALUES (%s, %s, %s, %s)"
                " RETURNING id",
                [(dev[d], n, u, k) for d, n, u, k in points],
            ),
            strict=True,
        )
    )
    _seed_readings(conn, pid)
    conn.execute(
        "INSERT INTO dead_letters (received_at, topic, payload, reason, gateway) VALUES"
        " (%s, 'suvnet/v1/GWX/telemetry', '\\x00', 'unknown_gateway', 'GWX'),"
        " (%s, 'suvnet/v1/GW1/telemetry', '\\x7b7d', 'bad_field', 'GW1')",
        (TO - timedelta(minutes=30), TO - timedelta(hours=2)),
    )
    if table_exists(conn, "alarms") and table_exists(conn, "alarm_rules"):
        _seed_alarms(conn, pid, dev, z1, z2)
    if table_exists(conn, "zone_leak_daily"):
        conn.cursor().executemany(
            "INSERT INTO zone_leak_daily (zone_id, day, inflow_m3, consumption_m3, losses_m3,"
            " nrw_pct, mnf_lps, mnf_baseline_lps, mnf_allowance_lps)"
            " VALUES (%s, %s, 813.6, 300, 513.6, 63.1, 1.78, 1.2, 0.3)",
            [(z1, (TO - timedelta(days=k)).date()) for k in range(1, 11)],
        )
    if table_exists(conn, "ledger") and table_exists(conn, "accounts"):
        _seed_billing(conn, z1)
    return pid


def _seed_readings(conn: psycopg.Connection[Any], pid: dict[str, int]) -> None:
    ps1, ps2 = pid["PS1.pressure"], pid["PS2.pressure"]
    dm1, dm2 = pid["DM1.flow"], pid["DM2.flow"]
    raw: list[tuple[Any, ...]] = []
    for m in range(1, 181):  # 3 hours, one a minute, up to TO
        ts = TO - timedelta(minutes=180 - m)
        q = 2 if m % 30 == 0 else 0  # a comm-fail now and then
        raw += [
            (ts, ps1, PS1_BY_TABLE["readings"], q),
            (ts, ps2, PS2_KPA_BY_TABLE["readings"], 0),
            (ts, dm1, 40.0, 0),
            (ts, dm2, 1.0, 0),
        ]
    prv = [(pid[f"PRV1.{name}"], v) for name, (_, _, v) in PRV1_POINTS.items()]
    for m in range(5, 181, 5):  # the controller decides every 5 minutes
        raw += [(TO - timedelta(minutes=180 - m), p, v, 0) for p, v in prv]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (ts, point_id, value, quality) VALUES (%s, %s, %s, %s)", raw
        )
    rollups: dict[str, list[tuple[Any, ...]]] = {
        "readings_5m": [],
        "readings_1h": [],
        "readings_1d": [],
    }
    for k in range(1, 3 * 24 * 12 + 1):
        b = TO - timedelta(minutes=5 * k)
        for p, v in (
            (ps1, PS1_BY_TABLE["readings_5m"]),
            (ps2, PS2_KPA_BY_TABLE["readings_5m"]),
            (dm1, 40.0),
            (dm2, 1.0),
        ):
            rollups["readings_5m"].append((p, b, v, v, v * 5, 5, v, b))
    for k in range(1, DAYS * 24 + 1):
        b = TO - timedelta(hours=k)
        night = 2 <= b.astimezone(LOCAL).hour < 4
        for p, v in (
            (ps1, PS1_BY_TABLE["readings_1h"]),
            (ps2, PS2_KPA_BY_TABLE["readings_1h"]),
            (dm1, 10.0 if night else 40.0),
            (dm2, 1.0),
        ):
            rollups["readings_1h"].append((p, b, v, v, v * 60, 60, v, b))
    day0 = TO.replace(hour=0)
    for k in range(DAYS + 1):
        b = day0 - timedelta(days=k)
        i = DAYS - k
        for p, v in (
            (ps1, PS1_BY_TABLE["readings_1d"]),
            (ps2, PS2_KPA_BY_TABLE["readings_1d"]),
            (dm1, 37.5),
            (dm2, 1.0),
            (pid["CM1.volume"], 1000.0 + 100 * i),
            (pid["CM2.volume"], 5000.0 + 200 * i),
        ):
            rollups["readings_1d"].append((p, b, v, v, v * 24, 24, v, b))
    cp = pid["PRV1.ctl_cp_bar"]
    for table, rows in rollups.items():
        step = {"readings_5m": timedelta(minutes=5), "readings_1h": timedelta(hours=1)}.get(
            table, timedelta(days=1)
        )
        buckets = sorted({r[1] for r in rows if r[0] == ps1})
        for b in buckets:
            n = int(step / timedelta(minutes=5))
            for p, v in prv:
                low = PRV1_CP_MIN if p == cp else v
                rows.append((p, b, low, v, v * n, n, v, b))
    with conn.cursor() as cur:
        for table, rows in rollups.items():
            cur.executemany(
                f"INSERT INTO {table} (point_id, bucket, min, max, sum, count, last, last_ts)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )


def _seed_alarms(
    conn: psycopg.Connection[Any], pid: dict[str, int], dev: dict[str, int], z1: int, z2: int
) -> None:
    low, mnf, flood = _ids(
        conn,
        "INSERT INTO alarm_rules (code, kind, point_id, zone_id, priority, limit_value)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        [
            ("PS2-low", "low", pid["PS2.pressure"], None, "high", 2.0),
            ("Z1-mnf", "mnf", None, z1, "medium", None),
            ("flood-default", "flood", None, None, "urgent", None),
        ],
    )
    rows = [
        # rule, kind, priority, zone, point, device, state, raised, cleared, acked, closed, chat
        (
            low,
            "low",
            "high",
            z2,
            pid["PS2.pressure"],
            dev["PS2"],
            "unack",
            TO - timedelta(hours=1),
            None,
            None,
            None,
            False,
        ),
        (
            low,
            "low",
            "high",
            z2,
            pid["PS2.pressure"],
            dev["PS2"],
            "normal",
            TO - timedelta(days=3),
            TO - timedelta(days=3) + timedelta(minutes=5),
            TO - timedelta(days=3) + timedelta(minutes=2),
            TO - timedelta(days=3) + timedelta(minutes=5),
            True,
        ),
        (
            mnf,
            "mnf",
            "medium",
            z1,
            None,
            None,
            "ack",
            TO - timedelta(days=2),
            None,
            TO - timedelta(days=2) + timedelta(minutes=10),
            None,
            False,
        ),
        (
            flood,
            "flood",
            "urgent",
            None,
            None,
            None,
            "normal",
            TO - timedelta(hours=5),
            TO - timedelta(hours=4, minutes=30),
            None,
            TO - timedelta(hours=4, minutes=30),
            False,
        ),
    ]
    ids = _ids(
        conn,
        "INSERT INTO alarms (rule_id, kind, priority, position_id, zone_id, point_id, device_id,"
        " state, raised_at, cleared_at, acked_at, closed_at, chattering, message)"
        " VALUES (%s, %s, %s, 1, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'test alarm') RETURNING id",
        rows,
    )
    conn.execute(
        "INSERT INTO alarm_events (alarm_id, rule_id, ts, event, from_state, to_state)"
        " VALUES (%s, %s, %s, 'activate', 'normal', 'unack')",
        (ids[0], low, TO - timedelta(hours=1)),
    )


def _seed_billing(conn: psycopg.Connection[Any], z1: int) -> None:
    (region,) = _ids(conn, "INSERT INTO regions (name_uz) VALUES ('Samarqand') RETURNING id", [()])
    (district,) = _ids(
        conn,
        "INSERT INTO districts (region_id, name_uz) VALUES (%s, 'Urgut') RETURNING id",
        [(region,)],
    )
    m1, m2 = _ids(
        conn,
        "INSERT INTO mahallas (district_id, name_uz) VALUES (%s, %s) RETURNING id",
        [(district, "Navbahor"), (district, "Bog'ishamol")],
    )
    s1, s2 = _ids(
        conn,
        "INSERT INTO streets (mahalla_id, name_uz) VALUES (%s, %s) RETURNING id",
        [(m1, "Mustaqillik"), (m2, "Navoiy")],
    )
    h1, h2 = _ids(
        conn,
        "INSERT INTO houses (street_id, number) VALUES (%s, '1') RETURNING id",
        [(s1,), (s2,)],
    )
    a1, a2 = _ids(
        conn,
        "INSERT INTO accounts (number, kind, category, name, house_id, zone_id)"
        " VALUES (%s, 'household', 'household', %s, %s, %s) RETURNING id",
        [("100000017", "Aliyev Anvar", h1, z1), ("100000025", "Karimova Dilnoza", h2, z1)],
    )
    period = datetime(2026, 10, 1, tzinfo=UTC).date()
    (inv,) = _ids(
        conn,
        "INSERT INTO invoices (number, account_id, period, issued_at, amount_tiyin, volume_m3)"
        " VALUES ('2026-0000001', %s, %s, %s, 12000000, 12.5) RETURNING id",
        [(a1, period, TO - timedelta(days=19))],
    )
    entries = [
        # account, kind, amount_tiyin, value_date, source
        (a1, "charge", 12_000_000, TO.date() - timedelta(days=19), "billing", inv),
        (a1, "payment", -5_000_000, TO.date() - timedelta(days=10), "payme", None),
        (a2, "charge", 3_000_000, TO.date() - timedelta(days=19), "billing", None),
        (a2, "payment", -4_000_000, TO.date() - timedelta(days=5), "cashier", None),
    ]
    conn.cursor().executemany(
        "INSERT INTO ledger (account_id, kind, amount_tiyin, value_date, period, posted_at,"
        " source, invoice_id) VALUES (%s, %s, %s, %s, DATE '2026-10-01', now(), %s, %s)",
        entries,
    )
