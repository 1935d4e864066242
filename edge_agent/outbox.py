"""The durable outbox: an SQLite (WAL) queue of readings and the batches made of them.

Every reading is committed here before anything is sent. A batch (``boot``, ``seq``) is formed
from the oldest readings, sent, and deleted only when the office's end-to-end ack names it,
i.e. when ingest has committed it to the database. ``boot`` is created with the file and stays
with it, so after a restart the same batches are re-sent under the same ids.

Overflow policy: the queue holds at most ``max_readings`` readings and nothing older than
``max_age_s``; beyond that the *oldest* readings are dropped (sent or not), counted in
``dropped`` (kept in the file) and logged.

The methods are blocking (SQLite with ``synchronous=FULL``, which survives a power cut); the
agent calls them through ``asyncio.to_thread``. A lock makes them safe from several threads.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from edge_agent.errors import OutboxError
from suvnet.protocol import Quality, Reading, TelemetryBatch

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS readings (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    device  TEXT NOT NULL,
    point   TEXT NOT NULL,
    ts_ms   INTEGER NOT NULL,
    value   REAL,
    quality INTEGER NOT NULL,
    seq     INTEGER
);
CREATE INDEX IF NOT EXISTS readings_seq ON readings (seq) WHERE seq IS NOT NULL;
CREATE INDEX IF NOT EXISTS readings_unbatched ON readings (id) WHERE seq IS NULL;
CREATE TABLE IF NOT EXISTS batches (
    seq        INTEGER PRIMARY KEY,
    created_ms INTEGER NOT NULL,
    n          INTEGER NOT NULL
);
"""


class Outbox:
    """An on-disk queue of readings; see the module docstring for the guarantees."""

    def __init__(self, path: Path, max_readings: int = 2_000_000, max_age_s: float = 30 * 86400):
        self.path = path
        self.max_readings = max_readings
        self.max_age_ms = int(max_age_s * 1000)
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            check = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise OutboxError(f"outbox {path} is damaged: {check}")
            self.boot = self._meta("boot") or self._init_meta()
            self.dropped = int(self._meta("dropped") or 0)
            self.depth = int(self._db.execute("SELECT count(*) FROM readings").fetchone()[0])
            self.unbatched = int(
                self._db.execute("SELECT count(*) FROM readings WHERE seq IS NULL").fetchone()[0]
            )
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open the outbox {path}: {exc}") from exc

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _init_meta(self) -> str:
        boot = uuid.uuid4().hex[:16]
        self._db.execute("BEGIN IMMEDIATE")
        self._set_meta("boot", boot)
        self._set_meta("next_seq", "0")
        self._set_meta("dropped", "0")
        self._db.execute("COMMIT")
        log.info("new outbox %s with boot id %s", self.path, boot)
        return boot

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------------------- writes

    def add(self, readings: Sequence[Reading], now_ms: int) -> int:
        """Commit ``readings``; apply the overflow policy. Returns how many were dropped."""
        if not readings:
            return 0
        rows = [(r.device, r.point, r.ts_ms, r.value, int(r.quality)) for r in readings]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT INTO readings (device, point, ts_ms, value, quality) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                self.depth += len(rows)
                self.unbatched += len(rows)
                dropped = self._enforce_bounds(now_ms)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"cannot write to the outbox {self.path}: {exc}") from exc
        if dropped:
            log.warning(
                "outbox full: dropped the %d oldest readings (%d dropped in total)",
                dropped,
                self.dropped,
            )
        return dropped

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            log.debug("rollback after a failed outbox write failed too")

    def _drop_ids(self, upto_id: int) -> int:
        """Delete readings with id <= ``upto_id`` and batches left empty."""
        cur = self._db.execute(
            "SELECT count(*), count(*) FILTER (WHERE seq IS NULL), max(seq) FROM readings "
            "WHERE id <= ?",
            (upto_id,),
        ).fetchone()
        n, n_unbatched, max_seq = int(cur[0]), int(cur[1]), cur[2]
        if n == 0:
            return 0
        self._db.execute("DELETE FROM readings WHERE id <= ?", (upto_id,))
        if max_seq is not None:
            self._db.execute(
                "DELETE FROM batches WHERE seq <= ? AND NOT EXISTS "
                "(SELECT 1 FROM readings r WHERE r.seq = batches.seq)",
                (max_seq,),
            )
        self.depth -= n
        self.unbatched -= n_unbatched
        self.dropped += n
        self._set_meta("dropped", str(self.dropped))
        return n

    def _enforce_bounds(self, now_ms: int) -> int:
        dropped = 0
        excess = self.depth - self.max_readings
        if excess > 0:
            row = self._db.execute(
                "SELECT id FROM readings ORDER BY id LIMIT 1 OFFSET ?", (excess - 1,)
            ).fetchone()
            if row is not None:
                dropped += self._drop_ids(int(row[0]))
        cutoff = now_ms - self.max_age_ms
        oldest = self._db.execute("SELECT ts_ms FROM readings ORDER BY id LIMIT 1").fetchone()
        if oldest is not None and int(oldest[0]) < cutoff:
            row = self._db.execute(
                "SELECT max(id) FROM (SELECT id, ts_ms FROM readings ORDER BY id LIMIT 10000) "
                "WHERE ts_ms < ?",
                (cutoff,),
            ).fetchone()
            if row is not None and row[0] is not None:
                dropped += self._drop_ids(int(row[0]))
        return dropped

    def form_batch(self, max_readings: int, now_ms: int) -> int | None:
        """Give the oldest unbatched readings the next ``seq``; None when there are none."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                ids = [
                    r[0]
                    for r in self._db.execute(
                        "SELECT id FROM readings WHERE seq IS NULL ORDER BY id LIMIT ?",
                        (max_readings,),
                    )
                ]
                if not ids:
                    self._db.execute("COMMIT")
                    return None
                seq = int(self._meta("next_seq") or 0)
                self._db.execute(
                    "UPDATE readings SET seq = ? WHERE seq IS NULL AND id BETWEEN ? AND ?",
                    (seq, ids[0], ids[-1]),
                )
                self._db.execute(
                    "INSERT INTO batches (seq, created_ms, n) VALUES (?, ?, ?)",
                    (seq, now_ms, len(ids)),
                )
                self._set_meta("next_seq", str(seq + 1))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"cannot form a batch in {self.path}: {exc}") from exc
            self.unbatched -= len(ids)
            return seq

    def ack(self, boot: str, ranges: Iterable[tuple[int, int]]) -> int:
        """Delete the acknowledged batches of ``boot``; returns how many batches went."""
        if boot != self.boot:
            return 0
        gone = 0
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for lo, hi in ranges:
                    n = self._db.execute(
                        "DELETE FROM readings WHERE seq BETWEEN ? AND ?", (lo, hi)
                    ).rowcount
                    self.depth -= max(0, n)
                    gone += self._db.execute(
                        "DELETE FROM batches WHERE seq BETWEEN ? AND ?", (lo, hi)
                    ).rowcount
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"cannot apply an ack in {self.path}: {exc}") from exc
        return gone

    # -------------------------------------------------------------------------------- reads

    def oldest_unbatched_ms(self) -> int | None:
        with self._lock:
            row = self._db.execute(
                "SELECT ts_ms FROM readings WHERE seq IS NULL ORDER BY id LIMIT 1"
            ).fetchone()
        return None if row is None else int(row[0])

    def unacked(self) -> list[int]:
        """Sequence numbers of the batches waiting for an ack, oldest first."""
        with self._lock:
            return [int(r[0]) for r in self._db.execute("SELECT seq FROM batches ORDER BY seq")]

    def batch(self, gateway: str, seq: int, sent_ms: int) -> TelemetryBatch:
        with self._lock:
            rows = self._db.execute(
                "SELECT device, point, ts_ms, value, quality FROM readings "
                "WHERE seq = ? ORDER BY id",
                (seq,),
            ).fetchall()
        readings = tuple(Reading(d, p, int(t), v, Quality(q)) for d, p, t, v, q in rows)
        return TelemetryBatch(gateway, self.boot, seq, sent_ms, readings)
