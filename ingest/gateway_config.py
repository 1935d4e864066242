"""The check of what a gateway announces about its configuration (part of the write stage).

A gateway's birth message (``online`` on its state topic) names every device it polls and the
points it publishes of each, with a hash of that list; its health updates name only the hash.
After a group holding such a message is committed, :class:`GatewayConfigCheck` compares the
announcement with the registry (:func:`suvnet.registry.record_gateway_config`), stores the
outcome in the ``gateway_config`` table (``ok``, ``mismatch`` with the lists of devices and
points that disagree, or ``unchecked``) and logs it when it changed: a warning naming the
devices and points that disagree, or a line saying they agree again. A health update with the
hash of a configuration whose birth the office never saw marks it ``unchecked``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from ingest.validate import Checked
from suvnet.protocol import GatewayState
from suvnet.registry import RegistryError, note_config_hash, record_gateway_config

log = logging.getLogger("ingest")


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class GatewayConfigCheck:
    """Checks the configurations gateways announce (one per worker, shared by its writers)."""

    def __init__(self) -> None:
        self._hashes: dict[str, str] = {}
        """Gateway -> the configuration hash last checked or noted (skips health updates)."""

    def needs_check(self, msg: GatewayState) -> bool:
        """A birth always; a health update only when its hash is not the one last seen."""
        if msg.state != "online":
            return False
        if msg.points is not None:
            return True
        return msg.points_hash is not None and self._hashes.get(msg.gateway) != msg.points_hash

    def check(self, conn: psycopg.Connection[Any], items: Sequence[Checked], now_ms: int) -> None:
        """Check the announcements among ``items`` (a committed group). The readings are
        already committed and acknowledged: a failure here is logged, and the next birth
        checks again."""
        for it in items:
            msg = it.state
            if msg is None or it.state_gateway_id is None or not self.needs_check(msg):
                continue
            try:
                with conn.transaction():
                    self._check_one(conn, msg, now_ms)
            except (psycopg.Error, RegistryError) as exc:
                log.warning(
                    "could not check the configuration gateway %s announced: %s", msg.gateway, exc
                )

    def _check_one(self, conn: psycopg.Connection[Any], msg: GatewayState, now_ms: int) -> None:
        now = _at(now_ms)
        if msg.points is not None:
            check, news = record_gateway_config(
                conn,
                msg.gateway,
                msg.points,
                boot=msg.boot,
                announced_at=_at(min(msg.ts_ms, now_ms)),
                now=now,
            )
            if news:
                log.log(logging.INFO if check.ok else logging.WARNING, "%s", check.describe())
            self._hashes[msg.gateway] = check.points_hash
        elif msg.points_hash is not None:
            if note_config_hash(conn, msg.gateway, msg.points_hash, now):
                log.warning(
                    "gateway %s runs a configuration (%s) whose birth message this office has "
                    "not seen: its devices and points are checked at its next connect",
                    msg.gateway,
                    msg.points_hash,
                )
            self._hashes[msg.gateway] = msg.points_hash
