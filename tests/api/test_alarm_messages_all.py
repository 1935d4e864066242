"""Every message the alarm engine writes is shown in the staff's language.

The engine writes its alarm messages in English; the staff alarm page and the notifications
translate the ones of a known pattern (alarms/messages.py). Two checks:

1. The engine's own messages: the point, offline, health, zone (night flow, water balance,
   burst, customer leak) and flood alarms raised by a real pass over readings in the test
   database, read back from the alarm journal.
2. The message-making sites: every f-string or string the engine files give to an alarm
   (``Signal(..., message)``, ``msg = ...``, ``message=...``, a ZoneSetupError's text, a leak
   detail, the leak rule's ``*_message`` functions) is found in the source with :mod:`ast`,
   filled with sample values (the values of the names it uses when they are written in the
   same function, a number formatted with the f-string's own format) and must translate. A
   new message without a pattern fails here, so it is never shown in English by mistake.

In Uzbek (Latin and Cyrillic) and Russian no English word of the engine may be left, and the
numbers have a decimal comma; a message of an unknown pattern is kept as written.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from alarms import messages
from alarms.engine import FLOOD_THRESHOLD, run_pass
from alarms.messages import translate_message
from alarms.rules import MeterFlag, flag_names
from api.i18n import gettext_for
from tests.alarms.conftest import add_readings, add_rule, make_site, one
from tests.alarms.test_zone import DAYS, START
from tests.alarms.test_zone import _build as build_zone
from tests.api.test_leak_messages import ENGLISH as LEAK_ENGLISH
from tests.test_i18n_complete import ENGLISH as PAGE_ENGLISH

ALARMS = Path(messages.__file__).parent
ENGINE_FILES = ("rules.py", "apply.py", "engine.py", "zone.py", "leak.py", "leakrule.py")
LANGS = ("uz", "uz_Cyrl", "ru")

# the engine's words beyond those of the leak and page checks
MORE_ENGLISH = frozenset(
    """
    above below limit changing hour value moving again stuck quality reports returned normal
    device offline online more than min rule points send watches nothing has several one
    correct district customer tank level sensor size give node exist does input metered
    unmetered estimate norm bills inflow use profile accepted new never read zero lowest
    rate position leakage baseline threshold nrw stayed tampering tamper reverse battery
    dry pipe register run state kind whose names flow its their is a an
    """.split()  # noqa: SIM905 - a word list reads better as words
)
WORD = re.compile(r"\b[A-Za-z]+\b")


def english_left(text: str) -> list[str]:
    """The engine's English words left in a translated message (not counting the names of
    points as the registry writes them, ``FM-T/flow``: data, not ours to translate)."""
    text = re.sub(r"[\w-]+/[\w-]+", " ", text)
    words = [w for w in WORD.findall(text) if w.lower() in PAGE_ENGLISH | MORE_ENGLISH]
    return words + LEAK_ENGLISH.findall(text)


def check_translated(msg: str) -> list[tuple[str, str, str]]:
    """(language, text, why) for every language in which ``msg`` is not fully translated."""
    bad = []
    for lang in LANGS:
        text = translate_message(msg, gettext_for(lang))
        if text == msg:
            bad.append((lang, text, "no pattern knows it"))
        elif left := english_left(text):
            bad.append((lang, text, f"English left: {left}"))
        elif re.search(r"\d\.\d", text) or (
            re.search(r"\d\.\d", msg) and not re.search(r"\d,\d", text)
        ):
            bad.append((lang, text, "no decimal comma"))
    return bad


# ---------------------------------------------------------------- 1. a real pass


def _raise_point_alarms(db: psycopg.Connection[Any]) -> None:
    """Point rules over readings: a low alarm that clears, a flatline that moves again,
    meter flags (tamper, then cleared), an offline device, a point that never sent, and
    more than FLOOD_THRESHOLD alarms at one position (a flood that passes)."""
    t0 = START + timedelta(hours=1)
    s = make_site(db, "msg")
    add_rule(db, "m-low", "low", point_id=s.pressure_point, limit_value=2.0, unit="bar")
    add_rule(db, "m-flat", "flatline", point_id=s.pressure_point, params={"window_s": 600})
    add_readings(
        db,
        s.pressure_point,
        [(t0 + timedelta(minutes=5 * k), v, 0) for k, v in enumerate([3.0, 1.75, 1.75, 1.75, 3.2])],
    )
    add_rule(db, "m-flags", "meter_flags", point_id=s.flags_point)
    add_readings(db, s.flags_point, [(t0, 0.0, 0), (t0 + timedelta(minutes=1), 4.0, 0),
                                     (t0 + timedelta(minutes=2), 0.0, 0)])  # fmt: skip
    add_rule(db, "m-off", "offline", device_id=s.device_id, on_delay_s=900)
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO device_state_history (device_id, ts, state) VALUES (%s, %s, %s)",
            [(s.device_id, t0, "offline"), (s.device_id, t0 + timedelta(hours=1), "online")],
        )
    silent = make_site(db, "silent")
    add_rule(db, "m-silent", "high", point_id=silent.pressure_point, limit_value=9.0)
    pos = one(db, "INSERT INTO alarm_positions (code) VALUES ('msg-pos') RETURNING id")[0]
    for i in range(FLOOD_THRESHOLD + 2):
        f = make_site(db, f"fl{i}")
        add_rule(db, f"m-fl{i}", "low", point_id=f.pressure_point, limit_value=2.0,
                 position_id=pos, unit="bar")  # fmt: skip
        add_readings(db, f.pressure_point, [(t0, 3.0, 0), (t0 + timedelta(seconds=20 * i + 1),
                                                           1.5, 0)])  # fmt: skip


def engine_messages(db: psycopg.Connection[Any]) -> list[str]:
    """Every distinct message of a real live pass over the zone of tests/alarms/test_zone.py
    (a leak from day 10) and the point rules above, then of two later passes: the zone's
    meters silent for a day (health alarm), then reading again (cleared)."""
    ids = build_zone(db)
    _raise_point_alarms(db)
    z = one(db, "INSERT INTO zones (code, name) VALUES ('DMA-E', 'empty') RETURNING id")[0]
    add_rule(db, "m-nothing", "mnf", zone_id=z)  # a zone without a district meter
    end = START + timedelta(days=DAYS, hours=1)
    run_pass(db, end, start=START)
    late = end + timedelta(days=1)
    run_pass(db, late, start=START)  # the zone's points have been silent for 24 h
    fm = one(
        db,
        "SELECT p.id FROM points p JOIN devices d ON d.id = p.device_id "
        "WHERE d.code = 'FM-T' AND p.name = 'flow'",
    )[0]
    add_readings(db, fm, [(late + timedelta(minutes=15 * k), -3.6, 0) for k in range(8)])
    run_pass(db, late + timedelta(hours=3), start=START)
    assert ids["mnf"]
    rows = db.execute(
        "SELECT DISTINCT message FROM alarm_events WHERE run_id = 0 AND message <> '' ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


def test_the_engines_messages_are_translated_for_the_staff(db: psycopg.Connection[Any]) -> None:
    msgs = engine_messages(db)
    made = "\n".join(msgs)
    for start in (
        "night flow ",
        "NRW ",
        "zone losses (inflow - metered use) ",
        "accepted as the new level",
        "never read zero",
        "more than ",
        "alarm rate back to normal",
        "meter reports tamper",
        "returned to normal",
        "below limit",
        "value stuck at",
        "value moving again",
        "device offline for more than",
        "device online",
        "no reading from PSsilent/pressure",
        "the rule watches nothing: zone DMA-E has no district meter",
        "no readings from FM-T/flow",
        "the rule's points send readings again",
    ):
        assert start in made, (start, msgs)
    bad = [(m, b) for m in msgs for b in check_translated(m)]
    assert bad == [], "\n".join(map(str, bad))


def test_a_message_of_an_unknown_pattern_is_kept_as_written() -> None:
    for lang in (*LANGS, "en"):
        tr = gettext_for(lang)
        for msg in ("pump P-1 tripped at 3.5 bar", "zone", "night flow unknown"):
            assert translate_message(msg, tr) == msg
        # a known sentence with an unknown part: the part as written
        why = translate_message("the rule watches nothing: a reason 1.5", tr)
        assert why.endswith(": a reason 1.5") and (lang == "en" or "rule" not in why)
        flags = translate_message("meter reports tamper, new_flag", tr)
        assert flags.endswith(", new_flag")


def test_a_zone_message_reads_in_russian_and_uzbek() -> None:
    msg = (
        "NRW 25.3 % on 2026-03-11: input 250.2 m³, metered 180.1 m³ + 12.5 m³ unmetered "
        "(estimate, from the norm bills), losses 70.1 m³"
    )
    assert translate_message(msg, gettext_for("ru")) == (
        "неучтённая вода 25,3 % за 2026-03-11: подача 250,2 м³, по счётчикам 180,1 м³ + "
        "12,5 м³ без счётчиков (оценка по счетам по нормативу), потери 70,1 м³"
    )
    burst = "zone inflow 2.41 L/s, usual for this hour 0.40 L/s (CUSUM 5.2 > 5)"
    assert translate_message(burst, gettext_for("uz")) == (
        "zona kirim: 2,41 l/s, bu soat uchun odatdagisi 0,40 l/s (CUSUM 5,2 > 5)"
    )


# ---------------------------------------------------------------- 2. the message-making sites


class UnresolvedError(Exception):
    """A value of an f-string the test has no sample for."""


FLAGS = [", ".join(flag_names(int(f))) for f in MeterFlag] + [
    ", ".join(flag_names(int(MeterFlag.TAMPER | MeterFlag.LOW_BATTERY)))
]
SAMPLES: dict[str, list[str]] = {
    # values that are not written in the function that makes the message (names of things
    # as the registry holds them, counts, the caller's arguments)
    "cfg.unit": ["bar", ""],
    "s.quality": ["2"],
    "', '.join(flag_names(bits))": FLAGS,
    "names": ["FM-1/q1, FM-2/q1"],
    "row[0]": ["PS-1/p1"],
    "cp.device_code": ["CM-7"],
    "p.leak_hours": ["24"],
    "FLOOD_THRESHOLD": [str(FLOOD_THRESHOLD)],
    "d": ["2026-03-05"],
    "zone_id": ["17"],
    "args['zcode']": ["DMA-7"],
    "d.code": ["FM-1"],
    "named": ["q2"],
    "volume_point": ["v2"],
    "missing[0]": ["DMA-9"],
    "node": ["T-1"],
    "setting": ["flow_point", "volume_point", "level_point", "pump_point"],
    "what": ["flow", "volume register", "level", "run state"],
    "', '.join(sorted(by_name))": ["q1, v1"],
    "', '.join((f'{p.name} ({p.unit or p.kind})' for p in d.points))": ["q1 (m3/h), v1 (m3)"],
    "name": ["night", "balance"],
    "cfg.trend_days": ["5"],
    "cfg.close_after_days": ["3"],
    "learned": ["3"],
    "p.history_days(rule.kind)": ["7"],
    "len(st.shape_hist)": ["19"],
    "days": ["14"],  # the window detector: whole days of hours its line stands on
    "st.burst_hits": ["6"],
    "s.detector": ["shape"],
    "user": ["dilnoza"],
    "comment": ["qisqich qoʻyildi"],
}
"""Sample values by the source text of the expression (``ast.unparse``)."""


@dataclass(frozen=True)
class Site:
    file: str
    line: int
    kind: str  # message, setup (a ZoneSetupError's text) or detail (a leak detail)
    node: ast.expr
    scope: ast.AST


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _scopes(tree: ast.Module) -> Iterator[tuple[ast.AST, ast.AST]]:
    """(node, its innermost function) for every node of the module."""

    def walk(node: ast.AST, scope: ast.AST) -> Iterator[tuple[ast.AST, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef) else scope
            yield child, inner
            yield from walk(child, inner)

    yield from walk(tree, tree)


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _str_method(node: ast.Call) -> bool:
    """A string's own method on a written string (``f"...".replace("  ", " ")``)."""
    f = node.func
    return (
        isinstance(f, ast.Attribute)
        and f.attr in ("replace", "strip")
        and isinstance(f.value, ast.JoinedStr | ast.Constant)
    )


def message_sites(path: Path) -> list[Site]:
    """Where the file makes an alarm message (or a part of one)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []

    def add(kind: str, node: ast.expr | None, scope: ast.AST) -> None:
        if node is not None:
            out.append(Site(path.name, node.lineno, kind, node, scope))

    def arg(call: ast.Call, i: int, kw: str) -> ast.expr | None:
        if len(call.args) > i:
            return call.args[i]
        return next((k.value for k in call.keywords if k.arg == kw), None)

    for node, scope in _scopes(tree):
        if isinstance(node, ast.Call):
            name = _call_name(node)
            if name == "Signal":
                add("message", arg(node, 4, "message"), scope)
            elif name in ("set_health", "write_transition"):
                add("message", arg(node, 99, "message"), scope)
            elif name == "ZoneSetupError":
                add("setup", arg(node, 0, "message"), scope)
            elif name in ("LeakSignal", "_open"):
                add("detail", arg(node, 4, "detail"), scope)
        elif (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "msg" for t in node.targets)
        ) or (
            isinstance(node, ast.Return)
            and isinstance(scope, ast.FunctionDef)
            and scope.name.endswith("_message")
        ):
            add("message", node.value, scope)
    return out


class Renderer:
    """The texts an expression of the engine can make, with sample values."""

    def __init__(self, tree: ast.Module, samples: dict[str, list[str]]) -> None:
        self.functions = _functions(tree)
        self.samples = samples

    def texts(self, node: ast.expr, scope: ast.AST) -> list[str]:
        """Every text ``node`` makes; a name, attribute or call given on as a whole (``msg``,
        ``sig.message``, ``open_message(s)``) is made elsewhere and makes none here."""
        if isinstance(node, ast.IfExp):
            return self.texts(node.body, scope) + self.texts(node.orelse, scope)
        if isinstance(node, ast.Name | ast.Attribute) or (
            isinstance(node, ast.Call) and not _str_method(node)
        ):
            return []
        return [t for t in self.render(node, scope) if t]

    def render(self, node: ast.expr, scope: ast.AST) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.JoinedStr):
            parts = [self._part(v, scope) for v in node.values]
            return ["".join(p) for p in itertools.product(*parts)]
        if isinstance(node, ast.IfExp):
            return self.render(node.body, scope) + self.render(node.orelse, scope)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            a, b = self.render(node.left, scope), self.render(node.right, scope)
            return [x + y for x in a for y in b]
        if isinstance(node, ast.BoolOp):  # x or "no points"
            return [t for v in node.values for t in self.render(v, scope)]
        if isinstance(node, ast.Call) and _str_method(node):  # f"...".replace("  ", " ")
            assert isinstance(node.func, ast.Attribute)
            args = [ast.literal_eval(a) for a in node.args]
            return [getattr(t, node.func.attr)(*args) for t in self.render(node.func.value, scope)]
        if isinstance(node, ast.Name) and (got := self._assigned(node.id, scope)):
            return got
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            fn = self.functions.get(node.func.id)
            if fn is not None:
                returns = [r.value for r in ast.walk(fn) if isinstance(r, ast.Return) and r.value]
                return [t for r in returns for t in self.render(r, fn)]
        key = ast.unparse(node)
        if key in self.samples:
            return self.samples[key]
        raise UnresolvedError(key)

    def _assigned(self, name: str, scope: ast.AST) -> list[str]:
        """The texts of the string values ``name`` is given in the function."""
        out: list[str] = []
        for n in ast.walk(scope):
            if isinstance(n, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in n.targets
            ):
                try:
                    out += self.render(n.value, scope)
                except UnresolvedError:
                    continue
        return out

    def _part(self, v: ast.expr, scope: ast.AST) -> list[str]:
        if isinstance(v, ast.Constant):
            return [str(v.value)]
        assert isinstance(v, ast.FormattedValue)
        spec = ""
        if v.format_spec is not None:
            assert isinstance(v.format_spec, ast.JoinedStr)
            spec = "".join(
                str(c.value) for c in v.format_spec.values if isinstance(c, ast.Constant)
            )
        if spec:  # a number, as the f-string formats it
            return [format(7, spec)] if spec.endswith("d") else [format(12.25, spec)]
        got = self.render(v.value, scope)
        return [repr(x) for x in got] if v.conversion == ord("r") else got


def site_texts() -> list[tuple[Site, str]]:
    """(site, text) for every message the engine files can make. The texts of the zone setup
    errors and the leak details are the samples of the messages that carry them."""
    sites = {f: message_sites(ALARMS / f) for f in ENGINE_FILES}
    trees = {f: ast.parse((ALARMS / f).read_text(encoding="utf-8")) for f in ENGINE_FILES}
    samples = dict(SAMPLES)
    out: list[tuple[Site, str]] = []
    for kind, key in (("setup", "exc"), ("detail", "s.detail")):
        parts = []
        for f, ss in sites.items():
            r = Renderer(trees[f], samples)
            parts += [t for s in ss if s.kind == kind for t in r.texts(s.node, s.scope)]
        assert parts, kind
        samples[key] = parts
    for f, ss in sites.items():
        r = Renderer(trees[f], samples)
        out += [(s, t) for s in ss if s.kind == "message" for t in r.texts(s.node, s.scope)]
    return out


def test_the_sites_are_found() -> None:
    """The search finds the messages of every kind of alarm (a change of the engine's code
    that hides them from it fails here, not silently)."""
    texts = [t for _, t in site_texts()]
    found = "\n".join(texts)
    for part in (
        "12.25 bar above limit 12.25 bar",  # rules.py
        "returned to normal",
        "device offline for more than 12.25 min",
        "no readings from FM-1/q1, FM-2/q1 for more than 12.25 h",  # apply.py
        "the rule's points send readings again",
        "night flow 12.25 L/s, night leakage",  # engine.py
        "NRW 12.2 % on 2026-03-05",
        "unmetered (estimate, from the norm bills)",
        "zone losses (inflow - metered use) 12.25 L/s",
        "zone inflow back to its usual profile",
        "meter CM-7 never read zero for 24 h",
        "alarm rate back to normal",
        "the rule watches nothing: FM-1 has no level point (it has: no points)",  # zone.py
        "the rule watches nothing: tank T-1",
        "; found by shape: demand stepped up 12.25 L/s at 07:07 yesterday",  # leak*.py
        "(demand stepped up again 12.25 L/s at 07:07 today (z 12.2 > 12.25))",
        "leak repaired by dilnoza: qisqich",
    ):
        assert part in found, part
    assert len(texts) > 60


def test_every_message_the_engine_can_make_is_translated() -> None:
    bad = [
        (f"{s.file}:{s.line}", text, b) for s, text in site_texts() for b in check_translated(text)
    ]
    assert bad == [], "\n".join(map(str, bad))


def test_a_new_message_is_caught(tmp_path: Path) -> None:
    """A message the tables do not know, written the way the engine writes its own, is
    found and reported."""
    src = tmp_path / "engine.py"
    src.write_text(
        "def f(code, v):\n"
        "    msg = f'pump {code} tripped at {v:.1f} bar'\n"
        "    apply_signal(conn, rule, st, Signal('condition', True, 0.0, v, msg), res)\n",
        encoding="utf-8",
    )
    sites = message_sites(src)
    assert sorted((s.file, s.line) for s in sites) == [("engine.py", 2), ("engine.py", 3)]
    r = Renderer(ast.parse(src.read_text(encoding="utf-8")), {"code": ["P-1"]})
    texts = [t for s in sites for t in r.texts(s.node, s.scope)]  # msg: made on line 2
    assert texts == ["pump P-1 tripped at 12.2 bar"]
    assert [b[2] for b in check_translated(texts[0])] == ["no pattern knows it"] * 3
