"""Subscriber base: addresses, accounts, status, meters, service connections, readings.

All functions run in the caller's transaction and validate their input first, so bad data
gets a clear :class:`~billing.errors.AccountDataError` before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from billing.accountno import clean, is_valid, make_number, normalize
from billing.errors import AccountDataError

KINDS = ("household", "legal", "budget")
STATUSES = ("active", "suspended", "closed")
READING_SOURCES = ("telemetry", "manual", "inspector", "customer")
_PHONE = re.compile(r"^\+?[0-9]{9,15}$")


@dataclass(frozen=True)
class Address:
    region: str
    district: str
    mahalla: str
    street: str
    house: str
    apartment: str | None = None


def _get_or_create(  # noqa: PLR0917
    conn: psycopg.Connection[Any],
    table: str,
    parent_col: str | None,
    parent: int | None,
    name_col: str,
    name: str,
) -> int:
    """The id of the registry row named ``name`` (under ``parent``), created when missing.

    ``table`` and the column names are literals of :func:`ensure_address`, never outside text;
    the name and the parent id are query parameters."""
    name = name.strip()
    args: tuple[Any, ...]
    vals: tuple[Any, ...]
    if not name:
        raise AccountDataError(f"{table}: the name is empty")
    if parent_col is None:
        where, args = f"{name_col} = %s", (name,)
        cols, vals = f"({name_col})", (name,)
    else:
        where, args = f"{parent_col} = %s AND {name_col} = %s", (parent, name)
        cols, vals = f"({parent_col}, {name_col})", (parent, name)
    select = f"SELECT id FROM {table} WHERE {where}"  # noqa: S608 - literal names, see the doc
    row = conn.execute(select, args).fetchone()
    if row is not None:
        return int(row[0])
    ph = ", ".join(["%s"] * len(vals))
    insert = (
        f"INSERT INTO {table} {cols} VALUES ({ph})"  # noqa: S608 - literal names, see the doc
        " ON CONFLICT DO NOTHING RETURNING id"
    )
    row = conn.execute(insert, vals).fetchone()
    if row is None:
        row = conn.execute(select, args).fetchone()
    assert row is not None
    return int(row[0])


def ensure_address(conn: psycopg.Connection[Any], a: Address) -> tuple[int, int | None]:
    """(house id, apartment id) of an address, creating missing registry entries."""
    region = _get_or_create(conn, "regions", None, None, "name_uz", a.region)
    district = _get_or_create(conn, "districts", "region_id", region, "name_uz", a.district)
    mahalla = _get_or_create(conn, "mahallas", "district_id", district, "name_uz", a.mahalla)
    street = _get_or_create(conn, "streets", "mahalla_id", mahalla, "name_uz", a.street)
    house = _get_or_create(conn, "houses", "street_id", street, "number", a.house)
    apt = None
    if a.apartment and a.apartment.strip():
        apt = _get_or_create(conn, "apartments", "house_id", house, "number", a.apartment)
    return house, apt


def validate_fields(
    *,
    kind: str,
    name: str,
    inn: str | None,
    mfo: str | None,
    bank_account: str | None,
    phone: str | None,
    residents: int,
) -> None:
    """Raise AccountDataError naming the first bad field."""
    if kind not in KINDS:
        raise AccountDataError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not name.strip():
        raise AccountDataError("name is empty")
    if inn is not None and not re.fullmatch(r"[0-9]{9}", inn):
        raise AccountDataError(f"INN must be 9 digits, got {inn!r}")
    if kind != "household" and inn is None:
        raise AccountDataError(f"a {kind} account needs an INN")
    if mfo is not None and not re.fullmatch(r"[0-9]{5}", mfo):
        raise AccountDataError(f"MFO (bank code) must be 5 digits, got {mfo!r}")
    if bank_account is not None and not re.fullmatch(r"[0-9]{20}", bank_account):
        raise AccountDataError(f"bank account must be 20 digits, got {bank_account!r}")
    if phone is not None and not _PHONE.fullmatch(phone):
        raise AccountDataError(f"phone must be 9-15 digits (optionally +), got {phone!r}")
    if not 0 <= residents <= 200:
        raise AccountDataError(f"residents must be 0..200, got {residents}")


@dataclass(frozen=True)
class AccountRef:
    """An account found by its number (what a payment needs to know)."""

    id: int
    number: str
    name: str
    status: str


def find_account(conn: psycopg.Connection[Any], number: str) -> AccountRef | None:
    """The account with this number as typed or sent (cleaned by
    :func:`billing.accountno.clean`), or None; a malformed number or a wrong check digit is
    None too, without a query."""
    num = clean(number)
    if not is_valid(num):
        return None
    row = conn.execute(
        "SELECT id, number, name, status FROM accounts WHERE number = %s", (num,)
    ).fetchone()
    return None if row is None else AccountRef(int(row[0]), row[1], row[2], row[3])


def next_number(conn: psycopg.Connection[Any]) -> str:
    """The next free account number (serialised with a transaction advisory lock)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('billing-account-number'))")
    row = conn.execute(
        "SELECT coalesce(max(substr(number, 1, 8)::bigint), 0) FROM accounts"
    ).fetchone()
    assert row is not None
    return make_number(int(row[0]) + 1)


def create_account(
    conn: psycopg.Connection[Any],
    *,
    kind: str,
    name: str,
    address: Address,
    now: datetime,
    residents: int = 0,
    inn: str | None = None,
    mfo: str | None = None,
    bank_account: str | None = None,
    phone: str | None = None,
    metered: bool = True,
    category: str | None = None,
    number: str | None = None,
    opened_on: date | None = None,
    zone_id: int | None = None,
    legacy_ref: str | None = None,
) -> tuple[int, str]:
    """Create an account; returns (id, number). ``number`` (if given) is check-digit verified."""
    validate_fields(
        kind=kind,
        name=name,
        inn=inn,
        mfo=mfo,
        bank_account=bank_account,
        phone=phone,
        residents=residents,
    )
    house, apt = ensure_address(conn, address)
    num = normalize(number) if number else next_number(conn)
    try:
        with conn.transaction():
            row = conn.execute(
                """INSERT INTO accounts (number, kind, category, name, inn, mfo, bank_account,
                       phone, house_id, apartment_id, zone_id, residents, metered, opened_on,
                       status_since, legacy_ref)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   RETURNING id""",
                (
                    num,
                    kind,
                    category or kind,
                    name.strip(),
                    inn,
                    mfo,
                    bank_account,
                    phone,
                    house,
                    apt,
                    zone_id,
                    residents,
                    metered,
                    opened_on or now.date(),
                    now,
                    legacy_ref,
                ),
            ).fetchone()
    except pg_errors.UniqueViolation as exc:
        raise AccountDataError(
            f"account number {num} or legacy id {legacy_ref!r} already exists"
        ) from exc
    assert row is not None
    return int(row[0]), num


def set_status(
    conn: psycopg.Connection[Any],
    account_id: int,
    status: str,
    *,
    now: datetime,
    reason: str = "",
) -> bool:
    """Change the status from the moment ``now`` on (history is kept by a trigger with the
    reason). ``now`` may lie in the past (a closing entered late) but not before the
    account's previous status change. False when the account already had that status."""
    if status not in STATUSES:
        raise AccountDataError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    last = conn.execute(
        "SELECT max(since) FROM account_status_history WHERE account_id = %s AND id > "
        "(SELECT min(id) FROM account_status_history WHERE account_id = %s)",
        (account_id, account_id),
    ).fetchone()
    if last is not None and last[0] is not None and now < last[0]:
        # the history must stay in time order: the billing prorates by it
        raise AccountDataError(
            f"account {account_id} last changed status at {last[0].isoformat()}; "
            f"a change cannot take effect before that ({now.isoformat()})"
        )
    conn.execute("SELECT set_config('suvnet.status_reason', %s, true)", (reason,))
    cur = conn.execute(
        "UPDATE accounts SET status = %s, status_since = %s WHERE id = %s AND status <> %s",
        (status, now, account_id, status),
    )
    if (
        cur.rowcount == 0
        and not conn.execute("SELECT 1 FROM accounts WHERE id = %s", (account_id,)).fetchone()
    ):
        raise AccountDataError(f"no account {account_id}")
    return cur.rowcount > 0


def months_billed_since(
    conn: psycopg.Connection[Any], account_id: int, since: datetime, tz: str
) -> list[str]:
    """The months (YYYY-MM) already invoiced for an account from the month of ``since`` on:
    after a late status change they need ``billing correct`` to follow the new days."""
    rows = conn.execute(
        "SELECT to_char(period, 'YYYY-MM') FROM invoices WHERE account_id = %s "
        "AND period >= date_trunc('month', (%s::timestamptz AT TIME ZONE %s))::date "
        "ORDER BY period",
        (account_id, since, tz),
    ).fetchall()
    return [str(r[0]) for r in rows]


def install_meter(
    conn: psycopg.Connection[Any],
    account_id: int,
    serial_no: str,
    *,
    installed_at: datetime,
    initial_reading: float = 0.0,
    digits: int = 5,
    point_id: int | None = None,
    zone_id: int | None = None,
) -> int:
    """Register a meter (or reuse one by serial) and connect it to an account."""
    row = conn.execute("SELECT id FROM meters WHERE serial_no = %s", (serial_no,)).fetchone()
    if row is None:
        row = conn.execute(
            "INSERT INTO meters (serial_no, digits, point_id, zone_id) VALUES (%s, %s, %s, %s) "
            "RETURNING id",
            (serial_no, digits, point_id, zone_id),
        ).fetchone()
    assert row is not None
    meter_id = int(row[0])
    try:
        with conn.transaction():
            conn.execute(
                "INSERT INTO service_connections (account_id, meter_id, installed_at, "
                "initial_reading) VALUES (%s, %s, %s, %s)",
                (account_id, meter_id, installed_at, initial_reading),
            )
    except pg_errors.UniqueViolation as exc:
        raise AccountDataError(f"meter {serial_no} is still installed on another account") from exc
    return meter_id


def remove_meter(
    conn: psycopg.Connection[Any], meter_id: int, *, removed_at: datetime, final_reading: float
) -> None:
    cur = conn.execute(
        "UPDATE service_connections SET removed_at = %s, final_reading = %s "
        "WHERE meter_id = %s AND removed_at IS NULL AND installed_at < %s",
        (removed_at, final_reading, meter_id, removed_at),
    )
    if cur.rowcount != 1:
        raise AccountDataError(f"meter {meter_id} has no open connection before {removed_at}")


def replace_meter(
    conn: psycopg.Connection[Any],
    account_id: int,
    old_meter_id: int,
    new_serial: str,
    *,
    at: datetime,
    final_reading: float,
    new_initial: float = 0.0,
    digits: int = 5,
) -> int:
    """Remove a meter with its final reading and install a new one at the same moment."""
    remove_meter(conn, old_meter_id, removed_at=at, final_reading=final_reading)
    return install_meter(
        conn, account_id, new_serial, installed_at=at, initial_reading=new_initial, digits=digits
    )


def add_reading(
    conn: psycopg.Connection[Any],
    meter_id: int,
    ts: datetime,
    value_m3: float,
    source: str,
    *,
    entered_by: str = "",
) -> None:
    """Record a register reading (idempotent on meter, time and source)."""
    if source not in READING_SOURCES:
        raise AccountDataError(f"reading source must be one of {', '.join(READING_SOURCES)}")
    if not value_m3 >= 0:
        raise AccountDataError(f"a register reading must be >= 0 m³, got {value_m3}")
    conn.execute(
        "INSERT INTO meter_readings (meter_id, ts, value_m3, source, entered_by) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (meter_id, ts, source) "
        "DO UPDATE SET value_m3 = EXCLUDED.value_m3, entered_by = EXCLUDED.entered_by",
        (meter_id, ts, value_m3, source, entered_by),
    )
