"""Demo and test data: addresses, accounts, meters, tariffs and readings for N subscribers.

Used by ``suvnet billing demo``, the tests and ``bench/consumption.py``. Deterministic for a
given seed. Everything is written with COPY, so 100,000 subscribers take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import psycopg

from billing.accountno import make_number
from billing.tariffs import period_bounds

HOUSES_PER_STREET = 40
STREETS_PER_MAHALLA = 8

STREET_NAMES = [
    "Navoiy",
    "Bobur",
    "Mustaqillik",
    "Amir Temur",
    "Yangi hayot",
    "Bog'bon",
    "Paxtakor",
    "Do'stlik",
    "Chinor",
    "Gulzor",
    "Istiqlol",
    "Ulug'bek",
]
MAHALLA_NAMES = ["Obod", "Bahor", "Navbahor", "Tinchlik", "Yangiobod", "Oqtepa", "Bo'ston"]


@dataclass(frozen=True)
class DemoInfo:
    region_id: int
    district_id: int
    mahalla_ids: tuple[int, ...]
    account_ids: tuple[int, ...]
    meter_ids: tuple[int, ...]
    zone_ids: tuple[int, ...]


def ensure_default_tariffs(conn: psycopg.Connection[Any], since: date) -> None:
    """Insert illustrative tariffs and a norm when none exist (12 % VAT for legal entities)."""
    if conn.execute("SELECT 1 FROM tariffs LIMIT 1").fetchone() is None:
        conn.execute(
            """INSERT INTO tariffs (category, valid_from, price_tiyin_per_m3, vat_rate_bp, note)
               VALUES ('household', %s, 165000, 0, 'demo'), ('legal', %s, 520000, 1200, 'demo'),
                      ('budget', %s, 410000, 1200, 'demo')""",
            (since, since, since),
        )
    if conn.execute("SELECT 1 FROM norms LIMIT 1").fetchone() is None:
        conn.execute(
            "INSERT INTO norms (valid_from, m3_per_person_month) VALUES (%s, 4.5)", (since,)
        )


def generate(
    conn: psycopg.Connection[Any],
    n: int,
    *,
    period: date,
    seed: int = 1,
    tag: str = "Demo",
    tz: str = "Asia/Tashkent",
    legal_share: float = 0.03,
    unmetered_share: float = 0.08,
    missing_end_share: float = 0.04,
    zones: int = 4,
) -> DemoInfo:
    """Create ``n`` subscribers with addresses, meters and readings around ``period``.

    Metered accounts get register readings at the start of the previous month, the start of
    ``period`` and its end (a few miss the end reading, so their end is estimated). Runs in
    the caller's transaction.
    """
    rng = np.random.default_rng(seed)
    first, last = period_bounds(period)
    zone = ZoneInfo(tz)
    times = _Times(
        prev_start=datetime.combine(period_bounds(first - timedelta(days=1))[0], time(0), zone),
        start=datetime.combine(first, time(0), zone),
        end=datetime.combine(last + timedelta(days=1), time(0), zone),
    )
    ensure_default_tariffs(conn, date(first.year - 1, 1, 1))
    reg = _registry(conn, n, tag=tag, seed=seed, zones=zones)
    accs = _accounts(
        conn, rng, n, reg, times, tag=tag, legal_share=legal_share, unmetered_share=unmetered_share
    )
    meter_ids = _meters(
        conn, rng, n, reg, accs, times, tag=tag, seed=seed, missing_end_share=missing_end_share
    )
    return DemoInfo(
        reg.region_id,
        reg.district_id,
        reg.mahalla_ids,
        accs.ids,
        meter_ids,
        reg.zone_ids,
    )


@dataclass(frozen=True)
class _Times:
    prev_start: datetime  # the start of the month before the period
    start: datetime  # the period's start
    end: datetime  # the period's end


@dataclass(frozen=True)
class _Registry:
    region_id: int
    district_id: int
    zone_ids: tuple[int, ...]
    mahalla_ids: tuple[int, ...]
    house_ids: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class _Accounts:
    ids: tuple[int, ...]
    kinds: npt.NDArray[np.str_]
    metered: npt.NDArray[np.bool_]
    serial0: int  # the highest account serial before these


def _registry(
    conn: psycopg.Connection[Any], n: int, *, tag: str, seed: int, zones: int
) -> _Registry:
    """A region, a district, the zones (DMAs), and enough mahallas, streets and houses for
    ``n`` accounts."""
    row = conn.execute(
        "INSERT INTO regions (name_uz, name_ru) VALUES (%s, %s) RETURNING id",
        (f"{tag} viloyati", f"{tag} область"),
    ).fetchone()
    assert row is not None
    region_id = int(row[0])
    row = conn.execute(
        "INSERT INTO districts (region_id, name_uz, name_ru) VALUES (%s, %s, %s) RETURNING id",
        (region_id, f"{tag} tumani", f"{tag} район"),
    ).fetchone()
    assert row is not None
    district_id = int(row[0])
    zone_ids = []
    for z in range(zones):
        r = conn.execute(
            "INSERT INTO zones (code, name) VALUES (%s, %s) RETURNING id",
            (f"{tag}-DMA-{z + 1}-{seed}", f"{tag} DMA {z + 1}"),
        ).fetchone()
        assert r is not None
        zone_ids.append(int(r[0]))
    n_houses = max(1, n)
    n_streets = -(-n_houses // HOUSES_PER_STREET)
    n_mahallas = -(-n_streets // STREETS_PER_MAHALLA)
    mahalla_ids = []
    for k in range(n_mahallas):
        name = f"{MAHALLA_NAMES[k % len(MAHALLA_NAMES)]} {k + 1}"
        r = conn.execute(
            "INSERT INTO mahallas (district_id, name_uz, name_ru) VALUES (%s, %s, %s) RETURNING id",
            (district_id, f"{name} MFY", f"махалля {name}"),
        ).fetchone()
        assert r is not None
        mahalla_ids.append(int(r[0]))
    street_ids = []
    for k in range(n_streets):
        m_id = mahalla_ids[k // STREETS_PER_MAHALLA]
        name = f"{STREET_NAMES[k % len(STREET_NAMES)]} ko'chasi {k + 1}"
        r = conn.execute(
            "INSERT INTO streets (mahalla_id, name_uz, name_ru) VALUES (%s, %s, %s) RETURNING id",
            (m_id, name, f"улица {STREET_NAMES[k % len(STREET_NAMES)]} {k + 1}"),
        ).fetchone()
        assert r is not None
        street_ids.append(int(r[0]))
    with conn.cursor().copy("COPY houses (street_id, number) FROM STDIN") as cp:
        for h in range(n_houses):
            cp.write_row((street_ids[h // HOUSES_PER_STREET], str(h % HOUSES_PER_STREET + 1)))
    house_ids = tuple(
        int(r[0])
        for r in conn.execute(
            "SELECT id FROM houses WHERE street_id = ANY(%s) ORDER BY id", (street_ids,)
        ).fetchall()
    )
    return _Registry(region_id, district_id, tuple(zone_ids), tuple(mahalla_ids), house_ids)


def _accounts(
    conn: psycopg.Connection[Any],
    rng: np.random.Generator,
    n: int,
    reg: _Registry,
    times: _Times,
    *,
    tag: str,
    legal_share: float,
    unmetered_share: float,
) -> _Accounts:
    """``n`` accounts, a share of them legal entities and a share unmetered households."""
    row = conn.execute(
        "SELECT coalesce(max(substr(number, 1, 8)::bigint), 0) FROM accounts"
    ).fetchone()
    assert row is not None
    serial0 = int(row[0])
    kinds = np.where(rng.random(n) < legal_share, "legal", "household")
    metered = rng.random(n) >= unmetered_share
    metered[kinds == "legal"] = True
    residents = rng.integers(1, 9, n)
    numbers = [make_number(serial0 + i + 1) for i in range(n)]
    opened = times.start.date() - timedelta(days=400)
    zone_ids, house_ids = reg.zone_ids, reg.house_ids
    with conn.cursor().copy(
        "COPY accounts (number, kind, category, name, inn, phone, house_id, zone_id, residents, "
        "metered, opened_on, status_since) FROM STDIN"
    ) as cp:
        for i in range(n):
            legal = kinds[i] == "legal"
            cp.write_row(
                (
                    numbers[i],
                    str(kinds[i]),
                    str(kinds[i]),
                    f"{tag} MChJ {i + 1}" if legal else f"Abonent {tag} {i + 1}",
                    f"{300000000 + serial0 + i:09d}" if legal else None,
                    f"99890{(serial0 + i) % 10**7:07d}",
                    house_ids[i % len(house_ids)],
                    zone_ids[(i * len(zone_ids)) // n],
                    0 if legal else int(residents[i]),
                    bool(metered[i]),
                    opened,
                    times.start - timedelta(days=400),
                )
            )
    acc_rows = conn.execute(
        "SELECT id, number FROM accounts WHERE number = ANY(%s) ORDER BY number", (numbers,)
    ).fetchall()
    return _Accounts(tuple(int(r[0]) for r in acc_rows), kinds, metered, serial0)


def _meters(  # noqa: PLR0917
    conn: psycopg.Connection[Any],
    rng: np.random.Generator,
    n: int,
    reg: _Registry,
    accs: _Accounts,
    times: _Times,
    *,
    tag: str,
    seed: int,
    missing_end_share: float,
) -> tuple[int, ...]:
    """A meter for every metered account, installed a year before the period, with readings
    at the start of the previous month, the start of the period and (mostly) its end."""
    midx = np.flatnonzero(accs.metered)
    zone_ids = reg.zone_ids
    serials = [f"{tag}-M{seed}-{accs.serial0 + mi + 1:08d}" for mi in midx.tolist()]
    with conn.cursor().copy("COPY meters (serial_no, model, digits, zone_id) FROM STDIN") as cp:
        for j, mi in enumerate(midx.tolist()):
            cp.write_row((serials[j], "demo-15", 5, zone_ids[(mi * len(zone_ids)) // n]))
    meter_rows = conn.execute(
        "SELECT id, serial_no FROM meters WHERE serial_no = ANY(%s)", (serials,)
    ).fetchall()
    meter_by_serial = {str(s): int(i) for i, s in meter_rows}
    meter_ids = [meter_by_serial[s] for s in serials]
    installed = times.start - timedelta(days=365)
    base = rng.uniform(10, 5000, len(midx))
    monthly = np.where(
        accs.kinds[midx] == "legal",
        rng.uniform(40, 400, len(midx)),
        rng.uniform(3, 18, len(midx)),
    )
    prev_v = np.round(base, 3)
    start_v = np.round(base + monthly * rng.uniform(0.8, 1.2, len(midx)), 3)
    end_v = np.round(start_v + monthly, 3)
    has_end = rng.random(len(midx)) >= missing_end_share
    with conn.cursor().copy(
        "COPY service_connections (account_id, meter_id, installed_at, initial_reading) FROM STDIN"
    ) as cp:
        for j, mi in enumerate(midx.tolist()):
            cp.write_row((accs.ids[mi], meter_ids[j], installed, 0.0))
    with conn.cursor().copy(
        "COPY meter_readings (meter_id, ts, value_m3, source, entered_by) FROM STDIN"
    ) as cp:
        for j in range(len(midx)):
            cp.write_row((meter_ids[j], times.prev_start, float(prev_v[j]), "inspector", "demo"))
            cp.write_row((meter_ids[j], times.start, float(start_v[j]), "inspector", "demo"))
            if has_end[j]:
                cp.write_row((meter_ids[j], times.end, float(end_v[j]), "inspector", "demo"))
    return tuple(meter_ids)
