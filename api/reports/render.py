"""Report renderers: JSON, CSV, XLSX (openpyxl) and PDF (reportlab), each a fixed form in the
reader's language (:class:`api.reports.form.FormContext`): the utility's name and requisites,
the title, period and filters, the print date with its time zone, the tables, the footnotes
and the signature lines; the PDF and the printed XLSX also number their pages ("page N of M").

Money is shown in so'm (JSON keeps integer tiyin). Every value from the data is made safe for
where it goes (suvnet.textsafe): ReportLab markup escaped, spreadsheet text never a formula.

openpyxl and reportlab are imported inside the functions that use them, for start-up time:
together they take about 0.35 s to import, a third of the API's start-up, and most API
processes never render a spreadsheet or a PDF report.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

from api.i18n import format_som
from api.reports.form import MONEY_HEADER, FormContext, day
from api.reports.model import Column, Report, Row, Table
from api.reports.text import Msg, Words, pgettext
from suvnet.textsafe import csv_row, csv_text, rl_text, xlsx_append

LEVEL_LABEL: dict[int, Msg] = {
    1: pgettext("report", "Street total"),
    2: pgettext("report", "MFY total"),
    3: pgettext("report", "District total"),
    9: pgettext("report", "Total"),
}
NOTES = pgettext("report", "Notes")
TIMES = pgettext("report", "Times are %(zone)s time.")
NO_ROWS = pgettext("report", "Nothing in this period.")
NUMERIC_KINDS = ("money", "int", "float", "pct", "date", "datetime", "month")
RIGHT_KINDS = ("money", "int", "float", "pct")


class ReportRenderError(RuntimeError):
    """A form cannot be rendered on this machine (e.g. no font with Cyrillic letters)."""


# ------------------------------------------------------------------------------ cells


def _decimal(value: float, digits: int) -> str:
    """A number for people: decimal comma, like the money (15 000,50)."""
    return f"{value:.{digits}f}".replace(".", ",")


def cell_text(col: Column, value: Any, ctx: FormContext) -> str:
    """A cell as people read it (PDF): so'm with a decimal comma, dates dd.mm.yyyy, times
    in the utility's zone, codes in the reader's language."""
    if value is None or value == "":
        return ""
    if isinstance(value, str) and col.kind != "text":
        return value  # a subtotal's label in a number or date column
    if col.kind == "money":
        return format_som(int(value))
    if col.kind == "pct":
        return _decimal(float(value), 1)
    if col.kind == "float":
        return _decimal(float(value), 2)
    if col.kind == "int":
        return str(int(value))
    if col.kind == "month" and isinstance(value, date):
        return value.strftime("%m.%Y")
    if isinstance(value, datetime):
        return value.astimezone(ctx.tz).strftime("%d.%m.%Y %H:%M")
    if isinstance(value, date):
        return day(value)
    if col.codes is not None:
        return ctx.words.code(col.codes, value)
    return str(value)


def cell_plain(col: Column, value: Any, ctx: FormContext) -> Any:
    """A cell for a spreadsheet: numbers stay numbers (money in so'm, 2 decimals), dates
    stay dates (times as the utility's local time), codes in the reader's language."""
    if value is None:
        return None
    if isinstance(value, str) and col.kind != "text":
        return value
    if col.kind == "money":
        return round(int(value) / 100, 2)
    if col.kind == "pct":
        return round(float(value), 2)
    if col.kind == "float":
        return round(float(value), 3)
    if isinstance(value, datetime):
        return value.astimezone(ctx.tz).replace(tzinfo=None)
    if col.codes is not None:
        return ctx.words.code(col.codes, value)
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return value


def header(col: Column, words: Words) -> str:
    """A column's header; a label that is also a table's code ("cash desk") capitalised."""
    label = words(col.label)
    label = label[:1].upper() + label[1:]
    return words(MONEY_HEADER, label=label) if col.kind == "money" else label


def labelled(table: Table, row: Row, words: Words) -> dict[str, Any]:
    """A row's values; a subtotal row names itself in the first column."""
    vals = dict(row.values)
    if row.level:
        first = table.columns[0].key
        prefix = words(LEVEL_LABEL.get(row.level, LEVEL_LABEL[9]))
        name = vals.get(first) or ""
        vals[first] = f"{prefix}: {name}" if name else prefix
    return vals


def _times_line(report: Report, ctx: FormContext) -> list[str]:
    if any(c.kind == "datetime" for t in report.tables for c in t.columns):
        return [ctx.words(TIMES, zone=ctx.tz.key)]
    return []


# ------------------------------------------------------------------------------ JSON


def to_json(report: Report, ctx: FormContext | None = None) -> dict[str, Any]:
    """The report as a JSON document: money as integer tiyin, each row with its level, codes
    as stored. With ``ctx`` the titles and labels are in its language (else the message ids,
    English)."""

    def t(msg: Msg) -> str:
        return ctx.words(msg) if ctx else msg.id

    seller = {} if report.seller is None else {"seller": asdict(report.seller)}
    return {
        "name": report.name,
        "title": t(report.title),
        **seller,
        "params": report.params,
        "filters": [{"label": t(label), "value": value} for label, value in report.filters],
        "notes": [ctx.note(n) if ctx else n.msg.id for n in report.notes],
        "tables": [
            {
                "key": tb.key,
                "title": t(tb.title),
                "columns": [
                    {k: v for k, v in asdict(c).items() if k != "codes"} | {"label": t(c.label)}
                    for c in tb.columns
                ],
                "rows": [{"level": r.level, **r.values} for r in tb.rows],
            }
            for tb in report.tables
        ],
    }


# ------------------------------------------------------------------------------ CSV


def to_csv(report: Report, ctx: FormContext) -> bytes:
    """The form as CSV, UTF-8 with BOM for Excel: the heading lines, one block per table
    (title, header, rows; a blank line between), the footnotes and the signature lines.

    Text that a spreadsheet would run as a formula gets a leading ``'`` (suvnet.textsafe);
    amounts and counts are written as plain numbers (so'm with a decimal point)."""
    w_ = ctx.words
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(csv_row([ctx.utility.name]))
    w.writerow(csv_row(ctx.requisites()))
    for line in [*ctx.heading(report), *_times_line(report, ctx)]:
        w.writerow(csv_row([line]))
    for t in report.tables:
        w.writerow([])
        w.writerow(csv_row([w_(t.title)]))
        if t.note:
            w.writerow(csv_row([w_(t.note)]))
        w.writerow(csv_row([header(c, w_) for c in t.columns]))
        for r in t.rows:
            vals = labelled(t, r, w_)
            w.writerow([_csv_cell(c, vals.get(c.key), ctx) for c in t.columns])
    if report.notes:
        w.writerow([])
        w.writerow(csv_row([w_(NOTES)]))
        for n in report.notes:
            w.writerow(csv_row([ctx.note(n)]))
    w.writerow([])
    for label, name in ctx.sign_lines():
        w.writerow(csv_row([label, name, "____________________"]))
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _csv_cell(col: Column, value: Any, ctx: FormContext) -> str:
    v = cell_plain(col, value, ctx)
    if v is None:
        return ""
    if col.kind == "money" and not isinstance(v, str):
        return f"{v:.2f}"
    if isinstance(v, date | datetime):
        return v.isoformat(sep=" ") if isinstance(v, datetime) else v.isoformat()
    if isinstance(v, int | float) and col.kind != "text":
        return str(v)
    return csv_text(str(v))


# ------------------------------------------------------------------------------ XLSX

_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")


def _sheet_title(title: str, taken: set[str]) -> str:
    base = _SHEET_BAD.sub("-", title)[:28].strip() or "report"
    name, n = base, 1
    while name.lower() in taken:
        n += 1
        name = f"{base[:26]} {n}"
    taken.add(name.lower())
    return name


def _hf(text: str) -> str:
    """Text for an Excel page header or footer: a lone ``&`` starts a code there."""
    return text.replace("&", "&&")


def to_xlsx(report: Report, ctx: FormContext) -> bytes:
    """One sheet per table, each a form of its own (heading, table, footnotes, signature
    lines), set up to print landscape on A4, one page wide, with the header row repeated
    and "page N of M" in the footer. Every text cell is stored as a string (never a formula,
    see suvnet.textsafe.xlsx_append); amounts are numeric cells in so'm."""
    from openpyxl import Workbook  # type: ignore[import-untyped]
    from openpyxl.styles import Alignment, Font, PatternFill  # type: ignore[import-untyped]

    w_ = ctx.words
    wb = Workbook()
    taken: set[str] = set()
    heading = [*ctx.heading(report), *_times_line(report, ctx)]
    title = w_(report.title)
    for n, t in enumerate(report.tables):
        ws = wb.active if n == 0 else wb.create_sheet()
        assert ws is not None
        ws.title = _sheet_title(w_(t.title), taken)
        xlsx_append(ws, [ctx.utility.name])
        ws.cell(row=ws.max_row, column=1).font = Font(bold=True)
        xlsx_append(ws, ["; ".join(ctx.requisites())])
        xlsx_append(ws, [heading[0]])
        ws.cell(row=ws.max_row, column=1).font = Font(bold=True, size=13)
        for line in heading[1:]:
            xlsx_append(ws, [line])
        ws.append([])
        xlsx_append(ws, [w_(t.title)])
        ws.cell(row=ws.max_row, column=1).font = Font(bold=True)
        if t.note:
            xlsx_append(ws, [w_(t.note)])
        xlsx_append(ws, [header(c, w_) for c in t.columns])
        header_row = ws.max_row
        for cell in ws[header_row]:
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="DDEBF7")
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        for r in t.rows:
            vals = labelled(t, r, w_)
            xlsx_append(ws, [cell_plain(c, vals.get(c.key), ctx) for c in t.columns])
            if r.level:
                for cell in ws[ws.max_row]:
                    cell.font = Font(bold=True)
        if not t.rows:
            xlsx_append(ws, [w_(NO_ROWS)])
        last_row = ws.max_row
        for i, c in enumerate(t.columns, start=1):
            letter = ws.cell(row=header_row, column=i).column_letter
            fmt = {
                "money": "#,##0.00",
                "pct": "0.00",
                "float": "0.000",
                "int": "0",
                "date": "dd.mm.yyyy",
                "month": "mm.yyyy",
                "datetime": "dd.mm.yyyy hh:mm",
            }.get(c.kind)
            if fmt:
                for row in ws.iter_rows(
                    min_row=header_row + 1, max_row=last_row, min_col=i, max_col=i
                ):
                    for cell in row:
                        cell.number_format = fmt
            ws.column_dimensions[letter].width = max(10, min(40, len(header(c, w_)) + 2))
        ws.append([])
        for note in report.notes:
            xlsx_append(ws, [ctx.note(note)])
        ws.append([])
        for label, name in ctx.sign_lines():
            xlsx_append(ws, [label, "____________________", name])
        ws.freeze_panes = ws.cell(row=header_row + 1, column=1)
        ws.print_title_rows = f"{header_row}:{header_row}"
        ws.page_setup.orientation = "landscape"
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.oddHeader.left.text = _hf(ctx.utility.name)
        ws.oddHeader.right.text = _hf(title)
        ws.oddFooter.left.text = _hf(ctx.printed())
        ws.oddFooter.right.text = _hf(ctx.page("\x00P", "\x00N")).replace("\x00", "&")
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# ------------------------------------------------------------------------------ PDF

CELL_PADDING = 6.0  # left + right cell padding, points
FRAME_PADDING = 6.0  # ReportLab's frame padding inside the page margins, points
FONT_SIZE = 7.0
FONT_CANDIDATES = [
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
    ),
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


def fonts() -> tuple[str, str]:
    """A TTF font with Latin and Cyrillic letters (regular, bold), registered once."""
    from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
    from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]

    if "SuvnetForm" in pdfmetrics.getRegisteredFontNames():
        return "SuvnetForm", "SuvnetForm-Bold"
    for regular, bold in FONT_CANDIDATES:
        if Path(regular).is_file() and Path(bold).is_file():
            pdfmetrics.registerFont(TTFont("SuvnetForm", regular))
            pdfmetrics.registerFont(TTFont("SuvnetForm-Bold", bold))
            return "SuvnetForm", "SuvnetForm-Bold"
    raise ReportRenderError(
        "no TTF font with Cyrillic letters found: install fonts-dejavu-core (Debian)"
    )


def fit_widths(natural: list[float], fixed: set[int], avail: float, floor: float) -> list[float]:
    """Column widths that fit ``avail``: the ``fixed`` (number) columns keep their natural
    width; the text columns share the rest, none wider than it needs (water filling), none
    narrower than ``floor``."""
    widths = list(natural)
    if sum(natural) <= avail:
        return widths
    room = avail - sum(natural[i] for i in fixed)
    todo = sorted((i for i in range(len(natural)) if i not in fixed), key=lambda i: natural[i])
    while todo:
        share = max(room / len(todo), floor)
        if natural[todo[0]] <= share:
            i = todo.pop(0)
            room -= natural[i]
            continue
        for i in todo:
            widths[i] = share
        break
    return widths


def column_widths(
    headers: list[str],
    cells: list[list[str]],
    numeric: set[int],
    avail: float,
    *,
    measure: Any,
    bold_measure: Any,
) -> list[float]:
    """Widths for a table: each column as wide as its widest cell and its header's longest
    word (headers wrap at spaces); the room left widens the headers that would wrap; text
    columns narrow (and wrap) when the table is wider than ``avail``."""
    n = len(headers)
    natural = []
    for i in range(n):
        data = max((measure(row[i]) for row in cells), default=0.0)
        word = max((bold_measure(w) for w in headers[i].split()), default=0.0)
        natural.append(max(data, word) + CELL_PADDING)
    widths = fit_widths(natural, numeric, avail, 40.0)
    spare = avail - sum(widths)
    wants = [
        max(0.0, bold_measure(h) + CELL_PADDING - w) for h, w in zip(headers, widths, strict=True)
    ]
    if spare > 0 and sum(wants) > 0:  # room left: headers wrap less, shared in proportion
        share = min(1.0, spare / sum(wants))
        widths = [w + want * share for w, want in zip(widths, wants, strict=True)]
    return widths


def to_pdf(report: Report, ctx: FormContext) -> bytes:
    """The form as a landscape A4 PDF: the heading on the first page, the tables (the header
    row repeated on each page), the footnotes and the signature lines; each page carries the
    utility's name and the title at the top, the print date and "page N of M" at the
    bottom. Every text from the data is escaped for ReportLab's markup
    (suvnet.textsafe.rl_text); columns too wide for the page are narrowed and their cells
    wrap, so nothing runs off the page."""
    from reportlab.lib import colors  # type: ignore[import-untyped]
    from reportlab.lib.pagesizes import A4, landscape  # type: ignore[import-untyped]
    from reportlab.lib.styles import ParagraphStyle  # type: ignore[import-untyped]
    from reportlab.lib.units import mm  # type: ignore[import-untyped]
    from reportlab.pdfbase.pdfmetrics import stringWidth  # type: ignore[import-untyped]
    from reportlab.platypus import (  # type: ignore[import-untyped]
        KeepTogether,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        TableStyle,
    )
    from reportlab.platypus import Table as PdfTable

    w_ = ctx.words
    font, bold = fonts()
    style = {
        "body": ParagraphStyle("body", fontName=font, fontSize=8, leading=10),
        "small": ParagraphStyle("small", fontName=font, fontSize=7, leading=8.5),
        "org": ParagraphStyle("org", fontName=bold, fontSize=10, leading=12.5),
        "title": ParagraphStyle(
            "title", fontName=bold, fontSize=13, leading=16, spaceBefore=4, spaceAfter=2
        ),
        "h2": ParagraphStyle(
            "h2",
            fontName=bold,
            fontSize=9.5,
            leading=12,
            spaceBefore=2,
            spaceAfter=2,
            keepWithNext=1,
        ),
        "table-note": ParagraphStyle(
            "table-note", fontName=font, fontSize=7, leading=8.5, spaceAfter=2, keepWithNext=1
        ),
        "cell": ParagraphStyle("cell", fontName=font, fontSize=FONT_SIZE, leading=8.5),
        "cell-bold": ParagraphStyle("cellb", fontName=bold, fontSize=FONT_SIZE, leading=8.5),
        "head": ParagraphStyle("head", fontName=bold, fontSize=FONT_SIZE, leading=8.5),
    }
    page_w, page_h = landscape(A4)
    margin = 12 * mm
    avail = page_w - 2 * margin - 2 * FRAME_PADDING
    title = w_(report.title)

    def measure(text: str) -> float:
        return float(stringWidth(text, font, FONT_SIZE))

    def bold_measure(text: str) -> float:
        return float(stringWidth(text, bold, FONT_SIZE))

    story: list[Any] = [
        Paragraph(rl_text(ctx.utility.name), style["org"]),
        Paragraph(rl_text("; ".join(ctx.requisites())), style["small"]),
    ]
    heading = ctx.heading(report)
    story.append(Paragraph(rl_text(heading[0]), style["title"]))
    story += [Paragraph(rl_text(line), style["body"]) for line in heading[1:]]
    story += [Paragraph(rl_text(line), style["body"]) for line in _times_line(report, ctx)]
    for t in report.tables:
        story += [Spacer(1, 4 * mm), Paragraph(rl_text(w_(t.title)), style["h2"])]
        if t.note:
            story.append(Paragraph(rl_text(w_(t.note)), style["table-note"]))
        headers = [header(c, w_) for c in t.columns]
        cells: list[list[str]] = []
        bold_rows: list[int] = []
        for r in t.rows:
            vals = labelled(t, r, w_)
            cells.append([cell_text(c, vals.get(c.key), ctx) for c in t.columns])
            if r.level:
                bold_rows.append(len(cells))
        numeric = {i for i, c in enumerate(t.columns) if c.kind in NUMERIC_KINDS}
        widths = column_widths(
            headers, cells, numeric, avail, measure=measure, bold_measure=bold_measure
        )
        data: list[list[Any]] = [[Paragraph(rl_text(h), style["head"]) for h in headers]]
        for n, row in enumerate(cells, start=1):
            st = style["cell-bold"] if n in bold_rows else style["cell"]
            data.append(
                [
                    Paragraph(rl_text(v), st)
                    if i not in numeric
                    and (measure(v) + CELL_PADDING > widths[i] or n in bold_rows)
                    else v
                    for i, v in enumerate(row)
                ]
            )
        spans = []
        if not cells:
            data.append(
                [Paragraph(rl_text(w_(NO_ROWS)), style["cell"])] + [""] * (len(headers) - 1)
            )
            spans = [("SPAN", (0, 1), (-1, 1))]
        tbl = PdfTable(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
        ts = [
            ("FONT", (0, 0), (-1, -1), font, FONT_SIZE),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#DDEBF7")),
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), CELL_PADDING / 2),
            ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PADDING / 2),
            ("TOPPADDING", (0, 0), (-1, -1), 1.5),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            *spans,
        ]
        for i, c in enumerate(t.columns):
            if c.kind in RIGHT_KINDS:
                ts.append(("ALIGN", (i, 1), (i, -1), "RIGHT"))
        ts += [("FONT", (0, r), (-1, r), bold, FONT_SIZE) for r in bold_rows]
        tbl.setStyle(TableStyle(ts))
        story.append(tbl)
    if report.notes:
        story += [Spacer(1, 4 * mm), Paragraph(rl_text(w_(NOTES)), style["h2"])]
        story += [Paragraph(rl_text(ctx.note(n)), style["small"]) for n in report.notes]
    sign = PdfTable(
        [[label, "", name] for label, name in ctx.sign_lines()],
        colWidths=[45 * mm, 60 * mm, 90 * mm],
        rowHeights=[9 * mm] * 3,
        hAlign="LEFT",
    )
    sign.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), font, 9),
                ("FONT", (0, 0), (0, -1), bold, 9),
                ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
                ("LINEBELOW", (1, 0), (1, -1), 0.6, colors.black),
            ]
        )
    )
    story += [Spacer(1, 6 * mm), KeepTogether([sign])]
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=landscape(A4),
        leftMargin=margin,
        rightMargin=margin,
        topMargin=16 * mm,
        bottomMargin=14 * mm,
        title=title,
        author=ctx.utility.name,
    )
    frame = _page_frame(ctx, title, font, margin=margin, page_w=page_w, page_h=page_h)
    doc.build(story, canvasmaker=numbered_canvas(frame))
    return buf.getvalue()


def _page_frame(
    ctx: FormContext, title: str, font: str, *, margin: float, page_w: float, page_h: float
) -> Any:
    """Draws what every page carries: the utility and the title on top, the print date and
    "page N of M" at the bottom (called once the page count is known)."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    def fit(text: str, width: float) -> str:
        while text and stringWidth(text, font, 7) > width:
            text = text[:-2] + "…"
        return text

    def draw(canvas: Any, page: int, pages: int) -> None:
        canvas.saveState()
        canvas.setFont(font, 7)
        half = (page_w - 2 * margin) / 2 - 10
        canvas.drawString(margin, page_h - 9 * 2.8346, fit(ctx.utility.name, half))
        canvas.drawRightString(page_w - margin, page_h - 9 * 2.8346, fit(title, half))
        canvas.drawString(margin, 7 * 2.8346, fit(ctx.printed(), half))
        canvas.drawRightString(page_w - margin, 7 * 2.8346, ctx.page(page, pages))
        canvas.restoreState()

    return draw


def numbered_canvas(draw: Any) -> Any:
    """A ReportLab canvas class that holds every page until the end, so each page can say
    "page N of M"."""
    from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]

    class NumberedCanvas(Canvas):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 - ReportLab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for n, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                draw(self, n, total)
                super().showPage()
            super().save()

    return NumberedCanvas
