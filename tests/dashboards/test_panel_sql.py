"""Every panel's SQL, with Grafana's macros expanded, run against the real database.

Each query must run, return the columns its panel type needs, and (over a 40-day range that
holds all the seeded data) return rows. Panels that read tables of another package (alarms,
billing) are skipped only while those tables do not exist.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from dashboards.boards import alarms, all_dashboards, devices, network, pressure, zone
from dashboards.boards import billing as billing_board
from dashboards.macros import QueryContext, Variable, expand
from dashboards.model import Panel, QueryVariable, SqlAnnotation, SqlTarget
from dashboards.sql import tier_for
from tests.dashboards.seed import (
    PRV1_CP_MIN,
    PRV1_POINTS,
    PS1_BY_TABLE,
    TO,
    Z1_CONSUMPTION_DAY_M3,
    Z1_INFLOW_DAY_M3,
    Z1_MNF_LPS,
    Z1_NRW_PCT,
    table_exists,
)

NUMERIC = {20, 21, 23, 700, 701, 1700}
TIMES = {1082, 1114, 1184}

ALL_VARS = {
    "zone": Variable.of("Z1", "Z2"),
    "device": Variable.of("PS1", "PS2", "DM1", "DM2", "CM1", "CM2"),
    "gateway": Variable.of("GW1", "GW2"),
    "prv": Variable.of("PRV1"),
}


@dataclass(frozen=True)
class Result:
    columns: list[str]
    types: list[int]
    rows: list[tuple[Any, ...]]

    def col(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]


def context(span: timedelta, **variables: Variable) -> QueryContext:
    points = 300  # Grafana asks for about one point per pixel; a panel is ~300 px wide here
    interval = max(timedelta(seconds=60), span / points)
    interval = timedelta(seconds=round(interval.total_seconds()))
    return QueryContext(TO - span, TO, interval, {**ALL_VARS, **variables})


def run(conn: psycopg.Connection[Any], sql: str, ctx: QueryContext) -> Result:
    with conn.cursor() as cur:
        cur.execute(expand(sql, ctx).encode())
        assert cur.description is not None
        return Result(
            [d.name for d in cur.description],
            [d.type_code for d in cur.description],
            cur.fetchall(),
        )


def skip_if_missing(conn: psycopg.Connection[Any], requires: tuple[str, ...]) -> None:
    missing = [t for t in requires if not table_exists(conn, t)]
    if missing:
        pytest.skip(
            f"table(s) {', '.join(missing)} do not exist yet (created by another package's "
            "migrations); this check starts by itself once they do"
        )


def _targets() -> list[Any]:
    return [
        pytest.param(p, t, id=f"{d.uid}/{p.title}/{t.ref_id}")
        for d in all_dashboards()
        for p in d.panels
        for t in p.targets
    ]


def _is_time(res: Result, i: int) -> bool:
    return res.types[i] in TIMES or (res.columns[i] == "time" and res.types[i] in NUMERIC)


def check_shape(panel: Panel, target: SqlTarget, res: Result) -> None:
    numeric = [i for i, t in enumerate(res.types) if t in NUMERIC]
    assert res.columns, "no columns"
    assert len(set(res.columns)) == len(res.columns), f"duplicate column names {res.columns}"
    if target.format == "time_series" or panel.type == "timeseries":
        assert target.format == "time_series", "a time series panel needs format time_series"
        times = [i for i in range(len(res.types)) if _is_time(res, i)]
        assert times, f"no time column in {res.columns}"
        t = times[0]
        assert [i for i in numeric if i != t], f"no numeric value column in {res.columns}"
        for i, typ in enumerate(res.types):
            assert i == t or typ in NUMERIC or typ in (25, 1043), (
                f"column {res.columns[i]} has a type Grafana cannot plot ({typ})"
            )
        stamps = [r[t] for r in res.rows]
        assert stamps == sorted(stamps), "time series rows must be ordered by time"
    elif panel.type == "geomap":
        for name, bound in (("latitude", 90), ("longitude", 180)):
            assert name in res.columns, f"geomap layer needs a {name} column: {res.columns}"
            assert res.types[res.columns.index(name)] in NUMERIC
            assert all(v is not None and -bound <= v <= bound for v in res.col(name))
    elif panel.type in ("stat", "gauge", "bargauge", "piechart", "barchart"):
        assert numeric, f"a {panel.type} panel needs a numeric column: {res.columns}"


@pytest.mark.parametrize(("panel", "target"), _targets())
@pytest.mark.parametrize("span", [timedelta(hours=1), timedelta(days=40)], ids=["1h", "40d"])
def test_panel_query_runs_and_fits_its_panel(
    vdb: psycopg.Connection[Any], panel: Panel, target: SqlTarget, span: timedelta
) -> None:
    skip_if_missing(vdb, target.requires)
    res = run(vdb, target.sql, context(span))
    check_shape(panel, target, res)
    if span == timedelta(days=40):
        assert res.rows, "the seeded village should give this query rows over 40 days"
    if len(panel.targets) == 1:
        for o in panel.overrides:
            assert o.field_name in res.columns, f"override for missing column {o.field_name}"


@pytest.mark.timescaledb
@pytest.mark.parametrize(("panel", "target"), _targets())
def test_panel_query_with_the_timescaledb_flag(
    vdb: psycopg.Connection[Any], panel: Panel, target: SqlTarget
) -> None:
    """With the datasource's TimescaleDB switch on, Grafana groups with time_bucket()."""
    if not vdb.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
        pytest.skip("the TimescaleDB extension is not installed on this PostgreSQL server")
    skip_if_missing(vdb, target.requires)
    ctx = dataclasses.replace(context(timedelta(days=40)), timescaledb=True)
    check_shape(panel, target, run(vdb, target.sql, ctx))


@pytest.mark.parametrize(
    "annotation",
    [pytest.param(a, id=f"{d.uid}/{a.name}") for d in all_dashboards() for a in d.annotations],
)
def test_annotation_queries(vdb: psycopg.Connection[Any], annotation: SqlAnnotation) -> None:
    skip_if_missing(vdb, annotation.requires)
    res = run(vdb, annotation.sql, context(timedelta(days=7)))
    assert res.rows
    assert res.types[res.columns.index("time")] in TIMES
    assert res.types[res.columns.index("text")] in (25, 1043)
    if "timeend" in res.columns:
        assert res.types[res.columns.index("timeend")] in TIMES
    stamps = res.col("time")
    assert stamps == sorted(stamps)
    assert all(isinstance(t, str) and t for t in res.col("tags"))


@pytest.mark.parametrize(
    "var",
    [pytest.param(v, id=f"{d.uid}/{v.name}") for d in all_dashboards() for v in d.variables],
)
def test_variable_queries(vdb: psycopg.Connection[Any], var: QueryVariable) -> None:
    skip_if_missing(vdb, var.requires)
    res = run(vdb, var.sql, context(timedelta(hours=6)))
    assert res.rows
    if "__value" in res.columns:
        assert "__text" in res.columns
        assert set(res.col("__value")) == {"Z1", "Z2"}
    else:
        assert len(res.columns) == 1


def test_variables_follow_the_zone(vdb: psycopg.Connection[Any]) -> None:
    from dashboards.boards.common import DEVICE, GATEWAY

    only_z2 = context(timedelta(hours=6), zone=Variable.of("Z2"))
    # PRV1 has no zone yet: it is listed under every zone
    assert [r[0] for r in run(vdb, DEVICE.sql, only_z2).rows] == ["PRV1", "PS2"]
    assert [r[0] for r in run(vdb, GATEWAY.sql, only_z2).rows] == ["GW2"]


@pytest.mark.parametrize(
    ("span", "table"),
    [
        (timedelta(hours=1), "readings"),
        (timedelta(hours=6), "readings"),
        (timedelta(hours=6, minutes=1), "readings_5m"),
        (timedelta(days=3), "readings_5m"),
        (timedelta(days=3, minutes=1), "readings_1h"),
        (timedelta(days=90), "readings_1h"),
        (timedelta(days=90, minutes=1), "readings_1d"),
    ],
)
def test_time_range_chooses_the_rollup(
    vdb: psycopg.Connection[Any], span: timedelta, table: str
) -> None:
    sql = network.PRESSURE_BY_ZONE.targets[0].sql
    res = run(vdb, sql, context(span, zone=Variable.of("Z1")))
    assert tier_for(span) == table
    values = set(res.col("pressure"))
    assert values and all(math.isclose(v, PS1_BY_TABLE[table]) for v in values), values


def test_zone_status_compares_with_the_service_band(vdb: psycopg.Connection[Any]) -> None:
    res = run(vdb, network.ZONE_STATUS.targets[0].sql, context(timedelta(hours=6)))
    status = dict(zip(res.col("zone"), res.col("status"), strict=True))
    assert status == {"Z1": "ok", "Z2": "low pressure"}  # Z2: 150 kPa = 1.5 bar < 2.0
    min_bar = dict(zip(res.col("zone"), res.col("min_bar"), strict=True))
    assert math.isclose(min_bar["Z2"], 1.5)


def test_live_pressure_on_the_map(vdb: psycopg.Connection[Any]) -> None:
    res = run(vdb, network.LIVE_PRESSURE.sql, context(timedelta(hours=1)))
    by_device = {r[0]: dict(zip(res.columns, r, strict=True)) for r in res.rows}
    assert set(by_device) == {"PS1", "PS2"}
    assert (by_device["PS1"]["latitude"], by_device["PS1"]["longitude"]) == (41.3, 64.5)
    assert (by_device["PS2"]["latitude"], by_device["PS2"]["longitude"]) == (41.311, 64.511)
    assert math.isclose(by_device["PS2"]["pressure_bar"], 1.5)
    # as of 4 hours ago nothing was measured in the raw table within a day: no value
    past = QueryContext(
        TO - timedelta(days=9), TO - timedelta(days=8), timedelta(minutes=5), ALL_VARS
    )
    res = run(vdb, network.LIVE_PRESSURE.sql, past)
    assert all(v is None for v in res.col("pressure_bar"))


def test_nodes_of_planar_networks_stay_off_the_map(vdb: psycopg.Connection[Any]) -> None:
    res = run(vdb, network.NODES.sql, context(timedelta(hours=1)))
    assert sorted(res.col("node")) == ["J1", "J2", "J3", "R1"]


def test_minimum_night_flow(vdb: psycopg.Connection[Any]) -> None:
    res = run(vdb, zone.MNF.targets[0].sql, context(timedelta(days=10), zone=Variable.of("Z1")))
    assert len(res.rows) >= 9
    assert all(math.isclose(v, Z1_MNF_LPS) for v in res.col("mnf_lps"))


def test_water_balance(vdb: psycopg.Connection[Any]) -> None:
    res = run(vdb, zone.WATER_BALANCE.targets[0].sql, context(timedelta(days=10)))
    assert set(res.col("zone")) == {"Z1"}
    assert len(res.rows) == 10
    for row in res.rows:
        r = dict(zip(res.columns, row, strict=True))
        assert math.isclose(r["inflow_m3"], Z1_INFLOW_DAY_M3)
        assert math.isclose(r["consumption_m3"], Z1_CONSUMPTION_DAY_M3)
        assert math.isclose(r["nrw_pct"], Z1_NRW_PCT)


def test_monthly_water_balance_against_billing(vdb: psycopg.Connection[Any]) -> None:
    skip_if_missing(vdb, ("invoices", "accounts"))
    res = run(vdb, zone.MONTHLY_BALANCE.targets[0].sql, context(timedelta(days=40)))
    rows = [dict(zip(res.columns, r, strict=True)) for r in res.rows]
    october = next(r for r in rows if r["time"].month == 10)
    assert october["zone"] == "Z1"
    # the range starts on 11 October at noon: the daily buckets of 12-31 October are in it
    assert october["days"] == 20
    assert math.isclose(october["inflow_m3"], 20 * Z1_INFLOW_DAY_M3)
    assert october["billed_m3"] == 12.5
    assert math.isclose(
        october["nrw_pct"], 100 * (20 * Z1_INFLOW_DAY_M3 - 12.5) / (20 * Z1_INFLOW_DAY_M3)
    )


def test_inflow_is_signed_by_direction(vdb: psycopg.Connection[Any]) -> None:
    res = run(vdb, zone.INFLOW.targets[0].sql, context(timedelta(hours=1)))
    assert res.rows and all(math.isclose(v, 40.0 - 3.6) for v in res.col("inflow_m3h"))


def test_gateway_health_from_the_state_message(vdb: psycopg.Connection[Any]) -> None:
    res = run(vdb, devices.GATEWAYS.targets[0].sql, context(timedelta(hours=1)))
    rows = {r[0]: dict(zip(res.columns, r, strict=True)) for r in res.rows}
    assert rows["GW1"]["outbox_depth"] == 12
    assert rows["GW2"]["outbox_depth"] == 5  # the queue_depth spelling
    assert math.isclose(rows["GW1"]["poll_success_pct"], 98.0)
    assert rows["GW1"]["seen_ago_s"] == 30


def test_device_poll_success(vdb: psycopg.Connection[Any]) -> None:
    res = run(vdb, devices.DEVICES.targets[0].sql, context(timedelta(hours=3)))
    rows = {r[0]: dict(zip(res.columns, r, strict=True)) for r in res.rows}
    assert rows["PS1"]["readings"] == 180
    assert math.isclose(rows["PS1"]["poll_success_pct"], 100 * 174 / 180)
    assert rows["PS2"]["state"] == "offline"
    assert rows["CM1"]["state"] == "unknown"


def test_alarm_kpis(vdb: psycopg.Connection[Any]) -> None:
    skip_if_missing(vdb, ("alarms", "alarm_rules"))
    week = context(timedelta(days=7))
    assert run(vdb, alarms.KPI_STALE.targets[0].sql, week).rows == [(1,)]  # the MNF alarm
    assert run(vdb, alarms.KPI_CHATTERING.targets[0].sql, week).rows == [(1,)]
    flood = run(vdb, alarms.KPI_FLOOD.targets[0].sql, week).rows[0][0]
    assert math.isclose(flood, 100 * 0.5 / (7 * 24))
    per10 = run(vdb, alarms.KPI_RATE.targets[0].sql, week).rows[0][0]
    assert math.isclose(per10, 3 / (7 * 24 * 6))
    active = run(vdb, alarms.ACTIVE_LIST.targets[0].sql, week)
    assert active.col("priority") == ["high", "medium"]  # by priority; closed ones left out
    located = run(vdb, alarms.ACTIVE_ON_MAP.sql, week)
    by_rule = dict(zip(located.col("rule"), located.col("latitude"), strict=True))
    assert by_rule["PS2-low"] == 41.311  # at the device
    assert math.isclose(by_rule["Z1-mnf"], (41.3 + 41.301 + 41.302) / 3)  # at the zone centre


def test_billing_debt_by_mahalla(vdb: psycopg.Connection[Any]) -> None:
    skip_if_missing(vdb, ("ledger", "accounts", "account_balances", "account_addresses"))
    res = run(vdb, billing_board.DEBT_BY_MAHALLA.targets[0].sql, context(timedelta(days=40)))
    rows = {r[0]: dict(zip(res.columns, r, strict=True)) for r in res.rows}
    assert rows["Navbahor"]["debt"] == 70000
    assert rows["Bog'ishamol"]["prepaid"] == 10000
    assert rows["Bog'ishamol"]["debt"] == 0
    rate = run(vdb, billing_board.COLLECTION_RATE.targets[0].sql, context(timedelta(days=40)))
    assert math.isclose(rate.rows[0][0], 100 * 9_000_000 / 15_000_000)


def test_time_to_is_the_clock(vdb: psycopg.Connection[Any]) -> None:
    """The panels look at the end of the time range, never at now(): no query reads now()."""
    for d in all_dashboards():
        for p in d.panels:
            for t in p.targets:
                assert "now()" not in t.sql.lower(), f"{d.uid}/{p.title} reads now()"
    assert isinstance(TO, datetime)


@pytest.mark.parametrize("span", [timedelta(hours=1), timedelta(days=40)], ids=["raw", "1h"])
def test_prv_pressures_together(vdb: psycopg.Connection[Any], span: timedelta) -> None:
    """Setpoint, inlet, outlet, critical point and target of PRV1 on one chart; the critical
    point is the lowest of each interval (the rollups' minimum), the others its mean."""
    res = run(vdb, pressure.PRESSURES.targets[0].sql, context(span, prv=Variable.of("PRV1")))
    by_metric: dict[str, set[float]] = {}
    for row in res.rows:
        r = dict(zip(res.columns, row, strict=True))
        by_metric.setdefault(r["metric"], set()).add(round(r["bar"], 6))
    assert by_metric == {
        "PRV1 setpoint_bar": {3.2},
        "PRV1 inlet_bar": {5.5},
        "PRV1 outlet_bar": {3.2},
        "PRV1 ctl_cp_bar": {PRV1_POINTS["ctl_cp_bar"][2] if span < timedelta(hours=6)
                            else PRV1_CP_MIN},
        "PRV1 ctl_target_bar": {2.3},
    }  # fmt: skip


def test_prv_controller_table(vdb: psycopg.Connection[Any]) -> None:
    res = run(vdb, pressure.CONTROLLER.targets[0].sql, context(timedelta(hours=1)))
    (row,) = [dict(zip(res.columns, r, strict=True)) for r in res.rows]
    assert (row["prv"], row["zone"], row["mode"], row["auto"], row["reason"]) == (
        "PRV1", None, 4.0, 1.0, 4.0,
    )  # fmt: skip
    assert row["setpoint_bar"] == 3.2 and row["critical_point_bar"] == 2.3
    assert row["decided_at"] == TO
    # every reason code the controller publishes has a text
    from edge_agent.control import Reason

    assert set(pressure.REASONS) == {int(r) for r in Reason}
