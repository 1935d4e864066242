-- Alarms (ISA-18.2 / IEC 62682): rules, per-rule lifecycle state, alarm occurrences, every
-- transition, operator positions, replay runs, notifications outbox with dead letters, and
-- daily leak analytics per zone. Owned by the alarms package (see docs/alarms.md).
--
-- run_id: 0 = live; > 0 = a replay run (alarm_replay_runs.id). Replayed rows never mix
-- with live ones; dashboards filter on replayed = false.

-- ------------------------------------------------------------------ operator positions
CREATE TABLE alarm_positions (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code   text NOT NULL UNIQUE,
    name   text NOT NULL DEFAULT ''
);
INSERT INTO alarm_positions (code, name) VALUES ('default', 'Default dispatcher position');

-- ------------------------------------------------------------------ rules
-- kind:
--   high, low, high_high, low_low   limit on a point, with deadband and on/off delays
--   rate_of_change                  |d value / d t| above limit_value (unit per hour)
--   flatline                        value changes less than deadband for params.window_s
--   offline                         the device of the point (or device_id) is offline for on_delay_s
--   meter_flags                     a bitfield point has any bit of params.mask set
--   service_min                     pressure below the zone's min_service_pressure_bar
--   mnf, water_balance, burst, customer_leak   zone leak analytics (zone_id)
--   flood                           created by the worker per operator position
CREATE TABLE alarm_rules (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code          text NOT NULL UNIQUE,
    name          text NOT NULL DEFAULT '',
    kind          text NOT NULL CHECK (kind IN (
                      'high', 'low', 'high_high', 'low_low', 'rate_of_change', 'flatline',
                      'offline', 'meter_flags', 'service_min',
                      'mnf', 'water_balance', 'burst', 'customer_leak', 'flood')),
    point_id      bigint REFERENCES points(id) ON DELETE CASCADE,
    zone_id       bigint REFERENCES zones(id) ON DELETE CASCADE,
    device_id     bigint REFERENCES devices(id) ON DELETE CASCADE,
    position_id   bigint NOT NULL DEFAULT 1 REFERENCES alarm_positions(id),
    priority      text NOT NULL DEFAULT 'medium'
                  CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    unit          text NOT NULL DEFAULT '',          -- bar, m, m3/h, L/s ... (documentation + checks)
    limit_value   double precision,
    deadband      double precision NOT NULL DEFAULT 0 CHECK (deadband >= 0),
    on_delay_s    double precision NOT NULL DEFAULT 0 CHECK (on_delay_s >= 0),
    off_delay_s   double precision NOT NULL DEFAULT 0 CHECK (off_delay_s >= 0),
    max_shelve_s  double precision NOT NULL DEFAULT 28800 CHECK (max_shelve_s > 0),
    params        jsonb NOT NULL DEFAULT '{}',
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (kind IN ('mnf', 'water_balance', 'burst', 'customer_leak', 'flood', 'offline')
           OR point_id IS NOT NULL),
    CHECK (kind NOT IN ('mnf', 'water_balance', 'burst', 'customer_leak') OR zone_id IS NOT NULL),
    CHECK (kind <> 'offline' OR point_id IS NOT NULL OR device_id IS NOT NULL)
);
CREATE INDEX alarm_rules_point_idx ON alarm_rules (point_id);
CREATE INDEX alarm_rules_zone_idx ON alarm_rules (zone_id);
CREATE UNIQUE INDEX alarm_rules_flood_idx ON alarm_rules (position_id) WHERE kind = 'flood';

-- ------------------------------------------------------------------ replay runs
CREATE TABLE alarm_replay_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    from_ts      timestamptz NOT NULL,
    to_ts        timestamptz NOT NULL CHECK (to_ts > from_ts),
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    started_by   text NOT NULL DEFAULT '',
    note         text NOT NULL DEFAULT '',
    alarms       integer NOT NULL DEFAULT 0
);

-- ------------------------------------------------------------------ lifecycle state per rule
-- One row per (rule, run, subject). subject is '' except for rules that watch many things
-- (customer_leak: the device code). The worker locks this row (FOR UPDATE SKIP LOCKED) while it
-- evaluates the rule, so two workers never evaluate the same rule at once.
CREATE TABLE alarm_rule_state (
    rule_id        bigint NOT NULL REFERENCES alarm_rules(id) ON DELETE CASCADE,
    run_id         bigint NOT NULL DEFAULT 0,
    subject        text NOT NULL DEFAULT '',
    state          text NOT NULL DEFAULT 'normal' CHECK (state IN (
                       'normal', 'unack', 'ack', 'rtn_unack', 'shelved', 'suppressed',
                       'out_of_service')),
    active         boolean NOT NULL DEFAULT false,   -- the process condition
    acked          boolean NOT NULL DEFAULT true,
    shelved_until  timestamptz,
    shelved_by     text,
    suppressed     boolean NOT NULL DEFAULT false,
    out_of_service boolean NOT NULL DEFAULT false,
    alarm_id       bigint,                           -- the open occurrence, if any
    watermark      timestamptz,                      -- last reading / period evaluated
    eval_state     jsonb NOT NULL DEFAULT '{}',      -- the rule evaluator's own state
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, run_id, subject)
);

-- ------------------------------------------------------------------ alarm occurrences
-- One row per occurrence: from the moment the alarm is raised until it is back to normal
-- (condition cleared and acknowledged). Shaped for Grafana: time columns + text labels.
CREATE TABLE alarms (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id       bigint NOT NULL REFERENCES alarm_rules(id) ON DELETE CASCADE,
    run_id        bigint NOT NULL DEFAULT 0,
    replayed      boolean GENERATED ALWAYS AS (run_id <> 0) STORED,
    subject       text NOT NULL DEFAULT '',
    kind          text NOT NULL,
    priority      text NOT NULL,
    position_id   bigint NOT NULL,
    zone_id       bigint,
    point_id      bigint,
    device_id     bigint,
    state         text NOT NULL,
    raised_at     timestamptz NOT NULL,             -- condition became active (event time)
    cleared_at    timestamptz,                      -- condition returned to normal
    acked_at      timestamptz,
    acked_by      text,
    ack_comment   text,
    closed_at     timestamptz,                      -- back to normal: occurrence finished
    value         double precision,
    message       text NOT NULL DEFAULT '',
    chattering    boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()  -- wall clock when the worker wrote it
);
-- at most one open occurrence per rule and subject: a second worker cannot double-alarm
CREATE UNIQUE INDEX alarms_one_open_idx ON alarms (rule_id, run_id, subject) WHERE closed_at IS NULL;
CREATE INDEX alarms_raised_idx ON alarms (raised_at);
CREATE INDEX alarms_open_idx ON alarms (state) WHERE closed_at IS NULL;
CREATE INDEX alarms_zone_idx ON alarms (zone_id, raised_at);

-- Every transition of every alarm (ISA-18.2 journal). Never updated.
CREATE TABLE alarm_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alarm_id    bigint REFERENCES alarms(id) ON DELETE CASCADE,
    rule_id     bigint NOT NULL REFERENCES alarm_rules(id) ON DELETE CASCADE,
    run_id      bigint NOT NULL DEFAULT 0,
    subject     text NOT NULL DEFAULT '',
    ts          timestamptz NOT NULL,               -- event time (reading time or operator time)
    event       text NOT NULL,                      -- activate, clear, ack, shelve, unshelve, ...
    from_state  text NOT NULL,
    to_state    text NOT NULL,
    user_name   text,
    comment     text,
    value       double precision,
    message     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alarm_events_ts_idx ON alarm_events (ts);
CREATE INDEX alarm_events_alarm_idx ON alarm_events (alarm_id);
CREATE INDEX alarm_events_rule_idx ON alarm_events (rule_id, run_id, ts);

-- ------------------------------------------------------------------ notifications
-- Routes: which channel gets which alarms. zone_id NULL = every zone.
CREATE TABLE alarm_routes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel       text NOT NULL CHECK (channel IN ('webhook', 'telegram', 'email', 'grafana')),
    target        text NOT NULL,                    -- URL, Telegram chat id, e-mail address
    zone_id       bigint REFERENCES zones(id) ON DELETE CASCADE,
    min_priority  text NOT NULL DEFAULT 'low'
                  CHECK (min_priority IN ('low', 'medium', 'high', 'urgent')),
    events        text[] NOT NULL DEFAULT '{activate,clear,ack}',
    enabled       boolean NOT NULL DEFAULT true,
    UNIQUE (channel, target, zone_id)
);

-- Outbox: one row per (event, route). status pending -> sent | dead (dead letter).
CREATE TABLE alarm_notifications (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         bigint NOT NULL REFERENCES alarm_events(id) ON DELETE CASCADE,
    route_id         bigint NOT NULL REFERENCES alarm_routes(id) ON DELETE CASCADE,
    channel          text NOT NULL,
    target           text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    UNIQUE (event_id, route_id)
);
CREATE INDEX alarm_notifications_due_idx ON alarm_notifications (next_attempt_at)
    WHERE status = 'pending';

-- ------------------------------------------------------------------ leak analytics results
CREATE TABLE zone_leak_daily (
    zone_id           bigint NOT NULL REFERENCES zones(id) ON DELETE CASCADE,
    day               date NOT NULL,
    run_id            bigint NOT NULL DEFAULT 0,
    inflow_m3         double precision,
    consumption_m3    double precision,
    losses_m3         double precision,
    nrw_pct           double precision,
    mnf_lps           double precision,
    mnf_baseline_lps  double precision,
    mnf_allowance_lps double precision,
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (zone_id, day, run_id)
);

-- Grafana-friendly view of the live alarm journal (annotations / tables).
CREATE VIEW alarm_journal AS
SELECT e.ts AS time, e.event, e.from_state, e.to_state, e.user_name, e.comment, e.value,
       e.message, r.code AS rule, r.kind, r.priority, z.code AS zone, p.code AS position,
       e.alarm_id
FROM alarm_events e
JOIN alarm_rules r ON r.id = e.rule_id
LEFT JOIN alarms a ON a.id = e.alarm_id
LEFT JOIN zones z ON z.id = coalesce(a.zone_id, r.zone_id)
JOIN alarm_positions p ON p.id = r.position_id
WHERE e.run_id = 0;
