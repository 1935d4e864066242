"""Bank statements in the back office: upload, the review queue, manual allocation,
re-matching and the suspense total."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import Paging, client_ip, get_state, require
from api.errors import InvalidError, NotFoundError
from api.payments.common import (
    STATEMENTS,
    audit_sync,
    import_statement_audited,
    payments_config,
)
from api.security import Principal
from api.syncdb import run_sync
from billing import queries as bq
from billing.payments import importer
from billing.payments.errors import AllocationError, StatementError, StatementUnbalancedError
from billing.payments.money import som_to_tiyin
from billing.payments.statements import parse_statement
from suvnet.listing import paged

router = APIRouter(prefix="/api/v1/payments", tags=["bank statements"])
Clerk = Annotated[Principal, Depends(require(STATEMENTS))]
MAX_FILE = 20 * 1024 * 1024


@router.post("/statements", summary="Upload a bank statement (MT940, CSV or 1C Client-Bank)")
async def upload(
    request: Request,
    who: Clerk,
    file: Annotated[UploadFile, File(description="the statement file")],
    fmt: Annotated[str | None, Form(alias="format", max_length=8)] = None,
) -> Any:
    st = get_state(request)
    cfg = payments_config(request)
    data = await file.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise InvalidError("the file is larger than 20 MB")
    if fmt not in (None, "", "mt940", "csv", "1c"):
        raise InvalidError("format must be mt940, csv or 1c")
    try:
        stmt = parse_statement(data, file.filename or "", fmt or None)  # type: ignore[arg-type]
    except StatementUnbalancedError as exc:
        return JSONResponse(
            {"error": "unbalanced", "detail": str(exc), "difference_tiyin": exc.difference_tiyin},
            status_code=422,
        )
    except StatementError as exc:
        raise InvalidError(str(exc)) from exc
    now = st.clock()

    def work(conn: Any) -> importer.ImportSummary:
        return import_statement_audited(
            conn,
            stmt,
            who=who,
            ip=client_ip(request),
            now=now,
            filename=file.filename or "",
            fuzzy_min_score=cfg.fuzzy_min_score,
        )

    summary = await run_sync(st, work)
    return summary.as_dict()


@router.get("/review", summary="Bank credits waiting for a person, with suggested accounts")
async def review(request: Request, who: Clerk, p: Paging) -> dict[str, Any]:
    st = get_state(request)

    def work(conn: Any) -> tuple[list[dict[str, Any]], int, int]:
        items = importer.review_queue(conn, limit=p.limit, offset=p.offset)
        return items, bq.review_total(conn), importer.suspense_total(conn)

    items, total, suspense = await run_sync(st, work)
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


@router.post("/review/{line_id}/allocate", summary="Allocate a credit (or part of it) by hand")
async def allocate(line_id: int, body: AllocateIn, request: Request, who: Clerk) -> dict[str, Any]:
    st = get_state(request)
    try:
        parts = [(pt.account, som_to_tiyin(pt.amount)) for pt in body.parts]
    except Exception as exc:
        raise InvalidError(str(exc)) from exc
    now = st.clock()

    def work(conn: Any) -> str:
        status = importer.allocate_manual(conn, line_id, parts, now=now, by=who.username)
        audit_sync(
            conn,
            who=who,
            ip=client_ip(request),
            now=now,
            action="allocate",
            entity="bank_statement_line",
            entity_id=line_id,
            after={"parts": parts, "status": status},
        )
        return status

    try:
        status = await run_sync(st, work)
    except AllocationError as exc:
        if str(exc).startswith("no statement line"):
            raise NotFoundError(str(exc)) from exc
        raise InvalidError(str(exc)) from exc
    return {"line_id": line_id, "status": status}


@router.post("/rematch", summary="Match suspense and review credits again")
async def rematch(request: Request, who: Clerk) -> dict[str, int]:
    st = get_state(request)
    cfg = payments_config(request)
    return await run_sync(
        st,
        lambda conn: importer.rematch(
            conn, now=st.clock(), by=who.username, fuzzy_min_score=cfg.fuzzy_min_score
        ),
    )
