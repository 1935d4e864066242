"""suvnet.textsafe (formula and markup neutralisation) and suvnet.textfile (encodings), pure:
spreadsheets read back with openpyxl and unzipped, paragraphs built with ReportLab."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook  # type: ignore[import-untyped]
from reportlab.lib.styles import getSampleStyleSheet  # type: ignore[import-untyped]
from reportlab.platypus import Paragraph, SimpleDocTemplate  # type: ignore[import-untyped]

from suvnet.textfile import (
    FileEncodingError,
    decode_text,
    guess_encoding,
    normalise_encoding,
)
from suvnet.textsafe import (
    csv_cell,
    csv_row,
    csv_text,
    csv_uncell,
    is_formula_like,
    rl_text,
    xlsx_append,
)

FORMULAS = [
    '=HYPERLINK("http://x","click")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
    "  =cmd|' /C calc'!A0",
    "＝1+1",
    "＋1",
    "－1",
    "＠A1",
    "-",
    "=",
]
HARMLESS = [
    "Aliyev Sardor",
    "Bog'bon & Co <b>",
    "a=b",
    "",
    " x",
    "-1500",
    "-1500.00",
    "+998712345678",
    "1,5",
    "-1e5",
    "#N/A",
]


@pytest.mark.parametrize("text", FORMULAS)
def test_formula_text_gets_a_quote_and_comes_back(text: str) -> None:
    assert is_formula_like(text)
    assert csv_text(text) == "'" + text
    assert csv_cell(text) == "'" + text
    assert csv_uncell(csv_text(text)) == text


@pytest.mark.parametrize("text", HARMLESS)
def test_other_text_and_plain_numbers_are_unchanged(text: str) -> None:
    assert not is_formula_like(text)
    assert csv_text(text) == text
    assert csv_uncell(text) == text


def test_numbers_stay_numbers_in_csv() -> None:
    row = csv_row([-1500, -1500.5, Decimal("-3.25"), None, True, "=1", "-x"])
    assert row[:5] == [-1500, -1500.5, Decimal("-3.25"), None, True]
    assert row[5:] == ["'=1", "'-x"]
    buf = io.StringIO()
    csv.writer(buf).writerow(row)
    assert buf.getvalue() == "-1500,-1500.5,-3.25,,True,'=1,'-x\r\n"


def test_xlsx_text_cells_are_never_formulas() -> None:
    wb = Workbook()
    ws = wb.active
    texts = [*FORMULAS, "#N/A", "ctl\x01\x07x"]
    xlsx_append(ws, ["title"])
    xlsx_append(ws, [*texts, -1500, -1500.5, None, 7])
    out = io.BytesIO()
    wb.save(out)
    data = out.getvalue()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet and "<f " not in sheet
    assert 't="e"' not in sheet  # '#N/A' is text, not an error value
    back = load_workbook(io.BytesIO(data)).active
    cells = next(iter(back.iter_rows(min_row=2, max_row=2)))
    for text, cell in zip(texts, cells, strict=False):
        assert cell.data_type == "s", (text, cell.data_type)
        # control characters XML forbids are replaced; XML itself reads a CR as a LF
        expected = text.replace("\x01", "\ufffd").replace("\x07", "\ufffd")
        assert cell.value == expected.replace("\r", "\n")
        assert bool(cell.quotePrefix) == is_formula_like(text)
    numbers = cells[len(texts) : len(texts) + 4]
    assert [c.value for c in numbers] == [-1500, -1500.5, None, 7]
    assert numbers[0].data_type == "n" and numbers[1].data_type == "n"


HOSTILE_MARKUP = [
    '<img src="/etc/passwd"/>',
    "<font size=80>BIG</font>",
    '<a href="javascript:alert(1)">x</a>',
    "&amp;",
    "Bog'bon & Co <b>",
    "<img src=x onerror=alert(1)>",
    "ctl\x01x",
]


@pytest.mark.parametrize("text", HOSTILE_MARKUP)
def test_rl_text_prints_markup_literally(text: str) -> None:
    para = Paragraph(rl_text(text), getSampleStyleSheet()["Normal"])
    plain = "".join(getattr(f, "text", "") for f in para.frags)
    assert plain == text.replace("\x01", "\ufffd")
    assert not any(getattr(f, "link", None) for f in para.frags)  # no <a href>
    assert {f.fontSize for f in para.frags} == {10}  # no <font size>
    assert not any(getattr(f, "cbDefn", None) for f in para.frags)  # no <img>
    SimpleDocTemplate(io.BytesIO()).build([para])  # builds (the raw text would not, for some)
    assert rl_text(None) == ""


# ------------------------------------------------------------------ encodings
SAMPLE = "legacy_id;name;street\n1;Каримов Анвар;Навоий улица\n2;Юсупова Дилноза;Бобур\n"


@pytest.mark.parametrize("enc", ["cp1251", "cp866"])
def test_a_cyrillic_file_is_named(enc: str) -> None:
    data = SAMPLE.encode(enc)
    assert guess_encoding(data) == enc
    with pytest.raises(FileEncodingError) as err:
        decode_text(data, "accounts.csv")
    msg = str(err.value)
    assert msg.startswith("accounts.csv: the file is not UTF-8 (byte 0x")
    assert "on line 2" in msg and f"--encoding {enc}" in msg and "save it as UTF-8" in msg
    assert decode_text(data, "accounts.csv", encoding=enc) == (SAMPLE, enc)


def test_bom_decides_and_utf16_without_bom_is_named() -> None:
    assert decode_text(b"\xef\xbb\xbf" + SAMPLE.encode(), "a") == (SAMPLE, "utf-8-sig")
    assert decode_text(SAMPLE.encode("utf-16"), "a") == (SAMPLE, "utf-16")
    # a BOM wins over a wrong --encoding
    assert decode_text(SAMPLE.encode("utf-16"), "a", encoding="cp1251")[0] == SAMPLE
    with pytest.raises(FileEncodingError, match="UTF-16 little-endian") as err:
        decode_text(SAMPLE.encode("utf-16-le"), "a")  # valid UTF-8 too, full of zero bytes
    assert "--encoding utf-16-le" in str(err.value)


def test_latin_text_is_not_taken_for_cyrillic_and_bad_names_are_refused() -> None:
    assert guess_encoding("name\nJosé Müller\n".encode("cp1252")) == "cp1252"
    assert guess_encoding("ИВАНОВ ИВАН\n".encode("cp1251")) == "cp1251"
    with pytest.raises(FileEncodingError, match="unknown encoding 'klingon'"):
        normalise_encoding("klingon")
    with pytest.raises(FileEncodingError, match=r"not ascii: byte 0xD0 on line 2"):
        decode_text("name\nКаримов\n".encode(), "a", encoding="ascii")
    # a fallback (1C files: Windows-1251) reads what is not UTF-8, without --encoding
    assert decode_text(SAMPLE.encode("cp1251"), "", fallback="cp1251")[0] == SAMPLE
    # no option to name: the message says only how to save the file
    with pytest.raises(FileEncodingError) as err:
        decode_text(SAMPLE.encode("cp1251"), "", option=None)
    assert re.match(r"the file is not UTF-8 \(byte 0x\w\w on line 2\)", str(err.value))
    assert "--encoding" not in str(err.value)
