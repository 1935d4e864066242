"""The renewal ranking against the database (async, the API's pool): the pipes from the
register's graph, the repairs from the work orders, and what each pipe's failure would cut
off (its isolation set's service connections and their accounts, critical customers apart).

Which service connections a pipe's isolation cuts off depends only on the register, so it
is kept with the graph (worked out once per register version); the accounts behind them and
the critical flags are read each time."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Any

import orjson
import shapely
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from assets.isolation import isolate_segments
from assets.isolation_queries import network_graph
from assets.network_graph import NetworkGraph
from assets.renewal import Consequence, Failure, Options, Pipe, failure_rates, rank

AConn = AsyncConnection[Any]

FAILURES_SQL = """
SELECT a.code, coalesce(w.ended_at, w.reported_at) AS at, w.failure
FROM work_orders w JOIN assets a ON a.id = w.asset_id
WHERE w.status = 'closed' AND w.failure IS NOT NULL AND w.kind IN ('repair', 'replacement')
ORDER BY at"""

SERVICE_ACCOUNTS_SQL = """
SELECT s.code, acc.id, cc.kind IS NOT NULL AS critical
FROM assets s
JOIN accounts acc ON acc.id = s.account_id OR acc.house_id = s.house_id
LEFT JOIN critical_customers cc ON cc.account_id = acc.id
WHERE s.kind = 'service_connection' AND s.status = 'active' AND acc.status <> 'closed'"""

_cuts: dict[tuple[int, int], dict[str, tuple[tuple[str, ...], bool]]] = {}


def pipe_cuts(g: NetworkGraph) -> dict[str, tuple[tuple[str, ...], bool]]:
    """For every pipe: the service connections its isolation cuts off, and whether valves
    can isolate it at all (False: a source sits in its segment)."""
    key = (id(g), g.version)
    got = _cuts.get(key)
    if got is not None:
        return got
    by_seeds: dict[frozenset[int], tuple[tuple[str, ...], bool]] = {}
    out: dict[str, tuple[tuple[str, ...], bool]] = {}
    for pipe, edges in g.pipe_edges.items():
        seeds = frozenset(int(g.edge_segment[e]) for e in edges)
        hit = by_seeds.get(seeds)
        if hit is None:
            iso = isolate_segments(g, seeds, target={"pipe": pipe})
            services = tuple(
                sorted(
                    c
                    for s in iso.cut
                    for e in g.segment_edges[s]
                    for c in g.edge_services.get(e, [])
                )
            )
            hit = (services, not iso.sources_inside)
            by_seeds[seeds] = hit
        out[pipe] = hit
    _cuts.clear()
    _cuts[key] = out
    return out


def _date(v: Any) -> date:
    return v.date() if isinstance(v, datetime) else v


def pipes_geojson(g: NetworkGraph, ranked: list[dict[str, Any]]) -> dict[str, Any]:
    """The ranked pipes as lines for the map, with their rank and score."""
    features: list[dict[str, Any]] = []
    for p in ranked:
        edges = g.pipe_edges.get(p["code"])
        if not edges:
            continue
        geom = shapely.multilinestrings(list(g.edge_geom[list(edges)]))
        features.append(
            {
                "type": "Feature",
                "geometry": orjson.Fragment(shapely.to_geojson(geom)),
                "properties": {k: p[k] for k in ("code", "rank", "score", "accounts", "critical")},
            }
        )
    return {"type": "FeatureCollection", "features": features}


async def ranking(
    conn: AConn,
    *,
    today: date,
    limit: int = 100,
    opts: Options | None = None,
    geometry: bool = False,
) -> dict[str, Any]:
    """The failure rates by group and the pipes ranked for renewal (the first ``limit``);
    ``geometry``: also the listed pipes as GeoJSON lines for the map."""
    g = await network_graph(conn)
    pipes = [
        Pipe(
            code,
            float(info["length_m"]),
            info.get("material"),
            info.get("diameter_mm"),
            info.get("install_year"),
            info.get("condition_grade"),
            info.get("zone"),
        )
        for code, info in sorted(g.pipe_info.items())
    ]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(FAILURES_SQL)
        fails = [Failure(r["code"], _date(r["at"]), r["failure"]) for r in await cur.fetchall()]
        await cur.execute(SERVICE_ACCOUNTS_SQL)
        behind: dict[str, list[tuple[int, bool]]] = {}
        for r in await cur.fetchall():
            behind.setdefault(r["code"], []).append((int(r["id"]), bool(r["critical"])))
    cuts = await asyncio.to_thread(pipe_cuts, g)  # one isolation per pipe: off the loop
    consequences: dict[str, Consequence] = {}
    for code, (services, isolable) in cuts.items():
        accounts: dict[int, bool] = {}
        for s in services:
            for acc, critical in behind.get(s, ()):
                accounts[acc] = accounts.get(acc, False) or critical
        consequences[code] = Consequence(
            len(accounts), sum(1 for c in accounts.values() if c), isolable
        )
    since = min((f.on for f in fails), default=None)
    rates = failure_rates(pipes, fails, today=today, since=since, opts=opts)
    ranked = rank(pipes, fails, consequences, today=today, since=since, opts=opts)
    out: dict[str, Any] = {
        "today": today.isoformat(),
        "since": since.isoformat() if since else None,
        "failures": len(fails),
        "rates": [
            {
                "material": r.material,
                "diameter": r.diameter,
                "age": r.age,
                "km": r.km,
                "failures": r.failures,
                "years": r.years,
                "rate_per_km_year": round(r.rate, 4),
                "observed_per_km_year": round(r.raw_rate, 4),
            }
            for r in rates
        ],
        "pipes": [
            {
                "rank": r.rank,
                "code": r.code,
                "score": round(r.score, 4),
                "likelihood_per_year": round(r.likelihood, 4),
                "consequence": r.consequence,
                "accounts": r.accounts,
                "critical": r.critical,
                "failures": r.failures,
                "material": r.pipe.material,
                "diameter_mm": r.pipe.diameter_mm,
                "install_year": r.pipe.install_year,
                "length_m": round(r.pipe.length_m, 1),
                "zone": r.pipe.zone,
                "reasons": [{"code": x.code, **x.values} for x in r.reasons],
            }
            for r in ranked[:limit]
        ],
        "total": len(ranked),
    }
    if geometry:
        out["geojson"] = pipes_geojson(g, out["pipes"])
    return out
