"""Registry access: idempotent upserts and the address hierarchy, on a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from suvnet.profiles import Profile
from suvnet.protocol import points_hash
from suvnet.registry import (
    Address,
    Apartment,
    Device,
    District,
    Gateway,
    House,
    Point,
    Region,
    RegisteredDevice,
    RegistryError,
    Street,
    UnknownReferenceError,
    Zone,
    compare_gateway_config,
    ensure_address,
    find_address,
    list_apartments,
    list_districts,
    list_houses,
    list_mahallas,
    list_regions,
    list_streets,
    note_config_hash,
    point_id,
    profile_points,
    recheck_gateway_configs,
    record_gateway_config,
    upsert_apartment,
    upsert_device,
    upsert_district,
    upsert_gateway,
    upsert_house,
    upsert_point,
    upsert_region,
    upsert_street,
    upsert_zone,
)


def _xmin(conn: psycopg.Connection[Any], table: str, id_: int) -> str:
    row = conn.execute(
        f"SELECT xmin::text FROM {table} WHERE id = %s",
        (id_,),
    ).fetchone()
    assert row is not None
    return str(row[0])


def test_upsert_reports_created_updated_unchanged(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        a = upsert_zone(conn, Zone("Z1", "first"))
        assert a.change == "created"
        xmin = _xmin(conn, "zones", a.id)
        b = upsert_zone(conn, Zone("Z1", "first"))
        assert (b.id, b.change) == (a.id, "unchanged")
        assert _xmin(conn, "zones", a.id) == xmin  # not rewritten
        c = upsert_zone(conn, Zone("Z1", "renamed", min_service_pressure_bar=1.5))
        assert (c.id, c.change) == (a.id, "updated")
        assert _xmin(conn, "zones", a.id) != xmin


def test_devices_points_and_references(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        with pytest.raises(UnknownReferenceError) as info:
            upsert_gateway(conn, Gateway("gw-1", zone="NOPE"))
        assert (info.value.kind, info.value.code) == ("zone", "NOPE")
        upsert_gateway(conn, Gateway("gw-1", name="office"))
        dev = Device("pt-1", "pressure_sensor", "pressure_transmitter", gateway="gw-1", unit_id=5)
        assert upsert_device(conn, dev).change == "created"
        p = upsert_point(conn, Point("pt-1", "pressure_bar", "bar", "analog", 15))
        assert p.change == "created"
        assert point_id(conn, "pt-1", "pressure_bar") == p.id
        assert point_id(conn, "pt-1", "other") is None
        again = upsert_point(conn, Point("pt-1", "pressure_bar", "bar", "analog", 15))
        assert (again.id, again.change) == (p.id, "unchanged")
        assert upsert_point(conn, Point("pt-1", "pressure_bar", "bar", "analog", 5)).change == (
            "updated"
        )
        with pytest.raises(UnknownReferenceError):
            upsert_point(conn, Point("no-device", "x"))


def test_address_hierarchy(fresh_db_url: str) -> None:
    addr = Address("Farg'ona viloyati", "Oltiariq tumani", "Navbahor", "Mustaqillik", "12", "3")
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        assert find_address(conn, addr) is None
        ids = ensure_address(conn, addr)
        assert ensure_address(conn, addr) == ids
        assert find_address(conn, addr) == ids
        assert ids.house_id is not None
        assert ids.apartment_id is not None

        region = upsert_region(
            conn, Region("Farg'ona viloyati", code="1730", name_uz_cyrl="Фарғона вилояти")
        )
        assert (region.id, region.change) == (ids.region_id, "updated")
        assert upsert_region(
            conn, Region("Farg'ona viloyati", code="1730", name_uz_cyrl="Фарғона вилояти")
        ).change == ("unchanged")
        d = upsert_district(conn, District(ids.region_id, "Oltiariq tumani", name_ru="Алтыарык"))
        assert (d.id, d.change) == (ids.district_id, "updated")
        s = upsert_street(conn, Street(ids.mahalla_id, "Bog'bon", kind="lane"))
        assert s.change == "created"
        h = upsert_house(
            conn, House(s.id, "3", cadastral_no="17:10:01:01:03:0003", lon=71.6, lat=40.45)
        )
        assert h.change == "created"
        apt = upsert_apartment(conn, Apartment(h.id, "1"))
        assert apt.change == "created"

        assert [r.code for _, r in list_regions(conn)] == ["1730"]
        assert [x.name_ru for _, x in list_districts(conn, ids.region_id)] == ["Алтыарык"]
        assert [m.name_uz for _, m in list_mahallas(conn, ids.district_id)] == ["Navbahor"]
        assert [(st.name_uz, st.kind) for _, st in list_streets(conn, ids.mahalla_id)] == [
            ("Bog'bon", "lane"),
            ("Mustaqillik", "street"),
        ]
        assert [x.cadastral_no for _, x in list_houses(conn, s.id)] == ["17:10:01:01:03:0003"]
        assert [a.number for _, a in list_apartments(conn, h.id)] == ["1"]

        with pytest.raises(RegistryError):
            ensure_address(conn, Address("r", "d", "m", "s", None, "5"))
        assert len(list_regions(conn)) == 1  # nothing half-created


# ---------------------------------------------------------------- profiles and gateway configs

T0 = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)


def _profile() -> Profile:
    return Profile.model_validate(
        {
            "profile": "meter",
            "device_kind": "customer_meter",
            "poll_s": 60,
            "points": [
                {"name": "volume_m3", "table": "input", "address": 0, "type": "uint32",
                 "unit": "m3", "kind": "counter"},
                {"name": "serial", "table": "input", "address": 2, "type": "string",
                 "length": 4},
                {"name": "raw", "table": "input", "address": 6, "type": "uint16",
                 "publish": False},
                {"name": "alarm_flags", "table": "input", "address": 7, "type": "bitfield",
                 "kind": "bitfield", "bits": {"leak": 0, "tamper": 2}, "poll_s": 300},
            ],
        }
    )  # fmt: skip


def test_profile_points_are_what_the_device_publishes() -> None:
    pts = profile_points("cm-1", _profile())
    assert [(p.name, p.unit, p.kind, p.poll_period_s) for p in pts] == [
        ("volume_m3", "m3", "counter", 60.0),
        ("alarm_flags", "", "bitfield", 300.0),
        ("alarm_flags.leak", "", "status", 300.0),  # a bit: 0 or 1
        ("alarm_flags.tamper", "", "status", 300.0),
    ]  # strings and publish: false points send nothing
    assert {p.device for p in pts} == {"cm-1"}


def _reg(gateway: str | None, *points: str, enabled: bool = True) -> RegisteredDevice:
    return RegisteredDevice(gateway, enabled, frozenset(points))


@pytest.mark.parametrize(
    ("announced", "registered", "expect"),
    [
        ({"d1": ["a", "b"]}, {"d1": _reg("gw")}, {"unknown_points": ("d1/a", "d1/b")}),
        ({"d1": ["a"]}, {"d1": _reg("gw", "a")}, {}),
        ({"d1": ["a"]}, {"d1": _reg(None, "a")}, {}),  # a device of no gateway is accepted
        ({"d1": ["a"]}, {}, {"unknown_devices": ("d1",)}),
        ({"d1": ["a"]}, {"d1": _reg("gw-2", "a")}, {"wrong_gateway": ("d1",)}),
        ({"d1": ["a"]}, {"d1": _reg("gw", "a", "z")}, {"silent_points": ("d1/z",)}),
        ({}, {"d2": _reg("gw", "a")}, {"silent_devices": ("d2",)}),
        ({}, {"d2": _reg("gw", "a", enabled=False)}, {}),  # disabled: not polled on purpose
        ({}, {"d2": _reg("gw-2", "a")}, {}),  # another gateway's device
    ],
)
def test_compare_gateway_config(
    announced: dict[str, list[str]],
    registered: dict[str, RegisteredDevice],
    expect: dict[str, tuple[str, ...]],
) -> None:
    check = compare_gateway_config("gw", announced, registered)
    kinds = (
        "unknown_devices",
        "wrong_gateway",
        "unknown_points",
        "silent_devices",
        "silent_points",
    )
    assert {k: getattr(check, k) for k in kinds if getattr(check, k)} == expect
    assert check.ok == (not expect)
    assert check.points_hash == points_hash(announced)
    if expect:
        named = next(iter(expect.values()))[0]
        assert named in check.describe()
        assert "disagree" in check.describe()


def _state(conn: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT status, unknown_points, silent_points, points_hash, checked_at, boot "
        "FROM gateway_config c JOIN gateways g ON g.id = c.gateway_id WHERE g.code = 'gw-1'"
    ).fetchone()


def test_record_and_recheck_gateway_configs(fresh_db_url: str) -> None:
    announced = {"cm-1": [p.name for p in profile_points("cm-1", _profile())]}
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        upsert_gateway(conn, Gateway("gw-1"))
        upsert_device(conn, Device("cm-1", "customer_meter", "meter", gateway="gw-1"))
        upsert_point(conn, Point("cm-1", "volume_m3", "m3", "counter", 60))
        upsert_point(conn, Point("cm-1", "old_point"))
        check, news = record_gateway_config(
            conn, "gw-1", announced, boot="b1", announced_at=T0, now=T0
        )
        assert news
        assert not check.ok
        assert _state(conn) == (
            "mismatch",
            ["cm-1/alarm_flags", "cm-1/alarm_flags.leak", "cm-1/alarm_flags.tamper"],
            ["cm-1/old_point"],
            points_hash(announced),
            T0,
            "b1",
        )
        # the same birth again (a reconnect): stored again, but not news (no second log line)
        later = T0 + timedelta(minutes=5)
        _, news = record_gateway_config(
            conn, "gw-1", announced, boot="b2", announced_at=later, now=later
        )
        assert not news
        assert _state(conn)[4:] == (later, "b2")  # type: ignore[index]
        # the registry learns the points: a recheck finds them agreeing but for old_point
        for pt in profile_points("cm-1", _profile()):
            upsert_point(conn, pt)
        (again,) = recheck_gateway_configs(conn, later)
        assert (again.unknown_points, again.silent_points) == ((), ("cm-1/old_point",))
        assert _state(conn)[:3] == ("mismatch", [], ["cm-1/old_point"])  # type: ignore[index]


def test_a_health_hash_the_office_never_checked(fresh_db_url: str) -> None:
    announced = {"cm-1": ["volume_m3"]}
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        upsert_gateway(conn, Gateway("gw-1"))
        upsert_device(conn, Device("cm-1", "customer_meter", "meter", gateway="gw-1"))
        upsert_point(conn, Point("cm-1", "volume_m3"))
        # no birth seen yet: the hash of a health update is news, once
        assert note_config_hash(conn, "gw-1", "f00d", T0)
        assert _state(conn)[0] == "unchecked"  # type: ignore[index]
        assert not note_config_hash(conn, "gw-1", "f00d", T0)
        check, news = record_gateway_config(
            conn, "gw-1", announced, boot="b", announced_at=T0, now=T0
        )
        assert check.ok
        assert news
        assert _state(conn)[0] == "ok"  # type: ignore[index]
        # health updates of the checked configuration change nothing
        assert not note_config_hash(conn, "gw-1", points_hash(announced), T0)
        assert _state(conn)[0] == "ok"  # type: ignore[index]
        # unchecked rows are not rechecked (nothing to check them with)
        assert note_config_hash(conn, "gw-1", "beef", T0)
        assert recheck_gateway_configs(conn, T0) == []
