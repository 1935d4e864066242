"""Exact money parsing: text (so'm with up to 2 decimals) to integer tiyin. No floats."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from billing.payments.errors import PaymentsError
from suvnet import numfmt

MAX_TIYIN = 2**62


def som_to_tiyin(text: str, *, allow_zero: bool = False, allow_negative: bool = False) -> int:
    """``"1500.50"`` -> 150050. Accepts spaces as thousands separators and a decimal comma.

    Raises :class:`PaymentsError` for anything that is not an exact amount in tiyin
    ("1.005", "1e3", "NaN", "" ...)."""
    cleaned = text.strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
    cleaned = cleaned.replace(",", ".")
    if not cleaned or any(c not in "0123456789.-+" for c in cleaned):
        raise PaymentsError(f"not an amount in so'm: {text!r}")
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:
        raise PaymentsError(f"not an amount in so'm: {text!r}") from exc
    if not value.is_finite():
        raise PaymentsError(f"not an amount in so'm: {text!r}")
    tiyin = value * 100
    if tiyin != tiyin.to_integral_value():
        raise PaymentsError(f"amount {text!r} has more than 2 decimals (tiyin)")
    out = int(tiyin)
    if out < 0 and not allow_negative:
        raise PaymentsError(f"amount {text!r} is negative")
    if out == 0 and not allow_zero:
        raise PaymentsError(f"amount {text!r} is zero")
    if abs(out) >= MAX_TIYIN:
        raise PaymentsError(f"amount {text!r} is out of range")
    return out


def tiyin_to_som(tiyin: int) -> str:
    """150050 -> "1500.50" (for files and protocols)."""
    sign = "-" if tiyin < 0 else ""
    t = abs(tiyin)
    return f"{sign}{t // 100}.{t % 100:02d}"


def format_som(tiyin: int) -> str:
    """150050 -> "1 500,50 so'm" (for people): the one money format, :mod:`suvnet.numfmt`."""
    return f"{numfmt.format_som(tiyin)} so'm"
