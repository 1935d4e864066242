"""The ledger examples of docs/billing.md and billing/ledger.py run as written on the real
schema: a provider's transaction is performed and its payment posted in one transaction."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

import billing.ledger
from billing.accounts import Address, create_account
from tests.billing.conftest import NOW

DOC = Path(__file__).resolve().parents[2] / "docs" / "billing.md"
ADDR = Address("Toshkent viloyati", "Chinoz tumani", "Hujjat MFY", "Navoiy ko'chasi", "3")


def doc_example() -> str:
    """The python block of the section "For the payments engineer" in docs/billing.md."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### For the payments engineer", 1)[1].split("\n## ", 1)[0]
    blocks: list[str] = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1
    return blocks[0]


def ledger_example() -> str:
    """The indented block after ``::`` in the module doc of billing/ledger.py."""
    doc = billing.ledger.__doc__ or ""
    after = doc.split("::\n\n", 1)[1]
    lines = []
    for line in after.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


def provider_tx(conn: psycopg.Connection[Any], acc_id: int, number: str, ext_id: str) -> None:
    conn.execute(
        """INSERT INTO provider_transactions (provider, ext_id, account_id, account_number,
               amount_tiyin, state, create_time) VALUES ('payme', %s, %s, %s, 1980000, 1, %s)""",
        (ext_id, acc_id, number, NOW),
    )


def performed(conn: psycopg.Connection[Any], ext_id: str) -> list[tuple[Any, ...]]:
    """The transaction's state and the ledger entries it points to (one, with its id)."""
    return conn.execute(
        """SELECT t.state, l.kind, l.amount_tiyin, l.external_ref
           FROM provider_transactions t JOIN ledger l ON l.id = t.ledger_id
           WHERE t.provider = 'payme' AND t.ext_id = %s AND t.perform_time = %s
             AND l.source = 'payme' AND l.external_ref = t.ext_id""",
        (ext_id, NOW),
    ).fetchall()


@pytest.fixture(scope="module")
def account(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        acc_id, number = create_account(
            conn, kind="household", name="Hujjat H.", address=ADDR, now=NOW, number="000000018"
        )
    assert number == "000000018"  # the number the docs use
    return acc_id


def test_docs_billing_md_example(conn: psycopg.Connection[Any], account: int) -> None:
    provider_tx(conn, account, "000000018", "pm-doc-1")
    conn.commit()
    scope: dict[str, Any] = {"conn": conn, "now": NOW, "ext_id": "pm-doc-1"}
    exec(doc_example(), scope)  # our own documentation
    conn.commit()
    assert performed(conn, "pm-doc-1") == [(2, "payment", -1_980_000, "pm-doc-1")]
    assert scope["entry"].created is True


def test_ledger_module_doc_example(conn: psycopg.Connection[Any], account: int) -> None:
    provider_tx(conn, account, "000000018", "pm-doc-2")
    conn.commit()
    scope: dict[str, Any] = {
        "conn": conn,
        "now": NOW,
        "ext_id": "pm-doc-2",
        "acc": account,
        "amount": 1_980_000,
        "post_payment": billing.ledger.post_payment,
    }
    exec(ledger_example(), scope)  # our own documentation
    conn.commit()
    assert performed(conn, "pm-doc-2") == [(2, "payment", -1_980_000, "pm-doc-2")]
