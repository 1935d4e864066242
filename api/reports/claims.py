"""The legal department's pre-trial claim letter (pretenziya): one PDF per debtor, in the
debtor's language (``accounts.correspondence_language``, else the utility's default), with
the debt broken down by the unpaid charges (first in, first out) and by age, the demand to
pay within the set number of days, the utility's payment details and the signature lines.

billing/dunning.py's letters are reminders of one line (the amount and the days overdue) in
Uzbek Latin or Russian only; a claim needs the breakdown and every language of the catalogs,
so it is written here from the same catalogs as the report forms.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from api.i18n import format_som
from api.reports.form import BLANK, FormContext, Requisites, day
from api.reports.render import fonts, numbered_canvas
from api.reports.text import CATEGORY, pgettext
from suvnet.textsafe import rl_text

T_CLAIM = pgettext("report", "Pre-trial claim")
T_TO = pgettext("report", "To")
T_ACCOUNT = pgettext("report", "Account")
T_INN = pgettext("report", "INN")
T_ADDRESS = pgettext("report", "Address")
T_OUT_NO = pgettext("report", "Ref. No. %(number)s of %(day)s")
T_BODY = pgettext(
    "report",
    "According to our records, on %(day)s you owe %(debt)s so'm for drinking water supplied "
    "to account %(account)s. The debt is made up of the unpaid charges below (payments settle "
    "the oldest charges first).",
)
T_DEMAND = pgettext(
    "report",
    "We ask you to pay the debt of %(debt)s so'm within %(days)s days of receiving this "
    "claim. If it is not paid, we will apply to the court to recover the debt together with "
    "the costs of the case, and water supply may be suspended as the contract provides.",
)
T_PAY_TO = pgettext(
    "report",
    "Pay to: %(utility)s, INN %(inn)s, bank account %(account)s, MFO %(mfo)s; payment "
    "reference: account %(number)s.",
)
T_IF_PAID = pgettext("report", "If you have already paid, please disregard this claim.")
T_CHARGE_DATE = pgettext("report", "Charge dated")
T_UNPAID = pgettext("report", "Unpaid, so'm")
T_AGE = pgettext("report", "Age of debt")
T_TOTAL = pgettext("report", "Total")
T_DIRECTOR = pgettext("report", "Director")
T_EXECUTOR = pgettext("report", "Prepared by")
BUCKETS = (
    pgettext("report", "0-30 days"),
    pgettext("report", "31-60 days"),
    pgettext("report", "61-90 days"),
    pgettext("report", "over 90 days"),
)

MAX_LETTERS = 2000
"""At most this many letters in one download (narrow the place or raise the threshold)."""


@dataclass(frozen=True)
class Claim:
    """One debtor as the letter needs it (tiyin)."""

    number: str
    name: str
    kind: str
    inn: str | None
    address: str
    debt: int
    buckets: tuple[int, int, int, int]
    unpaid: tuple[tuple[date, int], ...]
    language: str | None
    seller: Requisites | None = None
    """The debtor's branch, whose name heads the letter and whose account is paid to
    (docs/branches.md); None: the utility."""

    @classmethod
    def of(cls, row: dict[str, Any]) -> Claim:
        """From a row of ``billing.report_queries.debtors(..., breakdown=True)``."""
        return cls(
            row["number"],
            row["name"],
            row["kind"],
            row.get("inn"),
            row["address"],
            int(row["debt"]),
            (int(row["b0"]), int(row["b1"]), int(row["b2"]), int(row["b3"])),
            tuple((d, int(v)) for d, v in row["unpaid"]),
            row.get("language"),
        )


def age_label(charge_day: date, as_of: date) -> int:
    """Which age bucket a charge of ``charge_day`` is in on ``as_of`` (as billing ages)."""
    days = (as_of - charge_day).days
    return 0 if days <= 30 else 1 if days <= 60 else 2 if days <= 90 else 3


def render_claim(claim: Claim, as_of: date, ctx: FormContext, payment_days: int) -> bytes:
    """The claim letter of one debtor, on portrait A4 pages numbered "page N of M"."""
    from reportlab.lib import colors  # type: ignore[import-untyped]
    from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
    from reportlab.lib.styles import ParagraphStyle  # type: ignore[import-untyped]
    from reportlab.lib.units import mm  # type: ignore[import-untyped]
    from reportlab.platypus import (  # type: ignore[import-untyped]
        KeepTogether,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    w = ctx.words
    font, bold = fonts()
    body = ParagraphStyle("b", fontName=font, fontSize=10, leading=13.5, spaceAfter=5)
    small = ParagraphStyle("s", fontName=font, fontSize=8, leading=10)
    org = ParagraphStyle("o", fontName=bold, fontSize=11, leading=14)
    title = ParagraphStyle("t", fontName=bold, fontSize=14, leading=18, alignment=1, spaceAfter=6)
    right = ParagraphStyle("r", parent=body, alignment=2)
    if claim.seller is not None:
        ctx = replace(ctx, utility=claim.seller)
    u = ctx.utility
    debt = format_som(claim.debt)
    story: list[Any] = [
        Paragraph(rl_text(u.name), org),
        Paragraph(rl_text("; ".join(ctx.requisites())), small),
        Spacer(1, 4 * mm),
        Paragraph(rl_text(w(T_OUT_NO, number=BLANK[:8], day=day(as_of))), body),
        Paragraph(rl_text(f"{w(T_TO)}: {claim.name}"), right),
        Paragraph(
            rl_text(
                f"{w(CATEGORY[claim.kind]) if claim.kind in CATEGORY else claim.kind}; "
                f"{w(T_ACCOUNT)} {claim.number}"
                + (f"; {w(T_INN)} {claim.inn}" if claim.inn else "")
            ),
            right,
        ),
        Paragraph(rl_text(f"{w(T_ADDRESS)}: {claim.address}"), right),
        Spacer(1, 4 * mm),
        Paragraph(rl_text(w(T_CLAIM)), title),
        Paragraph(rl_text(w(T_BODY, day=day(as_of), debt=debt, account=claim.number)), body),
    ]
    rows: list[list[str]] = [[w(T_CHARGE_DATE), w(T_AGE), w(T_UNPAID)]]
    rows += [[day(d), w(BUCKETS[age_label(d, as_of)]), format_som(v)] for d, v in claim.unpaid]
    rows.append([w(T_TOTAL), "", debt])
    table = Table(rows, colWidths=[40 * mm, 50 * mm, 40 * mm], repeatRows=1, hAlign="LEFT")
    total_at = len(claim.unpaid) + 1
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), font, 9),
                ("FONT", (0, 0), (-1, 0), bold, 9),
                ("FONT", (0, total_at), (-1, total_at), bold, 9),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#DDEBF7")),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("ALIGN", (2, 1), (2, -1), "RIGHT"),
            ]
        )
    )
    story += [
        table,
        Spacer(1, 5 * mm),
        Paragraph(rl_text(w(T_DEMAND, debt=debt, days=payment_days)), body),
        Paragraph(
            rl_text(
                w(
                    T_PAY_TO,
                    utility=u.name,
                    inn=u.inn or BLANK,
                    account=u.bank_account or BLANK,
                    mfo=u.mfo or BLANK,
                    number=claim.number,
                )
            ),
            body,
        ),
        Paragraph(rl_text(w(T_IF_PAID)), body),
        Spacer(1, 10 * mm),
    ]
    sign = Table(
        [
            [w(T_DIRECTOR), "", ctx.signatures.approved_by],
            [w(T_EXECUTOR), "", ctx.signatures.prepared_by],
        ],
        colWidths=[40 * mm, 55 * mm, 75 * mm],
        rowHeights=[10 * mm, 10 * mm],
        hAlign="LEFT",
    )
    sign.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), font, 10),
                ("FONT", (0, 0), (0, -1), bold, 10),
                ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
                ("LINEBELOW", (1, 0), (1, -1), 0.6, colors.black),
            ]
        )
    )
    story.append(KeepTogether([sign]))
    page_w = A4[0]
    margin = 20 * mm
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=margin,
        rightMargin=margin,
        topMargin=15 * mm,
        bottomMargin=16 * mm,
        title=w(T_CLAIM),
        author=u.name,
    )

    def draw(canvas: Any, page: int, pages: int) -> None:
        canvas.saveState()
        canvas.setFont(font, 7)
        canvas.drawString(margin, 8 * mm, ctx.printed())
        canvas.drawRightString(page_w - margin, 8 * mm, ctx.page(page, pages))
        canvas.restoreState()

    doc.build(story, canvasmaker=numbered_canvas(draw))
    return buf.getvalue()


def claims_zip(
    claims: Iterable[Claim],
    as_of: date,
    context_for: Callable[[str | None], FormContext],
    payment_days: int,
) -> bytes:
    """Every claim letter in one ZIP file, ``claim-<account>.pdf`` each, each in its
    debtor's language (``context_for(language)``)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for c in claims:
            pdf = render_claim(c, as_of, context_for(c.language), payment_days)
            z.writestr(f"claim-{c.number}.pdf", pdf)
    return buf.getvalue()
