"""Alarm texts for people, in their language: the staff alarm page (:mod:`api.web.staff_alarms`)
and the notifications (:mod:`alarms.notify`) share these tables and functions.

The alarm engine writes its messages in English (alarms/rules.py, alarms/apply.py,
alarms/engine.py, alarms/zone.py, alarms/leakrule.py). :func:`translate_message` turns the
ones of a known pattern (the point rules' "3.2 bar above limit 3 bar", the health alarms' "no
readings from ... for more than 2 h" and "the rule watches nothing: <why>", the zone rules'
night flow, water balance, burst and customer leak messages, the flood alarm's, and the leak
rule's "leak about 2.4 L/s (...); found by shape: demand stepped up ...", its size, detector
and detail each translated) into the reader's language with a decimal comma; any other
message, or part, is kept as it was written. tests/api/test_alarm_messages_all.py finds the
engine's message f-strings in those files and fails on one no pattern here knows.
:func:`notification` puts a whole notification (priority, event, state, message, who and
why) into words. Every function takes a gettext translations object:
the catalogs are ``api/locale/<lang>/LC_MESSAGES/messages.po``, loaded by :func:`catalog`
(through :mod:`api.i18n`, which compiles them).
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api import i18n

LANGUAGES = ("uz", "uz_Cyrl", "ru", "en")
"""The languages of the catalogs (the same as :data:`api.i18n.CODES`)."""
DEFAULT_LANGUAGE = "uz"


def N_(msgid: str) -> str:  # noqa: N802 - the gettext marker for babel's extraction
    return msgid


PRIORITY = {
    "urgent": N_("Urgent"),
    "high": N_("High"),
    "medium": N_("Medium"),
    "low": N_("Low"),
}
STATE = {
    "normal": N_("Normal"),
    "unack": N_("Unacknowledged"),
    "ack": N_("Acknowledged"),
    "rtn_unack": N_("Cleared, not acknowledged"),
    "shelved": N_("Shelved"),
    "suppressed": N_("Suppressed"),
    "out_of_service": N_("Out of service"),
}
KIND = {
    "high": N_("Above the limit"),
    "low": N_("Below the limit"),
    "high_high": N_("Far above the limit"),
    "low_low": N_("Far below the limit"),
    "rate_of_change": N_("Changing too fast"),
    "flatline": N_("Reading does not change"),
    "offline": N_("No readings"),
    "meter_flags": N_("Meter reports a fault"),
    "service_min": N_("Below the service pressure"),
    "mnf": N_("Night flow too high"),
    "water_balance": N_("Water balance: losses"),
    "burst": N_("Burst"),
    "customer_leak": N_("Leak at a customer"),
    "leak": N_("Leak"),
    "flood": N_("Alarm flood"),
}


def _num(text: str, tr: gettext.NullTranslations | None = None) -> str:
    """A number as the engine wrote it (``3.25``), with a decimal comma."""
    return text.replace(".", ",")


def _as_is(text: str, tr: gettext.NullTranslations) -> str:
    return text


Convert = Callable[[str, gettext.NullTranslations], str]
"""How a value of a message is shown: the value as written and the reader's translations."""
Known = tuple[tuple[re.Pattern[str], str, dict[str, Convert]], ...]
"""Patterns of the engine's English, their catalog sentences and how to show each value."""


def _words(table: Mapping[str, str]) -> Convert:
    """A value that is a list of the engine's words (``tamper, low_battery``): each word the
    table knows translated, any other kept."""

    def convert(text: str, tr: gettext.NullTranslations) -> str:
        return ", ".join(tr.gettext(table[w]) if w in table else w for w in text.split(", "))

    return convert


def _part(table: Known) -> Convert:
    """A value that is itself a message of the engine (``the rule watches nothing: <why>``):
    translated by ``table``'s patterns when known, else kept."""

    def convert(text: str, tr: gettext.NullTranslations) -> str:
        return _known(table, text, tr) or text

    return convert


FLAG = {
    "leak": N_("leak"),
    "burst": N_("burst"),
    "tamper": N_("tampering"),
    "reverse": N_("reverse flow"),
    "low_battery": N_("low battery"),
    "dry_pipe": N_("dry pipe"),
}
"""The meter's flags (alarms.rules.MeterFlag, as ``flag_names`` writes them)."""
ZONE_FLOW = {
    "inflow": N_("inflow"),
    "losses (inflow - metered use)": N_("losses (inflow less metered use)"),
}
"""What the zone burst rule watches (alarms/engine.py, ``what``)."""
POINT_KIND = {
    "flow": N_("flow"),
    "volume register": N_("volume register"),
    "level": N_("level"),
    "run state": N_("run state"),
}
"""The kinds of point a zone rule looks for (alarms/zone.py, ``_pick``'s ``what``)."""
NO_POINTS = {"no points": N_("no points")}

_X = r"-?(?:[\d.]+(?:e[+-]?\d+)?|nan|inf)"
"""A number as the zone rules write it (``:.2f``, ``:g``; ``nan`` when there is none)."""
SETUP: Known = tuple(
    (re.compile(rx), msgid, convert)
    for rx, msgid, convert in (
        (r"^zone (?P<zone>.+) does not exist$", N_("zone %(zone)s does not exist"), {}),
        (
            (
                r"^(?P<dev>\S+) has no point (?P<name>'[^']*'|\"[^\"]*\") "
                r"\(it has: (?P<have>.*)\); correct params\.(?P<setting>\w+)$"
            ),
            N_("%(dev)s has no point %(name)s (it has: %(have)s); correct params.%(setting)s"),
            {"have": _words(NO_POINTS)},
        ),
        (
            (
                r"^(?P<dev>\S+) has several (?P<what>.+?) points \((?P<have>.*)\): name one in "
                r"params\.(?P<setting>\w+)$"
            ),
            N_("%(dev)s has several %(what)s points (%(have)s): name one in params.%(setting)s"),
            {"what": _words(POINT_KIND), "have": _words(NO_POINTS)},
        ),
        (
            (
                r"^(?P<dev>\S+) has no (?P<what>.+?) point \(it has: (?P<have>.*)\); name one in "
                r"params\.(?P<setting>\w+)$"
            ),
            N_("%(dev)s has no %(what)s point (it has: %(have)s); name one in params.%(setting)s"),
            {"what": _words(POINT_KIND), "have": _words(NO_POINTS)},
        ),
        (
            (
                r"^zone (?P<zone>.+) has no district meter \(a device of kind district_meter in "
                r"the zone, or one whose attrs\.zone_signs names the zone\)$"
            ),
            N_(
                "zone %(zone)s has no district meter (a device of kind district_meter in the "
                "zone, or one whose attrs.zone_signs names the zone)"
            ),
            {},
        ),
        (
            r"^zone (?P<zone>.+) has no customer meter with a point (?P<name>'[^']*'|\"[^\"]*\")$",
            N_("zone %(zone)s has no customer meter with a point %(name)s"),
            {},
        ),
        (
            r"^zone (?P<zone>.+) has no customer meter with a volume register$",
            N_("zone %(zone)s has no customer meter with a volume register"),
            {},
        ),
        (
            (
                r"^tank (?P<tank>.+) \(level sensor (?P<dev>.+)\) has no size: give the node "
                r"attrs\.diameter_m or the device attrs\.tank_area_m2$"
            ),
            N_(
                "tank %(tank)s (level sensor %(dev)s) has no size: give the node "
                "attrs.diameter_m or the device attrs.tank_area_m2"
            ),
            {},
        ),
        (
            r"^params\.neighbours: no zone (?P<zone>.+)$",
            N_("params.neighbours: no zone %(zone)s"),
            {},
        ),
        (
            r"^no district meter of the zone has a flow point$",
            N_("no district meter of the zone has a flow point"),
            {},
        ),
    )
)
"""Why a zone rule watches nothing (alarms/zone.py's ZoneSetupError messages)."""

_BALANCE = (
    rf"^NRW (?P<pct>{_X}) % on (?P<day>\d{{4}}-\d\d-\d\d): input (?P<inp>{_X}) m³, metered "
    rf"(?P<met>{_X}) m³"
)
_BALANCE_END = rf", losses (?P<loss>{_X}) m³$"
_UNMETERED = rf" \+ (?P<est>{_X}) m³ unmetered \(estimate"
ZONE_MESSAGES: Known = tuple(
    # every number with a decimal comma; a zone's, meter's or day's name as written
    (rx, msgid, {**{k: _num for k in rx.groupindex if k in nums}, **convert})
    for rx, msgid, nums, convert in (
        (re.compile(pattern), m, n, c)
        for pattern, m, n, c in (
            (
                (
                    rf"^night flow (?P<mnf>{_X}) L/s, night leakage (?P<leak>{_X}) L/s is "
                    rf"(?P<ex>{_X}) L/s above its baseline \(threshold (?P<thr>{_X}) L/s\)$"
                ),
                N_(
                    "night flow %(mnf)s L/s, night leakage %(leak)s L/s is %(ex)s L/s above its "
                    "baseline (threshold %(thr)s L/s)"
                ),
                ("mnf", "leak", "ex", "thr"),
                {},
            ),
            (
                (
                    rf"^night flow (?P<mnf>{_X}) L/s, night leakage (?P<leak>{_X}) L/s; its "
                    r"baseline is learned from (?P<n>\d+) of (?P<m>\d+) nights so far$"
                ),
                N_(
                    "night flow %(mnf)s L/s, night leakage %(leak)s L/s; its baseline is "
                    "learned from %(n)s of %(m)s nights so far"
                ),
                ("mnf", "leak"),
                {},
            ),
            (
                _BALANCE + _BALANCE_END,
                N_(
                    "NRW %(pct)s %% on %(day)s: input %(inp)s m³, metered %(met)s m³, losses "
                    "%(loss)s m³"
                ),
                ("pct", "inp", "met", "loss"),
                {},
            ),
            (
                _BALANCE + _UNMETERED + r"\)" + _BALANCE_END,
                N_(
                    "NRW %(pct)s %% on %(day)s: input %(inp)s m³, metered %(met)s m³ + %(est)s "
                    "m³ unmetered (estimate), losses %(loss)s m³"
                ),
                ("pct", "inp", "met", "est", "loss"),
                {},
            ),
            (
                _BALANCE + _UNMETERED + r", from the norm bills\)" + _BALANCE_END,
                N_(
                    "NRW %(pct)s %% on %(day)s: input %(inp)s m³, metered %(met)s m³ + %(est)s "
                    "m³ unmetered (estimate, from the norm bills), losses %(loss)s m³"
                ),
                ("pct", "inp", "met", "est", "loss"),
                {},
            ),
            (
                (
                    rf"^zone (?P<what>.+?) (?P<v>{_X}) L/s, usual for this hour (?P<u>{_X}) L/s "
                    rf"\(CUSUM (?P<s>{_X}) > (?P<h>{_X})\)$"
                ),
                N_("zone %(what)s %(v)s L/s, usual for this hour %(u)s L/s (CUSUM %(s)s > %(h)s)"),
                ("v", "u", "s", "h"),
                {"what": _words(ZONE_FLOW)},
            ),
            (
                (
                    rf"^zone (?P<what>.+?) has stayed (?P<shift>{_X}) L/s above its profile for "
                    rf"(?P<h>{_X}) h: accepted as the new level$"
                ),
                N_(
                    "zone %(what)s has stayed %(shift)s L/s above its profile for %(h)s h: "
                    "accepted as the new level"
                ),
                ("shift", "h"),
                {"what": _words(ZONE_FLOW)},
            ),
            (
                r"^zone (?P<what>.+) back to its usual profile$",
                N_("zone %(what)s back to its usual profile"),
                (),
                {"what": _words(ZONE_FLOW)},
            ),
            (
                (
                    rf"^meter (?P<meter>.+) never read zero for (?P<h>{_X}) h \(lowest hour "
                    rf"(?P<low>{_X}) L\)$"
                ),
                N_("meter %(meter)s never read zero for %(h)s h (lowest hour %(low)s L)"),
                ("h", "low"),
                {},
            ),
            (
                rf"^more than (?P<n>\d+) alarms in (?P<m>{_X}) min at this position$",
                N_("more than %(n)s alarms in %(m)s min at this position"),
                ("m",),
                {},
            ),
            (r"^alarm rate back to normal$", N_("the alarm rate is back to normal"), (), {}),
            (
                r"^the rule's points send readings again$",
                N_("the rule's points send readings again"),
                (),
                {},
            ),
            (
                r"^the rule watches nothing: (?P<why>.*)$",
                N_("the rule watches nothing: %(why)s"),
                (),
                {"why": _part(SETUP)},
            ),
        )
    )
)
"""The zone rules' (alarms/engine.py), the health alarms' (alarms/apply.py, alarms/engine.py)
and the flood alarm's messages and their catalog sentences."""

MESSAGES: Known = (
    (
        re.compile(r"^(?P<v>-?[\d.e+-]+) ?(?P<unit>\S*) above limit (?P<lim>-?[\d.e+-]+) ?\S*$"),
        N_("%(v)s %(unit)s, above the limit of %(lim)s %(unit)s"),
        {"v": _num, "lim": _num},
    ),
    (
        re.compile(r"^(?P<v>-?[\d.e+-]+) ?(?P<unit>\S*) below limit (?P<lim>-?[\d.e+-]+) ?\S*$"),
        N_("%(v)s %(unit)s, below the limit of %(lim)s %(unit)s"),
        {"v": _num, "lim": _num},
    ),
    (
        re.compile(
            r"^changing (?P<rate>-?[\d.e+-]+) (?P<unit>\S*)/h, limit (?P<lim>-?[\d.e+-]+) \S*/h$"
        ),
        N_("changing by %(rate)s %(unit)s an hour, limit %(lim)s %(unit)s an hour"),
        {"rate": _num, "lim": _num},
    ),
    (re.compile(r"^value moving again$"), N_("the value is moving again"), {}),
    (re.compile(r"^reading quality (?P<q>\S+)$"), N_("reading quality %(q)s"), {}),
    (
        re.compile(r"^no readings from (?P<names>.+) for more than (?P<h>[\d.]+) h$"),
        N_("no readings from %(names)s for more than %(h)s h"),
        {"h": _num},
    ),
    (
        re.compile(
            r"^no reading from (?P<name>.+) since the rule started watching it \((?P<h>[\d.]+) h\)$"
        ),
        N_("no reading from %(name)s since the rule started watching it (%(h)s h)"),
        {"h": _num},
    ),
    (
        re.compile(r"^meter reports (?P<flags>.+)$"),
        N_("the meter reports: %(flags)s"),
        {"flags": _words(FLAG)},
    ),
    (re.compile(r"^returned to normal$"), N_("back to normal"), {}),
    (
        re.compile(r"^value stuck at (?P<v>-?[\d.e+-]+|nan|inf) for (?P<m>\d+) min$"),
        N_("the value has stayed at %(v)s for %(m)s min"),
        {"v": _num},
    ),
    (
        re.compile(r"^device offline for more than (?P<m>[\d.e+-]+) min$"),
        N_("the device has been offline for more than %(m)s min"),
        {"m": _num},
    ),
    (re.compile(r"^device online$"), N_("the device is online again"), {}),
    *ZONE_MESSAGES,
)
"""The engine's messages of a known pattern and their catalog sentences."""

_N = r"-?[\d.]+"
_SIZE = (
    rf"about (?P<lps>{_N}) L/s \((?P<m3>{_N}) m³ a day; 90 % between (?P<lo>{_N}) and "
    rf"(?P<hi>{_N}) L/s\)"
)
SIZE_TEXT = N_("about %(lps)s L/s (%(m3)s m³ a day; 90 %% between %(lo)s and %(hi)s L/s)")
DETECTOR = {
    "burst": N_("the burst test"),
    "losses": N_("the hourly losses"),
    "night": N_("the night flow"),
    "balance": N_("the water balance"),
    "night_trend": N_("the night flow's trend"),
    "balance_trend": N_("the water balance's trend"),
    "shape": N_("the day-shape test"),
    "window": N_("the meters' read windows"),
}
_STEP = rf"^demand stepped up (?P<a>{_N}) L/s"
_SHAPES = (
    rf"and stayed up \(z (?P<z>{_N}) > (?P<lim>{_N})\), against the shapes of the last "
    r"(?P<n>\d+) days$"
)
_AGAIN = rf"^demand stepped up again (?P<a>{_N}) L/s"
_CONFIRMED = (
    rf"\(z (?P<z>{_N}), under (?P<lim>{_N})\) and the night after was (?P<b>{_N}) L/s above "
    rf"its usual \(z (?P<nz>{_N}) >= (?P<nlim>{_N})\)$"
)
_AGAIN_Z = rf"\(z (?P<z>{_N}) > (?P<lim>{_N})\)$"
_CUSUM = rf"\(CUSUM (?P<s>{_N}) > (?P<h>{_N})\)$"
_RISING = (
    rf"rising (?P<sl>{_N}) L/s a day for (?P<n>\d+) days, now (?P<a>{_N}) L/s above its "
    r"usual level$"
)
_BURST = (
    rf"{_STEP} and stayed up for (?P<n>\d+) h; now (?P<x>{_N}) L/s, usual for this hour "
    rf"(?P<m>{_N}) L/s$"
)
LEAK_DETAILS: Known = tuple(
    # every number with a decimal comma; the time of day (hm) as it is
    (rx, msgid, {k: _num for k in rx.groupindex if k != "hm"})
    for rx, msgid in (
        (re.compile(pattern), m)
        for pattern, m in (
            (
                rf"{_STEP} at (?P<hm>\d\d:\d\d) today {_SHAPES}",
                N_(
                    "demand stepped up %(a)s L/s at %(hm)s today and stayed up (z %(z)s > "
                    "%(lim)s), against the shapes of the last %(n)s days"
                ),
            ),
            (
                rf"{_STEP} at (?P<hm>\d\d:\d\d) yesterday {_SHAPES}",
                N_(
                    "demand stepped up %(a)s L/s at %(hm)s yesterday and stayed up (z %(z)s > "
                    "%(lim)s), against the shapes of the last %(n)s days"
                ),
            ),
            (
                rf"{_AGAIN} at (?P<hm>\d\d:\d\d) today {_AGAIN_Z}",
                N_("demand stepped up again %(a)s L/s at %(hm)s today (z %(z)s > %(lim)s)"),
            ),
            (
                rf"{_AGAIN} at (?P<hm>\d\d:\d\d) yesterday {_AGAIN_Z}",
                N_("demand stepped up again %(a)s L/s at %(hm)s yesterday (z %(z)s > %(lim)s)"),
            ),
            (
                _BURST,
                N_(
                    "demand stepped up %(a)s L/s and stayed up for %(n)s h; now %(x)s L/s, usual "
                    "for this hour %(m)s L/s"
                ),
            ),
            (
                rf"^hourly losses (?P<a>{_N}) L/s above their usual level {_CUSUM}",
                N_("hourly losses %(a)s L/s above their usual level (CUSUM %(s)s > %(h)s)"),
            ),
            (
                rf"^night: (?P<a>{_N}) L/s above its usual level {_CUSUM}",
                N_("night flow %(a)s L/s above its usual level (CUSUM %(s)s > %(h)s)"),
            ),
            (
                rf"^balance: (?P<a>{_N}) L/s above its usual level {_CUSUM}",
                N_("water balance losses %(a)s L/s above their usual level (CUSUM %(s)s > %(h)s)"),
            ),
            (
                rf"^night: {_RISING}",
                N_(
                    "night flow rising %(sl)s L/s a day for %(n)s days, now %(a)s L/s above its "
                    "usual level"
                ),
            ),
            (
                rf"^balance: {_RISING}",
                N_(
                    "water balance losses rising %(sl)s L/s a day for %(n)s days, now %(a)s L/s "
                    "above their usual level"
                ),
            ),
            (
                rf"{_STEP} at (?P<hm>\d\d:\d\d) today {_CONFIRMED}",
                N_(
                    "demand stepped up %(a)s L/s at %(hm)s today (z %(z)s, under %(lim)s) and "
                    "the night after was %(b)s L/s above its usual (z %(nz)s >= %(nlim)s)"
                ),
            ),
            (
                rf"{_STEP} at (?P<hm>\d\d:\d\d) yesterday {_CONFIRMED}",
                N_(
                    "demand stepped up %(a)s L/s at %(hm)s yesterday (z %(z)s, under %(lim)s) "
                    "and the night after was %(b)s L/s above its usual (z %(nz)s >= %(nlim)s)"
                ),
            ),
            (
                (
                    rf"^inflow over the customer meters' last read windows (?P<x>{_N}) L/s, "
                    rf"(?P<a>{_N}) L/s above what their use predicts \(z (?P<z>{_N}) >= "
                    rf"(?P<lim>{_N})\), against the hours of the last (?P<n>\d+) days$"
                ),
                N_(
                    "inflow over the customer meters' last read windows %(x)s L/s, %(a)s L/s "
                    "above what their use predicts (z %(z)s >= %(lim)s), against the hours of "
                    "the last %(n)s days"
                ),
            ),
            (rf"^grown from (?P<a>{_N}) L/s$", N_("grown from %(a)s L/s")),
            (
                rf"^raised for (?P<a>{_N}) L/s, which had faded to (?P<b>{_N}) L/s$",
                N_("raised for %(a)s L/s, which had faded to %(b)s L/s"),
            ),
            (r"^not seen for (?P<n>\d+) days$", N_("not seen for %(n)s days")),
        )
    )
)
"""The leak rule's details (alarms/leak.py) and their catalog sentences."""
LEAK_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(rx, re.S), msgid)
    for rx, msgid in (
        (
            rf"^leak {_SIZE}; found by (?P<det>\w+): (?P<detail>.*)$",
            N_("leak of %(size)s, found by %(detector)s: %(detail)s"),
        ),
        (
            rf"^the leak has grown: {_SIZE} \((?P<detail>.*)\)$",
            N_("the leak has grown: %(size)s (%(detail)s)"),
        ),
        (
            rf"^leak no longer seen \((?P<detail>.*)\); last estimate {_SIZE}$",
            N_("the leak is no longer seen (%(detail)s); last estimate %(size)s"),
        ),
        (
            r"^leak repaired by (?P<user>\S+): (?P<comment>.*)$",
            N_("leak repaired by %(user)s: %(comment)s"),
        ),
        (r"^leak repaired by (?P<user>\S+)$", N_("leak repaired by %(user)s")),
    )
)
"""The leak rule's messages (alarms/leakrule.py): a size, a detector and its detail."""


def _translate_leak(text: str, tr: gettext.NullTranslations) -> str | None:
    for regex, msgid in LEAK_MESSAGES:
        m = regex.match(text)
        if m is None:
            continue
        g = m.groupdict()
        values = {k: v for k, v in g.items() if k in ("user", "comment")}
        if "lps" in g:
            values["size"] = tr.gettext(SIZE_TEXT) % {
                k: _num(g[k]) for k in ("lps", "m3", "lo", "hi")
            }
        if "det" in g:
            values["detector"] = (
                tr.gettext(DETECTOR[g["det"]]) if g["det"] in DETECTOR else g["det"]
            )
        if "detail" in g:
            values["detail"] = _known(LEAK_DETAILS, g["detail"], tr) or g["detail"]
        return tr.gettext(msgid) % values
    return None


def translate_message(text: str | None, tr: gettext.NullTranslations) -> str:
    """An alarm's message in the visitor's language when its pattern is known, else as
    written."""
    if not text:
        return ""
    return _translate_leak(text.strip(), tr) or _known(MESSAGES, text.strip(), tr) or text


def _known(
    table: Known,
    text: str,
    tr: gettext.NullTranslations,
) -> str | None:
    """The text translated by the first pattern of ``table`` it matches, else None."""
    for regex, msgid, convert in table:
        m = regex.match(text)
        if m is not None:
            values = {k: convert.get(k, _as_is)(v, tr) for k, v in m.groupdict().items()}
            return tr.gettext(msgid) % values
    return None


def catalog(language: str) -> gettext.GNUTranslations:
    """The compiled catalog of ``language`` (one of :data:`LANGUAGES`)."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}: use one of {', '.join(LANGUAGES)}")
    return i18n.translations(language)


# ---------------------------------------------------------------------- notifications

EVENT = {
    "activate": N_("alarm raised"),
    "clear": N_("alarm cleared"),
    "ack": N_("alarm acknowledged"),
    "shelve": N_("alarm shelved"),
    "unshelve": N_("alarm taken off the shelf"),
    "shelve_expired": N_("alarm shelving expired"),
    "suppress": N_("alarm suppressed"),
    "unsuppress": N_("alarm no longer suppressed"),
    "remove_from_service": N_("alarm taken out of service"),
    "return_to_service": N_("alarm returned to service"),
    "repaired": N_("leak reported repaired"),
}
"""The alarm events (alarms/lifecycle.py, alarms/actions.py) as a notification names them."""
ALARM = N_("Alarm")
ZONE = N_("Zone")
RULE = N_("Rule")
STATE_LABEL = N_("State")
USER = N_("User")
COMMENT = N_("Comment")
TIME = N_("Time")
TASHKENT_TIME = N_("Tashkent time")


@dataclass(frozen=True)
class Notification:
    """An alarm notification in one language: a one-line subject and the whole text."""

    subject: str
    text: str


def _one_line(value: Any) -> str:
    """Text of others (a user's comment, a rule's name) on one line: kept as written, but a
    line break cannot make it look like a line of ours."""
    return " ".join(str(value).split())


def _word(table: Mapping[str, str], code: Any, tr: gettext.NullTranslations) -> str:
    code = str(code or "")
    return tr.gettext(table[code]) if code in table else code


def notification(p: Mapping[str, Any], tr: gettext.NullTranslations) -> Notification:
    """The notification of one alarm event (the outbox payload ``p``: event, priority,
    state, rule, rule_name, kind, zone, message, user, comment, ts), all in the language of
    ``tr``; codes that no catalog knows, the user's name and comment are shown as written."""
    priority = _word(PRIORITY, p.get("priority"), tr).upper()
    title = _one_line(p.get("rule_name") or "") or (
        tr.gettext(KIND[p["kind"]]) if p.get("kind") in KIND else tr.gettext(ALARM)
    )
    head = [priority, _word(EVENT, p.get("event"), tr), title]
    if p.get("zone"):
        head.append(f"{tr.gettext(ZONE)} {_one_line(p['zone'])}")
    subject = " · ".join(x for x in head if x)
    rule = f"{tr.gettext(RULE)}: {_one_line(p.get('rule') or '')}"
    state = f"{tr.gettext(STATE_LABEL)}: {_word(STATE, p.get('state'), tr)}"
    lines = [subject, f"{rule} · {state}"]
    message = translate_message(p.get("message"), tr)
    if message:
        lines.append(message)
    if p.get("user"):
        lines.append(f"{tr.gettext(USER)}: {_one_line(p['user'])}")
    if p.get("comment"):
        lines.append(f"{tr.gettext(COMMENT)}: {_one_line(p['comment'])}")
    when = _when(p.get("ts"))
    if when is not None:
        shown = i18n.local_time(when)
        lines.append(f"{tr.gettext(TIME)}: {shown} ({tr.gettext(TASHKENT_TIME)})")
    return Notification(subject, "\n".join(lines))


def _when(ts: Any) -> datetime | None:
    if isinstance(ts, datetime):
        return ts
    try:
        return datetime.fromisoformat(str(ts)) if ts else None
    except ValueError:
        return None
