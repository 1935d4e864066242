"""The rural leak scenario families (simulator/leak_families.py) are what they claim to be."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from simulator import leak_families as lf

DAY = 86400.0


@pytest.fixture(scope="module")
def scenarios() -> dict[str, lf.FamilyScenario]:
    return {f: lf.generate(f, 3, days=30) for f in lf.FAMILIES}


def test_same_seed_same_scenario() -> None:
    a, b = lf.generate("sparse", 11, days=25), lf.generate("sparse", 11, days=25)
    assert a.leaks == b.leaks and a.transfers == b.transfers
    assert all(
        np.array_equal(x.lps, y.lps, equal_nan=True)
        for x, y in zip(a.meters, b.meters, strict=True)
    )
    other = lf.generate("sparse", 11, days=25, noise="heldout")
    assert not np.array_equal(a.demand_lps["DMA1"], other.demand_lps["DMA1"])


def test_sparse_daily_metering(scenarios: dict[str, lf.FamilyScenario]) -> None:
    for fam, sc in scenarios.items():
        for z in sc.dmas:
            hh = sc.households[z]
            share = hh.metered.mean()
            assert 0.09 <= share <= 0.31, (fam, z, share)
            gaps = np.diff(hh.read_times_s, axis=1)
            ok = gaps[np.isfinite(gaps)]
            assert np.all(np.abs(ok - DAY) < 3 * 3600)  # one read a day
            regs = hh.registers_m3
            for row in regs:
                r = row[np.isfinite(row)]
                assert np.all(np.diff(r) >= 0)  # a register only grows


def test_the_leak_fits_the_scoring_window(scenarios: dict[str, lf.FamilyScenario]) -> None:
    for fam, sc in scenarios.items():
        lk = sc.leaks[0]
        spec = lf.FAMILIES[fam]
        assert spec.leak_lps[0] <= lk.peak_lps <= spec.leak_lps[1]
        assert lk.start_s >= 15 * DAY
        if lk.peak_lps >= 2:
            assert lk.time_reaching(2.0) + 3 * DAY <= sc.days * DAY
        if fam == "growing":
            assert lk.kind == "incipient" and 3 * DAY <= lk.ramp_s <= 10 * DAY


def test_meters_see_the_demand(scenarios: dict[str, lf.FamilyScenario]) -> None:
    """Net inflow minus tank filling, from the readings, is the DMA's demand within the
    meter bias (daily totals)."""
    for fam, sc in scenarios.items():
        for z in sc.dmas:
            seen = sc.dma_demand_seen_lps(z).reshape(sc.days, -1)
            true = sc.demand_lps[z].reshape(sc.days, -1)
            ok = np.isfinite(seen).mean(axis=1) >= 0.9
            for tr in sc.transfers:  # water moved to or from a neighbour: not its demand
                if z in (tr.from_dma, tr.to_dma):
                    ok[int(tr.start_s // DAY) : int(tr.end_s // DAY) + 1] = False
            assert ok.sum() >= sc.days * 0.75, (fam, z)
            ratio = np.nanmean(seen[ok], axis=1) / true[ok].mean(axis=1)
            # a pump's flow read every 15 min misses when exactly it started or stopped
            tol = 0.12 if any(t.dma == z for t in sc.tanks) else 0.08
            assert np.all(np.abs(ratio - 1) < tol), (fam, z, ratio.min(), ratio.max())


def test_tank_fed_dmas_pump_into_a_tank(scenarios: dict[str, lf.FamilyScenario]) -> None:
    sc = scenarios["tank"]
    assert {t.dma for t in sc.tanks} == {"DMA1", "DMA2"}
    for t in sc.tanks:
        inflow = next(m for m in sc.meters if m.code == t.inlet_meter)
        # the volume register counts the pump's water exactly (up to the meter's bias): the
        # pumped volume minus the tank's filling is what the DMA drew
        assert inflow.m3 is not None
        area = math.pi * t.diameter_m**2 / 4
        both = np.flatnonzero(np.isfinite(inflow.m3) & np.isfinite(t.level_m))
        ka, kb = both[both >= 15 * 96][0], both[both < 25 * 96][-1]
        drawn = (inflow.m3[kb] - inflow.m3[ka]) - (t.level_m[kb] - t.level_m[ka]) * area
        true = sc.demand_lps[t.dma][ka:kb].sum() * lf.STEP_S / 1000
        assert abs(drawn / true - 1) < 0.05
        on = t.running > 0.5
        assert 0.1 < on.mean() < 0.9  # it starts and stops
        q = inflow.lps[np.isfinite(inflow.lps)]
        assert np.percentile(q, 10) < 0.2 * np.percentile(q, 90)  # on / off, not a steady flow
        lv = t.level_m[np.isfinite(t.level_m)]
        assert lv.min() > 0 and lv.max() - lv.min() > 0.5


def test_a_transfer_moves_water_between_neighbours() -> None:
    sc = next(s for s in (lf.generate("sparse", k, days=30) for k in range(20)) if s.transfers)
    tr = sc.transfers[0]
    inside = (sc.times_s >= tr.start_s) & (sc.times_s < tr.end_s)
    moved = tr.fraction * sc.demand_lps["DMA2"][inside]
    d2 = sc.dma_inflow_lps("DMA2")[inside] - sc.demand_lps["DMA2"][inside]
    d3 = sc.dma_inflow_lps("DMA3")[inside] - sc.demand_lps["DMA3"][inside]
    ok = np.isfinite(d2) & np.isfinite(d3)
    assert np.nanmean(d2[ok]) < -0.5 * moved.mean()  # DMA2's meters see less
    assert abs(np.nanmean(d3[ok] + d2[ok])) < 0.1 * moved.mean()  # DMA3's see as much more
    # DMA1 passes DMA2's water on: its net inflow does not change
    d1 = sc.dma_inflow_lps("DMA1")[inside] - sc.demand_lps["DMA1"][inside]
    assert abs(np.nanmean(d1)) < 0.1 * moved.mean()


def test_registry_and_readings_load(db: psycopg.Connection[Any], tmp_path: Path) -> None:
    sc = lf.generate("tank", 5, days=16)
    with db.transaction(), db.cursor() as cur:
        for sql, rows in lf.registry_rows(sc):
            cur.executemany(sql, rows)
    n_hh = sum(h.residents.size for h in sc.households.values())
    n_metered = sum(int(h.metered.sum()) for h in sc.households.values())
    assert db.execute("SELECT count(*) FROM accounts").fetchone() == (n_hh,)
    assert db.execute("SELECT count(*) FROM accounts WHERE NOT metered").fetchone() == (
        n_hh - n_metered,
    )
    assert db.execute(
        "SELECT count(*) FROM meters m JOIN service_connections c ON c.meter_id = m.id "
        "WHERE m.point_id IS NOT NULL"
    ).fetchone() == (n_metered,)
    tanks = db.execute(
        "SELECT n.code, n.attrs->>'diameter_m', d.code FROM nodes n "
        "JOIN devices d ON d.node_id = n.id WHERE n.kind = 'tank' ORDER BY n.code"
    ).fetchall()
    assert [(t[0], t[2]) for t in tanks] == [("TK-1", "LT-1"), ("TK-2", "LT-2")]
    assert all(float(t[1]) > 0 for t in tanks)
    assert db.execute(
        "SELECT count(*) FROM devices WHERE attrs->>'pump' IN (SELECT code FROM pumps)"
    ).fetchone() == (2,)
    path = tmp_path / "r.csv"
    n = lf.write_csv(sc, path)
    with path.open(encoding="utf-8") as fh:
        lines = [list(r) for r in csv.reader(fh)]
    assert lines[0] == ["ts", "device", "point", "value"] and len(lines) == n + 1
    known = {
        (str(d), str(p))
        for d, p in db.execute(
            "SELECT d.code, p.name FROM points p JOIN devices d ON d.id = p.device_id"
        ).fetchall()
    }
    assert {(r[1], r[2]) for r in lines[1:]} <= known  # every reading has its point
    assert all(math.isfinite(float(r[3])) for r in lines[1:200])


def test_the_benchmark_records_a_transfer_as_the_crews_valve_work(
    pg_server_url: str, template_db: str
) -> None:
    """bench.leak_detection registers a scenario's boundary valve in the asset register and
    each opening as a work order: the leak rule finds the valve between DMA2 and DMA3 and the
    hours it was open, as it would find a crew's record."""
    from alarms import zone as zn
    from bench import leak_detection as bl
    from tests.conftest import create_test_db, drop_test_db, with_dbname

    sc = next(s for s in (lf.generate("sparse", k, days=30) for k in range(20)) if s.transfers)
    tr = sc.transfers[0]
    name = create_test_db(pg_server_url, template_db)
    try:
        with psycopg.connect(with_dbname(pg_server_url, name), autocommit=True) as db:
            bl.register(db, sc)
            seen = {}
            for z in ("DMA1", "DMA2", "DMA3"):
                zid = db.execute("SELECT id FROM zones WHERE code = %s", (z,)).fetchone()
                assert zid is not None
                seen[z] = [(v.code, v.neighbour) for v in zn.boundary_valves(db, zid[0])]
            assert seen == {"DMA1": [], "DMA2": [("V-23", "DMA3")], "DMA3": [("V-23", "DMA2")]}
            zid = db.execute("SELECT id FROM zones WHERE code = 'DMA2'").fetchone()
            assert zid is not None
            t0 = sc.start.timestamp()
            edges = t0 + 3600.0 * np.arange(30 * 24 + 1)
            want = (edges[1:] > t0 + tr.start_s) & (edges[:-1] < t0 + tr.end_s)
            assert want.any()
            by = zn.valve_open_by_neighbour(
                db, zn.boundary_valves(db, zid[0]), edges, settle_s=0.0, max_open_s=1e9
            )
            assert {k: v.tolist() for k, v in by.items()} == {"DMA3": want.tolist()}
    finally:
        drop_test_db(pg_server_url, name)
