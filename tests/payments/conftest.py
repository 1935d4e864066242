"""Fixtures of the payment tests: accounts, staff users, the app on a real uvicorn with the
payment settings, and a clock the tests move."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from api.app import create_app
from api.security import Role
from billing.payments.config import PaymentsConfig
from tests.api.conftest import Clock, LiveServer, User, api_settings, insert_user, make_account

PAYME_MERCHANT = "5e730e8e0b852a417aa49ceb"
PAYME_KEY = "Payme-Test-Key#1"
CLICK_SERVICE = "1234"
CLICK_SECRET = "click-secret-KEY"
OUR_BANK_ACCOUNT = "20208000900123456001"


def payments_cfg(**over: Any) -> PaymentsConfig:
    base: dict[str, Any] = {
        "payme_merchant_id": PAYME_MERCHANT,
        "payme_key": SecretStr(PAYME_KEY),
        "click_service_id": CLICK_SERVICE,
        "click_merchant_id": "4321",
        "click_secret_key": SecretStr(CLICK_SECRET),
    }
    base.update(over)
    return PaymentsConfig(**base)


def payme_auth(key: str = PAYME_KEY, login: str = "Paycom") -> dict[str, str]:
    token = base64.b64encode(f"{login}:{key}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def make_legal(
    conn: psycopg.Connection[Any],
    serial: int,
    *,
    name: str,
    inn: str,
    bank_account: str | None = None,
    street: str = "Sanoat",
    house: str = "1",
) -> tuple[int, str]:
    aid, number = make_account(conn, serial, name=name, street=street, house=house, phone=None)
    conn.execute(
        "UPDATE accounts SET kind = 'legal', category = 'legal', inn = %s, bank_account = %s "
        "WHERE id = %s",
        (inn, bank_account, aid),
    )
    return aid, number


def balance(conn: psycopg.Connection[Any], number: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(l.amount_tiyin), 0) FROM ledger l JOIN accounts a "
        "ON a.id = l.account_id WHERE a.number = %s",
        (number,),
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture(scope="module")
def pay_clock() -> Clock:
    return Clock(datetime(2026, 11, 20, 9, 0, tzinfo=UTC))


@pytest.fixture(scope="module")
def staff(db_url: str) -> dict[str, User]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        return {
            "cashier": insert_user(conn, "kassir1", Role.CASHIER),
            "cashier2": insert_user(conn, "kassir2", Role.CASHIER),
            "accountant": insert_user(conn, "buxgalter", Role.ACCOUNTANT),
            "viewer": insert_user(conn, "viewer1", Role.VIEWER),
            "clerk": insert_user(conn, "clerk1", Role.BILLING_CLERK),
        }


@pytest.fixture(scope="module")
def server(db_url: str, pay_clock: Clock) -> Iterator[LiveServer]:
    """The whole app on a real uvicorn (loopback, free port) with payment settings."""
    app = create_app(api_settings(db_url), clock=pay_clock)
    app.state.payments_config = payments_cfg()
    with LiveServer(app) as srv:
        srv.app = app  # type: ignore[attr-defined]
        yield srv
