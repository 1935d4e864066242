"""The pure bill builder (billing.run.build_bills) on hand-made inputs: no database, no clock.

November 2026 has 30 days, local time Asia/Tashkent (UTC+5, no daylight saving). Household
tariff 1 500 so'm/m³ (150 000 tiyin, no VAT) until 15 Nov and 1 800 so'm/m³ (180 000 tiyin)
from 16 Nov; legal entities 5 000 so'm/m³ (500 000 tiyin) plus 12 % VAT; norm 4.5 m³ per
person and month. Every expected figure is worked out by hand in the case's comment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from billing.config import ConsumptionParams
from billing.consumption import flag_names
from billing.errors import BillingRunError
from billing.proration import Service, service_days
from billing.run import (
    SOURCE_PRIORITY,
    AccountBill,
    AccountIn,
    BillInputs,
    MeterLink,
    PeriodWindow,
    Readings,
    build_bills,
    merge_readings,
)
from billing.tariffs import Norm, Tariff

TZ_NAME = "Asia/Tashkent"
TZ = ZoneInfo(TZ_NAME)
NOV = date(2026, 11, 1)
NOV_LAST = date(2026, 11, 30)
WIN = PeriodWindow.of(NOV, TZ_NAME)
TARIFFS = (
    Tariff("household", date(2026, 1, 1), 150_000, 0),
    Tariff("household", date(2026, 11, 16), 180_000, 0),
    Tariff("legal", date(2026, 1, 1), 500_000, 1200),
)
NORMS = (Norm(date(2020, 1, 1), 4.5),)
PARAMS = ConsumptionParams()
INSTALLED = datetime(2026, 1, 1, 9, 0, tzinfo=TZ)  # long before the month


def at(month: int, day: int, hour: int = 0, year: int = 2026) -> datetime:
    """A local time (Asia/Tashkent)."""
    return datetime.combine(date(year, month, day), time(hour), TZ)


def service(
    changes: tuple[tuple[datetime, str], ...] = (),
    *,
    opened_on: date = date(2025, 1, 1),
    initial: str = "active",
) -> Service:
    return service_days(NOV, NOV_LAST, TZ_NAME, opened_on, initial, changes)


SUSPENDED_14_TO_19 = ((at(11, 14), "suspended"), (at(11, 19), "active"))

Line = tuple[date, date, int, int, int, int, int]  # from, to, days, litres, price, net, vat
Reading = tuple[int, datetime, float, str]  # meter id, time, m³, source


@dataclass(frozen=True)
class Case:
    name: str
    account: AccountIn
    basis: str
    litres: int
    lines: tuple[Line, ...]
    total_tiyin: int
    links: tuple[MeterLink, ...] = ()
    readings: tuple[Reading, ...] = ()
    service: Service | None = None
    estimated: bool = False
    flags: frozenset[str] = field(default_factory=frozenset)
    service_days: int = 30
    prorated: bool = False


def household(acc_id: int, *, metered: bool = True, residents: int = 0) -> AccountIn:
    return AccountIn(acc_id, f"{acc_id:09d}", "household", "household", metered, residents)


def link(
    acc_id: int,
    meter_id: int,
    installed_at: datetime = INSTALLED,
    initial: float = 0.0,
    removed: tuple[datetime, float] | None = None,
    digits: int = 5,
) -> MeterLink:
    return MeterLink(
        account_id=acc_id,
        meter_id=meter_id,
        serial_no=f"M-{meter_id}",
        digits=digits,
        point_id=None,
        installed_at=installed_at,
        removed_at=None if removed is None else removed[0],
        initial_m3=initial,
        final_m3=None if removed is None else removed[1],
    )


def nov_lines(litres_1_15: int, litres_16_30: int) -> tuple[Line, ...]:
    """The two household lines of a full month (15 + 15 days)."""
    return (
        (date(2026, 11, 1), date(2026, 11, 15), 15, litres_1_15, 150_000,
         litres_1_15 * 150, 0),
        (date(2026, 11, 16), date(2026, 11, 30), 15, litres_16_30, 180_000,
         litres_16_30 * 180, 0),
    )  # fmt: skip


CASES = [
    # 112 - 100 = 12 m³ = 12 000 l, shared 15:15 days: 6 000 l x 150 + 6 000 l x 180
    # = 900 000 + 1 080 000 = 1 980 000 tiyin
    Case(
        "metered, tariff change on the 16th",
        household(1),
        "metered",
        12_000,
        nov_lines(6_000, 6_000),
        1_980_000,
        links=(link(1, 101),),
        readings=((101, at(11, 1), 100.0, "telemetry"), (101, at(12, 1), 112.0, "telemetry")),
    ),
    # 10 001 l shared 15:15 by largest remainder: 5 000.5 each, the spare litre goes to the
    # first part: 5 001 x 150 = 750 150 plus 5 000 x 180 = 900 000
    Case(
        "metered, odd litre to the first part",
        household(2),
        "metered",
        10_001,
        nov_lines(5_001, 5_000),
        1_650_150,
        links=(link(2, 102),),
        readings=((102, at(11, 1), 100.0, "manual"), (102, at(12, 1), 110.001, "manual")),
    ),
    # 3 residents x 4.5 m³ = 13 500 l, 6 750 + 6 750: 1 012 500 + 1 215 000 = 2 227 500
    Case(
        "norm, full month",
        household(3, metered=False, residents=3),
        "norm",
        13_500,
        nov_lines(6_750, 6_750),
        2_227_500,
    ),
    # closed 12 Nov 15:00: active 1-12 Nov = 12 days; 13 500 x 12/30 = 5 400 l, all at the
    # old tariff: 5 400 x 150 = 810 000 (docs/billing.md, worked example)
    Case(
        "norm, closed on the 12th at 15:00",
        household(4, metered=False, residents=3),
        "norm",
        5_400,
        ((date(2026, 11, 1), date(2026, 11, 12), 12, 5_400, 150_000, 810_000, 0),),
        810_000,
        service=service(((at(11, 12, 15), "closed"),)),
        service_days=12,
        prorated=True,
    ),
    # opened 20 Nov: 20-30 Nov = 11 days; 13 500 x 11/30 = 4 950 l x 180 = 891 000
    Case(
        "norm, opened on the 20th",
        household(5, metered=False, residents=3),
        "norm",
        4_950,
        ((date(2026, 11, 20), date(2026, 11, 30), 11, 4_950, 180_000, 891_000, 0),),
        891_000,
        service=service(opened_on=date(2026, 11, 20)),
        service_days=11,
        prorated=True,
    ),
    # suspended 14 Nov 00:00 - 19 Nov 00:00: active 1-13 (13 days) and 19-30 (12 days);
    # 13 500 x 25/30 = 11 250 l shared 13:12 = 5 850 + 5 400;
    # 5 850 x 150 = 877 500 plus 5 400 x 180 = 972 000
    Case(
        "norm, suspended 14th to 19th",
        household(6, metered=False, residents=3),
        "norm",
        11_250,
        (
            (date(2026, 11, 1), date(2026, 11, 13), 13, 5_850, 150_000, 877_500, 0),
            (date(2026, 11, 19), date(2026, 11, 30), 12, 5_400, 180_000, 972_000, 0),
        ),
        1_849_500,
        service=service(SUSPENDED_14_TO_19),
        service_days=25,
        prorated=True,
    ),
    # suspended all month: no active day, no water, an invoice of 0 without lines
    Case(
        "norm, suspended all month",
        household(7, metered=False, residents=3),
        "norm",
        0,
        (),
        0,
        service=service(initial="suspended"),
        service_days=0,
        prorated=True,
    ),
    # a suspension does not cut a meter: the same 12 m³ and lines as a full month
    Case(
        "metered, suspended 14th to 19th",
        household(8),
        "metered",
        12_000,
        nov_lines(6_000, 6_000),
        1_980_000,
        links=(link(8, 108),),
        readings=((108, at(11, 1), 100.0, "telemetry"), (108, at(12, 1), 112.0, "telemetry")),
        service=service(SUSPENDED_14_TO_19),
    ),
    # closed 11 Nov 00:00 with its closing reading (105): 5 m³ over 1-10 Nov at the old
    # tariff = 5 000 x 150 = 750 000; the reading of the 16th (after the closing) is not used
    Case(
        "metered, closed on the 11th with a closing reading",
        household(9),
        "metered",
        5_000,
        ((date(2026, 11, 1), date(2026, 11, 10), 10, 5_000, 150_000, 750_000, 0),),
        750_000,
        links=(link(9, 109),),
        readings=(
            (109, at(11, 1), 100.0, "telemetry"),
            (109, at(11, 11), 105.0, "inspector"),
            (109, at(11, 16), 110.0, "telemetry"),
        ),
        service=service(((at(11, 11), "closed"),)),
        service_days=10,
        prorated=True,
    ),
    # the same without a closing reading: 2.5 m³ from the 1st to the 6th (0.5 m³ a day), the
    # 5 days to the closing are estimated at that rate (2.5 m³) instead of interpolating to
    # the reading of the 16th: 5 000 l, 750 000 tiyin, estimated
    Case(
        "metered, closed on the 11th, the end estimated",
        household(10),
        "metered",
        5_000,
        ((date(2026, 11, 1), date(2026, 11, 10), 10, 5_000, 150_000, 750_000, 0),),
        750_000,
        links=(link(10, 110),),
        readings=(
            (110, at(11, 1), 100.0, "telemetry"),
            (110, at(11, 6), 102.5, "telemetry"),
            (110, at(11, 16), 110.0, "telemetry"),
        ),
        service=service(((at(11, 11), "closed"),)),
        estimated=True,
        flags=frozenset({"estimated end"}),
        service_days=10,
        prorated=True,
    ),
    # opened 20 Nov, meter installed 20 Nov 10:00 at 0; 3.3 m³ by 1 Dec: 3 300 l, all at the
    # new tariff: 3 300 x 180 = 594 000
    Case(
        "metered, opened on the 20th with a new meter",
        household(11),
        "metered",
        3_300,
        ((date(2026, 11, 20), date(2026, 11, 30), 11, 3_300, 180_000, 594_000, 0),),
        594_000,
        links=(link(11, 111, installed_at=at(11, 20, 10)),),
        readings=((111, at(12, 1), 3.3, "customer"),),
        service=service(opened_on=date(2026, 11, 20)),
        service_days=11,
        prorated=True,
    ),
    # opened 20 Nov 00:00 on a meter that was already there: readings 100 on the 10th and 121
    # on 1 Dec (1 m³ a day); only the 11 days from the opening count, interpolated over the
    # gap in the readings (estimated): 11 m³, 11 000 x 180 = 1 980 000
    Case(
        "metered, opened on the 20th on an existing meter",
        household(21),
        "metered",
        11_000,
        ((date(2026, 11, 20), date(2026, 11, 30), 11, 11_000, 180_000, 1_980_000, 0),),
        1_980_000,
        links=(link(21, 121),),
        readings=((121, at(11, 10), 100.0, "inspector"), (121, at(12, 1), 121.0, "inspector")),
        service=service(opened_on=date(2026, 11, 20)),
        estimated=True,
        flags=frozenset({"gap interpolated"}),
        service_days=11,
        prorated=True,
    ),
    # legal entity: 10 m³ x 500 000 = 5 000 000 net, VAT 12 % = 600 000, one line
    Case(
        "legal entity with VAT",
        AccountIn(12, "000000012", "legal", "legal", True, 0),
        "metered",
        10_000,
        ((date(2026, 11, 1), date(2026, 11, 30), 30, 10_000, 500_000, 5_000_000, 600_000),),
        5_600_000,
        links=(link(12, 112),),
        readings=((112, at(11, 1), 100.0, "telemetry"), (112, at(12, 1), 110.0, "telemetry")),
    ),
    # last reading 21 Nov; 1 Oct -> 21 Nov is 51 m³ in 51 days, so the 10 days to 1 Dec are
    # estimated at 1 m³ a day: 20 + 10 = 30 m³, 15 000 x 150 + 15 000 x 180 = 4 950 000
    Case(
        "metered, estimated end of month",
        household(13),
        "metered",
        30_000,
        nov_lines(15_000, 15_000),
        4_950_000,
        links=(link(13, 113),),
        readings=(
            (113, at(10, 1), 100.0, "inspector"),
            (113, at(11, 1), 131.0, "inspector"),
            (113, at(11, 21), 151.0, "inspector"),
        ),
        estimated=True,
        flags=frozenset({"estimated end"}),
    ),
    # no consumption all month: two lines of 0 litres, 0 tiyin; a stopped meter?
    Case(
        "metered, zero consumption",
        household(14),
        "metered",
        0,
        nov_lines(0, 0),
        0,
        links=(link(14, 114, initial=100.0),),
        readings=((114, at(11, 1), 100.0, "telemetry"), (114, at(12, 1), 100.0, "telemetry")),
        flags=frozenset({"long zero"}),
    ),
    # the register went back 0.04 m³ (reverse flow, kept): a net -40 l is billed as 0
    Case(
        "metered, net negative (reverse flow)",
        household(15),
        "metered",
        0,
        nov_lines(0, 0),
        0,
        links=(link(15, 115),),
        readings=((115, at(11, 1), 100.0, "telemetry"), (115, at(12, 1), 99.96, "telemetry")),
        flags=frozenset({"reverse flow"}),
    ),
    # the register was reset on the 12th (104 -> 0.5): the backwards step is not counted;
    # 4 m³ before + 6 m³ after = 10 m³: 5 000 x 150 + 5 000 x 180 = 1 650 000
    Case(
        "metered, register reset (negative delta)",
        household(16),
        "metered",
        10_000,
        nov_lines(5_000, 5_000),
        1_650_000,
        links=(link(16, 116),),
        readings=(
            (116, at(11, 1), 100.0, "telemetry"),
            (116, at(11, 11), 104.0, "telemetry"),
            (116, at(11, 12), 0.5, "telemetry"),
            (116, at(12, 1), 6.5, "telemetry"),
        ),
        flags=frozenset({"negative delta"}),
    ),
    # a 4-digit register (10 000 m³) rolls over: 9 995 -> 3 is 8 m³;
    # 4 000 x 150 + 4 000 x 180 = 1 320 000
    Case(
        "metered, register rollover",
        household(17),
        "metered",
        8_000,
        nov_lines(4_000, 4_000),
        1_320_000,
        links=(link(17, 117, initial=9_000.0, digits=4),),
        readings=((117, at(11, 1), 9_995.0, "telemetry"), (117, at(12, 1), 3.0, "telemetry")),
        flags=frozenset({"rollover"}),
    ),
    # meter replaced on 10 Nov 12:00: old meter 100 -> 104 (its removal reading), new meter
    # 0 -> 8: 12 m³ in all, the same lines as a full month
    Case(
        "metered, meter replaced mid-month",
        household(18),
        "metered",
        12_000,
        nov_lines(6_000, 6_000),
        1_980_000,
        links=(
            link(18, 118, removed=(at(11, 10, 12), 104.0)),
            link(18, 119, installed_at=at(11, 10, 12)),
        ),
        readings=((118, at(11, 1), 100.0, "telemetry"), (119, at(12, 1), 8.0, "telemetry")),
    ),
    # three readings at 1 Dec 00:00: telemetry (112) wins over the inspector (115) and the
    # customer (113): 12 m³ as in the first case
    Case(
        "metered, telemetry wins at the same moment",
        household(19),
        "metered",
        12_000,
        nov_lines(6_000, 6_000),
        1_980_000,
        links=(link(19, 120),),
        readings=(
            (120, at(11, 1), 100.0, "telemetry"),
            (120, at(12, 1), 115.0, "inspector"),
            (120, at(12, 1), 113.0, "customer"),
            (120, at(12, 1), 112.0, "telemetry"),
        ),
    ),
    # a metered account with no meter connected in the month is billed by the norm:
    # 2 x 4.5 = 9 000 l, 4 500 x 150 + 4 500 x 180 = 675 000 + 810 000
    Case(
        "metered account without a meter: the norm",
        household(20, residents=2),
        "norm",
        9_000,
        nov_lines(4_500, 4_500),
        1_485_000,
    ),
]


def inputs(cases: list[Case]) -> BillInputs:
    rows = [
        (m, int(ts.timestamp()), v, SOURCE_PRIORITY[src])
        for c in cases
        for m, ts, v, src in c.readings
    ]
    return BillInputs(
        window=WIN,
        accounts=tuple(c.account for c in cases),
        links=tuple(ln for c in cases for ln in c.links),
        readings=Readings.of(rows[::-1]),  # the builder must not depend on the given order
        services={c.account.id: c.service for c in cases if c.service is not None},
        tariffs=TARIFFS,
        norms=NORMS,
    )


def lines_of(bill: AccountBill) -> tuple[Line, ...]:
    return tuple(
        (ln.date_from, ln.date_to, ln.days, ln.litres, ln.price_tiyin_per_m3, ln.net_tiyin,
         ln.vat_tiyin)
        for ln in bill.charge.lines
    )  # fmt: skip


def check(case: Case, bill: AccountBill) -> None:
    assert bill.account_id == case.account.id
    assert (bill.basis, bill.litres) == (case.basis, case.litres)
    assert lines_of(bill) == case.lines
    assert bill.charge.total_tiyin == case.total_tiyin
    assert bill.charge.net_tiyin + bill.charge.vat_tiyin == case.total_tiyin
    assert bill.estimated is case.estimated
    assert {n for m in bill.meters for n in flag_names(m.flags)} == case.flags
    assert (bill.service_days if case.service else 30) == case.service_days
    assert bill.prorated is case.prorated


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_one_account(case: Case) -> None:
    (bill,) = build_bills(inputs([case]), PARAMS)
    check(case, bill)


def test_all_accounts_in_one_batch() -> None:
    """The same bills when every case is built together (one kernel call over all meters),
    in the order of the accounts given."""
    shuffled = CASES[::2] + CASES[1::2]
    bills = build_bills(inputs(shuffled), PARAMS)
    assert [b.account_id for b in bills] == [c.account.id for c in shuffled]
    for case, bill in zip(shuffled, bills, strict=True):
        check(case, bill)


def test_meter_lines_carry_the_registers() -> None:
    """The replaced meter is two lines: the old one up to its removal, the new one from its
    installation, each with its start and end register."""
    case = next(c for c in CASES if c.name == "metered, meter replaced mid-month")
    (bill,) = build_bills(inputs([case]), PARAMS)
    got = [(m.meter_id, m.start_ts, m.end_ts, m.start_m3, m.end_m3) for m in bill.meters]
    assert got == [
        (118, at(11, 1), at(11, 10, 12), 100.0, 104.0),
        (119, at(11, 10, 12), at(12, 1), 0.0, 8.0),
    ]
    assert [m.volume_m3 for m in bill.meters] == pytest.approx([4.0, 8.0])
    est = next(c for c in CASES if c.name == "metered, estimated end of month")
    (ebill,) = build_bills(inputs([est]), PARAMS)
    assert ebill.meters[0].estimated_m3 == pytest.approx(10.0)
    assert ebill.meters[0].end_m3 == pytest.approx(161.0)


def test_the_same_inputs_give_the_same_bills() -> None:
    """Pure: building twice from the same inputs gives equal bills, and the inputs are not
    changed by the build."""
    inp = inputs(CASES)
    before = (inp.readings.meter.copy(), inp.readings.ts.copy(), inp.readings.value.copy())
    assert build_bills(inp, PARAMS) == build_bills(inp, PARAMS)
    assert np.array_equal(inp.readings.meter, before[0])
    assert np.array_equal(inp.readings.ts, before[1])
    assert np.array_equal(inp.readings.value, before[2])


def test_merge_readings_keeps_one_per_meter_and_time() -> None:
    """Sorted by meter and time; at the same time the installation reading wins, then
    telemetry, inspector, manual, customer; the given order breaks the remaining ties."""
    t = int(at(11, 5).timestamp())
    given = Readings.of(
        [
            (7, t + 60, 3.0, SOURCE_PRIORITY["customer"]),
            (7, t, 2.0, SOURCE_PRIORITY["manual"]),
            (5, t, 1.5, SOURCE_PRIORITY["inspector"]),
            (7, t, 2.5, SOURCE_PRIORITY["telemetry"]),
            (5, t, 1.0, SOURCE_PRIORITY["inspector"]),
        ]
    )
    installed = link(1, 7, installed_at=at(11, 5), initial=9.0)
    merged = merge_readings(given, [installed])
    assert merged.meter.tolist() == [5, 7, 7]
    assert merged.ts.tolist() == [t, t, t + 60]
    assert merged.value.tolist() == [1.5, 9.0, 3.0]
    assert merged.priority.tolist() == [SOURCE_PRIORITY["inspector"], -1, 3]
    empty = merge_readings(Readings.empty(), [])
    assert empty.meter.shape == (0,) and empty.value.dtype == np.float64


def test_a_meter_moved_at_one_moment_keeps_the_first_links_reading() -> None:
    """Meter 7 removed from account 1 at T (register 50) and installed on account 2 at T
    (entered as 0): link by link, the first link's removal reading is the one kept at T."""
    moved = at(11, 15, 12)
    links = [
        link(1, 7, removed=(moved, 50.0)),
        link(2, 7, installed_at=moved, initial=0.0),
    ]
    merged = merge_readings(Readings.empty(), links)
    t = int(moved.timestamp())
    assert merged.ts.tolist() == [int(INSTALLED.timestamp()), t]
    assert merged.value.tolist() == [0.0, 50.0]


def test_reading_times_out_of_range_are_refused() -> None:
    case = CASES[0]
    inp = inputs([case])
    bad = Readings.of([(101, -3600, 99.0, SOURCE_PRIORITY["manual"])])
    with pytest.raises(BillingRunError, match="between 1970 and 2106"):
        build_bills(
            BillInputs(inp.window, inp.accounts, inp.links, bad, {}, TARIFFS, NORMS), PARAMS
        )
