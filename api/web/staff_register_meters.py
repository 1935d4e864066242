"""The register pages of an account's meters (install, seal, replace with the final and
first readings, remove) and of its manual readings, checked by the billing's consumption
rules before they are saved. Included in :mod:`api.web.staff_register`'s router
(/staff/register)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import Conn, require
from api.errors import NotFoundError
from api.security import READ_BILLING, Principal
from api.services import register as svc
from api.web.common import render
from api.web.staff_register_common import Words, can, errors_by_field, form_moment
from billing import register as reg
from billing.config import get_billing_config

router = APIRouter(include_in_schema=False)
Reader = Annotated[Principal, Depends(require(READ_BILLING))]
Clerk = Annotated[Principal, Depends(require(svc.REGISTER_EDIT))]
Short = Annotated[str, Form(max_length=40)]
MeterId = Annotated[int, Form(ge=1, le=2**62)]


async def _account(conn: Conn, number: str) -> dict[str, Any]:
    account = await reg.account_form(conn, number)
    if account is None:
        raise NotFoundError(f"no account with number {number!r}")
    return account


# ---------------------------------------------------------------------------------- meters


async def _meters_page(
    request: Request, who: Principal, conn: Conn, number: str, status: int = 200, **ctx: Any
) -> Response:
    account = await _account(conn, number)
    ctx.setdefault("errors", {})
    ctx.setdefault("values", {})
    ctx.setdefault("open_form", "")
    return render(
        request,
        "staff_register_meters.html",
        status,
        who=who,
        w=Words(request),
        can=can(who),
        account=account,
        meters=await reg.account_meters(conn, account["id"]),
        **ctx,
    )


@router.get("/accounts/{number}/meters")
async def meters_page(
    *,
    request: Request,
    who: Reader,
    conn: Conn,
    number: str,
    done: Annotated[str, Query(max_length=20)] = "",
    months: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The account's meters, current and past, with their seals and last readings."""
    return await _meters_page(request, who, conn, number, done=done, months=months)


async def _meter_action(  # noqa: PLR0917
    request: Request,
    who: Principal,
    conn: Conn,
    number: str,
    action: str,
    form_id: str,
    values: dict[str, str],
    **fields: Any,
) -> Response:
    try:
        done = await svc.meter_action(request, who, action, number, **fields)
    except reg.RegisterError as exc:
        return await _meters_page(
            request,
            who,
            conn,
            number,
            422,
            errors=errors_by_field(Words(request), exc.problems),
            values=values,
            open_form=form_id,
        )
    query = urlencode({"done": action, "months": ",".join(done.get("months", []))})
    return RedirectResponse(f"/staff/register/accounts/{number}/meters?{query}", 303)


@router.post("/accounts/{number}/meters/install")
async def install(
    *,
    request: Request,
    who: Clerk,
    conn: Conn,
    number: str,
    serial: Short = "",
    model: Short = "",
    digits: Short = "5",
    initial: Short = "0",
    day: Short = "",
    at: Short = "",
) -> Response:
    values = {"serial": serial, "model": model, "digits": digits, "initial": initial,
              "day": day, "at": at}  # fmt: skip
    return await _meter_action(
        request, who, conn, number, "install", "install", values,
        serial=serial, model=model, digits_text=digits, initial=initial,
        at=form_moment(day, at, svc.tz()),
    )  # fmt: skip


@router.post("/accounts/{number}/meters/{meter_id}/seal")
async def seal(
    *,
    request: Request,
    who: Clerk,
    conn: Conn,
    number: str,
    meter_id: int,
    seal_no: Short = "",
    day: Short = "",
    at: Short = "",
    note: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    values = {"seal_no": seal_no, "day": day, "at": at, "note": note}
    return await _meter_action(
        request, who, conn, number, "seal", f"seal-{meter_id}", values,
        meter_id=meter_id, seal_no=seal_no, at=form_moment(day, at, svc.tz()), note=note,
    )  # fmt: skip


@router.post("/accounts/{number}/meters/{meter_id}/replace")
async def replace(
    *,
    request: Request,
    who: Clerk,
    conn: Conn,
    number: str,
    meter_id: int,
    final: Short = "",
    new_serial: Short = "",
    new_initial: Short = "0",
    new_digits: Short = "",
    day: Short = "",
    at: Short = "",
) -> Response:
    values = {"final": final, "new_serial": new_serial, "new_initial": new_initial,
              "new_digits": new_digits, "day": day, "at": at}  # fmt: skip
    return await _meter_action(
        request, who, conn, number, "replace", f"replace-{meter_id}", values,
        meter_id=meter_id, final=final, new_serial=new_serial, new_initial=new_initial,
        new_digits=new_digits, at=form_moment(day, at, svc.tz()),
    )  # fmt: skip


@router.post("/accounts/{number}/meters/{meter_id}/remove")
async def remove(
    *,
    request: Request,
    who: Clerk,
    conn: Conn,
    number: str,
    meter_id: int,
    final: Short = "",
    day: Short = "",
    at: Short = "",
) -> Response:
    values = {"final": final, "day": day, "at": at}
    return await _meter_action(
        request, who, conn, number, "remove", f"remove-{meter_id}", values,
        meter_id=meter_id, final=final, at=form_moment(day, at, svc.tz()),
    )  # fmt: skip


# -------------------------------------------------------------------------------- readings


def flag_lines(w: Words, check: reg.ReadingCheck) -> list[tuple[str, str]]:
    """(flag, what it means) of a checked reading, in the page's language."""
    params = get_billing_config().consumption
    out: list[tuple[str, str]] = []
    for f in check.flags_in:
        if f == "negative" and check.before:
            text = w.flag(f, before=w.m3(check.before[1]), day=w.local(check.before[0]))
        elif f == "spike" and check.before:
            hours = max((check.ts - check.before[0]).total_seconds() / 3600, 1e-9)
            rate = (check.value_m3 - check.before[1]) / hours
            text = w.flag(f, rate=w.m3(rate, 2), max=w.m3(params.spike_max_m3_per_h, 1))
        elif f == "long_zero":
            text = w.flag(f, days=f"{params.long_zero_days:g}")
        elif f == "gap":
            text = w.flag(f, hours=f"{params.gap_hours:g}")
        else:
            text = w.flag(f)
        out.append((f, text))
    for f in check.flags_out:
        if f == "negative" and check.after:
            out.append(
                (f, w.flag("out_negative", after=w.m3(check.after[1]), day=w.local(check.after[0])))
            )
        elif f in ("spike", "rollover", "long_zero"):
            out.append((f, w.flag(f"out_{f}")))
    return out


async def _readings_page(
    request: Request, who: Principal, conn: Conn, number: str, status: int = 200, **ctx: Any
) -> Response:
    account = await _account(conn, number)
    w = Words(request)
    meters = [m for m in await reg.account_meters(conn, account["id"]) if m["removed_at"] is None]
    check = ctx.get("check")
    ctx.setdefault("errors", {})
    ctx.setdefault("values", {"source": "manual"})
    return render(
        request,
        "staff_register_readings.html",
        status,
        who=who,
        w=w,
        can=can(who),
        account=account,
        meters=meters,
        meter_options=[(m["id"], m["serial_no"]) for m in meters],
        readings=await reg.account_readings(conn, account["id"], 30),
        flags=flag_lines(w, check) if check else [],
        **ctx,
    )


@router.get("/accounts/{number}/readings")
async def readings_page(
    *,
    request: Request,
    who: Reader,
    conn: Conn,
    number: str,
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """Manual readings: the form, then what the consumption checks say, then saving."""
    return await _readings_page(request, who, conn, number, done=done)


@router.post("/accounts/{number}/readings/check")
async def check_reading(
    *,
    request: Request,
    who: Clerk,
    conn: Conn,
    number: str,
    meter_id: MeterId,
    value: Short = "",
    day: Short = "",
    at: Short = "",
    source: Short = "manual",
) -> Response:
    """The checks of a reading before it is saved: nothing is written."""
    account = await _account(conn, number)
    values = {"meter_id": str(meter_id), "value": value, "day": day, "at": at, "source": source}
    try:
        check = await svc.check_account_reading(
            request, account["id"], meter_id, form_moment(day, at, svc.tz()), value
        )
    except reg.RegisterError as exc:
        errors = errors_by_field(Words(request), exc.problems)
        return await _readings_page(request, who, conn, number, 422, errors=errors, values=values)
    errors = errors_by_field(Words(request), list(check.errors))
    return await _readings_page(
        request,
        who,
        conn,
        number,
        422 if errors else 200,
        check=None if errors else check,
        errors=errors,
        values=values,
    )


@router.post("/accounts/{number}/readings/save")
async def save_reading(
    *,
    request: Request,
    who: Clerk,
    conn: Conn,
    number: str,
    meter_id: MeterId,
    value: Short = "",
    day: Short = "",
    at: Short = "",
    source: Short = "manual",
    confirm: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Save a checked reading: checked again here (the form may be old); a warning needs
    the confirmation box."""
    account = await _account(conn, number)
    values = {"meter_id": str(meter_id), "value": value, "day": day, "at": at, "source": source}
    when = form_moment(day, at, svc.tz())
    try:
        await svc.save_reading(
            request, who, number, account["id"], meter_id, when, value, source,
            confirmed=confirm == "on",
        )  # fmt: skip
    except reg.RegisterError as exc:
        check = await svc.check_account_reading(request, account["id"], meter_id, when, value)
        return await _readings_page(
            request,
            who,
            conn,
            number,
            422,
            check=None if check.errors else check,
            errors=errors_by_field(Words(request), exc.problems),
            values=values,
        )
    return RedirectResponse(f"/staff/register/accounts/{number}/readings?done=saved", 303)
