"""What the report API (``api/routes/reports.py``) and the report page
(``api/web/staff_reports.py``) share: reading the form's inputs ("all" places included),
building a report, the form context of a language, and rendering to a file."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from api.i18n import CODES, DEFAULT_LANG
from api.reports import builders
from api.reports.claims import MAX_LETTERS, Claim
from api.reports.config import get_report_settings
from api.reports.form import REQUISITES, FormContext, Requisites
from api.reports.model import Report
from api.reports.render import to_csv, to_json, to_pdf, to_xlsx
from api.reports.text import Msg, Words, pgettext
from billing import report_queries
from billing.config import get_billing_config
from billing.errors import BillingError

FORMATS = ("json", "csv", "xlsx", "pdf")
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "zip": "application/zip",
}
PLACE_PATTERN = r"^(|all|[1-9][0-9]{0,17})$"
"""A place filter as the form sends it: a district, mahalla or street id, or "" / "all"
(the whole utility: what the form's "All" option sends)."""
MAX_DAYS = 3660

E_PERIOD = pgettext("report", "The period ends before it starts.")
E_LONG = pgettext("report", "A report covers at most 10 years.")
E_PLACE = pgettext("report", "The chosen place is not in the address register.")
E_TOO_MANY = pgettext(
    "report",
    "%(count)s letters: more than %(max)s at once. Choose a district or mahalla, or raise the "
    "debt threshold.",
)
E_NO_DEBT = pgettext("report", "Account %(number)s owes nothing on %(day)s.")
L_LEGAL_NAME = pgettext("report", "Legal name")
E_NO_BRANCH = pgettext("report", "There is no branch %(branch)s among yours.")
E_BRANCH_REQUISITES = pgettext(
    "report", "Branch %(branch)s has no %(missing)s for its letters (suvnet branches set)."
)


class ReportInputError(ValueError):
    """Input a report cannot be made from; ``msg`` says why in the catalogs' words."""

    def __init__(self, msg: Msg, english: str, **args: Any) -> None:
        super().__init__(english)
        self.msg = msg
        self.args_ = args

    def text(self, words: Words) -> str:
        """The reason in ``words``' language (an argument that is a message, or a tuple of
        them, is translated too)."""

        def word(v: Any) -> Any:
            if isinstance(v, Msg):
                return words(v)
            if isinstance(v, tuple):
                return ", ".join(str(word(x)) for x in v)
            return v

        return words(self.msg, **{k: word(v) for k, v in self.args_.items()})


def place(value: str | int | None) -> int | None:
    """A place filter: None for "" / "all" / None (the whole utility), else the id."""
    if value is None or value in {"", "all"}:
        return None
    ident = int(value)
    if not 1 <= ident <= 2**62:
        raise ValueError(f"not a place id: {value!r}")
    return ident


def language(value: str | None) -> str:
    return value if value in CODES else DEFAULT_LANG


def filters(
    date_from: date,
    date_to: date,
    *,
    district_id: str | int | None = None,
    mahalla_id: str | int | None = None,
    street_id: str | int | None = None,
    threshold_som: float = 0,
    lang: str = DEFAULT_LANG,
    branch: str | None = None,
) -> builders.Filters:
    if date_to < date_from:
        raise ReportInputError(E_PERIOD, "'date_to' must not be before 'date_from'")
    if (date_to - date_from).days > MAX_DAYS:
        raise ReportInputError(E_LONG, "a report covers at most 10 years")
    return builders.Filters(
        date_from,
        date_to,
        place(district_id),
        place(mahalla_id),
        place(street_id),
        round(threshold_som * 100),
        language(lang),
        branch.strip().upper() or None if branch is not None else None,
    )


async def narrow_to_branch(conn: AsyncConnection[Any], f: builders.Filters) -> None:
    """For a report of one branch (``f.branch``): the connection sees that branch alone
    for the rest of the request, so every table of the report is that branch's. The scope
    only ever narrows: a branch the caller does not see is refused as unknown."""
    if f.branch is None:
        return
    cur = await conn.execute(
        "SELECT set_config('suvnet.branches', id::text, false) FROM branches WHERE code = %s",
        (f.branch,),
    )
    if await cur.fetchone() is None:
        raise ReportInputError(
            E_NO_BRANCH, f"there is no branch {f.branch} among yours", branch=f.branch
        )


def context(lang: str, form: str, now: datetime) -> FormContext:
    """The form context of ``lang``: the utility as billing's settings name it, the
    signatures of ``form``, printed at ``now`` in billing's time zone."""
    cfg = get_billing_config()
    return FormContext(
        Words(language(lang)),
        Requisites.of(cfg),
        get_report_settings().signatures(form),
        now,
        ZoneInfo(cfg.timezone),
    )


def branch_requisites(row: dict[str, Any], utility: Requisites) -> Requisites:
    """A branch's name and requisites on its forms; a blank one is the utility's."""
    return Requisites(
        row["legal_name"] or row["name"],
        row["inn"] or utility.inn,
        row["bank_account"] or utility.bank_account,
        row["mfo"] or utility.mfo,
        row["address"] or utility.address,
        row["phone"] or utility.phone,
    )


async def build(conn: AsyncConnection[Any], name: str, f: builders.Filters) -> Report:
    """The report ``name``; an unknown place id is a :class:`ReportInputError`. A branch
    user's report is headed with their branch's name and requisites (docs/branches.md)."""
    await narrow_to_branch(conn, f)
    try:
        report = await builders.BUILDERS[name](conn, f)
        own = await report_queries.branches_of(conn)
    except BillingError as exc:
        raise ReportInputError(E_PLACE, str(exc)) from exc
    if own:
        report.seller = branch_requisites(own[0], Requisites.of(get_billing_config()))
    return report


def render(report: Report, fmt: str, ctx: FormContext) -> tuple[Any, str, str]:
    """(body, media type, file name); for ``json`` the body is the document itself."""
    if report.seller is not None:
        ctx = replace(ctx, utility=report.seller)
    if fmt == "json":
        return to_json(report, ctx), "application/json", ""
    body = {"csv": to_csv, "xlsx": to_xlsx, "pdf": to_pdf}[fmt](report, ctx)
    filename = f"{report.name}-{report.params['from']}-{report.params['to']}.{fmt}"
    return body, MEDIA[fmt], filename


async def claims(
    conn: AsyncConnection[Any], f: builders.Filters, number: str | None = None
) -> list[Claim]:
    """The claim letters' data: every debtor of the legal form (or the one account
    ``number``), with the breakdown of the debt."""
    await narrow_to_branch(conn, f)
    try:
        rows = await report_queries.debtors(
            conn,
            f.date_to,
            f.scope,
            f.threshold_tiyin,
            f.lang,
            numbers=None if number is None else [number],
            breakdown=True,
        )
    except BillingError as exc:
        raise ReportInputError(E_PLACE, str(exc)) from exc
    if number is not None and not rows:
        raise ReportInputError(
            E_NO_DEBT,
            f"account {number} owes nothing on {f.date_to}",
            number=number,
            day=f.date_to.strftime("%d.%m.%Y"),
        )
    if len(rows) > MAX_LETTERS:
        raise ReportInputError(
            E_TOO_MANY,
            f"{len(rows)} letters: more than {MAX_LETTERS} at once",
            count=len(rows),
            max=MAX_LETTERS,
        )
    # each letter is its debtor's branch's: its name, and its bank account to pay to
    ids = sorted({int(r["branch_id"]) for r in rows if r.get("branch_id") is not None})
    sellers: dict[int, Requisites] = {}
    utility = Requisites.of(get_billing_config())
    for b in await report_queries.branches_of(conn, ids) if ids else []:
        missing = [
            label for key, label in (("legal_name", L_LEGAL_NAME), *REQUISITES[:3]) if not b[key]
        ]
        if missing:
            raise ReportInputError(
                E_BRANCH_REQUISITES,
                f"branch {b['code']} has no {', '.join(m.id for m in missing)} for its letters",
                branch=b["code"],
                missing=tuple(missing),
            )
        sellers[int(b["id"])] = branch_requisites(b, utility)
    return [replace(Claim.of(r), seller=sellers.get(r.get("branch_id") or 0)) for r in rows]
