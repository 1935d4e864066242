"""Valve isolation on small networks drawn in metres (pure: assets in, the valves to close
and what loses water out). Each table row is a network, a failure and the expected answer."""

from __future__ import annotations

from typing import Any

import pytest
import shapely

from assets.geo import local_metres
from assets.isolation import (
    NoPipeError,
    NotSuppliedError,
    NoValvesError,
    cut_parts,
    geojson,
    isolate_pipe,
    isolate_point,
    isolate_zone,
    valve_rows,
)
from assets.model import Asset
from assets.network_graph import build_graph, valve_normally_closed, valve_operable

LON0, LAT0 = 71.60, 40.46
MX, MY = local_metres(LON0, LAT0)


def ll(x: float, y: float) -> tuple[float, float]:
    return (LON0 + x / MX, LAT0 + y / MY)


def pipe(code: str, *xy: tuple[float, float], zone: str | None = None, **kw: Any) -> Asset:
    return Asset(code, "pipe", shapely.LineString([ll(*p) for p in xy]), zone=zone, **kw)


def point(code: str, kind: str, xy: tuple[float, float], **kw: Any) -> Asset:
    return Asset(code, kind, shapely.Point(ll(*xy)), **kw)


def service(code: str, feed: str, tap: tuple[float, float]) -> Asset:
    house = (tap[0], tap[1] + 10)
    return Asset(
        code, "service_connection", shapely.LineString([ll(*tap), ll(*house)]), feed_pipe=feed
    )


def tree(*extra: Asset, v1: dict[str, Any] | None = None) -> list[Asset]:
    """T --P1-- J1 --P2-- J2 --P3-- J3, and P4 from J1 down to J4; valves V1 on P2 (5 m from
    J1), V2 on P3 (5 m from J2), V3 on P4 (5 m from J1)."""
    return [
        point("T", "tank", (0, 0)),
        pipe("P1", (0, 0), (100, 0), zone="Z1"),
        pipe("P2", (100, 0), (200, 0), zone="Z1"),
        pipe("P3", (200, 0), (300, 0), zone="Z1"),
        pipe("P4", (100, 0), (100, -100), zone="Z1"),
        point("V1", "valve", (105, 0), attrs=v1 or {}),
        point("V2", "valve", (205, 0)),
        point("V3", "valve", (100, -5)),
        *extra,
    ]


CASES = [
    # (network, pipe, place on it, unavailable, close, not_needed, skipped, pipes dry)
    ("dead end: its own valve", tree(), "P3", 0.5, (), ("V2",), (), (), {"P3"}),
    (
        "the whole pipe (place unknown) takes the piece before its valve too",
        tree(),
        "P3",
        None,
        (),
        ("V1",),
        (),
        (),
        {"P2", "P3"},
    ),
    (
        "the valve behind a dead end need not be closed",
        tree(),
        "P2",
        0.5,
        (),
        ("V1",),
        ("V2",),
        (),
        {"P2", "P3"},
    ),
    (
        "a valve found seized: the next ring",
        tree(),
        "P3",
        0.5,
        ("V2",),
        ("V1",),
        (),
        ("V2",),
        {"P2", "P3"},
    ),
    (
        "a broken valve (attrs.operable) is passed over the same way",
        tree(v1={"operable": "no"}),
        "P4",
        0.5,
        (),
        ("V3",),
        (),
        (),
        {"P4"},
    ),
]


@pytest.mark.parametrize(
    ("name", "net", "target", "at", "unavailable", "close", "not_needed", "skipped", "dry"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_isolation_table(
    name: str,
    net: list[Asset],
    target: str,
    at: float | None,
    unavailable: tuple[str, ...],
    close: tuple[str, ...],
    not_needed: tuple[str, ...],
    skipped: tuple[str, ...],
    dry: set[str],
) -> None:
    g = build_graph(net)
    iso = isolate_pipe(g, target, at=at, unavailable=unavailable)
    assert (iso.close, iso.not_needed, iso.skipped) == (close, not_needed, skipped)
    parts = cut_parts(g, iso)
    assert {p["code"] for p in parts.pipes} == dry
    assert iso.supply_known


def test_valves_split_their_pipe_and_the_cut_is_partial() -> None:
    g = build_graph(tree())
    assert len(g.pipe_edges["P2"]) == 2 and len(g.pipe_edges["P4"]) == 2
    assert len(g.valves) == 3 and g.supplied is not None
    iso = isolate_pipe(g, "P3", at=0.5)
    parts = cut_parts(g, iso)
    (p3,) = parts.pipes
    assert p3["code"] == "P3" and not p3["whole"] and p3["drained"]
    assert p3["length_m"] == pytest.approx(95.0, abs=0.5)  # the 5 m before V2 keep water


def test_service_connections_hang_on_their_side_of_the_valve() -> None:
    net = tree(service("SC-1", "P3", (202, 0)), service("SC-2", "P3", (250, 0)))
    g = build_graph(net)
    parts = cut_parts(g, isolate_pipe(g, "P3", at=0.5))
    assert parts.services == ["SC-2"]  # SC-1 taps the pipe before the valve V2
    parts = cut_parts(g, isolate_pipe(g, "P2", at=0.5))
    assert parts.services == ["SC-1", "SC-2"]


def test_a_broken_valve_next_to_the_source_means_no_isolation_and_the_zone_is_offered() -> None:
    broken = tree(v1={"operable": False})
    # with a valve on P1 (VZ), the next ring around the broken V1 closes it off
    iso = isolate_pipe(build_graph([*broken, point("VZ", "valve", (50, 0))]), "P2", at=0.5)
    assert (iso.close, iso.skipped) == (("VZ",), ("V1",))
    # without it, V1 was all there was between P2 and the tank
    g2 = build_graph(broken)
    with pytest.raises(NoValvesError) as err2:
        isolate_pipe(g2, "P2")
    assert "cannot be isolated" in str(err2.value)
    assert "no valve separates it from T" in str(err2.value)
    assert "V1" in str(err2.value)  # named as the valve that cannot be closed
    assert err2.value.zone == "Z1"


def test_no_valves_at_all_says_so_and_offers_the_zone_boundary() -> None:
    net = [
        point("T", "tank", (0, 0)),
        pipe("A1", (0, 0), (100, 0), zone="OUT"),
        point("VB", "valve", (95, 0)),
        pipe("B1", (100, 0), (200, 0), zone="DMA"),
        pipe("B2", (200, 0), (300, 0), zone="DMA"),
    ]
    g = build_graph(net)
    iso = isolate_pipe(g, "B2")  # B1 and B2 are one segment: VB takes both out
    assert iso.close == ("VB",)
    no_valves = [a for a in net if a.code != "VB"]
    g = build_graph(no_valves)
    with pytest.raises(NoValvesError) as err:
        isolate_pipe(g, "B2")
    assert err.value.offer is None  # and the zone has no boundary valve either
    assert "zone DMA has no boundary valves in the register either" in str(err.value)
    z = isolate_zone(build_graph(net), "DMA")
    assert z.close == ("VB",)


def test_a_ring_fed_from_both_sides_needs_both_valves() -> None:
    #  T - A - J1 ... ring J1-J2-J3-J4-J1 with valves on each ring pipe near J1 and J3
    net = [
        point("T", "tank", (0, 0)),
        pipe("A", (0, 0), (100, 0)),
        pipe("R1", (100, 0), (200, 0)),
        pipe("R2", (200, 0), (200, 100)),
        pipe("R3", (200, 100), (100, 100)),
        pipe("R4", (100, 100), (100, 0)),
        point("Va", "valve", (110, 0)),
        point("Vb", "valve", (100, 10)),
        point("Vc", "valve", (200, 90)),
        point("Vd", "valve", (190, 100)),
    ]
    g = build_graph(net)
    iso = isolate_pipe(g, "R1", at=0.5)
    assert iso.close == ("Va", "Vc")  # water comes round the ring through R4-R3-R2
    parts = cut_parts(g, iso)
    assert {p["code"] for p in parts.pipes} == {"R1", "R2"}


def test_a_normally_closed_boundary_valve_is_named_not_closed() -> None:
    net = [
        *tree(),
        pipe("X1", (300, 0), (400, 0), zone="Z2"),
        point("VB", "valve", (305, 0), attrs={"valve_status": "closed"}),
        point("T2", "tank", (400, 0)),
    ]
    g = build_graph(net)
    iso = isolate_pipe(g, "P3", at=0.5)
    assert iso.close == ("V2",) and iso.already_closed == ("VB",)


def test_an_epanet_valve_between_two_nodes() -> None:
    net = [
        point("R", "tank", (0, 0), ref_code="R"),
        point("N1", "node", (100, 0), ref_code="N1"),
        point("N2", "node", (120, 0), ref_code="N2"),
        point("N3", "node", (220, 0), ref_code="N3"),
        pipe("PA", (0, 0), (100, 0), ref_code="PA"),
        pipe("PB", (120, 0), (220, 0), ref_code="PB"),
        point("VX", "valve", (110, 5), attrs={"from": "N1", "to": "N2"}),
        point("PRV", "prv", (230, 5), attrs={"from": "N3", "to": "N1"}),
    ]
    g = build_graph(net)
    # water reaches PB through VX and round through the PRV (a conduit, not closable)
    with pytest.raises(NoValvesError):
        isolate_pipe(g, "PB")
    net2 = [a for a in net if a.code != "PRV"]
    g2 = build_graph(net2)
    iso2 = isolate_pipe(g2, "PB")
    assert iso2.close == ("VX",)
    parts = cut_parts(g2, iso2)
    assert parts.nodes == ["N2", "N3"] and "PB" in parts.refs


def test_without_sources_every_boundary_valve_is_closed() -> None:
    net = [a for a in tree() if a.kind != "tank"]
    g = build_graph(net)
    iso = isolate_pipe(g, "P2", at=0.5)
    assert not iso.supply_known and iso.close == ("V1", "V2")


def test_a_pipe_no_source_reaches_has_nothing_to_isolate() -> None:
    net = [*tree(), pipe("LOST", (500, 500), (600, 500))]
    with pytest.raises(NotSuppliedError):
        isolate_pipe(build_graph(net), "LOST")


def test_a_point_takes_the_part_of_the_pipe_under_it() -> None:
    g = build_graph(tree(service("SC-1", "P2", (150, 0))))
    iso = isolate_point(g, *ll(150, 3))
    assert iso.target["pipe"] == "P2" and iso.target["distance_m"] == pytest.approx(3, abs=0.1)
    assert iso.close == ("V1",)
    with pytest.raises(NoValvesError):  # between J1 and V1: the tank's own segment
        isolate_point(g, *ll(102, 1))
    with pytest.raises(NoPipeError):
        isolate_point(g, *ll(150, 400))


def test_unknown_and_abandoned_pipes() -> None:
    net = [*tree(), pipe("OLD", (300, 0), (300, 50), status="abandoned")]
    g = build_graph(net)
    with pytest.raises(NoPipeError):
        isolate_pipe(g, "NOPE")
    with pytest.raises(NoPipeError):
        isolate_pipe(g, "OLD")


def test_valve_rows_and_geojson() -> None:
    g = build_graph(tree())
    iso = isolate_pipe(g, "P2", at=0.5)
    rows = valve_rows(g, iso)
    assert [(r["code"], r["role"]) for r in rows] == [("V1", "close"), ("V2", "not_needed")]
    lon, lat = ll(105, 0)
    assert rows[0]["lon"] == pytest.approx(lon) and rows[0]["lat"] == pytest.approx(lat)
    doc = geojson(g, iso, cut_parts(g, iso))
    roles = sorted(f["properties"]["role"] for f in doc["features"])
    assert roles.count("drained") == 2 and roles.count("cut_off") == 1


@pytest.mark.parametrize(
    ("attrs", "operable", "closed"),
    [
        ({}, True, False),
        ({"operable": False}, False, False),
        ({"operable": "No"}, False, False),
        ({"operable": "broken"}, False, False),
        ({"operable": 0}, False, False),
        ({"operable": "yes"}, True, False),
        ({"valve_status": "closed"}, True, True),
        ({"valve_status": "CLOSED "}, True, True),
        ({"valve_status": "open"}, True, False),
    ],
)
def test_valve_states(attrs: dict[str, Any], operable: bool, closed: bool) -> None:
    assert valve_operable(attrs) is operable
    assert valve_normally_closed(attrs) is closed


def test_the_large_graph_search_agrees_with_the_small_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """:func:`reachable` walks a large segment graph with scipy's BFS; on a random grid with
    valves (one normally closed) it reaches the same segments as the Python walk."""
    import random

    from assets import network_graph as ng

    rnd = random.Random(5)
    items: list[Asset] = [point("T", "tank", (-20, -20)), pipe("P-S", (-20, -20), (0, 0))]
    for i in range(12):
        for j in range(12):
            for di, dj in ((1, 0), (0, 1)):
                if i + di >= 12 or j + dj >= 12:
                    continue
                a, b = (i * 50.0, j * 50.0), ((i + di) * 50.0, (j + dj) * 50.0)
                code = f"P{i}-{j}-{di}"
                items.append(pipe(code, a, b))
                if rnd.random() < 0.6:
                    at = (a[0] + (b[0] - a[0]) * 0.1, a[1] + (b[1] - a[1]) * 0.1)
                    attrs = {"valve_status": "closed"} if (i, j) == (5, 5) else {}
                    items.append(point(f"V{code[1:]}", "valve", at, attrs=attrs))
    g = build_graph(items)
    assert g.source_segments and len(g.valves) > 100
    valves = sorted(g.valves)
    for _ in range(20):
        blocked = frozenset(rnd.sample(valves, rnd.randint(0, 40)))
        start = frozenset(rnd.sample(range(len(g.segment_valves)), 2))
        monkeypatch.setattr(ng, "SMALL_GRAPH", 10**9)
        slow = ng.reachable(g, start, blocked=blocked)
        monkeypatch.setattr(ng, "SMALL_GRAPH", 0)
        fast = ng.reachable(g, start, blocked=blocked)
        assert fast == slow and start <= fast
