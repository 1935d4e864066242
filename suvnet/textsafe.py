"""Untrusted text made safe for where it goes: spreadsheet cells (CSV, XLSX) and ReportLab
markup (PDF). Pure functions, no I/O; every exporter of the project goes through them.

Spreadsheets (formula injection, OWASP "CSV injection"): a cell whose text starts with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return (or their full-width forms ``＝＋－＠``, which
some spreadsheet programs also accept) is run as a formula when the file is opened. So:

* :func:`csv_cell` prefixes such text with a single quote ``'`` (the spreadsheet then shows
  the text; the quote is visible, as OWASP recommends). Numbers (``int``, ``float``,
  ``Decimal``) are never touched, and neither is text that is only a plain number such as
  ``-1500.00`` or ``+998901234567``: a number cannot carry a formula.
* :func:`xlsx_append` writes a row to an openpyxl worksheet with every text cell stored as a
  string (data type ``s``: openpyxl never writes a ``<f>`` formula or an error cell for it)
  and marks dangerous text with Excel's own "quote prefix" style, so the cell shows exactly
  the text and stays text when someone edits it. Numbers stay numeric cells.

PDF: ReportLab's ``Paragraph`` reads its text as XML-like markup (``<font>``, ``<a href>``,
``<img src>``...). :func:`rl_text` escapes ``& < > " '`` so every untrusted value is shown
literally and can never open a file, add a link or change the layout.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

FORMULA_STARTS = frozenset("=+-@\t\r\n＝＋－＠")
"""First characters that make a spreadsheet cell a formula (or may, after a space)."""

_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)(?:[eE][+-]?[0-9]+)?")
# characters XML 1.0 forbids; openpyxl refuses a cell that has one (IllegalCharacterError)
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_RL_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})

Number = int | float | Decimal


def is_formula_like(text: str) -> bool:
    """True when a spreadsheet could read ``text`` as a formula (see the module doc)."""
    if not text:
        return False
    if _PLAIN_NUMBER.fullmatch(text):
        return False
    first = text[0]
    if first in FORMULA_STARTS:
        return True
    stripped = text.lstrip()
    return bool(stripped) and stripped[0] in FORMULA_STARTS


def csv_text(text: str) -> str:
    """``text`` for a CSV cell: a leading ``'`` when it could be read as a formula."""
    return "'" + text if is_formula_like(text) else text


def csv_cell(value: Any) -> Any:
    """A value for ``csv.writer``: numbers and ``None`` unchanged, text neutralised.

    ``bool`` is written as text by ``csv`` anyway (``True``) and is left alone; any other
    object is turned into text first (``str(value)``) and then neutralised."""
    if value is None or isinstance(value, bool | Number):
        return value
    return csv_text(value if isinstance(value, str) else str(value))


def csv_row(values: Iterable[Any]) -> list[Any]:
    """Every value of a row through :func:`csv_cell`."""
    return [csv_cell(v) for v in values]


def csv_uncell(text: str) -> str:
    """The inverse of :func:`csv_text`: drop the ``'`` it added (for importing an export).
    Exact for every text that does not itself start with ``'`` and a formula character."""
    if text.startswith("'") and is_formula_like(text[1:]):
        return text[1:]
    return text


def sql_csv_text(column: str) -> str:
    """A PostgreSQL expression computing :func:`csv_text` of ``column``, for exports written
    by ``COPY ... TO STDOUT (FORMAT csv)``. ``column`` is trusted SQL (a column name)."""
    escapes = {"\t": "\\t", "\r": "\\r", "\n": "\\n"}
    starts = "".join(escapes.get(c, c) for c in sorted(FORMULA_STARTS - {"-"})) + "-"
    return (
        f"(CASE WHEN {column} ~ E'^[[:space:]]*[{starts}]' "
        f"AND {column} !~ '^{_PLAIN_NUMBER.pattern}$' "
        f"THEN '''' || {column} ELSE {column} END)"
    )


def xlsx_value(value: Any) -> Any:
    """A value openpyxl accepts: text without the control characters XML forbids (a name
    with one would make openpyxl raise); numbers, dates and ``None`` unchanged."""
    if isinstance(value, str):
        return _XML_ILLEGAL.sub("\ufffd", value)
    return value


def xlsx_append(ws: Any, values: Sequence[Any]) -> None:
    """Append a row to an openpyxl worksheet; text cells are strings, never formulas.

    Each text cell gets data type ``s`` (openpyxl would make ``=...`` a formula and
    ``#N/A`` an error value), and text that starts like a formula also gets the
    ``quotePrefix`` style (what Excel stores for text typed after an apostrophe)."""
    cleaned = [xlsx_value(v) for v in values]
    ws.append(cleaned)
    if all(v is None for v in cleaned):
        return
    row = ws.max_row
    for col, v in enumerate(cleaned, start=1):
        if isinstance(v, str):
            cell = ws.cell(row=row, column=col)
            cell.data_type = "s"
            if is_formula_like(v):
                cell.quotePrefix = True


def rl_text(value: Any) -> str:
    """Untrusted text for a ReportLab ``Paragraph``: markup characters escaped, control
    characters (which the markup parser refuses) replaced. ``None`` becomes ``''``."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return _XML_ILLEGAL.sub("\ufffd", text).translate(_RL_ESCAPES)
