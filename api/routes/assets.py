"""The asset register's JSON API: the map's layers by bounding box, sensors, alarms, zones
and the check report; an asset's card with its history; changes with optimistic locking
(``version``: a change made on an older version is refused with 409, so two editors never
overwrite each other silently); documents and photos. The reads are
:mod:`assets.queries`, the writes :mod:`assets.store` (the versioning triggers run for
every change)."""

from __future__ import annotations

from typing import Annotated, Any

import shapely
from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.audit import audit_sync
from api.deps import Conn, State, client_ip, require
from api.errors import ConflictError, InvalidError, NotFoundError
from api.responses import json_response
from api.security import READ_REGISTRY, WRITE_REGISTRY, Principal
from api.syncdb import run_sync
from assets import queries as aq
from assets import store
from assets.errors import AssetConflictError, AssetInvalidError, AssetNotFoundError

router = APIRouter(prefix="/api/v1/assets", tags=["assets"])

Reader = Annotated[Principal, Depends(require(READ_REGISTRY))]
Writer = Annotated[Principal, Depends(require(WRITE_REGISTRY))]
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,63}$"
Code = Annotated[str, Path(pattern=CODE_PATTERN, description="asset id")]
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024


def _bbox(text: str) -> aq.BBox:
    try:
        return aq.BBox.parse(text)
    except ValueError as exc:
        raise InvalidError(str(exc)) from exc


@router.get("/map", summary="The register's features in a bounding box (GeoJSON)")
async def map_layer(
    who: Reader,
    conn: Conn,
    bbox: Annotated[str, Query(description="west,south,east,north in degrees (WGS 84)")],
    layers: Annotated[str, Query(description="water, sewer, services (comma-separated)")] = (
        "water,sewer"
    ),
    limit: Annotated[int, Query(ge=1, le=aq.MAX_LIMIT)] = 4000,
) -> Response:
    """At most ``limit`` features, the widest pipes first; ``truncated`` is true when the
    box holds more (the map then asks the user to zoom in for the rest)."""
    names = [x.strip() for x in layers.split(",") if x.strip()]
    unknown = sorted(set(names) - set(aq.LAYER_KINDS))
    if unknown:
        raise InvalidError(f"unknown layer(s) {', '.join(unknown)}: use water, sewer, services")
    body = await aq.map_features(conn, _bbox(bbox), names, limit)
    return Response(body, media_type="application/geo+json")


@router.get("/map/sensors", summary="Sensors with their state and latest values (GeoJSON)")
async def map_sensors(who: Reader, conn: Conn) -> Response:
    return json_response(await aq.sensors(conn))


@router.get("/map/zones", summary="Zones with their open alarms (GeoJSON)")
async def map_zones(who: Reader, conn: Conn) -> Response:
    return json_response(await aq.zones(conn))


@router.get("/map/alarms", summary="Open alarms on their devices and zones (GeoJSON)")
async def map_alarms(who: Reader, conn: Conn) -> Response:
    return json_response(await aq.open_alarms(conn))


@router.get("/map/checks", summary="The latest network-check report (GeoJSON)")
async def map_checks(who: Reader, conn: Conn) -> Response:
    return json_response(await aq.check_findings(conn))


@router.get("/search", summary="Assets whose id or name contains the text")
async def search(
    who: Reader, conn: Conn, q: Annotated[str, Query(min_length=1, max_length=64)]
) -> Response:
    return json_response({"items": await aq.asset_codes(conn, q)})


@router.get("/documents/{doc_id}", summary="A document or photo of an asset")
async def get_document(
    who: Reader, conn: Conn, doc_id: Annotated[int, Path(ge=1, le=2**62)]
) -> Response:
    doc = await aq.document(conn, doc_id)
    if doc is None:
        raise NotFoundError(f"no document {doc_id}")
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in doc["filename"])
    # never rendered as a page of this site: downloaded, with its type not guessed
    return Response(
        bytes(doc["content"]),
        media_type=doc["content_type"]
        if doc["content_type"].startswith("image/")
        else "application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{safe}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


@router.get("/{code}", summary="An asset's card: fields, geometry, history, documents")
async def asset_card(who: Reader, conn: Conn, code: Code) -> Response:
    card = await aq.asset_card(conn, code)
    if card is None:
        raise NotFoundError(f"no asset {code}")
    return json_response(card)


class AssetChange(BaseModel):
    """The fields to change; ``version`` is the version the change was made on."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="the version read; a newer one answers 409")
    name: str | None = Field(None, max_length=200)
    status: str | None = Field(None, max_length=20)
    material: str | None = Field(None, max_length=200)
    diameter_mm: float | None = None
    install_year: int | None = None
    depth_m: float | None = None
    elevation_m: float | None = None
    invert_start_m: float | None = None
    invert_end_m: float | None = None
    pressure_class: str | None = Field(None, max_length=200)
    owner: str | None = Field(None, max_length=200)
    condition_grade: int | None = None
    cadastral_no: str | None = Field(None, max_length=200)
    land_plot: str | None = Field(None, max_length=200)
    accuracy_m: float | None = None
    zone: str | None = Field(None, max_length=64)
    account_no: str | None = Field(None, max_length=64)
    feed_pipe: str | None = Field(None, max_length=64)
    geometry: dict[str, Any] | None = Field(None, description="GeoJSON in WGS 84")


def _apply_change(
    conn: Any, code: str, change: AssetChange, *, who: Principal, ip: str, at: Any
) -> dict[str, Any]:
    """The change and its audit row, in one transaction (runs in :func:`run_sync`)."""
    fields = change.model_dump(exclude_unset=True, exclude={"version", "geometry"})
    if change.geometry is not None:
        try:
            fields["geometry"] = shapely.from_geojson(_json_text(change.geometry))
        except shapely.errors.GEOSException as exc:
            raise AssetInvalidError(
                f"asset {code}: field 'geometry' is not GeoJSON: {exc}"
            ) from exc
    actor = store.Actor(who.username, "api", at)
    after = store.update_asset(conn, code, fields, actor, expected_version=change.version)
    after.pop("geom_wkb", None)
    audit_sync(
        conn,
        who=who,
        ip=ip,
        now=at,
        action="change",
        entity="asset",
        entity_id=code,
        after={k: v for k, v in fields.items() if k != "geometry"},
    )
    return after


def _json_text(doc: dict[str, Any]) -> str:
    import orjson

    return orjson.dumps(doc).decode()


@router.patch("/{code}", summary="Change an asset (optimistic locking by version)")
async def change_asset(
    request: Request, who: Writer, st: State, code: Code, change: AssetChange
) -> Response:
    try:
        after = await run_sync(
            st, _apply_change, code, change, who=who, ip=client_ip(request), at=st.clock()
        )
    except AssetNotFoundError as exc:
        raise NotFoundError(str(exc)) from exc
    except AssetConflictError as exc:
        raise ConflictError(str(exc)) from exc
    except AssetInvalidError as exc:
        raise InvalidError(str(exc)) from exc
    return json_response(after)


def _add_document(
    conn: Any,
    code: str,
    who: Principal,
    ip: str,
    at: Any,
    *,
    filename: str,
    content_type: str,
    content: bytes,
    note: str,
) -> int:
    actor = store.Actor(who.username, "api", at)
    doc_id = store.add_document(
        conn,
        code,
        filename=filename,
        content_type=content_type,
        content=content,
        actor=actor,
        note=note,
    )
    audit_sync(
        conn,
        who=who,
        ip=ip,
        now=at,
        action="attach",
        entity="asset",
        entity_id=code,
        after={"document": doc_id, "filename": filename, "bytes": len(content)},
    )
    return doc_id


@router.post("/{code}/documents", summary="Attach a document or photo", status_code=201)
async def add_document(  # noqa: PLR0917 - FastAPI parameters
    request: Request,
    who: Writer,
    st: State,
    code: Code,
    file: Annotated[UploadFile, File()],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    content = await file.read(MAX_DOCUMENT_BYTES + 1)
    if len(content) > MAX_DOCUMENT_BYTES:
        raise InvalidError(f"a document may have at most {MAX_DOCUMENT_BYTES} bytes")
    try:
        doc_id = await run_sync(
            st,
            _add_document,
            code,
            who,
            client_ip(request),
            st.clock(),
            filename=file.filename or "file",
            content_type=file.content_type or "application/octet-stream",
            content=content,
            note=note,
        )
    except AssetNotFoundError as exc:
        raise NotFoundError(str(exc)) from exc
    return json_response({"id": doc_id}, status_code=201)
