"""The demo village's asset register: called by ``suvnet demo`` once the site file and the
households are in the database.

It takes the village's water network from the registry (the site file's EPANET model and
its inline additions), gives the assets their attributes (material, install year,
condition, owner, cadastral numbers), adds hydrants and a sewer network with manholes and a
treatment works, surveys a few of them in local coordinate systems (SK-42 Gauss-Krüger zone
12, UTM 42N and an SK-63-style local zone), links the households to the pipes that feed them
and runs the network checks. The same rows for the same seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import shapely

from assets.crs import SK63_EXAMPLE, from_wgs84, resolve, to_wgs84
from assets.files import Problems, ReadOptions, network_assets
from assets.geo import geodesic_length_m, metres_to_degrees
from assets.model import Asset, Geom
from assets.service import check_network
from assets.store import Actor, add_crs, save_assets
from suvnet.network import load_networks

MATERIALS = (("PE100", 1995, 2024), ("steel", 1968, 1992), ("cast iron", 1960, 1985))
SK63_CODE = "SK63-DEMO"


@dataclass(frozen=True)
class DemoRegister:
    water: int
    sewer: int
    service_connections: int
    local_crs: int
    findings: int
    valves: int = 0
    repairs: int = 0
    critical: int = 0


def seed_register(
    conn: psycopg.Connection[Any], *, now: datetime, network: str | None = None, seed: int = 7
) -> DemoRegister:
    """Fill the register for the demo village (nothing when it has assets already). ``now``
    is the demo's clock: the register is entered a year before it, the survey corrections a
    month before it, so the history has something to show."""
    if conn.execute("SELECT 1 FROM assets LIMIT 1").fetchone():
        return DemoRegister(0, 0, 0, 0, 0)
    rnd = random.Random(seed)
    nets = load_networks(conn, network)
    if not nets:
        return DemoRegister(0, 0, 0, 0, 0)
    add_crs(
        conn,
        SK63_CODE,
        SK63_EXAMPLE,
        "SK-63 style local zone (example parameters)",
        "the demo's example: use the parameters your survey office gives",
    )
    water: list[Asset] = []
    for net in nets:
        probs = Problems(Path(net.info.code))
        got, _ = network_assets(net, resolve(net.info.crs), ReadOptions(), probs)
        probs.raise_if_any()
        water.extend(got)
    water = [_dress(a, rnd) for a in water]
    pipes = [a for a in water if a.kind == "pipe"]
    extra: list[Asset] = []
    for i, p in enumerate(pipes[::3]):
        at = shapely.line_interpolate_point(p.geometry, 0.5, normalized=True)
        extra.append(
            Asset(
                f"H-{i + 1:02d}",
                "hydrant",
                _offset(at, 3.0, 2.0),
                zone=p.zone,
                install_year=p.install_year,
                status="active",
                owner="Suvokova",
            )
        )
    # a few surveyed in local systems: the coordinates go through the same transformation
    # an import does, and the asset keeps the survey's CRS and accuracy
    surveyed: list[Asset] = []
    for a, crs, acc in zip(
        extra[:4],
        ("SK42-GK12", "SK42-GK12", "UTM42N", SK63_CODE),
        (0.05, 0.05, 0.02, 0.1),
        strict=False,
    ):
        named = resolve(crs, {SK63_CODE: SK63_EXAMPLE})
        local_xy = from_wgs84(a.geometry, named)
        surveyed.append(
            a.with_changes(
                geometry=to_wgs84(local_xy, named), source_crs=named.code, accuracy_m=acc
            )
        )
    extra = surveyed + extra[4:]
    sewer = _sewer(pipes, rnd)
    extra += _meter_chambers(conn, pipes)
    valves = _valves(pipes, water)
    extra += valves
    start = now - timedelta(days=365)
    actor = Actor("demo", "demo: register", start)
    with conn.transaction():
        save_assets(conn, water + extra + sewer, actor)
    services = _service_connections(conn, pipes, rnd)
    if services:
        with conn.transaction():
            save_assets(conn, services, replace(actor, at=start + timedelta(days=1)))
    _corrections(conn, pipes, now - timedelta(days=30))
    _, findings = check_network(conn, now=now - timedelta(days=1), by="demo")
    with conn.transaction():
        critical = _critical_customers(conn, now - timedelta(days=300))
        repairs = _repairs(conn, pipes, now)
    return DemoRegister(
        water=len(water) + len(extra),
        sewer=len(sewer),
        service_connections=len(services),
        local_crs=len(surveyed),
        findings=len(findings),
        valves=len(valves),
        repairs=repairs,
        critical=critical,
    )


def _dress(a: Asset, rnd: random.Random) -> Asset:
    if a.kind != "pipe":
        return a.with_changes(
            owner="Suvokova", status="active", cadastral_no=f"10:06:04:01:{rnd.randint(100, 999)}"
        )
    material, y0, y1 = rnd.choice(MATERIALS)
    year = a.install_year or rnd.randint(y0, y1)
    return a.with_changes(
        material=a.material or material,
        install_year=year,
        depth_m=round(rnd.uniform(1.2, 1.8), 2),
        pressure_class="PN10" if material == "PE100" else "PN16",
        condition_grade=1 if year > 2015 else (3 if year > 1990 else rnd.choice((4, 5))),
        owner="Suvokova",
        land_plot="public road",
        accuracy_m=0.5,
    )


def _offset(point: Geom, east_m: float, north_m: float) -> Geom:
    c = shapely.get_coordinates(point)[0]
    dx, dy = metres_to_degrees(1.0, float(c[1]))
    return shapely.Point(float(c[0]) + east_m * dx, float(c[1]) + north_m * dy)


def _sewer(pipes: list[Asset], rnd: random.Random) -> list[Asset]:
    """Gravity sewers beside the streets' water pipes, a manhole at each end, running
    downhill (by the water nodes' elevations) to a treatment works below the village."""
    out: list[Asset] = []
    manholes: dict[tuple[float, float], str] = {}
    lowest: tuple[float, Geom] | None = None
    for i, p in enumerate(q for q in pipes if (q.attrs.get("length_m") or 0) < 600):
        cs = shapely.get_coordinates(p.geometry)
        a, b = (
            _offset(shapely.Point(cs[0]), 15.0, -15.0),
            _offset(shapely.Point(cs[-1]), 15.0, -15.0),
        )
        ground_a = 480.0 - 0.004 * i * 100
        ground_b = ground_a - rnd.uniform(0.5, 3.0)
        line = shapely.LineString([a, b])
        inv_a, inv_b = ground_a - 2.0, ground_b - 2.2
        if i == 3:  # laid wrong way round: the checks find it
            inv_a, inv_b = inv_b, inv_a
        code = f"S-{i + 1:03d}"
        out.append(
            Asset(
                code,
                "gravity_sewer",
                line,
                diameter_mm=200.0,
                material="PVC",
                install_year=rnd.randint(2005, 2020),
                invert_start_m=round(inv_a, 2),
                invert_end_m=round(inv_b, 2),
                zone=p.zone,
                owner="Suvokova",
                accuracy_m=0.5,
            )
        )
        for pt, ground, inv in ((a, ground_a, inv_a), (b, ground_b, inv_b)):
            key = (round(pt.x, 7), round(pt.y, 7))
            if key not in manholes:
                manholes[key] = f"MH-{len(manholes) + 1:03d}"
                out.append(
                    Asset(
                        manholes[key],
                        "manhole",
                        pt,
                        elevation_m=round(ground, 2),
                        depth_m=round(ground - inv, 2),
                        invert_start_m=round(inv, 2),
                        zone=p.zone,
                        owner="Suvokova",
                        accuracy_m=0.05,
                    )
                )
            if lowest is None or inv < lowest[0]:
                lowest = (inv, pt)
        if len(out) > 60:
            break
    if lowest is None:
        return out
    # each separate part of the sewer gets an outfall to the treatment works below the
    # village (found by joining the sewers that share a manhole)
    c = shapely.get_coordinates(lowest[1])[0]
    dx, dy = metres_to_degrees(1.0, float(c[1]))
    x0, y0 = float(c[0]) + 10 * dx, float(c[1]) - 40 * dy
    works = shapely.Polygon(
        [(x0, y0), (x0 + 60 * dx, y0), (x0 + 60 * dx, y0 - 40 * dy), (x0, y0 - 40 * dy)]
    )
    out.append(
        Asset(
            "TW-1",
            "treatment_works",
            works,
            name="Yangiobod treatment works",
            owner="Suvokova",
            elevation_m=round(lowest[0] - 3, 2),
        )
    )
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    ends: dict[str, tuple[float, Geom]] = {}
    for a in out:
        if a.kind == "manhole":
            ends[a.code] = (a.invert_start_m or 0.0, a.geometry)
    for a in out:
        if a.kind == "gravity_sewer":
            cs = shapely.get_coordinates(a.geometry)
            k1 = manholes[(round(float(cs[0][0]), 7), round(float(cs[0][1]), 7))]
            k2 = manholes[(round(float(cs[-1][0]), 7), round(float(cs[-1][1]), 7))]
            parent[find(k1)] = find(k2)
    low: dict[str, str] = {}
    for code in ends:
        root = find(code)
        if root not in low or ends[code][0] < ends[low[root]][0]:
            low[root] = code
    for k, code in enumerate(sorted(low.values())):
        inv, pt = ends[code]
        out.append(
            Asset(
                f"S-OUT{k + 1}",
                "gravity_sewer",
                shapely.LineString([pt, (x0, y0)]),
                diameter_mm=250.0,
                material="PVC",
                install_year=2012,
                invert_start_m=round(inv, 2),
                invert_end_m=round(lowest[0] - 2, 2),
                owner="Suvokova",
            )
        )
    return out


def _meter_chambers(conn: psycopg.Connection[Any], pipes: list[Asset]) -> list[Asset]:
    """A meter chamber where each district meter's pipe enters its zone (the DMA boundary
    meters the zone-boundary check looks for)."""
    from assets.service import zone_shapes

    zones = {z.code: z.geometry for z in zone_shapes(conn)}
    by_code = {p.code: p for p in pipes}
    out: list[Asset] = []
    for code, pipe_code, zone in conn.execute(
        "SELECT d.code, p.code, z.code FROM devices d JOIN pipes p ON p.id = d.pipe_id "
        "LEFT JOIN zones z ON z.id = d.zone_id WHERE d.kind = 'district_meter' ORDER BY d.code"
    ):
        pipe = by_code.get(str(pipe_code))
        if pipe is None:
            continue
        at = shapely.line_interpolate_point(pipe.geometry, 0.5, normalized=True)
        if zone in zones:
            cut = shapely.intersection(pipe.geometry, shapely.boundary(zones[zone]))
            if not shapely.is_empty(cut):
                at = shapely.Point(shapely.get_coordinates(cut)[0])
        out.append(
            Asset(
                f"MC-{code}",
                "meter_chamber",
                at,
                name=f"meter chamber of {code}",
                zone=zone,
                owner="Suvokova",
                accuracy_m=0.05,
            )
        )
    return out


def _service_connections(
    conn: psycopg.Connection[Any], pipes: list[Asset], rnd: random.Random
) -> list[Asset]:
    """A service line for each household: from its house (its surveyed point, else a place
    beside a pipe of its zone) to the nearest point of that pipe."""
    rows = conn.execute(
        "SELECT a.number, a.house_id, z.code, h.lon, h.lat FROM accounts a "
        "JOIN houses h ON h.id = a.house_id LEFT JOIN zones z ON z.id = a.zone_id "
        "ORDER BY a.number LIMIT 200"
    ).fetchall()
    out: list[Asset] = []
    small = [p for p in pipes if (p.diameter_mm or 0) <= 110] or pipes
    for i, (number, house_id, zone, lon, lat) in enumerate(rows):
        mine = [p for p in small if p.zone == zone] or small
        pipe = mine[i % len(mine)]
        if lon is not None and lat is not None:
            house = shapely.Point(lon, lat)
        else:
            at = shapely.line_interpolate_point(
                pipe.geometry, rnd.uniform(0.1, 0.9), normalized=True
            )
            house = _offset(at, rnd.choice((-1, 1)) * 12.0, rnd.choice((-1, 1)) * 12.0)
        tap: Geom = shapely.line_interpolate_point(
            pipe.geometry, shapely.line_locate_point(pipe.geometry, house)
        )
        if shapely.distance(tap, house) == 0:
            continue
        out.append(
            Asset(
                f"SC-{number}",
                "service_connection",
                shapely.LineString([tap.coords[0], house.coords[0]]),
                diameter_mm=25.0,
                material="PE100",
                install_year=pipe.install_year,
                house_id=int(house_id),
                account_no=str(number),
                feed_pipe=pipe.code,
                zone=zone,
                owner="customer",
            )
        )
    return out


BROKEN_VALVE = "V-104a"
"""The demo's valve that cannot be closed (seized): isolations go round it (docs/assets.md)."""
VALVE_INSET_M = 6.0


def _valves(pipes: list[Asset], water: list[Asset]) -> list[Asset]:
    """Isolation valves as a village has them: on every pipe that leaves a junction of three
    or more (6 m into the pipe) and on the pipes that leave a source; one of them seized."""
    degree: dict[str, int] = {}
    for a in water:
        if a.kind in ("pipe", "valve", "prv", "pump"):
            for end in ("from", "to"):
                node = a.attrs.get(end)
                if node is not None:
                    degree[str(node)] = degree.get(str(node), 0) + 1
    sources = {a.ref_code for a in water if a.kind == "tank" and a.ref_code}
    out: list[Asset] = []
    for p in pipes:
        length = float(p.attrs.get("length_m") or 0) or geodesic_length_m(p.geometry)
        if length < 3 * VALVE_INSET_M:
            continue
        for end, suffix, frac in (
            ("from", "a", VALVE_INSET_M / length),
            ("to", "b", 1 - VALVE_INSET_M / length),
        ):
            node = str(p.attrs.get(end))
            if degree.get(node, 0) < 3 and node not in sources:
                continue
            code = f"V-{p.code.removeprefix('P-')}{suffix}"
            at = shapely.line_interpolate_point(p.geometry, frac, normalized=True)
            attrs: dict[str, Any] = {"valve_type": "gate"}
            if code == BROKEN_VALVE:
                attrs.update(operable=False, operable_note="seized: found in the 2025 survey")
            out.append(
                Asset(
                    code,
                    "valve",
                    at,
                    diameter_mm=p.diameter_mm,
                    zone=p.zone,
                    install_year=p.install_year,
                    owner="Suvokova",
                    accuracy_m=0.5,
                    attrs=attrs,
                )
            )
    return out


CRITICAL = (("demo:unmetered-5", "kindergarten", "oilaviy bog'cha (a family kindergarten)"),)


def _critical_customers(conn: psycopg.Connection[Any], at: datetime) -> int:
    """The demo's critical customers (a family kindergarten), flagged on their accounts."""
    n = 0
    for ref, kind, note in CRITICAL:
        n += conn.execute(
            "INSERT INTO critical_customers (account_id, kind, note, updated_at, updated_by) "
            "SELECT id, %s, %s, %s, 'demo' FROM accounts WHERE legacy_ref = %s "
            "ON CONFLICT (account_id) DO NOTHING",
            (kind, note, at, ref),
        ).rowcount
    return n


REPAIRS = (  # pipe, failure, days before now, hours of work, crew, cost in so'm, materials
    ("P-106", "corrosion", 1400, 5, "Brigada 1", 1_450_000, [("clamp DN63", 1, "pcs")]),
    ("P-106", "break", 900, 7, "Brigada 2", 2_300_000, [("PE100 pipe DN63", 6, "m")]),
    ("P-106", "joint_leak", 420, 3, "Brigada 1", 850_000, [("joint seal DN63", 2, "pcs")]),
    ("P-124", "corrosion", 1100, 6, "Brigada 2", 1_700_000, [("clamp DN63", 1, "pcs")]),
    ("P-124", "break", 250, 8, "Brigada 1", 2_900_000, [("steel pipe DN63", 4, "m")]),
    ("P-103", "third_party", 700, 4, "Brigada 2", 1_200_000, [("clamp DN90", 1, "pcs")]),
    ("P-122", "joint_leak", 150, 3, "Brigada 1", 640_000, [("joint seal DN90", 1, "pcs")]),
)


def _repairs(conn: psycopg.Connection[Any], pipes: list[Asset], now: datetime) -> int:
    """A few years of closed repairs, through the work-order store like any other (the
    renewal ranking counts them)."""
    from assets.work_order_store import close, create

    have = {p.code for p in pipes}
    n = 0
    for pipe, failure, days, hours, crew, som, materials in REPAIRS:
        if pipe not in have:
            continue
        reported = now - timedelta(days=days)
        started = reported + timedelta(hours=2)
        actor = Actor("demo-dispatcher", "demo: work orders", reported)
        wo = create(
            conn,
            pipe,
            {
                "kind": "repair",
                "failure": failure,
                "reported_at": reported,
                "crew": crew,
                "description": "leak on the street reported by residents",
            },
            actor,
        )
        close(
            conn,
            wo,
            {
                "started_at": started,
                "ended_at": started + timedelta(hours=hours),
                "cost_tiyin": som * 100,
                "materials": [{"item": i, "quantity": q, "unit": u} for i, q, u in materials],
            },
            Actor("demo-technician", "demo: work orders", started + timedelta(hours=hours)),
            now=now,
        )
        n += 1
    return n


def _corrections(conn: psycopg.Connection[Any], pipes: list[Asset], at: datetime) -> None:
    """A survey correction or two, so that an asset card has a history to show."""
    from assets.store import update_asset

    actor = Actor("demo-surveyor", "demo: field survey", at)
    for p in pipes[:2]:
        with conn.transaction():
            update_asset(
                conn,
                p.code,
                {"condition_grade": 4, "accuracy_m": 0.05},
                actor,
                expected_version=None,
            )
