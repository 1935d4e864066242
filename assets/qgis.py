"""The QGIS side of the register: the styles of the published layers, stored where QGIS
looks for a layer's default style (the table ``layer_styles``, as QGIS itself creates it), so
that a layer opened from the database is drawn styled at once.

The layers are the views ``qgis_*`` of migration 0700 (PostGIS only): each keyed by ``id``,
geometry ``geom`` in EPSG:4326. Their QML styles are in deploy/qgis (written by QGIS:
deploy/qgis/make_styles.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from assets.errors import AssetError

STYLE_DIR = Path(__file__).resolve().parent.parent / "deploy" / "qgis"
LAYERS: dict[str, str] = {
    "qgis_water_pipes": "water_pipes",
    "qgis_water_points": "water_points",
    "qgis_water_sites": "water_sites",
    "qgis_service_connections": "service_connections",
    "qgis_sewer_pipes": "sewer_pipes",
    "qgis_sewer_manholes": "sewer_manholes",
    "qgis_sewer_sites": "sewer_sites",
    "qgis_check_findings": "check_findings",
}
"""Layer view -> its style (deploy/qgis/<style>.qml)."""

LAYER_STYLES_DDL = """
CREATE TABLE IF NOT EXISTS public.layer_styles (
    id serial PRIMARY KEY,
    f_table_catalog varchar,
    f_table_schema varchar,
    f_table_name varchar,
    f_geometry_column varchar,
    stylename text,
    styleqml xml,
    stylesld xml,
    useasdefault boolean,
    description text,
    owner varchar(63) DEFAULT CURRENT_USER,
    ui xml,
    update_time timestamp DEFAULT CURRENT_TIMESTAMP,
    type varchar
)"""


def install_styles(conn: psycopg.Connection[Any], style_dir: Path = STYLE_DIR) -> int:
    """Store each layer's QML as its default style (replacing suvnet's earlier ones).
    Returns how many were stored."""
    row = conn.execute("SELECT value FROM suvnet_meta WHERE key = 'spatial_mode'").fetchone()
    if not row or row[0] != "postgis":
        raise AssetError(
            "the QGIS layers need PostGIS: this database keeps its geometries in the portable "
            "form (install PostGIS and migrate a new database with SUVNET_POSTGIS=on)"
        )
    db = conn.execute("SELECT current_database()").fetchone()
    assert db is not None
    conn.execute(LAYER_STYLES_DDL)
    n = 0
    for view, style in LAYERS.items():
        qml = (style_dir / f"{style}.qml").read_text(encoding="utf-8")
        conn.execute(
            "DELETE FROM public.layer_styles WHERE f_table_schema = 'public' "
            "AND f_table_name = %s AND stylename = %s",
            (view, f"suvnet {style}"),
        )
        conn.execute(
            "UPDATE public.layer_styles SET useasdefault = false "
            "WHERE f_table_schema = 'public' AND f_table_name = %s",
            (view,),
        )
        conn.execute(
            "INSERT INTO public.layer_styles (f_table_catalog, f_table_schema, f_table_name, "
            "f_geometry_column, stylename, styleqml, useasdefault, description, type) "
            "VALUES (%s, 'public', %s, 'geom', %s, XMLPARSE(DOCUMENT %s), true, %s, %s)",
            (
                db[0],
                view,
                f"suvnet {style}",
                qml,
                "suvnet's style (deploy/qgis)",
                "Point"
                if "points" in style or "manholes" in style or "findings" in style
                else ("Polygon" if "sites" in style else "Line"),
            ),
        )
        n += 1
    return n
