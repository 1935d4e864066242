"""The register actions the back office's pages and the JSON API both offer: each one calls
billing's rules (:mod:`billing.register`, :mod:`billing.accounts`) on a synchronous
connection and writes its audit row in the same transaction, so the change and its audit row
commit together or not at all.

A refused form raises :class:`billing.register.RegisterError` with its problems; the pages
translate them (:mod:`api.web.staff_register_common`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

from fastapi import Request

from api.audit import INSERT_SQL, row_values
from api.deps import AppState, client_ip, get_state
from api.security import Principal, Role
from api.syncdb import run_sync
from billing import register as br
from billing.accounts import months_billed_since
from billing.config import get_billing_config

T = TypeVar("T")

REGISTER_EDIT = frozenset({Role.ADMIN, Role.BILLING_CLERK})
"""Open and edit accounts, change residents, keep the address dictionary, install, seal,
replace and remove meters, enter readings."""
RATES_EDIT = frozenset({Role.ADMIN, Role.ACCOUNTANT})
"""Add and delete tariffs and norms."""


class UnknownMeterError(LookupError):
    """No meter with that serial."""


async def _audited(
    request: Request,
    who: Principal,
    work: Callable[[Any], T],
    *,
    action: str,
    entity: str,
    entity_id: Callable[[T], object],
    before: Callable[[T], Any] | None = None,
    after: Callable[[T], Any],
) -> T:
    """``work(conn)`` and its audit row in one transaction."""
    st = get_state(request)
    now = st.clock()
    ip = client_ip(request)

    def run(conn: Any) -> T:
        result = work(conn)
        conn.execute(
            INSERT_SQL,
            row_values(
                now=now,
                who=who,
                ip=ip,
                action=action,
                entity=entity,
                entity_id=entity_id(result),
                before=before(result) if before else None,
                after=after(result),
            ),
        )
        return result

    return await run_sync(st, run)


def tz() -> str:
    return get_billing_config().timezone


# -------------------------------------------------------------------------------- accounts


async def open_account(request: Request, who: Principal, form: br.AccountForm) -> str:
    """A new account; its number."""
    now = get_state(request).clock()

    def work(conn: Any) -> tuple[int, str]:
        return br.open_account(conn, form, now=now, by=who.username)

    _, number = await _audited(
        request,
        who,
        work,
        action="open",
        entity="account",
        entity_id=lambda r: r[1],
        after=lambda r: {
            "number": r[1],
            "kind": form.kind,
            "name": form.name.strip(),
            "street_id": form.street_id,
            "house": form.house.strip(),
            "apartment": form.apartment.strip(),
            "residents": form.residents_count,
        },
    )
    return number


async def edit_account(
    request: Request, who: Principal, number: str, form: br.AccountForm
) -> dict[str, Any]:
    """The changed fields (before, after)."""
    now = get_state(request).clock()

    def work(conn: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return br.edit_account(conn, number, form, now=now)

    _before, after = await _audited(
        request,
        who,
        work,
        action="edit",
        entity="account",
        entity_id=lambda _r: number,
        before=lambda r: r[0],
        after=lambda r: r[1],
    )
    return after


async def set_residents(  # noqa: PLR0917
    request: Request,
    who: Principal,
    number: str,
    residents: str,
    since: date | None,
    reason: str,
    document: str,
) -> list[str]:
    """The months already billed from ``since`` on (to correct)."""
    now = get_state(request).clock()

    def work(conn: Any) -> tuple[int, int, list[str]]:
        return br.set_residents(
            conn, number, residents, since, reason, document, by=who.username, now=now, tz=tz()
        )

    _, _, months = await _audited(
        request,
        who,
        work,
        action="residents",
        entity="account",
        entity_id=lambda _r: number,
        before=lambda r: {"residents": r[0]},
        after=lambda r: {
            "residents": r[1],
            "since": since.isoformat() if since else None,
            "reason": reason.strip(),
            "document": document.strip(),
        },
    )
    return months


# ---------------------------------------------------------------------- address dictionary


async def save_place(
    request: Request, who: Principal, form: br.PlaceForm, place_id: int | None
) -> int:
    """Add or change an entry of the address dictionary; its id."""

    def work(conn: Any) -> tuple[int, dict[str, Any] | None, dict[str, Any]]:
        return br.save_place(conn, form, place_id)

    pid, _, _ = await _audited(
        request,
        who,
        work,
        action="add" if place_id is None else "edit",
        entity=form.level,
        entity_id=lambda r: r[0],
        before=lambda r: r[1],
        after=lambda r: {**r[2], "parent_id": form.parent_id},
    )
    return pid


async def delete_place(request: Request, who: Principal, level: str, place_id: int) -> None:
    def work(conn: Any) -> dict[str, Any]:
        return br.delete_place(conn, level, place_id)

    await _audited(
        request,
        who,
        work,
        action="delete",
        entity=level,
        entity_id=lambda _r: place_id,
        before=lambda r: r,
        after=lambda _r: None,
    )


# ---------------------------------------------------------------------------------- meters


async def meter_action(
    request: Request, who: Principal, action: str, number: str, **fields: Any
) -> dict[str, Any]:
    """``install``, ``seal``, ``replace`` or ``remove`` a meter of an account (the fields of
    :func:`billing.register.install` etc.); what was done, with ``months`` already billed
    from that moment on."""
    now = get_state(request).clock()
    zone = tz()

    def work(conn: Any) -> dict[str, Any]:
        if action == "install":
            done = br.install(conn, number, now=now, **fields)
            at = done["at"]
        elif action == "seal":
            return br.seal(conn, number, by=who.username, now=now, **fields)
        elif action == "replace":
            done = br.replace(conn, number, now=now, **fields)
            at = done["at"]
        elif action == "remove":
            done = br.remove(conn, number, now=now, **fields)
            at = done["at"]
        else:
            raise ValueError(f"unknown meter action {action!r}")
        row = br.account_row(conn, number)
        done["months"] = months_billed_since(conn, row["id"], at, zone)
        return done

    return await _audited(
        request,
        who,
        work,
        action=f"meter_{action}",
        entity="account",
        entity_id=lambda _r: number,
        after=lambda r: r,
    )


# -------------------------------------------------------------------------------- readings


async def check_reading(
    st: AppState, serial: str, ts: datetime, value_m3: float
) -> br.ReadingCheck:
    """The consumption checks of a reading of the meter with this serial (nothing saved)."""
    params = get_billing_config().consumption

    def work(conn: Any) -> br.ReadingCheck:
        meter_id = br.meter_by_serial(conn, serial)
        if meter_id is None:
            raise UnknownMeterError(f"no meter with serial {serial!r}")
        return br.check_reading(conn, meter_id, ts, repr(value_m3), params, now=st.clock())

    return await run_sync(st, work)


async def check_account_reading(
    request: Request, account_id: int, meter_id: int, ts: datetime | None, value: str
) -> br.ReadingCheck:
    st = get_state(request)
    params = get_billing_config().consumption

    def work(conn: Any) -> br.ReadingCheck:
        return br.check_reading(
            conn, meter_id, ts, value, params, now=st.clock(), account_id=account_id
        )

    return await run_sync(st, work)


async def save_reading(  # noqa: PLR0917
    request: Request,
    who: Principal,
    number: str,
    account_id: int,
    meter_id: int,
    ts: datetime | None,
    value: str,
    source: str,
    *,
    confirmed: bool,
) -> br.ReadingCheck:
    now = get_state(request).clock()
    params = get_billing_config().consumption

    def work(conn: Any) -> br.ReadingCheck:
        return br.save_reading(
            conn,
            meter_id,
            ts,
            value,
            params,
            source=source,
            confirmed=confirmed,
            by=who.username,
            now=now,
            account_id=account_id,
        )

    return await _audited(
        request,
        who,
        work,
        action="reading",
        entity="account",
        entity_id=lambda _r: number,
        after=lambda r: {
            "meter": r.serial,
            "ts": r.ts.isoformat(),
            "value_m3": r.value_m3,
            "source": source,
            "flags": list(r.warnings),
            "confirmed": confirmed,
            "replaces": r.replaces,
        },
    )


# ------------------------------------------------------------------------ tariffs and norms


async def add_tariff(  # noqa: PLR0917
    request: Request,
    who: Principal,
    category: str,
    valid_from: date | None,
    price: str,
    vat: str,
    note: str,
) -> None:
    def work(conn: Any) -> dict[str, Any]:
        return br.add_tariff(conn, category, valid_from, price, vat, note)

    await _audited(
        request, who, work, action="add", entity="tariff", entity_id=lambda r: r["id"],
        after=lambda r: r,
    )  # fmt: skip


async def add_norm(request: Request, who: Principal, valid_from: date | None, m3: str) -> None:
    def work(conn: Any) -> dict[str, Any]:
        return br.add_norm(conn, valid_from, m3)

    await _audited(
        request, who, work, action="add", entity="norm", entity_id=lambda r: r["id"],
        after=lambda r: r,
    )  # fmt: skip


async def delete_rate(request: Request, who: Principal, what: str, rate_id: int) -> None:
    def work(conn: Any) -> dict[str, Any]:
        return br.delete_rate(conn, what, rate_id)

    await _audited(
        request, who, work, action="delete", entity=what, entity_id=lambda _r: rate_id,
        before=lambda r: r, after=lambda _r: None,
    )  # fmt: skip
