"""Writes the QML styles of the layers suvnet publishes for QGIS (deploy/qgis/*.qml), with
QGIS's own API, so that the files are what QGIS itself writes. Run with the python that has
QGIS (Debian: /usr/bin/python3 with python3-qgis), headless:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 deploy/qgis/make_styles.py

The styles are also stored in the database for QGIS to apply by itself when a layer is
opened (``suvnet assets qgis-styles``, table layer_styles).
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import (  # type: ignore[import-not-found]
    QgsApplication,
    QgsCategorizedSymbolRenderer,
    QgsFillSymbol,
    QgsGraduatedSymbolRenderer,
    QgsLineSymbol,
    QgsMapLayer,
    QgsMarkerSymbol,
    QgsRendererCategory,
    QgsRendererRange,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
)

HERE = Path(__file__).resolve().parent
FIELDS = "&".join(
    f"field={f}"
    for f in (
        "code:string",
        "kind:string",
        "status:string",
        "diameter_mm:double",
        "check_kind:string",
    )
)


def mem(gtype: str) -> QgsVectorLayer:
    return QgsVectorLayer(f"{gtype}?crs=EPSG:4326&{FIELDS}", "style", "memory")


def water_pipes() -> QgsVectorLayer:
    lyr = mem("LineString")
    ranges = []
    for lo, hi, colour, width, label in (
        (0, 63, "127,184,230", 0.4, "≤ 63 mm"),
        (63, 110, "61,143,209", 0.7, "63–110 mm"),
        (110, 200, "11,93,143", 1.0, "110–200 mm"),
        (200, 5000, "6,47,74", 1.4, "> 200 mm"),
    ):
        sym = QgsLineSymbol.createSimple({"line_color": colour, "line_width": str(width)})
        ranges.append(QgsRendererRange(lo, hi, sym, label))
    r = QgsGraduatedSymbolRenderer("diameter_mm", ranges)
    lyr.setRenderer(r)
    return lyr


def simple_line(colour: str, width: str) -> QgsVectorLayer:
    lyr = mem("LineString")
    sym = QgsLineSymbol.createSimple({"line_color": colour, "line_width": width})
    lyr.setRenderer(QgsSingleSymbolRenderer(sym))
    return lyr


def sewer_pipes() -> QgsVectorLayer:
    lyr = mem("LineString")
    sym = QgsLineSymbol.createSimple(
        {"line_color": "154,106,58", "line_width": "0.6", "line_style": "dash"}
    )
    lyr.setRenderer(QgsSingleSymbolRenderer(sym))
    return lyr


def points(colours: dict[str, str]) -> QgsVectorLayer:
    lyr = mem("Point")
    cats = []
    for kind, colour in colours.items():
        sym = QgsMarkerSymbol.createSimple(
            {"name": "circle", "color": colour, "size": "2.4", "outline_color": "255,255,255"}
        )
        cats.append(QgsRendererCategory(kind, sym, kind))
    lyr.setRenderer(QgsCategorizedSymbolRenderer("kind", cats))
    return lyr


def sites() -> QgsVectorLayer:
    lyr = mem("Polygon")
    sym = QgsFillSymbol.createSimple({"color": "11,93,143,60", "outline_color": "11,93,143"})
    lyr.setRenderer(QgsSingleSymbolRenderer(sym))
    return lyr


def findings() -> QgsVectorLayer:
    lyr = mem("Point")
    cats = []
    for kind, colour in (
        ("dangling_end", "192,34,27"),
        ("unsnapped_end", "224,123,0"),
        ("disconnected", "142,68,173"),
        ("zone_cut", "217,179,0"),
        ("uphill_sewer", "122,74,30"),
    ):
        sym = QgsMarkerSymbol.createSimple({"name": "triangle", "color": colour, "size": "4"})
        cats.append(QgsRendererCategory(kind, sym, kind))
    lyr.setRenderer(QgsCategorizedSymbolRenderer("check_kind", cats))
    return lyr


STYLES = {
    "water_pipes": water_pipes,
    "service_connections": lambda: simple_line("107,119,133", "0.25"),
    "water_points": lambda: points(
        {
            "valve": "28,36,48",
            "prv": "142,68,173",
            "hydrant": "192,34,27",
            "pump": "211,84,0",
            "well": "22,160,133",
            "meter_chamber": "42,157,60",
            "node": "127,184,230",
        }
    ),
    "water_sites": sites,
    "sewer_pipes": sewer_pipes,
    "sewer_manholes": lambda: points({"manhole": "122,74,30"}),
    "sewer_sites": sites,
    "check_findings": findings,
}


def main() -> None:
    app = QgsApplication([], False)
    app.initQgis()
    for name, make in STYLES.items():
        lyr = make()
        msg, ok = lyr.saveNamedStyle(str(HERE / f"{name}.qml"), QgsMapLayer.Symbology)
        if not ok:
            raise SystemExit(f"{name}: {msg}")
    app.exitQgis()


if __name__ == "__main__":
    main()
