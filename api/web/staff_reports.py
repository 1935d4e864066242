"""The back office's report page: the form that picks a department report (or the legal
department's claim letters), its period, place, file type and language. The download checks
the form's values first and shows what is wrong on the form, in the page's language; the
file itself then comes from the report API (/api/v1/reports/..., same session). "All" for a
place sends an empty value, which means the whole utility."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import Conn, State, require
from api.i18n import LANGUAGES
from api.readconn import ReadConn
from api.reports import service
from api.reports.text import Words, pgettext
from api.security import REPORT_ROLES, REPORTS, Principal
from api.web.common import language, render
from billing.branches import visible_branches
from suvnet import registry_queries as rq

router = APIRouter(prefix="/staff", include_in_schema=False)
ReportReader = Annotated[Principal, Depends(require(REPORTS))]

CLAIMS = "legal_claims"
"""The form's choice for the claim letters (read by the roles of the legal report)."""
E_DATE = pgettext("report", "Enter both dates of the period.")
E_PLACE_ID = pgettext("report", "Choose the place from the list.")
E_REPORT = pgettext("report", "Choose a report from the list.")


def _allowed(who: Principal) -> list[str]:
    out = [name for name, roles in REPORT_ROLES.items() if who.role in roles]
    if who.role in REPORT_ROLES["legal"]:
        out.insert(out.index("legal") + 1, CLAIMS)
    return out


async def _page(
    request: Request,
    who: Principal,
    conn: Conn,
    st: State,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
) -> Response:
    today = st.clock().date()
    last = today.replace(day=1) - timedelta(days=1)
    places = await rq.districts_and_mahallas(conn)
    # the branches the user sees: a regional user chooses one or all (docs/branches.md)
    branches = await visible_branches(conn)
    v = {
        "report": "",
        "date_from": last.replace(day=1).isoformat(),
        "date_to": last.isoformat(),
        "district_id": "",
        "mahalla_id": "",
        "branch": "",
        "threshold_som": "0",
        "format": "xlsx",
        "file_lang": language(request),
    } | (values or {})
    return render(
        request,
        "staff_reports.html",
        status_code=422 if error else 200,
        who=who,
        reports=_allowed(who),
        form=v,
        error=error,
        file_languages=LANGUAGES,
        districts=[p for p in places if p["level"] == "district"],
        mahallas=[p for p in places if p["level"] == "mahalla"],
        branches=branches,
    )


@router.get("/reports")
async def reports_page(
    *, request: Request, who: ReportReader, conn: ReadConn, st: State
) -> Response:
    return await _page(request, who, conn, st)


@router.get("/reports/download")
async def reports_download(
    *,
    request: Request,
    who: ReportReader,
    conn: ReadConn,
    st: State,
    report: Annotated[str, Query(max_length=32)] = "",
    date_from: Annotated[str, Query(max_length=32)] = "",
    date_to: Annotated[str, Query(max_length=32)] = "",
    fmt: Annotated[str, Query(alias="format", pattern=r"^(xlsx|pdf|csv)$")] = "xlsx",
    district_id: Annotated[str, Query(max_length=32)] = "",
    mahalla_id: Annotated[str, Query(max_length=32)] = "",
    branch: Annotated[str, Query(pattern=r"^([A-Za-z][A-Za-z0-9]{1,7})?$")] = "",
    threshold_som: Annotated[float, Query(ge=0, le=1e11)] = 0,
    file_lang: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    """Checks the form and sends the browser on to the file (the report API)."""
    values = {
        "report": report,
        "date_from": date_from,
        "date_to": date_to,
        "format": fmt,
        "district_id": district_id,
        "mahalla_id": mahalla_id,
        "branch": branch,
        "threshold_som": f"{threshold_som:g}",
        "file_lang": service.language(file_lang or language(request)),
    }
    words = Words(language(request))

    async def again(error: str) -> Response:
        return await _page(request, who, conn, st, values=values, error=error)

    if report not in _allowed(who):
        return await again(words(E_REPORT))
    try:
        start, end = date.fromisoformat(date_from), date.fromisoformat(date_to)
    except ValueError:
        return await again(words(E_DATE))
    try:
        f = service.filters(
            start,
            end,
            district_id=district_id.strip(),
            mahalla_id=mahalla_id.strip(),
            threshold_som=threshold_som,
            lang=values["file_lang"],
            branch=branch or None,
        )
    except ValueError as exc:  # a place that is not a number, a period that is wrong
        if isinstance(exc, service.ReportInputError):
            return await again(exc.text(words))
        return await again(words(E_PLACE_ID))
    params: dict[str, Any] = {
        "date_from": start.isoformat(),
        "date_to": end.isoformat(),
        "lang": f.lang,
    }
    if f.district_id:
        params["district_id"] = f.district_id
    if f.mahalla_id:
        params["mahalla_id"] = f.mahalla_id
    if f.branch:
        params["branch"] = f.branch
    if threshold_som:
        params["threshold_som"] = threshold_som
    if report == CLAIMS:
        return RedirectResponse(
            f"/api/v1/reports/legal/claims?{urlencode(params)}", status_code=303
        )
    params["format"] = fmt
    return RedirectResponse(f"/api/v1/reports/{report}?{urlencode(params)}", status_code=303)
