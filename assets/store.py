"""The register in the database (synchronous psycopg): save, change, read, history, the
network on a date, documents, local coordinate systems, check reports.

Every write names its actor (:class:`Actor`): who, from where, and when (the clock is passed
in). The database's triggers turn each change into a version row (``asset_versions``) with the
old and new values, whoever makes it, QGIS included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import psycopg
import shapely
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from assets.errors import (
    AssetConflictError,
    AssetInvalidError,
    AssetNotFoundError,
    FeatureProblem,
    ImportRefusedError,
)
from assets.model import Asset, geom_type, problems

Conn = psycopg.Connection[Any]
SpatialMode = Literal["postgis", "portable"]

COLUMNS = (
    "code",
    "system",
    "kind",
    "name",
    "status",
    "material",
    "diameter_mm",
    "install_year",
    "depth_m",
    "elevation_m",
    "invert_start_m",
    "invert_end_m",
    "pressure_class",
    "owner",
    "condition_grade",
    "cadastral_no",
    "land_plot",
    "accuracy_m",
    "source_crs",
    "zone_id",
    "ref_code",
    "house_id",
    "account_id",
    "attrs",
    "geom_wkb",
    "minx",
    "miny",
    "maxx",
    "maxy",
    "length_m",
)
"""The columns a save writes (feed_asset_id is set in a second step: the pipe may come in the
same file)."""

READ_COLUMNS = (
    "a.id, a.code, a.system, a.kind, a.name, a.status, a.material, a.diameter_mm, "
    "a.install_year, a.depth_m, a.elevation_m, a.invert_start_m, a.invert_end_m, "
    "a.pressure_class, a.owner, a.condition_grade, a.cadastral_no, a.land_plot, a.accuracy_m, "
    "a.source_crs, z.code AS zone, a.ref_code, a.house_id, acc.number AS account_no, "
    "f.code AS feed_pipe, a.attrs, a.geom_wkb, a.length_m, a.version, a.updated_at, a.updated_by"
)
READ_FROM = (
    "assets a LEFT JOIN zones z ON z.id = a.zone_id "
    "LEFT JOIN accounts acc ON acc.id = a.account_id "
    "LEFT JOIN assets f ON f.id = a.feed_asset_id"
)


@dataclass(frozen=True)
class Actor:
    """Who makes a change, through what, and when (``at``: the caller's clock, UTC)."""

    who: str
    source: str
    at: datetime


def set_actor(conn: Conn, actor: Actor) -> None:
    """Name the actor of the changes in the current transaction (read by the triggers)."""
    conn.execute(
        "SELECT set_config('suvnet.asset_actor', %s, true), "
        "set_config('suvnet.asset_source', %s, true), "
        "set_config('suvnet.asset_at', %s, true)",
        (actor.who, actor.source, actor.at.isoformat()),
    )


def spatial_mode(conn: Conn) -> SpatialMode:
    """``postgis`` when the register has geometry columns, ``portable`` otherwise."""
    row = conn.execute("SELECT value FROM suvnet_meta WHERE key = 'spatial_mode'").fetchone()
    return "postgis" if row and row[0] == "postgis" else "portable"


# ------------------------------------------------------------------ local coordinate systems
def local_crs(conn: Conn) -> dict[str, str]:
    """The local coordinate systems registered in the database (code -> definition)."""
    return {
        str(r[0]): str(r[1])
        for r in conn.execute("SELECT code, definition FROM asset_crs ORDER BY code")
    }


def add_crs(conn: Conn, code: str, definition: str, name: str = "", note: str = "") -> None:
    from assets.crs import check_definition

    check_definition(definition)
    conn.execute(
        "INSERT INTO asset_crs (code, name, definition, note) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, "
        "definition = EXCLUDED.definition, note = EXCLUDED.note",
        (code, name, definition, note),
    )


# ------------------------------------------------------------------ writing
@dataclass
class SaveResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged"
        )


@dataclass(frozen=True)
class _Refs:
    zones: dict[str, int]
    accounts: dict[str, int]


def _refs(conn: Conn, items: Sequence[Asset]) -> _Refs:
    zone_codes = sorted({a.zone for a in items if a.zone})
    acc_nos = sorted({a.account_no for a in items if a.account_no})
    zones = {
        str(r[0]): int(r[1])
        for r in conn.execute("SELECT code, id FROM zones WHERE code = ANY(%s)", (zone_codes,))
    }
    accounts = {
        str(r[0]): int(r[1])
        for r in conn.execute("SELECT number, id FROM accounts WHERE number = ANY(%s)", (acc_nos,))
    }
    return _Refs(zones, accounts)


def row_values(a: Asset, refs: _Refs) -> tuple[Any, ...]:
    """The values of :data:`COLUMNS` for ``a`` (geometry as 2D WKB with its bounding box)."""
    minx, miny, maxx, maxy = shapely.bounds(a.geometry).tolist()
    length = None
    if geom_type(a.geometry) == "LineString":
        from assets.geo import geodesic_length_m

        length = geodesic_length_m(a.geometry)
    return (
        a.code,
        a.system,
        a.kind,
        a.name,
        a.status,
        a.material,
        a.diameter_mm,
        a.install_year,
        a.depth_m,
        a.elevation_m,
        a.invert_start_m,
        a.invert_end_m,
        a.pressure_class,
        a.owner,
        a.condition_grade,
        a.cadastral_no,
        a.land_plot,
        a.accuracy_m,
        a.source_crs,
        refs.zones.get(a.zone) if a.zone else None,
        a.ref_code,
        a.house_id,
        refs.accounts.get(a.account_no) if a.account_no else None,
        Jsonb(dict(a.attrs)),
        shapely.to_wkb(a.geometry, output_dimension=2, byte_order=1),
        minx,
        miny,
        maxx,
        maxy,
        length,
    )


def check_refs(
    items: Sequence[Asset], refs: _Refs, known_codes: set[str]
) -> list[tuple[str, str, str]]:
    """(code, field, message) for references that point nowhere."""
    out: list[tuple[str, str, str]] = []
    for a in items:
        if a.zone and a.zone not in refs.zones:
            out.append((a.code, "zone", f"no zone with code {a.zone!r}"))
        if a.account_no and a.account_no not in refs.accounts:
            out.append((a.code, "account_no", f"no account with number {a.account_no!r}"))
        if a.feed_pipe and a.feed_pipe not in known_codes:
            out.append((a.code, "feed_pipe", f"no pipe with code {a.feed_pipe!r}"))
    return out


def save_assets(
    conn: Conn,
    items: Sequence[Asset],
    actor: Actor,
    *,
    update: bool = False,
    source_file: str = "",
    layers: Mapping[str, str] | None = None,
) -> SaveResult:
    """Save ``items`` in the current transaction, all or nothing.

    Every item is checked first (:func:`assets.model.problems`, duplicate codes, references to
    zones, accounts and feeding pipes); any problem raises :class:`ImportRefusedError` naming
    the feature and field, before anything is written. An existing code is a duplicate unless
    ``update`` is set, in which case that asset is changed (a new version when anything
    differs). ``layers`` (code -> layer name) only makes the messages precise.
    """
    where = layers or {}

    def problem(code: str, fld: str, msg: str) -> FeatureProblem:
        return FeatureProblem(source_file, where.get(code, ""), code, fld, msg)

    found: list[FeatureProblem] = []
    seen: set[str] = set()
    for a in items:
        if a.code in seen:
            found.append(problem(a.code, "code", "duplicate asset id in this file"))
        seen.add(a.code)
        found.extend(problem(a.code, f, m) for f, m in problems(a))
    existing = {
        str(r[0]): int(r[1])
        for r in conn.execute("SELECT code, id FROM assets WHERE code = ANY(%s)", (sorted(seen),))
    }
    if existing and not update:
        found.extend(
            problem(
                code,
                "code",
                "an asset with this id already exists (import with --update to change it)",
            )
            for code in sorted(existing)
        )
    refs = _refs(conn, items)
    feeds = sorted({a.feed_pipe for a in items if a.feed_pipe} - seen)
    known = seen | {
        str(r[0])
        for r in conn.execute(
            "SELECT code FROM assets WHERE code = ANY(%s) "
            "AND kind IN ('pipe', 'gravity_sewer', 'pressure_sewer')",
            (feeds,),
        )
    }
    found.extend(problem(c, f, m) for c, f, m in check_refs(items, refs, known))
    if found:
        raise ImportRefusedError(found)

    set_actor(conn, actor)
    result = SaveResult()
    placeholders = ", ".join(["%s"] * len(COLUMNS))
    insert = f"INSERT INTO assets ({', '.join(COLUMNS)}) VALUES ({placeholders})"  # noqa: S608 - constants only
    sets = ", ".join(f"{c} = %s" for c in COLUMNS[1:])
    change = f"UPDATE assets SET {sets} WHERE code = %s RETURNING version"  # noqa: S608 - constants only
    new_rows = [row_values(a, refs) for a in items if a.code not in existing]
    try:
        with conn.cursor() as cur:
            if new_rows:
                cur.executemany(insert, new_rows)
            for a in items:
                if a.code in existing:
                    vals = row_values(a, refs)
                    cur.execute(change, (*vals[1:], a.code))
                    (result.updated if cur.rowcount else result.unchanged).append(a.code)
            links = [(a.feed_pipe, a.code) for a in items if a.kind == "service_connection"]
            if links:
                cur.executemany(
                    "UPDATE assets SET feed_asset_id = (SELECT id FROM assets WHERE code = %s) "
                    "WHERE code = %s",
                    links,
                )
    except psycopg.errors.IntegrityError as exc:
        raise AssetInvalidError(_db_message(exc)) from exc
    result.created = [a.code for a in items if a.code not in existing]
    return result


def _db_message(exc: psycopg.Error) -> str:
    diag = exc.diag
    return diag.message_primary or str(exc).strip()


def update_asset(
    conn: Conn,
    code: str,
    changes: Mapping[str, Any],
    actor: Actor,
    *,
    expected_version: int | None,
) -> dict[str, Any]:
    """Change some fields of one asset (``changes``: field -> new value; ``geometry`` a
    shapely geometry in WGS 84). With ``expected_version`` the change applies only if nobody
    changed the asset since that version (:class:`AssetConflictError` otherwise). Returns the
    asset as :func:`get_asset` reads it."""
    current = get_asset(conn, code, lock=True)
    if current is None:
        raise AssetNotFoundError(code)
    if expected_version is not None and current["version"] != expected_version:
        raise AssetConflictError(code, expected_version, int(current["version"]))
    asset = asset_from_row(current).with_changes(**changes)
    errs = problems(asset)
    if errs:
        raise AssetInvalidError("; ".join(f"asset {code}: field '{f}' {m}" for f, m in errs))
    refs = _refs(conn, [asset])
    feed_known: set[str] = set()
    if asset.feed_pipe:
        row = conn.execute(
            "SELECT code FROM assets WHERE code = %s AND kind IN ('pipe', 'gravity_sewer', "
            "'pressure_sewer')",
            (asset.feed_pipe,),
        ).fetchone()
        if row:
            feed_known.add(str(row[0]))
    bad = check_refs([asset], refs, feed_known)
    if bad:
        raise AssetInvalidError("; ".join(f"asset {c}: field '{f}' {m}" for c, f, m in bad))
    set_actor(conn, actor)
    sets = ", ".join(f"{c} = %s" for c in COLUMNS[1:])
    try:
        conn.execute(
            f"UPDATE assets SET {sets}, feed_asset_id = (SELECT id FROM assets WHERE code = %s) "  # noqa: S608 - constants only
            "WHERE code = %s",
            (*row_values(asset, refs)[1:], asset.feed_pipe, code),
        )
    except psycopg.errors.IntegrityError as exc:
        raise AssetInvalidError(_db_message(exc)) from exc
    out = get_asset(conn, code)
    assert out is not None
    return out


# ------------------------------------------------------------------ reading
def get_asset(conn: Conn, code: str, *, lock: bool = False) -> dict[str, Any] | None:
    """One asset as a dict of its columns (``geom_wkb`` bytes, ``zone`` and ``feed_pipe`` as
    codes, ``account_no``), or None."""
    sql = f"SELECT {READ_COLUMNS} FROM {READ_FROM} WHERE a.code = %s"  # noqa: S608 - constants only
    if lock:
        sql += " FOR UPDATE OF a"
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, (code,)).fetchone()


def asset_from_row(row: Mapping[str, Any]) -> Asset:
    """An :class:`Asset` from a row of :data:`READ_COLUMNS` or a version's data."""
    wkb = row["geom_wkb"]
    if isinstance(wkb, str):  # a version's data: '\\x0102...'
        wkb = bytes.fromhex(wkb.removeprefix("\\x"))
    return Asset(
        code=row["code"],
        kind=row["kind"],
        geometry=shapely.from_wkb(bytes(wkb)),
        name=row.get("name") or "",
        status=row.get("status") or "active",
        material=row.get("material"),
        diameter_mm=row.get("diameter_mm"),
        install_year=row.get("install_year"),
        depth_m=row.get("depth_m"),
        elevation_m=row.get("elevation_m"),
        invert_start_m=row.get("invert_start_m"),
        invert_end_m=row.get("invert_end_m"),
        pressure_class=row.get("pressure_class"),
        owner=row.get("owner"),
        condition_grade=row.get("condition_grade"),
        cadastral_no=row.get("cadastral_no"),
        land_plot=row.get("land_plot"),
        accuracy_m=row.get("accuracy_m"),
        source_crs=row.get("source_crs") or "EPSG:4326",
        zone=row.get("zone"),
        ref_code=row.get("ref_code"),
        house_id=row.get("house_id"),
        account_no=row.get("account_no"),
        feed_pipe=row.get("feed_pipe"),
        attrs=row.get("attrs") or {},
    )


def load_assets(conn: Conn, kinds: Iterable[str] | None = None) -> list[Asset]:
    """Every current asset (of ``kinds``), by code."""
    sql = f"SELECT {READ_COLUMNS} FROM {READ_FROM}"  # noqa: S608 - constants only
    params: tuple[Any, ...] = ()
    if kinds is not None:
        sql += " WHERE a.kind = ANY(%s)"
        params = (list(kinds),)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql + " ORDER BY a.code", params).fetchall()
    return [asset_from_row(r) for r in rows]


def history(conn: Conn, code: str) -> list[dict[str, Any]]:
    """Every version of one asset, oldest first: version, op, changed_at, changed_by, source,
    changes (field -> [old, new])."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT version, op, changed_at, changed_by, source, changes FROM asset_versions "
            "WHERE code = %s ORDER BY changed_at, version",
            (code,),
        ).fetchall()


def network_on(conn: Conn, at: datetime) -> list[Asset]:
    """The register as it was at ``at``: for each asset its last version written at or before
    then, leaving out those deleted by then (zone, account and feeding pipe as they are now)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT DISTINCT ON (v.asset_id) v.op, v.data FROM asset_versions v "
            "WHERE v.changed_at <= %s ORDER BY v.asset_id, v.changed_at DESC, v.version DESC",
            (at,),
        ).fetchall()
    zone_codes = dict(_pairs(conn, "SELECT id, code FROM zones"))
    acc_nos = dict(_pairs(conn, "SELECT id, number FROM accounts"))
    asset_codes = dict(_pairs(conn, "SELECT DISTINCT asset_id, code FROM asset_versions"))
    out: list[Asset] = []
    for r in rows:
        if r["op"] == "delete":
            continue
        d = dict(r["data"])
        d["zone"] = zone_codes.get(d.get("zone_id") or 0)
        d["account_no"] = acc_nos.get(d.get("account_id") or 0)
        d["feed_pipe"] = asset_codes.get(d.get("feed_asset_id") or 0)
        out.append(asset_from_row(d))
    return sorted(out, key=lambda a: a.code)


def _pairs(conn: Conn, sql: str) -> list[tuple[Any, Any]]:
    return [(r[0], r[1]) for r in conn.execute(sql)]


# ------------------------------------------------------------------ documents
DOC_KINDS = ("photo", "document")


def add_document(
    conn: Conn,
    code: str,
    *,
    filename: str,
    content_type: str,
    content: bytes,
    actor: Actor,
    note: str = "",
) -> int:
    """Attach a file to an asset; a photo when its type is an image. Returns its id."""
    row = conn.execute("SELECT id FROM assets WHERE code = %s", (code,)).fetchone()
    if row is None:
        raise AssetNotFoundError(code)
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()[:200] or "file"
    kind = "photo" if content_type.startswith("image/") else "document"
    new = conn.execute(
        "INSERT INTO asset_documents (asset_id, kind, filename, content_type, size_bytes, sha256, "
        "content, note, uploaded_at, uploaded_by) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            row[0],
            kind,
            name,
            content_type,
            len(content),
            hashlib.sha256(content).hexdigest(),
            content,
            note,
            actor.at,
            actor.who,
        ),
    ).fetchone()
    assert new is not None
    return int(new[0])


# ------------------------------------------------------------------ check reports
def save_check_run(
    conn: Conn,
    findings: Sequence[Mapping[str, Any]],
    *,
    at: datetime,
    by: str,
    assets: int,
    took_s: float,
) -> int:
    """Store one run of the network checks and its findings; returns the run's id."""
    summary: dict[str, int] = {}
    for f in findings:
        summary[f["check_kind"]] = summary.get(f["check_kind"], 0) + 1
    row = conn.execute(
        "INSERT INTO asset_check_runs (ran_at, ran_by, assets, summary, took_s) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (at, by, assets, Jsonb(summary), took_s),
    ).fetchone()
    assert row is not None
    run_id = int(row[0])
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO asset_check_findings (run_id, check_kind, asset_code, lon, lat, detail) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (run_id, f["check_kind"], f["asset_code"], f["lon"], f["lat"], Jsonb(f["detail"]))
                for f in findings
            ],
        )
    return run_id
