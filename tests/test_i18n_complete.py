"""No untranslated staff or customer string.

1. Every message the code asks for - ``_()``/``gettext``/``pgettext`` calls in ``api/**.py``,
   the templates, ``alarms/messages.py`` (the alarm texts of the staff page and the
   notifications) and the ``N_()`` texts of the Grafana dashboards (``dashboards/**.py``;
   tests/dashboards/test_languages.py checks the built dashboards), extracted with babel
   as ``api/babel.cfg`` says - is in every catalog (uz, uz_Cyrl, ru, en) with a translation
   that is not empty, keeps the message's ``%(name)s`` placeholders and is not marked fuzzy.
2. A pseudo-locale run: every translation is replaced by the message wrapped in ``⟦ ⟧``,
   then every staff and cabinet page (found from the app's routers, so a new page is
   checked too) and every department report (CSV, XLSX and PDF) and claim letter is
   rendered. Whatever text is left outside the wrapped parts came from no catalog; an
   English word of the stop-list there is a string that no language would translate.

Words that other parts of the code still show in English are listed in :data:`KNOWN`, with
the file that shows them: the test fails on any other (a new untranslated string), and warns
about the known ones until they are fixed and taken off the list.
"""

from __future__ import annotations

import gettext
import html
import io
import re
import subprocess
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po
from fastapi import FastAPI
from openpyxl import load_workbook  # type: ignore[import-untyped]

import api.i18n
from api.app import ROUTERS, create_app
from api.i18n import LANGUAGES, po_path
from api.security import Role
from billing.ledger import post_payment, reverse_entry
from tests.api.conftest import (
    NOW,
    PASSWORD,
    Clock,
    add_invoice_and_charge,
    api_settings,
    insert_user,
    make_account,
)

API = Path(__file__).resolve().parents[1] / "api"
ALARM_TEXTS = API.parent / "alarms"
DASHBOARDS = API.parent / "dashboards"
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]")


# ---------------------------------------------------------------------------- catalogs


def used_messages() -> set[tuple[str | None, str]]:
    """(context, message id) of every message the code asks for (api/babel.cfg's mapping,
    babel's default keywords: _, gettext, ngettext, pgettext, N_ ...)."""
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    found = extract_from_dir(
        str(API),
        method_map=method_map,
        options_map={"templates/**.html": {}},
        keywords=DEFAULT_KEYWORDS,
    )
    alarm_texts = extract_from_dir(
        str(ALARM_TEXTS), method_map=[("messages.py", "python")], keywords=DEFAULT_KEYWORDS
    )
    dashboards = extract_from_dir(
        str(DASHBOARDS), method_map=[("**.py", "python")], keywords=DEFAULT_KEYWORDS
    )
    out: set[tuple[str | None, str]] = set()
    for _file, _line, msg, _comments, ctx in [*found, *alarm_texts, *dashboards]:
        out.add((ctx, msg if isinstance(msg, str) else msg[0]))
    return out


def test_the_code_asks_for_messages() -> None:
    msgs = used_messages()
    assert ("report", "Page %(page)s of %(pages)s") in msgs  # a form's, from api/reports
    assert (None, "Customer login") in msgs  # a template's
    assert (None, "the day-shape test") in msgs  # the alarm texts' (alarms/messages.py)
    assert (None, "Zone inflow") in msgs  # a dashboard's (dashboards/boards/zone.py)
    assert len(msgs) > 250


@pytest.mark.parametrize("code", [lang.code for lang in LANGUAGES])
def test_every_message_is_in_every_catalog(code: str) -> None:
    with po_path(code).open("rb") as f:
        catalog = read_po(f, locale=code)
    missing, empty, broken = [], [], []
    for ctx, msgid in sorted(used_messages(), key=lambda m: (m[0] or "", m[1])):
        entry = catalog.get(msgid, context=ctx)
        if entry is None:
            missing.append((ctx, msgid))
        elif not entry.string:
            empty.append((ctx, msgid))
        elif sorted(PLACEHOLDER.findall(msgid)) != sorted(PLACEHOLDER.findall(str(entry.string))):
            broken.append((ctx, msgid, entry.string))
    assert missing == [], f"{code}: not in the catalog: {missing}"
    assert empty == [], f"{code}: no translation: {empty}"
    assert broken == [], f"{code}: placeholders differ: {broken}"
    assert [m.id for m in catalog if m.id and m.fuzzy] == []


def test_a_missing_message_is_caught(tmp_path: Path) -> None:
    """The check above reads what the code asks for: a new call is found."""
    (tmp_path / "page.py").write_text('_("A string nobody translated")\n', encoding="utf-8")
    found = extract_from_dir(str(tmp_path), method_map=[("**.py", "python")])
    assert [m[2] for m in found] == ["A string nobody translated"]


# ---------------------------------------------------------------------------- pseudo-locale

OPEN, CLOSE = "⟦", "⟧"


class Pseudo(gettext.NullTranslations):
    """Every message wrapped in ⟦ ⟧ (placeholders kept, so formatting still works)."""

    def gettext(self, message: str) -> str:
        return f"{OPEN}{message}{CLOSE}"

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        return self.gettext(msgid1 if n == 1 else msgid2)

    def pgettext(self, context: str, message: str) -> str:
        return self.gettext(message)

    def npgettext(self, context: str, msgid1: str, msgid2: str, n: int) -> str:
        return self.ngettext(msgid1, msgid2, n)


ENGLISH = frozenset(
    """
    the and of to for by with from is are not in on at no yes all none or it this that
    account accounts name district street address phone total charged paid opening closing
    balance debit credit debt days page printed period time prepared checked approved notes
    turnover statement collected collection rate category household households legal entity
    budget customer request requests meter meters zone month day channel payments payment
    share status active suspended closed estimated volume billed bills invoice invoices
    disputed resolved open question leak water inflow losses consumption pressure hours alarm
    alarms priority raised gateway devices availability nothing fault faults spike cash desk
    transfer claim letters director unpaid low high medium urgent offline stopped difference
    ledger check entries dated sum bank cashier charge search reports report download login
    logout password date amount receipt void shift readings reading balance since until
    admin viewer clerk accountant dispatcher technician lawyer run runs state done failed
    completed running acknowledge acknowledged shelve shelved unack cleared back submit save
    cancel error unknown value values first last next previous new
        """.split()  # noqa: SIM905 - a word list reads better as words
)
"""English words that must not be shown to a person outside a translated string."""

KNOWN: dict[str, set[str]] = {}
"""Page -> English words still shown there by templates and code outside this helper's
files (issue 15's report names each): the catalogs have no entry for them because the code
prints a stored code instead of asking for a message. Remove a page's words once fixed."""

PSEUDO = Pseudo()


def outside(text: str) -> str:
    """The text with every wrapped (translated) part taken out."""
    prev = None
    while prev != text:
        prev = text
        text = re.sub(f"{OPEN}[^{OPEN}{CLOSE}]*{CLOSE}", " ", text)
    return text


def english(text: str) -> set[str]:
    return {w for w in re.findall(r"[A-Za-z]+", outside(text)) if w.lower() in ENGLISH}


def page_text(body: str) -> str:
    """What a person reads on a page: the text, and the attributes shown (placeholder,
    title, alt, aria-label, a button's value); not scripts, styles or the page's data for
    programs."""
    body = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", body)
    shown = re.findall(
        r'\b(?:placeholder|title|alt|aria-label)="([^"]*)"|<input[^>]*type="submit"[^>]*value="([^"]*)"',
        body,
    )
    attrs = " ".join(a or b for a, b in shown)
    return html.unescape(re.sub(r"<[^>]+>", " ", body) + " " + attrs)


@pytest.fixture
def pseudo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api.i18n, "translations", lambda code: PSEUDO)


@pytest.fixture(scope="module")
def people(db_url: str) -> dict[str, Any]:
    """Staff of every role, a customer with a login, charges, payments on several channels
    (one cancelled), a customer request, an alarm: every page has something to show."""
    with psycopg.connect(db_url) as conn:
        aid, number = make_account(conn, 901, name="Yusupova Dilnoza", street="Mustaqillik")
        a2, _ = make_account(conn, 902, name="Ergashev Bobur", street="Mustaqillik", house="3")
        for k, month in enumerate((9, 10, 11)):
            add_invoice_and_charge(conn, aid, date(2026, month, 1), 2_000_000, 4.0, f"2026-9{k}")
            add_invoice_and_charge(conn, a2, date(2026, month, 1), 1_000_000, 2.0, f"2026-8{k}")
        pay = post_payment(
            conn,
            amount_tiyin=1_000_000,
            paid_at=datetime(2026, 10, 9, 6, tzinfo=UTC),
            source="bank",
            external_ref="b-901",
            account_id=aid,
        )
        reverse_entry(conn, pay.id, posted_at=datetime(2026, 10, 12, tzinfo=UTC), memo="xato")
        for src, acc in (("payme", aid), ("cashier", a2), ("click", aid)):
            post_payment(
                conn,
                amount_tiyin=500_000,
                paid_at=datetime(2026, 10, 15, 6, tzinfo=UTC),
                source=src,
                external_ref=f"{src}-9",
                account_id=acc,
            )
        conn.execute(
            "INSERT INTO customer_requests (account_id, received_at, kind, subject) "
            "VALUES (%s, '2026-10-20 06:00+00', 'no_water', 'Suv yo''q')",
            (aid,),
        )
        gw = conn.execute("INSERT INTO gateways (code) VALUES ('gw-9') RETURNING id").fetchone()
        assert gw is not None
        dev = conn.execute(
            "INSERT INTO devices (code, gateway_id, kind, profile) "
            "VALUES ('ps-9', %s, 'pressure_sensor', 'p') RETURNING id",
            (gw[0],),
        ).fetchone()
        assert dev is not None
        rule = conn.execute(
            "INSERT INTO alarm_rules (code, kind, device_id, priority) "
            "VALUES ('ps-9-offline', 'offline', %s, 'high') RETURNING id",
            (dev[0],),
        ).fetchone()
        assert rule is not None
        conn.execute(
            "INSERT INTO alarms (rule_id, subject, kind, priority, position_id, device_id, "
            "state, raised_at, message) VALUES (%s, 'ps-9', 'offline', 'high', 1, %s, "
            "'unack', '2026-11-27 23:00+00', 'ps-9')",
            (rule[0], dev[0]),
        )
        staff = {
            role: insert_user(conn, f"xodim_{n}", role)
            for n, role in enumerate(Role)
            if role is not Role.CUSTOMER
        }
        customer = insert_user(conn, number, Role.CUSTOMER, account_no=number)
        conn.commit()
    return {"number": number, "staff": staff, "customer": customer}


@pytest.fixture
def app(db_url: str, mqtt_url: str, topic_root: str) -> FastAPI:
    return create_app(api_settings(db_url, mqtt_url, topic_root), clock=Clock(NOW))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def page_paths(number: str) -> list[str]:
    """Every page a person opens (GET, HTML) under /staff and /cabinet, from the routers."""
    import importlib

    out = []
    for r in ROUTERS:
        router = importlib.import_module(r[0]).router if isinstance(r, tuple) else r
        for route in router.routes:
            path = getattr(route, "path", "")
            if not path.startswith(("/staff", "/cabinet")):
                continue
            if "GET" not in getattr(route, "methods", set()) or path.endswith((".json", ".pdf")):
                continue
            out.append(path.replace("{number}", number))
    return [p for p in out if "{" not in p]


async def login(client: httpx.AsyncClient, kind: str, data: dict[str, str]) -> None:
    page = await client.get(f"/{kind}/login")
    m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert m
    r = await client.post(f"/{kind}/login", data={**data, "csrf_token": m.group(1)})
    assert r.status_code == 303, r.text[:300]


def report_check(name: str, found: set[str], number: str) -> None:
    known = KNOWN.get(name.replace(number, "{number}"), set())
    new = found - known
    assert new == set(), f"{name}: English outside the catalogs: {sorted(new)}"


@pytest.mark.usefixtures("pseudo")
async def test_pseudo_locale_pages_show_no_raw_english(
    client: httpx.AsyncClient, people: dict[str, Any]
) -> None:
    number = people["number"]
    paths = page_paths(number)
    assert "/staff/reports" in paths and "/cabinet/" in paths
    public = [p for p in paths if p.endswith(("/login", "/activate"))]
    for path in public:
        r = await client.get(path)
        assert r.status_code == 200, path
        assert OPEN in r.text, path  # the pseudo-locale is on
        report_check(path, english(page_text(r.text)), number)
    admin = people["staff"][Role.ADMIN]
    await login(client, "staff", {"username": admin.username, "password": PASSWORD})
    for path in [p for p in paths if p.startswith("/staff") and p not in public]:
        r = await client.get(path, follow_redirects=True)
        if not r.headers.get("content-type", "").startswith("text/html"):
            continue
        report_check(path, english(page_text(r.text)), number)
    # a search, and the form's error answer
    r = await client.get("/staff/", params={"q": "Yusupova"})
    report_check("/staff/?q=", english(page_text(r.text)), number)
    r = await client.get(
        "/staff/reports/download",
        params={"report": "accounting", "date_from": "2026-10-31", "date_to": "2026-10-01"},
    )
    assert r.status_code == 422
    report_check("/staff/reports/download (error)", english(page_text(r.text)), number)
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as cab:
        await login(cab, "cabinet", {"account_no": people["number"], "password": PASSWORD})
        for path in [p for p in paths if p.startswith("/cabinet") and p not in public]:
            r = await cab.get(path)
            report_check(path, english(page_text(r.text)), number)


def pdf_words(pdf: bytes, tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(pdf)
    # -raw: the order the text is drawn in, so a wrapped message stays in one piece
    return subprocess.run(
        ["pdftotext", "-raw", "-enc", "UTF-8", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def xlsx_words(body: bytes) -> str:
    wb = load_workbook(io.BytesIO(body))
    texts = []
    for ws in wb.worksheets:  # (a sheet's name is its table's title cut to 31 characters)
        texts += [str(c.value) for r in ws.iter_rows() for c in r if isinstance(c.value, str)]
        for hf in (ws.oddHeader, ws.oddFooter):
            texts += [p.text or "" for p in (hf.left, hf.center, hf.right)]
    return "\n".join(texts)


@pytest.mark.usefixtures("pseudo")
async def test_pseudo_locale_reports_show_no_raw_english(
    client: httpx.AsyncClient, people: dict[str, Any], tmp_path: Path
) -> None:
    admin = people["staff"][Role.ADMIN]
    await login(client, "staff", {"username": admin.username, "password": PASSWORD})
    params = {"date_from": "2026-10-01", "date_to": "2026-10-31"}
    for name in ("accounting", "finance", "legal", "customer_service", "technical"):
        for fmt in ("csv", "xlsx", "pdf"):
            r = await client.get(f"/api/v1/reports/{name}", params={**params, "format": fmt})
            assert r.status_code == 200, r.text[:300]
            if fmt == "csv":
                text = r.content.decode("utf-8-sig")
            elif fmt == "xlsx":
                text = xlsx_words(r.content)
            else:
                text = pdf_words(r.content, tmp_path, name)
            assert OPEN in text
            found = english(text)
            assert found == set(), f"{name}.{fmt}: English outside the catalogs: {sorted(found)}"
    r = await client.get("/api/v1/reports/legal/claims", params=params)
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        assert z.namelist()
        for n in z.namelist():
            found = english(pdf_words(z.read(n), tmp_path, n))
            assert found == set(), f"{n}: English outside the catalogs: {sorted(found)}"


def test_the_check_catches_raw_english() -> None:
    """A string that skipped the catalogs is found; a wrapped one and data are not."""
    assert english("⟦Total⟧: 1 200,00 Yusupova Dilnoza") == set()
    assert english("⟦Jami⟧ household · active") == {"household", "active"}
    assert english(page_text('<input placeholder="Search">')) == {"Search"}


@pytest.mark.parametrize(
    ("role", "lang", "shown"),
    [
        (Role.BILLING_CLERK, "ru", "Специалист абонентского отдела"),
        (Role.CASHIER, "uz", "Kassir"),
        (Role.ADMIN, "uz_Cyrl", "Администратор"),
    ],
)
async def test_the_header_names_the_role_in_the_page_language(
    client: httpx.AsyncClient, people: dict[str, Any], role: Role, lang: str, shown: str
) -> None:
    """The back-office header says who is logged in, with the role's name in the page's
    language, not its code (billing_clerk)."""
    user = people["staff"][role]
    await login(client, "staff", {"username": user.username, "password": PASSWORD})
    r = await client.get("/staff/", params={"lang": lang}, follow_redirects=True)
    assert r.status_code == 200
    who = re.search(r'<span class="muted who">([^<]*)</span>', r.text)
    assert who, r.text[:500]
    assert html.unescape(who.group(1)) == f"{user.username} ({shown})"
