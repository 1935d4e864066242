"""The per-request shortcuts of the hot path keep their guarantees: the access-token cache
(verified once, still expires, exact-token and per-secret) and the pool's cheap checkout check
(a round trip only when idle long or when the server ended the session)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from api.errors import NotAuthenticatedError
from api.security import Principal, Role, TokenCache, make_access_token, read_access_token
from suvnet.db import IdleCheck, make_async_pool

from .conftest import User, bearer

KEY = "hot-path-test-secret-0123456789-abcdefghijkl"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
P = Principal(7, "dispatcher1", Role.DISPATCHER)


def test_cached_token_is_verified_once_and_still_expires() -> None:
    cache = TokenCache(size=8)
    tok = make_access_token(P, KEY, T0)
    assert read_access_token(tok, KEY, T0, cache) == P
    assert len(cache) == 1
    assert read_access_token(tok, KEY, T0 + timedelta(minutes=14), cache) == P
    assert len(cache) == 1
    with pytest.raises(NotAuthenticatedError, match="expired"):
        read_access_token(tok, KEY, T0 + timedelta(minutes=15), cache)


def test_cache_never_accepts_another_string_or_secret() -> None:
    cache = TokenCache(size=8)
    tok = make_access_token(P, KEY, T0)
    read_access_token(tok, KEY, T0, cache)
    head, payload, sig = tok.split(".")
    forged = f"{head}.{payload}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}"
    with pytest.raises(NotAuthenticatedError, match="invalid"):
        read_access_token(forged, KEY, T0, cache)
    with pytest.raises(NotAuthenticatedError, match="invalid"):
        read_access_token(tok, KEY + "-rotated", T0, cache)
    assert len(cache) == 1  # failures are not cached


def test_cache_is_bounded_least_recently_used_first() -> None:
    cache = TokenCache(size=3)
    toks = [make_access_token(Principal(i, f"u{i}", Role.VIEWER), KEY, T0) for i in range(4)]
    for t in toks[:3]:
        read_access_token(t, KEY, T0, cache)
    read_access_token(toks[0], KEY, T0, cache)  # used again: now the most recent
    read_access_token(toks[3], KEY, T0, cache)
    assert len(cache) == 3
    assert cache.get(toks[1], KEY) is None
    assert cache.get(toks[0], KEY) is not None
    assert cache.get(toks[3], KEY) is not None


async def _last_query(db_url: str, pid: int) -> str:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
        row = await (
            await c.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,))
        ).fetchone()
        assert row is not None
        return str(row[0])


async def test_checkout_check_runs_only_for_idle_connections(db_url: str) -> None:
    now = [1000.0]
    check = IdleCheck(max_idle_s=30.0, clock=lambda: now[0])
    from psycopg_pool import AsyncConnectionPool

    async with AsyncConnectionPool(
        db_url, min_size=1, max_size=1, check=check, open=False, kwargs={"autocommit": True}
    ) as pool:
        await pool.open(wait=True)
        async with pool.connection() as conn:  # first checkout: full check
            pid = conn.info.backend_pid
            await conn.execute("SELECT 'marker-1'")
        now[0] += 29.0
        async with pool.connection() as conn:  # in steady use, socket quiet: no round trip
            assert conn.info.backend_pid == pid
        assert await _last_query(db_url, pid) == "SELECT 'marker-1'"
        now[0] += 31.0
        async with pool.connection() as conn:  # idle too long: the server is asked
            assert conn.info.backend_pid == pid
        assert await _last_query(db_url, pid) == ""


async def _terminate_others(db_url: str) -> list[int]:
    """pg_terminate_backend every other client of this database; wait until they are gone."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as c:
        rows = await (
            await c.execute(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            )
        ).fetchall()
        pids = [int(r[0]) for r in rows]
        for _ in range(100):
            left = await (
                await c.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
                )
            ).fetchone()
            if left is not None and left[0] == 0:
                break
            await asyncio.sleep(0.05)
    return pids


async def test_pool_recovers_from_terminated_connections_without_an_error(db_url: str) -> None:
    pool = await make_async_pool(db_url, min_size=2, max_size=2, max_idle_s=3600.0)
    try:
        await pool.wait()
        old: set[int] = set()
        for _ in range(2):
            async with pool.connection() as a, pool.connection() as b:
                old |= {a.info.backend_pid, b.info.backend_pid}
        assert old <= set(await _terminate_others(db_url))
        for _ in range(4):  # every checkout gets a live connection, none raises
            async with pool.connection() as conn:
                row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
                assert row is not None and row[0] not in old
    finally:
        await pool.close()


async def test_api_answers_after_its_connections_are_terminated(
    client: httpx.AsyncClient, users: dict[Role, User], db_url: str
) -> None:
    number = users[Role.CUSTOMER].account_no
    url = f"/api/v1/accounts/{number}/balance"
    first = await client.get(url, headers=bearer(users[Role.ADMIN]))
    assert first.status_code == 200, first.text
    assert await _terminate_others(db_url)
    for _ in range(3):
        again = await client.get(url, headers=bearer(users[Role.ADMIN]))
        assert again.status_code == 200, again.text
        assert again.json() == first.json()
    # auth is still required on the hot path
    anon = await client.get(url)
    assert anon.status_code == 401
    viewer_of_nothing: dict[str, Any] = bearer(users[Role.DISPATCHER])
    assert (await client.get(url, headers=viewer_of_nothing)).status_code == 403
