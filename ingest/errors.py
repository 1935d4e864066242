"""The exception hierarchy of the ingest package."""

from __future__ import annotations

from suvnet.errors import SuvnetError


class IngestError(SuvnetError):
    """Base of every error the ingest package raises on purpose."""


class WriteError(IngestError):
    """A group of messages could not be committed (the database failed); it will be retried."""


class BrokerError(IngestError):
    """The MQTT broker URL is invalid or the broker refused the connection."""


class ImportFileError(IngestError):
    """A readings CSV file cannot be read at all (missing file, missing header columns)."""
