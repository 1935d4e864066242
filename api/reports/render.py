"""Report renderers: JSON, CSV, XLSX (openpyxl) and PDF (reportlab). Money is shown in so'm
(JSON keeps integer tiyin).

openpyxl and reportlab are imported inside the two functions that use them, for start-up
time: together they take about 0.35 s to import, a third of the API's start-up, and most
API processes never render a spreadsheet or a PDF report.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

from api.i18n import format_som
from api.reports.model import Column, Report, Row, Table
from suvnet.textsafe import csv_row, csv_text, rl_text, xlsx_append

LEVEL_LABEL = {1: "Street total", 2: "Mahalla total", 3: "District total", 9: "Total"}


def _plain(col: Column, value: Any) -> Any:
    """A cell value for CSV/XLSX: money in so'm (2 decimals), dates as dates."""
    if value is None:
        return None
    if col.kind == "money":
        return round(int(value) / 100, 2)
    if col.kind == "pct":
        return round(float(value), 2)
    if col.kind == "float":
        return round(float(value), 3)
    return value


def _label(table: Table, row: Row) -> dict[str, Any]:
    vals = dict(row.values)
    if row.level:
        first = table.columns[0].key
        prefix = LEVEL_LABEL.get(row.level, "Total")
        name = vals.get(first) or ""
        vals[first] = f"{prefix}: {name}" if name else prefix
    return vals


def to_json(report: Report) -> dict[str, Any]:
    """The report as a JSON document: money as integer tiyin, each row with its level."""
    return {
        "name": report.name,
        "title": report.title,
        "params": report.params,
        "tables": [
            {
                "title": t.title,
                "columns": [asdict(c) for c in t.columns],
                "rows": [{"level": r.level, **r.values} for r in t.rows],
            }
            for t in report.tables
        ],
    }


def _header(col: Column) -> str:
    return f"{col.label} (so'm)" if col.kind == "money" else col.label


def to_csv(report: Report) -> bytes:
    """One CSV block per table, separated by a blank line; UTF-8 with BOM for Excel.

    Text that a spreadsheet would run as a formula gets a leading ``'`` (suvnet.textsafe);
    amounts and counts are written as plain numbers."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(csv_row([report.title]))
    for k, v in report.params.items():
        w.writerow(csv_row([k, v]))
    for t in report.tables:
        w.writerow([])
        w.writerow(csv_row([t.title]))
        w.writerow(csv_row(["level", *(_header(c) for c in t.columns)]))
        for r in t.rows:
            vals = _label(t, r)
            w.writerow([r.level, *(_csv_cell(c, vals.get(c.key)) for c in t.columns)])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _csv_cell(col: Column, value: Any) -> str:
    v = _plain(col, value)
    if v is None:
        return ""
    if col.kind == "money":
        return f"{v:.2f}"
    if isinstance(v, date | datetime):
        return v.isoformat()
    if isinstance(v, int | float) and col.kind != "text":
        return str(v)
    return csv_text(str(v))


def to_xlsx(report: Report) -> bytes:
    """One sheet per table. Every text cell is stored as a string (never a formula, see
    suvnet.textsafe.xlsx_append); amounts are numeric cells in so'm."""
    from openpyxl import Workbook  # type: ignore[import-untyped]
    from openpyxl.styles import Font, PatternFill  # type: ignore[import-untyped]

    wb = Workbook()
    first = True
    for t in report.tables:
        ws = wb.active if first else wb.create_sheet()
        assert ws is not None
        first = False
        ws.title = t.title[:31].replace("/", "-") or "report"
        xlsx_append(ws, [report.title])
        ws["A1"].font = Font(bold=True, size=13)
        for k, v in report.params.items():
            xlsx_append(ws, [k, v])
        ws.append([])
        xlsx_append(ws, [_header(c) for c in t.columns])
        header_row = ws.max_row
        for cell in ws[header_row]:
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="DDEBF7")
        for r in t.rows:
            vals = _label(t, r)
            xlsx_append(ws, [_plain(c, vals.get(c.key)) for c in t.columns])
            if r.level:
                for cell in ws[ws.max_row]:
                    cell.font = Font(bold=True)
        for i, c in enumerate(t.columns, start=1):
            letter = ws.cell(row=header_row, column=i).column_letter
            fmt = {
                "money": "#,##0.00",
                "pct": "0.00",
                "float": "0.000",
                "int": "0",
                "date": "yyyy-mm-dd",
            }.get(c.kind)
            if fmt:
                for row in ws.iter_rows(min_row=header_row + 1, min_col=i, max_col=i):
                    for cell in row:
                        cell.number_format = fmt
            ws.column_dimensions[letter].width = max(10, min(40, len(_header(c)) + 4))
        ws.freeze_panes = ws.cell(row=header_row + 1, column=1)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _pdf_cell(col: Column, value: Any) -> str:
    if value is None:
        return ""
    if col.kind == "money":
        return format_som(int(value))
    if col.kind == "pct":
        return f"{float(value):.1f} %"
    if col.kind == "float":
        return f"{float(value):.2f}"
    if isinstance(value, date | datetime):
        return value.strftime("%d.%m.%Y")
    return str(value)


NUMERIC_KINDS = ("money", "int", "float", "pct", "date")
CELL_PADDING = 12.0  # ReportLab's default left + right cell padding, points


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


def to_pdf(report: Report) -> bytes:
    """Landscape A4 tables; a DejaVu font when the system has one (Cyrillic names).

    Every text that comes from the data (names, streets, the report's filters) is escaped
    for ReportLab's markup (suvnet.textsafe.rl_text). When a table is wider than the page,
    its text columns are narrowed and their cells wrap, so nothing runs off the page."""
    from reportlab.lib import colors  # type: ignore[import-untyped]
    from reportlab.lib.pagesizes import A4, landscape  # type: ignore[import-untyped]
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet  # type: ignore[import-untyped]
    from reportlab.lib.units import mm  # type: ignore[import-untyped]
    from reportlab.pdfbase.pdfmetrics import stringWidth  # type: ignore[import-untyped]
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, TableStyle  # type: ignore[import-untyped]
    from reportlab.platypus import Table as PdfTable

    font, bold = _fonts()
    styles = getSampleStyleSheet()
    for s in styles.byName.values():
        s.fontName = font
    cell_style = {
        False: ParagraphStyle("cell", fontName=font, fontSize=7, leading=8.5),
        True: ParagraphStyle("cell-bold", fontName=bold, fontSize=7, leading=8.5),
    }
    page_w, _ = landscape(A4)
    avail = page_w - 20 * mm
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=landscape(A4),
        leftMargin=10 * mm,
        rightMargin=10 * mm,
        topMargin=10 * mm,
        bottomMargin=10 * mm,
        title=report.title,
    )
    story: list[Any] = [Paragraph(rl_text(report.title), styles["Title"])]
    params = ", ".join(f"{k}: {v}" for k, v in report.params.items())
    if params:
        story.append(Paragraph(rl_text(params), styles["Normal"]))
    for t in report.tables:
        story += [Spacer(1, 4 * mm), Paragraph(rl_text(t.title), styles["Heading2"])]
        data: list[list[Any]] = [[_header(c) for c in t.columns]]
        bold_rows = [0]
        for r in t.rows:
            vals = _label(t, r)
            data.append([_pdf_cell(c, vals.get(c.key)) for c in t.columns])
            if r.level:
                bold_rows.append(len(data) - 1)
        if len(data) == 1:
            data.append(["-"] + [""] * (len(t.columns) - 1))
        natural = [
            max(stringWidth(str(row[i]), bold, 7) for row in data) + CELL_PADDING
            for i in range(len(t.columns))
        ]
        fixed = {i for i, c in enumerate(t.columns) if c.kind in NUMERIC_KINDS}
        widths = fit_widths(natural, fixed, avail, 15 * mm)
        if widths != natural:  # narrowed text columns: their cells wrap
            for n, row in enumerate(data):
                for i in range(len(row)):
                    if i not in fixed and widths[i] < natural[i]:
                        row[i] = Paragraph(rl_text(row[i]), cell_style[n in bold_rows])
        tbl = PdfTable(data, colWidths=widths, repeatRows=1)
        style = [
            ("FONT", (0, 0), (-1, -1), font, 7),
            ("FONT", (0, 0), (-1, 0), bold, 7),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#DDEBF7")),
            ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
        for i, c in enumerate(t.columns):
            if c.kind in ("money", "int", "float", "pct"):
                style.append(("ALIGN", (i, 1), (i, -1), "RIGHT"))
        style += [("FONT", (0, r), (-1, r), bold, 7) for r in bold_rows[1:]]
        tbl.setStyle(TableStyle(style))
        story.append(tbl)
    doc.build(story)
    return buf.getvalue()


def _fonts() -> tuple[str, str]:
    from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
    from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]

    for regular, bold in (
        (
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        ),
    ):
        if Path(regular).exists() and Path(bold).exists():
            if "SuvnetSans" not in pdfmetrics.getRegisteredFontNames():
                pdfmetrics.registerFont(TTFont("SuvnetSans", regular))
                pdfmetrics.registerFont(TTFont("SuvnetSans-Bold", bold))
            return "SuvnetSans", "SuvnetSans-Bold"
    return "Helvetica", "Helvetica-Bold"
