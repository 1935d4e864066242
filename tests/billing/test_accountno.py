"""Account numbers as people and banks write them: one cleaning rule (billing.accountno.clean)
for the Payme and Click callbacks, the cashier desk, imports and the command line.

The pure cases need no database; the last tests look the account up in the real one and take
a payment at the desk with the number written in different ways.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from billing.accountno import check_digit, clean, is_valid, make_number, normalize
from billing.accounts import Address, create_account, find_account
from billing.errors import AccountNumberError
from billing.payments.cashier import take_payment
from billing.payments.errors import CashierError
from tests.billing.conftest import NOW

# serial 12345678: doubling from the right 8→16→7, 6→12→3, 4→8, 2→4; 7+7+3+5+8+3+4+1 = 38,
# so the check digit is (10 - 8) % 10 = 2
GOOD = "123456782"

# (as typed, after clean, after normalize)
ACCEPTED = [
    ("123456782", "123456782", GOOD),
    (" 123456782 ", "123456782", GOOD),
    ("123 456 782", "123456782", GOOD),
    ("123-456-782", "123456782", GOOD),
    ("\t123456782\r\n", "123456782", GOOD),
    ("123\u00a0456\u00a0782", "123456782", GOOD),  # no-break spaces (bank files, Excel)
    ("123\u202f456\u202f782", "123456782", GOOD),  # narrow no-break spaces
    ("123\u2013456\u2014782", "123456782", GOOD),  # en and em dash (word processors)
    ("123\u2212456782", "123456782", GOOD),  # minus sign
    ("1234\u00ad56782", "123456782", GOOD),  # soft hyphen (invisible)
    ("1234\u200b56782", "123456782", GOOD),  # zero-width space (copied from a web page)
    ("\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff12", "123456782", GOOD),  # full width
    ("000000018", "000000018", "000000018"),  # leading zeros are part of the number
    ("000 000 018", "000000018", "000000018"),
]

# (as typed, after clean, the error)
REFUSED = [
    ("", "", "must be 9 digits"),
    ("   ", "", "must be 9 digits"),
    ("18", "18", "must be 9 digits"),  # leading zeros are not added
    ("00000001", "00000001", "must be 9 digits"),  # a serial, without its check digit
    ("0000000018", "0000000018", "must be 9 digits"),  # one zero too many
    ("123456783", "123456783", "wrong check digit"),  # last digit mistyped
    ("123456728", "123456728", "wrong check digit"),  # two neighbours swapped
    ("223456782", "223456782", "wrong check digit"),  # first digit mistyped
    ("O00000018", "O00000018", "must be 9 digits"),  # Latin letter O for a zero
    ("\u041e00000018", "\u041e00000018", "must be 9 digits"),  # Cyrillic letter О
    ("00000001\u0417", "00000001\u0417", "must be 9 digits"),  # Cyrillic З for a 3
    ("l23456782", "l23456782", "must be 9 digits"),  # Latin l for a 1
    ("\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0662", None, "must be 9 digits"),
    ("123.456.782", "123.456.782", "must be 9 digits"),  # dots are not separators here
    ("+123456782", "+123456782", "must be 9 digits"),
]


@pytest.mark.parametrize(("typed", "cleaned", "number"), ACCEPTED)
def test_accepted_forms(typed: str, cleaned: str, number: str) -> None:
    assert clean(typed) == cleaned
    assert normalize(typed) == number
    assert is_valid(number)


@pytest.mark.parametrize(("typed", "cleaned", "message"), REFUSED)
def test_refused_forms(typed: str, cleaned: str | None, message: str) -> None:
    if cleaned is not None:
        assert clean(typed) == cleaned  # letters are kept, never guessed into digits
    with pytest.raises(AccountNumberError, match=message):
        normalize(typed)
    assert not is_valid(clean(typed))


def test_check_digit_by_hand() -> None:
    assert check_digit("12345678") == 2
    assert check_digit("00000001") == 8
    assert make_number(12345678) == GOOD
    assert make_number(1) == "000000018"


ADDR = Address("Toshkent viloyati", "Chinoz tumani", "Raqam MFY", "Navoiy ko'chasi", "7")


@pytest.fixture
def account(conn: psycopg.Connection[Any]) -> tuple[int, str]:
    acc = create_account(conn, kind="household", name="Raqamov R.", address=ADDR, now=NOW)
    conn.commit()
    return acc


def test_find_account_cleans_the_number(
    conn: psycopg.Connection[Any], account: tuple[int, str]
) -> None:
    acc_id, number = account
    spaced = f"{number[:3]} {number[3:6]}-{number[6:]}"
    found = find_account(conn, spaced)
    assert found is not None
    assert (found.id, found.number) == (acc_id, number)
    assert find_account(conn, "\u041e" + number[1:]) is None  # a look-alike letter: no guess
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert find_account(conn, wrong) is None


def test_cashier_takes_the_number_as_typed(
    conn: psycopg.Connection[Any], account: tuple[int, str]
) -> None:
    """The desk finds the account written with dashes, and a double submit of the same form
    with the number written with spaces returns the first receipt instead of paying twice."""
    acc_id, number = account
    first = take_payment(
        conn,
        account_number=f"{number[:3]}-{number[3:6]}-{number[6:]}",
        amount_tiyin=150_000,
        method="cash",
        cashier="Kassir K.",
        now=NOW,
        request_key="accountno-form-1",
    )
    again = take_payment(
        conn,
        account_number=f" {number[:3]} {number[3:6]} {number[6:]} ",
        amount_tiyin=150_000,
        method="cash",
        cashier="Kassir K.",
        now=NOW,
        request_key="accountno-form-1",
    )
    conn.commit()
    assert (first.account_number, first.created) == (number, True)
    assert (again.receipt_no, again.created) == (first.receipt_no, False)
    paid = conn.execute(
        "SELECT count(*), sum(amount_tiyin) FROM ledger WHERE account_id = %s AND kind = 'payment'",
        (acc_id,),
    ).fetchone()
    assert paid == (1, -150_000)
    with pytest.raises(CashierError, match="no account"):
        take_payment(
            conn,
            account_number="\u041e" + number[1:],
            amount_tiyin=150_000,
            method="cash",
            cashier="Kassir K.",
            now=NOW,
        )
