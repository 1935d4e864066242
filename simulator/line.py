"""An emulated RS-485 line between two pseudo-terminals, paced at a real baud rate.

A pty moves bytes instantly, whatever baud rate is set on it. :class:`PacedLine` sits between
the master's pty and the devices' pty and delivers every frame only when it would have finished
crossing a half-duplex line at ``baudrate`` (plus the 3.5-character silence a slave needs to
see the end of a request), so timing measurements over it mean something.
"""

from __future__ import annotations

import contextlib
import os
import select
import statistics
import threading
import time
import tty
from collections import deque

from edge_agent.modbus import char_time, inter_frame_gap


class PacedLine:
    """Two pty pairs joined by a paced relay. ``master_port`` is for the Modbus master (the
    agent), ``device_port`` for the simulated devices."""

    def __init__(self, baudrate: int, parity: str = "N", stopbits: int = 1) -> None:
        self.char = char_time(baudrate, parity, stopbits)
        self.gap = inter_frame_gap(baudrate, parity, stopbits)
        self._m_fd, m_slave = os.openpty()
        self._d_fd, d_slave = os.openpty()
        for fd in (m_slave, d_slave):
            tty.setraw(fd)
        self.master_port = os.ttyname(m_slave)
        self.device_port = os.ttyname(d_slave)
        self._slaves = (m_slave, d_slave)
        self._done = 0.0
        self._last_dir: bool | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._relay, args=(self._m_fd, self._d_fd, True), daemon=True),
            threading.Thread(target=self._relay, args=(self._d_fd, self._m_fd, False), daemon=True),
        ]
        self.frames = 0
        # timestamps for "where the time goes": when the last frame was handed to each side,
        # and how long each side took from then to the first byte of its next frame
        self._delivered: dict[bool, float | None] = {True: None, False: None}
        self._turnaround: dict[bool, deque[float]] = {
            True: deque(maxlen=2000),
            False: deque(maxlen=2000),
        }

    def turnaround_ms(self) -> dict[str, float]:
        """Mean turnarounds seen on the line so far (ms; means, so that late wake-ups count).

        ``device``: from a request reaching the devices' port to the first byte of the answer
        (the simulated device's processing time); ``master``: from an answer reaching the
        master's port to the first byte of its next request (the master's own latency plus its
        3.5-character silence); their minimums (``*_min_ms``) and counts (``*_n``).
        """
        out: dict[str, float] = {}
        for name, side in (("device", False), ("master", True)):
            xs = list(self._turnaround[side])
            out[f"{name}_ms"] = 1000 * statistics.fmean(xs) if xs else float("nan")
            out[f"{name}_min_ms"] = 1000 * min(xs) if xs else float("nan")
            out[f"{name}_n"] = float(len(xs))
        return out

    def reset_turnaround(self) -> None:
        for d in self._turnaround.values():
            d.clear()

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for fd in (self._m_fd, self._d_fd, *self._slaves):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _relay(self, src: int, dst: int, to_device: bool) -> None:
        # how early to stop sleeping and yield-spin instead: thread wake-ups are ~0.3 ms late
        # at normal priority, but punctual at real-time priority, where spinning would also
        # take the CPU from everything else
        realtime = getattr(os, "SCHED_FIFO", None)
        rt = realtime is not None and os.sched_getscheduler(0) in (realtime, os.SCHED_RR)
        early = 0.00005 if rt else 0.0003
        while not self._stop.is_set():
            ready, _, _ = select.select([src], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(src, 4096)
            except OSError:
                return
            if not data:
                continue
            now = time.perf_counter()
            with self._lock:
                if to_device == self._last_dir and now <= self._done + self.char:
                    start = self._done  # more bytes of the frame still on the wire
                else:
                    start = max(now, self._done + self.gap)  # t3.5 of silence between frames
                    # a new frame from this side: how long since the other side handed it one
                    handed = self._delivered[not to_device]
                    if handed is not None and to_device != self._last_dir:
                        self._turnaround[to_device].append(now - handed)
                done = start + len(data) * self.char
                self._done, self._last_dir = done, to_device
            # a slave sees the end of a request only after t3.5 of silence
            due = done + (self.gap if to_device else 0.0)
            while (left := due - time.perf_counter()) > 0:
                time.sleep(left - early if left > 2 * early else 0)
            try:
                os.write(dst, data)
            except OSError:
                return
            self._delivered[to_device] = time.perf_counter()
            self.frames += 1
