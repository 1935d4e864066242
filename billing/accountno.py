"""Account numbers: 8-digit serial + 1 Luhn check digit (9 digits in all).

The check digit lets bank-statement matching and the Payme/Click ``account`` field reject a
mistyped number before looking it up. It is the Luhn (mod 10) algorithm, the same one used on
payment cards, so that it can be re-implemented anywhere in a few lines:

1. Take the 8 serial digits. Starting from the rightmost digit and moving left, double every
   second digit beginning with the rightmost one; when a doubled value exceeds 9, subtract 9.
2. Add all the digits up (doubled or not).
3. The check digit is ``(10 - total % 10) % 10``; it is appended on the right.

A full number is valid when the Luhn sum over all 9 digits is a multiple of 10. Luhn catches
every single-digit mistake and every swap of two adjacent digits except 09 <-> 90.

Example: serial ``00000001`` -> check digit 8 -> account ``000000018``.

Every place that takes a number typed by a person or sent by a bank or a payment provider
(the Payme and Click callbacks, the cashier desk, imports, the command line) cleans it with
:func:`clean` and checks it with :func:`normalize` (or :func:`is_valid`), so a number is
accepted or refused the same way everywhere.
"""

from __future__ import annotations

import unicodedata

from billing.errors import AccountNumberError

SERIAL_DIGITS = 8
NUMBER_DIGITS = SERIAL_DIGITS + 1


def _luhn_sum(digits: str, *, double_rightmost: bool) -> int:
    total = 0
    for pos, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if (pos % 2 == 0) == double_rightmost:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total


def check_digit(serial: str) -> int:
    """The Luhn check digit of a string of decimal digits."""
    if not serial.isascii() or not serial.isdigit():
        raise AccountNumberError(f"account serial must be digits only, got {serial!r}")
    return (10 - _luhn_sum(serial, double_rightmost=True) % 10) % 10


def make_number(serial: int) -> str:
    """The 9-digit account number for a serial (1 ... 99,999,999)."""
    if not 0 < serial < 10**SERIAL_DIGITS:
        raise AccountNumberError(f"account serial {serial} out of range 1..{10**SERIAL_DIGITS - 1}")
    body = f"{serial:0{SERIAL_DIGITS}d}"
    return body + str(check_digit(body))


def is_valid(number: str) -> bool:
    """True when ``number`` is 9 digits with a correct check digit."""
    if len(number) != NUMBER_DIGITS or not number.isascii() or not number.isdigit():
        return False
    return _luhn_sum(number, double_rightmost=False) % 10 == 0


# dropped between the digits: dashes (Pd), spaces (Zs) and invisible format characters (Cf:
# soft hyphen, zero-width space); the minus sign is a math symbol (Sm) and listed apart
_DROP_CATEGORIES = frozenset({"Pd", "Zs", "Cf"})
_MINUS_SIGN = "\u2212"


def clean(text: str) -> str:
    """The number as typed, without the spaces and dashes people and banks put in it.

    Full-width digits become ASCII digits (Unicode NFKC). Spaces of every kind (also the
    no-break and thin spaces of bank files), line breaks, hyphens and dashes of every kind
    (also the minus sign) and invisible characters (soft hyphen, zero-width space) are
    dropped. Nothing else is changed: letters stay, also the Latin and Cyrillic letters that
    look like digits (O, О, З, l), because guessing a digit could pay into someone else's
    account. :func:`normalize` then refuses such a number. ``clean`` does not validate.
    """
    text = unicodedata.normalize("NFKC", text)
    return "".join(
        ch
        for ch in text
        if not (ch.isspace() or ch == _MINUS_SIGN or unicodedata.category(ch) in _DROP_CATEGORIES)
    )


def normalize(text: str) -> str:
    """:func:`clean` the number and validate it; raise a clear error if it is bad."""
    cleaned = clean(text)
    if len(cleaned) != NUMBER_DIGITS or not cleaned.isascii() or not cleaned.isdigit():
        raise AccountNumberError(f"account number must be {NUMBER_DIGITS} digits, got {text!r}")
    if not is_valid(cleaned):
        raise AccountNumberError(f"account number {cleaned} has a wrong check digit (mistyped?)")
    return cleaned
