-- The asset register (assets/): one register for the water and sewer networks, with every
-- change versioned, documents and photos, service connections and network-check reports.
--
-- Geometries are stored in WGS 84 (EPSG:4326, x = longitude, y = latitude) in two forms:
--   * always: geom_wkb (the geometry as WKB) and its bounding box minx..maxy (btree index), the
--     portable form that works on any PostgreSQL (spatial queries then run in shapely);
--   * PostGIS present (and suvnet.postgis <> 'off', see suvnet/migrate.py): also a real column
--     geom geometry(Geometry, 4326) with a GiST index, kept equal to geom_wkb by a trigger in
--     both directions, so QGIS edits geom and suvnet reads either.
-- The choice is recorded in suvnet_meta ('spatial_mode' = 'postgis' or 'portable'); later
-- migrations read it from there.

DO $$
DECLARE
    want text := coalesce(nullif(current_setting('suvnet.postgis', true), ''), 'auto');
    have boolean := EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'postgis');
BEGIN
    IF want = 'on' AND NOT have THEN
        RAISE EXCEPTION 'SUVNET_POSTGIS=on but the postgis extension is not available on this server';
    END IF;
    IF want <> 'off' AND have THEN
        EXECUTE 'CREATE EXTENSION IF NOT EXISTS postgis';
        INSERT INTO suvnet_meta VALUES ('spatial_mode', 'postgis');
    ELSE
        INSERT INTO suvnet_meta VALUES ('spatial_mode', 'portable');
    END IF;
END
$$;

-- Coordinate systems an import may name besides EPSG codes: local systems such as an SK-63
-- district zone, with the PROJ definition the survey office gives.
CREATE TABLE asset_crs (
    code        text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$'),
    name        text NOT NULL DEFAULT '',
    definition  text NOT NULL,          -- PROJ string or WKT, read by pyproj
    note        text NOT NULL DEFAULT ''
);

CREATE TABLE assets (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$'),
    system          text NOT NULL CHECK (system IN ('water', 'sewer')),
    kind            text NOT NULL CHECK (kind IN (
                        'pipe', 'valve', 'hydrant', 'prv', 'pump', 'pumping_station', 'tank',
                        'well', 'meter_chamber', 'service_connection', 'node',
                        'gravity_sewer', 'pressure_sewer', 'manhole', 'sewer_pumping_station',
                        'treatment_works')),
    name            text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('planned', 'active', 'abandoned')),
    material        text,
    diameter_mm     double precision CHECK (diameter_mm > 0 AND diameter_mm <= 5000),
    install_year    integer CHECK (install_year BETWEEN 1850 AND 2200),
    depth_m         double precision CHECK (depth_m BETWEEN 0 AND 200),
    elevation_m     double precision CHECK (elevation_m BETWEEN -500 AND 9000),
    invert_start_m  double precision CHECK (invert_start_m BETWEEN -500 AND 9000),
    invert_end_m    double precision CHECK (invert_end_m BETWEEN -500 AND 9000),
    pressure_class  text,
    owner           text,
    condition_grade smallint CHECK (condition_grade BETWEEN 1 AND 5),
    cadastral_no    text,
    land_plot       text,
    accuracy_m      double precision CHECK (accuracy_m >= 0),
    source_crs      text NOT NULL DEFAULT 'EPSG:4326',
    zone_id         bigint REFERENCES zones(id),
    ref_code        text,               -- the element of the hydraulic model (nodes/pipes/valves.code)
    house_id        bigint REFERENCES houses(id),
    account_id      bigint REFERENCES accounts(id),
    feed_asset_id   bigint REFERENCES assets(id),
    attrs           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attrs) = 'object'),
    geom_wkb        bytea NOT NULL,
    minx            double precision NOT NULL,
    miny            double precision NOT NULL,
    maxx            double precision NOT NULL,
    maxy            double precision NOT NULL,
    length_m        double precision CHECK (length_m >= 0),
    version         integer NOT NULL DEFAULT 1,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text NOT NULL DEFAULT '',
    CONSTRAINT assets_system_kind CHECK (
        (system = 'sewer') = (kind IN ('gravity_sewer', 'pressure_sewer', 'manhole',
                                       'sewer_pumping_station', 'treatment_works'))),
    CONSTRAINT assets_service_links CHECK (
        kind = 'service_connection'
        OR (house_id IS NULL AND account_id IS NULL AND feed_asset_id IS NULL)),
    CONSTRAINT assets_bbox CHECK (
        minx <= maxx AND miny <= maxy AND minx >= -180 AND maxx <= 180
        AND miny >= -90 AND maxy <= 90)
);
CREATE INDEX assets_bbox_idx ON assets (minx, miny);
CREATE INDEX assets_kind_idx ON assets (kind);
CREATE INDEX assets_zone_idx ON assets (zone_id);
CREATE INDEX assets_feed_idx ON assets (feed_asset_id) WHERE feed_asset_id IS NOT NULL;
CREATE INDEX assets_account_idx ON assets (account_id) WHERE account_id IS NOT NULL;
COMMENT ON TABLE assets IS
  'The water and sewer asset register. Coordinates in WGS 84; source_crs and accuracy_m say '
  'how they were surveyed. Edit through suvnet or the qgis_* views; every change is versioned '
  'in asset_versions.';

-- Every change of every asset: who, when, from where, the whole row after it (data) and the
-- changed fields with their old and new values (changes). Never updated or deleted.
CREATE TABLE asset_versions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asset_id    bigint NOT NULL,           -- no foreign key: the history outlives a deletion
    code        text NOT NULL,
    version     integer NOT NULL,
    op          text NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    changed_at  timestamptz NOT NULL,
    changed_by  text NOT NULL,
    source      text NOT NULL,
    data        jsonb NOT NULL,
    changes     jsonb NOT NULL DEFAULT '{}',
    UNIQUE (asset_id, version)
);
CREATE INDEX asset_versions_at_idx ON asset_versions (changed_at, asset_id);

-- Documents and photos attached to an asset (kept in the database, so a backup has them).
CREATE TABLE asset_documents (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asset_id      bigint NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('photo', 'document')),
    filename      text NOT NULL CHECK (length(filename) BETWEEN 1 AND 200),
    content_type  text NOT NULL,
    size_bytes    integer NOT NULL CHECK (size_bytes >= 0),
    sha256        text NOT NULL,
    content       bytea NOT NULL,
    note          text NOT NULL DEFAULT '',
    uploaded_at   timestamptz NOT NULL,
    uploaded_by   text NOT NULL
);
CREATE INDEX asset_documents_asset_idx ON asset_documents (asset_id);

-- Network checks: one run, its findings (each with a place to show on the map).
CREATE TABLE asset_check_runs (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ran_at    timestamptz NOT NULL,
    ran_by    text NOT NULL DEFAULT '',
    assets    integer NOT NULL,
    summary   jsonb NOT NULL DEFAULT '{}',
    took_s    double precision NOT NULL DEFAULT 0
);
CREATE TABLE asset_check_findings (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id    bigint NOT NULL REFERENCES asset_check_runs(id) ON DELETE CASCADE,
    check_kind text NOT NULL CHECK (check_kind IN ('dangling_end', 'unsnapped_end',
                   'disconnected', 'zone_cut', 'uphill_sewer')),
    asset_code text NOT NULL,
    lon       double precision NOT NULL,
    lat       double precision NOT NULL,
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX asset_check_findings_run_idx ON asset_check_findings (run_id);

-- Which kinds are lines, which points; stations, tanks and works may be points or polygons.
CREATE FUNCTION asset_geometry_types(p_kind text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_kind IN ('pipe', 'service_connection', 'gravity_sewer', 'pressure_sewer')
            THEN ARRAY['LineString']
        WHEN p_kind IN ('pumping_station', 'tank', 'sewer_pumping_station', 'treatment_works')
            THEN ARRAY['Point', 'Polygon']
        ELSE ARRAY['Point']
    END
$$;

-- Who and when of a change: the application sets suvnet.asset_actor, suvnet.asset_source and
-- suvnet.asset_at for its transaction; a direct database edit (QGIS) is recorded with the
-- database login and its application name.
CREATE FUNCTION asset_actor() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('suvnet.asset_actor', true), ''), session_user::text)
$$;
CREATE FUNCTION asset_source() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('suvnet.asset_source', true), ''),
                    'database: ' || coalesce(nullif(current_setting('application_name', true), ''),
                                             'sql'))
$$;
CREATE FUNCTION asset_at() RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('suvnet.asset_at', true), '')::timestamptz, now())
$$;

-- The fields a version compares (the bookkeeping columns are left out).
CREATE FUNCTION asset_fields(r jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT r - 'version' - 'updated_at' - 'updated_by' - 'geom' - 'minx' - 'miny' - 'maxx'
             - 'maxy' - 'length_m'
$$;

-- The checks every change passes, whoever makes it (the API, an import, QGIS, plain SQL):
-- the geometry type fits the kind; a pipe has a length. The geometry type is read from the
-- WKB header (byte order, then the type number), so this works without PostGIS too.
CREATE FUNCTION asset_before_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    gtype int;
    gname text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF asset_fields(to_jsonb(NEW)) = asset_fields(to_jsonb(OLD)) THEN
            RETURN NULL;  -- nothing changed: no new version
        END IF;
        IF NEW.id <> OLD.id THEN
            RAISE EXCEPTION 'asset %: field id cannot change', OLD.code USING ERRCODE = '23514';
        END IF;
        NEW.version := OLD.version + 1;
    ELSE
        NEW.version := 1;
    END IF;
    NEW.updated_at := asset_at();
    NEW.updated_by := asset_actor();
    IF NEW.geom_wkb IS NULL OR length(NEW.geom_wkb) < 5 THEN
        RAISE EXCEPTION 'asset %: field geometry is missing', NEW.code USING ERRCODE = '23514';
    END IF;
    IF get_byte(NEW.geom_wkb, 0) = 1 THEN
        gtype := get_byte(NEW.geom_wkb, 1) + 256 * get_byte(NEW.geom_wkb, 2);
    ELSE
        gtype := get_byte(NEW.geom_wkb, 4) + 256 * get_byte(NEW.geom_wkb, 3);
    END IF;
    gname := CASE gtype % 1000 WHEN 1 THEN 'Point' WHEN 2 THEN 'LineString'
                               WHEN 3 THEN 'Polygon' ELSE 'type ' || gtype END;
    IF NOT gname = ANY (asset_geometry_types(NEW.kind)) THEN
        RAISE EXCEPTION 'asset %: field geometry must be % for a %, not %', NEW.code,
            array_to_string(asset_geometry_types(NEW.kind), ' or '), NEW.kind, gname
            USING ERRCODE = '23514';
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION asset_after_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_f jsonb;
    new_f jsonb;
    diff  jsonb := '{}';
    k     text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO asset_versions (asset_id, code, version, op, changed_at, changed_by, source,
                                    data, changes)
        VALUES (OLD.id, OLD.code, OLD.version + 1, 'delete', asset_at(), asset_actor(),
                asset_source(), asset_fields(to_jsonb(OLD)), '{}');
        RETURN OLD;
    END IF;
    new_f := asset_fields(to_jsonb(NEW));
    IF TG_OP = 'UPDATE' THEN
        old_f := asset_fields(to_jsonb(OLD));
        FOR k IN SELECT key FROM jsonb_each(new_f) UNION SELECT key FROM jsonb_each(old_f) LOOP
            IF (old_f -> k) IS DISTINCT FROM (new_f -> k) THEN
                diff := diff || jsonb_build_object(k, jsonb_build_array(old_f -> k, new_f -> k));
            END IF;
        END LOOP;
    END IF;
    INSERT INTO asset_versions (asset_id, code, version, op, changed_at, changed_by, source, data,
                                changes)
    VALUES (NEW.id, NEW.code, NEW.version, lower(TG_OP), NEW.updated_at, NEW.updated_by,
            asset_source(), new_f, diff);
    RETURN NEW;
END
$$;

-- PostGIS: the geometry column, its index, and the trigger that keeps geom and geom_wkb (with
-- the bounding box and the length) equal, whichever of the two a change wrote. Created before
-- the checks' trigger (triggers fire in name order: assets_a_... before assets_b_...).
DO $$
BEGIN
    IF (SELECT value FROM suvnet_meta WHERE key = 'spatial_mode') = 'postgis' THEN
        EXECUTE 'ALTER TABLE assets ADD COLUMN geom geometry(Geometry, 4326)';
        EXECUTE 'CREATE INDEX assets_geom_gist ON assets USING gist (geom)';
        EXECUTE $f$
        CREATE FUNCTION asset_sync_geom() RETURNS trigger LANGUAGE plpgsql AS $b$
        BEGIN
            IF TG_OP = 'UPDATE' AND NEW.geom IS DISTINCT FROM OLD.geom THEN
                NEW.geom_wkb := ST_AsBinary(NEW.geom);              -- QGIS wrote geom
            ELSIF TG_OP = 'INSERT' AND NEW.geom IS NOT NULL THEN
                NEW.geom_wkb := ST_AsBinary(NEW.geom);
            ELSIF NEW.geom_wkb IS NOT NULL THEN
                NEW.geom := ST_SetSRID(ST_GeomFromWKB(NEW.geom_wkb), 4326);
            END IF;
            IF NEW.geom IS NULL THEN
                RAISE EXCEPTION 'asset %: field geometry is missing', NEW.code
                    USING ERRCODE = '23514';
            END IF;
            IF ST_SRID(NEW.geom) <> 4326 THEN
                RAISE EXCEPTION 'asset %: field geometry must be in EPSG:4326, not SRID %',
                    NEW.code, ST_SRID(NEW.geom) USING ERRCODE = '23514';
            END IF;
            IF NOT ST_IsValid(NEW.geom) OR ST_IsEmpty(NEW.geom) THEN
                RAISE EXCEPTION 'asset %: field geometry is not valid: %', NEW.code,
                    ST_IsValidReason(NEW.geom) USING ERRCODE = '23514';
            END IF;
            NEW.minx := ST_XMin(NEW.geom);
            NEW.miny := ST_YMin(NEW.geom);
            NEW.maxx := ST_XMax(NEW.geom);
            NEW.maxy := ST_YMax(NEW.geom);
            IF GeometryType(NEW.geom) = 'LINESTRING' THEN
                NEW.length_m := ST_Length(NEW.geom::geography);
            END IF;
            RETURN NEW;
        END
        $b$;
        $f$;
        EXECUTE 'CREATE TRIGGER assets_a_sync_geom BEFORE INSERT OR UPDATE ON assets '
                'FOR EACH ROW EXECUTE FUNCTION asset_sync_geom()';
    END IF;
END
$$;

CREATE TRIGGER assets_b_before_write BEFORE INSERT OR UPDATE ON assets
    FOR EACH ROW EXECUTE FUNCTION asset_before_write();
CREATE TRIGGER assets_c_after_write AFTER INSERT OR UPDATE OR DELETE ON assets
    FOR EACH ROW EXECUTE FUNCTION asset_after_write();

-- The layers QGIS edits (PostGIS only): one view per layer, keyed by id, with the geometry
-- in EPSG:4326. They are simple views of assets, so PostgreSQL writes through them and every
-- edit passes the triggers above (checks, versions). The WITH CHECK OPTION keeps an edit
-- inside its layer; the defaults fill the kind and system of a new feature.
DO $$
DECLARE
    cols text := 'id, code, name, kind, system, status, material, diameter_mm, install_year, '
                 'depth_m, elevation_m, invert_start_m, invert_end_m, pressure_class, owner, '
                 'condition_grade, cadastral_no, land_plot, accuracy_m, source_crs, zone_id, '
                 'ref_code, version, updated_at, updated_by, geom';
    layer record;
BEGIN
    IF (SELECT value FROM suvnet_meta WHERE key = 'spatial_mode') <> 'postgis' THEN
        RETURN;
    END IF;
    FOR layer IN SELECT * FROM (VALUES
        ('qgis_water_pipes', 'water', 'pipe', '''pipe'''),
        ('qgis_water_points', 'water', 'valve',
         '''valve'', ''hydrant'', ''prv'', ''pump'', ''well'', ''meter_chamber'', ''node'''),
        ('qgis_water_sites', 'water', 'pumping_station', '''pumping_station'', ''tank'''),
        ('qgis_service_connections', 'water', 'service_connection', '''service_connection'''),
        ('qgis_sewer_pipes', 'sewer', 'gravity_sewer', '''gravity_sewer'', ''pressure_sewer'''),
        ('qgis_sewer_manholes', 'sewer', 'manhole', '''manhole'''),
        ('qgis_sewer_sites', 'sewer', 'sewer_pumping_station',
         '''sewer_pumping_station'', ''treatment_works''')
    ) AS t(view_name, sys, default_kind, kinds) LOOP
        EXECUTE format('CREATE VIEW %I AS SELECT %s FROM assets WHERE kind IN (%s) '
                       'WITH CASCADED CHECK OPTION', layer.view_name, cols, layer.kinds);
        EXECUTE format('ALTER VIEW %I ALTER COLUMN kind SET DEFAULT %L',
                       layer.view_name, layer.default_kind);
        EXECUTE format('ALTER VIEW %I ALTER COLUMN system SET DEFAULT %L',
                       layer.view_name, layer.sys);
        EXECUTE format('COMMENT ON VIEW %I IS %L', layer.view_name,
                       'suvnet asset layer for QGIS (key: id, EPSG:4326); edits are checked '
                       'and versioned like any other change');
    END LOOP;
    -- the latest network-check findings, for QGIS to show
    EXECUTE $v$CREATE VIEW qgis_check_findings AS
        SELECT f.id, f.check_kind, f.asset_code, f.detail::text AS detail, r.ran_at,
               ST_SetSRID(ST_MakePoint(f.lon, f.lat), 4326)::geometry(Point, 4326) AS geom
        FROM asset_check_findings f JOIN asset_check_runs r ON r.id = f.run_id
        WHERE f.run_id = (SELECT max(id) FROM asset_check_runs)$v$;
END
$$;
