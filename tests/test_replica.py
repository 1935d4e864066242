"""Read replicas (issue 20) on a real streaming replica built on this machine.

The fixture makes a second PostgreSQL 15 cluster with ``pg_basebackup`` from the test server
(127.0.0.1:5432) into a temporary folder and starts it as a hot standby on a free port (the
binaries of /usr/lib/postgresql/15/bin, run as the ``postgres`` user). When it cannot (no
such binaries, not root, another server version, the server refuses replication) the tests
are skipped and say why. The primary needs a ``replication`` line in pg_hba.conf: the fixture
adds ``host replication all 127.0.0.1/32 trust`` once (idempotent) and reloads.

What is shown: a read-only page reads on the replica with the caller's branch scope (role
suvnet_app, suvnet.branches, row-level security); a write is read back from the primary
(the cabinet after the Pay button, the cashier desk) while the replica has not replayed it;
the lag is shown in /health and ``suvnet db status``; a replica further behind than the limit
is skipped with a warning; a stopped replica: reads fall back to the primary with a warning,
and go back to the replica once it is up again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
from fastapi import Depends, FastAPI

from api.app import create_app
from api.deps import require
from api.readconn import FRESH_COOKIE, READ_POOL_NAME, ReadConn, ReadReplica
from api.security import STAFF, Principal, Role, make_access_token
from suvnet.settings import load_settings
from tests.api.conftest import (
    NOW,
    SECRET,
    Clock,
    User,
    add_invoice_and_charge,
    bearer,
    insert_user,
    make_account,
)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
HBA_LINE = "host replication all 127.0.0.1/32 trust  # added by suvnet tests/test_replica.py"
PROBE_SQL = (
    "SELECT current_user AS role, current_setting('suvnet.branches', true) AS branches, "
    "pg_is_in_recovery() AS replica, current_setting('application_name') AS app, "
    "(SELECT count(*) FROM accounts) AS accounts"
)
Staff = Annotated[Principal, Depends(require(STAFF))]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Replica:
    """A hot standby of the test server on ``port``, data in ``data``."""

    port: int
    data: Path
    log: Path

    def url(self, primary_url: str) -> str:
        """``primary_url`` (a database on the test server) on the replica."""
        p = urlsplit(primary_url)
        return f"postgresql://postgres@127.0.0.1:{self.port}{p.path}"

    def stop(self) -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def start(self) -> None:
        r = _as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
            "start",
        )  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(f"the replica did not start: {r.stderr}{self.log.read_text()}")

    def wait_streaming(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(
                    f"postgresql://postgres@127.0.0.1:{self.port}/postgres", connect_timeout=2
                ) as c:
                    row = c.execute("SELECT status FROM pg_stat_wal_receiver").fetchone()
                    if row and row[0] == "streaming":
                        return
            except psycopg.OperationalError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the replica does not stream: " + self.log.read_text()[-2000:])

    def sql(self, primary_url: str, query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url(primary_url), autocommit=True) as c:
            return c.execute(query).fetchall()


def _why_not(server_url: str) -> str | None:
    """Why no replica can be built here, or None."""
    if not (PG_BIN / "pg_basebackup").exists():
        return f"no PostgreSQL 15 binaries in {PG_BIN}"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "building a replica needs root (to run PostgreSQL as the postgres user)"
    if urlsplit(server_url).hostname not in ("127.0.0.1", "localhost"):
        return "the test server is not on this machine"
    with psycopg.connect(server_url, autocommit=True) as c:
        row = c.execute(
            "SELECT current_setting('server_version_num')::int / 10000, "
            "current_setting('wal_level'), current_setting('max_wal_senders')::int, "
            "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
        ).fetchone()
        assert row is not None
        if row[0] != 15:
            return f"the test server is PostgreSQL {row[0]}, the binaries here are 15"
        if row[1] not in ("replica", "logical") or row[2] < 1:
            return f"the test server has wal_level={row[1]}, max_wal_senders={row[2]}"
        if not row[3]:
            return "the test server's user is not a superuser"
    return None


def _allow_replication(server_url: str) -> str | None:
    """Add the replication line to the primary's pg_hba.conf when no rule allows it yet,
    and reload. Returns why it could not, or None."""
    with psycopg.connect(server_url, autocommit=True) as c:
        rules = c.execute(
            "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NULL "
            "AND 'replication' = ANY(database) AND type IN ('host', 'local')"
        ).fetchone()
        if rules and rules[0] > 0:
            return None
        hba_row = c.execute("SHOW hba_file").fetchone()
        assert hba_row is not None
        hba = Path(hba_row[0])
        try:
            text = hba.read_text()
            if HBA_LINE not in text:
                hba.write_text(text.rstrip("\n") + "\n" + HBA_LINE + "\n")
        except OSError as exc:
            return f"cannot allow replication in {hba}: {exc}"
        c.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
    return None


@pytest.fixture(scope="module")
def replica(pg_server_url: str, db_url: str) -> Iterator[Replica]:
    """A streaming replica of the test server (the module's database included)."""
    why = _why_not(pg_server_url) or _allow_replication(pg_server_url)
    if why:
        pytest.skip(f"no real replica: {why}")
    with psycopg.connect(pg_server_url, autocommit=True) as c:
        limits = {
            name: c.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in (
                "max_connections",
                "max_worker_processes",
                "max_wal_senders",
                "max_prepared_transactions",
                "max_locks_per_transaction",
            )
        }
    root = Path(tempfile.mkdtemp(prefix="suvnet-replica-"))
    shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    port = _free_port()
    rep = Replica(port, data, root / "replica.log")
    try:
        host = urlsplit(pg_server_url)
        # (a database dropped by another test during the copy can fail it: try again)
        for attempt in range(3):
            shutil.rmtree(data, ignore_errors=True)
            r = _as_postgres(
                str(PG_BIN / "pg_basebackup"), "-h", host.hostname or "127.0.0.1",
                "-p", str(host.port or 5432), "-U", host.username or "postgres",
                "-D", str(data), "-X", "stream", "-R", "-c", "fast",
            )  # fmt: skip
            if r.returncode == 0:
                break
            time.sleep(1 + attempt)
        else:
            pytest.skip(f"no real replica: pg_basebackup failed 3 times: {r.stderr.strip()}")
        # Debian keeps the configuration outside the data folder: the replica gets its own
        conf = [
            f"port = {port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{root}'",
            "hot_standby = on",
            "hot_standby_feedback = on",
            "shared_buffers = 32MB",
            "fsync = off",
            f"cluster_name = 'suvnet-test-replica-{port}'",
            *(f"{k} = {v}" for k, v in limits.items()),
        ]
        (data / "postgresql.conf").write_text("\n".join(conf) + "\n")
        (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        for f in ("postgresql.conf", "pg_hba.conf"):
            shutil.chown(data / f, "postgres", "postgres")
        rep.start()
        rep.wait_streaming()
        yield rep
    finally:
        rep.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Data:
    customer: User
    account_id: int
    regional: User
    branch_user: User
    branch_id: int
    cashier: User


@pytest.fixture(scope="module")
def data(db_url: str) -> Data:
    with psycopg.connect(db_url, autocommit=True) as c:
        aid, number = make_account(c, 1)
        add_invoice_and_charge(c, aid, date(2026, 10, 1), 4_500_000, 9.0, "INV-2026-10-1")
        customer = insert_user(c, number, Role.CUSTOMER, account_no=number)
        regional = insert_user(c, "u_regional", Role.ADMIN)
        cashier = insert_user(c, "u_cashier", Role.CASHIER)
        row = c.execute(
            "INSERT INTO branches (code, name) VALUES ('REPL', 'Replica filiali') RETURNING id"
        ).fetchone()
        assert row is not None
        branch = insert_user(c, "u_branch", Role.VIEWER)
        c.execute(
            "UPDATE api_users SET branch_id = %s, regional = false WHERE id = %s",
            (row[0], branch.id),
        )
    return Data(customer, aid, regional, branch, int(row[0]), cashier)


def replica_app(db_url: str, read_url: str, max_lag_s: float) -> FastAPI:
    """The app with the replica configured (the checks run when a test asks: the interval
    is an hour) and a probe route that says where its read connection is."""
    settings = load_settings(
        database_url=db_url,
        database_read_url=read_url,
        read_max_lag_s=max_lag_s,
        read_check_interval_s=3600,
        secret_key=SECRET,
        db_pool_min=1,
        db_pool_max=4,
    )
    app = create_app(settings, clock=Clock(NOW))

    @app.get("/api/v1/_probe/read")
    async def probe(who: Staff, conn: ReadConn) -> dict[str, Any]:
        return dict(await (await conn.execute(PROBE_SQL)).fetchone() or {})

    app.router.routes[:] = app.router.routes[-1:] + app.router.routes[:-1]
    return app


@pytest.fixture
async def client(db_url: str, replica: Replica) -> AsyncIterator[httpx.AsyncClient]:
    app = replica_app(db_url, replica.url(db_url), max_lag_s=1.0)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            c.app = app  # type: ignore[attr-defined]
            yield c


def _replica(client: httpx.AsyncClient) -> ReadReplica:
    rep = client.app.state.suvnet.replica  # type: ignore[attr-defined]
    assert isinstance(rep, ReadReplica)
    return rep


def _branch_token(d: Data) -> dict[str, str]:
    p = Principal(d.branch_user.id, "u_branch", Role.VIEWER, branch_id=d.branch_id)
    return {"Authorization": "Bearer " + make_access_token(p, SECRET, NOW)}


async def _caught_up(client: httpx.AsyncClient, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        st = await _replica(client).check()
        if st.usable and st.lag_s is not None and st.lag_s < 0.5:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the replica did not catch up: {_replica(client).status}")


async def test_reads_go_to_the_replica_with_the_callers_scope(
    client: httpx.AsyncClient, data: Data, db_url: str, replica: Replica
) -> None:
    await _caught_up(client)
    r = await client.get("/api/v1/_probe/read", headers=bearer(data.regional))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "role": "suvnet_app",
        "branches": "*",
        "replica": True,
        "app": READ_POOL_NAME,
        "accounts": 1,
    }
    # a branch user: the same replica, their scope, and row-level security hides the
    # account of no branch
    r = await client.get("/api/v1/_probe/read", headers=_branch_token(data))
    assert r.json() == {
        "role": "suvnet_app",
        "branches": str(data.branch_id),
        "replica": True,
        "app": READ_POOL_NAME,
        "accounts": 0,
    }
    # a real page: the cabinet's invoices are read on the replica (its session's last query)
    r = await client.get("/api/v1/me/invoices", headers=bearer(data.customer))
    assert r.status_code == 200 and r.json()["total"] == 1
    queries = replica.sql(
        db_url,
        f"SELECT query FROM pg_stat_activity WHERE application_name = '{READ_POOL_NAME}'",
    )
    assert any("invoices" in q[0] for q in queries), queries
    # a token revoked on the primary is refused at once, whatever the replica says
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute("UPDATE api_users SET token_version = token_version + 1 WHERE id = %s",
                  (data.regional.id,))  # fmt: skip
    try:
        r = await client.get("/api/v1/_probe/read", headers=bearer(data.regional))
        assert r.status_code == 401
    finally:
        with psycopg.connect(db_url, autocommit=True) as c:
            c.execute("UPDATE api_users SET token_version = token_version - 1 WHERE id = %s",
                      (data.regional.id,))  # fmt: skip


def _pause(replica: Replica, db_url: str) -> None:
    replica.sql(db_url, "SELECT pg_wal_replay_pause()")


def _resume(replica: Replica, db_url: str) -> None:
    replica.sql(db_url, "SELECT pg_wal_replay_resume()")


async def test_pages_that_must_see_their_writes_read_the_primary(
    db_url: str, replica: Replica, data: Data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With replay paused on the replica, a payment posted on the primary is not on the
    replica's pages, but the cabinet after its Pay button and the cashier desk show it."""
    from billing.config import get_billing_config

    monkeypatch.setenv("SUVNET_BILLING_PAYME_MERCHANT_ID", "m-test")
    monkeypatch.setenv("SUVNET_BILLING_PAYME_CHECKOUT_URL", "https://checkout.example.test")
    get_billing_config.cache_clear()
    app = replica_app(db_url, replica.url(db_url), max_lag_s=600)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                c.app = app  # type: ignore[attr-defined]
                await _caught_up(c)
                cust = bearer(data.customer)
                before = (await c.get("/api/v1/me/payments", headers=cust)).json()["total"]
                _pause(replica, db_url)
                try:
                    with psycopg.connect(db_url, autocommit=True) as pc:
                        from billing.ledger import post_entry

                        post_entry(
                            pc,
                            account_id=data.account_id,
                            kind="payment",
                            amount_tiyin=-1_000_000,
                            posted_at=NOW,
                            source="payme",
                        )
                    await _replica(c).check()
                    assert _replica(c).status.usable  # behind, but within the 600 s limit
                    # the replica's page does not have it yet
                    r = await c.get("/api/v1/me/payments", headers=cust)
                    assert r.json()["total"] == before
                    # the cabinet's Pay button: on to Payme, and the cabinet reads the primary
                    r = await c.get("/cabinet/pay/payme", headers=cust)
                    assert r.status_code == 303
                    assert r.headers["location"].startswith("https://checkout.example.test/")
                    assert FRESH_COOKIE in r.cookies
                    r = await c.get("/api/v1/me/payments", headers=cust)
                    assert r.json()["total"] == before + 1
                    assert (await c.get("/cabinet/", headers=cust)).status_code == 200
                    r = await c.get("/cabinet/balance.json", headers=cust)
                    assert r.json()["balance_tiyin"] == 4_500_000 - 1_000_000
                    c.cookies.delete(FRESH_COOKIE)
                    # the cashier desk: its payment and receipt are read back at once
                    desk = bearer(data.cashier)
                    r = await c.post(
                        "/api/v1/payments/cashier",
                        headers=desk,
                        json={
                            "account": data.customer.username,
                            "amount": "20000",
                            "method": "cash",
                            "request_key": "replica-desk-1",
                        },
                    )
                    assert r.status_code in (200, 201), r.text
                    receipt = r.json()["receipt_no"]
                    r = await c.get(f"/api/v1/payments/cashier/receipts/{receipt}", headers=desk)
                    assert r.status_code == 200, r.text
                finally:
                    _resume(replica, db_url)
                await _caught_up(c)
                r = await c.get("/api/v1/me/payments", headers=cust)
                assert r.json()["total"] == before + 2
    finally:
        get_billing_config.cache_clear()


def _db_status(db_url: str, read_url: str, max_lag_s: float) -> str:
    env = {
        **os.environ,
        "SUVNET_DATABASE_URL": db_url,
        "SUVNET_DATABASE_READ_URL": read_url,
        "SUVNET_READ_MAX_LAG_S": str(max_lag_s),
        "COLUMNS": "200",
    }
    r = subprocess.run(
        [sys.executable, "-m", "suvnet.cli", "db", "status"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


async def test_lag_is_shown_and_a_lagging_replica_is_skipped(
    client: httpx.AsyncClient,
    data: Data,
    db_url: str,
    replica: Replica,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _caught_up(client)
    health = (await client.get("/health")).json()
    assert health["replica"]["state"] == "ok"
    assert health["replica"]["lag_s"] < 0.5
    out = _db_status(db_url, replica.url(db_url), 1.0)
    assert "read replica" in out and "streaming, lag" in out and "serves reads" in out, out
    assert "replication to 127.0.0.1" in out, out

    _pause(replica, db_url)
    try:
        with psycopg.connect(db_url, autocommit=True) as c:
            c.execute("UPDATE accounts SET phone = '+998901112233' WHERE id = %s",
                      (data.account_id,))  # fmt: skip
        await asyncio.sleep(1.5)  # the limit of this app is 1 s
        with caplog.at_level(logging.WARNING, logger="api.readconn"):
            st = await _replica(client).check()
        assert st.state == "lagging" and st.lag_s is not None and st.lag_s > 1.0
        assert st.behind_bytes is not None and st.behind_bytes > 0
        assert any("read replica skipped" in m and "lagging" in m for m in caplog.messages)
        health = (await client.get("/health")).json()
        assert health["status"] == "ok"
        assert health["replica"]["state"] == "lagging" and health["replica"]["lag_s"] > 1.0
        out = _db_status(db_url, replica.url(db_url), 1.0)
        assert "lagging" in out and "reads go to the primary" in out, out
        # reads go to the primary, and answer
        r = await client.get("/api/v1/_probe/read", headers=bearer(data.regional))
        assert r.status_code == 200
        assert r.json()["replica"] is False
    finally:
        _resume(replica, db_url)
    await _caught_up(client)
    r = await client.get("/api/v1/_probe/read", headers=bearer(data.regional))
    assert r.json()["replica"] is True


async def test_a_stopped_replica_is_skipped_and_used_again_when_back(
    client: httpx.AsyncClient,
    data: Data,
    db_url: str,
    replica: Replica,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _caught_up(client)
    r = await client.get("/api/v1/_probe/read", headers=bearer(data.regional))
    assert r.json()["replica"] is True
    replica.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="api.readconn"):
            # the state still says ok: the read finds the replica gone and uses the primary
            r = await client.get("/api/v1/_probe/read", headers=bearer(data.regional))
            assert r.status_code == 200, r.text
            assert r.json()["replica"] is False
            assert _replica(client).status.state == "down"
            assert any("read replica skipped" in m for m in caplog.messages)
            # the next reads do not try it at all; the check says it is down
            r = await client.get("/api/v1/me/invoices", headers=bearer(data.customer))
            assert r.status_code == 200 and r.json()["total"] == 1
            assert (await _replica(client).check()).state == "down"
            health = (await client.get("/health")).json()
            assert health["status"] == "ok" and health["replica"]["state"] == "down"
        out = _db_status(db_url, replica.url(db_url), 1.0)
        assert "unreachable" in out, out
    finally:
        replica.start()
        replica.wait_streaming()
    await _caught_up(client)
    r = await client.get("/api/v1/_probe/read", headers=bearer(data.regional))
    assert r.status_code == 200 and r.json()["replica"] is True
