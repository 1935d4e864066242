"""The role matrix: every role against every endpoint group, allowed or 403.

The expected table is written out here on purpose (not derived from api.security), so a
change of a role set in the code shows up as a failing test.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api.routes import reports
from api.security import REPORT_ROLES, Role
from api.web import staff_reports
from tests.api.conftest import User, bearer

ALL = {r.value for r in Role}
STAFF = ALL - {"customer"}
BILLING = {"admin", "billing_clerk", "cashier", "accountant", "lawyer", "viewer"}
DESK = {"admin", "cashier", "accountant"}  # who may take payments at the cashier desk

# group: (method, path, json body, roles allowed)
MATRIX: dict[str, tuple[str, str, dict[str, Any] | None, set[str]]] = {
    "me": ("GET", "/api/v1/auth/me", None, ALL),
    "registry_read": ("GET", "/api/v1/gateways", None, STAFF),
    "network": ("GET", "/api/v1/network.geojson", None, STAFF),
    "readings": ("GET", "/api/v1/points?limit=5", None, STAFF),
    "device_state": ("GET", "/api/v1/device-state", None, STAFF),
    "registry_write": ("POST", "/api/v1/gateways", {"code": "{role}-gw"}, {"admin", "technician"}),
    "commands": (
        "POST",
        "/api/v1/gateways/nogw/commands",
        {"device": "nodev", "op": "write", "point": "sp", "value": 2.5},
        {"admin", "dispatcher", "technician"},
    ),
    "users": ("GET", "/api/v1/users", None, {"admin"}),
    "audit": ("GET", "/api/v1/audit", None, {"admin", "accountant"}),
    "customer_codes": (
        "POST",
        "/api/v1/customers/000000018/code",
        None,
        {"admin", "billing_clerk"},
    ),
    "billing_read": ("GET", "/api/v1/accounts?limit=5", None, BILLING),
    "ledger": ("GET", "/api/v1/accounts/{account}/ledger", None, BILLING),
    "balances": ("GET", "/api/v1/balances", None, BILLING),
    "invoices": ("GET", "/api/v1/invoices", None, BILLING),
    "payments": ("GET", "/api/v1/payments", None, BILLING),
    "cash_payment": (
        "POST",
        "/api/v1/accounts/{account}/payments",
        {"amount_tiyin": 100, "receipt": "{role}-r"},
        {"admin", "cashier", "accountant"},
    ),
    "billing_runs": ("GET", "/api/v1/billing-runs", None, BILLING),
    "start_billing_run": (
        "POST",
        "/api/v1/billing-runs",
        {"period": "2020-01", "dry_run": True},
        {"admin", "billing_clerk"},
    ),
    "customer_self": ("GET", "/api/v1/me/account", None, {"customer"}),
    "cabinet": ("GET", "/cabinet/", None, {"customer"}),
    "back_office": ("GET", "/staff/", None, STAFF),
    # the one cashier desk (/staff/cashier only redirects to it, see below)
    "cashier_desk": ("GET", "/staff/payments/desk", None, DESK),
    "desk_take": ("POST", "/staff/payments/desk", None, DESK),
    "desk_void": ("POST", "/staff/payments/desk/void", None, DESK),
    "account_card": (
        "GET",
        "/staff/accounts/{account}",
        None,
        {"admin", "billing_clerk", "cashier", "accountant", "lawyer", "viewer"},
    ),
}


@pytest.mark.parametrize("group", sorted(MATRIX))
async def test_role_matrix(client: httpx.AsyncClient, users: dict[Role, User], group: str) -> None:
    method, path, body, allowed = MATRIX[group]
    account = users[Role.CUSTOMER].account_no
    outcomes: dict[str, int] = {}
    for role, user in users.items():
        p = path.replace("{account}", str(account))
        b = (
            None
            if body is None
            else {
                k: v.replace("{role}", role.value.replace("_", "-")) if isinstance(v, str) else v
                for k, v in body.items()
            }
        )
        r = await client.request(method, p, json=b, headers=bearer(user))
        outcomes[role.value] = r.status_code
    denied = {role for role, status in outcomes.items() if status == 403}
    assert denied == ALL - allowed, outcomes
    # allowed roles got through authorisation and did not crash
    assert all(outcomes[r] < 500 and outcomes[r] != 401 for r in allowed), outcomes


@pytest.mark.parametrize("group", sorted(MATRIX))
async def test_no_token_is_refused(client: httpx.AsyncClient, group: str) -> None:
    method, path, body, _ = MATRIX[group]
    r = await client.request(method, path.replace("{account}", "000000018"), json=body)
    if path.startswith("/api/"):
        assert r.status_code == 401
        assert r.json()["error"] == "not_authenticated"
    else:  # pages send the browser to their login page
        assert r.status_code == 303
        assert "/login" in r.headers["location"]


async def test_old_desk_address_redirects(
    client: httpx.AsyncClient, users: dict[Role, User]
) -> None:
    """/staff/cashier (the old desk) sends every caller to the one desk, which then lets in
    exactly the desk roles: the redirect opens nothing."""
    r = await client.get("/staff/cashier?lang=ru")
    assert r.status_code == 308
    assert r.headers["location"] == "/staff/payments/desk?lang=ru"
    outcomes: dict[str, int] = {}
    for role, user in users.items():
        r = await client.get("/staff/cashier", headers=bearer(user), follow_redirects=True)
        assert r.url.path == "/staff/payments/desk"
        outcomes[role.value] = r.status_code
    assert {role for role, status in outcomes.items() if status == 200} == DESK, outcomes
    assert {role for role, status in outcomes.items() if status == 403} == ALL - DESK, outcomes
    # a form sent from an old desk page is not re-posted: the desk says nothing was taken
    r = await client.post(
        "/staff/cashier",
        data={"number": "000000018", "amount": "100", "receipt": "K-1"},
        headers=bearer(users[Role.CASHIER]),
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/staff/payments/desk?moved=1"
    page = await client.get(r.headers["location"] + "&lang=en", headers=bearer(users[Role.CASHIER]))
    assert page.status_code == 200
    assert "The payment sent from the old page was not taken" in page.text


async def test_health_needs_no_login(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": True}


async def test_garbage_token_is_401(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/gateways", headers={"Authorization": "Bearer abc.def.ghi"})
    assert r.status_code == 401
    r = await client.get("/api/v1/gateways", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert r.status_code == 401


def test_report_roles_have_one_definition() -> None:
    """The report page (api.web.staff_reports) and the report API (api.routes.reports) read
    the same table of who may read which report: api.security.REPORT_ROLES."""
    assert vars(staff_reports)["REPORT_ROLES"] is REPORT_ROLES
    assert vars(reports)["REPORT_ROLES"] is REPORT_ROLES
