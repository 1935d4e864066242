"""Dunning against a real local HTTP server standing in for the SMS gateway and Telegram."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from pypdf import PdfReader

from billing.accounts import Address, create_account
from billing.config import load_billing_config
from billing.dunning import Stage, channels_from_config, pick_stage, run_dunning
from billing.ledger import post_entry, post_payment
from suvnet.numfmt import format_som
from tests.billing.conftest import NOW

FAIL_PHONE = "998900000000"


class Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("to") == FAIL_PHONE:
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"gateway down")
            return
        Recorder.received.append((self.path, body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"id": "m-1"}')

    def log_message(self, fmt: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    t = threading.Thread(target=srv.serve_forever, name="fake-sms-gateway", daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_pick_stage() -> None:
    st = [
        Stage("reminder", 1, 15, 100, ("household", "legal"), ("sms",), "", ""),
        Stage("warning", 2, 45, 300, ("household", "legal"), ("sms",), "", ""),
        Stage("claim", 3, 90, 500, ("legal",), ("letter",), "", ""),
    ]
    assert pick_stage(st, "household", 10, 1000) is None
    assert pick_stage(st, "household", 20, 1000).code == "reminder"  # type: ignore[union-attr]
    assert pick_stage(st, "household", 200, 1000).code == "warning"  # type: ignore[union-attr]
    assert pick_stage(st, "household", 200, 200).code == "reminder"  # type: ignore[union-attr]
    assert pick_stage(st, "legal", 200, 1000).code == "claim"  # type: ignore[union-attr]


def events(conn: psycopg.Connection[Any], acc: int) -> list[tuple[str, str, str]]:
    return [
        (r[0], r[1], r[2])
        for r in conn.execute(
            "SELECT stage, channel, status FROM dunning_events WHERE account_id = %s ORDER BY id",
            (acc,),
        ).fetchall()
    ]


def test_dunning_stages_channels_and_stop(db_url: str, gateway: str, tmp_path: Path) -> None:
    cfg = load_billing_config(
        sms_gateway_url=f"{gateway}/sms",
        sms_gateway_token="t0k",
        telegram_bot_token="123:abc",
        telegram_api_url=gateway,
    )
    channels = channels_from_config(cfg, tmp_path)
    addr = Address("Buxoro viloyati", "Vobkent tumani", "Tinchlik MFY", "Ulug'bek ko'chasi", "3")
    with psycopg.connect(db_url) as conn:
        hh, hh_no = create_account(
            conn,
            kind="household",
            name="Qarzdor Abonent",
            address=addr,
            now=NOW,
            phone="998901234567",
        )
        conn.execute("UPDATE accounts SET telegram_chat_id = '4242' WHERE id = %s", (hh,))
        post_entry(
            conn,
            account_id=hh,
            kind="opening_balance",
            amount_tiyin=5_000_000,
            posted_at=NOW,
            value_date=date(2026, 9, 30),
        )
        bad, _ = create_account(
            conn, kind="household", name="Unreachable", address=addr, now=NOW, phone=FAIL_PHONE
        )
        post_entry(
            conn,
            account_id=bad,
            kind="opening_balance",
            amount_tiyin=5_000_000,
            posted_at=NOW,
            value_date=date(2026, 9, 30),
        )
        lg, _ = create_account(
            conn, kind="legal", name="Qarzdor MChJ", address=addr, now=NOW, inn="309876543"
        )
        post_entry(
            conn,
            account_id=lg,
            kind="charge",
            amount_tiyin=90_000_000,
            posted_at=NOW,
            value_date=date(2026, 7, 31),
        )
        conn.commit()

        # 15 Nov: 46 days since 30 Sep - 10 days to pay = 36 days overdue -> reminder
        r1 = run_dunning(conn, date(2026, 11, 15), channels, cfg, now=NOW)
        conn.commit()
        assert events(conn, hh) == [("reminder", "sms", "sent"), ("reminder", "telegram", "sent")]
        sms = [b for p, b in Recorder.received if p == "/sms"]
        assert sms[0]["to"] == "998901234567" and hh_no in sms[0]["text"]
        assert format_som(5_000_000) in sms[0]["text"]  # 50 000,00 (the one money format)
        tg = [b for p, b in Recorder.received if p == "/bot123:abc/sendMessage"]
        assert tg[0]["chat_id"] == "4242"
        assert events(conn, bad)[0] == ("reminder", "sms", "failed")
        assert r1.failed == 1 and r1.skipped == 1 and r1.sent == 3
        # the legal entity is 106 days late -> the claim package (a letter), not disconnection
        lg_events = events(conn, lg)
        assert lg_events == [("claim", "letter", "sent")]
        letter = conn.execute(
            "SELECT document FROM dunning_events WHERE account_id = %s", (lg,)
        ).fetchone()
        assert letter is not None and Path(letter[0]).is_file()
        assert "Qarzdor MChJ" in PdfReader(letter[0]).pages[0].extract_text()
        akt = Path(letter[0]).with_name(Path(letter[0]).stem + "-akt-sverki.pdf")
        akt_text = PdfReader(akt).pages[0].extract_text()
        assert "solishtirish dalolatnomasi" in akt_text and format_som(90_000_000) in akt_text

        # same day again: nothing repeated for hh, the failed SMS is retried
        n_before = len(events(conn, hh))
        run_dunning(conn, date(2026, 11, 15), channels, cfg, now=NOW)
        conn.commit()
        assert len(events(conn, hh)) == n_before
        assert [e[2] for e in events(conn, bad) if e[1] == "sms"] == ["failed", "failed"]
        assert [e[2] for e in events(conn, bad) if e[1] == "telegram"] == ["skipped", "skipped"]

        # 30 Nov: 51 days -> warning through sms, telegram and a letter
        run_dunning(conn, date(2026, 11, 30), channels, cfg, now=NOW)
        conn.commit()
        assert events(conn, hh)[2:] == [
            ("warning", "sms", "sent"),
            ("warning", "telegram", "sent"),
            ("warning", "letter", "sent"),
        ]
        # paid in full: the episode stops, nothing more is sent
        post_payment(
            conn,
            account_id=hh,
            amount_tiyin=5_000_000,
            paid_at=NOW,
            source="cashier",
            external_ref="d-1",
        )
        conn.commit()
        r3 = run_dunning(conn, date(2026, 12, 31), channels, cfg, now=NOW)
        conn.commit()
        assert events(conn, hh)[-1][2] == "stopped" and r3.stopped >= 1
        n = len(events(conn, hh))
        run_dunning(conn, date(2027, 1, 31), channels, cfg, now=NOW)
        conn.commit()
        assert len(events(conn, hh)) == n
