"""The write stage alone (ingest.writer, ingest.gateway_config): Writers between the decoded
queue and an ack sink, on the real PostgreSQL, without a broker. The ack sink records what the
writers hand to the MQTT link (and checks, when it is called, that the batches are committed)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from queue import SimpleQueue
from typing import Any

import numpy as np
import psycopg
import pytest

from ingest.config import IngestConfig
from ingest.decode import Decoder, RegistryCache
from ingest.gateway_config import GatewayConfigCheck
from ingest.metrics import Metrics
from ingest.queues import Incoming
from ingest.store import dirty_buckets, pack_rows
from ingest.validate import BatchKey, Checked, Window
from ingest.writer import LastSeen, Writers
from suvnet.protocol import GatewayState, Topics, points_hash
from tests.ingest.conftest import batch_payload, count, fixed_clock, make_config, now_ms, wait_for

T = Topics("wtest")

# ------------------------------------------------------------------------ last-seen, pure


def _seen_item(
    gw_id: int | None, seen: dict[int, int], pairs: list[tuple[int, int]] | None = None
) -> Checked:
    it = Checked(device_seen=dict(seen))
    if gw_id is not None:
        it.key = BatchKey(gw_id, f"g{gw_id}", "B", 1)
    if pairs is not None:
        it.seen_pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return it


def test_last_seen_keeps_the_newest_time_per_device_and_gateway() -> None:
    ls = LastSeen(every_s=3600.0, factor=3.0, default_period_s=60.0)
    ls.note([_seen_item(1, {11: 500, 12: 900}), _seen_item(2, {11: 700}, [(13, 5), (11, 600)])], 10)
    ls.note([_seen_item(None, {12: 800}, [(13, 9), (13, 4)])], 20)  # a state message: no key
    assert ls.devices == {11: 700, 12: 900, 13: 9}
    assert ls.gateways == {1: 10, 2: 10}
    assert ls.take(force=True) == ({11: 700, 12: 900, 13: 9}, {1: 10, 2: 10})
    assert (ls.devices, ls.gateways) == ({}, {})
    ls.note([_seen_item(1, {11: 800})], 30)
    assert ls.take() is None  # written less than every_s ago
    # what could not be written comes back, and a newer time noted meanwhile wins
    ls.put_back({11: 750, 14: 1}, {1: 25, 3: 5})
    assert (ls.devices, ls.gateways) == ({11: 800, 14: 1}, {1: 30, 3: 5})


def test_last_seen_is_written_and_kept_when_the_database_fails(
    db: psycopg.Connection[Any], db_url: str, registry_ids: dict[str, int]
) -> None:
    db.execute("TRUNCATE device_state, device_state_history, gateway_state")
    dev, gw = registry_ids["dev3"], registry_ids["gw2"]
    reg = RegistryCache(60.0)
    ls = LastSeen(every_s=0.001, factor=3.0, default_period_s=60.0)
    now = now_ms()
    with psycopg.connect(db_url, autocommit=True) as conn:
        reg.load(conn)
        ls.note([_seen_item(gw, {dev: now - 1000})], now)
        assert ls.flush(conn, reg.current, now) == (1, 1)  # both come online
    st = db.execute("SELECT state FROM device_state WHERE device_id = %s", (dev,)).fetchone()
    assert st == ("online",)
    ls.note([_seen_item(gw, {dev: now + 5})], now + 10)
    time.sleep(0.01)
    assert ls.flush(conn, reg.current, now + 10) == (0, 0)  # the connection is closed
    assert (ls.devices, ls.gateways) == ({dev: now + 5}, {gw: now + 10})


# ------------------------------------------------------------------- the writers, on a DB


class _Stage:
    """Writers with their decoded queue, fed with messages decoded against the registry."""

    def __init__(self, db_url: str, config: IngestConfig, *, load: bool = True, **kw: Any) -> None:
        self.config = config
        self.metrics = Metrics()
        self.stop = threading.Event()
        self.registry = RegistryCache(config.default_poll_period_s)
        self.decoded: SimpleQueue[tuple[Incoming, Checked]] = SimpleQueue()
        self.decoder = Decoder(
            T,
            Window(config.max_age_s, config.max_future_s),
            self.registry,
            self.metrics,
            SimpleQueue(),
            self.decoded,
            queue_size=config.queue_size,
            stop=self.stop,
            clock=fixed_clock,
        )
        self.acked: list[tuple[list[Incoming], set[BatchKey]]] = []
        self.unacked_at_ack: list[BatchKey] = []
        self.writers = Writers(
            db_url,
            config,
            self.metrics,
            self.registry,
            self.decoder,
            self.decoded,
            self.send_acks,
            stop=self.stop,
            clock=fixed_clock,
            in_memory=lambda: self.decoded.qsize() + self.writers.held(),
            **kw,
        )
        self.threads: list[threading.Thread] = []
        self._check = psycopg.connect(db_url, autocommit=True) if load else None
        if load:
            with psycopg.connect(db_url, autocommit=True) as conn:
                self.registry.load(conn)

    def send_acks(self, group: Sequence[Incoming], keys: set[BatchKey]) -> None:
        """The link's job; here: record, and check that every key is committed already."""
        assert self._check is not None
        for k in keys:
            row = self._check.execute(
                "SELECT count(*) FROM ingest_batches WHERE gateway_id = %s AND boot = %s "
                "AND seq = %s",
                (k.gateway_id, k.boot, k.seq),
            ).fetchone()
            if row != (1,):
                self.unacked_at_ack.append(k)
        self.acked.append((list(group), set(keys)))

    def feed(self, messages: Sequence[Incoming]) -> None:
        for m in messages:
            self.decoded.put((m, self.decoder.decode(m)))

    def start(self) -> None:
        for n in range(1, self.config.writers + 1):
            th = threading.Thread(target=self.writers.run, args=(n,), daemon=True)
            th.start()
            self.threads.append(th)

    def close(self) -> None:
        self.stop.set()
        for th in self.threads:
            th.join(15)
        if self._check is not None:
            self._check.close()

    def mids(self) -> list[int]:
        return [m.mid for group, _ in self.acked for m in group]

    def batch_keys(self) -> set[BatchKey]:
        return {k for _, keys in self.acked for k in keys}


@pytest.fixture
def stages() -> Iterator[list[_Stage]]:
    made: list[_Stage] = []
    yield made
    for s in made:
        s.close()


def _telemetry(boot: str, seq: int, rows: list[tuple[str, str, int, float | None]]) -> Incoming:
    return Incoming(T.telemetry("gw1"), batch_payload("gw1", boot, seq, rows), seq, 1, 1)


def test_groups_commit_in_parallel_and_are_acked_in_order_after_their_commit(
    db: psycopg.Connection[Any],
    db_url: str,
    registry_ids: dict[str, int],
    stages: list[_Stage],
) -> None:
    db.execute("TRUNCATE readings, ingest_batches")
    slowed: list[int] = []

    def commit(conn: Any, group: Sequence[Incoming], items: Sequence[Checked], at: int) -> None:
        if not slowed:  # the first group is slow: later groups commit before it
            slowed.append(group[0].mid)
            time.sleep(0.4)
        stage.writers.commit(conn, group, items, at)

    cfg = make_config(writers=3, batch_max_rows=20, batch_linger_s=0.001)
    stage = _Stage(db_url, cfg, commit=commit)
    stages.append(stage)
    t0 = now_ms() - 600_000
    stage.feed(
        [
            _telemetry("w1", seq, [("dev1", "p3", t0 + seq * 10 + i, float(i)) for i in range(10)])
            for seq in range(60)
        ]
    )
    stage.start()
    wait_for(lambda: len(stage.mids()) == 60, timeout=30)
    assert slowed == [0]
    assert stage.mids() == list(range(60))  # acknowledged in the order they came
    assert {k.seq for k in stage.batch_keys()} == set(range(60))
    assert stage.unacked_at_ack == []  # never before the commit
    assert (
        count(db, "SELECT count(*) FROM readings WHERE point_id = %s", registry_ids["dev1.p3"])
        == 600
    )
    assert stage.metrics.readings._value.get() == 600
    assert stage.metrics.commits._value.get() >= 30  # groups of 2 messages of 10 readings
    assert stage.writers.db_ok.is_set()
    stage.stop.set()
    for th in stage.threads:
        th.join(15)
    assert not any(th.is_alive() for th in stage.threads)
    assert stage.writers.held() == 0


def test_a_message_the_database_refuses_is_dead_lettered_and_the_rest_written(
    db: psycopg.Connection[Any], db_url: str, registry_ids: dict[str, int], stages: list[_Stage]
) -> None:
    db.execute("TRUNCATE readings, ingest_batches, dead_letters")
    stage = _Stage(db_url, make_config(writers=1, batch_max_rows=1000, batch_max_delay_s=0.3))
    stages.append(stage)
    t0 = now_ms() - 60_000
    good = [_telemetry("r1", s, [("dev2", "p1", t0 + s, 1.0)]) for s in (1, 3)]
    pid = registry_ids["dev2.p1"]
    # a message checked against a registry that still had a gateway deleted since
    ghost_rows = [(t0 + 2, pid, 2.0, 0)]
    ghost = Checked(rows=ghost_rows, key=BatchKey(10**9, "gw1", "r1", 2), sent_ms=t0)
    ghost.packed = pack_rows(ghost_rows)
    ghost.buckets = set(dirty_buckets(ghost_rows))
    bad = Incoming(T.telemetry("gw1"), b"ghost-payload", 2, 1, 1)
    stage.decoded.put((good[0], stage.decoder.decode(good[0])))
    stage.decoded.put((bad, ghost))
    stage.decoded.put((good[1], stage.decoder.decode(good[1])))
    stage.start()
    wait_for(lambda: len(stage.mids()) == 3)
    assert stage.mids() == [1, 2, 3]
    assert {k.seq for k in stage.batch_keys()} == {1, 3}  # no end-to-end ack for the refused one
    assert count(db, "SELECT count(*) FROM readings WHERE point_id = %s", pid) == 2
    row = db.execute("SELECT reason, topic, payload FROM dead_letters").fetchall()
    assert row == [("db_rejected", T.telemetry("gw1"), b"ghost-payload")]
    assert stage.metrics.dead_letters.labels("db_rejected")._value.get() == 1


def test_collect_takes_runs_of_the_queue_up_to_the_row_limit(stages: list[_Stage]) -> None:
    stage = _Stage("", make_config(batch_max_rows=25, batch_max_delay_s=5.0), load=False)
    stages.append(stage)
    for seq in range(7):
        it = Checked(rows=[(0, 1, 1.0, 0)] * 10)
        stage.decoded.put((Incoming("t", b"", seq, 1, 1), it))
    group, items, ticket = stage.writers.collect(1)
    assert ([m.mid for m in group], len(items), ticket) == ([0, 1, 2], 3, 0)
    assert stage.writers.held() == 3
    group, _, ticket = stage.writers.collect(2)
    assert ([m.mid for m in group], ticket) == ([3, 4, 5], 1)
    assert stage.writers.held() == 6
    # the last one alone: nothing more came for batch_linger_s
    t0 = time.monotonic()
    group, _, ticket = stage.writers.collect(1)
    assert ([m.mid for m in group], ticket) == ([6], 2)
    assert time.monotonic() - t0 < 1.0
    assert stage.writers.collect(1) == ([], [], -1)  # nothing queued


def test_writers_wait_for_the_database_and_stop_when_told(stages: list[_Stage]) -> None:
    stage = _Stage("postgresql://postgres@127.0.0.1:1/none", make_config(writers=2), load=False)
    stages.append(stage)
    stage.start()
    wait_for(lambda: stage.metrics.db_up._value.get() == 0 and stage.writers.held() == 0)
    time.sleep(0.5)
    assert not stage.writers.db_ok.is_set()
    assert all(th.is_alive() for th in stage.threads)  # retrying with backoff
    stage.stop.set()
    for th in stage.threads:
        th.join(10)
    assert not any(th.is_alive() for th in stage.threads)


# ---------------------------------------------------------------- the birth configuration


def _state(gw: str, points: dict[str, list[str]] | None, phash: str | None) -> GatewayState:
    pts = None if points is None else {d: tuple(p) for d, p in points.items()}
    return GatewayState(gw, "online", now_ms(), "b1", {"q": 0}, pts, phash)


def test_which_state_messages_are_checked() -> None:
    check = GatewayConfigCheck()
    birth = _state("gw1", {"dev1": ["p1"]}, "h1")
    health = _state("gw1", None, "h1")
    assert check.needs_check(birth)
    assert check.needs_check(health)  # a hash this worker has not seen yet
    check._hashes["gw1"] = "h1"
    assert check.needs_check(birth)  # a birth always
    assert not check.needs_check(health)
    assert not check.needs_check(_state("gw1", None, None))
    assert not check.needs_check(GatewayState("gw1", "offline", now_ms()))


def test_the_check_stores_the_outcome_and_survives_an_unknown_gateway(
    db: psycopg.Connection[Any],
    db_url: str,
    registry_ids: dict[str, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    db.execute("TRUNCATE gateway_config")
    announced = {"dev1": ["p1", "p2", "p3", "p9"], "dev2": ["p1", "p2", "p3"]}
    phash = points_hash(announced)
    ghost = Checked(state=_state("nobody", announced, phash), state_gateway_id=10**9)
    real = Checked(state=_state("gw1", announced, phash), state_gateway_id=registry_ids["gw1"])
    check = GatewayConfigCheck()
    with caplog.at_level(logging.INFO, logger="ingest"), psycopg.connect(db_url) as conn:
        conn.autocommit = True
        check.check(conn, [ghost, real], now_ms())
    row = db.execute(
        "SELECT status, unknown_points, points_hash FROM gateway_config WHERE gateway_id = %s",
        (registry_ids["gw1"],),
    ).fetchone()
    assert row == ("mismatch", ["dev1/p9"], phash)
    assert "could not check the configuration gateway nobody announced" in caplog.text
    warn = [r for r in caplog.records if "dev1/p9" in r.getMessage()]
    assert [r.levelno for r in warn] == [logging.WARNING]
