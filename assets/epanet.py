"""The hydraulic model out of the register: an EPANET .inp file (through WNTR).

An .inp import (:func:`assets.files.read_assets`) keeps what the model needs in each asset's
``attrs`` (the node kind, the two end nodes of a link, roughness, valve settings, pump curves);
:func:`write_inp` puts it back together, so a model goes in and comes out the same, with the
register's changes (a diameter corrected in QGIS, a new pipe) in it. Pipes entered in the
register without an .inp (no end nodes) are connected to the nodes at their ends, and get
nodes of their own where there are none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import shapely
import wntr

from assets.crs import NamedCrs, from_wgs84, resolve
from assets.errors import AssetError
from assets.model import Asset, Geom, geom_type


def model_crs(items: Sequence[Asset]) -> str:
    """The CRS the model is written in by default: the one most of its assets came in."""
    counts = Counter(a.source_crs for a in items if a.attrs.get("epanet"))
    return counts.most_common(1)[0][0] if counts else "EPSG:4326"


def write_inp(
    path: Path,
    items: Sequence[Asset],
    *,
    crs: str | None = None,
    local: Mapping[str, str] | None = None,
) -> dict[str, int]:
    """Write the water network of ``items`` (active and planned, not abandoned) as an EPANET
    model in ``crs`` (default: :func:`model_crs`). Returns counts per section."""
    dst = resolve(crs or model_crs(items), local)
    live = [a for a in items if a.system == "water" and a.status != "abandoned"]
    wn = wntr.network.WaterNetworkModel()
    wn.options.hydraulic.inpfile_units = "LPS"
    heads = Counter(str(a.attrs.get("headloss")) for a in live if a.attrs.get("headloss"))
    if heads:
        wn.options.hydraulic.headloss = heads.most_common(1)[0][0]
    for a in live:
        pts = a.attrs.get("head_curve_points")
        name = a.attrs.get("head_curve")
        if a.kind == "pump" and pts and name and name not in wn.curve_name_list:
            wn.add_curve(str(name), "HEAD", [(float(q), float(h)) for q, h in pts])
    xy = _Placer(dst)
    counts = Counter[str]()
    nodes: dict[str, tuple[float, float]] = {}
    for a in live:
        if a.kind not in ("node", "tank", "well") or geom_type(a.geometry) != "Point":
            continue
        name = a.ref_code or a.code
        at = xy.point(a.geometry)
        nodes[name] = at
        kind = a.attrs.get("epanet") or ("reservoir" if a.kind == "well" else a.kind)
        if kind == "reservoir":
            wn.add_reservoir(name, base_head=a.elevation_m or 0.0, coordinates=at)
            counts["reservoirs"] += 1
        elif kind == "tank":
            wn.add_tank(
                name,
                elevation=a.elevation_m or 0.0,
                init_level=float(a.attrs.get("init_level_m", 1.0)),
                min_level=float(a.attrs.get("min_level_m", 0.0)),
                max_level=float(a.attrs.get("max_level_m", 2.0)),
                diameter=float(a.attrs.get("diameter_m", 5.0)),
                coordinates=at,
            )
            counts["tanks"] += 1
        else:
            wn.add_junction(
                name,
                base_demand=float(a.attrs.get("base_demand_lps") or 0.0) / 1000.0,
                elevation=a.elevation_m or 0.0,
                coordinates=at,
            )
            counts["junctions"] += 1
    finder = _NodeFinder(nodes)
    for a in live:
        if a.kind != "pipe":
            continue
        line = [xy.xy(c) for c in shapely.get_coordinates(a.geometry).tolist()]
        start = str(a.attrs.get("from") or "") or finder.at(line[0], wn, counts)
        end = str(a.attrs.get("to") or "") or finder.at(line[-1], wn, counts)
        status = str(a.attrs.get("pipe_status", "open"))
        wn.add_pipe(
            a.ref_code or a.code,
            start,
            end,
            length=float(a.attrs.get("length_m") or _length(a)),
            diameter=(a.diameter_mm or 100.0) / 1000.0,
            roughness=float(a.attrs.get("roughness") or 130.0),
            minor_loss=float(a.attrs.get("minor_loss") or 0.0),
            initial_status="CLOSED" if status == "closed" else "OPEN",
            check_valve=status == "cv",
        )
        if len(line) > 2:
            wn.get_link(a.ref_code or a.code).vertices = line[1:-1]
        counts["pipes"] += 1
    for a in live:
        if a.kind not in ("valve", "prv", "pump") or not a.attrs.get("from"):
            continue  # an isolation valve drawn on a pipe is not a model link
        start, end = str(a.attrs["from"]), str(a.attrs["to"])
        if a.kind == "pump":
            if a.attrs.get("pump_kind") == "power":
                wn.add_pump(
                    a.ref_code or a.code,
                    start,
                    end,
                    "POWER",
                    float(a.attrs.get("power_kw") or 1.0) * 1000.0,
                )
            else:
                wn.add_pump(
                    a.ref_code or a.code, start, end, "HEAD", str(a.attrs.get("head_curve"))
                )
            if a.attrs.get("pump_status") == "closed":
                wn.get_link(a.ref_code or a.code).initial_status = "CLOSED"
            counts["pumps"] += 1
            continue
        vkind = str(a.attrs.get("valve_kind") or ("PRV" if a.kind == "prv" else "TCV"))
        setting = float(a.attrs.get("setting") or 0.0)
        if vkind == "FCV":
            setting /= 1000.0
        wn.add_valve(
            a.ref_code or a.code,
            start,
            end,
            diameter=(a.diameter_mm or 100.0) / 1000.0,
            valve_type=vkind,
            initial_setting=setting,
        )
        vstatus = str(a.attrs.get("valve_status") or "active")
        if vstatus in ("open", "closed"):
            wn.get_link(a.ref_code or a.code).initial_status = vstatus.upper()
        counts["valves"] += 1
    if not counts.get("pipes"):
        raise AssetError("the register has no water pipes to write as a model")
    wntr.network.write_inpfile(wn, str(path), units="LPS")
    return dict(counts)


def _length(a: Asset) -> float:
    from assets.geo import geodesic_length_m

    return max(0.01, geodesic_length_m(a.geometry))


class _Placer:
    def __init__(self, dst: NamedCrs) -> None:
        self.dst = dst

    def point(self, g: Geom) -> tuple[float, float]:
        c = shapely.get_coordinates(from_wgs84(g, self.dst))[0]
        return (round(float(c[0]), 6), round(float(c[1]), 6))

    def xy(self, c: Sequence[float]) -> tuple[float, float]:
        return self.point(shapely.Point(c[0], c[1]))


class _NodeFinder:
    """The model node at a place (a pipe drawn in the register has no end nodes)."""

    def __init__(self, nodes: dict[str, tuple[float, float]]) -> None:
        self.by_xy = {xy: name for name, xy in nodes.items()}

    def at(self, xy: tuple[float, float], wn: Any, counts: Counter[str]) -> str:
        name = self.by_xy.get(xy)
        if name is None:
            name = f"N{len(self.by_xy) + 1}"
            while name in wn.node_name_list:
                name += "_"
            wn.add_junction(name, base_demand=0.0, elevation=0.0, coordinates=xy)
            self.by_xy[xy] = name
            counts["junctions"] += 1
        return name


def read_curves(path: Path) -> dict[str, list[tuple[float, float]]]:
    """The head curves of an .inp file (name -> (flow m³/s, head m), WNTR's units), kept
    with the pumps for writing the model back."""
    wn = wntr.network.WaterNetworkModel(str(path))
    out: dict[str, list[tuple[float, float]]] = {}
    for name, curve in wn.curves():
        if str(curve.curve_type).upper() == "HEAD":
            out[str(name)] = [(float(q), float(h)) for q, h in curve.points]
    return out
