"""Sub-millisecond sleeps for the RS-485 bus arbiter, without spinning.

asyncio's event loop waits in ``epoll_wait``, whose timeout is whole milliseconds (rounded up),
so ``asyncio.sleep(0.00175)`` wakes after 2 to 2.9 ms. At 115,200 baud a whole request and
answer take about 5 ms on the wire, so that alone costs 5-15 % of the line. Spinning
(``sleep(0)`` in a loop) is precise on an idle machine but burns CPU, and on a busy machine the
scheduler then wakes the process later (it has used its share), which costs far more.

On Linux a ``timerfd`` (nanosecond deadline) is watched by the same event loop: the loop sleeps
in the kernel and wakes when the deadline passes. Elsewhere, or when the call is not available,
:class:`PreciseTimer` falls back to ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import sys

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        ]
    except (OSError, AttributeError):
        return None
    return libc


def timespec_parts(seconds: float) -> tuple[int, int]:
    """``seconds`` as (whole seconds, nanoseconds) for a timerfd; never (0, 0), which would
    disarm the timer instead of firing it at once."""
    ns = max(1, round(seconds * 1e9))
    return ns // 1_000_000_000, ns % 1_000_000_000


class PreciseTimer:
    """One sleeper at a time (the bus arbiter holds its lock while it sleeps)."""

    def __init__(self) -> None:
        self._libc = _libc()
        self._fd: int | None = None

    def _timerfd(self) -> int | None:
        if self._fd is None and self._libc is not None:
            fd = int(self._libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC))
            if fd < 0:
                self._libc = None  # not supported here: use asyncio.sleep from now on
                return None
            self._fd = fd
        return self._fd

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        fd = self._timerfd()
        if fd is None or self._libc is None:
            await asyncio.sleep(seconds)
            return
        sec, nsec = timespec_parts(seconds)
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(sec, nsec))
        if self._libc.timerfd_settime(fd, 0, ctypes.byref(spec), None) != 0:
            await asyncio.sleep(seconds)
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def fired() -> None:
            with contextlib.suppress(BlockingIOError):
                os.read(fd, 8)
                if not done.done():
                    done.set_result(None)

        loop.add_reader(fd, fired)
        try:
            await done
        finally:
            loop.remove_reader(fd)
            if not done.done():  # cancelled: disarm, so a stale expiry is not read next time
                self._libc.timerfd_settime(
                    fd, 0, ctypes.byref(_Itimerspec(_Timespec(0, 0), _Timespec(0, 0))), None
                )
                with contextlib.suppress(BlockingIOError):
                    os.read(fd, 8)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
