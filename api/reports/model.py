"""The report model (pure): columns, rows with group subtotals, and totals.

Titles, column labels, filter labels and notes are catalog messages (:class:`Msg`), put into
the reader's language only when the form is rendered (:mod:`api.reports.render`). Cell values
stay as the database gives them: money in integer tiyin, codes (a category, a channel) as
codes, which a column with ``codes`` shows through its table of messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from api.reports.text import Msg

if TYPE_CHECKING:
    from api.reports.form import Requisites

Kind = Literal["text", "money", "int", "float", "pct", "date", "datetime", "month"]


@dataclass(frozen=True)
class Column:
    key: str
    label: Msg
    kind: Kind = "text"
    codes: Mapping[str, Msg] | None = None
    """For a column of stored codes: the message of each code."""


@dataclass(frozen=True)
class Row:
    """``level`` 0 is a detail row; higher levels are subtotals (1 street, 2 mahalla,
    3 district, 9 grand total)."""

    values: dict[str, Any]
    level: int = 0


@dataclass
class Table:
    key: str
    title: Msg
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    note: Msg | None = None

    def details(self) -> list[dict[str, Any]]:
        return [r.values for r in self.rows if r.level == 0]

    def total(self) -> dict[str, Any] | None:
        return next((r.values for r in self.rows if r.level == 9), None)


@dataclass(frozen=True)
class Note:
    """A footnote of a form: a message with its values (money already in tiyin)."""

    msg: Msg
    args: dict[str, Any] = field(default_factory=dict)
    money: tuple[str, ...] = ()
    """The args that are amounts in tiyin (shown as so'm)."""


@dataclass
class Report:
    name: str
    title: Msg
    tables: list[Table]
    params: dict[str, str] = field(default_factory=dict)
    """The filters as the API got them (JSON, file names)."""
    date_from: date | None = None
    date_to: date | None = None
    filters: list[tuple[Msg, str]] = field(default_factory=list)
    """The filters for people: (label, value), e.g. (District, "Urgut")."""
    notes: list[Note] = field(default_factory=list)
    seller: Requisites | None = None
    """Whose form it is when not the utility's: the branch of a branch user's report
    (docs/branches.md); its name and requisites head the form."""

    def table(self, key: str) -> Table:
        return next(t for t in self.tables if t.key == key)


def with_subtotals(
    rows: Sequence[dict[str, Any]],
    groups: Sequence[tuple[int, str, str]],
    sum_keys: Sequence[str],
    label_key: str,
    *,
    derived: Callable[[dict[str, Any]], None] | None = None,
) -> list[Row]:
    """Rows (already sorted by the group keys) with a subtotal after each group and a grand
    total at the end. ``groups`` is [(level, key column, label column)] from the innermost
    (e.g. street) to the outermost (district). ``derived`` recomputes ratio columns of a
    subtotal from its sums."""
    out: list[Row] = []
    acc: dict[int, dict[str, Any]] = {}
    current: dict[int, Any] = {}

    def flush(level: int, label: str) -> None:
        s = acc.pop(level, None)
        if s is None:
            return
        vals = {k: s.get(k, 0) for k in sum_keys}
        vals[label_key] = label
        if derived:
            derived(vals)
        out.append(Row(vals, level))

    labels: dict[int, str] = {}
    for row in rows:
        # close the groups whose key changed, innermost first
        changed_from: int | None = None
        for i, (level, key, _lab) in enumerate(reversed(groups)):
            if level in current and current[level] != row[key]:
                changed_from = len(groups) - 1 - i
                break
        if changed_from is not None:
            for level, _key, _lab in groups[: changed_from + 1]:
                flush(level, labels.get(level, ""))
        for level, key, lab in groups:
            current[level] = row[key]
            labels[level] = str(row[lab])
            s = acc.setdefault(level, {})
            for k in sum_keys:
                s[k] = s.get(k, 0) + (row.get(k) or 0)
        out.append(Row(dict(row), 0))
        total = acc.setdefault(9, {})
        for k in sum_keys:
            total[k] = total.get(k, 0) + (row.get(k) or 0)
    for level, _key, _lab in groups:
        flush(level, labels.get(level, ""))
    flush(9, "")
    return out


def total_row(
    rows: Iterable[dict[str, Any]], sum_keys: Sequence[str], label_key: str, label: str
) -> Row:
    vals: dict[str, Any] = dict.fromkeys(sum_keys, 0)
    for r in rows:
        for k in sum_keys:
            vals[k] += r.get(k) or 0
    vals[label_key] = label
    return Row(vals, 9)
