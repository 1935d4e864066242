"""Payme Merchant API conformance: we play Payme over real HTTP against the running app
(uvicorn on loopback, real PostgreSQL), following the published protocol."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from billing.accounts import set_status
from tests.api.conftest import Clock, LiveServer, make_account
from tests.payments.conftest import PAYME_KEY, balance, payme_auth, payments_cfg

_ids = itertools.count(1)
CLOSED_AT = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)  # a fixed moment before pay_clock
TIMEOUT_MS = 43_200_000


@pytest.fixture(scope="module")
def accounts(db_url: str) -> dict[str, str]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        _, a1 = make_account(conn, 1)
        _, a2 = make_account(conn, 2, name="Rahimova Dilnoza", house="14")
        aid3, a3 = make_account(conn, 3, name="Yopiq Hisob", house="15")
        set_status(conn, aid3, "closed", now=CLOSED_AT, reason="test: a closed account")
    return {"a1": a1, "a2": a2, "closed": a3}


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def rpc(
    http: httpx.Client, method: str, params: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    req_id = next(_ids)
    r = http.post(
        "/api/payme",
        json={"jsonrpc": "2.0", "id": req_id, "method": method, "params": params},
        headers=payme_auth() if headers is None else headers,
    )
    assert r.status_code == 200, r.text  # Payme: always HTTP 200
    body: dict[str, Any] = r.json()
    assert body["id"] == req_id
    return body


def err(body: dict[str, Any]) -> int:
    assert "error" in body, body
    e = body["error"]
    assert set(e["message"]) == {"ru", "uz", "en"}
    return int(e["code"])


def now_ms(clock: Clock) -> int:
    return int(clock.now.timestamp() * 1000)


def payme_ledger(db: psycopg.Connection[Any], ext_id: str) -> list[tuple[str, int]]:
    return [
        (r[0], r[1])
        for r in db.execute(
            "SELECT kind, amount_tiyin FROM ledger WHERE source = 'payme' AND external_ref = %s "
            "ORDER BY id",
            (ext_id,),
        ).fetchall()
    ]


# ------------------------------------------------------------------ transport and auth
def test_auth_errors(http: httpx.Client, accounts: dict[str, str]) -> None:
    params = {"amount": 10000, "account": {"account": accounts["a1"]}}
    assert err(rpc(http, "CheckPerformTransaction", params, headers={})) == -32504
    assert err(rpc(http, "CheckPerformTransaction", params, payme_auth("wrong"))) == -32504
    assert err(rpc(http, "CheckPerformTransaction", params, payme_auth(login="Other"))) == -32504
    bad = {"Authorization": "Bearer " + PAYME_KEY}
    assert err(rpc(http, "CheckPerformTransaction", params, bad)) == -32504


def test_rpc_errors(http: httpx.Client) -> None:
    r = http.post("/api/payme", content=b"{not json", headers=payme_auth())
    assert r.status_code == 200
    assert r.json()["error"]["code"] == -32700
    r = http.post("/api/payme", json={"id": 5, "params": {}}, headers=payme_auth())
    assert r.json()["error"]["code"] == -32600
    r = http.post("/api/payme", json={"id": 6, "method": "CheckTransaction"}, headers=payme_auth())
    assert r.json()["error"]["code"] == -32600
    assert err(rpc(http, "GetBalance", {})) == -32601
    assert err(rpc(http, "CreateTransaction", {"id": "x"})) == -32600  # no time
    long_id = {"id": "x" * 101, "time": 1, "amount": 100, "account": {"account": "000000018"}}
    assert err(rpc(http, "CreateTransaction", long_id)) == -32600
    assert err(rpc(http, "CheckTransaction", {"id": 12345})) == -32600


def test_check_perform(http: httpx.Client, accounts: dict[str, str]) -> None:
    ok = rpc(
        http, "CheckPerformTransaction", {"amount": 500000, "account": {"account": accounts["a1"]}}
    )
    assert ok["result"] == {"allow": True}
    for amount in (0, -100, 100.5, "1000", None, 10**13):
        body = rpc(
            http,
            "CheckPerformTransaction",
            {"amount": amount, "account": {"account": accounts["a1"]}},
        )
        assert err(body) == -31001, amount
    nf = rpc(
        http, "CheckPerformTransaction", {"amount": 10000, "account": {"account": "000000109"}}
    )
    assert err(nf) == -31050
    assert nf["error"]["data"] == "account"
    assert "не найден" in nf["error"]["message"]["ru"]
    bad_digit = rpc(
        http, "CheckPerformTransaction", {"amount": 10000, "account": {"account": "000000019"}}
    )
    assert err(bad_digit) == -31051
    assert bad_digit["error"]["data"] == "account"
    closed = rpc(
        http,
        "CheckPerformTransaction",
        {"amount": 10000, "account": {"account": accounts["closed"]}},
    )
    assert err(closed) == -31052
    missing = rpc(http, "CheckPerformTransaction", {"amount": 10000, "account": {}})
    assert err(missing) == -31050


# ------------------------------------------------------------------ the success flow
def test_create_perform_check_statement(
    http: httpx.Client, accounts: dict[str, str], db: psycopg.Connection[Any], pay_clock: Clock
) -> None:
    a2 = accounts["a2"]
    before = balance(db, a2)
    t0 = now_ms(pay_clock)
    params = {"id": "pm-flow-1", "time": t0, "amount": 1500050, "account": {"account": a2}}
    created = rpc(http, "CreateTransaction", params)["result"]
    assert created["state"] == 1
    assert created["create_time"] == now_ms(pay_clock)
    assert balance(db, a2) == before  # created is not paid yet
    # repeated create returns the stored result
    assert rpc(http, "CreateTransaction", params)["result"] == created
    pay_clock.now += timedelta(seconds=30)
    performed = rpc(http, "PerformTransaction", {"id": "pm-flow-1"})["result"]
    assert performed == {
        "transaction": created["transaction"],
        "perform_time": now_ms(pay_clock),
        "state": 2,
    }
    # visible in the balance as soon as committed
    assert balance(db, a2) == before - 1500050
    pay_clock.now += timedelta(seconds=30)
    assert rpc(http, "PerformTransaction", {"id": "pm-flow-1"})["result"] == performed
    assert payme_ledger(db, "pm-flow-1") == [("payment", -1500050)]
    checked = rpc(http, "CheckTransaction", {"id": "pm-flow-1"})["result"]
    assert checked == {
        "create_time": created["create_time"],
        "perform_time": performed["perform_time"],
        "cancel_time": 0,
        "transaction": created["transaction"],
        "state": 2,
        "reason": None,
    }
    st = rpc(http, "GetStatement", {"from": t0 - 1000, "to": t0 + 1000})["result"]
    mine = [t for t in st["transactions"] if t["id"] == "pm-flow-1"]
    assert len(mine) == 1
    assert mine[0]["amount"] == 1500050
    assert mine[0]["account"] == {"account": a2}
    assert mine[0]["time"] == t0
    assert mine[0]["state"] == 2
    empty = rpc(http, "GetStatement", {"from": t0 + 5000, "to": t0 + 6000})["result"]
    assert all(t["id"] != "pm-flow-1" for t in empty["transactions"])


def test_several_payments_on_one_account_are_allowed(
    http: httpx.Client, accounts: dict[str, str], pay_clock: Clock
) -> None:
    a1 = accounts["a1"]
    for i in range(2):
        p = {
            "id": f"pm-multi-{i}",
            "time": now_ms(pay_clock),
            "amount": 100000,
            "account": {"account": a1},
        }
        assert rpc(http, "CreateTransaction", p)["result"]["state"] == 1
    for i in range(2):
        assert rpc(http, "PerformTransaction", {"id": f"pm-multi-{i}"})["result"]["state"] == 2


# ------------------------------------------------------------------ out of order, not found
def test_unknown_transaction(http: httpx.Client) -> None:
    assert err(rpc(http, "PerformTransaction", {"id": "pm-none"})) == -31003
    assert err(rpc(http, "CancelTransaction", {"id": "pm-none", "reason": 1})) == -31003
    assert err(rpc(http, "CheckTransaction", {"id": "pm-none"})) == -31003


def test_cancel_before_perform(
    http: httpx.Client, accounts: dict[str, str], db: psycopg.Connection[Any], pay_clock: Clock
) -> None:
    p = {
        "id": "pm-cancel-1",
        "time": now_ms(pay_clock),
        "amount": 30000,
        "account": {"account": accounts["a1"]},
    }
    rpc(http, "CreateTransaction", p)
    pay_clock.now += timedelta(seconds=5)
    cancelled = rpc(http, "CancelTransaction", {"id": "pm-cancel-1", "reason": 3})["result"]
    assert cancelled["state"] == -1
    assert cancelled["cancel_time"] == now_ms(pay_clock)
    pay_clock.now += timedelta(seconds=5)
    # repeated cancel: the stored result
    assert rpc(http, "CancelTransaction", {"id": "pm-cancel-1", "reason": 3})["result"] == cancelled
    assert err(rpc(http, "PerformTransaction", {"id": "pm-cancel-1"})) == -31008
    assert err(rpc(http, "CreateTransaction", p)) == -31008
    chk = rpc(http, "CheckTransaction", {"id": "pm-cancel-1"})["result"]
    assert (chk["state"], chk["reason"], chk["perform_time"]) == (-1, 3, 0)
    assert payme_ledger(db, "pm-cancel-1") == []


def test_cancel_after_perform_reverses(
    http: httpx.Client, accounts: dict[str, str], db: psycopg.Connection[Any], pay_clock: Clock
) -> None:
    a1 = accounts["a1"]
    before = balance(db, a1)
    p = {
        "id": "pm-refund-1",
        "time": now_ms(pay_clock),
        "amount": 77700,
        "account": {"account": a1},
    }
    rpc(http, "CreateTransaction", p)
    rpc(http, "PerformTransaction", {"id": "pm-refund-1"})
    assert balance(db, a1) == before - 77700
    pay_clock.now += timedelta(minutes=1)
    res = rpc(http, "CancelTransaction", {"id": "pm-refund-1", "reason": 5})["result"]
    assert res["state"] == -2
    assert balance(db, a1) == before
    assert payme_ledger(db, "pm-refund-1") == [("payment", -77700), ("reversal", 77700)]
    assert rpc(http, "CancelTransaction", {"id": "pm-refund-1", "reason": 5})["result"] == res
    assert payme_ledger(db, "pm-refund-1") == [("payment", -77700), ("reversal", 77700)]
    assert err(rpc(http, "PerformTransaction", {"id": "pm-refund-1"})) == -31008
    chk = rpc(http, "CheckTransaction", {"id": "pm-refund-1"})["result"]
    assert (chk["state"], chk["reason"]) == (-2, 5)
    assert chk["perform_time"] > 0 and chk["cancel_time"] > chk["perform_time"]


def test_cannot_cancel_when_configured(
    http: httpx.Client, server: LiveServer, accounts: dict[str, str], pay_clock: Clock
) -> None:
    p = {
        "id": "pm-nocancel",
        "time": now_ms(pay_clock),
        "amount": 10000,
        "account": {"account": accounts["a2"]},
    }
    rpc(http, "CreateTransaction", p)
    rpc(http, "PerformTransaction", {"id": "pm-nocancel"})
    app: Any = server.app  # type: ignore[attr-defined]
    app.state.payments_config = payments_cfg(payme_cancel_after_perform=False)
    try:
        assert err(rpc(http, "CancelTransaction", {"id": "pm-nocancel", "reason": 5})) == -31007
    finally:
        app.state.payments_config = payments_cfg()
    assert rpc(http, "CheckTransaction", {"id": "pm-nocancel"})["result"]["state"] == 2


# ------------------------------------------------------------------ the 12-hour timeout
def test_perform_after_timeout_cancels_with_reason_4(
    http: httpx.Client, accounts: dict[str, str], db: psycopg.Connection[Any], pay_clock: Clock
) -> None:
    p = {
        "id": "pm-late-1",
        "time": now_ms(pay_clock),
        "amount": 20000,
        "account": {"account": accounts["a1"]},
    }
    created = rpc(http, "CreateTransaction", p)["result"]
    pay_clock.now += timedelta(milliseconds=43_200_000)  # exactly 12 h: still in time
    assert rpc(http, "CreateTransaction", p)["result"] == created
    pay_clock.now += timedelta(milliseconds=1)
    assert err(rpc(http, "PerformTransaction", {"id": "pm-late-1"})) == -31008
    chk = rpc(http, "CheckTransaction", {"id": "pm-late-1"})["result"]
    assert (chk["state"], chk["reason"]) == (-1, 4)
    assert payme_ledger(db, "pm-late-1") == []


def test_create_after_timeout_cancels_with_reason_4(
    http: httpx.Client, accounts: dict[str, str], pay_clock: Clock
) -> None:
    p = {
        "id": "pm-late-2",
        "time": now_ms(pay_clock),
        "amount": 20000,
        "account": {"account": accounts["a1"]},
    }
    rpc(http, "CreateTransaction", p)
    pay_clock.now += timedelta(hours=13)
    assert err(rpc(http, "CreateTransaction", p)) == -31008
    chk = rpc(http, "CheckTransaction", {"id": "pm-late-2"})["result"]
    assert (chk["state"], chk["reason"]) == (-1, 4)
    # a brand-new transaction whose Payme time is older than 12 h is refused
    old = {
        "id": "pm-late-3",
        "time": now_ms(pay_clock) - 43_200_001,
        "amount": 100,
        "account": {"account": accounts["a1"]},
    }
    assert err(rpc(http, "CreateTransaction", old)) == -31008
    assert err(rpc(http, "CheckTransaction", {"id": "pm-late-3"})) == -31003


def test_timeout_counts_from_paymes_time_not_from_our_create_time(
    http: httpx.Client, accounts: dict[str, str], db: psycopg.Connection[Any], pay_clock: Clock
) -> None:
    """Payme created the transaction 11 h before its CreateTransaction reached us. Payme
    cancels it 12 h after *its* time, so one hour and a millisecond after our create a
    perform must be refused (-31008), the transaction cancelled with reason 4 and nothing
    posted, although only an hour has passed by our own create time."""
    a1 = accounts["a1"]
    before = balance(db, a1)
    payme_time = now_ms(pay_clock) - 11 * 3_600_000
    p = {"id": "pm-late-4", "time": payme_time, "amount": 55_500, "account": {"account": a1}}
    created = rpc(http, "CreateTransaction", p)["result"]
    assert created["state"] == 1
    assert created["create_time"] == now_ms(pay_clock)  # our create time is still reported
    pay_clock.now += timedelta(hours=1)  # exactly 12 h after Payme's time: still in time
    assert now_ms(pay_clock) - payme_time == TIMEOUT_MS
    assert rpc(http, "CreateTransaction", p)["result"] == created
    pay_clock.now += timedelta(milliseconds=1)
    assert err(rpc(http, "PerformTransaction", {"id": "pm-late-4"})) == -31008
    chk = rpc(http, "CheckTransaction", {"id": "pm-late-4"})["result"]
    assert (chk["state"], chk["reason"], chk["perform_time"]) == (-1, 4, 0)
    assert chk["cancel_time"] == now_ms(pay_clock)
    assert payme_ledger(db, "pm-late-4") == []
    assert balance(db, a1) == before
    # asking again changes nothing: still -31008, still cancelled, still no posting
    assert err(rpc(http, "PerformTransaction", {"id": "pm-late-4"})) == -31008
    assert err(rpc(http, "CreateTransaction", p)) == -31008
    assert rpc(http, "CheckTransaction", {"id": "pm-late-4"})["result"] == chk
    assert payme_ledger(db, "pm-late-4") == []


def test_late_create_then_repeated_create_after_paymes_12_hours(
    http: httpx.Client, accounts: dict[str, str], pay_clock: Clock
) -> None:
    """A repeated CreateTransaction after Payme's 12 h (but only 6 h after ours) is answered
    -31008 and cancels the transaction with reason 4."""
    payme_time = now_ms(pay_clock) - 6 * 3_600_000
    p = {
        "id": "pm-late-5",
        "time": payme_time,
        "amount": 700,
        "account": {"account": accounts["a2"]},
    }
    assert rpc(http, "CreateTransaction", p)["result"]["state"] == 1
    pay_clock.now += timedelta(hours=6, milliseconds=1)
    assert err(rpc(http, "CreateTransaction", p)) == -31008
    chk = rpc(http, "CheckTransaction", {"id": "pm-late-5"})["result"]
    assert (chk["state"], chk["reason"]) == (-1, 4)


def test_perform_just_inside_paymes_window_pays(
    http: httpx.Client, accounts: dict[str, str], db: psycopg.Connection[Any], pay_clock: Clock
) -> None:
    """The boundary on the other side: created 11 h after Payme's time and performed exactly
    12 h after it, the payment is posted once."""
    payme_time = now_ms(pay_clock) - 11 * 3_600_000
    p = {
        "id": "pm-late-6",
        "time": payme_time,
        "amount": 900,
        "account": {"account": accounts["a2"]},
    }
    rpc(http, "CreateTransaction", p)
    pay_clock.now += timedelta(hours=1)
    assert rpc(http, "PerformTransaction", {"id": "pm-late-6"})["result"]["state"] == 2
    assert payme_ledger(db, "pm-late-6") == [("payment", -900)]


def test_create_refused_when_paymes_time_is_older_than_12_hours(
    http: httpx.Client, accounts: dict[str, str], pay_clock: Clock
) -> None:
    """A first CreateTransaction more than 12 h after Payme's time is refused (-31008) and
    nothing is recorded; exactly 12 h is still accepted."""
    base = {"amount": 100, "account": {"account": accounts["a1"]}}
    edge = {"id": "pm-late-7", "time": now_ms(pay_clock) - TIMEOUT_MS, **base}
    assert rpc(http, "CreateTransaction", edge)["result"]["state"] == 1
    old = {"id": "pm-late-8", "time": now_ms(pay_clock) - TIMEOUT_MS - 1, **base}
    assert err(rpc(http, "CreateTransaction", old)) == -31008
    assert err(rpc(http, "CheckTransaction", {"id": "pm-late-8"})) == -31003


# ------------------------------------------------------------------ concurrency
async def test_identical_callbacks_at_the_same_moment_pay_once(
    server: LiveServer, accounts: dict[str, str], db: psycopg.Connection[Any], pay_clock: Clock
) -> None:
    a2 = accounts["a2"]
    before = balance(db, a2)
    p = {"id": "pm-race-1", "time": now_ms(pay_clock), "amount": 4242, "account": {"account": a2}}

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:

        async def call(method: str, params: dict[str, Any]) -> dict[str, Any]:
            r = await c.post(
                "/api/payme",
                json={"id": 1, "method": method, "params": params},
                headers=payme_auth(),
            )
            out: dict[str, Any] = r.json()
            return out

        created = await asyncio.gather(*(call("CreateTransaction", p) for _ in range(4)))
        assert len({c_["result"]["transaction"] for c_ in created}) == 1
        performed = await asyncio.gather(
            *(call("PerformTransaction", {"id": "pm-race-1"}) for _ in range(4))
        )
    assert {x["result"]["state"] for x in performed} == {2}
    assert len({x["result"]["perform_time"] for x in performed}) == 1
    assert payme_ledger(db, "pm-race-1") == [("payment", -4242)]
    assert balance(db, a2) == before - 4242


# ------------------------------------------------------------------ ChangePassword
def test_change_password(
    http: httpx.Client, server: LiveServer, db: psycopg.Connection[Any]
) -> None:
    assert err(rpc(http, "ChangePassword", {"password": "x"}, payme_auth("nope"))) == -32504
    assert rpc(http, "ChangePassword", {"password": "New-Key-2"})["result"] == {"success": True}
    try:
        assert err(rpc(http, "CheckTransaction", {"id": "pm-flow-1"})) == -32504  # old key
        ok = rpc(http, "CheckTransaction", {"id": "pm-flow-1"}, payme_auth("New-Key-2"))
        assert ok["result"]["state"] == 2
    finally:
        db.execute("DELETE FROM payme_keys")


def test_not_post_and_oversized(http: httpx.Client) -> None:
    r = http.get("/api/payme", headers=payme_auth())
    assert r.status_code == 200
    assert r.json()["error"]["code"] == -32300
    big = http.post("/api/payme", content=b" " * 70_000, headers=payme_auth())
    assert big.json()["error"]["code"] == -32600


def test_ledger_failure_rolls_back_the_state_change(
    http: httpx.Client, accounts: dict[str, str], db: psycopg.Connection[Any], pay_clock: Clock
) -> None:
    """Fault injection in the real database: the ledger refuses one amount. Perform then
    answers a system error and the transaction stays in state 1 (nothing half-saved); once
    the fault is gone the retry performs it."""
    p = {
        "id": "pm-fault-1",
        "time": now_ms(pay_clock),
        "amount": 13_131,
        "account": {"account": accounts["a1"]},
    }
    rpc(http, "CreateTransaction", p)
    db.execute(
        """CREATE FUNCTION test_refuse_13131() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN IF NEW.amount_tiyin = -13131 THEN RAISE EXCEPTION 'disk full (injected)';
           END IF; RETURN NEW; END $$"""
    )
    db.execute(
        "CREATE TRIGGER test_refuse BEFORE INSERT ON ledger FOR EACH ROW "
        "EXECUTE FUNCTION test_refuse_13131()"
    )
    try:
        assert err(rpc(http, "PerformTransaction", {"id": "pm-fault-1"})) == -32400
        assert rpc(http, "CheckTransaction", {"id": "pm-fault-1"})["result"]["state"] == 1
        assert payme_ledger(db, "pm-fault-1") == []
    finally:
        db.execute("DROP TRIGGER test_refuse ON ledger")
        db.execute("DROP FUNCTION test_refuse_13131()")
    assert rpc(http, "PerformTransaction", {"id": "pm-fault-1"})["result"]["state"] == 2
    assert payme_ledger(db, "pm-fault-1") == [("payment", -13_131)]


def test_account_number_is_read_as_people_type_it(
    http: httpx.Client, accounts: dict[str, str]
) -> None:
    """The number goes through billing.accountno.clean like everywhere else: spaces (also
    no-break), dashes and full-width digits are fine; a letter that looks like a digit is an
    invalid number (-31051), never a guess."""
    a1 = accounts["a1"]
    fullwidth = "".join(chr(ord(c) - ord("0") + 0xFF10) for c in a1)
    for typed in (
        f"{a1[:3]} {a1[3:6]} {a1[6:]}",
        f"{a1[:3]}-{a1[3:6]}-{a1[6:]}",
        f"\u00a0{a1[:3]}\u00a0{a1[3:]}\u00a0",
        f"{a1[:4]}\u2013{a1[4:]}",
        fullwidth,
    ):
        ok = rpc(http, "CheckPerformTransaction", {"amount": 10000, "account": {"account": typed}})
        assert ok.get("result") == {"allow": True}, (typed, ok)
    for wrong in ("\u041e" + a1[1:], "O" + a1[1:], a1[:8]):  # Cyrillic O, Latin O, 8 digits
        body = rpc(
            http, "CheckPerformTransaction", {"amount": 10000, "account": {"account": wrong}}
        )
        assert err(body) == -31051, wrong
