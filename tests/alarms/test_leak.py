"""The leak-event detector (alarms.leak) as a pure state machine: no database.

A small synthetic DMA: households with a daily shape, weather from day to day, hourly noise,
background leakage; the unmetered households' use estimated by a fixed norm; a few metered
households whose daily use follows the weather.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from alarms import analytics as an
from alarms import leak as lk

T0 = 1_750_000_000.0 - (1_750_000_000.0 % 86400)  # a midnight (the tests use local = UTC)
SHAPE = np.array(
    [0.3, 0.25, 0.2, 0.2, 0.25, 0.5, 1.2, 1.8, 1.6, 1.2, 1.0, 1.0,
     1.1, 1.0, 0.9, 0.9, 1.0, 1.3, 1.7, 1.9, 1.7, 1.2, 0.7, 0.4]
)  # fmt: skip
SHAPE = SHAPE / SHAPE.mean()
CFG = lk.LeakSettings()


@dataclass
class World:
    """Hourly demand of a DMA (L/s) and its daily meter figures."""

    demand: np.ndarray  # (days * 24,)
    metered_m3: np.ndarray  # (days,) what 50 metered households used
    weather: np.ndarray  # (days,)
    unmetered_m3: float  # the norm estimate (fixed)
    # (days * 24,) what the metered households used, hour by hour (for the read windows)
    metered_lps: np.ndarray | None = None


def world(
    days: int = 35, *, mean_lps: float = 20.0, seed: int = 1, weather_sigma: float = 0.02
) -> World:
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0, 0.02, days)) * 0.5
    weather = np.exp(walk + rng.normal(0, weather_sigma, days))
    use = mean_lps * 0.9  # households; 10 % background leakage
    hours = np.arange(days * 24)
    demand = (
        use * weather[hours // 24] * SHAPE[hours % 24] * (1 + rng.normal(0, 0.02, hours.size))
        + mean_lps * 0.1
    )
    metered = 50 * 0.6 * weather * (1 + rng.normal(0, 0.03, days))  # m³ a day
    unmetered = use * 86.4 - 50 * 0.6  # the norm is right on average
    # the same households hour by hour: their daily use spread over the day's shape
    metered_lps = np.repeat(metered, 24) / 86.4 * SHAPE[hours % 24]
    return World(demand, metered, weather, unmetered, metered_lps)


def windows(w: World, i: int, read_h: int) -> tuple[float, np.ndarray | None]:
    """The metered households' last read windows at the end of hour ``i`` (every meter read
    once a day at ``read_h``:00): their use (L/s) and the windows' shares in the last
    3 days' hours, as the rule hands them to the detector (Hour.window_*)."""
    assert w.metered_lps is not None
    last = (i + 1 - read_h) // 24 * 24 + read_h  # the hour the last read ended
    if last - 24 < 0:
        return math.nan, None
    shares = np.zeros(72)
    shares[72 - (i + 1 - last) - 24 : 72 - (i + 1 - last)] = 1 / 24
    return float(w.metered_lps[last - 24 : last].mean()), shares


Extra = Callable[[int], float]


def run(
    w: World,
    *,
    extra: Extra = lambda i: 0.0,
    neighbour: np.ndarray | None = None,
    state: lk.LeakState | None = None,
    hours: range | None = None,
    cfg: lk.LeakSettings = CFG,
    read_h: int | None = None,
    meters: int = 50,
    valve_open: Callable[[int], bool] = lambda i: False,
) -> tuple[lk.LeakState, list[lk.LeakSignal]]:
    """Feed the hours (with ``extra`` L/s added to the demand of hour i) as the engine does:
    each bucket, the night at 05:00, the balance of a day 26 h after its end; with
    ``read_h``, each bucket also carries the meters' read windows (read daily at that hour)."""
    st = state if state is not None else lk.LeakState()
    out: list[lk.LeakSignal] = []
    for i in hours if hours is not None else range(w.demand.size):
        day, slot = divmod(i, 24)
        t_end = T0 + (i + 1) * 3600.0
        nb = {} if neighbour is None else {"N": float(neighbour[i])}
        use, shares = (math.nan, None) if read_h is None else windows(w, i, read_h)
        hr = lk.Hour(t_end, day, 1 if day % 7 == 6 else 0, slot, float(w.demand[i] + extra(i)),
                     night=1 <= slot < 5, neighbours=nb, window_use_lps=use,
                     window_weights=shares, valve_to=("N",) if valve_open(i) else ())  # fmt: skip
        out += lk.hour_step(st, cfg, hr)
        if slot == 4:
            out += lk.night_step(st, cfg, day, t_end)
        due = i + 1 - 26
        if due > 0 and due % 24 == 0:
            d = due // 24 - 1
            out += lk.balance_step(
                st, cfg, d, t_end, metered_m3=float(w.metered_m3[d]), meters=meters,
                unmetered_m3=w.unmetered_m3,
            )  # fmt: skip
    return st, out


def kinds(sigs: list[lk.LeakSignal], *which: str) -> list[lk.LeakSignal]:
    return [s for s in sigs if s.kind in which]


def test_no_leak_no_alarm() -> None:
    for seed in (1, 2, 3):
        _, sigs = run(world(seed=seed))
        assert kinds(sigs, "open", "regrow") == [], seed


def test_an_abrupt_leak_is_one_alarm_with_its_size() -> None:
    w = world()
    start = 20 * 24 + 10  # day 20, 10:00
    _, sigs = run(w, extra=lambda i: 3.0 if i >= start else 0.0)
    opened = kinds(sigs, "open")
    assert len(opened) == 1
    assert kinds(sigs, "regrow", "close") == []
    t_open = opened[0].ts
    assert T0 + start * 3600 < t_open <= T0 + (start + 24) * 3600  # within a day
    # every later verdict only updates the estimate, which holds the true size
    updates = kinds(sigs, "update")
    assert updates and all(u.ts >= t_open for u in updates)
    last = updates[-1].size
    assert last.low <= 3.0 <= last.high
    assert abs(last.lps - 3.0) < 1.0
    assert math.isclose(last.m3_per_day, last.lps * 86.4)


def test_a_growing_leak_is_raised_again_only_when_it_has_doubled() -> None:
    w = world()
    start = 16 * 24

    def grow(i: int) -> float:  # 0.5 L/s growing to 8 L/s over 8 days, then steady
        return 0.0 if i < start else min(8.0, 0.5 + 7.5 * (i - start) / (8 * 24))

    _, sigs = run(w, extra=grow)
    opened, regrown = kinds(sigs, "open"), kinds(sigs, "regrow")
    assert len(opened) == 1
    assert 1 <= len(regrown) <= 2  # re-raised because it grew, not every day
    sizes = [opened[0].size.lps] + [r.size.lps for r in regrown]
    assert all(b > 2 * a for a, b in itertools.pairwise(sizes))
    assert kinds(sigs, "close") == []


def test_repaired_closes_the_event_and_the_zone_is_learned_afresh() -> None:
    w = world(days=40)
    start, fixed = 18 * 24 + 9, 24 * 24 + 14
    st, before = run(w, extra=lambda i: 4.0 if i >= start else 0.0, hours=range(fixed))
    assert len(kinds(before, "open")) == 1 and st.event is not None
    ev = lk.repaired(st, CFG, T0 + fixed * 3600.0)
    assert ev is not None and ev.size.lps > 2.0
    assert lk.LeakState.to_json(st)["event"] is None  # closed
    assert lk.repaired(st, CFG, T0 + fixed * 3600.0) is None  # nothing left to repair
    # the leak is gone from the repair on: no new alarm
    _, after = run(
        w, extra=lambda i: 4.0 if start <= i < fixed else 0.0, state=st,
        hours=range(fixed, w.demand.size),
    )  # fmt: skip
    assert kinds(after, "open", "regrow") == []


def test_without_a_repair_the_event_closes_when_the_leak_is_gone() -> None:
    w = world(days=45)
    start, gone = 16 * 24 + 3, 22 * 24 + 12
    _, sigs = run(w, extra=lambda i: 5.0 if start <= i < gone else 0.0)
    assert len(kinds(sigs, "open")) == 1
    closed = kinds(sigs, "close")
    assert len(closed) == 1
    days_after = (closed[0].ts - (T0 + gone * 3600)) / 86400
    assert CFG.close_after_days - 1 <= days_after <= CFG.close_after_days + 2


def test_a_transfer_from_a_neighbour_is_not_a_leak() -> None:
    w = world()
    other = world(seed=9, mean_lps=30.0)
    a, b = 21 * 24 + 8, 22 * 24 + 14  # the boundary valve is open for 30 h
    moved = np.zeros(w.demand.size)
    moved[a:b] = 0.4 * other.demand[a:b]  # part of the neighbour's demand now comes through us

    def extra(i: int) -> float:
        return float(moved[i])

    # the neighbour's meter shows it: its demand falls by as much as ours rises
    _, quiet = run(w, extra=extra, neighbour=other.demand - moved)
    assert kinds(quiet, "open") == []
    # the same rise without the neighbour's fall is a burst
    _, loud = run(w, extra=extra, neighbour=other.demand)
    assert len(kinds(loud, "open")) == 1


def test_hours_with_a_boundary_valve_open_are_not_judged() -> None:
    # the crew opened the boundary valve for 30 h (a work order says so); the neighbour has
    # no meter that shows the transfer: the rise alone is a burst unless those hours are paused
    w = world()
    other = world(seed=9, mean_lps=30.0)
    a, b = 21 * 24 + 8, 22 * 24 + 14
    moved = np.zeros(w.demand.size)
    moved[a:b] = 0.4 * other.demand[a:b]
    leak = 25 * 24 + 10  # and a real 3 L/s leak three days after the valve is closed

    def extra(i: int) -> float:
        return float(moved[i]) + (3.0 if i >= leak else 0.0)

    def open_(i: int) -> bool:
        return a <= i <= b  # the hour of the closing too

    pause = replace(CFG, valve_pause=True)
    for read_h in (None, 9, 21):  # without customer meters, and with meters read at 09, 21:00
        _, sigs = run(w, extra=extra, valve_open=open_, cfg=pause, read_h=read_h)
        opened = kinds(sigs, "open")
        assert len(opened) == 1, (read_h, [(s.ts, s.detector) for s in opened])
        assert T0 + leak * 3600 < opened[0].ts <= T0 + (leak + 24) * 3600
        # a rule that does not pause (the default) raises the transfer as a leak
        _, loud = run(w, extra=extra, valve_open=open_, read_h=read_h)
        assert kinds(loud, "open")[0].ts < T0 + leak * 3600


def test_water_moved_through_an_open_boundary_valve_is_matched_however_small() -> None:
    # a neighbour three times this zone's size draws 6 % of its water through this zone for
    # 30 h (3.6 L/s on average): the neighbour's meter shows the fall, but within its own
    # weather, so the flows alone do not take it for a transfer. The crew's work order says
    # the valve was open: then the rise is the water moved, and a leak that starts while the
    # valve is open is still found within a day
    w = world()
    a, b = 21 * 24 + 8, 22 * 24 + 14
    leak = a + 6
    flows_only = replace(CFG, valve_transfers=False)

    def open_(i: int) -> bool:
        return a <= i <= b

    # without customer meters, and with meters read daily at 09:00
    for seed, read_h in ((10, None), (11, 9)):
        other = world(seed=seed, mean_lps=60.0, weather_sigma=0.05)
        moved = np.zeros(w.demand.size)
        moved[a:b] = 0.06 * other.demand[a:b]
        nb = other.demand - moved

        def extra(i: int, m: np.ndarray = moved) -> float:
            return float(m[i])

        def leaking(i: int, m: np.ndarray = moved) -> float:
            return float(m[i]) + (3.0 if i >= leak else 0.0)

        _, loud = run(w, extra=extra, neighbour=nb, valve_open=open_, read_h=read_h,
                      cfg=flows_only)  # fmt: skip
        assert kinds(loud, "open"), seed  # the flows alone: a leak
        _, quiet = run(w, extra=extra, neighbour=nb, valve_open=open_, read_h=read_h)
        assert kinds(quiet, "open") == [], (seed, kinds(quiet, "open"))
        _, found = run(w, extra=leaking, neighbour=nb, valve_open=open_, read_h=read_h)
        opened = kinds(found, "open")
        assert len(opened) == 1, (seed, opened)
        assert T0 + leak * 3600 < opened[0].ts <= T0 + (leak + 24) * 3600


def test_read_windows_that_reach_into_hours_with_a_boundary_valve_open_are_not_judged() -> None:
    # the meters are read daily at 09:00; the valve was open from 09:00 to 10:00 on day 20,
    # and a leak starts at 10:00: a window holding that hour is not judged (the meters' use
    # in it is not the zone's), even where the hour is a small share of it
    w = world()
    leak = 20 * 24 + 10
    only = replace(CFG, valve_pause=True, shape_z=0, shape_suspect_z=0, burst_z=1000.0,
                   h=1000.0, trend_z=1000.0)  # fmt: skip

    def extra(i: int) -> float:
        return 3.0 if i >= leak else 0.0

    def first_window(cfg: lk.LeakSettings) -> float:
        _, sigs = run(w, extra=extra, read_h=9, cfg=cfg, valve_open=lambda i: i == leak - 1)
        return next(s.ts for s in kinds(sigs, "open") if s.detector == "window")

    free = T0 + leak * 3600 + 24 * 3600  # a day's window that starts after that hour
    assert first_window(only) >= free
    assert first_window(replace(only, valve_pause=False)) < free


def test_the_state_is_stored_and_restored_explicitly() -> None:
    """A worker that stores the state as JSON after every pass and restores it reaches the
    same signals as one pass over everything (live equals replay)."""
    w = world()
    start = 19 * 24 + 6

    def extra(i: int) -> float:
        return 3.5 if i >= start else 0.0

    _, whole = run(w, extra=extra)
    st = lk.LeakState()
    pieces: list[lk.LeakSignal] = []
    for a in range(0, w.demand.size, 7):
        st, sigs = run(w, extra=extra, state=st, hours=range(a, min(a + 7, w.demand.size)))
        pieces += sigs
        st = lk.LeakState.from_json(json.loads(json.dumps(st.to_json())))
    assert [(s.kind, s.ts, s.detector) for s in pieces] == [
        (s.kind, s.ts, s.detector) for s in whole
    ]
    assert [s.size for s in pieces] == [s.size for s in whole]


def test_the_balance_uses_the_demand_index_of_the_metered_households() -> None:
    """Hot days raise everybody's use: the norm estimate does not follow, the metered
    households do. Scaled by them, the balance is steadier and a small leak stands out."""
    w = world(days=40, seed=4, weather_sigma=0.06)
    st, _ = run(w)
    plain = an.diff_sigma(np.array(st.balance.hist))
    scaled = an.diff_sigma(np.array(st.balance_idx.hist))
    assert scaled < plain / 2
    # a 2 L/s leak from day 25 on: the balance finds it
    _, sigs = run(w, extra=lambda i: 2.0 if i >= 25 * 24 else 0.0)
    opened = kinds(sigs, "open")
    assert len(opened) == 1 and opened[0].ts < T0 + 28 * 86400


def test_storage_rate_of_a_tank() -> None:
    level = np.array([2.0, 2.1, 2.1, 1.9])  # m at the bucket edges
    rate = lk.storage_lps(level, area_m2=36.0, step_s=3600.0)
    assert np.allclose(rate, [1.0, 0.0, -2.0])  # 0.1 m x 36 m² = 3.6 m³ in an hour = 1 L/s


def test_a_rule_with_default_params_gets_the_default_settings() -> None:
    """The rule's documented defaults (RuleParams) and the detector's (LeakSettings) agree."""
    from alarms.leakrule import settings
    from alarms.rules import RuleConfig

    rule = RuleConfig.build(id=1, code="Z-leak", kind="leak", zone_id=1)
    assert settings(rule) == lk.LeakSettings()


def world_unrepresentative(
    seed: int, days: int = 35, mean_lps: float = 20.0, night_sigma: float = 0.25
) -> World:
    """A DMA whose unmetered households follow the weather more strongly than the metered ones
    (gardens), and whose night flow varies by itself (roof tanks filled at night)."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0, 0.03, days))
    weather = np.exp(walk + rng.normal(0, 0.08, days))
    night = np.exp(rng.normal(0, night_sigma, days))
    hours = np.arange(days * 24)
    d, h = hours // 24, hours % 24
    use = mean_lps * 0.9
    demand = (
        use * (0.5 * weather[d] + 0.5 * weather[d] ** 2.5) * SHAPE[h]
        * (1 + rng.normal(0, 0.02, hours.size))
        + np.where((h >= 1) & (h < 5), 3.0 * night[d], 0.0)
        + mean_lps * 0.1
    )  # fmt: skip
    metered = 50 * 0.6 * weather * (1 + rng.normal(0, 0.02, days))
    return World(demand, metered, weather, use * 86.4 - 50 * 0.6)


def test_a_slowly_growing_leak_is_seen_by_the_balance_against_the_metered_use() -> None:
    # 0 -> 3 L/s over 6 days: 2 L/s on day 22. The night flow varies too much to see it, and
    # the norm (fixed, or scaled by the metered households' index) misses how the unmetered
    # households follow the weather; the inflow regressed on the metered use does not.
    start = 18 * 24

    def grow(i: int) -> float:
        return 0.0 if i < start else min(3.0, 3.0 * (i - start) / (6 * 24))

    for seed in (1, 2):
        w = world_unrepresentative(seed)
        _, quiet = run(w)
        assert kinds(quiet, "open") == [], seed
        _, sigs = run(w, extra=grow)
        opened = kinds(sigs, "open")
        assert len(opened) == 1, seed
        assert opened[0].detector == "balance"
        # within 72 h of the leak reaching 2 L/s
        assert opened[0].ts <= T0 + (22 + 3) * 86400, seed
        assert kinds(sigs, "regrow") == []


def test_a_leak_found_while_it_grows_is_not_raised_again_for_its_first_days() -> None:
    # 0 -> 6 L/s over 3 days: found by the night at about 2 L/s; two nights later it is 6 L/s,
    # which is what the leak is, not a new one: the alarm's size follows, the alarm is not
    # raised again (settle_daily_s); raised again only when it doubles after that
    start = 18 * 24

    def grow(i: int) -> float:
        return 0.0 if i < start else min(6.0, 6.0 * (i - start) / (3 * 24))

    for seed in (1, 2, 3):
        _, sigs = run(world(seed=seed), extra=grow)
        opened = kinds(sigs, "open")
        assert len(opened) == 1 and opened[0].size.lps < 3.0, seed
        assert kinds(sigs, "regrow") == [], seed
        assert kinds(sigs, "update")[-1].size.lps > 5.0


def test_a_big_leak_under_a_small_alarm_in_its_first_days_is_raised_again() -> None:
    # a small leak opens the event; a day later a burst of 8 L/s: raised again at once, the
    # settling of a growing leak's first estimate does not hide a new, much larger leak
    small, big = 18 * 24 + 12, 19 * 24 + 14

    def extra(i: int) -> float:
        return (1.5 if i >= small else 0.0) + (8.0 if i >= big else 0.0)

    _, sigs = run(world(), extra=extra)
    opened, regrown = kinds(sigs, "open"), kinds(sigs, "regrow")
    assert len(opened) == 1 and opened[0].size.lps < 3.0
    assert len(regrown) == 1
    assert T0 + big * 3600 < regrown[0].ts <= T0 + (big + 24) * 3600
    assert regrown[0].size.lps > 6.0


def test_a_small_leak_is_raised_again_only_when_it_has_grown_past_twice_2_lps() -> None:
    # found at about 1 L/s; after its first days it grows to 2.6 L/s: more than twice, but
    # still a small leak: its size on the alarm follows; raised again only past 2 x 2 L/s
    # (regrow_factor x regrow_from_lps), at 5 L/s
    start, more, most = 16 * 24 + 10, 21 * 24 + 10, 25 * 24 + 10

    def extra(i: int) -> float:
        return 5.0 if i >= most else 2.6 if i >= more else 1.0 if i >= start else 0.0

    _, sigs = run(world(days=35), extra=extra)
    opened, regrown = kinds(sigs, "open"), kinds(sigs, "regrow")
    assert len(opened) == 1 and opened[0].size.lps < 1.5
    assert [u.size.lps for u in kinds(sigs, "update") if u.ts < T0 + most * 3600][-1] > 2.2
    assert len(regrown) == 1
    assert regrown[0].ts > T0 + most * 3600 and regrown[0].size.lps > 4.0


def test_an_abrupt_leak_is_found_by_the_day_shapes_on_the_day_it_starts() -> None:
    # 2 L/s at 10:00 in a 20 L/s DMA whose gardens follow the weather more strongly than the
    # rest and whose nights vary by themselves: the hours after the step do not fit any mix of
    # the day shapes learned, while a hot day (all of the day's hours up together) does
    start = 20 * 24 + 10

    def leak(i: int) -> float:
        return 2.0 if i >= start else 0.0

    for seed in (1, 2, 3):
        w = world_unrepresentative(seed)
        _, quiet = run(w)
        assert kinds(quiet, "open") == [], seed
        _, sigs = run(w, extra=leak)
        opened = kinds(sigs, "open")
        assert len(opened) == 1 and opened[0].detector == "shape", (seed, opened)
        assert opened[0].ts <= T0 + 21 * 86400, seed  # before midnight
        assert "at 10:00 today" in opened[0].detail
        assert opened[0].size.low <= 2.0 <= opened[0].size.high, (seed, opened[0].size)
        assert kinds(sigs, "regrow") == [], seed
    # without the day shapes the same leak waits for the night, or the balance
    _, sigs = run(world_unrepresentative(1), extra=leak, cfg=replace(CFG, shape_z=0.0))
    opened = kinds(sigs, "open")
    assert opened and opened[0].detector != "shape"
    assert opened[0].ts > T0 + 21 * 86400


def test_a_step_the_day_shapes_are_not_sure_of_is_confirmed_by_the_night_after() -> None:
    # 1.2 L/s from 10:00 in a 20 L/s DMA: the day-shape test sees the step at z 7.1, under
    # shape_z 8, and keeps it as a suspect; the night after is 2.3 sigma up by more than half
    # the step, which confirms it: the alarm comes 19 h after the leak started. Without the
    # suspect the leak waits for the balance, days later
    start = 20 * 24 + 10
    w = world_unrepresentative(5, night_sigma=0.15)
    _, quiet = run(w)
    assert kinds(quiet, "open") == []
    _, sigs = run(w, extra=lambda i: 1.2 if i >= start else 0.0)
    opened = kinds(sigs, "open")
    assert len(opened) == 1 and opened[0].detector == "shape", opened
    first = opened[0]
    assert first.ts == T0 + (start + 19) * 3600.0  # at the end of the night after
    assert "at 10:00 yesterday" in first.detail and "the night after was" in first.detail
    assert first.size.low <= 1.2 <= first.size.high, first.size
    assert kinds(sigs, "regrow") == []
    # a step that is gone by the night (13 h of extra draw: a tanker, a fire hydrant) is no
    # leak: the same suspect, no night to confirm it
    _, gone = run(w, extra=lambda i: 1.2 if start <= i < start + 13 else 0.0)
    assert kinds(gone, "open") == [], kinds(gone, "open")
    # the suspect needs the night: without it the same leak is found days later
    _, off = run(w, extra=lambda i: 1.2 if i >= start else 0.0, cfg=replace(CFG, shape_suspect_z=0))
    later = kinds(off, "open")
    assert later and later[0].ts > T0 + (start + 48) * 3600.0, later


def test_a_new_leak_under_an_alarm_that_faded_to_nothing_is_raised_again() -> None:
    # day 20: 1.5 L/s more for the whole day (mains flushing); the night raises an alarm of
    # about 1.5 L/s, whose estimate then falls to nothing. From day 23 a real leak of 3.3 L/s:
    # under 2 x regrow_from_lps = 4 L/s, so growth alone would never raise the alarm again,
    # but what the alarm was raised for had faded, and 3.3 is over twice that. (The day-shape
    # test is off so that the first alarm is the night's: under a step alarm a new step is
    # sought on its own, see the next test.)
    cfg = replace(CFG, shape_z=0.0)
    flush, leak = range(20 * 24, 21 * 24), 23 * 24

    def extra(i: int) -> float:
        return (1.5 if i in flush else 0.0) + (3.3 if i >= leak else 0.0)

    for seed in (3, 4):
        _, sigs = run(world(seed=seed), extra=extra, cfg=cfg)
        opened, again = kinds(sigs, "open"), kinds(sigs, "regrow")
        assert len(opened) == 1 and opened[0].ts < T0 + 21 * 86400, (seed, opened)
        assert 1.0 < opened[0].size.lps < 2.0, opened[0].size
        assert len(again) == 1, (seed, again)
        assert T0 + leak * 3600 < again[0].ts <= T0 + (leak + 30) * 3600, (seed, again)
        assert "which had faded to" in again[0].detail, again[0].detail
        assert again[0].size.low <= 3.3 <= again[0].size.high, again[0].size
        # without the flushing the same leak is one alarm, as always
        _, alone = run(world(seed=seed), extra=lambda i: 3.3 if i >= leak else 0.0, cfg=cfg)
        assert len(kinds(alone, "open")) == 1 and kinds(alone, "regrow") == [], seed


def test_a_second_leak_under_an_open_step_alarm_is_raised_again() -> None:
    # 2 L/s from day 20, 10:00 (found by the day shapes), then another 1.5 L/s from day 25,
    # 14:00: the estimate (3.5 L/s) stays under regrow_factor x regrow_from_lps = 4 L/s, so
    # only the new step raises the alarm again, on the day it starts
    first, second = 20 * 24 + 10, 25 * 24 + 14

    def leaks(i: int) -> float:
        return (2.0 if i >= first else 0.0) + (1.5 if i >= second else 0.0)

    for seed in (1, 2, 3):
        w = world_unrepresentative(seed)
        _, one = run(w, extra=lambda i: 2.0 if i >= first else 0.0)
        assert kinds(one, "regrow") == [], (seed, kinds(one, "regrow"))  # its own step: no
        _, sigs = run(w, extra=leaks)
        opened, regrown = kinds(sigs, "open"), kinds(sigs, "regrow")
        assert len(opened) == 1 and opened[0].detector == "shape", (seed, opened)
        assert len(regrown) == 1, (seed, regrown)
        again = regrown[0]
        assert again.detector == "shape" and "stepped up again" in again.detail, again
        assert T0 + second * 3600 < again.ts <= T0 + (second + 24) * 3600, seed
        assert 2.8 < again.size.lps < 4.5 and again.size.low <= 3.5 <= again.size.high, again
        # without the search for a new step, the second leak is only a larger estimate
        _, off = run(w, extra=leaks, cfg=replace(CFG, shape_new_z=0.0))
        assert kinds(off, "regrow") == [], seed


def test_a_hot_day_is_not_a_step_for_the_day_shapes() -> None:
    # from day 22 on, every household uses 30 % more (a heat wave that starts at midnight):
    # each day is fitted as its own mix of the shapes, so the new level is no leak
    for seed in (1, 2):
        w = world_unrepresentative(seed)
        hot = w.demand.copy()
        hot[22 * 24 :] *= 1.3
        st, sigs = run(World(hot, w.metered_m3 * 1.0, w.weather, w.unmetered_m3))
        assert [s for s in kinds(sigs, "open") if s.detector == "shape"] == [], seed
        assert len(st.shape_hist) == CFG.shape_days  # it kept learning


def test_the_end_of_a_transfer_into_a_neighbour_is_not_a_step() -> None:
    # for 30 h a neighbour feeds 40 % of this zone through a boundary valve: this zone's
    # meters see less, the neighbour's more; when the valve closes this zone's demand comes
    # back up, a step against the day before, which is no leak
    a, b = 21 * 24 + 8, 22 * 24 + 14
    for seed in (1, 2):
        w = world_unrepresentative(seed)
        other = world(seed=9, mean_lps=30.0)
        moved = np.zeros(w.demand.size)
        moved[a:b] = 0.4 * w.demand[a:b]

        def fed(i: int, m: np.ndarray = moved) -> float:
            return -float(m[i])

        st, sigs = run(w, extra=fed, neighbour=other.demand + moved)
        assert kinds(sigs, "open") == [], (seed, kinds(sigs, "open"))
        assert st.shape_quiet_until < T0 + w.demand.size * 3600.0  # it judges again


def test_the_day_shapes_scatter_is_not_shrunk_at_the_peak_hours() -> None:
    # days made of 4 shapes (two sharp peaks among them) with their own daily mix, plus noise
    # of 3 L/s in every hour: the peak hours weigh most in the learned shapes, and each day's
    # fit pulls their residuals towards zero. Their scatter comes out at 2.6 L/s (a little
    # low: the shapes are learned from the same days); taken without their leverage, at 2.3
    rng = np.random.default_rng(5)
    h = np.arange(24)
    shapes = np.stack([
        SHAPE,
        4 * np.exp(-0.5 * ((h - 19) / 1.2) ** 2) + 0.2,
        4 * np.exp(-0.5 * ((h - 7) / 1.0) ** 2) + 0.2,
        np.where(h < 5, 1.0, 0.2),
    ])  # fmt: skip
    peaks = []
    for _ in range(40):
        mix = rng.uniform(5.0, 15.0, (CFG.shape_days, 4))
        days = mix @ shapes + rng.normal(0.0, 3.0, (CFG.shape_days, 24))
        got = lk._shape_basis([list(d) for d in days], CFG)
        assert got is not None
        basis, sig = got
        lev = np.sum(basis**2, axis=1)
        peaks.append(sig[lev > np.quantile(lev, 0.75)])
    mean = float(np.mean(peaks)) / 3.0
    assert 0.85 < mean < 1.15, mean


def test_a_day_of_supply_cut_is_not_learned_and_does_not_hide_a_leak() -> None:
    # day 20 gets 40 % less water (a supply cut; or water moved out through a boundary valve)
    # while the metered households used as usual; a 1.5 L/s leak starts on day 23. Learned,
    # that day would widen the balance's baseline for two weeks: the leak would look gone
    # within days (the event closed) and be raised a second time later
    start = 23 * 24 + 10
    for seed in (2, 3, 4):
        w = world(seed=seed)
        cut = w.demand.copy()
        cut[20 * 24 : 21 * 24] *= 0.6
        cw = World(cut, w.metered_m3, w.weather, w.unmetered_m3)

        def leak(i: int) -> float:
            return 1.5 if i >= start else 0.0

        for skip in (CFG.low_skip_days, 0):
            cfg = replace(CFG, shape_z=0.0, low_skip_days=skip)
            _, sigs = run(cw, extra=leak, cfg=cfg)
            opened = kinds(sigs, "open")
            # left out: one event; learned: the leak looks gone, closes, and is raised again
            assert (len(opened) == 1) == (skip > 0), (seed, skip, opened)
            assert opened[0].ts <= T0 + (start + 72) * 3600.0, (seed, skip)
            assert bool(kinds(sigs, "close")) == (skip == 0), (seed, skip)


def test_a_night_2_5_sigma_low_is_not_learned_and_does_not_delay_a_leak() -> None:
    # day 20's night gets 2.5 sigma less water (some of it moved out through a boundary
    # valve), too little for a far-low night of 3 sigma. Learned, it widens the night's sigma:
    # a 1.5 L/s leak from day 23 10:00 is found a night later. Nights from 2 sigma below
    # their usual (low_skip_z) are left out, and it is found on its first night
    start = 23 * 24 + 10
    cfg = replace(CFG, shape_z=0.0)
    w = world(seed=5)
    st, _ = run(w, cfg=cfg, hours=range(20 * 24))
    _, sigma, _ = lk._baseline(st.night.hist, cfg)
    low = w.demand.copy()
    low[20 * 24 + 1 : 20 * 24 + 5] -= 2.5 * sigma
    lw = World(low, w.metered_m3, w.weather, w.unmetered_m3)
    found = {}
    for skip in (CFG.low_skip_days, 0):
        _, sigs = run(lw, extra=lambda i: 1.5 if i >= start else 0.0,
                      cfg=replace(cfg, low_skip_days=skip))  # fmt: skip
        opened = kinds(sigs, "open")
        assert len(opened) == 1 and opened[0].detector == "night", (skip, opened)
        found[skip] = (opened[0].ts - T0) / 3600 - start
    assert found[CFG.low_skip_days] <= 24 < found[0] <= 48, found


def test_a_lasting_fall_of_the_demand_is_learned_as_the_new_level() -> None:
    # from day 20 the DMA uses 3 L/s less for good (a leak repaired without telling the rule):
    # the days far below the usual are left out at first, then learned as the new level, so
    # a 2 L/s leak from day 30 is measured against it
    w = world(seed=1)
    low = w.demand - np.where(np.arange(w.demand.size) >= 20 * 24, 3.0, 0.0)
    lw = World(low, w.metered_m3, w.weather, w.unmetered_m3)
    cfg = replace(CFG, shape_z=0.0)
    st, sigs = run(lw, cfg=cfg, hours=range(30 * 24))
    assert kinds(sigs, "open") == []
    assert st.night.low_days == 0  # it counts no more: the new level is learned
    base, _, _ = lk._baseline(st.night.hist, cfg)
    assert base < float(np.mean(low[20 * 24 : 30 * 24].reshape(-1, 24)[:, 1:5])) + 0.5
    _, sigs = run(lw, cfg=cfg, state=st, hours=range(30 * 24, 35 * 24),
                  extra=lambda i: 2.0 if i >= 30 * 24 + 10 else 0.0)  # fmt: skip
    opened = kinds(sigs, "open")
    assert len(opened) == 1 and opened[0].size.low <= 2.0 <= opened[0].size.high, opened


def test_a_false_alarm_no_longer_seen_closes_and_frees_the_dma_for_the_next_leak() -> None:
    # day 17's customer meter reads came in at half (a misread file): the balance sees a
    # 'leak' and opens the event. The next days it is no longer seen. A 2 L/s leak starts on
    # day 23 at 10:00: while the false event is open the day shapes are not searched and the
    # leak only keeps the false event alive. Closed after close_after_days quiet days (3), the
    # DMA is watched again and the leak is raised on the day it starts
    false_day, start = 17, 23 * 24 + 10
    for seed in (1, 3):
        w = world_unrepresentative(seed)
        metered = w.metered_m3.copy()
        metered[false_day] *= 0.5
        misread = World(w.demand, metered, w.weather, w.unmetered_m3)

        def leak(i: int) -> float:
            return 2.0 if i >= start else 0.0

        _, sigs = run(misread, extra=leak)
        opened, closed = kinds(sigs, "open"), kinds(sigs, "close")
        assert [s.detector for s in opened] == ["balance", "shape"], (seed, opened)
        assert len(closed) == 1 and closed[0].ts < T0 + start * 3600, (seed, closed)
        assert "not seen for 3 days" in closed[0].detail
        assert T0 + start * 3600 < opened[1].ts <= T0 + 24 * 86400, (seed, opened[1])
        assert opened[1].size.low <= 2.0 <= opened[1].size.high, (seed, opened[1].size)
        # kept open for a week, the false event hides the leak: it only updates the false
        # alarm's size, and is never raised
        _, week = run(misread, extra=leak, cfg=replace(CFG, close_after_days=7))
        assert [s.detector for s in kinds(week, "open", "regrow")] == ["balance"], seed


# every detector but the balance over the meters' read windows off
ONLY_WINDOWS = replace(
    CFG, shape_z=0, shape_suspect_z=0, burst_z=1e9, h=1e9, reg_h=1e9, trend_z=1e9
)


def test_an_abrupt_leak_is_found_by_the_meters_read_windows_within_a_day() -> None:
    """Meters read once a day at 09:00: a leak from 10:00 is in every meter's window at 09:00
    the next day, 23 h later, while the calendar day's balance is known 26 h after the day
    ends. Without leak, the windows alarm nothing."""
    start = 20 * 24 + 10  # day 20, 10:00
    for seed in (1, 2, 3):
        w = world(seed=seed)
        _, quiet = run(w, cfg=ONLY_WINDOWS, read_h=9)
        assert kinds(quiet, "open", "regrow") == [], seed
        _, sigs = run(w, extra=lambda i: 3.0 if i >= start else 0.0, cfg=ONLY_WINDOWS, read_h=9)
        opened = kinds(sigs, "open")
        assert [s.detector for s in opened] == ["window"], seed
        assert opened[0].ts == T0 + (start + 23) * 3600, seed  # at the 09:00 reads, 23 h in
        assert "read windows" in opened[0].detail and 1.5 < opened[0].size.lps < 4.5
        # turned off, nothing finds it
        _, off = run(
            w, extra=lambda i: 3.0 if i >= start else 0.0, cfg=replace(ONLY_WINDOWS, window_z=0),
            read_h=9,
        )  # fmt: skip
        assert kinds(off, "open") == [], seed


def test_the_read_windows_learn_nothing_of_a_leak_and_resume_after_its_repair() -> None:
    """The windows of the day before an alarm are not learned (they may hold the leak's start);
    after a repair, no window that reaches back before it is judged, and the same leak level
    is not raised again once the windows hold only the repaired flows."""
    w = world(days=40)
    start, fixed = 20 * 24 + 10, 23 * 24 + 12

    def extra(i: int) -> float:
        return 3.0 if start <= i < fixed else 0.0

    st, sigs = run(w, extra=extra, cfg=ONLY_WINDOWS, read_h=9, hours=range(fixed))
    assert [s.detector for s in kinds(sigs, "open")] == ["window"]
    opened = kinds(sigs, "open")[0].ts
    # nothing after the leak's start was learned
    assert all(t <= opened - 86400 for t in st.window.t)
    lk.repaired(st, ONLY_WINDOWS, T0 + fixed * 3600)
    st = lk.LeakState.from_json(json.loads(json.dumps(st.to_json())))
    _, after = run(w, extra=extra, cfg=ONLY_WINDOWS, read_h=9, state=st,
                   hours=range(fixed, w.demand.size))  # fmt: skip
    assert kinds(after, "open", "regrow") == []


HOURLY_LOSSES = replace(CFG, hourly_cusum=True)


def run_hourly_losses(
    losses: np.ndarray, cfg: lk.LeakSettings = HOURLY_LOSSES
) -> list[lk.LeakSignal]:
    """Feed hourly losses (every customer read hourly, their use already taken out hour by
    hour: the balance has nothing more to subtract), as the rule does in that mode."""
    days = losses.size // 24
    w = World(losses, np.zeros(days), np.ones(days), 0.0)
    return run(w, cfg=cfg, meters=0)[1]


def test_hourly_losses_thrown_off_by_a_lost_reading_are_no_leak_but_a_leak_is() -> None:
    """Every customer read hourly: the losses are known hour by hour (4 L/s with 1 L/s of
    scatter). A large customer's lost midnight read puts an hour of its use (60 L/s) on the
    wrong side of midnight, and on the days after, a boundary meter's lost flow sample throws
    one hour off by 35 L/s: the plain day means swing +-2.5 and then stay 1.5 L/s up, a false
    leak. Judged on the hours within 4 robust sigmas of the day's median, they are no leak;
    a real 2 L/s leak from day 28 is still found within a day (by the hourly CUSUM)."""
    for seed in (2, 3, 4):
        rng = np.random.default_rng(seed)
        losses = 4.0 + rng.normal(0.0, 1.0, 40 * 24)
        assert kinds(run_hourly_losses(losses), "open") == [], seed  # the scatter alone
        losses[20 * 24 - 1] += 60.0  # day 19, 23:00: the read that ends it was lost
        losses[20 * 24] -= 60.0
        for day in range(21, 26):
            losses[day * 24 + 6] += 35.0
        plain = run_hourly_losses(losses, replace(HOURLY_LOSSES, hour_outlier_z=0.0))
        assert [s.detector for s in kinds(plain, "open")] == ["balance"], seed  # the flaw
        assert kinds(run_hourly_losses(losses), "open", "regrow") == [], seed
        start = 28 * 24 + 10
        losses[start:] += 2.0
        opened = kinds(run_hourly_losses(losses), "open")
        assert len(opened) == 1 and opened[0].ts <= T0 + (start + 24) * 3600, (seed, opened)
        assert 1.0 < opened[0].size.lps < 3.0, (seed, opened[0].size)


def test_a_night_hour_thrown_off_by_a_lost_reading_is_no_leak_but_a_leak_is() -> None:
    """Hourly losses with a usual pattern over the night (the hours differ by more than
    their day-to-day scatter). On three nights one hour of four is 40 L/s up (a boundary
    meter lost a reading): the plain night mean is 10 L/s up, a false leak. Taken at its
    usual value plus the night's median excess, that hour is no leak; and a 1.5 L/s leak
    that starts in the middle of a night is still found."""
    pattern = np.zeros(24)
    pattern[1:5] = [1.5, 0.5, -0.5, -1.5]  # night hours 01-05: a slope of 3 L/s
    for seed in (2, 3, 4):
        rng = np.random.default_rng(seed)
        losses = 4.0 + np.tile(pattern, 40) + rng.normal(0.0, 0.3, 40 * 24)
        assert kinds(run_hourly_losses(losses), "open") == [], seed
        for day in (22, 23, 24):
            losses[day * 24 + 2] += 40.0
        plain = run_hourly_losses(losses, replace(HOURLY_LOSSES, hour_outlier_z=0.0))
        assert "night" in [s.detector for s in kinds(plain, "open")], seed  # the flaw
        assert kinds(run_hourly_losses(losses), "open", "regrow") == [], seed
        start = 30 * 24 + 3  # 03:00, half-way through the night
        losses[start:] += 1.5
        opened = kinds(run_hourly_losses(losses), "open")
        assert len(opened) == 1 and opened[0].ts <= T0 + (start + 30) * 3600, (seed, opened)
