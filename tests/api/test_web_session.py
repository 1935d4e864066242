"""Web sessions through the in-process app: login form with CSRF, session renewal with the
refresh cookie after the access cookie expired, CSRF on authenticated forms, redirects."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import psycopg

from alarms.messages import translate_message
from api.i18n import gettext_for
from api.security import Role
from tests.api.conftest import PASSWORD, Clock, User


async def csrf(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert m, page.text[:500]
    return m.group(1)


async def test_staff_session_renewed_after_access_expiry(
    client: httpx.AsyncClient, users: dict[Role, User], clock: Clock
) -> None:
    token = await csrf(client, "/staff/login")
    r = await client.post(
        "/staff/login",
        data={"username": "u_viewer", "password": PASSWORD, "csrf_token": token},
    )
    assert r.status_code == 303 and r.headers["location"] == "/staff/"
    first_refresh = client.cookies.get("suvnet_refresh")
    assert (await client.get("/staff/")).status_code == 200
    clock.now += timedelta(minutes=20)  # the access cookie has expired
    r = await client.get("/staff/")
    assert r.status_code == 200, r.headers
    assert client.cookies.get("suvnet_refresh") != first_refresh  # rotated
    # the old refresh token no longer works
    stale = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    stale.cookies.set("suvnet_refresh", first_refresh or "")
    r = await stale.get("/staff/")
    assert r.status_code == 303 and "/staff/login" in r.headers["location"]
    await stale.aclose()


async def test_authenticated_form_needs_csrf(
    client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    token = await csrf(client, "/staff/login")
    await client.post(
        "/staff/login", data={"username": "u_cashier", "password": PASSWORD, "csrf_token": token}
    )
    r = await client.post("/staff/logout", data={})
    assert r.status_code == 403
    assert "form has expired" in r.json()["detail"]
    r = await client.post("/staff/logout", data={"csrf_token": token})
    assert r.status_code == 303
    assert (await client.get("/staff/")).status_code == 303  # logged out


async def test_login_form_errors_and_open_redirect(
    client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    token = await csrf(client, "/staff/login?lang=en")
    r = await client.post(
        "/staff/login", data={"username": "u_admin", "password": "nope", "csrf_token": token}
    )
    assert r.status_code == 401 and "Wrong user name or password." in r.text
    # a customer cannot use the staff login, a staff user not the cabinet
    r = await client.post(
        "/cabinet/login", data={"account_no": "u_admin", "password": PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 401
    r = await client.post(
        "/staff/login",
        data={
            "username": "u_admin",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example/x",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/staff/"


async def staff_login(client: httpx.AsyncClient, username: str) -> str:
    token = await csrf(client, "/staff/login?lang=en")
    r = await client.post(
        "/staff/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 303
    return token


async def test_billing_and_reports_pages(
    client: httpx.AsyncClient, users: dict[Role, User], db_url: str
) -> None:
    token = await staff_login(client, "u_billing_clerk")
    page = await client.get("/staff/billing")
    assert page.status_code == 200 and 'id="start-run"' in page.text
    r = await client.post(
        "/staff/billing/run", data={"period": "2026-10", "dry_run": "true", "csrf_token": token}
    )
    # the customer's account is billable, and no tariff is defined yet: refused, with the reason
    assert r.status_code == 303 and "tariff" in r.headers["location"]
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(
            "INSERT INTO tariffs (category, valid_from, price_tiyin_per_m3) "
            "VALUES ('household', '2026-01-01', 250000)"
        )
        c.execute("INSERT INTO norms (valid_from, m3_per_person_month) VALUES ('2026-01-01', 4)")
    r = await client.post(
        "/staff/billing/run", data={"period": "2026-10", "dry_run": "true", "csrf_token": token}
    )
    assert r.status_code == 200 and 'id="dry-run"' in r.text
    assert (await client.get("/api/v1/billing-runs")).json()["total"] == 0  # nothing posted
    r = await client.post("/staff/billing/run", data={"period": "2026-13", "csrf_token": token})
    assert r.status_code == 422
    reports = await client.get("/staff/reports")
    assert 'value="accounting"' in reports.text and 'value="technical"' not in reports.text
    r = await client.get(
        "/staff/reports/download",
        params={
            "report": "accounting",
            "date_from": "2026-10-01",
            "date_to": "2026-10-31",
            "format": "csv",
        },
    )
    assert r.status_code == 303
    csv_file = await client.get(r.headers["location"])  # the same session cookie
    assert csv_file.status_code == 200 and csv_file.headers["content-type"].startswith("text/csv")


async def test_alarms_page_for_viewer_and_dispatcher(
    client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    await staff_login(client, "u_viewer")
    page = await client.get("/staff/alarms")
    assert page.status_code == 200 and "No open alarms." in page.text
    token = await staff_login(client, "u_dispatcher")
    r = await client.post("/staff/alarms/999999/ack", data={"csrf_token": token})
    assert r.status_code == 303 and "error=" in r.headers["location"]


async def test_issue_code_on_account_card_then_activate(
    client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    number = users[Role.CUSTOMER].account_no
    token = await staff_login(client, "u_billing_clerk")
    card = await client.get(f"/staff/accounts/{number}")
    assert 'id="issue-code"' in card.text
    r = await client.post(f"/staff/accounts/{number}/code", data={"csrf_token": token})
    assert r.status_code == 200
    m = re.search(r'id="one-time-code">(\d{8})<', r.text)
    assert m
    await client.post("/staff/logout", data={"csrf_token": token})
    token = await csrf(client, "/cabinet/activate")
    # a password from the common-password list is refused, and the page says why
    r = await client.post(
        "/cabinet/activate",
        data={
            "account_no": number,
            "code": m.group(1),
            "password": "password123",
            "password2": "password123",
            "csrf_token": token,
        },
    )
    assert r.status_code == 422 and "one of the most common ones" in r.text, r.text
    r = await client.post(
        "/cabinet/activate",
        data={
            "account_no": number,
            "code": m.group(1),
            "password": "cabinet-pass-1",
            "password2": "cabinet-pass-1",
            "csrf_token": token,
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/cabinet/"
    home = await client.get("/cabinet/")
    assert home.status_code == 200 and str(number) in home.text
    # a viewer sees the card but not the button
    await client.post("/cabinet/logout", data={"csrf_token": token})
    await staff_login(client, "u_viewer")
    card = await client.get(f"/staff/accounts/{number}")
    assert card.status_code == 200 and 'id="issue-code"' not in card.text


async def test_home_page_links_only_pages_the_role_may_open(
    client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    """Every back-office link on the home page opens for the role that sees it (no link that
    ends in 'forbidden'), and the pages a role may open are all linked."""
    linked_somewhere: set[str] = set()
    for role in Role:
        if role is Role.CUSTOMER:
            continue
        client.cookies.clear()
        token = await csrf(client, "/staff/login")
        r = await client.post(
            "/staff/login",
            data={"username": f"u_{role.value}", "password": PASSWORD, "csrf_token": token},
        )
        assert r.status_code == 303, (role, r.text[:300])
        home = (await client.get("/staff/")).text
        links = set(re.findall(r'href="(/staff/[^"?#]*)"', home))
        linked_somewhere |= links
        for link in links:
            # the payment pages move to an address with their form key first
            page = await client.get(link, follow_redirects=True)
            assert page.status_code == 200, (role, link, page.status_code)
        for page_path in ("/staff/payments/statements", "/staff/reports", "/staff/billing"):
            if page_path not in links:
                assert (await client.get(page_path)).status_code == 403, (role, page_path)
    assert {"/staff/payments/desk", "/staff/payments/statements", "/staff/billing"} <= (
        linked_somewhere
    )


async def test_every_page_is_not_cached_and_has_the_csp(
    client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    """The back-office pages and the payment pages send the same protective headers."""
    from api.web.common import PAGE_CSP

    token = await csrf(client, "/staff/login")
    await client.post(
        "/staff/login", data={"username": "u_cashier", "password": PASSWORD, "csrf_token": token}
    )
    for path in ("/staff/login", "/staff/", "/staff/payments/desk"):
        r = await client.get(path, follow_redirects=True)
        assert r.status_code == 200, path
        assert r.headers["cache-control"] == "no-store", path
        assert r.headers["content-security-policy"] == PAGE_CSP, path
        assert "frame-ancestors 'none'" in PAGE_CSP


async def test_billing_page_warns_and_refuses_unfinished_and_out_of_order_months(
    client: httpx.AsyncClient, users: dict[Role, User], db_url: str, clock: Clock
) -> None:
    """The injected clock is on 2 December 2026 (Tashkent): a trial run of December warns
    (in Uzbek) that the month has not ended; a real run of it is refused until "run anyway"
    is ticked. With November billed, October is refused the same way. The page names the
    requisites that the documents would print blank, and shows times in Tashkent time."""
    with psycopg.connect(db_url, autocommit=True) as c:
        if c.execute("SELECT count(*) FROM tariffs").fetchone() == (0,):
            c.execute(
                "INSERT INTO tariffs (category, valid_from, price_tiyin_per_m3) "
                "VALUES ('household', '2026-01-01', 250000)"
            )
            c.execute(
                "INSERT INTO norms (valid_from, m3_per_person_month) VALUES ('2026-01-01', 4)"
            )
        # November is billed (a finished run in the table is enough for the order check)
        c.execute(
            "INSERT INTO billing_runs (period, state, started_at, finished_at) "
            "VALUES ('2026-11-01', 'completed', %s, %s) ON CONFLICT (period) DO NOTHING",
            (clock.now, clock.now),
        )
    token = await staff_login(client, "u_billing_clerk")
    page = await client.get("/staff/billing?lang=uz")
    assert 'id="requisites"' in page.text and 'data-code="utility_inn"' in page.text
    assert "korxonaning STIR raqami" in page.text
    assert "Toshkent vaqti" in page.text
    # the finished time of the November run: 07:30 UTC is 12:30 in Tashkent
    assert "02.12.2026 12:30" in page.text
    dry = await client.post(
        "/staff/billing/run?lang=uz",
        data={"period": "2026-12", "dry_run": "true", "csrf_token": token},
    )
    assert dry.status_code == 200 and 'id="dry-run"' in dry.text
    assert "12.2026 oyi hali tugamagan" in dry.text and "31.12.2026 23:59" in dry.text
    refused = await client.post(
        "/staff/billing/run?lang=ru", data={"period": "2026-12", "csrf_token": token}
    )
    assert refused.status_code == 409 and 'id="run-refused"' in refused.text
    assert "Месяц 12.2026 ещё не закончился" in refused.text
    late = await client.post(
        "/staff/billing/run?lang=ru", data={"period": "2026-10", "csrf_token": token}
    )
    assert late.status_code == 409 and "11.2026 уже рассчитан" in late.text
    with psycopg.connect(db_url) as c:
        assert c.execute(
            "SELECT count(*) FROM billing_runs WHERE period IN ('2026-10-01', '2026-12-01')"
        ).fetchone() == (0,)
    forced = await client.post(
        "/staff/billing/run",
        data={"period": "2026-10", "force": "true", "csrf_token": token},
    )
    assert forced.status_code == 303 and forced.headers["location"] == "/staff/billing"


async def test_api_billing_run_refuses_unless_forced(
    client: httpx.AsyncClient, users: dict[Role, User], db_url: str
) -> None:
    """The JSON API: 409 with the reason for a month that has not ended, ``warnings`` on a
    dry run, and the run starts with ``force``."""
    from tests.api.conftest import bearer

    clerk = bearer(users[Role.ADMIN])  # the clerk logged out above (tokens revoked)
    r = await client.post("/api/v1/billing-runs", json={"period": "2026-12"}, headers=clerk)
    assert r.status_code == 409 and "2026-12 has not ended yet" in r.json()["detail"]
    r = await client.post(
        "/api/v1/billing-runs", json={"period": "2026-12", "dry_run": True}, headers=clerk
    )
    if r.status_code == 202:
        assert any("has not ended yet" in w for w in r.json()["warnings"])
        assert any("SUVNET_BILLING_UTILITY_INN" in w for w in r.json()["warnings"])
    else:  # no tariff in this module's database: refused by billing, with its reason
        assert r.status_code == 409 and "tariff" in r.json()["detail"]


async def test_alarms_page_in_uzbek_with_tashkent_time(
    client: httpx.AsyncClient, users: dict[Role, User], db_url: str
) -> None:
    """Priority, state, the rule's kind and a known engine message in the page's language;
    "27.11 23:00" UTC is shown as 04:00 on the 28th, Tashkent time, and the page says so."""
    with psycopg.connect(db_url, autocommit=True) as c:
        gw = c.execute("INSERT INTO gateways (code) VALUES ('gw-al') RETURNING id").fetchone()
        assert gw is not None
        dev = c.execute(
            "INSERT INTO devices (code, gateway_id, kind, profile) "
            "VALUES ('ps-al', %s, 'pressure_sensor', 'p') RETURNING id",
            (gw[0],),
        ).fetchone()
        assert dev is not None
        rule = c.execute(
            "INSERT INTO alarm_rules (code, kind, device_id, priority) "
            "VALUES ('ps-al-offline', 'offline', %s, 'high') RETURNING id",
            (dev[0],),
        ).fetchone()
        assert rule is not None
        c.execute(
            "INSERT INTO alarms (rule_id, subject, kind, priority, position_id, device_id, "
            "state, raised_at, message) VALUES (%s, 'ps-al', 'offline', 'high', 1, %s, "
            "'unack', '2026-11-27 23:00+00', 'no readings from ps-al for more than 2.5 h')",
            (rule[0], dev[0]),
        )
    await staff_login(client, "u_viewer")
    page = (await client.get("/staff/alarms?lang=uz")).text
    row = re.search(r'<tr data-alarm="\d+" data-rule="ps-al-offline".*?</tr>', page, re.S)
    assert row is not None, page[-3000:]
    html = row.group(0)
    assert '<td class="priority">Yuqori</td>' in html
    assert '<td class="state">Tasdiqlanmagan</td>' in html
    assert "ps-al dan 2,5 soatdan ortiq koʻrsatkich yoʻq" in html and "no readings" not in html
    assert "28.11.2026 04:00" in html and "27.11" not in html
    assert "(Toshkent vaqti)</th>" in page
    ru = (await client.get("/staff/alarms?lang=ru")).text
    assert "Высокий" in ru and "Не квитировано" in ru and "нет показаний от ps-al более 2,5 ч" in ru
    # a message of a known pattern is translated (the engine writes English)
    tr = gettext_for("uz")
    assert (
        translate_message("3.25 bar above limit 3 bar", tr) == "3,25 bar, 3 bar chegarasidan yuqori"
    )
    assert translate_message("leak of 2 m3/h", tr) == "leak of 2 m3/h"  # not known: as written


async def test_cancelled_and_refunded_payments_are_shown_as_such(
    client: httpx.AsyncClient, users: dict[Role, User], db_url: str
) -> None:
    """A Payme payment cancelled after it was paid (a refund), a desk payment voided and a
    bank payment that stands: the cabinet names each channel and status in the page's
    language, and the API's payment lists carry ``status``."""
    from datetime import UTC, datetime

    from billing.ledger import post_payment, reverse_entry
    from tests.api.conftest import bearer

    number = users[Role.CUSTOMER].account_no
    assert number is not None
    at = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
    with psycopg.connect(db_url) as c:
        payme = post_payment(
            c,
            account_number=number,
            amount_tiyin=5_000_000,
            paid_at=at,
            source="payme",
            external_ref="pm-refund-1",
        )
        reverse_entry(c, payme.id, posted_at=at.replace(day=26), memo="payme cancel")
        desk = post_payment(
            c,
            account_number=number,
            amount_tiyin=1_000_000,
            paid_at=at,
            source="cashier",
            external_ref="K-void-1",
        )
        reverse_entry(c, desk.id, posted_at=at, memo="void")
        post_payment(
            c,
            account_number=number,
            amount_tiyin=2_000_000,
            paid_at=at,
            source="bank",
            external_ref="bank-ok-1",
        )
        c.commit()
    token = await csrf(client, "/cabinet/login?lang=uz")
    for password in (PASSWORD, "cabinet-pass-1"):  # the activation test above set the second
        r = await client.post(
            "/cabinet/login",
            data={"account_no": number, "password": password, "csrf_token": token},
        )
        if r.status_code == 303:
            break
    assert r.status_code == 303, r.text[:300]
    page = (await client.get("/cabinet/?lang=uz")).text
    rows = dict(re.findall(r'<tr data-status="(\w+)"[^>]*>(.*?)</tr>', page, re.S))
    assert set(rows) == {"paid", "cancelled", "refunded"}
    assert "Payme" in rows["refunded"] and "Qaytarilgan 26.11.2026" in rows["refunded"]
    assert "<del>" in rows["refunded"] and "<del>" in rows["cancelled"]
    assert "Kassa" in rows["cancelled"] or "kassa" in rows["cancelled"].lower()
    assert "Bekor qilingan" in rows["cancelled"]
    assert "Bank orqali" in rows["paid"] and "<del>" not in rows["paid"]
    assert ">bank<" not in page and ">cashier<" not in page and ">payme<" not in page
    me = await client.get("/api/v1/me/payments")  # the cabinet's session cookie
    statuses = {p["source"]: p["status"] for p in me.json()["items"]}
    assert statuses == {"payme": "refunded", "cashier": "cancelled", "bank": "paid"}
    staff = await client.get(
        "/api/v1/payments", params={"account": number}, headers=bearer(users[Role.ADMIN])
    )
    assert {p["status"] for p in staff.json()["items"]} == {"refunded", "cancelled", "paid"}
