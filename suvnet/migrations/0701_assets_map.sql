-- The map without PostGIS finds a viewport's assets by their bounding boxes: the btree on
-- (minx, miny) bounds the search to the assets that start at most the widest asset's extent
-- left of the box. This index makes finding that extent a single index look-up.
CREATE INDEX assets_extent_idx ON assets ((greatest(maxx - minx, maxy - miny)));
