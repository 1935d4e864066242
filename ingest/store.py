"""The SQL side of ingest: registry snapshot, the write transaction, state, rollups, upkeep.

Every function takes an open psycopg connection and, where time matters, ``now_ms``. The
write path stages rows with a binary COPY into a temporary table and moves them into
``readings`` with ``ON CONFLICT DO NOTHING``; batch keys in ``ingest_batches`` make a re-sent
batch a no-op. One call of :func:`write_group` is one transaction. Connections are in
autocommit mode; transactions are explicit (``conn.transaction()``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from ingest.reasons import StaleReason, StateReason
from ingest.state import decide_gateway_message, decide_seen
from ingest.validate import (
    BUCKET_MS,
    PACK_ROW,
    PACK_ROW_NULL,
    PG_EPOCH_MS,
    BatchKey,
    Checked,
    DeadLetter,
    DeviceInfo,
    GatewayInfo,
    Registry,
    Row,
)

Conn = psycopg.Connection[Any]

STAGE_SQL = (
    "CREATE TEMP TABLE IF NOT EXISTS ingest_stage "
    "(ts timestamptz, point_id bigint, value float8, quality int2) ON COMMIT DELETE ROWS"
)
_MOVE_SQL = (
    "INSERT INTO readings (ts, point_id, value, quality) "
    "SELECT ts, point_id, value, quality FROM ingest_stage ON CONFLICT DO NOTHING"
)
_MARK_SQL = (
    "INSERT INTO ingest_rollup_dirty AS d (point_id, bucket, mark) "
    "SELECT p, timestamptz 'epoch' + b * interval '1 millisecond', "
    "(SELECT nextval('ingest_rollup_mark_seq')) "
    "FROM unnest(%s::bigint[], %s::bigint[]) AS u(p, b) "
    "ON CONFLICT (point_id, bucket) DO UPDATE SET mark = EXCLUDED.mark"
)
"""Mark (point, 5-minute bucket) pairs dirty; one fresh mark per statement (an InitPlan), which
is all the rollup job needs to tell that a bucket was touched again after it read it."""
_KEYS_SQL = (
    "INSERT INTO ingest_batches (gateway_id, boot, seq, readings, rejected, sent_at) "
    "SELECT g, b, s, r, j, timestamptz 'epoch' + t * interval '1 millisecond' "
    "FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::int[], %s::int[], %s::bigint[]) "
    "AS u(g, b, s, r, j, t) ON CONFLICT DO NOTHING RETURNING gateway_id, boot, seq"
)
"""A group's batch keys; the new ones come back (the others were committed before)."""

ROLLUP_LOCK = 0x5356_4E45_5401
"""Advisory lock: one rollup job at a time across all workers."""


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _opt_dt(ms: int | None) -> datetime | None:
    return None if ms is None else ms_to_dt(ms)


def dt_to_ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


# ----------------------------------------------------------------------------------- registry


def load_registry(conn: Conn, default_period_s: float) -> Registry:
    """Read gateways, devices and points (codes are the wire ids)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT g.code, g.id, g.allowed, min(p.poll_period_s) FROM gateways g "
            "LEFT JOIN devices d ON d.gateway_id = g.id "
            "LEFT JOIN points p ON p.device_id = d.id GROUP BY g.id"
        )
        gateways = {
            str(code): GatewayInfo(int(gid), bool(allowed), float(per or default_period_s))
            for code, gid, allowed, per in cur.fetchall()
        }
        cur.execute(
            "SELECT d.code, d.id, d.gateway_id, min(p.poll_period_s) FROM devices d "
            "LEFT JOIN points p ON p.device_id = d.id GROUP BY d.id"
        )
        devices = {
            str(code): DeviceInfo(
                int(did), None if gw is None else int(gw), float(per or default_period_s)
            )
            for code, did, gw, per in cur.fetchall()
        }
        cur.execute(
            "SELECT d.code, p.name, p.id FROM points p JOIN devices d ON d.id = p.device_id"
        )
        points = {(str(dc), str(pn)): int(pid) for dc, pn, pid in cur.fetchall()}
    return Registry(gateways, devices, points, time.monotonic())


# -------------------------------------------------------------------------------- write path


@dataclass
class GroupResult:
    """Outcome of one committed write transaction."""

    new_keys: set[BatchKey] = field(default_factory=set)
    duplicate_keys: set[BatchKey] = field(default_factory=set)
    duplicate_messages: int = 0
    """Messages whose batch was committed before (or earlier in the same group)."""
    rows_offered: int = 0
    rows_inserted: int = 0
    dead_by_reason: dict[str, int] = field(default_factory=dict)


def prepare(conn: Conn) -> None:
    """Per-connection set-up: the staging table."""
    with conn.transaction():
        conn.execute(STAGE_SQL)


_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_TRAILER = b"\xff\xff"


def pack_rows(rows: Iterable[Row]) -> bytes:
    """Rows in PostgreSQL's binary COPY tuple format (no header), ready to be sent as is.

    Done by the decoder thread, so that the writer thread only moves bytes. A timestamptz is
    int64 microseconds since 2000-01-01 UTC.
    """
    epoch = PG_EPOCH_MS
    full, null = PACK_ROW, PACK_ROW_NULL
    return b"".join(
        full(4, 8, (ts - epoch) * 1000, 8, pid, 8, value, 2, q)
        if value is not None
        else null(4, 8, (ts - epoch) * 1000, 8, pid, -1, 2, q)
        for ts, pid, value, q in rows
    )


def _copy_rows(
    cur: psycopg.Cursor[Any],
    table: str,
    rows: Iterable[Row],
    packed: Sequence[bytes] | None = None,
) -> None:
    # Binary COPY. A timestamptz travels as int64 microseconds since 2000-01-01 UTC, the same
    # 8 bytes as an int8: sending it as int8 spares building a datetime for every row.
    with cur.copy(f"COPY {table} (ts, point_id, value, quality) FROM STDIN (FORMAT BINARY)") as cp:
        if packed is not None:
            cp.write(_SIGNATURE)
            for chunk in packed:
                if chunk:
                    cp.write(chunk)
            cp.write(_TRAILER)
            return
        cp.set_types(["int8", "int8", "float8", "int2"])
        epoch = PG_EPOCH_MS
        for ts, pid, value, quality in rows:
            cp.write_row(((ts - epoch) * 1000, pid, value, quality))


def _copy_dead(cur: psycopg.Cursor[Any], dead: Sequence[DeadLetter]) -> None:
    with cur.copy(
        "COPY dead_letters (topic, payload, reason, detail, gateway) FROM STDIN (FORMAT BINARY)"
    ) as cp:
        cp.set_types(["text", "bytea", "text", "text", "text"])
        for d in dead:
            cp.write_row((d.topic, d.payload, d.reason, d.detail, d.gateway))


def dirty_buckets(rows: Iterable[Row]) -> list[tuple[int, int]]:
    """The (point, 5-minute bucket start ms) pairs that good rows fall in, sorted."""
    return sorted(
        {(pid, ts - ts % BUCKET_MS) for ts, pid, v, q in rows if q == 0 and v is not None}
    )


Marks = tuple[list[int], list[int]]
"""Dirty rollup buckets as two parallel lists: point ids and bucket starts (Unix ms)."""


def marks_of(buckets: Iterable[tuple[int, int]]) -> Marks:
    """Sorted (point, bucket) pairs as the two arrays the mark statement takes.

    Sorted, so that two writers touching the same buckets lock them in the same order.
    """
    pairs = sorted(buckets)
    return [p for p, _ in pairs], [b for _, b in pairs]


def write_rows(
    conn: Conn,
    rows: Sequence[Row],
    *,
    savepoint: bool = True,
    packed: Sequence[bytes] | None = None,
) -> int:
    """Write rows inside the current transaction, each (point, ts) once; return how many new.

    The fast path is a binary COPY straight into ``readings``. When a row is already there (a
    replayed batch with a new key, an imported file seen before) the COPY fails as a whole; it
    is undone (to a savepoint) and the rows go through the staging table with ``ON CONFLICT DO
    NOTHING`` instead. With ``savepoint=False`` there is no savepoint and the UniqueViolation
    reaches the caller, who redoes the transaction with :func:`write_rows_staged`. Either way
    the touched 5-minute buckets are marked for the rollups.
    """
    if not rows:
        return 0
    if not savepoint:
        with conn.cursor() as cur:
            _copy_rows(cur, "readings", rows, packed)
        _mark(conn, marks_of(dirty_buckets(rows)))
        return len(rows)
    try:
        with conn.transaction(), conn.cursor() as cur:
            _copy_rows(cur, "readings", rows, packed)
    except psycopg.errors.UniqueViolation:
        return write_rows_staged(conn, rows, packed)
    _mark(conn, marks_of(dirty_buckets(rows)))
    return len(rows)


def write_rows_staged(
    conn: Conn,
    rows: Sequence[Row],
    packed: Sequence[bytes] | None = None,
    *,
    marked: bool = False,
) -> int:
    """The slow path of :func:`write_rows`: staging table and ``ON CONFLICT DO NOTHING``.

    ``marked``: the caller has marked the rows' rollup buckets already.
    """
    with conn.cursor() as cur:
        _copy_rows(cur, "ingest_stage", rows, packed)
        cur.execute(_MOVE_SQL)
        inserted = cur.rowcount
        cur.execute("DELETE FROM ingest_stage")
    if not marked:
        _mark(conn, marks_of(dirty_buckets(rows)))
    return inserted


def _mark(conn: Conn, marks: Marks) -> None:
    if marks[0]:
        with conn.cursor() as cur:
            cur.execute(_MARK_SQL, marks)


def int_array(values: Iterable[int | None]) -> str:
    """A PostgreSQL array literal of integers (``{1,2,NULL}``), cast to an array type by the
    statement: much cheaper to send than a list that the driver dumps element by element."""
    return "{" + ",".join("NULL" if v is None else str(int(v)) for v in values) + "}"


def _group_marks(items: Sequence[Checked]) -> Marks:
    """The dirty buckets of a group: each message's own (computed by the decoder thread while
    validating: a set, or the scanner's array of pairs) when it has them, else computed here
    from its rows."""
    buckets: set[tuple[int, int]] = set()
    arrays: list[np.ndarray[Any, Any]] = []
    for it in items:
        b = it.buckets
        if b is None:
            if it.rows:
                buckets.update(dirty_buckets(it.rows))
        elif isinstance(b, set):
            buckets.update(b)
        elif len(b):
            arrays.append(b)
    if not arrays:
        return marks_of(buckets)
    if buckets:
        arrays.append(np.array(sorted(buckets), dtype=np.int64))
    pairs = np.concatenate(arrays)
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    pairs = pairs[order]
    keep = np.ones(len(pairs), dtype=bool)
    keep[1:] = (pairs[1:] != pairs[:-1]).any(axis=1)
    pairs = pairs[keep]
    return pairs[:, 0].tolist(), pairs[:, 1].tolist()


def write_group(conn: Conn, items: Sequence[Checked], now_ms: int) -> GroupResult:
    """Commit a group of checked messages in one transaction (idempotent per batch key).

    The rows are first copied straight into ``readings`` (no savepoint: one round trip less);
    if one of them is already stored the transaction is redone with the staging path.
    """
    try:
        return _write_group(conn, items, now_ms, direct=True)
    except psycopg.errors.UniqueViolation:
        return _write_group(conn, items, now_ms, direct=False)


class _Tx:
    """An explicit transaction on an autocommit connection, with ``BEGIN`` sent together with
    the first statement and ``COMMIT`` together with the last one (pipeline mode): two round
    trips less than ``conn.transaction()`` plus two statements. Committed on a clean exit if
    not yet, rolled back on an exception."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.committed = False

    def __enter__(self) -> _Tx:
        return self

    def first(self, cur: psycopg.Cursor[Any], sql: str, params: Sequence[Any]) -> None:
        """``BEGIN`` and ``sql`` in one round trip; the result is left in ``cur``."""
        with self.conn.pipeline():
            self.conn.execute("BEGIN")
            cur.execute(sql, params)

    def last(self, cur: psycopg.Cursor[Any], sql: str | None, params: Sequence[Any]) -> None:
        """``sql`` (if any) and ``COMMIT`` in one round trip."""
        with self.conn.pipeline():
            if sql is not None:
                cur.execute(sql, params)
            self.conn.execute("COMMIT")
        self.committed = True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        conn = self.conn
        if exc_type is None:
            if not self.committed:
                conn.execute("COMMIT")
            return
        if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                conn.close()  # unusable: the caller reconnects


def _write_group(conn: Conn, items: Sequence[Checked], now_ms: int, *, direct: bool) -> GroupResult:
    res = GroupResult()
    first: dict[BatchKey, int] = {}
    for i, it in enumerate(items):
        if it.key is not None and it.key not in first:
            first[it.key] = i
    keys = sorted(first, key=lambda k: (k.gateway_id, k.boot, k.seq))
    marks = _group_marks(items)
    with _Tx(conn) as tx, conn.cursor() as cur:
        tx.first(
            cur,
            _KEYS_SQL,
            (
                int_array(k.gateway_id for k in keys),
                [k.boot for k in keys],
                int_array(k.seq for k in keys),
                int_array(len(items[first[k]].rows) for k in keys),
                int_array(len(items[first[k]].dead) for k in keys),
                int_array(items[first[k]].sent_ms for k in keys),
            ),
        )
        got = {(int(g), str(b), int(s)) for g, b, s in cur.fetchall()}
        new = {k for k in first if (k.gateway_id, k.boot, k.seq) in got}
        res.new_keys = new
        res.duplicate_keys = set(first) - new
        res.duplicate_messages = sum(1 for it in items if it.key is not None) - len(new)
        take = [
            it
            for i, it in enumerate(items)
            if it.key is None or (it.key in new and first[it.key] == i)
        ]
        dead = [d for it in take for d in it.dead]
        res.rows_offered = sum(len(it.rows) for it in take)
        chunks: list[bytes] | None = [it.packed for it in take if it.rows and it.packed]
        rows: Sequence[Row] = ()
        if any(it.rows and it.packed is None for it in take):
            # some rows are not packed yet: hand the rows themselves to the COPY
            chunks = None
            rows = [r for it in take for r in it.rows]
        if not res.rows_offered:
            res.rows_inserted = 0
        elif direct:
            _copy_rows(cur, "readings", rows, chunks)
            res.rows_inserted = res.rows_offered
        else:
            res.rows_inserted = write_rows_staged(conn, rows, chunks, marked=True)
        if dead:
            _copy_dead(cur, dead)
            for d in dead:
                res.dead_by_reason[d.reason] = res.dead_by_reason.get(d.reason, 0) + 1
        for it in items:
            if it.state is not None and it.state_gateway_id is not None:
                apply_gateway_message(conn, it, now_ms)
        # the rollup marks last, sent with the COMMIT: the marked rows stay locked only for
        # that instant, so a second worker's COPY is not held up behind this one's marks
        tx.last(cur, _MARK_SQL if marks[0] else None, (int_array(marks[0]), int_array(marks[1])))
    return res


def write_dead_letters(conn: Conn, dead: Sequence[DeadLetter]) -> None:
    """Record dead letters inside the current transaction."""
    if dead:
        with conn.cursor() as cur:
            _copy_dead(cur, dead)


# ------------------------------------------------------------------------------------- state


def apply_gateway_message(conn: Conn, it: Checked, now_ms: int) -> bool:
    """Store a birth / last will / health message; return True when the state changed."""
    msg, gid = it.state, it.state_gateway_id
    assert msg is not None
    assert gid is not None
    row = conn.execute(
        "SELECT state FROM gateway_state WHERE gateway_id = %s FOR UPDATE", (gid,)
    ).fetchone()
    current = None if row is None else str(row[0])
    ch = decide_gateway_message(current, msg, now_ms)
    ts = ms_to_dt(ch.ts_ms)
    seen = ts if msg.state == "online" else None
    health = Jsonb(msg.health)
    conn.execute(
        "INSERT INTO gateway_state AS s (gateway_id, state, since, last_seen, boot, health) "
        "VALUES (%(g)s, %(st)s, %(ts)s, %(seen)s, %(boot)s, %(h)s) "
        "ON CONFLICT (gateway_id) DO UPDATE SET "
        "state = EXCLUDED.state, "
        "since = CASE WHEN %(tr)s THEN EXCLUDED.since ELSE s.since END, "
        "last_seen = GREATEST(s.last_seen, EXCLUDED.last_seen), "
        "boot = COALESCE(EXCLUDED.boot, s.boot), health = EXCLUDED.health",
        {
            "g": gid,
            "st": ch.state,
            "ts": ts,
            "seen": seen,
            "boot": msg.boot,
            "h": health,
            "tr": ch.transition,
        },
    )
    if ch.transition:
        conn.execute(
            "INSERT INTO gateway_state_history (gateway_id, ts, state, reason) "
            "VALUES (%s, %s, %s, %s)",
            (gid, ts, ch.state, ch.reason),
        )
    return ch.transition


def flush_seen(
    conn: Conn,
    devices_seen: Mapping[int, int],
    gateways_seen: Mapping[int, int],
    registry: Registry,
    *,
    factor: float,
    default_period_s: float,
    now_ms: int,
) -> tuple[int, int]:
    """Write last-seen times; bring fresh devices/gateways online. Return the transitions."""
    dev_periods = {d.id: d.period_s for d in registry.devices.values()}
    gw_periods = {g.id: g.period_s for g in registry.gateways.values()}
    changed = [0, 0]
    with conn.transaction():
        for n, (table, col, hist, seen, periods) in enumerate(
            (
                ("device_state", "device_id", "device_state_history", devices_seen, dev_periods),
                ("gateway_state", "gateway_id", "gateway_state_history", gateways_seen, gw_periods),
            )
        ):
            if not seen:
                continue
            ids = sorted(seen)
            rows = conn.execute(
                f"SELECT {col}, state FROM {table} WHERE {col} = ANY(%s) ORDER BY {col} FOR UPDATE",  # noqa: S608 - table and column names are flush_seen's own constants; values are parameters
                (ids,),
            ).fetchall()
            current = {int(i): str(s) for i, s in rows}
            ups = decide_seen(
                current,
                seen,
                periods,
                factor=factor,
                default_period_s=default_period_s,
                now_ms=now_ms,
            )
            conn.execute(
                f"INSERT INTO {table} AS s ({col}, state, since, last_seen) "  # noqa: S608 - table and column names are flush_seen's own constants; values are parameters
                "SELECT i, CASE WHEN o THEN 'online' ELSE 'unknown' END, t, t "
                "FROM unnest(%s::bigint[], %s::timestamptz[], %s::boolean[]) AS u(i, t, o) "
                f"ON CONFLICT ({col}) DO UPDATE SET "
                "last_seen = GREATEST(s.last_seen, EXCLUDED.last_seen), "
                "state = CASE WHEN EXCLUDED.state = 'online' THEN 'online' ELSE s.state END, "
                "since = CASE WHEN EXCLUDED.state = 'online' THEN EXCLUDED.since "
                "ELSE s.since END",
                (
                    [u.id for u in ups],
                    [ms_to_dt(u.last_seen_ms) for u in ups],
                    [u.goes_online for u in ups],
                ),
            )
            on = [u for u in ups if u.goes_online]
            if on:
                conn.execute(
                    f"INSERT INTO {hist} ({col}, ts, state, reason) "  # noqa: S608 - table and column names are flush_seen's own constants; values are parameters
                    "SELECT i, t, 'online', %s "
                    "FROM unnest(%s::bigint[], %s::timestamptz[]) AS u(i, t)",
                    (
                        StateReason.DATA_RECEIVED,
                        [u.id for u in on],
                        [ms_to_dt(u.last_seen_ms) for u in on],
                    ),
                )
            changed[n] = len(on)
    return changed[0], changed[1]


def mark_stale(conn: Conn, *, factor: float, default_period_s: float, now_ms: int) -> list[str]:
    """Turn devices and gateways offline after ``factor`` poll periods without good data.

    Returns the codes that went offline (``device:<code>`` / ``gateway:<code>``). The history's
    reason is a :class:`~ingest.reasons.StaleReason` filled in by PostgreSQL's ``format()``.
    """
    now = ms_to_dt(now_ms)
    p: dict[str, Any] = {"now": now, "k": factor, "dflt": default_period_s}
    out: list[str] = []
    with conn.transaction():
        rows = conn.execute(
            "WITH per AS (SELECT device_id, min(poll_period_s) AS p FROM points "
            "GROUP BY device_id), "
            "stale AS (SELECT s.device_id, coalesce(per.p, %(dflt)s) AS p FROM device_state s "
            "LEFT JOIN per ON per.device_id = s.device_id WHERE s.state = 'online' AND "
            "(s.last_seen IS NULL OR s.last_seen < %(now)s - make_interval(secs => %(k)s * "
            "coalesce(per.p, %(dflt)s))) FOR UPDATE OF s SKIP LOCKED), "
            "upd AS (UPDATE device_state d SET state = 'offline', since = %(now)s FROM stale "
            "WHERE d.device_id = stale.device_id RETURNING d.device_id, stale.p), "
            "h AS (INSERT INTO device_state_history (device_id, ts, state, reason) "
            "SELECT device_id, %(now)s, 'offline', "
            "format(%(why)s, round(%(k)s * p), %(k)s) "
            "FROM upd) "
            "SELECT d.code FROM upd JOIN devices d ON d.id = upd.device_id ORDER BY 1",
            {**p, "why": StaleReason.NO_GOOD_DATA},
        ).fetchall()
        out += [f"device:{r[0]}" for r in rows]
        rows = conn.execute(
            "WITH per AS (SELECT d.gateway_id, min(pt.poll_period_s) AS p FROM points pt "
            "JOIN devices d ON d.id = pt.device_id GROUP BY d.gateway_id), "
            "stale AS (SELECT s.gateway_id, coalesce(per.p, %(dflt)s) AS p FROM gateway_state s "
            "LEFT JOIN per ON per.gateway_id = s.gateway_id WHERE s.state = 'online' AND "
            "(s.last_seen IS NULL OR s.last_seen < %(now)s - make_interval(secs => %(k)s * "
            "coalesce(per.p, %(dflt)s))) FOR UPDATE OF s SKIP LOCKED), "
            "upd AS (UPDATE gateway_state g SET state = 'offline', since = %(now)s FROM stale "
            "WHERE g.gateway_id = stale.gateway_id RETURNING g.gateway_id, stale.p), "
            "h AS (INSERT INTO gateway_state_history (gateway_id, ts, state, reason) "
            "SELECT gateway_id, %(now)s, 'offline', "
            "format(%(why)s, round(%(k)s * p), %(k)s) "
            "FROM upd) "
            "SELECT g.code FROM upd JOIN gateways g ON g.id = upd.gateway_id ORDER BY 1",
            {**p, "why": StaleReason.NO_MESSAGES},
        ).fetchall()
        out += [f"gateway:{r[0]}" for r in rows]
    return out


# ----------------------------------------------------------------------------------- rollups

_AGG_5M = (
    "INSERT INTO readings_5m AS t (point_id, bucket, min, max, sum, count, last, last_ts) "
    "SELECT u.p, u.b, a.mn, a.mx, a.sm, a.n, a.lst, a.lts "
    "FROM unnest(%s::bigint[], %s::timestamptz[]) AS u(p, b) CROSS JOIN LATERAL ("
    "  SELECT min(r.value) AS mn, max(r.value) AS mx, sum(r.value) AS sm, count(r.value) AS n,"
    "  (array_agg(r.value ORDER BY r.ts DESC))[1] AS lst, max(r.ts) AS lts FROM readings r"
    "  WHERE r.point_id = u.p AND r.ts >= u.b AND r.ts < u.b + interval '5 minutes'"
    "  AND r.quality = 0 AND r.value IS NOT NULL) a "
    "ON CONFLICT (point_id, bucket) DO UPDATE SET min = EXCLUDED.min, max = EXCLUDED.max, "
    "sum = EXCLUDED.sum, count = EXCLUDED.count, last = EXCLUDED.last, "
    "last_ts = EXCLUDED.last_ts"
)


def _agg_up(src: str, dst: str, width: str) -> str:
    return (
        f"INSERT INTO {dst} AS t (point_id, bucket, min, max, sum, count, last, last_ts) "  # noqa: S608 - dst, src and width are this module's constants (_AGG_1H, _AGG_1D)
        "SELECT u.p, u.b, min(f.min), max(f.max), sum(f.sum), coalesce(sum(f.count), 0), "
        "(array_agg(f.last ORDER BY f.last_ts DESC NULLS LAST))[1], max(f.last_ts) "
        f"FROM unnest(%s::bigint[], %s::timestamptz[]) AS u(p, b) JOIN {src} f "
        f"ON f.point_id = u.p AND f.bucket >= u.b AND f.bucket < u.b + interval '{width}' "
        "GROUP BY u.p, u.b "
        "ON CONFLICT (point_id, bucket) DO UPDATE SET min = EXCLUDED.min, max = EXCLUDED.max, "
        "sum = EXCLUDED.sum, count = EXCLUDED.count, last = EXCLUDED.last, "
        "last_ts = EXCLUDED.last_ts"
    )


_AGG_1H = _agg_up("readings_5m", "readings_1h", "1 hour")
_AGG_1D = _agg_up("readings_1h", "readings_1d", "1 day")


def _trunc(ms: int, width_ms: int) -> int:
    return ms - ms % width_ms


def run_rollups(conn: Conn, *, limit: int = 5000, max_rounds: int = 50) -> int:
    """Re-aggregate dirty 5-minute buckets and the hours and days above them.

    Returns the number of 5-minute buckets done (0 when another worker holds the job).
    """
    total = 0
    for _ in range(max_rounds):
        with conn.transaction():
            got = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (ROLLUP_LOCK,)).fetchone()
            if not got or not got[0]:
                return total
            dirty = conn.execute(
                "SELECT point_id, bucket, mark FROM ingest_rollup_dirty ORDER BY bucket LIMIT %s",
                (limit,),
            ).fetchall()
            if not dirty:
                return total
            pids = [int(r[0]) for r in dirty]
            buckets = [r[1] for r in dirty]
            conn.execute(_AGG_5M, (pids, buckets))
            pairs = zip(pids, buckets, strict=True)
            hours = sorted({(p, _trunc(dt_to_ms(b), 3_600_000)) for p, b in pairs})
            conn.execute(_AGG_1H, ([h[0] for h in hours], [ms_to_dt(h[1]) for h in hours]))
            days = sorted({(p, _trunc(h, 86_400_000)) for p, h in hours})
            conn.execute(_AGG_1D, ([d[0] for d in days], [ms_to_dt(d[1]) for d in days]))
            # Forget the buckets done, unless marked again meanwhile (another mark). A row a
            # writer holds right now (re-marking it) is skipped, not waited for: the job
            # never waits on a writer, so the two can never deadlock, and the skipped bucket
            # is simply done again in the next round.
            conn.execute(
                "DELETE FROM ingest_rollup_dirty WHERE ctid IN (SELECT d.ctid "
                "FROM ingest_rollup_dirty d JOIN unnest(%s::bigint[], %s::timestamptz[], "
                "%s::bigint[]) AS u(p, b, m) ON d.point_id = u.p AND d.bucket = u.b "
                "AND d.mark = u.m FOR UPDATE OF d SKIP LOCKED)",
                (pids, buckets, [int(r[2]) for r in dirty]),
            )
            conn.execute(
                "INSERT INTO ingest_rollup_watermark (name, ran_at, buckets) "
                "VALUES ('rollups', now(), %s) ON CONFLICT (name) DO UPDATE "
                "SET ran_at = EXCLUDED.ran_at, buckets = EXCLUDED.buckets",
                (len(dirty),),
            )
        total += len(dirty)
        if len(dirty) < limit:
            break
    return total


# ------------------------------------------------------------------------------------ upkeep


def ensure_partitions(conn: Conn, from_ms: int, until_ms: int) -> int:
    """Create the monthly readings partitions covering the range (plain PostgreSQL mode)."""
    with conn.transaction():
        row = conn.execute(
            "SELECT suvnet_ensure_readings_partitions(%s, %s)",
            (ms_to_dt(from_ms), ms_to_dt(until_ms)),
        ).fetchone()
    return int(row[0]) if row else 0


def prune_batches(conn: Conn, *, keep_days: int, now_ms: int) -> int:
    """Forget committed-batch records older than ``keep_days``."""
    with conn.transaction():
        cur = conn.execute(
            "DELETE FROM ingest_batches WHERE committed_at < %s - make_interval(days => %s)",
            (ms_to_dt(now_ms), keep_days),
        )
        return cur.rowcount


# ------------------------------------------------------------------------------------ status


@dataclass(frozen=True)
class GatewayStatus:
    code: str
    allowed: bool
    state: str
    since: datetime | None
    last_seen: datetime | None
    batches_1h: int
    readings_1h: int


@dataclass(frozen=True)
class IngestStatus:
    gateways: list[GatewayStatus]
    dirty_buckets: int
    rollups_ran_at: datetime | None
    dead_letters_24h: list[tuple[str, int]]


def ingest_status(conn: Conn) -> IngestStatus:
    """What ``suvnet ingest status`` shows."""
    gws = [
        GatewayStatus(str(r[0]), bool(r[1]), str(r[2]), r[3], r[4], int(r[5]), int(r[6]))
        for r in conn.execute(
            "SELECT g.code, g.allowed, coalesce(s.state, 'unknown'), s.since, s.last_seen, "
            "coalesce(b.n, 0), coalesce(b.r, 0) FROM gateways g "
            "LEFT JOIN gateway_state s ON s.gateway_id = g.id "
            "LEFT JOIN (SELECT gateway_id, count(*) AS n, sum(readings) AS r FROM ingest_batches "
            "  WHERE committed_at > now() - interval '1 hour' GROUP BY gateway_id) b "
            "ON b.gateway_id = g.id ORDER BY g.code"
        ).fetchall()
    ]
    dirty = conn.execute("SELECT count(*) FROM ingest_rollup_dirty").fetchone()
    ran = conn.execute(
        "SELECT ran_at FROM ingest_rollup_watermark WHERE name = 'rollups'"
    ).fetchone()
    dead = conn.execute(
        "SELECT reason, count(*) FROM dead_letters WHERE received_at > now() - interval '1 day' "
        "GROUP BY reason ORDER BY 2 DESC, 1"
    ).fetchall()
    return IngestStatus(
        gws,
        int(dirty[0]) if dirty else 0,
        ran[0] if ran else None,
        [(str(r), int(n)) for r, n in dead],
    )
