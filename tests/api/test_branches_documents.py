"""A branch's documents carry its requisites (issue 20): the cashier's receipt and the
invoice print the account's branch's name and STIR; a document of a branch without its
requisites is refused, naming what is missing and the command that sets it, in the language
the document or page was asked in."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from billing import branches as br
from tests.api import test_branches_walk as walk
from tests.api.test_branches_walk import World, bearer_of, full_app, readable

world = walk.world
"""The two branches of the walk test (its module-scoped fixture, shared)."""


@pytest.fixture
async def client(db_url: str, world: World) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = full_app(db_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


@pytest.fixture
def b_without_mfo(db_url: str, world: World) -> Iterator[None]:
    """Branch B with its MFO and legal name cleared, for one test."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE branches SET mfo = '', legal_name = '' WHERE id = %s", (world.b.branch.id,)
        )
    try:
        yield
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE branches SET mfo = '00444', legal_name = %s WHERE id = %s",
                (f"{world.b.branch.name} suv ta'minoti", world.b.branch.id),
            )


async def test_receipts_and_invoices_carry_the_branchs_requisites(
    client: httpx.AsyncClient, world: World
) -> None:
    for side, user, branch_id, name, inn, other in (
        (
            world.a,
            world.a_admin,
            world.a.branch.id,
            "Aurgut filiali suv ta'minoti",
            "301111111",
            "Bpayariq",
        ),
        (world.b, world.regional, None, "Bpayariq filiali suv ta'minoti", "302222222", "Aurgut"),
    ):
        h = bearer_of(user, branch_id)
        r = await client.get(f"/api/v1/payments/cashier/receipts/{side.receipt}.pdf", headers=h)
        assert r.status_code == 200, r.text
        text = readable(r)
        assert name in text and inn in text.replace(" ", ""), text
        assert other not in text
        r = await client.get(f"/api/v1/invoices/{side.invoice_id}.pdf", headers=h)
        assert r.status_code == 200, r.text
        text = readable(r)
        assert name in text and inn in text.replace(" ", ""), text
        assert other not in text


@pytest.mark.usefixtures("b_without_mfo")
async def test_documents_of_a_branch_without_requisites_are_refused(
    client: httpx.AsyncClient, world: World
) -> None:
    h = bearer_of(world.regional, None)
    # the invoice, in the language it was asked in
    r = await client.get(f"/api/v1/invoices/{world.b.invoice_id}.pdf?lang=ru", headers=h)
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "branch_requisites"
    detail = r.json()["detail"]
    assert "Документы филиала BPAY" in detail, detail
    assert "юридическое наименование, МФО" in detail, detail
    assert "suvnet branches set BPAY" in detail
    r = await client.get(f"/api/v1/invoices/{world.b.invoice_id}.pdf?lang=uz", headers=h)
    assert r.status_code == 409
    assert "yuridik nomi, MFO ko'rsatilmagan" in r.json()["detail"]
    # the receipt, in the page's language
    url = f"/api/v1/payments/cashier/receipts/{world.b.receipt}.pdf"
    r = await client.get(url, headers={**h, "Cookie": "suvnet_lang=en"})
    assert r.status_code == 409, r.text
    assert r.json()["detail"] == (
        "The documents of branch BPAY (Bpayariq filiali) cannot be made: it has no legal "
        "name, MFO. An administrator sets them with: suvnet branches set BPAY"
    )
    # branch A's documents are not affected
    r = await client.get(f"/api/v1/invoices/{world.a.invoice_id}.pdf", headers=h)
    assert r.status_code == 200


@pytest.fixture
def b_with_payme_desk(db_url: str, world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Payme configured for the utility (merchant m-utility), and branch B with its own cash
    desk (merchant m-bpay)."""
    from billing.config import get_billing_config

    monkeypatch.setenv("SUVNET_BILLING_PAYME_MERCHANT_ID", "m-utility")
    monkeypatch.setenv("SUVNET_BILLING_PAYME_CHECKOUT_URL", "https://checkout.example.test")
    get_billing_config.cache_clear()
    with psycopg.connect(db_url) as conn:
        br.set_contract(conn, "BPAY", "payme", merchant_id="m-bpay", secret="k-bpay")
        conn.commit()
    try:
        yield
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("DELETE FROM branch_payment_contracts")
        monkeypatch.undo()
        get_billing_config.cache_clear()


def _merchant(link: str) -> str:
    raw = base64.b64decode(link.rstrip("/").rsplit("/", 1)[1]).decode()
    return dict(part.split("=", 1) for part in raw.split(";"))["m"]


@pytest.mark.usefixtures("b_with_payme_desk")
async def test_payment_links_go_to_the_branchs_own_merchant(
    client: httpx.AsyncClient, world: World, db_url: str
) -> None:
    """A customer of a branch with its own Payme cash desk pays into that desk (whose
    callbacks serve only that branch's accounts): the cabinet's Pay button and the slip's
    link name its merchant; a customer of a branch without one pays the utility's."""
    from billing.config import get_billing_config
    from billing.documents import slip_data
    from billing.paylinks import best_link

    for side, merchant in ((world.b, "m-bpay"), (world.a, "m-utility")):
        r = await client.get(
            "/cabinet/pay/payme", headers=bearer_of(side.customer, None), follow_redirects=False
        )
        assert r.status_code == 303, r.text
        assert _merchant(r.headers["location"]) == merchant
        with psycopg.connect(db_url) as conn:
            slip = slip_data(conn, side.account_id, walk.NOV, get_billing_config())
            assert slip.pay_link is not None and _merchant(slip.pay_link) == merchant
            own = br.account_contracts(conn, side.number)
        link = best_link(get_billing_config(), side.number, 100, own)
        assert link is not None and _merchant(link) == merchant
