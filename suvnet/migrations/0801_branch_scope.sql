-- Branch scoping (issue 20): row-level security on every table that holds a branch's data,
-- so that a session sees and changes only the rows of the branches in its scope
-- (suvnet.branches, see 0800 and docs/branches.md). The API runs every request as the role
-- suvnet_app with its caller's scope; the owner of the tables and superusers (the services,
-- the command line) are not subject to these policies.
--
-- Each policy starts with (SELECT suvnet_scope_all()): an InitPlan, worked out once per query,
-- so a regional session pays nothing per row. The branch tables compare their indexed
-- branch_id with the scope's ids, also worked out once per query. The tables below them look
-- their parent up by primary key (EXISTS), and the parent's own policy applies inside that
-- lookup: a ledger entry is visible when its account is.
--
-- The search key table account_search is left out on purpose: its indexes serve operators
-- that are not leakproof (LIKE, @>), which PostgreSQL would not use under a policy; the
-- search reads the accounts it found through accounts, whose policy applies.
-- Telemetry (readings and their rollups) is left out for the same reason of size; it is
-- reached through points, which are scoped.

CREATE FUNCTION pg_temp.branch_policy(p_table text, p_using text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', p_table);
    EXECUTE format('CREATE POLICY branch_scope ON %I USING ((SELECT suvnet_scope_all()) OR %s)',
                   p_table, p_using);
END
$$;

-- the tables that carry branch_id (0800)
SELECT pg_temp.branch_policy(t, 'branch_id = ANY ((SELECT suvnet_scope_branches())::bigint[])')
FROM unnest(ARRAY['mahallas', 'streets', 'houses', 'accounts', 'zones', 'gateways', 'devices',
                  'points', 'meters']) AS t;

SELECT pg_temp.branch_policy('branches', 'id = ANY ((SELECT suvnet_scope_branches())::bigint[])');

-- a district: when one of its MFYs is in scope, or it is assigned to a branch in scope
SELECT pg_temp.branch_policy('districts',
    'EXISTS (SELECT 1 FROM mahallas m WHERE m.district_id = districts.id) '
    'OR EXISTS (SELECT 1 FROM branch_districts bd WHERE bd.district_id = districts.id '
    'AND bd.branch_id = ANY ((SELECT suvnet_scope_branches())::bigint[]))');
SELECT pg_temp.branch_policy('apartments',
    'EXISTS (SELECT 1 FROM houses h WHERE h.id = apartments.house_id)');

-- below an account
SELECT pg_temp.branch_policy(t, format('EXISTS (SELECT 1 FROM accounts a WHERE a.id = %I.account_id)', t))
FROM unnest(ARRAY['account_status_history', 'service_connections', 'invoices',
                  'period_consumption', 'ledger', 'dunning_events', 'account_residents_history',
                  'customer_requests', 'cashier_payments', 'provider_transactions',
                  'bank_allocations', 'bank_match_suggestions']) AS t;

-- below a meter, a gateway, a device
SELECT pg_temp.branch_policy(t, format('EXISTS (SELECT 1 FROM meters m WHERE m.id = %I.meter_id)', t))
FROM unnest(ARRAY['meter_readings', 'meter_seals']) AS t;
SELECT pg_temp.branch_policy(t, format('EXISTS (SELECT 1 FROM gateways g WHERE g.id = %I.gateway_id)', t))
FROM unnest(ARRAY['gateway_state', 'gateway_state_history', 'gateway_config',
                  'gateway_commands']) AS t;
SELECT pg_temp.branch_policy(t, format('EXISTS (SELECT 1 FROM devices d WHERE d.id = %I.device_id)', t))
FROM unnest(ARRAY['device_state', 'device_state_history', 'prv_controls']) AS t;

-- the network model: a node by its zone, a link by its zone or its first node
SELECT pg_temp.branch_policy('nodes',
    'EXISTS (SELECT 1 FROM zones z WHERE z.id = nodes.zone_id)');
SELECT pg_temp.branch_policy('pipes',
    'EXISTS (SELECT 1 FROM nodes n WHERE n.id = pipes.from_node_id)');
SELECT pg_temp.branch_policy(t, format(
    'CASE WHEN %1$I.zone_id IS NOT NULL THEN EXISTS (SELECT 1 FROM zones z WHERE z.id = %1$I.zone_id) '
    'ELSE EXISTS (SELECT 1 FROM nodes n WHERE n.id = %1$I.from_node_id) END', t))
FROM unnest(ARRAY['valves', 'pumps']) AS t;

-- alarms: a rule by what it watches (its point, else its zone, else its device); the rest
-- by their rule, a zone's figures by the zone
SELECT pg_temp.branch_policy('alarm_rules',
    'CASE WHEN alarm_rules.point_id IS NOT NULL '
    'THEN EXISTS (SELECT 1 FROM points p WHERE p.id = alarm_rules.point_id) '
    'WHEN alarm_rules.zone_id IS NOT NULL '
    'THEN EXISTS (SELECT 1 FROM zones z WHERE z.id = alarm_rules.zone_id) '
    'WHEN alarm_rules.device_id IS NOT NULL '
    'THEN EXISTS (SELECT 1 FROM devices d WHERE d.id = alarm_rules.device_id) ELSE false END');
SELECT pg_temp.branch_policy(t, format('EXISTS (SELECT 1 FROM alarm_rules r WHERE r.id = %I.rule_id)', t))
FROM unnest(ARRAY['alarms', 'alarm_events', 'alarm_rule_state', 'leak_events']) AS t;
SELECT pg_temp.branch_policy('alarm_notifications',
    'EXISTS (SELECT 1 FROM alarm_events e WHERE e.id = alarm_notifications.event_id)');
SELECT pg_temp.branch_policy(t, format('EXISTS (SELECT 1 FROM zones z WHERE z.id = %I.zone_id)', t))
FROM unnest(ARRAY['alarm_routes', 'zone_leak_daily']) AS t;

-- assets: by their zone, else their house, else their account (else the region's)
SELECT pg_temp.branch_policy('assets',
    'CASE WHEN assets.zone_id IS NOT NULL '
    'THEN EXISTS (SELECT 1 FROM zones z WHERE z.id = assets.zone_id) '
    'WHEN assets.house_id IS NOT NULL '
    'THEN EXISTS (SELECT 1 FROM houses h WHERE h.id = assets.house_id) '
    'WHEN assets.account_id IS NOT NULL '
    'THEN EXISTS (SELECT 1 FROM accounts a WHERE a.id = assets.account_id) ELSE false END');
SELECT pg_temp.branch_policy(t, format('EXISTS (SELECT 1 FROM assets x WHERE x.id = %I.asset_id)', t))
FROM unnest(ARRAY['asset_versions', 'asset_documents']) AS t;
SELECT pg_temp.branch_policy('asset_check_findings',
    'EXISTS (SELECT 1 FROM assets x WHERE x.code = asset_check_findings.asset_code)');

-- bank statements: those of a branch's bank account; a line by its statement
SELECT pg_temp.branch_policy('bank_statements',
    'bank_statements.bank_account IN (SELECT b.bank_account FROM branches b WHERE b.bank_account <> '''')');
SELECT pg_temp.branch_policy('bank_statement_lines',
    'EXISTS (SELECT 1 FROM bank_statements s WHERE s.id = bank_statement_lines.statement_id)');

-- the audit log: rows written in a branch's session (0800) are that branch's; everyone may
-- add rows (a login without a branch, a customer), nobody changes them
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY branch_scope ON audit_log FOR SELECT
    USING ((SELECT suvnet_scope_all()) OR branch_id = ANY ((SELECT suvnet_scope_branches())::bigint[]));
CREATE POLICY branch_insert ON audit_log FOR INSERT WITH CHECK (true);

-- Views run with the rights of their caller, so the policies above apply through them
-- (account_balances, account_addresses, ledger_turnover, bank_suspense, alarm_journal, ...).
-- A view made by a later migration needs WITH (security_invoker = true) as well;
-- tests/api/test_branches_schema.py refuses one without it.
DO $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind = 'v' LOOP
        EXECUTE format('ALTER VIEW %I SET (security_invoker = true)', v.relname);
    END LOOP;
END
$$;
