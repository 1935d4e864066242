"""Back-office pages for alarms, billing runs and report downloads."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from alarms import queries as aq
from api.deps import Conn, State, require
from api.errors import ApiError, InvalidError
from api.security import (
    ALARMS_HANDLE,
    ALARMS_READ,
    READ_BILLING,
    REPORTS,
    RUN_BILLING,
    Principal,
)
from api.web.common import render
from billing import queries as bq
from suvnet import registry_queries as rq

router = APIRouter(prefix="/staff", include_in_schema=False)
AlarmReader = Annotated[Principal, Depends(require(ALARMS_READ))]
AlarmHandler = Annotated[Principal, Depends(require(ALARMS_HANDLE))]
BillingReader = Annotated[Principal, Depends(require(READ_BILLING))]
BillingRunner = Annotated[Principal, Depends(require(RUN_BILLING))]
ReportReader = Annotated[Principal, Depends(require(REPORTS))]


# ------------------------------------------------------------------------------------ alarms


@router.get("/alarms")
async def alarms_page(
    *,
    request: Request,
    who: AlarmReader,
    conn: Conn,
    error: Annotated[str, Query(max_length=300)] = "",
) -> Response:
    rows = await aq.open_alarms_board(conn, 500)
    return render(
        request,
        "staff_alarms.html",
        who=who,
        alarms=rows,
        can_handle=who.role in ALARMS_HANDLE,
        error=error,
    )


async def _alarm_action(
    request: Request,
    who: Principal,
    conn: Conn,
    st: State,
    *,
    alarm_id: int,
    action: str,
    comment: str | None,
    minutes: int | None = None,
) -> Response:
    from api.routes.alarms import OperatorAction, _operator_action

    now = st.clock()
    until = now + timedelta(minutes=minutes) if minutes else None
    op = OperatorAction(alarm_id, action, who.username, comment or None, now, until)  # type: ignore[arg-type]
    target = "/staff/alarms"
    try:
        await _operator_action(request, who, conn, st, op)
    except ApiError as exc:
        target += "?" + urlencode({"error": exc.message})
    return RedirectResponse(target, status_code=303)


@router.post("/alarms/{alarm_id}/ack")
async def alarm_ack(
    *,
    request: Request,
    who: AlarmHandler,
    conn: Conn,
    st: State,
    alarm_id: int,
    comment: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    return await _alarm_action(
        request, who, conn, st, alarm_id=alarm_id, action="ack", comment=comment
    )


@router.post("/alarms/{alarm_id}/shelve")
async def alarm_shelve(
    *,
    request: Request,
    who: AlarmHandler,
    conn: Conn,
    st: State,
    alarm_id: int,
    comment: Annotated[str, Form(max_length=500)] = "",
    minutes: Annotated[int, Form(ge=1, le=10080)] = 60,
) -> Response:
    return await _alarm_action(
        request,
        who,
        conn,
        st,
        alarm_id=alarm_id,
        action="shelve",
        comment=comment,
        minutes=minutes,
    )


# ------------------------------------------------------------------------------ billing runs


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
    from api.routes.billing import RunIn, start_run

    try:
        result = await start_run(
            request=request, who=who, conn=conn, st=st, body=RunIn(period=period, dry_run=dry_run)
        )
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


# ----------------------------------------------------------------------------------- reports


@router.get("/reports")
async def reports_page(*, request: Request, who: ReportReader, conn: Conn, st: State) -> Response:
    from api.routes.reports import REPORT_ROLES

    allowed = [name for name, roles in REPORT_ROLES.items() if who.role in roles]
    today = st.clock().date()
    first = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    places = await rq.districts_and_mahallas(conn)
    return render(
        request,
        "staff_reports.html",
        who=who,
        reports=allowed,
        date_from=first.isoformat(),
        date_to=(today.replace(day=1) - timedelta(days=1)).isoformat(),
        districts=[p for p in places if p["level"] == "district"],
        mahallas=[p for p in places if p["level"] == "mahalla"],
    )


@router.get("/reports/download")
async def reports_download(
    *,
    who: ReportReader,
    report: Annotated[str, Query(pattern=r"^[a-z_]{1,32}$")],
    date_from: date,
    date_to: date,
    fmt: Annotated[str, Query(alias="format", pattern=r"^(xlsx|pdf|csv)$")] = "xlsx",
    district_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    mahalla_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    threshold_som: Annotated[float, Query(ge=0, le=1e11)] = 0,
) -> Response:
    """The form posts here; the file itself comes from the report API (same session)."""
    from api.routes.reports import REPORT_ROLES

    if report not in REPORT_ROLES:
        raise InvalidError(f"unknown report {report!r}")
    params: dict[str, Any] = {
        "date_from": date_from.isoformat(),
        "date_to": date_to.isoformat(),
        "format": fmt,
    }
    if district_id:
        params["district_id"] = district_id
    if mahalla_id:
        params["mahalla_id"] = mahalla_id
    if threshold_som:
        params["threshold_som"] = threshold_som
    return RedirectResponse(f"/api/v1/reports/{report}?{urlencode(params)}", status_code=303)
