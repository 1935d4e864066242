-- Imported networks and pumps.
-- A network is one imported hydraulic model (an EPANET .inp file, a GeoJSON file or the inline
-- network of a site file). It records the coordinate reference system (CRS) of the coordinates
-- of its nodes and pipes: 'EPSG:4326' (longitude, latitude), another 'EPSG:nnnn' code, or
-- 'local' for the planar drawing coordinates an EPANET file often has.

CREATE TABLE networks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    name        text NOT NULL DEFAULT '',
    crs         text NOT NULL DEFAULT 'local' CHECK (crs = 'local' OR crs ~ '^EPSG:[0-9]{4,6}$'),
    source      text NOT NULL DEFAULT '',          -- file name it was imported from
    headloss    text CHECK (headloss IN ('H-W', 'D-W', 'C-M')),  -- how pipes.roughness reads
    attrs       jsonb NOT NULL DEFAULT '{}'
);

ALTER TABLE nodes  ADD COLUMN network_id bigint REFERENCES networks(id);
ALTER TABLE pipes  ADD COLUMN network_id bigint REFERENCES networks(id);
ALTER TABLE pipes  ADD COLUMN attrs jsonb NOT NULL DEFAULT '{}';
ALTER TABLE valves ADD COLUMN network_id bigint REFERENCES networks(id);
ALTER TABLE valves ADD COLUMN geometry jsonb
    CHECK (geometry IS NULL OR geometry->>'type' = 'LineString');
ALTER TABLE valves ADD COLUMN attrs jsonb NOT NULL DEFAULT '{}';
CREATE INDEX nodes_network_idx ON nodes (network_id);
CREATE INDEX pipes_network_idx ON pipes (network_id);
CREATE INDEX valves_network_idx ON valves (network_id);

CREATE TABLE pumps (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code          text NOT NULL UNIQUE,
    network_id    bigint REFERENCES networks(id),
    from_node_id  bigint NOT NULL REFERENCES nodes(id),
    to_node_id    bigint NOT NULL REFERENCES nodes(id),
    kind          text NOT NULL DEFAULT 'head' CHECK (kind IN ('head', 'power')),
    power_kw      double precision CHECK (power_kw > 0),   -- kind 'power'
    head_curve    text,                                    -- kind 'head': EPANET curve name
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    zone_id       bigint REFERENCES zones(id),
    geometry      jsonb CHECK (geometry IS NULL OR geometry->>'type' = 'LineString'),
    attrs         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX pumps_network_idx ON pumps (network_id);
