"""Tariff maths (pure): prices per m³ by category, effective-dated, VAT, per-person norms.

Amounts are integer tiyin; volumes are turned into whole litres before pricing so that the
arithmetic is exact. A tariff (or norm) change inside a period splits the period by days: the
volume is shared out in proportion to the days each tariff was in force (largest remainder,
so the litres add up exactly) and every part is priced at its own tariff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property

from billing.errors import TariffError


@dataclass(frozen=True)
class Tariff:
    category: str
    valid_from: date
    price_tiyin_per_m3: int
    vat_rate_bp: int = 0  # basis points: 1200 = 12 %


@dataclass(frozen=True)
class Norm:
    valid_from: date
    m3_per_person_month: float


@dataclass(frozen=True)
class ChargeLine:
    """One priced part of a period: [date_from, date_to] inclusive."""

    date_from: date
    date_to: date
    days: int
    litres: int
    price_tiyin_per_m3: int
    vat_rate_bp: int
    net_tiyin: int
    vat_tiyin: int

    @property
    def total_tiyin(self) -> int:
        return self.net_tiyin + self.vat_tiyin

    def as_json(self) -> dict[str, object]:
        return {
            "from": self.date_from.isoformat(),
            "to": self.date_to.isoformat(),
            "days": self.days,
            "litres": self.litres,
            "price_tiyin_per_m3": self.price_tiyin_per_m3,
            "vat_rate_bp": self.vat_rate_bp,
            "net_tiyin": self.net_tiyin,
            "vat_tiyin": self.vat_tiyin,
        }


@dataclass(frozen=True)
class Charge:
    """A priced period: its lines. Immutable, so its sums are worked out once (the billing
    run asks for them several times per bill, and equal bills of a batch share one)."""

    lines: tuple[ChargeLine, ...]

    @cached_property
    def net_tiyin(self) -> int:
        return sum(ln.net_tiyin for ln in self.lines)

    @cached_property
    def vat_tiyin(self) -> int:
        return sum(ln.vat_tiyin for ln in self.lines)

    @cached_property
    def total_tiyin(self) -> int:
        return self.net_tiyin + self.vat_tiyin

    @cached_property
    def litres(self) -> int:
        return sum(ln.litres for ln in self.lines)


def period_bounds(period: date) -> tuple[date, date]:
    """First and last day of the month of ``period``."""
    first = period.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first, nxt - timedelta(days=1)


def parse_period(text: str) -> date:
    """``2026-11`` -> date(2026, 11, 1), with a clear error otherwise."""
    try:
        y, m = text.strip().split("-")
        return date(int(y), int(m), 1)
    except ValueError as exc:
        raise TariffError(f"period must look like 2026-11 (year-month), got {text!r}") from exc


def div_round(num: int, den: int) -> int:
    """Integer division rounding half away from zero (den > 0)."""
    q, r = divmod(abs(num), den)
    if 2 * r >= den:
        q += 1
    return q if num >= 0 else -q


def segments(first: date, last: date, starts: list[date]) -> list[tuple[date, date, int]]:
    """Split [first, last] at the given effective dates; returns (from, to, index) parts.

    ``starts`` is sorted; index i is the item in force (the last start <= day).
    """
    if not starts or starts[0] > first:
        raise TariffError(f"no tariff or norm in force on {first.isoformat()}")
    out: list[tuple[date, date, int]] = []
    idx = max(i for i, s in enumerate(starts) if s <= first)
    cur = first
    while cur <= last:
        nxt_i = idx + 1
        end = last
        if nxt_i < len(starts) and starts[nxt_i] <= last:
            end = starts[nxt_i] - timedelta(days=1)
        out.append((cur, end, idx))
        cur = end + timedelta(days=1)
        idx = nxt_i
    return out


def split_by_days(total: int, days: list[int]) -> list[int]:
    """Share an integer total in proportion to days (largest remainder; parts sum to total)."""
    whole = sum(days)
    if whole <= 0:
        raise TariffError("cannot share a volume over zero days")
    base = [total * d // whole for d in days]
    rema = [total * d % whole for d in days]
    left = total - sum(base)
    for i in sorted(range(len(days)), key=lambda k: (-rema[k], k))[:left]:
        base[i] += 1
    return base


def price(litres: int, tariff: Tariff) -> tuple[int, int]:
    """(net, vat) tiyin for a volume at a tariff."""
    net = div_round(litres * tariff.price_tiyin_per_m3, 1000)
    vat = div_round(net * tariff.vat_rate_bp, 10000)
    return net, vat


def tariffs_for(category: str, tariffs: list[Tariff]) -> list[Tariff]:
    out = sorted((t for t in tariffs if t.category == category), key=lambda t: t.valid_from)
    if not out:
        raise TariffError(f"no tariff defined for category {category!r}")
    return out


def metered_charge(
    litres: int,
    category: str,
    period: date,
    tariffs: list[Tariff],
    *,
    first: date | None = None,
    last: date | None = None,
) -> Charge:
    """Charge for a metered volume over a month (or [first, last] within it)."""
    p_first, p_last = period_bounds(period)
    first = first or p_first
    last = last or p_last
    ts = tariffs_for(category, tariffs)
    parts = segments(first, last, [t.valid_from for t in ts])
    days = [(b - a).days + 1 for a, b, _ in parts]
    shares = split_by_days(litres, days)
    lines = []
    for (a, b, i), d, lit in zip(parts, days, shares, strict=True):
        net, vat = price(lit, ts[i])
        lines.append(
            ChargeLine(a, b, d, lit, ts[i].price_tiyin_per_m3, ts[i].vat_rate_bp, net, vat)
        )
    return Charge(tuple(lines))


def _count(mask: Sequence[bool] | None, first: date, a: date, b: date) -> int:
    """Days of [a, b] marked in ``mask`` (index 0 = ``first``); all days when no mask."""
    if mask is None:
        return (b - a).days + 1
    return sum(1 for i in range((a - first).days, (b - first).days + 1) if mask[i])


def norm_litres(
    residents: int,
    period: date,
    norms: list[Norm],
    service: Sequence[bool] | None = None,
) -> list[tuple[date, date, int]]:
    """Norm volume per norm segment of the month: residents × norm × service days / days in
    the month, rounded half up to whole litres.

    ``service`` marks the days of the month that are charged (index 0 = the 1st); ``None``
    means every day."""
    first, last = period_bounds(period)
    ns = sorted(norms, key=lambda n: n.valid_from)
    parts = segments(first, last, [n.valid_from for n in ns])
    month_days = (last - first).days + 1
    if service is not None and len(service) != month_days:
        raise TariffError(f"service days: {len(service)} flags for a {month_days}-day month")
    out = []
    for a, b, i in parts:
        d = _count(service, first, a, b)
        litres_month = round(residents * ns[i].m3_per_person_month * 1000)
        out.append((a, b, div_round(litres_month * d, month_days)))
    return out


def norm_charge(
    residents: int,
    category: str,
    period: date,
    tariffs: list[Tariff],
    norms: list[Norm],
    *,
    service: Sequence[bool] | None = None,
) -> Charge:
    """Charge for an unmetered account: per-person norm, both norm and tariff by days.

    With ``service`` (a flag per day of the month) only the flagged days are charged: the
    norm is prorated by days of service and every charge line counts its own service days;
    a part of the month without a service day has no line."""
    lines: list[ChargeLine] = []
    ts = tariffs_for(category, tariffs)
    first, _ = period_bounds(period)
    for a, b, litres in norm_litres(residents, period, norms, service):
        parts = segments(a, b, [t.valid_from for t in ts])
        days = [_count(service, first, x, y) for x, y, _ in parts]
        if sum(days) == 0:
            continue
        for (x, y, i), d, lit in zip(parts, days, split_by_days(litres, days), strict=True):
            if d == 0:
                continue
            lo, hi = x, y
            if service is not None:  # the line runs from its first to its last service day
                on = [k for k in range((x - first).days, (y - first).days + 1) if service[k]]
                lo, hi = first + timedelta(days=on[0]), first + timedelta(days=on[-1])
            net, vat = price(lit, ts[i])
            lines.append(
                ChargeLine(lo, hi, d, lit, ts[i].price_tiyin_per_m3, ts[i].vat_rate_bp, net, vat)
            )
    return Charge(tuple(lines))
