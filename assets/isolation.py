"""Valve isolation ("mincut"): which valves to close to take a pipe out of service, and what
loses water then (pure: a :class:`~assets.network_graph.NetworkGraph` in, an
:class:`Isolation` out).

The work is done on the graph of segments (the parts of the network between valves):

1. From the segments of the failed pipe (or of the pipe part at a point), spread over every
   valve that cannot be closed: one that is broken (``attrs.operable`` false) or that the
   crew found seized today (``unavailable``). Those are passed over and the next ring of
   valves takes their place. The segments reached are the **region** that is drained.
2. The valves met on the way out are the **boundary**. A valve kept closed in normal
   operation (a zone boundary) is already closed and is only named.
3. Water is then traced from the sources with the boundary closed. A boundary valve whose far
   side the water still reaches must be closed (**close**); one whose far side gets no water
   any more need not be (**not_needed**: that side is without water anyway, shown as cut off).
   This gives the smallest set of valves to close.
4. What loses water (**cut**) is the region and every segment that had water before and
   has none now. With no source in the register, the boundary is closed as it is and only the
   region is counted.

An isolation that cannot be done is an error, never an empty answer: a pipe with no valve
that could separate it from its source raises :class:`NoValvesError` with the boundary valves
of its zone as the offer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import shapely

from assets.errors import AssetError
from assets.network_graph import NetworkGraph, reachable


class IsolationError(AssetError):
    """An isolation cannot be computed (the message says why)."""

    code = "isolation_failed"


class NoPipeError(IsolationError):
    """The pipe named does not exist in the network, or no pipe is near the point."""

    code = "no_pipe"


class NotSuppliedError(IsolationError):
    """The pipe has no water in the register's network (no source reaches it)."""

    code = "not_supplied"


@dataclass(frozen=True)
class Isolation:
    """The answer (segment ids refer to the graph it was computed on)."""

    target: dict[str, Any]
    region: frozenset[int]
    close: tuple[str, ...]
    not_needed: tuple[str, ...] = ()
    already_closed: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    cut: frozenset[int] = frozenset()
    supply_known: bool = True
    sources_inside: tuple[str, ...] = ()


class NoValvesError(IsolationError):
    """No valve can separate the pipe from its water. ``offer`` is the isolation of its
    zone by the zone's boundary valves (None when the pipe has no zone or the zone cannot be
    isolated either)."""

    code = "no_isolating_valves"

    def __init__(self, message: str, *, pipe: str, zone: str | None, offer: Isolation | None):
        super().__init__(message)
        self.pipe = pipe
        self.zone = zone
        self.offer = offer
        self.offer_answer: dict[str, Any] | None = None
        """The offer as people and devices (filled in by the database side)."""


@dataclass(frozen=True)
class _Walk:
    region: frozenset[int]
    boundary: frozenset[int]
    already: frozenset[int]
    skipped: frozenset[int]


def _walk(g: NetworkGraph, seeds: Iterable[int], unavailable: frozenset[str]) -> _Walk:
    region = set(seeds)
    stack = list(region)
    boundary: set[int] = set()
    already: set[int] = set()
    skipped: set[int] = set()
    while stack:
        s = stack.pop()
        for v in g.segment_valves[s]:
            valve = g.valves[v]
            if valve.normally_closed:
                already.add(v)
                continue
            if valve.operable and valve.code not in unavailable:
                boundary.add(v)
                continue
            skipped.add(v)
            for t in g.valve_segments[v]:
                if t not in region:
                    region.add(t)
                    stack.append(t)

    def outward(vs: set[int]) -> frozenset[int]:
        # a valve with every side in the region (between two seeds) is not on its boundary
        return frozenset(v for v in vs if any(t not in region for t in g.valve_segments[v]))

    return _Walk(frozenset(region), outward(boundary), outward(already), frozenset(skipped))


def _codes(g: NetworkGraph, vertices: Iterable[int]) -> tuple[str, ...]:
    return tuple(sorted(g.valves[v].code for v in vertices))


def isolate_segments(
    g: NetworkGraph,
    seeds: Iterable[int],
    *,
    target: dict[str, Any],
    unavailable: Iterable[str] = (),
) -> Isolation:
    """The isolation of the segments ``seeds`` (see the module doc); no error checks."""
    w = _walk(g, seeds, frozenset(unavailable))
    sources_inside = tuple(
        sorted(
            g.sources[v]
            for v in g.sources
            if v not in g.valves
            and any(
                int(g.edge_segment[e]) in w.region
                for e in np.flatnonzero((g.edge_u == v) | (g.edge_v == v)).tolist()
            )
        )
    )
    if g.supplied is None:
        return Isolation(
            target,
            w.region,
            _codes(g, w.boundary),
            already_closed=_codes(g, w.already),
            skipped=_codes(g, w.skipped),
            cut=w.region,
            supply_known=False,
            sources_inside=sources_inside,
        )
    feeding = frozenset(g.source_segments - w.region)
    reached = reachable(g, feeding, blocked=w.boundary | _region_valves(g, w.region))
    reached = reached - w.region
    close = frozenset(v for v in w.boundary if any(t in reached for t in g.valve_segments[v]))
    cut = (g.supplied - reached) | w.region
    return Isolation(
        target,
        w.region,
        _codes(g, close),
        not_needed=_codes(g, w.boundary - close),
        already_closed=_codes(g, w.already),
        skipped=_codes(g, w.skipped),
        cut=frozenset(cut),
        supply_known=True,
        sources_inside=sources_inside,
    )


def _region_valves(g: NetworkGraph, region: frozenset[int]) -> frozenset[int]:
    """The valves inside the region (the water tracing must not cross the drained part)."""
    return frozenset(v for s in region for v in g.segment_valves[s])


def _fail_if_not_isolated(g: NetworkGraph, iso: Isolation, pipe: str, zone: str | None) -> None:
    """Raise when the isolation does not stop the water to the pipe (see the module doc)."""
    if g.supplied is not None and not (iso.region & g.supplied):
        raise NotSuppliedError(
            f"pipe {pipe} gets no water in the register's network: no source reaches it "
            "(see suvnet assets check: disconnected); there is nothing to isolate"
        )
    # the water enters only through valves, and those on the way in are all closed, unless
    # a source sits inside the region itself
    ok = not iso.sources_inside if iso.supply_known else bool(iso.close or iso.already_closed)
    if ok:
        return
    offer = None
    if zone:
        try:
            offer = isolate_zone(g, zone)
        except IsolationError:
            offer = None
    reason = (
        f"no valve separates it from {', '.join(iso.sources_inside)}"
        if iso.sources_inside
        else "there is no valve around it that can be closed"
    )
    if iso.skipped:
        reason += f" (valves that cannot be closed: {', '.join(iso.skipped)})"
    tail = (
        f"; the boundary valves of zone {zone} can take the zone out: {', '.join(offer.close)}"
        if offer is not None and offer.close
        else (f"; zone {zone} has no boundary valves in the register either" if zone else "")
    )
    raise NoValvesError(
        f"pipe {pipe} cannot be isolated: {reason}{tail}", pipe=pipe, zone=zone, offer=offer
    )


def _pipe_zone(g: NetworkGraph, pipe: str) -> str | None:
    return next((g.edge_zone[e] for e in g.pipe_edges.get(pipe, []) if g.edge_zone[e]), None)


def isolate_pipe(
    g: NetworkGraph, pipe: str, *, at: float | None = None, unavailable: Iterable[str] = ()
) -> Isolation:
    """Take pipe ``pipe`` out: the part of it at ``at`` (0..1 along the pipe from its first
    point: where the failure is), or the whole pipe when the place is not known (then the
    short pieces between its ends and the valves on it go too)."""
    edges = g.pipe_edges.get(pipe)
    if not edges:
        raise NoPipeError(f"there is no active water pipe {pipe!r} in the register")
    target: dict[str, Any] = {"pipe": pipe}
    if at is not None:
        if not 0.0 <= at <= 1.0:
            raise NoPipeError(f"the place on pipe {pipe} must be between 0 and 1, not {at:g}")
        edges = [
            next((e for e in edges if g.edge_span[e][0] <= at <= g.edge_span[e][1]), edges[-1])
        ]
        target["at"] = at
    seeds = {int(g.edge_segment[e]) for e in edges}
    iso = isolate_segments(g, seeds, target=target, unavailable=unavailable)
    _fail_if_not_isolated(g, iso, pipe, _pipe_zone(g, pipe))
    return iso


def isolate_point(
    g: NetworkGraph,
    lon: float,
    lat: float,
    *,
    unavailable: Iterable[str] = (),
    max_m: float = 30.0,
) -> Isolation:
    """Take out the part of the pipe nearest to (lon, lat) (a burst found there)."""
    hit = g.nearest_edge(lon, lat, max_m)
    if hit is None:
        raise NoPipeError(f"no water pipe within {max_m:g} m of {lon:.6f}, {lat:.6f}")
    edge, dist = hit
    pipe = g.edge_pipe[edge]
    if pipe is None:  # a model valve's link: take the pipe nearest to it instead
        raise NoPipeError(f"the point {lon:.6f}, {lat:.6f} is on a valve, not on a pipe")
    target = {
        "point": [lon, lat],
        "pipe": pipe,
        "distance_m": round(dist, 1),
        "at": round(g.edge_fraction(edge, lon, lat), 4),
    }
    iso = isolate_segments(g, {int(g.edge_segment[edge])}, target=target, unavailable=unavailable)
    _fail_if_not_isolated(g, iso, pipe, g.edge_zone[edge])
    return iso


def isolate_zone(g: NetworkGraph, zone: str, *, unavailable: Iterable[str] = ()) -> Isolation:
    """Take a whole zone out by its boundary valves (an alarm that names only its zone)."""
    seeds = {s for s, z in enumerate(g.segment_zone) if z == zone}
    if not seeds:
        raise NoPipeError(f"zone {zone} has no active water pipe in the register")
    iso = isolate_segments(g, seeds, target={"zone": zone}, unavailable=unavailable)
    if not iso.close and not iso.already_closed:
        raise IsolationError(f"zone {zone} has no boundary valve that can be closed")
    return iso


# ---------------------------------------------------------------------- the answer
@dataclass(frozen=True)
class CutParts:
    """What an isolation cuts off, by asset: pipes (whole or in part), node assets,
    service connections, the hydraulic-model elements (where sensors sit), and length."""

    pipes: list[dict[str, Any]]
    nodes: list[str]
    services: list[str]
    refs: list[str]
    length_m: float
    edges: list[int] = field(default_factory=list)


def cut_parts(g: NetworkGraph, iso: Isolation) -> CutParts:
    edges = sorted(e for s in iso.cut for e in g.segment_edges[s])
    in_region = {e for s in iso.region for e in g.segment_edges[s]}
    pipes: dict[str, dict[str, Any]] = {}
    for e in edges:
        p = g.edge_pipe[e]
        if p is None:
            continue
        row = pipes.setdefault(p, {"code": p, "length_m": 0.0, "drained": False, "whole": True})
        row["length_m"] += float(g.edge_len_m[e])
        row["drained"] = row["drained"] or e in in_region
    cut_set = set(edges)
    for p, row in pipes.items():
        row["whole"] = all(e in cut_set for e in g.pipe_edges[p])
        row["length_m"] = round(row["length_m"], 1)
    vertices = {int(x) for e in edges for x in (g.edge_u[e], g.edge_v[e])} - set(g.valves)
    nodes = sorted({c for v in vertices for c in g.vertex_assets[v]})
    services = sorted(c for e in edges for c in g.edge_services.get(e, []))
    refs = sorted(
        {g.asset_refs[c] for c in [*pipes, *nodes] if c in g.asset_refs} | set(pipes) | set(nodes)
    )
    return CutParts(
        pipes=sorted(pipes.values(), key=lambda r: str(r["code"])),
        nodes=nodes,
        services=services,
        refs=refs,
        length_m=round(float(sum(g.edge_len_m[e] for e in edges)), 1),
        edges=edges,
    )


def valve_rows(g: NetworkGraph, iso: Isolation) -> list[dict[str, Any]]:
    """Every valve the isolation names, with its place and role (close first)."""
    out: list[dict[str, Any]] = []
    for role, codes in (
        ("close", iso.close),
        ("not_needed", iso.not_needed),
        ("already_closed", iso.already_closed),
        ("skipped", iso.skipped),
    ):
        for c in codes:
            v = g.valve_vertex[c]
            lon, lat = g.vertex_lonlat[v].tolist()
            out.append({"code": c, "role": role, "lon": lon, "lat": lat})
    return out


def geojson(g: NetworkGraph, iso: Isolation, parts: CutParts) -> dict[str, Any]:
    """The isolation for the map: the pipe parts without water (``drained`` for the region
    around the failure, ``cut_off`` for the parts behind it) and the valves by role."""
    in_region = {e for s in iso.region for e in g.segment_edges[s]}
    geoms: list[str] = shapely.to_geojson(g.edge_geom[parts.edges]).tolist() if parts.edges else []
    features: list[dict[str, Any]] = [
        {
            "type": "Feature",
            "geometry": orjson.Fragment(gj),
            "properties": {
                "pipe": g.edge_pipe[e],
                "role": "drained" if e in in_region else "cut_off",
            },
        }
        for e, gj in zip(parts.edges, geoms, strict=True)
    ]
    features += [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
            "properties": {"valve": r["code"], "role": r["role"]},
        }
        for r in valve_rows(g, iso)
    ]
    return {"type": "FeatureCollection", "features": features}
