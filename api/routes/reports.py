"""Department reports: fixed forms in JSON, CSV, XLSX or PDF, in Uzbek (Latin or Cyrillic),
Russian or English, for any period, for the whole utility or one district, mahalla or street;
and the legal department's pre-trial claim letters. Each report has its own reader roles
(api.security.REPORT_ROLES); docs/reports.md describes the forms."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from api.deps import State, require
from api.errors import InvalidError
from api.readconn import ReadConn
from api.reports import builders, service
from api.reports.claims import claims_zip, render_claim
from api.reports.config import get_report_settings
from api.reports.model import Report
from api.reports.text import Words
from api.security import REPORT_ROLES
from billing.config import get_billing_config

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

Format = Literal["json", "csv", "xlsx", "pdf"]
Lang = Literal["uz", "uz_Cyrl", "ru", "en"]
Place = Annotated[
    str | None,
    Query(
        pattern=service.PLACE_PATTERN,
        description='an id, or "" / "all" for every one (what the report page sends for "All")',
    ),
]


def filters(
    *,
    date_from: Annotated[date, Query(description="first day (inclusive)")],
    date_to: Annotated[date, Query(description="last day (inclusive)")],
    district_id: Place = None,
    mahalla_id: Place = None,
    street_id: Place = None,
    threshold_som: Annotated[
        float, Query(ge=0, le=1e11, description="legal: only debts of at least this (so'm)")
    ] = 0,
    lang: Annotated[Lang, Query(description="the language of the form")] = "uz",
    branch: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z][A-Za-z0-9]{1,7}$",
            description="a branch's code: that branch's report alone (docs/branches.md)",
        ),
    ] = None,
) -> builders.Filters:
    try:
        return service.filters(
            date_from,
            date_to,
            district_id=district_id,
            mahalla_id=mahalla_id,
            street_id=street_id,
            threshold_som=threshold_som,
            lang=lang,
            branch=branch,
        )
    except service.ReportInputError as exc:
        raise refusal(exc, lang) from exc


def refusal(exc: service.ReportInputError, lang: str) -> InvalidError:
    """422 with the reason in the language the form was asked in (``lang``), the words the
    report page uses."""
    return InvalidError(exc.text(Words(service.language(lang))))


FiltersDep = Annotated[builders.Filters, Depends(filters)]


def _file(body: bytes, media: str, filename: str) -> Response:
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _build(conn: ReadConn, name: str, f: builders.Filters) -> Report:
    try:
        return await service.build(conn, name, f)
    except service.ReportInputError as exc:
        raise refusal(exc, f.lang) from exc


SUMMARIES: dict[str, str] = {
    "accounting": (
        "Turnover statement per account (opening balance, charged, paid, closing balance, "
        "balances split into debit and credit), summed by street, MFY and district, checked "
        "against the ledger"
    ),
    "finance": (
        "Collections against charges (collection rate) by MFY and customer category; "
        "collections by channel and day"
    ),
    "legal": "Debtors above a threshold with aging buckets and contact data, legal entities apart",
    "customer_service": (
        "Customer requests, disputed bills, estimated bills and consumption, stopped meters, "
        "accounts without a meter"
    ),
    "technical": (
        "Billed consumption, water balance and NRW per zone, meter faults, pressure "
        "compliance, alarm summary, gateway availability"
    ),
}


def _add_route(name: str, summary: str) -> None:
    async def endpoint(
        *,
        conn: ReadConn,
        st: State,
        f: FiltersDep,
        format: Format = "json",  # noqa: A002 - the query parameter is called format
    ) -> Any:
        report = await _build(conn, name, f)
        body, media, filename = service.render(
            report, format, service.context(f.lang, name, st.clock())
        )
        return body if format == "json" else _file(body, media, filename)

    endpoint.__name__ = f"report_{name}"
    router.add_api_route(
        f"/{name}",
        endpoint,
        methods=["GET"],
        dependencies=[Depends(require(REPORT_ROLES[name]))],
        summary=summary,
        description=f"{summary}. `format`: json (default), csv, xlsx or pdf; `lang`: the "
        'language of the form (uz, uz_Cyrl, ru, en). A place filter given as "" or `all` '
        "means every one. Money in JSON is integer tiyin; in CSV, XLSX and PDF it is so'm. "
        "The money figures follow one definition (docs/billing.md, Money figures): "
        "closing = opening + charged - paid.",
        name=f"report_{name}",
    )


for _name, _summary in SUMMARIES.items():
    _add_route(_name, _summary)


def _claim_context(st: State) -> Callable[[str | None], Any]:
    default = get_billing_config().default_language
    now = st.clock()
    return lambda lang: service.context(lang or default, "legal", now)


@router.get(
    "/legal/claims",
    dependencies=[Depends(require(REPORT_ROLES["legal"]))],
    summary="Pre-trial claim letters of every debtor of the legal report (ZIP of PDFs)",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
)
async def claim_letters(*, conn: ReadConn, st: State, f: FiltersDep) -> Response:
    """One PDF per debtor (the same debtors as the legal report with the same filters), each
    in the debtor's language (the account's correspondence language, else the utility's
    default), with the debt as on `date_to` broken down by unpaid charge and age."""
    try:
        claims = await service.claims(conn, f)
    except service.ReportInputError as exc:
        raise refusal(exc, f.lang) from exc
    body = claims_zip(
        claims, f.date_to, _claim_context(st), get_report_settings().claim_payment_days
    )
    return _file(body, service.MEDIA["zip"], f"claims-{f.date_to.isoformat()}.zip")


@router.get(
    "/legal/claims/{number}",
    dependencies=[Depends(require(REPORT_ROLES["legal"]))],
    summary="The pre-trial claim letter of one debtor (PDF)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def claim_letter(
    *,
    conn: ReadConn,
    st: State,
    f: FiltersDep,
    number: Annotated[str, Path(pattern=r"^[0-9]{9}$")],
) -> Response:
    """The claim letter of account `number` as on `date_to`, in its language."""
    try:
        claims = await service.claims(conn, f, number)
    except service.ReportInputError as exc:
        raise refusal(exc, f.lang) from exc
    c = claims[0]
    pdf = render_claim(
        c, f.date_to, _claim_context(st)(c.language), get_report_settings().claim_payment_days
    )
    return _file(pdf, service.MEDIA["pdf"], f"claim-{number}-{f.date_to.isoformat()}.pdf")
