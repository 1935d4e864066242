"""Customer requests for programs: record one, list them, move one to in progress, resolved
or rejected. The rules are billing's (:mod:`billing.customer_requests`), the actions with
their audit rows :mod:`api.services.customer_requests` - the same as the account card's and
the queue's (:mod:`api.web.staff_requests`).

A refusal answers 422 ``{"error": "invalid", "detail": ..., "problems": [{"field", "code",
"detail"}]}`` (an unknown kind, an invoice of another account, a disputed amount above the
invoice's or negative, an empty subject); resolving a request that has ended answers 409
``{"error": "conflict", ...}``. Nothing is written on a refusal. A branch user sees and
changes only their branch's requests (another branch's answer 404)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from api.deps import Conn, Paging, require
from api.errors import InvalidError
from api.responses import json_response
from api.security import READ_BILLING, Principal
from api.services import customer_requests as svc
from billing import customer_requests as cr

router = APIRouter(prefix="/api/v1/customer-requests", tags=["customer requests"])
Reader = Annotated[Principal, Depends(require(READ_BILLING))]
Clerk = Annotated[Principal, Depends(require(svc.REQUESTS_EDIT))]


class NewRequestBody(BaseModel):
    """A request received from a customer."""

    account: str = Field(min_length=1, max_length=32, description="the account number")
    channel: str = Field(
        "office", max_length=20, description="office, phone, letter, telegram or other"
    )
    kind: str = Field(
        max_length=20,
        description="bill_dispute, meter, no_water, quality, leak, connection, question, other",
    )
    subject: str = Field(min_length=1, max_length=cr.SUBJECT_MAX)
    invoice_id: int | None = Field(
        None, ge=1, le=2**62, description="a disputed bill: one of the account's invoices"
    )
    disputed_tiyin: int | None = Field(
        None, ge=-(2**62), le=2**62, description="a disputed bill: the amount disputed, tiyin"
    )
    request_key: str | None = Field(
        None,
        min_length=8,
        max_length=100,
        description="idempotency key: sent again, the first request's answer (no second one)",
    )


class ChangeBody(BaseModel):
    """A request's new state."""

    status: str = Field(max_length=20, description="in_progress, resolved or rejected")
    resolution: str = Field("", max_length=cr.RESOLUTION_MAX, description="how it ended")


def refusal(exc: cr.RequestRefusedError) -> JSONResponse:
    """422 (or 409 for a request that has ended) with each field's problem."""
    conflict = exc.conflict
    return JSONResponse(
        {
            "error": "conflict" if conflict else "invalid",
            "detail": str(exc),
            "problems": [
                {"field": p.field, "code": p.code, "detail": p.detail} for p in exc.problems
            ],
        },
        status_code=409 if conflict else 422,
    )


def as_json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "account_id"}


@router.post("", summary="Record a customer request", status_code=201)
async def create_request(
    *, request: Request, who: Clerk, conn: Conn, body: NewRequestBody
) -> Response:
    """Received now (the office's clock), by ``created_by`` = the caller. 201 with the
    request; 200 with the first one when ``request_key`` was sent before."""
    req = cr.NewRequest(
        channel=body.channel,
        kind=body.kind,
        subject=body.subject,
        invoice_id=body.invoice_id,
        disputed_tiyin=body.disputed_tiyin,
    )
    key = svc.form_key(who, body.request_key, "api") if body.request_key else None
    try:
        row, created = await svc.record(request, who, conn, body.account, req, key=key)
    except cr.RequestRefusedError as exc:
        return refusal(exc)
    return json_response(as_json(row), status_code=201 if created else 200)


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is not None and value not in allowed:
        raise InvalidError(f"{name} must be one of {', '.join(allowed)}")
    return value


@router.get("", summary="Customer requests, filtered")
async def list_requests(
    *,
    _: Reader,
    conn: Conn,
    pg: Paging,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    open_only: Annotated[
        bool, Query(alias="open", description="only open and in-progress ones")
    ] = False,
    channel: Annotated[str | None, Query(max_length=20)] = None,
    account: Annotated[str | None, Query(max_length=32, description="account number")] = None,
    since: Annotated[datetime | None, Query(description="received at or after")] = None,
    until: Annotated[datetime | None, Query(description="received before")] = None,
    oldest_first: bool = False,
) -> Response:
    """Newest first (``oldest_first``: the queue's order). Every role that reads billing; a
    branch user sees their branch's requests."""
    for t in (since, until):
        if t is not None and t.tzinfo is None:
            raise InvalidError("since and until need a time zone, e.g. 2026-11-30T09:00:00+05:00")
    page = await cr.list_requests(
        conn,
        pg,
        kind=_choice("kind", kind, cr.KINDS),
        status=_choice("status", status, cr.STATUSES),
        open_only=open_only,
        channel=_choice("channel", channel, cr.CHANNELS),
        account=account,
        since=since,
        until=until,
        oldest_first=oldest_first,
    )
    page["items"] = [as_json(r) for r in page["items"]]
    return json_response(page)


@router.patch("/{request_id}", summary="Move a request to in progress, resolved or rejected")
async def change_request(
    *,
    request: Request,
    who: Clerk,
    conn: Conn,
    request_id: Annotated[int, Path(ge=1, le=2**62)],
    body: ChangeBody,
) -> Response:
    """Resolved and rejected need the ``resolution`` and set ``resolved_at`` (now); a request
    that has ended does not change again (409)."""
    try:
        row = await svc.change(
            request, who, conn, request_id, status=body.status, resolution=body.resolution
        )
    except cr.RequestRefusedError as exc:
        return refusal(exc)
    return json_response(as_json(row))
