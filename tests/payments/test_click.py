"""Click SHOP API conformance: we play Click (form-encoded Prepare / Complete with the md5
sign_string) over real HTTP against the running app."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.api.conftest import LiveServer, make_account
from tests.payments.conftest import CLICK_SECRET, CLICK_SERVICE, balance

_trans = itertools.count(9_000_001)
SIGN_TIME = "2026-11-20 14:00:00"


@pytest.fixture(scope="module")
def accounts(db_url: str) -> dict[str, str]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        _, a1 = make_account(conn, 1)
        _, a2 = make_account(conn, 2, name="Rahimova Dilnoza", house="14")
    return {"a1": a1, "a2": a2}


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def prepare_form(trans_id: int, account: str, amount: str, **over: str) -> dict[str, str]:
    f = {
        "click_trans_id": str(trans_id),
        "service_id": CLICK_SERVICE,
        "click_paydoc_id": str(trans_id + 5),
        "merchant_trans_id": account,
        "amount": amount,
        "action": "0",
        "error": "0",
        "error_note": "Success",
        "sign_time": SIGN_TIME,
    }
    f.update(over)
    f.setdefault(
        "sign_string",
        md5(
            f["click_trans_id"]
            + f["service_id"]
            + CLICK_SECRET
            + f["merchant_trans_id"]
            + f["amount"]
            + f["action"]
            + f["sign_time"]
        ),
    )
    return f


def complete_form(
    trans_id: int, account: str, amount: str, prepare_id: int | str, **over: str
) -> dict[str, str]:
    f = {
        "click_trans_id": str(trans_id),
        "service_id": CLICK_SERVICE,
        "click_paydoc_id": str(trans_id + 5),
        "merchant_trans_id": account,
        "merchant_prepare_id": str(prepare_id),
        "amount": amount,
        "action": "1",
        "error": "0",
        "error_note": "Success",
        "sign_time": SIGN_TIME,
    }
    f.update(over)
    f.setdefault(
        "sign_string",
        md5(
            f["click_trans_id"]
            + f["service_id"]
            + CLICK_SECRET
            + f["merchant_trans_id"]
            + f["merchant_prepare_id"]
            + f["amount"]
            + f["action"]
            + f["sign_time"]
        ),
    )
    return f


def post(http: httpx.Client, path: str, form: dict[str, str]) -> dict[str, Any]:
    r = http.post(path, data=form)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def click_ledger(db: psycopg.Connection[Any], trans_id: int) -> list[tuple[str, int]]:
    return [
        (r[0], r[1])
        for r in db.execute(
            "SELECT kind, amount_tiyin FROM ledger WHERE source = 'click' AND external_ref = %s "
            "ORDER BY id",
            (str(trans_id),),
        ).fetchall()
    ]


def test_prepare_complete_success(
    http: httpx.Client, accounts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    a1 = accounts["a1"]
    before = balance(db, a1)
    tid = next(_trans)
    prep = post(http, "/api/click/prepare", prepare_form(tid, a1, "15000.50"))
    assert prep["error"] == 0, prep
    assert prep["click_trans_id"] == tid
    assert prep["merchant_trans_id"] == a1
    assert isinstance(prep["merchant_prepare_id"], int)
    assert balance(db, a1) == before  # prepared is not paid
    # a repeated Prepare answers the same prepare id
    again = post(http, "/api/click/prepare", prepare_form(tid, a1, "15000.50"))
    assert again["merchant_prepare_id"] == prep["merchant_prepare_id"]
    done = post(
        http, "/api/click/complete", complete_form(tid, a1, "15000.50", prep["merchant_prepare_id"])
    )
    assert done["error"] == 0, done
    assert done["merchant_confirm_id"] == prep["merchant_prepare_id"]
    assert balance(db, a1) == before - 1500050
    assert click_ledger(db, tid) == [("payment", -1500050)]
    # the same click_trans_id never pays twice
    dup = post(
        http, "/api/click/complete", complete_form(tid, a1, "15000.50", prep["merchant_prepare_id"])
    )
    assert dup["error"] == -4
    assert post(http, "/api/click/prepare", prepare_form(tid, a1, "15000.50"))["error"] == -4
    assert click_ledger(db, tid) == [("payment", -1500050)]


def test_one_url_dispatches_by_action(
    http: httpx.Client, accounts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    tid = next(_trans)
    prep = post(http, "/api/click", prepare_form(tid, accounts["a2"], "1000"))
    assert prep["error"] == 0
    done = post(
        http, "/api/click", complete_form(tid, accounts["a2"], "1000", prep["merchant_prepare_id"])
    )
    assert done["error"] == 0
    assert click_ledger(db, tid) == [("payment", -100000)]
    assert (
        post(http, "/api/click", prepare_form(next(_trans), accounts["a2"], "1000", action="7"))[
            "error"
        ]
        == -3
    )


def test_sign_check_failed(http: httpx.Client, accounts: dict[str, str]) -> None:
    tid = next(_trans)
    bad = prepare_form(tid, accounts["a1"], "1000", sign_string="0" * 32)
    assert post(http, "/api/click/prepare", bad)["error"] == -1
    # a signature made with the amount written differently does not match either
    f = prepare_form(tid, accounts["a1"], "1000")
    f["amount"] = "1000.00"
    assert post(http, "/api/click/prepare", f)["error"] == -1
    prep = post(http, "/api/click/prepare", prepare_form(tid, accounts["a1"], "1000"))
    assert prep["error"] == 0
    # Complete signed without merchant_prepare_id (the Prepare formula) is refused
    c = complete_form(tid, accounts["a1"], "1000", prep["merchant_prepare_id"])
    c["sign_string"] = md5(
        c["click_trans_id"]
        + c["service_id"]
        + CLICK_SECRET
        + c["merchant_trans_id"]
        + c["amount"]
        + c["action"]
        + c["sign_time"]
    )
    assert post(http, "/api/click/complete", c)["error"] == -1


def test_amount_is_parsed_exactly(
    http: httpx.Client, accounts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    for amount in ("1000.001", "abc", "-5", "0", "1e3", "NaN"):
        r = post(http, "/api/click/prepare", prepare_form(next(_trans), accounts["a1"], amount))
        assert r["error"] == -2, amount
    tid = next(_trans)
    prep = post(http, "/api/click/prepare", prepare_form(tid, accounts["a1"], "0.29"))
    assert prep["error"] == -2  # below the 1 so'm minimum
    tid = next(_trans)
    prep = post(http, "/api/click/prepare", prepare_form(tid, accounts["a1"], "1234.56"))
    assert prep["error"] == 0
    # Complete with another amount than prepared: -2, nothing paid
    other = complete_form(tid, accounts["a1"], "1234.55", prep["merchant_prepare_id"])
    assert post(http, "/api/click/complete", other)["error"] == -2
    assert click_ledger(db, tid) == []
    ok = complete_form(tid, accounts["a1"], "1234.560", prep["merchant_prepare_id"])
    assert post(http, "/api/click/complete", ok)["error"] == 0
    assert click_ledger(db, tid) == [("payment", -123456)]


def test_errors_user_transaction_request(http: httpx.Client, accounts: dict[str, str]) -> None:
    assert (
        post(http, "/api/click/prepare", prepare_form(next(_trans), "000000109", "100"))["error"]
        == -5
    )
    assert (
        post(http, "/api/click/prepare", prepare_form(next(_trans), "000000019", "100"))["error"]
        == -5
    )
    tid = next(_trans)
    assert (
        post(http, "/api/click/complete", complete_form(tid, accounts["a1"], "100", 999999))[
            "error"
        ]
        == -6
    )
    missing = prepare_form(next(_trans), accounts["a1"], "100")
    del missing["sign_time"]
    assert post(http, "/api/click/prepare", missing)["error"] == -8
    other_service = prepare_form(next(_trans), accounts["a1"], "100", service_id="999")
    assert post(http, "/api/click/prepare", other_service)["error"] == -8
    # Complete at the Prepare URL
    tid = next(_trans)
    prep = post(http, "/api/click/prepare", prepare_form(tid, accounts["a1"], "100"))
    wrong = complete_form(tid, accounts["a1"], "100", prep["merchant_prepare_id"])
    assert post(http, "/api/click/prepare", wrong)["error"] == -3


def test_complete_with_click_error_cancels(
    http: httpx.Client, accounts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    tid = next(_trans)
    prep = post(http, "/api/click/prepare", prepare_form(tid, accounts["a1"], "500"))
    pid = prep["merchant_prepare_id"]
    failed = complete_form(tid, accounts["a1"], "500", pid, error="-5017", error_note="no money")
    assert post(http, "/api/click/complete", failed)["error"] == -9
    state = db.execute(
        "SELECT state FROM provider_transactions WHERE provider = 'click' AND ext_id = %s",
        (str(tid),),
    ).fetchone()
    assert state == (-1,)
    # a late successful Complete for a cancelled transaction is refused, nothing is paid
    assert (
        post(http, "/api/click/complete", complete_form(tid, accounts["a1"], "500", pid))["error"]
        == -9
    )
    assert post(http, "/api/click/prepare", prepare_form(tid, accounts["a1"], "500"))["error"] == -9
    assert click_ledger(db, tid) == []


async def test_identical_completes_at_the_same_moment_pay_once(
    server: LiveServer, accounts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    a2 = accounts["a2"]
    before = balance(db, a2)
    tid = next(_trans)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        preps = await asyncio.gather(
            *(c.post("/api/click/prepare", data=prepare_form(tid, a2, "777")) for _ in range(3))
        )
        ids = {p.json()["merchant_prepare_id"] for p in preps}
        assert len(ids) == 1
        pid = ids.pop()
        form = complete_form(tid, a2, "777", pid)
        dones = await asyncio.gather(*(c.post("/api/click/complete", data=form) for _ in range(4)))
    codes = sorted(d.json()["error"] for d in dones)
    assert codes == [-4, -4, -4, 0]
    assert click_ledger(db, tid) == [("payment", -77700)]
    assert balance(db, a2) == before - 77700


def test_ledger_failure_answers_7_and_keeps_nothing(
    http: httpx.Client, accounts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    """Fault injection in the real database: the ledger refuses the posting. Complete answers
    -7, the transaction stays prepared (no half-saved state), and Click's retry pays it."""
    tid = next(_trans)
    prep = post(http, "/api/click/prepare", prepare_form(tid, accounts["a1"], "131.31"))
    db.execute(
        """CREATE FUNCTION test_refuse_13131() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN IF NEW.amount_tiyin = -13131 THEN RAISE EXCEPTION 'disk full (injected)';
           END IF; RETURN NEW; END $$"""
    )
    db.execute(
        "CREATE TRIGGER test_refuse BEFORE INSERT ON ledger FOR EACH ROW "
        "EXECUTE FUNCTION test_refuse_13131()"
    )
    form = complete_form(tid, accounts["a1"], "131.31", prep["merchant_prepare_id"])
    try:
        assert post(http, "/api/click/complete", form)["error"] == -7
        state = db.execute(
            "SELECT state, ledger_id FROM provider_transactions WHERE provider = 'click' "
            "AND ext_id = %s",
            (str(tid),),
        ).fetchone()
        assert state == (1, None)
    finally:
        db.execute("DROP TRIGGER test_refuse ON ledger")
        db.execute("DROP FUNCTION test_refuse_13131()")
    assert post(http, "/api/click/complete", form)["error"] == 0
    assert click_ledger(db, tid) == [("payment", -13_131)]


def test_account_number_is_read_as_people_type_it(
    http: httpx.Client, accounts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    """merchant_trans_id goes through billing.accountno.clean: a Prepare with the number
    written with spaces and a Complete with dashes pay the same account once; a Cyrillic
    letter O instead of the digit 0 is an unknown user (-5), never a guess."""
    a2 = accounts["a2"]
    before = balance(db, a2)
    tid = next(_trans)
    spaced = f"{a2[:3]} {a2[3:6]} {a2[6:]}"
    prep = post(http, "/api/click/prepare", prepare_form(tid, spaced, "700"))
    assert prep["error"] == 0, prep
    dashed = f"{a2[:3]}-{a2[3:6]}-{a2[6:]}"
    done = post(
        http, "/api/click/complete", complete_form(tid, dashed, "700", prep["merchant_prepare_id"])
    )
    assert done["error"] == 0, done
    assert click_ledger(db, tid) == [("payment", -70000)]
    assert balance(db, a2) == before - 70000
    lookalike = "\u041e" + a2[1:]
    assert (
        post(http, "/api/click/prepare", prepare_form(next(_trans), lookalike, "700"))["error"]
        == -5
    )
