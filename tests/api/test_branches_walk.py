"""A user of branch A walks every endpoint of the API and the pages and finds nothing of
branch B (issue 20); a regional user finds both.

Every route the code base defines is walked (the app's, and the routers of api/routes and
api/web that the app does not mount yet): each GET with each of its path parameters filled
with A's and with B's identifiers, with its required query parameters, and once more with
B's (and A's) name as the search text where it takes one. Then the changes: paying,
voiding, acknowledging, commanding, editing B's things as A's administrator is refused and
changes nothing. Answers are read as people would see them: JSON and pages as text, PDFs
through pdftotext, XLSX unzipped, CSV as text. What the request itself sent (an account
number in the path, the search text) is taken out of the answer before it is searched:
echoing the question is not a leak.

A route that is added later with a path or query parameter this test does not know fails
the test (``UNMAPPED``), so the walk stays complete.
"""

from __future__ import annotations

import importlib
import io
import pkgutil
import re
import shutil
import subprocess
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, quote_plus, unquote

import httpx
import psycopg
import pytest
import shapely
from fastapi import APIRouter, FastAPI
from psycopg.types.json import Jsonb

import api.routes
import api.web
from api.app import create_app
from api.security import Principal, Role, make_access_token
from assets.model import Asset
from assets.store import Actor, save_assets
from billing import branches as br
from billing.accounts import Address, add_reading, create_account, install_meter
from billing.config import load_billing_config
from billing.payments.cashier import take_payment
from billing.run import run_billing
from tests.api.conftest import NOW, SECRET, Clock, User, api_settings, insert_user

REGION = "Samarqand viloyati"
NOV = date(2026, 11, 1)

B_MARKERS = (
    "bpayariq",  # district, zone, gateway, device, meter, asset, alarm rule, branch, user names
    "bobojonova",  # the B subscriber's name
    "bqoraqamish",  # the B MFY
    "bbodom",  # the B street
    "937770022",  # the B subscriber's phone
    "302222222",  # the B branch's STIR
    "bpay-2026",  # B's invoice and receipt numbers
    "bpayer",  # the payer of B's bank statement line
)
A_MARKERS = ("aurgut", "akmalova", "aolmazor", "aanor", "aurg-2026")


@dataclass
class Side:
    """One branch's things, by the names the routes' parameters use."""

    branch: br.Branch
    number: str
    account_id: int
    meter_id: int
    invoice_id: int
    receipt: str
    zone: str
    gateway: str
    device: str
    point_id: int
    alarm_id: int
    rule: str
    asset: str
    doc_id: int
    line_id: int
    work_order_id: int
    outage_id: int
    request_id: int
    places: dict[str, int]
    """The ids of the account's address: district, mahalla, street, house."""
    user: User
    name: str
    customer: User


@dataclass
class World:
    a: Side
    b: Side
    regional: User
    a_admin: User


@pytest.fixture(scope="module")
def world(db_url: str) -> World:
    cfg = load_billing_config()
    with psycopg.connect(db_url) as c:
        c.execute(
            "INSERT INTO tariffs (category, valid_from, price_tiyin_per_m3) "
            "VALUES ('household', '2026-01-01', 150000)"
        )
        c.execute("INSERT INTO norms (valid_from, m3_per_person_month) VALUES ('2020-01-01', 4.5)")
        sides = {}
        for key, code, name, district, mahalla, street, person, phone, inn, acc_no in (
            (
                "a",
                "AURG",
                "Aurgut filiali",
                "Aurgut tumani",
                "Aolmazor MFY",
                "Aanor ko'chasi",
                "Akmalova Aziza",
                "+998911110011",
                "301111111",
                "20208000100000000001",
            ),
            (
                "b",
                "BPAY",
                "Bpayariq filiali",
                "Bpayariq tumani",
                "Bqoraqamish MFY",
                "Bbodom ko'chasi",
                "Bobojonova Barno",
                "+998937770022",
                "302222222",
                "20208000100000000002",
            ),
        ):
            low = name.split()[0].lower()
            branch = br.add_branch(
                c,
                code,
                name,
                legal_name=f"{name} suv ta'minoti",
                inn=inn,
                bank_account=acc_no,
                mfo="00444",
            )
            aid, number = create_account(
                c,
                kind="household",
                name=person,
                address=Address(REGION, district, mahalla, street, "7"),
                now=NOW,
                residents=2,
                phone=phone,
                opened_on=date(2025, 1, 1),
            )
            br.assign(c, code, districts=[district])
            zone_id = c.execute(
                "INSERT INTO zones (code, name, branch_id) VALUES (%s, %s, %s) RETURNING id",
                (f"zone-{low}", f"{name} DMA", branch.id),
            ).fetchone()[0]  # type: ignore[index]
            gw_id = c.execute(
                "INSERT INTO gateways (code, name, zone_id) VALUES (%s, %s, %s) RETURNING id",
                (f"gw-{low}", f"{name} gateway", zone_id),
            ).fetchone()[0]  # type: ignore[index]
            dev_id = c.execute(
                "INSERT INTO devices (code, gateway_id, kind, profile, unit_id, zone_id) "
                "VALUES (%s, %s, 'pressure_sensor', 'pressure_transmitter', 1, %s) RETURNING id",
                (f"dev-{low}-p1", gw_id, zone_id),
            ).fetchone()[0]  # type: ignore[index]
            point_id = c.execute(
                "INSERT INTO points (device_id, name, unit) VALUES (%s, 'pressure', 'bar') "
                "RETURNING id",
                (dev_id,),
            ).fetchone()[0]  # type: ignore[index]
            c.execute(
                "INSERT INTO readings_1h (point_id, bucket, min, max, sum, count, last, last_ts) "
                "SELECT %s, g, 2, 3, 150, 60, 2.5, g FROM generate_series(%s::timestamptz, "
                "%s::timestamptz, interval '1 hour') g",
                (point_id, NOW - timedelta(days=3), NOW - timedelta(hours=1)),
            )
            meter_id = install_meter(
                c,
                aid,
                f"MTR-{low.upper()}-1",
                installed_at=datetime(2025, 1, 1, tzinfo=UTC),
                zone_id=zone_id,
            )
            add_reading(c, meter_id, datetime(2026, 10, 31, 19, tzinfo=UTC), 100.0, "inspector")
            add_reading(c, meter_id, datetime(2026, 11, 30, 19, tzinfo=UTC), 112.0, "inspector")
            rule_id = c.execute(
                "INSERT INTO alarm_rules (code, name, kind, point_id, zone_id, limit_value) "
                "VALUES (%s, %s, 'low', %s, %s, 1.5) RETURNING id",
                (f"rule-{low}-low", f"{name} low pressure", point_id, zone_id),
            ).fetchone()[0]  # type: ignore[index]
            alarm_id = c.execute(
                "INSERT INTO alarms (rule_id, kind, priority, position_id, zone_id, point_id, "
                "state, raised_at, value, message) VALUES (%s, 'low', 'high', 1, %s, %s, "
                "'unack', %s, 1.2, %s) RETURNING id",
                (rule_id, zone_id, point_id, NOW - timedelta(hours=2), f"{name}: bosim past"),
            ).fetchone()[0]  # type: ignore[index]
            c.execute(
                "INSERT INTO alarm_events (alarm_id, rule_id, ts, event, from_state, to_state, "
                "message) VALUES (%s, %s, %s, 'activate', 'normal', 'unack', %s)",
                (alarm_id, rule_id, NOW - timedelta(hours=2), f"{name}: bosim past"),
            )
            c.execute(
                "INSERT INTO gateway_commands (id, gateway_id, device_id, op, payload, sent_at, "
                "status) VALUES (%s, %s, %s, 'write', %s, %s, 'ok')",
                (uuid.uuid4(), gw_id, dev_id, Jsonb({"note": f"{name} setpoint"}), NOW),
            )
            request_id = c.execute(
                "INSERT INTO customer_requests (account_id, received_at, kind, subject) "
                "VALUES (%s, %s, 'no_water', %s) RETURNING id",
                (aid, NOW - timedelta(days=5), f"{name}: suv yo'q"),
            ).fetchone()[0]  # type: ignore[index]
            c.execute(
                "INSERT INTO critical_customers (account_id, kind, note, updated_at, updated_by) "
                "VALUES (%s, 'clinic', %s, %s, 'test')",
                (aid, f"{name} poliklinikasi", NOW),
            )
            st_id = c.execute(
                "INSERT INTO bank_statements (identity, format, bank_account, opening_tiyin, "
                "closing_tiyin, imported_at) VALUES (%s, 'csv', %s, 0, 5000000, %s) "
                "RETURNING id",
                (f"csv:{acc_no}:1", acc_no, NOW),
            ).fetchone()[0]  # type: ignore[index]
            line_id = c.execute(
                "INSERT INTO bank_statement_lines (statement_id, line_no, value_date, "
                "amount_tiyin, credit, payer_name, purpose, status, updated_at) VALUES "
                "(%s, 1, %s, 5000000, true, %s, %s, 'review', %s) RETURNING id",
                (st_id, date(2026, 11, 20), f"{key.upper()}payer {low}", f"suv uchun {low}", NOW),
            ).fetchone()[0]  # type: ignore[index]
            sides[key] = {
                "branch": branch,
                "number": number,
                "account_id": aid,
                "meter_id": meter_id,
                "zone": f"zone-{low}",
                "gateway": f"gw-{low}",
                "device": f"dev-{low}-p1",
                "point_id": point_id,
                "alarm_id": alarm_id,
                "rule": f"rule-{low}-low",
                "asset": f"AST-{low.upper()}-1",
                "line_id": line_id,
                "request_id": request_id,
                "name": person,
            }
        save_assets(
            c,
            [
                Asset(
                    sides[k]["asset"],
                    "valve",
                    shapely.Point(66.9 + i / 100, 39.6),
                    name=f"{sides[k]['branch'].name} valve",
                    zone=sides[k]["zone"],
                )
                for i, k in enumerate(("a", "b"))
            ],
            Actor("tester", "test", NOW),
        )
        for k in ("a", "b"):
            s = sides[k]
            asset_id = c.execute("SELECT id FROM assets WHERE code = %s", (s["asset"],)).fetchone()[
                0
            ]  # type: ignore[index]
            s["doc_id"] = c.execute(
                "INSERT INTO asset_documents (asset_id, kind, filename, content_type, "
                "size_bytes, sha256, content, note, uploaded_at, uploaded_by) VALUES "
                "(%s, 'document', %s, 'text/plain', 5, 'x', %s, %s, %s, 'test') RETURNING id",
                (asset_id, f"{s['asset']}.txt", f"{s['name']}".encode(), s["name"], NOW),
            ).fetchone()[0]  # type: ignore[index]
            s["work_order_id"] = c.execute(
                "INSERT INTO work_orders (asset_id, kind, reported_at, description, created_at, "
                "created_by, updated_at, updated_by) VALUES (%s, 'repair', %s, %s, %s, 't', %s, "
                "'t') RETURNING id",
                (asset_id, NOW, f"{s['branch'].name}: quvur", NOW, NOW),
            ).fetchone()[0]  # type: ignore[index]
            s["outage_id"] = c.execute(
                "INSERT INTO outages (target, valves, starts_at, ends_at, reason, "
                "work_order_id, created_at, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, "
                "'t') RETURNING id",
                (
                    Jsonb({"asset": s["asset"]}),
                    [s["asset"]],
                    NOW + timedelta(days=1),
                    NOW + timedelta(days=1, hours=4),
                    f"{s['branch'].name}: ta'mir",
                    s["work_order_id"],
                    NOW,
                ),
            ).fetchone()[0]  # type: ignore[index]
            c.execute(
                "INSERT INTO outage_accounts (outage_id, account_id) VALUES (%s, %s)",
                (s["outage_id"], s["account_id"]),
            )
            row = c.execute(
                "SELECT district_id, mahalla_id, street_id, house_id FROM account_addresses "
                "WHERE account_id = %s",
                (s["account_id"],),
            ).fetchone()
            assert row is not None
            s["places"] = dict(zip(("district", "mahalla", "street", "house"), row, strict=True))
        c.commit()
        run_billing(c, NOV, cfg, now=NOW - timedelta(hours=12))
        c.commit()
        for k in ("a", "b"):
            s = sides[k]
            s["invoice_id"] = c.execute(
                "SELECT id FROM invoices WHERE account_id = %s", (s["account_id"],)
            ).fetchone()[0]  # type: ignore[index]
            s["receipt"] = take_payment(
                c,
                account_number=s["number"],
                amount_tiyin=1_000_000,  # of 1,800,000 charged: a debtor of both branches
                method="cash",
                cashier="kassir",
                now=NOW - timedelta(hours=1),
            ).receipt_no
        c.commit()
    with psycopg.connect(db_url, autocommit=True) as c:
        for k, role in (("a", Role.BILLING_CLERK), ("b", Role.BILLING_CLERK)):
            s = sides[k]
            low = s["branch"].name.split()[0].lower()
            u = insert_user(c, f"u_{low}_clerk", role)
            c.execute(
                "UPDATE api_users SET branch_id = %s, regional = false WHERE id = %s",
                (s["branch"].id, u.id),
            )
            s["user"] = u
            s["customer"] = insert_user(c, s["number"], Role.CUSTOMER, account_no=s["number"])
            c.execute(
                "INSERT INTO audit_log (actor, role, action, entity, entity_id, after, branch_id) "
                "VALUES (%s, 'billing_clerk', 'update', 'account', %s, %s, %s)",
                (u.username, s["number"], Jsonb({"name": s["name"]}), s["branch"].id),
            )
        a_admin = insert_user(c, "aurgut_admin", Role.ADMIN)
        c.execute(
            "UPDATE api_users SET branch_id = %s, regional = false WHERE id = %s",
            (sides["a"]["branch"].id, a_admin.id),
        )
        regional = insert_user(c, "viloyat_admin", Role.ADMIN)
    return World(Side(**sides["a"]), Side(**sides["b"]), regional, a_admin)


# ------------------------------------------------------------------------------ the app


def _routers() -> Iterator[APIRouter]:
    for pkg in (api.routes, api.web):
        for info in pkgutil.iter_modules(pkg.__path__):
            mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
            router = getattr(mod, "router", None)
            if isinstance(router, APIRouter):
                yield router


def routes_of(app: FastAPI) -> Iterator[Any]:
    for r in app.router.routes:
        if type(r).__name__ == "_IncludedRouter":
            yield from r.effective_route_contexts()  # type: ignore[attr-defined]
        else:
            yield r


def full_app(db_url: str) -> FastAPI:
    """The app with every router of api/routes and api/web, the ones it does not mount yet
    included (first, as api/app.py puts the busy ones first)."""
    app = create_app(api_settings(db_url), clock=Clock(NOW))
    served = {getattr(r, "path", None) for r in routes_of(app)}
    for router in _routers():
        paths = {getattr(r, "path", None) for r in router.routes}
        # (a router that another one includes under its prefix has paths without one)
        if (
            paths
            and not paths & served
            and all(str(p).startswith(("/api", "/staff", "/cabinet")) for p in paths)
        ):
            before = len(app.router.routes)
            app.include_router(router)
            added = app.router.routes[before:]
            del app.router.routes[before:]
            app.router.routes[0:0] = added
            served |= paths
    return app


@pytest.fixture
async def client(db_url: str, world: World) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = full_app(db_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", timeout=60
        ) as c:
            yield app, c


def bearer_of(user: User, branch_id: int | None) -> dict[str, str]:
    p = Principal(user.id, user.username, user.role, user.account_no, branch_id=branch_id)
    return {"Authorization": "Bearer " + make_access_token(p, SECRET, NOW)}


# ------------------------------------------------------------------------------ reading

PDFTOTEXT = shutil.which("pdftotext")


def readable(r: httpx.Response) -> str:
    """The answer as a person would read it."""
    ctype = r.headers.get("content-type", "")
    body = r.content
    if body.startswith(b"%PDF"):
        assert PDFTOTEXT, "pdftotext (poppler-utils) is needed to read the PDFs"
        out = subprocess.run(
            [PDFTOTEXT, "-q", "-", "-"], input=body, capture_output=True, check=True
        )
        return out.stdout.decode("utf-8", "replace")
    if body.startswith(b"PK"):
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            return "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
    if "image/" in ctype:
        return ""
    return body.decode("utf-8", "replace")


def without_echo(text: str, sent: list[str]) -> str:
    """``text`` without what the request sent, as sent or URL-encoded (the pages' language
    links repeat the address)."""
    forms = {f for v in sent for f in (v, quote(v, safe=""), quote_plus(v))}
    for value in sorted(forms, key=len, reverse=True):
        if len(value) >= 4:
            text = re.sub(re.escape(value), " ", text, flags=re.IGNORECASE)
    return text


def found(text: str, markers: tuple[str, ...]) -> set[str]:
    low = text.lower()
    return {m for m in markers if m in low}


# ------------------------------------------------------------------------------ the walk

QUERY = {
    "from": (NOW - timedelta(days=2)).isoformat(),
    "to": NOW.isoformat(),
    "start": (NOW - timedelta(days=2)).isoformat(),
    "end": NOW.isoformat(),
    "bbox": "66.0,39.0,68.0,40.0",
    "date_from": "2026-01-01",
    "date_to": "2026-12-31",
}
"""Values of the required query parameters."""
SEARCH_PARAMS = ("q", "number", "account", "text", "search", "name")
"""Optional query parameters that take a search text: tried with each side's name and
account number."""


def path_values(path: str, name: str, s: Side) -> list[str] | None:
    """What a path parameter takes, on side ``s`` (None: unknown)."""
    if name in ("number", "account_no"):
        return [s.number]
    if name == "code":
        if "/gateways/" in path:
            return [s.gateway]
        if "/devices/" in path:
            return [s.device]
        if "/assets/" in path:
            return [s.asset]
        if "alarm-rules" in path:
            return [s.rule]
        return None
    table: dict[str, list[str]] = {
        "meter_id": [str(s.meter_id)],
        "invoice_id": [str(s.invoice_id)],
        "point_id": [str(s.point_id)],
        "alarm_id": [str(s.alarm_id)],
        "doc_id": [str(s.doc_id)],
        "receipt_no": [s.receipt],
        "line_id": [str(s.line_id)],
        "device": [s.device],
        "user_id": [str(s.user.id)],
        "period": ["2026-11"],
        "work_order_id": [str(s.work_order_id)],
        "outage_id": [str(s.outage_id)],
        "order_id": [str(s.work_order_id)],
        "wo_id": [str(s.work_order_id)],
        "account_id": [str(s.account_id)],
        "provider": ["payme"],
        "request_id": [str(s.request_id)],
    }
    return table.get(name)


@dataclass
class Walk:
    urls: list[str] = field(default_factory=list)
    leaks: list[tuple[str, int, set[str]]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    unmapped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _params(dependant: Any) -> tuple[list[Any], list[Any]]:
    """(query params, path params) of a route, its dependencies' included."""
    query, path = list(dependant.query_params), list(dependant.path_params)
    for sub in dependant.dependencies:
        q, p = _params(sub)
        query += q
        path += p
    return query, path


def _fill(path: str, names: set[str], s: Side, walk: Walk) -> list[tuple[str, list[str]]]:
    """The path with its parameters filled for side ``s``: (url, values sent); an address
    level and its id give one url per level."""
    if names == {"level", "place_id"}:
        return [
            (path.replace("{level}", lvl).replace("{place_id}", str(pid)), [lvl])
            for lvl, pid in s.places.items()
        ]
    url, sent = path, []
    for n in names:
        vals = path_values(path, n, s)
        if vals is None:
            walk.unmapped.append(f"{path} {{{n}}}")
            return []
        url = url.replace("{" + n + "}", quote(vals[0], safe=""))
        sent.append(vals[0])
    return [(url, sent)]


def get_requests(app: FastAPI, w: World, walk: Walk) -> list[tuple[str, dict[str, str], list[str]]]:
    """(path, query, values sent) of every GET to make."""
    out: list[tuple[str, dict[str, str], list[str]]] = []
    for route in routes_of(app):
        methods = getattr(route, "methods", None) or set()
        dependant = getattr(route, "dependant", None)
        if "GET" not in methods or dependant is None:
            continue
        path: str = route.path
        query_params, path_params = _params(dependant)
        required: dict[str, str] = {}
        search = [
            qp.alias or qp.name for qp in query_params if (qp.alias or qp.name) in SEARCH_PARAMS
        ]
        needs_search = False
        for qp in query_params:
            alias = qp.alias or qp.name
            if qp.field_info.is_required():
                if alias in SEARCH_PARAMS:
                    needs_search = True
                elif alias not in QUERY:
                    walk.unmapped.append(f"{path} ?{alias}")
                else:
                    required[alias] = QUERY[alias]
        names = {p.name for p in path_params}
        for s in (w.a, w.b):
            for url, sent in _fill(path, names, s, walk):
                if not needs_search:
                    out.append((url, dict(required), sent))
                out.extend(
                    (url, {**required, param: text}, [*sent, text])
                    for param in search
                    for text in (s.name, s.number, s.name.split()[0])
                )
            if not names:
                break  # no path parameter: one side is enough (the search tries both)
    return out


async def walk_as(
    app: FastAPI, c: httpx.AsyncClient, w: World, headers: dict[str, str], markers: tuple[str, ...]
) -> Walk:
    walk = Walk()
    for url, query, sent in get_requests(app, w, walk):
        sent_all = [*sent, *query.values(), *(unquote(x) for x in url.split("/"))]
        try:
            r = await c.get(url, params=query, headers=headers)
        except Exception as exc:  # a route that crashes is reported with its URL
            walk.errors.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        walk.urls.append(url)
        if r.status_code >= 500:
            walk.errors.append(f"{url} {query}: {r.status_code} {r.text[:300]}")
        text = without_echo(readable(r), sent_all)
        hits = found(text, markers)
        walk.seen |= found(text, A_MARKERS + B_MARKERS)
        if hits:
            walk.leaks.append((f"{url} {query}", r.status_code, hits))
    return walk


async def test_a_branch_user_finds_nothing_of_another_branch(
    client: tuple[FastAPI, httpx.AsyncClient], world: World
) -> None:
    app, c = client
    walk = await walk_as(app, c, world, bearer_of(world.a_admin, world.a.branch.id), B_MARKERS)
    assert not walk.unmapped, f"routes whose parameters this test does not know: {walk.unmapped}"
    assert len(walk.urls) > 120
    assert not walk.errors, walk.errors
    assert not walk.leaks, "branch B seen by a user of branch A:\n" + "\n".join(
        f"  {u} -> {st}: {sorted(h)}" for u, st, h in walk.leaks
    )
    # not a vacuous walk: the user saw their own branch's things
    assert set(A_MARKERS) <= walk.seen, walk.seen
    routes = {u for u, _, _ in get_requests(app, world, Walk())}
    print(f"branch A's walk: {len(walk.urls)} GET requests over {len(routes)} URLs, no leak")
    # nor does A's customer, in the cabinet and the API
    cust = await walk_as(app, c, world, bearer_of(world.a.customer, None), B_MARKERS)
    assert not cust.leaks, cust.leaks
    assert "akmalova" in cust.seen


async def test_a_regional_user_sees_both(
    client: tuple[FastAPI, httpx.AsyncClient], world: World
) -> None:
    app, c = client
    walk = await walk_as(app, c, world, bearer_of(world.regional, None), ())
    assert not walk.errors, walk.errors
    assert set(A_MARKERS) <= walk.seen
    assert set(B_MARKERS) <= walk.seen, set(B_MARKERS) - walk.seen


async def test_the_other_branchs_own_user_sees_only_theirs(
    client: tuple[FastAPI, httpx.AsyncClient], world: World
) -> None:
    """B's clerk, the other way round, with a narrower role."""
    app, c = client
    walk = await walk_as(app, c, world, bearer_of(world.b.user, world.b.branch.id), A_MARKERS)
    assert not walk.leaks, "branch A seen by a user of branch B:\n" + "\n".join(
        f"  {u} -> {st}: {sorted(h)}" for u, st, h in walk.leaks
    )
    assert {"bobojonova", "bpay-2026"} <= walk.seen


async def test_the_walk_finds_a_leak_when_the_scope_is_off(
    client: tuple[FastAPI, httpx.AsyncClient], world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk can fail: with every caller given every branch (the scoping switched off
    in its one place), A's administrator sees B everywhere."""
    app, c = client
    monkeypatch.setattr(Principal, "branches", property(lambda self: "*"))
    walk = await walk_as(app, c, world, bearer_of(world.a_admin, world.a.branch.id), B_MARKERS)
    leaked = {h for _, _, hits in walk.leaks for h in hits}
    assert set(B_MARKERS) <= leaked, set(B_MARKERS) - leaked
    assert len(walk.leaks) > 30


def snapshot(db_url: str, s: Side) -> dict[str, Any]:
    """Everything of side ``s`` that a change could touch, whole rows (read as the owner)."""
    queries = {
        "ledger": "SELECT count(*), sum(amount_tiyin) FROM ledger WHERE account_id = %(account)s",
        "account": "SELECT to_jsonb(a) FROM accounts a WHERE id = %(account)s",
        "codes": "SELECT count(*) FROM customer_codes WHERE account_no = %(number)s",
        "alarm": "SELECT to_jsonb(a) FROM alarms a WHERE id = %(alarm)s",
        "rules": (
            "SELECT to_jsonb(r) FROM alarm_rules r JOIN points p ON p.id = r.point_id "
            "JOIN devices d ON d.id = p.device_id WHERE d.code = %(device)s OR r.code = %(rule)s "
            "ORDER BY r.id"
        ),
        "gateways": (
            "SELECT to_jsonb(g) FROM gateways g JOIN zones z ON z.id = g.zone_id "
            "WHERE z.code = %(zone)s OR g.code = %(gateway)s ORDER BY g.id"
        ),
        "devices": (
            "SELECT to_jsonb(d) FROM devices d LEFT JOIN gateways g ON g.id = d.gateway_id "
            "WHERE g.code = %(gateway)s OR d.code = %(device)s ORDER BY d.id"
        ),
        "commands": (
            "SELECT count(*) FROM gateway_commands c JOIN gateways g ON g.id = c.gateway_id "
            "WHERE g.code = %(gateway)s"
        ),
        "prv": (
            "SELECT to_jsonb(c) FROM prv_controls c JOIN devices d ON d.id = c.device_id "
            "WHERE d.code = %(device)s"
        ),
        "users": (
            "SELECT id, active, role, token_version, branch_id FROM api_users "
            "WHERE id = %(user)s OR branch_id = %(branch)s ORDER BY id"
        ),
        "line": "SELECT to_jsonb(l) FROM bank_statement_lines l WHERE id = %(line)s",
        "asset": "SELECT to_jsonb(a) FROM assets a WHERE code = %(asset)s",
        "asset_documents": (
            "SELECT count(*) FROM asset_documents d JOIN assets a ON a.id = d.asset_id "
            "WHERE a.code = %(asset)s"
        ),
        "work_orders": (
            "SELECT to_jsonb(w) FROM work_orders w JOIN assets a ON a.id = w.asset_id "
            "WHERE a.code = %(asset)s ORDER BY w.id"
        ),
        "work_order_parts": (
            "SELECT (SELECT count(*) FROM work_order_valves WHERE work_order_id = %(wo)s), "
            "(SELECT count(*) FROM work_order_documents WHERE work_order_id = %(wo)s)"
        ),
        "outages": (
            "SELECT count(*) FROM outages o WHERE o.valves && ARRAY[%(asset)s]::text[] "
            "OR EXISTS (SELECT 1 FROM outage_accounts x WHERE x.outage_id = o.id "
            "AND x.account_id = %(account)s)"
        ),
        "critical": "SELECT to_jsonb(c) FROM critical_customers c WHERE account_id = %(account)s",
        "receipt": "SELECT voided_at FROM cashier_payments WHERE receipt_no = %(receipt)s",
        "meters": (
            "SELECT to_jsonb(c) FROM service_connections c WHERE account_id = %(account)s "
            "ORDER BY c.id"
        ),
        "meter_readings": (
            "SELECT count(*), max(ts), max(value_m3) FROM meter_readings WHERE meter_id = %(meter)s"
        ),
        "meter_seals": "SELECT count(*) FROM meter_seals WHERE meter_id = %(meter)s",
        "residents": (
            "SELECT count(*) FROM account_residents_history WHERE account_id = %(account)s"
        ),
        "places": (
            "SELECT (SELECT to_jsonb(st) FROM streets st WHERE st.id = %(street)s), "
            "(SELECT to_jsonb(h) FROM houses h WHERE h.id = %(house)s), "
            "(SELECT count(*) FROM streets WHERE mahalla_id = %(mahalla)s), "
            "(SELECT count(*) FROM houses WHERE street_id = %(street)s)"
        ),
        "requests": (
            "SELECT to_jsonb(r) FROM customer_requests r WHERE account_id = %(account)s "
            "ORDER BY r.id"
        ),
    }
    args = {
        "account": s.account_id,
        "number": s.number,
        "alarm": s.alarm_id,
        "rule": s.rule,
        "zone": s.zone,
        "gateway": s.gateway,
        "device": s.device,
        "user": s.user.id,
        "branch": s.branch.id,
        "line": s.line_id,
        "asset": s.asset,
        "wo": s.work_order_id,
        "receipt": s.receipt,
        "meter": s.meter_id,
        "street": s.places["street"],
        "house": s.places["house"],
        "mahalla": s.places["mahalla"],
    }
    out: dict[str, Any] = {}
    with psycopg.connect(db_url) as conn:
        for key, sql in queries.items():
            out[key] = conn.execute(sql, args).fetchall()
    return out


Attempt = tuple[str, str, dict[str, Any] | None, dict[str, str] | None]
"""(method, url, JSON body, form) of one change."""


def change_attempts(w: World) -> list[Attempt]:
    """What A's administrator tries on B's things: for every route that changes something
    and names a thing of a branch (in its path or its body), at least one attempt aimed at
    B (:func:`test_every_change_route_is_tried` keeps this list complete)."""
    a, b = w.a, w.b
    soon = (NOW + timedelta(days=1)).isoformat()
    later = (NOW + timedelta(days=1, hours=2)).isoformat()
    return [
        ("POST", f"/api/v1/accounts/{b.number}/payments", {"amount_tiyin": 10_000}, None),
        ("POST", f"/api/v1/accounts/{b.number}/status", {"status": "closed"}, None),
        ("POST", "/api/v1/payments/cashier", {"account": b.number, "amount": "100"}, None),
        ("POST", f"/api/v1/payments/cashier/receipts/{b.receipt}/void", {"reason": "x"}, None),
        ("POST", f"/api/v1/customers/{b.number}/code", None, None),
        ("POST", f"/api/v1/alarms/{b.alarm_id}/ack", {"comment": "x"}, None),
        ("POST", f"/api/v1/alarms/{b.alarm_id}/shelve", {"comment": "x", "minutes": 10}, None),
        ("POST", f"/api/v1/alarms/{b.alarm_id}/unshelve", None, None),
        ("POST", f"/api/v1/alarm-rules/{b.rule}/disable", None, None),
        ("POST", f"/api/v1/alarm-rules/{b.rule}/enable", None, None),
        # a new rule on B's point, and A's rule saved over B's code
        (
            "POST",
            "/api/v1/alarm-rules",
            {"code": "rule-anew", "kind": "low", "point": f"{b.device}/pressure", "limit": 1.0},
            None,
        ),
        (
            "POST",
            "/api/v1/alarm-rules",
            {"code": b.rule, "kind": "low", "point": f"{a.device}/pressure", "limit": 1.0},
            None,
        ),
        ("PATCH", f"/api/v1/gateways/{b.gateway}", {"name": "x", "zone": a.zone}, None),
        ("POST", "/api/v1/gateways", {"code": "gw-anew", "zone": b.zone}, None),
        ("POST", "/api/v1/gateways", {"code": b.gateway, "zone": a.zone}, None),
        ("PATCH", f"/api/v1/devices/{b.device}", {"enabled": False, "zone": a.zone}, None),
        (
            "POST",
            "/api/v1/devices",
            {
                "code": "dev-anew",
                "gateway": b.gateway,
                "kind": "pressure_sensor",
                "profile": "pressure_transmitter",
            },
            None,
        ),
        (
            "POST",
            f"/api/v1/gateways/{b.gateway}/commands",
            {
                "device": b.device,
                "op": "write",
                "point": "pressure",
                "value": 1.0,
                "timeout_s": 0.2,
            },
            None,
        ),
        ("PUT", f"/api/v1/prv/{b.device}/control", {"mode": "fixed", "setpoint_bar": 2}, None),
        ("POST", f"/api/v1/prv/{b.device}/auto", {"auto": True}, None),
        ("POST", f"/api/v1/prv/{b.device}/push", None, None),
        ("PATCH", f"/api/v1/users/{b.user.id}", {"active": False}, None),
        ("PATCH", f"/api/v1/users/{b.user.id}", {"branch": a.branch.code}, None),
        ("PATCH", f"/api/v1/users/{a.user.id}", {"branch": b.branch.code}, None),
        (
            "POST",
            f"/api/v1/payments/review/{b.line_id}/allocate",
            {"parts": [{"account": a.number, "amount": "50000"}]},
            None,
        ),
        (
            "POST",
            "/api/v1/meter-readings/check",
            {"meter_serial": "MTR-BPAYARIQ-1", "ts": NOW.isoformat(), "value_m3": 120.0},
            None,
        ),
        ("PATCH", f"/api/v1/assets/{b.asset}", {"version": 1, "name": "x"}, None),
        ("POST", f"/api/v1/assets/{b.asset}/valve-state", {"operable": False}, None),
        ("POST", f"/api/v1/assets/{b.asset}/documents", None, {"note": "x"}),
        (
            "POST",
            "/api/v1/assets/outages",
            {"alarm": b.alarm_id, "starts_at": soon, "ends_at": later},
            None,
        ),
        ("PUT", f"/api/v1/assets/critical-customers/{b.number}", {"kind": "school"}, None),
        ("DELETE", f"/api/v1/assets/critical-customers/{b.number}", None, None),
        ("POST", "/api/v1/work-orders", {"asset": b.asset, "kind": "repair"}, None),
        ("PATCH", f"/api/v1/work-orders/{b.work_order_id}", {"version": 1, "crew": "x"}, None),
        ("POST", f"/api/v1/work-orders/{b.work_order_id}/close", {}, None),
        ("POST", f"/api/v1/work-orders/{b.work_order_id}/cancel", {"reason": "x"}, None),
        (
            "POST",
            f"/api/v1/work-orders/{b.work_order_id}/valves",
            {"valve": b.asset, "action": "closed"},
            None,
        ),
        ("POST", f"/api/v1/work-orders/{b.work_order_id}/photos", None, {"note": "x"}),
        (
            "POST",
            "/api/v1/customer-requests",
            {"account": b.number, "kind": "question", "subject": "x"},
            None,
        ),
        (
            "PATCH",
            f"/api/v1/customer-requests/{b.request_id}",
            {"status": "rejected", "resolution": "x"},
            None,
        ),
        ("POST", f"/staff/accounts/{b.number}/code", None, {}),
        (
            "POST",
            f"/staff/accounts/{b.number}/requests",
            None,
            {"channel": "office", "kind": "question", "subject": "x"},
        ),
        (
            "POST",
            f"/staff/requests/{b.request_id}/status",
            None,
            {"status": "rejected", "resolution": "x"},
        ),
        (
            "POST",
            "/staff/payments/desk",
            None,
            {"account": b.number, "amount": "100", "method": "cash"},
        ),
        ("POST", "/staff/payments/desk/void", None, {"receipt_no": b.receipt, "reason": "x"}),
        (
            "POST",
            f"/staff/payments/statements/{b.line_id}/allocate",
            None,
            {"account": a.number, "amount": "500"},
        ),
        ("POST", f"/staff/alarms/{b.alarm_id}/ack", None, {"comment": "x"}),
        ("POST", f"/staff/alarms/{b.alarm_id}/shelve", None, {"comment": "x", "minutes": "10"}),
        ("POST", f"/staff/prv/{b.device}/auto", None, {"auto": "1"}),
        ("POST", f"/staff/prv/{b.device}/push", None, {}),
        ("POST", f"/staff/prv/{b.device}/config", None, {"mode": "fixed", "setpoint_bar": "2"}),
        # the register pages: a new account in B's street, B's account, meter and places
        (
            "POST",
            "/staff/register/accounts/new",
            None,
            {
                "kind": "household",
                "category": "household",
                "name": "Walk Test",
                "mahalla_id": str(b.places["mahalla"]),
                "street_id": str(b.places["street"]),
                "house": "99",
                "residents": "2",
                "opened_on": "2026-12-01",
            },
        ),
        (
            "POST",
            f"/staff/register/accounts/{b.number}/edit",
            None,
            {
                "kind": "household",
                "category": "household",
                "name": "Walk Test",
                "mahalla_id": str(b.places["mahalla"]),
                "street_id": str(b.places["street"]),
                "house": "7",
                "residents": "9",
            },
        ),
        (
            "POST",
            f"/staff/register/accounts/{b.number}/status",
            None,
            {"status": "closed", "day": "2026-12-02", "reason": "x"},
        ),
        ("POST", f"/staff/register/accounts/{b.number}/language", None, {"language": "ru"}),
        (
            "POST",
            f"/staff/register/accounts/{b.number}/residents",
            None,
            {"residents": "9", "since": "2026-12-01", "reason": "x"},
        ),
        (
            "POST",
            f"/staff/register/accounts/{b.number}/meters/{b.meter_id}/seal",
            None,
            {"seal_no": "S-1", "day": "2026-12-02"},
        ),
        (
            "POST",
            f"/staff/register/accounts/{b.number}/meters/{b.meter_id}/remove",
            None,
            {"final": "120", "day": "2026-12-02"},
        ),
        (
            "POST",
            f"/staff/register/accounts/{b.number}/meters/install",
            None,
            {"serial": "WALK-1", "model": "m", "digits": "5", "initial": "0", "day": "2026-12-02"},
        ),
        (
            "POST",
            f"/staff/register/accounts/{b.number}/meters/{b.meter_id}/replace",
            None,
            {"final": "120", "new_serial": "WALK-2", "new_initial": "0", "day": "2026-12-02"},
        ),
        (
            "POST",
            f"/staff/register/accounts/{b.number}/readings/check",
            None,
            {"meter_id": str(b.meter_id), "value": "120", "day": "2026-12-02"},
        ),
        (
            "POST",
            f"/staff/register/accounts/{b.number}/readings/save",
            None,
            {"meter_id": str(b.meter_id), "value": "120", "day": "2026-12-02", "confirm": "1"},
        ),
        (
            "POST",
            "/staff/register/addresses/street",
            None,
            {"parent_id": str(b.places["mahalla"]), "name_uz": "Walk", "kind": "street"},
        ),
        (
            "POST",
            f"/staff/register/addresses/street/{b.places['street']}",
            None,
            {"name_uz": "Walk Two", "kind": "street"},
        ),
        # (B's house has B's account, so even B's own clerk is refused this one: the
        # snapshot's "places" shows it stays)
        ("POST", f"/staff/register/addresses/house/{b.places['house']}/delete", None, {}),
    ]


NAMES_NO_BRANCH_THING: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/auth/token"): "a login: the user's own scope (test_branches.py)",
    ("POST", "/api/v1/auth/refresh"): "a login",
    ("POST", "/api/v1/auth/logout"): "a login",
    ("POST", "/staff/login"): "a login (test_branches.py: a user without a branch)",
    ("POST", "/staff/logout"): "a login",
    ("POST", "/cabinet/login"): "a customer's login: their own account",
    ("POST", "/cabinet/logout"): "a customer's login",
    ("POST", "/cabinet/activate"): "a customer's code: their own account",
    ("POST", "/api/v1/customers/activate"): "a customer's code: their own account",
    ("POST", "/cabinet/requests"): "a customer's request: their own account",
    ("POST", "/api/v1/users"): "a new user of the administrator's own branch (test_branches.py)",
    ("POST", "/api/v1/alarm-positions"): "an operator desk: the region's, of no branch",
    ("POST", "/api/v1/billing-runs"): "the month of every branch (run_sync_all_branches)",
    ("POST", "/staff/billing/run"): "the month of every branch",
    ("POST", "/api/v1/payments/statements"): "a new statement: matched in the caller's scope",
    ("POST", "/staff/payments/statements"): "a new statement: matched in the caller's scope",
    ("POST", "/api/v1/payments/rematch"): "matches the lines the caller sees",
    ("POST", "/staff/payments/statements/rematch"): "matches the lines the caller sees",
    ("POST", "/api/payme"): "the provider's callback: routed by its merchant (tests/billing)",
    ("DELETE", "/api/payme"): "the provider's callback",
    ("PATCH", "/api/payme"): "the provider's callback",
    ("PUT", "/api/payme"): "the provider's callback",
    ("POST", "/api/click"): "the provider's callback: routed by its service (tests/billing)",
    ("POST", "/api/click/prepare"): "the provider's callback",
    ("POST", "/api/click/complete"): "the provider's callback",
    ("POST", "/staff/cashier"): "the desk page's form: its changes are /staff/payments/desk",
    ("POST", "/staff/register/rates/tariffs"): "tariffs are the region's, of no branch",
    ("POST", "/staff/register/rates/norms"): "norms are the region's, of no branch",
    ("POST", "/staff/register/rates/{what}/{rate_id}/delete"): "tariffs and norms: the region's",
}
"""The routes that change something but name no branch's thing, and why."""


def _matches(route: Any, method: str, url: str) -> bool:
    regex = getattr(route, "path_regex", None)
    return (
        regex is not None
        and method in (getattr(route, "methods", None) or set())
        and regex.match(url.split("?", maxsplit=1)[0]) is not None
    )


async def test_every_change_route_is_tried(
    client: tuple[FastAPI, httpx.AsyncClient], world: World
) -> None:
    """Each route that changes something (POST, PUT, PATCH, DELETE) of the app and of the
    routers it does not mount yet is tried on B's things, or is listed as naming none: a
    new route fails here until it is one or the other."""
    app, _c = client
    attempts = change_attempts(world)
    missing = []
    for route in routes_of(app):
        for method in sorted((getattr(route, "methods", None) or set()) - {"GET", "HEAD"}):
            if (method, route.path) in NAMES_NO_BRANCH_THING:
                continue
            if not any(m == method and _matches(route, m, u) for m, u, _, _ in attempts):
                missing.append(f"{method} {route.path}")
    assert not missing, f"change routes not tried on branch B's things: {missing}"


async def test_a_branch_user_changes_nothing_of_another_branch(
    client: tuple[FastAPI, httpx.AsyncClient], world: World, db_url: str
) -> None:
    """A's administrator tries every kind of change on B's things (:func:`change_attempts`:
    paying, closing, voiding, codes, alarms, rules, gateways, devices, commands, PRVs,
    users, bank lines, readings, assets, valves, documents, outages, critical customers,
    work orders, requests, and the pages' forms). Each is refused, says nothing of B, and
    B's rows stay as they were."""
    app, c = client
    a, b = world.a, world.b
    h = bearer_of(world.a_admin, a.branch.id)
    served = list(routes_of(app))
    before = snapshot(db_url, b)
    wrong: list[str] = []
    tried = 0
    for method, url, body, form in change_attempts(world):
        if not any(_matches(r, method, url) for r in served):
            continue  # a route of another branch of the code base, not in this tree
        files = None
        if form is not None and url.endswith(("/documents", "/photos")):
            files = {"file": ("b.txt", b"bpayariq", "text/plain")}
        r = await c.request(method, url, json=body, data=form, files=files, headers=h)
        tried += 1
        sent = [b.number, b.receipt, b.rule, b.gateway, b.device, b.asset, *url.split("/")]
        sent += [str(v) for v in (body or {}).values()]
        hits = found(without_echo(readable(r), sent), B_MARKERS)
        if (r.status_code < 400 and r.status_code != 303) or r.status_code >= 500 or hits:
            wrong.append(f"{method} {url} -> {r.status_code} {sorted(hits)} {r.text[:200]}")
        elif r.status_code == 303 and "error" not in r.headers.get("location", "error"):
            # a page's form answers with a redirect: to the page that says it was refused
            page = await c.get(r.headers["location"], headers=h)
            if found(without_echo(readable(page), sent), B_MARKERS):
                wrong.append(f"{method} {url} -> 303 to a page that shows B")
    assert tried > 40
    print(f"A's administrator tried {tried} changes on B's things: all refused")
    assert not wrong, "\n".join(wrong)
    after = snapshot(db_url, b)
    assert {k: v for k, v in after.items() if v != before[k]} == {}
    # the same changes on A's own things go through (the refusals above are the branch's)
    r = await c.post(f"/api/v1/alarm-rules/{a.rule}/disable", headers=h)
    assert r.status_code == 200, r.text
    r = await c.post(
        "/api/v1/payments/cashier", json={"account": a.number, "amount": "100"}, headers=h
    )
    assert r.status_code in (200, 201), r.text
    assert r.json()["receipt_no"].startswith("K-AURG-2026-")
    r = await c.post(f"/api/v1/customers/{a.number}/code", headers=h)
    assert r.status_code == 201, r.text
