"""Ingest checks what a gateway announces in its birth message against the registry: a
disagreement is stored (gateway_config) and logged, naming the devices and points; a health
update's hash of a configuration the office never checked is marked. Real PostgreSQL, real
Mosquitto, a live worker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from ingest.service import IngestWorker
from suvnet.protocol import GatewayState, Topics, encode_state, points_hash
from tests.ingest.conftest import mosquitto_pub, now_ms, wait_for

ROW = (
    "SELECT status, unknown_devices, unknown_points, silent_points, points_hash, boot "
    "FROM gateway_config WHERE gateway_id = %s"
)


def _state(gw: str, points: dict[str, list[str]] | None, phash: str, boot: str) -> bytes:
    pts = None if points is None else {d: tuple(p) for d, p in points.items()}
    return encode_state(GatewayState(gw, "online", now_ms(), boot, {"q": 0}, pts, phash))


def test_birth_disagreeing_with_the_registry_is_stored_and_logged(
    db: psycopg.Connection[Any],
    mqtt_url: str,
    topic_root: str,
    start_worker: Callable[..., IngestWorker],
    registry_ids: dict[str, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    t = Topics(topic_root)
    gid = registry_ids["gw2"]  # dev3 (points p1..p3) is registered on gw2
    start_worker()

    def row() -> Any:
        return db.execute(ROW, (gid,)).fetchone()

    bad = {"dev3": ["p1", "p2", "p3", "p1.leak"], "ghost": ["p1"]}
    try:
        with caplog.at_level(logging.INFO, logger="ingest"):
            mosquitto_pub(mqtt_url, t.state("gw2"), _state("gw2", bad, points_hash(bad), "b1"))
            got = wait_for(lambda: row() is not None and row())
            assert got == ("mismatch", ["ghost"], ["dev3/p1.leak"], [], points_hash(bad), "b1")
            wait_for(lambda: "dev3/p1.leak" in caplog.text)
        warning = next(r for r in caplog.records if "dev3/p1.leak" in r.getMessage())
        assert warning.levelno == logging.WARNING
        assert "ghost" in warning.getMessage()
        assert "unknown_point" in warning.getMessage()  # says what becomes of the readings

        # a health update of the same configuration changes nothing, and is not logged
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="ingest"):
            mosquitto_pub(mqtt_url, t.state("gw2"), _state("gw2", None, points_hash(bad), "b1"))
            bye = GatewayState("gw2", "offline", now_ms())  # then a last will
            mosquitto_pub(mqtt_url, t.state("gw2"), encode_state(bye))
            wait_for(
                lambda: (
                    db.execute(
                        "SELECT state FROM gateway_state WHERE gateway_id = %s", (gid,)
                    ).fetchone()
                    == ("offline",)
                )
            )
        assert row()[0] == "mismatch"
        assert "gw2" not in caplog.text

        # the gateway's config is fixed: the next birth agrees, and that is logged too
        good = {"dev3": ["p1", "p2", "p3"]}
        with caplog.at_level(logging.INFO, logger="ingest"):
            mosquitto_pub(mqtt_url, t.state("gw2"), _state("gw2", good, points_hash(good), "b2"))
            wait_for(lambda: row()[0] == "ok")
            wait_for(lambda: "gateway gw2: its devices and points match" in caplog.text)
        assert row() == ("ok", [], [], [], points_hash(good), "b2")

        # a health update names a configuration whose birth this office never saw
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="ingest"):
            mosquitto_pub(mqtt_url, t.state("gw2"), _state("gw2", None, "0123abcd", "b3"))
            wait_for(lambda: row()[0] == "unchecked")
            wait_for(lambda: "has not seen" in caplog.text)
    finally:
        mosquitto_pub(mqtt_url, t.state("gw2"), b"", retain=True)
