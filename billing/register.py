"""The subscriber register kept by hand: accounts (open, edit), residents, the address
dictionary, meters (install, seal, replace, remove), manual readings with the consumption
checks shown before saving, tariffs and norms. The back office's register pages call this
module (through :mod:`api.services.register`).

The rules are the imports' (:mod:`billing.importer`, :mod:`billing.accounts`): the same fields
are refused for the same reasons, and the writes go through the same functions
(:func:`billing.accounts.create_account`, :func:`~billing.accounts.install_meter`,
:func:`~billing.accounts.replace_meter`, :func:`~billing.accounts.remove_meter`,
:func:`~billing.accounts.add_reading`). A form is checked as a whole first: every bad field is
a :class:`Problem` with a stable ``code`` that the pages translate, and nothing is written
while there is one (:class:`RegisterError`).

Writes take a synchronous connection and run in the caller's transaction; reads for the
pages take the API's async connection. Time comes in as ``now``. The SQL text is made of this
module's constants; every value travels as a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
from psycopg import AsyncConnection
from psycopg import errors as pg_errors

from billing import accounts as acc
from billing import consumption as kern
from billing.accountno import normalize
from billing.config import ConsumptionParams
from billing.errors import AccountDataError, AccountNumberError, BillingError
from billing.search import to_cyrillic
from suvnet.listing import fetch_all, fetch_one

AConn = AsyncConnection[Any]
Conn = psycopg.Connection[Any]

# ---------------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One bad field of a form: ``field`` is the form's field name, ``code`` a stable word
    the pages translate, ``detail`` the same in English (logs, the JSON API) and ``params``
    what the message names (a month, a reading)."""

    field: str
    code: str
    detail: str
    params: dict[str, str] = dc_field(default_factory=dict)


class RegisterError(BillingError):
    """A register form was refused; ``problems`` says why, field by field."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.detail}" for p in problems))
        self.problems = list(problems)


def _refuse(problems: list[Problem]) -> None:
    if problems:
        raise RegisterError(problems)


def _db_problem(exc: psycopg.Error, fld: str) -> RegisterError:
    """A refusal of the database (a unique or foreign key) as a problem of ``fld``."""
    if isinstance(exc, pg_errors.UniqueViolation):
        return RegisterError([Problem(fld, "taken", "this value is already used")])
    if isinstance(exc, pg_errors.ForeignKeyViolation):
        return RegisterError([Problem(fld, "in_use", "it is still used; nothing was deleted")])
    return RegisterError([Problem(fld, "refused", exc.diag.message_primary or str(exc))])


# ------------------------------------------------------------------------- parsing helpers

_DIGITS_SEPARATORS = re.compile(r"[\s\-]")
SERIAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/.\-]{0,31}$")
SEAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/\-]{0,31}$")
SOATO_REGION = re.compile(r"^17[0-9]{2}$")
SOATO_DISTRICT = re.compile(r"^17[0-9]{5}$")
MFY_CODE = re.compile(r"^[0-9]{1,14}$")
CADASTRAL = re.compile(r"^[0-9]{2}(:[0-9]{1,5}){3,7}(/[0-9]{1,5})?$")
HOUSE_NO = re.compile(r"^[0-9A-Za-zА-Яа-яЎўҚқҒғҲҳЁё/\- ]{1,16}$")
STREET_KINDS = ("street", "avenue", "lane", "dead_end", "passage", "square")
CATEGORIES = acc.KINDS


def digits(text: str | None) -> str | None:
    """A number field as typed (spaces and dashes dropped), None when empty. Like the
    import's ``_digits``: the INN, MFO, bank account and phone."""
    if text is None:
        return None
    v = _DIGITS_SEPARATORS.sub("", text.strip())
    return v or None


def parse_decimal(text: str, places: int) -> Decimal | None:
    """``1 650,50`` or ``1650.5`` with at most ``places`` decimals, None when unreadable."""
    t = text.replace("\u202f", "").replace("\xa0", "").replace(" ", "").replace(",", ".")
    try:
        d = Decimal(t)
    except InvalidOperation:
        return None
    if not d.is_finite() or d != d.quantize(Decimal(1).scaleb(-places)):
        return None
    return d


def local_moment(day: date, at: str, tz: str) -> datetime:
    """A local date and an optional HH:MM as an aware datetime (00:00 when empty)."""
    t = time(0)
    if at.strip():
        hh, _, mm = at.strip().partition(":")
        t = time(int(hh), int(mm or 0))
    return datetime.combine(day, t, ZoneInfo(tz))


# -------------------------------------------------------------------------------- accounts


@dataclass(frozen=True)
class AccountForm:
    """The account fields a person fills in (text as typed; :meth:`check` reads them)."""

    kind: str
    name: str
    street_id: int | None
    house: str
    apartment: str = ""
    category: str = ""
    inn: str = ""
    mfo: str = ""
    bank_account: str = ""
    phone: str = ""
    email: str = ""
    residents: str = "0"
    metered: bool = True
    opened_on: date | None = None
    number: str = ""

    def check(self, *, now: date) -> list[Problem]:
        """Every bad field, by the rules of :func:`billing.accounts.validate_fields` and of
        the import (required address, an INN for legal entities and budget bodies)."""
        p: list[Problem] = []
        if self.kind not in acc.KINDS:
            p.append(Problem("kind", "kind", "kind must be household, legal or budget"))
        if self.category and self.category not in CATEGORIES:
            p.append(Problem("category", "kind", "category must be household, legal or budget"))
        if not self.name.strip():
            p.append(Problem("name", "required", "name is empty"))
        elif len(self.name) > 200:
            p.append(Problem("name", "too_long", "name is longer than 200 characters"))
        if self.street_id is None:
            p.append(Problem("street_id", "required", "choose the street"))
        house = self.house.strip()
        if not house:
            p.append(Problem("house", "required", "house number is empty"))
        elif not HOUSE_NO.fullmatch(house):
            p.append(Problem("house", "house", "a house number is digits and letters, e.g. 12a"))
        if self.apartment.strip() and not HOUSE_NO.fullmatch(self.apartment.strip()):
            p.append(Problem("apartment", "house", "an apartment is digits and letters"))
        inn, mfo, bank, phone = (
            digits(self.inn),
            digits(self.mfo),
            digits(self.bank_account),
            digits(self.phone),
        )
        if inn is not None and not re.fullmatch(r"[0-9]{9}", inn):
            p.append(Problem("inn", "inn", "INN must be 9 digits"))
        if self.kind in ("legal", "budget") and inn is None:
            p.append(Problem("inn", "inn_required", f"a {self.kind} account needs an INN"))
        if mfo is not None and not re.fullmatch(r"[0-9]{5}", mfo):
            p.append(Problem("mfo", "mfo", "MFO (bank code) must be 5 digits"))
        if bank is not None and not re.fullmatch(r"[0-9]{20}", bank):
            p.append(Problem("bank_account", "bank_account", "bank account must be 20 digits"))
        if phone is not None and not re.fullmatch(r"\+?[0-9]{9,15}", phone):
            p.append(Problem("phone", "phone", "phone must be 9-15 digits (optionally +)"))
        if self.email.strip() and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", self.email.strip()):
            p.append(Problem("email", "email", "not an e-mail address"))
        try:
            residents = int(self.residents.strip() or "0")
        except ValueError:
            p.append(Problem("residents", "whole_number", "residents must be a whole number"))
        else:
            if not 0 <= residents <= 200:
                p.append(Problem("residents", "residents", "residents must be 0..200"))
        if self.opened_on is not None and self.opened_on > now:
            p.append(Problem("opened_on", "future", "the opening date is in the future"))
        if self.number.strip():
            try:
                normalize(self.number)
            except AccountNumberError:
                p.append(Problem("number", "account_number", "wrong account number"))
        return p

    @property
    def residents_count(self) -> int:
        return int(self.residents.strip() or "0")


def _street_address(conn: Conn, street_id: int, house: str, apartment: str) -> acc.Address:
    row = conn.execute(
        "SELECT r.name_uz, d.name_uz, m.name_uz, s.name_uz FROM streets s "
        "JOIN mahallas m ON m.id = s.mahalla_id JOIN districts d ON d.id = m.district_id "
        "JOIN regions r ON r.id = d.region_id WHERE s.id = %s",
        (street_id,),
    ).fetchone()
    if row is None:
        raise RegisterError([Problem("street_id", "unknown", "no such street")])
    return acc.Address(row[0], row[1], row[2], row[3], house.strip(), apartment.strip() or None)


def open_account(conn: Conn, form: AccountForm, *, now: datetime, by: str) -> tuple[int, str]:
    """A new account at an address of the dictionary (a house or apartment missing on the
    street is added; regions, districts, mahallas and streets never are). Returns (id,
    number). The number of residents is the first line of its history."""
    _refuse(form.check(now=now.date()))
    address = _street_address(conn, form.street_id or 0, form.house, form.apartment)
    try:
        acc_id, number = acc.create_account(
            conn,
            kind=form.kind,
            category=form.category or None,
            name=form.name,
            address=address,
            now=now,
            residents=form.residents_count,
            inn=digits(form.inn),
            mfo=digits(form.mfo),
            bank_account=digits(form.bank_account),
            phone=digits(form.phone),
            metered=form.metered,
            number=form.number.strip() or None,
            opened_on=form.opened_on,
        )
    except AccountDataError as exc:
        raise RegisterError([Problem("number", "taken", str(exc))]) from exc
    if form.email.strip():
        conn.execute("UPDATE accounts SET email = %s WHERE id = %s", (form.email.strip(), acc_id))
    _residents_line(
        conn,
        acc_id,
        form.residents_count,
        form.opened_on or now.date(),
        reason="opened",
        document="",
        by=by,
        now=now,
    )
    return acc_id, number


ACCOUNT_FIELDS = (
    "kind",
    "category",
    "name",
    "inn",
    "mfo",
    "bank_account",
    "phone",
    "email",
    "metered",
    "house_id",
    "apartment_id",
)


def account_row(conn: Conn, number: str) -> dict[str, Any]:
    """The fields of an account the edit form changes (RegisterError when unknown)."""
    try:
        num = normalize(number)
    except AccountNumberError as exc:
        raise RegisterError([Problem("number", "account_number", str(exc))]) from exc
    cur = conn.execute(
        "SELECT a.id, a.number, a.kind, a.category, a.name, a.inn, a.mfo, a.bank_account, "
        "a.phone, a.email, a.metered, a.house_id, a.apartment_id, a.residents, a.status, "
        "a.opened_on, h.street_id, h.number AS house, ap.number AS apartment "
        "FROM accounts a JOIN houses h ON h.id = a.house_id "
        "LEFT JOIN apartments ap ON ap.id = a.apartment_id WHERE a.number = %s",
        (num,),
    )
    row = cur.fetchone()
    if row is None:
        raise RegisterError([Problem("number", "unknown", f"no account {num}")])
    names = [d.name for d in cur.description or ()]
    return dict(zip(names, row, strict=True))


async def account_form(conn: AConn, number: str) -> dict[str, Any] | None:
    """An account's fields as the edit form shows them (with its street's mahalla)."""
    return await fetch_one(
        conn,
        "SELECT a.id, a.number, a.kind, a.category, a.name, a.inn, a.mfo, a.bank_account, "
        "a.phone, a.email, a.metered, a.residents, a.status, a.status_since, a.opened_on, "
        "h.street_id, s.mahalla_id, h.number AS house, coalesce(ap.number, '') AS apartment "
        "FROM accounts a JOIN houses h ON h.id = a.house_id JOIN streets s ON s.id = h.street_id "
        "LEFT JOIN apartments ap ON ap.id = a.apartment_id WHERE a.number = %s",
        (number,),
    )


def edit_account(
    conn: Conn, number: str, form: AccountForm, *, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Change an account's details and address; returns (before, after) of the changed
    fields (for the audit log). The number, status and residents have their own actions."""
    before = account_row(conn, number)
    _refuse(form.check(now=now.date()))
    address = _street_address(conn, form.street_id or 0, form.house, form.apartment)
    house_id, apt_id = acc.ensure_address(conn, address)
    new = {
        "kind": form.kind,
        "category": form.category or form.kind,
        "name": form.name.strip(),
        "inn": digits(form.inn),
        "mfo": digits(form.mfo),
        "bank_account": digits(form.bank_account),
        "phone": digits(form.phone),
        "email": form.email.strip() or None,
        "metered": form.metered,
        "house_id": house_id,
        "apartment_id": apt_id,
    }
    changed = {k: v for k, v in new.items() if before[k] != v}
    if changed:
        sets = ", ".join(f"{k} = %s" for k in changed)  # names from ACCOUNT_FIELDS
        try:
            with conn.transaction():
                conn.execute(
                    f"UPDATE accounts SET {sets} WHERE id = %s",  # noqa: S608 - column names are ACCOUNT_FIELDS
                    [*changed.values(), before["id"]],
                )
        except pg_errors.IntegrityError as exc:
            raise _db_problem(exc, "name") from exc
    return ({k: before[k] for k in changed}, changed)


def status_problems(
    conn: Conn, number: str, status: str, at: datetime | None, reason: str, *, now: datetime
) -> list[Problem]:
    """What refuses a status change before :func:`billing.accounts.set_status` is asked: a
    status that does not exist, a moment in the future or before the account's last status
    change (the billing prorates by the history, in time order), no reason."""
    row = account_row(conn, number)
    p: list[Problem] = []
    if status not in acc.STATUSES:
        p.append(Problem("status", "unknown", "status: active, suspended or closed"))
    elif status == row["status"]:
        p.append(Problem("status", "same_status", f"the account is {status} already"))
    if at is not None and at > now:
        p.append(Problem("at", "future", "the time is in the future"))
    last = conn.execute(
        "SELECT max(since) FROM account_status_history WHERE account_id = %s AND id > "
        "(SELECT min(id) FROM account_status_history WHERE account_id = %s)",
        (row["id"], row["id"]),
    ).fetchone()
    when = at or now
    if last is not None and last[0] is not None and when < last[0]:
        p.append(
            Problem(
                "at",
                "before_last_status",
                f"the status last changed at {last[0].isoformat()}",
                {"date": last[0].isoformat()},
            )
        )
    if not reason.strip():
        p.append(Problem("reason", "required", "the reason is missing"))
    return p


# ------------------------------------------------------------------------------- residents


def _residents_line(
    conn: Conn,
    account_id: int,
    residents: int,
    since: date,
    *,
    reason: str,
    document: str,
    by: str,
    now: datetime,
) -> None:
    conn.execute(
        "INSERT INTO account_residents_history (account_id, residents, since, reason, "
        "document, entered_by, entered_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (account_id, residents, since, reason, document, by, now),
    )


def set_residents(  # noqa: PLR0917
    conn: Conn,
    number: str,
    residents: str,
    since: date | None,
    reason: str,
    document: str,
    *,
    by: str,
    now: datetime,
    tz: str,
) -> tuple[int, int, list[str]]:
    """Change the number of residents from ``since`` on, with its reason and document (the
    mahalla's certificate...). Returns (before, after, months already billed from ``since``
    on: they need ``billing correct`` to follow). The billing run uses the number of the
    account when it runs."""
    row = account_row(conn, number)
    p: list[Problem] = []
    try:
        n = int(residents.strip())
    except ValueError:
        p.append(Problem("residents", "whole_number", "residents must be a whole number"))
        n = -1
    else:
        if not 0 <= n <= 200:
            p.append(Problem("residents", "residents", "residents must be 0..200"))
    if since is None:
        p.append(Problem("since", "required", "the date is missing"))
    elif since > now.astimezone(ZoneInfo(tz)).date():
        p.append(Problem("since", "future", "the date is in the future"))
    elif since < row["opened_on"]:
        p.append(Problem("since", "before_opening", "the date is before the account opened"))
    if not reason.strip():
        p.append(Problem("reason", "required", "the reason is missing"))
    _refuse(p)
    assert since is not None
    conn.execute("UPDATE accounts SET residents = %s WHERE id = %s", (n, row["id"]))
    _residents_line(
        conn, row["id"], n, since, reason=reason.strip(), document=document.strip(), by=by, now=now
    )
    months = acc.months_billed_since(
        conn, row["id"], datetime.combine(since, time(0), ZoneInfo(tz)), tz
    )
    return int(row["residents"]), n, months


async def residents_history(conn: AConn, account_id: int) -> list[dict[str, Any]]:
    """The changes of the number of residents, newest first."""
    return await fetch_all(
        conn,
        "SELECT residents, since, reason, document, entered_by, entered_at "
        "FROM account_residents_history WHERE account_id = %s ORDER BY since DESC, id DESC",
        (account_id,),
    )


# ---------------------------------------------------------------------- address dictionary

LEVELS = ("region", "district", "mahalla", "street", "house", "apartment")
"""The levels of the address dictionary, from the top."""

_TABLE = {
    "region": ("regions", None),
    "district": ("districts", "region_id"),
    "mahalla": ("mahallas", "district_id"),
    "street": ("streets", "mahalla_id"),
    "house": ("houses", "street_id"),
    "apartment": ("apartments", "house_id"),
}
"""Each level's table and the column of its parent (constants: the SQL is made of them)."""


@dataclass(frozen=True)
class PlaceForm:
    """One entry of the address dictionary as typed. Regions, districts, mahallas and
    streets have names in Uzbek Latin (required), Uzbek Cyrillic (made from the Latin one
    when left empty) and Russian, and a code: the SOATO code of a region (4 digits, 17xx) or
    district (7 digits, starting with its region's), the mahalla's MFY code (digits), a
    street's code. Houses and apartments have a number and a cadastral number."""

    level: str
    parent_id: int | None
    name_uz: str = ""
    name_uz_cyrl: str = ""
    name_ru: str = ""
    code: str = ""
    kind: str = "street"
    number: str = ""
    cadastral_no: str = ""
    lat: str = ""
    lon: str = ""

    def check(self, parent_code: str | None = None) -> list[Problem]:
        p: list[Problem] = []
        if self.level not in LEVELS:
            return [Problem("level", "unknown", f"unknown level {self.level!r}")]
        if self.level != "region" and self.parent_id is None:
            p.append(Problem("parent_id", "required", "the entry above is missing"))
        code = self.code.strip()
        if self.level in ("house", "apartment"):
            if not self.number.strip():
                p.append(Problem("number", "required", "the number is empty"))
            elif not HOUSE_NO.fullmatch(self.number.strip()):
                p.append(Problem("number", "house", "a number is digits and letters, e.g. 12a"))
            cad = self.cadastral_no.strip()
            if cad and not CADASTRAL.fullmatch(cad):
                p.append(
                    Problem(
                        "cadastral_no", "cadastral", "cadastral number like 10:08:01:01:03:0042"
                    )
                )
            if self.level == "house":
                for fld, text, lo, hi in (("lat", self.lat, -90, 90), ("lon", self.lon, -180, 180)):
                    if text.strip():
                        v = parse_decimal(text, 8)
                        if v is None or not lo <= v <= hi:
                            p.append(Problem(fld, "coordinate", f"{fld} must be {lo}..{hi}"))
            return p
        if not self.name_uz.strip():
            p.append(Problem("name_uz", "required", "the name in Uzbek (Latin) is empty"))
        p.extend(
            Problem(fld, "too_long", "longer than 120 characters")
            for fld in ("name_uz", "name_uz_cyrl", "name_ru")
            if len(getattr(self, fld)) > 120
        )
        if code:
            if self.level == "region" and not SOATO_REGION.fullmatch(code):
                p.append(
                    Problem("code", "soato_region", "a region's SOATO code is 17 and 2 digits")
                )
            if self.level == "district":
                if not SOATO_DISTRICT.fullmatch(code):
                    p.append(
                        Problem("code", "soato_district", "a district's SOATO code is 7 digits")
                    )
                elif parent_code and not code.startswith(parent_code):
                    p.append(
                        Problem(
                            "code",
                            "soato_parent",
                            f"a district's SOATO code starts with its region's ({parent_code})",
                            {"code": parent_code},
                        )
                    )
            if self.level == "mahalla" and not MFY_CODE.fullmatch(code):
                p.append(Problem("code", "mfy_code", "a mahalla's code is digits"))
            if self.level == "street" and len(code) > 32:
                p.append(Problem("code", "too_long", "longer than 32 characters"))
        if self.level == "street" and self.kind not in STREET_KINDS:
            p.append(Problem("kind", "unknown", "unknown kind of street"))
        return p

    def values(self) -> dict[str, Any]:
        """The columns to write (a missing Uzbek Cyrillic name made from the Latin one)."""
        if self.level in ("house", "apartment"):
            out: dict[str, Any] = {
                "number": self.number.strip(),
                "cadastral_no": self.cadastral_no.strip() or None,
            }
            if self.level == "house":
                for fld in ("lat", "lon"):
                    v = parse_decimal(getattr(self, fld), 8) if getattr(self, fld).strip() else None
                    out[fld] = None if v is None else float(v)
            return out
        out = {
            "name_uz": self.name_uz.strip(),
            "name_uz_cyrl": self.name_uz_cyrl.strip() or to_cyrillic(self.name_uz.strip()),
            "name_ru": self.name_ru.strip() or None,
            "code": self.code.strip() or None,
        }
        if self.level == "street":
            out["kind"] = self.kind
        return out


def _parent_code(conn: Conn, form: PlaceForm) -> str | None:
    if form.level != "district" or form.parent_id is None:
        return None
    row = conn.execute("SELECT code FROM regions WHERE id = %s", (form.parent_id,)).fetchone()
    return None if row is None else row[0]


def save_place(
    conn: Conn, form: PlaceForm, place_id: int | None = None
) -> tuple[int, dict[str, Any] | None, dict[str, Any]]:
    """Add (``place_id`` None) or change an entry of the address dictionary; returns (id,
    before, after). The accounts' search keys follow a changed name (a trigger)."""
    _refuse(form.check(_parent_code(conn, form)))
    table, parent_col = _TABLE[form.level]
    vals = form.values()
    before: dict[str, Any] | None = None
    try:
        with conn.transaction():
            if place_id is None:
                cols = list(vals)
                args = list(vals.values())
                if parent_col:
                    cols.append(parent_col)
                    args.append(form.parent_id)
                row = conn.execute(
                    f"INSERT INTO {table} ({', '.join(cols)}) VALUES "  # noqa: S608 - _TABLE and PlaceForm columns
                    f"({', '.join(['%s'] * len(cols))}) RETURNING id",
                    args,
                ).fetchone()
                assert row is not None
                place_id = int(row[0])
            else:
                cur = conn.execute(
                    f"SELECT {', '.join(vals)} FROM {table} WHERE id = %s",  # noqa: S608 - constants
                    (place_id,),
                )
                old = cur.fetchone()
                if old is None:
                    raise RegisterError([Problem("id", "unknown", "no such entry")])
                before = dict(zip(vals, old, strict=True))
                conn.execute(
                    f"UPDATE {table} SET {', '.join(f'{c} = %s' for c in vals)} WHERE id = %s",  # noqa: S608 - constants
                    [*vals.values(), place_id],
                )
    except pg_errors.UniqueViolation as exc:
        fld = "cadastral_no" if "cadastral" in (exc.diag.constraint_name or "") else (
            "code" if "code" in (exc.diag.constraint_name or "") else (
                "number" if form.level in ("house", "apartment") else "name_uz"
            )
        )  # fmt: skip
        raise _db_problem(exc, fld) from exc
    except pg_errors.IntegrityError as exc:
        raise _db_problem(exc, "parent_id") from exc
    return place_id, before, vals


def delete_place(conn: Conn, level: str, place_id: int) -> dict[str, Any]:
    """Delete an entry that nothing uses (no entry below it, no account); returns it."""
    if level not in _TABLE:
        raise RegisterError([Problem("level", "unknown", f"unknown level {level!r}")])
    table, _ = _TABLE[level]
    try:
        with conn.transaction():
            cur = conn.execute(
                f"DELETE FROM {table} WHERE id = %s RETURNING *",  # noqa: S608 - constants
                (place_id,),
            )
            row = cur.fetchone()
    except pg_errors.ForeignKeyViolation as exc:
        raise _db_problem(exc, "id") from exc
    if row is None:
        raise RegisterError([Problem("id", "unknown", "no such entry")])
    return dict(zip([d.name for d in cur.description or ()], row, strict=True))


async def places(conn: AConn, level: str, parent_id: int | None) -> list[dict[str, Any]]:
    """The entries of one level under ``parent_id``, with how many entries and accounts are
    below each (what may be deleted)."""
    if level == "region":
        return await fetch_all(
            conn,
            "SELECT r.*, (SELECT count(*) FROM districts d WHERE d.region_id = r.id) AS below "
            "FROM regions r ORDER BY r.name_uz",
        )
    if level == "district":
        sql = (
            "SELECT d.*, (SELECT count(*) FROM mahallas m WHERE m.district_id = d.id) AS below "
            "FROM districts d WHERE d.region_id = %s ORDER BY d.name_uz"
        )
    elif level == "mahalla":
        sql = (
            "SELECT m.*, (SELECT count(*) FROM streets s WHERE s.mahalla_id = m.id) AS below "
            "FROM mahallas m WHERE m.district_id = %s ORDER BY m.name_uz"
        )
    elif level == "street":
        sql = (
            "SELECT s.*, (SELECT count(*) FROM houses h WHERE h.street_id = s.id) AS below "
            "FROM streets s WHERE s.mahalla_id = %s ORDER BY s.name_uz"
        )
    elif level == "house":
        sql = (
            "SELECT h.*, (SELECT count(*) FROM accounts a WHERE a.house_id = h.id) "
            "+ (SELECT count(*) FROM apartments ap WHERE ap.house_id = h.id) AS below "
            "FROM houses h WHERE h.street_id = %s "
            "ORDER BY length(h.number), h.number"
        )
    elif level == "apartment":
        sql = (
            "SELECT ap.*, (SELECT count(*) FROM accounts a WHERE a.apartment_id = ap.id) AS below "
            "FROM apartments ap WHERE ap.house_id = %s ORDER BY length(ap.number), ap.number"
        )
    else:
        return []
    return await fetch_all(conn, sql, (parent_id,))


async def place(conn: AConn, level: str, place_id: int) -> dict[str, Any] | None:
    """One entry of the dictionary with the names of the entries above it (the path)."""
    if level not in _TABLE:
        return None
    sql = {
        "region": "SELECT r.*, NULL::bigint AS parent_id FROM regions r WHERE r.id = %s",
        "district": "SELECT d.*, d.region_id AS parent_id FROM districts d WHERE d.id = %s",
        "mahalla": "SELECT m.*, m.district_id AS parent_id FROM mahallas m WHERE m.id = %s",
        "street": "SELECT s.*, s.mahalla_id AS parent_id FROM streets s WHERE s.id = %s",
        "house": "SELECT h.*, h.street_id AS parent_id FROM houses h WHERE h.id = %s",
        "apartment": "SELECT ap.*, ap.house_id AS parent_id FROM apartments ap WHERE ap.id = %s",
    }[level]
    return await fetch_one(conn, sql, (place_id,))


async def street_choices(conn: AConn, mahalla_id: int) -> list[dict[str, Any]]:
    """The streets of a mahalla (the account form's list)."""
    return await fetch_all(
        conn,
        "SELECT id, name_uz, kind FROM streets WHERE mahalla_id = %s ORDER BY name_uz",
        (mahalla_id,),
    )


async def mahalla_choices(conn: AConn) -> list[dict[str, Any]]:
    """Every mahalla with its district (the account form's first list)."""
    return await fetch_all(
        conn,
        "SELECT m.id, m.name_uz, d.name_uz AS district FROM mahallas m "
        "JOIN districts d ON d.id = m.district_id ORDER BY d.name_uz, m.name_uz",
    )


async def street_mahalla(conn: AConn, street_id: int) -> int | None:
    row = await fetch_one(conn, "SELECT mahalla_id FROM streets WHERE id = %s", (street_id,))
    return None if row is None else int(row["mahalla_id"])


# ---------------------------------------------------------------------------------- meters


def _connection(conn: Conn, account_id: int, meter_id: int) -> dict[str, Any]:
    """The open connection of a meter on an account (RegisterError otherwise)."""
    row = conn.execute(
        "SELECT c.id, c.installed_at, c.initial_reading, m.serial_no, m.digits "
        "FROM service_connections c JOIN meters m ON m.id = c.meter_id "
        "WHERE c.account_id = %s AND c.meter_id = %s AND c.removed_at IS NULL",
        (account_id, meter_id),
    ).fetchone()
    if row is None:
        raise RegisterError(
            [Problem("meter_id", "not_installed", "this meter is not installed on the account")]
        )
    return {
        "id": row[0],
        "installed_at": row[1],
        "initial_reading": row[2],
        "serial_no": row[3],
        "digits": row[4],
    }


def _moment_problems(fld: str, at: datetime | None, now: datetime) -> list[Problem]:
    if at is None:
        return [Problem(fld, "required", "the date is missing")]
    if at > now:
        return [Problem(fld, "future", "the time is in the future")]
    return []


def _reading_problems(fld: str, text: str) -> tuple[float | None, list[Problem]]:
    v = parse_decimal(text, 3) if text.strip() else None
    if v is None:
        return None, [Problem(fld, "reading", "a reading is m³ with up to 3 decimals")]
    if v < 0:
        return None, [Problem(fld, "negative", "a register reading cannot be negative")]
    return float(v), []


def install(  # noqa: PLR0917
    conn: Conn,
    number: str,
    serial: str,
    model: str,
    digits_text: str,
    initial: str,
    at: datetime | None,
    *,
    now: datetime,
) -> dict[str, Any]:
    """Install a meter (a new serial, or one of the store that is not installed elsewhere)
    on an account, with its first reading; the same checks as the import's meter columns."""
    row = account_row(conn, number)
    p = _moment_problems("installed_at", at, now)
    if not SERIAL_RE.fullmatch(serial.strip()):
        p.append(Problem("serial", "serial", "a serial is letters, digits, - / . (up to 32)"))
    try:
        n_digits = int(digits_text.strip() or "5")
    except ValueError:
        n_digits = 0
    if not 3 <= n_digits <= 9:
        p.append(Problem("digits", "digits", "the register has 3 to 9 whole-m³ digits"))
    value, more = _reading_problems("initial", initial)
    p += more
    if row["status"] == "closed":
        p.append(Problem("number", "closed", "the account is closed"))
    if at is not None and at.date() < row["opened_on"] - timedelta(days=1):
        p.append(Problem("installed_at", "before_opening", "before the account was opened"))
    _refuse(p)
    assert at is not None
    assert value is not None
    try:
        meter_id = acc.install_meter(
            conn, row["id"], serial.strip(), installed_at=at, initial_reading=value,
            digits=n_digits,
        )  # fmt: skip
    except AccountDataError as exc:
        raise RegisterError([Problem("serial", "installed_elsewhere", str(exc))]) from exc
    if model.strip():
        conn.execute("UPDATE meters SET model = %s WHERE id = %s", (model.strip(), meter_id))
    return {"meter_id": meter_id, "serial": serial.strip(), "initial": value, "at": at}


def seal(  # noqa: PLR0917
    conn: Conn, number: str, meter_id: int, seal_no: str, at: datetime | None, note: str,
    *, by: str, now: datetime,
) -> dict[str, Any]:  # fmt: skip
    """Put a seal on an installed meter; an earlier seal still on it is taken off at that
    moment (replaced)."""
    row = account_row(conn, number)
    c = _connection(conn, row["id"], meter_id)
    p = _moment_problems("sealed_at", at, now)
    if not SEAL_RE.fullmatch(seal_no.strip()):
        p.append(Problem("seal_no", "seal", "a seal number is letters, digits, - / (up to 32)"))
    if at is not None and at < c["installed_at"]:
        p.append(Problem("sealed_at", "before_install", "before the meter was installed"))
    _refuse(p)
    old = conn.execute(
        "UPDATE meter_seals SET removed_at = %s, note = note || %s "
        "WHERE meter_id = %s AND removed_at IS NULL AND sealed_at <= %s RETURNING seal_no",
        (at, f" (replaced by {seal_no.strip()})", meter_id, at),
    ).fetchone()
    try:
        with conn.transaction():
            conn.execute(
                "INSERT INTO meter_seals (meter_id, seal_no, sealed_at, note, entered_by) "
                "VALUES (%s, %s, %s, %s, %s)",
                (meter_id, seal_no.strip(), at, note.strip(), by),
            )
    except pg_errors.UniqueViolation as exc:
        raise RegisterError(
            [Problem("sealed_at", "seal_later", "the meter has a seal put on later than this")]
        ) from exc
    return {"meter": c["serial_no"], "seal": seal_no.strip(), "replaced": old[0] if old else None}


def _last_reading(conn: Conn, meter_id: int, before: datetime) -> tuple[datetime, float] | None:
    """The meter's last register reading (entered or telemetry) at or before ``before``."""
    row = conn.execute(
        "SELECT ts, value FROM ("
        " SELECT ts, value_m3 AS value FROM meter_readings WHERE meter_id = %s AND ts <= %s"
        " UNION ALL"
        " SELECT r.ts, r.value FROM readings r JOIN meters m ON m.point_id = r.point_id"
        " WHERE m.id = %s AND r.ts <= %s AND r.quality = 0 AND r.value IS NOT NULL"
        ") x ORDER BY ts DESC LIMIT 1",
        (meter_id, before, meter_id, before),
    ).fetchone()
    return None if row is None else (row[0], float(row[1]))


def remove(
    conn: Conn, number: str, meter_id: int, final: str, at: datetime | None, *, now: datetime
) -> dict[str, Any]:
    """Remove a meter with its final reading (not below its last reading: a register does
    not run back); its seal comes off with it."""
    row = account_row(conn, number)
    c = _connection(conn, row["id"], meter_id)
    p = _moment_problems("removed_at", at, now)
    value, more = _reading_problems("final", final)
    p += more
    if at is not None and at <= c["installed_at"]:
        p.append(Problem("removed_at", "before_install", "not after the meter was installed"))
    if at is not None and value is not None:
        p += _not_below_last(conn, meter_id, c, at, value, "final")
    _refuse(p)
    assert at is not None
    assert value is not None
    acc.remove_meter(conn, meter_id, removed_at=at, final_reading=value)
    conn.execute(
        "UPDATE meter_seals SET removed_at = %s WHERE meter_id = %s AND removed_at IS NULL",
        (at, meter_id),
    )
    return {"meter": c["serial_no"], "final": value, "at": at}


def _not_below_last(  # noqa: PLR0917
    conn: Conn, meter_id: int, c: dict[str, Any], at: datetime, value: float, fld: str
) -> list[Problem]:
    last = _last_reading(conn, meter_id, at)
    floor = (c["installed_at"], float(c["initial_reading"]))
    if last is None or last[0] < floor[0]:
        last = floor
    if value < last[1]:
        return [
            Problem(
                fld,
                "below_last",
                f"below the last reading {last[1]:.3f} m³",
                {"value": f"{last[1]:.3f}", "date": last[0].isoformat()},
            )
        ]
    return []


def replace(  # noqa: PLR0917
    conn: Conn,
    number: str,
    meter_id: int,
    final: str,
    new_serial: str,
    new_initial: str,
    new_digits: str,
    at: datetime | None,
    *,
    now: datetime,
) -> dict[str, Any]:
    """Replace a meter at one moment: the old one's final reading, the new one's serial
    and first reading (the billing counts the two pieces of the month apart)."""
    row = account_row(conn, number)
    c = _connection(conn, row["id"], meter_id)
    p = _moment_problems("at", at, now)
    value, more = _reading_problems("final", final)
    p += more
    initial, more = _reading_problems("new_initial", new_initial)
    p += more
    if not SERIAL_RE.fullmatch(new_serial.strip()):
        p.append(Problem("new_serial", "serial", "a serial is letters, digits, - / . (up to 32)"))
    elif new_serial.strip() == c["serial_no"]:
        p.append(Problem("new_serial", "same_meter", "the new meter has the old one's serial"))
    try:
        n_digits = int(new_digits.strip() or str(c["digits"]))
    except ValueError:
        n_digits = 0
    if not 3 <= n_digits <= 9:
        p.append(Problem("new_digits", "digits", "the register has 3 to 9 whole-m³ digits"))
    if at is not None and at <= c["installed_at"]:
        p.append(Problem("at", "before_install", "not after the old meter was installed"))
    if at is not None and value is not None:
        p += _not_below_last(conn, meter_id, c, at, value, "final")
    _refuse(p)
    assert at is not None
    assert value is not None
    assert initial is not None
    try:
        with conn.transaction():
            new_id = acc.replace_meter(
                conn, row["id"], meter_id, new_serial.strip(), at=at, final_reading=value,
                new_initial=initial, digits=n_digits,
            )  # fmt: skip
    except AccountDataError as exc:
        raise RegisterError([Problem("new_serial", "installed_elsewhere", str(exc))]) from exc
    conn.execute(
        "UPDATE meter_seals SET removed_at = %s WHERE meter_id = %s AND removed_at IS NULL",
        (at, meter_id),
    )
    return {
        "old": c["serial_no"],
        "final": value,
        "new": new_serial.strip(),
        "new_meter_id": new_id,
        "initial": initial,
        "at": at,
    }


async def account_meters(conn: AConn, account_id: int) -> list[dict[str, Any]]:
    """The meters of an account, installed ones first, with the open seal and the last
    reading (entered or, for a smart meter, telemetry)."""
    return await fetch_all(
        conn,
        "SELECT m.id, m.serial_no, m.model, m.digits, m.point_id, c.installed_at, c.removed_at, "
        "c.initial_reading, c.final_reading, "
        "(SELECT s.seal_no FROM meter_seals s WHERE s.meter_id = m.id AND s.removed_at IS NULL "
        " AND c.removed_at IS NULL) AS seal_no, "
        "(SELECT s.sealed_at FROM meter_seals s WHERE s.meter_id = m.id "
        " AND s.removed_at IS NULL AND c.removed_at IS NULL) AS sealed_at, "
        "last.ts AS last_ts, last.value AS last_m3, last.source AS last_source "
        "FROM service_connections c JOIN meters m ON m.id = c.meter_id "
        "LEFT JOIN LATERAL (SELECT ts, value, source FROM ("
        "  (SELECT r.ts, r.value_m3 AS value, r.source FROM meter_readings r "
        "   WHERE r.meter_id = m.id ORDER BY r.ts DESC LIMIT 1)"
        "  UNION ALL"
        "  (SELECT t.ts, t.value, 'telemetry' FROM readings t WHERE t.point_id = m.point_id "
        "   AND t.quality = 0 AND t.value IS NOT NULL ORDER BY t.ts DESC LIMIT 1)"
        "  UNION ALL"  # raw readings may be gone (retention): the daily rollup's last
        "  (SELECT d.last_ts, d.last, 'telemetry' FROM readings_1d d "
        "   WHERE d.point_id = m.point_id AND d.last IS NOT NULL ORDER BY d.bucket DESC LIMIT 1)"
        " ) x ORDER BY ts DESC LIMIT 1) last ON true "
        "WHERE c.account_id = %s ORDER BY c.removed_at IS NOT NULL, c.installed_at DESC",
        (account_id,),
    )


async def account_readings(conn: AConn, account_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """The newest register readings of an account's meters while they served it: the
    entered ones (manual, inspector, customer) and, for a smart meter, its telemetry as one
    reading a day (the day's last value from the daily rollup)."""
    return await fetch_all(
        conn,
        "SELECT * FROM ("
        " SELECT m.serial_no, r.ts, r.value_m3, r.source, r.entered_by FROM meter_readings r"
        " JOIN service_connections c ON c.meter_id = r.meter_id AND c.account_id = %s"
        "  AND r.ts >= c.installed_at AND (c.removed_at IS NULL OR r.ts <= c.removed_at)"
        " JOIN meters m ON m.id = r.meter_id"
        " UNION ALL"
        " SELECT m.serial_no, d.last_ts AS ts, d.last AS value_m3, 'telemetry' AS source,"
        "  '' AS entered_by FROM service_connections c JOIN meters m ON m.id = c.meter_id"
        " JOIN readings_1d d ON d.point_id = m.point_id"
        "  AND d.last_ts >= c.installed_at AND (c.removed_at IS NULL OR d.last_ts <= c.removed_at)"
        " WHERE c.account_id = %s AND d.last IS NOT NULL"
        ") x ORDER BY ts DESC LIMIT %s",
        (account_id, account_id, limit),
    )


async def account_details(conn: AConn, account_id: int) -> dict[str, Any] | None:
    """What the account card shows besides :data:`billing.queries.ACCOUNT_SELECT`: the
    INN and bank details, e-mail, category, legacy id, zone, Cyrillic and Russian street
    names, whether a meter reports by telemetry."""
    return await fetch_one(
        conn,
        "SELECT a.inn, a.mfo, a.bank_account, a.email, a.category, a.legacy_ref, "
        "a.status_since, z.code AS zone, s.name_uz_cyrl AS street_cyrl, s.name_ru AS street_ru, "
        "EXISTS (SELECT 1 FROM service_connections c JOIN meters m ON m.id = c.meter_id "
        " WHERE c.account_id = a.id AND c.removed_at IS NULL AND m.point_id IS NOT NULL) "
        "AS smart "
        "FROM accounts a JOIN houses h ON h.id = a.house_id "
        "JOIN streets s ON s.id = h.street_id LEFT JOIN zones z ON z.id = a.zone_id "
        "WHERE a.id = %s",
        (account_id,),
    )


# ------------------------------------------------------------------------ manual readings

READING_FLAGS: tuple[tuple[int, str], ...] = (
    (kern.NEGATIVE, "negative"),
    (kern.SPIKE, "spike"),
    (kern.ROLLOVER, "rollover"),
    (kern.REVERSE, "reverse"),
    (kern.LONG_ZERO, "long_zero"),
    (kern.GAP, "gap"),
)
"""The consumption kernels' flags a reading is checked for, in the order they are shown."""


@dataclass(frozen=True)
class ReadingCheck:
    """What the billing's consumption checks say of a reading before it is saved.

    ``before`` and ``after`` are the neighbouring readings (time, m³), ``flags_in`` the flags
    of the step from ``before`` to the new reading and ``flags_out`` of the step from it to
    ``after``; ``errors`` refuse it, flags only warn (saving then needs a confirmation)."""

    serial: str
    meter_id: int
    ts: datetime
    value_m3: float
    before: tuple[datetime, float] | None
    after: tuple[datetime, float] | None
    flags_in: tuple[str, ...]
    flags_out: tuple[str, ...]
    step_m3: float | None
    per_day_m3: float | None
    errors: tuple[Problem, ...] = ()
    replaces: float | None = None
    """The value of a manual reading of the same meter and time that saving replaces."""

    @property
    def warnings(self) -> tuple[str, ...]:
        """Flags worth a second look (reverse flow and gaps are only told)."""
        return tuple(f for f in (*self.flags_in, *self.flags_out) if f not in ("reverse", "gap"))

    def as_json(self) -> dict[str, Any]:
        return {
            "meter_serial": self.serial,
            "ts": self.ts.isoformat(),
            "value_m3": self.value_m3,
            "before": None
            if self.before is None
            else {"ts": self.before[0].isoformat(), "value_m3": self.before[1]},
            "after": None
            if self.after is None
            else {"ts": self.after[0].isoformat(), "value_m3": self.after[1]},
            "flags_in": list(self.flags_in),
            "flags_out": list(self.flags_out),
            "step_m3": self.step_m3,
            "per_day_m3": self.per_day_m3,
            "replaces": self.replaces,
            "errors": [{"field": p.field, "code": p.code, "detail": p.detail} for p in self.errors],
        }


def assess(
    history: Sequence[tuple[datetime, float]],
    ts: datetime,
    value: float,
    digits: int,
    params: ConsumptionParams,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[datetime, float] | None,
           tuple[datetime, float] | None]:  # fmt: skip
    """Pure: the flags of the steps into and out of a new reading among a meter's readings
    (the billing's kernel :func:`billing.consumption.interval_deltas` with its rules), and
    its neighbours. ``history`` is sorted by time and holds no reading at ``ts``."""
    before = [h for h in history if h[0] < ts]
    after = [h for h in history if h[0] > ts]
    seq = [*before, (ts, value), *after[:1]]
    tsv = np.array([int(t.timestamp()) for t, _ in seq], dtype=np.int64)
    val = np.array([v for _, v in seq], dtype=np.float64)
    _, flags = kern.interval_deltas(
        np.array([0, len(seq)], dtype=np.int64),
        tsv,
        val,
        np.array([10.0**digits]),
        kern.params_vector(params),
    )
    i = len(before)

    def names(f: int) -> tuple[str, ...]:
        return tuple(name for bit, name in READING_FLAGS if f & bit)

    f_in = names(int(flags[i])) if before else ()
    f_out = names(int(flags[i + 1])) if after else ()
    return f_in, f_out, before[-1] if before else None, after[0] if after else None


def check_reading(
    conn: Conn,
    meter_id: int,
    ts: datetime | None,
    value_text: str,
    params: ConsumptionParams,
    *,
    now: datetime,
    account_id: int | None = None,
) -> ReadingCheck:
    """Check a reading as the billing will read it, without saving it: refused (``errors``)
    when it is not a number, negative, in the future, outside the time the meter is
    installed (on ``account_id``), else the flags of the consumption checks."""
    m = conn.execute(
        "SELECT serial_no, digits, point_id FROM meters WHERE id = %s", (meter_id,)
    ).fetchone()
    if m is None:
        raise RegisterError([Problem("meter_id", "unknown", "no such meter")])
    serial, n_digits = str(m[0]), int(m[1])
    value, errors = _reading_problems("value", value_text)
    errors += _moment_problems("ts", ts, now)
    when = ts or now
    conns = conn.execute(
        "SELECT installed_at, removed_at, initial_reading, final_reading, account_id "
        "FROM service_connections WHERE meter_id = %s ORDER BY installed_at",
        (meter_id,),
    ).fetchall()
    serving = [
        c
        for c in conns
        if c[0] <= when
        and (c[1] is None or when <= c[1])
        and (account_id is None or c[4] == account_id)
    ]
    if ts is not None and not serving:
        errors.append(
            Problem("ts", "not_installed", "the meter was not installed then (on this account)")
        )
    if errors or value is None or ts is None:
        return ReadingCheck(serial, meter_id, when, value or 0.0, None, None, (), (), None, None,
                            tuple(errors))  # fmt: skip
    lo, hi = ts - timedelta(days=400), ts + timedelta(days=400)
    rows = conn.execute(
        "SELECT ts, value_m3, source FROM meter_readings WHERE meter_id = %s "
        "AND ts BETWEEN %s AND %s "
        "UNION ALL SELECT r.ts, r.value, 'telemetry' FROM readings r WHERE r.point_id = %s "
        "AND r.ts BETWEEN %s AND %s AND r.quality = 0 AND r.value IS NOT NULL ORDER BY 1",
        (meter_id, lo, hi, m[2], lo, hi),
    ).fetchall()
    history: dict[datetime, float] = {}
    c = serving[0]
    history[c[0]] = float(c[2])  # the installation reading
    if c[1] is not None:
        history[c[1]] = float(c[3])
    replaces = None
    for r_ts, r_val, src in rows:
        if not (c[0] <= r_ts and (c[1] is None or r_ts <= c[1])):
            continue
        if r_ts == ts:
            if src == "manual":
                replaces = float(r_val)
            continue
        history.setdefault(r_ts, float(r_val))
    f_in, f_out, before, after = assess(sorted(history.items()), ts, value, n_digits, params)
    step = per_day = None
    if before is not None:
        step = value - before[1]
        days = (ts - before[0]).total_seconds() / 86400
        per_day = step / days if days > 0 else None
    return ReadingCheck(
        serial, meter_id, ts, value, before, after, f_in, f_out, step, per_day, (), replaces
    )


def save_reading(
    conn: Conn,
    meter_id: int,
    ts: datetime | None,
    value_text: str,
    params: ConsumptionParams,
    *,
    source: str,
    confirmed: bool,
    by: str,
    now: datetime,
    account_id: int | None = None,
) -> ReadingCheck:
    """Check the reading again (the form may be old) and save it: refused on an error, and
    on a warning unless ``confirmed``."""
    if source not in ("manual", "inspector", "customer"):
        raise RegisterError([Problem("source", "unknown", "source: manual, inspector, customer")])
    check = check_reading(conn, meter_id, ts, value_text, params, now=now, account_id=account_id)
    _refuse(list(check.errors))
    if check.warnings and not confirmed:
        raise RegisterError(
            [Problem("confirm", "confirm", "the checks found something: look and confirm")]
        )
    acc.add_reading(conn, meter_id, check.ts, check.value_m3, source, entered_by=by)
    return check


def meter_by_serial(conn: Conn, serial: str) -> int | None:
    row = conn.execute("SELECT id FROM meters WHERE serial_no = %s", (serial.strip(),)).fetchone()
    return None if row is None else int(row[0])


# ------------------------------------------------------------------------ tariffs and norms


def billed_from(conn: Conn, day: date) -> list[str]:
    """The months (YYYY-MM) from the month of ``day`` on that already have invoices: a
    tariff or norm starting in them would not change them (they need corrections)."""
    rows = conn.execute(
        "SELECT DISTINCT to_char(period, 'YYYY-MM') FROM invoices "
        "WHERE period >= date_trunc('month', %s::date)::date ORDER BY 1",
        (day,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def _billed_problem(conn: Conn, day: date | None) -> list[Problem]:
    if day is None:
        return []
    months = billed_from(conn, day)
    if months:
        return [
            Problem(
                "valid_from",
                "billed",
                f"{', '.join(months)} already billed: a change must start after them",
                {"months": ", ".join(months)},
            )
        ]
    return []


def add_tariff(  # noqa: PLR0917
    conn: Conn, category: str, valid_from: date | None, price_som: str, vat_percent: str,
    note: str,
) -> dict[str, Any]:  # fmt: skip
    """A tariff (price per m³ in so'm without VAT, up to 2 decimals; VAT in %, up to 2
    decimals) for a category from a day on. Not in a month already billed."""
    p: list[Problem] = []
    if category not in CATEGORIES:
        p.append(Problem("category", "kind", "category must be household, legal or budget"))
    if valid_from is None:
        p.append(Problem("valid_from", "required", "the date is missing"))
    price = parse_decimal(price_som, 2) if price_som.strip() else None
    if price is None or price < 0 or price > 100_000_000:
        p.append(Problem("price", "money", "a price in so'm, e.g. 1650 or 1650,50"))
    vat = parse_decimal(vat_percent or "0", 2)
    if vat is None or not 0 <= vat <= 100:
        p.append(Problem("vat", "percent", "VAT is 0 to 100 %"))
    p += _billed_problem(conn, valid_from)
    _refuse(p)
    assert price is not None
    assert vat is not None
    vals = {
        "category": category,
        "valid_from": valid_from,
        "price_tiyin_per_m3": int(price * 100),
        "vat_rate_bp": int(vat * 100),
        "note": note.strip(),
    }
    try:
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO tariffs (category, valid_from, price_tiyin_per_m3, vat_rate_bp, note) "
                "VALUES (%(category)s, %(valid_from)s, %(price_tiyin_per_m3)s, %(vat_rate_bp)s, "
                "%(note)s) RETURNING id",
                vals,
            ).fetchone()
    except pg_errors.UniqueViolation as exc:
        raise RegisterError(
            [Problem("valid_from", "taken", "this category has a tariff from that day")]
        ) from exc
    assert row is not None
    return {"id": int(row[0]), **vals}


def add_norm(conn: Conn, valid_from: date | None, m3_text: str) -> dict[str, Any]:
    """A norm (m³ per person and month, up to 3 decimals) from a day on; not in a month
    already billed."""
    p: list[Problem] = []
    if valid_from is None:
        p.append(Problem("valid_from", "required", "the date is missing"))
    m3 = parse_decimal(m3_text, 3) if m3_text.strip() else None
    if m3 is None or not 0 < m3 <= 50:
        p.append(Problem("m3", "norm", "a norm is more than 0 and at most 50 m³ a person"))
    p += _billed_problem(conn, valid_from)
    _refuse(p)
    assert m3 is not None
    try:
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO norms (valid_from, m3_per_person_month) VALUES (%s, %s) RETURNING id",
                (valid_from, float(m3)),
            ).fetchone()
    except pg_errors.UniqueViolation as exc:
        raise RegisterError([Problem("valid_from", "taken", "a norm starts that day")]) from exc
    assert row is not None
    return {"id": int(row[0]), "valid_from": valid_from, "m3_per_person_month": float(m3)}


def delete_rate(conn: Conn, what: str, rate_id: int) -> dict[str, Any]:
    """Delete a tariff or a norm (``what``) that no billed month used."""
    table = {"tariff": "tariffs", "norm": "norms"}.get(what)
    if table is None:
        raise RegisterError([Problem("what", "unknown", "tariff or norm")])
    row = conn.execute(
        f"SELECT valid_from FROM {table} WHERE id = %s",  # noqa: S608 - constants
        (rate_id,),
    ).fetchone()
    if row is None:
        raise RegisterError([Problem("id", "unknown", "no such entry")])
    _refuse(_billed_problem(conn, row[0]))
    cur = conn.execute(
        f"DELETE FROM {table} WHERE id = %s RETURNING *",  # noqa: S608 - constants
        (rate_id,),
    )
    gone = cur.fetchone()
    assert gone is not None
    return dict(zip([d.name for d in cur.description or ()], gone, strict=True))


async def rates(conn: AConn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(tariffs, norms), newest first, each with ``billed``: a billed month uses it."""
    tariffs = await fetch_all(
        conn,
        "SELECT t.*, EXISTS (SELECT 1 FROM invoices i WHERE i.period >= "
        "date_trunc('month', t.valid_from)::date) AS billed "
        "FROM tariffs t ORDER BY t.category, t.valid_from DESC",
    )
    norms = await fetch_all(
        conn,
        "SELECT n.*, EXISTS (SELECT 1 FROM invoices i WHERE i.period >= "
        "date_trunc('month', n.valid_from)::date) AS billed "
        "FROM norms n ORDER BY n.valid_from DESC",
    )
    return tariffs, norms
