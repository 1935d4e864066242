"""The clean-message fast path of validation, and the single-statement commit of a group."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.service import IngestWorker
from ingest.store import dirty_buckets, pack_rows, prepare, write_group
from ingest.validate import (
    BatchKey,
    Checked,
    check_clean_telemetry,
    check_telemetry,
)
from suvnet.protocol import Topics
from tests.ingest.conftest import (
    NOW,
    SMALL_REGISTRY,
    WIN,
    AckListener,
    Publisher,
    batch_payload,
    now_ms,
    wait_for,
)

T = Topics("suvnet")
REG = SMALL_REGISTRY

# Good readings, and at most one of them spoiled in one place with a value the full path
# refuses (or, sometimes, accepts: an int value, a null value with a bad quality).
_good_row = st.tuples(
    st.sampled_from([("d1", "p"), ("d1", "q"), ("free", "p")]),
    st.integers(NOW - 3_600_000, NOW + 60_000),
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False, width=64),
        st.integers(-(10**6), 10**6),
    ),
    st.sampled_from([0, 0, 1, 2, 3, None]),
).map(lambda t: [*t[0], t[1], t[2]] + ([] if t[3] is None else [t[3]]))
_odd: dict[int, list[Any]] = {
    0: ["d2", "dx", "bad id", 7, None, ""],
    1: ["zz", 3, None, "bad id"],
    2: [float(NOW), True, "1", None, NOW - 3_600_001, NOW + 60_001, 2**70],
    3: [None, True, False, "1.0", [1], 1e308 * 10],
    4: [4, -1, True, 0.0, None, "0", 2],
    5: ["extra"],
}


@st.composite
def _rows(draw: st.DrawFn) -> list[Any]:
    rows: list[Any] = draw(st.lists(_good_row, max_size=6))
    how = draw(st.sampled_from(["none", "field", "field", "shape"]))
    if how == "field" and rows:
        i = draw(st.integers(0, len(rows) - 1))
        f = draw(st.integers(0, 5))
        row = list(rows[i])
        if f >= len(row):
            row += [0] * (f - len(row)) + [draw(st.sampled_from(_odd[f]))]
        else:
            row[f] = draw(st.sampled_from(_odd[f]))
        rows[i] = row
    elif how == "shape":
        rows.append(draw(st.sampled_from([None, 1, "r", {"d": 1}, [], ["d1", "p"]])))
    return rows


def _payload(rows: list[Any], gw: str = "g1") -> bytes:
    doc = {"v": 1, "gw": gw, "boot": "B", "seq": 9, "sent": NOW, "r": rows}
    return json.dumps(doc).encode()


def _same(a: Checked, b: Checked) -> None:
    assert a.rows == b.rows
    assert a.dead == b.dead
    assert a.key == b.key
    assert a.sent_ms == b.sent_ms
    assert a.seen() == b.seen()
    assert a.unknown_ids == b.unknown_ids


@settings(max_examples=400, deadline=None)
@given(_rows())
def test_fast_path_gives_what_the_full_path_gives(rows: list[Any]) -> None:
    payload = _payload(rows)
    fast = check_telemetry(T.telemetry("g1"), payload, T, REG, NOW, WIN)
    full = check_telemetry(T.telemetry("g1"), payload, T, REG, NOW, WIN, fast=False)
    _same(fast, full)
    clean = check_clean_telemetry(payload, "g1", REG, NOW, WIN)
    if clean is not None:
        # taken only when the full path has nothing to reject
        assert full.dead == []
        assert clean.packed == pack_rows(clean.rows)
        assert clean.buckets is not None
        assert sorted(clean.buckets) == dirty_buckets(clean.rows)


def test_clean_message_takes_the_fast_path_and_a_bad_reading_does_not() -> None:
    good = [["d1", "p", NOW, 1.5, 0], ["d1", "q", NOW - 1000, 2, 0], ["free", "p", NOW, None, 2]]
    clean = check_clean_telemetry(_payload(good), "g1", REG, NOW, WIN)
    assert clean is not None
    assert clean.rows == [(NOW, 101, 1.5, 0), (NOW - 1000, 102, 2.0, 0), (NOW, 104, None, 2)]
    assert clean.buckets == {
        (101, NOW - NOW % 300_000),
        (102, (NOW - 1000) - (NOW - 1000) % 300_000),
    }
    assert clean.device_seen == {11: NOW}  # the comm-fail reading does not count as seen
    bad = [*good, ["d1", "p", NOW + 3_600_000, 1.0, 0]]
    assert check_clean_telemetry(_payload(bad), "g1", REG, NOW, WIN) is None
    full = check_telemetry(T.telemetry("g1"), _payload(bad), T, REG, NOW, WIN)
    assert [d.reason for d in full.dead] == ["ts_in_future"]
    assert len(full.rows) == 3
    # a gateway that is not allowed, or NaN (only the tolerant decoder reads it), go the full way
    assert check_clean_telemetry(_payload(good, "goff"), "goff", REG, NOW, WIN) is None
    nan = b'{"v":1,"gw":"g1","boot":"B","seq":1,"sent":1,"r":[["d1","p",%d,NaN,0]]}' % NOW
    assert check_clean_telemetry(nan, "g1", REG, NOW, WIN) is None


# ------------------------------------------------------------------------- the commit of a group


def _item(gw_id: int, seq: int, rows: list[tuple[int, int, float | None, int]]) -> Checked:
    it = Checked(rows=list(rows), key=BatchKey(gw_id, "gw1", "fast", seq), sent_ms=NOW)
    it.packed = pack_rows(rows)
    it.buckets = set(dirty_buckets(rows))
    return it


def _dirty(db: psycopg.Connection[Any]) -> set[tuple[int, int]]:
    return {
        (int(p), round(b.timestamp() * 1000))
        for p, b in db.execute("SELECT point_id, bucket FROM ingest_rollup_dirty").fetchall()
    }


def test_write_group_keys_rows_and_marks_in_one_transaction(
    db: psycopg.Connection[Any], db_url: str, registry_ids: dict[str, int]
) -> None:
    db.execute("TRUNCATE readings, ingest_rollup_dirty, ingest_batches")
    gw, p1, p2 = registry_ids["gw1"], registry_ids["dev1.p1"], registry_ids["dev1.p2"]
    t0 = now_ms() // 300_000 * 300_000 - 600_000
    a = _item(gw, 1, [(t0 + i * 1000, p1, float(i), 0) for i in range(50)])
    b = _item(gw, 2, [(t0 + 300_000 + i, p2, 1.0, 0) for i in range(5)] + [(t0, p2, None, 2)])
    with psycopg.connect(db_url, autocommit=True) as conn:
        prepare(conn)
        res = write_group(conn, [a, b, a], NOW)  # the same message twice in one group
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert (res.rows_offered, res.rows_inserted, res.duplicate_messages) == (56, 56, 1)
        assert res.new_keys == {a.key, b.key}
        assert _dirty(db) == {(p1, t0), (p2, t0 + 300_000)}  # not the comm-fail row's bucket
        marks = db.execute("SELECT DISTINCT mark FROM ingest_rollup_dirty").fetchall()
        assert len(marks) == 1  # one mark per commit

        # sent again (the broker redelivers): acknowledged again, nothing written twice, and
        # the buckets marked afresh (a spare re-aggregation, never a missed one)
        res2 = write_group(conn, [a, b], NOW)
        assert res2.new_keys == set()
        assert res2.duplicate_keys == {a.key, b.key}
        assert res2.rows_inserted == 0
        marks2 = db.execute("SELECT DISTINCT mark FROM ingest_rollup_dirty").fetchall()
        assert len(marks2) == 1
        assert marks2[0][0] > marks[0][0]

        # a known row under a new batch key: the direct COPY fails, the staged path keeps one
        c = _item(gw, 3, [(t0, p1, 0.0, 0), (t0 + 299_999, p1, 7.0, 0)])
        res3 = write_group(conn, [c], NOW)
        assert (res3.rows_offered, res3.rows_inserted, res3.new_keys) == (2, 1, {c.key})
        n = db.execute("SELECT count(*) FROM readings WHERE point_id = %s", (p1,)).fetchone()
        assert n == (51,)

        # a group the database refuses (no such gateway) leaves nothing behind and the
        # connection ready for the next one
        bad = _item(10**9, 1, [(t0 + 1, p2, 1.0, 0)])
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            write_group(conn, [bad], NOW)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        n = db.execute(
            "SELECT count(*) FROM readings WHERE ts = %s",
            (datetime.fromtimestamp((t0 + 1) / 1000, UTC),),
        ).fetchone()
        assert n == (0,)
        d = _item(gw, 4, [(t0 + 2, p2, 1.0, 0)])
        assert write_group(conn, [d], NOW).rows_inserted == 1


# ------------------------------------------------------------------------------ commit on a lull


def test_a_filling_commit_goes_ahead_when_messages_stop_coming(
    db: psycopg.Connection[Any],
    mqtt_url: str,
    topic_root: str,
    start_worker: Callable[..., IngestWorker],
    acks: AckListener,
    publisher: Publisher,
) -> None:
    """With a 60 s batch delay, three messages are still committed and acked at once: the
    commit does not wait for more once nothing has come for ``batch_linger_s``."""
    start_worker(batch_max_delay_s=60.0, batch_linger_s=0.05, batch_max_rows=1_000_000)
    t = Topics(topic_root)
    now = now_ms()
    for seq in range(3):
        rows = [("dev1", "p1", now - 10_000 + seq * 10 + i, float(i)) for i in range(5)]
        publisher.publish(t.telemetry("gw1"), batch_payload("gw1", "linger", seq, rows))
    wait_for(lambda: acks.acked("gw1", "linger") == {0, 1, 2}, timeout=20)
    got = db.execute(
        "SELECT count(*) FROM ingest_batches WHERE boot = 'linger' AND readings = 5"
    ).fetchone()
    assert got == (3,)
