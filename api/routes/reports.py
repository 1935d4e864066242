"""Department reports: JSON, CSV, XLSX or PDF, for any period, filtered by district,
mahalla or street. Each report has its own reader roles (api.security.REPORT_ROLES)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from api.deps import Conn, require
from api.errors import InvalidError
from api.reports import builders
from api.reports.model import Report
from api.reports.render import to_csv, to_json, to_pdf, to_xlsx
from api.security import REPORT_ROLES

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

Format = Literal["json", "csv", "xlsx", "pdf"]
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}


def filters(
    *,
    date_from: Annotated[date, Query(description="first day (inclusive)")],
    date_to: Annotated[date, Query(description="last day (inclusive)")],
    district_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    mahalla_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    street_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    threshold_som: Annotated[
        float, Query(ge=0, le=1e11, description="legal: only debts of at least this (so'm)")
    ] = 0,
) -> builders.Filters:
    if date_to < date_from:
        raise InvalidError("'date_to' must not be before 'date_from'")
    if (date_to - date_from).days > 3660:
        raise InvalidError("a report covers at most 10 years")
    return builders.Filters(
        date_from, date_to, district_id, mahalla_id, street_id, round(threshold_som * 100)
    )


FiltersDep = Annotated[builders.Filters, Depends(filters)]


def render(report: Report, fmt: str) -> Any:
    if fmt == "json":
        return to_json(report)
    body = {"csv": to_csv, "xlsx": to_xlsx, "pdf": to_pdf}[fmt](report)
    filename = f"{report.name}-{report.params['from']}-{report.params['to']}.{fmt}"
    return Response(
        body,
        media_type=MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


Builder = Callable[[Conn, builders.Filters], Awaitable[Report]]

BUILDERS: dict[str, tuple[Builder, str]] = {
    "accounting": (
        builders.accounting,
        (
            "Turnover statement per account (opening balance, charged, paid, closing balance, "
            "balances split into debit and credit), summed by street, mahalla, district"
        ),
    ),
    "finance": (
        builders.finance,
        "Collections against charges (collection rate) by mahalla and customer category",
    ),
    "legal": (
        builders.legal,
        "Debtors above a threshold with aging buckets and contact data, legal entities apart",
    ),
    "customer_service": (
        builders.customer_service,
        "Estimated or implausible readings, stopped meters, accounts without a meter",
    ),
    "technical": (
        builders.technical,
        "Water balance and NRW per zone, pressure compliance, alarm summary, gateway availability",
    ),
}


def _add_route(name: str, build: Builder, summary: str) -> None:
    async def endpoint(
        *,
        conn: Conn,
        f: FiltersDep,
        format: Format = "json",  # noqa: A002 - the query parameter is called format
    ) -> Any:
        return render(await build(conn, f), format)

    endpoint.__name__ = f"report_{name}"
    router.add_api_route(
        f"/{name}",
        endpoint,
        methods=["GET"],
        dependencies=[Depends(require(REPORT_ROLES[name]))],
        summary=summary,
        description=f"{summary}. `format`: json (default), csv, xlsx or pdf. Money in JSON is "
        "integer tiyin; in CSV, XLSX and PDF it is so'm. The money figures follow one "
        "definition (docs/billing.md, Money figures): closing = opening + charged - paid.",
        name=f"report_{name}",
    )


for _name, (_build, _summary) in BUILDERS.items():
    _add_route(_name, _build, _summary)
