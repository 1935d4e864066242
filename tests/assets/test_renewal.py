"""The renewal ranking (pure): failure rates per km and year by material, diameter and age
class, and pipes ranked by likelihood × consequence with their reasons."""

from __future__ import annotations

from datetime import date

import pytest

from assets.renewal import (
    Consequence,
    Failure,
    Options,
    Pipe,
    age_class,
    diameter_class,
    failure_rates,
    rank,
)

TODAY = date(2026, 6, 1)
SINCE = date(2021, 6, 1)  # five years of repair history


def steel(code: str, length: float = 1000.0) -> Pipe:
    return Pipe(code, length, "steel", 100.0, 1975)


def pe(code: str, length: float = 1000.0) -> Pipe:
    return Pipe(code, length, "PE100", 63.0, 2018)


@pytest.mark.parametrize(
    ("d", "label"), [(None, "?"), (50, "≤ 63 mm"), (63, "≤ 63 mm"), (90, "64–110 mm"),
                     (160, "111–200 mm"), (315, "> 200 mm")],
)  # fmt: skip
def test_diameter_classes(d: float | None, label: str) -> None:
    assert diameter_class(d) == label


@pytest.mark.parametrize(
    ("year", "label"), [(None, "?"), (2020, "< 10"), (2000, "10–30"), (1980, "30–50"),
                        (1960, "> 50")],
)  # fmt: skip
def test_age_classes(year: int | None, label: str) -> None:
    assert age_class(year, TODAY) == label


def test_rates_per_km_and_year_by_group() -> None:
    pipes = [steel("S1"), steel("S2"), pe("E1", 2000.0)]
    fails = [Failure("S1", date(2022, 1, 1), "corrosion")] * 4 + [
        Failure("E1", date(2023, 1, 1), "joint_leak")
    ]
    rates = {
        (g.material, g.diameter, g.age): g
        for g in failure_rates(pipes, fails, today=TODAY, since=SINCE)
    }
    s = rates[("steel", "64–110 mm", "> 50")]
    e = rates[("PE100", "≤ 63 mm", "< 10")]
    assert (s.km, s.failures, s.years) == (2.0, 4, 5.0)
    assert s.raw_rate == pytest.approx(4 / (2 * 5), rel=1e-3)  # 0.4 a km and year
    assert e.raw_rate == pytest.approx(1 / (2 * 5), rel=1e-3)
    # smoothed towards the material (and the network) by one km-year each, never past them
    overall = 5 / (4 * 5)
    assert s.rate == pytest.approx((4 + (4 + overall) / (2 * 5 + 1)) / (2 * 5 + 1), rel=1e-3)
    assert e.raw_rate < e.rate < s.rate < s.raw_rate
    assert [g.material for g in failure_rates(pipes, fails, today=TODAY, since=SINCE)] == [
        "steel", "PE100",
    ]  # fmt: skip


def test_a_pipe_with_repairs_and_many_subscribers_ranks_first() -> None:
    pipes = [steel("S1"), steel("S2"), steel("S3"), pe("E1")]
    fails = [Failure("S1", date(2022 + i, 3, 1), "corrosion") for i in range(3)]
    cons = {
        "S1": Consequence(10, 0),
        "S2": Consequence(10, 0),
        "S3": Consequence(200, 0),
        "E1": Consequence(10, 1),
    }
    got = rank(pipes, fails, cons, today=TODAY, since=SINCE)
    order = [r.code for r in got]
    assert order.index("S1") < order.index("S2")  # its own repairs
    assert order.index("S3") < order.index("S2")  # twenty times the subscribers
    assert [r.rank for r in got] == [1, 2, 3, 4]
    s1 = next(r for r in got if r.code == "S1")
    codes = [x.code for x in s1.reasons]
    assert codes[:2] == ["repairs", "group_rate"] and "old" in codes and "cut_off" in codes
    rep = s1.reasons[0].values
    assert (rep["n"], rep["kinds"], rep["last"]) == (3, {"corrosion": 3}, "2024-03-01")
    assert s1.score == pytest.approx(s1.likelihood * s1.consequence)
    assert s1.consequence == 11  # ten subscribers, plus one


def test_critical_customers_weigh_in() -> None:
    pipes = [pe("A"), pe("B"), pe("C")]
    fails = [Failure("C", date(2024, 1, 1), "break")]  # the group's rate; A and B alike
    cons = {"A": Consequence(30, 0), "B": Consequence(5, 2)}
    order = [r.code for r in rank(pipes, fails, cons, today=TODAY, since=SINCE)]
    assert order[:2] == ["B", "A"]  # 5 + 2 x 20 > 30
    light = Options(critical_weight=1.0)
    order = [r.code for r in rank(pipes, fails, cons, today=TODAY, since=SINCE, opts=light)]
    assert order.index("A") < order.index("B")


def test_no_history_ranks_by_length_and_consequence_and_says_when_not_isolable() -> None:
    pipes = [pe("LONG", 3000.0), pe("SHORT", 100.0)]
    cons = {"LONG": Consequence(1, 0), "SHORT": Consequence(1, 0, isolable=False)}
    got = rank(pipes, [], cons, today=TODAY)
    assert [r.code for r in got] == ["LONG", "SHORT"]
    assert all(r.likelihood == 0 for r in got)  # no failures anywhere: no rate
    assert "no_isolation" in [x.code for x in got[1].reasons]
