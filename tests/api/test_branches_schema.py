"""The schema keeps branch scoping whole (issue 20): a table that holds a branch's data has
row-level security, and a view runs with its caller's rights (else it would read the tables
as their owner, past every policy). A later migration that adds such a table or view without
it fails here, with the name."""

from __future__ import annotations

from typing import Any

import psycopg

LINKS = (
    "account_id",
    "account_no",
    "account_number",
    "zone_id",
    "gateway_id",
    "device_id",
    "point_id",
    "meter_id",
    "branch_id",
    "house_id",
    "street_id",
    "mahalla_id",
    "district_id",
    "rule_id",
    "asset_id",
    "statement_id",
    "event_id",
    "invoice_id",
    "line_id",
    "alarm_id",
    "work_order_id",
    "outage_id",
    "request_id",
    "receipt_no",
    "payment_id",
    "transaction_id",
)
"""Columns that tie a row to something a branch owns."""

UNSCOPED = {
    "account_search": "the search keys: their indexes serve LIKE and @>, which PostgreSQL would "
    "not use under a policy; the search reads the accounts it found through accounts",
    "api_users": "the logins: a login reads its user before anyone's scope is known; "
    "api.users shows a branch administrator only their branch's users",
    "customer_codes": "one-time codes, read only with the code the customer holds",
    "branch_districts": "the assignments themselves (ids only)",
    "branch_mahallas": "the assignments themselves (ids only)",
    "branch_number_counters": "counters of the numbering",
    "branch_readers": "which branches a read-only login sees: the scope functions read it "
    "before any scope is known (migration 0803)",
    "branch_payment_contracts": "read by the payment callbacks before their branch is known",
    "ingest_batches": "the ingest service's bookkeeping (ids and sequence numbers)",
    "ingest_rollup_dirty": "the ingest service's bookkeeping",
    "readings": "telemetry values by point id: reached through points, which are scoped",
    "readings_5m": "rollups of readings",
    "readings_1h": "rollups of readings",
    "readings_1d": "rollups of readings",
}


def test_every_table_with_a_branchs_data_has_row_level_security(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        rows: list[Any] = conn.execute(
            """SELECT c.relname, c.relrowsecurity, string_agg(a.attname, ', ')
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute a ON a.attrelid = c.oid AND NOT a.attisdropped
               WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                 AND a.attname = ANY(%s)
               GROUP BY c.relname, c.relrowsecurity ORDER BY c.relname""",
            (list(LINKS),),
        ).fetchall()
    assert len(rows) > 40  # the query finds the tables (it can fail)
    missing = [f"{t} ({cols})" for t, rls, cols in rows if not rls and t not in UNSCOPED]
    assert not missing, (
        "tables that hold a branch's data without row-level security (add a policy like "
        f"migration 0801's, or list them in UNSCOPED with the reason): {missing}"
    )
    scoped = {t for t, rls, _ in rows if rls}
    assert not scoped & set(UNSCOPED), "UNSCOPED lists a table that has a policy now"


def test_every_view_runs_with_its_callers_rights(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        views = conn.execute(
            """SELECT c.relname, coalesce('security_invoker=true' = ANY(c.reloptions), false)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind = 'v' ORDER BY 1"""
        ).fetchall()
    assert {"account_balances", "ledger_turnover", "account_addresses"} <= {v for v, _ in views}
    owners = [v for v, invoker in views if not invoker]
    assert not owners, (
        "views that read their tables with the owner's rights, past the branch policies "
        f"(create them WITH (security_invoker = true)): {owners}"
    )


def test_the_api_role_sees_nothing_without_a_scope(db_url: str) -> None:
    """suvnet_app without suvnet.branches sees no branch's row (a request without a login);
    the owner and the services, without the setting, see everything."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO regions (name_uz) VALUES ('R0'); "
            "INSERT INTO districts (region_id, name_uz) SELECT id, 'D0' FROM regions; "
            "INSERT INTO zones (code, name) VALUES ('z0', 'Z0')"
        )
        owner = conn.execute("SELECT count(*) FROM zones").fetchone()
        conn.execute("SET ROLE suvnet_app")
        app = conn.execute("SELECT count(*) FROM zones").fetchone()
        conn.execute("SET suvnet.branches = '*'")
        everything = conn.execute("SELECT count(*) FROM zones").fetchone()
        conn.rollback()
    assert (owner, app, everything) == ((1,), (0,), (1,))
