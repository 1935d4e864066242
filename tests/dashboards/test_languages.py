"""The dashboards in Uzbek (Latin and Cyrillic), Russian and English.

Every dashboard is rendered in each language and every text a person reads in Grafana
(titles, descriptions, panel and row titles, column headers and legend names, value
mappings, variable labels, map layers, annotations, text panels) is compared with the English
build: the same text in another language is English left over, unless it is a name listed in
:data:`SAME_IN_EVERY_LANGUAGE`. English words of the staff pages' stop-list are looked for
too. The panel SQL does not depend on the language (the headers are Grafana display names);
it is checked to be the same in every language and run on PostgreSQL for each one.

Stored codes are shown in words: every alarm and node kind the database allows (its CHECK
constraints), every value of a kind column, every dead-letter reason and every reason of an
online/offline change in ingest's table of them (:mod:`ingest.reasons`) has words in each
language; the reasons ingest's real code writes on PostgreSQL are shown in words too
(tests/ingest/test_reasons.py checks that ingest writes no dead-letter reason outside the
table).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import psycopg
import pytest
import yaml

from dashboards.boards import all_dashboards
from dashboards.boards.common import rename_series
from dashboards.errors import DashboardsError
from dashboards.i18n import DEFAULT_LANG, N_, folder_for, render, uid_for
from dashboards.model import Dashboard, Panel, Row, SqlTarget
from dashboards.provisioning import DatasourceConfig, build
from dashboards.push import connect, push
from suvnet.cli import main
from tests.dashboards.fake_grafana import FakeGrafana
from tests.dashboards.seed import TO
from tests.dashboards.test_panel_sql import context, run, skip_if_missing
from tests.test_i18n_complete import ENGLISH

LANGS = ("uz", "uz_Cyrl", "ru")
"""The dispatchers' languages: nothing may be left in English there."""

SAME_IN_EVERY_LANGUAGE = frozenset({"suvnet", "OpenStreetMap"})
"""Names written the same way in every language."""
SAME_IN_UZBEK_LATIN = frozenset({"Mahalla", "bank", "import"})
"""Uzbek words that English uses too (``Mahalla``) or that are the same in Uzbek Latin."""

DASHBOARD_WORDS = frozenset(
    """
    zone zones pressure inflow flow night minimum gateway gateways online offline device
    devices sensor point state rate per hour hours minutes range average lowest highest
    service limit limits setpoint inlet outlet critical target map pipes nodes node dead
    letters readings received debtors mahallas collections channel largest elevation
    measured seen since decided event journal peak median stale chattering contributors
    leakage daily monthly billed net traffic what reason message raised
    """.split()  # noqa: SIM905 - a word list reads better as words
)
STOP_WORDS = ENGLISH | DASHBOARD_WORDS
"""The staff pages' stop-list (tests/test_i18n_complete.py) and the dashboards' own words."""

KEEP = re.compile(r"\$\{[^}]*\}|`[^`]*`|ISA-18\.2|suvnet|GeoJSON|JSON|MQTT|OpenStreetMap")
"""Parts of a text that stay as they are in every language: Grafana templates, commands,
standard and product names."""
WORD = re.compile(r"[A-Za-z][A-Za-z'ʻ’]*")

VISIBLE = frozenset(
    {"title", "description", "label", "displayName", "text", "renamePattern", "content", "name"}
)
"""Keys whose text Grafana shows (``name``: of map layers and annotations; the variables'
``name`` is an identifier and is left out)."""


def visible_texts(doc: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, text) of every shown text of a dashboard's JSON."""
    if isinstance(doc, dict):
        if doc.get("builtIn"):  # Grafana's own hidden annotation
            return
        for key, value in doc.items():
            here = f"{path}/{key}"
            if key in VISIBLE and isinstance(value, str):
                if key == "name" and "/templating/" in here:
                    continue
                yield here, value
            else:
                yield from visible_texts(value, here)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from visible_texts(value, f"{path}/{i}")


def english_left(dashboard: Dashboard, lang: str) -> list[tuple[str, str]]:
    """The shown texts of ``dashboard`` in ``lang`` that are still English."""
    en = dict(visible_texts(render(dashboard, "en")))
    found = []
    for path, text in visible_texts(render(dashboard, lang)):
        allowed = SAME_IN_EVERY_LANGUAGE | (SAME_IN_UZBEK_LATIN if lang == "uz" else set())
        if text in allowed:
            continue
        if text == en.get(path) and re.search("[A-Za-z]", text):
            found.append((path, text))
            continue
        words = WORD.findall(KEEP.sub(" ", text))
        if lang == "uz":
            words = [w for w in words if w.lower() in STOP_WORDS]
        if words:  # Cyrillic texts keep no Latin word; Uzbek Latin none of the stop-list
            found.append((path, text))
    return found


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("dashboard", all_dashboards(), ids=lambda d: d.uid)
def test_nothing_is_left_in_english(dashboard: Dashboard, lang: str) -> None:
    texts = list(visible_texts(render(dashboard, lang)))
    assert len(texts) > 20, texts  # the walk finds the titles, headers and mappings
    assert english_left(dashboard, lang) == []


def test_the_check_catches_english() -> None:
    """A text not marked with N_() is not translated, and the check says where it is."""
    board = Dashboard(
        uid="suvnet-test",
        title=N_("suvnet · Alarms"),
        items=(
            Row(N_("History")),
            Panel("stat", "Readings stored in the time range", (SqlTarget("SELECT 1 AS n"),)),
            Panel("stat", N_("Dead letters"), (SqlTarget("SELECT 1 AS n"),), columns={"n": "n"}),
        ),
    )
    for lang in LANGS:
        left = english_left(board, lang)
        assert ("/panels/1/title", "Readings stored in the time range") in left, left
    # a Latin word in a Cyrillic text, and a stop-list word in Uzbek Latin
    mixed = Dashboard(uid="x", title=N_("suvnet · Alarms"), description="Zona pressure", items=())
    assert english_left(mixed, "uz") == [("/description", "Zona pressure")]
    assert english_left(mixed, "ru") == [("/description", "Zona pressure")]


def test_the_languages_really_differ() -> None:
    zone = next(d for d in all_dashboards() if d.uid == "suvnet-zone")
    titles = {lang: render(zone, lang)["panels"][0]["title"] for lang in (*LANGS, "en")}
    assert titles == {
        "uz": "Zonaga kirim",
        "uz_Cyrl": "Зонага кирим",
        "ru": "Подача в зону",
        "en": "Zone inflow",
    }
    # the same words as the staff pages' catalogs for the same terms
    alarms = next(d for d in all_dashboards() if d.uid == "suvnet-alarms")
    assert render(alarms, "ru")["title"] == "suvnet · Аварийные сигналы"
    assert render(alarms, "uz")["annotations"]["list"][1]["name"] == "Avariya signallari"


def test_uids_stay_for_the_default_language() -> None:
    assert DEFAULT_LANG == "uz"
    for d in all_dashboards():
        assert render(d)["uid"] == d.uid == uid_for(d.uid, "uz")
    uids = {render(d, lang)["uid"] for d in all_dashboards() for lang in (*LANGS, "en")}
    assert len(uids) == 4 * len(all_dashboards())
    assert uid_for("suvnet-zone", "uz_Cyrl") == "suvnet-zone-uz-cyrl"
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,40}", u) for u in uids)
    assert folder_for("uz") == ("suvnet", "suvnet")
    assert folder_for("ru") == ("suvnet-ru", "suvnet · Русский")
    with pytest.raises(DashboardsError, match="unknown language"):
        uid_for("suvnet-zone", "de")


def test_links_list_the_same_language() -> None:
    doc = render(all_dashboards()[0], "ru")
    assert "lang-ru" in doc["tags"]
    assert doc["links"][0]["tags"] == ["suvnet", "lang-ru"]


def _sql(doc: dict[str, Any]) -> list[str]:
    out = [t["rawSql"] for p in doc["panels"] for t in p.get("targets", [])]
    out += [v["query"] for v in doc["templating"]["list"]]
    return out + [a["target"]["rawSql"] for a in doc["annotations"]["list"] if "target" in a]


@pytest.mark.parametrize("dashboard", all_dashboards(), ids=lambda d: d.uid)
def test_the_sql_is_the_same_in_every_language(dashboard: Dashboard) -> None:
    """No translated text goes into a query: test_panel_sql's checks hold for every
    language."""
    default = _sql(render(dashboard))
    assert default == [t.sql.strip() for p in dashboard.panels for t in p.targets] + [
        v.sql.strip() for v in dashboard.variables
    ] + [a.sql.strip() for a in dashboard.annotations]
    for lang in (*LANGS, "en"):
        assert _sql(render(dashboard, lang)) == default, lang


@pytest.mark.parametrize("lang", [*LANGS, "en"])
@pytest.mark.parametrize("dashboard", all_dashboards(), ids=lambda d: d.uid)
def test_the_panel_sql_runs_in_every_language(
    vdb: psycopg.Connection[Any], dashboard: Dashboard, lang: str
) -> None:
    """Each language's rendered queries run on PostgreSQL and give the seeded rows."""
    doc = render(dashboard, lang)
    targets = [t for p in dashboard.panels for t in p.targets]
    rendered = [t for p in doc["panels"] for t in p.get("targets", [])]
    assert len(rendered) == len(targets)
    for target, raw in zip(targets, rendered, strict=True):
        if any(not _exists(vdb, t) for t in target.requires):
            continue
        assert run(vdb, raw["rawSql"], context(timedelta(days=40))).rows, raw["refId"]


def _exists(conn: psycopg.Connection[Any], table: str) -> bool:
    from tests.dashboards.seed import table_exists

    return table_exists(conn, table)


def _panel_targets() -> list[Any]:
    return [
        pytest.param(d, p, id=f"{d.uid}/{p.title}")
        for d in all_dashboards()
        for p in d.panels
        if p.targets
    ]


@pytest.mark.parametrize(("dashboard", "panel"), _panel_targets())
def test_every_shown_column_has_a_header(
    vdb: psycopg.Connection[Any], dashboard: Dashboard, panel: Panel
) -> None:
    """A column Grafana shows by its name gets a translated header (display name); in a
    time series named by its ``metric`` the series are named by the data (zone codes ...)."""
    names = {o.field_name for o in panel.field_overrides() if "displayName" in o.properties}
    for target in panel.targets:
        skip_if_missing(vdb, target.requires)
        res = run(vdb, target.sql, context(timedelta(days=40)))
        shown = set(res.columns)
        if panel.type == "timeseries":
            shown = set() if "metric" in shown else shown - {"time", panel.series_label}
        assert shown - names == set(), f"columns without a header: {sorted(shown - names)}"


def test_build_in_another_language(tmp_path: Path) -> None:
    boards = all_dashboards()
    build(tmp_path, boards, DatasourceConfig(), lang="ru")
    files = sorted(p.name for p in (tmp_path / "dashboards").glob("*.json"))
    assert files == sorted(f"{d.uid}-ru.json" for d in boards)
    doc = json.loads((tmp_path / "dashboards" / "suvnet-zone-ru.json").read_text())
    assert doc["title"] == "suvnet · Зона / зона учёта"
    prov = yaml.safe_load((tmp_path / "provisioning/dashboards/suvnet.yaml").read_text())
    assert prov["providers"][0]["folderUid"] == "suvnet-ru"
    assert prov["providers"][0]["folder"] == "suvnet · Русский"


def test_build_command_takes_the_language(tmp_path: Path) -> None:
    assert main(["dashboards", "build", "--out", str(tmp_path), "--lang", "uz_Cyrl"]) == 0
    doc = json.loads((tmp_path / "dashboards" / "suvnet-alarms-uz-cyrl.json").read_text())
    assert doc["title"] == "suvnet · Авария сигналлари"
    assert main(["dashboards", "build", "--out", str(tmp_path), "--lang", "de"]) != 0
    assert main(["dashboards", "build", "--out", str(tmp_path / "uz")]) == 0
    assert (tmp_path / "uz" / "dashboards" / "suvnet-alarms.json").is_file()


def test_push_two_languages_side_by_side() -> None:
    token = "glsa_test_token"
    boards = all_dashboards()
    with FakeGrafana(token) as grafana:
        api = connect(grafana.url, token)
        push(api, boards, None)
        report = push(api, boards, None, lang="ru")
        st = grafana.state
        assert sorted(report.created) == sorted(f"{d.uid}-ru" for d in boards)
        assert set(st.folders) == {"suvnet", "suvnet-ru"}
        assert len(st.dashboards) == 2 * len(boards)
        zone = st.dashboards["suvnet-zone-ru"]
        assert zone["meta"]["folderUid"] == "suvnet-ru"
        assert zone["dashboard"]["title"] == "suvnet · Зона / зона учёта"
        assert st.dashboards["suvnet-zone"]["meta"]["folderUid"] == "suvnet"
        again = push(api, boards, None, lang="ru")
        assert sorted(again.unchanged) == sorted(f"{d.uid}-ru" for d in boards)


# ------------------------------------------------------------------ stored codes in words


def shown_panel(panel: Panel, lang: str) -> dict[str, Any]:
    """The Grafana JSON of ``panel`` as its dashboard shows it in ``lang``."""
    for d in all_dashboards():
        for i, item in enumerate(d.items):  # the JSON's panels are the items, in order
            if item is panel:
                return dict(render(d, lang)["panels"][i])
    raise AssertionError(f"no dashboard shows {panel.title!r}")


def words_for(panel_json: dict[str, Any], column: str) -> dict[str, str]:
    """code -> the words Grafana shows for it in ``column`` (its value mappings)."""
    out: dict[str, str] = {}
    for o in panel_json["fieldConfig"]["overrides"]:
        if o["matcher"] == {"id": "byName", "options": column}:
            for prop in o["properties"]:
                if prop["id"] == "mappings":
                    for m in prop["value"]:
                        if m["type"] == "value":
                            out |= {code: v["text"] for code, v in m["options"].items()}
    return out


def series_name(panel_json: dict[str, Any], name: str) -> str:
    """A series name after the panel's renameByRegex transformations (as Grafana does them:
    the first match replaced, ``$1`` the first group)."""
    for t in panel_json.get("transformations", []):
        if t["id"] == "renameByRegex":
            m = re.search(t["options"]["regex"], name)
            if m:
                new = str(t["options"]["renamePattern"]).replace("$1", m.group(1) or "")
                name = name[: m.start()] + new + name[m.end() :]
    return name


def check_values(conn: psycopg.Connection[Any], table: str, column: str) -> set[str]:
    """The codes a CHECK (column IN (...)) constraint of ``table`` allows."""
    rows = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = to_regclass(%s) AND contype = 'c'",
        (table,),
    ).fetchall()
    found: set[str] = set()
    for (definition,) in rows:
        if re.match(rf"CHECK \(\(?{column} = ANY", definition):
            found |= set(re.findall(r"'([^']*)'::text", definition))
    return found


def _kind_places() -> list[Any]:
    from dashboards.boards import alarms, network

    return [
        pytest.param(alarms.ACTIVE_LIST, "kind", "alarm_rules", id="alarms/active list"),
        pytest.param(network.MAP, "alarm_kind", "alarm_rules", id="network/map alarms"),
        pytest.param(network.MAP, "kind", "nodes", id="network/map nodes"),
    ]


@pytest.mark.parametrize(("panel", "column", "table"), _kind_places())
def test_every_stored_kind_has_words(
    vdb: psycopg.Connection[Any], panel: Panel, column: str, table: str
) -> None:
    """Each kind the database allows (the table's CHECK constraint) is shown in words in
    every language: an alarm kind in the active list and on the map, a node's kind on the
    map."""
    skip_if_missing(vdb, (table,))
    codes = check_values(vdb, table, "kind")
    assert len(codes) >= 3, codes
    for lang in LANGS:
        words = words_for(shown_panel(panel, lang), column)
        assert sorted(codes - set(words)) == [], f"{lang}: {column} codes without words"
        assert all(words[c] != c for c in codes), words


def test_alarm_and_node_kinds_match_the_code(vdb: psycopg.Connection[Any]) -> None:
    """The codes the engine and the registry write are the ones the database allows (so the
    test above, which reads the constraints, checks every kind shown)."""
    from typing import get_args

    from alarms.rules import Kind
    from suvnet.registry import NodeKind

    skip_if_missing(vdb, ("alarm_rules",))
    assert check_values(vdb, "alarm_rules", "kind") == {k.value for k in Kind}
    assert check_values(vdb, "nodes", "kind") == set(get_args(NodeKind))


@pytest.mark.parametrize(("dashboard", "panel"), _panel_targets())
def test_every_kind_column_is_shown_in_words(
    vdb: psycopg.Connection[Any], dashboard: Dashboard, panel: Panel
) -> None:
    """A column holding a kind code (``kind``, ``..._kind``) has value mappings, and every
    seeded value of it is mapped: a new kind column without words fails here."""
    doc = shown_panel(panel, "ru")
    for target in panel.targets:
        skip_if_missing(vdb, target.requires)
        res = run(vdb, target.sql, context(timedelta(days=40)))
        for col in res.columns:
            if col == "kind" or col.endswith("_kind"):
                words = words_for(doc, col)
                assert words, f"{col}: no words for its codes"
                assert {v for v in res.col(col) if v is not None} <= set(words), col


def ingest_reasons() -> set[str]:
    """The dead-letter reasons of ingest's table (what tests/ingest/test_reasons.py checks
    ingest writes)."""
    from ingest.reasons import DeadLetterReason

    return {r.value for r in DeadLetterReason}


@pytest.mark.parametrize("lang", [*LANGS, "en"])
def test_every_dead_letter_reason_has_words(lang: str) -> None:
    """The dead letters' series are named by their reason: each reason of ingest's table is
    renamed to words, and the words name no reason outside the table."""
    from dashboards.boards.devices import DEAD_LETTER_REASONS, DEAD_LETTERS

    doc = shown_panel(DEAD_LETTERS, lang)
    reasons = ingest_reasons()
    shown = {code: series_name(doc, code) for code in reasons}
    assert sorted(c for c, name in shown.items() if name == c) == [], "reasons without words"
    assert len(set(shown.values())) == len(shown)  # no two reasons in the same words
    assert sorted(set(DEAD_LETTER_REASONS) - reasons) == []
    # a code after another name (a gateway or zone before it) keeps that name
    assert series_name(doc, "GW1 unknown_gateway") == f"GW1 {shown['unknown_gateway']}"


def test_a_code_without_words_is_caught() -> None:
    """The checks above see a missing mapping or rename (a panel built without one)."""
    from dashboards.boards.devices import DEAD_LETTER_REASONS, DEAD_LETTERS
    from dashboards.boards.network import MAP

    without = {k: v for k, v in DEAD_LETTER_REASONS.items() if k != "db_rejected"}
    board = Dashboard(
        uid="x",
        title=N_("suvnet · Alarms"),
        items=(
            replace(DEAD_LETTERS, transformations=rename_series(without)),
            replace(MAP, overrides=MAP.overrides[1:]),  # the nodes' kinds left out
        ),
    )
    doc = render(board, "ru")
    assert series_name(doc["panels"][0], "db_rejected") == "db_rejected"
    assert series_name(doc["panels"][0], "bad_json") != "bad_json"
    assert words_for(doc["panels"][1], "kind") == {}
    assert words_for(doc["panels"][1], "alarm_kind")["leak"] == "Утечка"


# ------------------------------------------------------- online/offline changes in words

NUMBERS = (("180", "3"), ("1", "2.5"), ("3000000300000", "1.0000001"), ("2e+15", "1e+20"))
"""Numbers as PostgreSQL writes a double precision (and ``round()`` of one) into text: the
seconds and the factor of ``mark_stale``'s reasons (checked on PostgreSQL below)."""


def ingest_state_reasons() -> set[str]:
    """The reasons of online/offline changes in ingest's table: the fixed ones and the
    ``format()`` templates of ``mark_stale`` (a ``%s`` for each number)."""
    from ingest.reasons import StaleReason, StateReason

    return {r.value for r in StateReason} | {t.value for t in StaleReason}


def as_written(reasons: set[str]) -> list[str]:
    """The reasons as ingest writes them: each ``%s`` filled with numbers as PostgreSQL
    writes them (:data:`NUMBERS`)."""
    out = []
    for reason in sorted(reasons):
        if "%s" in reason:
            out += [reason.replace("%s", "{}").format(*n) for n in NUMBERS]
        else:
            out.append(reason)
    return out


SAME_IN_JS_AND_PYTHON = re.compile(r"(?:[^\\]|\\[\\^$.|?*+()\[\]{}])*")
r"""A regex whose escapes are only of special characters (no ``\d``, ``\s``, ``\Z``, whose
meaning differs between JavaScript and Python or which JavaScript lacks)."""


def js_regex(pattern: str) -> re.Pattern[str]:
    """Grafana's stringToJsRegex: ``/.../flags``, or the text anchored with ``^...$``; the
    regex must read the same in Python as in JavaScript."""
    assert pattern[:1] != "/", pattern
    assert SAME_IN_JS_AND_PYTHON.fullmatch(pattern), pattern
    assert not re.search(r"\(\?[^:]", pattern), pattern  # no named groups, lookarounds, flags
    return re.compile(f"^{pattern}$")


def js_replace(rx: re.Pattern[str], value: str, text: str) -> str:
    """JavaScript's ``value.replace(rx, text)`` (the first match; ``$1``, ``$&``, ``$$``)."""
    m = rx.search(value)
    if m is None:
        return value

    def group(g: re.Match[str]) -> str:
        code = g.group(1)
        if code == "$":
            return "$"
        if code == "&":
            return m.group(0)
        n = int(code)
        return (m.group(n) or "") if n <= (rx.groups or 0) else g.group(0)

    return value[: m.start()] + re.sub(r"\$([0-9]|\$|&)", group, text) + value[m.end() :]


def grafana_shows(panel_json: dict[str, Any], column: str, value: str) -> str | None:
    """What Grafana shows for ``value`` in ``column`` through its value mappings
    (getValueMappingResult: the first mapping that applies, in order), None if none does.
    A value of ingest has no line break, so Python's ``$`` is JavaScript's here."""
    assert "\n" not in value
    for o in panel_json["fieldConfig"]["overrides"]:
        if o["matcher"] != {"id": "byName", "options": column}:
            continue
        for prop in o["properties"]:
            if prop["id"] != "mappings":
                continue
            for m in prop["value"]:
                if m["type"] == "value" and value in m["options"]:
                    return str(m["options"][value]["text"])
                if m["type"] == "regex":
                    rx = js_regex(m["options"]["pattern"])
                    if rx.search(value):
                        return js_replace(rx, value, m["options"]["result"]["text"])
    return None


def reasons_without_words(panel_json: dict[str, Any], reasons: list[str]) -> list[str]:
    """The reasons Grafana would show as stored (or with a number lost, or a ``$1`` left)."""
    out = []
    for reason in reasons:
        shown = grafana_shows(panel_json, "reason", reason)
        numbers = re.findall(r"[0-9][0-9.e+]*", reason)
        if (
            shown is None
            or shown == reason
            or "$" in shown
            or sorted(re.findall(r"[0-9][0-9.e+]*", shown)) != sorted(numbers)
        ):
            out.append(reason)
    return out


def reason_mappings(panel_json: dict[str, Any]) -> list[dict[str, Any]]:
    """The value mappings of the reason column (the JSON itself, not a copy)."""
    return next(
        prop["value"]
        for o in panel_json["fieldConfig"]["overrides"]
        if o["matcher"] == {"id": "byName", "options": "reason"}
        for prop in o["properties"]
        if prop["id"] == "mappings"
    )


@pytest.mark.parametrize("lang", [*LANGS, "en"])
def test_every_state_change_reason_has_words(lang: str) -> None:
    """Each reason of an online/offline change in ingest's table is shown in words (with its
    numbers) in the reason column, and the mappings name no reason outside the table."""
    from dashboards.boards.devices import STATE_CHANGES

    doc = shown_panel(STATE_CHANGES, lang)
    reasons = ingest_state_reasons()
    written = as_written(reasons)
    assert reasons_without_words(doc, written) == []
    shown = {grafana_shows(doc, "reason", r) for r in written}
    assert len(shown) == len(written)  # no two reasons in the same words
    # the value mappings are the fixed reasons, and each regex matches one written reason
    assert sorted(words_for(doc, "reason")) == sorted(r for r in reasons if "%s" not in r)
    for m in reason_mappings(doc)[1:]:
        rx = js_regex(m["options"]["pattern"])
        matched = {r for r in reasons if "%s" in r and all(rx.search(w) for w in as_written({r}))}
        assert len(matched) == 1, (m["options"]["pattern"], matched)
        assert not any(rx.search(r) for r in reasons if "%s" not in r)
        assert not rx.search("x" + as_written(matched)[0])  # anchored at both ends
        assert not rx.search(as_written(matched)[0] + " ")
    if lang == "ru":
        assert (
            grafana_shows(doc, "reason", "no good data for 180 s (3 x poll period)")
            == "нет данных хорошего качества 180 с (3 × период опроса)"
        )
        assert grafana_shows(doc, "reason", "birth") == "шлюз подключился (сообщение о подключении)"


def _written_on_postgresql(conn: psycopg.Connection[Any]) -> set[str]:
    """The reasons the real ingest code writes into the seeded database (its gateway
    messages, fresh data and mark_stale with several factors and poll periods), rolled back
    afterwards."""
    from ingest.state import decide_gateway_message
    from ingest.store import apply_gateway_message, flush_seen, load_registry, mark_stale
    from ingest.validate import Checked
    from suvnet.protocol import GatewayState

    def one(sql: str) -> Any:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return row[0]

    before = {
        t: one(f"SELECT coalesce(max(id), 0) FROM {t}")
        for t in ("gateway_state_history", "device_state_history")
    }
    now_ms = int((TO + timedelta(days=1)).timestamp() * 1000)
    both: tuple[Literal["online", "offline"], ...] = ("online", "offline")
    out: set[str] = set()
    for current in (None, "online", "offline", "unknown"):  # every decision, stored or not
        for state in both:
            msg = GatewayState(gateway="GW1", state=state, ts_ms=now_ms)
            ch = decide_gateway_message(current, msg, now_ms)
            if ch.transition:
                out.add(ch.reason)
    with conn.transaction(force_rollback=True):
        gw = one("SELECT id FROM gateways ORDER BY id LIMIT 1")
        messages: tuple[Literal["online", "offline"], ...] = (
            "offline",
            "online",
            "online",
            "offline",
        )
        for state in messages:  # last will, birth, health (no change), last will
            msg = GatewayState(gateway="GW1", state=state, ts_ms=now_ms)
            apply_gateway_message(conn, Checked(state=msg, state_gateway_id=gw), now_ms)
            now_ms += 1000
        registry = load_registry(conn, 60.0)
        devices = [i for (i,) in conn.execute("SELECT device_id FROM device_state").fetchall()]
        gateways = [i for (i,) in conn.execute("SELECT gateway_id FROM gateway_state").fetchall()]
        assert devices and gateways
        for factor, period in (
            (3.0, 60.0),
            (2.5, 0.5),
            (1.1, 7.0),
            (1.0000001, 3e12),
            (1e20, 1e-12),
        ):
            conn.execute("UPDATE points SET poll_period_s = %s", (period,))
            conn.execute("UPDATE device_state SET state = 'online', last_seen = NULL")
            conn.execute("UPDATE gateway_state SET state = 'online', last_seen = NULL")
            gone = mark_stale(conn, factor=factor, default_period_s=60.0, now_ms=now_ms)
            assert len(gone) == len(devices) + len(gateways), gone
            now_ms += 1000
            flush_seen(  # fresh data brings them online again
                conn,
                dict.fromkeys(devices, now_ms),
                dict.fromkeys(gateways, now_ms),
                registry,
                factor=factor,
                default_period_s=60.0,
                now_ms=now_ms,
            )
            now_ms += 1000
        for table, last in before.items():
            out |= {
                r
                for (r,) in conn.execute(
                    f"SELECT DISTINCT reason FROM {table} WHERE id > %s",
                    (last,),
                ).fetchall()
            }
    return out


def test_the_reasons_written_on_postgresql_have_words(vdb: psycopg.Connection[Any]) -> None:
    """The real ingest code, run on PostgreSQL, writes only reasons of ingest's table (a
    template's with numbers as PostgreSQL formats them), and each is shown in words in every
    language; so is every reason of the panel's seeded rows."""
    from dashboards.boards.devices import STATE_CHANGES

    written = _written_on_postgresql(vdb)
    assert {
        "birth",
        "last will / offline message",
        "data received",
        "no good data for 180 s (3 x poll period)",
        "no messages for 180 s (3 x poll period)",
        "no good data for 1 s (2.5 x poll period)",
        "no good data for 8 s (1.1 x poll period)",
        "no good data for 3000000300000 s (1.0000001 x poll period)",
        "no good data for 100000000 s (1e+20 x poll period)",
    } <= written, written
    known = ingest_state_reasons()
    templates = [re.escape(t).replace("%s", "[0-9.e+]+") for t in known if "%s" in t]
    assert [
        w for w in written if w not in known and not any(re.fullmatch(t, w) for t in templates)
    ] == []
    res = run(vdb, STATE_CHANGES.targets[0].sql, context(timedelta(days=40)))
    seeded = {r for r in res.col("reason") if r}
    assert {"birth", "data received", "no good data for 180 s (3 x poll period)"} <= seeded
    for lang in (*LANGS, "en"):
        doc = shown_panel(STATE_CHANGES, lang)
        assert reasons_without_words(doc, sorted(written | seeded)) == [], lang


def test_a_state_reason_without_words_is_caught() -> None:
    """The checks above see a reason left out of the value mappings or the regex mappings."""
    from dashboards.boards.common import regex_texts, value_texts
    from dashboards.boards.devices import (
        STATE_CHANGE_REASONS,
        STATE_CHANGE_REASONS_WITH_NUMBERS,
        STATE_CHANGES,
    )
    from dashboards.model import Override

    fixed = {k: v for k, v in STATE_CHANGE_REASONS.items() if k != "data received"}
    numbers = dict(list(STATE_CHANGE_REASONS_WITH_NUMBERS.items())[:1])
    mappings = [*value_texts(fixed), *regex_texts(numbers, len(fixed))]
    others = tuple(o for o in STATE_CHANGES.overrides if o.field_name != "reason")
    panel = replace(STATE_CHANGES, overrides=(*others, Override("reason", {"mappings": mappings})))
    doc = render(Dashboard(uid="x", title=N_("suvnet · Alarms"), items=(panel,)), "ru")["panels"][0]
    left = reasons_without_words(doc, as_written(ingest_state_reasons()))
    assert "data received" in left
    assert "no messages for 180 s (3 x poll period)" in left
    assert "birth" not in left
    assert "no good data for 180 s (3 x poll period)" not in left
    # a translation that lost a number is caught too
    reason_mappings(doc)[1]["options"]["result"]["text"] = "нет данных $1 с"
    assert "no good data for 180 s (3 x poll period)" in reasons_without_words(
        doc, as_written(ingest_state_reasons())
    )
