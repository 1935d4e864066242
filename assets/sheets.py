"""Route-map sheets: the printable sheets a crew takes to the street (pure layout: features
in, pages of drawing instructions out; :mod:`assets.sheet_pdf` draws them with ReportLab).

A series of sheets covers the **focus** (a street's, a zone's or a route's pipes) at one
scale: the sheets are the tiles of a grid over the focus, numbered row by row from the top
left, and only those the focus passes through are kept. Without a scale, the largest
standard scale at which the focus fits on one sheet is taken.

Each sheet (landscape A4 or A3) has the map frame on the left and a panel on the right with
the utility's name, the title, the date, the scale with a scale bar, a north arrow, the
legend and the sheet index (the grid of the series, this sheet filled in). The map draws
every asset in the frame (the focus and what is around it): water pipes by diameter, sewers
dashed, service connections thin, valves, hydrants, manholes and other points with their
ids, each pipe labelled with its id, diameter and material, and the distance to the
building line where the register has it (``attrs.building_line_m``, on the side
``attrs.building_line_side``, left or right of the pipe's direction).

**Nothing overlaps and nothing is cut off.** Every label is placed at the first of several
candidate places where its box lies wholly inside the frame and touches no other label, no
symbol and no drawn line; a label with no such place is left out (and counted on the sheet:
take a larger scale to see it). Text is measured with the font that will print it (the
``measure`` function the caller passes in).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import shapely

from assets.geo import local_metres
from assets.model import Geom


class Measure(Protocol):
    """``(text, font size, bold) -> width in points``."""

    def __call__(self, text: str, size: float, bold: bool = False) -> float: ...


PT_PER_MM = 72 / 25.4
PAPERS: dict[str, tuple[float, float]] = {
    "A4": (297 * PT_PER_MM, 210 * PT_PER_MM),
    "A3": (420 * PT_PER_MM, 297 * PT_PER_MM),
}
"""Landscape page sizes in points."""
PANEL_W = {"A4": 62 * PT_PER_MM, "A3": 78 * PT_PER_MM}
MARGIN = 10 * PT_PER_MM
GAP = 3 * PT_PER_MM
SCALES = (200, 500, 1000, 2000, 5000, 10000, 25000)
OVERLAP_MM = 12.0
"""How much neighbouring sheets of a series overlap, on paper."""
POINT_KINDS_LABELLED = frozenset(
    {"valve", "hydrant", "manhole", "prv", "pump", "meter_chamber", "well", "tank"}
)
LABEL_SIZE = 6.5
PIPE_LABEL_SIZE = 6.0


@dataclass(frozen=True)
class Feature:
    code: str
    kind: str
    geometry: Geom
    """WGS 84."""
    diameter_mm: float | None = None
    material: str | None = None
    system: str = "water"
    status: str = "active"
    building_line_m: float | None = None
    building_line_side: str = "left"


# ---------------------------------------------------------------------- drawing items
@dataclass(frozen=True)
class Text:
    x: float
    y: float
    """The baseline's left end."""
    text: str
    size: float
    bold: bool = False
    colour: str = "#000000"


@dataclass(frozen=True)
class Line:
    points: tuple[tuple[float, float], ...]
    width: float
    colour: str
    dash: tuple[float, ...] = ()


@dataclass(frozen=True)
class Symbol:
    kind: str
    x: float
    y: float
    r: float


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    stroke: str | None = "#000000"
    fill: str | None = None
    width: float = 0.5


Item = Text | Line | Symbol | Rect


@dataclass
class SheetPage:
    number: int
    of: int
    scale: int
    frame: tuple[float, float, float, float]
    panel: tuple[float, float, float, float]
    size: tuple[float, float]
    map_items: list[Item] = field(default_factory=list)
    panel_items: list[Item] = field(default_factory=list)
    labels: list[tuple[Text, tuple[float, float, float, float]]] = field(default_factory=list)
    left_out: int = 0


class SheetError(ValueError):
    """A sheet cannot be made (nothing to draw, an unknown paper or scale)."""


# ---------------------------------------------------------------------- geometry helpers
class _Plane:
    def __init__(self, lon0: float, lat0: float) -> None:
        self.lon0, self.lat0 = lon0, lat0
        self.mx, self.my = local_metres(lon0, lat0)

    def geom(self, g: Geom) -> Geom:
        lon0, lat0, mx, my = self.lon0, self.lat0, self.mx, self.my

        def f(xy: Any) -> Any:
            out = np.empty_like(xy)
            out[:, 0] = (xy[:, 0] - lon0) * mx
            out[:, 1] = (xy[:, 1] - lat0) * my
            return out

        return shapely.transform(g, f)


def pipe_style(f: Feature) -> tuple[float, str, tuple[float, ...]]:
    """Line width (pt), colour and dash of a line feature."""
    if f.system == "sewer":
        return 1.0, "#8a5a2b", (4.0, 2.0)
    if f.kind == "service_connection":
        return 0.4, "#7a8590", ()
    d = f.diameter_mm or 0
    width = 0.8 if d <= 63 else 1.2 if d <= 110 else 1.7 if d <= 200 else 2.4
    dash = (3.0, 2.0) if f.status == "planned" else ()
    return width, "#0b5d8f", dash


SYMBOL_R = {"valve": 2.6, "hydrant": 2.6, "manhole": 2.4, "meter_chamber": 2.4, "prv": 2.8}


def pipe_label(f: Feature) -> str:
    parts = [f.code]
    if f.diameter_mm:
        parts.append(f"DN{f.diameter_mm:g}")
    if f.material:
        parts.append(f.material)
    return " ".join(parts)


def choose_scale(width_m: float, height_m: float, frame_w: float, frame_h: float) -> int:
    """The largest standard scale (smallest number) at which width x height metres fit the
    frame (points)."""
    for s in SCALES:
        k = 1000 / s * PT_PER_MM  # points per metre
        if width_m * k <= frame_w and height_m * k <= frame_h:
            return s
    raise SheetError(
        f"the area ({width_m:.0f} x {height_m:.0f} m) does not fit one sheet at 1:{SCALES[-1]}"
    )


# ---------------------------------------------------------------------- the layout
@dataclass(frozen=True)
class SheetTexts:
    """What the panel says, already in the reader's language."""

    utility: str
    title: str
    date: str
    sheet: str
    """e.g. "Sheet %(n)s of %(of)s" with the placeholders."""
    scale: str
    """e.g. "Scale 1:%(scale)s"."""
    legend: Mapping[str, str]
    """Keys: pipe, sewer, service, valve, hydrant, manhole, other, building_line,
    sheet_index, left_out (with %(n)s)."""
    north: str = "N"
    metres: str = "m"


def plan(
    focus: Sequence[Feature],
    features: Sequence[Feature],
    *,
    paper: Literal["A4", "A3"],
    texts: SheetTexts,
    measure: Measure,
    scale: int | None = None,
    max_sheets: int = 60,
) -> list[SheetPage]:
    """The pages of the series (see the module doc)."""
    if paper not in PAPERS:
        raise SheetError(f"paper must be A4 or A3, not {paper!r}")
    if scale is not None and scale not in SCALES:
        raise SheetError(f"scale must be one of {', '.join(f'1:{s}' for s in SCALES)}")
    if not focus:
        raise SheetError("there is nothing to draw")
    page_w, page_h = PAPERS[paper]
    panel_w = PANEL_W[paper]
    frame = (MARGIN, MARGIN, page_w - 2 * MARGIN - panel_w - GAP, page_h - 2 * MARGIN)
    panel = (frame[0] + frame[2] + GAP, MARGIN, panel_w, page_h - 2 * MARGIN)
    b = shapely.total_bounds(np.asarray([f.geometry for f in focus], dtype=object))
    plane = _Plane(float((b[0] + b[2]) / 2), float((b[1] + b[3]) / 2))
    focus_m = [plane.geom(f.geometry) for f in focus]
    fb = shapely.total_bounds(np.asarray(focus_m, dtype=object))
    pad = 15.0
    x0, y0, x1, y1 = fb[0] - pad, fb[1] - pad, fb[2] + pad, fb[3] + pad
    if scale is None:
        scale = choose_scale(x1 - x0, y1 - y0, frame[2], frame[3])
    k = 1000 / scale * PT_PER_MM
    gw, gh = frame[2] / k, frame[3] / k
    # neighbouring sheets overlap by OVERLAP_MM on paper, so that nothing on the edge of one
    # is lost between two
    ov = OVERLAP_MM * scale / 1000
    sw, sh = gw - ov, gh - ov
    cols = max(1, math.ceil((x1 - x0 - ov) / sw))
    rows = max(1, math.ceil((y1 - y0 - ov) / sh))
    # centre the grid on the focus
    gx0 = (x0 + x1) / 2 - (cols * sw + ov) / 2
    gy1 = (y0 + y1) / 2 + (rows * sh + ov) / 2
    union = shapely.union_all(np.asarray([shapely.buffer(g, pad) for g in focus_m], dtype=object))
    tiles: list[tuple[int, int, Geom]] = []
    for r in range(rows):
        for c in range(cols):
            box = shapely.box(gx0 + c * sw, gy1 - r * sh - gh, gx0 + c * sw + gw, gy1 - r * sh)
            if shapely.intersects(box, union):
                tiles.append((r, c, box))
    if len(tiles) > max_sheets:
        raise SheetError(
            f"{len(tiles)} sheets at 1:{scale}: more than {max_sheets}; choose a smaller scale"
        )
    geoms_m = plane.geom(np.asarray([f.geometry for f in features], dtype=object))
    feats_m = list(zip(features, geoms_m.tolist(), strict=True))
    pages = []
    for n, (r, c, box) in enumerate(tiles, start=1):
        page = SheetPage(n, len(tiles), scale, frame, panel, (page_w, page_h))
        _draw_map(page, box, feats_m, k, texts, measure)
        _draw_panel(page, texts, measure, tiles, (r, c), list(focus_m), box)
        pages.append(page)
    return pages


class _Placer:
    """Label boxes placed so far, and the lines and symbols they must not touch."""

    def __init__(self, frame: tuple[float, float, float, float], obstacles: Sequence[Geom]):
        fx, fy, fw, fh = frame
        self.inside = shapely.box(fx + 1, fy + 1, fx + fw - 1, fy + fh - 1)
        self.obstacles = np.asarray(obstacles, dtype=object)
        self.tree = shapely.STRtree(self.obstacles) if obstacles else None
        self.boxes: list[tuple[float, float, float, float]] = []

    def free(self, box: tuple[float, float, float, float]) -> bool:
        return self.first_free(np.asarray([box], dtype=float)) == 0

    def first_free(self, boxes: np.ndarray[Any, Any]) -> int:
        """The index of the first of ``boxes`` (n x 4: x0, y0, x1, y1) that lies inside the
        frame and touches no obstacle and no label placed; -1 when none does. All the
        candidates are tested at once (one tree query), in their order of preference."""
        ix0, iy0, ix1, iy1 = shapely.bounds(self.inside).tolist()
        ok = (boxes[:, 0] > ix0) & (boxes[:, 1] > iy0) & (boxes[:, 2] < ix1) & (boxes[:, 3] < iy1)
        if self.boxes and ok.any():
            placed = np.asarray(self.boxes, dtype=float)
            hit = (
                (boxes[:, None, 0] < placed[None, :, 2])
                & (placed[None, :, 0] < boxes[:, None, 2])
                & (boxes[:, None, 1] < placed[None, :, 3])
                & (placed[None, :, 1] < boxes[:, None, 3])
            ).any(axis=1)
            ok &= ~hit
        if self.tree is not None and ok.any():
            idx = np.flatnonzero(ok)
            geoms = shapely.box(boxes[idx, 0], boxes[idx, 1], boxes[idx, 2], boxes[idx, 3])
            touched = self.tree.query(geoms, predicate="intersects")[0]
            ok[idx[np.unique(touched)]] = False
        found = np.flatnonzero(ok)
        return int(found[0]) if len(found) else -1

    def take(self, box: tuple[float, float, float, float]) -> None:
        self.boxes.append(box)


def _text_box(x: float, y: float, w: float, size: float) -> tuple[float, float, float, float]:
    return (x - 0.8, y - 0.28 * size - 0.8, x + w + 0.8, y + 0.82 * size + 0.8)


def _draw_map(  # noqa: PLR0917 - one page's parts
    page: SheetPage,
    box: Geom,
    feats_m: Sequence[tuple[Feature, Geom]],
    k: float,
    texts: SheetTexts,
    measure: Measure,
) -> None:
    fx, fy, fw, fh = page.frame
    bx0, by0, _, _ = shapely.bounds(box).tolist()

    def to_page(x: float, y: float) -> tuple[float, float]:
        return (fx + (x - bx0) * k, fy + (y - by0) * k)

    lines: list[tuple[Feature, list[tuple[float, float]]]] = []
    points: list[tuple[Feature, float, float]] = []
    inner = shapely.buffer(box, -0.5 / k)
    # the whole page's features at once (shapely's array functions): those on the sheet,
    # the lines cut to the frame, the points' places
    all_g = np.asarray([g for _, g in feats_m], dtype=object)
    on = np.flatnonzero(shapely.intersects(all_g, box)) if len(all_g) else np.zeros(0, int)
    kinds = shapely.get_type_id(all_g[on]) if len(on) else np.zeros(0, int)
    line_i = on[kinds == 1]
    point_i = on[kinds != 1]
    if len(line_i):
        parts, owner = shapely.get_parts(
            shapely.intersection(all_g[line_i], inner), return_index=True
        )
        for piece, o in zip(parts.tolist(), owner.tolist(), strict=True):
            if shapely.get_type_id(piece) != 1:
                continue
            pts = [to_page(float(x), float(y)) for x, y in shapely.get_coordinates(piece)]
            if len(pts) >= 2:
                lines.append((feats_m[int(line_i[o])][0], pts))
    if len(point_i):
        centres = shapely.get_coordinates(shapely.centroid(all_g[point_i])).tolist()
        for i, (cx, cy) in zip(point_i.tolist(), centres, strict=True):
            f = feats_m[i][0]
            px, py = to_page(float(cx), float(cy))
            r = SYMBOL_R.get(f.kind, 1.8)
            if fx + r < px < fx + fw - r and fy + r < py < fy + fh - r:
                points.append((f, px, py))
    page.map_items.append(Rect(fx, fy, fw, fh, stroke="#000000", width=0.8))
    order = {"service_connection": 0, "gravity_sewer": 1, "pressure_sewer": 1, "pipe": 2}
    lines.sort(key=lambda t: (order.get(t[0].kind, 2), t[0].diameter_mm or 0))
    obstacles: list[Geom] = []
    pads: list[float] = []
    for f, pts in lines:
        width, colour, dash = pipe_style(f)
        page.map_items.append(Line(tuple(pts), width, colour, dash))
        pads.append(width / 2 + 0.6)
    if lines:
        obstacles += shapely.buffer(
            shapely.linestrings([pts for _, pts in lines]) if _same_len(lines) else
            np.asarray([shapely.LineString(pts) for _, pts in lines], dtype=object),
            np.asarray(pads) * COVER,
            quad_segs=2,
        ).tolist()  # fmt: skip
    # distances to the building line: a dimension line square to the pipe
    dims: list[tuple[Line, tuple[float, float], str]] = []
    for f, pts in lines:
        if f.building_line_m is None or f.kind != "pipe" or f.building_line_m <= 0:
            continue
        line = shapely.LineString(pts)
        mid = shapely.line_interpolate_point(line, 0.5, normalized=True)
        ((mx, my),) = shapely.get_coordinates(mid).tolist()
        (ax, ay), (bx, by) = _segment_at(pts, line.length / 2)
        dx, dy = bx - ax, by - ay
        norm = math.hypot(dx, dy) or 1.0
        sign = 1.0 if f.building_line_side != "right" else -1.0
        nx, ny = -dy / norm * sign, dx / norm * sign
        length = f.building_line_m * k
        end = (mx + nx * length, my + ny * length)
        if not (fx < end[0] < fx + fw and fy < end[1] < fy + fh):
            continue
        dim = Line(((mx, my), end), 0.4, "#c0392b", (1.5, 1.0))
        tick = Line(
            (
                (end[0] - dx / norm * 3, end[1] - dy / norm * 3),
                (end[0] + dx / norm * 3, end[1] + dy / norm * 3),
            ),
            0.6,
            "#c0392b",
        )
        page.map_items += [dim, tick]
        obstacles.append(shapely.buffer(shapely.LineString([(mx, my), end]), 0.8))
        obstacles.append(shapely.buffer(shapely.LineString(tick.points), 0.8))
        dims.append(
            (
                dim,
                ((mx + end[0]) / 2, (my + end[1]) / 2),
                f"{_decimal(f.building_line_m)} {texts.metres}",
            )
        )
    for f, px, py in points:
        r = SYMBOL_R.get(f.kind, 1.8)
        page.map_items.append(Symbol(f.kind, px, py, r))
    if points:
        obstacles += shapely.buffer(
            shapely.points([(px, py) for _, px, py in points]),
            np.asarray([SYMBOL_R.get(f.kind, 1.8) + 0.6 for f, _, _ in points]) * COVER,
            quad_segs=2,
        ).tolist()
    placer = _Placer(page.frame, obstacles)
    left = 0
    # labels in the order a crew needs them: valves and hydrants, water pipes, sewers,
    # manholes and the other points; the distances last
    rank = {"valve": 0, "prv": 0, "hydrant": 1, "meter_chamber": 2}
    first = [t for t in points if t[0].kind in rank]
    rest = [t for t in points if t[0].kind not in rank]
    for f, px, py in sorted(first, key=lambda t: rank[t[0].kind]):
        r = SYMBOL_R.get(f.kind, 1.8)
        if not _place(page, placer, f.code, LABEL_SIZE, measure, _around(px, py, r)):
            left += 1
    by_system = sorted(lines, key=lambda t: (t[0].system != "water", -(t[0].diameter_mm or 0)))
    for f, pts in by_system:
        if f.kind not in ("pipe", "gravity_sewer", "pressure_sewer"):
            continue
        line = shapely.LineString(pts)
        if line.length < 12:
            continue
        if not _place(page, placer, pipe_label(f), PIPE_LABEL_SIZE, measure, _along(line, f)):
            left += 1
    for f, px, py in rest:
        if f.kind not in POINT_KINDS_LABELLED:
            continue
        r = SYMBOL_R.get(f.kind, 1.8)
        if not _place(page, placer, f.code, LABEL_SIZE, measure, _around(px, py, r)):
            left += 1
    for _, (cx, cy), label in dims:
        if not _place(page, placer, label, PIPE_LABEL_SIZE, measure, _around(cx, cy, 1.5)):
            left += 1
    page.left_out = left


def _same_len(lines: Sequence[tuple[Feature, list[tuple[float, float]]]]) -> bool:
    """Whether every line has as many points (shapely.linestrings takes them as one array)."""
    return len({len(pts) for _, pts in lines}) == 1


def _segment_at(
    pts: Sequence[tuple[float, float]], at: float
) -> tuple[tuple[float, float], tuple[float, float]]:
    run = 0.0
    for a, b in itertools.pairwise(pts):
        seg = math.dist(a, b)
        if run + seg >= at:
            return a, b
        run += seg
    return pts[-2], pts[-1]


def _decimal(v: float) -> str:
    return f"{v:.1f}".replace(".", ",")


def _around(x: float, y: float, r: float) -> list[tuple[float, float, str]]:
    """Places for a point's label: (x, y, anchor) with the label's baseline at y; the close
    ring first, then farther out (clear of the pipe and the service lines beside it)."""
    out: list[tuple[float, float, str]] = []
    for g in (r + 1.5, r + 6.0, r + 11.0):
        out += [
            (x + g, y - 2.0, "start"),
            (x - g, y - 2.0, "end"),
            (x + g * 0.7, y + g * 0.7, "start"),
            (x - g * 0.7, y + g * 0.7, "end"),
            (x + g * 0.7, y - g * 0.7 - 4.5, "start"),
            (x - g * 0.7, y - g * 0.7 - 4.5, "end"),
            (x, y + g + 0.5, "middle"),
            (x, y - g - 5.0, "middle"),
        ]
    return out


ALONG = np.asarray([0.5, 0.35, 0.65, 0.2, 0.8, 0.1, 0.9])
"""Where along a pipe its label is tried, in order."""
COVER = 1.09
"""A polygon of few sides around a circle of radius r needs a radius r x COVER to hold it
(1 / cos(22.5 degrees) for the octagon of quad_segs=2)."""


def _along(line: Geom, f: Feature) -> list[tuple[float, float, str]]:
    width, _, _ = pipe_style(f)
    out: list[tuple[float, float, str]] = []
    at = shapely.get_coordinates(
        shapely.line_interpolate_point(line, ALONG, normalized=True)
    ).tolist()  # the places along the line, all at once
    for extra in (0.0, 8.0, 15.0):
        off = width / 2 + 1.8 + extra
        for x, y in at:
            out += [
                (x, y + off, "middle"),
                (x, y - off - 4.6, "middle"),
                (x + off, y - 2.0, "start"),
                (x - off, y - 2.0, "end"),
            ]
    return out


def _place(  # noqa: PLR0917 - a label and where it may go
    page: SheetPage,
    placer: _Placer,
    text: str,
    size: float,
    measure: Measure,
    candidates: Sequence[tuple[float, float, str]],
) -> bool:
    w = measure(text, size)
    lefts = [x if anchor == "start" else x - w if anchor == "end" else x - w / 2
             for x, _, anchor in candidates]  # fmt: skip
    boxes = [_text_box(left, y, w, size) for left, (_, y, _) in zip(lefts, candidates, strict=True)]
    i = placer.first_free(np.asarray(boxes, dtype=float)) if boxes else -1
    if i < 0:
        return False
    placer.take(boxes[i])
    t = Text(lefts[i], candidates[i][1], text, size)
    page.map_items.append(t)
    page.labels.append((t, boxes[i]))
    return True


def _draw_panel(  # noqa: PLR0917
    page: SheetPage,
    texts: SheetTexts,
    measure: Measure,
    tiles: Sequence[tuple[int, int, Geom]],
    here: tuple[int, int],
    focus_m: Sequence[Geom],
    current: Geom,
) -> None:
    px, py, pw, ph = page.panel
    items = page.panel_items
    items.append(Rect(px, py, pw, ph, stroke="#000000", width=0.8))
    pad = 6.0
    inner_w = pw - 2 * pad
    y = py + ph - pad
    # utility and title, wrapped to the panel's width
    for text, size, bold in ((texts.utility, 8.0, True), (texts.title, 11.0, True)):
        for line in wrap(text, inner_w, size, measure, bold=bold):
            y -= size * 1.25
            items.append(Text(px + pad, y, line, size, bold=bold))
        y -= 3
    for line in (
        texts.date,
        texts.sheet % {"n": page.number, "of": page.of},
        texts.scale % {"scale": page.scale},
    ):
        for part in wrap(line, inner_w, 7.5, measure):
            y -= 7.5 * 1.3
            items.append(Text(px + pad, y, part, 7.5))
    # scale bar: a round number of metres near a third of the panel's width
    k = 1000 / page.scale * PT_PER_MM
    target = inner_w * 0.6 / k
    nice = max(
        v
        for v in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000)
        if v <= max(target, 1)
    )
    bar = nice * k
    y -= 14
    for i in range(4):
        x_a = px + pad + bar * i / 4
        items.append(
            Rect(
                x_a,
                y,
                bar / 4,
                3.0,
                stroke="#000000",
                fill="#000000" if i % 2 == 0 else "#ffffff",
                width=0.4,
            )
        )
    items.append(Text(px + pad, y - 8.5, "0", 6.5))
    end = f"{nice} {texts.metres}"
    items.append(Text(px + pad + bar - measure(end, 6.5) / 2, y - 8.5, end, 6.5))
    # north arrow, to the right of the bar
    ax, ay = px + pw - pad - 10, y - 6
    items.append(Line(((ax, ay), (ax, ay + 22)), 1.0, "#000000"))
    items.append(Line(((ax - 4, ay + 14), (ax, ay + 22), (ax + 4, ay + 14)), 1.0, "#000000"))
    items.append(
        Text(ax - measure(texts.north, 8.0, True) / 2, ay + 25, texts.north, 8.0, bold=True)
    )
    y -= 22
    # legend
    items.append(Text(px + pad, y, texts.legend.get("legend", ""), 7.5, bold=True))
    y -= 4
    entries: list[tuple[str, Item]] = [
        ("pipe", Line(((0, 0), (16, 0)), 1.2, "#0b5d8f")),
        ("sewer", Line(((0, 0), (16, 0)), 1.0, "#8a5a2b", (4.0, 2.0))),
        ("service", Line(((0, 0), (16, 0)), 0.4, "#7a8590")),
        ("building_line", Line(((0, 0), (16, 0)), 0.4, "#c0392b", (1.5, 1.0))),
        ("valve", Symbol("valve", 8, 0, 2.6)),
        ("hydrant", Symbol("hydrant", 8, 0, 2.6)),
        ("manhole", Symbol("manhole", 8, 0, 2.4)),
        ("other", Symbol("node", 8, 0, 1.8)),
    ]
    for key, item in entries:
        y -= 10
        label = texts.legend.get(key, key)
        if isinstance(item, Line):
            items.append(
                Line(
                    tuple((px + pad + a, y + 2.2 + b) for a, b in item.points),
                    item.width,
                    item.colour,
                    item.dash,
                )
            )
        elif isinstance(item, Symbol):
            items.append(Symbol(item.kind, px + pad + item.x, y + 2.2, item.r))
        for n, line in enumerate(wrap(label, inner_w - 22, 6.5, measure)):
            items.append(Text(px + pad + 22, y - n * 8, line, 6.5))
            if n:
                y -= 8
    # the sheet index: the grid of the series with this sheet filled, the focus drawn thin
    y -= 16
    items.append(Text(px + pad, y, texts.legend.get("sheet_index", ""), 7.5, bold=True))
    top = y - 4
    bottom = py + pad + (12 if page.left_out else 0)
    avail_h = top - bottom
    if avail_h > 30:
        xs = [shapely.bounds(t[2]).tolist() for t in tiles]
        gx0, gy0 = min(b[0] for b in xs), min(b[1] for b in xs)
        gx1, gy1 = max(b[2] for b in xs), max(b[3] for b in xs)
        s = min(inner_w / (gx1 - gx0), avail_h / (gy1 - gy0))
        ox = px + pad + (inner_w - (gx1 - gx0) * s) / 2
        oy = bottom + (avail_h - (gy1 - gy0) * s) / 2
        for (r, c, _), (bx0, by0, bx1, by1) in zip(tiles, xs, strict=True):
            items.append(
                Rect(
                    ox + (bx0 - gx0) * s,
                    oy + (by0 - gy0) * s,
                    (bx1 - bx0) * s,
                    (by1 - by0) * s,
                    stroke="#555555",
                    fill="#ffe08a" if (r, c) == here else None,
                    width=0.4,
                )
            )
        index_lines: list[Geom] = []
        for g in focus_m:
            for piece in shapely.get_parts(g):
                if shapely.get_type_id(piece) == 1:
                    pts = tuple(
                        ((x - gx0) * s + ox, (yy - gy0) * s + oy)
                        for x, yy in shapely.get_coordinates(piece).tolist()
                    )
                    items.append(Line(pts, 0.5, "#0b5d8f"))
                    index_lines.append(shapely.buffer(shapely.LineString(pts), 0.8))
        blocked = shapely.union_all(np.asarray(index_lines, dtype=object)) if index_lines else None
        for n, ((r, c, _), (bx0, by0, bx1, by1)) in enumerate(zip(tiles, xs, strict=True), start=1):
            num = str(n)
            size = 6.0
            w = measure(num, size)
            tx0, ty0 = ox + (bx0 - gx0) * s, oy + (by0 - gy0) * s
            tx1, ty1 = ox + (bx1 - gx0) * s, oy + (by1 - gy0) * s
            if tx1 - tx0 < w + 4 or ty1 - ty0 < size + 4:
                continue
            corners = (
                (tx0 + 1.8, ty1 - 1.8 - 0.82 * size),
                (tx1 - 1.8 - w, ty1 - 1.8 - 0.82 * size),
                (tx0 + 1.8, ty0 + 1.8 + 0.28 * size),
                (tx1 - 1.8 - w, ty0 + 1.8 + 0.28 * size),
                ((tx0 + tx1 - w) / 2, (ty0 + ty1) / 2 - 2),
            )
            for cx, cy in corners:
                box = shapely.box(*_text_box(cx, cy, w, size))
                if blocked is None or not shapely.intersects(box, blocked):
                    items.append(Text(cx, cy, num, size, bold=(r, c) == here))
                    break
    if page.left_out:
        note = texts.legend.get("left_out", "%(n)s") % {"n": page.left_out}
        for i, line in enumerate(wrap(note, inner_w, 6.0, measure)[:1]):
            items.append(Text(px + pad, py + pad + 2 - i * 7, line, 6.0))


def wrap(
    text: str, width: float, size: float, measure: Measure, *, bold: bool = False
) -> list[str]:
    """``text`` broken into lines no wider than ``width`` in the regular or the bold font
    (a word too long is cut)."""
    lines: list[str] = []
    cur = ""
    for word in text.split():
        cand = f"{cur} {word}".strip()
        if measure(cand, size, bold) <= width:
            cur = cand
            continue
        if cur:
            lines.append(cur)
        rest = word
        while measure(rest, size, bold) > width and len(rest) > 1:
            cut = len(rest)
            while cut > 1 and measure(rest[:cut], size, bold) > width:
                cut -= 1
            lines.append(rest[:cut])
            rest = rest[cut:]
        cur = rest
    if cur:
        lines.append(cur)
    return lines or [""]
