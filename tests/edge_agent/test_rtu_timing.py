"""Pure tests for the RTU frame-length and gap computations, and the bus arbiter's timer."""

from __future__ import annotations

import asyncio
import time

import pytest

from edge_agent.modbus import (
    char_time,
    inter_frame_gap,
    parse_response,
    pdu_read,
    pdu_write_coils,
    pdu_write_registers,
    rtu_expected_length,
    rtu_frame,
    rtu_response_length,
)
from edge_agent.timer import PreciseTimer, timespec_parts


@pytest.mark.parametrize(
    ("pdu", "length"),
    [
        (pdu_read("holding", 0, 10), 25),  # unit, fc, byte count, 20 data bytes, 2 CRC
        (pdu_read("input", 100, 1), 7),
        (pdu_read("holding", 0, 125), 255),
        (pdu_read("coil", 0, 1), 6),
        (pdu_read("discrete", 0, 8), 6),
        (pdu_read("discrete", 0, 9), 7),
        (pdu_read("coil", 0, 2000), 255),
        (pdu_write_registers(5, [1]), 8),
        (pdu_write_registers(5, [1, 2, 3]), 8),
        (pdu_write_coils(5, [True]), 8),
        (pdu_write_coils(5, [True, False, True]), 8),
    ],
)
def test_expected_length_from_the_request(pdu: bytes, length: int) -> None:
    assert rtu_expected_length(pdu) == length


@pytest.mark.parametrize("count", [1, 2, 10, 63, 125])
def test_expected_length_matches_a_real_answer(count: int) -> None:
    req = pdu_read("holding", 40, count)
    answer_pdu = bytes((3, 2 * count)) + bytes(i % 256 for i in range(2 * count))
    frame = rtu_frame(7, answer_pdu)
    assert rtu_expected_length(req) == len(frame) == rtu_response_length(frame[:3])
    assert parse_response(req, answer_pdu) is not None


@pytest.mark.parametrize(
    ("baud", "parity", "stopbits", "gap_s"),
    [
        (9600, "N", 1, 3.5 * 10 / 9600),
        (9600, "E", 1, 3.5 * 11 / 9600),
        (19200, "N", 2, 3.5 * 11 / 19200),
        (38400, "N", 1, 0.00175),  # fixed above 19,200 baud (Modbus over serial line, 2.5.1.1)
        (115200, "E", 1, 0.00175),
    ],
)
def test_gap_follows_the_baud_rate(baud: int, parity: str, stopbits: int, gap_s: float) -> None:
    assert inter_frame_gap(baud, parity, stopbits) == pytest.approx(gap_s)
    assert char_time(baud, parity, stopbits) * baud == 10 + (parity != "N") + (stopbits - 1)


@pytest.mark.parametrize(
    ("seconds", "parts"),
    [(0.00175, (0, 1_750_000)), (1.5, (1, 500_000_000)), (0.0, (0, 1)), (2e-10, (0, 1))],
)
def test_timespec_parts(seconds: float, parts: tuple[int, int]) -> None:
    assert timespec_parts(seconds) == parts


async def test_precise_timer_never_wakes_early_and_survives_cancel() -> None:
    timer = PreciseTimer()
    try:
        for wait in (0.0002, 0.00175, 0.003):
            t0 = time.perf_counter()
            await timer.sleep(wait)
            assert time.perf_counter() - t0 >= wait
        task = asyncio.create_task(timer.sleep(5.0))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        t0 = time.perf_counter()  # the cancelled deadline must not end the next sleep early
        await timer.sleep(0.002)
        assert time.perf_counter() - t0 >= 0.002
    finally:
        timer.close()
