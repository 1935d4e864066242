-- Billing core: subscriber accounts, meters and service connections, register readings,
-- tariffs and norms, the append-only ledger, invoices, billing runs, dunning.
-- Money is always BIGINT tiyin (1 so'm = 100 tiyin). Volumes are m³ (double precision).
-- The ledger sign convention: amount_tiyin > 0 increases what the customer owes (charge,
-- penalty), amount_tiyin < 0 decreases it (payment). balance = SUM(amount_tiyin):
-- positive = debtor, negative = creditor (prepaid).

-- ------------------------------------------------------------------ accounts
CREATE TABLE accounts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- 9 digits: 8-digit serial + Luhn check digit (billing/accountno.py, docs/billing.md)
    number        text NOT NULL UNIQUE CHECK (number ~ '^[0-9]{9}$'),
    kind          text NOT NULL CHECK (kind IN ('household', 'legal', 'budget')),
    -- tariff category; by default the same as the kind
    category      text NOT NULL CHECK (category IN ('household', 'legal', 'budget')),
    name          text NOT NULL CHECK (length(btrim(name)) > 0),
    inn           text CHECK (inn ~ '^[0-9]{9}$'),
    mfo           text CHECK (mfo ~ '^[0-9]{5}$'),
    bank_account  text CHECK (bank_account ~ '^[0-9]{20}$'),
    phone         text CHECK (phone ~ '^\+?[0-9]{9,15}$'),
    email         text,
    house_id      bigint NOT NULL REFERENCES houses(id),
    apartment_id  bigint REFERENCES apartments(id),
    zone_id       bigint REFERENCES zones(id),
    residents     integer NOT NULL DEFAULT 0 CHECK (residents BETWEEN 0 AND 200),
    metered       boolean NOT NULL DEFAULT true,
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'closed')),
    status_since  timestamptz NOT NULL DEFAULT now(),
    opened_on     date NOT NULL DEFAULT current_date,
    legacy_ref    text UNIQUE,
    telegram_chat_id text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'household' OR inn IS NOT NULL)
);
CREATE INDEX accounts_house_idx ON accounts (house_id);
CREATE INDEX accounts_zone_idx ON accounts (zone_id);

CREATE TABLE account_status_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts(id),
    status      text NOT NULL,
    since       timestamptz NOT NULL,
    reason      text NOT NULL DEFAULT ''
);
CREATE INDEX account_status_history_idx ON account_status_history (account_id, since);

CREATE FUNCTION billing_account_status_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO account_status_history (account_id, status, since, reason)
        VALUES (NEW.id, NEW.status, NEW.status_since,
                coalesce(current_setting('suvnet.status_reason', true), ''));
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER accounts_status_history AFTER INSERT OR UPDATE OF status ON accounts
    FOR EACH ROW EXECUTE FUNCTION billing_account_status_history();

-- Address of an account with every registry level (for slips, roll-ups, reports).
CREATE VIEW account_addresses AS
SELECT a.id AS account_id, a.number, h.id AS house_id, h.number AS house_number,
       ap.number AS apartment_number, s.id AS street_id, s.name_uz AS street_uz,
       s.name_ru AS street_ru, m.id AS mahalla_id, m.name_uz AS mahalla_uz,
       m.name_ru AS mahalla_ru, d.id AS district_id, d.name_uz AS district_uz,
       d.name_ru AS district_ru, r.id AS region_id, r.name_uz AS region_uz,
       r.name_ru AS region_ru
FROM accounts a
JOIN houses h ON h.id = a.house_id
LEFT JOIN apartments ap ON ap.id = a.apartment_id
JOIN streets s ON s.id = h.street_id
JOIN mahallas m ON m.id = s.mahalla_id
JOIN districts d ON d.id = m.district_id
JOIN regions r ON r.id = d.region_id;

-- ------------------------------------------------------------------ meters
CREATE TABLE meters (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    serial_no     text NOT NULL UNIQUE,
    model         text NOT NULL DEFAULT '',
    digits        smallint NOT NULL DEFAULT 5 CHECK (digits BETWEEN 3 AND 9),  -- whole m³ digits
    device_id     bigint REFERENCES devices(id),
    point_id      bigint REFERENCES points(id),   -- the telemetry volume point (cumulative m³)
    zone_id       bigint REFERENCES zones(id),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- A meter serves an account between installed_at and removed_at (NULL = still installed).
CREATE TABLE service_connections (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      bigint NOT NULL REFERENCES accounts(id),
    meter_id        bigint NOT NULL REFERENCES meters(id),
    installed_at    timestamptz NOT NULL,
    removed_at      timestamptz,
    initial_reading double precision NOT NULL DEFAULT 0 CHECK (initial_reading >= 0),
    final_reading   double precision CHECK (final_reading >= 0),
    CHECK (removed_at IS NULL OR removed_at > installed_at),
    CHECK ((removed_at IS NULL) = (final_reading IS NULL))
);
CREATE UNIQUE INDEX service_connections_one_open ON service_connections (meter_id)
    WHERE removed_at IS NULL;
CREATE INDEX service_connections_account_idx ON service_connections (account_id);

-- Register readings entered by people or imported (telemetry stays in `readings` and is
-- reached through meters.point_id).
CREATE TABLE meter_readings (
    meter_id    bigint NOT NULL REFERENCES meters(id),
    ts          timestamptz NOT NULL,
    value_m3    double precision NOT NULL CHECK (value_m3 >= 0),
    source      text NOT NULL CHECK (source IN ('telemetry', 'manual', 'inspector', 'customer')),
    entered_by  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meter_id, ts, source)
);

-- ------------------------------------------------------------------ tariffs and norms
CREATE TABLE tariffs (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    category            text NOT NULL CHECK (category IN ('household', 'legal', 'budget')),
    valid_from          date NOT NULL,
    price_tiyin_per_m3  bigint NOT NULL CHECK (price_tiyin_per_m3 >= 0),   -- without VAT
    vat_rate_bp         integer NOT NULL DEFAULT 0 CHECK (vat_rate_bp BETWEEN 0 AND 10000),
    note                text NOT NULL DEFAULT '',
    UNIQUE (category, valid_from)
);

CREATE TABLE norms (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    valid_from          date NOT NULL UNIQUE,
    m3_per_person_month double precision NOT NULL CHECK (m3_per_person_month >= 0)
);

-- ------------------------------------------------------------------ billing runs, invoices
CREATE TABLE billing_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    period        date NOT NULL UNIQUE CHECK (extract(day FROM period) = 1),
    state         text NOT NULL CHECK (state IN ('running', 'completed', 'failed')),
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    accounts_total integer NOT NULL DEFAULT 0,
    accounts_done  integer NOT NULL DEFAULT 0,
    charged_tiyin  bigint NOT NULL DEFAULT 0,
    attempts      integer NOT NULL DEFAULT 1,
    last_error    text
);

CREATE TABLE invoice_counters (
    year  integer PRIMARY KEY,
    last  bigint NOT NULL DEFAULT 0
);

CREATE TABLE invoices (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    number         text NOT NULL UNIQUE,                 -- YYYY-NNNNNNN, gapless per year
    account_id     bigint NOT NULL REFERENCES accounts(id),
    period         date NOT NULL CHECK (extract(day FROM period) = 1),
    kind           text NOT NULL DEFAULT 'regular' CHECK (kind IN ('regular', 'correction')),
    run_id         bigint REFERENCES billing_runs(id),
    issued_at      timestamptz NOT NULL,
    amount_tiyin   bigint NOT NULL,                     -- VAT included
    vat_tiyin      bigint NOT NULL DEFAULT 0,
    volume_m3      double precision NOT NULL DEFAULT 0,
    estimated      boolean NOT NULL DEFAULT false,
    lines          jsonb NOT NULL DEFAULT '[]'
);
CREATE UNIQUE INDEX invoices_one_regular ON invoices (account_id, period) WHERE kind = 'regular';
CREATE INDEX invoices_period_idx ON invoices (period);

-- Consumption per meter and account for a billed period (what the slip shows).
CREATE TABLE period_consumption (
    period        date NOT NULL,
    account_id    bigint NOT NULL REFERENCES accounts(id),
    meter_id      bigint NOT NULL REFERENCES meters(id),
    invoice_id    bigint NOT NULL REFERENCES invoices(id),
    start_ts      timestamptz NOT NULL,
    end_ts        timestamptz NOT NULL,
    start_m3      double precision,
    end_m3        double precision,
    volume_m3     double precision NOT NULL,
    estimated_m3  double precision NOT NULL DEFAULT 0,
    flags         integer NOT NULL DEFAULT 0,          -- billing.consumption flag bits
    PRIMARY KEY (period, account_id, meter_id, invoice_id)
);

-- ------------------------------------------------------------------ ledger
CREATE TABLE ledger (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES accounts(id),
    kind          text NOT NULL CHECK (kind IN ('charge', 'payment', 'adjustment', 'reversal',
                                                'penalty', 'opening_balance')),
    amount_tiyin  bigint NOT NULL CHECK (amount_tiyin <> 0 OR kind = 'opening_balance'),
    vat_tiyin     bigint NOT NULL DEFAULT 0,
    value_date    date NOT NULL,            -- the day it counts from (aging, statements)
    period        date CHECK (period IS NULL OR extract(day FROM period) = 1),
    posted_at     timestamptz NOT NULL,
    source        text NOT NULL DEFAULT 'billing',   -- billing, cashier, bank, payme, click, import, manual
    external_ref  text,
    idem_key      text UNIQUE,               -- posting twice with the same key is a no-op
    invoice_id    bigint REFERENCES invoices(id),
    reverses_id   bigint UNIQUE REFERENCES ledger(id),
    memo          text NOT NULL DEFAULT '',
    created_by    text NOT NULL DEFAULT '',
    CHECK (kind NOT IN ('charge', 'penalty') OR amount_tiyin > 0),
    CHECK (kind <> 'payment' OR amount_tiyin < 0),
    CHECK ((kind = 'reversal') = (reverses_id IS NOT NULL))
);
CREATE INDEX ledger_account_idx ON ledger (account_id, value_date);
CREATE INDEX ledger_period_idx ON ledger (period) WHERE period IS NOT NULL;

CREATE FUNCTION billing_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % is not allowed (post a reversal instead)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER ledger_no_update BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_append_only();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION billing_ledger_append_only();

-- A reversal must cancel exactly the entry it names: same account, opposite amount, and a
-- reversal itself cannot be reversed (post a new entry instead).
CREATE FUNCTION billing_ledger_check_reversal() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    orig ledger%ROWTYPE;
BEGIN
    IF NEW.reverses_id IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT * INTO orig FROM ledger WHERE id = NEW.reverses_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'reversal of unknown ledger entry %', NEW.reverses_id;
    END IF;
    IF orig.kind = 'reversal' THEN
        RAISE EXCEPTION 'ledger entry % is itself a reversal and cannot be reversed', orig.id;
    END IF;
    IF orig.account_id <> NEW.account_id OR orig.amount_tiyin <> -NEW.amount_tiyin
       OR orig.vat_tiyin <> -NEW.vat_tiyin THEN
        RAISE EXCEPTION 'reversal of entry % must be on account % with amount %',
            orig.id, orig.account_id, -orig.amount_tiyin;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER ledger_check_reversal BEFORE INSERT ON ledger
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_check_reversal();

-- Current balance per account (positive = the customer owes, negative = prepaid).
CREATE VIEW account_balances AS
SELECT a.id AS account_id, a.number, coalesce(sum(l.amount_tiyin), 0)::bigint AS balance_tiyin
FROM accounts a LEFT JOIN ledger l ON l.account_id = a.id
GROUP BY a.id, a.number;

-- ------------------------------------------------------------------ dunning
CREATE TABLE dunning_stages (
    code              text PRIMARY KEY,
    position          integer NOT NULL,
    min_days_overdue  integer NOT NULL CHECK (min_days_overdue >= 0),
    min_debt_tiyin    bigint NOT NULL DEFAULT 0 CHECK (min_debt_tiyin >= 0),
    kinds             text[] NOT NULL DEFAULT ARRAY['household', 'legal', 'budget'],
    channels          text[] NOT NULL DEFAULT ARRAY['sms'],
    letter            boolean NOT NULL DEFAULT false,
    title_uz          text NOT NULL,
    title_ru          text NOT NULL
);
INSERT INTO dunning_stages (code, position, min_days_overdue, min_debt_tiyin, kinds, channels,
                            letter, title_uz, title_ru) VALUES
 ('reminder', 1, 15, 1000000, ARRAY['household','legal','budget'], ARRAY['sms','telegram'], false,
  'Eslatma', 'Напоминание'),
 ('warning', 2, 45, 3000000, ARRAY['household','legal','budget'], ARRAY['sms','telegram','letter'], true,
  'Ogohlantirish xati', 'Предупреждение'),
 ('disconnection', 3, 90, 5000000, ARRAY['household','budget'], ARRAY['sms','letter'], true,
  'Suv ta''minotini to''xtatish to''g''risida buyruq', 'Распоряжение об отключении'),
 ('claim', 3, 90, 5000000, ARRAY['legal'], ARRAY['letter'], true,
  'Da''vo hujjatlari to''plami', 'Пакет документов для претензии')
ON CONFLICT DO NOTHING;

CREATE TABLE dunning_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts(id),
    stage       text NOT NULL REFERENCES dunning_stages(code),
    channel     text NOT NULL,
    debt_tiyin  bigint NOT NULL,
    days_overdue integer NOT NULL,
    created_at  timestamptz NOT NULL,
    status      text NOT NULL CHECK (status IN ('sent', 'failed', 'skipped', 'stopped')),
    detail      text NOT NULL DEFAULT '',
    document    text                        -- path of a generated letter
);
CREATE INDEX dunning_events_account_idx ON dunning_events (account_id, created_at);
