-- Database maintenance (suvnet db maintain): when each task last ran, and retention that
-- removes exactly the raw readings older than the limit, in both storage modes.

-- One row per maintenance task ('partitions', 'retention', 'compression'): its last run.
CREATE TABLE suvnet_maintenance (
    task         text PRIMARY KEY,
    last_run_at  timestamptz NOT NULL,
    duration_ms  integer     NOT NULL,
    ok           boolean     NOT NULL,
    detail       text        NOT NULL DEFAULT '',
    last_ok_at   timestamptz
);
COMMENT ON TABLE suvnet_maintenance IS
  'Last run of each suvnet db maintain task (shown by suvnet db status)';

-- The 0002 version dropped only whole partitions (plain) or chunks (TimescaleDB), so up to a
-- month (or 7 days) of older rows stayed, and it read the clock itself. This one takes "now",
-- drops what lies wholly before the cutoff and deletes the older rows left in the partition or
-- chunk that straddles it. Rollups (readings_5m, _1h, _1d) are not touched.
DROP FUNCTION suvnet_apply_retention(integer);

CREATE FUNCTION suvnet_apply_retention(
    p_days integer, p_now timestamptz DEFAULT now(), OUT dropped integer, OUT deleted bigint
) LANGUAGE plpgsql AS $$
DECLARE
    cutoff  timestamptz := p_now - make_interval(days => p_days);
    part    record;
BEGIN
    dropped := 0;
    deleted := 0;
    IF p_days <= 0 THEN
        RETURN;
    END IF;
    IF (SELECT value FROM suvnet_meta WHERE key = 'storage_mode') = 'timescaledb' THEN
        EXECUTE 'SELECT count(*) FROM drop_chunks(''readings'', older_than => $1)'
            INTO dropped USING cutoff;
    ELSE
        FOR part IN
            SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'readings'::regclass AND c.relname ~ '^readings_p[0-9]{6}$'
            ORDER BY c.relname
        LOOP
            IF (to_date(substr(part.relname, 11), 'YYYYMM') + interval '1 month')::timestamp
               AT TIME ZONE 'UTC' <= cutoff THEN
                EXECUTE format('DROP TABLE %I', part.relname);
                dropped := dropped + 1;
            END IF;
        END LOOP;
    END IF;
    DELETE FROM readings WHERE ts < cutoff;
    GET DIAGNOSTICS deleted = ROW_COUNT;
END
$$;
COMMENT ON FUNCTION suvnet_apply_retention(integer, timestamptz) IS
  'Removes raw readings older than p_days before p_now; returns (partitions or chunks dropped, rows deleted)';
