"""The back office's billing page: the billing runs with their progress, and the form that
starts a run or a dry run (the same action as the JSON API: :mod:`api.services.billing`).

The page warns before a month that has not ended yet and refuses a real run of it, or of a
month before one already billed (October after November), unless "run anyway" is ticked; it
names the utility's requisites that the slips and invoices would print blank. Times are
Tashkent time, said so on the page."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import Conn, State, require
from api.errors import ApiError
from api.i18n import DISPLAY_TZ, format_volume, local_time
from api.security import READ_BILLING, RUN_BILLING, Principal
from api.services.billing import (
    RunRefusedConflictError,
    period_check,
    requisites_warnings,
    start_run,
)
from api.web.common import render
from billing import queries as bq
from billing.run import PeriodCheck

router = APIRouter(prefix="/staff", include_in_schema=False)
BillingReader = Annotated[Principal, Depends(require(READ_BILLING))]
BillingRunner = Annotated[Principal, Depends(require(RUN_BILLING))]


def _notices(check: PeriodCheck | None) -> list[dict[str, str]]:
    """A month's warnings for the template: ``code`` (the template picks the sentence) and
    the figures the sentence names."""
    if check is None:
        return []
    ends = check.ends_at.astimezone(DISPLAY_TZ) - timedelta(minutes=1)
    return [
        {
            "code": code,
            "month": f"{check.period:%m.%Y}",
            "ends": f"{ends:%d.%m.%Y %H:%M}",
            "later": f"{check.later_billed:%m.%Y}" if check.later_billed else "",
        }
        for code in check.codes
    ]


def _runs_for_page(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in runs:
        r["finished_local"] = local_time(r.get("finished_at"))
        r["started_local"] = local_time(r.get("started_at"))
    return runs


async def _page(
    request: Request,
    who: Principal,
    conn: Conn,
    status_code: int = 200,
    **ctx: Any,
) -> Response:
    runs = _runs_for_page(await bq.recent_runs(conn, 36))
    ctx.setdefault("error", "")
    ctx.setdefault("summary", None)
    ctx.setdefault("notices", [])
    ctx.setdefault("refused", False)
    return render(
        request,
        "staff_billing.html",
        status_code,
        who=who,
        runs=runs,
        running=any(r["state"] == "running" for r in runs),
        can_run=who.role in RUN_BILLING,
        requisites=[code for code, _ in requisites_warnings()],
        **ctx,
    )


@router.get("/billing")
async def billing_page(
    *,
    request: Request,
    who: BillingReader,
    conn: Conn,
    st: State,
    error: Annotated[str, Query(max_length=300)] = "",
) -> Response:
    today = st.clock().astimezone(DISPLAY_TZ).date()
    last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    return await _page(request, who, conn, default_period=last_month, error=error)


@router.post("/billing/run")
async def billing_run(
    *,
    request: Request,
    who: BillingRunner,
    conn: Conn,
    st: State,
    period: Annotated[str, Form(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")],
    dry_run: Annotated[bool, Form()] = False,
    force: Annotated[bool, Form()] = False,
) -> Response:
    month = date(int(period[:4]), int(period[5:7]), 1)
    try:
        result = await start_run(conn, request, who, st, month, dry_run=dry_run, force=force)
    except RunRefusedConflictError as exc:
        return await _page(
            request,
            who,
            conn,
            409,
            default_period=period,
            notices=_notices(exc.check),
            refused=True,
        )
    except ApiError as exc:
        return RedirectResponse("/staff/billing?" + urlencode({"error": exc.message}), 303)
    if dry_run:
        result["volume_text"] = format_volume(float(result.get("volume_m3") or 0))
        return await _page(
            request,
            who,
            conn,
            default_period=period,
            summary=result,
            notices=_notices(await period_check(st, month)),
        )
    return RedirectResponse("/staff/billing", status_code=303)
