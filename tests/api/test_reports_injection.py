"""Department reports with hostile subscriber data, over real HTTP: no XLSX cell is a formula
(read back with openpyxl and unzipped), CSV text that a spreadsheet would run is quoted while
amounts stay plain numbers, and the PDF prints the text literally and keeps it on the page."""

from __future__ import annotations

import csv
import io
import subprocess
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]

from api.reports.config import Signatures
from api.reports.form import FormContext, Requisites
from api.reports.model import Column, Report, Row, Table
from api.reports.render import fit_widths, to_csv, to_pdf, to_xlsx
from api.reports.text import Msg, Words
from api.security import Role
from billing.ledger import post_entry
from suvnet.textsafe import is_formula_like
from tests.api.conftest import User, add_invoice_and_charge, bearer, make_account
from tests.pdf_safety import HOSTILE, check_pdf, squash

FORMULA_NAME = '=HYPERLINK("http://x","click")'
FORMULA_STREET = "@SUM(1+1)*cmd|' /C calc'!A0"
LONG_NAME = "Abdurahmonov " * 12 + "Q" * 120
MM = 72 / 25.4


@pytest.fixture(scope="module")
def hostile(db_url: str) -> dict[str, str]:
    with psycopg.connect(db_url) as conn:
        a1, n1 = make_account(conn, 701, name=FORMULA_NAME, street=FORMULA_STREET, house="1")
        a2, n2 = make_account(conn, 702, name=HOSTILE[1], street=HOSTILE[0], house="2")
        a3, n3 = make_account(conn, 703, name=LONG_NAME, street=HOSTILE[2], house="3")
        a4, n4 = make_account(conn, 704, name="-1+2", street="+Navoiy", house="4")
        for acc, no in ((a1, 1), (a2, 2), (a3, 3), (a4, 4)):
            add_invoice_and_charge(conn, acc, date(2026, 10, 1), 2_000_000, 2.0, f"2026-07{no}")
        post_entry(
            conn,
            account_id=a1,
            kind="adjustment",
            amount_tiyin=-2_150_000,  # October's 20 000 so'm charge and 1 500 more back
            posted_at=datetime(2026, 10, 15, tzinfo=UTC),
            memo="goodwill",
        )
        conn.commit()
    return {"a1": n1, "a2": n2, "a3": n3, "a4": n4}


async def get(client: httpx.AsyncClient, user: User, fmt: str) -> bytes:
    r = await client.get(
        "/api/v1/reports/accounting",
        headers=bearer(user),
        params={"date_from": "2026-10-01", "date_to": "2026-10-31", "format": fmt, "lang": "en"},
    )
    assert r.status_code == 200, r.text
    return r.content


async def test_xlsx_has_no_formula_and_numbers_stay_numbers(
    client: httpx.AsyncClient, users: dict[Role, User], hostile: dict[str, str]
) -> None:
    data = await get(client, users[Role.ACCOUNTANT], "xlsx")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/")]
        assert sheets
        for n in sheets:
            xml = z.read(n).decode()
            assert "<f>" not in xml and "<f " not in xml, n
    wb = load_workbook(io.BytesIO(data))
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    by_value = {c.value: c for c in cells if isinstance(c.value, str)}
    for text in (FORMULA_NAME, FORMULA_STREET, "-1+2", "+Navoiy"):
        cell = by_value[text]  # the text itself, no quote added
        assert cell.data_type == "s" and cell.quotePrefix, text
    ws = wb.active
    header = [c.value for c in next(r for r in ws.iter_rows() if r[0].value == "Account")]
    row = next(r for r in ws.iter_rows() if r[0].value == hostile["a1"])
    assert row[1].value == FORMULA_NAME
    charged = row[header.index("Charged, so'm")]  # 20 000 - 21 500: a negative amount
    assert charged.value == -1500 and charged.data_type == "n"


async def test_csv_text_is_quoted_and_amounts_are_plain(
    client: httpx.AsyncClient, users: dict[Role, User], hostile: dict[str, str]
) -> None:
    data = await get(client, users[Role.ACCOUNTANT], "csv")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    cells = [c for r in rows for c in r]
    assert not [c for c in cells if is_formula_like(c)]
    header = next(r for r in rows if r and r[0] == "Account")
    a1 = next(r for r in rows if r and r[0] == hostile["a1"])
    assert a1[1] == "'" + FORMULA_NAME and a1[4] == "'" + FORMULA_STREET
    assert a1[header.index("Charged, so'm")] == "-1500.00"  # a plain negative number
    a4 = next(r for r in rows if r and r[0] == hostile["a4"])
    assert a4[1] == "'-1+2" and a4[4] == "'+Navoiy"
    assert "Street total: @SUM(1+1)*cmd|' /C calc'!A0" in cells  # starts with a letter


async def test_pdf_prints_the_text_and_keeps_it_on_the_page(
    client: httpx.AsyncClient, users: dict[Role, User], hostile: dict[str, str], tmp_path: Path
) -> None:
    data = await get(client, users[Role.ACCOUNTANT], "pdf")
    check_pdf(
        data,
        tmp_path,
        [FORMULA_NAME, HOSTILE[1], HOSTILE[0], HOSTILE[2]],
        margin_pt=10 * MM,
        name="accounting",
    )
    # the long name wraps over several lines next to other cells: read in the order it is
    # drawn (pdftotext's layout order puts the next cell's first line between its lines)
    assert squash(LONG_NAME) in squash(raw_text(tmp_path / "accounting.pdf"))


def raw_text(path: Path) -> str:
    """The PDF's text in the order it is drawn."""
    return subprocess.run(
        ["pdftotext", "-raw", "-enc", "UTF-8", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def hostile_context() -> FormContext:
    """A form whose utility name, requisites and signatures are hostile text too."""
    return FormContext(
        Words("en"),
        Requisites(HOSTILE[1], inn=FORMULA_NAME, address=HOSTILE[0]),
        Signatures(prepared_by=HOSTILE[2], approved_by="=cmd|' /C calc'!A0"),
        datetime(2026, 12, 2, 7, 30, tzinfo=UTC),
        ZoneInfo("Asia/Tashkent"),
    )


def test_renderers_on_a_report_with_hostile_title_and_filters(tmp_path: Path) -> None:
    cols = [
        Column("name", Msg("Name")),
        Column("street", Msg("Street")),
        Column("sum", Msg("Sum"), "money"),
    ]
    rows = [Row({"name": h, "street": FORMULA_STREET, "sum": -150_000}) for h in HOSTILE]
    rep = Report(
        "x",
        Msg("<font size=80>Title</font>"),
        [Table("t", Msg("=T"), cols, [*rows, Row({"name": "", "sum": -750_000}, 9)])],
        {"street": FORMULA_NAME},
        filters=[(Msg("Street"), FORMULA_NAME)],
    )
    ctx = hostile_context()
    out = list(csv.reader(io.StringIO(to_csv(rep, ctx).decode("utf-8-sig"))))
    assert out[0] == [HOSTILE[1]]
    assert "INN (STIR): " + FORMULA_NAME in out[1]
    assert ["Street: " + FORMULA_NAME] in out  # starts with a letter: nothing to neutralise
    assert ["'=T"] in out
    assert ["Total", "", "-7500.00"] in out
    assert ["Approved", "'=cmd|' /C calc'!A0", "____________________"] in out
    assert not [c for r in out for c in r if is_formula_like(c)]
    wb = load_workbook(io.BytesIO(to_xlsx(rep, ctx)))
    ws = wb.active
    texts = {c.value: c for r in ws.iter_rows() for c in r if isinstance(c.value, str)}
    assert texts["=cmd|' /C calc'!A0"].data_type == "s"
    assert texts["=cmd|' /C calc'!A0"].quotePrefix
    check_pdf(
        to_pdf(rep, ctx),
        tmp_path,
        ["<font size=80>Title</font>", f"Street: {FORMULA_NAME}", *HOSTILE, "=cmd|' /C calc'!A0"],
        margin_pt=10 * MM,
        name="report",
    )


def test_fit_widths() -> None:
    assert fit_widths([10, 20, 30], {2}, 100, 5) == [10, 20, 30]  # fits: unchanged
    # 30 is fixed; 10 keeps its width; the 200 column gets the rest
    assert fit_widths([10, 200, 30], {2}, 100, 5) == [10, 60, 30]
    assert fit_widths([80, 80, 30], {2}, 100, 5) == [35, 35, 30]
    assert fit_widths([80, 80, 95], {2}, 100, 20) == [20, 20, 95]  # the floor
