-- Money figures (issue 14): the ONE definition of charged, paid, opening and closing balance
-- and turnover. The department reports (billing/report_queries.py), the documents
-- (billing/documents.py: slips, invoices, reconciliation statements) and the Grafana billing
-- dashboard (dashboards/boards/billing.py) all read these two objects; billing/figures.py
-- holds the same rule in Python and tests/billing/test_figures.py checks that both agree.
-- Owned by billing; explained in docs/billing.md, "Money figures".
--
-- The rule:
-- * every ledger entry counts as its own kind, except a reversal, which counts as the kind
--   of the entry it reverses (a reversal of a reversal is refused by the ledger);
-- * an entry that counts as a payment is PAID, by minus its amount: a payment of 100 so'm
--   (stored -10000) is paid 10000 tiyin, its reversal (stored +10000) is paid -10000;
-- * every other entry is CHARGED, by its amount: charges, penalties, adjustments of either
--   sign, opening balances carried in from the legacy system, and their reversals;
-- * for a period [from, to] (value dates, both ends included):
--     opening = sum of the amounts dated before `from`,
--     closing = sum of the amounts dated up to `to` = opening + charged - paid, to the tiyin;
--   the debit part of a balance is what the customer owes (max(balance, 0)), the credit part
--   what they paid in advance (max(-balance, 0)); sums over several accounts add the parts
--   account by account, never netting debtors against creditors.

-- One row per ledger entry with the figure it counts in.
CREATE VIEW ledger_turnover AS
SELECT l.id, l.account_id, l.kind, l.amount_tiyin, l.vat_tiyin, l.value_date, l.period,
       l.posted_at, l.source, l.external_ref, l.invoice_id, l.reverses_id,
       coalesce(o.kind, l.kind) AS counts_as,
       (CASE WHEN coalesce(o.kind, l.kind) = 'payment' THEN 0
             ELSE l.amount_tiyin END)::bigint AS charged_tiyin,
       (CASE WHEN coalesce(o.kind, l.kind) = 'payment' THEN -l.amount_tiyin
             ELSE 0 END)::bigint AS paid_tiyin
FROM ledger l
LEFT JOIN ledger o ON o.id = l.reverses_id;

COMMENT ON VIEW ledger_turnover IS
  'Ledger entries with the money figure each counts in: charged_tiyin or paid_tiyin '
  '(a reversal counts as the kind it reverses); amount_tiyin = charged_tiyin - paid_tiyin. '
  'docs/billing.md, Money figures';

-- The figures of every account for the period [p_from, p_to] (value dates, both included).
-- A plain SQL function, so PostgreSQL inlines it: a filter on account_id reaches the ledger
-- index. p_to may be 'infinity' (the balance now), p_from '-infinity' (since the start).
CREATE FUNCTION account_figures(p_from date, p_to date)
RETURNS TABLE (
    account_id           bigint,
    opening_tiyin        bigint,
    charged_tiyin        bigint,
    paid_tiyin           bigint,
    closing_tiyin        bigint,
    opening_debit_tiyin  bigint,
    opening_credit_tiyin bigint,
    closing_debit_tiyin  bigint,
    closing_credit_tiyin bigint
)
LANGUAGE sql STABLE AS $$
    SELECT f.account_id, f.opening, f.charged, f.paid, f.opening + f.charged - f.paid,
           greatest(f.opening, 0), greatest(-f.opening, 0),
           greatest(f.opening + f.charged - f.paid, 0),
           greatest(-(f.opening + f.charged - f.paid), 0)
    FROM (SELECT a.id AS account_id,
                 coalesce(sum(t.amount_tiyin) FILTER (WHERE t.value_date < p_from), 0)::bigint
                     AS opening,
                 coalesce(sum(t.charged_tiyin) FILTER (WHERE t.value_date >= p_from), 0)::bigint
                     AS charged,
                 coalesce(sum(t.paid_tiyin) FILTER (WHERE t.value_date >= p_from), 0)::bigint
                     AS paid
          FROM accounts a
          LEFT JOIN ledger_turnover t ON t.account_id = a.id AND t.value_date <= p_to
          GROUP BY a.id) f
$$;

COMMENT ON FUNCTION account_figures(date, date) IS
  'Opening, charged, paid and closing balance (with debit/credit parts) of every account '
  'for the value dates p_from..p_to; closing = opening + charged - paid. '
  'docs/billing.md, Money figures';
