"""The monthly billing run: fetch (SQL) -> compute (kernels, tariff maths) -> post (SQL).

* Idempotent: every active account gets exactly one regular invoice per month (a unique index
  says so) and its charge carries the idempotency key ``charge:<YYYY-MM>:<account id>``; a
  second run finds nothing left to bill and adds nothing.
* Resumable: accounts are billed in batches, each batch in one transaction (invoices, ledger
  charges, consumption rows and the run's progress together). After a crash the next run
  bills only the accounts that have no invoice yet.
* Dry run: computes everything and returns the totals without writing anything.
* Corrections of a closed month: :func:`correct_account` reverses the charges and posts a new
  charge with a correction invoice; nothing is ever edited.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import psycopg

from billing import consumption as cons
from billing.config import BillingConfig
from billing.errors import BillingRunError
from billing.ledger import post_entry, reverse_entry
from billing.proration import Service, fetch_services
from billing.tariffs import (
    Charge,
    Norm,
    Tariff,
    metered_charge,
    norm_charge,
    period_bounds,
)

log = logging.getLogger(__name__)

SOURCE_PRIORITY = {"install": -1, "telemetry": 0, "inspector": 1, "manual": 2, "customer": 3}
LOOKAHEAD = timedelta(days=35)  # readings after the period end used to interpolate the end


@dataclass(frozen=True)
class MeterLine:
    meter_id: int
    serial_no: str
    start_ts: datetime
    end_ts: datetime
    start_m3: float | None
    end_m3: float | None
    volume_m3: float
    estimated_m3: float
    flags: int


@dataclass(frozen=True)
class AccountBill:
    account_id: int
    number: str
    kind: str
    basis: str  # metered | norm
    volume_m3: float
    litres: int
    estimated: bool
    flags: int
    charge: Charge
    meters: tuple[MeterLine, ...]
    service: Service | None = None

    @property
    def service_days(self) -> int:
        """Days billed: active days for the norm, days not closed for a meter."""
        if self.service is None:
            return 0
        if self.basis == "norm":
            return self.service.active_days
        return self.service.active_days + self.service.suspended_days

    @property
    def prorated(self) -> bool:
        return self.service is not None and self.service_days < self.service.period_days


@dataclass
class RunSummary:
    period: date
    dry_run: bool
    accounts_billed: int = 0
    accounts_skipped_done: int = 0
    invoices_created: int = 0
    total_tiyin: int = 0
    vat_tiyin: int = 0
    volume_m3: float = 0.0
    metered: int = 0
    by_norm: int = 0
    estimated: int = 0
    flagged: dict[str, int] = field(default_factory=dict)
    state: str = ""


@dataclass(frozen=True)
class PeriodWindow:
    period: date
    start: datetime
    end: datetime

    @classmethod
    def of(cls, period: date, tz: str) -> PeriodWindow:
        first, last = period_bounds(period)
        zone = ZoneInfo(tz)
        start = datetime.combine(first, time(0), zone)
        end = datetime.combine(last + timedelta(days=1), time(0), zone)
        return cls(first, start, end)


def load_tariffs(conn: psycopg.Connection[Any]) -> list[Tariff]:
    rows = conn.execute(
        "SELECT category, valid_from, price_tiyin_per_m3, vat_rate_bp FROM tariffs"
    ).fetchall()
    return [Tariff(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


def load_norms(conn: psycopg.Connection[Any]) -> list[Norm]:
    rows = conn.execute("SELECT valid_from, m3_per_person_month FROM norms").fetchall()
    return [Norm(r[0], float(r[1])) for r in rows]


def _epoch(dt: datetime) -> int:
    return int(dt.timestamp())


def _from_epoch(s: int) -> datetime:
    return datetime.fromtimestamp(s, UTC)


def compute_bills(  # noqa: PLR0917
    conn: psycopg.Connection[Any],
    account_ids: Sequence[int],
    win: PeriodWindow,
    cfg: BillingConfig,
    tariffs: list[Tariff],
    norms: list[Norm],
) -> list[AccountBill]:
    """Fetch the data of some accounts and compute their bills (no writes)."""
    ids = list(account_ids)
    p_first, p_last = period_bounds(win.period)
    services = fetch_services(conn, ids, p_first, p_last, cfg.timezone)
    accs = conn.execute(
        "SELECT id, number, kind, category, metered, residents, status FROM accounts "
        "WHERE id = ANY(%s) ORDER BY id",
        (ids,),
    ).fetchall()
    conns = conn.execute(
        """SELECT sc.account_id, sc.meter_id, m.serial_no, m.digits, m.point_id,
                  sc.installed_at, sc.removed_at, sc.initial_reading, sc.final_reading
           FROM service_connections sc JOIN meters m ON m.id = sc.meter_id
           WHERE sc.account_id = ANY(%s) AND sc.installed_at < %s
             AND (sc.removed_at IS NULL OR sc.removed_at > %s)
           ORDER BY sc.account_id, sc.installed_at, sc.id""",
        (ids, win.end, win.start),
    ).fetchall()
    meter_ids = sorted({int(c[1]) for c in conns})
    point_ids = sorted({int(c[4]) for c in conns if c[4] is not None})
    lo_ts = win.start - timedelta(days=cfg.consumption.history_days)
    hi_ts = win.end + LOOKAHEAD
    rows: list[tuple[int, int, float, int]] = []
    if meter_ids:
        cur = conn.execute(
            """SELECT meter_id, extract(epoch FROM ts)::bigint, value_m3,
                      CASE source WHEN 'telemetry' THEN 0 WHEN 'inspector' THEN 1
                                  WHEN 'manual' THEN 2 ELSE 3 END
               FROM meter_readings WHERE meter_id = ANY(%s) AND ts >= %s AND ts < %s""",
            (meter_ids, lo_ts, hi_ts),
        )
        rows.extend(cur.fetchall())
    if point_ids:
        cur = conn.execute(
            """SELECT m.id, extract(epoch FROM r.ts)::bigint, r.value, 0
               FROM readings r JOIN meters m ON m.point_id = r.point_id
               WHERE r.point_id = ANY(%s) AND r.ts >= %s AND r.ts < %s AND r.quality = 0
                 AND r.value IS NOT NULL""",
            (point_ids, lo_ts, hi_ts),
        )
        rows.extend(cur.fetchall())
    for c in conns:
        rows.append((int(c[1]), _epoch(c[5]), float(c[7]), SOURCE_PRIORITY["install"]))
        if c[6] is not None:
            rows.append((int(c[1]), _epoch(c[6]), float(c[8]), SOURCE_PRIORITY["install"]))
    if rows:
        arr = np.array(rows, dtype=np.float64)
        r_meter = arr[:, 0].astype(np.int64)
        r_ts = arr[:, 1].astype(np.int64)
        r_val = arr[:, 2]
        r_pri = arr[:, 3].astype(np.int64)
        order = np.lexsort((r_pri, r_ts, r_meter))
        r_meter, r_ts, r_val = r_meter[order], r_ts[order], r_val[order]
        keep = np.ones(r_meter.shape[0], dtype=bool)
        keep[1:] = (r_meter[1:] != r_meter[:-1]) | (r_ts[1:] != r_ts[:-1])
        r_meter, r_ts, r_val = r_meter[keep], r_ts[keep], r_val[keep]
    else:
        r_meter = np.zeros(0, np.int64)
        r_ts = np.zeros(0, np.int64)
        r_val = np.zeros(0, np.float64)
    # one kernel slot per connection: its readings within the connection's life
    ns = len(conns)
    offsets = np.zeros(ns + 1, dtype=np.int64)
    pieces: list[np.ndarray] = []
    win_s = np.zeros(ns, dtype=np.int64)
    win_e = np.zeros(ns, dtype=np.int64)
    capacity = np.zeros(ns, dtype=np.float64)
    ps, pe = _epoch(win.start), _epoch(win.end)
    for k, c in enumerate(conns):
        mid = int(c[1])
        a = int(np.searchsorted(r_meter, mid, "left"))
        b = int(np.searchsorted(r_meter, mid, "right"))
        inst = _epoch(c[5])
        rem = _epoch(c[6]) if c[6] is not None else None
        # the account's service within the period: nothing before it opened, nothing after
        # it was closed (readings after the closing moment are not used either)
        svc = services.get(int(c[0]))
        svc_s = ps if svc is None else (pe if svc.start is None else _epoch(svc.start))
        svc_e = pe if svc is None else (ps if svc.end is None else _epoch(svc.end))
        cut = rem
        if svc_e < pe:
            cut = svc_e if cut is None else min(cut, svc_e)
        a2 = a + int(np.searchsorted(r_ts[a:b], inst, "left"))
        b2 = b if cut is None else a + int(np.searchsorted(r_ts[a:b], cut, "right"))
        b2 = max(a2, b2)
        pieces.append(np.arange(a2, b2, dtype=np.int64))
        offsets[k + 1] = offsets[k] + (b2 - a2)
        win_s[k] = max(ps, inst, svc_s)
        win_e[k] = max(win_s[k], min(pe, svc_e) if rem is None else min(pe, rem, svc_e))
        capacity[k] = 10.0 ** int(c[3])
    idx = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    res = cons.compute(offsets, r_ts[idx], r_val[idx], capacity, win_s, win_e, cfg.consumption)
    by_acc: dict[int, list[MeterLine]] = {}
    for k, c in enumerate(conns):
        sv, ev = float(res.start_value[k]), float(res.end_value[k])
        by_acc.setdefault(int(c[0]), []).append(
            MeterLine(
                meter_id=int(c[1]),
                serial_no=str(c[2]),
                start_ts=_from_epoch(int(win_s[k])),
                end_ts=_from_epoch(int(win_e[k])),
                start_m3=None if np.isnan(sv) else sv,
                end_m3=None if np.isnan(ev) else ev,
                volume_m3=float(res.volume[k]),
                estimated_m3=float(res.estimated[k]),
                flags=int(res.flags[k]),
            )
        )
    out: list[AccountBill] = []
    for acc_id, number, kind, category, metered, residents, _status in accs:
        lines = by_acc.get(int(acc_id), [])
        svc = services.get(int(acc_id))
        if metered and lines:
            vol = sum(m.volume_m3 for m in lines)
            flags = 0
            for m in lines:
                flags |= m.flags
            litres = max(0, round(vol * 1000))
            # the tariff split runs over the days the account was not closed
            rng = svc.open_range() if svc is not None and not svc.full else None
            first, last = rng if rng is not None else (None, None)
            charge = metered_charge(litres, category, win.period, tariffs, first=first, last=last)
            basis = "metered"
        else:
            flags = 0
            # the norm is charged for the active days only: no water on suspended days, none
            # before the account was opened or after it was closed
            mask = svc.active_mask if svc is not None and not svc.full else None
            charge = norm_charge(int(residents), category, win.period, tariffs, norms, service=mask)
            litres = charge.litres
            vol = litres / 1000
            basis = "norm"
        out.append(
            AccountBill(
                account_id=int(acc_id),
                number=str(number),
                kind=str(kind),
                basis=basis,
                volume_m3=vol,
                litres=litres,
                estimated=bool(flags & cons.ESTIMATED_MASK),
                flags=flags,
                charge=charge,
                meters=tuple(lines),
                service=svc,
            )
        )
    return out


def _accumulate(summary: RunSummary, bills: list[AccountBill]) -> None:
    for b in bills:
        summary.accounts_billed += 1
        summary.total_tiyin += b.charge.total_tiyin
        summary.vat_tiyin += b.charge.vat_tiyin
        summary.volume_m3 += b.litres / 1000
        if b.basis == "metered":
            summary.metered += 1
        else:
            summary.by_norm += 1
        if b.estimated:
            summary.estimated += 1
        for name in cons.flag_names(b.flags):
            summary.flagged[name] = summary.flagged.get(name, 0) + 1


def _allocate_numbers(conn: psycopg.Connection[Any], year: int, n: int) -> list[str]:
    conn.execute(
        "INSERT INTO invoice_counters (year, last) VALUES (%s, 0) ON CONFLICT DO NOTHING", (year,)
    )
    row = conn.execute(
        "UPDATE invoice_counters SET last = last + %s WHERE year = %s RETURNING last", (n, year)
    ).fetchone()
    assert row is not None
    last = int(row[0])
    return [f"{year}-{i:07d}" for i in range(last - n + 1, last + 1)]


def _lines_json(b: AccountBill) -> str:
    doc: dict[str, Any] = {}
    if b.prorated and b.service is not None:
        doc["service"] = {
            "days": b.service_days,
            "period_days": b.service.period_days,
            "active_days": b.service.active_days,
            "suspended_days": b.service.suspended_days,
        }
    return json.dumps(
        {
            **doc,
            "basis": b.basis,
            "charge": [ln.as_json() for ln in b.charge.lines],
            "meters": [
                {
                    "meter_id": m.meter_id,
                    "serial_no": m.serial_no,
                    "start_m3": m.start_m3,
                    "end_m3": m.end_m3,
                    "volume_m3": m.volume_m3,
                    "estimated_m3": m.estimated_m3,
                    "flags": cons.flag_names(m.flags),
                }
                for m in b.meters
            ],
        }
    )


def post_bills(
    conn: psycopg.Connection[Any],
    bills: list[AccountBill],
    win: PeriodWindow,
    *,
    now: datetime,
    run_id: int | None,
    kind: str = "regular",
) -> dict[int, int]:
    """Insert invoices, consumption rows and ledger charges (caller's transaction).

    Returns account id -> invoice id.
    """
    if not bills:
        return {}
    numbers = _allocate_numbers(conn, now.year, len(bills))
    _, last_day = period_bounds(win.period)
    rows = conn.execute(
        """INSERT INTO invoices (number, account_id, period, kind, run_id, issued_at,
                                 amount_tiyin, vat_tiyin, volume_m3, estimated, lines)
           SELECT n, a, %s, %s, %s, %s, amt, vat, vol, est, l::jsonb
           FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[],
                       %s::float8[], %s::bool[], %s::text[]) AS u(n, a, amt, vat, vol, est, l)
           RETURNING id, account_id""",
        (
            win.period,
            kind,
            run_id,
            now,
            numbers,
            [b.account_id for b in bills],
            [b.charge.total_tiyin for b in bills],
            [b.charge.vat_tiyin for b in bills],
            [b.litres / 1000 for b in bills],
            [b.estimated for b in bills],
            [_lines_json(b) for b in bills],
        ),
    ).fetchall()
    inv = {int(a): int(i) for i, a in rows}
    mrows = [(b, m) for b in bills for m in b.meters]
    if mrows:
        conn.execute(
            """INSERT INTO period_consumption (period, account_id, meter_id, invoice_id,
                   start_ts, end_ts, start_m3, end_m3, volume_m3, estimated_m3, flags)
               SELECT %s, a, m, i, s, e, sv, ev, v, est, f
               FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::timestamptz[],
                           %s::timestamptz[], %s::float8[], %s::float8[], %s::float8[],
                           %s::float8[], %s::int[]) AS u(a, m, i, s, e, sv, ev, v, est, f)""",
            (
                win.period,
                [b.account_id for b, _ in mrows],
                [m.meter_id for _, m in mrows],
                [inv[b.account_id] for b, _ in mrows],
                [m.start_ts for _, m in mrows],
                [m.end_ts for _, m in mrows],
                [m.start_m3 for _, m in mrows],
                [m.end_m3 for _, m in mrows],
                [m.volume_m3 for _, m in mrows],
                [m.estimated_m3 for _, m in mrows],
                [m.flags for _, m in mrows],
            ),
        )
    charged = [b for b in bills if b.charge.total_tiyin > 0]
    if charged and kind == "regular":
        ym = win.period.strftime("%Y-%m")
        conn.execute(
            """INSERT INTO ledger (account_id, kind, amount_tiyin, vat_tiyin, value_date, period,
                                   posted_at, source, idem_key, invoice_id, memo)
               SELECT a, 'charge', amt, vat, %s, %s, %s, 'billing', k, i, %s
               FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[], %s::bigint[])
                    AS u(a, amt, vat, k, i)
               ON CONFLICT (idem_key) DO NOTHING""",
            (
                last_day,
                win.period,
                now,
                f"water {ym}",
                [b.account_id for b in charged],
                [b.charge.total_tiyin for b in charged],
                [b.charge.vat_tiyin for b in charged],
                [f"charge:{ym}:{b.account_id}" for b in charged],
                [inv[b.account_id] for b in charged],
            ),
        )
    return inv


def _unbilled(conn: psycopg.Connection[Any], win: PeriodWindow, tz: str) -> tuple[list[int], int]:
    """Accounts still to bill: opened by the end of the period and active or suspended on at
    least one of its days (billing.proration), without a regular invoice yet."""
    first, last = period_bounds(win.period)
    rows = conn.execute(
        """SELECT a.id,
                  a.status = 'closed' OR EXISTS (
                      SELECT 1 FROM account_status_history h
                      WHERE h.account_id = a.id AND h.since > %s)
           FROM accounts a
           WHERE a.opened_on <= %s
             AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.account_id = a.id
                             AND i.period = %s AND i.kind = 'regular')
           ORDER BY a.id""",
        (win.start, last, win.period),
    ).fetchall()
    # an account that is not closed now and has not changed its status since the period
    # started was open all along; the others are checked day by day
    check = [int(r[0]) for r in rows if r[1]]
    services = fetch_services(conn, check, first, last, tz) if check else {}
    ids = [int(r[0]) for r in rows if not r[1] or services[int(r[0])].billable]
    row = conn.execute(
        "SELECT count(*) FROM invoices WHERE period = %s AND kind = 'regular'", (win.period,)
    ).fetchone()
    assert row is not None
    return ids, int(row[0])


def run_billing(
    conn: psycopg.Connection[Any],
    period: date,
    cfg: BillingConfig,
    *,
    now: datetime,
    dry_run: bool = False,
    batch_size: int = 5000,
    progress: Callable[[int, int], None] | None = None,
    after_batch: Callable[[int], None] | None = None,
) -> RunSummary:
    """Bill every active account for ``period`` (see the module doc). ``conn`` must not be in
    autocommit mode; each batch is committed on it."""
    if conn.autocommit:
        raise BillingRunError("run_billing needs a connection with autocommit off")
    win = PeriodWindow.of(period, cfg.timezone)
    summary = RunSummary(period=win.period, dry_run=dry_run)
    lock_key = zlib.crc32(f"billing-run:{win.period}".encode())
    got = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_key,)).fetchone()
    conn.commit()
    if not got or not got[0]:
        raise BillingRunError(
            f"another billing run for {win.period:%Y-%m} is in progress; try again later"
        )
    try:
        tariffs = load_tariffs(conn)
        norms = load_norms(conn)
        todo, done_before = _unbilled(conn, win, cfg.timezone)
        summary.accounts_skipped_done = done_before
        total = len(todo)
        run_id: int | None = None
        if not dry_run:
            row = conn.execute(
                """INSERT INTO billing_runs (period, state, started_at, accounts_total)
                   VALUES (%s, 'running', %s, %s)
                   ON CONFLICT (period) DO UPDATE SET state = 'running',
                       attempts = billing_runs.attempts + 1, last_error = NULL,
                       accounts_total = billing_runs.accounts_done + EXCLUDED.accounts_total,
                       finished_at = NULL
                   RETURNING id""",
                (win.period, now, total),
            ).fetchone()
            assert row is not None
            run_id = int(row[0])
            conn.commit()
            if total:
                log.info("billing run %s started: %d accounts to bill", f"{period:%Y-%m}", total)
        if progress:
            progress(0, total)
        done = 0
        for bno, start in enumerate(range(0, total, batch_size)):
            chunk = todo[start : start + batch_size]
            try:
                bills = compute_bills(conn, chunk, win, cfg, tariffs, norms)
                _accumulate(summary, bills)
                if not dry_run:
                    inv = post_bills(conn, bills, win, now=now, run_id=run_id)
                    summary.invoices_created += len(inv)
                    conn.execute(
                        """UPDATE billing_runs SET accounts_done = accounts_done + %s,
                               charged_tiyin = charged_tiyin + %s WHERE id = %s""",
                        (len(bills), sum(b.charge.total_tiyin for b in bills), run_id),
                    )
                conn.commit()
            except BaseException as exc:
                conn.rollback()
                if run_id is not None and not isinstance(exc, KeyboardInterrupt):
                    conn.execute(
                        "UPDATE billing_runs SET state = 'failed', last_error = %s WHERE id = %s",
                        (f"{type(exc).__name__}: {exc}"[:500], run_id),
                    )
                    conn.commit()
                raise
            done += len(chunk)
            if progress:
                progress(done, total)
            if after_batch:
                after_batch(bno)
        if not dry_run:
            conn.execute(
                "UPDATE billing_runs SET state = 'completed', finished_at = %s WHERE id = %s",
                (now, run_id),
            )
            conn.commit()
            summary.state = "completed"
            if total:
                log.info(
                    "billing run %s completed: %d invoices, %d tiyin",
                    f"{period:%Y-%m}",
                    summary.invoices_created,
                    summary.total_tiyin,
                )
        else:
            conn.rollback()
            summary.state = "dry-run"
        return summary
    finally:
        conn.rollback()
        conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key,))
        conn.commit()


@dataclass(frozen=True)
class Correction:
    account_id: int
    reversed_entries: tuple[int, ...]
    new_entry: int | None
    invoice_id: int
    old_tiyin: int
    new_tiyin: int


def correct_account(
    conn: psycopg.Connection[Any],
    account_id: int,
    period: date,
    cfg: BillingConfig,
    *,
    now: datetime,
    reason: str = "",
) -> Correction:
    """Re-bill one account for a closed month: reverse its charges, post a new charge and a
    correction invoice. Runs in the caller's transaction (commit it)."""
    win = PeriodWindow.of(period, cfg.timezone)
    live = conn.execute(
        """SELECT l.id, l.amount_tiyin FROM ledger l
           WHERE l.account_id = %s AND l.period = %s AND l.kind = 'charge'
             AND NOT EXISTS (SELECT 1 FROM ledger r WHERE r.reverses_id = l.id)
           ORDER BY l.id""",
        (account_id, win.period),
    ).fetchall()
    if not conn.execute(
        "SELECT 1 FROM invoices WHERE account_id = %s AND period = %s", (account_id, win.period)
    ).fetchone():
        raise BillingRunError(
            f"account {account_id} has not been billed for {win.period:%Y-%m}; run the billing"
        )
    bills = compute_bills(conn, [account_id], win, cfg, load_tariffs(conn), load_norms(conn))
    if not bills:
        raise BillingRunError(f"no account {account_id}")
    bill = bills[0]
    reversed_ids = []
    for entry_id, _amt in live:
        reverse_entry(conn, int(entry_id), posted_at=now, memo=f"correction: {reason}".strip())
        reversed_ids.append(int(entry_id))
    inv = post_bills(conn, [bill], win, now=now, run_id=None, kind="correction")
    new_id = None
    if bill.charge.total_tiyin > 0:
        n_prev = len(
            conn.execute(
                "SELECT 1 FROM invoices WHERE account_id = %s AND period = %s AND kind = "
                "'correction'",
                (account_id, win.period),
            ).fetchall()
        )
        new_id = post_entry(
            conn,
            account_id=account_id,
            kind="charge",
            amount_tiyin=bill.charge.total_tiyin,
            vat_tiyin=bill.charge.vat_tiyin,
            posted_at=now,
            value_date=now.date(),  # the closed month stays as printed; the fix is dated today
            period=win.period,
            idem_key=f"charge:{win.period:%Y-%m}:{account_id}:c{n_prev}",
            invoice_id=inv[account_id],
            memo=f"water {win.period:%Y-%m} (corrected) {reason}".strip(),
        ).id
    return Correction(
        account_id,
        tuple(reversed_ids),
        new_id,
        inv[account_id],
        sum(int(a) for _, a in live),
        bill.charge.total_tiyin,
    )


RollupLevel = Literal["account", "street", "mahalla", "district", "zone"]


@dataclass(frozen=True)
class Rollup:
    key: int
    name: str
    volume_m3: float
    estimated_m3: float
    accounts: int


def consumption_rollups(
    conn: psycopg.Connection[Any], period: date, by: RollupLevel
) -> list[Rollup]:
    """Billed volume of a month per account, street, mahalla, district or zone (DMA).

    SQL fetches the per-meter rows of the latest invoice of each account; the roll-up is the
    ``group_sum`` kernel (totals per account first, then per group)."""
    first, _ = period_bounds(period)
    rows = conn.execute(
        """WITH latest AS (
               SELECT DISTINCT ON (account_id, period) id FROM invoices WHERE period = %s
               ORDER BY account_id, period, id DESC)
           SELECT pc.account_id, pc.volume_m3, pc.estimated_m3,
                  CASE %s WHEN 'zone' THEN coalesce(m.zone_id, a.zone_id, -1)
                          WHEN 'street' THEN aa.street_id WHEN 'mahalla' THEN aa.mahalla_id
                          WHEN 'district' THEN aa.district_id ELSE pc.account_id END,
                  CASE %s WHEN 'zone' THEN coalesce(z.code, '(no zone)')
                          WHEN 'street' THEN aa.street_uz WHEN 'mahalla' THEN aa.mahalla_uz
                          WHEN 'district' THEN aa.district_uz ELSE aa.number END
           FROM period_consumption pc JOIN latest l ON l.id = pc.invoice_id
           JOIN meters m ON m.id = pc.meter_id JOIN accounts a ON a.id = pc.account_id
           JOIN account_addresses aa ON aa.account_id = pc.account_id
           LEFT JOIN zones z ON z.id = coalesce(m.zone_id, a.zone_id)""",
        (first, by, by),
    ).fetchall()
    if not rows:
        return []
    keys = sorted({int(r[3]) for r in rows})
    index = {k: i for i, k in enumerate(keys)}
    names = {int(r[3]): str(r[4]) for r in rows}
    group = np.array([index[int(r[3])] for r in rows], dtype=np.int64)
    vol = cons.group_sum(np.array([float(r[1]) for r in rows]), group, len(keys))
    est = cons.group_sum(np.array([float(r[2]) for r in rows]), group, len(keys))
    accs: dict[int, set[int]] = {}
    for r in rows:
        accs.setdefault(int(r[3]), set()).add(int(r[0]))
    return [
        Rollup(k, names[k], float(vol[i]), float(est[i]), len(accs[k])) for k, i in index.items()
    ]
