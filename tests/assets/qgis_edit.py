"""Run by tests/assets/test_qgis.py with Debian's python3 (where python3-qgis lives), headless
(QT_QPA_PLATFORM=offscreen): what a QGIS user does, through QGIS's own API and its postgres
provider. Prints one JSON line with what happened.

argv: database connection string (libpq key=value), the .qml style to load.
"""

from __future__ import annotations

import json
import sys

from qgis.core import (  # type: ignore[import-not-found]
    QgsApplication,
    QgsDataSourceUri,
    QgsGeometry,
    QgsPointXY,
    QgsVectorLayer,
    QgsVectorLayerUtils,
)


def layer(conninfo: str, view: str, gtype: str) -> QgsVectorLayer:
    uri = QgsDataSourceUri(conninfo)
    uri.setDataSource("public", view, "geom", "", "id")
    uri.setSrid("4326")
    uri.setWkbType({"LineString": 2, "Point": 1}[gtype])
    return QgsVectorLayer(uri.uri(False), view, "postgres")


def main() -> None:
    conninfo, qml = sys.argv[1], sys.argv[2]
    app = QgsApplication([], False)
    app.initQgis()
    out: dict[str, object] = {}
    log: list[str] = []
    QgsApplication.messageLog().messageReceived.connect(
        lambda msg, tag, level: log.append(f"{tag}: {msg}")
    )
    out["log"] = log
    pipes = layer(conninfo, "qgis_water_pipes", "LineString")
    out["valid"] = pipes.isValid()
    out["crs"] = pipes.crs().authid()
    out["count"] = pipes.featureCount()
    out["default_renderer"] = pipes.renderer().type()  # from layer_styles, when stored
    _, ok = pipes.loadNamedStyle(qml)
    out["style"] = bool(ok)
    # 1. change an attribute and the geometry of pipe QP-1, commit
    feat = next(f for f in pipes.getFeatures() if f["code"] == "QP-1")
    pipes.startEditing()
    pipes.changeAttributeValue(feat.id(), pipes.fields().indexOf("diameter_mm"), 250.0)
    line = QgsGeometry.fromPolylineXY([QgsPointXY(71.6000, 40.4600), QgsPointXY(71.6020, 40.4610)])
    pipes.changeGeometry(feat.id(), line)
    out["commit"] = pipes.commitChanges()
    out["errors"] = pipes.commitErrors()
    # 2. a new pipe drawn in QGIS (kind and system come from the layer's defaults)
    pipes.startEditing()
    # as QGIS's "Add feature" tool does: the layer's defaults (kind, system, status, id)
    fields = pipes.fields()
    new = QgsVectorLayerUtils.createFeature(
        pipes,
        QgsGeometry.fromPolylineXY([QgsPointXY(71.6020, 40.4610), QgsPointXY(71.6030, 40.4620)]),
        {fields.indexOf("code"): "QP-NEW", fields.indexOf("diameter_mm"): 90.0},
    )
    pipes.addFeature(new)
    out["commit_new"] = pipes.commitChanges()
    out["errors_new"] = pipes.commitErrors()
    # 3. an edit the register refuses: nothing of it is saved, QGIS says why
    pipes.startEditing()
    feat = next(f for f in pipes.getFeatures() if f["code"] == "QP-2")
    pipes.changeAttributeValue(feat.id(), pipes.fields().indexOf("status"), "broken")
    out["commit_bad"] = pipes.commitChanges()
    out["errors_bad"] = " ".join(pipes.commitErrors())
    pipes.rollBack()
    # 4. the valves layer opens too
    valves = layer(conninfo, "qgis_water_points", "Point")
    out["valves_valid"] = valves.isValid()
    out["valves"] = valves.featureCount()
    print(json.dumps(out))
    app.exitQgis()


if __name__ == "__main__":
    main()
