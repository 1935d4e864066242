"""The exception hierarchy of the suvnet core.

Every package has its own hierarchy rooted in :class:`SuvnetError`; errors from libraries are
translated at the boundary with ``raise ... from``.
"""

from __future__ import annotations

from typing import Literal


class SuvnetError(Exception):
    """Base of every error that suvnet raises on purpose."""


class ConfigError(SuvnetError):
    """The configuration (environment, config file) is invalid."""


class DatabaseError(SuvnetError):
    """The database could not be reached or refused an operation."""


class MigrationError(DatabaseError):
    """A migration failed; the transaction was rolled back."""


DecodeReason = Literal[
    "too_large", "bad_json", "bad_shape", "bad_version", "bad_field", "bad_topic",
    "bad_reading_shape", "bad_device_id", "bad_point_id", "bad_timestamp", "bad_quality",
    "missing_value", "bad_value_type", "non_finite_value",
]  # fmt: skip
"""Every reason the wire decoder (:mod:`suvnet.protocol`) gives, for a whole message
(:class:`ProtocolError`) or one reading. Ingest stores them as dead-letter reasons: each must
be a member of ``ingest.reasons.DeadLetterReason`` (tests/ingest/test_reasons.py checks)."""


class ProtocolError(SuvnetError):
    """A wire message could not be decoded. ``reason`` is a short machine-readable code."""

    def __init__(self, reason: DecodeReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class FileFormatError(SuvnetError):
    """An input file is invalid. The message names the file, line and field."""

    def __init__(self, path: str, line: int | None, field: str | None, message: str) -> None:
        where = path if line is None else f"{path}:{line}"
        what = f" field '{field}'" if field else ""
        super().__init__(f"{where}:{what} {message}".replace(": ", ": ", 1))
        self.path = path
        self.line = line
        self.field = field
        self.message = message
