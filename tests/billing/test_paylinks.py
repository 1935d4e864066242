"""Payment links and account numbers (pure)."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.accountno import check_digit, is_valid, make_number, normalize
from billing.config import BillingConfig, load_billing_config
from billing.errors import AccountNumberError, BillingError
from billing.paylinks import best_link, click_link, payme_link


def test_luhn_known_values() -> None:
    assert make_number(1) == "000000018"
    assert check_digit("7992739871") == 3  # the textbook Luhn example
    assert normalize(" 000-000-018 ") == "000000018"
    with pytest.raises(AccountNumberError, match="check digit"):
        normalize("000000017")
    with pytest.raises(AccountNumberError, match="9 digits"):
        normalize("12ab")


@given(st.integers(1, 10**8 - 1), st.integers(0, 8), st.integers(1, 9))
def test_luhn_detects_single_digit_errors(serial: int, pos: int, bump: int) -> None:
    n = make_number(serial)
    assert is_valid(n)
    wrong = n[:pos] + str((int(n[pos]) + bump) % 10) + n[pos + 1 :]
    assert not is_valid(wrong)


@given(st.integers(1, 10**8 - 1), st.integers(0, 7))
def test_luhn_detects_adjacent_swaps(serial: int, pos: int) -> None:
    n = make_number(serial)
    a, b = n[pos], n[pos + 1]
    if a == b or {a, b} == {"0", "9"}:
        return
    assert not is_valid(n[:pos] + b + a + n[pos + 2 :])


def test_payme_link(cfg: BillingConfig) -> None:
    link = payme_link(cfg, "000000018", 1_980_050)
    base, payload = link.rsplit("/", 1)
    assert base == "https://checkout.example.test"
    assert base64.b64decode(payload).decode() == (
        "m=5e730e8e0b852a417aa49ceb;ac.account=000000018;a=1980050"
    )


def test_click_link(cfg: BillingConfig) -> None:
    parts = urlsplit(click_link(cfg, "000000018", 1_980_050))
    q = parse_qs(parts.query)
    assert parts.netloc == "click.example.test"
    assert q == {
        "service_id": ["1234"],
        "merchant_id": ["5678"],
        "amount": ["19800.50"],
        "transaction_param": ["000000018"],
    }


def test_links_need_configuration() -> None:
    bare = load_billing_config()
    assert best_link(bare, "000000018", 100) is None
    with pytest.raises(BillingError, match="PAYME_MERCHANT_ID"):
        payme_link(bare, "000000018", 100)
    with pytest.raises(AccountNumberError):
        payme_link(
            load_billing_config(payme_merchant_id="m", payme_checkout_url="https://x.test"),
            "000000019",
            100,
        )
