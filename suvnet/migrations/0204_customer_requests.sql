-- Customer requests (issue 15): what customer service receives - questions, complaints,
-- disputed bills, meter problems - and how each one ended. The customer-service report
-- (docs/reports.md) reads it; until a page registers requests, rows come from an import or
-- from SQL. Also the language a customer's letters are written in (the legal department's
-- pre-trial claim letters); NULL means the utility's default language.

CREATE TABLE customer_requests (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      bigint REFERENCES accounts(id),
    received_at     timestamptz NOT NULL,
    channel         text NOT NULL DEFAULT 'office'
                    CHECK (channel IN ('office', 'phone', 'cabinet', 'letter', 'telegram', 'other')),
    kind            text NOT NULL
                    CHECK (kind IN ('bill_dispute', 'meter', 'no_water', 'quality', 'leak',
                                    'connection', 'question', 'other')),
    -- a disputed bill names the invoice and, where the customer says so, the amount disputed
    invoice_id      bigint REFERENCES invoices(id),
    disputed_tiyin  bigint CHECK (disputed_tiyin >= 0),
    subject         text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'in_progress', 'resolved', 'rejected')),
    resolved_at     timestamptz,
    resolution      text NOT NULL DEFAULT '',
    created_by      text NOT NULL DEFAULT '',
    CHECK ((status IN ('resolved', 'rejected')) = (resolved_at IS NOT NULL)),
    CHECK (resolved_at IS NULL OR resolved_at >= received_at),
    CHECK (kind = 'bill_dispute' OR (invoice_id IS NULL AND disputed_tiyin IS NULL))
);
CREATE INDEX customer_requests_received_idx ON customer_requests (received_at);
CREATE INDEX customer_requests_account_idx ON customer_requests (account_id);

ALTER TABLE accounts ADD COLUMN correspondence_language text
    CHECK (correspondence_language IN ('uz', 'uz_Cyrl', 'ru', 'en'));
COMMENT ON COLUMN accounts.correspondence_language IS
  'The language of the customer''s letters (claims); NULL: the utility''s default language';
