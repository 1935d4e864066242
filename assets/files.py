"""Reading and writing asset files: Shapefile, GeoPackage, DXF, CSV of surveyed points and
GeoJSON through GDAL (pyogrio), EPANET .inp through suvnet.network (WNTR).

Reading is pure apart from the file: it turns a file into :class:`Asset` objects in WGS 84 or
raises :class:`ImportRefusedError` with every problem found, each naming the file, layer,
feature and field. Saving is :func:`assets.store.save_assets` (all or nothing).
"""

from __future__ import annotations

import codecs
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio  # type: ignore[import-untyped]
import pyogrio.raw  # type: ignore[import-untyped]
import shapely
from pyogrio.errors import (  # type: ignore[import-untyped]
    DataLayerError,
    DataSourceError,
)

from assets.crs import WGS84, NamedCrs, from_wgs84, normalise, resolve, to_wgs84
from assets.errors import CrsError, FeatureProblem, ImportRefusedError
from assets.model import (
    INT_FIELDS,
    KINDS,
    NUMBER_FIELDS,
    SEWER_KINDS,
    TEXT_FIELDS,
    Asset,
    Geom,
    geom_type,
)
from suvnet.network import Network

FORMATS = {
    ".shp": "ESRI Shapefile",
    ".gpkg": "GPKG",
    ".dxf": "DXF",
    ".csv": "CSV",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".inp": "EPANET",
}

FIELD_ALIASES: dict[str, str] = {
    "id": "code",
    "asset_id": "code",
    "code": "code",
    "kod": "code",
    "type": "kind",
    "kind": "kind",
    "dn": "diameter_mm",
    "diameter": "diameter_mm",
    "diam": "diameter_mm",
    "diameter_mm": "diameter_mm",
    "mat": "material",
    "material": "material",
    "year": "install_year",
    "install_year": "install_year",
    "built": "install_year",
    "z": "elevation_m",
    "elev": "elevation_m",
    "elevation": "elevation_m",
    "elevation_m": "elevation_m",
    "depth": "depth_m",
    "depth_m": "depth_m",
    "invert_start_m": "invert_start_m",
    "invert_up": "invert_start_m",
    "inv_start": "invert_start_m",
    "invert_end_m": "invert_end_m",
    "invert_down": "invert_end_m",
    "inv_end": "invert_end_m",
    "pn": "pressure_class",
    "pressure_class": "pressure_class",
    "owner": "owner",
    "status": "status",
    "condition": "condition_grade",
    "condition_grade": "condition_grade",
    "cadastral_no": "cadastral_no",
    "cadastre": "cadastral_no",
    "land_plot": "land_plot",
    "accuracy": "accuracy_m",
    "accuracy_m": "accuracy_m",
    "zone": "zone",
    "name": "name",
    "ref_code": "ref_code",
    "account_no": "account_no",
    "account": "account_no",
    "feed_pipe": "feed_pipe",
}
"""Column names (lower case) understood in input files, and the field they fill. Other
columns are kept in the asset's ``attrs``."""

LAYER_KINDS: dict[str, str] = {
    "pipe": "pipe",
    "pipes": "pipe",
    "water_pipes": "pipe",
    "water_pipe": "pipe",
    "valve": "valve",
    "valves": "valve",
    "hydrant": "hydrant",
    "hydrants": "hydrant",
    "prv": "prv",
    "prvs": "prv",
    "pump": "pump",
    "pumps": "pump",
    "well": "well",
    "wells": "well",
    "borehole": "well",
    "boreholes": "well",
    "tank": "tank",
    "tanks": "tank",
    "service_connections": "service_connection",
    "services": "service_connection",
    "sewer": "gravity_sewer",
    "sewers": "gravity_sewer",
    "sewer_pipes": "gravity_sewer",
    "gravity_sewer": "gravity_sewer",
    "pressure_sewer": "pressure_sewer",
    "manhole": "manhole",
    "manholes": "manhole",
    "nodes": "node",
    "junctions": "node",
}
"""Layer names (GeoPackage layers, DXF layers, lower case) that say the kind of their
features; ``--layer-kind NAME=KIND`` adds more."""

DBF_CODEPAGES = {
    0x01: "cp437",
    0x02: "cp850",
    0x03: "cp1252",
    0x26: "cp866",
    0x57: "cp1252",
    0x65: "cp866",
    0xC9: "cp1251",
}
"""The language-driver byte of a .dbf header and the encoding it names."""


@dataclass(frozen=True)
class ReadOptions:
    """How to read a file. ``crs``: the coordinate system of the coordinates (required when
    the file does not say; refused when it says another). ``kind``: the kind of every
    feature that has none. ``layer_kinds``: extra layer name -> kind. ``encoding``: of the
    text in a Shapefile's .dbf (else its .cpg or header, else UTF-8)."""

    crs: str | None = None
    kind: str | None = None
    layers: tuple[str, ...] = ()
    layer_kinds: Mapping[str, str] = field(default_factory=dict)
    encoding: str | None = None
    accuracy_m: float | None = None
    local_crs: Mapping[str, str] = field(default_factory=dict)
    prefix: str = ""


@dataclass
class ReadResult:
    assets: list[Asset]
    layers: dict[str, str]
    """code -> the layer it came from (for messages)."""
    source_crs: str


class Problems:
    def __init__(self, path: Path) -> None:
        self.file = path.name
        self.items: list[FeatureProblem] = []

    def add(self, layer: str, feature: str, fld: str, message: str) -> None:
        self.items.append(FeatureProblem(self.file, layer, feature, fld, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise ImportRefusedError(self.items)


def read_assets(path: Path, opts: ReadOptions) -> ReadResult:
    """Every feature of ``path`` as an asset in WGS 84 (all of them, or the error)."""
    suffix = path.suffix.lower()
    probs = Problems(path)
    if suffix not in FORMATS:
        probs.add("", "", "", f"unknown file type {suffix!r}: use one of {', '.join(FORMATS)}")
        probs.raise_if_any()
    if not path.exists():
        probs.add("", "", "", "no such file")
        probs.raise_if_any()
    if suffix == ".inp":
        return _read_inp(path, opts, probs)
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(path)]
    except (DataSourceError, DataLayerError, OSError) as exc:
        probs.add("", "", "", f"cannot be read: {exc}")
        probs.raise_if_any()
        raise  # unreachable: raise_if_any raised
    if opts.layers:
        missing = [name for name in opts.layers if name not in layers]
        for name in missing:
            probs.add(name, "", "", f"no such layer (the file has: {', '.join(layers)})")
        probs.raise_if_any()
        layers = list(opts.layers)
    out: list[Asset] = []
    where: dict[str, str] = {}
    crs_used = ""
    for layer in layers:
        got, crs_used = _read_layer(path, suffix, layer, opts, probs)
        for a in got:
            where[a.code] = str(a.attrs.get("cad_layer", layer))
        out.extend(got)
    if not out and not probs.items:
        probs.add("", "", "", "has no features to import")
    probs.raise_if_any()
    return ReadResult(out, where, crs_used)


def _file_crs(meta: Mapping[str, Any]) -> str | None:
    crs = meta.get("crs")
    if not crs:
        return None
    return normalise(str(crs))


def _pick_crs(
    suffix: str, layer: str, declared: str | None, opts: ReadOptions, probs: Problems
) -> NamedCrs | None:
    """The CRS of a layer: the file's own, or the one named for the import; both must agree."""
    named = normalise(opts.crs) if opts.crs else None
    if suffix in (".geojson", ".json") and declared is None:
        declared = WGS84  # RFC 7946
    if declared and named and declared != named:
        probs.add(
            layer,
            "",
            "crs",
            f"the file says its coordinates are {declared}, the import says {named}: "
            "leave --crs out, or fix the file's .prj",
        )
        return None
    try:
        return resolve(named or declared, opts.local_crs)
    except CrsError as exc:
        probs.add(layer, "", "crs", str(exc))
        return None


def _read_layer(
    path: Path, suffix: str, layer: str, opts: ReadOptions, probs: Problems
) -> tuple[list[Asset], str]:
    kwargs: dict[str, Any] = {}
    encoding: str | None = None
    if suffix == ".shp":
        encoding = _dbf_encoding(path, opts.encoding, probs, layer)
        kwargs["encoding"] = "latin1"  # bytes kept as they are; decoded below
    if suffix == ".csv":
        kwargs.update(
            X_POSSIBLE_NAMES="x,lon,longitude,easting,e",
            Y_POSSIBLE_NAMES="y,lat,latitude,northing,n",
            Z_POSSIBLE_NAMES="z,elevation,elev,h,height",
            KEEP_GEOM_COLUMNS="NO",
            AUTODETECT_TYPE="NO",
        )
    try:
        meta, fids, geoms, data = pyogrio.raw.read(path, layer=layer, return_fids=True, **kwargs)
    except (DataSourceError, DataLayerError, OSError, UnicodeDecodeError) as exc:
        probs.add(layer, "", "", f"cannot be read: {exc}")
        return [], ""
    src = _pick_crs(suffix, layer, _file_crs(meta), opts, probs)
    if src is None:
        return [], ""
    names = [str(n) for n in meta["fields"]]
    lower = [n.lower() for n in names]
    if suffix == ".dxf":
        return _dxf_assets(
            layer, fids, geoms, names, data, src=src, opts=opts, probs=probs
        ), src.code
    layer_kind = opts.layer_kinds.get(layer) or LAYER_KINDS.get(layer.lower())
    out: list[Asset] = []
    for i in range(len(fids)):
        raw = {lower[j]: _cell(data[j][i]) for j in range(len(names))}
        feature = f"#{int(fids[i])}"
        if suffix == ".shp":
            raw = _decoded(raw, encoding, layer, feature, probs)
        a = _asset(raw, geoms[i], layer, feature, layer_kind, src=src, opts=opts, probs=probs)
        if a is not None:
            out.append(a)
    return out, src.code


def _cell(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, str) and not v.strip():
        return None
    return v


def _dbf_encoding(path: Path, named: str | None, probs: Problems, layer: str) -> str | None:
    """The encoding of a Shapefile's text: named for the import, else its .cpg, else the
    .dbf header's language byte; None when nothing says (then it must be UTF-8)."""
    if named:
        try:
            return codecs.lookup(named).name
        except LookupError:
            probs.add(layer, "", "encoding", f"unknown encoding {named!r} (try cp1251, cp866)")
            return "utf-8"
    cpg = path.with_suffix(".cpg")
    if cpg.exists():
        text = cpg.read_text(encoding="ascii", errors="replace").strip()
        name = {"ansi 1251": "cp1251", "1251": "cp1251", "866": "cp866"}.get(text.lower(), text)
        try:
            return codecs.lookup(name).name
        except LookupError:
            probs.add(layer, "", "encoding", f"the .cpg names an unknown encoding {text!r}")
            return "utf-8"
    dbf = path.with_suffix(".dbf")
    if dbf.exists():
        with dbf.open("rb") as f:
            head = f.read(32)
        if len(head) > 29 and head[29] in DBF_CODEPAGES:
            return DBF_CODEPAGES[head[29]]
    return None


def _decoded(
    raw: dict[str, Any], encoding: str | None, layer: str, feature: str, probs: Problems
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if isinstance(v, str):
            b = v.encode("latin1")
            try:
                out[k] = b.decode(encoding or "utf-8")
            except UnicodeDecodeError:
                hint = (
                    "the .dbf has no .cpg saying its encoding and is not UTF-8: name it with "
                    "--encoding (cp1251 for Windows Cyrillic, cp866 for DOS Cyrillic)"
                    if encoding is None
                    else f"is not valid {encoding}: name the right one with --encoding"
                )
                probs.add(layer, feature, k, f"text {b[:40]!r} {hint}")
                out[k] = None
        else:
            out[k] = v
    return out


def _asset(
    raw: Mapping[str, Any],
    wkb: Any,
    layer: str,
    feature: str,
    layer_kind: str | None,
    *,
    src: NamedCrs,
    opts: ReadOptions,
    probs: Problems,
) -> Asset | None:
    values: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    for key, v in raw.items():
        target = FIELD_ALIASES.get(key)
        if key == "attrs" and isinstance(v, str):  # an export of ours: the other columns
            try:
                extra = json.loads(v)
            except ValueError:
                extra = None
            if isinstance(extra, dict):
                attrs.update(extra)
                continue
        if key in ("system", "source_crs"):
            continue  # an export's columns: the system follows the kind, the CRS is the file's
        if target is None:
            if v is not None:
                attrs[key] = v
        elif v is not None and target not in values:
            values[target] = v
    code = values.pop("code", None)
    if code is None:
        probs.add(layer, feature, "code", "has no asset id (a column id or code)")
        return None
    if isinstance(code, float) and code.is_integer():
        code = int(code)
    code = opts.prefix + str(code).strip()
    feature = code
    kind = values.pop("kind", None) or layer_kind or opts.kind
    if kind is None:
        probs.add(layer, feature, "kind", "has no kind: add a kind column, or import with --kind")
        return None
    kind = str(kind).strip().lower()
    if kind not in KINDS:
        probs.add(layer, feature, "kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")
        return None
    ok = True
    for name in list(values):
        v = values[name]
        if name in NUMBER_FIELDS:
            num = _number(v)
            if num is None:
                probs.add(layer, feature, name, f"must be a number, not {v!r}")
                ok = False
            values[name] = num
        elif name in INT_FIELDS:
            num = _number(v)
            if num is None or num != int(num):
                probs.add(layer, feature, name, f"must be a whole number, not {v!r}")
                ok = False
                values[name] = None
            else:
                values[name] = int(num)
        elif name in TEXT_FIELDS or name == "status":
            values[name] = str(v).strip() if not isinstance(v, float) else f"{v:g}"
    if wkb is None:
        probs.add(layer, feature, "geometry", "is missing")
        return None
    try:
        parsed: Geom = shapely.from_wkb(bytes(wkb))
    except shapely.errors.GEOSException as exc:
        probs.add(layer, feature, "geometry", f"cannot be read: {exc}")
        return None
    geom, z = _single(parsed)
    if geom is None:
        probs.add(layer, feature, "geometry", "is a multi-part geometry with several parts")
        return None
    if not shapely.is_valid(geom):
        probs.add(layer, feature, "geometry", f"is not valid: {shapely.is_valid_reason(geom)}")
        return None
    try:
        geom = to_wgs84(geom, src)
    except CrsError as exc:
        probs.add(layer, feature, "geometry", str(exc))
        return None
    if z is not None and "elevation_m" not in values and kind not in ("pipe",):
        values["elevation_m"] = z
    if "accuracy_m" not in values and opts.accuracy_m is not None:
        values["accuracy_m"] = opts.accuracy_m
    if not ok:
        return None
    try:
        return Asset(
            code=code, kind=kind, geometry=geom, source_crs=src.code, attrs=attrs, **values
        )
    except TypeError as exc:  # pragma: no cover - every key comes from FIELD_ALIASES
        probs.add(layer, feature, "", str(exc))
        return None


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, str):
        try:
            f = float(v.strip().replace(",", "."))
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _single(geom: Geom) -> tuple[Geom | None, float | None]:
    """A one-part geometry from ``geom`` (a multi-part one of one part is taken apart) and
    the first z coordinate, if any."""
    z = None
    if shapely.has_z(geom):
        coords = shapely.get_coordinates(geom, include_z=True)
        if len(coords) and math.isfinite(coords[0][2]):
            z = float(coords[0][2])
    t = geom_type(geom)
    if t.startswith("Multi"):
        if shapely.get_num_geometries(geom) != 1:
            return None, z
        geom = shapely.get_geometry(geom, 0)
    if geom_type(geom) == "LinearRing":
        geom = shapely.LineString(geom)
    return shapely.force_2d(geom), z


def _dxf_assets(
    layer: str,
    fids: Any,
    geoms: Any,
    names: list[str],
    data: Sequence[Any],
    *,
    src: NamedCrs,
    opts: ReadOptions,
    probs: Problems,
) -> list[Asset]:
    """A CAD drawing: each entity on a layer whose name says a kind (LAYER_KINDS or
    --layer-kind) becomes an asset coded by its drawing handle; entities on other layers are
    left out. A drawing with no such layer is refused, listing its layers."""
    col = {n.lower(): j for j, n in enumerate(names)}
    cad_layers = [str(v) for v in data[col["layer"]]]
    handles = [str(v) for v in data[col["entityhandle"]]] if "entityhandle" in col else []
    texts = data[col["text"]] if "text" in col else None
    kinds: dict[str, str] = {}
    for cad in sorted(set(cad_layers)):
        kind = opts.layer_kinds.get(cad) or LAYER_KINDS.get(cad.lower())
        if kind:
            kinds[cad] = kind
    if not kinds:
        probs.add(
            layer,
            "",
            "Layer",
            "the drawing has no layer that names a kind of asset (its layers: "
            f"{', '.join(sorted(set(cad_layers))) or 'none'}): name them with "
            "--layer-kind LAYER=KIND, for example --layer-kind VODOPROVOD=pipe",
        )
        return []
    out: list[Asset] = []
    for i in range(len(fids)):
        kind = kinds.get(cad_layers[i])
        if kind is None:
            continue
        if texts is not None and geoms[i] is not None:
            g = shapely.from_wkb(bytes(geoms[i]))
            if geom_type(g) == "Point" and texts[i] and kind in ("node",):
                continue  # labels
        handle = handles[i] if handles else str(int(fids[i]))
        raw = {"code": f"{cad_layers[i]}-{handle}"}
        a = _asset(
            raw, geoms[i], cad_layers[i], f"handle {handle}", kind, src=src, opts=opts, probs=probs
        )
        if a is not None:
            out.append(a.with_changes(attrs={"cad_layer": cad_layers[i], "cad_handle": handle}))
    return out


def _read_inp(path: Path, opts: ReadOptions, probs: Problems) -> ReadResult:
    """An EPANET model: junctions, reservoirs and tanks become nodes (a reservoir a tank
    with its kind kept), pipes pipes, valves valves/PRVs and pumps pumps (points at their
    middle, with the two nodes kept in attrs so that the model can be written back)."""
    from suvnet.errors import FileFormatError
    from suvnet.network import read_inp

    try:
        src = resolve(opts.crs, opts.local_crs)
    except CrsError as exc:
        probs.add("", "", "crs", str(exc) + " (an EPANET file does not say its own)")
        probs.raise_if_any()
        raise
    try:
        net = read_inp(path, crs="local")
    except FileFormatError as exc:
        probs.add("", "", exc.field or "", exc.message)
        probs.raise_if_any()
        raise
    out, where = network_assets(net, src, opts, probs)
    if net.pumps:
        from assets.epanet import read_curves

        curves = read_curves(path)
        out = [
            a.with_changes(
                attrs={**a.attrs, "head_curve_points": curves.get(str(a.attrs.get("head_curve")))}
            )
            if a.kind == "pump" and a.attrs.get("head_curve")
            else a
            for a in out
        ]
    probs.raise_if_any()
    return ReadResult(out, where, src.code)


def network_assets(
    net: Network, src: NamedCrs, opts: ReadOptions, probs: Problems
) -> tuple[list[Asset], dict[str, str]]:
    """The assets of a hydraulic network (:mod:`suvnet.network`) whose coordinates are in
    ``src``, and the section each came from."""
    out: list[Asset] = []
    where: dict[str, str] = {}
    pos: dict[str, tuple[float, float]] = {}
    p = opts.prefix

    def place(geom: Geom, section: str, code: str) -> Geom | None:
        try:
            return to_wgs84(geom, src)
        except CrsError as exc:
            probs.add(section, code, "geometry", str(exc))
            return None

    for n in net.nodes:
        if n.x is None or n.y is None:
            probs.add("JUNCTIONS", n.code, "geometry", "has no [COORDINATES]")
            continue
        pos[n.code] = (n.x, n.y)
        g = place(shapely.Point(n.x, n.y), "JUNCTIONS", n.code)
        if g is None:
            continue
        kind = "node" if n.kind == "junction" else "tank"
        attrs = {"epanet": n.kind, **dict(n.attrs)}
        if n.base_demand_lps is not None:
            attrs["base_demand_lps"] = n.base_demand_lps
        out.append(
            Asset(
                p + n.code,
                kind,
                g,
                elevation_m=n.elevation_m,
                source_crs=src.code,
                ref_code=n.code,
                attrs=attrs,
                accuracy_m=opts.accuracy_m,
            )
        )
        where[p + n.code] = "nodes"
    for pipe in net.pipes:
        coords = list(pipe.geometry or ())
        if len(coords) < 2 and pipe.from_node in pos and pipe.to_node in pos:
            coords = [pos[pipe.from_node], pos[pipe.to_node]]
        if len(coords) < 2:
            probs.add("PIPES", pipe.code, "geometry", "its nodes have no coordinates")
            continue
        g = place(shapely.LineString(coords), "PIPES", pipe.code)
        if g is None:
            continue
        attrs = {
            "epanet": "pipe",
            "from": pipe.from_node,
            "to": pipe.to_node,
            "length_m": pipe.length_m,
            "roughness": pipe.roughness,
            "pipe_status": pipe.status,
            **dict(pipe.attrs),
        }
        out.append(
            Asset(
                p + pipe.code,
                "pipe",
                g,
                diameter_mm=pipe.diameter_mm,
                material=pipe.material,
                install_year=pipe.install_year,
                source_crs=src.code,
                ref_code=pipe.code,
                attrs=attrs,
                accuracy_m=opts.accuracy_m,
            )
        )
        where[p + pipe.code] = "pipes"
    linked: list[tuple[Any, str, dict[str, Any]]] = [
        *(
            (
                v,
                "prv" if v.kind == "PRV" else "valve",
                {"valve_kind": v.kind, "setting": v.setting, "valve_status": v.status},
            )
            for v in net.valves
        ),
        *(
            (
                u,
                "pump",
                {
                    "pump_kind": u.kind,
                    "power_kw": u.power_kw,
                    "head_curve": u.head_curve,
                    "pump_status": u.status,
                },
            )
            for u in net.pumps
        ),
    ]
    for link, kind, extra in linked:
        a_xy, b_xy = pos.get(link.from_node), pos.get(link.to_node)
        if a_xy is None or b_xy is None:
            probs.add("VALVES", link.code, "geometry", "its nodes have no coordinates")
            continue
        g = place(
            shapely.Point((a_xy[0] + b_xy[0]) / 2, (a_xy[1] + b_xy[1]) / 2), "VALVES", link.code
        )
        if g is None:
            continue
        attrs = {
            "epanet": "valve" if kind != "pump" else "pump",
            "from": link.from_node,
            "to": link.to_node,
            **extra,
            **dict(link.attrs),
        }
        diameter = getattr(link, "diameter_mm", None)
        out.append(
            Asset(
                p + link.code,
                kind,
                g,
                diameter_mm=diameter,
                source_crs=src.code,
                ref_code=link.code,
                attrs=attrs,
                accuracy_m=opts.accuracy_m,
            )
        )
        where[p + link.code] = "valves" if kind != "pump" else "pumps"
    if net.info.headloss:
        out = [
            a.with_changes(attrs={**a.attrs, "headloss": net.info.headloss})
            if a.kind == "pipe"
            else a
            for a in out
        ]
    zones: dict[str, str] = {}
    for group in (net.nodes, net.valves, net.pumps):
        zones.update({x.code: x.zone for x in group if x.zone})
    out = [
        a.with_changes(zone=zones.get(a.ref_code or "") or zones.get(str(a.attrs.get("from"))))
        if zones.get(a.ref_code or "") or zones.get(str(a.attrs.get("from")))
        else a
        for a in out
    ]
    return out, where


# ------------------------------------------------------------------ writing
EXPORT_LAYERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "water_pipes": ("LineString", ("pipe",)),
    "service_connections": ("LineString", ("service_connection",)),
    "water_points": (
        "Point",
        (
            "valve",
            "hydrant",
            "prv",
            "pump",
            "well",
            "meter_chamber",
            "node",
            "tank",
            "pumping_station",
        ),
    ),
    "sewer_pipes": ("LineString", ("gravity_sewer", "pressure_sewer")),
    "sewer_points": ("Point", ("manhole", "sewer_pumping_station", "treatment_works")),
    "sites": ("Polygon", ("pumping_station", "tank", "sewer_pumping_station", "treatment_works")),
}
"""The layers of an export: name -> (geometry type, kinds). Stations, tanks and works are in
the point or the polygon layer by their geometry."""

EXPORT_FIELDS = (
    "code",
    "kind",
    "system",
    "name",
    "status",
    "material",
    "diameter_mm",
    "install_year",
    "depth_m",
    "elevation_m",
    "invert_start_m",
    "invert_end_m",
    "pressure_class",
    "owner",
    "condition_grade",
    "cadastral_no",
    "land_plot",
    "accuracy_m",
    "source_crs",
    "zone",
    "ref_code",
    "account_no",
    "feed_pipe",
)


def write_assets(
    path: Path, items: Sequence[Asset], crs: str = WGS84, local: Mapping[str, str] | None = None
) -> dict[str, int]:
    """Write ``items`` to a GeoPackage (one layer per :data:`EXPORT_LAYERS`) or a GeoJSON
    file (one layer), in ``crs``. Returns the number of features per layer."""
    dst = resolve(crs, local)
    suffix = path.suffix.lower()
    if suffix not in (".gpkg", ".geojson", ".json"):
        raise CrsError(f"export writes .gpkg or .geojson, not {suffix!r}")
    if path.exists():
        path.unlink()
    counts: dict[str, int] = {}
    if suffix == ".gpkg":
        for name, (gtype, kinds) in EXPORT_LAYERS.items():
            chosen = [a for a in items if a.kind in kinds and geom_type(a.geometry) == gtype]
            if chosen:
                _write_layer(
                    path, name, chosen, gtype=gtype, dst=dst, driver="GPKG", append=bool(counts)
                )
                counts[name] = len(chosen)
    else:
        if items:
            _write_layer(
                path,
                "assets",
                list(items),
                gtype="Unknown",
                dst=dst,
                driver="GeoJSON",
                append=False,
            )
        counts["assets"] = len(items)
    return counts


def _write_layer(
    path: Path,
    layer: str,
    items: Sequence[Asset],
    *,
    gtype: str,
    dst: NamedCrs,
    driver: str,
    append: bool,
) -> None:
    geoms = np.array([shapely.to_wkb(from_wgs84(a.geometry, dst)) for a in items], dtype=object)
    fields: list[np.ndarray[Any, Any]] = []
    for name in EXPORT_FIELDS:
        vals = [getattr(a, name) for a in items]
        if name in NUMBER_FIELDS:
            fields.append(np.array([np.nan if v is None else float(v) for v in vals]))
        elif name in INT_FIELDS:
            fields.append(np.array([None if v is None else int(v) for v in vals], dtype=object))
        else:
            fields.append(np.array([None if v is None else str(v) for v in vals], dtype=object))
    fields.append(np.array([json.dumps(dict(a.attrs), default=str) for a in items], dtype=object))
    pyogrio.raw.write(
        path,
        geoms,
        fields,
        [*EXPORT_FIELDS, "attrs"],
        layer=layer,
        driver=driver,
        geometry_type=gtype,
        crs=dst.crs.to_wkt(),
        append=append,
    )


def system_kinds(system: str) -> tuple[str, ...]:
    return SEWER_KINDS if system == "sewer" else tuple(k for k in KINDS if k not in SEWER_KINDS)
