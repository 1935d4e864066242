"""Branches in billing (issue 20): what a branch owns, overlaps refused, and the documents'
numbers per branch: gapless, in order, the old series going on for accounts of no branch,
two branches never waiting for each other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
import pytest

from billing import branches as br
from billing.accounts import Address, create_account
from billing.config import BillingConfig
from billing.payments.cashier import take_payment
from billing.run import run_billing
from tests.billing.conftest import NOW

NOV = date(2026, 11, 1)
REGION = "Samarqand viloyati"


def addr(district: str, house: str, mahalla: str = "Markaz MFY") -> Address:
    return Address(REGION, district, mahalla, "Navoiy ko'chasi", house)


@dataclass
class World:
    urg: br.Branch
    pay: br.Branch
    urg_accounts: list[int]
    pay_accounts: list[int]
    loose: int
    """An account in a district of no branch."""


@pytest.fixture(scope="module")
def world(db_url: str) -> World:
    with psycopg.connect(db_url) as c:
        c.execute(
            "INSERT INTO tariffs (category, valid_from, price_tiyin_per_m3) "
            "VALUES ('household', '2026-01-01', 150000)"
        )
        c.execute("INSERT INTO norms (valid_from, m3_per_person_month) VALUES ('2020-01-01', 4.5)")
        # the utility's own series had reached 41 this year before branches came
        c.execute("INSERT INTO invoice_counters (year, last) VALUES (2026, 41)")
        c.execute("INSERT INTO cashier_receipt_counters (year, last) VALUES (2026, 7)")

        def acc(district: str, house: str) -> int:
            return create_account(
                c,
                kind="household",
                name=f"Subscriber {district[:3]} {house}",
                address=addr(district, house),
                now=NOW,
                residents=2,
                metered=False,
                opened_on=date(2025, 1, 1),
            )[0]

        # accounts first, branches after: assigning a district gives its accounts the branch
        urg_accounts = [acc("Urgut tumani", str(h)) for h in (1, 2, 3)]
        pay_accounts = [acc("Payariq tumani", str(h)) for h in (1, 2)]
        loose = acc("Ishtixon tumani", "9")
        urg = br.add_branch(c, "URG", "Urgut filiali")
        pay = br.add_branch(c, "PAY", "Payariq filiali")
        br.assign(c, "URG", districts=["Urgut tumani"])
        br.assign(c, "PAY", districts=["Payariq tumani"])
        c.commit()
        return World(urg, pay, urg_accounts, pay_accounts, loose)


def test_accounts_take_the_branch_of_their_district(
    world: World, conn: psycopg.Connection[Any]
) -> None:
    got = br.branches_of_accounts(conn, [*world.urg_accounts, *world.pay_accounts, world.loose])
    assert {a: (b.code if b else None) for a, b in got.items()} == {
        **dict.fromkeys(world.urg_accounts, "URG"),
        **dict.fromkeys(world.pay_accounts, "PAY"),
        world.loose: None,
    }
    # an account opened later in the district belongs to the branch at once
    new, _ = create_account(
        conn, kind="household", name="Later", address=addr("Urgut tumani", "77"), now=NOW
    )
    assert br.account_branch(conn, new) == world.urg
    conn.rollback()


def test_overlapping_districts_and_mfys_are_refused(
    world: World, conn: psycopg.Connection[Any]
) -> None:
    with pytest.raises(br.BranchError, match="Urgut tumani already belongs to branch URG"):
        br.assign(conn, "PAY", districts=["Urgut tumani"])
    # an MFY of a district that is wholly another branch's
    with pytest.raises(br.BranchError, match=r"lies in a district that belongs wholly to .*URG"):
        br.assign(conn, "PAY", mahallas=["Urgut tumani/Markaz MFY"])
    # nothing of the refused calls stayed
    row = conn.execute(
        "SELECT count(*) FROM branch_mahallas WHERE branch_id = %s", (world.pay.id,)
    ).fetchone()
    assert row == (0,)
    # the database itself refuses it, whoever writes
    with pytest.raises(psycopg.errors.ExclusionViolation):
        conn.execute(
            "INSERT INTO branch_districts (district_id, branch_id) "
            "SELECT id, %s FROM districts WHERE name_uz = 'Urgut tumani'",
            (world.pay.id,),
        )
    conn.rollback()


def test_a_district_split_by_mfys(world: World, conn: psycopg.Connection[Any]) -> None:
    a, _ = create_account(
        conn,
        kind="household",
        name="North",
        address=addr("Kattaqo'rg'on", "1", "Shimol MFY"),
        now=NOW,
    )
    b, _ = create_account(
        conn,
        kind="household",
        name="South",
        address=addr("Kattaqo'rg'on", "2", "Janub MFY"),
        now=NOW,
    )
    br.assign(conn, "URG", mahallas=["Shimol MFY"])
    br.assign(conn, "PAY", mahallas=["Janub MFY"])
    got = br.branches_of_accounts(conn, [a, b])
    assert (got[a], got[b]) == (world.urg, world.pay)
    # the split district cannot then go wholly to one branch
    with pytest.raises(br.BranchError, match="split by MFYs and has MFYs of branch"):
        br.assign(conn, "URG", districts=["Kattaqo'rg'on"])
    conn.rollback()


def test_moving_a_district_moves_its_accounts(world: World, conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "DELETE FROM branch_districts WHERE district_id = "
        "(SELECT id FROM districts WHERE name_uz = 'Payariq tumani')"
    )
    assert set(br.branches_of_accounts(conn, world.pay_accounts).values()) == {None}
    br.assign(conn, "URG", districts=["Payariq tumani"])
    assert set(br.branches_of_accounts(conn, world.pay_accounts).values()) == {world.urg}
    conn.rollback()
    assert set(br.branches_of_accounts(conn, world.pay_accounts).values()) == {world.pay}


def test_invoices_are_numbered_per_branch_gapless(
    world: World, conn: psycopg.Connection[Any], cfg: BillingConfig
) -> None:
    summary = run_billing(conn, NOV, cfg, now=NOW)
    conn.commit()
    assert summary.accounts_billed == 6
    rows = conn.execute(
        "SELECT account_id, number FROM invoices WHERE period = %s ORDER BY id", (NOV,)
    ).fetchall()
    numbers = dict(rows)
    assert sorted(numbers[a] for a in world.urg_accounts) == [
        "URG-2026-0000001",
        "URG-2026-0000002",
        "URG-2026-0000003",
    ]
    assert sorted(numbers[a] for a in world.pay_accounts) == [
        "PAY-2026-0000001",
        "PAY-2026-0000002",
    ]
    # the account of no branch goes on with the utility's series of before
    assert numbers[world.loose] == "2026-0000042"
    # in each series the numbers follow the order of issue
    for prefix in ("URG-", "PAY-"):
        ordered = [n for _, n in rows if n.startswith(prefix)]
        assert ordered == sorted(ordered)


def test_a_rolled_back_number_is_given_again(world: World, conn: psycopg.Connection[Any]) -> None:
    first = br.allocate(conn, world.pay, "invoice", 2027, 2)
    conn.rollback()
    again = br.allocate(conn, world.pay, "invoice", 2027, 3)
    conn.rollback()
    assert first == ["PAY-2027-0000001", "PAY-2027-0000002"]
    assert again == ["PAY-2027-0000001", "PAY-2027-0000002", "PAY-2027-0000003"]


def test_receipts_are_numbered_per_branch(world: World, conn: psycopg.Connection[Any]) -> None:
    def pay(account_id: int) -> str:
        number = conn.execute("SELECT number FROM accounts WHERE id = %s", (account_id,)).fetchone()
        assert number is not None
        return take_payment(
            conn,
            account_number=number[0],
            amount_tiyin=1_000_000,
            method="cash",
            cashier="kassir",
            now=NOW,
        ).receipt_no

    got = [pay(world.urg_accounts[0]), pay(world.pay_accounts[0]), pay(world.urg_accounts[1])]
    got.append(pay(world.loose))
    conn.commit()
    assert got == [
        "K-URG-2026-0000001",
        "K-PAY-2026-0000001",
        "K-URG-2026-0000002",
        "K-2026-0000008",  # the utility's desk series goes on
    ]


def test_two_branches_number_at_the_same_time(world: World, db_url: str) -> None:
    """A branch's counter is locked by the transaction that takes numbers from it (that is
    what keeps the series gapless); another branch's counter is free meanwhile, so branches
    are billed in parallel without waiting for each other."""
    with psycopg.connect(db_url) as one, psycopg.connect(db_url) as two:
        assert br.allocate(one, world.urg, "invoice", 2030, 1) == ["URG-2030-0000001"]
        two.execute("SET lock_timeout = '300ms'")
        assert br.allocate(two, world.pay, "invoice", 2030, 1) == ["PAY-2030-0000001"]
        with pytest.raises(psycopg.errors.LockNotAvailable):
            br.allocate(two, world.urg, "invoice", 2030, 1)
        two.rollback()
        one.commit()
        assert br.allocate(two, world.urg, "invoice", 2030, 1) == ["URG-2030-0000002"]
        two.rollback()
