"""The office side of ``suvnet demo``: alarm rules, subscriber accounts linked to the site's
customer meters, the demo logins, and the summary read back from the database."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml

from alarms.cli import load_rules_file
from api import users
from api.security import Role
from billing.accounts import Address, create_account, install_meter
from billing.demo import ensure_default_tariffs
from simulator.demo_world import DemoPlan, DeviceFeed, demo_control
from simulator.hydraulic import mean_daily_demand_m3
from suvnet.prvcontrol import ControlConfig
from suvnet.site import SiteSpec

log = logging.getLogger(__name__)

REGION = "Farg'ona viloyati"
DISTRICT = "Yangiobod tumani"
CUSTOMER_PASSWORD = "suvnet-demo-2026"  # noqa: S105 - a published demo login
ADMIN_USER = "demo-admin"
ADMIN_PASSWORD = "suvnet-admin-2026"  # noqa: S105 - a published demo login
NAMES = ("Karimov Anvar", "Yusupova Dilnoza", "Rahimov Bekzod", "Tosheva Malika",
         "Nazarov Sardor", "Qodirova Nigora", "Ergashev Jasur", "Sobirova Zuhra")  # fmt: skip
CUSTOMER_FLAG_MASK = 1 | 2 | 4
"""Flags of a household meter that raise an alarm: leak, burst, tamper (docs/alarms.md)."""
UNMETERED = (  # mahalla, street, house, residents, zone
    ("Navbahor MFY", "Mustaqillik ko'chasi", "15", 5, "DMA-N"),
    ("Navbahor MFY", "Mustaqillik ko'chasi", "31", 7, "DMA-N"),
    ("Bog'ishamol MFY", "Bog'bon ko'chasi", "8", 4, "DMA-S"),
    ("Bog'ishamol MFY", "Bog'bon ko'chasi", "11", 6, "DMA-S"),
    ("Bog'ishamol MFY", "Chinor ko'chasi", "2", 3, "DMA-S"),
)


def gateway_controls(
    conn: psycopg.Connection[Any], plan: DemoPlan
) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """What the site apply stored for each regulated PRV (its signals' sources resolved),
    at the demo's pace, as the ``controllers`` of each gateway's ``gateway.yaml``; and the
    values each gateway must share with the controllers of other gateways."""
    rows = conn.execute(
        "SELECT d.code, g.code, c.config FROM prv_controls c "
        "JOIN devices d ON d.id = c.device_id JOIN gateways g ON g.id = d.gateway_id "
        "WHERE d.enabled ORDER BY d.code"
    ).fetchall()
    controllers: dict[str, dict[str, dict[str, Any]]] = {}
    wanted: dict[str, dict[str, set[str]]] = {}
    for device, gateway, config in rows:
        cfg = ControlConfig.model_validate(config)
        controllers.setdefault(gateway, {})[device] = demo_control(cfg, plan)
        for sig in cfg.remote_signals():
            assert sig.source is not None
            wanted.setdefault(sig.source, {}).setdefault(sig.device, set()).add(sig.point)
    shares = {
        gw: [{"device": dev, "points": sorted(pts)} for dev, pts in sorted(per.items())]
        for gw, per in wanted.items()
    }
    return controllers, shares


def rules_doc(
    site: SiteSpec, plan: DemoPlan, unmetered: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """Alarm rules for the site: pressure limits and the zone leak analytics of each DMA.

    ``unmetered``: the use of the households without a meter, m³ a day per zone, for the
    water balance (see :func:`unmetered_use`)."""
    rules: list[dict[str, Any]] = []
    learn = {
        "flow_point": "flow_m3h",
        "volume_point": "volume_m3",
        "min_history_days": plan.min_history_days,
    }
    for z in site.zones:
        if z.kind != "dma":
            continue
        use = round((unmetered or {}).get(z.code, 0.0), 2)
        rules += [
            # one alarm per leak, with its size (docs/alarms.md, "The leak rule")
            {"code": f"{z.code}-leak", "kind": "leak", "zone": z.code, "priority": "high",
             "params": {**learn, "unmetered_m3_per_day": use}},
            {"code": f"{z.code}-mnf", "kind": "mnf", "zone": z.code, "priority": "high",
             "params": dict(learn)},
            {"code": f"{z.code}-balance", "kind": "water_balance", "zone": z.code,
             "priority": "medium", "params": {**learn, "unmetered_m3_per_day": use}},
            # 3 L an hour: a running toilet, not the water a meter read between two polls
            {"code": f"{z.code}-custleak", "kind": "customer_leak", "zone": z.code,
             "priority": "low", "params": {**learn, "zero_threshold_m3": 0.003}},
        ]  # fmt: skip
    for g in site.gateways:
        for d in g.devices:
            if d.kind == "pressure_sensor":
                rules.append(
                    {"code": f"{d.code}-min", "kind": "service_min",
                     "point": f"{d.code}/pressure_bar", "unit": "bar", "priority": "high",
                     "on_delay_s": 600, "off_delay_s": 600, "deadband": 0.1}
                )  # fmt: skip
            elif d.kind == "customer_meter":
                # the meter's own flags: leak (24 h without an hour of zero flow), burst, tamper
                rules.append(
                    {"code": f"{d.code}-flags", "kind": "meter_flags",
                     "point": f"{d.code}/alarm_flags", "priority": "low",
                     "params": {"mask": CUSTOMER_FLAG_MASK}}
                )  # fmt: skip
    return {"rules": rules}


def unmetered_use(conn: psycopg.Connection[Any], inp: Path) -> dict[str, float]:
    """m³ a day per zone drawn by the village's households without a meter in suvnet: in the
    demo, the network model's demand of the zone's junctions (the few metered households are
    not in the model). A utility estimates the same from its norm bills."""

    rows = conn.execute(
        "SELECT z.code, array_agg(n.code) FROM nodes n JOIN zones z ON z.id = n.zone_id "
        "GROUP BY z.code"
    ).fetchall()
    return {str(code): mean_daily_demand_m3(inp, nodes) for code, nodes in rows}


def load_rules(
    conn: psycopg.Connection[Any],
    site: SiteSpec,
    plan: DemoPlan,
    workdir: Path,
    unmetered: Mapping[str, float] | None = None,
) -> int:

    path = workdir / "alarm-rules.yaml"
    doc = rules_doc(site, plan, unmetered)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load_rules_file(conn, path)


def set_poll_periods(conn: psycopg.Connection[Any], site: SiteSpec, plan: DemoPlan) -> None:
    """The registry's poll periods follow the demo's (ingest judges freshness by them)."""
    for g in site.gateways:
        for d in g.devices:
            conn.execute(
                "UPDATE points SET poll_period_s = %s WHERE device_id = "
                "(SELECT id FROM devices WHERE code = %s)",
                (plan.poll_s[d.kind], d.code),
            )


@dataclass(frozen=True)
class DemoAccounts:
    customer_number: str  # the account whose cabinet login is printed
    metered: int
    unmetered: int


def _address(attrs: dict[str, Any]) -> tuple[str, str, str]:
    text = str(attrs.get("address", "Yangiobod MFY, Markaziy ko'chasi 1"))
    mahalla, _, rest = text.partition(",")
    street, _, house = rest.strip().rpartition(" ")
    return mahalla.strip(), street.strip() or "Markaziy ko'chasi", house or "1"


def seed_accounts(
    conn: psycopg.Connection[Any], site: SiteSpec, plan: DemoPlan, feeds: dict[str, DeviceFeed]
) -> DemoAccounts:
    """Households for the site's customer meters (linked to their telemetry volume point, so
    that the readings feed billing) and some unmetered households billed by the norm."""

    start = datetime.fromtimestamp(plan.start, UTC)
    ensure_default_tariffs(conn, date(start.year - 1, 1, 1))
    opened = (start - timedelta(days=400)).date()
    zones = {str(r[0]): int(r[1]) for r in conn.execute("SELECT code, id FROM zones").fetchall()}
    metered = 0
    first: str | None = None
    pairs = [(gw, dev) for gw in site.gateways for dev in gw.devices]
    for i, (g, d) in enumerate(pairs):
        if d.kind != "customer_meter":
            continue
        ref = f"demo:{d.code}"
        row = conn.execute("SELECT number FROM accounts WHERE legacy_ref = %s", (ref,)).fetchone()
        if row is not None:  # a second demo on the same database
            first = first or str(row[0])
            continue
        mahalla, street, house = _address(d.attrs)
        zone = d.zone or g.zone
        acc_id, number = create_account(
            conn,
            kind="household",
            name=NAMES[i % len(NAMES)],
            address=Address(REGION, DISTRICT, mahalla, street, house),
            now=start - timedelta(days=2),
            residents=4,
            phone=f"99890{1234500 + i:07d}",
            opened_on=opened,
            zone_id=zones.get(zone or ""),
            legacy_ref=ref,
        )
        prow = conn.execute(
            "SELECT p.id, d.id FROM points p JOIN devices d ON d.id = p.device_id "
            "WHERE d.code = %s AND p.name = 'volume_m3'",
            (d.code,),
        ).fetchone()
        feed = feeds[d.code]
        assert feed.register is not None
        install_meter(
            conn,
            acc_id,
            d.serial_no or d.code,
            installed_at=start - timedelta(days=1),
            initial_reading=float(feed.register[0]),
            digits=6,
            point_id=None if prow is None else int(prow[0]),
            zone_id=zones.get(zone or ""),
        )
        if prow is not None:
            conn.execute("UPDATE meters SET device_id = %s WHERE point_id = %s", (prow[1], prow[0]))
        metered += 1
        # the customer in the south DMA gets the cabinet login
        if first is None or zone == "DMA-S":
            first = number
    unmetered = 0
    for k, (mahalla, street, house, residents, zone) in enumerate(UNMETERED):
        ref = f"demo:unmetered-{k + 1}"
        if conn.execute("SELECT 1 FROM accounts WHERE legacy_ref = %s", (ref,)).fetchone():
            continue
        create_account(
            conn,
            kind="household",
            name=NAMES[(k + 3) % len(NAMES)],
            address=Address(REGION, DISTRICT, mahalla, street, house),
            now=start - timedelta(days=2),
            residents=residents,
            metered=False,
            opened_on=opened,
            zone_id=zones.get(zone),
            legacy_ref=ref,
        )
        unmetered += 1
    assert first is not None, "the site has no customer meter"
    return DemoAccounts(first, metered, unmetered)


async def ensure_logins(url: str, account_no: str) -> None:
    """The cabinet login of the demo customer and an admin for the back office."""

    async with await psycopg.AsyncConnection.connect(url) as conn:
        for username, password, role, acc in (
            (account_no, CUSTOMER_PASSWORD, Role.CUSTOMER, account_no),
            (ADMIN_USER, ADMIN_PASSWORD, Role.ADMIN, None),
        ):
            cur = await conn.execute("SELECT 1 FROM api_users WHERE username = %s", (username,))
            if await cur.fetchone() is not None:
                continue
            await users.create_user(
                conn,
                username=username,
                password=password,
                role=role,
                full_name="suvnet demo",
                account_no=acc,
            )
        await conn.commit()


@dataclass(frozen=True)
class Summary:
    readings: int
    dead_letters: dict[str, int]
    leak_alarms: list[str]
    flag_alarms: list[str]
    invoices: int
    invoiced_tiyin: int
    balance_tiyin: int


def _alarms(conn: psycopg.Connection[Any], kinds: list[str]) -> list[str]:
    return [
        f"{r[0]}{':' + r[4] if r[4] else ''}: {r[1]} "
        f"(raised {r[2]:%Y-%m-%d %H:%M} UTC{', replay' if r[3] else ''})"
        for r in conn.execute(
            "SELECT ru.code, a.message, a.raised_at, a.replayed, a.subject FROM alarms a "
            "JOIN alarm_rules ru ON ru.id = a.rule_id WHERE a.kind = ANY(%s) "
            "ORDER BY a.raised_at",
            (kinds,),
        ).fetchall()
    ]


def summary(conn: psycopg.Connection[Any], account_no: str, period: date) -> Summary:
    row = conn.execute("SELECT count(*) FROM readings").fetchone()
    n = int(row[0]) if row else 0
    dead = {
        str(reason): int(k)
        for reason, k in conn.execute(
            "SELECT reason, count(*) FROM dead_letters GROUP BY reason ORDER BY 2 DESC"
        ).fetchall()
    }
    alarms = _alarms(conn, ["leak", "mnf", "water_balance", "burst", "customer_leak"])
    flags = _alarms(conn, ["meter_flags"])
    row = conn.execute(
        "SELECT count(*), coalesce(sum(amount_tiyin), 0) FROM invoices WHERE period = %s",
        (period,),
    ).fetchone()
    inv, total = (int(row[0]), int(row[1])) if row else (0, 0)
    row = conn.execute(
        "SELECT coalesce(sum(l.amount_tiyin), 0) FROM ledger l "
        "JOIN accounts a ON a.id = l.account_id WHERE a.number = %s",
        (account_no,),
    ).fetchone()
    return Summary(n, dead, alarms, flags, inv, total, int(row[0]) if row else 0)


def so_m(tiyin: int) -> str:
    return f"{tiyin / 100:,.2f}".replace(",", " ") + " so'm"
