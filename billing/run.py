"""The monthly billing run: fetch (SQL) -> build (pure) -> post (SQL), batch by batch.

* :func:`fetch_inputs` reads everything the bills of some accounts need into
  :class:`BillInputs` (frozen dataclasses and numpy arrays);
* :func:`build_bills` turns them into :class:`AccountBill` s: consumption from the register
  readings (the kernels of :mod:`billing.consumption`), the volume (metered or by the norm),
  the days of service (:mod:`billing.proration`) and the charge lines in tiyin
  (:mod:`billing.tariffs`). It is pure: no database, no clock;
* :func:`post_bills` writes invoices, consumption rows and ledger charges.

The run:

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import psycopg

from billing import consumption as cons
from billing.branches import allocate_for_accounts
from billing.config import BillingConfig, ConsumptionParams
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
    def total_tiyin(self) -> int:
        """The charge's total (:class:`Charge` sums it once)."""
        return self.charge.total_tiyin

    @property
    def vat_tiyin(self) -> int:
        return self.charge.vat_tiyin

    @property
    def prorated(self) -> bool:
        if self.service is None or self.service.full:  # every day active: nothing prorated
            return False
        return self.service_days < self.service.period_days


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
    warnings: list[str] = field(default_factory=list)
    """What the run's caller should know (:class:`PeriodCheck`): an unfinished month, a later
    month billed before this one."""


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


# ------------------------------------------------------------------ inputs (what the fetch reads)
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class AccountIn:
    """An account to bill, as the fetch reads it."""

    id: int
    number: str
    kind: str  # household | legal | budget
    category: str  # the tariff category
    metered: bool
    residents: int


@dataclass(frozen=True)
class MeterLink:
    """A service connection (an account's meter) that overlaps the period."""

    account_id: int
    meter_id: int
    serial_no: str
    digits: int  # register digits: the register rolls over at 10**digits m³
    point_id: int | None  # the meter's telemetry point, if it reports
    installed_at: datetime
    removed_at: datetime | None
    initial_m3: float  # register at the installation
    final_m3: float | None  # register at the removal (set exactly when removed_at is)


@dataclass(frozen=True, eq=False)
class Readings:
    """Register readings as parallel arrays, in any order; a meter may have several readings
    at the same time (from different sources): the lowest ``priority`` wins
    (:data:`SOURCE_PRIORITY`)."""

    meter: I64
    ts: I64  # unix seconds
    value: F64  # m³ on the register
    priority: I64

    @classmethod
    def of(cls, rows: Sequence[tuple[int, int, float, int]]) -> Readings:
        """From (meter id, unix seconds, m³, priority) rows."""
        if not rows:
            return cls.empty()
        arr = np.array(rows, dtype=np.float64)
        return cls(
            arr[:, 0].astype(np.int64),
            arr[:, 1].astype(np.int64),
            arr[:, 2],
            arr[:, 3].astype(np.int64),
        )

    @classmethod
    def empty(cls) -> Readings:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, np.zeros(0, dtype=np.float64), z)


@dataclass(frozen=True)
class BillInputs:
    """Everything the bills of some accounts for one period are computed from."""

    window: PeriodWindow
    accounts: tuple[AccountIn, ...]  # the bills come out in this order
    links: tuple[MeterLink, ...]  # ordered by account, installation
    readings: Readings  # of the linked meters, LOOKAHEAD past the period end
    services: Mapping[int, Service]  # days of service by account id (missing: every day)
    tariffs: tuple[Tariff, ...]
    norms: tuple[Norm, ...]


# ------------------------------------------------------------------ fetch (SQL -> inputs)
def load_tariffs(conn: psycopg.Connection[Any]) -> list[Tariff]:
    rows = conn.execute(
        "SELECT category, valid_from, price_tiyin_per_m3, vat_rate_bp FROM tariffs"
    ).fetchall()
    return [Tariff(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


def load_norms(conn: psycopg.Connection[Any]) -> list[Norm]:
    rows = conn.execute("SELECT valid_from, m3_per_person_month FROM norms").fetchall()
    return [Norm(r[0], float(r[1])) for r in rows]


def fetch_inputs(  # noqa: PLR0917
    conn: psycopg.Connection[Any],
    account_ids: Sequence[int],
    win: PeriodWindow,
    cfg: BillingConfig,
    tariffs: Sequence[Tariff],
    norms: Sequence[Norm],
) -> BillInputs:
    """Read what the bills of ``account_ids`` for the period need (no writes)."""
    ids = list(account_ids)
    p_first, p_last = period_bounds(win.period)
    links = _fetch_links(conn, ids, win)
    lo_ts = win.start - timedelta(days=cfg.consumption.history_days)
    return BillInputs(
        window=win,
        accounts=_fetch_accounts(conn, ids),
        links=links,
        readings=_fetch_readings(conn, links, lo_ts, win.end + LOOKAHEAD),
        services=fetch_services(conn, ids, p_first, p_last, cfg.timezone),
        tariffs=tuple(tariffs),
        norms=tuple(norms),
    )


def _fetch_accounts(conn: psycopg.Connection[Any], ids: list[int]) -> tuple[AccountIn, ...]:
    rows = conn.execute(
        "SELECT id, number, kind, category, metered, residents FROM accounts "
        "WHERE id = ANY(%s) ORDER BY id",
        (ids,),
    ).fetchall()
    return tuple(
        AccountIn(int(r[0]), str(r[1]), str(r[2]), str(r[3]), bool(r[4]), int(r[5])) for r in rows
    )


def _fetch_links(
    conn: psycopg.Connection[Any], ids: list[int], win: PeriodWindow
) -> tuple[MeterLink, ...]:
    rows = conn.execute(
        """SELECT sc.account_id, sc.meter_id, m.serial_no, m.digits, m.point_id,
                  sc.installed_at, sc.removed_at, sc.initial_reading, sc.final_reading
           FROM service_connections sc JOIN meters m ON m.id = sc.meter_id
           WHERE sc.account_id = ANY(%s) AND sc.installed_at < %s
             AND (sc.removed_at IS NULL OR sc.removed_at > %s)
           ORDER BY sc.account_id, sc.installed_at, sc.id""",
        (ids, win.end, win.start),
    ).fetchall()
    return tuple(
        MeterLink(
            account_id=int(r[0]),
            meter_id=int(r[1]),
            serial_no=str(r[2]),
            digits=int(r[3]),
            point_id=None if r[4] is None else int(r[4]),
            installed_at=r[5],
            removed_at=r[6],
            initial_m3=float(r[7]),
            final_m3=None if r[8] is None else float(r[8]),
        )
        for r in rows
    )


def _fetch_readings(
    conn: psycopg.Connection[Any], links: Sequence[MeterLink], lo: datetime, hi: datetime
) -> Readings:
    """Entered readings (``meter_readings``) and good telemetry of the meters' points
    (``readings``) in [lo, hi)."""
    meter_ids = sorted({ln.meter_id for ln in links})
    point_ids = sorted({ln.point_id for ln in links if ln.point_id is not None})
    rows: list[tuple[int, int, float, int]] = []
    if meter_ids:
        cur = conn.execute(
            """SELECT meter_id, extract(epoch FROM ts)::bigint, value_m3,
                      CASE source WHEN 'telemetry' THEN 0 WHEN 'inspector' THEN 1
                                  WHEN 'manual' THEN 2 ELSE 3 END
               FROM meter_readings WHERE meter_id = ANY(%s) AND ts >= %s AND ts < %s""",
            (meter_ids, lo, hi),
        )
        rows.extend(cur.fetchall())
    if point_ids:
        cur = conn.execute(
            """SELECT m.id, extract(epoch FROM r.ts)::bigint, r.value, 0
               FROM readings r JOIN meters m ON m.point_id = r.point_id
               WHERE r.point_id = ANY(%s) AND r.ts >= %s AND r.ts < %s AND r.quality = 0
                 AND r.value IS NOT NULL""",
            (point_ids, lo, hi),
        )
        rows.extend(cur.fetchall())
    return Readings.of(rows)


# ------------------------------------------------------------------ build (pure: inputs -> bills)
def _epoch(dt: datetime) -> int:
    return int(dt.timestamp())


def _from_epoch(s: int) -> datetime:
    return datetime.fromtimestamp(s, UTC)


def build_bills(inp: BillInputs, params: ConsumptionParams) -> list[AccountBill]:
    """The bills of the accounts of ``inp``, in their order: consumption from the register
    readings (kernels), the volume (metered or by the norm) and the charge lines in tiyin.

    Pure: no database, no clock; the same inputs give the same bills."""
    arr = _LinkArrays.of(inp.links)
    readings = _merge(inp.readings, arr)
    lines = _meter_lines(inp.links, arr, readings, inp.window, inp.services, params)
    by_category: dict[str, list[Tariff]] = {}  # each bill looks only at its category's
    for t in inp.tariffs:
        by_category.setdefault(t.category, []).append(t)
    norms = list(inp.norms)
    charges: dict[tuple[Any, ...], Charge] = {}  # the same inputs price the same (immutable)
    return [
        account_bill(
            acc,
            lines.get(acc.id, []),
            inp.services.get(acc.id),
            inp.window,
            by_category.get(acc.category, []),
            norms,
            charges=charges,
        )
        for acc in inp.accounts
    ]


_NEVER = np.iinfo(np.int64).max  # "no such moment" in unix seconds (not removed, not closed)
_TS_BITS = 32  # unix seconds fit 32 bits until 2106: a (meter, time) pair fits one int64


@dataclass(frozen=True, eq=False)
class _LinkArrays:
    """The links as arrays, one entry per link in order, times in unix seconds."""

    meter: I64
    installed: I64
    removed: I64  # _NEVER while installed
    initial_m3: F64
    final_m3: F64  # NaN while installed
    capacity: F64  # 10**digits m³

    @classmethod
    def of(cls, links: Sequence[MeterLink]) -> _LinkArrays:
        n = len(links)
        return cls(
            meter=np.fromiter((ln.meter_id for ln in links), np.int64, n),
            installed=np.fromiter((_epoch(ln.installed_at) for ln in links), np.int64, n),
            removed=np.fromiter(
                (_NEVER if ln.removed_at is None else _epoch(ln.removed_at) for ln in links),
                np.int64,
                n,
            ),
            initial_m3=np.fromiter((ln.initial_m3 for ln in links), np.float64, n),
            final_m3=np.fromiter(
                (np.nan if ln.final_m3 is None else ln.final_m3 for ln in links), np.float64, n
            ),
            capacity=np.fromiter((10.0**ln.digits for ln in links), np.float64, n),
        )


def merge_readings(readings: Readings, links: Sequence[MeterLink]) -> Readings:
    """The readings plus each link's installation and removal register, sorted by (meter,
    time), one per meter and time: the installation/removal reading wins, then the lowest
    priority, then the first given (link by link, so a meter moved from one account to another
    at the same moment keeps the first link's final reading)."""
    return _merge(readings, _LinkArrays.of(links))


def _merge(readings: Readings, links: _LinkArrays) -> Readings:
    meter, ts, value, pri = readings.meter, readings.ts, readings.value, readings.priority
    if links.meter.size:
        # per link its installation, then its removal (if removed), in link order
        l_ts = np.column_stack((links.installed, links.removed)).ravel()
        l_value = np.column_stack((links.initial_m3, links.final_m3)).ravel()
        real = (l_ts != _NEVER) & ~np.isnan(l_value)
        meter = np.concatenate((meter, np.repeat(links.meter, 2)[real]))
        ts = np.concatenate((ts, l_ts[real]))
        value = np.concatenate((value, l_value[real]))
        install = np.full(int(real.sum()), SOURCE_PRIORITY["install"], dtype=np.int64)
        pri = np.concatenate((pri, install))
    order = np.lexsort((pri, ts, meter))  # stable: equal keys keep their given order
    meter, ts, value, pri = meter[order], ts[order], value[order], pri[order]
    keep = np.ones(meter.shape[0], dtype=bool)
    keep[1:] = (meter[1:] != meter[:-1]) | (ts[1:] != ts[:-1])
    return Readings(meter[keep], ts[keep], value[keep], pri[keep])


@dataclass(frozen=True, eq=False)
class _Slots:
    """The kernel's input: one slot per link, its readings in CSR layout and its window."""

    offsets: I64
    index: I64  # positions in the merged readings
    win_start: I64
    win_end: I64


def _slots(
    links: Sequence[MeterLink],
    arr: _LinkArrays,
    r: Readings,
    win: PeriodWindow,
    services: Mapping[int, Service],
) -> _Slots:
    """Each link's readings within its life and its window: the period clipped to the
    connection and to the account's service (nothing before it opened, nothing after it was
    closed; readings after the closing moment are not used either)."""
    ps, pe = _epoch(win.start), _epoch(win.end)
    bounds = {a: _service_bounds(services.get(a), ps, pe) for a in {ln.account_id for ln in links}}
    svc_s = np.fromiter((bounds[ln.account_id][0] for ln in links), np.int64, len(links))
    svc_e = np.fromiter((bounds[ln.account_id][1] for ln in links), np.int64, len(links))
    cut = np.minimum(arr.removed, np.where(svc_e < pe, svc_e, _NEVER))
    first = _position(r, arr.meter, arr.installed, "left")
    stop = np.maximum(first, _position(r, arr.meter, cut, "right"))
    counts = stop - first
    offsets = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    index = np.arange(offsets[-1], dtype=np.int64) + np.repeat(first - offsets[:-1], counts)
    win_s = np.maximum(np.maximum(arr.installed, svc_s), ps)
    win_e = np.maximum(win_s, np.minimum(np.minimum(svc_e, arr.removed), pe))
    return _Slots(offsets, index, win_s, win_e)


def _service_bounds(svc: Service | None, ps: int, pe: int) -> tuple[int, int]:
    """(first, last) moment the account was not closed within the period, unix seconds; the
    end and the start when it never was."""
    if svc is None or svc.full:  # active every day: from the period's start to its end
        return ps, pe
    return (
        pe if svc.start is None else _epoch(svc.start),
        ps if svc.end is None else _epoch(svc.end),
    )


def _position(r: Readings, meter: I64, ts: I64, side: Literal["left", "right"]) -> I64:
    """For each (meter, time) pair, where it falls in the readings sorted by (meter, time):
    one search over a combined int64 key (meter << 32 | time) instead of one per link."""
    top = (1 << _TS_BITS) - 1
    if r.ts.size and (int(r.ts.min()) < 0 or int(r.ts.max()) >= top):
        raise BillingRunError("reading times must be between 1970 and 2106")
    if r.meter.size and (int(r.meter.min()) < 0 or int(r.meter.max()) >= 1 << (62 - _TS_BITS)):
        raise BillingRunError("meter ids must be below 2**30")
    keys = (r.meter << _TS_BITS) + r.ts
    wanted = (meter << _TS_BITS) + np.clip(ts, 0, top)
    return np.searchsorted(keys, wanted, side).astype(np.int64)


def _meter_lines(  # noqa: PLR0917
    links: Sequence[MeterLink],
    arr: _LinkArrays,
    readings: Readings,
    win: PeriodWindow,
    services: Mapping[int, Service],
    params: ConsumptionParams,
) -> dict[int, list[MeterLine]]:
    """Each link's consumption in the period (the kernels), by account id, in link order.
    ``readings`` are merged (:func:`merge_readings`)."""
    sl = _slots(links, arr, readings, win, services)
    res = cons.compute(
        sl.offsets,
        readings.ts[sl.index],
        readings.value[sl.index],
        arr.capacity,
        sl.win_start,
        sl.win_end,
        params,
    )
    by_acc: dict[int, list[MeterLine]] = {}
    for k, ln in enumerate(links):
        sv, ev = float(res.start_value[k]), float(res.end_value[k])
        by_acc.setdefault(ln.account_id, []).append(
            MeterLine(
                meter_id=ln.meter_id,
                serial_no=ln.serial_no,
                start_ts=_from_epoch(int(sl.win_start[k])),
                end_ts=_from_epoch(int(sl.win_end[k])),
                start_m3=None if np.isnan(sv) else sv,
                end_m3=None if np.isnan(ev) else ev,
                volume_m3=float(res.volume[k]),
                estimated_m3=float(res.estimated[k]),
                flags=int(res.flags[k]),
            )
        )
    return by_acc


def account_bill(  # noqa: PLR0917
    acc: AccountIn,
    lines: Sequence[MeterLine],
    svc: Service | None,
    win: PeriodWindow,
    tariffs: list[Tariff],
    norms: list[Norm],
    *,
    charges: dict[tuple[Any, ...], Charge] | None = None,
) -> AccountBill:
    """One account's bill: metered when it has a meter connected in the period, else by the
    norm. ``svc`` None means in service every day.

    ``charges`` (optional) remembers the charges priced so far for the same ``win``,
    ``tariffs`` and ``norms`` (a batch of :func:`build_bills`): a charge depends only on the
    category, the volume or residents and the days, and is immutable, so equal inputs share
    one."""
    memo: dict[tuple[Any, ...], Charge] = {} if charges is None else charges
    if acc.metered and lines:
        vol = sum(m.volume_m3 for m in lines)
        flags = 0
        for m in lines:
            flags |= m.flags
        litres = max(0, round(vol * 1000))
        # the tariff split runs over the days the account was not closed
        rng = svc.open_range() if svc is not None and not svc.full else None
        first, last = rng if rng is not None else (None, None)
        key: tuple[Any, ...] = ("m", acc.category, litres, first, last)
        charge = memo.get(key)
        if charge is None:
            charge = metered_charge(
                litres, acc.category, win.period, tariffs, first=first, last=last
            )
            memo[key] = charge
        basis = "metered"
    else:
        flags = 0
        # the norm is charged for the active days only: no water on suspended days, none
        # before the account was opened or after it was closed
        mask = svc.active_mask if svc is not None and not svc.full else None
        key = ("n", acc.category, acc.residents, mask)
        charge = memo.get(key)
        if charge is None:
            charge = norm_charge(
                acc.residents, acc.category, win.period, tariffs, norms, service=mask
            )
            memo[key] = charge
        litres = charge.litres
        vol = litres / 1000
        basis = "norm"
    return AccountBill(
        account_id=acc.id,
        number=acc.number,
        kind=acc.kind,
        basis=basis,
        volume_m3=vol,
        litres=litres,
        estimated=bool(flags & cons.ESTIMATED_MASK),
        flags=flags,
        charge=charge,
        meters=tuple(lines),
        service=svc,
    )


def compute_bills(  # noqa: PLR0917
    conn: psycopg.Connection[Any],
    account_ids: Sequence[int],
    win: PeriodWindow,
    cfg: BillingConfig,
    tariffs: Sequence[Tariff],
    norms: Sequence[Norm],
) -> list[AccountBill]:
    """Fetch the data of some accounts and compute their bills (no writes)."""
    return build_bills(fetch_inputs(conn, account_ids, win, cfg, tariffs, norms), cfg.consumption)


# ------------------------------------------------------------------ write (bills -> SQL)
def _accumulate(summary: RunSummary, bills: list[AccountBill]) -> None:
    for b in bills:
        summary.accounts_billed += 1
        summary.total_tiyin += b.total_tiyin
        summary.vat_tiyin += b.vat_tiyin
        summary.volume_m3 += b.litres / 1000
        if b.basis == "metered":
            summary.metered += 1
        else:
            summary.by_norm += 1
        if b.estimated:
            summary.estimated += 1
        for name in cons.flag_names(b.flags):
            summary.flagged[name] = summary.flagged.get(name, 0) + 1


def _allocate_numbers(
    conn: psycopg.Connection[Any], year: int, account_ids: Sequence[int]
) -> list[str]:
    """One invoice number for each account, in order: from its branch's gapless series of
    the year (``URG-2026-0000001``), or the utility's (``2026-0000001``) for an account of
    no branch (:func:`billing.branches.allocate_for_accounts`)."""
    return allocate_for_accounts(conn, account_ids, "invoice", year)


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
    """Insert invoices, consumption rows and ledger charges (caller's transaction). A
    correction invoice (``kind="correction"``) posts no charge here: :func:`correct_account`
    does.

    Returns account id -> invoice id.
    """
    if not bills:
        return {}
    inv = _insert_invoices(conn, bills, win, now=now, run_id=run_id, kind=kind)
    _insert_consumption(conn, bills, win, inv)
    if kind == "regular":
        _insert_charges(conn, bills, win, inv, now=now)
    return inv


def _insert_invoices(
    conn: psycopg.Connection[Any],
    bills: list[AccountBill],
    win: PeriodWindow,
    *,
    now: datetime,
    run_id: int | None,
    kind: str,
) -> dict[int, int]:
    numbers = _allocate_numbers(conn, now.year, [b.account_id for b in bills])
    rows = conn.execute(
        """INSERT INTO invoices (number, account_id, period, kind, run_id, issued_at,
                                 amount_tiyin, vat_tiyin, volume_m3, estimated, lines)
           SELECT n, a, %s, %s, %s, %s, amt, vat, vol, est, l::jsonb
           FROM unnest(%b::text[], %b::bigint[], %b::bigint[], %b::bigint[],
                       %b::float8[], %b::bool[], %b::text[]) AS u(n, a, amt, vat, vol, est, l)
           RETURNING id, account_id""",
        (
            win.period,
            kind,
            run_id,
            now,
            numbers,
            [b.account_id for b in bills],
            [b.total_tiyin for b in bills],
            [b.vat_tiyin for b in bills],
            [b.litres / 1000 for b in bills],
            [b.estimated for b in bills],
            [_lines_json(b) for b in bills],
        ),
    ).fetchall()
    return {int(a): int(i) for i, a in rows}


def _insert_consumption(
    conn: psycopg.Connection[Any], bills: list[AccountBill], win: PeriodWindow, inv: dict[int, int]
) -> None:
    mrows = [(b, m) for b in bills for m in b.meters]
    if not mrows:
        return
    conn.execute(
        """INSERT INTO period_consumption (period, account_id, meter_id, invoice_id,
               start_ts, end_ts, start_m3, end_m3, volume_m3, estimated_m3, flags)
           SELECT %s, a, m, i, s, e, sv, ev, v, est, f
           FROM unnest(%b::bigint[], %b::bigint[], %b::bigint[], %b::timestamptz[],
                       %b::timestamptz[], %b::float8[], %b::float8[], %b::float8[],
                       %b::float8[], %b::int[]) AS u(a, m, i, s, e, sv, ev, v, est, f)""",
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


def _insert_charges(
    conn: psycopg.Connection[Any],
    bills: list[AccountBill],
    win: PeriodWindow,
    inv: dict[int, int],
    *,
    now: datetime,
) -> None:
    """One ledger charge per bill with an amount, dated the last day of the period, with the
    idempotency key ``charge:<YYYY-MM>:<account id>``."""
    charged = [b for b in bills if b.total_tiyin > 0]
    if not charged:
        return
    _, last_day = period_bounds(win.period)
    ym = win.period.strftime("%Y-%m")
    conn.execute(
        """INSERT INTO ledger (account_id, kind, amount_tiyin, vat_tiyin, value_date, period,
                               posted_at, source, idem_key, invoice_id, memo)
           SELECT a, 'charge', amt, vat, %s, %s, %s, 'billing', k, i, %s
           FROM unnest(%b::bigint[], %b::bigint[], %b::bigint[], %b::text[], %b::bigint[])
                AS u(a, amt, vat, k, i)
           ON CONFLICT (idem_key) DO NOTHING""",
        (
            last_day,
            win.period,
            now,
            f"water {ym}",
            [b.account_id for b in charged],
            [b.total_tiyin for b in charged],
            [b.vat_tiyin for b in charged],
            [f"charge:{ym}:{b.account_id}" for b in charged],
            [inv[b.account_id] for b in charged],
        ),
    )


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


# ------------------------------------------------------------------ the month's order
@dataclass(frozen=True)
class PeriodCheck:
    """Whether a month is ready to bill, at ``now``.

    * ``unfinished``: the month has not ended yet in the office's time zone: the rest of it
      would be estimated. A trial run only warns; a real run is refused by the office's
      front ends (the CLI, the API and the billing page) unless forced.
    * ``later_billed``: a later month already has a billing run or invoices (October after
      November): :func:`run_billing` refuses such a run unless forced, because charges would
      reach the ledger out of order and the later slips were printed without them."""

    period: date
    ends_at: datetime
    unfinished: bool
    later_billed: date | None

    @property
    def out_of_order(self) -> bool:
        return self.later_billed is not None

    @property
    def codes(self) -> list[str]:
        """The warnings as codes, ``unfinished`` and ``out_of_order`` (pages translate them)."""
        return [code for code, _ in self.found()]

    @property
    def warnings(self) -> list[str]:
        """The warnings in English (the CLI, the API, the log)."""
        return [text for _, text in self.found()]

    def found(self) -> list[tuple[str, str]]:
        """``(code, English text)`` of each warning."""
        out = []
        if self.unfinished:
            ends = f"{self.ends_at:%Y-%m-%d %H:%M} {self.ends_at.tzname()}"
            text = f"{self.period:%Y-%m} has not ended yet (it ends {ends}): the rest of the "
            out.append(("unfinished", text + "month would be estimated"))
        if self.later_billed is not None:
            text = f"{self.later_billed:%Y-%m} is already billed: billing {self.period:%Y-%m} "
            out.append(("out_of_order", text + "now puts its charges after the later month's"))
        return out


class RunRefusedError(BillingRunError):
    """A billing run was refused because of its month (:class:`PeriodCheck`); ``force``
    overrides it. ``check`` says why."""

    def __init__(self, message: str, check: PeriodCheck) -> None:
        super().__init__(message)
        self.check = check


def check_period(
    conn: psycopg.Connection[Any], period: date, tz: str, *, now: datetime
) -> PeriodCheck:
    """The month's :class:`PeriodCheck` at ``now`` (reads the runs and invoices of later
    months)."""
    win = PeriodWindow.of(period, tz)
    row = conn.execute(
        """SELECT max(p) FROM (
               SELECT max(period) AS p FROM billing_runs WHERE period > %s
               UNION ALL
               SELECT max(period) FROM invoices WHERE period > %s AND kind = 'regular') t""",
        (win.period, win.period),
    ).fetchone()
    later = row[0] if row else None
    return PeriodCheck(win.period, win.end, now < win.end, later)


def refusal(check: PeriodCheck, *, dry_run: bool, force: bool, unfinished: bool) -> str | None:
    """Why a run of ``check.period`` must not start, or None. A trial run and a forced run
    always may; otherwise a month out of order may not, and (``unfinished=True``: the office's
    front ends) neither may a month that has not ended."""
    if dry_run or force:
        return None
    blocking = {"out_of_order"} | ({"unfinished"} if unfinished else set())
    reasons = [text for code, text in check.found() if code in blocking]
    if not reasons:
        return None
    return "; ".join(reasons) + "; force the run if this is intended"


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
    force: bool = False,
) -> RunSummary:
    """Bill every active account for ``period`` (see the module doc). ``conn`` must not be in
    autocommit mode; each batch is committed on it.

    A month out of order (a later month is billed already) is refused with
    :class:`RunRefusedError` unless ``force``; a dry run only warns. Either way the summary's
    ``warnings`` say what :func:`check_period` found (an unfinished month too)."""
    if conn.autocommit:
        raise BillingRunError("run_billing needs a connection with autocommit off")
    win = PeriodWindow.of(period, cfg.timezone)
    summary = RunSummary(period=win.period, dry_run=dry_run)
    with _period_lock(conn, win.period):
        check = check_period(conn, win.period, cfg.timezone, now=now)
        summary.warnings = check.warnings
        why = refusal(check, dry_run=dry_run, force=force, unfinished=False)
        if why is not None:
            raise RunRefusedError(f"billing run {win.period:%Y-%m} refused: {why}", check)
        for w in summary.warnings:
            log.warning("billing run %s: %s", f"{win.period:%Y-%m}", w)
        tariffs = load_tariffs(conn)
        norms = load_norms(conn)
        todo, summary.accounts_skipped_done = _unbilled(conn, win, cfg.timezone)
        total = len(todo)
        run_id = None if dry_run else _start_run(conn, win, now=now, total=total)
        if progress:
            progress(0, total)
        done = 0
        for bno, start in enumerate(range(0, total, batch_size)):
            chunk = todo[start : start + batch_size]
            bills, invoices = _bill_batch(
                conn, chunk, win, cfg, tariffs, norms, now=now, run_id=run_id
            )
            _accumulate(summary, bills)
            summary.invoices_created += invoices
            done += len(chunk)
            if progress:
                progress(done, total)
            if after_batch:
                after_batch(bno)
        _finish_run(conn, summary, run_id, now=now, total=total)
    return summary


@contextmanager
def _period_lock(conn: psycopg.Connection[Any], period: date) -> Iterator[None]:
    """Hold the month's advisory lock: a second run of the same month at the same time is
    refused. Whatever happens inside, the transaction is rolled back and the lock released."""
    lock_key = zlib.crc32(f"billing-run:{period}".encode())
    got = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_key,)).fetchone()
    conn.commit()
    if not got or not got[0]:
        raise BillingRunError(
            f"another billing run for {period:%Y-%m} is in progress; try again later"
        )
    try:
        yield
    finally:
        conn.rollback()
        conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key,))
        conn.commit()


def _start_run(
    conn: psycopg.Connection[Any], win: PeriodWindow, *, now: datetime, total: int
) -> int:
    """The run's row in ``billing_runs`` (a new one, or the month's earlier one resumed)."""
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
    conn.commit()
    if total:
        log.info("billing run %s started: %d accounts to bill", f"{win.period:%Y-%m}", total)
    return int(row[0])


def _bill_batch(  # noqa: PLR0917
    conn: psycopg.Connection[Any],
    chunk: list[int],
    win: PeriodWindow,
    cfg: BillingConfig,
    tariffs: list[Tariff],
    norms: list[Norm],
    *,
    now: datetime,
    run_id: int | None,
) -> tuple[list[AccountBill], int]:
    """Bill a batch of accounts in one transaction: fetch, build, and (unless a dry run,
    ``run_id`` None) post and count the progress. Returns the bills and the number of
    invoices created. On any failure the batch is rolled back and the run marked failed (not
    on Ctrl-C: the next run resumes it)."""
    invoices = 0
    try:
        bills = compute_bills(conn, chunk, win, cfg, tariffs, norms)
        if run_id is not None:
            invoices = len(post_bills(conn, bills, win, now=now, run_id=run_id))
            conn.execute(
                """UPDATE billing_runs SET accounts_done = accounts_done + %s,
                       charged_tiyin = charged_tiyin + %s WHERE id = %s""",
                (len(bills), sum(b.total_tiyin for b in bills), run_id),
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
    return bills, invoices


def _finish_run(
    conn: psycopg.Connection[Any],
    summary: RunSummary,
    run_id: int | None,
    *,
    now: datetime,
    total: int,
) -> None:
    if run_id is None:  # a dry run
        conn.rollback()
        summary.state = "dry-run"
        return
    conn.execute(
        "UPDATE billing_runs SET state = 'completed', finished_at = %s WHERE id = %s",
        (now, run_id),
    )
    conn.commit()
    summary.state = "completed"
    if total:
        log.info(
            "billing run %s completed: %d invoices, %d tiyin",
            f"{summary.period:%Y-%m}",
            summary.invoices_created,
            summary.total_tiyin,
        )


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
