"""Renewal ranking (pure: pipes, repair history and consequences in, rates and a ranked list
out).

**Failure rates.** Each repair of a pipe (a closed work order of kind repair or replacement
with a failure kind) is one failure. Pipes are grouped by material, diameter class and age
class; a group's rate is its failures per km and year of observation:
``failures / (km × years)``. Small groups borrow strength: a group's rate is pulled towards
its material's rate, and a material's towards the whole network's, by one km-year of
"prior" exposure each (empirical Bayes with a Gamma prior), so one repair on a short pipe
does not make its group look like the worst in the land.

**Likelihood.** A pipe's expected failures a year: its length times its own rate, which is
its group's rate corrected by its own history the same way (Poisson-Gamma: ``(own failures +
group rate × E0) / (km × years + E0)`` with ``E0`` one km-year).

**Consequence.** What a failure of the pipe cuts off: the subscribers behind its isolation
set (the accounts that lose water when the valves around it are closed), with each critical
customer counted ``critical_weight`` times (20 by default), plus one (so a pipe that feeds
nobody still ranks by its likelihood).

**Score** = likelihood × consequence; the list is ranked by it, each pipe with the reasons
that put it there (as codes with values, for the pages to say in their language).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

DIAMETER_CLASSES = ((63.0, "≤ 63 mm"), (110.0, "64–110 mm"), (200.0, "111–200 mm"))
DIAMETER_TOP = "> 200 mm"
AGE_CLASSES = ((10, "< 10"), (30, "10–30"), (50, "30–50"))
AGE_TOP = "> 50"
UNKNOWN = "?"


def diameter_class(d: float | None) -> str:
    if d is None:
        return UNKNOWN
    return next((label for top, label in DIAMETER_CLASSES if d <= top), DIAMETER_TOP)


def age_class(install_year: int | None, today: date) -> str:
    if install_year is None:
        return UNKNOWN
    age = today.year - install_year
    return next((label for top, label in AGE_CLASSES if age < top), AGE_TOP)


@dataclass(frozen=True)
class Pipe:
    code: str
    length_m: float
    material: str | None = None
    diameter_mm: float | None = None
    install_year: int | None = None
    condition_grade: int | None = None
    zone: str | None = None


@dataclass(frozen=True)
class Failure:
    pipe: str
    on: date
    kind: str


@dataclass(frozen=True)
class Consequence:
    accounts: int
    critical: int
    isolable: bool = True


@dataclass(frozen=True)
class GroupRate:
    material: str
    diameter: str
    age: str
    km: float
    failures: int
    years: float
    rate: float
    """Failures per km and year (smoothed, see the module doc)."""
    raw_rate: float


@dataclass(frozen=True)
class Reason:
    code: str
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ranked:
    rank: int
    code: str
    score: float
    likelihood: float
    """Expected failures a year."""
    consequence: float
    accounts: int
    critical: int
    failures: int
    group: tuple[str, str, str]
    reasons: tuple[Reason, ...]
    pipe: Pipe


@dataclass(frozen=True)
class Options:
    prior_km_years: float = 1.0
    critical_weight: float = 20.0
    min_years: float = 1.0


def _key(p: Pipe, today: date) -> tuple[str, str, str]:
    return (p.material or UNKNOWN, diameter_class(p.diameter_mm), age_class(p.install_year, today))


def observation_years(
    failures: Sequence[Failure], today: date, since: date | None, o: Options
) -> float:
    """The years the repair history covers: from ``since`` (else the first repair) to today."""
    first = since or min((f.on for f in failures), default=today)
    return max(o.min_years, (today - first).days / 365.25)


def failure_rates(
    pipes: Sequence[Pipe],
    failures: Sequence[Failure],
    *,
    today: date,
    since: date | None = None,
    opts: Options | None = None,
) -> list[GroupRate]:
    """The failure rate of every group that has pipes, worst first."""
    o = opts or Options()
    years = observation_years(failures, today, since, o)
    by_pipe = {p.code: p for p in pipes}
    km: dict[tuple[str, str, str], float] = {}
    n: dict[tuple[str, str, str], int] = {}
    for p in pipes:
        k = _key(p, today)
        km[k] = km.get(k, 0.0) + p.length_m / 1000
        n.setdefault(k, 0)
    for f in failures:
        hit = by_pipe.get(f.pipe)
        if hit is not None:
            n[_key(hit, today)] += 1
    total_km = sum(km.values())
    overall = sum(n.values()) / max(total_km * years, 1e-9)
    mat_km: dict[str, float] = {}
    mat_n: dict[str, int] = {}
    for (m, _, _), v in km.items():
        mat_km[m] = mat_km.get(m, 0.0) + v
    for (m, _, _), v in n.items():
        mat_n[m] = mat_n.get(m, 0) + v
    e0 = o.prior_km_years
    mat_rate = {m: (mat_n[m] + overall * e0) / (mat_km[m] * years + e0) for m in mat_km}
    out = [
        GroupRate(
            material=k[0],
            diameter=k[1],
            age=k[2],
            km=round(km[k], 3),
            failures=n[k],
            years=round(years, 2),
            rate=(n[k] + mat_rate[k[0]] * e0) / (km[k] * years + e0),
            raw_rate=n[k] / max(km[k] * years, 1e-9),
        )
        for k in km
    ]
    return sorted(out, key=lambda g: (-g.rate, g.material, g.diameter, g.age))


def rank(
    pipes: Sequence[Pipe],
    failures: Sequence[Failure],
    consequences: Mapping[str, Consequence],
    *,
    today: date,
    since: date | None = None,
    opts: Options | None = None,
) -> list[Ranked]:
    """Every pipe ranked by likelihood × consequence, with its reasons."""
    o = opts or Options()
    years = observation_years(failures, today, since, o)
    rates = {
        (g.material, g.diameter, g.age): g
        for g in failure_rates(pipes, failures, today=today, since=since, opts=o)
    }
    own: dict[str, list[Failure]] = {}
    for f in failures:
        own.setdefault(f.pipe, []).append(f)
    rows: list[tuple[float, str, Ranked]] = []
    for p in pipes:
        key = _key(p, today)
        g = rates[key]
        km = p.length_m / 1000
        mine = own.get(p.code, [])
        rate = (len(mine) + g.rate * o.prior_km_years) / (km * years + o.prior_km_years)
        likelihood = rate * km
        c = consequences.get(p.code, Consequence(0, 0))
        consequence = c.accounts + o.critical_weight * c.critical + 1
        reasons = list(_reasons(p, g, mine, c, years=years, today=today))
        score = likelihood * consequence
        rows.append(
            (
                score,
                p.code,
                Ranked(
                    0,
                    p.code,
                    score,
                    likelihood,
                    consequence,
                    c.accounts,
                    c.critical,
                    len(mine),
                    key,
                    tuple(reasons),
                    p,
                ),
            )
        )
    rows.sort(key=lambda r: (-r[0], r[1]))
    return [
        Ranked(
            i + 1,
            r.code,
            r.score,
            r.likelihood,
            r.consequence,
            r.accounts,
            r.critical,
            r.failures,
            r.group,
            r.reasons,
            r.pipe,
        )
        for i, (_, _, r) in enumerate(rows)
    ]


def _reasons(
    p: Pipe, g: GroupRate, mine: Iterable[Failure], c: Consequence, *, years: float, today: date
) -> Iterable[Reason]:
    failures = sorted(mine, key=lambda f: f.on)
    if failures:
        kinds: dict[str, int] = {}
        for f in failures:
            kinds[f.kind] = kinds.get(f.kind, 0) + 1
        yield Reason(
            "repairs",
            {
                "n": len(failures),
                "years": round(years, 1),
                "last": failures[-1].on.isoformat(),
                "kinds": kinds,
            },
        )
    yield Reason(
        "group_rate",
        {
            "rate": round(g.rate, 3),
            "material": g.material,
            "diameter": g.diameter,
            "age": g.age,
            "failures": g.failures,
            "km": g.km,
        },
    )
    if p.install_year is not None and today.year - p.install_year >= 40:
        yield Reason("old", {"years": today.year - p.install_year})
    if p.condition_grade is not None and p.condition_grade >= 4:
        yield Reason("condition", {"grade": p.condition_grade})
    yield Reason("cut_off", {"accounts": c.accounts, "critical": c.critical})
    if not c.isolable:
        yield Reason("no_isolation", {})
