"""Numbers as people in Uzbekistan read them: one format for money and volumes on every page,
document and command-line output.

* money: ``15 000,50`` (so'm with two tiyin digits, a decimal comma, thousands grouped by a
  narrow no-break space U+202F so a figure is never split over two lines on a page). The unit
  comes from the caller's catalog (``so'm``, ``soʻm``, ``сўм``, ``сум``);
* volumes: ``5 679,476`` (m³ with three decimals: whole litres), the same grouping and comma;
* counts: ``19 581``.

Pure functions on integers and floats; no locale of the machine is consulted. The web pages
(:mod:`api.i18n`), the PDFs (:mod:`billing.documents`, the cashier's receipt) and the
``suvnet billing`` / ``suvnet payments`` commands all call these.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

GROUP = "\u202f"
"""The thousands separator: a narrow no-break space."""
DECIMAL = ","


def _group(whole: int) -> str:
    return f"{whole:,}".replace(",", GROUP)


def format_som(tiyin: int) -> str:
    """Money in so'm from integer tiyin: ``1500050`` -> ``'15 000,50'`` (no unit)."""
    if isinstance(tiyin, bool) or not isinstance(tiyin, int):
        raise TypeError(f"money is integer tiyin, got {tiyin!r}")
    sign = "-" if tiyin < 0 else ""
    whole, frac = divmod(abs(tiyin), 100)
    return f"{sign}{_group(whole)}{DECIMAL}{frac:02d}"


def format_decimal(value: float, places: int) -> str:
    """A decimal number with ``places`` decimals, grouped: ``5679.4761`` -> ``'5 679,476'``
    for 3 places (rounded half away from zero on the decimal text, not on the binary float)."""
    scaled = int(
        Decimal(repr(float(value))).scaleb(places).to_integral_value(rounding=ROUND_HALF_UP)
    )
    sign = "-" if scaled < 0 else ""
    whole, frac = divmod(abs(scaled), 10**places)
    text = sign + _group(whole)
    return text + (f"{DECIMAL}{frac:0{places}d}" if places > 0 else "")


def format_volume(m3: float, places: int = 3) -> str:
    """A volume in m³: ``5679.476`` -> ``'5 679,476'`` (three decimals: whole litres)."""
    return format_decimal(m3, places)


def format_count(n: int) -> str:
    """A count: ``19581`` -> ``'19 581'``."""
    return ("-" if n < 0 else "") + _group(abs(int(n)))
