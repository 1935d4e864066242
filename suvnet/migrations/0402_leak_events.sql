-- Leak events (issue 19): the zone rule kind 'leak' keeps one alarm per leak, with a size
-- estimate in L/s (and m³ a day) and its 90 % interval on every leak alarm; the leak's
-- history (opened, size series, closed by a repair or because it is no longer seen) is in
-- leak_events. Replay runs list the rules that watched nothing. Owned by alarms
-- (docs/alarms.md).

-- ------------------------------------------------------------------ the 'leak' rule kind
DO $$
DECLARE
    c record;
BEGIN
    -- the kind list and the two checks that list the zone kinds (names are PostgreSQL's own)
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'alarm_rules'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%customer_leak%'
    LOOP
        EXECUTE format('ALTER TABLE alarm_rules DROP CONSTRAINT %I', c.conname);
    END LOOP;
END
$$;
ALTER TABLE alarm_rules ADD CONSTRAINT alarm_rules_kind_check CHECK (kind IN (
    'high', 'low', 'high_high', 'low_low', 'rate_of_change', 'flatline', 'offline',
    'meter_flags', 'service_min', 'mnf', 'water_balance', 'burst', 'customer_leak', 'leak',
    'flood'));
ALTER TABLE alarm_rules ADD CONSTRAINT alarm_rules_point_check CHECK (
    kind IN ('mnf', 'water_balance', 'burst', 'customer_leak', 'leak', 'flood', 'offline')
    OR point_id IS NOT NULL);
ALTER TABLE alarm_rules ADD CONSTRAINT alarm_rules_zone_check CHECK (
    kind NOT IN ('mnf', 'water_balance', 'burst', 'customer_leak', 'leak')
    OR zone_id IS NOT NULL);

-- ------------------------------------------------------------------ leak size on alarms
-- Every leak alarm (kinds leak, mnf, water_balance, burst) carries the estimated leak: L/s,
-- the 90 % interval, and the same in m³ a day, so that dispatchers can rank them.
ALTER TABLE alarms ADD COLUMN leak_lps double precision;
ALTER TABLE alarms ADD COLUMN leak_low_lps double precision;
ALTER TABLE alarms ADD COLUMN leak_high_lps double precision;
ALTER TABLE alarms ADD COLUMN leak_m3_day double precision
    GENERATED ALWAYS AS (leak_lps * 86.4) STORED;

-- ------------------------------------------------------------------ leak events
-- One row per leak found by a 'leak' rule: open (closed_at IS NULL) until it is reported
-- repaired (alarms.actions.repaired, `suvnet alarms repaired`) or no detector has seen it for
-- the rule's close_after_days. series: [[epoch seconds, L/s, low, high, detector], ...].
CREATE TABLE leak_events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id        bigint NOT NULL REFERENCES alarm_rules(id) ON DELETE CASCADE,
    run_id         bigint NOT NULL DEFAULT 0,
    zone_id        bigint REFERENCES zones(id) ON DELETE CASCADE,
    alarm_id       bigint REFERENCES alarms(id) ON DELETE SET NULL,
    opened_at      timestamptz NOT NULL,
    detector       text NOT NULL,
    size_lps       double precision,
    size_low_lps   double precision,
    size_high_lps  double precision,
    size_m3_day    double precision GENERATED ALWAYS AS (size_lps * 86.4) STORED,
    alarmed_lps    double precision,            -- the size when the alarm was last raised
    realarms       integer NOT NULL DEFAULT 0,  -- raised again because it grew
    series         jsonb NOT NULL DEFAULT '[]',
    updated_at     timestamptz,
    closed_at      timestamptz,
    close_reason   text CHECK (close_reason IN ('repaired', 'gone')),
    closed_by      text,
    close_comment  text,
    CHECK ((closed_at IS NULL) = (close_reason IS NULL))
);
CREATE UNIQUE INDEX leak_events_one_open_idx ON leak_events (rule_id, run_id)
    WHERE closed_at IS NULL;
CREATE INDEX leak_events_zone_idx ON leak_events (zone_id, opened_at);

-- ------------------------------------------------------------------ daily figures of 'leak'
ALTER TABLE zone_leak_daily ADD COLUMN metered_m3 double precision;
ALTER TABLE zone_leak_daily ADD COLUMN unmetered_m3 double precision;
ALTER TABLE zone_leak_daily ADD COLUMN night_lps double precision;
ALTER TABLE zone_leak_daily ADD COLUMN transfer_m3 double precision;
ALTER TABLE zone_leak_daily ADD COLUMN leak_lps double precision;

-- ------------------------------------------------------------------ replay problems
-- A rule that watched nothing in a replay (no points, or no readings in the window) is
-- listed here and printed by `suvnet alarms replay` (which then exits with code 1).
ALTER TABLE alarm_replay_runs ADD COLUMN problems text[] NOT NULL DEFAULT '{}';
