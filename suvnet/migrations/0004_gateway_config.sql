-- What each gateway last announced about its configuration, checked against the registry.
--
-- A gateway's birth message lists every device it polls and the point ids it publishes for
-- it (bit sub-points included). Ingest compares that list with the registry and keeps the
-- outcome here, one row per gateway; `suvnet site apply` checks the stored lists again after
-- it changed the registry. status: 'ok' (they agree), 'mismatch' (see the five lists), or
-- 'unchecked' (a health update named a configuration whose birth the office never saw; it
-- is checked at the gateway's next connect). See docs/protocol.md and docs/site.md.
CREATE TABLE gateway_config (
    gateway_id       bigint PRIMARY KEY REFERENCES gateways(id) ON DELETE CASCADE,
    boot             text,
    announced_at     timestamptz,              -- time of the birth (not later than received)
    points           jsonb,                    -- {"device": ["point", ...]} as announced
    points_hash      text NOT NULL,            -- suvnet.protocol.points_hash of points
    checked_at       timestamptz NOT NULL,
    status           text NOT NULL CHECK (status IN ('ok', 'mismatch', 'unchecked')),
    -- lost readings: dead-lettered as unknown_device / device_not_on_gateway / unknown_point
    unknown_devices  text[] NOT NULL DEFAULT '{}',
    wrong_gateway    text[] NOT NULL DEFAULT '{}',
    unknown_points   text[] NOT NULL DEFAULT '{}',   -- 'device/point'
    -- registered, but this gateway sends nothing for them
    silent_devices   text[] NOT NULL DEFAULT '{}',
    silent_points    text[] NOT NULL DEFAULT '{}',   -- 'device/point'
    CHECK ((status = 'unchecked') = (points IS NULL))
);
COMMENT ON TABLE gateway_config IS
  'The devices and points each gateway announced in its birth message, checked against the registry';
