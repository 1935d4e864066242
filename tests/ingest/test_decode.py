"""The decode stage alone (ingest.decode): the Decoder between two queues with a fixed clock and
a hand-made registry (no broker, no database), its re-check after a registry reload, and the
RegistryCache on the real PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
import time
from collections.abc import Iterator
from queue import SimpleQueue
from typing import Any

import psycopg
import pytest

from ingest.decode import Decoder, RegistryCache
from ingest.metrics import Metrics
from ingest.queues import Incoming, put_bounded
from ingest.store import pack_rows
from ingest.validate import Checked, DeviceInfo
from suvnet.protocol import Topics
from tests.ingest.conftest import NOW, SMALL_REGISTRY, WIN, wait_for

T = Topics("suvnet")


def _telemetry(rows: list[list[Any]], seq: int = 1, gw: str = "g1") -> Incoming:
    doc = {"v": 1, "gw": gw, "boot": "B", "seq": seq, "sent": NOW, "r": rows}
    return Incoming(T.telemetry(gw), json.dumps(doc).encode(), seq, 1, 1)


class _Stage:
    """A Decoder with its two queues, and its thread once started."""

    def __init__(self, *, queue_size: int = 100) -> None:
        self.received: SimpleQueue[Incoming] = SimpleQueue()
        self.decoded: SimpleQueue[tuple[Incoming, Checked]] = SimpleQueue()
        self.stop = threading.Event()
        self.registry = RegistryCache(60.0)
        self.metrics = Metrics()
        self.decoder = Decoder(
            T,
            WIN,
            self.registry,
            self.metrics,
            self.received,
            self.decoded,
            queue_size=queue_size,
            stop=self.stop,
            clock=lambda: NOW / 1000,
        )
        self.thread = threading.Thread(target=self.decoder.run, daemon=True)

    def use(self, registry: Any) -> None:
        self.registry.current = registry
        self.registry.ready.set()

    def out(self, n: int, timeout: float = 10.0) -> list[tuple[Incoming, Checked]]:
        return [self.decoded.get(timeout=timeout) for _ in range(n)]


@pytest.fixture
def stage() -> Iterator[_Stage]:
    s = _Stage()
    yield s
    s.stop.set()
    if s.thread.is_alive():
        s.thread.join(5)


def test_messages_are_checked_in_order_with_their_copy_bytes(stage: _Stage) -> None:
    stage.use(SMALL_REGISTRY)
    stage.thread.start()
    good = _telemetry([["d1", "p", NOW - 1000, 1.5, 0], ["d1", "q", NOW - 500, 2.0, 0]], seq=1)
    mixed = _telemetry([["d1", "p", NOW, 3.0, 0], ["d1", "zz", NOW, 4.0, 0]], seq=2)
    birth = Incoming(T.state("g1"), b'{"v":1,"gw":"g1","state":"online","ts":1}', 3, 1, 1)
    junk = Incoming(T.telemetry("g1"), b"not json", 4, 1, 1)
    for m in (good, mixed, birth, junk):
        stage.received.put(m)
    got = stage.out(4)
    assert [m for m, _ in got] == [good, mixed, birth, junk]
    a, b, c, d = (it for _, it in got)
    assert a.rows == [(NOW - 1000, 101, 1.5, 0), (NOW - 500, 102, 2.0, 0)]
    assert a.packed == pack_rows(a.rows)
    assert (a.key is not None and a.key.seq, a.dead, a.registry_at) == (1, [], 0.0)
    assert b.rows == [(NOW, 101, 3.0, 0)]
    assert [x.reason for x in b.dead] == ["unknown_point"]
    assert b.unknown_ids
    assert c.state is not None
    assert (c.state.state, c.state_gateway_id, c.packed) == ("online", 1, None)
    assert [x.reason for x in d.dead] == ["bad_json"]
    assert d.packed is None
    # the message counters, by kind, once the queue ran empty
    kinds = stage.metrics.messages
    wait_for(
        lambda: (
            (kinds.labels("telemetry")._value.get(), kinds.labels("state")._value.get()) == (3, 1)
        )
    )


def test_timestamps_are_judged_by_the_decoders_clock(stage: _Stage) -> None:
    stage.use(SMALL_REGISTRY)
    stage.thread.start()
    limit = NOW + int(WIN.max_future_s * 1000)
    stage.received.put(_telemetry([["d1", "p", limit, 1.0, 0], ["d1", "q", limit + 1, 1.0, 0]]))
    ((_, it),) = stage.out(1)
    assert [r[0] for r in it.rows] == [limit]
    assert [x.reason for x in it.dead] == ["ts_in_future"]


def test_nothing_is_checked_before_the_registry_is_loaded(stage: _Stage) -> None:
    stage.thread.start()
    stage.received.put(_telemetry([["d1", "p", NOW, 1.0, 0]]))
    with pytest.raises(queue.Empty):
        stage.decoded.get(timeout=0.8)  # an empty snapshot would refuse the gateway
    stage.use(SMALL_REGISTRY)
    ((_, it),) = stage.out(1)
    assert len(it.rows) == 1
    assert it.dead == []


def test_stop_ends_the_decoder_waiting_or_working() -> None:
    waiting = _Stage()
    waiting.thread.start()
    waiting.stop.set()
    waiting.thread.join(5)
    assert not waiting.thread.is_alive()
    working = _Stage()
    working.use(SMALL_REGISTRY)
    working.thread.start()
    time.sleep(0.1)
    working.stop.set()
    working.thread.join(5)
    assert not working.thread.is_alive()


def test_a_full_decoded_queue_holds_the_decoder_back() -> None:
    """The decoded queue is bounded like the received one: with the writers stalled the
    decoder stops taking messages, so the received queue fills and the broker stops."""
    s = _Stage(queue_size=3)
    s.use(SMALL_REGISTRY)
    s.thread.start()
    try:
        for seq in range(10):
            s.received.put(_telemetry([["d1", "p", NOW - seq, 1.0, 0]], seq=seq))
        time.sleep(0.5)
        assert (s.decoded.qsize(), s.received.qsize()) == (3, 7)
        assert [s.decoded.get()[0].mid for _ in range(3)] == [0, 1, 2]
        time.sleep(0.3)
        assert (s.decoded.qsize(), s.received.qsize()) == (3, 4)
    finally:
        s.stop.set()
        s.thread.join(5)
    assert not s.thread.is_alive()


def test_recheck_takes_only_what_a_newer_snapshot_may_change() -> None:
    s = _Stage()
    old = dataclasses.replace(SMALL_REGISTRY, loaded_at=100.0)
    s.use(old)
    unknown = _telemetry([["d1", "p", NOW, 1.0, 0], ["d3", "p", NOW, 2.0, 0]], seq=1)
    known = _telemetry([["d1", "p", NOW, 3.0, 0]], seq=2)
    group = [unknown, known]
    items = [s.decoder.check(m, NOW) for m in group]
    assert [it.unknown_ids for it in items] == [True, False]
    assert [it.registry_at for it in items] == [100.0, 100.0]
    # the same snapshot: nothing to gain, nothing re-checked
    assert all(a is b for a, b in zip(s.decoder.recheck(group, items, NOW), items, strict=True))
    # d3 is registered now (a reload): the message that named it is checked again, at the
    # time of the write
    newer = dataclasses.replace(
        old,
        devices={**old.devices, "d3": DeviceInfo(14, 1, 10.0)},
        points={**old.points, ("d3", "p"): 105},
        loaded_at=200.0,
    )
    s.use(newer)
    later = NOW + 1000
    again = s.decoder.recheck(group, items, later)
    assert again[1] is items[1]
    assert again[0] is not items[0]
    assert sorted(again[0].rows) == [(NOW, 101, 1.0, 0), (NOW, 105, 2.0, 0)]
    assert (again[0].dead, again[0].unknown_ids, again[0].registry_at) == ([], False, 200.0)


# ------------------------------------------------------------------ the registry snapshot


def test_registry_cache_loads_refreshes_and_keeps_its_snapshot_on_errors(
    db_url: str, registry_ids: dict[str, int]
) -> None:
    cache = RegistryCache(45.0)
    assert not cache.ready.is_set()
    with psycopg.connect(db_url, autocommit=True) as conn:
        cache.load(conn)
        first = cache.current
        assert cache.ready.is_set()
        assert first.gateways["gw1"].id == registry_ids["gw1"]
        assert first.points[("dev1", "p2")] == registry_ids["dev1.p2"]
        assert cache.age() < 5
        cache.refresh(conn, older_than_s=60.0)  # young enough: not read again
        assert cache.current is first
        cache.refresh(conn)
        assert cache.current is not first
        assert cache.current.points == first.points
    # the connection is gone: the snapshot in hand stays
    kept = cache.current
    cache.refresh(conn)
    assert cache.current is kept
    with pytest.raises(psycopg.OperationalError):
        cache.load(conn)
    assert cache.current is kept


def test_put_bounded_waits_while_full_and_gives_up_on_stop() -> None:
    q: SimpleQueue[int] = SimpleQueue()
    stop = threading.Event()
    put_bounded(q, 1, 3, stop)
    put_bounded(q, 2, 3, stop)
    done = threading.Event()

    def third() -> None:
        put_bounded(q, 3, 3, stop)  # the queue now holds 3: wait
        done.set()

    th = threading.Thread(target=third, daemon=True)
    th.start()
    assert not done.wait(0.2)
    assert q.qsize() == 3  # nothing dropped: the item is in, its sender waits
    q.get()
    assert done.wait(2)
    th.join(2)
    stop.set()
    put_bounded(q, 4, 3, stop)  # full, but stopping: no more waiting
    assert [q.get() for _ in range(3)] == [2, 3, 4]
