"""A message re-checked after a registry reload is judged by the time of the re-check, not by
the time the writer read before it waited for the message (a compressed demo clock moves
hours in that wait)."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from ingest.service import IngestWorker
from suvnet.protocol import Reading, TelemetryBatch, Topics, encode_telemetry
from tests.ingest.conftest import Publisher, fixed_clock, make_config, wait_for


class JumpClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return fixed_clock() + self.offset


def test_a_recheck_uses_the_time_of_the_recheck(
    db: psycopg.Connection[Any],
    db_url: str,
    mqtt_url: str,
    topic_root: str,
    registry_ids: dict[str, int],
    publisher: Publisher,
) -> None:
    clock = JumpClock()
    w = IngestWorker(db_url, mqtt_url, make_config(max_future_s=5.0), topic_root=topic_root,
                     clock=clock)  # fmt: skip
    w.start()
    try:
        assert w.wait_ready(20)
        time.sleep(2.5)  # the registry snapshot is now old enough to be reloaded on a miss
        clock.offset += 3600.0  # an hour passes (one quarter second of a 14400x demo)
        ts = int(clock() * 1000)
        batch = TelemetryBatch(
            "gw1", "boot-jump", 0, ts,
            (Reading("dev1", "p1", ts, 1.0), Reading("dev1", "no_such_point", ts, 2.0)),
        )  # fmt: skip
        publisher.publish(Topics(topic_root).telemetry("gw1"), encode_telemetry(batch))
        publisher.flush()
        reasons = wait_for(
            lambda: (
                db.execute(
                    "SELECT array_agg(reason ORDER BY reason) FROM dead_letters "
                    "WHERE detail LIKE 'gw1/boot-jump/%'"
                ).fetchone()
                or [None]
            )[0]
        )
        assert reasons == ["unknown_point"]  # and not ts_in_future for dev1/p1
        stored = db.execute(
            "SELECT count(*) FROM readings WHERE point_id = %s AND ts = to_timestamp(%s / 1000.0)",
            (registry_ids["dev1.p1"], ts),
        ).fetchone()
        assert stored == (1,)
    finally:
        w.stop()
