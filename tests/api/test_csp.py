"""The Content-Security-Policy of the web pages: no inline script may run (and no inline style
apply) on any page, and no page or template carries any.

(a) every kind of page (back office, customer cabinet, payment pages, error answers of the
    forms) is served with the policy, and its script-src and style-src allow only 'self';
(b) the templates and every HTML string in the Python code under api/ have no <script> without
    src, no on*= handler, no javascript: address, no <style> block and no style attribute;
    the rendered pages are checked the same way, and the checker is shown to catch each kind.
The browser tests (tests/api/test_csp_browser.py, tests/payments/test_browser.py) load the pages
in Chromium with the policy enforced and show that nothing is refused and everything works."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from api.security import Role
from api.web.common import PAGE_CSP, STATIC, static_url
from tests.api.conftest import PASSWORD, User
from tests.api.inline_markup import html_strings, in_template, inline_code

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "api"

STAFF_PAGES = (
    "/staff/",
    "/staff/?q=Karimov",
    "/staff/alarms",
    "/staff/billing",
    "/staff/reports",
    "/staff/payments/desk",
    "/staff/payments/statements",
    "/staff/map",
)
CABINET_PAGES = ("/cabinet/",)
PUBLIC_PAGES = ("/staff/login", "/cabinet/login", "/cabinet/activate")
STATIC_FILES = {
    "cabinet.js": "text/javascript",
    "suvnet.css": "text/css",
    "favicon.svg": "image/svg+xml",
    "form_key.js": "text/javascript",
    "map.js": "text/javascript",
    "map.css": "text/css",
    "leaflet.js": "text/javascript",
    "leaflet.css": "text/css",
    "leaflet-layers.png": "image/png",
    "leaflet-layers-2x.png": "image/png",
    "leaflet-marker-icon.png": "image/png",
    "leaflet-LICENSE.txt": "text/plain",
    "register.css": "text/css",
}


def test_every_static_file_is_listed() -> None:
    """A file added to api/static is served to every page: it is checked here with its type."""
    here = Path(__file__).resolve().parents[2] / "api" / "static"
    listed = sorted(p.name for p in here.iterdir() if p.is_file() and not p.name.startswith("."))
    assert listed == sorted(STATIC_FILES)


def directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def check_page(r: httpx.Response, path: str) -> None:
    """The answer is a page with the strict policy, and nothing inline in it."""
    assert r.headers["content-type"].startswith("text/html"), path
    csp = r.headers.get("content-security-policy")
    assert csp == PAGE_CSP, path
    d = directives(csp)
    assert d["script-src"] == ["'self'"], path  # no 'unsafe-inline', no nonce, no hash, no host
    assert d["style-src"] == ["'self'"], path
    assert d["default-src"] == ["'self'"] and d["object-src"] == ["'none'"], path
    assert d["base-uri"] == ["'none'"] and d["frame-ancestors"] == ["'none'"], path
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
    assert inline_code(r.text) == [], path
    # every file the page loads from /static exists and has the right type (nosniff)
    for url in re.findall(r'(?:src|href)="(/static/[^"]+)"', r.text):
        assert url.split("?")[0] in {f"/static/{name}" for name in STATIC_FILES}, url


async def csrf(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert m, page.text[:300]
    return m.group(1)


async def test_every_page_kind_has_the_strict_policy(
    client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    for path in PUBLIC_PAGES:
        r = await client.get(path)
        assert r.status_code == 200, path
        check_page(r, path)
    # the forms' error answers (wrong password, expired form) are pages too
    token = await csrf(client, "/staff/login")
    r = await client.post(
        "/staff/login", data={"username": "u_admin", "password": "wrong-pass", "csrf_token": token}
    )
    assert r.status_code == 401
    check_page(r, "/staff/login (wrong password)")
    r = await client.post(
        "/cabinet/login", data={"account_no": "1", "password": "x", "csrf_token": "forged"}
    )
    assert r.status_code == 403
    check_page(r, "/cabinet/login (expired form)")
    # the back office and the payment pages, as an administrator (who sees every page)
    r = await client.post(
        "/staff/login", data={"username": "u_admin", "password": PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 303, r.text
    customer = users[Role.CUSTOMER]
    for path in (*STAFF_PAGES, f"/staff/accounts/{customer.account_no}"):
        r = await client.get(path)
        assert r.status_code == 200, path
        check_page(r, path)
    # the customer cabinet, in a browser of its own
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as cab:
        token = await csrf(cab, "/cabinet/login")
        r = await cab.post(
            "/cabinet/login",
            data={"account_no": customer.account_no, "password": PASSWORD, "csrf_token": token},
        )
        assert r.status_code == 303, r.text
        for path in CABINET_PAGES:
            r = await cab.get(path)
            assert r.status_code == 200, path
            check_page(r, path)
            assert 'src="' + static_url("cabinet.js") + '"' in r.text


async def test_static_files_are_served_with_their_types(client: httpx.AsyncClient) -> None:
    """The moved scripts and styles load (the right type matters: pages send nosniff)."""
    for name, kind in STATIC_FILES.items():
        r = await client.get(static_url(name))
        assert r.status_code == 200, name
        assert r.headers["content-type"].split(";")[0] == kind, r.headers["content-type"]
        assert r.content == (STATIC / name).read_bytes()
    # the address changes with the content, so browsers drop an old cached copy
    assert re.fullmatch(r"/static/cabinet\.js\?v=[0-9a-f]{12}", static_url("cabinet.js"))


def test_the_static_files_are_packaged() -> None:
    """pyproject's package data ships api/static/* (or the installed app has no scripts)."""
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "static/*" in cfg["tool"]["setuptools"]["package-data"]["api"]
    assert {p.name for p in STATIC.iterdir() if not p.name.startswith(".")} == set(STATIC_FILES)


TEMPLATES = sorted(API.rglob("*.html"))


def test_templates_are_found() -> None:
    names = {p.name for p in TEMPLATES}
    assert {"base.html", "cabinet_home.html", "payments_desk.html", "staff_home.html"} <= names


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(API)))
def test_no_template_has_inline_code(path: Path) -> None:
    assert in_template(path.read_text(encoding="utf-8")) == []


def test_no_python_html_has_inline_code() -> None:
    found = []
    for path in sorted(API.rglob("*.py")):
        for line, text in html_strings(path):
            found += [f"{path.relative_to(ROOT)}:{line}: {f}" for f in inline_code(text)]
    assert found == []


@pytest.mark.parametrize(
    ("markup", "kind"),
    [
        ("<script>alert(1)</script>", "inline script"),
        ('<SCRIPT type="module">go()</SCRIPT>', "inline script"),
        ('<button onclick="go()">x</button>', "event handler onclick="),
        ("<body ONLOAD=go()>", "event handler onload="),
        ('<img src=x onerror="go()"/>', "event handler onerror="),
        ('<a href=" JavaScript:go()">x</a>', "javascript: address in href="),
        ('<form action="javascript:go()">', "javascript: address in action="),
        ('<div style="height:5%">', "style attribute"),
        ("<style>p{color:red}</style>", "style block"),
        ('<div{% if a %} onclick="go()"{% endif %}>', "event handler onclick="),
        ('<div style="height:{{ b.height }}%">', "style attribute"),
    ],
)
def test_the_checker_catches(markup: str, kind: str) -> None:
    """The scan can fail: each kind of inline code is found (in Jinja branches too)."""
    assert any(kind in f for f in in_template(markup)), in_template(markup)


def test_the_checker_passes_clean_markup() -> None:
    clean = (
        '<script src="/static/cabinet.js" defer></script><link rel="stylesheet" href="/s.css">'
        '<form action="/x" method="post"><input name="online" value="one=two" class="on">'
        '<p title="onclick=go()">{{ _("Done") }}</p></form>'
    )
    assert in_template(clean) == []


def test_the_python_scan_sees_html_strings(tmp_path: Path) -> None:
    f = tmp_path / "page.py"
    f.write_text(
        '"""<script>a docstring is not a page</script>"""\n'
        "X = '<p onclick=\"go()\">'\n"
        "def page(n: int) -> str:\n"
        "    return f'<div style=\"height:{n}%\">'\n"
        "SQL = 'UPDATE t SET onboarded = true'\n",
        encoding="utf-8",
    )
    found = [(line, inline_code(text)) for line, text in html_strings(f)]
    assert sorted(found) == [
        (2, ["line 1 <p>: event handler onclick="]),
        (4, ["line 1 <div>: style attribute"]),
    ]
