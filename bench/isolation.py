"""Valve-isolation benchmark on a generated water network of about 10,000 graph nodes.

The network (saved in the register through assets.store, as an import would): a street grid
of 50 m pipes (some streets missing, so there are dead ends as well as loops), mixed
diameters and materials, valves 5 m from a junction at one end of seven pipes in ten (one in
fifty seized), a tank at a corner, and a house with its account and service connection on
a third of the pipes. The graph's nodes are the junctions and the valves (a valve splits
its pipe).

What is measured (one run, one process, against real PostgreSQL):

* graph_build_s: the register read and the graph built, once (then cached per register
  version, as the API does);
* isolation_p50_ms / isolation_p99_ms: what GET /api/v1/assets/isolation does for a random
  pipe, without HTTP: the valves to close (broken ones passed over), the pipes and service
  connections cut off, and the subscriber lookup in the database (accounts, addresses,
  critical customers, sensors, meters), the answer with its GeoJSON;
* baseline_full_bfs_ms: a plain breadth-first search over the whole graph (every vertex,
  every pipe part, from a random vertex; Python adjacency lists and a deque), timed in the
  same run. It is what an isolation costs without the valve segments: walk the network to
  find what is behind the valves. The ratio isolation_p99 / baseline is printed;
* route_sheet_s: one A3 route-map sheet of a 2 km street (40 pipes of the grid, everything
  within 400 m around), from the database query to the PDF bytes.

Usage: python -m bench.isolation [--quick] [--nodes N] [--samples N] [--fresh] [--drop]
--quick: the same network, 150 isolations; within a minute once the network is built. The
network goes through the register's checked save (store.save_assets, as an import), which
takes a minute or more on a busy 2-core machine and is not what is measured here (bench/assets.py
measures it): it is built once into a database ``suvnet_bench_isonet_<key>`` on the server of
SUVNET_BENCH_DATABASE_URL (else SUVNET_TEST_DATABASE_URL, else 127.0.0.1:5432) and kept for
the next runs (the key changes with the generator and the schema; --fresh builds it again,
--drop drops it at the end). The measurements only read. The last line printed is one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import random
import statistics
import sys
import time
from collections import deque
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import shapely
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assets import isolation_queries as iq  # noqa: E402
from assets import sheet_queries as sq  # noqa: E402
from assets.geo import local_metres  # noqa: E402
from assets.isolation import IsolationError  # noqa: E402
from assets.model import Asset  # noqa: E402
from assets.network_graph import NetworkGraph  # noqa: E402
from assets.sheet_pdf import measure, render  # noqa: E402
from assets.sheets import SheetTexts, plan  # noqa: E402
from assets.store import Actor, save_assets  # noqa: E402
from bench.common import p99, server_url, with_db  # noqa: E402
from billing.accountno import make_number  # noqa: E402
from billing.accounts import Address, ensure_address  # noqa: E402
from suvnet.migrate import migrate  # noqa: E402

console = Console(stderr=True)
LON0, LAT0 = 71.60, 40.46  # the Fergana valley
STEP_M = 50.0
VALVE_SHARE = 0.7
HOUSE_SHARE = 0.35
GENERATOR = 1
"""Bump when :func:`network` changes: the kept network database is built again."""
"""Pipes with a valve at one end (a town's network: valves on most branches)."""
NOW = datetime(2026, 11, 1, tzinfo=UTC)
TEXTS = SheetTexts(
    utility="Bench suv ta'minoti",
    title="Bench ko'chasi",
    date="01.11.2026",
    sheet="Varaq %(n)s / %(of)s",
    scale="Masshtab 1:%(scale)s",
    legend={"legend": "Shartli belgilar", "sheet_index": "Varaqlar sxemasi"},
)


def network(nodes: int, seed: int = 3) -> tuple[list[Asset], list[list[str]], int]:
    """The assets, the pipes of each grid row (west to east, for the street sheet) and the
    number of houses. About ``nodes`` graph nodes: an n x n grid of junctions and the
    valves on it."""
    rnd = random.Random(seed)
    n = max(4, round(math.sqrt(nodes / 2.2)))  # junctions plus about 1.2 valves each
    mx, my = local_metres(LON0, LAT0)

    def ll(x: float, y: float) -> tuple[float, float]:
        return (LON0 + x / mx, LAT0 + y / my)

    out: list[Asset] = [Asset("TANK-1", "tank", shapely.Point(ll(-20.0, -20.0)))]
    out.append(
        Asset("P-SRC", "pipe", shapely.LineString([ll(-20, -20), ll(0, 0)]), diameter_mm=315.0)
    )
    rows: list[list[str]] = [[] for _ in range(n)]
    houses = 0
    for i in range(n):
        for j in range(n):
            for di, dj in ((1, 0), (0, 1)):
                if i + di >= n or j + dj >= n:
                    continue
                # the grid's first row and column always there: everything is fed
                if i > 0 and j > 0 and rnd.random() < 0.12:
                    continue
                code = f"P{i}-{j}-{'e' if di else 'n'}"
                a = (i * STEP_M, j * STEP_M)
                b = ((i + di) * STEP_M, (j + dj) * STEP_M)
                out.append(
                    Asset(
                        code,
                        "pipe",
                        shapely.LineString([ll(*a), ll(*b)]),
                        diameter_mm=float(rnd.choice((63, 90, 110, 160, 225))),
                        material=rnd.choice(("PE100", "steel", "cast iron", "asbestos cement")),
                        install_year=rnd.randint(1965, 2024),
                    )
                )
                if di:
                    rows[j].append(code)
                if rnd.random() < VALVE_SHARE:
                    end = rnd.random() < 0.5
                    t = 5.0 / STEP_M if end else 1 - 5.0 / STEP_M
                    at = (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)
                    attrs = {"operable": False} if rnd.random() < 0.02 else {}
                    out.append(Asset(f"V{code[1:]}", "valve", shapely.Point(ll(*at)), attrs=attrs))
                if rnd.random() < HOUSE_SHARE:
                    houses += 1
                    mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
                    house = (mid[0] + (0 if di else 12.0), mid[1] + (12.0 if di else 0))
                    out.append(
                        Asset(
                            f"SC{code[1:]}",
                            "service_connection",
                            shapely.LineString([ll(*mid), ll(*house)]),
                            account_no=make_number(houses),
                            feed_pipe=code,
                        )
                    )
    return out, rows, houses


def subscribers(conn: psycopg.Connection[Any], houses: int) -> None:
    """One account a house, on streets of 100 houses (bulk: the bench is not about billing)."""
    street_ids: list[int] = []
    for s in range(math.ceil(houses / 100)):
        house_id, _ = ensure_address(
            conn, Address("Farg'ona viloyati", "Bench tumani", "Bench MFY", f"Ko'cha {s}", "0")
        )
        row = conn.execute("SELECT street_id FROM houses WHERE id = %s", (house_id,)).fetchone()
        assert row is not None
        street_ids.append(int(row[0]))
    with conn.cursor() as cur:
        with cur.copy("COPY houses (street_id, number) FROM STDIN") as copy:
            for h in range(1, houses + 1):
                copy.write_row((street_ids[(h - 1) // 100], str(h)))
        cur.execute(
            "CREATE TEMP TABLE bench_h AS SELECT id, row_number() OVER (ORDER BY id) AS k "
            "FROM houses WHERE number <> '0'"
        )
        ids = [int(r[0]) for r in cur.execute("SELECT id FROM bench_h ORDER BY k")]
        with cur.copy(
            "COPY accounts (number, kind, category, name, house_id, residents, opened_on, phone) "
            "FROM STDIN"
        ) as copy:
            for k, house_id in enumerate(ids, start=1):
                copy.write_row(
                    (make_number(k), "household", "household", f"Abonent {k}", house_id, 4,
                     date(2020, 1, 1), f"99890{k:07d}")
                )  # fmt: skip
        cur.execute(
            "INSERT INTO critical_customers (account_id, kind, updated_at, updated_by) "
            "SELECT id, 'school', %s, 'bench' FROM accounts WHERE id %% 97 = 0",
            (NOW,),
        )


def plain_bfs(adj: list[list[int]], start: int) -> int:
    seen = [False] * len(adj)
    seen[start] = True
    q = deque([start])
    count = 1
    while q:
        v = q.popleft()
        for w in adj[v]:
            if not seen[w]:
                seen[w] = True
                count += 1
                q.append(w)
    return count


def baseline(g: NetworkGraph, runs: int, rnd: random.Random) -> float:
    """The median time of a plain BFS over the whole graph (ms); the adjacency lists are
    built once, outside the timing."""
    adj: list[list[int]] = [[] for _ in range(len(g.vertex_assets))]
    for u, v in zip(g.edge_u.tolist(), g.edge_v.tolist(), strict=True):
        adj[u].append(v)
        adj[v].append(u)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        plain_bfs(adj, rnd.randrange(len(adj)))
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


async def measure_all(url: str, samples: int, street: list[str]) -> dict[str, Any]:
    rnd = random.Random(11)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        iq.forget_graphs()
        t0 = time.perf_counter()
        g = await iq.network_graph(conn)
        build_s = time.perf_counter() - t0
        pipes = sorted(g.pipe_edges)
        with contextlib.suppress(IsolationError):  # warm the statements
            await iq.isolation_answer(conn, iq.Target(pipe=pipes[len(pipes) // 2]))
        times: list[float] = []
        accounts: list[int] = []
        refused = 0
        for _ in range(samples):
            code = rnd.choice(pipes)
            t0 = time.perf_counter()
            try:
                ans = await iq.isolation_answer(conn, iq.Target(pipe=code))
            except IsolationError:
                refused += 1  # no valve around: the zone's offer was worked out too
                ans = None
            times.append((time.perf_counter() - t0) * 1000)
            if ans is not None:
                accounts.append(int(ans["counts"]["accounts"]))
        base_ms = baseline(g, 15, rnd)
        t0 = time.perf_counter()
        focus = await sq.route_focus(conn, street, None, None)
        feats = await sq.around(conn, focus)
        pages = plan(focus, feats, paper="A3", texts=TEXTS, measure=measure())
        pdf = render(pages, title=TEXTS.title)
        sheet_s = time.perf_counter() - t0
        length = sum(f.geometry.length for f in focus) * local_metres(LON0, LAT0)[0]
    times.sort()
    return {
        "graph_vertices": len(g.vertex_assets),
        "graph_edges": len(g.edge_u),
        "valves": len(g.valve_vertex),
        "graph_build_s": round(build_s, 2),
        "isolations": len(times),
        "isolations_without_valves": refused,
        "accounts_cut_median": statistics.median(accounts) if accounts else 0,
        "isolation_p50_ms": round(times[len(times) // 2], 2),
        "isolation_p99_ms": round(p99(times), 2),
        "baseline_full_bfs_ms": round(base_ms, 2),
        "route_sheet_s": round(sheet_s, 2),
        "route_sheet_pages": len(pages),
        "route_sheet_scale": pages[0].scale,
        "route_sheet_street_m": round(length),
        "route_sheet_kb": round(len(pdf) / 1024),
    }


def network_db(server: str, nodes: int, *, fresh: bool) -> tuple[str, list[list[str]], int]:
    """The database holding the generated network (built once, then kept for the next runs:
    its name carries the generator's settings and the schema's last migration, so a change of
    either builds a new one). Returns its URL, the grid's rows of pipes and the houses."""
    items, rows, houses = network(nodes)
    last = sorted(p.name for p in (ROOT / "suvnet" / "migrations").glob("*.sql"))[-1]
    key = hashlib.sha1(
        f"{GENERATOR}:{nodes}:{VALVE_SHARE}:{HOUSE_SHARE}:{last}".encode()
    ).hexdigest()[:10]
    name = f"suvnet_bench_isonet_{key}"
    url = with_db(server, name)
    with psycopg.connect(server, autocommit=True) as admin:
        for (old,) in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'suvnet\\_bench\\_isonet\\_%%' "
            "AND (datname <> %s OR %s)",
            (name, fresh),
        ).fetchall():  # a network of other settings, or --fresh: built again
            admin.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            console.print(f"network: kept from an earlier run ({name}; --fresh builds it again)")
            return url, rows, houses
        admin.execute(f'CREATE DATABASE "{name}"')
    t0 = time.perf_counter()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, timescaledb="off", postgis="auto")
        with psycopg.connect(url) as conn:
            subscribers(conn, houses)
            save_assets(conn, items, Actor("bench", "bench", NOW), source_file="bench")
            conn.execute("INSERT INTO suvnet_meta (key, value) VALUES ('bench_network', 'done')")
            conn.commit()
            conn.execute("ANALYZE")
    except BaseException:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        raise
    console.print(
        f"network: {len(items)} assets, {houses} houses and accounts, saved through the "
        f"register's checks in {time.perf_counter() - t0:.1f} s (kept as {name})"
    )
    return url, rows, houses


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=0)
    ap.add_argument("--fresh", action="store_true", help="build the network database again")
    ap.add_argument("--drop", action="store_true", help="drop the network database at the end")
    args = ap.parse_args()
    samples = args.samples or (150 if args.quick else 1000)
    server = server_url()
    url, rows, _ = network_db(server, args.nodes, fresh=args.fresh)
    street = rows[len(rows) // 2][: round(2000 / STEP_M)]
    try:
        result = asyncio.run(measure_all(url, samples, street))
    finally:
        if args.drop:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[-1]}" WITH (FORCE)')
    ratio = result["isolation_p99_ms"] / max(result["baseline_full_bfs_ms"], 1e-9)
    result["isolation_p99_over_bfs"] = round(ratio, 2)
    console.print(
        f"graph: {result['graph_vertices']} nodes, {result['graph_edges']} pipe parts, "
        f"{result['valves']} valves (built in {result['graph_build_s']} s)\n"
        f"isolation with the subscriber lookup: p50 {result['isolation_p50_ms']} ms, "
        f"p99 {result['isolation_p99_ms']} ms (goal < 100 ms)\n"
        f"plain BFS over the whole graph: {result['baseline_full_bfs_ms']} ms; "
        f"isolation p99 / BFS = {ratio:.2f}\n"
        f"route sheet, A3, {result['route_sheet_street_m']} m street: "
        f"{result['route_sheet_s']} s ({result['route_sheet_pages']} sheet at "
        f"1:{result['route_sheet_scale']})"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
