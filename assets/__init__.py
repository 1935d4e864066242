"""The asset-management GIS: one register of the water and sewer networks (pipes, valves,
hydrants, stations, manholes, service connections...) with every change versioned, CRS-aware
import and export (GDAL through pyogrio, EPANET, GeoJSON), network checks, the data of the
back office's map and the QGIS layers. See docs/assets.md.

Geometries live in PostGIS when the server has it, in a portable form (WKB and bounding boxes,
spatial queries in shapely) otherwise; :func:`assets.store.spatial_mode` tells which."""
