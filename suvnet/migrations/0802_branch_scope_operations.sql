-- Branch scoping (issue 20, as 0801) of the asset operations of 0710: critical customers,
-- outages' accounts and notices by their account; work orders by their asset, their valves,
-- documents and journal by the work order; an outage by its work order, one of its valves or
-- one of the accounts it cuts off (the region's when none of them is in scope).

CREATE OR REPLACE FUNCTION pg_temp.branch_policy(p_table text, p_using text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', p_table);
    EXECUTE format('CREATE POLICY branch_scope ON %I USING ((SELECT suvnet_scope_all()) OR %s)',
                   p_table, p_using);
END
$$;

SELECT pg_temp.branch_policy(t, format('EXISTS (SELECT 1 FROM accounts a WHERE a.id = %I.account_id)', t))
FROM unnest(ARRAY['critical_customers', 'outage_accounts', 'outage_notices']) AS t;

SELECT pg_temp.branch_policy('work_orders',
    'EXISTS (SELECT 1 FROM assets x WHERE x.id = work_orders.asset_id)');
SELECT pg_temp.branch_policy(t, format(
    'EXISTS (SELECT 1 FROM work_orders w WHERE w.id = %I.work_order_id)', t))
FROM unnest(ARRAY['work_order_valves', 'work_order_documents', 'work_order_events']) AS t;

SELECT pg_temp.branch_policy('outages',
    'EXISTS (SELECT 1 FROM work_orders w WHERE w.id = outages.work_order_id) '
    'OR EXISTS (SELECT 1 FROM assets x WHERE x.code = ANY (outages.valves)) '
    'OR EXISTS (SELECT 1 FROM outage_accounts oa WHERE oa.outage_id = outages.id)');

DROP FUNCTION pg_temp.branch_policy(text, text);
