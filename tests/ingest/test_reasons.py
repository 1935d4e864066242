"""The reasons ingest stores come from its one table, :mod:`ingest.reasons`.

The real checks (live telemetry on the fast and the full path, state messages, the CSV
import) are fed one bad input for each way a message or a reading is refused, their dead
letters are stored on PostgreSQL, and every stored reason must be a member of
:class:`~ingest.reasons.DeadLetterReason`: a reason written outside the table (a new code of
the wire decoder, say) fails here, and so does a member that no input produces. The reasons
ingest writes without the decoder are typed with the table's classes (``DeadLetter.reason``,
``StateChange.reason``), so mypy refuses a bare string there. The online/offline reasons are
written by the real code on PostgreSQL in tests/dashboards/test_languages.py.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, get_args

import psycopg
import pytest

from ingest.csvio import import_csv
from ingest.reasons import DeadLetterReason, StaleReason, StateReason, decoder_reason
from ingest.store import write_dead_letters
from ingest.validate import DeadLetter, check_state, check_telemetry
from suvnet.errors import DecodeReason
from suvnet.protocol import MAX_PAYLOAD_BYTES, Topics
from tests.ingest.conftest import NOW, SMALL_REGISTRY, WIN

T = Topics("rtest")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "ingest.md"

STORED_DEAD_LETTER_REASONS = {
    *("too_large", "bad_json", "bad_shape", "bad_version", "bad_field", "bad_topic"),
    *("unexpected_topic", "gateway_mismatch", "unknown_gateway", "gateway_not_allowed"),
    *("bad_reading_shape", "bad_device_id", "bad_point_id", "bad_timestamp", "bad_quality"),
    *("missing_value", "bad_value_type", "non_finite_value", "unknown_device"),
    *("device_not_on_gateway", "unknown_point", "ts_too_old", "ts_in_future", "bad_encoding"),
    "db_rejected",
}
"""The dead-letter reasons as existing databases and dashboards hold them."""


def test_the_stored_values_stay_as_they_are() -> None:
    """The tables are a name for each stored value, not new values: a renamed member would
    leave the rows already stored without words on the dashboards."""
    assert {r.value for r in DeadLetterReason} == STORED_DEAD_LETTER_REASONS
    assert len(DeadLetterReason) == len(STORED_DEAD_LETTER_REASONS)
    assert all(r.description and r.description != r.value for r in DeadLetterReason)
    assert {r.value for r in StateReason} == {
        "birth",
        "health",
        "last will / offline message",
        "data received",
    }
    assert [t.value for t in StaleReason] == [
        "no good data for %s s (%s x poll period)",
        "no messages for %s s (%s x poll period)",
    ]


def test_every_reason_the_wire_decoder_can_give_is_in_the_table() -> None:
    # the decoder (suvnet/protocol.py) may only give the codes of DecodeReason (mypy refuses
    # any other), and each of those must be a dead-letter reason ingest knows
    codes = set(get_args(DecodeReason))
    assert codes and codes <= {m.value for m in DeadLetterReason}, codes - set(DeadLetterReason)


def test_the_docs_list_every_dead_letter_reason() -> None:
    """docs/ingest.md's table of dead letters names each reason of the table, and no other."""
    text = DOCS.read_text(encoding="utf-8")
    table = text[text.index("| reason | what was wrong |") :].split("\n\n", 1)[0]
    documented = set(
        re.findall(r"`([a-z_]+)`", "\n".join(r.split("|")[1] for r in table.splitlines()))
    )
    assert documented == {r.value for r in DeadLetterReason}


# ------------------------------------------------------------------ bad inputs, real checks


def _telemetry(gw: str = "g1", rows: list[Any] | None = None, **fields: Any) -> bytes:
    doc = {"v": 1, "gw": gw, "boot": "b1", "seq": 1, "sent": NOW, "r": rows or []} | fields
    return json.dumps(doc).encode()


_READINGS: list[tuple[Any, str]] = [
    ([1, 2], "bad_reading_shape"),
    (["", "p", NOW, 1.0], "bad_device_id"),
    (["d1", "", NOW, 1.0], "bad_point_id"),
    (["d1", "p", "noon", 1.0], "bad_timestamp"),
    (["d1", "p", NOW, 1.0, 9], "bad_quality"),
    (["d1", "p", NOW, None, 0], "missing_value"),
    (["d1", "p", NOW, "high"], "bad_value_type"),
    (["d1", "p", NOW, float("nan")], "non_finite_value"),  # json writes NaN
    (["dx", "p", NOW, 1.0], "unknown_device"),
    (["d2", "p", NOW, 1.0], "device_not_on_gateway"),
    (["d1", "zz", NOW, 1.0], "unknown_point"),
    (["d1", "p", NOW - 3_601_000, 1.0], "ts_too_old"),
    (["d1", "p", NOW + 61_000, 1.0], "ts_in_future"),
]
"""A reading refused on its own (in a message of gateway g1 with a good reading too), and the
reason it is refused for."""

TELEMETRY: list[tuple[str, str, bytes, list[str]]] = [
    ("too large", T.telemetry("g1"), _telemetry() + b" " * MAX_PAYLOAD_BYTES, ["too_large"]),
    ("not JSON", T.telemetry("g1"), b'{"v": 1, "gw": ', ["bad_json"]),
    ("not an object", T.telemetry("g1"), b"[1, 2]", ["bad_shape"]),
    ("version 2", T.telemetry("g1"), _telemetry(v=2), ["bad_version"]),
    ("no readings", T.telemetry("g1"), b'{"v": 1, "gw": "g1"}', ["bad_field"]),
    ("bad topic", "elsewhere/g1/telemetry", _telemetry(), ["bad_topic"]),
    ("state topic", T.state("g1"), _telemetry(), ["unexpected_topic"]),
    ("another gateway", T.telemetry("g1"), _telemetry("goff"), ["gateway_mismatch"]),
    ("unknown gateway", T.telemetry("gx"), _telemetry("gx"), ["unknown_gateway"]),
    ("not allowed", T.telemetry("goff"), _telemetry("goff"), ["gateway_not_allowed"]),
    (
        "bad readings",
        T.telemetry("g1"),
        _telemetry(rows=[["d1", "p", NOW, 1.0], *(row for row, _ in _READINGS)]),
        [why for _, why in _READINGS],
    ),
]
"""(case, topic, payload, the reasons of its dead letters) for live telemetry."""

STATE: list[tuple[str, str, bytes, list[str]]] = [
    ("not JSON", T.state("g1"), b"{", ["bad_json"]),
    ("no state", T.state("g1"), b'{"v": 1, "gw": "g1", "ts": 1}', ["bad_field"]),
    ("telemetry topic", T.telemetry("g1"), b'{"v": 1}', ["unexpected_topic"]),
    ("bad topic", "elsewhere", b'{"v": 1}', ["bad_topic"]),
    (
        "unknown gateway",
        T.state("gx"),
        b'{"v":1,"gw":"gx","state":"online","ts":1}',
        ["unknown_gateway"],
    ),
    (
        "another gateway",
        T.state("g1"),
        b'{"v":1,"gw":"gx","state":"online","ts":1}',
        ["gateway_mismatch"],
    ),
]
"""(case, topic, payload, the reasons of its dead letters) for gateway state messages."""

CSV_LINES: list[tuple[bytes, str]] = [
    (b"2024-01-15T13:00:00Z,dev1,p1,1,0 \x98", "bad_encoding"),
    (b"2024-01-15T13:00:00Z,dev1", "bad_reading_shape"),
    (b"yesterday,dev1,p1,1,0", "bad_timestamp"),
    (b"2024-01-15T13:00:00Z,,p1,1,0", "bad_device_id"),
    (b"2024-01-15T13:00:00Z,dev1,,1,0", "bad_point_id"),
    (b"2024-01-15T13:00:00Z,dev1,p1,abc,0", "bad_value_type"),
    (b"2024-01-15T13:00:00Z,dev1,p1,inf,0", "non_finite_value"),
    (b"2024-01-15T13:00:00Z,dev1,p1,1,awful", "bad_quality"),
    (b"2024-01-15T13:00:00Z,dev1,p1,1,7", "bad_quality"),
    (b"2024-01-15T13:00:00Z,dev1,p1,,0", "missing_value"),
    (b"2024-01-15T13:00:00Z,ghost,p1,1,0", "unknown_device"),
    (b"2024-01-15T13:00:00Z,dev1,zz,1,0", "unknown_point"),
    (b"2024-01-14T12:00:00Z,dev1,p1,1,0", "ts_too_old"),
    (b"2024-01-15T15:00:00Z,dev1,p1,1,0", "ts_in_future"),
]
"""A refused line of a readings CSV file and its reason (the clock at 2024-01-15 14:00 UTC,
readings accepted from 1 hour before to 5 minutes after)."""
CSV_NOW = 1_705_327_200_000  # 2024-01-15T14:00:00Z


def _stored(conn: psycopg.Connection[Any], dead: list[DeadLetter]) -> list[str]:
    """The reasons of ``dead`` as PostgreSQL stores them (written, read back, rolled back)."""
    with conn.transaction(force_rollback=True):
        conn.execute("DELETE FROM dead_letters")
        write_dead_letters(conn, dead)
        rows = conn.execute("SELECT reason FROM dead_letters ORDER BY id").fetchall()
    stored = [str(r) for (r,) in rows]
    assert set(stored) <= {r.value for r in DeadLetterReason}, stored
    return stored


def outside_the_table(reasons: list[str]) -> list[str]:
    """The reasons that are not members of the table (in the order given)."""
    return [r for r in reasons if not isinstance(r, DeadLetterReason)]


def _of_the_table(reasons: list[Any]) -> list[str]:
    assert outside_the_table(reasons) == [], "a dead-letter reason outside ingest.reasons"
    return [str(r) for r in reasons]


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "full path"])
def test_every_refused_message_stores_a_reason_of_the_table(
    db: psycopg.Connection[Any], fast: bool
) -> None:
    produced: set[str] = set()
    for case, topic, payload, expected in TELEMETRY:
        out = check_telemetry(topic, payload, T, SMALL_REGISTRY, NOW, WIN, fast=fast)
        assert _of_the_table([d.reason for d in out.dead]) == expected, case
        assert _stored(db, out.dead) == expected, case
        produced |= set(expected)
    for case, topic, payload, expected in STATE:
        out = check_state(topic, payload, T, SMALL_REGISTRY)
        assert _of_the_table([d.reason for d in out.dead]) == expected, case
        assert _stored(db, out.dead) == expected, case
        produced |= set(expected)
    # the live checks name every reason of the table but the CSV import's and the writer's
    assert {r.value for r in DeadLetterReason} - produced == {"bad_encoding", "db_rejected"}


def test_every_refused_csv_line_stores_a_reason_of_the_table(
    db: psycopg.Connection[Any],
    db_url: str,
    registry_ids: dict[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CSV import refuses each line for its reason and stores it as a dead letter. With
    the live checks above and the writer's ``db_rejected`` (tests/ingest/test_writer.py, on
    PostgreSQL), every reason of the table is produced by some input."""
    db.execute("TRUNCATE dead_letters")
    monkeypatch.setattr("ingest.csvio.SNIFF_BYTES", 40)  # a bad byte after the start: its line
    path = tmp_path / "bad.csv"
    lines = [b"ts,device,point,value,quality", b"2024-01-15T13:30:00Z,dev1,p1,1,0"]
    path.write_bytes(b"\n".join([*lines, *(line for line, _ in CSV_LINES)]) + b"\n")
    s = import_csv(db_url, path, max_age_s=3600, now_ms=CSV_NOW)
    expected = [why for _, why in CSV_LINES]
    assert (s.inserted, s.rejected) == (1, len(CSV_LINES))
    assert _of_the_table([why for _, why, _ in s.examples]) == expected[:10]
    assert outside_the_table(list(s.by_reason)) == []
    rows = db.execute("SELECT reason FROM dead_letters WHERE topic = 'import:bad.csv' ORDER BY id")
    assert [r for (r,) in rows.fetchall()] == expected
    live = {why for *_, reasons in TELEMETRY + STATE for why in reasons}
    assert {r.value for r in DeadLetterReason} - live - set(expected) == {"db_rejected"}


def test_a_reason_the_table_lacks_is_kept_logged_and_caught(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A code of the wire decoder that the table lacks: the dead letter keeps it (nothing is
    lost in production), the log says so, and the checks above fail on it."""
    assert decoder_reason("bad_json") is DeadLetterReason.BAD_JSON
    with caplog.at_level(logging.ERROR, logger="ingest"):
        got = decoder_reason("bad_checksum")
    assert got == "bad_checksum"
    assert not isinstance(got, DeadLetterReason)
    assert "'bad_checksum' is not in ingest.reasons.DeadLetterReason" in caplog.text
    assert outside_the_table([DeadLetterReason.BAD_JSON, got]) == ["bad_checksum"]
    with pytest.raises(AssertionError, match=r"outside ingest\.reasons"):
        _of_the_table([got])
