"""The Grafana macro and variable expander, against the texts Grafana produces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboards.errors import MacroError
from dashboards.macros import (
    QueryContext,
    Variable,
    expand,
    format_interval,
    interpolate_variables,
    parse_interval,
)

FROM = datetime(2026, 11, 1, 5, 1, 17, tzinfo=UTC)
TO = datetime(2026, 11, 1, 11, 1, 17, 500000, tzinfo=UTC)


def ctx(**variables: Variable) -> QueryContext:
    return QueryContext(FROM, TO, timedelta(minutes=5), variables)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "WHERE $__timeFilter(ts)",
            "WHERE ts BETWEEN '2026-11-01T05:01:17Z' AND '2026-11-01T11:01:17.5Z'",
        ),
        ("$__timeFrom()", "'2026-11-01T05:01:17Z'"),
        ("$__timeTo()", "'2026-11-01T11:01:17.5Z'"),
        ("$__time(ts)", 'ts AS "time"'),
        ("$__timeEpoch(ts)", 'extract(epoch from ts) as "time"'),
        ("$__timeGroup(ts, '5m')", "floor(extract(epoch from ts)/300)*300"),
        ("$__timeGroup(ts,1h, NULL)", "floor(extract(epoch from ts)/3600)*3600"),
        ("$__timeGroupAlias(ts, $__interval)", 'floor(extract(epoch from ts)/300)*300 AS "time"'),
        ("$__timeGroup(ts, 500ms)", "floor(extract(epoch from ts)/0.5)*0.5"),
        ("$__timeGroup(ts, 30d)", "floor(extract(epoch from ts)/2592000)*2592000"),
        ("$__unixEpochFilter(t)", f"t >= {int(FROM.timestamp())} AND t <= {int(TO.timestamp())}"),
        ("$__unixEpochGroupAlias(t, 1m)", 'floor((t)/60)*60 AS "time"'),
        ("$__interval_ms / $__range_s", "300000 / 21600"),
    ],
)
def test_macros_expand_like_grafana(sql: str, expected: str) -> None:
    assert expand(sql, ctx()) == expected


def test_timescaledb_flag_uses_time_bucket() -> None:
    c = QueryContext(FROM, TO, timedelta(hours=1), {}, timescaledb=True)
    assert expand("$__timeGroupAlias(ts, $__interval)", c) == (
        "time_bucket('3600s',ts) AS \"time\""
    )


def test_macro_inside_macro_argument_and_cast() -> None:
    out = expand("$__timeFilter(date_trunc('day' ts)) AND x < $__timeTo()::timestamptz", ctx())
    assert out.startswith("date_trunc('day' ts) BETWEEN '2026-11-01T05:01:17Z'")
    assert out.endswith("x < '2026-11-01T11:01:17.5Z'::timestamptz")


def test_multi_value_variables_are_quoted_and_joined() -> None:
    c = ctx(zone=Variable.of("Z1", "O'Hara"), one=Variable.of("7", quoted=False))
    assert expand("code IN ($zone)", c) == "code IN ('Z1','O''Hara')"
    assert expand("code IN (${zone})", c) == "code IN ('Z1','O''Hara')"
    assert expand("code IN ([[zone]])", c) == "code IN ('Z1','O''Hara')"
    assert expand("'${zone:csv}'", c) == "'Z1,O'Hara'"
    assert expand("id = $one", c) == "id = 7"


def test_variable_name_is_matched_whole() -> None:
    c = ctx(zone=Variable.of("Z1"))
    with pytest.raises(MacroError, match=r"\$zones"):
        expand("x IN ($zones)", c)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("$__timeGroup(coalesce(a, b), 5m)", "splits macro arguments"),
        ("$__timeGroup(ts)", "needs a column and an interval"),
        ("$__timeGroup(ts, 5 minutes)", "cannot read the interval"),
        ("$__timeGroup(ts, 5m, sometimes)", "fill argument"),
        ("$__timeFilter()", "needs a column"),
        ("$__nonsense(ts)", "unknown macro"),
        ("$__timeFilter(ts", "unbalanced"),
        ("x = $missing", "unknown variable"),
        ("x = ${zone:nope}", "unknown format"),
    ],
)
def test_bad_queries_are_clear_errors(sql: str, message: str) -> None:
    with pytest.raises(MacroError, match=message):
        expand(sql, ctx(zone=Variable.of("Z1")))


def test_dollar_inside_string_literal_is_text() -> None:
    assert expand("SELECT '$notavar' AS t", ctx()) == "SELECT '$notavar' AS t"


def test_empty_variable_is_an_error() -> None:
    with pytest.raises(MacroError, match="has no value"):
        interpolate_variables("x IN ($zone)", ctx(zone=Variable(())))


def test_intervals_round_trip() -> None:
    for text in ("500ms", "30s", "5m", "1h", "1d"):
        assert format_interval(parse_interval(text)) == text
    assert format_interval(timedelta(seconds=90)) == "90s"
    assert parse_interval("'1w'") == timedelta(days=7)


def test_naive_time_range_is_refused() -> None:
    with pytest.raises(MacroError, match="timezone-aware"):
        QueryContext(datetime(2026, 1, 1), TO, timedelta(minutes=1), {})
