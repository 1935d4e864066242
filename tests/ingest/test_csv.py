"""`suvnet readings import/export`: same checks and dedupe as live telemetry."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ingest.csvio import export_csv, import_csv, parse_line
from ingest.errors import ImportFileError
from tests.ingest.conftest import count

GOOD = [
    "2024-01-15T10:00:00Z,dev1,p1,1.25,0",
    "2024-01-15T10:05:00+05:00,dev1,p1,1.5,good",
    "2024-01-15 11:00:00,dev1,p2,3,",
    "1705316400000,dev2,p1,-0.5,stale",
    "2024-01-15T12:00:00Z,dev2,p1,,comm-fail",
]
BAD = [
    ("2024-01-15T13:00:00Z,ghost,p1,1,0", "unknown_device"),
    ("2024-01-15T13:00:00Z,dev1,zz,1,0", "unknown_point"),
    ("2024-01-15T13:00:00Z,dev1,p1,NaN,0", "non_finite_value"),
    ("2024-01-15T13:00:00Z,dev1,p1,abc,0", "bad_value_type"),
    ("yesterday,dev1,p1,1,0", "bad_timestamp"),
    ("2024-01-15T13:00:00Z,dev1,p1,1,7", "bad_quality"),
    ("2999-01-01T00:00:00Z,dev1,p1,1,0", "ts_in_future"),
    ("2024-01-15T13:00:00Z,dev1,p1,,0", "missing_value"),
]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("ts,device,point,value,quality\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def _reason(ts: str, device: str, value: str) -> str:
    got = parse_line(3, {"ts": ts, "device": device, "point": "p", "value": value})
    assert isinstance(got, tuple)
    return got[0]


def test_parse_line_table() -> None:
    rec = parse_line(
        2, {"ts": "2024-01-15T10:00:00.250Z", "device": "d", "point": "p", "value": "1,5"}
    )
    assert not isinstance(rec, tuple)
    assert (rec.ts_ms, rec.value, rec.quality) == (1705312800250, 1.5, 0)
    assert _reason("x", "d", "1") == "bad_timestamp"
    assert _reason("1", "", "1") == "bad_device_id"
    assert _reason("1", "d", "inf") == "non_finite_value"
    assert _reason("1", "d", "1e999") == "non_finite_value"


def test_import_twice_and_export_round_trip(
    db: psycopg.Connection[Any], db_url: str, registry_ids: dict[str, int], tmp_path: Path
) -> None:
    db.execute("TRUNCATE readings, dead_letters")
    src = _write(tmp_path / "old_scada.csv", GOOD + [b for b, _ in BAD])
    rejects = tmp_path / "rejects.csv"
    s1 = import_csv(db_url, src, rejects_path=rejects)
    assert (s1.lines, s1.inserted, s1.duplicates, s1.rejected) == (13, 5, 0, 8)
    assert dict(s1.by_reason) == {reason: 1 for _, reason in BAD}
    with rejects.open() as fh:
        rej = list(csv.DictReader(fh))
    assert [r["reason"] for r in rej] == [reason for _, reason in BAD]
    assert rej[0]["line"] == "7"
    assert count(db, "SELECT count(*) FROM dead_letters WHERE topic = 'import:old_scada.csv'") == 8
    # the same file again: nothing new, every good line is a known duplicate
    s2 = import_csv(db_url, src)
    assert (s2.inserted, s2.duplicates, s2.rejected) == (0, 5, 8)
    assert count(db, "SELECT count(*) FROM readings") == 5
    # the +05:00 line is stored at 05:05 UTC, the line without offset is UTC
    ts = db.execute(
        "SELECT to_char(ts AT TIME ZONE 'UTC', 'HH24:MI') FROM readings WHERE value = 1.5"
    ).fetchone()
    assert ts == ("05:05",)
    # export, then import the export into an emptied table: the same rows come back
    out = tmp_path / "export.csv"
    n = export_csv(db_url, out)
    assert n == 5
    all_rows = "SELECT ts, point_id, value, quality FROM readings ORDER BY 1, 2"
    before = db.execute(all_rows).fetchall()
    db.execute("TRUNCATE readings")
    s3 = import_csv(db_url, out)
    assert (s3.inserted, s3.rejected) == (5, 0)
    after = db.execute(all_rows).fetchall()
    assert after == before


def test_import_refuses_a_file_without_the_columns(db_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,meter,reading\n1,2,3\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="lacks column"):
        import_csv(db_url, bad)
    with pytest.raises(ImportFileError, match="no such file"):
        import_csv(db_url, tmp_path / "missing.csv")


def test_cli_import_shows_summary_and_dry_run_writes_nothing(
    db: psycopg.Connection[Any], db_url: str, registry_ids: dict[str, int], tmp_path: Path
) -> None:
    db.execute("TRUNCATE readings")
    src = _write(tmp_path / "h.csv", [*GOOD, BAD[0][0]])
    env = dict(os.environ, SUVNET_DATABASE_URL=db_url, COLUMNS="200")
    suvnet = str(Path(sys.executable).parent / "suvnet")
    dry = subprocess.run(
        [suvnet, "readings", "import", str(src), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "5 reading(s) would be imported" in dry.stdout
    assert count(db, "SELECT count(*) FROM readings") == 0
    run = subprocess.run(
        [suvnet, "readings", "import", str(src)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "imported 5 new reading(s), 0 already present, 1 refused" in run.stdout
    assert "unknown_device" in run.stdout
    assert count(db, "SELECT count(*) FROM readings") == 5
    exp = subprocess.run(
        [suvnet, "readings", "export", "-o", "-", "--device", "dev2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = exp.stdout.strip().splitlines()
    assert lines[0] == "ts,device,point,value,quality"
    assert lines[1:] == [
        "2024-01-15T11:00:00.000Z,dev2,p1,-0.5,1",
        "2024-01-15T12:00:00.000Z,dev2,p1,,2",
    ]


# ------------------------------------------------------------------ encodings and spreadsheets
def _suvnet(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SUVNET_DATABASE_URL=db_url, COLUMNS="200")
    suvnet = str(Path(sys.executable).parent / "suvnet")
    return subprocess.run(
        [suvnet, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_windows_1251_file_is_refused_naming_the_encoding(
    db: psycopg.Connection[Any], db_url: str, registry_ids: dict[str, int], tmp_path: Path
) -> None:
    db.execute("TRUNCATE readings, dead_letters")
    src = tmp_path / "cp1251.csv"
    lines = [*GOOD, "2024-01-15T13:00:00Z,насос-1,p1,1,0"]
    src.write_bytes(("ts,device,point,value,quality\n" + "\n".join(lines) + "\n").encode("cp1251"))
    with pytest.raises(ImportFileError) as err:
        import_csv(db_url, src)
    assert "not UTF-8 (byte 0x" in str(err.value) and "on line 7" in str(err.value)
    assert "Windows-1251" in str(err.value) and "--encoding cp1251" in str(err.value)
    assert count(db, "SELECT count(*) FROM readings") == 0  # refused before anything
    # the command line says it in one line, without a traceback, and --encoding reads it
    r = _suvnet(db_url, "readings", "import", str(src))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "--encoding cp1251" in " ".join(r.stderr.split())
    ok = _suvnet(db_url, "readings", "import", str(src), "--encoding", "cp1251")
    assert ok.returncode == 0, ok.stderr
    assert "imported 5 new reading(s), 0 already present, 1 refused" in ok.stdout
    assert count(db, "SELECT count(*) FROM readings") == 5
    bad = _suvnet(db_url, "readings", "import", str(src), "--encoding", "klingon")
    assert bad.returncode == 1 and "unknown encoding 'klingon'" in bad.stderr


def test_utf16_from_excel_is_read_and_a_later_bad_byte_refuses_only_its_line(
    db: psycopg.Connection[Any],
    db_url: str,
    registry_ids: dict[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db.execute("TRUNCATE readings, dead_letters")
    u16 = tmp_path / "unicode.txt"  # Excel's "Unicode text": UTF-16 with a BOM, tabs
    text = "ts\tdevice\tpoint\tvalue\tquality\n" + "\n".join(g.replace(",", "\t") for g in GOOD)
    u16.write_bytes(text.encode("utf-16"))
    s = import_csv(db_url, u16)
    assert (s.inserted, s.rejected) == (5, 0)
    # only the start of a file is checked up front; a bad byte further on refuses its line
    monkeypatch.setattr("ingest.csvio.SNIFF_BYTES", 40)
    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes(
        b"ts,device,point,value,quality\n"
        b"2024-01-16T10:00:00Z,dev1,p1,1,0\n"
        b"2024-01-16T10:05:00Z,dev1,p1,2,0 \x98bad\n"
        b"2024-01-16T10:10:00Z,dev1,p1,3,0\n"
    )
    rejects = tmp_path / "rejects.csv"
    s = import_csv(db_url, mixed, rejects_path=rejects)
    assert (s.inserted, s.rejected, dict(s.by_reason)) == (2, 1, {"bad_encoding": 1})
    dead = db.execute("SELECT payload, detail FROM dead_letters WHERE topic = 'import:mixed.csv'")
    raw, detail = dead.fetchone() or (b"", "")
    assert bytes(raw) == b"2024-01-16T10:05:00Z,dev1,p1,2,0 \x98bad"  # the bytes as they were
    assert "0x98" in detail
    with rejects.open(encoding="utf-8") as fh:
        rej = list(csv.DictReader(fh))
    assert rej[0]["raw"] == "2024-01-16T10:05:00Z,dev1,p1,2,0 \\x98bad"


def test_rejects_csv_is_neutralised_and_export_text_round_trips(
    db: psycopg.Connection[Any], db_url: str, registry_ids: dict[str, int], tmp_path: Path
) -> None:
    from suvnet.textsafe import csv_text, sql_csv_text

    db.execute("TRUNCATE readings, dead_letters")
    src = _write(
        tmp_path / "evil.csv",
        ['=HYPERLINK("http://x","click"),dev1,p1,1,0', "2024-01-15T13:00:00Z,@dev,p1,1,0"],
    )
    rejects = tmp_path / "rejects.csv"
    s = import_csv(db_url, src, rejects_path=rejects)
    assert s.rejected == 2
    with rejects.open(encoding="utf-8", newline="") as fh:
        rej = list(csv.DictReader(fh))
    assert rej[0]["raw"].startswith("'=HYPERLINK(")
    assert rej[0]["detail"].startswith("timestamp '=HYPERLINK")  # harmless start: unchanged
    # the export's SQL neutralisation is the same rule as csv_text, on real PostgreSQL
    samples = ["=x", "abc", "-1500.00", "+998712345678", " =x", "\t1", "-", "＝1", "a=b", "", "1e5"]
    for v in samples:
        row = db.execute(f"SELECT {sql_csv_text('v')} FROM (SELECT %s::text AS v) t", (v,))
        assert row.fetchone() == (csv_text(v),), v
    # device codes and point names cannot start like a formula (so the export changes
    # nothing today), and the import undoes the quote if one ever does
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            "INSERT INTO points (device_id, name) VALUES (%s, '-p')", (registry_ids["dev1"],)
        )
    rec = parse_line(2, {"ts": "1", "device": "'=dev", "point": "'-p", "value": "1"})
    assert not isinstance(rec, tuple) and (rec.device, rec.point) == ("=dev", "-p")
