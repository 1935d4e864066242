-- Ingest bookkeeping: committed telemetry batches (idempotency and end-to-end acks) and the
-- dirty 5-minute buckets that the rollup job re-aggregates (late data included).

-- One row per telemetry batch whose readings are committed. (gateway, boot, seq) identifies a
-- batch; a batch that arrives again is acknowledged again but never written twice.
CREATE TABLE ingest_batches (
    gateway_id    bigint      NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    boot          text        NOT NULL,
    seq           bigint      NOT NULL CHECK (seq >= 0),
    readings      integer     NOT NULL DEFAULT 0,
    rejected      integer     NOT NULL DEFAULT 0,
    sent_at       timestamptz,
    committed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, boot, seq)
);
CREATE INDEX ingest_batches_committed_idx ON ingest_batches (committed_at);
COMMENT ON TABLE ingest_batches IS
  'Telemetry batches committed by ingest; rows older than the retention are pruned';

-- 5-minute buckets (per point) that received readings since the rollup job last ran. The job
-- re-aggregates them from readings, then the 1 h and 1 d buckets above them. Every write
-- re-marks its buckets with a fresh ``mark``; the job deletes a bucket only if its mark is still
-- the one it aggregated, so readings committed meanwhile are never missed.
CREATE SEQUENCE ingest_rollup_mark_seq;
CREATE TABLE ingest_rollup_dirty (
    point_id  bigint      NOT NULL,
    bucket    timestamptz NOT NULL,
    mark      bigint      NOT NULL DEFAULT nextval('ingest_rollup_mark_seq'),
    PRIMARY KEY (point_id, bucket)
);

-- Progress of the rollup job (for lag monitoring).
CREATE TABLE ingest_rollup_watermark (
    name        text PRIMARY KEY,
    ran_at      timestamptz NOT NULL,
    buckets     integer NOT NULL DEFAULT 0
);
