-- Telemetry storage: readings, rollups, device/gateway state and dead letters.
-- readings has the same columns in both storage modes:
--   * TimescaleDB present (and suvnet.timescaledb <> 'off'): a hypertable, compressed and
--     segmented by point_id;
--   * otherwise: a table partitioned by month on ts, partitions created ahead by
--     suvnet_ensure_readings_partitions() and a default partition so that nothing is lost.

DO $$
DECLARE
    want text := coalesce(nullif(current_setting('suvnet.timescaledb', true), ''), 'auto');
    have boolean := EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb');
BEGIN
    IF want = 'on' AND NOT have THEN
        RAISE EXCEPTION 'SUVNET_TIMESCALEDB=on but the timescaledb extension is not available on this server';
    END IF;
    IF want <> 'off' AND have THEN
        EXECUTE 'CREATE EXTENSION IF NOT EXISTS timescaledb';
        EXECUTE $t$
            CREATE TABLE readings (
                ts       timestamptz      NOT NULL,
                point_id bigint           NOT NULL,
                value    double precision,
                quality  smallint         NOT NULL DEFAULT 0 CHECK (quality BETWEEN 0 AND 3),
                PRIMARY KEY (point_id, ts)
            )$t$;
        PERFORM create_hypertable('readings', 'ts', chunk_time_interval => interval '7 days');
        EXECUTE $t$ALTER TABLE readings SET (timescaledb.compress,
                    timescaledb.compress_segmentby = 'point_id',
                    timescaledb.compress_orderby = 'ts')$t$;
        PERFORM add_compression_policy('readings', interval '14 days');
        INSERT INTO suvnet_meta VALUES ('storage_mode', 'timescaledb');
    ELSE
        EXECUTE $t$
            CREATE TABLE readings (
                ts       timestamptz      NOT NULL,
                point_id bigint           NOT NULL,
                value    double precision,
                quality  smallint         NOT NULL DEFAULT 0 CHECK (quality BETWEEN 0 AND 3),
                PRIMARY KEY (point_id, ts)
            ) PARTITION BY RANGE (ts)$t$;
        EXECUTE 'CREATE TABLE readings_default PARTITION OF readings DEFAULT';
        EXECUTE 'CREATE INDEX readings_ts_brin ON readings USING brin (ts)';
        INSERT INTO suvnet_meta VALUES ('storage_mode', 'partitioned');
    END IF;
END
$$;

COMMENT ON TABLE readings IS
  'Raw telemetry: one row per (point, ts). quality: 0 good, 1 stale, 2 comm-fail, 3 out-of-range';

-- Creates the monthly partitions of readings from p_from to p_until (plain mode only).
-- Rows that already sit in the default partition for a new month are moved into it.
CREATE FUNCTION suvnet_ensure_readings_partitions(p_from timestamptz, p_until timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    m       date := date_trunc('month', p_from AT TIME ZONE 'UTC')::date;
    created integer := 0;
    pname   text;
    lo      timestamptz;
    hi      timestamptz;
BEGIN
    IF (SELECT value FROM suvnet_meta WHERE key = 'storage_mode') <> 'partitioned' THEN
        RETURN 0;
    END IF;
    WHILE m <= (p_until AT TIME ZONE 'UTC')::date LOOP
        pname := format('readings_p%s', to_char(m, 'YYYYMM'));
        lo := (m::timestamp AT TIME ZONE 'UTC');
        hi := ((m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
        IF to_regclass(pname) IS NULL THEN
            -- serialize concurrent callers
            PERFORM pg_advisory_xact_lock(hashtext('suvnet_readings_partitions'));
            IF to_regclass(pname) IS NULL THEN
                EXECUTE format('CREATE TABLE %I (LIKE readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', pname);
                EXECUTE format('WITH moved AS (DELETE FROM readings_default WHERE ts >= %L AND ts < %L RETURNING *)
                                INSERT INTO %I SELECT * FROM moved', lo, hi, pname);
                EXECUTE format('ALTER TABLE readings ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                               pname, lo, hi);
                created := created + 1;
            END IF;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN created;
END
$$;

SELECT suvnet_ensure_readings_partitions(now() - interval '1 month', now() + interval '3 months');

-- Drops (plain mode: whole partitions; TimescaleDB: chunks) of readings older than p_days.
CREATE FUNCTION suvnet_apply_retention(p_days integer) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    cutoff  timestamptz := now() - make_interval(days => p_days);
    dropped integer := 0;
    part    record;
BEGIN
    IF p_days <= 0 THEN
        RETURN 0;
    END IF;
    IF (SELECT value FROM suvnet_meta WHERE key = 'storage_mode') = 'timescaledb' THEN
        EXECUTE format('SELECT count(*) FROM drop_chunks(%L, older_than => %L::timestamptz)',
                       'readings', cutoff) INTO dropped;
        RETURN dropped;
    END IF;
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'readings'::regclass AND c.relname ~ '^readings_p[0-9]{6}$'
    LOOP
        IF (to_date(substr(part.relname, 11), 'YYYYMM') + interval '1 month')::timestamp
           AT TIME ZONE 'UTC' <= cutoff THEN
            EXECUTE format('DROP TABLE %I', part.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    DELETE FROM readings_default WHERE ts < cutoff;
    RETURN dropped;
END
$$;

-- ------------------------------------------------------------------ rollups
-- Maintained by ingest (a watermark job that re-aggregates buckets touched by late data).
-- avg = sum / count; "last" is the value at last_ts.
CREATE TABLE readings_5m (
    point_id bigint NOT NULL, bucket timestamptz NOT NULL,
    min double precision, max double precision, sum double precision,
    count integer NOT NULL, last double precision, last_ts timestamptz,
    avg double precision GENERATED ALWAYS AS (CASE WHEN count > 0 THEN sum / count END) STORED,
    PRIMARY KEY (point_id, bucket)
);
CREATE TABLE readings_1h (LIKE readings_5m INCLUDING ALL);
CREATE TABLE readings_1d (LIKE readings_5m INCLUDING ALL);
CREATE INDEX readings_5m_bucket_idx ON readings_5m (bucket);
CREATE INDEX readings_1h_bucket_idx ON readings_1h (bucket);
CREATE INDEX readings_1d_bucket_idx ON readings_1d (bucket);

-- ------------------------------------------------------------------ state
CREATE TABLE gateway_state (
    gateway_id  bigint PRIMARY KEY REFERENCES gateways(id) ON DELETE CASCADE,
    state       text NOT NULL CHECK (state IN ('online', 'offline', 'unknown')),
    since       timestamptz NOT NULL,
    last_seen   timestamptz,
    boot        text,
    health      jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE gateway_state_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gateway_id  bigint NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    ts          timestamptz NOT NULL,
    state       text NOT NULL,
    reason      text NOT NULL DEFAULT ''
);
CREATE INDEX gateway_state_history_idx ON gateway_state_history (gateway_id, ts);

CREATE TABLE device_state (
    device_id   bigint PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    state       text NOT NULL CHECK (state IN ('online', 'offline', 'unknown')),
    since       timestamptz NOT NULL,
    last_seen   timestamptz,
    last_error  text
);
CREATE TABLE device_state_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id   bigint NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    ts          timestamptz NOT NULL,
    state       text NOT NULL,
    reason      text NOT NULL DEFAULT ''
);
CREATE INDEX device_state_history_idx ON device_state_history (device_id, ts);

-- ------------------------------------------------------------------ dead letters
CREATE TABLE dead_letters (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    topic        text NOT NULL,
    payload      bytea NOT NULL,
    reason       text NOT NULL,
    detail       text NOT NULL DEFAULT '',
    gateway      text
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at);
CREATE INDEX dead_letters_reason_idx ON dead_letters (reason);
