"""The `suvnet billing` commands end to end on a real database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from billing.cli import app
from billing.config import get_billing_config
from suvnet.settings import get_settings

runner = CliRunner()


@pytest.fixture
def env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("SUVNET_DATABASE_URL", db_url)
    monkeypatch.setenv("SUVNET_BILLING_PAYME_MERCHANT_ID", "m-42")
    monkeypatch.setenv("SUVNET_BILLING_PAYME_CHECKOUT_URL", "https://checkout.example.test")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("SUVNET_NOW", "2026-12-02T09:00:00+05:00")  # November has ended
    get_settings.cache_clear()
    get_billing_config.cache_clear()
    yield db_url
    get_settings.cache_clear()
    get_billing_config.cache_clear()


def test_demo_run_balances_slips(env: str, tmp_path: Path) -> None:
    r = runner.invoke(app, ["demo", "--subscribers", "120", "--period", "2026-11"])
    assert r.exit_code == 0, r.output
    assert "created 120 accounts" in r.output
    dry = runner.invoke(app, ["run", "--period", "2026-11", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "DRY RUN" in dry.output
    with psycopg.connect(env) as c:
        assert c.execute("SELECT count(*) FROM invoices").fetchone() == (0,)
    run = runner.invoke(app, ["run", "--period", "2026-11"])
    assert run.exit_code == 0, run.output
    billed = re.search(r"accounts billed now\s+│\s+(\S+)", run.output)
    assert billed is not None and billed.group(1) == "120"
    # one format for figures: volumes and money with a decimal comma and grouped thousands
    volume = re.search(r"volume, m³\s+│\s+(\S+(?:\u202f\S+)*)", run.output)
    assert volume is not None and re.fullmatch(r"\d{1,3}(\u202f\d{3})*,\d{3}", volume.group(1))
    charged = re.search(r"charged, so'm \(incl\. VAT\)\s+│\s+(\S+(?:\u202f\S+)*)", run.output)
    assert charged is not None and re.fullmatch(r"\d{1,3}(\u202f\d{3})*,\d{2}", charged.group(1))
    assert not re.search(r"\d,\d{3}\.\d", run.output)  # no 5,679.476
    again = runner.invoke(app, ["run", "--period", "2026-11"])
    billed = re.search(r"accounts billed now\s+│\s+(\S+)", again.output)
    assert billed is not None and billed.group(1) == "0"
    with psycopg.connect(env) as c:
        total = c.execute("SELECT sum(amount_tiyin) FROM ledger").fetchone()
        number = c.execute("SELECT number FROM accounts ORDER BY id LIMIT 1").fetchone()
        mahalla = c.execute("SELECT id FROM mahallas ORDER BY id LIMIT 1").fetchone()
    assert total is not None and number is not None and mahalla is not None
    bal = runner.invoke(app, ["balances", "--by", "street", "--as-of", "2026-12-31"])
    assert bal.exit_code == 0, bal.output
    from billing.documents import money

    assert money(int(total[0])) in bal.output
    out = tmp_path / "one.pdf"
    s = runner.invoke(
        app,
        ["slips", "--period", "2026-11", "--account", number[0], "--out", str(out), "--lang", "ru"],
    )
    assert s.exit_code == 0, s.output
    assert number[0] in PdfReader(out).pages[0].extract_text()
    batch = tmp_path / "batch.pdf"
    s = runner.invoke(
        app, ["slips", "--period", "2026-11", "--mahalla", str(mahalla[0]), "--out", str(batch)]
    )
    assert s.exit_code == 0, s.output
    assert len(PdfReader(batch).pages) == 120


def test_clear_errors(env: str) -> None:
    r = runner.invoke(app, ["run", "--period", "November"])
    assert r.exit_code != 0
    assert "2026-11" in str(r.exception)
    r = runner.invoke(app, ["check-number", "000000017"])
    assert "check digit" in str(r.exception)
    r = runner.invoke(app, ["check-number", "00000001"])
    assert r.output.strip() == "000000018"
    r = runner.invoke(app, ["balances", "--by", "planet"])
    assert "--by must be" in str(r.exception)


def test_import_readings_lists_and_writes_the_rejected_rows(env: str, tmp_path: Path) -> None:
    """Rejected rows: the first 20 on the screen, a count of the rest, all of them in --report."""
    sheet = tmp_path / "route.csv"
    sheet.write_text(
        "meter_serial,date,value\n" + "".join(f"NO-SUCH-{i},2026-11-20,{i}.5\n" for i in range(25)),
        encoding="utf-8",
    )
    out = tmp_path / "rejected.csv"
    r = runner.invoke(app, ["import-readings", str(sheet), "--report", str(out)])
    assert r.exit_code == 0, r.output
    assert "imported: 0, rejected: 25" in r.output
    assert r.output.count("  line ") == 20
    assert "... 5 more" in r.output
    assert f"rejected rows written to {out}" in r.output.replace("\n", "")
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "line,reason"
    assert len(lines) == 26


def test_run_warns_and_refuses_unfinished_and_out_of_order_months(
    env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clock is pinned (SUVNET_NOW) on 20 January 2027: a dry run of January warns that
    the month has not ended, a real run is refused unless --force; December after January is
    refused unless --force. The requisites the documents would print blank are named."""
    r = runner.invoke(app, ["demo", "--subscribers", "20", "--period", "2027-01", "--seed", "7"])
    assert r.exit_code == 0, r.output
    monkeypatch.setenv("SUVNET_NOW", "2027-01-20T12:00:00+05:00")
    dry = runner.invoke(app, ["run", "--period", "2027-01", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    out = " ".join(dry.output.split())
    assert "warning: 2027-01 has not ended yet (it ends 2027-02-01 00:00 +05)" in out
    assert "STIR (INN, 9 digits) is not set (SUVNET_BILLING_UTILITY_INN)" in out
    refused = runner.invoke(app, ["run", "--period", "2027-01"])
    assert refused.exit_code != 0
    assert "refused" in str(refused.exception) and "--force" in str(refused.exception)

    def invoices(period: str) -> int:
        with psycopg.connect(env) as c:
            row = c.execute("SELECT count(*) FROM invoices WHERE period = %s", (period,)).fetchone()
        assert row is not None
        return int(row[0])

    assert invoices("2027-01-01") == 0
    forced = runner.invoke(app, ["run", "--period", "2027-01", "--force"])
    assert forced.exit_code == 0, forced.output
    assert invoices("2027-01-01") > 0
    # December after January: refused, a dry run warns, forced it runs
    monkeypatch.setenv("SUVNET_NOW", "2027-02-02T09:00:00+05:00")
    late = runner.invoke(app, ["run", "--period", "2026-12"])
    assert late.exit_code != 0
    assert "2027-01 is already billed" in str(late.exception)
    assert invoices("2026-12-01") == 0
    dry_late = runner.invoke(app, ["run", "--period", "2026-12", "--dry-run"])
    assert dry_late.exit_code == 0 and "2027-01 is already billed" in dry_late.output
    ok = runner.invoke(app, ["run", "--period", "2026-12", "--force"])
    assert ok.exit_code == 0, ok.output
    assert invoices("2026-12-01") > 0


def test_info_names_the_missing_requisites(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    r = runner.invoke(app, ["info"])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "the utility's STIR (INN, 9 digits) is not set" in out
    assert "the bank's MFO (5 digits) is not set" in out
    for name, value in (
        ("UTILITY_NAME", "Urganch suv"),
        ("UTILITY_INN", "301234567"),
        ("UTILITY_MFO", "00444"),
        ("UTILITY_BANK_ACCOUNT", "20208000900123456001"),
        ("UTILITY_ADDRESS", "Urganch"),
        ("UTILITY_PHONE", "+998622240000"),
    ):
        monkeypatch.setenv(f"SUVNET_BILLING_{name}", value)
    get_billing_config.cache_clear()
    r = runner.invoke(app, ["info"])
    assert "requisites are complete" in r.output and "warning" not in r.output
