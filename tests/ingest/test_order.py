"""Groups committed by parallel writers are acknowledged in the order their messages came."""

from __future__ import annotations

import functools
import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from ingest.order import TurnOrder
from ingest.service import IngestWorker
from ingest.validate import Checked
from suvnet.protocol import Topics
from tests.ingest.conftest import (
    AckListener,
    Publisher,
    batch_payload,
    count,
    now_ms,
    wait_for,
)


def test_actions_run_in_ticket_order_whatever_order_groups_finish() -> None:
    order = TurnOrder()
    tickets = [order.take() for _ in range(50)]
    assert tickets == list(range(50))
    ran: list[int] = []
    finish_order = tickets[:]
    random.Random(7).shuffle(finish_order)
    for t in finish_order:
        # every fifth group was not committed (stopped): nothing to acknowledge, no hold-up
        order.finish(t, None if t % 5 == 0 else functools.partial(ran.append, t))
    assert ran == [t for t in tickets if t % 5]
    assert order.done_until == 50


def test_nothing_runs_before_every_earlier_ticket_is_done() -> None:
    order = TurnOrder()
    a, b, c = order.take(), order.take(), order.take()
    ran: list[str] = []
    order.finish(c, lambda: ran.append("c"))
    order.finish(b, lambda: ran.append("b"))
    assert ran == []  # a (the oldest group) is still being committed
    order.finish(a, lambda: ran.append("a"))
    assert ran == ["a", "b", "c"]


def test_a_failing_action_does_not_block_the_later_ones() -> None:
    order = TurnOrder()
    a, b = order.take(), order.take()
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("broker connection gone")

    order.finish(a, broken)
    order.finish(b, lambda: ran.append("b"))
    assert ran == ["b"]


def test_parallel_writers_ack_in_order() -> None:
    """Four threads take tickets and finish them after random delays, as writers do."""
    order = TurnOrder()
    take_lock = threading.Lock()
    ran: list[int] = []
    stop = threading.Event()

    def writer(seed: int) -> None:
        rnd = random.Random(seed)
        while True:
            with take_lock:
                t = order.take()
            if t >= 200:
                order.finish(t, None)
                return
            time.sleep(rnd.random() * 0.002)
            order.finish(t, functools.partial(ran.append, t))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert not stop.is_set()
    assert ran == list(range(200))


def test_wait_turn() -> None:
    order = TurnOrder()
    a, b = order.take(), order.take()
    stop = threading.Event()
    assert order.wait_turn(a, stop)  # the oldest group never waits
    got: list[bool] = []
    th = threading.Thread(target=lambda: got.append(order.wait_turn(b, stop, poll_s=0.01)))
    th.start()
    time.sleep(0.05)
    assert got == []  # still waiting for a
    order.finish(a, None)
    th.join(5)
    assert got == [True]
    c, d = order.take(), order.take()
    th = threading.Thread(target=lambda: got.append(order.wait_turn(d, stop, poll_s=0.01)))
    th.start()
    stop.set()  # c is never done: the worker is stopping
    th.join(5)
    assert got == [True, False]
    assert c == 2


# ----------------------------------------------------------------- with a worker of 3 writers


def test_parallel_writers_keep_rows_once_and_state_changes_in_order(
    db: psycopg.Connection[Any],
    topic_root: str,
    start_worker: Callable[..., IngestWorker],
    acks: AckListener,
    publisher: Publisher,
    registry_ids: dict[str, int],
) -> None:
    """Small groups spread over 3 writers: every batch acked, every row once, and the gateway
    state messages (interleaved with the data) applied in the order they were published."""
    db.execute("TRUNCATE readings, ingest_batches, gateway_state, gateway_state_history")
    worker = start_worker(writers=3, batch_max_rows=20, batch_linger_s=0.001)
    real_commit = worker._commit
    slowed: list[bool] = []

    def commit(conn: Any, group: Any, items: Sequence[Checked], now_ms: int) -> None:
        # the first "offline" message is slow to commit: the later "online" must still come
        # after it in the history
        if not slowed and any(it.state is not None and it.state.state == "offline" for it in items):
            slowed.append(True)
            time.sleep(0.5)
        real_commit(conn, group, items, now_ms)

    worker._commit = commit  # type: ignore[method-assign]
    t = Topics(topic_root)
    now = now_ms()
    states = []
    for seq in range(120):
        rows = [("dev1", "p2", now - 600_000 + seq * 10 + i, float(seq)) for i in range(10)]
        publisher.publish(t.telemetry("gw1"), batch_payload("gw1", "par", seq, rows))
        if seq % 20 == 19:
            st = "offline" if (seq // 20) % 2 == 0 else "online"
            states.append(st)
            doc = {"v": 1, "gw": "gw1", "state": st, "ts": now - 100_000 + seq}
            publisher.publish(t.state("gw1"), json.dumps(doc).encode())
    publisher.flush()
    wait_for(lambda: acks.acked("gw1", "par") == set(range(120)), timeout=60)
    assert count(db, "SELECT count(*) FROM ingest_batches WHERE boot = 'par'") == 120
    pid = registry_ids["dev1.p2"]
    assert count(db, "SELECT count(*) FROM readings WHERE point_id = %s", pid) == 1200
    assert count(db, "SELECT count(DISTINCT ts) FROM readings WHERE point_id = %s", pid) == 1200
    history = wait_for(
        lambda: (
            h
            if len(
                h := [
                    str(r[0])
                    for r in db.execute(
                        "SELECT state FROM gateway_state_history WHERE gateway_id = %s "
                        "AND reason NOT LIKE 'data%%' ORDER BY id",
                        (registry_ids["gw1"],),
                    ).fetchall()
                ]
            )
            >= len(states)
            else None
        )
    )
    assert slowed
    assert history == states
