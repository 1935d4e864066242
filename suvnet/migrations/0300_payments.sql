-- Payments: cashier desk, bank statements (import, matching, review queue, suspense),
-- Payme Merchant API and Click SHOP API transactions.
-- Every payment reaches the ledger (0200) through billing.ledger.post_payment in the SAME
-- database transaction as the state change recorded here, so a provider retry or a crash
-- can never leave a paid transaction without its ledger entry (or the reverse).

-- ------------------------------------------------------------------ cashier desk
CREATE TABLE cashier_receipt_counters (
    year  integer PRIMARY KEY,
    last  bigint NOT NULL DEFAULT 0
);

CREATE TABLE cashier_payments (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    receipt_no      text NOT NULL UNIQUE,                -- K-YYYY-NNNNNNN, gapless per year
    request_key     text UNIQUE,                         -- the desk's idempotency key (double click)
    account_id      bigint NOT NULL REFERENCES accounts(id),
    amount_tiyin    bigint NOT NULL CHECK (amount_tiyin > 0),
    method          text NOT NULL CHECK (method IN ('cash', 'card')),
    cashier_id      bigint,
    cashier         text NOT NULL,
    taken_at        timestamptz NOT NULL,
    ledger_id       bigint NOT NULL UNIQUE REFERENCES ledger(id),
    voided_at       timestamptz,
    voided_by       text,
    void_reason     text,
    void_ledger_id  bigint UNIQUE REFERENCES ledger(id),
    CHECK ((voided_at IS NULL) = (void_ledger_id IS NULL))
);
CREATE INDEX cashier_payments_shift_idx ON cashier_payments (cashier, taken_at);

-- ------------------------------------------------------------------ provider transactions
-- One row per Payme / Click transaction; unique (provider, ext_id) makes callbacks idempotent.
-- state: 1 created/prepared, 2 performed/completed, -1 cancelled before perform,
--        -2 cancelled after perform (the payment was reversed in the ledger).
CREATE TABLE provider_transactions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider        text NOT NULL CHECK (provider IN ('payme', 'click')),
    ext_id          text NOT NULL CHECK (length(ext_id) BETWEEN 1 AND 100),
    account_id      bigint NOT NULL REFERENCES accounts(id),
    account_number  text NOT NULL,
    amount_tiyin    bigint NOT NULL CHECK (amount_tiyin > 0),
    state           smallint NOT NULL CHECK (state IN (1, 2, -1, -2)),
    reason          smallint,
    provider_time_ms bigint,                 -- Payme "time" (ms) / Click sign_time as ms
    create_time     timestamptz NOT NULL,
    perform_time    timestamptz,
    cancel_time     timestamptz,
    ledger_id       bigint UNIQUE REFERENCES ledger(id),
    reversal_id     bigint UNIQUE REFERENCES ledger(id),
    details         jsonb NOT NULL DEFAULT '{}',
    UNIQUE (provider, ext_id),
    CHECK ((state = 2) <= (ledger_id IS NOT NULL AND perform_time IS NOT NULL)),
    CHECK ((state = -2) <= (reversal_id IS NOT NULL))
);
CREATE INDEX provider_transactions_time_idx ON provider_transactions (provider, provider_time_ms);
CREATE INDEX provider_transactions_account_idx ON provider_transactions (account_id);

-- The Payme cash-desk key after a ChangePassword call (it wins over the configured key).
CREATE TABLE payme_keys (
    merchant_id  text PRIMARY KEY,
    key          text NOT NULL,
    changed_at   timestamptz NOT NULL
);

-- ------------------------------------------------------------------ bank statements
CREATE TABLE bank_statements (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    identity        text NOT NULL UNIQUE,    -- format:account:number:from:to (same file -> same)
    format          text NOT NULL CHECK (format IN ('mt940', 'csv', '1c')),
    bank_account    text NOT NULL,
    number          text NOT NULL DEFAULT '',
    date_from       date,
    date_to         date,
    opening_tiyin   bigint NOT NULL,
    closing_tiyin   bigint NOT NULL,
    filename        text NOT NULL DEFAULT '',
    imported_at     timestamptz NOT NULL,
    imported_by     text NOT NULL DEFAULT ''
);

-- status: matched (fully allocated), partial (some allocated, the rest in suspense),
-- review (suggestions wait for a person; the amount is in suspense), suspense (no candidate),
-- debit (an outgoing movement; not a customer payment), duplicate (the same bank document was
-- already imported with another statement, e.g. an overlapping re-export; nothing posted)
CREATE TABLE bank_statement_lines (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    statement_id    bigint NOT NULL REFERENCES bank_statements(id),
    line_no         integer NOT NULL CHECK (line_no > 0),
    value_date      date NOT NULL,
    amount_tiyin    bigint NOT NULL CHECK (amount_tiyin > 0),
    credit          boolean NOT NULL,
    doc_no          text NOT NULL DEFAULT '',
    payer_name      text NOT NULL DEFAULT '',
    payer_inn       text NOT NULL DEFAULT '',
    payer_account   text NOT NULL DEFAULT '',
    payer_mfo       text NOT NULL DEFAULT '',
    purpose         text NOT NULL DEFAULT '',
    status          text NOT NULL CHECK (status IN ('matched', 'partial', 'review', 'suspense',
                                                     'debit', 'duplicate')),
    allocated_tiyin bigint NOT NULL DEFAULT 0 CHECK (allocated_tiyin >= 0),
    note            text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL,
    UNIQUE (statement_id, line_no),
    CHECK (allocated_tiyin <= amount_tiyin)
);
CREATE INDEX bank_statement_lines_doc_idx ON bank_statement_lines (value_date, doc_no)
    WHERE credit AND doc_no <> '';
CREATE INDEX bank_statement_lines_open_idx ON bank_statement_lines (status)
    WHERE status IN ('partial', 'review', 'suspense');

CREATE TABLE bank_allocations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    line_id         bigint NOT NULL REFERENCES bank_statement_lines(id),
    account_id      bigint NOT NULL REFERENCES accounts(id),
    amount_tiyin    bigint NOT NULL CHECK (amount_tiyin > 0),
    method          text NOT NULL CHECK (method IN ('number', 'inn', 'bank_account', 'manual')),
    ledger_id       bigint NOT NULL UNIQUE REFERENCES ledger(id),
    allocated_at    timestamptz NOT NULL,
    allocated_by    text NOT NULL DEFAULT '',
    UNIQUE (line_id, account_id)
);

-- Fuzzy suggestions for lines in the review queue (best first).
CREATE TABLE bank_match_suggestions (
    line_id         bigint NOT NULL REFERENCES bank_statement_lines(id),
    account_id      bigint NOT NULL REFERENCES accounts(id),
    score           real NOT NULL,
    reason          text NOT NULL,
    PRIMARY KEY (line_id, account_id)
);

-- What sits in suspense: the unallocated remainder of every bank credit.
CREATE VIEW bank_suspense AS
SELECT l.id AS line_id, s.identity AS statement, l.line_no, l.value_date, l.payer_name,
       l.payer_inn, l.purpose, l.status, l.amount_tiyin - l.allocated_tiyin AS open_tiyin
FROM bank_statement_lines l JOIN bank_statements s ON s.id = l.statement_id
WHERE l.credit AND l.amount_tiyin > l.allocated_tiyin;
