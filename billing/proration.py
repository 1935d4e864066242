"""Days of service of an account in a billing period (proration).

The status of an account over time comes from ``account_status_history`` (one row per change,
with the moment ``since`` it took effect) and from ``accounts.opened_on``:

* before 00:00 (local time) of ``opened_on`` the account does not exist;
* from then on it has the status it was created with (the oldest history row, written when
  the account is entered; its time is the time of data entry, which may be long after
  ``opened_on``, and is not used);
* every later history row switches the status from its ``since`` on (a change may be entered
  late with the moment it took effect, see ``billing.accounts.set_status``).

Each local day of the period gets one status: ``active`` when the account was active for any
part of the day, else ``suspended`` when it was suspended for any part of it, else ``closed``
(or ``none`` before the account was opened). So the day of opening, the day of closing and
the days on which a suspension starts or ends are all days of service.

* Norm-billed accounts pay the norm for their ``active`` days only.
* Metered accounts are billed from the readings between the first and the last moment the
  account was not closed (:attr:`Service.start`, :attr:`Service.end`).
* An account with no day that is active or suspended in the period gets no invoice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

ACTIVE = "active"
SUSPENDED = "suspended"
CLOSED = "closed"
NONE = "none"  # before the account was opened

_RANK = {ACTIVE: 3, SUSPENDED: 2, CLOSED: 1, NONE: 0}


@dataclass(frozen=True)
class Service:
    """The status of every day of a period for one account."""

    first_day: date
    days: tuple[str, ...]  # index 0 = the first day of the period
    start: datetime | None  # first moment not closed within the period (None: never)
    end: datetime | None  # end of the last stretch not closed within the period

    @property
    def period_days(self) -> int:
        return len(self.days)

    @property
    def active_days(self) -> int:
        return sum(1 for d in self.days if d == ACTIVE)

    @property
    def suspended_days(self) -> int:
        return sum(1 for d in self.days if d == SUSPENDED)

    @property
    def billable(self) -> bool:
        """True when the account gets an invoice for the period (a day active or suspended)."""
        return self.start is not None

    @property
    def active_mask(self) -> tuple[bool, ...]:
        return tuple(d == ACTIVE for d in self.days)

    @cached_property
    def full(self) -> bool:
        """Active on every day of the period (no proration). Asked several times per bill,
        so it is worked out once."""
        return all(d == ACTIVE for d in self.days)

    def open_range(self) -> tuple[date, date] | None:
        """First and last day that is active or suspended (the metered tariff split)."""
        idx = [i for i, d in enumerate(self.days) if d in (ACTIVE, SUSPENDED)]
        if not idx:
            return None
        return (
            self.first_day + timedelta(days=idx[0]),
            self.first_day + timedelta(days=idx[-1]),
        )

    def as_json(self) -> dict[str, object]:
        return {
            "days": self.active_days,
            "suspended_days": self.suspended_days,
            "period_days": self.period_days,
        }


@dataclass(frozen=True)
class _Days:
    """The local day boundaries of a period (computed once per period)."""

    first_day: date
    bounds: tuple[datetime, ...]  # n + 1 midnights
    zone: ZoneInfo

    @classmethod
    def of(cls, first_day: date, last_day: date, tz: str) -> _Days:
        zone = ZoneInfo(tz)
        n = (last_day - first_day).days + 1
        return cls(
            first_day,
            tuple(
                datetime.combine(first_day + timedelta(days=i), time(0), zone) for i in range(n + 1)
            ),
            zone,
        )


def service_days(  # noqa: PLR0917
    first_day: date,
    last_day: date,
    tz: str,
    opened_on: date,
    initial_status: str,
    changes: Iterable[tuple[datetime, str]],
) -> Service:
    """Statuses of the days ``first_day``..``last_day`` (local ``tz``).

    ``initial_status`` is the status in force at 00:00 of ``first_day`` (if the account was
    open then) and ``changes`` the history rows inside the period, in order."""
    return _service(_Days.of(first_day, last_day, tz), opened_on, initial_status, changes)


def _service(
    per: _Days, opened_on: date, initial_status: str, changes: Iterable[tuple[datetime, str]]
) -> Service:
    bounds = per.bounds
    n = len(bounds) - 1
    p_start, p_end = bounds[0], bounds[-1]
    opened_at = datetime.combine(opened_on, time(0), per.zone)
    # (from, to, status) pieces covering [p_start, p_end)
    pieces: list[tuple[datetime, datetime, str]] = []
    cur_t, cur_s = p_start, initial_status
    if opened_at > p_start:
        pieces.append((p_start, min(opened_at, p_end), NONE))
        cur_t = min(opened_at, p_end)
    for since, status in changes:
        if since <= cur_t:
            cur_s = status
            continue
        if since >= p_end:
            break
        pieces.append((cur_t, since, cur_s))
        cur_t, cur_s = since, status
    if cur_t < p_end:
        pieces.append((cur_t, p_end, cur_s))
    if len(pieces) == 1:  # the usual case: one status all month
        days = (pieces[0][2],) * n
    else:
        out = []
        for i in range(n):
            d0, d1 = bounds[i], bounds[i + 1]
            best = NONE
            for a, b, s in pieces:
                if a < d1 and b > d0 and _RANK[s] > _RANK[best]:
                    best = s
            out.append(best)
        days = tuple(out)
    open_pieces = [(a, b) for a, b, s in pieces if s in (ACTIVE, SUSPENDED)]
    start = open_pieces[0][0] if open_pieces else None
    end = open_pieces[-1][1] if open_pieces else None
    return Service(per.first_day, days, start, end)


def fetch_services(
    conn: psycopg.Connection[Any],
    account_ids: Sequence[int],
    first_day: date,
    last_day: date,
    tz: str,
) -> dict[int, Service]:
    """:class:`Service` of each account for the period (from the status history)."""
    per = _Days.of(first_day, last_day, tz)
    p_start, p_end = per.bounds[0], per.bounds[-1]
    ids = list(account_ids)
    accs = conn.execute(
        "SELECT id, opened_on, status FROM accounts WHERE id = ANY(%s)", (ids,)
    ).fetchall()
    hist: dict[int, list[tuple[int, datetime, str]]] = {}
    for acc_id, hid, since, status in conn.execute(
        "SELECT account_id, id, since, status FROM account_status_history "
        "WHERE account_id = ANY(%s) ORDER BY account_id, id",
        (ids,),
    ).fetchall():
        hist.setdefault(int(acc_id), []).append((int(hid), since, str(status)))
    out: dict[int, Service] = {}
    for acc_id, opened_on, status in accs:
        rows = hist.get(int(acc_id), [])
        # the oldest row is written when the account is entered: it gives the status from
        # the opening date on; its time is the time of data entry and is not used
        initial = rows[0][2] if rows else str(status)
        later = sorted(rows[1:], key=lambda r: (r[1], r[0]))
        changes: list[tuple[datetime, str]] = []
        for _, since, st in later:
            if since <= p_start:
                initial = st
            elif since < p_end:
                changes.append((since, st))
        out[int(acc_id)] = _service(per, opened_on, initial, changes)
    return out
