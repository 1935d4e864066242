"""Layout checks of the printed documents (receipts, slips, invoices, statements): no word
runs off the paper or into the margin, no two words overlap, no word crosses a table's rule
(a column title running into its neighbour, a long address running out of its cell), and
the pages rendered as PNG (pdftoppm) have no ink in the margins.

The words and their boxes come from ``pdftotext -bbox`` (tests/pdf_safety.py); the table
rules from the page's content stream (pypdf), each path mapped through the current
transformation matrix, in the same top-left coordinates as the words."""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from PIL import Image
from pypdf import PdfReader
from pypdf.generic import ContentStream

from tests.pdf_safety import Word, words

Matrix = tuple[float, float, float, float, float, float]
IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


@dataclass(frozen=True)
class Rule:
    """A straight line drawn on a page (top-left coordinates, points)."""

    page: int
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def vertical(self) -> bool:
        return abs(self.x0 - self.x1) < 0.1 and abs(self.y0 - self.y1) > 0.1

    @property
    def horizontal(self) -> bool:
        return abs(self.y0 - self.y1) < 0.1 and abs(self.x0 - self.x1) > 0.1


def _mul(m: Matrix, n: Matrix) -> Matrix:
    """``m`` then ``n`` (PDF row-vector convention: p' = p x m x n)."""
    a, b, c, d, e, f = m
    a2, b2, c2, d2, e2, f2 = n
    return (
        a * a2 + b * c2,
        a * b2 + b * d2,
        c * a2 + d * c2,
        c * b2 + d * d2,
        e * a2 + f * c2 + e2,
        e * b2 + f * d2 + f2,
    )


def _apply(m: Matrix, x: float, y: float) -> tuple[float, float]:
    a, b, c, d, e, f = m
    return a * x + c * y + e, b * x + d * y + f


def rules(pdf: bytes) -> list[Rule]:
    """Every straight stroked line segment (``m``/``l`` paths and ``re`` edges) of every
    page, in pdftotext's top-left coordinates."""
    reader = PdfReader(io.BytesIO(pdf))
    out: list[Rule] = []
    for n, page in enumerate(reader.pages, start=1):
        height = float(page.mediabox.height)
        ctm: Matrix = IDENTITY
        stack: list[Matrix] = []
        path: list[tuple[float, float, float, float]] = []
        cur: tuple[float, float] | None = None
        contents = page.get_contents()
        if contents is None:
            continue
        for operands, op in ContentStream(contents, reader).operations:
            args = [float(v) for v in operands if isinstance(v, int | float)]
            if op == b"q":
                stack.append(ctm)
            elif op == b"Q":
                ctm = stack.pop() if stack else IDENTITY
            elif op == b"cm" and len(args) == 6:
                ctm = _mul(cast(Matrix, tuple(args)), ctm)
            elif op == b"m" and len(args) == 2:
                cur = _apply(ctm, *args)
            elif op == b"l" and len(args) == 2 and cur is not None:
                nxt = _apply(ctm, *args)
                path.append((*cur, *nxt))
                cur = nxt
            elif op == b"re" and len(args) == 4:
                x, y, w, h = args
                box = ((0, 0), (w, 0), (w, h), (0, h))
                corners = [_apply(ctm, x + dx, y + dy) for dx, dy in box]
                path += [(*corners[i], *corners[(i + 1) % 4]) for i in range(4)]
            elif op in (b"S", b"s", b"B", b"b", b"B*", b"b*"):
                out += [Rule(n, x0, height - y0, x1, height - y1) for x0, y0, x1, y1 in path]
                path, cur = [], None
            elif op in (b"n", b"f", b"F", b"f*"):
                path, cur = [], None
    return out


def _crosses(w: Word, r: Rule, slack: float = 0.8) -> bool:
    if r.page != w.page:
        return False
    if r.vertical:
        top, bottom = sorted((r.y0, r.y1))
        return (
            w.x_min + slack < r.x0 < w.x_max - slack
            and min(bottom, w.y_max) - max(top, w.y_min) > slack
        )
    if r.horizontal:
        left, right = sorted((r.x0, r.x1))
        return (
            w.y_min + slack < r.y0 < w.y_max - slack
            and min(right, w.x_max) - max(left, w.x_min) > slack
        )
    return False


def _overlap(a: Word, b: Word, slack: float = 0.6) -> bool:
    if a.page != b.page:
        return False
    dx = min(a.x_max, b.x_max) - max(a.x_min, b.x_min)
    dy = min(a.y_max, b.y_max) - max(a.y_min, b.y_min)
    return dx > slack and dy > max(slack, 0.35 * min(a.y_max - a.y_min, b.y_max - b.y_min))


def layout_problems(
    pdf: bytes, tmp_path: Path, *, margin_pt: float, name: str = "doc"
) -> list[str]:
    """Every layout fault found (empty: the document lays out cleanly). ``margin_pt``: the
    left and right margins (and at least a quarter of it at the top and the bottom) that
    must stay blank."""
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(pdf)
    pages, ws = words(path)
    found: list[str] = []
    for w in ws:
        width, height = pages[w.page - 1]
        if w.x_min < margin_pt - 1 or w.x_max > width - margin_pt + 1:
            found.append(f"{name}: {w.text!r} in the side margin ({w.x_min:.0f}-{w.x_max:.0f})")
        if w.y_min < margin_pt / 4 - 1 or w.y_max > height - margin_pt / 4 + 1:
            found.append(f"{name}: {w.text!r} off the top or bottom ({w.y_min:.0f})")
    for i, a in enumerate(ws):
        found += [
            f"{name}: {a.text!r} overlaps {b.text!r} on page {a.page}"
            for b in ws[i + 1 :]
            if _overlap(a, b)
        ]
    drawn = rules(pdf)
    found += [
        f"{name}: {w.text!r} crosses a table rule on page {w.page}"
        for w in ws
        if any(_crosses(w, r) for r in drawn)
    ]
    found += ink_in_margins(path, tmp_path, pages, margin_pt=margin_pt, name=name)
    return found


def png_pages(path: Path, tmp_path: Path, name: str, dpi: int = 60) -> list[Path]:
    """Every page of the PDF as a PNG (pdftoppm), in page order."""
    subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-png", str(path), str(tmp_path / f"{name}-png")],
        check=True,
        timeout=120,
    )
    return sorted(tmp_path.glob(f"{name}-png-*.png"))


def ink_in_margins(
    path: Path, tmp_path: Path, pages: list[tuple[float, float]], *, margin_pt: float, name: str
) -> list[str]:
    """Pages whose rendered image has ink in the outer half of a side margin."""
    found: list[str] = []
    for n, png in enumerate(png_pages(path, tmp_path, name), start=1):
        with Image.open(png) as img:
            grey = img.convert("L")
            w_px, h_px = grey.size
            strip = max(1, int(w_px * margin_pt / 2 / pages[n - 1][0]))
            for box, side in (
                ((0, 0, strip, h_px), "left"),
                ((w_px - strip, 0, w_px, h_px), "right"),
            ):
                darkest, _ = cast(tuple[int, int], grey.crop(box).getextrema())
                if darkest <= 240:
                    found.append(f"{name}: ink in the {side} margin of page {n}")
    return found


def word_boxes(pdf: bytes, tmp_path: Path, name: str = "doc") -> list[Word]:
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(pdf)
    return words(path)[1]


def line_of(ws: list[Word], text: str) -> list[Word]:
    """The words printed on the same line as the first word equal to ``text``."""
    first = next(w for w in ws if w.text == text)
    mid = (first.y_min + first.y_max) / 2
    return sorted(
        (w for w in ws if w.page == first.page and w.y_min <= mid <= w.y_max),
        key=lambda w: w.x_min,
    )


def joined(ws: list[Word]) -> str:
    return " ".join(w.text for w in ws)
