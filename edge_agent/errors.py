"""The exception hierarchy of the edge agent."""

from __future__ import annotations

from suvnet.errors import FileFormatError, SuvnetError


class EdgeError(SuvnetError):
    """Base of every error the edge agent raises on purpose."""


class ProfileError(FileFormatError, EdgeError):
    """A device profile or gateway config file is invalid; carries file, line and field."""


class ModbusError(EdgeError):
    """A Modbus request failed (no answer, broken connection, bad frame)."""


class ModbusTimeout(ModbusError):  # noqa: N818 - reads better than ModbusTimeoutError
    """The device did not answer in time."""


class ModbusExceptionResponse(ModbusError):  # noqa: N818 - the Modbus term
    """The device answered with a Modbus exception code (e.g. 2 = illegal data address)."""

    def __init__(self, function: int, code: int) -> None:
        names = {
            1: "illegal function",
            2: "illegal data address",
            3: "illegal data value",
            4: "device failure",
            6: "device busy",
        }
        super().__init__(
            f"device refused function {function}: exception {code} ({names.get(code, 'unknown')})"
        )
        self.function = function
        self.code = code

    @property
    def rejects_request(self) -> bool:
        """True when the device refused this particular request (address or length)."""
        return self.code in (2, 3)


class FrameError(ModbusError):
    """A response frame was malformed (bad CRC, wrong length, wrong unit or function)."""


class OutboxError(EdgeError):
    """The on-disk outbox could not be opened or written."""


class CommandRefused(EdgeError):  # noqa: N818 - a refusal, not a fault
    """A command was refused; ``reason`` is sent back to the office."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
