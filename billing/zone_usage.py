"""The water a zone's customers use that no telemetry reports, per local day.

For the DMA water balance and the night-flow checks of the alarms (``alarms.zone``): the
district meters measure everything that enters a DMA, the telemetered customer meters report
only their own households. The rest is estimated here, the way billing bills it:

* **accounts billed by the norm** (``metered = false``, or without a meter connected that
  day): residents × the norm in force that day ÷ the days of its month, for the days the
  account is active (billing charges no norm for suspended or closed days; see
  :mod:`billing.proration`);
* **metered accounts whose meter sends no telemetry** (``meters.point_id`` is empty: read by
  an inspector once a month): the daily average of their latest invoiced volume before that
  month, or the norm while they have no invoice yet.

Accounts whose meter has a telemetry point are left out: the alarms read those meters
themselves. The zone of an account is ``accounts.zone_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from billing.proration import ACTIVE, fetch_services
from billing.tariffs import Norm, period_bounds


@dataclass(frozen=True)
class DayUse:
    """The estimated use of one zone on one local day (m³)."""

    day: date
    norm_m3: float  # accounts billed by the norm
    norm_accounts: int
    manual_m3: float  # metered accounts without telemetry (their last invoiced average)
    manual_accounts: int

    @property
    def estimated_m3(self) -> float:
        return self.norm_m3 + self.manual_m3


def _norm_on(norms: Sequence[Norm], day: date) -> float:
    valid = [n for n in norms if n.valid_from <= day]
    return max(valid, key=lambda n: n.valid_from).m3_per_person_month if valid else 0.0


def _months(first: date, last: date) -> list[date]:
    out = []
    m = first.replace(day=1)
    while m <= last:
        out.append(m)
        m = (m + timedelta(days=32)).replace(day=1)
    return out


def unmetered_use(
    conn: psycopg.Connection[Any],
    zone_id: int,
    first_day: date,
    last_day: date,
    tz: str = "Asia/Tashkent",
) -> list[DayUse]:
    """The estimated unreported use of zone ``zone_id`` on each local day from ``first_day``
    to ``last_day`` (both included), in the time zone ``tz``."""
    norms = [
        Norm(r[0], float(r[1]))
        for r in conn.execute("SELECT valid_from, m3_per_person_month FROM norms").fetchall()
    ]
    accs = conn.execute(
        "SELECT id, metered, residents FROM accounts WHERE zone_id = %s ORDER BY id", (zone_id,)
    ).fetchall()
    ids = [int(a[0]) for a in accs]
    out: list[DayUse] = []
    if not ids:
        d = first_day
        while d <= last_day:
            out.append(DayUse(d, 0.0, 0, 0.0, 0))
            d += timedelta(days=1)
        return out
    # meter connections: (account, installed, removed, telemetered)
    conns: dict[int, list[tuple[Any, Any, bool]]] = {}
    for acc, inst, rem, tele in conn.execute(
        "SELECT sc.account_id, sc.installed_at, sc.removed_at, m.point_id IS NOT NULL "
        "FROM service_connections sc JOIN meters m ON m.id = sc.meter_id "
        "WHERE sc.account_id = ANY(%s)",
        (ids,),
    ).fetchall():
        conns.setdefault(int(acc), []).append((inst, rem, bool(tele)))
    for month in _months(first_day, last_day):
        m_first, m_last = period_bounds(month)
        services = fetch_services(conn, ids, m_first, m_last, tz)
        last_invoice = {
            int(r[0]): float(r[1]) / ((period_bounds(r[2])[1] - r[2]).days + 1)
            for r in conn.execute(
                "SELECT DISTINCT ON (account_id) account_id, volume_m3, period FROM invoices "
                "WHERE account_id = ANY(%s) AND period < %s ORDER BY account_id, period DESC, "
                "id DESC",
                (ids, m_first),
            ).fetchall()
        }
        month_days = (m_last - m_first).days + 1
        d = max(first_day, m_first)
        while d <= min(last_day, m_last):
            norm_pc = _norm_on(norms, d) / month_days
            day_start, day_end = _local_bounds(d, tz)
            norm_m3 = manual_m3 = 0.0
            n_norm = n_manual = 0
            for acc_id, metered, residents in accs:
                svc = services.get(int(acc_id))
                if svc is None or svc.days[(d - m_first).days] != ACTIVE:
                    continue
                meter = next(
                    (
                        tele
                        for inst, rem, tele in conns.get(int(acc_id), [])
                        if inst < day_end and (rem is None or rem > day_start)
                    ),
                    None,
                )
                if metered and meter is True:
                    continue  # telemetered: the alarms read its meter
                if metered and meter is False and int(acc_id) in last_invoice:
                    manual_m3 += last_invoice[int(acc_id)]
                    n_manual += 1
                else:
                    norm_m3 += int(residents) * norm_pc
                    n_norm += 1
            out.append(DayUse(d, norm_m3, n_norm, manual_m3, n_manual))
            d += timedelta(days=1)
    return out


def _local_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    return (
        datetime.combine(day, time(0), zone),
        datetime.combine(day + timedelta(days=1), time(0), zone),
    )
