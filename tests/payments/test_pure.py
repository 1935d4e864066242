"""Pure pieces: exact money parsing, the Click signature, Payme errors, account numbers in a
purpose (tables and properties)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.accountno import make_number
from billing.payments import payme
from billing.payments.click import sign
from billing.payments.errors import PaymentsError
from billing.payments.matching import AccountIndex, Candidate, address_in, find_numbers
from billing.payments.money import format_som, som_to_tiyin, tiyin_to_som
from billing.payments.payme import MESSAGES, PaymeError


@pytest.mark.parametrize(
    ("text", "tiyin"),
    [
        ("1", 100),
        ("0.01", 1),
        ("1500.50", 150050),
        ("1 500,50", 150050),
        ("1\u00a0000\u202f000.00", 100000000),
        ("1234.560", 123456),
        ("+7", 700),
        ("125 000,50", 12_500_050),
    ],
)
def test_som_to_tiyin(text: str, tiyin: int) -> None:
    assert som_to_tiyin(text) == tiyin


@pytest.mark.parametrize(
    "text", ["", "abc", "1.005", "1e3", "1e20", "NaN", "Infinity", "inf", "0", "-1", "0x10"]
)
def test_som_to_tiyin_refuses(text: str) -> None:
    with pytest.raises(PaymentsError):
        som_to_tiyin(text)


@given(st.integers(min_value=1, max_value=10**15))
def test_money_round_trip(tiyin: int) -> None:
    assert som_to_tiyin(tiyin_to_som(tiyin)) == tiyin
    assert som_to_tiyin(format_som(tiyin).removesuffix(" so'm")) == tiyin


def test_click_sign_formulas() -> None:
    f = {
        "click_trans_id": "123",
        "service_id": "77",
        "merchant_trans_id": "000000018",
        "merchant_prepare_id": "9",
        "amount": "1000.00",
        "action": "1",
        "sign_time": "2026-11-20 10:00:00",
    }
    expect_prepare = hashlib.md5(
        b"12377S000000018" + b"1000.00" + b"1" + b"2026-11-20 10:00:00"
    ).hexdigest()
    expect_complete = hashlib.md5(
        b"12377S000000018" + b"9" + b"1000.00" + b"1" + b"2026-11-20 10:00:00"
    ).hexdigest()
    assert sign(f, "S", complete=False) == expect_prepare
    assert sign(f, "S", complete=True) == expect_complete


def test_payme_error_shape() -> None:
    body = PaymeError(-31050, "account").body(7)
    assert body["id"] == 7
    assert body["error"]["code"] == -31050
    assert body["error"]["data"] == "account"
    assert set(body["error"]["message"]) == {"ru", "uz", "en"}
    for code in MESSAGES:
        assert all(MESSAGES[code]), code
    for code in (payme.ACCOUNT_NOT_FOUND, payme.ACCOUNT_INVALID, payme.ACCOUNT_CLOSED):
        assert -31099 <= code <= -31050


@given(st.lists(st.integers(min_value=1, max_value=10**8 - 1), min_size=1, max_size=5, unique=True))
def test_every_listed_number_is_found(serials: list[int]) -> None:
    numbers = [make_number(s) for s in serials]
    purpose = "Suv uchun: " + ", ".join(numbers) + " (noyabr)"
    hits = find_numbers(purpose)
    assert [h.number for h in hits] == numbers
    assert all(h.valid for h in hits)


def test_numbers_in_a_purpose_are_cleaned_like_everywhere() -> None:
    """The groups of a number in a transfer's purpose and full-width digits are read by
    billing.accountno.clean, like the account number at the desk, Payme and Click."""
    wide = "".join(chr(0xFF10 + int(d)) for d in "000 000 026" if d != " ")
    hits = find_numbers(f"To'lov 000-000 018 va {wide[:3]} {wide[3:6]} {wide[6:]} uchun")
    assert [(h.number, h.valid) for h in hits] == [("000000018", True), ("000000026", True)]


def test_account_index_prefers_rare_words() -> None:
    cands = [
        Candidate(i, make_number(i), f"Karimov {n}", "Navoiy", str(i))
        for i, n in enumerate(["Anvar", "Bobur", "Dilshod"] * 40, start=1)
    ]
    cands.append(Candidate(500, make_number(500), "Zulfiyaxon Qodirova", "Amir Temur", "7"))
    idx = AccountIndex(cands, common_share=0.05)
    assert len(idx) == 121
    best = idx.candidates("Qodirova Zulfiya to'lov")
    assert best[0].account_id == 500
    # "karimov" and "navoiy" are on every other account: too common to find anyone by
    assert idx.candidates("Karimov Navoiy") == []
    assert address_in("Amir Temur ko'chasi 7-uy", "Amir Temur", "7")
    assert not address_in("Amir Temur ko'chasi 17", "Amir Temur", "7")
    assert not address_in("Navoiy 7", "Amir Temur", "7")
