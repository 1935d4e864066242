"""bench.leak_screen: the detector inputs it records replay to the alarms the real replay made.

One short rural scenario runs as the benchmark runs it (a database made from the migrated
template, the readings imported with ``suvnet readings import``, ``alarms.actions.replay``)
while the leak rule's inputs are recorded. Fed back to the detector, those inputs must give
the very alarms that replay wrote to the database; a setting changed on the screen must change
what it finds.
"""

from __future__ import annotations

import itertools
import json
import math
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import leak_detection as bl
from bench import leak_screen as ls
from bench.common import server_url, with_db

# sparse seed 1005 over 24 days: a leak that starts on day 20 in DMA1, found the next day
FAMILY, SEED, DAYS = "sparse", 1005, 24


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("screen")
    server = server_url()
    tpl = bl.template(server)
    case, sc = bl.make_case(FAMILY, SEED, "bench", DAYS)
    name = bl.fresh_db(server, tpl)
    try:
        rec = ls.record_case(case, sc, with_db(server, name), out)
    finally:
        bl.drop_db(server, name)
    rec["label"] = ""
    path = out / f"{FAMILY}-{SEED}.pkl"
    path.write_bytes(pickle.dumps(rec))
    return path


def test_the_recorded_inputs_replay_to_the_alarms_of_the_real_replay(recorded: Path) -> None:
    rec = pickle.loads(recorded.read_bytes())
    case = rec["case"]
    assert case.leak is not None and case.leak.start_s < DAYS * bl.DAY
    assert set(rec["calls"]) == {f"{z}-leak" for z in case.dmas}
    # every DMA got every hour (the last one is not complete at the end of the data) and
    # its nights and days
    for calls in rec["calls"].values():
        names = [c[0] for c in calls]
        assert DAYS * 24 - 2 <= names.count("hour_step") <= DAYS * 24
        assert names.count("night_step") >= DAYS - 2
        assert names.count("balance_step") >= DAYS - 3
    leak_alarms = [a for a in rec["alarms"] if a[0] == case.leak.dma]
    assert leak_alarms, rec["alarms"]  # the real replay found the leak
    alarms, sizes = ls.replay_calls(rec, {})
    assert alarms == rec["alarms"]
    assert sizes == rec["sizes"]


def test_a_setting_changed_on_the_screen_changes_what_is_found(recorded: Path) -> None:
    rec = pickle.loads(recorded.read_bytes())
    # with 30 days of history needed before it may alarm, nothing is found in 24 days
    alarms, _ = ls.replay_calls(rec, ls.parse_sets(["min_history_days=30"]))
    assert alarms == []
    with pytest.raises(SystemExit, match="name=value with a name of"):
        ls.parse_sets(["shape_zz=7"])
    with pytest.raises(SystemExit, match="is not a float"):
        ls.parse_sets(["shape_z=high"])


def test_a_setting_left_at_its_default_follows_the_detector_screened(recorded: Path) -> None:
    # a recording made when min_history_days defaulted to 30 (so nothing was found): a rule
    # that left it at its default is screened with today's default, and finds the leak
    rec = pickle.loads(recorded.read_bytes())
    for cfg in rec["cfgs"].values():
        cfg["min_history_days"] = 30
    rec["defaults"]["min_history_days"] = 30
    alarms, _ = ls.replay_calls(rec, {})
    assert alarms and any(z == rec["case"].leak.dma for z, _, _ in alarms), alarms
    # a rule that set it itself keeps its own value
    rec["defaults"]["min_history_days"] = 10
    assert ls.replay_calls(rec, {})[0] == []
    # a recording without the defaults keeps every recorded setting
    del rec["defaults"]
    assert ls.replay_calls(rec, {})[0] == []


def test_the_screen_prints_both_runs_side_by_side(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = SimpleNamespace(
        dir=str(recorded.parent), set=["min_history_days=30"], quick=False, verbose=True, jobs=1
    )
    ls.cmd_screen(args)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    figures = json.loads(last)
    assert figures["recorded"][FAMILY]["detection_72h"] == 1.0
    assert figures["screened"][FAMILY]["detection_72h"] == 0.0
    assert figures["detection_ratio"] == 0.0
    assert f"{FAMILY}-{SEED} (leak in {rec_dma(recorded)}" in out


def rec_dma(path: Path) -> str:
    return str(pickle.loads(path.read_bytes())["case"].leak.dma)


def test_the_trace_shows_the_verdict_that_opened_the_leak_alarm(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = pickle.loads(recorded.read_bytes())
    leak = rec["case"].leak
    first = min(t for z, _, t in rec["alarms"] if z == leak.dma) / bl.DAY
    lines = list(ls.trace_lines(rec, leak.dma, {}, (0.0, math.inf)))
    nights = [ln for ln in lines if "  night " in ln]
    assert len(nights) >= DAYS - 2 - 10  # judged once the 10 days of history are learned
    opened = [ln for ln in lines if "SIGNAL open" in ln]
    assert len(opened) == 1 and f"day {first:6.2f}" in opened[0], (first, opened)
    # the event is open from the verdict that opened it on, and on none before it
    for ln in lines:
        if "SIGNAL" not in ln:
            assert ("event open" in ln) == (float(ln.split()[1]) >= round(first, 2)), ln
    # with 30 days of history needed, nothing opens
    assert not any("SIGNAL open" in ln for ln in ls.trace_lines(
        rec, leak.dma, ls.parse_sets(["min_history_days=30"]), (0.0, math.inf)))  # fmt: skip
    with pytest.raises(SystemExit, match=r"no leak rule of zone 'DMA9'.*DMA1"):
        list(ls.trace_lines(rec, "DMA9", {}, (0.0, math.inf)))
    # the command prints the leak and the lines of the days asked for
    args = SimpleNamespace(
        file=str(recorded), zone=None, set=[], from_day=first, to_day=first, windows=False
    )
    ls.cmd_trace(args)  # type: ignore[arg-type]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{FAMILY}-{SEED}: leak of") and f"tracing {leak.dma}" in out[0]
    assert out[1:] and all(f"day {first:6.2f}" in ln for ln in out[1:]), out


def test_the_trace_shows_each_hours_window_verdict_when_asked(recorded: Path) -> None:
    rec = pickle.loads(recorded.read_bytes())
    dma = rec["case"].leak.dma
    plain = list(ls.trace_lines(rec, dma, {}, (0.0, math.inf)))
    lines = list(ls.trace_lines(rec, dma, {}, (0.0, math.inf), windows=True))
    win = [ln for ln in lines if "  window " in ln]
    assert not any("  window " in ln for ln in plain)
    assert [ln for ln in lines if "  window " not in ln] == plain
    # one verdict an hour once the windows' line is learned, with no CUSUM (there is none)
    days = [float(ln.split()[1]) for ln in win]
    assert len(win) >= 24 * 5 and all("CUSUM" not in ln for ln in win), win[:3]
    assert all(b - a > 0.03 for a, b in itertools.pairwise(days))  # days to 2 decimals
    # the verdicts are the detector's own: with the windows' floor of sigma at 50 % of the
    # inflow, every z is under 2
    high = list(ls.trace_lines(rec, dma, ls.parse_sets(["window_min_sigma_pct=50"]),
                               (0.0, math.inf), windows=True))  # fmt: skip
    zs = [float(ln.split(" z ")[1].split()[0]) for ln in high if "  window " in ln]
    assert zs and max(zs) < 2 < max(float(ln.split(" z ")[1].split()[0]) for ln in win)


def test_the_fresh_seeds_follow_the_benchmarks_own_and_never_repeat_them() -> None:
    own = ls.case_seeds(["sparse", "tank"], 12, 8)
    fresh = ls.case_seeds(["sparse", "tank"], 12, 8, fresh=True)
    assert len(fresh) == len(own) == 40 and not {s for *_, s in own} & {s for *_, s in fresh}
    assert ("", "sparse", 1012) in fresh and ("heldout_", "tank", 7015) in fresh
    assert ("", "tank", 1011) in own and ("heldout_", "sparse", 7007) in own
    # a labelled held-out seed has the held-out noise: the label follows the seed set
    assert {lab for lab, _, s in fresh if s >= bl.HELDOUT_SEED} == {"heldout_"}
