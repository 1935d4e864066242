"""What the stages of an ingest worker hand each other, and the bound of the queues between them.

The MQTT link puts each received message (an :class:`Incoming`) on the *received* queue; the
decoder takes it, checks it and puts the message with its outcome on the *decoded* queue; the
writers take groups off that one. Both queues are :class:`queue.SimpleQueue` (written in C,
with no Condition objects: a fraction of ``queue.Queue``'s cost per message), bounded by
:func:`put_bounded`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from queue import SimpleQueue
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message as the broker delivered it."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    gen: int
    """Connection generation: a message is acked only on the connection that delivered it."""


def put_bounded(q: SimpleQueue[T], item: T, limit: int, stop: threading.Event) -> None:
    """Queue an item; then, while the queue holds ``limit`` items or more, wait.

    Overflow policy: the thread that puts waits (for the MQTT link: TCP backpressure), nothing
    is dropped. The broker sends no more than Receive Maximum unacknowledged messages, and the
    queues are as long as that, so this wait is only a safety net. It ends when ``stop`` is set.
    """
    q.put(item)
    while q.qsize() >= limit and not stop.is_set():
        time.sleep(0.002)
