"""Fixtures of the API tests: users of every role, an account with ledger entries, the app
in-process (httpx ASGI transport) and served by a real uvicorn on a loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.security import Principal, Role, hash_password, make_access_token
from suvnet.settings import Settings, load_settings

SECRET = "test-secret-key-for-the-api-tests-0123456789"
PASSWORD = "correct-horse-9"

NOW = datetime(2026, 12, 2, 7, 30, tzinfo=UTC)
"""The tests' "now": a fixed instant, never the wall clock, so the suite passes on any date.
The fixtures' data (accounts opened in 2025, invoices for September-November 2026) sits
before it; a test that needs another day moves its ``clock``."""
OPENED = datetime(2025, 1, 1, tzinfo=UTC)
"""When the fixtures' accounts were opened (``opened_on``, ``status_since``)."""


@dataclass
class Clock:
    """A clock the tests move by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role
    account_no: str | None = None

    def principal(self) -> Principal:
        return Principal(self.id, self.username, self.role, self.account_no)


def insert_user(
    conn: psycopg.Connection[Any],
    username: str,
    role: Role,
    account_no: str | None = None,
    password: str = PASSWORD,
) -> User:
    row = conn.execute(
        "INSERT INTO api_users (username, role, password_hash, account_no, full_name) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (username, role.value, hash_password(password), account_no, username.title()),
    ).fetchone()
    assert row is not None
    return User(int(row[0]), username, role, account_no)


def make_account(
    conn: psycopg.Connection[Any],
    serial: int,
    *,
    name: str = "Karimov Anvar",
    street: str = "Navoiy",
    house: str = "12",
    phone: str | None = "+998901234567",
) -> tuple[int, str]:
    """An address and a household account; returns (id, number)."""
    from billing.accountno import make_number

    conn.execute(
        "INSERT INTO regions (name_uz) VALUES ('Samarqand viloyati') ON CONFLICT DO NOTHING"
    )
    rid = conn.execute("SELECT id FROM regions WHERE name_uz = 'Samarqand viloyati'").fetchone()
    assert rid is not None
    conn.execute(
        "INSERT INTO districts (region_id, name_uz) VALUES (%s, 'Urgut') ON CONFLICT DO NOTHING",
        (rid[0],),
    )
    did = conn.execute("SELECT id FROM districts WHERE name_uz = 'Urgut'").fetchone()
    assert did is not None
    conn.execute(
        "INSERT INTO mahallas (district_id, name_uz) VALUES (%s, 'Bog''ishamol') "
        "ON CONFLICT DO NOTHING",
        (did[0],),
    )
    mid = conn.execute("SELECT id FROM mahallas WHERE name_uz = 'Bog''ishamol'").fetchone()
    assert mid is not None
    conn.execute(
        "INSERT INTO streets (mahalla_id, name_uz) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (mid[0], street),
    )
    sid = conn.execute(
        "SELECT id FROM streets WHERE mahalla_id = %s AND name_uz = %s", (mid[0], street)
    ).fetchone()
    assert sid is not None
    hid = conn.execute(
        "INSERT INTO houses (street_id, number) VALUES (%s, %s) "
        "ON CONFLICT (street_id, number) DO UPDATE SET number = EXCLUDED.number RETURNING id",
        (sid[0], house),
    ).fetchone()
    assert hid is not None
    number = make_number(serial)
    aid = conn.execute(
        "INSERT INTO accounts (number, kind, category, name, house_id, residents, phone, "
        "opened_on, status_since) VALUES (%s, 'household', 'household', %s, %s, 3, %s, %s, %s) "
        "RETURNING id",
        (number, name, hid[0], phone, OPENED.date(), OPENED),
    ).fetchone()
    assert aid is not None
    return int(aid[0]), number


def add_invoice_and_charge(
    conn: psycopg.Connection[Any],
    account_id: int,
    period: date,
    amount: int,
    volume: float,
    number: str,
) -> int:
    """An invoice and its ledger charge (as a billing run would leave them)."""
    from billing.ledger import post_entry

    inv = conn.execute(
        "INSERT INTO invoices (number, account_id, period, issued_at, amount_tiyin, volume_m3, "
        'lines) VALUES (%s, %s, %s, %s, %s, %s, \'{"basis": "metered", "charge": []}\') '
        "RETURNING id",
        (
            number,
            account_id,
            period,
            datetime(period.year, period.month, 1, tzinfo=UTC),
            amount,
            volume,
        ),
    ).fetchone()
    assert inv is not None
    post_entry(
        conn,
        account_id=account_id,
        kind="charge",
        amount_tiyin=amount,
        posted_at=datetime(period.year, period.month, 1, 6, tzinfo=UTC),
        period=period,
        invoice_id=int(inv[0]),
    )
    return int(inv[0])


@pytest.fixture(scope="module")
def users(db_url: str) -> dict[Role, User]:
    """One user of every role; the customer owns account serial 1 (with a balance)."""
    out: dict[Role, User] = {}
    with psycopg.connect(db_url, autocommit=True) as conn:
        for role in Role:
            if role is Role.CUSTOMER:
                _, number = make_account(conn, 1)
                out[role] = insert_user(conn, number, role, account_no=number)
            else:
                out[role] = insert_user(conn, f"u_{role.value}", role)
    return out


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


def api_settings(db_url: str, mqtt_url: str | None = None, topic_root: str = "suvnet") -> Settings:
    return load_settings(
        database_url=db_url,
        mqtt_url=mqtt_url,
        topic_root=topic_root,
        secret_key=SECRET,
        db_pool_min=1,
        db_pool_max=4,
    )


@pytest.fixture
def app(db_url: str, mqtt_url: str, topic_root: str, clock: Clock) -> FastAPI:
    return create_app(api_settings(db_url, mqtt_url, topic_root), clock=clock)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process (its lifespan runs: the pool opens and closes)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def bearer(user: User, clock: Clock | None = None) -> dict[str, str]:
    now = clock.now if clock else NOW
    return {"Authorization": "Bearer " + make_access_token(user.principal(), SECRET, now)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The app served by a real uvicorn in a background thread."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            log_config=None,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def live_server(db_url: str, users: dict[Role, User]) -> Iterator[LiveServer]:
    app = create_app(api_settings(db_url), clock=Clock(NOW))
    with LiveServer(app) as srv:
        yield srv
