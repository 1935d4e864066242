"""The back office's billing page: the billing runs with their progress, and the form that
starts a run or a dry run (the same action as the JSON API: :mod:`api.services.billing`)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import Conn, State, require
from api.errors import ApiError
from api.security import READ_BILLING, RUN_BILLING, Principal
from api.services.billing import start_run
from api.web.common import render
from billing import queries as bq

router = APIRouter(prefix="/staff", include_in_schema=False)
BillingReader = Annotated[Principal, Depends(require(READ_BILLING))]
BillingRunner = Annotated[Principal, Depends(require(RUN_BILLING))]


@router.get("/billing")
async def billing_page(
    *,
    request: Request,
    who: BillingReader,
    conn: Conn,
    st: State,
    error: Annotated[str, Query(max_length=300)] = "",
) -> Response:
    runs = await bq.recent_runs(conn, 36)
    running = any(r["state"] == "running" for r in runs)
    last_month = (st.clock().date().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    return render(
        request,
        "staff_billing.html",
        who=who,
        runs=runs,
        running=running,
        can_run=who.role in RUN_BILLING,
        default_period=last_month,
        error=error,
        summary=None,
    )


@router.post("/billing/run")
async def billing_run(
    *,
    request: Request,
    who: BillingRunner,
    conn: Conn,
    st: State,
    period: Annotated[str, Form(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")],
    dry_run: Annotated[bool, Form()] = False,
) -> Response:
    month = date(int(period[:4]), int(period[5:7]), 1)
    try:
        result = await start_run(conn, request, who, st, month, dry_run=dry_run)
    except ApiError as exc:
        return RedirectResponse("/staff/billing?" + urlencode({"error": exc.message}), 303)
    if dry_run:
        runs = await bq.recent_runs(conn, 36)
        return render(
            request,
            "staff_billing.html",
            who=who,
            runs=runs,
            running=False,
            can_run=True,
            default_period=period,
            error="",
            summary=result,
        )
    return RedirectResponse("/staff/billing", status_code=303)
