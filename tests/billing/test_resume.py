"""Billing run resumes after a crash and ends with the same result as a clean run."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from billing.config import BillingConfig
from billing.demo import generate
from billing.errors import BillingRunError
from billing.run import run_billing
from tests.billing.conftest import NOW

OCT = date(2026, 10, 1)


class CrashError(Exception):
    pass


def test_crash_then_resume(db_url: str, cfg: BillingConfig) -> None:
    with psycopg.connect(db_url) as conn:
        generate(conn, 500, period=OCT, seed=3, tag="Resume")
        conn.commit()
        dry = run_billing(conn, OCT, cfg, now=NOW, dry_run=True)

        def crash_at_third(batch: int) -> None:
            if batch == 2:
                raise CrashError("power cut")

        with pytest.raises(CrashError):
            run_billing(conn, OCT, cfg, now=NOW, batch_size=100, after_batch=crash_at_third)
        state = conn.execute(
            "SELECT state, accounts_done, last_error FROM billing_runs WHERE period = %s", (OCT,)
        ).fetchone()
        # a crash between batches leaves the run "running" with its progress committed
        assert state == ("running", 300, None)
        assert conn.execute("SELECT count(*) FROM invoices").fetchone() == (300,)

        s = run_billing(conn, OCT, cfg, now=NOW, batch_size=100)
        assert s.accounts_billed == 200 and s.accounts_skipped_done == 300
        row = conn.execute(
            "SELECT state, attempts, accounts_done, charged_tiyin FROM billing_runs"
        ).fetchone()
        assert row == ("completed", 2, 500, dry.total_tiyin)
        totals = conn.execute(
            "SELECT count(*), sum(amount_tiyin) FROM invoices WHERE period = %s", (OCT,)
        ).fetchone()
        assert totals == (500, dry.total_tiyin)
        per_acc = conn.execute(
            "SELECT max(c) FROM (SELECT count(*) c FROM ledger WHERE kind = 'charge' "
            "GROUP BY account_id, period) x"
        ).fetchone()
        assert per_acc == (1,)
        numbers = [r[0] for r in conn.execute("SELECT number FROM invoices ORDER BY id")]
        assert numbers == [f"2026-{i:07d}" for i in range(1, 501)]


def test_concurrent_run_refused(db_url: str, cfg: BillingConfig) -> None:
    with psycopg.connect(db_url) as a, psycopg.connect(db_url) as b:
        import zlib

        key = zlib.crc32(f"billing-run:{OCT}".encode())
        a.execute("SELECT pg_advisory_lock(%s)", (key,))
        a.commit()
        with pytest.raises(BillingRunError, match="in progress"):
            run_billing(b, OCT, cfg, now=NOW)
        a.execute("SELECT pg_advisory_unlock(%s)", (key,))
        a.commit()
