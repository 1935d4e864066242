"""The water network of the register as a graph, for valve isolation (pure: assets in, graph
out).

* **Vertices** are the places where pipes meet: pipe ends closer than ``snap_m`` are one
  vertex, and a point asset (valve, hydrant, model node, tank...) on or at the end of a pipe
  sits on one. A point asset on the inside of a pipe (a valve 5 m from a junction) splits the
  pipe there, so the two sides of the valve are two different edges.
* **Edges** are pipes, or the parts of a pipe between the point assets on it. A valve, PRV or
  pump of a hydraulic model (an EPANET import: ``attrs.from`` and ``attrs.to`` name two model
  nodes) is a vertex of its own with an edge to each of its two nodes.
* **Valves** are the vertices where a valve asset sits. Closing one stops the water through
  every edge that meets there (valves are nodes, as in Giswater's mincut): a valve drawn at
  a junction of three pipes shuts the junction. A valve whose ``attrs.operable`` is false
  (broken, seized, buried) cannot be closed; one whose ``attrs.valve_status`` is ``closed`` is
  kept closed in normal operation (a zone boundary).
* **Segments** are the parts of the network between valves: the edges joined through the
  vertices that are not valves (the "valve segments" of the isolation literature). Every
  isolation is worked out on the much smaller graph of segments and the valves between them.
* **Sources** are tanks, wells and pumping stations (an EPANET reservoir is imported as a
  tank). A segment that no source reaches in normal operation is not counted as cut off by
  an isolation (it had no water to lose; ``suvnet assets check`` reports it as disconnected).

Service connections hang on the edge of their feeding pipe where their first point (the tap)
is. Only active water assets take part: planned ones are not built yet, abandoned ones gone.
Distances are in metres on a local plane around the network, as in :mod:`assets.checks`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
import shapely.ops
from scipy.sparse import coo_matrix  # type: ignore[import-untyped]
from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]

from assets.geo import local_metres
from assets.model import Asset, Geom, geom_type

VALVE_KINDS = frozenset({"valve"})
"""Point assets that can be closed to isolate a part of the network."""
SOURCE_KINDS = frozenset({"tank", "well", "pumping_station"})
LINK_KINDS = frozenset({"valve", "prv", "pump"})
"""Kinds that a hydraulic model joins between two nodes (attrs.from, attrs.to)."""
NOT_OPERABLE_WORDS = frozenset(
    {"false", "no", "0", "n", "f", "off", "broken", "inoperable", "seized", "yo'q", "нет"}
)


def valve_operable(attrs: Mapping[str, Any]) -> bool:
    """Whether a valve can be closed: ``attrs.operable`` false (or 'no', 'broken', 0...)
    says it cannot; anything else, or nothing, says it can."""
    v = attrs.get("operable", True)
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str):
        return v.strip().lower() not in NOT_OPERABLE_WORDS
    return True


def valve_normally_closed(attrs: Mapping[str, Any]) -> bool:
    """A valve kept closed in normal operation (``attrs.valve_status`` = closed)."""
    return str(attrs.get("valve_status") or "").strip().lower() == "closed"


@dataclass(frozen=True)
class GraphOptions:
    snap_m: float = 0.05
    """Pipe ends closer than this meet (as in the network checks)."""
    on_pipe_m: float = 0.5
    """A point asset this close to a pipe sits on it (valves are often drawn a little off)."""
    tap_m: float = 2.0
    """A service connection without a known feeding pipe hangs on a pipe this close to its
    first point."""


@dataclass(frozen=True)
class Valve:
    code: str
    vertex: int
    operable: bool
    normally_closed: bool


@dataclass
class NetworkGraph:
    """See the module doc. Arrays are indexed by vertex (``vertex_*``), edge (``edge_*``) or
    segment (``segment_*``)."""

    lon0: float
    lat0: float
    vertex_lonlat: np.ndarray[Any, Any]
    vertex_assets: list[tuple[str, ...]]
    edge_u: np.ndarray[Any, Any]
    edge_v: np.ndarray[Any, Any]
    edge_pipe: list[str | None]
    edge_span: np.ndarray[Any, Any]
    edge_len_m: np.ndarray[Any, Any]
    edge_geom: np.ndarray[Any, Any]
    edge_geom_m: np.ndarray[Any, Any]
    edge_zone: list[str | None]
    edge_services: dict[int, list[str]]
    pipe_edges: dict[str, list[int]]
    valves: dict[int, Valve]
    valve_vertex: dict[str, int]
    sources: dict[int, str]
    edge_segment: np.ndarray[Any, Any]
    segment_edges: list[list[int]]
    segment_valves: list[tuple[int, ...]]
    valve_segments: dict[int, tuple[int, ...]]
    segment_zone: list[str | None]
    source_segments: frozenset[int]
    supplied: frozenset[int] | None
    """Segments with water in normal operation; None when the register has no source."""
    asset_refs: dict[str, str] = field(default_factory=dict)
    """Asset code -> its element of the hydraulic model (where the sensors are placed)."""
    unattached_services: list[str] = field(default_factory=list)
    pipe_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Pipe code -> diameter_mm, material, install_year, length_m, zone, condition_grade."""
    version: int = 0
    """The register's version this graph was built from (set by the caller)."""
    _tree: Any = None

    @property
    def segments(self) -> int:
        return len(self.segment_edges)

    def nearest_edge(self, lon: float, lat: float, max_m: float) -> tuple[int, float] | None:
        """The edge nearest to a point and its distance in metres (None beyond ``max_m``)."""
        if not len(self.edge_geom_m):
            return None
        if self._tree is None:
            self._tree = shapely.STRtree(self.edge_geom_m)
        mx, my = local_metres(self.lon0, self.lat0)
        pt = shapely.Point((lon - self.lon0) * mx, (lat - self.lat0) * my)
        hit = self._tree.query_nearest(pt, max_distance=max_m, return_distance=True)
        idx, dist = hit
        if not len(idx):
            return None
        return int(idx[0]), float(dist[0])

    def edge_fraction(self, edge: int, lon: float, lat: float) -> float:
        """Where along its pipe (0..1) the point nearest to (lon, lat) on ``edge`` is."""
        mx, my = local_metres(self.lon0, self.lat0)
        g = self.edge_geom_m[edge]
        pt = shapely.Point((lon - self.lon0) * mx, (lat - self.lat0) * my)
        f = float(shapely.line_locate_point(g, pt, normalized=True))
        a, b = self.edge_span[edge]
        return float(a + (b - a) * f)


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        p = self.parent
        while p[x] != x:
            p[x] = p[p[x]]
            x = p[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _to_plane(geoms: Sequence[Geom], lon0: float, lat0: float) -> np.ndarray[Any, Any]:
    mx, my = local_metres(lon0, lat0)

    def f(xy: Any) -> Any:
        out = np.empty_like(xy)
        out[:, 0] = (xy[:, 0] - lon0) * mx
        out[:, 1] = (xy[:, 1] - lat0) * my
        return out

    out: np.ndarray[Any, Any] = shapely.transform(np.asarray(geoms, dtype=object), f)
    return out


def _empty(lon0: float = 0.0, lat0: float = 0.0) -> NetworkGraph:
    z = np.zeros(0, dtype=np.int64)
    return NetworkGraph(
        lon0=lon0,
        lat0=lat0,
        vertex_lonlat=np.zeros((0, 2)),
        vertex_assets=[],
        edge_u=z,
        edge_v=z,
        edge_pipe=[],
        edge_span=np.zeros((0, 2)),
        edge_len_m=np.zeros(0),
        edge_geom=np.asarray([], dtype=object),
        edge_geom_m=np.asarray([], dtype=object),
        edge_zone=[],
        edge_services={},
        pipe_edges={},
        valves={},
        valve_vertex={},
        sources={},
        edge_segment=z,
        segment_edges=[],
        segment_valves=[],
        valve_segments={},
        segment_zone=[],
        source_segments=frozenset(),
        supplied=None,
    )


def build_graph(items: Sequence[Asset], opts: GraphOptions | None = None) -> NetworkGraph:
    """The graph of the active water assets among ``items`` (see the module doc)."""
    o = opts or GraphOptions()
    live = [a for a in items if a.system == "water" and a.status == "active"]
    pipes = [a for a in live if a.kind == "pipe"]
    if not pipes:
        return _empty()
    services = [a for a in live if a.kind == "service_connection"]
    points = [a for a in live if a.kind not in ("pipe", "service_connection")]
    b = shapely.total_bounds(np.asarray([a.geometry for a in live], dtype=object))
    lon0, lat0 = float((b[0] + b[2]) / 2), float((b[1] + b[3]) / 2)

    # model links (a valve, PRV or pump between two model nodes) and free points
    by_ref = {a.ref_code: a.code for a in points if a.ref_code and a.kind not in LINK_KINDS}
    links = [
        a
        for a in points
        if a.kind in LINK_KINDS
        and str(a.attrs.get("from")) in by_ref
        and str(a.attrs.get("to")) in by_ref
    ]
    link_codes = {a.code for a in links}
    free = [a for a in points if a.code not in link_codes]
    polys = [a for a in free if geom_type(a.geometry) == "Polygon"]
    pts = [a for a in free if geom_type(a.geometry) != "Polygon"]

    n_p = len(pipes)
    pg_ll = np.asarray([a.geometry for a in pipes], dtype=object)
    pg = _to_plane(list(pg_ll), lon0, lat0)
    plen = shapely.length(pg)
    ends_m = np.concatenate([shapely.get_point(pg, 0), shapely.get_point(pg, -1)])
    ends_ll = np.concatenate([shapely.get_point(pg_ll, 0), shapely.get_point(pg_ll, -1)])
    n_pts, n_poly, n_link = len(pts), len(polys), len(links)
    # candidate vertices: pipe ends, free points, polygons, model links
    off_pts = 2 * n_p
    off_poly = off_pts + n_pts
    off_link = off_poly + n_poly
    uf = _UnionFind(off_link + n_link)
    a_idx, b_idx = shapely.STRtree(ends_m).query(ends_m, predicate="dwithin", distance=o.snap_m)
    for x, y in zip(a_idx.tolist(), b_idx.tolist(), strict=True):
        if x < y:
            uf.union(x, y)
    splits: dict[int, list[tuple[float, int]]] = {}
    pipe_tree = shapely.STRtree(pg)
    if n_pts:
        pt_m = _to_plane([a.geometry for a in pts], lon0, lat0)
        q_pt, q_pipe = pipe_tree.query(pt_m, predicate="dwithin", distance=o.on_pipe_m)
        best: dict[int, tuple[float, int]] = {}
        dists = shapely.distance(pt_m[q_pt], pg[q_pipe])
        for i, j, d in zip(q_pt.tolist(), q_pipe.tolist(), dists.tolist(), strict=True):
            if i not in best or d < best[i][0]:
                best[i] = (d, j)
        for i, (_, j) in best.items():
            s = float(shapely.line_locate_point(pg[j], pt_m[i]))
            if s <= o.on_pipe_m:
                uf.union(off_pts + i, j)
            elif s >= plen[j] - o.on_pipe_m:
                uf.union(off_pts + i, n_p + j)
            else:
                splits.setdefault(j, []).append((s, off_pts + i))
    for k, a in enumerate(polys):
        area = _to_plane([a.geometry], lon0, lat0)[0]
        for e in shapely.STRtree(ends_m).query(area, predicate="dwithin", distance=o.snap_m):
            uf.union(off_poly + k, int(e))
    pt_index = {a.code: off_pts + i for i, a in enumerate(pts)}
    pt_index.update({a.code: off_poly + k for k, a in enumerate(polys)})
    pt_index.update({a.code: off_link + k for k, a in enumerate(links)})

    # splits on the same pipe closer than snap_m are one vertex
    for items_on in splits.values():
        items_on.sort()
        for (s1, c1), (s2, c2) in itertools.pairwise(items_on):
            if s2 - s1 <= o.snap_m:
                uf.union(c1, c2)

    # number the vertices
    roots: dict[int, int] = {}
    cand_vertex = np.empty(off_link + n_link, dtype=np.int64)
    for c in range(off_link + n_link):
        r = uf.find(c)
        if r not in roots:
            roots[r] = len(roots)
        cand_vertex[c] = roots[r]
    n_v = len(roots)
    lonlat = np.zeros((n_v, 2))
    end_xy = shapely.get_coordinates(ends_ll)
    seen = np.zeros(n_v, dtype=bool)
    for c in range(2 * n_p):
        v = cand_vertex[c]
        if not seen[v]:
            lonlat[v] = end_xy[c]
            seen[v] = True
    assets_at: list[list[str]] = [[] for _ in range(n_v)]
    for i, a in enumerate(pts):
        v = cand_vertex[off_pts + i]
        assets_at[v].append(a.code)
        if not seen[v]:
            lonlat[v] = shapely.get_coordinates(a.geometry)[0]
            seen[v] = True
    for k, a in enumerate(polys):
        v = cand_vertex[off_poly + k]
        assets_at[v].append(a.code)
        if not seen[v]:
            c = shapely.get_coordinates(shapely.centroid(a.geometry))[0]
            lonlat[v] = c
            seen[v] = True
    for k, a in enumerate(links):
        v = cand_vertex[off_link + k]
        assets_at[v].append(a.code)
        lonlat[v] = shapely.get_coordinates(a.geometry)[0]

    # edges: each pipe cut at the point assets on it; each model link to its two nodes
    eu: list[int] = []
    ev: list[int] = []
    e_pipe: list[str | None] = []
    e_span: list[tuple[float, float]] = []
    e_len: list[float] = []
    e_geom: list[Geom] = []
    e_zone: list[str | None] = []
    pipe_edges: dict[str, list[int]] = {}
    for j, p in enumerate(pipes):
        chain = [(0.0, int(cand_vertex[j]))]
        for s, c in sorted(splits.get(j, [])):
            v = int(cand_vertex[c])
            if v != chain[-1][1]:
                chain.append((s, v))
        chain.append((float(plen[j]), int(cand_vertex[n_p + j])))
        total = float(plen[j]) or 1.0
        mine = pipe_edges.setdefault(p.code, [])
        for (s1, v1), (s2, v2) in itertools.pairwise(chain):
            f1, f2 = s1 / total, s2 / total
            mine.append(len(eu))
            eu.append(v1)
            ev.append(v2)
            e_pipe.append(p.code)
            e_span.append((f1, f2))
            e_len.append(s2 - s1)
            if len(chain) == 2:
                e_geom.append(p.geometry)
            else:
                e_geom.append(
                    shapely.ops.substring(p.geometry, f1, f2, normalized=True)
                    if f2 > f1
                    else shapely.LineString([p.geometry.coords[0], p.geometry.coords[0]])
                )
            e_zone.append(p.zone)
    node_vertex = {
        a.ref_code: int(cand_vertex[pt_index[a.code]])
        for a in [*pts, *polys]
        if a.ref_code and a.kind not in LINK_KINDS
    }
    for k, a in enumerate(links):
        v = int(cand_vertex[off_link + k])
        for end in ("from", "to"):
            w = node_vertex.get(str(a.attrs.get(end)))
            if w is None:
                continue
            eu.append(w)
            ev.append(v)
            e_pipe.append(None)
            e_span.append((0.0, 1.0))
            e_len.append(0.0)
            e_geom.append(shapely.LineString([lonlat[w], lonlat[v]]))
            e_zone.append(a.zone)
    edge_u = np.asarray(eu, dtype=np.int64)
    edge_v = np.asarray(ev, dtype=np.int64)
    n_e = len(eu)
    edge_geom = np.asarray(e_geom, dtype=object)

    # valves and sources at the vertices
    valves: dict[int, Valve] = {}
    sources: dict[int, str] = {}
    for a in [*pts, *polys, *links]:
        v = int(cand_vertex[pt_index[a.code]])
        if a.kind in VALVE_KINDS and v not in valves:
            valves[v] = Valve(a.code, v, valve_operable(a.attrs), valve_normally_closed(a.attrs))
        elif a.kind in SOURCE_KINDS:
            sources.setdefault(v, a.code)

    # service connections: on the edge of their feeding pipe where their tap is
    edge_services: dict[int, list[str]] = {}
    unattached: list[str] = []
    pipe_no = {p.code: j for j, p in enumerate(pipes)}
    if services:
        taps_m = _to_plane(
            [shapely.Point(shapely.get_coordinates(s.geometry)[0]) for s in services], lon0, lat0
        )
        for k, sc in enumerate(services):
            j = pipe_no.get(sc.feed_pipe or "")
            if j is None:
                near = pipe_tree.query_nearest(taps_m[k], max_distance=o.tap_m)
                if not len(near):
                    unattached.append(sc.code)
                    continue
                j = int(near[0])
            f = float(shapely.line_locate_point(pg[j], taps_m[k], normalized=True))
            mine = pipe_edges[pipes[j].code]
            e = next((x for x in mine if e_span[x][0] <= f <= e_span[x][1]), mine[-1])
            edge_services.setdefault(e, []).append(sc.code)

    # segments: edges joined through the vertices that are not valves
    is_valve = np.zeros(n_v, dtype=bool)
    is_valve[list(valves)] = True
    rows: list[np.ndarray[Any, Any]] = []
    cols: list[np.ndarray[Any, Any]] = []
    for end_v in (edge_u, edge_v):
        keep = ~is_valve[end_v]
        rows.append(np.flatnonzero(keep))
        cols.append(n_e + end_v[keep])
    row_idx = np.concatenate(rows)
    col_idx = np.concatenate(cols)
    m = coo_matrix((np.ones(len(row_idx)), (row_idx, col_idx)), shape=(n_e + n_v, n_e + n_v))
    _, labels = connected_components(m, directed=False)
    edge_labels = labels[:n_e]
    uniq, edge_segment = np.unique(edge_labels, return_inverse=True)
    n_s = len(uniq)
    segment_edges: list[list[int]] = [[] for _ in range(n_s)]
    for e, s in enumerate(edge_segment.tolist()):
        segment_edges[s].append(e)
    seg_valves: list[set[int]] = [set() for _ in range(n_s)]
    valve_segs: dict[int, set[int]] = {v: set() for v in valves}
    for ends in (edge_u, edge_v):
        for e in np.flatnonzero(is_valve[ends]).tolist():
            v = int(ends[e])
            s = int(edge_segment[e])
            seg_valves[s].add(v)
            valve_segs[v].add(s)
    segment_zone: list[str | None] = []
    for edges in segment_edges:
        counts: dict[str, int] = {}
        for e in edges:
            z = e_zone[e]
            if z:
                counts[z] = counts.get(z, 0) + 1
        segment_zone.append(max(sorted(counts), key=lambda z: counts[z]) if counts else None)
    source_segments: set[int] = set()
    for v in sources:
        if v in valves:
            continue
        for e in np.flatnonzero((edge_u == v) | (edge_v == v)).tolist():
            source_segments.add(int(edge_segment[e]))
    g = NetworkGraph(
        lon0=lon0,
        lat0=lat0,
        vertex_lonlat=lonlat,
        vertex_assets=[tuple(x) for x in assets_at],
        edge_u=edge_u,
        edge_v=edge_v,
        edge_pipe=e_pipe,
        edge_span=np.asarray(e_span, dtype=float).reshape(-1, 2),
        edge_len_m=np.asarray(e_len, dtype=float),
        edge_geom=edge_geom,
        edge_geom_m=_to_plane(list(edge_geom), lon0, lat0),
        edge_zone=e_zone,
        edge_services=edge_services,
        pipe_edges=pipe_edges,
        valves=valves,
        valve_vertex={x.code: v for v, x in valves.items()},
        sources=sources,
        edge_segment=edge_segment.astype(np.int64),
        segment_edges=segment_edges,
        segment_valves=[tuple(sorted(x)) for x in seg_valves],
        valve_segments={v: tuple(sorted(x)) for v, x in valve_segs.items()},
        segment_zone=segment_zone,
        source_segments=frozenset(source_segments),
        supplied=None,
        asset_refs={a.code: a.ref_code for a in live if a.ref_code},
        unattached_services=unattached,
        pipe_info={
            p.code: {
                "diameter_mm": p.diameter_mm,
                "material": p.material,
                "install_year": p.install_year,
                "condition_grade": p.condition_grade,
                "zone": p.zone,
                "length_m": float(plen[j]),
            }
            for j, p in enumerate(pipes)
        },
    )
    if g.source_segments:
        g.supplied = reachable(g, g.source_segments, blocked=frozenset())
    return g


SMALL_GRAPH = 2000
"""Segments up to which :func:`reachable` walks in Python; above, scipy's BFS (C)."""


def _valve_links(g: NetworkGraph) -> tuple[Any, Any, Any]:
    """The segment graph as arrays, once per graph: (segment, segment, valve) for each pair
    of segments a valve that is open in normal operation joins."""
    got: tuple[Any, Any, Any] | None = getattr(g, "_valve_links", None)
    if got is None:
        a: list[int] = []
        b: list[int] = []
        via: list[int] = []
        for v, segs in g.valve_segments.items():
            if g.valves[v].normally_closed:
                continue
            for s, t in itertools.pairwise(segs):
                a.append(s)
                b.append(t)
                via.append(v)
        got = (np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64), np.asarray(via))
        g._valve_links = got  # type: ignore[attr-defined]  # cached with the graph
    return got


def reachable(
    g: NetworkGraph, start: frozenset[int] | set[int], *, blocked: frozenset[int]
) -> frozenset[int]:
    """The segments water reaches from ``start`` through every valve that is open: not kept
    closed in normal operation and not in ``blocked`` (valve vertices)."""
    n = len(g.segment_valves)
    if n > SMALL_GRAPH and start:
        from scipy.sparse.csgraph import breadth_first_order

        a, b, via = _valve_links(g)
        keep = ~np.isin(via, np.fromiter(blocked, dtype=via.dtype, count=len(blocked)))
        first = np.fromiter(start, dtype=np.int64, count=len(start))
        rows = np.concatenate([a[keep], np.full(len(first), n)])
        cols = np.concatenate([b[keep], first])
        m = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n + 1, n + 1))
        order = breadth_first_order(m.tocsr(), n, directed=False, return_predecessors=False)
        return frozenset(order[order < n].tolist())
    seen = set(start)
    stack = list(start)
    valves = g.valves
    seg_valves = g.segment_valves
    valve_segs = g.valve_segments
    while stack:
        s = stack.pop()
        for v in seg_valves[s]:
            if v in blocked or valves[v].normally_closed:
                continue
            for t in valve_segs[v]:
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
    return frozenset(seen)


def route_pipes(g: NetworkGraph, start: str, end: str) -> list[str]:
    """The pipes of the shortest way along the network from asset ``start`` to asset
    ``end`` (points or pipes), in order; empty when there is none."""
    from scipy.sparse.csgraph import dijkstra

    where: dict[str, int] = {}
    for v, codes in enumerate(g.vertex_assets):
        for c in codes:
            where.setdefault(c, v)
    for pipe, edges in g.pipe_edges.items():
        where.setdefault(pipe, int(g.edge_u[edges[0]]))
    a, b = where.get(start), where.get(end)
    if a is None or b is None or not len(g.edge_u):
        return []
    n = len(g.vertex_assets)
    weights = np.maximum(g.edge_len_m, 0.01)
    m = coo_matrix(
        (np.concatenate([weights, weights]),
         (np.concatenate([g.edge_u, g.edge_v]), np.concatenate([g.edge_v, g.edge_u]))),
        shape=(n, n),
    ).tocsr()  # fmt: skip
    dist, pred = dijkstra(m, indices=a, return_predecessors=True)
    if not np.isfinite(dist[b]):
        return []
    edge_of: dict[tuple[int, int], int] = {}
    for e, (u, v) in enumerate(zip(g.edge_u.tolist(), g.edge_v.tolist(), strict=True)):
        for key in ((u, v), (v, u)):
            if key not in edge_of or g.edge_len_m[e] < g.edge_len_m[edge_of[key]]:
                edge_of[key] = e
    out: list[str] = []
    v = b
    while v != a:
        u = int(pred[v])
        p = g.edge_pipe[edge_of[(u, v)]]
        if p is not None and (not out or out[-1] != p):
            out.append(p)
        v = u
    out.reverse()
    if end in g.pipe_edges and (not out or out[-1] != end):
        out.append(end)
    if start in g.pipe_edges and (not out or out[0] != start):
        out.insert(0, start)
    return out
