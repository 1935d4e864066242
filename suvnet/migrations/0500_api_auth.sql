-- API: users and roles, refresh tokens, audit log, login attempts (rate limiting),
-- customer one-time codes, and the log of gateway commands sent from the API.

CREATE TABLE api_users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       text NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 64),
    full_name      text NOT NULL DEFAULT '',
    role           text NOT NULL CHECK (role IN ('admin', 'dispatcher', 'technician',
                                                 'billing_clerk', 'cashier', 'accountant',
                                                 'lawyer', 'viewer', 'customer')),
    password_hash  text NOT NULL,
    -- customers log in with their account number; staff have none
    account_no     text UNIQUE,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    password_set_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'customer') = (account_no IS NOT NULL))
);

-- Refresh tokens are rotated: each use revokes the token and issues a new one.
CREATE TABLE api_refresh_tokens (
    jti         uuid PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES api_users(id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX api_refresh_tokens_user_idx ON api_refresh_tokens (user_id);

-- Every change made through the API or the web pages: who, when, what, before and after.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts          timestamptz NOT NULL DEFAULT now(),
    actor_id    bigint,
    actor       text NOT NULL,
    role        text NOT NULL,
    action      text NOT NULL,
    entity      text NOT NULL,
    entity_id   text,
    before      jsonb,
    after       jsonb,
    ip          text
);
CREATE INDEX audit_log_ts_idx ON audit_log (ts);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id);

-- Login attempts, kept in the database so that every API worker sees the same counts.
CREATE TABLE api_login_attempts (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts        timestamptz NOT NULL,
    username  text NOT NULL,
    ip        text NOT NULL,
    success   boolean NOT NULL
);
CREATE INDEX api_login_attempts_user_idx ON api_login_attempts (username, ts);
CREATE INDEX api_login_attempts_ip_idx ON api_login_attempts (ip, ts);

-- One-time codes issued at the office so that a customer can set the first password.
CREATE TABLE customer_codes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_no  text NOT NULL,
    code_hash   text NOT NULL,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    issued_by   bigint REFERENCES api_users(id)
);
CREATE INDEX customer_codes_account_idx ON customer_codes (account_no);

-- Commands sent to gateways from the API, with their result.
CREATE TABLE gateway_commands (
    id           uuid PRIMARY KEY,
    gateway_id   bigint NOT NULL REFERENCES gateways(id),
    device_id    bigint NOT NULL REFERENCES devices(id),
    op           text NOT NULL,
    payload      jsonb NOT NULL,
    requested_by bigint REFERENCES api_users(id),
    sent_at      timestamptz NOT NULL,
    status       text NOT NULL CHECK (status IN ('sent', 'ok', 'refused', 'timeout', 'error')),
    reason       text,
    readback     jsonb,
    finished_at  timestamptz
);
CREATE INDEX gateway_commands_gateway_idx ON gateway_commands (gateway_id, sent_at);
