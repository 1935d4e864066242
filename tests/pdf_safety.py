"""Checks that a PDF built from hostile text is safe: the text is printed literally
(pdftotext), there are no links, scripts, actions or images (pypdf), and no word runs off
the page (pdftotext -bbox; the first page rendered with pdftoppm has a blank right margin)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from PIL import Image
from pypdf import PdfReader
from pypdf.generic import DictionaryObject, IndirectObject

HOSTILE = [
    '<img src="/etc/passwd"/>',
    "<font size=80>BIG</font>",
    '<a href="javascript:alert(1)">x</a>',
    "&amp;",
    "Bog'bon & Co <b>",
]
"""Names and streets that ReportLab would read as markup if they were not escaped."""


@dataclass(frozen=True)
class Word:
    page: int
    text: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float


def squash(text: str) -> str:
    """Text without any whitespace: lines wrap anywhere, the characters stay in order."""
    return re.sub(r"\s+", "", text)


def _poppler() -> None:
    for tool in ("pdftotext", "pdftoppm"):
        assert shutil.which(tool), (
            f"{tool} is missing: install poppler-utils (apt install poppler-utils)"
        )


def pdf_text(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def words(path: Path) -> tuple[list[tuple[float, float]], list[Word]]:
    """(page sizes, every word with its box) from ``pdftotext -bbox``."""
    html = subprocess.run(
        ["pdftotext", "-bbox", "-enc", "UTF-8", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    pages: list[tuple[float, float]] = []
    out: list[Word] = []
    for m in re.finditer(
        r'<page width="([\d.]+)" height="([\d.]+)">|<word xMin="([\d.-]+)" yMin="([\d.-]+)" '
        r'xMax="([\d.-]+)" yMax="([\d.-]+)">([^<]*)</word>',
        html,
    ):
        if m.group(1):
            pages.append((float(m.group(1)), float(m.group(2))))
        else:
            x0, y0, x1, y1 = (float(m.group(i)) for i in range(3, 7))
            out.append(Word(len(pages), m.group(7), x0, y0, x1, y1))
    return pages, out


def _resolve(obj: object) -> object:
    return obj.get_object() if isinstance(obj, IndirectObject) else obj


def active_content(pdf: bytes) -> list[str]:
    """Links, scripts, actions and images found in the PDF (each as a short description)."""
    reader = PdfReader(io.BytesIO(pdf))
    root = _resolve(reader.trailer["/Root"])
    assert isinstance(root, DictionaryObject)
    found = [f"catalog {key}" for key in ("/OpenAction", "/AA") if key in root]
    names = _resolve(root.get("/Names"))
    if isinstance(names, DictionaryObject) and "/JavaScript" in names:
        found.append("catalog /JavaScript")
    for n, page in enumerate(reader.pages, start=1):
        for annot in _resolve(page.get("/Annots")) or []:  # type: ignore[attr-defined]
            a = _resolve(annot)
            assert isinstance(a, DictionaryObject)
            found.append(f"page {n} annotation {a.get('/Subtype')} {a.get('/A')}")
        res = _resolve(page.get("/Resources"))
        xobjects = _resolve(res.get("/XObject")) if isinstance(res, DictionaryObject) else None
        if isinstance(xobjects, DictionaryObject):
            for name, x in xobjects.items():
                xo = _resolve(x)
                if isinstance(xo, DictionaryObject) and xo.get("/Subtype") == "/Image":
                    found.append(f"page {n} image {name}")
    found += [
        f"raw {m.decode()}" for m in (b"/URI", b"/JavaScript", b"/JS ", b"/Launch") if m in pdf
    ]
    return found


def check_pdf(
    pdf: bytes, tmp_path: Path, literals: list[str], *, margin_pt: float, name: str = "doc"
) -> str:
    """Assert the PDF is safe (see the module doc); return its text."""
    _poppler()
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(pdf)
    text = pdf_text(path)
    flat = squash(text)
    for lit in literals:
        assert squash(lit) in flat, f"{lit!r} is not printed literally in {name}"
    assert active_content(pdf) == [], name
    pages, ws = words(path)
    assert pages and ws
    for w in ws:
        width, height = pages[w.page - 1]
        assert w.x_min >= margin_pt - 1 and w.x_max <= width - margin_pt + 1, (name, w)
        assert w.y_min >= 0 and w.y_max <= height, (name, w)
        assert w.y_max - w.y_min < 30, (name, w)  # no 80-point letters
    # the first page as an image: nothing drawn in the outer half of the right margin
    subprocess.run(
        ["pdftoppm", "-r", "60", "-f", "1", "-l", "1", "-png", str(path), str(tmp_path / name)],
        check=True,
        timeout=60,
    )
    png = next(tmp_path.glob(f"{name}-*1.png"))
    with Image.open(png) as img:
        grey = img.convert("L")
        w_px, h_px = grey.size
        strip = int(w_px * margin_pt / 2 / pages[0][0])
        box = grey.crop((w_px - strip, 0, w_px, h_px))
        darkest, _ = cast(tuple[int, int], box.getextrema())  # a grey image: (min, max)
        assert darkest > 240, f"{name}: ink in the right margin"
    return text
