"""PDF documents (reportlab): payment slips, legal-entity invoices, reconciliation
statements (akt sverki) and dunning letters, in Uzbek (Latin, default) or Russian.

Data gathering (SQL) is separate from rendering: ``*_data`` functions read the database and
return plain dataclasses; ``render_*`` functions turn them into PDF bytes. The money figures
(opening balance, charged, paid, closing balance and its debit/credit parts) follow the one
definition of :mod:`billing.figures`, the same as the reports and the dashboards.

Every value that comes from data (names, addresses, numbers, references, the utility's own
settings) goes into a ``Paragraph`` through :func:`suvnet.textsafe.rl_text`, so ReportLab's
markup (``<img>``, ``<a href>``, ``<font>``) in a name is printed as text, never run. Only the
fixed catalog texts and our own ``<b>`` tags are markup. Names and addresses in tables are
Paragraphs too, so a long one wraps inside its column instead of running off the page.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import psycopg
from reportlab.graphics.barcode.qr import QrCodeWidget  # type: ignore[import-untyped]
from reportlab.graphics.shapes import Drawing  # type: ignore[import-untyped]
from reportlab.lib import colors  # type: ignore[import-untyped]
from reportlab.lib.enums import TA_RIGHT  # type: ignore[import-untyped]
from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
from reportlab.lib.styles import ParagraphStyle  # type: ignore[import-untyped]
from reportlab.lib.units import mm  # type: ignore[import-untyped]
from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]
from reportlab.platypus import (  # type: ignore[import-untyped]
    Flowable,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from billing import consumption as cons
from billing.branches import (
    Seller,
    account_branch,
    account_contracts,
    require_requisites,
    seller_of_account,
    utility_seller,
)
from billing.config import BillingConfig
from billing.errors import DocumentError
from billing.figures import Figures, account_figures
from billing.paylinks import best_link
from billing.tariffs import period_bounds
from suvnet.numfmt import format_som, format_volume
from suvnet.textsafe import rl_text

Lang = Literal["uz", "ru"]

FONT_CANDIDATES = [
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    ),
    ("/usr/share/fonts/TTF/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf"),
    (
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    ),
]

MONTHS = {
    "uz": [
        "yanvar",
        "fevral",
        "mart",
        "aprel",
        "may",
        "iyun",
        "iyul",
        "avgust",
        "sentabr",
        "oktabr",
        "noyabr",
        "dekabr",
    ],
    "ru": [
        "январь",
        "февраль",
        "март",
        "апрель",
        "май",
        "июнь",
        "июль",
        "август",
        "сентябрь",
        "октябрь",
        "ноябрь",
        "декабрь",
    ],
}

T: dict[str, dict[str, str]] = {
    "uz": {
        "slip": "Ichimlik suvi uchun toʻlov varaqasi",
        "period": "Davr",
        "account": "Shaxsiy hisob raqami",
        "name": "Abonent",
        "address": "Manzil",
        "meter": "Hisoblagich",
        "start": "Boshlangʻich koʻrsatkich",
        "end": "Oxirgi koʻrsatkich",
        "volume": "Sarf, m³",
        "estimated": "* taxminiy hisoblangan sarf",
        "norm": "Me'yor boʻyicha: {n} kishi",
        "service_days": "Xizmat kunlari: {d}/{n} kun",
        "suspended_days": "toʻxtatilgan: {k} kun",
        "tariff": "Tarif",
        "from_to": "Davr",
        "price": "Narx, soʻm/m³",
        "amount": "Summa, soʻm",
        "vat": "QQS",
        "opening": "Davr boshidagi qarz",
        "charges": "Hisoblandi",
        "payments": "Toʻlandi",
        "due": "Toʻlash kerak",
        "prepaid": "Oldindan toʻlov",
        "pay_qr": "Toʻlash uchun QR kodni skanerlang",
        "invoice": "Hisob-faktura",
        "invoice_no": "Hisob-faktura raqami",
        "buyer": "Xaridor",
        "seller": "Sotuvchi",
        "inn": "STIR",
        "bank": "Hisob raqami",
        "mfo": "MFO",
        "net": "QQSsiz summa",
        "total": "Jami",
        "statement": "Oʻzaro hisob-kitoblarni solishtirish dalolatnomasi",
        "date": "Sana",
        "document": "Hujjat",
        "debit": "Debet",
        "credit": "Kredit",
        "opening_bal": "Davr boshidagi saldo",
        "closing_bal": "Davr oxiridagi saldo",
        "turnover": "Aylanmalar",
        "sign_seller": "Sotuvchi nomidan: ____________ (imzo) M.O.",
        "sign_buyer": "Xaridor nomidan: ____________ (imzo) M.O.",
        "letter": "Qarzdorlik toʻgʻrisida bildirishnoma",
        "debt": "Qarz summasi",
        "days": "Muddati oʻtgan kunlar",
        "charge": "Suv uchun hisoblandi",
        "payment": "Toʻlov",
        "reversal": "Storno",
        "adjustment": "Tuzatish",
        "penalty": "Penya",
        "opening_balance": "Kirish qoldigʻi",
        "som": "soʻm",
        "due_date": "Toʻlash muddati",
        "recipient": "Toʻlov oluvchi",
        "phone": "Tel.",
        "bank_name": "Bank",
        "cabinet_qr": "Shaxsiy kabinetga kirish uchun QR kodni skanerlang",
        "questions": "Savollar boʻyicha: {phone}",
        "meter_col": "Hisoblagich raqami",
    },
    "ru": {
        "slip": "Квитанция на оплату питьевой воды",
        "period": "Период",
        "account": "Лицевой счёт",
        "name": "Абонент",
        "address": "Адрес",
        "meter": "Счётчик",
        "start": "Начальные показания",
        "end": "Конечные показания",
        "volume": "Расход, м³",
        "estimated": "* расход рассчитан по оценке",
        "norm": "По норме: {n} чел.",
        "service_days": "Дни обслуживания: {d}/{n} дн.",
        "suspended_days": "приостановлено: {k} дн.",
        "tariff": "Тариф",
        "from_to": "Период",
        "price": "Цена, сум/м³",
        "amount": "Сумма, сум",
        "vat": "НДС",
        "opening": "Долг на начало периода",
        "charges": "Начислено",
        "payments": "Оплачено",
        "due": "К оплате",
        "prepaid": "Переплата",
        "pay_qr": "Отсканируйте QR-код для оплаты",
        "invoice": "Счёт-фактура",
        "invoice_no": "Номер счёта-фактуры",
        "buyer": "Покупатель",
        "seller": "Поставщик",
        "inn": "ИНН",
        "bank": "Расчётный счёт",
        "mfo": "МФО",
        "net": "Сумма без НДС",
        "total": "Итого",
        "statement": "Акт сверки взаимных расчётов",
        "date": "Дата",
        "document": "Документ",
        "debit": "Дебет",
        "credit": "Кредит",
        "opening_bal": "Сальдо на начало периода",
        "closing_bal": "Сальдо на конец периода",
        "turnover": "Обороты",
        "sign_seller": "От поставщика: ____________ (подпись) М.П.",
        "sign_buyer": "От покупателя: ____________ (подпись) М.П.",
        "letter": "Уведомление о задолженности",
        "debt": "Сумма долга",
        "days": "Дней просрочки",
        "charge": "Начисление за воду",
        "payment": "Оплата",
        "reversal": "Сторно",
        "adjustment": "Корректировка",
        "penalty": "Пеня",
        "opening_balance": "Входящий остаток",
        "som": "сум",
        "due_date": "Срок оплаты",
        "recipient": "Получатель платежа",
        "phone": "Тел.",
        "bank_name": "Банк",
        "cabinet_qr": "Отсканируйте QR-код, чтобы войти в личный кабинет",
        "questions": "По вопросам: {phone}",
        "meter_col": "Номер счётчика",
    },
}


def money(tiyin: int) -> str:
    """1980000 -> '19 800,00' (so'm with tiyin): the one money format of
    :mod:`suvnet.numfmt`, the same as the web pages and the command line."""
    return format_som(tiyin)


def volume(m3: float) -> str:
    """74.323 -> '74,323' (m³ to the litre, the one format of :mod:`suvnet.numfmt`)."""
    return format_volume(m3)


def due_date(period: date, cfg: BillingConfig) -> date:
    """The day a month's bill is due: the month's last day plus ``payment_due_day`` days
    (the same rule the dunning counts overdue days from)."""
    return period_bounds(period)[1] + timedelta(days=cfg.payment_due_day)


def period_label(period: date, lang: Lang) -> str:
    m = MONTHS[lang][period.month - 1]
    return f"{period.year}-yil {m}" if lang == "uz" else f"{m} {period.year}"


_FONTS: tuple[str, str] | None = None


def fonts(cfg: BillingConfig) -> tuple[str, str]:
    """Register a TTF font with Latin and Cyrillic letters; returns (regular, bold) names."""
    global _FONTS
    if _FONTS is not None:
        return _FONTS
    pairs: list[tuple[str, str]] = []
    if cfg.font_path:
        pairs.append((str(cfg.font_path), str(cfg.font_bold_path or cfg.font_path)))
    pairs += FONT_CANDIDATES
    for reg, bold in pairs:
        if Path(reg).is_file():
            pdfmetrics.registerFont(TTFont("SuvSans", reg))
            pdfmetrics.registerFont(TTFont("SuvSans-Bold", bold if Path(bold).is_file() else reg))
            _FONTS = ("SuvSans", "SuvSans-Bold")
            return _FONTS
    raise DocumentError(
        "no TTF font with Cyrillic letters found; install fonts-dejavu-core or set "
        "SUVNET_BILLING_FONT_PATH to a .ttf file"
    )


class _Styles:
    def __init__(self, cfg: BillingConfig) -> None:
        reg, bold = fonts(cfg)
        self.reg, self.bold = reg, bold
        self.body = ParagraphStyle("body", fontName=reg, fontSize=9, leading=11.5)
        self.small = ParagraphStyle("small", fontName=reg, fontSize=7.5, leading=9)
        self.title = ParagraphStyle("title", fontName=bold, fontSize=13, leading=16, spaceAfter=4)
        self.h2 = ParagraphStyle("h2", fontName=bold, fontSize=10, leading=13, spaceBefore=4)
        self.cell = ParagraphStyle("cell", fontName=reg, fontSize=8.5, leading=10.5)
        self.head = ParagraphStyle("head", fontName=bold, fontSize=8, leading=9.5)
        self.head_num = ParagraphStyle("head_num", parent=self.head, alignment=TA_RIGHT)

    def text(self, value: object) -> Paragraph:
        """An untrusted value as a table cell that wraps (markup escaped)."""
        return Paragraph(rl_text(value), self.cell)

    def table(
        self,
        data: list[list[Any]],
        widths: list[float] | None = None,
        header: bool = True,
        *,
        figures: bool = True,
    ) -> Table:
        """A ruled table. The header row's texts wrap inside their columns (a long column
        title takes two lines instead of running into its neighbour); the first column is
        left-aligned, the others (figures) right-aligned."""
        if header and data:
            data = [
                [
                    Paragraph(c, self.head_num if figures and i else self.head)
                    if isinstance(c, str)
                    else c
                    for i, c in enumerate(data[0])
                ],
                *data[1:],
            ]
        t = Table(data, colWidths=widths, hAlign="LEFT")
        style = [
            ("FONT", (0, 0), (-1, -1), self.reg, 8.5),
            ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
            ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ("ALIGN", (1, 0), (-1, -1), "RIGHT" if figures else "LEFT"),
        ]
        if header:
            style += [("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke)]
        t.setStyle(TableStyle(style))
        return t


def qr_flowable(text: str, size: float = 32 * mm) -> Drawing:
    w = QrCodeWidget(text)
    x0, y0, x1, y1 = w.getBounds()
    d = Drawing(size, size, transform=[size / (x1 - x0), 0, 0, size / (y1 - y0), 0, 0])
    d.add(w)
    return d


def _doc(buf: io.BytesIO, title: str) -> SimpleDocTemplate:
    return SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=title,
        author="suvnet",
    )


# ------------------------------------------------------------------ data
@dataclass(frozen=True)
class MeterRow:
    serial_no: str
    start_m3: float | None
    end_m3: float | None
    volume_m3: float
    estimated: bool


@dataclass(frozen=True)
class SlipData:
    account_id: int
    number: str
    name: str
    kind: str
    inn: str | None
    mfo: str | None
    bank_account: str | None
    address_uz: str
    address_ru: str
    mahalla_id: int
    period: date
    basis: str
    residents: int
    meters: tuple[MeterRow, ...]
    lines: tuple[dict[str, Any], ...]
    invoice_number: str | None
    volume_m3: float
    estimated: bool
    opening_tiyin: int
    charges_tiyin: int
    payments_tiyin: int
    closing_tiyin: int
    vat_tiyin: int
    pay_link: str | None = None
    # prorated month: days billed / days in the month (None: the whole month)
    service_days: int | None = None
    period_days: int | None = None
    suspended_days: int = 0
    seller: Seller | None = None
    """Whose document it is: the account's branch's requisites, or the utility's (None: the
    settings given to the renderer)."""

    @property
    def due_tiyin(self) -> int:
        return max(self.closing_tiyin, 0)


def _address(r: Any, lang: Lang) -> str:
    (
        _,
        _,
        house,
        apt,
        street_uz,
        street_ru,
        mahalla_uz,
        mahalla_ru,
        district_uz,
        district_ru,
        region_uz,
        region_ru,
    ) = r
    if lang == "uz":
        parts = [region_uz, district_uz, mahalla_uz, street_uz, f"{house}-uy"]
        if apt:
            parts.append(f"{apt}-xonadon")
    else:
        parts = [
            region_ru or region_uz,
            district_ru or district_uz,
            mahalla_ru or mahalla_uz,
            street_ru or street_uz,
            f"д. {house}",
        ]
        if apt:
            parts.append(f"кв. {apt}")
    return ", ".join(str(p) for p in parts)


def slip_data(
    conn: psycopg.Connection[Any], account_id: int, period: date, cfg: BillingConfig
) -> SlipData:
    """Everything a slip shows for one account and month (from the database)."""
    first, last = period_bounds(period)
    acc = conn.execute(
        "SELECT id, number, name, kind, inn, mfo, bank_account, residents FROM accounts "
        "WHERE id = %s",
        (account_id,),
    ).fetchone()
    if acc is None:
        raise DocumentError(f"no account {account_id}")
    addr = conn.execute(
        """SELECT account_id, mahalla_id, house_number, apartment_number, street_uz, street_ru,
                  mahalla_uz, mahalla_ru, district_uz, district_ru, region_uz, region_ru
           FROM account_addresses WHERE account_id = %s""",
        (account_id,),
    ).fetchone()
    assert addr is not None
    inv = conn.execute(
        """SELECT number, lines, volume_m3, estimated, vat_tiyin, id FROM invoices
           WHERE account_id = %s AND period = %s ORDER BY id DESC LIMIT 1""",
        (account_id, first),
    ).fetchone()
    meters: list[MeterRow] = []
    lines: list[dict[str, Any]] = []
    basis = "norm"
    service: dict[str, Any] = {}
    if inv is not None:
        doc = inv[1] if isinstance(inv[1], dict | list) else json.loads(inv[1])
        if isinstance(doc, list):  # the column's default: a bare list of charge lines
            doc = {"charge": doc}
        lines = list(doc.get("charge", []))
        basis = str(doc.get("basis", "metered"))
        service = dict(doc.get("service") or {})
        for m in conn.execute(
            """SELECT mt.serial_no, pc.start_m3, pc.end_m3, pc.volume_m3, pc.flags
               FROM period_consumption pc JOIN meters mt ON mt.id = pc.meter_id
               WHERE pc.period = %s AND pc.account_id = %s AND pc.invoice_id = %s
               ORDER BY pc.start_ts""",
            # period and account first: the primary key's order, so one index probe, not a
            # scan of the month's consumption (2.1 slips/s at 1,000,000 accounts before)
            (first, account_id, inv[5]),
        ).fetchall():
            meters.append(  # noqa: PERF401
                MeterRow(m[0], m[1], m[2], float(m[3]), bool(int(m[4]) & cons.ESTIMATED_MASK))
            )
    fig = account_figures(conn, account_id, first, last)
    return SlipData(
        account_id=account_id,
        number=acc[1],
        name=acc[2],
        kind=acc[3],
        inn=acc[4],
        mfo=acc[5],
        bank_account=acc[6],
        address_uz=_address(addr, "uz"),
        address_ru=_address(addr, "ru"),
        mahalla_id=int(addr[1]),
        period=first,
        basis=basis,
        residents=int(acc[7]),
        meters=tuple(meters),
        lines=tuple(lines),
        invoice_number=inv[0] if inv else None,
        volume_m3=float(inv[2]) if inv else 0.0,
        estimated=bool(inv[3]) if inv else False,
        opening_tiyin=fig.opening,
        charges_tiyin=fig.charged,
        payments_tiyin=fig.paid,
        closing_tiyin=fig.closing,
        vat_tiyin=int(inv[4]) if inv else 0,
        pay_link=best_link(cfg, acc[1], fig.closing_debit, account_contracts(conn, acc[1])),
        service_days=int(service["days"]) if service else None,
        period_days=int(service["period_days"]) if service else None,
        suspended_days=int(service.get("suspended_days", 0)) if service else 0,
        seller=seller_of_account(conn, account_id, cfg),
    )


def service_text(s: SlipData, lang: Lang) -> str | None:
    """'Days of service: 12/30' when the month was prorated, else None."""
    if s.service_days is None or s.period_days is None:
        return None
    t = T[lang]
    text = t["service_days"].format(d=s.service_days, n=s.period_days)
    if s.suspended_days:
        text += "; " + t["suspended_days"].format(k=s.suspended_days)
    return text


def mahalla_accounts(
    conn: psycopg.Connection[Any], mahalla: str | int, period: date | None = None
) -> list[int]:
    """Account ids of a mahalla (by id or Uzbek name), ordered by street and house.

    Closed accounts are left out, except those with an invoice for ``period`` (the last,
    prorated slip of an account closed during that month)."""
    found = conn.execute(
        """SELECT m.id, m.name_uz, d.name_uz FROM mahallas m JOIN districts d
               ON d.id = m.district_id WHERE m.id::text = %s OR m.name_uz = %s""",
        (str(mahalla), str(mahalla)),
    ).fetchall()
    if not found:
        raise DocumentError(f"no mahalla {mahalla!r}")
    if len(found) > 1:
        options = "; ".join(f"id {r[0]} ({r[1]}, {r[2]})" for r in found)
        raise DocumentError(f"mahalla {mahalla!r} is ambiguous, give its id: {options}")
    rows = conn.execute(
        """SELECT aa.account_id FROM account_addresses aa JOIN accounts a
               ON a.id = aa.account_id
           WHERE aa.mahalla_id = %s
             AND (a.status <> 'closed'
                  OR EXISTS (SELECT 1 FROM invoices i WHERE i.account_id = a.id
                             AND i.period = %s))
           ORDER BY aa.street_uz, aa.house_number, aa.apartment_number NULLS FIRST""",
        (found[0][0], period.replace(day=1) if period else None),
    ).fetchall()
    if not rows:
        raise DocumentError(f"no accounts in mahalla {mahalla!r}")
    return [int(r[0]) for r in rows]


# ------------------------------------------------------------------ rendering
def _seller(seller: Seller | None, cfg: BillingConfig) -> Seller:
    """The requisites a document prints: its own (the account's branch's), else the
    utility's settings."""
    return seller if seller is not None else utility_seller(cfg)


def _utility_lines(seller: Seller, st: _Styles, lang: Lang) -> list[Flowable]:
    """The seller's name and requisites at the top of a slip (the account's branch, or the
    utility): address and phone, STIR, the bank, its account and MFO (blank settings are
    left out here; ``suvnet billing info`` and the billing run warn about them)."""
    t = T[lang]
    contact = [seller.address.strip()]
    if seller.phone.strip():
        contact.append(f"{t['phone']} {seller.phone.strip()}")
    bank = [
        f"{label}: {value.strip()}"
        for label, value in (
            (t["inn"], seller.inn),
            (t["bank_name"], seller.bank),
            (t["bank"], seller.bank_account),
            (t["mfo"], seller.mfo),
        )
        if value.strip()
    ]
    lines = (" · ".join(c for c in contact if c), " · ".join(bank))
    return [
        Paragraph(rl_text(seller.name), st.h2),
        *(Paragraph(rl_text(line), st.small) for line in lines if line),
    ]


def qr_target(s: SlipData, cfg: BillingConfig) -> tuple[str, str] | None:
    """What the slip's QR code opens: ``("pay", link)`` (Payme or Click with the amount due)
    or ``("cabinet", address)`` (the customer cabinet), or None when neither is configured."""
    if s.pay_link:
        return "pay", s.pay_link
    if cfg.cabinet_url and cfg.cabinet_url.strip():
        return "cabinet", cfg.cabinet_url.strip()
    return None


def _slip_story(s: SlipData, st: _Styles, cfg: BillingConfig, lang: Lang) -> list[Flowable]:
    t = T[lang]
    seller = _seller(s.seller, cfg)
    story: list[Flowable] = [
        *_utility_lines(seller, st, lang),
        Spacer(1, 2 * mm),
        Paragraph(t["slip"], st.title),
        Paragraph(
            f"{t['period']}: {period_label(s.period, lang)}"
            + (f" &nbsp; № {rl_text(s.invoice_number)}" if s.invoice_number else ""),
            st.body,
        ),
        Paragraph(f"{t['account']}: <b>{rl_text(s.number)}</b>", st.body),
        Paragraph(f"{t['name']}: {rl_text(s.name)}", st.body),
        Paragraph(
            f"{t['address']}: {rl_text(s.address_uz if lang == 'uz' else s.address_ru)}",
            st.body,
        ),
        Spacer(1, 3 * mm),
    ]
    if s.meters:
        rows: list[list[Any]] = [[t["meter_col"], t["start"], t["end"], t["volume"]]]
        for m in s.meters:
            rows.append(  # noqa: PERF401
                [
                    st.text(m.serial_no),
                    "" if m.start_m3 is None else volume(m.start_m3),
                    "" if m.end_m3 is None else volume(m.end_m3),
                    volume(m.volume_m3) + (" *" if m.estimated else ""),
                ]
            )
        story.append(st.table(rows, [60 * mm, 40 * mm, 40 * mm, 40 * mm]))
        if any(m.estimated for m in s.meters):
            story.append(Paragraph(t["estimated"], st.small))
    elif s.basis == "norm":
        story.append(Paragraph(t["norm"].format(n=s.residents), st.body))
    svc = service_text(s, lang)
    if svc:
        story.append(Paragraph(svc, st.body))
    if s.lines:
        rows = [[t["from_to"], t["volume"], t["price"], t["vat"], t["amount"]]]
        for ln in s.lines:
            rows.append(
                [
                    st.text(f"{ln['from']} – {ln['to']}"),
                    volume(int(ln["litres"]) / 1000),
                    money(int(ln["price_tiyin_per_m3"])),
                    money(int(ln["vat_tiyin"])),
                    money(int(ln["net_tiyin"]) + int(ln["vat_tiyin"])),
                ]
            )
        story += [Spacer(1, 2 * mm), st.table(rows, [52 * mm, 28 * mm, 32 * mm, 32 * mm, 36 * mm])]
    summary: list[list[Any]] = [
        [t["opening"], money(s.opening_tiyin)],
        [t["charges"], money(s.charges_tiyin)],
        [t["payments"], money(s.payments_tiyin)],
        [
            (t["due"] if s.closing_tiyin >= 0 else t["prepaid"]) + f", {t['som']}",
            money(abs(s.closing_tiyin)),
        ],
        [t["due_date"], due_date(s.period, cfg).strftime("%d.%m.%Y")],
    ]
    tbl = st.table(summary, [80 * mm, 45 * mm], header=False)
    tbl.setStyle(TableStyle([("FONT", (0, 3), (-1, 4), st.bold, 10)]))
    story += [Spacer(1, 3 * mm), tbl, Spacer(1, 4 * mm)]
    target = qr_target(s, cfg)
    if target is not None:
        kind, link = target
        words = [
            Paragraph(t["pay_qr"] if kind == "pay" else t["cabinet_qr"], st.body),
            Spacer(1, 1 * mm),
            Paragraph(rl_text(link), st.small),
        ]
        box = Table([[qr_flowable(link), words]], colWidths=[36 * mm, 144 * mm], hAlign="LEFT")
        box.setStyle(
            TableStyle(
                [
                    ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                    ("LEFTPADDING", (0, 0), (0, 0), 0),
                ]
            )
        )
        story.append(box)
    if seller.phone.strip():
        story += [
            Spacer(1, 3 * mm),
            Paragraph(rl_text(t["questions"].format(phone=seller.phone.strip())), st.small),
        ]
    return story


def render_slips(slips: Sequence[SlipData], cfg: BillingConfig, lang: Lang = "uz") -> bytes:
    """One page per slip (a batch for a mahalla is simply many slips)."""
    if not slips:
        raise DocumentError("no slips to print")
    st = _Styles(cfg)
    buf = io.BytesIO()
    story: list[Flowable] = []
    for k, s in enumerate(slips):
        if k:
            story.append(PageBreak())
        story += _slip_story(s, st, cfg, lang)
    _doc(buf, T[lang]["slip"]).build(story)
    return buf.getvalue()


def render_invoice(s: SlipData, cfg: BillingConfig, lang: Lang = "uz") -> bytes:
    """Monthly invoice (hisob-faktura) for a legal entity or budget organisation, with VAT.

    Every cell that holds a name, an address or a requisite is a wrapping paragraph, so a long
    address stays inside its cell. A requisite that is not configured prints blank; the
    billing run and ``suvnet billing info`` warn about it (:func:`requisites_problems`)."""
    if s.invoice_number is None:
        raise DocumentError(f"account {s.number} has no invoice for {s.period:%Y-%m}")
    t = T[lang]
    st = _Styles(cfg)
    seller = _seller(s.seller, cfg)
    net = sum(int(ln["net_tiyin"]) for ln in s.lines)
    vat = sum(int(ln["vat_tiyin"]) for ln in s.lines)
    total_head = f"{t['total']}, {t['som']}"
    rows: list[list[Any]] = [
        [t["from_to"], t["volume"], t["price"], t["net"], "%", t["vat"], total_head]
    ]
    for ln in s.lines:
        rows.append(  # noqa: PERF401
            [
                st.text(f"{ln['from']} – {ln['to']}"),
                volume(int(ln["litres"]) / 1000),
                money(int(ln["price_tiyin_per_m3"])),
                money(int(ln["net_tiyin"])),
                f"{int(ln['vat_rate_bp']) / 100:g}",
                money(int(ln["vat_tiyin"])),
                money(int(ln["net_tiyin"]) + int(ln["vat_tiyin"])),
            ]
        )
    rows.append([t["total"], volume(s.volume_m3), "", money(net), "", money(vat), money(net + vat)])

    def requisite(label: str, value: str | None) -> Paragraph:
        return st.text(f"{label}: {(value or '').strip()}")

    parties: list[list[Any]] = [
        [t["seller"], t["buyer"]],
        [st.text(seller.name), st.text(s.name)],
        [requisite(t["inn"], seller.inn), requisite(t["inn"], s.inn)],
        [requisite(t["bank"], seller.bank_account), requisite(t["bank"], s.bank_account)],
        [requisite(t["mfo"], seller.mfo), requisite(t["mfo"], s.mfo)],
        [
            requisite(t["address"], seller.address),
            requisite(t["address"], s.address_uz if lang == "uz" else s.address_ru),
        ],
    ]
    if seller.bank.strip() or seller.phone.strip():
        parties.append(
            [
                st.text(
                    " · ".join(
                        x
                        for x in (
                            seller.bank.strip(),
                            f"{t['phone']} {seller.phone.strip()}" if seller.phone.strip() else "",
                        )
                        if x
                    )
                ),
                "",
            ]
        )
    pt = st.table(parties, [90 * mm, 90 * mm], figures=False)
    pt.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story: list[Flowable] = [
        Paragraph(f"{t['invoice']} № {rl_text(s.invoice_number)}", st.title),
        Paragraph(
            f"{t['period']}: {period_label(s.period, lang)}; {t['account']}: {rl_text(s.number)}"
            + (f"; {svc}" if (svc := service_text(s, lang)) else ""),
            st.body,
        ),
        Paragraph(f"{t['due_date']}: {due_date(s.period, cfg):%d.%m.%Y}", st.body),
        Spacer(1, 3 * mm),
        pt,
        Spacer(1, 4 * mm),
        st.table(rows, [38 * mm, 20 * mm, 24 * mm, 28 * mm, 12 * mm, 26 * mm, 32 * mm]),
        Spacer(1, 10 * mm),
        Paragraph(t["sign_seller"], st.body),
        Spacer(1, 6 * mm),
        Paragraph(t["sign_buyer"], st.body),
    ]
    buf = io.BytesIO()
    _doc(buf, t["invoice"]).build(story)
    return buf.getvalue()


@dataclass(frozen=True)
class StatementLine:
    """One ledger entry on a statement: ``debit`` is its part of "charged", ``credit`` its
    part of "paid" (billing.figures). A reversal stays in the column of the entry it
    cancels, with the opposite sign (storno), so the columns' sums are charged and paid."""

    value_date: date
    document: str
    debit: int
    credit: int


@dataclass(frozen=True)
class StatementData:
    number: str
    name: str
    inn: str | None
    date_from: date
    date_to: date
    opening_tiyin: int
    lines: tuple[StatementLine, ...] = field(default_factory=tuple)
    seller_name: str | None = None
    """The account's branch's name and STIR on the statement (None: the utility's)."""
    seller_inn: str | None = None

    @property
    def debit(self) -> int:
        """Debit turnover: what was charged in the period."""
        return sum(ln.debit for ln in self.lines)

    @property
    def credit(self) -> int:
        """Credit turnover: what was paid in the period."""
        return sum(ln.credit for ln in self.lines)

    @property
    def figures(self) -> Figures:
        return Figures(self.opening_tiyin, self.debit, self.credit)

    @property
    def closing_tiyin(self) -> int:
        return self.figures.closing


def statement_data(
    conn: psycopg.Connection[Any], account_id: int, date_from: date, date_to: date, lang: Lang
) -> StatementData:
    """Mutual settlements of an account over [date_from, date_to] from the ledger. The
    seller is the account's branch (refused when it lacks requisites), else the utility."""
    if date_to < date_from:
        raise DocumentError("the statement's end date is before its start date")
    acc = conn.execute(
        "SELECT number, name, inn FROM accounts WHERE id = %s", (account_id,)
    ).fetchone()
    if acc is None:
        raise DocumentError(f"no account {account_id}")
    branch = account_branch(conn, account_id)
    if branch is not None:
        require_requisites(branch)
    fig = account_figures(conn, account_id, date_from, date_to)
    rows = conn.execute(
        """SELECT t.value_date, t.kind, t.counts_as, t.charged_tiyin, t.paid_tiyin, i.number,
                  t.external_ref
           FROM ledger_turnover t LEFT JOIN invoices i ON i.id = t.invoice_id
           WHERE t.account_id = %s AND t.value_date BETWEEN %s AND %s
           ORDER BY t.value_date, t.id""",
        (account_id, date_from, date_to),
    ).fetchall()
    t = T[lang]
    lines = []
    for vd, kind, counts_as, charged, paid, inv_no, ext in rows:
        doc = t[kind] if kind == counts_as else f"{t[kind]}: {t[counts_as]}"
        doc += (f" № {inv_no}" if inv_no else "") + (f" ({ext})" if ext else "")
        lines.append(StatementLine(vd, doc, int(charged), int(paid)))
    return StatementData(
        acc[0],
        acc[1],
        acc[2],
        date_from,
        date_to,
        fig.opening,
        tuple(lines),
        seller_name=None if branch is None else branch.legal_name,
        seller_inn=None if branch is None else branch.inn,
    )


def render_statement(sd: StatementData, cfg: BillingConfig, lang: Lang = "uz") -> bytes:
    """Reconciliation statement (akt sverki) with signature fields for both sides."""
    t = T[lang]
    st = _Styles(cfg)
    fig = sd.figures
    rows: list[list[Any]] = [[t["date"], t["document"], t["debit"], t["credit"]]]
    rows.append(
        [
            sd.date_from.isoformat(),
            t["opening_bal"],
            money(fig.opening_debit),
            money(fig.opening_credit),
        ]
    )
    for ln in sd.lines:
        rows.append(  # noqa: PERF401
            [
                ln.value_date.isoformat(),
                Paragraph(rl_text(ln.document), st.small),
                money(ln.debit) if ln.debit else "",
                money(ln.credit) if ln.credit else "",
            ]
        )
    rows.append(["", t["turnover"], money(sd.debit), money(sd.credit)])
    rows.append(
        [
            sd.date_to.isoformat(),
            t["closing_bal"],
            money(fig.closing_debit),
            money(fig.closing_credit),
        ]
    )
    story: list[Flowable] = [
        Paragraph(t["statement"], st.title),
        Paragraph(f"{sd.date_from.isoformat()} – {sd.date_to.isoformat()}", st.body),
        Paragraph(
            rl_text(
                f"{t['seller']}: {sd.seller_name or cfg.utility_name}; "
                f"{t['inn']} {sd.seller_inn or cfg.utility_inn}"
            ),
            st.body,
        ),
        Paragraph(
            rl_text(
                f"{t['buyer']}: {sd.name}; {t['inn']} {sd.inn or ''}; {t['account']} {sd.number}"
            ),
            st.body,
        ),
        Spacer(1, 4 * mm),
        st.table(rows, [28 * mm, 92 * mm, 30 * mm, 30 * mm]),
        Spacer(1, 12 * mm),
        Paragraph(t["sign_seller"], st.body),
        Spacer(1, 8 * mm),
        Paragraph(t["sign_buyer"], st.body),
    ]
    buf = io.BytesIO()
    _doc(buf, t["statement"]).build(story)
    return buf.getvalue()


def render_letter(
    *,
    cfg: BillingConfig,
    lang: Lang,
    title: str,
    number: str,
    name: str,
    address: str,
    debt_tiyin: int,
    days_overdue: int,
    today: date,
    seller: Seller | None = None,
) -> bytes:
    """A dunning letter (reminder, warning, disconnection order, claim cover letter), headed
    with the seller's name (``seller``: the account's branch, :func:`billing.branches.
    seller_of_account`; None: the utility's)."""
    t = T[lang]
    st = _Styles(cfg)
    story: list[Flowable] = [
        Paragraph(rl_text(_seller(seller, cfg).name), st.h2),
        Paragraph(f"{t['letter']}: {rl_text(title)}", st.title),
        Paragraph(f"{t['date']}: {today.isoformat()}", st.body),
        Paragraph(f"{t['account']}: {rl_text(number)}", st.body),
        Paragraph(f"{t['name']}: {rl_text(name)}", st.body),
        Paragraph(f"{t['address']}: {rl_text(address)}", st.body),
        Spacer(1, 4 * mm),
        Paragraph(f"{t['debt']}: <b>{money(debt_tiyin)} {t['som']}</b>", st.body),
        Paragraph(f"{t['days']}: {days_overdue}", st.body),
    ]
    buf = io.BytesIO()
    _doc(buf, title).build(story)
    return buf.getvalue()
