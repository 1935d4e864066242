-- Address registry and network/device registry (the utility's asset GIS).
-- Names are kept in Uzbek Latin (name_uz), Uzbek Cyrillic (name_uz_cyrl) and Russian (name_ru).
-- Coordinates: x = longitude, y = latitude (WGS84) where known; imported EPANET networks keep
-- the file's own planar coordinates and say so in networks.crs.

CREATE TABLE suvnet_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- ------------------------------------------------------------------ address registry
CREATE TABLE regions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code         text UNIQUE,                 -- SOATO code where it exists
    name_uz      text NOT NULL,
    name_uz_cyrl text,
    name_ru      text,
    UNIQUE (name_uz)
);

CREATE TABLE districts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    region_id    bigint NOT NULL REFERENCES regions(id),
    code         text UNIQUE,
    name_uz      text NOT NULL,
    name_uz_cyrl text,
    name_ru      text,
    UNIQUE (region_id, name_uz)
);

CREATE TABLE mahallas (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    district_id  bigint NOT NULL REFERENCES districts(id),
    code         text UNIQUE,                 -- MFY code where it exists
    name_uz      text NOT NULL,
    name_uz_cyrl text,
    name_ru      text,
    UNIQUE (district_id, name_uz)
);

CREATE TABLE streets (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mahalla_id   bigint NOT NULL REFERENCES mahallas(id),
    code         text,
    kind         text NOT NULL DEFAULT 'street',   -- street, avenue (shoh ko'cha), lane (tor ko'cha)...
    name_uz      text NOT NULL,
    name_uz_cyrl text,
    name_ru      text,
    UNIQUE (mahalla_id, name_uz)
);

CREATE TABLE houses (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    street_id     bigint NOT NULL REFERENCES streets(id),
    number        text NOT NULL,
    cadastral_no  text UNIQUE,
    lon           double precision CHECK (lon BETWEEN -180 AND 180),
    lat           double precision CHECK (lat BETWEEN -90 AND 90),
    UNIQUE (street_id, number)
);

CREATE TABLE apartments (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    house_id      bigint NOT NULL REFERENCES houses(id),
    number        text NOT NULL,
    cadastral_no  text UNIQUE,
    UNIQUE (house_id, number)
);

-- ------------------------------------------------------------------ network registry
CREATE TABLE zones (
    id                        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code                      text NOT NULL UNIQUE,
    name                      text NOT NULL,
    kind                      text NOT NULL DEFAULT 'dma'
                              CHECK (kind IN ('dma', 'pressure_zone', 'supply_zone')),
    parent_id                 bigint REFERENCES zones(id),
    min_service_pressure_bar  double precision,
    max_service_pressure_bar  double precision,
    geometry                  jsonb,                 -- GeoJSON Polygon or MultiPolygon
    CHECK (geometry IS NULL OR geometry->>'type' IN ('Polygon', 'MultiPolygon'))
);

CREATE TABLE nodes (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code         text NOT NULL UNIQUE,
    kind         text NOT NULL CHECK (kind IN ('junction', 'reservoir', 'tank')),
    zone_id      bigint REFERENCES zones(id),
    x            double precision,
    y            double precision,
    elevation_m  double precision,
    base_demand_lps double precision,
    attrs        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX nodes_zone_idx ON nodes (zone_id);

CREATE TABLE pipes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code          text NOT NULL UNIQUE,
    from_node_id  bigint NOT NULL REFERENCES nodes(id),
    to_node_id    bigint NOT NULL REFERENCES nodes(id),
    diameter_mm   double precision CHECK (diameter_mm > 0),
    material      text,
    length_m      double precision CHECK (length_m >= 0),
    install_year  integer CHECK (install_year BETWEEN 1850 AND 2200),
    roughness     double precision,
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed', 'cv')),
    geometry      jsonb,                             -- GeoJSON LineString incl. end points
    CHECK (geometry IS NULL OR geometry->>'type' = 'LineString')
);
CREATE INDEX pipes_from_idx ON pipes (from_node_id);
CREATE INDEX pipes_to_idx ON pipes (to_node_id);

CREATE TABLE valves (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code          text NOT NULL UNIQUE,
    kind          text NOT NULL CHECK (kind IN ('PRV', 'PSV', 'PBV', 'FCV', 'TCV', 'GPV', 'isolation')),
    from_node_id  bigint NOT NULL REFERENCES nodes(id),
    to_node_id    bigint NOT NULL REFERENCES nodes(id),
    diameter_mm   double precision,
    setting       double precision,                 -- PRV: outlet pressure in metres of head
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'open', 'closed')),
    zone_id       bigint REFERENCES zones(id)
);

-- ------------------------------------------------------------------ gateways, devices, points
CREATE TABLE gateways (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code         text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    name         text NOT NULL DEFAULT '',
    zone_id      bigint REFERENCES zones(id),
    allowed      boolean NOT NULL DEFAULT true,   -- false: ingest dead-letters its telemetry
    x            double precision,
    y            double precision,
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code         text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    gateway_id   bigint REFERENCES gateways(id),
    kind         text NOT NULL CHECK (kind IN ('pressure_sensor', 'prv_controller',
                                               'district_meter', 'customer_meter')),
    profile      text NOT NULL,                    -- firmware_configs/<profile>.yaml
    unit_id      integer CHECK (unit_id BETWEEN 0 AND 247),
    node_id      bigint REFERENCES nodes(id),      -- where it sits in the network
    pipe_id      bigint REFERENCES pipes(id),      -- flow meters: the pipe they measure
    zone_id      bigint REFERENCES zones(id),
    flow_sign    smallint NOT NULL DEFAULT 1 CHECK (flow_sign IN (-1, 1)),  -- into the zone = +1
    x            double precision,
    y            double precision,
    serial_no    text,
    enabled      boolean NOT NULL DEFAULT true,
    attrs        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX devices_gateway_idx ON devices (gateway_id);
CREATE INDEX devices_zone_idx ON devices (zone_id);

CREATE TABLE points (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id      bigint NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    unit           text NOT NULL DEFAULT '',
    kind           text NOT NULL DEFAULT 'analog'
                   CHECK (kind IN ('analog', 'counter', 'status', 'setpoint', 'bitfield')),
    poll_period_s  double precision NOT NULL DEFAULT 60 CHECK (poll_period_s > 0),
    UNIQUE (device_id, name)
);
