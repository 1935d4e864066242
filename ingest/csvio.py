"""Readings history import and export as CSV (docs/readings-csv.md).

Import goes through the same checks as live telemetry (:func:`ingest.validate.check_record`)
and the same write path (staging COPY, ``ON CONFLICT DO NOTHING``), so importing a file twice
adds nothing the second time. Refused lines are counted by reason, recorded as dead letters
(topic ``import:<file name>``) and optionally written to a rejects CSV.

Encoding: UTF-8, or what a byte order mark says (UTF-16 from Excel's "Unicode text"), or
``encoding``. The start of the file is checked before anything is imported: a file in
another encoding is refused with a message naming the likely one (suvnet.textfile). A line
further on that is not in the encoding is refused alone (``bad_encoding``); its dead letter
keeps the original bytes.

Spreadsheets: the export's text cells (device and point) go through the same formula
neutralisation as every CSV suvnet writes (suvnet.textsafe; the registry's names can never
start with ``= + - @``, so today nothing changes), and the import undoes it, so an export
imports back exactly. The rejects CSV quotes the file's lines and is neutralised too.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import IO, Any

import psycopg
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ingest.errors import ImportFileError
from ingest.reasons import DeadLetterReason
from ingest.store import ensure_partitions, load_registry, prepare, write_dead_letters, write_rows
from ingest.validate import CsvRecord, DeadLetter, Row, Window, check_record
from suvnet.protocol import Quality
from suvnet.textfile import (
    FileEncodingError,
    bom_encoding,
    first_bad_utf8,
    looks_utf16,
    normalise_encoding,
    not_utf8_message,
)
from suvnet.textsafe import csv_row, csv_uncell, sql_csv_text

REQUIRED = ("ts", "device", "point", "value")
CHUNK_ROWS = 20_000
SNIFF_BYTES = 65_536
_QUALITY_NAMES = {q.label: int(q) for q in Quality} | {q.name.lower(): int(q) for q in Quality}


@dataclass
class ImportSummary:
    path: str
    lines: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    by_reason: Counter[DeadLetterReason] = field(default_factory=Counter)
    examples: list[tuple[int, DeadLetterReason, str]] = field(default_factory=list)
    """(line, reason, detail) of the first refused lines."""
    dry_run: bool = False
    seconds: float = 0.0


def parse_ts(text: str, default_tz: tzinfo = UTC) -> int:
    """ISO 8601 (offset optional, default UTC) or integer epoch milliseconds -> epoch ms."""
    s = text.strip()
    if not s:
        raise ValueError("empty timestamp")
    if s.lstrip("-").isdigit():
        return int(s)
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=default_tz)
    return round(dt.timestamp() * 1000)


def parse_line(
    line_no: int, rec: dict[str, str | None], default_tz: tzinfo = UTC
) -> CsvRecord | tuple[DeadLetterReason, str]:
    """One CSV record -> :class:`CsvRecord`, or ``(reason, detail)`` when it cannot be read."""
    try:
        ts = parse_ts(rec.get("ts") or "", default_tz)
    except (ValueError, OverflowError):
        return (
            DeadLetterReason.BAD_TIMESTAMP,
            f"timestamp {rec.get('ts')!r} is not ISO 8601 or epoch ms",
        )
    device = csv_uncell((rec.get("device") or "").strip())
    point = csv_uncell((rec.get("point") or "").strip())
    if not device:
        return DeadLetterReason.BAD_DEVICE_ID, "device is empty"
    if not point:
        return DeadLetterReason.BAD_POINT_ID, "point is empty"
    raw_v = (rec.get("value") or "").strip()
    value: float | None
    if raw_v == "":
        value = None
    else:
        try:
            value = float(raw_v.replace(",", ".")) if raw_v.count(",") == 1 else float(raw_v)
        except ValueError:
            return DeadLetterReason.BAD_VALUE_TYPE, f"value {raw_v!r} is not a number"
        if not math.isfinite(value):
            return DeadLetterReason.NON_FINITE_VALUE, f"value {raw_v!r} is not finite"
    raw_q = (rec.get("quality") or "").strip().lower()
    if raw_q == "":
        quality = 0
    elif raw_q in _QUALITY_NAMES:
        quality = _QUALITY_NAMES[raw_q]
    else:
        try:
            quality = int(raw_q)
        except ValueError:
            return (
                DeadLetterReason.BAD_QUALITY,
                f"quality {raw_q!r} is not 0-3 or good/stale/comm-fail/...",
            )
    return CsvRecord(line_no, ts, device, point, value, quality)


class _CountingReader(io.RawIOBase):
    """Counts bytes read, for the progress bar."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.count += n
        return n


def _records(
    fh: IO[str], path: Path, default_tz: tzinfo
) -> Iterator[tuple[int, CsvRecord | tuple[DeadLetterReason, str], str]]:
    first = fh.readline()
    if not first.strip():
        raise ImportFileError(f"{path}: the file is empty (expected a header line)")
    # the header names the columns: its most frequent separator is the file's
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(itertools.chain([first], fh), delimiter=delimiter)
    header = next(reader)
    cols = [h.strip().lower().lstrip("\ufeff") for h in header]
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise ImportFileError(
            f"{path}:1: header line lacks column(s) {', '.join(missing)}; expected "
            "ts, device, point, value and optionally quality"
        )
    for row in reader:
        line_no = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        raw = delimiter.join(row)
        if not raw.isascii() and _undecoded(raw):
            bad = next(ch for ch in raw if 0xDC80 <= ord(ch) <= 0xDCFF)
            detail = f"byte 0x{ord(bad) - 0xDC00:02X} is not in the file's encoding"
            yield line_no, (DeadLetterReason.BAD_ENCODING, detail), raw
            continue
        if len(row) < len(REQUIRED):
            yield line_no, (DeadLetterReason.BAD_READING_SHAPE, f"{len(row)} column(s)"), raw
            continue
        rec: dict[str, str | None] = dict(zip(cols, row, strict=False))
        yield line_no, parse_line(line_no, rec, default_tz), raw


def _undecoded(text: str) -> bool:
    """True when ``text`` holds bytes the decoder could not read (``surrogateescape``)."""
    return any(0xDC80 <= ord(ch) <= 0xDCFF for ch in text)


def _original(text: str) -> bytes:
    """The bytes a line was read from (undecodable bytes come back as they were)."""
    return text.encode("utf-8", "surrogateescape")


def _shown(text: str) -> str:
    """A line for the rejects CSV: undecodable bytes as ``\\x98``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def choose_encoding(head: bytes, path: Path, encoding: str | None, *, complete: bool) -> str:
    """The encoding to read a file with, from its first bytes (see the module doc)."""
    bom = bom_encoding(head[:4])
    if bom is not None:
        return bom
    try:
        if encoding is not None:
            return normalise_encoding(encoding)
    except FileEncodingError as exc:
        raise ImportFileError(str(exc)) from exc
    if looks_utf16(head):
        raise ImportFileError(not_utf8_message(head, None, str(path)))
    bad = first_bad_utf8(head, complete=complete)
    if bad is not None:
        raise ImportFileError(not_utf8_message(head, bad, str(path)))
    return "utf-8"


def import_csv(
    database_url: str,
    path: Path,
    *,
    max_age_s: float | None = None,
    max_future_s: float = 300.0,
    dry_run: bool = False,
    rejects_path: Path | None = None,
    default_tz: tzinfo = UTC,
    now_ms: int | None = None,
    console: Console | None = None,
    encoding: str | None = None,
) -> ImportSummary:
    """Import a readings CSV file; return what happened (see :class:`ImportSummary`).
    ``encoding``: the file's, when it is not UTF-8 and has no byte order mark."""
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file")
    t0 = time.monotonic()
    now = int(time.time() * 1000) if now_ms is None else now_ms
    window = Window(max_age_s, max_future_s)
    summary = ImportSummary(str(path), dry_run=dry_run)
    topic = f"import:{path.name}"
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    enc = choose_encoding(head, path, encoding, complete=len(head) >= size)
    rej_fh = rejects_path.open("w", newline="", encoding="utf-8") if rejects_path else None
    rej_csv = csv.writer(rej_fh) if rej_fh else None
    if rej_csv:
        rej_csv.writerow(["line", "reason", "detail", "raw"])
    try:
        with psycopg.connect(
            database_url, autocommit=True, application_name="suvnet-import"
        ) as conn:
            prepare(conn)
            registry = load_registry(conn, 60.0)
            with (
                path.open("rb") as raw_fh,
                Progress(
                    TextColumn("[bold]importing[/bold] {task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    TimeRemainingColumn(),
                    console=console,
                    disable=console is None,
                ) as progress,
            ):
                counter = _CountingReader(raw_fh)
                text = io.TextIOWrapper(
                    io.BufferedReader(counter),
                    encoding=enc,
                    errors="surrogateescape" if enc.startswith("utf-8") else "strict",
                    newline="",
                )
                task = progress.add_task(path.name, total=size)
                rows: list[Row] = []
                dead: list[DeadLetter] = []
                for line_no, parsed, raw in _records(text, path, default_tz):
                    summary.lines += 1
                    if isinstance(parsed, CsvRecord):
                        row, reason = check_record(parsed, registry, now, window)
                        detail = f"device {parsed.device!r} point {parsed.point!r}"
                    else:
                        row, (reason, detail) = None, parsed
                    if row is not None:
                        rows.append(row)
                    else:
                        assert reason is not None
                        summary.rejected += 1
                        summary.by_reason[reason] += 1
                        if len(summary.examples) < 10:
                            summary.examples.append((line_no, reason, detail))
                        where = f"line {line_no}: {detail}"
                        dead.append(DeadLetter(topic, _original(raw), reason, where, None))
                        if rej_csv:
                            rej_csv.writerow(csv_row([line_no, reason, detail, _shown(raw)]))
                    if len(rows) + len(dead) >= CHUNK_ROWS:
                        _flush(conn, rows, dead, summary)
                        rows, dead = [], []
                        progress.update(task, completed=counter.count)
                _flush(conn, rows, dead, summary)
                progress.update(task, completed=size)
    except psycopg.OperationalError as exc:
        raise ImportFileError(
            f"database failed during the import of {path} after {summary.lines} line(s); "
            f"it is safe to run the import again: {str(exc).strip()}"
        ) from exc
    except UnicodeDecodeError as exc:  # a UTF-16 file with a broken character
        raise ImportFileError(
            f"{path}: the file is not {enc} after line {summary.lines}: {exc.reason}; the lines "
            "before were imported, and importing the fixed file again adds only the rest"
        ) from exc
    finally:
        if rej_fh:
            rej_fh.close()
    summary.seconds = time.monotonic() - t0
    return summary


def _flush(
    conn: psycopg.Connection[Any],
    rows: list[Row],
    dead: list[DeadLetter],
    summary: ImportSummary,
) -> None:
    if summary.dry_run:
        summary.inserted += len(rows)
        return
    if not rows and not dead:
        return
    if rows:
        lo = min(r[0] for r in rows)
        hi = max(r[0] for r in rows)
        ensure_partitions(conn, lo, hi)
    with conn.transaction():
        n = write_rows(conn, rows)
        write_dead_letters(conn, dead)
    summary.inserted += n
    summary.duplicates += len(rows) - n


def print_summary(s: ImportSummary, console: Console) -> None:
    head = f"{s.path}: {s.lines:,} line(s) read in {s.seconds:.1f} s; "
    if s.dry_run:
        text = (
            f"{head}dry run, nothing written: {s.inserted:,} reading(s) would be imported "
            f"(less any already present), {s.rejected:,} refused"
        )
    else:
        text = (
            f"{head}imported {s.inserted:,} new reading(s), {s.duplicates:,} already present, "
            f"{s.rejected:,} refused"
        )
    console.print(text, soft_wrap=True)
    if s.rejected:
        t = Table("reason", "lines", title="refused lines by reason")
        for reason, n in s.by_reason.most_common():
            t.add_row(reason, f"{n:,}")
        console.print(t)
        t = Table("line", "reason", "detail", title="first refused lines")
        for line, reason, detail in s.examples:
            t.add_row(str(line), reason, detail)
        console.print(t)
        if not s.dry_run:
            topic = f"import:{Path(s.path).name}"
            console.print(f"refused lines are kept in the dead_letters table (topic {topic})")


def export_csv(
    database_url: str,
    out: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    devices: list[str] | None = None,
    points: list[str] | None = None,
    console: Console | None = None,
) -> int:
    """Write readings as CSV (ts in UTC ISO 8601 with milliseconds); return the row count."""
    conds = []
    params: list[Any] = []
    if since is not None:
        conds.append("r.ts >= %s")
        params.append(since)
    if until is not None:
        conds.append("r.ts < %s")
        params.append(until)
    if devices:
        conds.append("d.code = ANY(%s)")
        params.append(devices)
    if points:
        conds.append("p.name = ANY(%s)")
        params.append(points)
    where = ("WHERE " + " AND ".join(conds)) if conds else ""
    sql = (
        "COPY (SELECT to_char(r.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS ts, "  # noqa: S608 - the WHERE is built of this function's constants; values are parameters
        f"{sql_csv_text('d.code')} AS device, {sql_csv_text('p.name')} AS point, "
        "r.value, r.quality FROM readings r "
        "JOIN points p ON p.id = r.point_id JOIN devices d ON d.id = p.device_id "
        f"{where} ORDER BY d.code, p.name, r.ts) TO STDOUT WITH (FORMAT csv, HEADER true)"
    )
    lines = 0
    fh: IO[bytes] = sys.stdout.buffer if str(out) == "-" else out.open("wb")
    try:
        with (
            psycopg.connect(database_url, autocommit=True) as conn,
            conn.cursor() as cur,
            Progress(
                TextColumn("[bold]exporting[/bold]"),
                DownloadColumn(),
                console=console,
                disable=console is None,
            ) as progress,
        ):
            task = progress.add_task("export", total=None)
            with cur.copy(sql, params) as cp:
                for chunk in cp:
                    data = bytes(chunk)
                    lines += data.count(b"\n")
                    fh.write(data)
                    progress.advance(task, len(data))
    finally:
        if fh is not sys.stdout.buffer:
            fh.close()
    return max(0, lines - 1)
