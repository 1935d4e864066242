"""Modbus framing (pure) and the transports around it (thin asyncio shell).

Pure part: request PDUs, response parsing, the RTU CRC and frame lengths, the MBAP header.
Shell part: :class:`TcpConnection` (Modbus TCP, one connection per device),
:class:`RtuTcpConnection` (RTU frames over a TCP socket, e.g. a serial-to-Ethernet converter),
:class:`SerialConnection` (RTU on a serial port) and :class:`BusArbiter`, which serialises all
requests on one RS-485 line and keeps the 3.5-character silence between frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from edge_agent.aio import with_timeout
from edge_agent.errors import FrameError, ModbusError, ModbusExceptionResponse, ModbusTimeout
from edge_agent.timer import PreciseTimer

FC_READ = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
FC_WRITE_COIL, FC_WRITE_REGISTER, FC_WRITE_COILS, FC_WRITE_REGISTERS = 5, 6, 15, 16

# ------------------------------------------------------------------------------------ pure: PDUs


def pdu_read(table: str, address: int, count: int) -> bytes:
    return struct.pack(">BHH", FC_READ[table], address, count)


def pdu_write_registers(address: int, values: Sequence[int]) -> bytes:
    if len(values) == 1:
        return struct.pack(">BHH", FC_WRITE_REGISTER, address, values[0])
    body = b"".join(struct.pack(">H", v) for v in values)
    return struct.pack(">BHHB", FC_WRITE_REGISTERS, address, len(values), len(body)) + body


def _pack_bits(bits: Sequence[bool]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        if b:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def pdu_write_coils(address: int, bits: Sequence[bool]) -> bytes:
    if len(bits) == 1:
        return struct.pack(">BHH", FC_WRITE_COIL, address, 0xFF00 if bits[0] else 0)
    body = _pack_bits(bits)
    return struct.pack(">BHHB", FC_WRITE_COILS, address, len(bits), len(body)) + body


def parse_response(request: bytes, response: bytes) -> list[int] | list[bool] | None:
    """Check ``response`` against ``request``: values for a read, None for a write.

    Raises :class:`ModbusExceptionResponse` for an exception answer and :class:`FrameError`
    when the answer does not match the request.
    """
    if not response:
        raise FrameError("empty response")
    fc = request[0]
    if response[0] == fc | 0x80:
        if len(response) < 2:
            raise FrameError("truncated exception response")
        raise ModbusExceptionResponse(fc, response[1])
    if response[0] != fc:
        raise FrameError(f"response function {response[0]} does not match request {fc}")
    if fc in (1, 2, 3, 4):
        count = struct.unpack(">H", request[3:5])[0]
        if len(response) < 2 or len(response) != 2 + response[1]:
            raise FrameError("read response length does not match its byte count")
        data = response[2:]
        if fc in (3, 4):
            if len(data) != 2 * count:
                raise FrameError(f"asked for {count} registers, got {len(data) // 2}")
            return list(struct.unpack(f">{count}H", data))
        if len(data) != (count + 7) // 8:
            raise FrameError(f"asked for {count} bits, got {len(data)} bytes")
        return [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)]
    if response[:5] != request[:5]:
        raise FrameError("write echo does not match the request")
    return None


def response_pdu_size(request: bytes) -> int:
    """Size of the normal response PDU to ``request`` (for timing calculations)."""
    fc = request[0]
    if fc in (1, 2, 3, 4):
        count = int(struct.unpack(">H", request[3:5])[0])
        return 2 + (2 * count if fc in (3, 4) else (count + 7) // 8)
    return 5


# ------------------------------------------------------------------------------- pure: RTU / TCP


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC = _crc_table()


def crc16(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC[(crc ^ b) & 0xFF]
    return crc


def rtu_frame(unit: int, pdu: bytes) -> bytes:
    body = bytes((unit,)) + pdu
    return body + struct.pack("<H", crc16(body))


def rtu_expected_length(pdu: bytes) -> int:
    """Whole length of the normal RTU answer to the request ``pdu`` (unit id + answer PDU +
    CRC), known before anything arrives: function code 1/2 -> 5 + ceil(count/8), 3/4 ->
    5 + 2 x count, writes (5, 6, 15, 16) -> 8. An exception answer is shorter (5 bytes): the
    reader sees it from the second byte."""
    return 1 + response_pdu_size(pdu) + 2


def rtu_response_length(head: bytes) -> int:
    """Whole length of an RTU response from its first 3 bytes."""
    fc = head[1]
    if fc & 0x80:
        return 5
    if fc in (1, 2, 3, 4):
        return 5 + head[2]
    if fc in (5, 6, 15, 16):
        return 8
    raise FrameError(f"unexpected function code {fc} in response")


def rtu_unframe(unit: int, frame: bytes) -> bytes:
    if len(frame) < 4:
        raise FrameError("RTU frame too short")
    if crc16(frame[:-2]) != struct.unpack("<H", frame[-2:])[0]:
        raise FrameError("RTU frame CRC error")
    if frame[0] != unit:
        raise FrameError(f"answer from unit {frame[0]}, expected {unit}")
    return frame[1:-2]


def char_time(baudrate: int, parity: str = "N", stopbits: int = 1) -> float:
    """Seconds one character takes on the line (start + 8 data + parity + stop bits)."""
    return float(1 + 8 + (0 if parity == "N" else 1) + stopbits) / baudrate


def inter_frame_gap(baudrate: int, parity: str = "N", stopbits: int = 1) -> float:
    """The Modbus RTU 3.5-character silence (fixed at 1.75 ms above 19,200 baud)."""
    if baudrate > 19200:
        return 0.00175
    return 3.5 * char_time(baudrate, parity, stopbits)


# ------------------------------------------------------------------------------------- I/O shell


class Connection(Protocol):
    """Sends one request PDU to a unit and returns the response PDU."""

    async def exchange(self, unit: int, pdu: bytes, timeout_s: float) -> bytes: ...

    async def close(self) -> None: ...


class _StreamConnection:
    """Common part of the TCP-socket transports: lazy connect, one request at a time."""

    def __init__(self, host: str, port: int, connect_timeout: float = 3.0) -> None:
        self.host, self.port = host, port
        self.connect_timeout = connect_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            try:
                reader, writer = await with_timeout(
                    asyncio.open_connection(self.host, self.port), self.connect_timeout
                )
            except TimeoutError as exc:
                raise ModbusTimeout(f"connect to {self.host}:{self.port} timed out") from exc
            except OSError as exc:
                raise ModbusError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._reader, self._writer = reader, writer
            return reader, writer
        return self._reader, self._writer

    async def close(self) -> None:
        w, self._reader, self._writer = self._writer, None, None
        if w is not None:
            w.close()
            with contextlib.suppress(OSError, ConnectionError):
                await w.wait_closed()

    async def exchange(self, unit: int, pdu: bytes, timeout_s: float) -> bytes:
        async with self._lock:
            reader, writer = await self._ensure()
            try:
                return await with_timeout(self._roundtrip(reader, writer, unit, pdu), timeout_s)
            except TimeoutError as exc:
                await self.close()  # a late answer must not be taken for the next one
                raise ModbusTimeout(
                    f"no answer from {self.host}:{self.port} unit {unit} in {timeout_s:g} s"
                ) from exc
            except (OSError, asyncio.IncompleteReadError) as exc:
                await self.close()
                raise ModbusError(f"connection to {self.host}:{self.port} lost: {exc}") from exc
            except FrameError:
                await self.close()
                raise

    async def _roundtrip(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, unit: int, pdu: bytes
    ) -> bytes:
        raise NotImplementedError


class _MbapProtocol(asyncio.Protocol):
    """Splits the TCP byte stream into MBAP frames and hands the awaited one over."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.tid = 0
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc or ConnectionResetError("connection closed by the device")
        w = self.waiter
        if w is not None and not w.done():
            w.set_exception(ModbusError(f"connection lost: {self.lost}"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while len(buf) >= 7:
            tid, proto, length, unit = struct.unpack_from(">HHHB", buf)
            if proto != 0 or not 2 <= length <= 254:
                buf.clear()
                w = self.waiter
                if w is not None and not w.done():
                    w.set_exception(FrameError(f"bad MBAP header {bytes(data[:7]).hex()}"))
                return
            if len(buf) < 6 + length:
                return
            body = bytes(buf[7 : 6 + length])
            del buf[: 6 + length]
            w = self.waiter
            # an answer to an earlier, timed-out request is skipped
            if tid == self.tid and w is not None and not w.done():
                w.set_result((unit, body))


class TcpConnection:
    """Modbus TCP (MBAP header): one connection, one request at a time."""

    def __init__(self, host: str, port: int, connect_timeout: float = 3.0) -> None:
        self.host, self.port = host, port
        self.connect_timeout = connect_timeout
        self._proto: _MbapProtocol | None = None
        self._lock = asyncio.Lock()
        self._tid = 0

    async def _ensure(self) -> _MbapProtocol:
        p = self._proto
        if p is not None and p.lost is None and p.transport is not None:
            return p
        loop = asyncio.get_running_loop()
        try:
            transport, proto = await with_timeout(
                loop.create_connection(_MbapProtocol, self.host, self.port), self.connect_timeout
            )
        except TimeoutError as exc:
            raise ModbusTimeout(f"connect to {self.host}:{self.port} timed out") from exc
        except OSError as exc:
            raise ModbusError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._proto = proto
        return proto

    async def close(self) -> None:
        p, self._proto = self._proto, None
        if p is not None and p.transport is not None:
            p.transport.close()

    async def exchange(self, unit: int, pdu: bytes, timeout_s: float) -> bytes:
        async with self._lock:
            proto = await self._ensure()
            assert proto.transport is not None
            loop = asyncio.get_running_loop()
            self._tid = (self._tid + 1) & 0xFFFF
            proto.tid = self._tid
            waiter: asyncio.Future[tuple[int, bytes]] = loop.create_future()
            proto.waiter = waiter
            proto.transport.write(struct.pack(">HHHB", self._tid, 0, len(pdu) + 1, unit) + pdu)
            handle = loop.call_later(timeout_s, _expire, waiter)
            try:
                r_unit, body = await waiter
            except TimeoutError as exc:
                await self.close()  # a late answer must not be taken for the next one
                raise ModbusTimeout(
                    f"no answer from {self.host}:{self.port} unit {unit} in {timeout_s:g} s"
                ) from exc
            except ModbusError:
                await self.close()
                raise
            finally:
                handle.cancel()
                proto.waiter = None
            if r_unit != unit:
                await self.close()
                raise FrameError(f"answer from unit {r_unit}, expected {unit}")
            return body


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class RtuTcpConnection(_StreamConnection):
    """Modbus RTU frames (with CRC) over a TCP socket."""

    async def _roundtrip(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, unit: int, pdu: bytes
    ) -> bytes:
        writer.write(rtu_frame(unit, pdu))
        head = await reader.readexactly(3)
        rest = await reader.readexactly(rtu_response_length(head) - 3)
        return rtu_unframe(unit, head + rest)


class SerialConnection:
    """Modbus RTU on a serial port (RS-485 adapter, or a pty in tests)."""

    def __init__(
        self, port: str, baudrate: int, parity: str = "N", stopbits: int = 1, bytesize: int = 8
    ) -> None:
        self.port, self.baudrate, self.parity = port, baudrate, parity
        self.stopbits, self.bytesize = stopbits, bytesize
        self._serial: object | None = None
        self._fd: int | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._need = 3
        self._lock = asyncio.Lock()
        self.last_rx: float | None = None  # perf_counter() when the last answer was complete

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        try:
            import serial

            ser = serial.Serial(
                self.port,
                baudrate=self.baudrate,
                parity=self.parity,
                stopbits=self.stopbits,
                bytesize=self.bytesize,
                timeout=0,
                exclusive=True,
            )
        except (OSError, ValueError) as exc:
            raise ModbusError(f"cannot open serial port {self.port}: {exc}") from exc
        except Exception as exc:  # serial.SerialException derives from OSError on Linux
            raise ModbusError(f"cannot open serial port {self.port}: {exc}") from exc
        # USB adapters (FTDI and the like) hold received bytes up to 16 ms by default; ask for
        # low-latency mode (not available on every port or on a pty: then nothing changes)
        with contextlib.suppress(Exception):
            ser.set_low_latency_mode(True)
        self._serial = ser
        fd = int(ser.fileno())
        os.set_blocking(fd, False)
        asyncio.get_running_loop().add_reader(fd, self._readable)
        self._fd = fd
        return fd

    def _readable(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._buf += data
            w = self._waiter
            if w is not None and not w.done() and len(self._buf) >= self._wanted():
                self.last_rx = time.perf_counter()
                w.set_result(None)

    def _wanted(self) -> int:
        """Bytes to wait for: the expected answer length, or 5 once the second byte shows an
        exception answer."""
        buf = self._buf
        if len(buf) >= 2 and buf[1] & 0x80:
            return 5
        return self._need

    def _frame_length(self) -> int:
        """Bytes needed for the whole answer, as far as the buffer tells so far."""
        if len(self._buf) < 3:
            return max(3, self._wanted())
        return rtu_response_length(bytes(self._buf[:3]))

    async def _read_frame(self, deadline: float, expected: int) -> bytes:
        """One answer frame of ``expected`` bytes (from the request): the task wakes up once,
        when all of it is in, not per chunk and not after an inter-frame timeout."""
        loop = asyncio.get_running_loop()
        self._need = expected
        while (need := self._frame_length()) > len(self._buf) or len(self._buf) < 3:
            if loop.time() >= deadline:
                raise TimeoutError
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiter, self._need = waiter, need
            handle = loop.call_at(deadline, _expire, waiter)
            try:
                await waiter
            finally:
                handle.cancel()
                self._waiter = None
        out = bytes(self._buf[:need])
        del self._buf[:need]
        return out

    async def exchange(self, unit: int, pdu: bytes, timeout_s: float) -> bytes:
        async with self._lock:
            fd = self._open()
            self._buf.clear()  # drop noise and late answers from before this request
            self.last_rx = None
            frame = rtu_frame(unit, pdu)
            try:
                os.write(fd, frame)
            except OSError as exc:
                await self.close()
                raise ModbusError(f"cannot write to {self.port}: {exc}") from exc
            loop = asyncio.get_running_loop()
            try:
                answer = await self._read_frame(loop.time() + timeout_s, rtu_expected_length(pdu))
            except TimeoutError as exc:
                raise ModbusTimeout(
                    f"no answer from unit {unit} on {self.port} in {timeout_s:g} s"
                ) from exc
            except FrameError:
                self._buf.clear()
                raise
            return rtu_unframe(unit, answer)

    async def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
        ser, self._serial, self._fd = self._serial, None, None
        if ser is not None:
            with contextlib.suppress(Exception):
                ser.close()  # type: ignore[attr-defined]


@dataclass
class BusStats:
    requests: int = 0
    busy_s: float = 0.0


class BusArbiter:
    """Serialises every request on one line and keeps ``gap`` seconds of silence between
    frames (plus an optional ``pause``), whichever device they are for."""

    def __init__(self, conn: Connection, gap: float = 0.0, pause: float = 0.0) -> None:
        self.conn = conn
        self.gap = gap
        self.pause = pause
        self._lock = asyncio.Lock()
        self._last_end = 0.0
        self._timer = PreciseTimer()
        self.stats = BusStats()

    async def exchange(self, unit: int, pdu: bytes, timeout_s: float) -> bytes:
        async with self._lock:
            wait = self._last_end + self.gap + self.pause - time.perf_counter()
            if wait > 0:
                await self._timer.sleep(wait)
            start = time.perf_counter()
            try:
                return await self.conn.exchange(unit, pdu, timeout_s)
            finally:
                now = time.perf_counter()
                # the silence runs from the moment the answer was in, not from when this task
                # got round to it (a serial connection notes that moment)
                rx = self.conn.last_rx if isinstance(self.conn, SerialConnection) else None
                self._last_end = rx if rx is not None and start <= rx <= now else now
                self.stats.requests += 1
                self.stats.busy_s += now - start

    async def close(self) -> None:
        self._timer.close()
        await self.conn.close()


class ModbusClient:
    """Requests for one unit id through a connection or a bus arbiter."""

    def __init__(self, conn: Connection | BusArbiter, unit: int, timeout: float) -> None:
        self.conn, self.unit, self.timeout = conn, unit, timeout

    async def read(self, table: str, address: int, count: int) -> list[int] | list[bool]:
        req = pdu_read(table, address, count)
        values = parse_response(req, await self.conn.exchange(self.unit, req, self.timeout))
        assert values is not None
        return values

    async def write(self, table: str, address: int, values: Sequence[int] | Sequence[bool]) -> None:
        if table == "coil":
            req = pdu_write_coils(address, [bool(v) for v in values])
        elif table == "holding":
            req = pdu_write_registers(address, [int(v) for v in values])
        else:
            raise ModbusError(f"the {table} table cannot be written")
        parse_response(req, await self.conn.exchange(self.unit, req, self.timeout))
