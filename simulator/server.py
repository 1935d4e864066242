"""pymodbus servers for simulated devices: Modbus TCP, or RTU on a serial port / pty."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from edge_agent.profiles import BIT_TABLES
from simulator.devices import SimulatedDevice

log = logging.getLogger(__name__)
_UNUSED = 60000  # a placeholder register for tables a profile does not use


def _simdata(dev: SimulatedDevice) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    blocks: dict[str, list[Any]] = {t: [] for t in ("coil", "discrete", "holding", "input")}
    for p in sorted(dev.profile.points, key=lambda q: q.address):
        if p.table in BIT_TABLES:
            blocks[p.table].append(
                SimData(address=p.address, values=[False] * p.count, datatype=DataType.BITS)
            )
        else:
            blocks[p.table].append(
                SimData(address=p.address, values=[0] * p.count, datatype=DataType.REGISTERS)
            )
    for table, lst in blocks.items():
        if not lst:
            dt = DataType.BITS if table in BIT_TABLES else DataType.REGISTERS
            lst.append(
                SimData(
                    address=_UNUSED,
                    values=[False] * 16 if dt == DataType.BITS else [0],
                    datatype=dt,
                )
            )
    return blocks["coil"], blocks["discrete"], blocks["holding"], blocks["input"]


def sim_device(dev: SimulatedDevice) -> SimDevice:
    """The pymodbus ``SimDevice`` for ``dev`` (registers outside the profile are invalid)."""

    async def action(  # noqa: PLR0917 - the signature pymodbus calls
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        code = await dev.action(
            function_code, start_address, address, count, current_registers, set_values
        )
        return None if code is None else ExcCodes(code)

    return SimDevice(id=dev.unit, simdata=_simdata(dev), action=action)


def _drive(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` right now, in this loop iteration; only if it really waits for something
    (a silenced device) is it resumed later, from the awaited future's done callback."""
    try:
        awaited = coro.send(None)
    except StopIteration:
        return
    except BaseException:
        log.exception("simulated device failed to answer")
        return
    if isinstance(awaited, asyncio.Future):
        awaited._asyncio_future_blocking = False
        awaited.add_done_callback(lambda _f: _drive(coro))
    else:  # a bare yield: try again on the next loop iteration
        asyncio.get_running_loop().call_soon(_drive, coro)


class _PromptHandler(ServerRequestHandler):
    """pymodbus' request handler without its extra hops: it normally answers from a new task
    started through ``run_coroutine_threadsafe`` (a wake-up of its own loop through the
    self-pipe) and writes the answer on the next "writable" event. A real device answers as
    soon as it has decoded the request; so does this one (the request's end is still detected
    by the emulated line's 3.5-character silence)."""

    def handle_later(self) -> None:
        _drive(self.handle_request())  # type: ignore[no-untyped-call]

    def server_send(self, pdu: Any, addr: Any) -> None:
        super().server_send(pdu, addr)  # type: ignore[no-untyped-call]
        transport = self.transport
        write_now = getattr(transport, "intern_write_ready", None)
        if write_now is not None and getattr(transport, "intern_write_buffer", None):
            write_now()  # the serial transport: write at once instead of on the next event


class _PromptSerialServer(ModbusSerialServer):
    def callback_new_connection(self) -> ServerRequestHandler:
        return _PromptHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)  # type: ignore[no-untyped-call]


class _PromptTcpServer(ModbusTcpServer):
    def callback_new_connection(self) -> ServerRequestHandler:
        return _PromptHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)  # type: ignore[no-untyped-call]


class SimServer:
    """Serves one or more simulated devices and moves their values every ``step_s`` seconds.

    ``await start()`` listens (TCP on ``host:port``, RTU frames over TCP with ``rtu_over_tcp``,
    or RTU on ``serial_port``), ``await
    stop()`` closes; also an async context manager.
    """

    def __init__(
        self,
        devices: Sequence[SimulatedDevice],
        *,
        host: str = "127.0.0.1",
        port: int = 5020,
        serial_port: str | None = None,
        baudrate: int = 19200,
        parity: str = "N",
        stopbits: int = 1,
        step_s: float = 1.0,
        rtu_over_tcp: bool = False,
    ) -> None:
        if not devices:
            raise ValueError("a server needs at least one device")
        self.devices = list(devices)
        self.host, self.port = host, port
        self.serial_port = serial_port
        self.baudrate, self.parity, self.stopbits = baudrate, parity, stopbits
        self.step_s = step_s
        self.rtu_over_tcp = rtu_over_tcp
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._stepper: asyncio.Task[None] | None = None

    def device(self, unit: int) -> SimulatedDevice:
        for d in self.devices:
            if d.unit == unit:
                return d
        raise KeyError(f"no device with unit id {unit}")

    async def start(self) -> None:
        ctx = [sim_device(d) for d in self.devices]
        if self.serial_port is None:
            framer = FramerType.RTU if self.rtu_over_tcp else FramerType.SOCKET
            self._server = _PromptTcpServer(ctx, framer=framer, address=(self.host, self.port))
        else:
            self._server = _PromptSerialServer(
                ctx,
                framer=FramerType.RTU,
                port=self.serial_port,
                baudrate=self.baudrate,
                parity=self.parity,
                stopbits=self.stopbits,
            )
        await self._server.serve_forever(background=True)
        if self.step_s > 0:
            self._stepper = asyncio.create_task(self._step_loop(), name="simulator-step")

    async def _step_loop(self) -> None:
        while True:
            await asyncio.sleep(self.step_s)
            for d in self.devices:
                d.step(self.step_s)

    async def stop(self) -> None:
        if self._stepper is not None:
            self._stepper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stepper
            self._stepper = None
        for d in self.devices:
            d.silent = False  # release answers held back
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
