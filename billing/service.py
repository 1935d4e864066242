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

    @property
    def full(self) -> bool:
        """Active on every day of the period (no proration)."""
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
    zone = ZoneInfo(tz)
    n = (last_day - first_day).days + 1
    bounds = [datetime.combine(first_day + timedelta(days=i), time(0), zone) for i in range(n + 1)]
    p_start, p_end = bounds[0], bounds[-1]
    opened_at = datetime.combine(opened_on, time(0), zone)
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
    return Service(first_day, days, start, end)


def fetch_services(
    conn: psycopg.Connection[Any],
    account_ids: Sequence[int],
    first_day: date,
    last_day: date,
    tz: str,
) -> dict[int, Service]:
    """:class:`Service` of each account for the period (from the status history)."""
    zone = ZoneInfo(tz)
    p_start = datetime.combine(first_day, time(0), zone)
    p_end = datetime.combine(last_day + timedelta(days=1), time(0), zone)
    # the oldest row of an account is written when the account is entered: it gives the
    # status from the opening date on, its time is the time of data entry and is not used
    rows = conn.execute(
        """WITH f AS (
               SELECT DISTINCT ON (account_id) account_id, id, status
               FROM account_status_history WHERE account_id = ANY(%(ids)s)
               ORDER BY account_id, id)
           SELECT a.id, a.opened_on,
                  coalesce(
                      (SELECT h.status FROM account_status_history h
                       WHERE h.account_id = a.id AND h.id > f.id AND h.since <= %(s)s
                       ORDER BY h.since DESC, h.id DESC LIMIT 1),
                      f.status, a.status),
                  (SELECT array_agg(h.since ORDER BY h.since, h.id)
                   FROM account_status_history h WHERE h.account_id = a.id AND h.id > f.id
                     AND h.since > %(s)s AND h.since < %(e)s),
                  (SELECT array_agg(h.status ORDER BY h.since, h.id)
                   FROM account_status_history h WHERE h.account_id = a.id AND h.id > f.id
                     AND h.since > %(s)s AND h.since < %(e)s)
           FROM accounts a LEFT JOIN f ON f.account_id = a.id
           WHERE a.id = ANY(%(ids)s)""",
        {"s": p_start, "e": p_end, "ids": list(account_ids)},
    ).fetchall()
    out: dict[int, Service] = {}
    for acc_id, opened_on, initial, times, statuses in rows:
        changes = list(zip(times or [], statuses or [], strict=True))
        out[int(acc_id)] = service_days(first_day, last_day, tz, opened_on, str(initial), changes)
    return out
