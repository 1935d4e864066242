-- Asset operations (issue 17; docs/assets.md): critical customers, work orders (repairs,
-- inspections, replacements, new connections, flushing) with the valves they operated, their
-- photos and their journal, and planned outages with the subscribers they cut off and the
-- notices sent to them. Owned by the assets package.
--
-- Valve isolation itself needs no table: it is computed from the register (assets) each time.
-- A valve that cannot be closed is marked in its attributes (attrs.operable = false); a valve
-- kept closed in normal operation (a zone boundary) has attrs.valve_status = 'closed'.

-- ------------------------------------------------------------------ critical customers
-- Accounts to be told first and kept in mind when water is cut: hospitals, clinics, home
-- dialysis, schools, kindergartens, care homes. A flag on the account, kept beside billing's
-- accounts table (billing owns that table and does not need to know).
CREATE TABLE critical_customers (
    account_id  bigint PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('hospital', 'clinic', 'home_dialysis', 'school',
                    'kindergarten', 'care_home', 'other')),
    note        text NOT NULL DEFAULT '' CHECK (length(note) <= 500),
    updated_at  timestamptz NOT NULL,
    updated_by  text NOT NULL
);
COMMENT ON TABLE critical_customers IS
  'Accounts listed first when an isolation cuts them off (schools, clinics...); assets owns it';

-- ------------------------------------------------------------------ work orders
-- One job on one asset. A repair names its failure kind by the time it is closed (the renewal
-- ranking counts them); one started by an alarm names it (alarm_id), and closing it reports
-- the repair to the alarm (alarms.actions.repaired): alarm_link says what the alarm side
-- answered. Times in UTC. The cost is in tiyin.
CREATE TABLE work_orders (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asset_id         bigint NOT NULL REFERENCES assets(id),
    kind             text NOT NULL CHECK (kind IN ('repair', 'inspection', 'replacement',
                         'new_connection', 'flushing')),
    failure          text CHECK (failure IN ('break', 'joint_leak', 'corrosion', 'third_party')),
    status           text NOT NULL DEFAULT 'open'
                     CHECK (status IN ('open', 'closed', 'cancelled')),
    alarm_id         bigint REFERENCES alarms(id) ON DELETE SET NULL,
    lon              double precision CHECK (lon BETWEEN -180 AND 180),
    lat              double precision CHECK (lat BETWEEN -90 AND 90),
    reported_at      timestamptz NOT NULL,
    planned_for      date,
    started_at       timestamptz,
    ended_at         timestamptz,
    crew             text NOT NULL DEFAULT '' CHECK (length(crew) <= 200),
    description      text NOT NULL DEFAULT '' CHECK (length(description) <= 4000),
    materials        jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(materials) = 'array'),
    cost_tiyin       bigint NOT NULL DEFAULT 0 CHECK (cost_tiyin >= 0),
    water_lost_m3    double precision CHECK (water_lost_m3 >= 0),
    water_lost_note  text NOT NULL DEFAULT '',
    alarm_link       text NOT NULL DEFAULT '',
    version          integer NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL,
    created_by       text NOT NULL,
    updated_at       timestamptz NOT NULL,
    updated_by       text NOT NULL,
    closed_at        timestamptz,
    closed_by        text,
    CONSTRAINT work_orders_end_after_start
        CHECK (ended_at IS NULL OR started_at IS NULL OR ended_at >= started_at),
    CONSTRAINT work_orders_failure_kind
        CHECK (failure IS NULL OR kind IN ('repair', 'replacement')),
    CONSTRAINT work_orders_closed_at CHECK ((status = 'open') = (closed_at IS NULL)),
    CONSTRAINT work_orders_closed_dates
        CHECK (status <> 'closed' OR (started_at IS NOT NULL AND ended_at IS NOT NULL)),
    CONSTRAINT work_orders_closed_repair
        CHECK (status <> 'closed' OR kind <> 'repair' OR failure IS NOT NULL)
);
CREATE INDEX work_orders_asset_idx ON work_orders (asset_id, reported_at);
CREATE INDEX work_orders_alarm_idx ON work_orders (alarm_id) WHERE alarm_id IS NOT NULL;
CREATE INDEX work_orders_open_idx ON work_orders (reported_at) WHERE status = 'open';

-- No work order is opened on an abandoned asset, whoever writes it.
CREATE FUNCTION work_order_asset_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    st text;
    c text;
BEGIN
    SELECT status, code INTO st, c FROM assets WHERE id = NEW.asset_id;
    IF st = 'abandoned' THEN
        RAISE EXCEPTION 'asset % is abandoned: no work order can be opened on it', c
            USING ERRCODE = '23514';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER work_orders_asset_check BEFORE INSERT ON work_orders
    FOR EACH ROW EXECUTE FUNCTION work_order_asset_check();

-- The valves (and hydrants, for flushing) a work order operated, in the order they were.
CREATE TABLE work_order_valves (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    work_order_id  bigint NOT NULL REFERENCES work_orders(id) ON DELETE CASCADE,
    valve_id       bigint NOT NULL REFERENCES assets(id),
    action         text NOT NULL CHECK (action IN ('closed', 'opened', 'found_inoperable')),
    at             timestamptz NOT NULL,
    by_user        text NOT NULL,
    note           text NOT NULL DEFAULT '' CHECK (length(note) <= 500)
);
CREATE INDEX work_order_valves_wo_idx ON work_order_valves (work_order_id);
CREATE INDEX work_order_valves_valve_idx ON work_order_valves (valve_id);

CREATE FUNCTION work_order_valve_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    k text;
    c text;
BEGIN
    SELECT kind, code INTO k, c FROM assets WHERE id = NEW.valve_id;
    IF k NOT IN ('valve', 'prv', 'hydrant') THEN
        RAISE EXCEPTION 'asset % is a %, not a valve or hydrant', c, k USING ERRCODE = '23514';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER work_order_valves_check BEFORE INSERT OR UPDATE ON work_order_valves
    FOR EACH ROW EXECUTE FUNCTION work_order_valve_check();

-- Photos and documents of a work order: kept with the asset's documents (asset_documents).
CREATE TABLE work_order_documents (
    work_order_id  bigint NOT NULL REFERENCES work_orders(id) ON DELETE CASCADE,
    document_id    bigint NOT NULL REFERENCES asset_documents(id) ON DELETE CASCADE,
    PRIMARY KEY (work_order_id, document_id)
);

-- The journal of a work order: every change with who, when and the fields (old, new).
-- Never updated.
CREATE TABLE work_order_events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    work_order_id  bigint NOT NULL REFERENCES work_orders(id) ON DELETE CASCADE,
    at             timestamptz NOT NULL,
    by_user        text NOT NULL,
    action         text NOT NULL CHECK (action IN ('create', 'change', 'close', 'cancel',
                       'valve', 'photo', 'alarm')),
    changes        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX work_order_events_wo_idx ON work_order_events (work_order_id, at);

-- ------------------------------------------------------------------ outages
-- A planned (or emergency) outage: what was isolated, the valves to close, when, and the
-- subscribers it cuts off as they were when it was announced (outage_accounts), with every
-- notice sent to them (outage_notices: one row per account and channel tried).
CREATE TABLE outages (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           text NOT NULL DEFAULT 'planned' CHECK (kind IN ('planned', 'emergency')),
    target         jsonb NOT NULL CHECK (jsonb_typeof(target) = 'object'),
    valves         text[] NOT NULL DEFAULT '{}',
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    reason         text NOT NULL DEFAULT '' CHECK (length(reason) <= 500),
    work_order_id  bigint REFERENCES work_orders(id) ON DELETE SET NULL,
    accounts       integer NOT NULL DEFAULT 0,
    critical       integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL,
    created_by     text NOT NULL,
    CONSTRAINT outages_end_after_start CHECK (ends_at > starts_at)
);
CREATE INDEX outages_starts_idx ON outages (starts_at);

CREATE TABLE outage_accounts (
    outage_id           bigint NOT NULL REFERENCES outages(id) ON DELETE CASCADE,
    account_id          bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    critical_kind       text,
    service_connection  text NOT NULL DEFAULT '',
    PRIMARY KEY (outage_id, account_id)
);

CREATE TABLE outage_notices (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outage_id   bigint NOT NULL REFERENCES outages(id) ON DELETE CASCADE,
    account_id  bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    channel     text NOT NULL CHECK (channel IN ('sms', 'telegram', 'letter')),
    language    text NOT NULL CHECK (language IN ('uz', 'uz_Cyrl', 'ru', 'en')),
    status      text NOT NULL CHECK (status IN ('sent', 'failed', 'skipped', 'to_print')),
    detail      text NOT NULL DEFAULT '',
    body        text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX outage_notices_outage_idx ON outage_notices (outage_id);
CREATE INDEX outage_notices_account_idx ON outage_notices (account_id);
