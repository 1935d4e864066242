"""Commit groups in parallel, acknowledge them in order.

Several writer threads commit groups of messages at the same time, but MQTT wants the
acknowledgements of QoS 1 messages in the order the messages came, and gateway state changes
(birth, last will) must be applied in the order they came. Each group gets a ticket when it is
taken off the queue (under one lock, so tickets follow the queue); :meth:`TurnOrder.finish`
runs each group's acknowledgements strictly in ticket order, and :meth:`TurnOrder.wait_turn`
lets a group wait until every earlier group is done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("ingest")


class TurnOrder:
    """Tickets in queue order; their actions run strictly in ticket order."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._next_done = 0
        self._done: dict[int, Callable[[], None] | None] = {}

    def take(self) -> int:
        """The next ticket (call it where the group is taken off the queue, under its lock)."""
        with self._cond:
            t = self._next_ticket
            self._next_ticket += 1
            return t

    def finish(self, ticket: int, action: Callable[[], None] | None) -> None:
        """Mark ``ticket`` done; run its action (None: nothing to do, e.g. the group was not
        committed) once every earlier ticket is done, in ticket order."""
        with self._cond:
            self._done[ticket] = action
            while self._next_done in self._done:
                act = self._done.pop(self._next_done)
                self._next_done += 1
                if act is not None:
                    try:
                        act()
                    except Exception:
                        # the acknowledgements are lost with the connection anyway; the broker
                        # redelivers and the batch keys make that harmless
                        log.exception("acknowledging a committed group failed")
            self._cond.notify_all()

    def wait_turn(self, ticket: int, stop: threading.Event, poll_s: float = 0.2) -> bool:
        """Wait until every ticket before ``ticket`` is done. False if ``stop`` was set first."""
        with self._cond:
            while self._next_done < ticket:
                if stop.is_set():
                    return False
                self._cond.wait(poll_s)
            return True

    @property
    def done_until(self) -> int:
        """Tickets below this are done and their actions have run."""
        with self._cond:
            return self._next_done
