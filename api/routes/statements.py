"""Bank statements in the JSON API: upload, the review queue, manual allocation and
re-matching (the work and its audit rows are :mod:`api.services.payments`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import Conn, Paging, require
from api.errors import InvalidError, NotFoundError
from api.security import STATEMENTS, Principal
from api.services import payments
from billing.payments.errors import (
    AllocationError,
    PaymentsError,
    StatementError,
    StatementUnbalancedError,
)
from billing.payments.money import som_to_tiyin
from suvnet.listing import paged

router = APIRouter(prefix="/api/v1/payments", tags=["bank statements"])
Clerk = Annotated[Principal, Depends(require(STATEMENTS))]
FORMATS = ("mt940", "csv", "1c")


@router.post("/statements", summary="Upload a bank statement (MT940, CSV or 1C Client-Bank)")
async def upload(
    request: Request,
    who: Clerk,
    file: Annotated[UploadFile, File(description="the statement file")],
    fmt: Annotated[str | None, Form(alias="format", max_length=8)] = None,
) -> Any:
    if fmt not in (None, "", *FORMATS):
        raise InvalidError("format must be mt940, csv or 1c")
    try:
        stmt = await payments.read_statement(file, fmt or None)  # type: ignore[arg-type]
    except StatementUnbalancedError as exc:
        return JSONResponse(
            {"error": "unbalanced", "detail": str(exc), "difference_tiyin": exc.difference_tiyin},
            status_code=422,
        )
    except StatementError as exc:
        raise InvalidError(str(exc)) from exc
    summary = await payments.import_statement(request, who, stmt, filename=file.filename or "")
    return summary.as_dict()


@router.get("/review", summary="Bank credits waiting for a person, with suggested accounts")
async def review(request: Request, who: Clerk, p: Paging) -> dict[str, Any]:
    items, total, suspense = await payments.review_queue(request, limit=p.limit, offset=p.offset)
    for it in items:
        it["value_date"] = it["value_date"].isoformat()
    out = paged(items, total, p)
    out["suspense_tiyin"] = suspense
    return out


class Part(BaseModel):
    account: str = Field(..., max_length=32)
    amount: str = Field(..., max_length=32, description="so'm with up to 2 decimals")


class AllocateIn(BaseModel):
    parts: list[Part] = Field(..., min_length=1, max_length=200)
    request_key: str | None = Field(
        None,
        max_length=100,
        description="idempotency key of the form: sent again, the first allocation's answer "
        "comes back (repeated: true) and nothing more is posted",
    )


@router.post("/review/{line_id}/allocate", summary="Allocate a credit (or part of it) by hand")
async def allocate(
    line_id: int, body: AllocateIn, request: Request, who: Clerk, conn: Conn
) -> dict[str, Any]:
    try:
        parts = [(pt.account, som_to_tiyin(pt.amount)) for pt in body.parts]
    except PaymentsError as exc:
        raise InvalidError(str(exc)) from exc
    try:
        done = await payments.allocate(
            request,
            who,
            line_id,
            parts,
            request_key=f"api:{who.user_id}:{body.request_key}" if body.request_key else None,
            conn=conn,
        )
    except AllocationError as exc:
        if str(exc).startswith("no statement line"):
            raise NotFoundError(str(exc)) from exc
        raise InvalidError(str(exc)) from exc
    return {"line_id": line_id, "status": done.status, "repeated": done.repeated}


@router.post("/rematch", summary="Match suspense and review credits again")
async def rematch(request: Request, who: Clerk) -> dict[str, int]:
    return await payments.rematch(request, who)
