"""Every reason ingest stores, named in one place.

Two families:

* :class:`DeadLetterReason`: why a message or a reading became a dead letter
  (``dead_letters.reason``, the ``reason`` label of ``suvnet_ingest_dead_letters_total``). The
  wire decoder (:mod:`suvnet.protocol`) names some of them (``ProtocolError.reason`` and the
  reason of a rejected reading, typed ``suvnet.errors.DecodeReason``, each of which the tests
  require in this table); :func:`decoder_reason` takes its code into this table.
* :class:`StateReason` and :class:`StaleReason`: why a gateway or device went online or offline
  (``gateway_state_history.reason``, ``device_state_history.reason``). A :class:`StaleReason` is
  a PostgreSQL ``format()`` template: ``mark_stale`` (ingest/store.py) passes it to its SQL as a
  parameter and fills each ``%s`` with a number (the seconds, then the factor).

The values are stored in the database and matched by the dashboards
(dashboards/boards/devices.py gives each one words in every language): never change one. A new
reason is a new member here; ``DeadLetter.reason`` and ``StateChange.reason`` are typed with
these classes, so mypy refuses a reason written as a bare string.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import NewType

log = logging.getLogger("ingest")


class DeadLetterReason(StrEnum):
    """The reason of a dead letter, with one line of English on what was wrong
    (docs/ingest.md, "Checks and dead letters", has the same table)."""

    _value_: str
    description: str

    def __new__(cls, code: str, description: str) -> DeadLetterReason:
        member = str.__new__(cls, code)
        member._value_ = code
        member.description = description
        return member

    # a message refused as a whole (the decoder, ingest/validate.py)
    TOO_LARGE = "too_large", "payload over 1 MiB (stored truncated to 1 MiB)"
    BAD_JSON = "bad_json", "not UTF-8 JSON"
    BAD_SHAPE = "bad_shape", "JSON but not an object"
    BAD_VERSION = "bad_version", "the protocol version `v` is not 1"
    BAD_FIELD = "bad_field", "a field of the message is missing or of the wrong type"
    BAD_TOPIC = "bad_topic", "not a topic of the protocol"
    UNEXPECTED_TOPIC = "unexpected_topic", "a topic of another kind on this path"
    GATEWAY_MISMATCH = "gateway_mismatch", "the payload's gateway differs from the topic's"
    UNKNOWN_GATEWAY = "unknown_gateway", "gateway not in the registry"
    GATEWAY_NOT_ALLOWED = "gateway_not_allowed", "gateway registered with allowed = false"
    # one reading (the decoder, ingest/validate.py, the CSV import in ingest/csvio.py)
    BAD_READING_SHAPE = "bad_reading_shape", "a reading is not [device, point, ts, value(, q)]"
    BAD_DEVICE_ID = "bad_device_id", "the device id is not 1-64 of A-Z a-z 0-9 _ . -"
    BAD_POINT_ID = "bad_point_id", "the point id is not 1-64 of A-Z a-z 0-9 _ . -"
    BAD_TIMESTAMP = "bad_timestamp", "the timestamp is not an integer (CSV: not a time)"
    BAD_QUALITY = "bad_quality", "quality not 0-3"
    MISSING_VALUE = "missing_value", "no value with quality good"
    BAD_VALUE_TYPE = "bad_value_type", "the value is not a number"
    NON_FINITE_VALUE = "non_finite_value", "NaN or infinity"
    UNKNOWN_DEVICE = "unknown_device", "device not in the registry"
    DEVICE_NOT_ON_GATEWAY = "device_not_on_gateway", "device registered under another gateway"
    UNKNOWN_POINT = "unknown_point", "the device has no such point"
    TS_TOO_OLD = "ts_too_old", "timestamp older than the accepted window"
    TS_IN_FUTURE = "ts_in_future", "timestamp further ahead than the accepted window"
    BAD_ENCODING = "bad_encoding", "a byte not in the file's encoding (CSV import)"
    # the database refused the message (ingest/writer.py)
    DB_REJECTED = "db_rejected", "the database refused the message"


UnlistedReason = NewType("UnlistedReason", str)
"""A reason code of the wire decoder that :class:`DeadLetterReason` does not list (a decoder
newer than this table). Only :func:`decoder_reason` makes one: the dead letter keeps the code
the decoder gave, and the log says that this table lacks it. tests/ingest/test_reasons.py
drives the decoder through every refusal and fails on one."""

_BY_CODE: dict[str, DeadLetterReason] = {m.value: m for m in DeadLetterReason}
_unlisted_seen: set[str] = set()


def decoder_reason(code: str) -> DeadLetterReason | UnlistedReason:
    """The member of a reason code of :mod:`suvnet.protocol`'s decoder (``ProtocolError.reason``,
    ``RejectedReading.reason``). A code not in the table is kept as it is (a dead letter is
    never lost over its name) and logged once."""
    member = _BY_CODE.get(code)
    if member is not None:
        return member
    if code not in _unlisted_seen:
        _unlisted_seen.add(code)
        log.error("the decoder's reason %r is not in ingest.reasons.DeadLetterReason", code)
    return UnlistedReason(code)


class StateReason(StrEnum):
    """The reason of an online/offline change, written as it is."""

    BIRTH = "birth"
    """A gateway's ``online`` state message while it was not online (ingest/state.py)."""
    HEALTH = "health"
    """A gateway's ``online`` state message while it was online: no change, so not written
    today."""
    LAST_WILL = "last will / offline message"
    """A gateway's ``offline`` state message: its last will or its own (ingest/state.py)."""
    DATA_RECEIVED = "data received"
    """Fresh data brought a device or gateway online (ingest/store.py, ``flush_seen``)."""


class StaleReason(StrEnum):
    """The reason of going offline for lack of fresh data (ingest/store.py, ``mark_stale``):
    a PostgreSQL ``format()`` template, each ``%s`` a number as PostgreSQL writes it into
    text: the seconds (``OFFLINE_FACTOR`` x the poll period, rounded), then the factor."""

    NO_GOOD_DATA = "no good data for %s s (%s x poll period)"
    """A device."""
    NO_MESSAGES = "no messages for %s s (%s x poll period)"
    """A gateway."""
