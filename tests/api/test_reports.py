"""Department reports: figures checked against the ledger; XLSX, PDF and CSV readable."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]
from pypdf import PdfReader

from api.reports import service
from api.reports.text import Words
from api.security import Role
from billing import consumption as cons
from billing.ledger import post_entry, post_payment, reverse_entry
from tests.api.conftest import User, add_invoice_and_charge, bearer, make_account
from tests.api.test_web_session import staff_login

FROM, TO = date(2026, 10, 1), date(2026, 10, 31)


@pytest.fixture(scope="module")
def data(db_url: str) -> dict[str, Any]:
    with psycopg.connect(db_url) as conn:
        a1, n1 = make_account(conn, 601, name="Aliyev Sardor", street="Navoiy", house="1")
        a2, n2 = make_account(conn, 602, name="Qodirova Lola", street="Navoiy", house="3")
        a3, n3 = make_account(conn, 603, name="Bekov Timur", street="Bobur", house="5")
        org = conn.execute(
            "INSERT INTO accounts (number, kind, category, name, inn, house_id, phone) "
            "SELECT '000006049', 'legal', 'legal', 'Paxta MChJ', '301234567', house_id, "
            "'+998712345678' FROM accounts WHERE id = %s RETURNING id",
            (a3,),
        ).fetchone()
        assert org is not None
        # September (before the period): a charge for a1 and a2
        add_invoice_and_charge(conn, a1, date(2026, 9, 1), 3_000_000, 3.0, "2026-0000601")
        add_invoice_and_charge(conn, a2, date(2026, 9, 1), 1_000_000, 1.0, "2026-0000602")
        add_invoice_and_charge(conn, org[0], date(2026, 9, 1), 90_000_000, 60.0, "2026-0000603")
        # October
        inv = add_invoice_and_charge(conn, a1, date(2026, 10, 1), 4_000_000, 4.0, "2026-0000604")
        add_invoice_and_charge(conn, a3, date(2026, 10, 1), 2_000_000, 2.0, "2026-0000605")
        pay = post_payment(
            conn,
            amount_tiyin=2_500_000,
            paid_at=datetime(2026, 10, 9, tzinfo=UTC),
            source="bank",
            external_ref="b-9",
            account_id=a1,
        )
        post_payment(
            conn,
            amount_tiyin=1_000_000,
            paid_at=datetime(2026, 10, 10, tzinfo=UTC),
            source="payme",
            external_ref="p-9",
            account_id=a2,
        )
        reverse_entry(
            conn, pay.id, posted_at=datetime(2026, 10, 12, tzinfo=UTC), memo="wrong account"
        )
        post_entry(
            conn,
            account_id=a3,
            kind="adjustment",
            amount_tiyin=-500_000,
            posted_at=datetime(2026, 10, 15, tzinfo=UTC),
            memo="goodwill",
        )
        # November (after the period): must not count
        post_payment(
            conn,
            amount_tiyin=700_000,
            paid_at=datetime(2026, 11, 2, tzinfo=UTC),
            source="cashier",
            external_ref="k-9",
            account_id=a3,
        )
        # a meter with a spike for a1 in October; a2 and a3 have no meter
        m = conn.execute("INSERT INTO meters (serial_no) VALUES ('SN-601') RETURNING id").fetchone()
        assert m is not None
        conn.execute(
            "INSERT INTO service_connections (account_id, meter_id, installed_at) "
            "VALUES (%s, %s, '2026-01-01')",
            (a1, m[0]),
        )
        conn.execute(
            "INSERT INTO period_consumption (period, account_id, meter_id, invoice_id, start_ts, "
            "end_ts, volume_m3, flags) VALUES ('2026-10-01', %s, %s, %s, '2026-10-01', "
            "'2026-11-01', 4.0, %s)",
            (a1, m[0], inv, cons.SPIKE),
        )
        conn.commit()
    return {"a1": n1, "a2": n2, "a3": n3, "org": "000006049"}


def ledger(db_url: str, number: str, before: date | None = None, upto: date | None = None) -> int:
    with psycopg.connect(db_url) as c:
        row = c.execute(
            "SELECT coalesce(sum(l.amount_tiyin), 0) FROM ledger l JOIN accounts a "
            "ON a.id = l.account_id WHERE a.number = %s "
            "AND (%s::date IS NULL OR l.value_date < %s) "
            "AND (%s::date IS NULL OR l.value_date <= %s)",
            (number, before, before, upto, upto),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def report(client: httpx.AsyncClient, user: User, name: str, **params: Any) -> Any:
    r = await client.get(
        f"/api/v1/reports/{name}",
        headers=bearer(user),
        params={"date_from": FROM.isoformat(), "date_to": TO.isoformat(), **params},
    )
    assert r.status_code == 200, r.text
    return r.json() if params.get("format", "json") == "json" else r


async def test_accounting_matches_ledger(
    client: httpx.AsyncClient, users: dict[Role, User], data: dict[str, Any], db_url: str
) -> None:
    doc = await report(client, users[Role.ACCOUNTANT], "accounting", lang="en")
    rows = doc["tables"][0]["rows"]
    detail = {r["number"]: r for r in rows if r["level"] == 0}
    for key in ("a1", "a2", "a3", "org"):
        n = data[key]
        r = detail[n]
        assert r["opening"] == ledger(db_url, n, before=FROM), key
        assert r["closing"] == ledger(db_url, n, upto=TO), key
        assert r["closing"] == r["opening"] + r["charged"] - r["paid"], key
        assert (r["opening_debit"], r["opening_credit"]) == (
            max(r["opening"], 0),
            max(-r["opening"], 0),
        )
        assert (r["closing_debit"], r["closing_credit"]) == (
            max(r["closing"], 0),
            max(-r["closing"], 0),
        )
    # The money figures (docs/billing.md): a reversal counts as the kind it reverses and an
    # adjustment is charged. Until issue 14 the report had a fourth figure "adjusted" (every
    # adjustment, reversal and opening balance) and counted the reversed bank payment as paid.
    a1 = detail[data["a1"]]
    # the bank payment of 25 000 was reversed in October: paid 25 000 - 25 000 = 0
    assert (a1["charged"], a1["paid"]) == (4_000_000, 0)
    a3 = detail[data["a3"]]
    # charge 20 000, goodwill adjustment -5 000; November's payment is outside
    assert (a3["charged"], a3["paid"]) == (1_500_000, 0)
    a2 = detail[data["a2"]]
    assert (a2["opening"], a2["charged"], a2["paid"], a2["closing"]) == (1_000_000, 0, 1_000_000, 0)
    total = next(r for r in rows if r["level"] == 9)
    for k in ("opening", "charged", "paid", "closing", "closing_debit", "closing_credit"):
        assert total[k] == sum(r[k] for r in detail.values()), k
    # the same figures summed per street and per MFY, and checked against the ledger itself
    tables = {t["key"]: t for t in doc["tables"]}
    for key in ("by_street", "by_mahalla"):
        sums = next(r for r in tables[key]["rows"] if r["level"] == 9)
        for k in ("opening_debit", "charged", "paid", "closing_debit", "closing_credit"):
            assert sums[k] == total[k], (key, k)
        assert sums["accounts"] == len(detail)
    whole = sum(ledger(db_url, n, upto=TO) for n in detail)
    assert total["closing"] == whole
    assert any(
        "difference 0,00" in n and f"{whole // 100:,}".replace(",", "\u202f") in n
        for n in doc["notes"]
    ), doc["notes"]
    street = [r for r in rows if r["level"] == 1 and r["number"] == "Navoiy"]
    assert (
        street
        and street[0]["closing"] == detail[data["a1"]]["closing"] + detail[data["a2"]]["closing"]
    )


async def test_accounting_filter_by_street(
    client: httpx.AsyncClient, users: dict[Role, User], data: dict[str, Any], db_url: str
) -> None:
    with psycopg.connect(db_url) as c:
        sid = c.execute("SELECT id FROM streets WHERE name_uz = 'Bobur'").fetchone()
    assert sid is not None
    doc = await report(client, users[Role.ACCOUNTANT], "accounting", street_id=sid[0])
    numbers = {r["number"] for r in doc["tables"][0]["rows"] if r["level"] == 0}
    assert numbers == {data["a3"], data["org"]}


async def test_finance_collection_rate(
    client: httpx.AsyncClient, users: dict[Role, User], data: dict[str, Any]
) -> None:
    doc = await report(client, users[Role.ACCOUNTANT], "finance")
    cats = {r["category"]: r for r in doc["tables"][1]["rows"] if r["level"] == 0}
    # households in October: charged 40 000 + 20 000 - 5 000 (goodwill), paid 10 000 (a1's
    # 25 000 was reversed). Until issue 14 the finance report left out the adjustment and the
    # reversal: 60 000 charged, 35 000 collected, 58.33 %.
    hh = cats["household"]
    assert (hh["charged"], hh["paid"]) == (5_500_000, 1_000_000)
    assert hh["rate"] == pytest.approx(18.18, abs=0.01)
    assert cats["legal"]["charged"] == 0 and cats["legal"]["rate"] is None
    # collections by channel and day: a2's Payme payment on 10 October; a1's bank payment of
    # 9 October was cancelled on 12 October (the cancellation counts on the bank's channel)
    t = {tb["key"]: tb for tb in doc["tables"]}
    days = {r["day"]: r for r in t["by_day"]["rows"] if r["level"] == 0}
    assert days["2026-10-09"]["bank"] == 2_500_000
    assert days["2026-10-12"]["bank"] == -2_500_000
    assert days["2026-10-10"]["payme"] == 1_000_000
    assert "2026-11-02" not in days  # November's cash payment is outside the period
    channels = {r["channel"]: r for r in t["by_channel"]["rows"] if r["level"] == 0}
    assert (channels["bank"]["payments"], channels["bank"]["paid"]) == (1, 0)
    assert (channels["payme"]["paid"], channels["payme"]["share"]) == (1_000_000, 100.0)
    by_day_total = next(r for r in t["by_day"]["rows"] if r["level"] == 9)["total"]
    by_cat_total = next(r for r in t["by_category"]["rows"] if r["level"] == 9)["paid"]
    assert by_day_total == by_cat_total == 1_000_000


async def test_legal_debtors_threshold_and_sections(
    client: httpx.AsyncClient, users: dict[Role, User], data: dict[str, Any], db_url: str
) -> None:
    doc = await report(client, users[Role.LAWYER], "legal", threshold_som=20000)
    orgs, homes = doc["tables"]
    org = [r for r in orgs["rows"] if r["level"] == 0]
    assert [r["number"] for r in org] == [data["org"]]
    assert org[0]["debt"] == ledger(db_url, data["org"], upto=TO)
    assert org[0]["b1"] == 90_000_000  # September's charge is 31-60 days old on Oct 31
    assert org[0]["inn"] == "301234567" and org[0]["phone"] == "+998712345678"
    home_numbers = [r["number"] for r in homes["rows"] if r["level"] == 0]
    assert home_numbers == [data["a1"]]  # a3 owes 15 000 < 20 000; a2 owes nothing


async def test_customer_service(
    client: httpx.AsyncClient, users: dict[Role, User], data: dict[str, Any], db_url: str
) -> None:
    with psycopg.connect(db_url, autocommit=True) as c:
        row = c.execute(
            "SELECT a.id, i.id, i.amount_tiyin FROM accounts a JOIN invoices i "
            "ON i.account_id = a.id WHERE a.number = %s AND i.period = '2026-10-01'",
            (data["a1"],),
        ).fetchone()
        assert row is not None
        acc, inv, amount = row
        # Tashkent 31 Oct 23:30 is 18:30 UTC: inside October; 1 Nov 00:30 Tashkent is not
        c.execute(
            "INSERT INTO customer_requests (account_id, received_at, channel, kind, invoice_id, "
            "disputed_tiyin, subject) VALUES (%s, '2026-10-31 18:30+00', 'phone', "
            "'bill_dispute', %s, 1500000, 'the bill is too high')",
            (acc, inv),
        )
        c.execute(
            "INSERT INTO customer_requests (account_id, received_at, kind, status, resolved_at, "
            "resolution) VALUES (%s, '2026-10-05 06:00+00', 'no_water', 'resolved', "
            "'2026-10-05 09:00+00', 'valve opened')",
            (acc,),
        )
        c.execute(
            "INSERT INTO customer_requests (received_at, kind) VALUES "
            "('2026-10-20 10:00+00', 'question'), ('2026-10-31 19:30+00', 'leak')"
        )
    doc = await report(client, users[Role.BILLING_CLERK], "customer_service")
    t = {tb["key"]: tb for tb in doc["tables"]}
    flagged = t["flagged"]["rows"]
    assert [(r["number"], r["flags"]) for r in flagged] == [(data["a1"], ["spike"])]
    assert t["stopped"]["rows"] == []
    nm = {r["number"] for r in t["no_meter"]["rows"]}
    assert data["a2"] in nm and data["a3"] in nm and data["a1"] not in nm
    kinds = {r["kind"]: r for r in t["requests_by_kind"]["rows"] if r["level"] == 0}
    # the leak was reported at 00:30 on 1 November in Tashkent (19:30 UTC on 31 October)
    assert set(kinds) == {"bill_dispute", "no_water", "question"}
    assert (kinds["no_water"]["closed"], kinds["bill_dispute"]["open"]) == (1, 1)
    (dispute,) = [r for r in t["disputes"]["rows"] if r["level"] == 0]
    assert (dispute["number"], dispute["invoice_amount"], dispute["disputed"]) == (
        data["a1"],
        amount,
        1_500_000,
    )
    # filtered by a street of another account: a1's requests are not in it
    with psycopg.connect(db_url) as c:
        sid = c.execute("SELECT id FROM streets WHERE name_uz = 'Bobur'").fetchone()
    assert sid is not None
    doc = await report(client, users[Role.BILLING_CLERK], "customer_service", street_id=sid[0])
    t = {tb["key"]: tb for tb in doc["tables"]}
    assert t["requests"]["rows"] == []  # nor the question that names no account


async def test_technical(client: httpx.AsyncClient, users: dict[Role, User], db_url: str) -> None:
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    with psycopg.connect(db_url, autocommit=True) as c:
        z = c.execute(
            "INSERT INTO zones (code, name, min_service_pressure_bar, max_service_pressure_bar) "
            "VALUES ('T-1', 'Test', 1.5, 6) RETURNING id"
        ).fetchone()
        g = c.execute("INSERT INTO gateways (code) VALUES ('gw-t') RETURNING id").fetchone()
        assert z and g
        d = c.execute(
            "INSERT INTO devices (code, gateway_id, kind, profile, zone_id) "
            "VALUES ('ps-t', %s, 'pressure_sensor', 'p', %s) RETURNING id",
            (g[0], z[0]),
        ).fetchone()
        assert d
        p = c.execute(
            "INSERT INTO points (device_id, name, unit) VALUES (%s, 'p', 'bar') RETURNING id",
            (d[0],),
        ).fetchone()
        assert p
        # 10 hourly values, 2 of them below 1.5 bar
        for h in range(10):
            v = 1.0 if h < 2 else 3.0
            c.execute(
                "INSERT INTO readings_1h (point_id, bucket, min, max, sum, count) "
                "VALUES (%s, %s, %s, %s, %s, 1)",
                (p[0], t0 + timedelta(hours=h), v, v, v),
            )
        # the gateway went offline at 17:00 UTC on Oct 31 and stayed offline
        c.execute(
            "INSERT INTO gateway_state_history (gateway_id, ts, state) VALUES "
            "(%s, %s, 'online'), (%s, %s, 'offline')",
            (g[0], t0 - timedelta(days=3), g[0], datetime(2026, 10, 31, 17, tzinfo=UTC)),
        )
    doc = await report(client, users[Role.DISPATCHER], "technical")
    tables = {t["key"]: t for t in doc["tables"]}
    comp = next(r for r in tables["pressure"]["rows"] if r["zone"] == "T-1")
    assert (comp["hours"], comp["ok_hours"], comp["compliance"]) == (10, 8, 80.0)
    assert comp["lowest_bar"] == 1.0
    gw = next(r for r in tables["gateways"]["rows"] if r["gateway"] == "gw-t")
    # Tashkent is UTC+5: the period ends at 19:00 UTC on Oct 31 -> 2 hours offline
    assert gw["availability"] == pytest.approx(100 - 100 * 2 / (31 * 24), abs=0.01)


async def test_formats(
    client: httpx.AsyncClient, users: dict[Role, User], data: dict[str, Any]
) -> None:
    acc = users[Role.ACCOUNTANT]
    x = await report(client, acc, "accounting", format="xlsx", lang="en")
    assert x.headers["content-type"].startswith("application/vnd.openxmlformats")
    wb = load_workbook(io.BytesIO(x.content))
    ws = wb.active
    values = [[c.value for c in row] for row in ws.iter_rows()]
    header = next(v for v in values if v[0] == "Account")
    a1 = dict(zip(header, next(v for v in values if v[0] == data["a1"]), strict=True))
    # so'm in the spreadsheet: closing 30 000 + 40 000 - (25 000 - 25 000) = 70 000, a debt
    assert (
        a1["Opening balance: debit, so'm"],
        a1["Charged, so'm"],
        a1["Paid, so'm"],
    ) == (30000.0, 40000.0, 0.0)
    assert (a1["Closing balance: debit, so'm"], a1["Closing balance: credit, so'm"]) == (
        70000.0,
        0.0,
    )
    c = await report(client, acc, "accounting", format="csv", lang="en")
    rows = list(csv.reader(io.StringIO(c.content.decode("utf-8-sig"))))
    head = next(r for r in rows if r and r[0] == "Account")
    a1c = dict(zip(head, next(r for r in rows if r and r[0] == data["a1"]), strict=True))
    assert a1c["Closing balance: debit, so'm"] == "70000.00"
    p = await report(client, acc, "accounting", format="pdf")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(p.content)).pages)
    assert data["a1"] in text and "Qodirova Lola" in text
    for name in ("finance", "legal", "customer_service", "technical"):
        for fmt in ("xlsx", "pdf", "csv"):
            r = await report(client, users[Role.ADMIN], name, format=fmt)
            assert len(r.content) > 100


async def test_report_roles_and_bad_dates(
    client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    expected = {
        "accounting": {"admin", "accountant", "billing_clerk", "viewer"},
        "finance": {"admin", "accountant", "viewer"},
        "legal": {"admin", "lawyer", "accountant"},
        "customer_service": {"admin", "billing_clerk", "viewer"},
        "technical": {"admin", "dispatcher", "technician", "viewer"},
    }
    for name, allowed in expected.items():
        for role, user in users.items():
            r = await client.get(
                f"/api/v1/reports/{name}",
                headers=bearer(user),
                params={"date_from": "2026-10-01", "date_to": "2026-10-31"},
            )
            assert (r.status_code != 403) == (role.value in allowed), (name, role, r.status_code)
    r = await client.get(
        "/api/v1/reports/accounting",
        headers=bearer(users[Role.ADMIN]),
        params={"date_from": "2026-10-31", "date_to": "2026-10-01", "lang": "ru"},
    )
    # the refusal speaks the form's language (it was the English "'date_to' must not be ...")
    assert r.status_code == 422
    assert r.json()["detail"] == "Период заканчивается раньше, чем начинается.", r.text


async def test_all_places_download_from_the_api_and_the_page(
    client: httpx.AsyncClient, users: dict[Role, User], data: dict[str, Any]
) -> None:
    """The report page's "All" sends empty place ids; until issue 15 both the page's
    download and the API answered them with a raw 422, so no whole-utility report could be
    downloaded from the web."""
    for name in ("accounting", "finance", "legal", "customer_service", "technical"):
        doc = await report(
            client, users[Role.ADMIN], name, district_id="", mahalla_id="all", street_id=""
        )
        assert not {"district_id", "mahalla_id", "street_id"} & set(doc["params"])
    whole = await report(client, users[Role.ADMIN], "accounting")
    allp = await report(client, users[Role.ADMIN], "accounting", district_id="", mahalla_id="")
    assert allp["tables"] == whole["tables"]
    r = await client.get(
        "/api/v1/reports/accounting",
        headers=bearer(users[Role.ADMIN]),
        params={"date_from": "2026-10-01", "date_to": "2026-10-31", "district_id": "-1"},
    )
    assert r.status_code == 422
    r = await client.get(
        "/api/v1/reports/accounting",
        headers=bearer(users[Role.ADMIN]),
        params={"date_from": "2026-10-01", "date_to": "2026-10-31", "district_id": "999999"},
    )
    assert r.status_code == 422
    assert r.json()["detail"] == Words("uz")(service.E_PLACE) != service.E_PLACE.id, r.text
    # the page: "All" for district and mahalla, every report the role may read, every file
    await staff_login(client, "u_admin")
    page = await client.get("/staff/reports")
    assert '<option value="">' in page.text
    for name in ("accounting", "finance", "legal", "customer_service", "technical"):
        for fmt in ("xlsx", "pdf", "csv"):
            form = {
                "report": name,
                "date_from": "2026-10-01",
                "date_to": "2026-10-31",
                "district_id": "",
                "mahalla_id": "",
                "threshold_som": "0",
                "format": fmt,
                "file_lang": "ru",
            }
            r = await client.get("/staff/reports/download", params=form)
            assert r.status_code == 303, (name, fmt, r.text[:300])
            f = await client.get(r.headers["location"])  # the same session cookie
            assert f.status_code == 200, (name, fmt, f.text[:300])
            assert f.headers["content-disposition"].endswith(f'.{fmt}"')
    # the claim letters: a ZIP of PDFs, for the roles of the legal form
    r = await client.get("/staff/reports/download", params={**form, "report": "legal_claims"})
    assert r.status_code == 303 and r.headers["location"].startswith(
        "/api/v1/reports/legal/claims?"
    )
    f = await client.get(r.headers["location"])
    assert f.status_code == 200 and f.headers["content-type"] == "application/zip"
    # a wrong period is said on the form, in the page's language, not as JSON
    form["date_from"], form["date_to"] = "2026-10-31", "2026-10-01"
    r = await client.get("/staff/reports/download", params={**form, "lang": "ru"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert 'id="report-error"' in r.text and "Период заканчивается раньше" in r.text


async def test_filters_are_named_and_the_form_speaks_the_language(
    client: httpx.AsyncClient, users: dict[Role, User], data: dict[str, Any], db_url: str
) -> None:
    with psycopg.connect(db_url, autocommit=True) as c:
        row = c.execute("SELECT id FROM districts WHERE name_uz = 'Urgut'").fetchone()
        assert row is not None
        c.execute("UPDATE districts SET name_ru = 'Ургутский район' WHERE id = %s", row)
    doc = await report(client, users[Role.ACCOUNTANT], "accounting", district_id=row[0], lang="ru")
    filters = {f["label"]: f["value"] for f in doc["filters"]}
    # until issue 15 the form printed "district_id 2"
    assert filters["Район"] == "Ургутский район" and filters["МСГ"] == ""
    assert doc["title"] == "Оборотная ведомость по лицевым счетам"
    detail = [r for r in doc["tables"][0]["rows"] if r["level"] == 0]
    assert detail and {r["district"] for r in detail} == {"Ургутский район"}
    uz = await report(client, users[Role.ACCOUNTANT], "accounting", district_id=row[0])
    assert {f["label"] for f in uz["filters"]} == {"Tuman", "MFY", "Ko'cha"}
