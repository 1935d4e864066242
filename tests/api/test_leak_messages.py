"""The leak rule's alarm messages are shown in the staff's language.

The engine writes them in English (alarms/leakrule.py); the staff alarm page translates the
ones of a known pattern (api/web/staff_alarms.py). The messages here are the engine's own:
made by the detector on a synthetic DMA and put into words by the rule's message functions,
so a change of the engine's wording that the page does not know fails here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from alarms import leak as lk
from alarms import leakrule as lr
from alarms.messages import translate_message
from api.i18n import gettext_for
from api.web.staff_alarms import figures_kept_whole
from tests.alarms.test_leak import (
    CFG,
    ONLY_WINDOWS,
    kinds,
    run,
    world,
    world_unrepresentative,
)

# words of the engine's English that must not be left on an Uzbek or Russian page
ENGLISH = re.compile(
    r"\b(leak|about|day|between|found|by|demand|stepped|up|stayed|against|shapes|last|days|"
    r"today|yesterday|usual|level|above|its|their|night|balance|losses|rising|now|grown|"
    r"from|seen|estimate|repaired|hour|burst|shape|flow|the|and|for|of|at|inflow|over|"
    r"customer|meters|read|windows|what|use|predicts|hours|window)\b",
    re.I,
)


def engine_messages() -> list[str]:
    """Messages of every kind the leak rule writes, from real detector signals."""
    start = 20 * 24 + 10

    def step(lps: float) -> Callable[[int], float]:
        return lambda i: lps if i >= start else 0.0

    def grows(i: int) -> float:  # a small leak, then a big one under its alarm
        return (1.5 if i >= 18 * 24 + 12 else 0.0) + (8.0 if i >= 19 * 24 + 14 else 0.0)

    sigs: list[lk.LeakSignal] = []
    for w, extra, cfg in (
        (world_unrepresentative(1), step(2.0), CFG),  # found by the day shapes
        (world(), step(9.0), replace(CFG, shape_z=0.0)),  # the burst test
        (world_unrepresentative(1), step(2.0), replace(CFG, shape_z=0.0, burst_z=1e9)),  # a day
        (world(), grows, CFG),  # raised again
    ):
        sigs += run(w, extra=extra, cfg=cfg)[1]
    sigs += run(world(), extra=step(3.0), cfg=ONLY_WINDOWS, read_h=9)[1]  # the read windows
    out = [lr.open_message(s) for s in kinds(sigs, "open")]
    out += [lr.grown_message(s) for s in kinds(sigs, "regrow")]
    gone = lk.LeakSignal("close", 0.0, "night", lk.Size(0.4, 0.0, 1.2), "not seen for 7 days")
    out += [lr.gone_message(gone), lr.repaired_message("dilnoza", "clamp on the main")]
    out.append(lr.repaired_message("dilnoza", None))
    return out


def test_the_leak_rules_messages_are_translated_for_the_staff() -> None:
    msgs = engine_messages()
    detectors = {m.split("found by ")[1].split(":")[0] for m in msgs if "found by" in m}
    assert {"shape", "burst", "window"} <= detectors and detectors & {"night", "balance"}, msgs
    assert any(m.startswith("the leak has grown") for m in msgs), msgs
    for lang in ("uz", "uz_Cyrl", "ru"):
        tr = gettext_for(lang)
        for m in msgs:
            text = translate_message(m, tr)
            # the user's comment is theirs, not ours to translate
            left = ENGLISH.findall(text.replace("clamp on the main", ""))
            assert not left, (lang, m, text, left)
            assert (
                re.search(r"\d,\d", text)
                or "ta'mir" in text
                or "таъмир" in text
                or ("устранил" in text)
            ), (lang, text)  # decimal comma


def test_a_shape_alarm_reads_in_uzbek_and_russian() -> None:
    s = lk.LeakSignal(
        "open", 0.0, "shape", lk.Size(2.26, 1.38, 3.14),
        "demand stepped up 2.26 L/s at 10:00 today and stayed up (z 8.4 > 8), against the "
        "shapes of the last 19 days",
    )  # fmt: skip
    msg = lr.open_message(s)
    assert translate_message(msg, gettext_for("uz")) == (
        "sizib chiqish taxminan 2,3 l/s (kuniga 195 m³; 90 % ehtimol bilan 1,4 dan 3,1 l/s "
        "gacha), aniqlagan: kunlik shakl testi: iste'mol bugun soat 10:00 da 2,26 l/s ga oshdi "
        "va pasaymadi (z 8,4 > 8), oxirgi 19 kunlik shakllarga nisbatan"
    )
    assert translate_message(msg, gettext_for("ru")).startswith(
        "утечка около 2,3 л/с (195 м³ в сутки; с вероятностью 90 % от 1,4 до 3,1 л/с), "
        "обнаружил: тест суточного профиля: расход вырос на 2,26 л/с сегодня в 10:00"
    )
    # an unknown detail is shown as written, inside the translated sentence
    odd = lr.open_message(lk.LeakSignal("open", 0.0, "night", s.size, "something new"))
    assert translate_message(odd, gettext_for("uz")).endswith("tungi oqim: something new")


def test_the_alarm_page_keeps_each_flow_and_its_unit_on_one_line() -> None:
    ru = "утечка около 24,14 л/с (2 086 м³ в сутки; от -1,5 до 3,1 л/с) <b>&</b>"
    assert str(figures_kept_whole(ru)) == (
        'утечка около <span class="nowrap">24,14 л/с</span> ('
        '<span class="nowrap">2 086 м³</span> в сутки; от '
        '-1,5 до <span class="nowrap">3,1 л/с</span>) &lt;b&gt;&amp;&lt;/b&gt;'
    )
    # a message with no flow, or with markup only, is escaped and nothing else
    assert str(figures_kept_whole("<script>x</script> 3 bar")) == (
        "&lt;script&gt;x&lt;/script&gt; 3 bar"
    )
    assert str(figures_kept_whole("2 l/s <i>")) == '<span class="nowrap">2 l/s</span> &lt;i&gt;'
    # a score and its limit are kept whole too ("(z" must not end a line); "siz 3" is a word
    assert str(figures_kept_whole("(z 6,3 >= 4) (z -1, 4 dan past) siz 3 (CUSUM 3,1 > 2)")) == (
        '(<span class="nowrap">z 6,3</span> <span class="nowrap">&gt;= 4</span>) '
        '(<span class="nowrap">z -1</span>, 4 dan past) siz 3 '
        '(<span class="nowrap">CUSUM 3,1</span> <span class="nowrap">&gt; 2</span>)'
    )
