"""Route-map sheets as PDF (ReportLab, offline): draws the pages that :func:`assets.sheets.plan`
laid out, with a TTF font that has Latin and Cyrillic letters.

Text is drawn with the canvas's ``drawString``, which prints its text literally (ReportLab
reads markup only in a ``Paragraph``): an asset id such as ``<b>V-1</b>`` is printed as it
is. Characters a PDF cannot carry (control characters) are replaced first
(:func:`suvnet.textsafe.xlsx_value`, the same cleaning the spreadsheets get)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from assets.outages import fonts
from assets.sheets import Item, Line, Measure, Rect, SheetPage, Symbol
from suvnet.textsafe import xlsx_value

SYMBOL_COLOURS = {
    "valve": ("#1c2430", "#ffffff"),
    "prv": ("#8e44ad", "#ffffff"),
    "hydrant": ("#1c2430", "#c0221b"),
    "manhole": ("#7a4a1e", "#ffffff"),
    "meter_chamber": ("#2a9d3c", "#ffffff"),
}


def measure() -> Measure:
    """The width function of the font the sheets are printed with."""
    from reportlab.pdfbase.pdfmetrics import stringWidth  # type: ignore[import-untyped]

    regular, bold_font = fonts()

    def width(text: str, size: float, bold: bool = False) -> float:
        return float(stringWidth(clean(text), bold_font if bold else regular, size))

    return width


def clean(text: str) -> str:
    return str(xlsx_value(text))


def _draw(c: Any, item: Item, regular: str, bold: str) -> None:
    from reportlab.lib.colors import HexColor  # type: ignore[import-untyped]

    if isinstance(item, Line):
        c.setStrokeColor(HexColor(item.colour))
        c.setLineWidth(item.width)
        c.setDash(list(item.dash) if item.dash else [])
        path = c.beginPath()
        path.moveTo(*item.points[0])
        for p in item.points[1:]:
            path.lineTo(*p)
        c.drawPath(path, stroke=1, fill=0)
        c.setDash([])
    elif isinstance(item, Rect):
        if item.fill:
            c.setFillColor(HexColor(item.fill))
        if item.stroke:
            c.setStrokeColor(HexColor(item.stroke))
            c.setLineWidth(item.width)
        c.rect(item.x, item.y, item.w, item.h, stroke=1 if item.stroke else 0,
               fill=1 if item.fill else 0)  # fmt: skip
    elif isinstance(item, Symbol):
        _symbol(c, item)
    else:
        c.setFillColor(HexColor(item.colour))
        c.setFont(bold if item.bold else regular, item.size)
        c.drawString(item.x, item.y, clean(item.text))


def _symbol(c: Any, s: Symbol) -> None:
    from reportlab.lib.colors import HexColor

    stroke, fill = SYMBOL_COLOURS.get(s.kind, ("#333333", "#333333"))
    c.setLineWidth(0.6)
    c.setStrokeColor(HexColor(stroke))
    c.setFillColor(HexColor(fill))
    r = s.r
    if s.kind in ("valve", "prv"):  # a bow tie, the drawing office's valve
        p = c.beginPath()
        p.moveTo(s.x - r, s.y - r * 0.75)
        p.lineTo(s.x + r, s.y + r * 0.75)
        p.lineTo(s.x + r, s.y - r * 0.75)
        p.lineTo(s.x - r, s.y + r * 0.75)
        p.close()
        c.drawPath(p, stroke=1, fill=1)
    elif s.kind == "meter_chamber":
        c.rect(s.x - r * 0.8, s.y - r * 0.8, r * 1.6, r * 1.6, stroke=1, fill=1)
    elif s.kind == "manhole":
        c.circle(s.x, s.y, r, stroke=1, fill=1)
        c.circle(s.x, s.y, r * 0.45, stroke=1, fill=0)
    else:
        c.circle(s.x, s.y, r, stroke=1, fill=1)


def render(pages: Sequence[SheetPage], *, title: str = "") -> bytes:
    """The pages as one PDF."""
    from reportlab.pdfgen.canvas import Canvas  # type: ignore[import-untyped]

    regular, bold = fonts()
    out = io.BytesIO()
    size = pages[0].size if pages else (842.0, 595.0)
    c = Canvas(out, pagesize=size, pageCompression=1)
    c.setTitle(clean(title))
    c.setAuthor("suvnet")
    for page in pages:
        c.setPageSize(page.size)
        fx, fy, fw, fh = page.frame
        c.saveState()
        p = c.beginPath()
        p.rect(fx, fy, fw, fh)
        c.clipPath(p, stroke=0, fill=0)
        for item in page.map_items:
            _draw(c, item, regular, bold)
        c.restoreState()
        for item in page.panel_items:
            _draw(c, item, regular, bold)
        c.showPage()
    c.save()
    return out.getvalue()
