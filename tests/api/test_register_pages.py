"""The register pages (/staff/register, api/web/staff_register*.py) and the account card:
each page for the roles that may see it and refused to the others, every change audited and
checked by the imports' rules, meters and readings through the billing's consumption checks,
tariffs and norms that do not touch a billed month, and the card in the visitor's language
(no stored code shown as it is). On the real PostgreSQL, the app in-process."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.security import Role
from billing.accountno import make_number
from billing.ledger import post_payment, reverse_entry
from tests.api.conftest import (
    NOW,
    PASSWORD,
    Clock,
    User,
    add_invoice_and_charge,
    api_settings,
    make_account,
)

EDIT = {Role.ADMIN, Role.BILLING_CLERK}
READ = {Role.ADMIN, Role.BILLING_CLERK, Role.CASHIER, Role.ACCOUNTANT, Role.LAWYER, Role.VIEWER}
RATES = {Role.ADMIN, Role.ACCOUNTANT}


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def app(db_url: str, clock: Clock) -> FastAPI:
    return create_app(api_settings(db_url), clock=clock)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def login(client: httpx.AsyncClient, user: User) -> str:
    """Log in on the staff page; the CSRF token for the forms."""
    client.cookies.clear()
    page = await client.get("/staff/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    r = await client.post(
        "/staff/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": token.group(1)},
    )
    assert r.status_code == 303, r.text
    return token.group(1)


def page(r: httpx.Response) -> str:
    """The page's text with its HTML entities read (so'm, not so&#39;m)."""
    return html.unescape(r.text)


def shown(r: httpx.Response) -> list[str]:
    """The problems and checks a page shows (for a failing test's message)."""
    return re.findall(r'(?:field-error|data-flag="\w+")[^<]*<?[^<]*', page(r))


def audit(db_url: str, action: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT actor, role, entity, entity_id, before, after FROM audit_log "
            "WHERE action = %s ORDER BY id",
            (action,),
        ).fetchall()


@pytest.fixture(scope="module")
def place(db_url: str, users: dict[Role, User]) -> dict[str, Any]:
    """The conftest's address (Samarqand viloyati, Urgut, Bog'ishamol, Navoiy 12) with a
    customer's account, its street's id and mahalla's id, a tariff and a norm from 2025."""
    with psycopg.connect(db_url) as conn:
        aid, number = make_account(conn, 500, name="Karimov Anvar")
        row = conn.execute(
            "SELECT h.street_id, s.mahalla_id FROM accounts a JOIN houses h ON h.id = a.house_id "
            "JOIN streets s ON s.id = h.street_id WHERE a.id = %s",
            (aid,),
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO tariffs (category, valid_from, price_tiyin_per_m3) "
            "VALUES ('household', '2025-01-01', 165000)"
        )
        conn.execute(
            "INSERT INTO norms (valid_from, m3_per_person_month) VALUES ('2025-01-01', 4.5)"
        )
        conn.commit()
    return {"account_id": aid, "number": number, "street_id": row[0], "mahalla_id": row[1]}


# ----------------------------------------------------------------------------------- roles


PAGES = [
    "/staff/register",
    "/staff/register?q=Navoiy",
    "/staff/register/addresses",
    "/staff/register/rates",
    "/staff/register/accounts/{number}/residents",
    "/staff/register/accounts/{number}/meters",
    "/staff/register/accounts/{number}/readings",
]


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.CUSTOMER])
async def test_each_page_for_each_role(
    client: httpx.AsyncClient, users: dict[Role, User], place: dict[str, Any], role: Role
) -> None:
    """Reading pages for the roles that read billing, the forms to change for the register
    clerks (tariffs and norms: the accountant and the admin); a refused role gets 403."""
    await login(client, users[role])
    for path in PAGES:
        r = await client.get(path.format(number=place["number"]))
        assert r.status_code == (200 if role in READ else 403), (role, path, r.status_code)
        if role in READ:
            assert r.headers["content-security-policy"].startswith("default-src 'self'")
            assert 'id="install"' not in page(r) or role in EDIT
    for path in (
        "/staff/register/accounts/new",
        f"/staff/register/accounts/{place['number']}/edit",
    ):
        r = await client.get(path)
        assert r.status_code == (200 if role in EDIT else 403), (role, path)
    r = await client.get("/staff/register/rates")
    if role in READ:
        assert ('id="tariff-form"' in page(r)) == (role in RATES)
    r = await client.get(f"/staff/accounts/{place['number']}")
    if role in READ:
        assert ('id="register-links"' in page(r)) == (role in EDIT)


async def test_a_customer_and_a_stranger_get_no_register_page(
    client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    from tests.api.conftest import bearer

    r = await client.get("/staff/register", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/staff/login")
    r = await client.get("/staff/register", headers=bearer(users[Role.CUSTOMER]))
    assert r.status_code == 403


async def test_a_change_needs_the_forms_csrf_token(
    client: httpx.AsyncClient, users: dict[Role, User], place: dict[str, Any]
) -> None:
    await login(client, users[Role.ADMIN])
    r = await client.post(
        f"/staff/register/accounts/{place['number']}/residents",
        data={"residents": "4", "since": "2026-11-01", "reason": "x"},
    )
    assert r.status_code == 403


# -------------------------------------------------------------------------------- accounts


async def test_open_an_account_with_the_imports_rules(
    client: httpx.AsyncClient, users: dict[Role, User], place: dict[str, Any], db_url: str
) -> None:
    csrf = await login(client, users[Role.BILLING_CLERK])
    form = {
        "csrf_token": csrf,
        "mahalla_id": str(place["mahalla_id"]),
        "street_id": str(place["street_id"]),
        "house": "14",
        "apartment": "",
        "kind": "legal",
        "name": "Obod Non MChJ",
        "inn": "12345",  # not 9 digits
        "mfo": "00873",
        "bank_account": "2020 8000 0001 2345",  # not 20 digits
        "phone": "+998 90 555 44 33",
        "residents": "0",
        "metered": "on",
        "opened_on": "2026-11-01",
    }
    r = await client.post("/staff/register/accounts/new?lang=en", data=form)
    assert r.status_code == 422
    assert "The INN is 9 digits." in page(r)
    assert "The bank account is 20 digits." in page(r)
    assert 'value="Obod Non MChJ"' in page(r)  # nothing typed is lost
    r = await client.post(
        "/staff/register/accounts/new?lang=uz",
        data={**form, "inn": "", "bank_account": "20208000000123456789"},
    )
    assert r.status_code == 422 and "Yuridik shaxs yoki byudjet tashkilotiga STIR kerak." in page(r)
    r = await client.post(
        "/staff/register/accounts/new",
        data={**form, "inn": "301 234 567", "bank_account": "20208000000123456789"},
    )
    assert r.status_code == 303
    number = r.headers["location"].rsplit("/", 1)[1]
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT a.kind, a.inn, a.bank_account, a.phone, h.number, s.key "
            "FROM accounts a JOIN houses h ON h.id = a.house_id "
            "JOIN account_search s ON s.account_id = a.id WHERE a.number = %s",
            (number,),
        ).fetchone()
    assert row is not None and row[:5] == (
        "legal",
        "301234567",
        "20208000000123456789",
        "+998905554433",
        "14",
    )
    assert " obod non " in row[5]  # findable at once
    rows = audit(db_url, "open")
    assert rows[-1][:4] == ("u_billing_clerk", "billing_clerk", "account", number)
    # the card shows the INN and the bank details, in the page's language
    r = await client.get(f"/staff/accounts/{number}?lang=ru")
    assert 'id="inn">301234567<' in page(r) and "20208000000123456789" in page(r)
    assert "Юридическое лицо" in page(r) and "legal" not in re.sub(r"<[^>]+>", "", page(r))


async def test_edit_suspend_and_close_with_the_months_to_correct(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    place: dict[str, Any],
    db_url: str,
    clock: Clock,
) -> None:
    with psycopg.connect(db_url) as conn:
        aid, number = make_account(conn, 510, name="Rahimov Olim", house="20")
        add_invoice_and_charge(conn, aid, date(2026, 11, 1), 2_000_000, 4.0, "2026-5101")
        conn.commit()
    csrf = await login(client, users[Role.ADMIN])
    r = await client.get(f"/staff/register/accounts/{number}/edit")
    assert 'value="Rahimov Olim"' in page(r)
    r = await client.post(
        f"/staff/register/accounts/{number}/edit",
        data={
            "csrf_token": csrf,
            "mahalla_id": str(place["mahalla_id"]),
            "street_id": str(place["street_id"]),
            "house": "20",
            "kind": "household",
            "name": "Rahimov Olim Karimovich",
            "phone": "998901112233",
            "residents": "3",
            "metered": "on",
        },
    )
    assert r.status_code == 303
    before, after = audit(db_url, "edit")[-1][4:]
    assert before["name"] == "Rahimov Olim" and after["name"] == "Rahimov Olim Karimovich"
    # closing dated back into billed November names the month to correct
    r = await client.post(
        f"/staff/register/accounts/{number}/status",
        data={
            "csrf_token": csrf,
            "status": "closed",
            "day": "2026-11-12",
            "at": "15:00",
            "reason": "ko'chib ketdi",
        },
    )
    assert r.status_code == 303 and "months=2026-11" in r.headers["location"]
    r = await client.get(r.headers["location"] + "&lang=ru")
    assert "2026-11" in page(r) and "Статус изменён." in page(r)
    with psycopg.connect(db_url) as conn:
        hist = conn.execute(
            "SELECT h.status, h.since, h.reason FROM account_status_history h JOIN accounts a "
            "ON a.id = h.account_id WHERE a.number = %s ORDER BY h.id DESC LIMIT 1",
            (number,),
        ).fetchone()
    assert hist == ("closed", datetime(2026, 11, 12, 10, 0, tzinfo=UTC), "ko'chib ketdi")
    # a change before the last one, or in the future, or without a reason, is refused
    for data, text in (
        ({"status": "active", "day": "2026-11-01", "reason": "x"}, "o'zgargan"),
        ({"status": "active", "day": "2027-01-01", "reason": "x"}, "kelajakda"),
        ({"status": "active", "day": "", "reason": ""}, "To'ldiring"),
    ):
        r = await client.post(
            f"/staff/register/accounts/{number}/status?lang=uz", data={"csrf_token": csrf, **data}
        )
        assert r.status_code == 422 and text in page(r), data
    assert len(audit(db_url, "status")) == 1


async def test_residents_with_history_and_billed_months(
    client: httpx.AsyncClient, users: dict[Role, User], db_url: str
) -> None:
    with psycopg.connect(db_url) as conn:
        aid, number = make_account(conn, 520, name="Toshmatova Zuhra", house="21")
        add_invoice_and_charge(conn, aid, date(2026, 11, 1), 1_000_000, 2.0, "2026-5201")
        conn.commit()
    csrf = await login(client, users[Role.BILLING_CLERK])
    url = f"/staff/register/accounts/{number}/residents"
    r = await client.post(
        url + "?lang=ru",
        data={"csrf_token": csrf, "residents": "300", "since": "2026-11-05", "reason": ""},
    )
    assert r.status_code == 422
    assert "Число жильцов от 0 до 200." in page(r) and "Заполните это поле." in page(r)
    r = await client.post(
        url,
        data={
            "csrf_token": csrf,
            "residents": "5",
            "since": "2026-11-05",
            "reason": "bola tug'ildi",
            "document": "MFY 123",
        },
    )
    assert r.status_code == 303 and "months=2026-11" in r.headers["location"]
    r = await client.get(url)
    assert 'id="residents-now">5<' in page(r) and "MFY 123" in page(r)
    assert audit(db_url, "residents")[-1][4:] == (
        {"residents": 3},
        {"residents": 5, "since": "2026-11-05", "reason": "bola tug'ildi", "document": "MFY 123"},
    )


# ---------------------------------------------------------------------------------- meters


async def test_install_seal_replace_and_remove_a_meter(
    client: httpx.AsyncClient, users: dict[Role, User], db_url: str
) -> None:
    with psycopg.connect(db_url) as conn:
        aid, number = make_account(conn, 530, name="Yusupov Jasur", house="22")
        conn.commit()
    csrf = await login(client, users[Role.BILLING_CLERK])
    base = f"/staff/register/accounts/{number}/meters"
    r = await client.post(
        base + "/install?lang=en",
        data={
            "csrf_token": csrf,
            "serial": "SV 01",
            "digits": "12",
            "initial": "-1",
            "day": "2027-01-01",
        },
    )
    assert r.status_code == 422
    for text in (
        "A serial number is letters",
        "3 to 9 digits",
        "cannot be negative",
        "in the future",
    ):
        assert text in page(r)
    r = await client.post(
        base + "/install",
        data={
            "csrf_token": csrf,
            "serial": "SV-2026-000530",
            "model": "Itron",
            "digits": "5",
            "initial": "12,5",
            "day": "2026-11-01",
            "at": "10:00",
        },
    )
    assert r.status_code == 303
    with psycopg.connect(db_url) as conn:
        meter = conn.execute("SELECT id FROM meters WHERE serial_no = 'SV-2026-000530'").fetchone()
        assert meter is not None
        conn.execute(
            "INSERT INTO meter_readings (meter_id, ts, value_m3, source) "
            "VALUES (%s, '2026-11-20 05:00+00', 20.0, 'inspector')",
            (meter[0],),
        )
        conn.commit()
    mid = meter[0]
    r = await client.post(
        f"{base}/{mid}/seal",
        data={"csrf_token": csrf, "seal_no": "P-0001", "day": "2026-11-01", "at": "10:05"},
    )
    assert r.status_code == 303
    r = await client.post(
        f"{base}/{mid}/seal", data={"csrf_token": csrf, "seal_no": "P-0002", "day": "2026-11-25"}
    )
    assert r.status_code == 303
    # the final reading may not be below the last one (20 m³ on 20.11)
    r = await client.post(
        f"{base}/{mid}/replace?lang=en",
        data={
            "csrf_token": csrf,
            "final": "19",
            "new_serial": "SV-2026-000531",
            "new_initial": "0",
            "day": "2026-11-28",
        },
    )
    assert r.status_code == 422 and "Lower than the last reading, 20,000" in page(r), shown(r)
    assert 'id="replace-' in page(r) and '<details class="form" open>' in page(r)
    r = await client.post(
        f"{base}/{mid}/replace",
        data={
            "csrf_token": csrf,
            "final": "21,25",
            "new_serial": "SV-2026-000531",
            "new_initial": "0",
            "day": "2026-11-28",
            "at": "09:00",
        },
    )
    assert r.status_code == 303
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT m.serial_no, c.installed_at, c.removed_at, c.initial_reading, c.final_reading "
            "FROM service_connections c JOIN meters m ON m.id = c.meter_id "
            "WHERE c.account_id = %s ORDER BY c.installed_at",
            (aid,),
        ).fetchall()
        seals = conn.execute(
            "SELECT seal_no, sealed_at, removed_at FROM meter_seals WHERE meter_id = %s "
            "ORDER BY id",
            (mid,),
        ).fetchall()
        new_id = conn.execute("SELECT id FROM meters WHERE serial_no = 'SV-2026-000531'").fetchone()
    moment = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
    assert rows == [
        ("SV-2026-000530", datetime(2026, 11, 1, 5, tzinfo=UTC), moment, 12.5, 21.25),
        ("SV-2026-000531", moment, None, 0.0, None),
    ]
    # the first seal was replaced by the second, which came off with the meter
    assert [s[0] for s in seals] == ["P-0001", "P-0002"]
    assert seals[0][2] == datetime(2026, 11, 24, 19, tzinfo=UTC) and seals[1][2] == moment
    assert new_id is not None
    r = await client.post(
        f"{base}/{new_id[0]}/remove",
        data={"csrf_token": csrf, "final": "3", "day": "2026-11-30", "at": "12:00"},
    )
    assert r.status_code == 303
    actions = [
        a
        for a in ("meter_install", "meter_seal", "meter_replace", "meter_remove")
        if audit(db_url, a)
    ]
    assert len(actions) == 4
    r = await client.get(base + "?lang=uz_Cyrl")
    assert "SV-2026-000531" in page(r) and "Ҳисоблагич" in page(r)


# -------------------------------------------------------------------------------- readings


async def test_a_reading_is_checked_before_it_is_saved(
    client: httpx.AsyncClient, users: dict[Role, User], db_url: str
) -> None:
    with psycopg.connect(db_url) as conn:
        aid, number = make_account(conn, 540, name="Nazarova Feruza", house="23")
        from billing.accounts import install_meter

        mid = install_meter(
            conn,
            aid,
            "SV-540",
            installed_at=datetime(2026, 10, 1, tzinfo=UTC),
            initial_reading=100.0,
        )
        conn.execute(
            "INSERT INTO meter_readings (meter_id, ts, value_m3, source) VALUES "
            "(%s, '2026-11-01 05:00+00', 110.0, 'inspector')",
            (mid,),
        )
        conn.commit()
    csrf = await login(client, users[Role.BILLING_CLERK])
    base = f"/staff/register/accounts/{number}/readings"
    form = {
        "csrf_token": csrf,
        "meter_id": str(mid),
        "day": "2026-11-30",
        "at": "10:00",
        "source": "manual",
    }
    # lower than the reading before: shown, and not saved without the confirmation
    r = await client.post(base + "/check?lang=en", data={**form, "value": "105"})
    assert r.status_code == 200
    assert 'data-flag="negative"' in page(r) and "Lower than the reading before (110,000" in page(r)
    assert 'id="confirm"' in page(r)
    r = await client.post(base + "/save?lang=en", data={**form, "value": "105"})
    assert r.status_code == 422 and "tick the box" in page(r)
    # a spike: 2000 m³ in a month
    r = await client.post(base + "/check?lang=ru", data={**form, "value": "5110"})
    assert 'data-flag="spike"' in page(r)
    # a plain reading: nothing unusual, the step and the rate per day shown, then saved
    r = await client.post(base + "/check?lang=en", data={**form, "value": "121,5"})
    assert 'id="no-flags"' in page(r) and 'id="confirm"' not in page(r), shown(r)
    assert "11,500 m³" in page(r).replace("\u202f", " ")
    r = await client.post(base + "/save", data={**form, "value": "121,5"})
    assert r.status_code == 303
    # refused outright: not a number, in the future, before the meter was installed
    for value, day, text in (
        ("abc", "2026-11-30", "cubic metres with at most 3 decimals"),
        ("130", "2026-12-25", "in the future"),
        ("90", "2026-09-01", "was not installed"),
    ):
        r = await client.post(base + "/check?lang=en", data={**form, "value": value, "day": day})
        assert r.status_code == 422 and text in page(r), value
    # the confirmed warning is saved, with its flags in the audit row
    r = await client.post(
        base + "/save",
        data={**form, "day": "2026-12-01", "at": "09:00", "value": "105", "confirm": "on"},
    )
    assert r.status_code == 303
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT ts, value_m3, source, entered_by FROM meter_readings WHERE meter_id = %s "
            "AND source = 'manual' ORDER BY ts",
            (mid,),
        ).fetchall()
    assert [(r[1], r[2], r[3]) for r in rows] == [
        (121.5, "manual", "u_billing_clerk"),
        (105.0, "manual", "u_billing_clerk"),
    ]
    last = audit(db_url, "reading")[-1][5]
    assert last["flags"] == ["negative"] and last["confirmed"] is True


async def test_reading_check_json(
    client: httpx.AsyncClient, users: dict[Role, User], db_url: str
) -> None:
    from tests.api.conftest import bearer

    with psycopg.connect(db_url) as conn:
        aid, _ = make_account(conn, 541, name="Aliyev Olim", house="24")
        from billing.accounts import install_meter

        install_meter(conn, aid, "SV-541", installed_at=datetime(2026, 10, 1, tzinfo=UTC))
        conn.commit()
    body = {"meter_serial": "SV-541", "ts": "2026-11-01T10:00:00+05:00", "value_m3": 5000}
    r = await client.post(
        "/api/v1/meter-readings/check", json=body, headers=bearer(users[Role.BILLING_CLERK])
    )
    assert r.status_code == 200 and "spike" in r.json()["flags_in"]
    r = await client.post(
        "/api/v1/meter-readings/check", json=body, headers=bearer(users[Role.CASHIER])
    )
    assert r.status_code == 403
    r = await client.post(
        "/api/v1/meter-readings/check",
        json={**body, "meter_serial": "nope"},
        headers=bearer(users[Role.ADMIN]),
    )
    assert r.status_code == 404


# ---------------------------------------------------------------------- address dictionary


async def test_the_address_dictionary(
    client: httpx.AsyncClient, users: dict[Role, User], db_url: str
) -> None:
    csrf = await login(client, users[Role.ADMIN])
    r = await client.post(
        "/staff/register/addresses/region?lang=en",
        data={"csrf_token": csrf, "name_uz": "Navoiy viloyati", "code": "1812"},
    )
    assert r.status_code == 422 and "4 digits starting with 17" in page(r)
    r = await client.post(
        "/staff/register/addresses/region",
        data={"csrf_token": csrf, "name_uz": "Navoiy viloyati", "code": "1712", "name_ru": ""},
    )
    assert r.status_code == 303
    with psycopg.connect(db_url) as conn:
        region = conn.execute("SELECT id, name_uz_cyrl FROM regions WHERE code = '1712'").fetchone()
    assert region is not None and region[1] == "Навоий вилояти"  # made from the Latin name
    r = await client.post(
        "/staff/register/addresses/district?lang=en",
        data={
            "csrf_token": csrf,
            "parent_id": str(region[0]),
            "name_uz": "Karmana tumani",
            "code": "1718230",
        },
    )
    assert r.status_code == 422 and "starts with its region's code 1712" in page(r)
    r = await client.post(
        "/staff/register/addresses/district",
        data={
            "csrf_token": csrf,
            "parent_id": str(region[0]),
            "name_uz": "Karmana tumani",
            "code": "1712230",
        },
    )
    assert r.status_code == 303 and r.headers["location"].endswith(
        f"/region/{region[0]}?done=added"
    )
    with psycopg.connect(db_url) as conn:
        district = conn.execute("SELECT id FROM districts WHERE code = '1712230'").fetchone()
        assert district is not None
        mahalla = conn.execute(
            "INSERT INTO mahallas (district_id, name_uz) VALUES (%s, 'Malikrabot MFY') "
            "RETURNING id",
            (district[0],),
        ).fetchone()
        assert mahalla is not None
        conn.commit()
    r = await client.post(
        "/staff/register/addresses/street",
        data={
            "csrf_token": csrf,
            "parent_id": str(mahalla[0]),
            "name_uz": "Bog'bon ko'chasi",
            "name_ru": "улица Богбон",
            "kind": "street",
        },
    )
    assert r.status_code == 303
    with psycopg.connect(db_url) as conn:
        street = conn.execute(
            "SELECT id, name_uz_cyrl FROM streets WHERE mahalla_id = %s", (mahalla[0],)
        ).fetchone()
    assert street is not None and street[1] == "Боғбон кўчаси"
    r = await client.post(
        "/staff/register/addresses/house?lang=en",
        data={
            "csrf_token": csrf,
            "parent_id": str(street[0]),
            "number": "3",
            "cadastral_no": "12-08-01",
        },
    )
    assert r.status_code == 422 and "10:08:01:01:03:0042" in page(r)
    r = await client.post(
        "/staff/register/addresses/house",
        data={
            "csrf_token": csrf,
            "parent_id": str(street[0]),
            "number": "3",
            "cadastral_no": "12:08:01:01:03:0042",
            "lat": "40,1",
            "lon": "65,37",
        },
    )
    assert r.status_code == 303
    r = await client.get(f"/staff/register/addresses/street/{street[0]}?lang=ru")
    assert "12:08:01:01:03:0042" in page(r) and "Дом" in page(r)
    # a renamed street: the accounts on it are found by the new name at once
    with psycopg.connect(db_url) as conn:
        house = conn.execute("SELECT id FROM houses WHERE street_id = %s", (street[0],)).fetchone()
        assert house is not None
        conn.execute(
            "INSERT INTO accounts (number, kind, category, name, house_id) "
            "VALUES (%s, 'household', 'household', 'Sobirov Otabek', %s)",
            (make_number(560), house[0]),
        )
        conn.commit()
    r = await client.post(
        f"/staff/register/addresses/street/{street[0]}",
        data={
            "csrf_token": csrf,
            "name_uz": "Mehrobod ko'chasi",
            "name_ru": "улица Мехрабад",
            "kind": "street",
        },
    )
    assert r.status_code == 303
    r = await client.get("/staff/register", params={"q": "Мехробод 3"})
    assert make_number(560) in page(r)
    # a street with a house cannot be deleted; an empty mahalla can
    r = await client.post(
        f"/staff/register/addresses/street/{street[0]}/delete?lang=en", data={"csrf_token": csrf}
    )
    assert r.status_code == 422 and "nothing was deleted" in page(r)
    r = await client.post(
        "/staff/register/addresses/mahalla?lang=en",
        data={"csrf_token": csrf, "parent_id": str(district[0]), "name_uz": "Bo'sh MFY"},
    )
    with psycopg.connect(db_url) as conn:
        empty = conn.execute("SELECT id FROM mahallas WHERE name_uz = 'Bo''sh MFY'").fetchone()
    assert empty is not None
    r = await client.post(
        f"/staff/register/addresses/mahalla/{empty[0]}/delete", data={"csrf_token": csrf}
    )
    assert r.status_code == 303
    assert {a[2] for a in audit(db_url, "add")} >= {"region", "district", "street", "house"}
    assert audit(db_url, "delete")[-1][2] == "mahalla"


# ------------------------------------------------------------------------ tariffs and norms


async def test_tariffs_and_norms_never_start_in_a_billed_month(
    client: httpx.AsyncClient, users: dict[Role, User], place: dict[str, Any], db_url: str
) -> None:
    with psycopg.connect(db_url) as conn:
        aid, _ = make_account(conn, 570, name="Qurbonov Sardor", house="25")
        add_invoice_and_charge(conn, aid, date(2026, 11, 1), 1_000_000, 2.0, "2026-5701")
        conn.commit()
    await login(client, users[Role.BILLING_CLERK])
    r = await client.post("/staff/register/rates/tariffs", data={})
    assert r.status_code == 403  # a clerk may not (the role, before the form)
    csrf = await login(client, users[Role.ACCOUNTANT])
    form = {
        "csrf_token": csrf,
        "category": "household",
        "price": "1 800,50",
        "vat": "0",
        "note": "Qaror 123",
    }
    r = await client.post(
        "/staff/register/rates/tariffs?lang=en", data={**form, "valid_from": "2026-11-16"}
    )
    assert r.status_code == 422 and "2026-11 already billed" in page(r)
    r = await client.post(
        "/staff/register/rates/tariffs?lang=en",
        data={**form, "valid_from": "2027-01-01", "price": "18,005"},
    )
    assert r.status_code == 422 and "Enter a price in so'm" in page(r)
    r = await client.post(
        "/staff/register/rates/tariffs", data={**form, "valid_from": "2027-01-01"}
    )
    assert r.status_code == 303
    r = await client.post(
        "/staff/register/rates/norms?lang=en",
        data={"csrf_token": csrf, "valid_from": "2027-01-01", "m3": "0"},
    )
    assert r.status_code == 422 and "A norm is more than 0" in page(r)
    r = await client.post(
        "/staff/register/rates/norms",
        data={"csrf_token": csrf, "valid_from": "2027-01-01", "m3": "4,75"},
    )
    assert r.status_code == 303
    with psycopg.connect(db_url) as conn:
        t = conn.execute(
            "SELECT id, price_tiyin_per_m3, vat_rate_bp, note FROM tariffs "
            "WHERE valid_from = '2027-01-01'"
        ).fetchone()
        n = conn.execute(
            "SELECT m3_per_person_month FROM norms WHERE valid_from = '2027-01-01'"
        ).fetchone()
        old = conn.execute("SELECT id FROM tariffs WHERE valid_from = '2025-01-01'").fetchone()
    assert t is not None and t[1:] == (180050, 0, "Qaror 123") and n == (4.75,)
    assert old is not None
    # the tariff used by bills cannot be deleted; the new one can
    r = await client.post(
        f"/staff/register/rates/tariff/{old[0]}/delete?lang=en", data={"csrf_token": csrf}
    )
    assert r.status_code == 422 and "already billed" in page(r)
    r = await client.post(f"/staff/register/rates/tariff/{t[0]}/delete", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert [a[2] for a in audit(db_url, "add") if a[2] in ("tariff", "norm")][-2:] == [
        "tariff",
        "norm",
    ]


# ---------------------------------------------------------------------------- account card


async def test_the_card_speaks_the_pages_language(
    client: httpx.AsyncClient, users: dict[Role, User], db_url: str
) -> None:
    """ "household · active", "charge 11.2026" were English on an Uzbek page: every code is
    now a word of the page's language, months by name."""
    with psycopg.connect(db_url) as conn:
        aid, number = make_account(conn, 580, name="Ergasheva Mohira", house="26")
        add_invoice_and_charge(conn, aid, date(2026, 11, 1), 2_000_000, 4.0, "2026-5801")
        pay = post_payment(
            conn,
            amount_tiyin=500_000,
            paid_at=datetime(2026, 11, 20, tzinfo=UTC),
            source="bank",
            external_ref="b-580",
            account_id=aid,
        )
        reverse_entry(conn, pay.id, posted_at=datetime(2026, 11, 21, tzinfo=UTC), memo="xato")
        conn.commit()
    await login(client, users[Role.VIEWER])
    expected = {
        "uz": ("Maishiy iste'molchi", "Faol", "Hisoblash, Noyabr 2026", "Bank", "bekor qilingan"),
        "uz_Cyrl": ("Маиший истеъмолчи", "Фаол", "Ҳисоблаш, Ноябрь 2026", "Банк", "бекор қилинган"),
        "ru": ("Бытовой абонент", "Активен", "Начисление, Ноябрь 2026", "Банк", "отменён"),
        "en": ("Household", "Active", "Charge, November 2026", "Bank", "cancelled"),
    }
    for lang, words in expected.items():
        r = await client.get(f"/staff/accounts/{number}?lang={lang}")
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page(r)))
        for word in words:
            assert word in text, (lang, word)
        if lang != "en":
            for code in ("household", "active", "charge", "payment", "bank", "reversal"):
                assert not re.search(rf"\b{code}\b", text), (lang, code)


async def test_a_smart_meter_shows_its_telemetry(
    client: httpx.AsyncClient, users: dict[Role, User], db_url: str
) -> None:
    """A meter that reports by telemetry: the card shows its daily readings and its last
    one, not "No data yet"."""
    with psycopg.connect(db_url) as conn:
        aid, number = make_account(conn, 590, name="Sharipov Bahodir", house="27")
        gw = conn.execute("INSERT INTO gateways (code) VALUES ('gw-590') RETURNING id").fetchone()
        assert gw is not None
        dev = conn.execute(
            "INSERT INTO devices (code, gateway_id, kind, profile) VALUES ('wm-590', %s, "
            "'customer_meter', 'p') RETURNING id",
            (gw[0],),
        ).fetchone()
        assert dev is not None
        point = conn.execute(
            "INSERT INTO points (device_id, name, unit) VALUES (%s, 'volume', 'm3') RETURNING id",
            (dev[0],),
        ).fetchone()
        assert point is not None
        conn.execute("INSERT INTO meters (serial_no, point_id) VALUES ('SM-590', %s)", (point[0],))
        conn.execute(
            "INSERT INTO service_connections (account_id, meter_id, installed_at) "
            "SELECT %s, id, '2026-10-01 00:00+05' FROM meters WHERE serial_no = 'SM-590'",
            (aid,),
        )
        for day, value in ((28, 41.5), (29, 42.25)):
            ts = datetime(2026, 11, day, 18, 55, tzinfo=UTC)
            conn.execute(
                "INSERT INTO readings_1d (point_id, bucket, min, max, sum, count, last, last_ts) "
                "VALUES (%s, %s, 0, %s, 0, 24, %s, %s)",
                (point[0], datetime(2026, 11, day, tzinfo=UTC), value, value, ts),
            )
        conn.execute(
            "INSERT INTO readings (point_id, ts, value) VALUES (%s, '2026-11-30 03:00+00', 42.5)",
            (point[0],),
        )
        conn.commit()
    await login(client, users[Role.VIEWER])
    r = await client.get(f"/staff/accounts/{number}?lang=en")
    readings = r.text.split('id="readings"', 1)[1].split("</table>", 1)[0]
    assert "42,250" in readings and "41,500" in readings and "Telemetry" in readings
    assert "29.11.2026 23:55" in readings  # Tashkent time
    meters = r.text.split('id="meters"', 1)[1].split("</table>", 1)[0]
    assert "42,500" in meters and "30.11.2026 08:00" in meters  # the last raw reading
    assert "reports by telemetry" in page(r)


# --------------------------------------------------------------------------- pseudo-locale


async def test_no_english_outside_the_catalogs(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    place: dict[str, Any],
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every register page, its forms refused and a checked reading, with every translation
    wrapped in ⟦ ⟧ (tests/test_i18n_complete.py's pseudo-locale): a word of the English
    stop-list left outside them came from no catalog. The data (names, the role shown in the
    header) is left out."""
    import api.i18n
    from tests.test_i18n_complete import PSEUDO, english, page_text

    with psycopg.connect(db_url) as conn:
        from billing.accounts import install_meter

        aid, number = make_account(conn, 599, name="Sobirova Dilfuza", house="28")
        mid = install_meter(conn, aid, "SV-599", installed_at=datetime(2026, 10, 1, tzinfo=UTC))
        conn.commit()
    monkeypatch.setattr(api.i18n, "translations", lambda code: PSEUDO)
    csrf = await login(client, users[Role.ADMIN])
    base = f"/staff/register/accounts/{number}"
    answers = [await client.get(p) for p in (
        "/staff/register", "/staff/register?q=Sobirova", "/staff/register?q=zzz",
        "/staff/register/addresses", f"/staff/register/addresses/street/{place['street_id']}",
        "/staff/register/rates", "/staff/register/accounts/new",
        f"/staff/register/accounts/new?mahalla_id={place['mahalla_id']}", base + "/edit",
        base + "/residents", base + "/meters", base + "/readings", f"/staff/accounts/{number}",
    )]  # fmt: skip
    forms = {
        "/staff/register/accounts/new": {"kind": "legal", "name": "", "inn": "1"},
        base + "/status": {"status": "closed", "day": "2030-01-01", "reason": ""},
        base + "/residents": {"residents": "x", "since": "", "reason": ""},
        base + "/meters/install": {"serial": "?", "digits": "1", "initial": "-1", "day": ""},
        f"{base}/meters/{mid}/replace": {"final": "x", "new_serial": "", "day": ""},
        base + "/readings/check": {"meter_id": str(mid), "value": "9999", "day": "2026-11-30"},
        "/staff/register/addresses/region": {"name_uz": "", "code": "99"},
        "/staff/register/rates/tariffs": {"category": "x", "price": "x", "vat": "200"},
        "/staff/register/rates/norms": {"m3": "0"},
    }
    for path, data in forms.items():
        answers.append(await client.post(path, data={"csrf_token": csrf, **data}))
    assert all(r.status_code in (200, 422) for r in answers), [r.status_code for r in answers]
    assert any('data-flag="spike"' in r.text for r in answers)  # the checks were shown
    for r in answers:
        shown = english(page_text(r.text)) - {"admin"}  # the role in the header is data
        assert shown == set(), (str(r.url), shown)
