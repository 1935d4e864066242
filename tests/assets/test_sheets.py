"""Route-map sheets: laid out (pure), printed (ReportLab), then read back as a person would:
every word inside the frame or the panel, none over another or under a line, no ink in the
margins (pdftotext -bbox, pdftoppm; tests/pdf_layout.py). The PNGs are written to
$SUVNET_SCREENSHOTS (else the test's folder) to be looked at."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import shapely

from assets.geo import local_metres
from assets.sheet_pdf import measure, render
from assets.sheets import PAPERS, Feature, SheetError, SheetTexts, choose_scale, plan, wrap
from tests.pdf_layout import layout_problems, png_pages
from tests.pdf_safety import HOSTILE, pdf_text, squash

LON0, LAT0 = 71.60, 40.46
MX, MY = local_metres(LON0, LAT0)
TEXTS = SheetTexts(
    utility="Yangiobod suv ta'minoti",
    title="Mustaqillik ko'chasi: suv quvurlari",
    date="01.06.2026",
    sheet="Sheet %(n)s of %(of)s",
    scale="Scale 1:%(scale)s",
    legend={
        "legend": "Legend",
        "pipe": "water pipe (id, diameter, material)",
        "sewer": "sewer",
        "service": "service connection",
        "building_line": "distance to the building line",
        "valve": "valve",
        "hydrant": "hydrant",
        "manhole": "manhole",
        "other": "other fitting",
        "sheet_index": "Sheet index",
        "left_out": "%(n)s labels left out at this scale",
    },
)


def ll(x: float, y: float) -> tuple[float, float]:
    return (LON0 + x / MX, LAT0 + y / MY)


def street(length_m: float = 2000.0, bend: bool = True) -> list[Feature]:
    """A village street: a water main of 100 m pipes with a valve every 300 m and a hydrant
    every 200 m, a service connection to each house on both sides, a sewer beside it with
    manholes, and the distance to the building line on every third pipe."""
    out: list[Feature] = []
    n = int(length_m // 100)

    def at(d: float) -> tuple[float, float]:
        # along x, then turning north for the last third
        if bend and d > length_m * 2 / 3:
            return (length_m * 2 / 3, d - length_m * 2 / 3)
        return (d, 0.0)

    for i in range(n):
        a, b = at(i * 100.0), at((i + 1) * 100.0)
        mid = at(i * 100.0 + 50)
        pts = [ll(*a), ll(*mid), ll(*b)] if a[0] != b[0] and a[1] != b[1] else [ll(*a), ll(*b)]
        out.append(
            Feature(
                f"P-{i + 1:03d}",
                "pipe",
                shapely.LineString(pts),
                diameter_mm=110.0 if i < n / 2 else 63.0,
                material="PE100" if i % 3 else "steel",
                building_line_m=3.5 + (i % 2) if i % 3 == 0 else None,
            )
        )
        if i % 3 == 0:
            out.append(Feature(f"V-{i + 1:03d}", "valve", shapely.Point(ll(*at(i * 100.0 + 6)))))
        if i % 2 == 1:
            x, y = at(i * 100.0 + 30)
            out.append(Feature(f"H-{i + 1:03d}", "hydrant", shapely.Point(ll(x + 2, y + 2))))
        for k in range(4):
            x, y = at(i * 100.0 + 12 + 25 * k)
            side = 12.0 if k % 2 else -12.0
            house = (
                (x, y + side) if (x, y) == at(i * 100.0 + 12 + 25 * k) and y == 0 else (x + side, y)
            )
            out.append(
                Feature(
                    f"SC-{i}-{k}", "service_connection", shapely.LineString([ll(x, y), ll(*house)])
                )
            )
        sa, sb = at(i * 100.0), at((i + 1) * 100.0)
        off = (0.0, -6.0) if sa[1] == sb[1] else (6.0, 0.0)
        out.append(
            Feature(
                f"S-{i + 1:03d}",
                "gravity_sewer",
                shapely.LineString(
                    [ll(sa[0] + off[0], sa[1] + off[1]), ll(sb[0] + off[0], sb[1] + off[1])]
                ),
                diameter_mm=200.0,
                material="PVC",
                system="sewer",
            )
        )
        out.append(
            Feature(
                f"MH-{i + 1:03d}",
                "manhole",
                shapely.Point(ll(sa[0] + off[0], sa[1] + off[1])),
                system="sewer",
            )
        )
    return out


def shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("SUVNET_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def focus_of(feats: list[Feature]) -> list[Feature]:
    return [f for f in feats if f.kind == "pipe"]


@pytest.mark.parametrize(
    ("paper", "scale"), [("A3", None), ("A4", None), ("A3", 1000), ("A4", 500)]
)
def test_a_street_prints_cleanly(paper: str, scale: int | None, tmp_path: Path) -> None:
    feats = street()
    pages = plan(focus_of(feats), feats, paper=paper, texts=TEXTS, measure=measure(), scale=scale)  # type: ignore[arg-type]
    if scale is None:
        assert len(pages) == 1  # the largest scale at which the street fits one sheet
    else:
        assert len(pages) > 1 and all(p.of == len(pages) for p in pages)
    pdf = render(pages, title=TEXTS.title)
    name = f"sheet-{paper}-{scale or 'fit'}"
    problems = layout_problems(pdf, tmp_path, margin_pt=20, name=name)
    assert problems == []
    # the labels the layout placed never overlap and stay inside the frame (exact boxes)
    for page in pages:
        fx, fy, fw, fh = page.frame
        boxes = [b for _, b in page.labels]
        assert all(fx <= b[0] and b[2] <= fx + fw and fy <= b[1] and b[3] <= fy + fh for b in boxes)
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
    text = pdf_text(tmp_path / f"{name}.pdf")
    flat = squash(text)
    for must in ("Yangiobodsuvta'minoti", "Legend", "Sheetindex", "01.06.2026"):
        assert must in flat, must
    assert "Sheet1of" in flat and f"Scale1:{pages[0].scale}" in flat
    placed = {t.text for p in pages for t, _ in p.labels}
    assert any(t.startswith("V-") for t in placed) and any(t.startswith("H-") for t in placed)
    assert any(t.startswith("MH-") for t in placed)
    assert all(squash(t) in flat for t in placed)  # every placed label is printed
    if any(p.left_out for p in pages):  # what did not fit is said on the sheet
        assert "labelsleftoutatthisscale" in flat
    assert "DN110" in flat and "PE100" in flat  # pipes' diameter and material
    assert "3,5m" in flat or "4,5m" in flat  # a distance to the building line
    pngs = png_pages(tmp_path / f"{name}.pdf", shots(tmp_path), name, dpi=90)
    assert len(pngs) == len(pages)


def test_every_label_is_placed_at_a_detailed_scale(tmp_path: Path) -> None:
    feats = street(600.0, bend=False)
    pages = plan(focus_of(feats), feats, paper="A3", texts=TEXTS, measure=measure(), scale=500)
    labelled = {t.text.split()[0] for p in pages for t, _ in p.labels}
    wanted = {f.code for f in feats if f.kind in ("valve", "hydrant", "manhole", "pipe")}
    assert wanted <= labelled
    assert sum(p.left_out for p in pages) == 0


def test_hostile_ids_are_printed_literally(tmp_path: Path) -> None:
    feats = [
        Feature("P-1", "pipe", shapely.LineString([ll(0, 0), ll(200, 0)]), diameter_mm=110.0,
                material=HOSTILE[4]),
        Feature(HOSTILE[0][:40], "valve", shapely.Point(ll(50, 0))),
    ]  # fmt: skip
    texts = SheetTexts(**{**TEXTS.__dict__, "title": HOSTILE[1], "utility": HOSTILE[2]})
    pages = plan(feats[:1], feats, paper="A4", texts=texts, measure=measure())
    pdf = render(pages, title=HOSTILE[3])
    (tmp_path / "h.pdf").write_bytes(pdf)
    flat = squash(pdf_text(tmp_path / "h.pdf"))
    for s in (HOSTILE[1], HOSTILE[2], HOSTILE[4]):
        assert squash(s) in flat, s
    assert b"/URI" not in pdf and b"/JavaScript" not in pdf


def test_bad_requests() -> None:
    with pytest.raises(SheetError):
        plan([], [], paper="A4", texts=TEXTS, measure=measure())
    feats = street(300.0, bend=False)
    with pytest.raises(SheetError):
        plan(focus_of(feats), feats, paper="A5", texts=TEXTS, measure=measure())  # type: ignore[arg-type]
    with pytest.raises(SheetError):
        plan(focus_of(feats), feats, paper="A4", texts=TEXTS, measure=measure(), scale=750)
    with pytest.raises(SheetError):
        choose_scale(500_000, 10, *PAPERS["A4"])
    long = street(20_000.0, bend=False)
    with pytest.raises(SheetError, match="more than"):
        plan(focus_of(long), long, paper="A4", texts=TEXTS, measure=measure(), scale=200)


def test_wrap() -> None:
    w = measure()
    lines = wrap("Mustaqillik ko'chasi: suv quvurlari va kanalizatsiya", 60, 8, w)
    assert len(lines) > 1 and all(w(line, 8) <= 60 for line in lines)
    assert wrap("X" * 80, 30, 8, w)[0] and all(
        w(line, 8) <= 30 for line in wrap("X" * 80, 30, 8, w)
    )
    assert math.isclose(w("", 8), 0)
