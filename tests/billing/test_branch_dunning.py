"""Dunning letters are the debtor's branch's (issue 20): the letter is headed with the
branch's legal name, and a branch without its requisites gets no letter but a refusal that
names it and what it lacks."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import psycopg
import pytest
from pypdf import PdfReader

from billing import branches as br
from billing.accounts import Address, create_account
from billing.config import load_billing_config
from billing.dunning import channels_from_config, run_dunning
from billing.ledger import post_entry
from tests.billing.conftest import NOW


def _debtor(conn: psycopg.Connection[object], district: str, name: str) -> int:
    addr = Address("Samarqand viloyati", district, "Markaz MFY", "Navoiy ko'chasi", "1")
    acc, _ = create_account(conn, kind="legal", name=name, address=addr, now=NOW, inn="309876543")
    post_entry(
        conn,
        account_id=acc,
        kind="charge",
        amount_tiyin=90_000_000,
        posted_at=NOW,
        value_date=date(2026, 7, 31),
    )
    return acc


def test_claim_letters_carry_the_branch(db_url: str, tmp_path: Path) -> None:
    cfg = load_billing_config()
    channels = channels_from_config(cfg, tmp_path)
    with psycopg.connect(db_url) as conn:
        br.add_branch(
            conn,
            "KTQ",
            "Kattaqo'rg'on filiali",
            legal_name="Kattaqo'rg'on suv ta'minoti filiali",
            inn="301234567",
            bank_account="20208000900100000001",
            mfo="00444",
        )
        acc = _debtor(conn, "Kattaqo'rg'on tumani", "Qarzdor MChJ")
        br.assign(conn, "KTQ", districts=["Kattaqo'rg'on tumani"])
        conn.commit()
        run_dunning(conn, date(2026, 11, 15), channels, cfg, now=NOW)
        conn.commit()
        row = conn.execute(
            "SELECT document FROM dunning_events WHERE account_id = %s AND channel = 'letter'",
            (acc,),
        ).fetchone()
        assert row is not None
        text = PdfReader(row[0]).pages[0].extract_text()
        assert "Kattaqo'rg'on suv ta'minoti filiali" in text
        assert cfg.utility_name not in text

        # a branch without its MFO: no letter, a refusal naming the branch and what it
        # lacks; the other branches' debtors are served in the same run, and the stage of
        # the refused debtor is carried out whole once the requisites are set
        br.add_branch(conn, "NRB", "Narpay filiali", legal_name="Narpay suv", inn="301234568")
        other = _debtor(conn, "Narpay tumani", "Boshqa MChJ")
        third = _debtor(conn, "Kattaqo'rg'on tumani", "Uchinchi MChJ")
        br.assign(conn, "NRB", districts=["Narpay tumani"])
        br.assign(conn, "KTQ", districts=["Kattaqo'rg'on tumani"])
        conn.commit()
        res = run_dunning(conn, date(2026, 11, 15), channels, cfg, now=NOW)
        conn.commit()
        assert set(res.refused) == {"NRB"}
        assert "bank account, MFO" in res.refused["NRB"], res.refused
        events = conn.execute(
            "SELECT account_id, channel, status, detail FROM dunning_events "
            "WHERE account_id = ANY(%s) ORDER BY id",
            ([other, third],),
        ).fetchall()
        refused = [e for e in events if e[0] == other]
        assert refused and all(e[2] == "failed" and "NRB" in e[3] for e in refused), refused
        assert ("letter", "sent") in {(e[1], e[2]) for e in events if e[0] == third}, events
        br.set_requisites(conn, "NRB", bank_account="20208000900100000002", mfo="00444")
        conn.commit()
        res = run_dunning(conn, date(2026, 11, 16), channels, cfg, now=NOW)
        conn.commit()
        assert not res.refused
        row = conn.execute(
            "SELECT document FROM dunning_events WHERE account_id = %s AND channel = 'letter' "
            "AND status = 'sent'",
            (other,),
        ).fetchone()
        assert row is not None
        assert "Narpay suv" in PdfReader(row[0]).pages[0].extract_text()


def test_the_dunning_command_serves_the_others_and_names_the_branch(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`suvnet billing dunning`: one error line per branch without requisites, exit 1 (a
    scheduled run is noticed), and the other debtors' messages sent and recorded."""
    from typer.testing import CliRunner

    from billing.cli import app
    from billing.config import get_billing_config
    from suvnet.settings import get_settings

    with psycopg.connect(db_url) as conn:
        br.add_branch(conn, "PXT", "Paxtachi filiali", legal_name="Paxtachi suv", inn="301234569")
        lacking = _debtor(conn, "Paxtachi tumani", "Yetmagan MChJ")
        br.assign(conn, "PXT", districts=["Paxtachi tumani"])
        served = _debtor(conn, "Kattaqo'rg'on tumani", "Xizmat MChJ")
        br.assign(conn, "KTQ", districts=["Kattaqo'rg'on tumani"])
        conn.commit()
    monkeypatch.setenv("SUVNET_DATABASE_URL", db_url)
    monkeypatch.setenv("SUVNET_NOW", "2026-11-15T09:00:00+05:00")
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    get_billing_config.cache_clear()
    try:
        r = CliRunner().invoke(
            app, ["dunning", "--as-of", "2026-11-15", "--out-dir", str(tmp_path / "letters")]
        )
    finally:
        get_settings.cache_clear()
        get_billing_config.cache_clear()
    assert r.exit_code == 1, r.output
    assert "error: branch PXT (Paxtachi filiali) has no bank account, MFO" in r.output
    assert "Traceback" not in r.output
    with psycopg.connect(db_url) as conn:
        got: dict[int, list[str]] = dict(
            conn.execute(
                "SELECT account_id, array_agg(status ORDER BY id) FROM dunning_events "
                "WHERE account_id = ANY(%s) GROUP BY account_id",
                ([lacking, served],),
            ).fetchall()
        )
    assert set(got[lacking]) == {"failed"}, got
    assert "sent" in got[served], got
