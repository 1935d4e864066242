"""Expand Grafana's PostgreSQL macros and template variables the way Grafana does.

Grafana works in two steps, and so does :func:`expand`:

1. the browser replaces template variables (``$zone``, ``${zone}``, ``${zone:csv}``,
   ``[[zone]]``) and the global ones (``$__interval``, ``$__interval_ms``, ``$__range_s``...).
   A variable that is multi-value or has "All" is quoted as SQL literals and joined with
   commas (``'Z1','Z2'``); a plain single-value variable is inserted as it is.
2. the PostgreSQL datasource replaces the macros ``$__time(col)``, ``$__timeEpoch(col)``,
   ``$__timeFilter(col)``, ``$__timeFrom()``, ``$__timeTo()``, ``$__timeGroup(col, 5m[, fill])``,
   ``$__timeGroupAlias(...)``, ``$__unixEpochFilter(col)``, ``$__unixEpochFrom()``,
   ``$__unixEpochTo()``, ``$__unixEpochGroup(col, 5m)`` and ``$__unixEpochGroupAlias(...)``.
   With the TimescaleDB flag on, ``$__timeGroup`` becomes ``time_bucket(...)``.

Grafana splits macro arguments at every comma, so an argument that itself holds a comma
(``coalesce(a, b)``) breaks in Grafana; here it is an error, so that tests catch it. Anything
that still looks like a variable after both steps is an error too (Grafana would send it to
PostgreSQL and fail there).

This module is pure: text and values in, text out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dashboards.errors import MacroError

_UNITS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "M": 30 * 86400,
    "y": 365 * 86400,
}
_INTERVAL_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w|M|y)$")
_VAR_RE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
_MACRO_START_RE = re.compile(r"\$__(\w+)\(")


@dataclass(frozen=True)
class Variable:
    """The current value(s) of a template variable.

    ``quoted`` is true for a multi-value or include-All variable: Grafana then quotes each value
    as a SQL literal.
    """

    values: tuple[str, ...]
    quoted: bool = True

    @classmethod
    def of(cls, *values: str, quoted: bool = True) -> Variable:
        return cls(tuple(values), quoted)


@dataclass(frozen=True)
class QueryContext:
    """What Grafana knows when it runs a panel query: the time range, interval and variables."""

    time_from: datetime
    time_to: datetime
    interval: timedelta
    variables: Mapping[str, Variable]
    timescaledb: bool = False

    def __post_init__(self) -> None:
        if self.time_from.tzinfo is None or self.time_to.tzinfo is None:
            raise MacroError("the time range must be timezone-aware")
        if self.time_to < self.time_from:
            raise MacroError("the time range ends before it starts")
        if self.interval <= timedelta(0):
            raise MacroError("the interval must be positive")


def parse_interval(text: str) -> timedelta:
    """``5m`` -> 5 minutes, like Grafana's interval parser (quotes are stripped)."""
    raw = text.strip().strip("'\"")
    m = _INTERVAL_RE.match(raw)
    if not m:
        raise MacroError(f"cannot read the interval {text!r} (expected e.g. 30s, 5m, 1h, 1d)")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def format_interval(interval: timedelta) -> str:
    """The text Grafana puts for ``$__interval``: the largest whole unit (``1h``, ``90s``)."""
    ms = round(interval.total_seconds() * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _go_number(value: float) -> str:
    """Format a float like Go's ``%v`` for the magnitudes found in intervals."""
    if value == int(value):
        return str(int(value))
    return repr(value)


def _rfc3339(ts: datetime) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: trailing zero fractions dropped, ``Z`` suffix."""
    t = ts.astimezone(UTC)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        base += ("." + f"{t.microsecond:06d}").rstrip("0")
    return base + "Z"


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _format_values(name: str, var: Variable, fmt: str | None) -> str:
    vals = var.values
    if fmt is None:
        if var.quoted or len(vals) != 1:
            return ",".join(_quote_literal(v) for v in vals)
        return vals[0]
    if fmt in ("raw", "csv"):
        return ",".join(vals)
    if fmt in ("sqlstring", "singlequote"):
        return ",".join(_quote_literal(v) for v in vals)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in vals)
    if fmt == "pipe":
        return "|".join(vals)
    raise MacroError(f"variable {name}: unknown format {fmt!r}")


def _builtin_variables(ctx: QueryContext) -> dict[str, Variable]:
    rng = ctx.time_to - ctx.time_from
    ms = round(ctx.interval.total_seconds() * 1000)
    return {
        "__interval": Variable.of(format_interval(ctx.interval), quoted=False),
        "__interval_ms": Variable.of(str(ms), quoted=False),
        "__range": Variable.of(format_interval(rng) if rng else "0s", quoted=False),
        "__range_s": Variable.of(str(round(rng.total_seconds())), quoted=False),
        "__range_ms": Variable.of(str(round(rng.total_seconds() * 1000)), quoted=False),
    }


def interpolate_variables(sql: str, ctx: QueryContext) -> str:
    """Step 1: template and global variables. Unknown names are left for step 2."""
    known = {**_builtin_variables(ctx), **ctx.variables}

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if m.group(5):
            raise MacroError(f"variable {name}: field paths (${{{name}.…}}) are not supported")
        var = known.get(name)
        if var is None:
            return m.group(0)
        if not var.values:
            raise MacroError(f"variable {name} has no value")
        return _format_values(name, var, fmt)

    return _VAR_RE.sub(repl, sql)


def _split_args(name: str, inner: str) -> list[str]:
    depth = 0
    for ch in inner:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth > 0:
            raise MacroError(
                f"$__{name}({inner}): Grafana splits macro arguments at every comma, so an "
                "argument must not contain one"
            )
    return [a.strip() for a in inner.split(",")] if inner.strip() else []


def _macro(name: str, args: Sequence[str], ctx: QueryContext) -> str:
    def need(n: int, what: str) -> None:
        if len(args) < n or any(not a for a in args[:n]):
            raise MacroError(f"$__{name} needs {what}, got ({', '.join(args)})")

    frm, to = _rfc3339(ctx.time_from), _rfc3339(ctx.time_to)
    match name:
        case "time":
            need(1, "a column")
            return f'{args[0]} AS "time"'
        case "timeEpoch":
            need(1, "a column")
            return f'extract(epoch from {args[0]}) as "time"'
        case "timeFilter":
            need(1, "a column")
            return f"{args[0]} BETWEEN '{frm}' AND '{to}'"
        case "timeFrom":
            return f"'{frm}'"
        case "timeTo":
            return f"'{to}'"
        case "timeGroup" | "timeGroupAlias":
            need(2, "a column and an interval")
            if len(args) > 3:
                raise MacroError(f"$__{name} takes at most 3 arguments")
            if len(args) == 3:
                _check_fill(name, args[2])
            secs = _go_number(parse_interval(args[1]).total_seconds())
            if ctx.timescaledb:
                expr = f"time_bucket('{secs}s',{args[0]})"
            else:
                expr = f"floor(extract(epoch from {args[0]})/{secs})*{secs}"
            return expr + (' AS "time"' if name == "timeGroupAlias" else "")
        case "unixEpochFilter":
            need(1, "a column")
            lo, hi = int(ctx.time_from.timestamp()), int(ctx.time_to.timestamp())
            return f"{args[0]} >= {lo} AND {args[0]} <= {hi}"
        case "unixEpochFrom":
            return str(int(ctx.time_from.timestamp()))
        case "unixEpochTo":
            return str(int(ctx.time_to.timestamp()))
        case "unixEpochGroup" | "unixEpochGroupAlias":
            need(2, "a column and an interval")
            secs = _go_number(parse_interval(args[1]).total_seconds())
            expr = f"floor(({args[0]})/{secs})*{secs}"
            return expr + (' AS "time"' if name == "unixEpochGroupAlias" else "")
    raise MacroError(f"unknown macro $__{name}")


def _check_fill(name: str, fill: str) -> None:
    if fill in ("NULL", "previous"):
        return
    try:
        float(fill)
    except ValueError:
        raise MacroError(
            f"$__{name}: the fill argument must be NULL, previous or a number, not {fill!r}"
        ) from None


def expand_macros(sql: str, ctx: QueryContext) -> str:
    """Step 2: the datasource's macros (applied until none is left)."""
    out: list[str] = []
    pos = 0
    for m in _MACRO_START_RE.finditer(sql):
        if m.start() < pos:
            continue
        depth, i = 1, m.end()
        while i < len(sql) and depth:
            depth += sql[i] == "("
            depth -= sql[i] == ")"
            i += 1
        if depth:
            raise MacroError(f"unbalanced parentheses after $__{m.group(1)}")
        inner = sql[m.end() : i - 1]
        out.append(sql[pos : m.start()])
        out.append(_macro(m.group(1), _split_args(m.group(1), expand_macros(inner, ctx)), ctx))
        pos = i
    out.append(sql[pos:])
    return "".join(out)


_LEFTOVER_RE = re.compile(r"\$\{?[A-Za-z_]\w*|\[\[\w+")


def expand(sql: str, ctx: QueryContext) -> str:
    """Both steps; raises :class:`MacroError` if any variable or macro is left over."""
    text = expand_macros(interpolate_variables(sql, ctx), ctx)
    left = _LEFTOVER_RE.search(_strip_literals(text))
    if left:
        raise MacroError(f"unknown variable or macro {left.group(0)!r} in the query")
    return text


def _strip_literals(sql: str) -> str:
    """The SQL without its string literals (a ``$`` inside a literal is just text)."""
    return re.sub(r"'(?:[^']|'')*'", "''", sql)
