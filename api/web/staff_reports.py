"""The back office's report page: the form that picks a department report, its period and
place; the file itself comes from the report API (/api/v1/reports/..., same session)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import Conn, State, require
from api.errors import InvalidError
from api.security import REPORT_ROLES, REPORTS, Principal
from api.web.common import render
from suvnet import registry_queries as rq

router = APIRouter(prefix="/staff", include_in_schema=False)
ReportReader = Annotated[Principal, Depends(require(REPORTS))]


@router.get("/reports")
async def reports_page(*, request: Request, who: ReportReader, conn: Conn, st: State) -> Response:
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
