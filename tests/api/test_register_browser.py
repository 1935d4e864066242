"""The register pages and the account card in headless Chromium (Playwright driving
/usr/bin/chromium) on a real uvicorn, at a desktop's and a phone's width, in Uzbek (Latin and
Cyrillic) and Russian: nothing refused by the Content-Security-Policy, no script error, the
page no wider than the screen, no field, label or button sticking out of its card or lying
over another, no English word on the Russian and Uzbek Cyrillic pages.

Screenshots of every page are taken; with ``SUVNET_SCREENSHOTS=docs/backoffice`` they are
written there (the pictures of docs/backoffice.md), else into the test's temporary folder."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from api.app import create_app
from api.security import Role
from billing.accounts import Address, add_reading, create_account, install_meter
from billing.ledger import post_payment
from tests.api.conftest import (
    NOW,
    PASSWORD,
    Clock,
    LiveServer,
    User,
    add_invoice_and_charge,
    api_settings,
)
from tests.api.cspwatch import CspWatch
from tests.test_i18n_complete import ENGLISH

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
LANGS = ("uz", "uz_Cyrl", "ru")
LOCALES = {"uz": "uz", "uz_Cyrl": "uz-Cyrl", "ru": "ru"}
POSIX = {"uz": "uz_UZ", "uz_Cyrl": "uz_UZ@cyrillic", "ru": "ru_RU"}

LAYOUT = """() => {
  const out = [];
  const vw = window.innerWidth;
  if (document.documentElement.scrollWidth > vw + 1)
    out.push('page wider than the screen: ' + document.documentElement.scrollWidth + ' > ' + vw);
  const name = e => e.tagName + (e.id ? '#' + e.id : '')
    + ' "' + (e.textContent || '').trim().slice(0, 30) + '"';
  const shown = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  for (const card of document.querySelectorAll('.card')) {
    const c = card.getBoundingClientRect();
    const parts = 'input,select,button,label,h1,h2,p,dl,a.btn,summary,legend';
    for (const e of card.querySelectorAll(parts)) {
      if (e.closest('.scroll') || !shown(e)) continue;
      const r = e.getBoundingClientRect();
      if (r.right > c.right + 1 || r.left < c.left - 1)
        out.push('sticks out of its card: ' + name(e));
    }
  }
  for (const e of document.querySelectorAll('button,a.btn,label,th,td,dt,dd,.tag')) {
    if (!shown(e) || e.closest('.scroll')) continue;
    if (e.scrollWidth > e.clientWidth + 2 && getComputedStyle(e).overflow !== 'visible')
      out.push('text cut off: ' + name(e));
  }
  const over = (a, b) => a.left < b.right - 1 && b.left < a.right - 1
    && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  for (const grid of document.querySelectorAll('.grid, dl.facts, p.actions, nav.lang')) {
    const kids = [...grid.children].filter(shown);
    for (let i = 0; i < kids.length; i++)
      for (let j = i + 1; j < kids.length; j++)
        if (over(kids[i].getBoundingClientRect(), kids[j].getBoundingClientRect()))
          out.push('overlap: ' + name(kids[i]) + ' / ' + name(kids[j]));
  }
  for (const box of document.querySelectorAll('.scroll')) {
    if (shown(box) && box.scrollWidth > box.clientWidth + 1)
      out.push('table wider than its card (scrolls sideways): ' + name(box.querySelector('table'))
        + ' ' + box.scrollWidth + ' > ' + box.clientWidth + ' cells '
        + [...box.querySelectorAll('tr:first-child > *')]
          .map(c => Math.round(c.getBoundingClientRect().width)).join(','));
  }
  for (const field of document.querySelectorAll('.field')) {
    const parts = [...field.children].filter(shown);
    for (let i = 0; i < parts.length; i++)
      for (let j = i + 1; j < parts.length; j++)
        if (over(parts[i].getBoundingClientRect(), parts[j].getBoundingClientRect()))
          out.push('overlap in a field: ' + name(parts[i]) + ' / ' + name(parts[j]));
  }
  return out;
}"""


def shots_dir(tmp_path: Path) -> Path:
    d = Path(os.environ.get("SUVNET_SCREENSHOTS") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def browsers() -> Iterator[dict[str, Any]]:
    """One Chromium a language, started in that language (its date and time fields show the
    language's format)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        out = {
            lang: p.chromium.launch(
                executable_path=str(CHROMIUM),
                headless=True,
                args=[*ARGS, f"--lang={loc}"],
                env={**os.environ, "LANG": f"{POSIX[lang]}.UTF-8", "LANGUAGE": loc},
            )
            for lang, loc in LOCALES.items()
        }
        yield out
        for b in out.values():
            b.close()


@pytest.fixture(scope="module")
def village(db_url: str, users: dict[Role, User]) -> dict[str, Any]:
    """A register a back office has: a district with mahallas and streets named in three
    spellings, households with meters, readings, charges and payments, a legal entity with its
    bank details, a smart meter with telemetry, tariffs and norms."""
    tz_now = NOW
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO regions (name_uz, name_uz_cyrl, name_ru, code) VALUES "
            "('Samarqand viloyati', 'Самарқанд вилояти', 'Самаркандская область', '1718') "
            "ON CONFLICT (name_uz) DO UPDATE SET code = '1718', "
            "name_uz_cyrl = 'Самарқанд вилояти', name_ru = 'Самаркандская область'"
        )

        def account(name: str, street: str, house: str, **kw: Any) -> tuple[int, str]:
            return create_account(
                conn,
                kind=kw.pop("kind", "household"),
                name=name,
                address=Address(
                    "Samarqand viloyati",
                    "Urgut tumani",
                    "Navbahor MFY",
                    street,
                    house,
                    kw.pop("apartment", None),
                ),
                now=datetime(2025, 3, 1, tzinfo=UTC),
                opened_on=date(2025, 3, 1),
                **kw,
            )

        a1, n1 = account(
            "Karimov Anvar Olimovich", "Navoiy ko'chasi", "12", residents=4, phone="+998901234567"
        )
        a2, n2 = account(
            "Obod Non MChJ",
            "Bog'bon ko'chasi",
            "3",
            kind="legal",
            inn="301234567",
            mfo="00873",
            bank_account="20208000900123456001",
            phone="+998662223344",
        )
        a3, n3 = account(
            "Yusupova Gulnora",
            "Mustaqillik ko'chasi",
            "25",
            residents=3,
            apartment="7",
            metered=False,
        )
        a4, n4 = account("Rahimov Sherzod", "Navoiy ko'chasi", "14", residents=5)
        conn.execute(
            "UPDATE streets SET name_uz_cyrl = 'Навоий кўчаси', name_ru = 'улица Навои' "
            "WHERE name_uz = 'Navoiy ko''chasi'"
        )
        conn.execute(
            "UPDATE streets SET name_uz_cyrl = 'Боғбон кўчаси', name_ru = 'улица Богбон' "
            "WHERE name_uz = 'Bog''bon ko''chasi'"
        )
        conn.execute(
            "UPDATE districts SET code = '1718230', name_uz_cyrl = 'Ургут тумани', "
            "name_ru = 'Ургутский район' WHERE name_uz = 'Urgut tumani'"
        )
        conn.execute(
            "UPDATE mahallas SET code = '1718230012', name_uz_cyrl = 'Навбаҳор МФЙ', "
            "name_ru = 'махалля Навбахор' WHERE name_uz = 'Navbahor MFY'"
        )
        installed = datetime(2025, 3, 1, 5, tzinfo=UTC)
        m1 = install_meter(conn, a1, "SV-2025-000112", installed_at=installed, initial_reading=12.5)
        conn.execute(
            "INSERT INTO meter_seals (meter_id, seal_no, sealed_at, entered_by) "
            "VALUES (%s, 'P-004512', %s, 'u_billing_clerk')",
            (m1, installed),
        )
        for month, value in ((9, 101.25), (10, 109.5), (11, 118.0)):
            add_reading(
                conn,
                m1,
                datetime(2026, month, 28, 6, tzinfo=UTC),
                value,
                "inspector",
                entered_by="Olim Karimov",
            )
        install_meter(conn, a2, "SV-2024-000301", installed_at=installed, initial_reading=340)
        for acc_id, n, amount in ((a1, n1, 1_402_500), (a2, n2, 5_824_000), (a3, n3, 2_227_500)):
            for month in (9, 10, 11):
                volume = 8.5 if acc_id == a1 else 11.2
                number = f"2026-{acc_id}{month}{n[-2:]}"
                add_invoice_and_charge(conn, acc_id, date(2026, month, 1), amount, volume, number)
        post_payment(
            conn,
            amount_tiyin=2_000_000,
            paid_at=datetime(2026, 10, 15, 6, tzinfo=UTC),
            source="payme",
            external_ref="pm-1001",
            account_id=a1,
        )
        post_payment(
            conn,
            amount_tiyin=1_402_500,
            paid_at=datetime(2026, 11, 9, 6, tzinfo=UTC),
            source="cashier",
            external_ref="K-2026-000451",
            account_id=a1,
        )
        post_payment(
            conn,
            amount_tiyin=11_648_000,
            paid_at=datetime(2026, 11, 20, 6, tzinfo=UTC),
            source="bank",
            external_ref="PP 4512",
            account_id=a2,
        )
        # a smart meter: telemetry, one daily rollup a day
        gw = conn.execute("INSERT INTO gateways (code) VALUES ('gw-nav') RETURNING id").fetchone()
        assert gw is not None
        dev = conn.execute(
            "INSERT INTO devices (code, gateway_id, kind, profile) VALUES ('wm-14', %s, "
            "'customer_meter', 'p') RETURNING id",
            (gw[0],),
        ).fetchone()
        assert dev is not None
        point = conn.execute(
            "INSERT INTO points (device_id, name, unit) VALUES (%s, 'volume', 'm3') RETURNING id",
            (dev[0],),
        ).fetchone()
        assert point is not None
        conn.execute(
            "INSERT INTO meters (serial_no, point_id, model) "
            "VALUES ('SM-2026-0014', %s, 'Ultrimis')",
            (point[0],),
        )
        conn.execute(
            "INSERT INTO service_connections (account_id, meter_id, installed_at) "
            "SELECT %s, id, '2026-09-01 00:00+05' FROM meters WHERE serial_no = 'SM-2026-0014'",
            (a4,),
        )
        for day in range(20, 31):
            v = 20.0 + day * 0.41
            conn.execute(
                "INSERT INTO readings_1d (point_id, bucket, min, max, sum, count, last, last_ts) "
                "VALUES (%s, %s, 0, %s, 0, 24, %s, %s)",
                (
                    point[0],
                    datetime(2026, 11, day, tzinfo=UTC),
                    v,
                    v,
                    datetime(2026, 11, day, 18, 55, tzinfo=UTC),
                ),
            )
        conn.execute(
            "INSERT INTO tariffs (category, valid_from, price_tiyin_per_m3, vat_rate_bp, note) "
            "VALUES ('household', '2025-01-01', 165000, 0, 'Qaror 45'), "
            "('legal', '2025-01-01', 520000, 1200, 'Qaror 45'), "
            "('budget', '2025-01-01', 410000, 1200, 'Qaror 45'), "
            "('household', '2027-01-01', 180000, 0, 'Qaror 112')"
        )
        conn.execute(
            "INSERT INTO norms (valid_from, m3_per_person_month) VALUES ('2025-01-01', 4.5)"
        )
        street = conn.execute(
            "SELECT h.street_id, s.mahalla_id FROM houses h JOIN streets s ON s.id = h.street_id "
            "JOIN accounts a ON a.house_id = h.id WHERE a.id = %s",
            (a1,),
        ).fetchone()
        assert street is not None
        conn.commit()
    del tz_now
    return {
        "household": n1,
        "legal": n2,
        "norm": n3,
        "smart": n4,
        "meter_id": m1,
        "street_id": street[0],
        "mahalla_id": street[1],
    }


@pytest.fixture(scope="module")
def server(db_url: str, users: dict[Role, User], village: dict[str, Any]) -> Iterator[LiveServer]:
    with LiveServer(create_app(api_settings(db_url), clock=Clock(NOW))) as srv:
        yield srv


def _check_reading(page: Any) -> None:
    """The readings page after "Check": a reading lower than the one before."""
    page.fill("#value", "110,5")
    page.fill("#day", "01.12.2026")
    page.fill("#at", "09:30")
    page.click("#check")
    page.wait_for_selector("#check-result")


def _bad_account(page: Any) -> None:
    """The new-account form sent with mistakes: every problem shown at its field."""
    page.select_option("#kind", "legal")
    page.fill("#name", "Yangi Hayot XK")
    page.fill("#house", "40")
    page.fill("#inn", "1234")
    page.fill("#phone", "12")
    page.click("#save-account")
    page.wait_for_selector(".field-error")


def _open_forms(page: Any) -> None:
    """Every folded form opened (what a person sees after a click)."""
    for d in page.locator("details.form").all():
        d.evaluate("e => e.open = true")


def pages(v: dict[str, Any]) -> list[tuple[str, str, Callable[[Any], None] | None]]:
    return [
        ("register", "/staff/register?q=Навои 12", None),
        ("card-household", f"/staff/accounts/{v['household']}", None),
        ("card-legal", f"/staff/accounts/{v['legal']}", None),
        ("card-smart", f"/staff/accounts/{v['smart']}", None),
        ("account-new", f"/staff/register/accounts/new?mahalla_id={v['mahalla_id']}", _bad_account),
        ("account-edit", f"/staff/register/accounts/{v['household']}/edit", None),
        ("residents", f"/staff/register/accounts/{v['household']}/residents", None),
        ("meters", f"/staff/register/accounts/{v['household']}/meters", _open_forms),
        ("readings", f"/staff/register/accounts/{v['household']}/readings", _check_reading),
        ("addresses", "/staff/register/addresses", None),
        ("street", f"/staff/register/addresses/street/{v['street_id']}", _open_forms),
        ("rates", "/staff/register/rates", _open_forms),
    ]


def login(page: Any, url: str, user: User) -> None:
    page.goto(url + "/staff/login?lang=uz")
    page.fill("#username", user.username)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(re.compile(r"/staff/$"))


def english(text: str) -> set[str]:
    return {w for w in re.findall(r"[A-Za-z]+", text) if w.lower() in ENGLISH}


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_register_pages_look_right(
    browsers: dict[str, Any],
    server: LiveServer,
    users: dict[Role, User],
    village: dict[str, Any],
    tmp_path: Path,
    width: str,
) -> None:
    out = shots_dir(tmp_path)
    w, h = WIDTHS[width]
    problems: list[str] = []
    for lang in LANGS:
        # the browser's own language too: date and time fields are shown in its format
        ctx = browsers[lang].new_context(
            viewport={"width": w, "height": h}, device_scale_factor=1, locale=LOCALES[lang]
        )
        page = ctx.new_page()
        watch = CspWatch(page)
        login(page, server.url, users[Role.ADMIN])
        for name, path, prepare in pages(village):
            sep = "&" if "?" in path else "?"
            resp = page.goto(f"{server.url}{path}{sep}lang={lang}")
            assert resp is not None and resp.status == 200, (path, resp and resp.status)
            if prepare is not None:
                prepare(page)
            problems += [f"{name} {lang} {width}: {p}" for p in page.evaluate(LAYOUT)]
            if lang != "uz":  # Cyrillic pages: a Latin English word came from no catalog
                text = page.locator("main").inner_text()
                problems += [f"{name} {lang}: English {sorted(e)}" for e in [english(text)] if e]
            page.screenshot(path=str(out / f"{name}-{lang}-{width}.png"), full_page=True)
        # the new-account form sent with mistakes answers 422 (Chromium logs it): nothing else
        assert all(f.startswith("422 ") and f.endswith("/accounts/new") for f in watch.failed)
        watch.errors = [e for e in watch.errors if "status of 422" not in e]
        watch.assert_clean(f"{width} {lang}")
        ctx.close()
    assert problems == [], "\n".join(problems)


def test_a_viewer_sees_no_form(
    browsers: dict[str, Any],
    server: LiveServer,
    users: dict[Role, User],
    village: dict[str, Any],
    tmp_path: Path,
) -> None:
    """The viewer reads the register: no form to change it, and no layout problem either."""
    ctx = browsers["ru"].new_context(
        viewport={"width": 1280, "height": 900}, device_scale_factor=1, locale="ru-RU"
    )
    page = ctx.new_page()
    watch = CspWatch(page)
    login(page, server.url, users[Role.VIEWER])
    for path in (
        f"/staff/register/accounts/{village['household']}/meters",
        "/staff/register/rates",
        f"/staff/accounts/{village['household']}",
    ):
        assert page.goto(server.url + path + "?lang=ru") is not None
        assert page.locator("form[method=post]").count() == 0, path
        assert page.evaluate(LAYOUT) == [], path
    page.screenshot(path=str(shots_dir(tmp_path) / "card-viewer-ru-desktop.png"), full_page=True)
    watch.assert_clean()
    ctx.close()
