"""Registry access: idempotent upserts and the address hierarchy, on a real PostgreSQL."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from suvnet.registry import (
    Address,
    Apartment,
    Device,
    District,
    Gateway,
    House,
    Point,
    Region,
    RegistryError,
    Street,
    UnknownReferenceError,
    Zone,
    ensure_address,
    find_address,
    list_apartments,
    list_districts,
    list_houses,
    list_mahallas,
    list_regions,
    list_streets,
    point_id,
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
