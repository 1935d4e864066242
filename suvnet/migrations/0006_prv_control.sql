-- PRV pressure control (docs/pressure-management.md): the controller configuration of each
-- regulated PRV as the office set it (site file or API) and what became of its last sending
-- to the gateway; and the device profiles the registry was built from, so that the office
-- checks a setpoint against the same write range the gateway does.

CREATE TABLE prv_controls (
    device_id        bigint PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    config           jsonb       NOT NULL,           -- suvnet.prvcontrol.ControlConfig (wire form)
    source           text        NOT NULL DEFAULT 'site' CHECK (source IN ('site', 'api')),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       text,
    sent_command_id  text,                           -- the last control command sent for it
    sent_config      jsonb,                          -- the configuration that command carried
    sent_at          timestamptz,
    sent_status      text CHECK (sent_status IN ('sent', 'ok', 'refused', 'timeout', 'error')),
    sent_reason      text
);
COMMENT ON TABLE prv_controls IS
  'PRV controller configuration per device (site file or API) and its last sending to the gateway';

CREATE TABLE device_profiles (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    body        jsonb       NOT NULL,                -- suvnet.profiles.Profile, validated
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE device_profiles IS
  'Device profiles (register maps) as suvnet site apply last used them';
