"""Shared pieces of the server-rendered pages: templates, language, cookies, CSRF. (The login
pages are :mod:`api.web.login`.)"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.deps import (
    CSRF_COOKIE,
    CSRF_FIELD,
    REFRESH_COOKIE,
    SESSION_COOKIE,
    get_state,
)
from api.i18n import (
    LANG_COOKIE,
    LANGUAGES,
    format_som,
    gettext_for,
    request_language,
)
from api.security import ACCESS_TTL, csrf_ok, make_csrf_token

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STATIC = Path(__file__).resolve().parent.parent / "static"
"""The pages' style sheet and scripts, served at /static (api/app.py mounts it)."""

env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt_date(value: date | datetime | None) -> str:
    if value is None:
        return ""
    return value.strftime("%d.%m.%Y")


def _fmt_period(value: date | None) -> str:
    return "" if value is None else value.strftime("%m.%Y")


@cache
def static_url(name: str) -> str:
    """The address of a file in api/static, with a digest of its content: a browser keeps
    its cached copy only until the file changes (after an upgrade it fetches the new one)."""
    digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
    return f"/static/{name}?v={digest}"


env.filters["som"] = format_som
env.filters["day"] = _fmt_date
env.filters["period"] = _fmt_period
env.globals["static_url"] = static_url


def language(request: Request) -> str:
    return request_language(request.query_params.get("lang"), request.cookies)


def csrf_token(request: Request) -> tuple[str, bool]:
    """The CSRF token of this browser (from its cookie), or a new one (True: set cookie)."""
    st = get_state(request)
    cookie = request.cookies.get(CSRF_COOKIE)
    if cookie and csrf_ok(st.secret, cookie, cookie):
        return cookie, False
    return make_csrf_token(st.secret), True


def form_csrf_ok(request: Request, form_value: str | None) -> bool:
    return csrf_ok(get_state(request).secret, request.cookies.get(CSRF_COOKIE), form_value)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page in the visitor's language, with the CSRF token and language links."""
    lang = language(request)
    tr = gettext_for(lang)
    token, new_token = csrf_token(request)
    base_query = {k: v for k, v in request.query_params.items() if k != "lang"}
    links = [
        {
            "code": lg.code,
            "label": lg.label,
            "href": request.url.path + "?" + urlencode({**base_query, "lang": lg.code}),
            "current": lg.code == lang,
        }
        for lg in LANGUAGES
    ]
    html_lang = next(lg.html_lang for lg in LANGUAGES if lg.code == lang)
    body = env.get_template(template).render(
        _=tr.gettext,
        lang=lang,
        html_lang=html_lang,
        languages=links,
        csrf_field=CSRF_FIELD,
        csrf_token=token,
        request=request,
        **context,
    )
    resp = html_page(request, body, status_code, token, new_token=new_token)
    st = get_state(request)
    if request.query_params.get("lang") == lang:
        set_cookie(resp, LANG_COOKIE, lang, secure=st.secure_cookies, max_age=365 * 86400)
    return resp


PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
"""Content-Security-Policy of every web page. Scripts and styles come only from files on this
site (api/static): no inline script, no event-handler attribute, no javascript: address, no
style block or style attribute runs, so markup injected into a page cannot execute. No
plug-ins, no <base> rewriting, no framing by other sites, forms post only to this site."""


def html_page(
    request: Request, body: str, status_code: int, csrf: str, *, new_token: bool
) -> HTMLResponse:
    """A rendered page with the headers every page has (not cached, PAGE_CSP) and, when the
    token is new, the CSRF cookie its forms need."""
    resp = HTMLResponse(body, status_code=status_code)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Content-Security-Policy"] = PAGE_CSP
    if new_token:
        st = get_state(request)
        set_cookie(resp, CSRF_COOKIE, csrf, secure=st.secure_cookies, max_age=86400)
    return resp


def set_cookie(resp: Response, name: str, value: str, *, secure: bool, max_age: int) -> None:
    """Every cookie is HttpOnly and SameSite=Lax; Secure in production (served over https)."""
    resp.set_cookie(
        name, value, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/"
    )


def set_session(resp: Response, request: Request, access: str, refresh: str) -> None:
    st = get_state(request)
    set_cookie(
        resp,
        SESSION_COOKIE,
        access,
        secure=st.secure_cookies,
        max_age=int(ACCESS_TTL.total_seconds()),
    )
    set_cookie(resp, REFRESH_COOKIE, refresh, secure=st.secure_cookies, max_age=14 * 86400)


def clear_session(resp: Response) -> None:
    resp.delete_cookie(SESSION_COOKIE, path="/")
    resp.delete_cookie(REFRESH_COOKIE, path="/")


def safe_next(value: str | None, default: str) -> str:
    """Only local paths are followed after a login (no open redirect)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default
