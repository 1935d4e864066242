"""Account import from CSV and XLSX: one transaction, rejected rows reported, re-import safe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import openpyxl  # type: ignore[import-untyped]
import psycopg
import pytest

from billing.errors import BillingError, ImportRejectedError
from billing.importer import import_accounts
from billing.ledger import balance
from tests.billing.conftest import NOW

HEADER = (
    "legacy_id;kind;name;inn;mfo;bank_account;phone;region;district;mahalla;street;house;"
    "apartment;residents;metered;meter_serial;meter_digits;initial_reading;installed_on;"
    "opening_balance"
)
GOOD = [
    (
        "L-1;jismoniy;Aliyev Vali;;;;998901112233;Samarqand viloyati;Urgut tumani;Obod MFY;"
        "Navoiy ko'chasi;1;;5;ha;IMP-1;5;120,5;2024-03-01;15000,50"
    ),
    (
        "L-2;yuridik;Urgut Savdo MChJ;305000111;00999;20208000000000000001;;Samarqand viloyati;"
        "Urgut tumani;Obod MFY;Navoiy ko'chasi;2;;0;ha;IMP-2;6;0;2024-03-01;-2500"
    ),
    (
        "L-3;household;Karimova Zuhra;;;;;Samarqand viloyati;Urgut tumani;Obod MFY;Bobur ko'chasi;"
        "5;12;3;yo'q;;;;;"
    ),
]
BAD = [
    (
        "L-4;yuridik;No INN MChJ;;;;;Samarqand viloyati;Urgut tumani;Obod MFY;"
        "Navoiy ko'chasi;3;;0;;;;;;"
    ),
    (
        "L-5;household;Bad Phone;;;;12ab;Samarqand viloyati;Urgut tumani;Obod MFY;Navoiy ko'chasi;"
        "4;;2;;;;;;"
    ),
    (
        "L-6;household;Meter Twice;;;;;Samarqand viloyati;Urgut tumani;Obod MFY;Navoiy ko'chasi;6;"
        ";2;ha;IMP-1;5;0;2024-03-01;"
    ),
    (
        "L-1;household;Duplicate Legacy;;;;;Samarqand viloyati;Urgut tumani;Obod MFY;"
        "Navoiy ko'chasi;7;;2;;;;;;"
    ),
    (
        "L-7;household;Bad Balance;;;;;Samarqand viloyati;Urgut tumani;Obod MFY;Navoiy ko'chasi;8;;"
        "2;;;;;;12,345"
    ),
    "L-8;alien;Bad Kind;;;;;Samarqand viloyati;Urgut tumani;Obod MFY;Navoiy ko'chasi;9;;2;;;;;;",
    "L-9;household;;;;;;Samarqand viloyati;Urgut tumani;Obod MFY;Navoiy ko'chasi;10;;2;;;;;;",
]


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def count(conn: psycopg.Connection[Any], sql: str) -> int:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_strict_rejects_whole_file(db_url: str, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "legacy.csv", GOOD + BAD)
    with psycopg.connect(db_url) as conn:
        with pytest.raises(ImportRejectedError) as ei:
            import_accounts(conn, f, now=NOW, strict=True)
        conn.rollback()
        assert len(ei.value.report) == len(BAD)
        assert count(conn, "SELECT count(*) FROM accounts") == 0
        assert count(conn, "SELECT count(*) FROM meters") == 0
        assert count(conn, "SELECT count(*) FROM regions") == 0


def test_import_good_rows_reject_bad_with_reasons(db_url: str, tmp_path: Path) -> None:
    f = write_csv(tmp_path / "legacy.csv", GOOD + BAD)
    with psycopg.connect(db_url) as conn:
        seen: list[tuple[int, int]] = []
        rep = import_accounts(conn, f, now=NOW, progress=lambda d, t: seen.append((d, t)))
        assert rep.committed and rep.rows == 10 and rep.imported == 3
        reasons = dict(rep.rejected)
        assert "needs an INN" in reasons[5]
        assert "phone" in reasons[6]
        assert "still installed" in reasons[7]
        assert "repeats line 2" in reasons[8]
        assert "2 decimals" in reasons[9]
        assert "alien" in reasons[10]
        assert "missing name" in reasons[11]
        assert seen[-1] == (10, 10)
        # the rejected meter row left nothing behind (no account 'Meter Twice')
        assert count(conn, "SELECT count(*) FROM accounts WHERE name = 'Meter Twice'") == 0
        assert count(conn, "SELECT count(*) FROM accounts") == 3
        acc = conn.execute(
            "SELECT id, kind, metered, residents FROM accounts WHERE legacy_ref = 'L-1'"
        ).fetchone()
        assert acc is not None and acc[1:] == ("household", True, 5)
        assert balance(conn, acc[0]) == 1_500_050
        legal = conn.execute(
            "SELECT id, inn, bank_account FROM accounts WHERE legacy_ref = 'L-2'"
        ).fetchone()
        assert legal is not None and legal[1:] == ("305000111", "20208000000000000001")
        assert balance(conn, legal[0]) == -250_000
        apt = conn.execute(
            "SELECT apartment_number, metered FROM account_addresses aa JOIN accounts a "
            "ON a.id = aa.account_id WHERE legacy_ref = 'L-3'"
        ).fetchone()
        assert apt == ("12", False)
        rep.write_csv(tmp_path / "rejected.csv")
        assert (tmp_path / "rejected.csv").read_text().count("\n") == len(BAD) + 1
        # importing the same file again adds nothing
        again = import_accounts(conn, f, now=NOW)
        assert again.imported == 0 and again.skipped == 3
        assert count(conn, "SELECT count(*) FROM accounts") == 3


def test_xlsx_import(db_url: str, tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADER.split(";"))
    ws.append(
        [
            "X-1",
            "household",
            "Xlsx Abonent",
            None,
            None,
            None,
            998977776655,
            "Navoiy viloyati",
            "Karmana tumani",
            "Bog'bon MFY",
            "Istiqlol ko'chasi",
            14,
            None,
            2,
            "ha",
            "XL-1",
            5,
            10.25,
            None,
            99.99,
        ]
    )
    ws.append(
        [
            "X-2",
            "budget",
            "Maktab 12",
            201234567,
            None,
            None,
            None,
            "Navoiy viloyati",
            "Karmana tumani",
            "Bog'bon MFY",
            "Istiqlol ko'chasi",
            16,
            None,
            0,
            "ha",
            "XL-2",
            5,
            0,
            None,
            None,
        ]
    )
    path = tmp_path / "legacy.xlsx"
    wb.save(path)
    with psycopg.connect(db_url) as conn:
        rep = import_accounts(conn, path, now=NOW)
        assert rep.rejected == [] and rep.imported == 2
        row = conn.execute(
            "SELECT a.phone, a.kind, b.balance_tiyin FROM accounts a JOIN account_balances b "
            "ON b.account_id = a.id WHERE legacy_ref = 'X-1'"
        ).fetchone()
        assert row == ("998977776655", "household", 9_999)
        meter = conn.execute(
            "SELECT sc.initial_reading FROM service_connections sc JOIN meters m "
            "ON m.id = sc.meter_id WHERE m.serial_no = 'XL-1'"
        ).fetchone()
        assert meter == (10.25,)


def test_dry_run_and_bad_files(db_url: str, tmp_path: Path) -> None:
    f = write_csv(
        tmp_path / "dry.csv", [r.replace("L-", "D-").replace("IMP-", "DRY-") for r in GOOD]
    )
    with psycopg.connect(db_url) as conn:
        before = count(conn, "SELECT count(*) FROM accounts")
        rep = import_accounts(conn, f, now=NOW, dry_run=True)
        assert rep.imported == 3 and not rep.committed
        assert count(conn, "SELECT count(*) FROM accounts") == before
        with pytest.raises(BillingError, match="unsupported file type"):
            import_accounts(conn, tmp_path / "x.pdf", now=NOW)
        bad = tmp_path / "broken.xlsx"
        bad.write_bytes(b"not a zip")
        with pytest.raises(BillingError, match="not a readable XLSX"):
            import_accounts(conn, bad, now=NOW)


def test_route_sheet_readings_and_status_history(db_url: str, tmp_path: Path) -> None:
    from billing.accounts import Address, create_account, install_meter, set_status

    with psycopg.connect(db_url) as conn:
        acc, number = create_account(
            conn,
            kind="household",
            name="Route Sheet",
            now=NOW,
            address=Address("Jizzax viloyati", "Zomin tumani", "Tog' MFY", "Archa ko'chasi", "2"),
        )
        install_meter(conn, acc, "RS-1", installed_at=NOW)
        conn.commit()
        sheet = tmp_path / "route.csv"
        sheet.write_text(
            "meter_serial,account,date,value\n"
            'RS-1,,2026-12-25,"12,5"\n'
            f",{number},2026-12-26,13.0\n"
            "NOPE-9,,2026-12-25,1\n"
            "RS-1,,2026-12-27,-4\n"
            "RS-1,,someday,4\n",
            encoding="utf-8",
        )
        from billing.importer import import_readings

        rep = import_readings(conn, sheet, entered_by="inspector Olim")
        assert rep.imported == 2
        reasons = dict(rep.rejected)
        assert "unknown meter" in reasons[4]
        assert ">= 0" in reasons[5]
        assert "someday" in reasons[6]
        got = conn.execute(
            "SELECT value_m3, source, entered_by FROM meter_readings mr JOIN meters m "
            "ON m.id = mr.meter_id WHERE m.serial_no = 'RS-1' ORDER BY ts"
        ).fetchall()
        assert got == [(12.5, "inspector", "inspector Olim"), (13.0, "inspector", "inspector Olim")]
        set_status(conn, acc, "suspended", now=NOW, reason="leak at the house")
        set_status(conn, acc, "active", now=NOW, reason="repaired")
        conn.commit()
        hist = conn.execute(
            "SELECT status, reason FROM account_status_history WHERE account_id = %s ORDER BY id",
            (acc,),
        ).fetchall()
        assert hist == [("active", ""), ("suspended", "leak at the house"), ("active", "repaired")]


# ------------------------------------------------------------------ encodings (real command)
CYRILLIC = [
    "legacy_id;kind;name;region;district;mahalla;street;house",
    "E-1;jismoniy;Каримов Анвар;Самарканд вилояти;Ургут тумани;Обод МФЙ;Навоий кўчаси;1",
]


def _suvnet(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SUVNET_DATABASE_URL=db_url, COLUMNS="200")
    suvnet = str(Path(sys.executable).parent / "suvnet")
    return subprocess.run(
        [suvnet, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_import_accounts_names_the_encoding_of_a_windows_file(db_url: str, tmp_path: Path) -> None:
    f = tmp_path / "excel.csv"
    f.write_bytes("\r\n".join(CYRILLIC).encode("cp1251") + b"\r\n")
    r = _suvnet(db_url, "billing", "import-accounts", str(f))
    err = " ".join(r.stderr.split())
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "the file is not UTF-8 (byte 0x" in err and "on line 2" in err
    assert "it looks like Windows-1251" in err and "pass --encoding cp1251" in err
    with psycopg.connect(db_url) as conn:
        assert count(conn, "SELECT count(*) FROM accounts WHERE legacy_ref = 'E-1'") == 0
    ok = _suvnet(db_url, "billing", "import-accounts", str(f), "--encoding", "cp1251")
    assert ok.returncode == 0, ok.stderr
    assert "imported: 1" in ok.stdout
    # Excel's "Unicode text" (UTF-16 with a byte order mark, tab-separated) needs no option
    u16 = tmp_path / "unicode.txt"
    rows = [CYRILLIC[0], CYRILLIC[1].replace("E-1", "E-2").replace(";1", ";2")]
    u16.write_bytes("\r\n".join(r.replace(";", "\t") for r in rows).encode("utf-16"))
    ok = _suvnet(db_url, "billing", "import-accounts", str(u16))
    assert ok.returncode == 0, ok.stderr
    with psycopg.connect(db_url) as conn:
        names = conn.execute(
            "SELECT a.legacy_ref, a.name, aa.street_uz FROM accounts a JOIN account_addresses aa "
            "ON aa.account_id = a.id WHERE legacy_ref IN ('E-1', 'E-2') ORDER BY 1"
        ).fetchall()
    assert names == [
        ("E-1", "Каримов Анвар", "Навоий кўчаси"),
        ("E-2", "Каримов Анвар", "Навоий кўчаси"),
    ]
    # a NUL byte in a line (PostgreSQL refuses it): that row is rejected with the reason
    nul = tmp_path / "nul.csv"
    nul.write_bytes(("\n".join(CYRILLIC) + "\n").replace("E-1", "E-\x009").encode())
    with psycopg.connect(db_url) as conn:
        rep = import_accounts(conn, nul, now=NOW, dry_run=True)
    assert rep.rejected == [(2, "PostgreSQL text fields cannot contain NUL (0x00) bytes")]
