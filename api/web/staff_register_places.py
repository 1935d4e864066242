"""The register pages of the address dictionary (region, district, mahalla, street, house,
apartment, with their SOATO and cadastral numbers) and of tariffs and norms with the day
they apply from. Included in :mod:`api.web.staff_register`'s router (/staff/register)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import Conn, require
from api.errors import NotFoundError
from api.security import READ_BILLING, Principal
from api.services import register as svc
from api.web.common import render
from api.web.staff_register_common import Words, can, errors_by_field, form_date
from billing import register as reg

router = APIRouter(include_in_schema=False)
Reader = Annotated[Principal, Depends(require(READ_BILLING))]
Clerk = Annotated[Principal, Depends(require(svc.REGISTER_EDIT))]
RatesClerk = Annotated[Principal, Depends(require(svc.RATES_EDIT))]
Id = Annotated[int, Form(ge=1, le=2**62)]
Text = Annotated[str, Form(max_length=200)]
CHILD = dict(zip(reg.LEVELS, reg.LEVELS[1:], strict=False))
"""The level below each level."""
PLACE_FIELDS = [
    "name_uz",
    "name_uz_cyrl",
    "name_ru",
    "code",
    "kind",
    "number",
    "cadastral_no",
    "lat",
    "lon",
]


def _level(level: str) -> str:
    if level not in reg.LEVELS:
        raise NotFoundError(f"no address level {level!r}")
    return level


async def _path(conn: Conn, level: str, place_id: int) -> list[dict[str, Any]]:
    """The entries from the region down to this one: (level, id, name)."""
    out: list[dict[str, Any]] = []
    lvl: str | None = level
    pid: int | None = place_id
    while lvl is not None and pid is not None:
        row = await reg.place(conn, lvl, pid)
        if row is None:
            break
        out.append({"level": lvl, "id": pid, "name": row.get("name_uz") or row.get("number")})
        i = reg.LEVELS.index(lvl)
        lvl = reg.LEVELS[i - 1] if i else None
        pid = row["parent_id"]
    return list(reversed(out))


async def _places_page(  # noqa: PLR0917
    request: Request,
    who: Principal,
    conn: Conn,
    level: str | None,
    place_id: int | None,
    status: int = 200,
    **ctx: Any,
) -> Response:
    """The page of one entry (its form, the entries below it) or, without one, the regions."""
    entry = None
    path: list[dict[str, Any]] = []
    if level is not None and place_id is not None:
        entry = await reg.place(conn, level, place_id)
        if entry is None:
            raise NotFoundError(f"no {level} {place_id}")
        path = await _path(conn, level, place_id)
    child = CHILD.get(level) if level else "region"
    children = await reg.places(conn, child, place_id) if child else []
    ctx.setdefault("errors", {})
    ctx.setdefault("values", {})
    ctx.setdefault("child_values", {"kind": "street"})
    ctx.setdefault("child_errors", {})
    return render(
        request,
        "staff_register_places.html",
        status,
        who=who,
        w=Words(request),
        can=can(who),
        level=level,
        entry=entry,
        path=path,
        child=child,
        children=children,
        street_kinds=reg.STREET_KINDS,
        **ctx,
    )


@router.get("/addresses")
async def regions(*, request: Request, who: Reader, conn: Conn) -> Response:
    """The address dictionary from the top: the regions."""
    return await _places_page(request, who, conn, None, None)


@router.get("/addresses/{level}/{place_id}")
async def place_page(
    *,
    request: Request,
    who: Reader,
    conn: Conn,
    level: str,
    place_id: int,
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """One entry: its names and codes, and the entries below it."""
    return await _places_page(request, who, conn, _level(level), place_id, done=done)


def _place_form(level: str, parent_id: int | None, values: dict[str, str]) -> reg.PlaceForm:
    return reg.PlaceForm(level=level, parent_id=parent_id, **values)


async def _form_fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(form.get(k) or "")[:200] for k in PLACE_FIELDS if k in form}


def _where(level: str, place_id: int | None) -> str:
    return "/staff/register/addresses" if place_id is None else (
        f"/staff/register/addresses/{level}/{place_id}"
    )  # fmt: skip


@router.post("/addresses/{level}")
async def add_place(*, request: Request, who: Clerk, conn: Conn, level: str) -> Response:
    """A new entry under ``parent_id`` (a region: none)."""
    level = _level(level)
    form = await request.form()
    parent = str(form.get("parent_id") or "")
    parent_id = int(parent) if parent.isdigit() and len(parent) < 19 else None
    values = await _form_fields(request)
    i = reg.LEVELS.index(level)
    parent_level = reg.LEVELS[i - 1] if i else None
    try:
        await svc.save_place(request, who, _place_form(level, parent_id, values), None)
    except reg.RegisterError as exc:
        return await _places_page(
            request,
            who,
            conn,
            parent_level,
            parent_id,
            422,
            child_values=values,
            child_errors=errors_by_field(Words(request), exc.problems),
        )
    target = _where(parent_level, parent_id) if parent_level else _where(level, None)
    return RedirectResponse(target + "?done=added", 303)


@router.post("/addresses/{level}/{place_id}")
async def edit_place(
    *, request: Request, who: Clerk, conn: Conn, level: str, place_id: int
) -> Response:
    level = _level(level)
    entry = await reg.place(conn, level, place_id)
    if entry is None:
        raise NotFoundError(f"no {level} {place_id}")
    values = await _form_fields(request)
    try:
        await svc.save_place(request, who, _place_form(level, entry["parent_id"], values), place_id)
    except reg.RegisterError as exc:
        return await _places_page(
            request,
            who,
            conn,
            level,
            place_id,
            422,
            values=values,
            errors=errors_by_field(Words(request), exc.problems),
        )
    return RedirectResponse(_where(level, place_id) + "?done=saved", 303)


@router.post("/addresses/{level}/{place_id}/delete")
async def delete_place(
    *, request: Request, who: Clerk, conn: Conn, level: str, place_id: int
) -> Response:
    level = _level(level)
    entry = await reg.place(conn, level, place_id)
    if entry is None:
        raise NotFoundError(f"no {level} {place_id}")
    try:
        await svc.delete_place(request, who, level, place_id)
    except reg.RegisterError as exc:
        return await _places_page(
            request,
            who,
            conn,
            level,
            place_id,
            422,
            errors=errors_by_field(Words(request), exc.problems),
        )
    i = reg.LEVELS.index(level)
    parent_level = reg.LEVELS[i - 1] if i else level
    return RedirectResponse(
        _where(parent_level, entry["parent_id"] if i else None) + "?done=deleted", 303
    )


# ------------------------------------------------------------------------ tariffs and norms


async def _rates_page(
    request: Request, who: Principal, conn: Conn, status: int = 200, **ctx: Any
) -> Response:
    tariffs, norms = await reg.rates(conn)
    for key in ("tariff_errors", "norm_errors", "errors"):
        ctx.setdefault(key, {})
    ctx.setdefault("tariff_values", {"category": "household", "vat": "0"})
    ctx.setdefault("norm_values", {})
    return render(
        request,
        "staff_register_rates.html",
        status,
        who=who,
        w=Words(request),
        can=can(who),
        tariffs=tariffs,
        norms=norms,
        categories=reg.CATEGORIES,
        **ctx,
    )


@router.get("/rates")
async def rates_page(
    *,
    request: Request,
    who: Reader,
    conn: Conn,
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """Tariffs (per category, without VAT, with the VAT rate) and norms, each from its day."""
    return await _rates_page(request, who, conn, done=done)


@router.post("/rates/tariffs")
async def add_tariff(
    *,
    request: Request,
    who: RatesClerk,
    conn: Conn,
    category: Annotated[str, Form(max_length=20)] = "",
    valid_from: Annotated[str, Form(max_length=20)] = "",
    price: Annotated[str, Form(max_length=40)] = "",
    vat: Annotated[str, Form(max_length=20)] = "0",
    note: Text = "",
) -> Response:
    values = {"category": category, "valid_from": valid_from, "price": price, "vat": vat,
              "note": note}  # fmt: skip
    try:
        await svc.add_tariff(request, who, category, form_date(valid_from), price, vat, note)
    except reg.RegisterError as exc:
        return await _rates_page(
            request,
            who,
            conn,
            422,
            tariff_values=values,
            tariff_errors=errors_by_field(Words(request), exc.problems),
        )
    return RedirectResponse("/staff/register/rates?done=tariff", 303)


@router.post("/rates/norms")
async def add_norm(
    *,
    request: Request,
    who: RatesClerk,
    conn: Conn,
    valid_from: Annotated[str, Form(max_length=20)] = "",
    m3: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    values = {"valid_from": valid_from, "m3": m3}
    try:
        await svc.add_norm(request, who, form_date(valid_from), m3)
    except reg.RegisterError as exc:
        return await _rates_page(
            request,
            who,
            conn,
            422,
            norm_values=values,
            norm_errors=errors_by_field(Words(request), exc.problems),
        )
    return RedirectResponse("/staff/register/rates?done=norm", 303)


@router.post("/rates/{what}/{rate_id}/delete")
async def delete_rate(
    *, request: Request, who: RatesClerk, conn: Conn, what: str, rate_id: int
) -> Response:
    if what not in ("tariff", "norm"):
        raise NotFoundError(f"no {what!r}")
    try:
        await svc.delete_rate(request, who, what, rate_id)
    except reg.RegisterError as exc:
        return await _rates_page(
            request, who, conn, 422, errors=errors_by_field(Words(request), exc.problems)
        )
    return RedirectResponse("/staff/register/rates?done=deleted", 303)
