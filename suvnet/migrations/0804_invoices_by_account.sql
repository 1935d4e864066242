-- An account's invoices by account and month (issue 20, measured at scale).
--
-- The only index that led with the account was invoices_one_regular, which is partial (regular
-- invoices only), so a lookup of an account's latest invoice of a month, whatever its kind (a
-- payment slip, the cabinet), scanned the whole month's invoices: 22 ms a slip at 100,000
-- accounts, 0.5 s at 1,000,000 (bench/scale.py: 2.1 slips/s). With this index: about 0.1 ms.
CREATE INDEX IF NOT EXISTS invoices_account_period_idx ON invoices (account_id, period);
