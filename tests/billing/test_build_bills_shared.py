"""The bill builder prices equal inputs once per batch (billing.run.account_bill's
``charges``): a batch in which every case appears twice, under other account and meter ids,
gives each copy the bill the case gets alone, and accounts that differ only in their days of
service do not share a charge."""

from __future__ import annotations

from dataclasses import replace

from billing.run import AccountIn, build_bills
from tests.billing.test_build_bills import CASES, PARAMS, Case, at, check, inputs, service

SHIFT = 100_000


def copy(case: Case) -> Case:
    """The same case under other account and meter ids."""
    return replace(
        case,
        account=replace(case.account, id=case.account.id + SHIFT),
        links=tuple(
            replace(ln, account_id=ln.account_id + SHIFT, meter_id=ln.meter_id + SHIFT)
            for ln in case.links
        ),
        readings=tuple((m + SHIFT, ts, v, src) for m, ts, v, src in case.readings),
    )


def test_every_case_twice_in_one_batch() -> None:
    cases = list(CASES) + [copy(c) for c in CASES]
    bills = build_bills(inputs(cases), PARAMS)
    assert [b.account_id for b in bills] == [c.account.id for c in cases]
    for case, bill in zip(cases, bills, strict=True):
        check(case, bill)
        assert bill.total_tiyin == bill.charge.total_tiyin == case.total_tiyin
        assert bill.vat_tiyin == bill.charge.vat_tiyin


def test_days_of_service_are_part_of_the_price() -> None:
    """Two norm accounts with the same residents, one active all month and one suspended
    for part of it, and a third active all month again: the first and third share a charge,
    the second has its own (fewer days, fewer litres)."""
    full = Case("full", AccountIn(1, "1", "household", "household", False, 3), "norm", 0, (), 0)
    part = replace(
        full,
        account=replace(full.account, id=2),
        service=service(((at(11, 10), "suspended"),)),
    )
    again = replace(full, account=replace(full.account, id=3))
    b1, b2, b3 = build_bills(inputs([full, part, again]), PARAMS)
    assert b1.charge == b3.charge
    assert b2.litres < b1.litres
    assert b2.charge != b1.charge
    assert not b1.prorated and b2.prorated
    assert b2.service_days == 9
