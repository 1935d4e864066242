"""The back-office payment pages over real HTTP with the browser's cookies and CSRF token:
the cashier desk (take, receipt link, void, shift) and the statements page (upload, review,
allocate, re-match)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from api.security import make_access_token, make_csrf_token
from tests.api.conftest import SECRET, Clock, LiveServer, User, make_account
from tests.payments.conftest import balance, make_legal

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def accounts(db_url: str) -> dict[str, str]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        return {
            "karimov": make_account(conn, 1, name="Karimov Anvar", house="12")[1],
            "rahimova": make_account(conn, 2, name="Rahimova Dilnoza", house="14")[1],
            "bog1": make_legal(conn, 4, name="Bog'ishamol Non MChJ", inn="301234567")[1],
            "bog2": make_legal(conn, 5, name="Bog'ishamol Non 2", inn="301234567", house="2")[1],
        }


def browser(server: LiveServer, user: User, clock: Clock) -> tuple[httpx.Client, str]:
    """A client holding the session and CSRF cookies a logged-in browser would have."""
    csrf = make_csrf_token(SECRET)
    c = httpx.Client(base_url=server.url, timeout=30, follow_redirects=True)
    c.cookies.set("suvnet_session", make_access_token(user.principal(), SECRET, clock.now))
    c.cookies.set("suvnet_csrf", csrf)
    return c, csrf


@pytest.fixture
def cashier(
    server: LiveServer, staff: dict[str, User], pay_clock: Clock
) -> Iterator[tuple[httpx.Client, str]]:
    c, csrf = browser(server, staff["cashier"], pay_clock)
    with c:
        yield c, csrf


@pytest.fixture
def accountant(
    server: LiveServer, staff: dict[str, User], pay_clock: Clock
) -> Iterator[tuple[httpx.Client, str]]:
    c, csrf = browser(server, staff["accountant"], pay_clock)
    with c:
        yield c, csrf


def test_desk_take_receipt_void(
    cashier: tuple[httpx.Client, str], accounts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    c, csrf = cashier
    page = c.get("/staff/payments/desk?lang=ru")
    assert page.status_code == 200
    assert "Принять оплату" in page.text
    # rendered like every page: the chosen language is remembered for the next pages
    assert page.cookies.get("suvnet_lang") == "ru"
    key = re.search(r'name="request_key" value="([0-9a-f]+)"', page.text)
    assert key is not None
    before = balance(db, accounts["karimov"])
    form = {
        "csrf_token": csrf,
        "account": accounts["karimov"],
        "amount": "12500,50",
        "method": "card",
        "request_key": key.group(1),
    }
    r = c.post("/staff/payments/desk", data=form)
    assert r.status_code == 200
    m = re.search(r'id="receipt-link" href="([^"]+)"', r.text)
    assert m is not None
    assert balance(db, accounts["karimov"]) == before - 1250050
    # the same form sent twice (double click) pays once
    c.post("/staff/payments/desk", data=form)
    assert balance(db, accounts["karimov"]) == before - 1250050
    pdf = c.get(m.group(1))
    assert pdf.headers["content-type"] == "application/pdf"
    assert "12\u202f500,50" in r.text  # the shift table
    # a form without the CSRF token is refused and pays nothing
    bad = c.post("/staff/payments/desk", data={**form, "csrf_token": "x", "request_key": "k2"})
    assert bad.status_code == 403
    assert balance(db, accounts["karimov"]) == before - 1250050
    # wrong amount: the page says why, in the page's language
    wrong = c.post("/staff/payments/desk", data={**form, "amount": "1.005", "request_key": "k3"})
    assert wrong.status_code == 422 and "больше 2 знаков после запятой" in wrong.text
    assert "decimals" not in wrong.text
    receipt_no = m.group(1).rsplit("/", 1)[1].removesuffix(".pdf")
    void = {"csrf_token": csrf, "receipt_no": receipt_no, "reason": "xato hisob"}
    v = c.post("/staff/payments/desk/void", data=void)
    assert v.status_code == 200 and f"Квитанция {receipt_no} аннулирована." in v.text
    assert balance(db, accounts["karimov"]) == before
    # the same void sent again (Back, then submit): the first one stands, no error
    again = c.post("/staff/payments/desk/void", data=void)
    assert again.status_code == 200 and f"Квитанция {receipt_no} аннулирована." in again.text
    assert balance(db, accounts["karimov"]) == before


def test_viewer_cannot_open_the_desk(
    server: LiveServer, staff: dict[str, User], pay_clock: Clock
) -> None:
    c, _ = browser(server, staff["viewer"], pay_clock)
    with c:
        assert c.get("/staff/payments/desk").status_code == 403
        assert c.get("/staff/payments/statements").status_code == 403


def test_statements_page(
    accountant: tuple[httpx.Client, str], accounts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    c, csrf = accountant
    r = c.post(
        "/staff/payments/statements",
        data={"csrf_token": csrf},
        files={"file": ("statement.csv", (DATA / "statement.csv").read_bytes())},
    )
    assert r.status_code == 200, r.text
    assert 'id="stmt-summary"' in r.text
    line = db.execute(
        "SELECT id FROM bank_statement_lines WHERE purpose = 'Suv uchun noyabr 2026'"
    ).fetchone()
    assert line is not None
    assert f'id="line-{line[0]}"' in r.text
    bad = c.post(
        "/staff/payments/statements",
        data={"csrf_token": csrf},
        files={"file": ("unbalanced.csv", (DATA / "unbalanced.csv").read_bytes())},
    )
    assert bad.status_code == 422 and "yakuniy qoldiqdan 10,00 soʻmga farq qiladi" in bad.text
    before = balance(db, accounts["bog2"])
    # more than is open on the line: refused, the amounts in so'm
    over = c.post(
        f"/staff/payments/statements/{line[0]}/allocate",
        data={"csrf_token": csrf, "account": accounts["bog2"], "amount": "600 000,00"},
    )
    assert over.status_code == 422
    assert (
        "600\u202f000,00 soʻm bu qatorda qolgan summadan (500\u202f000,00 soʻm) koʻp" in over.text
    )
    assert "tiyin" not in over.text
    a = c.post(
        f"/staff/payments/statements/{line[0]}/allocate",
        data={"csrf_token": csrf, "account": accounts["bog2"], "amount": "500 000,00"},
    )
    assert a.status_code == 200
    assert f'id="line-{line[0]}"' not in a.text
    assert f"{line[0]}-qator: toʻliq taqsimlandi." in a.text
    assert balance(db, accounts["bog2"]) == before - 50_000_000
    # the page allocates through the same action as the API: the same audit row
    audit = db.execute(
        "SELECT after FROM audit_log WHERE entity = 'bank_statement_line' AND entity_id = %s",
        (str(line[0]),),
    ).fetchall()
    assert [(row[0]["parts"], row[0]["status"]) for row in audit] == [
        ([[accounts["bog2"], 50_000_000]], "matched")
    ]
    rm = c.post("/staff/payments/statements/rematch", data={"csrf_token": csrf})
    assert rm.status_code == 200 and "Qayta solishtirildi: 0 toʻliq taqsimlandi" in rm.text


def test_desk_void_rules(
    server: LiveServer,
    staff: dict[str, User],
    pay_clock: Clock,
    accounts: dict[str, str],
    db: psycopg.Connection[Any],
) -> None:
    """On the desk page a cashier may void only their own payments; another cashier is
    refused (nothing changes), an accountant may void any."""
    c1, csrf1 = browser(server, staff["cashier"], pay_clock)
    c2, csrf2 = browser(server, staff["cashier2"], pay_clock)
    acc, acc_csrf = browser(server, staff["accountant"], pay_clock)
    with c1, c2, acc:
        before = balance(db, accounts["rahimova"])
        r = c1.post(
            "/staff/payments/desk",
            data={"csrf_token": csrf1, "account": accounts["rahimova"], "amount": "30000"},
        )
        m = re.search(r'id="receipt-link" href="[^"]*/(K-[0-9-]+)\.pdf"', r.text)
        assert m is not None
        receipt_no = m.group(1)
        assert balance(db, accounts["rahimova"]) == before - 3_000_000
        form = {"receipt_no": receipt_no, "reason": "xato"}
        refused = c2.post("/staff/payments/desk/void", data={**form, "csrf_token": csrf2})
        assert refused.status_code == 403
        assert "kvitansiyani kassir1 qabul qilgan" in refused.text.replace("&#39;", "'")
        assert balance(db, accounts["rahimova"]) == before - 3_000_000
        done = acc.post("/staff/payments/desk/void", data={**form, "csrf_token": acc_csrf})
        assert done.status_code == 200 and f"{receipt_no} kvitansiya bekor qilindi" in done.text
        assert balance(db, accounts["rahimova"]) == before


def test_desk_errors_are_explained(
    cashier: tuple[httpx.Client, str], accounts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    """A refused payment says why in the page's language (and the detail), and takes nothing;
    a form sent to the old desk address takes nothing and says so."""
    c, csrf = cashier
    before = balance(db, accounts["karimov"])
    bad = c.post(
        "/staff/payments/desk?lang=ru",
        data={"csrf_token": csrf, "account": accounts["karimov"], "amount": "12,345"},
    )
    assert bad.status_code == 422
    assert "Введите сумму в сумах" in bad.text and "В сумме 12,345 больше 2 знаков" in bad.text
    nobody = c.post(
        "/staff/payments/desk?lang=ru",
        data={"csrf_token": csrf, "account": "999999999", "amount": "100"},
    )
    assert nobody.status_code == 422 and "Платёж отклонён" in nobody.text
    assert "Счёта 999999999 нет: проверьте номер." in nobody.text
    # no English left in the refusals
    for page in (bad, nobody):
        assert "check the number" not in page.text and "decimals" not in page.text
    old = c.post(
        "/staff/cashier?lang=en",
        data={"csrf_token": csrf, "number": accounts["karimov"], "amount": "100", "receipt": "1"},
    )
    assert old.status_code == 200
    assert str(old.url).endswith("/staff/payments/desk?moved=1&lang=en")
    assert "was not taken" in old.text
    assert balance(db, accounts["karimov"]) == before
    # the notice in the other languages of the back office
    for lang, words in (
        ("uz", "to'lov qabul qilinmadi"),
        ("uz_Cyrl", "тўлов қабул қилинмади"),
        ("ru", "не принят"),
    ):
        page = c.get(f"/staff/payments/desk?moved=1&lang={lang}")
        assert words in page.text.replace("&#39;", "'"), lang


def test_home_page_links_the_one_desk(
    server: LiveServer, staff: dict[str, User], pay_clock: Clock
) -> None:
    """The staff home page has one desk link, for the roles the desk lets in."""
    for name, shown in (
        ("cashier", True),
        ("accountant", True),
        ("viewer", False),
        ("clerk", False),
    ):
        c, _ = browser(server, staff[name], pay_clock)
        with c:
            home = c.get("/staff/").text
        assert home.count('href="/staff/payments/desk"') == (1 if shown else 0), name
        assert "/staff/cashier" not in home, name


def form_key(page: httpx.Response) -> str:
    m = re.search(r'name="request_key" value="([0-9a-f]{32})"', page.text)
    assert m is not None, page.text[:500]
    return m.group(1)


def test_desk_back_and_resubmit_answers_with_the_first_receipt(
    cashier: tuple[httpx.Client, str], accounts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    """The desk page lives at its form key: opened without one it gets a fresh key (the
    page's script writes it into the address). Browser Back brings back the page at the same
    key, so the same form sent again answers with the first receipt (said so on the page)
    and the ledger has one payment."""
    c, csrf = cashier
    page = c.get("/staff/payments/desk?lang=en")
    key = form_key(page)
    assert f'data-form-key="{key}"' in page.text and "form_key.js" in page.text
    assert form_key(c.get(f"/staff/payments/desk?form={key}")) == key
    form = {
        "csrf_token": csrf,
        "account": accounts["rahimova"],
        "amount": "41 000",
        "method": "card",
        "request_key": key,
    }
    before = balance(db, accounts["rahimova"])
    first = c.post("/staff/payments/desk", data=form)
    receipt = re.search(r'id="receipt-link" href="[^"]*/(K-[0-9-]+)\.pdf"', first.text)
    assert receipt is not None
    assert form_key(first) != key  # the next payment gets a new form
    back = c.get(f"/staff/payments/desk?form={key}")  # Back: the same address, the same key
    assert form_key(back) == key
    second = c.post("/staff/payments/desk", data=form)
    assert receipt.group(1) in second.text
    assert "This form was sent before: the payment was taken once." in second.text
    assert balance(db, accounts["rahimova"]) == before - 4_100_000
    rows = db.execute(
        "SELECT count(*) FROM cashier_payments WHERE request_key LIKE %s", (f"%:{key}",)
    ).fetchone()
    assert rows == (1,)
    # the same key with another amount: refused, nothing taken, a new form offered
    other = c.post("/staff/payments/desk", data={**form, "amount": "50 000"})
    assert other.status_code == 409 and receipt.group(1) in other.text
    assert 'id="desk-new"' in other.text
    assert balance(db, accounts["rahimova"]) == before - 4_100_000


def test_review_never_preselects_tied_candidates(
    accountant: tuple[httpx.Client, str], accounts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    """A firm with two accounts (the same INN) and a purpose naming two accounts without
    amounts: the suggestions tie, the form has no account chosen and says so; sent without a
    choice it is refused and nothing is posted."""
    c, csrf = accountant
    c.post(
        "/staff/payments/statements",
        data={"csrf_token": csrf},
        files={"file": ("statement.csv", (DATA / "statement.csv").read_bytes())},
    )
    page = c.get("/staff/payments/statements?lang=en")
    tied = db.execute(
        "SELECT id FROM bank_statement_lines WHERE purpose = 'hisoblar 000000018 va 000000026'"
    ).fetchone()
    assert tied is not None
    card = re.search(rf'<div class="card" id="line-{tied[0]}">(.*?)</form>', page.text, re.S)
    assert card is not None, page.text[:2000]
    html = card.group(1)
    assert "Several accounts are equally likely" in html
    assert '<option value="" selected>' in html
    assert not re.search(r'<option value="\d{9}" selected>', html)
    assert 'name="account"' in html and re.search(r'name="account"[^>]*value="\d', html) is None
    before = [balance(db, accounts[k]) for k in ("karimov", "rahimova")]
    key = re.search(r'name="request_key" value="([^"]+)"', html)
    assert key is not None
    r = c.post(
        f"/staff/payments/statements/{tied[0]}/allocate?lang=en",
        data={"csrf_token": csrf, "pick": "", "account": "", "amount": "600,00"},
    )
    assert r.status_code == 422 and "Choose one of the suggested accounts" in r.text
    assert [balance(db, accounts[k]) for k in ("karimov", "rahimova")] == before


def test_allocation_back_and_resubmit_posts_once(
    accountant: tuple[httpx.Client, str], accounts: dict[str, str], db: psycopg.Connection[Any]
) -> None:
    """Part of a credit allocated from the review queue; the same form sent again (Back,
    then submit) answers with the first allocation and posts nothing more."""
    c, csrf = accountant
    c.post(
        "/staff/payments/statements",
        data={"csrf_token": csrf},
        files={"file": ("statement.csv", (DATA / "statement.csv").read_bytes())},
    )
    line = db.execute(
        "SELECT id FROM bank_statement_lines WHERE purpose = 'hisoblar 000000018 va 000000026'"
    ).fetchone()
    assert line is not None
    page = c.get("/staff/payments/statements?lang=en")
    key = re.search(rf'id="line-{line[0]}">.*?name="request_key" value="([^"]+)"', page.text, re.S)
    assert key is not None
    form = {
        "csrf_token": csrf,
        "pick": accounts["karimov"],
        "amount": "200,00",
        "request_key": key.group(1),
    }
    before = balance(db, accounts["karimov"])
    first = c.post(f"/staff/payments/statements/{line[0]}/allocate?lang=en", data=form)
    assert first.status_code == 200 and f"Line {line[0]}: partly allocated." in first.text
    again = c.post(f"/staff/payments/statements/{line[0]}/allocate?lang=en", data=form)
    assert again.status_code == 200 and "the allocation was made once" in again.text
    assert balance(db, accounts["karimov"]) == before - 20_000
    posted = db.execute(
        "SELECT count(*) FROM bank_allocations WHERE line_id = %s", (line[0],)
    ).fetchone()
    assert posted == (1,)
