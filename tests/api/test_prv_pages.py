"""The back office's PRV pages: the list and each PRV's page (mode, limits, profile, live
critical-point pressure and setpoint) under the strict Content-Security-Policy, in every
language; the forms are role-checked, CSRF-protected and audited, and a bad configuration is
refused with its field while nothing changes. In real Chromium in test_prv_browser.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

import api.i18n
from api.app import create_app
from api.errors import InvalidError
from api.i18n import LANGUAGES
from api.security import Role
from api.web import prv_pages
from api.web.prv_pages import config_from_form, parse_profile, profile_text
from suvnet.prvcontrol import ControlConfig
from tests.api.conftest import PASSWORD, Clock, User, api_settings
from tests.api.test_csp import check_page, csrf
from tests.api.test_prv_api import village  # noqa: F401 - the module's site fixture
from tests.test_i18n_complete import PSEUDO, english, page_text

PAGE = "/staff/prv/prv-1-ctl"


def with_prv_pages(app: FastAPI) -> FastAPI:
    """The PRV pages, until api/app.py lists them (the lead adds the router)."""
    if not any(getattr(r, "path", "").startswith("/staff/prv") for r in app.routes):
        app.include_router(prv_pages.router)
    app.state.suvnet.command_timeout_s = 0.3  # no gateway answers in these tests
    return app


@pytest.fixture
def app(db_url: str, mqtt_url: str, topic_root: str, clock: Clock) -> FastAPI:
    return with_prv_pages(create_app(api_settings(db_url, mqtt_url, topic_root), clock=clock))


async def login(client: httpx.AsyncClient, username: str) -> None:
    token = await csrf(client, "/staff/login")
    r = await client.post(
        "/staff/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 303, r.text


def _config(db_url: str) -> Any:
    with psycopg.connect(db_url) as c:
        return c.execute("SELECT config, source FROM prv_controls").fetchone()


async def test_the_pages_show_mode_limits_and_live_values_in_every_language(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    village: None,  # noqa: F811
) -> None:
    await login(client, "u_cashier")  # any staff member may look
    r = await client.get("/staff/prv?lang=en")
    assert r.status_code == 200
    check_page(r, "/staff/prv")
    assert 'href="/staff/prv/prv-1-ctl"' in r.text and "Critical point" in r.text
    r = await client.get(PAGE + "?lang=en")
    check_page(r, PAGE)
    text = r.text
    assert re.search(r'id="live-cp">2\.21 bar', text)
    assert re.search(r'id="live-setpoint">3\.50 bar', text)
    assert "Critical point within its deadband" in text  # ctl_reason 0
    assert 'id="mode">Critical point' in text and 'id="limits">2.0-4.5 bar' in text
    assert "Setpoint range of the device 0.5-8.0 bar" in text
    assert "Tashkent time" in text
    assert 'id="to-hand"' not in text and 'id="config-form"' not in text  # a cashier only looks
    for lang in LANGUAGES:
        r = await client.get(f"{PAGE}?lang={lang.code}")
        assert r.status_code == 200, lang.code
        check_page(r, f"{PAGE}?lang={lang.code}")
    r = await client.get(PAGE + "?lang=ru")
    assert "Диктующая точка" in r.text and "Регуляторы давления" in r.text


async def test_customers_may_not_see_them(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    village: None,  # noqa: F811
) -> None:
    r = await client.get(PAGE)
    assert r.status_code in (303, 401)  # not logged in
    token = await csrf(client, "/cabinet/login")
    customer = users[Role.CUSTOMER]
    r = await client.post(
        "/cabinet/login",
        data={"account_no": customer.account_no, "password": PASSWORD, "csrf_token": token},
    )
    assert r.status_code == 303
    r = await client.get(PAGE)
    assert r.status_code == 403


async def test_the_form_changes_checks_and_audits(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    village: None,  # noqa: F811
    db_url: str,
) -> None:
    await login(client, "u_technician")
    r = await client.get(PAGE + "?lang=en")
    assert 'id="config-form"' in r.text and 'id="to-hand"' in r.text
    token = await csrf(client, PAGE)
    before = _config(db_url)
    form = {
        "csrf_token": token, "mode": "time", "min_bar": "2,0", "max_bar": "4.5",
        "safe_bar": "3.9", "setpoint_bar": "", "target_bar": "2", "margin_bar": "0.25",
        "deadband_bar": "0.1", "max_step_bar": "0.3", "max_rate_bar_per_min": "0.1",
        "profile": "00:00-06:00 2.6\n06:00-23:00 3.4\n23:00-24:00 2.6",
    }  # fmt: skip
    # a gap in the profile: refused with its field, nothing changes
    bad = {**form, "profile": "00:00-06:00 2.6\n07:00-24:00 3.4"}
    r = await client.post(f"{PAGE}/config", data=bad)
    assert r.status_code == 303
    assert "error=" in r.headers["location"]
    page = await client.get(r.headers["location"] + "&lang=en")
    assert "Not changed:" in page.text
    assert "profile[1].from: leaves mon 06:00-07:00 without a setpoint" in page.text
    assert _config(db_url) == before
    # without the form's token: refused
    r = await client.post(f"{PAGE}/config", data={**form, "csrf_token": "forged"})
    assert r.status_code == 403
    assert _config(db_url) == before
    # a good one: stored as the API's, audited, sent (no gateway answers here: timeout)
    r = await client.post(f"{PAGE}/config", data=form)
    assert r.status_code == 303 and "status=timeout" in r.headers["location"], r.headers
    config, source = _config(db_url)
    assert source == "api" and config["mode"] == "time"
    assert config["profile"][1] == {
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "from": "06:00", "to": "23:00", "setpoint_bar": 3.4,
    }  # fmt: skip
    assert config["critical_point"]["margin_bar"] == 0.25  # kept, with the sensors
    assert config["critical_point"]["sensors"] == [{"device": "pt-s6", "point": "pressure_bar"}]
    with psycopg.connect(db_url) as c:
        audit = c.execute(
            "SELECT actor, before->>'mode', after->>'mode' FROM audit_log "
            "WHERE action = 'prv_control' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        status = c.execute(
            "SELECT status FROM gateway_commands WHERE op = 'control' ORDER BY sent_at DESC LIMIT 1"
        ).fetchone()
    assert audit == ("u_technician", "critical_point", "time")
    assert status == ("timeout",)
    page = await client.get(r.headers["location"] + "&lang=en")
    assert "the gateway did not answer" in page.text
    assert "06:00-23:00 3.4" in page.text  # the profile as the form shows it


async def test_a_dispatcher_switches_but_does_not_configure(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    village: None,  # noqa: F811
    db_url: str,
) -> None:
    await login(client, "u_dispatcher")
    r = await client.get(PAGE + "?lang=en")
    assert 'id="config-form"' not in r.text and 'id="push"' in r.text
    token = await csrf(client, PAGE)
    r = await client.post(f"{PAGE}/config", data={"csrf_token": token, "mode": "fixed"})
    assert r.status_code == 403
    r = await client.post(f"{PAGE}/auto", data={"csrf_token": token, "auto": "0"})
    assert r.status_code == 303
    config, _ = _config(db_url)
    assert config["auto"] is False
    page = await client.get(PAGE + "?lang=en")
    assert 'id="to-auto"' in page.text and 'id="auto">hand' in page.text


def test_the_profile_form_round_trips() -> None:
    steps = parse_profile(
        "sat,sun 00:00-24:00 2.8\nmon-fri 00:00-06:00 2,5\nmon-fri 06:00-24:00 3.5"
    )
    assert steps[0] == {"from": "00:00", "to": "24:00", "setpoint_bar": 2.8,
                        "days": ["sat", "sun"]}  # fmt: skip
    assert steps[1]["days"] == ["mon", "tue", "wed", "thu", "fri"]
    cfg = ControlConfig.model_validate(
        {"mode": "time", "min_bar": 2, "max_bar": 4, "profile": steps}
    )
    assert parse_profile(profile_text(cfg.wire()["profile"])) == [
        {**s, "days": s.get("days", ["mon", "tue", "wed", "thu", "fri", "sat", "sun"])}
        if len(s.get("days", [])) == 7 else s
        for s in steps
    ]  # fmt: skip
    for bad in ("06:00 3.2", "xyz 00:00-24:00 2", "00:00-24:00 lots"):
        with pytest.raises(InvalidError, match=r"profile|number"):
            parse_profile(bad)
    with pytest.raises(InvalidError, match="sensors are set in the site file"):
        config_from_form(None, {"mode": "critical_point", "min_bar": "2", "max_bar": "4"})


def test_the_template_exists() -> None:
    assert (Path(prv_pages.__file__).parents[1] / "templates" / "staff_prv.html").is_file()


async def test_no_english_outside_the_catalogs(
    client: httpx.AsyncClient,
    users: dict[Role, User],
    village: None,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pseudo-locale check of tests/test_i18n_complete.py on both PRV pages, as a
    technician sees them (every form shown)."""
    monkeypatch.setattr(api.i18n, "translations", lambda code: PSEUDO)
    await login(client, "u_technician")
    for path in ("/staff/prv", PAGE, PAGE + "?status=refused&reason=x&error=y"):
        r = await client.get(path)
        assert r.status_code == 200, path
        # the staff's user names (u_technician, u_dispatcher: who changed it last) are data
        assert english(page_text(r.text)) - {"technician", "dispatcher"} == set(), path
