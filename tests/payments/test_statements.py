"""Bank statements: the three readers on hand-written files, the match cascade with its
tricky cases, suspense and re-matching, the review queue, re-import, the CLI and the upload
endpoint on a real uvicorn."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from billing.payments.cli import app as cli_app
from billing.payments.errors import StatementError, StatementUnbalancedError
from billing.payments.importer import import_statement, rematch
from billing.payments.matching import find_numbers, name_score
from billing.payments.statements import detect_format, parse_statement
from tests.api.conftest import LiveServer, User, bearer, make_account
from tests.payments.conftest import OUR_BANK_ACCOUNT, balance, make_legal

DATA = Path(__file__).parent / "data"
HEAD = (
    b"account;1\nopening_balance;1\nclosing_balance;1\n"
    b"date;doc_no;credit;debit;payer_name;payer_inn;payer_account;payer_mfo;purpose\n"
)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


# ------------------------------------------------------------------ pure: readers
def test_csv_reader() -> None:
    s = parse_statement((DATA / "statement.csv").read_bytes(), "statement.csv")
    assert (s.format, s.bank_account, s.number) == ("csv", OUR_BANK_ACCOUNT, "112")
    assert (s.opening_tiyin, s.closing_tiyin) == (100_000_000, 248_500_000)
    assert len(s.lines) == 9
    assert s.lines[1].amount_tiyin == 8_000_000  # "80000,00" with a decimal comma
    assert s.lines[2].purpose == "000000042 - 200000.00; 000000059 - 100000.00 suv uchun"
    assert [ln.credit for ln in s.lines].count(False) == 1
    assert s.credits_tiyin == 153_500_000 and s.debits_tiyin == 5_000_000


def test_mt940_reader() -> None:
    s = parse_statement((DATA / "statement.sta").read_bytes(), "statement.sta")
    assert s.format == "mt940"
    assert s.bank_account == OUR_BANK_ACCOUNT
    assert (s.opening_tiyin, s.closing_tiyin) == (253_500_000, 266_700_000)
    first, second, third = s.lines
    assert (first.payer_name, first.purpose, first.amount_tiyin) == (
        "Karimov Anvar",
        "Suv uchun 000000018",
        4_500_000,
    )
    assert second.payer_inn == "302222222"
    assert second.purpose == "Shartnoma 15, dekabr"  # the wrapped :86: line glued back
    assert not third.credit and third.amount_tiyin == 1_200_000
    assert first.value_date == date(2026, 11, 18)


def test_1c_reader_windows_1251() -> None:
    raw = (DATA / "statement_1c.txt").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    s = parse_statement(raw, "kl_to_1c.txt")
    assert s.format == "1c"
    assert (s.opening_tiyin, s.closing_tiyin) == (266_700_000, 297_700_000)
    doc1, doc2, doc3 = s.lines
    assert doc1.payer_name == 'ООО "Богишамол Нон"'
    assert (doc1.payer_inn, doc1.payer_mfo, doc1.credit) == ("301234567", "00873", True)
    assert doc2.purpose == "За воду л/с 000000068"
    assert not doc3.credit  # we paid: ПлательщикСчет is our account


def test_unbalanced_statement_is_rejected_with_the_difference() -> None:
    with pytest.raises(StatementUnbalancedError, match=r"difference 10\.00") as exc:
        parse_statement((DATA / "unbalanced.csv").read_bytes(), "unbalanced.csv")
    assert exc.value.difference_tiyin == 1000


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello world", "cannot tell the statement format"),
        (b"account;1\nopening_balance;1\nclosing_balance;1\ndate;doc_no\n", "missing columns"),
        (
            HEAD + b"32.13.2026;1;5;;a;;;;p\n",
            "CSV row 5 date",
        ),
        (
            HEAD + b"01.11.2026;1;5.001;;a;;;;p\n",
            "more than 2 decimals",
        ),
        ("1CClientBankExchange\r\nСекцияДокумент=x\r\n".encode("cp1251"), "КонецДокумента"),
    ],
)
def test_bad_files_name_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(StatementError, match=message):
        parse_statement(data, "x.csv" if data.startswith(b"account") else "")


def test_detect_format() -> None:
    assert detect_format((DATA / "statement.sta").read_bytes()) == "mt940"
    assert detect_format((DATA / "statement_1c.txt").read_bytes()) == "1c"
    assert detect_format((DATA / "statement.csv").read_bytes()) == "csv"


# ------------------------------------------------------------------ pure: matching helpers
def test_find_numbers() -> None:
    hits = find_numbers("000000042 - 200 000,00; 000000059: 100000 suv, INN 302222222, 000-000-018")
    assert [(h.number, h.valid, h.amount_tiyin) for h in hits] == [
        ("000000042", True, 20_000_000),
        ("000000059", True, 10_000_000),
        ("000000018", True, None),
    ]
    assert [(h.number, h.valid) for h in find_numbers("l/s 000000027")] == [("000000027", False)]
    # 20-digit bank accounts and 10-digit numbers are not account numbers
    assert find_numbers("hisob 20208000100000000001 tel 9989012345") == []


def test_name_score() -> None:
    assert name_score("Rahimova Dilnoza", "Dilnoza Rahimova") == 1.0
    assert name_score("Bog'ishamol Non MChJ", "Bog‘ishamol non") > 0.9
    assert name_score("Karimov Anvar", "Toshmatov Bobur") < 0.55


# ------------------------------------------------------------------ database
@pytest.fixture(scope="module")
def accounts(db_url: str) -> dict[str, str]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        return {
            "karimov": make_account(conn, 1, name="Karimov Anvar", house="12")[1],
            "rahimova": make_account(conn, 2, name="Rahimova Dilnoza", house="14")[1],
            "toshmatov": make_account(conn, 3, name="Toshmatov Bobur", street="Amir Temur")[1],
            "bog1": make_legal(
                conn,
                4,
                name="Bog'ishamol Non MChJ",
                inn="301234567",
                bank_account="20208000100000000001",
            )[1],
            "bog2": make_legal(
                conn, 5, name="Bog'ishamol Non MChJ (sex 2)", inn="301234567", house="2"
            )[1],
            "urgut": make_legal(
                conn,
                6,
                name="Urgut Savdo MChJ",
                inn="302222222",
                bank_account="20208000100000000002",
                house="3",
            )[1],
        }


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def lines(db: psycopg.Connection[Any], identity_like: str) -> list[tuple[Any, ...]]:
    return db.execute(
        """SELECT l.line_no, l.status, l.allocated_tiyin, l.note,
                  coalesce((SELECT array_agg(a.number ORDER BY a.number) FROM bank_allocations b
                            JOIN accounts a ON a.id = b.account_id WHERE b.line_id = l.id), '{}'),
                  coalesce((SELECT array_agg(a.number ORDER BY a.number)
                            FROM bank_match_suggestions g JOIN accounts a ON a.id = g.account_id
                            WHERE g.line_id = l.id), '{}')
           FROM bank_statement_lines l JOIN bank_statements s ON s.id = l.statement_id
           WHERE s.identity LIKE %s ORDER BY l.line_no""",
        (identity_like,),
    ).fetchall()


def test_csv_import_by_cli_and_the_cascade(
    db_url: str, db: psycopg.Connection[Any], accounts: dict[str, str]
) -> None:
    before = {k: balance(db, v) for k, v in accounts.items()}
    runner = CliRunner()
    res = runner.invoke(
        cli_app, ["import-statement", str(DATA / "statement.csv"), "--database-url", db_url]
    )
    assert res.exit_code == 0, res.output
    # the one money format of the pages and documents (no "735 000.00")
    assert "matched" in res.output and "735\u202f000,00 so'm" in res.output
    got = {r[0]: r for r in lines(db, "csv:%:112:%")}
    k, r_, b1, b2, t, u = (
        accounts[x] for x in ("karimov", "rahimova", "bog1", "bog2", "toshmatov", "urgut")
    )
    # 1: the account number in the purpose
    assert got[1][1:3] == ("matched", 15_000_000) and got[1][4] == [k]
    # 2: wrong check digit -> ignored, the payer's name suggests Rahimova
    assert got[2][1] == "review" and got[2][4] == [] and got[2][5] == [r_]
    assert "wrong check digit" in got[2][3]
    # 3: a legal entity paying for several accounts, parts named in the purpose
    assert got[3][1:3] == ("matched", 30_000_000) and got[3][4] == sorted([b1, b2])
    # 4: the same legal entity without numbers: its INN has two accounts -> review
    assert got[4][1] == "review" and got[4][5] == sorted([b1, b2])
    # 5: partial: 100 000 to the account, 20 000 stays in suspense
    assert got[5][1:3] == ("partial", 10_000_000) and got[5][4] == [t]
    # 6: the INN of a legal entity (the INN in the purpose is not taken for an account)
    assert got[6][1:3] == ("matched", 25_000_000) and got[6][4] == [u]
    assert got[7][1] == "debit"
    # 8: nobody -> suspense
    assert got[8][1:3] == ("suspense", 0) and got[8][5] == []
    # 9: several numbers without amounts -> review with both
    assert got[9][1] == "review" and got[9][5] == sorted([k, r_])
    assert balance(db, k) == before["karimov"] - 15_000_000
    assert balance(db, b1) == before["bog1"] - 20_000_000
    assert balance(db, b2) == before["bog2"] - 10_000_000
    assert balance(db, t) == before["toshmatov"] - 10_000_000
    assert balance(db, u) == before["urgut"] - 25_000_000
    suspense = db.execute("SELECT sum(open_tiyin) FROM bank_suspense").fetchone()
    assert suspense == (73_500_000,)

    # importing the same file again creates nothing
    ledger_count = db.execute("SELECT count(*) FROM ledger").fetchone()
    again = runner.invoke(
        cli_app, ["import-statement", str(DATA / "statement.csv"), "--database-url", db_url]
    )
    assert again.exit_code == 0, again.output
    assert "imported before" in again.output
    assert db.execute("SELECT count(*) FROM ledger").fetchone() == ledger_count
    assert db.execute("SELECT count(*) FROM bank_statement_lines").fetchone() == (9,)

    # an unbalanced statement is refused with the difference, nothing stored
    bad = runner.invoke(
        cli_app, ["import-statement", str(DATA / "unbalanced.csv"), "--database-url", db_url]
    )
    assert bad.exit_code != 0
    assert isinstance(bad.exception, StatementUnbalancedError)
    assert "difference 10.00" in str(bad.exception)
    assert db.execute("SELECT count(*) FROM bank_statements").fetchone() == (1,)


def test_rematch_after_the_account_appears(
    db: psycopg.Connection[Any], accounts: dict[str, str]
) -> None:
    _, newco = make_legal(db, 7, name="Yangi Korxona MChJ", inn="303333333", house="7")
    with db.transaction():
        counts = rematch(db, now=NOW, by="test")
    assert counts["matched"] == 1
    got = {r[0]: r for r in lines(db, "csv:%:112:%")}
    assert got[8][1:3] == ("matched", 7_500_000) and got[8][4] == [newco]
    assert got[2][1] == "review"  # unchanged: still needs a person
    assert balance(db, newco) == -7_500_000


def test_1c_import_direct(db: psycopg.Connection[Any], accounts: dict[str, str]) -> None:
    stmt = parse_statement((DATA / "statement_1c.txt").read_bytes())
    with db.transaction():
        s = import_statement(db, stmt, now=NOW, by="test")
    assert (s.credits, s.debits, s.matched, s.suspense) == (2, 1, 1, 1)
    got = {r[0]: r for r in lines(db, "1c:%")}
    assert got[1][4] == [accounts["bog2"]]
    assert got[2][1] == "suspense" and "wrong check digit" in got[2][3]


def test_upload_review_and_allocate_over_http(
    http: httpx.Client,
    staff: dict[str, User],
    db: psycopg.Connection[Any],
    accounts: dict[str, str],
) -> None:
    clerk = bearer(staff["accountant"])
    with (DATA / "statement.sta").open("rb") as fh:
        r = http.post(
            "/api/v1/payments/statements", files={"file": ("statement.sta", fh)}, headers=clerk
        )
    assert r.status_code == 200, r.text
    s = r.json()
    assert (s["format"], s["credits"], s["matched"], s["already_imported"]) == (
        "mt940",
        2,
        2,
        False,
    )
    with (DATA / "statement.sta").open("rb") as fh:
        r2 = http.post(
            "/api/v1/payments/statements", files={"file": ("statement.sta", fh)}, headers=clerk
        )
    assert (r2.json()["already_imported"], r2.json()["lines_new"]) == (True, 0)
    with (DATA / "unbalanced.csv").open("rb") as fh:
        bad = http.post(
            "/api/v1/payments/statements", files={"file": ("unbalanced.csv", fh)}, headers=clerk
        )
    assert bad.status_code == 422
    assert bad.json()["difference_tiyin"] == 1000
    garbage = http.post(
        "/api/v1/payments/statements", files={"file": ("x.txt", b"garbage")}, headers=clerk
    )
    assert garbage.status_code == 422
    assert "format" in garbage.json()["detail"]
    # roles: a cashier may not import statements
    with (DATA / "statement.sta").open("rb") as fh:
        denied = http.post(
            "/api/v1/payments/statements",
            files={"file": ("statement.sta", fh)},
            headers=bearer(staff["cashier"]),
        )
    assert denied.status_code == 403

    q = http.get("/api/v1/payments/review", headers=clerk).json()
    by_purpose = {it["purpose"]: it for it in q["items"]}
    assert (q["suspense_tiyin"],) == db.execute(
        "SELECT sum(open_tiyin) FROM bank_suspense"
    ).fetchone()
    legal = by_purpose["Suv uchun noyabr 2026"]
    assert legal["status"] == "review"
    assert {sg["account"] for sg in legal["suggestions"]} == {accounts["bog1"], accounts["bog2"]}
    assert q["items"][0]["status"] == "review"  # review first

    before1, before2 = balance(db, accounts["bog1"]), balance(db, accounts["bog2"])
    too_much = http.post(
        f"/api/v1/payments/review/{legal['line_id']}/allocate",
        json={"parts": [{"account": accounts["bog1"], "amount": "500000.01"}]},
        headers=clerk,
    )
    assert too_much.status_code == 422
    part = http.post(
        f"/api/v1/payments/review/{legal['line_id']}/allocate",
        json={"parts": [{"account": accounts["bog1"], "amount": "300000"}]},
        headers=clerk,
    )
    assert part.json()["status"] == "partial"
    rest = http.post(
        f"/api/v1/payments/review/{legal['line_id']}/allocate",
        json={"parts": [{"account": accounts["bog2"], "amount": "200000.00"}]},
        headers=clerk,
    )
    assert rest.json()["status"] == "matched"
    assert balance(db, accounts["bog1"]) == before1 - 30_000_000
    assert balance(db, accounts["bog2"]) == before2 - 20_000_000
    q2 = http.get("/api/v1/payments/review", headers=clerk).json()
    assert all(it["line_id"] != legal["line_id"] for it in q2["items"])
    assert q2["suspense_tiyin"] == q["suspense_tiyin"] - 50_000_000
    assert (
        http.post(
            "/api/v1/payments/review/999999/allocate",
            json={"parts": [{"account": accounts["bog1"], "amount": "1"}]},
            headers=clerk,
        ).status_code
        == 404
    )


def test_extended_reexport_posts_only_new_documents(
    db: psycopg.Connection[Any], accounts: dict[str, str]
) -> None:
    k, r_, u = accounts["karimov"], accounts["rahimova"], accounts["urgut"]
    before = {x: balance(db, x) for x in (k, r_, u)}
    stmt = parse_statement((DATA / "statement_extended.sta").read_bytes())
    with db.transaction():
        s = import_statement(db, stmt, now=NOW, by="test")
    assert (s.already_imported, s.lines_new, s.duplicate, s.matched, s.debits) == (
        False,
        4,
        2,
        1,
        1,
    )
    assert balance(db, k) == before[k]
    assert balance(db, u) == before[u]
    assert balance(db, r_) == before[r_] - 1_000_000
    got = {r[0]: r for r in lines(db, "mt940:%:2026-11-19")}
    assert got[1][1] == "duplicate" and "DOC" not in got[1][3] and "line 1 of" in got[1][3]


def test_suvnet_command_entry_point(
    db_url: str, db: psycopg.Connection[Any], accounts: dict[str, str], tmp_path: Path
) -> None:
    """`suvnet payments import-statement FILE` through the installed command."""
    import os
    import subprocess
    import sys

    f = tmp_path / "day.csv"
    f.write_text(
        "account;20208000900123456001\nnumber;200\ndate_from;2026-11-21\ndate_to;2026-11-21\n"
        "opening_balance;0\nclosing_balance;12.34\n"
        "date;doc_no;credit;debit;payer_name;payer_inn;payer_account;payer_mfo;purpose\n"
        f"21.11.2026;900;12.34;;Karimov Anvar;;;;{accounts['karimov']}\n",
        encoding="cp1251",
    )
    before = balance(db, accounts["karimov"])
    exe = Path(sys.executable).parent / "suvnet"
    env = {**os.environ, "SUVNET_DATABASE_URL": db_url, "COLUMNS": "120"}
    out = subprocess.run(
        [str(exe), "payments", "import-statement", str(f)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert "matched" in out.stdout and "12,34 so'm" in out.stdout
    assert balance(db, accounts["karimov"]) == before - 1234
    bad = subprocess.run(
        [str(exe), "payments", "import-statement", str(DATA / "unbalanced.csv")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0
    assert "difference 10.00" in " ".join((bad.stdout + bad.stderr).split())


# ------------------------------------------------------------------ error messages, encodings
STA = (DATA / "statement.sta").read_text()


@pytest.mark.parametrize(
    ("broken", "where", "why"),
    [
        (
            STA.replace(":60F:", ":60F:X", 1),
            "MT940 line 4, field :60F: (opening balance)",
            "not in the expected form: 'XC261117UZS2535000,00'; expected D or C, the date",
        ),
        (
            STA.replace(":61:2611181118C45000", ":61:ZZZ2611181118C45000", 1),
            "MT940 line 5, field :61: (movement 1)",
            "not in the expected form: 'ZZZ2611181118C45000,00NTRFDOC701//B701'",
        ),
        (
            STA.replace(":61:2611181118C99000", ":61:2613181118C99000", 1),
            "MT940 line 7, field :61: (movement 2)",
            "month must be in 1..12: '2613181118C99000,00NTRFDOC702//B702'",
        ),
        (
            STA.replace(":62F:C261118", ":62F:C261418", 1),
            "MT940 line 12, field :62F: (closing balance)",
            "month must be in 1..12",
        ),
    ],
)
def test_mt940_errors_name_the_line_field_and_text(broken: str, where: str, why: str) -> None:
    with pytest.raises(StatementError) as err:
        parse_statement(broken.encode(), "x.sta")
    msg = str(err.value)
    assert msg.startswith(f"{where}: {why}"), msg
    assert " object at 0x" not in msg and "<mt940" not in msg


def test_cli_shows_the_mt940_error_in_one_clear_line(db_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.sta"
    bad.write_text(STA.replace(":60F:", ":60F:X", 1), encoding="utf-8")
    env = dict(os.environ, SUVNET_DATABASE_URL=db_url, COLUMNS="300")
    suvnet = str(Path(sys.executable).parent / "suvnet")
    r = subprocess.run(
        [suvnet, "payments", "import-statement", str(bad)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 1
    err = " ".join(r.stderr.split())
    assert "cannot read bad.sta: MT940 line 4, field :60F: (opening balance)" in err, err
    # no traceback, no Python object, no regular expressions from the library's log
    assert "Traceback" not in r.stderr and "object at 0x" not in err and "(?P<" not in err


def test_statement_encodings() -> None:
    csv_text = (DATA / "statement.csv").read_text(encoding="utf-8")
    ref = parse_statement(csv_text.encode(), "s.csv")
    # Excel's "Unicode text" (UTF-16 with a byte order mark) reads the same
    assert parse_statement(csv_text.encode("utf-16"), "s.csv") == ref
    # without the mark: a clear message instead of "cannot tell the format"
    with pytest.raises(StatementError, match="not UTF-8: it looks like UTF-16 little-endian"):
        parse_statement(csv_text.encode("utf-16-le"), "s.csv")
    # Windows-1251 is recognised (1C), any other one is named with --encoding
    one_c = (DATA / "statement_1c.txt").read_bytes()
    cp866 = one_c.decode("cp1251").encode("cp866")
    assert parse_statement(cp866, "kl.txt", encoding="cp866") == parse_statement(one_c, "kl.txt")
    with pytest.raises(StatementError, match="unknown encoding 'klingon'"):
        parse_statement(one_c, "kl.txt", encoding="klingon")
