"""The register for programs: the account search as people type it, and the check of a
meter reading before it is saved. The rules are billing's (:mod:`billing.search`,
:mod:`billing.register`); the register pages for people are :mod:`api.web.staff_register`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.deps import Conn, State, require
from api.errors import InvalidError, NotFoundError
from api.responses import json_response
from api.security import READ_BILLING, Principal
from api.services import register as reg
from billing import search

router = APIRouter(prefix="/api/v1", tags=["register"])

Reader = Annotated[Principal, Depends(require(READ_BILLING))]
Clerk = Annotated[Principal, Depends(require(reg.REGISTER_EDIT))]


@router.get(
    "/search/accounts",
    summary="Find accounts as people type them (Latin or Cyrillic, part of an address, phone)",
)
async def search_accounts(
    *,
    _: Reader,
    conn: Conn,
    q: Annotated[str, Query(min_length=1, max_length=100, description="what was typed")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """Uzbek Latin or Cyrillic, Russian spellings of street names ("Навои"), a street and
    house ("Navoiy 12", "Bog'bon 3"), the first letters of a word ("Nav 12"), a name, a phone
    number or its last digits, a meter serial, an INN or an account number. Best first
    (docs/backoffice.md, "Search")."""
    items = await search.search_accounts(conn, q, limit)
    return json_response({"items": items, "total": len(items)})


class ReadingCheck(BaseModel):
    """A register reading to check (nothing is saved)."""

    meter_serial: str = Field(min_length=1, max_length=64)
    ts: datetime = Field(description="when it was read, with its time zone")
    value_m3: float = Field(description="the register, m³")


@router.post(
    "/meter-readings/check",
    summary="What the consumption checks say of a reading before it is saved",
)
async def check_reading(*, _: Clerk, st: State, body: ReadingCheck) -> dict[str, Any]:
    """The reading between the meter's readings before and after it, with the checks of the
    billing (rollover, negative step, spike, long zero, reverse flow, gap) and the problems
    that refuse it (``errors``). Saving is the register page's."""
    if body.ts.tzinfo is None:
        raise InvalidError("ts needs a time zone, e.g. 2026-11-30T09:00:00+05:00")
    try:
        check = await reg.check_reading(st, body.meter_serial, body.ts, body.value_m3)
    except reg.UnknownMeterError as exc:
        raise NotFoundError(str(exc)) from exc
    return check.as_json()
