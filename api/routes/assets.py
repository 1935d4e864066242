"""The asset register's JSON API: the map's layers by bounding box, sensors, alarms, zones
and the check report; an asset's card with its history; changes with optimistic locking
(``version``: a change made on an older version is refused with 409, so two editors never
overwrite each other silently); documents and photos. The reads are
:mod:`assets.queries`, the writes :mod:`assets.store` (the versioning triggers run for
every change)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any, Literal

import shapely
from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.audit import audit_sync
from api.deps import AppState, Conn, State, client_ip, require
from api.errors import ApiError, ConflictError, InvalidError, NotFoundError
from api.i18n import DISPLAY_TZ, gettext_for, pick_language, request_language
from api.readconn import ReadConn
from api.responses import json_response
from api.security import READ_REGISTRY, WRITE_REGISTRY, Principal
from api.services import asset_ops as ops
from api.syncdb import run_sync
from assets import isolation_queries as iq
from assets import outages as ao
from assets import queries as aq
from assets import renewal_queries as rq
from assets import sheet_queries as sq
from assets import store
from assets.errors import AssetConflictError, AssetError, AssetInvalidError, AssetNotFoundError
from assets.isolation import IsolationError, NoValvesError
from assets.sheet_pdf import measure as sheet_measure
from assets.sheet_pdf import render as render_sheets
from assets.sheets import PAPERS, SCALES, SheetError, plan
from billing.config import get_billing_config

router = APIRouter(prefix="/api/v1/assets", tags=["assets"])

Reader = Annotated[Principal, Depends(require(READ_REGISTRY))]
Writer = Annotated[Principal, Depends(require(WRITE_REGISTRY))]
Announcer = Annotated[Principal, Depends(require(ops.OUTAGE_ANNOUNCE))]
CriticalEditor = Annotated[Principal, Depends(require(ops.CRITICAL_EDIT))]
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,63}$"
Code = Annotated[str, Path(pattern=CODE_PATTERN, description="asset id")]
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
_CODE_RE = re.compile(CODE_PATTERN)


def _bbox(text: str) -> aq.BBox:
    try:
        return aq.BBox.parse(text)
    except ValueError as exc:
        raise InvalidError(str(exc)) from exc


@router.get("/map", summary="The register's features in a bounding box (GeoJSON)")
async def map_layer(
    who: Reader,
    conn: ReadConn,
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
async def map_sensors(who: Reader, conn: ReadConn) -> Response:
    return json_response(await aq.sensors(conn))


@router.get("/map/zones", summary="Zones with their open alarms (GeoJSON)")
async def map_zones(who: Reader, conn: ReadConn) -> Response:
    return json_response(await aq.zones(conn))


@router.get("/map/alarms", summary="Open alarms on their devices and zones (GeoJSON)")
async def map_alarms(who: Reader, conn: ReadConn) -> Response:
    return json_response(await aq.open_alarms(conn))


@router.get("/map/checks", summary="The latest network-check report (GeoJSON)")
async def map_checks(who: Reader, conn: ReadConn) -> Response:
    return json_response(await aq.check_findings(conn))


@router.get("/search", summary="Assets whose id or name contains the text")
async def search(
    who: Reader, conn: Conn, q: Annotated[str, Query(min_length=1, max_length=64)]
) -> Response:
    return json_response({"items": await aq.asset_codes(conn, q)})


# ---------------------------------------------------------------------- valve isolation
def valve_list(text: str) -> tuple[str, ...]:
    """``V-1,V-7`` -> the valve codes (422 for anything that is not an asset id)."""
    codes = tuple(c.strip() for c in text.split(",") if c.strip())
    bad = [c for c in codes if not _CODE_RE.match(c)]
    if bad or len(codes) > 200:
        raise InvalidError("unavailable must be up to 200 valve ids separated by commas")
    return codes


def isolation_target(  # noqa: PLR0917 - one a query parameter
    pipe: str | None,
    at: float | None,
    lon: float | None,
    lat: float | None,
    alarm: int | None,
    unavailable: str,
) -> iq.Target:
    if (lon is None) != (lat is None):
        raise InvalidError("give both lon and lat, or neither")
    if pipe is None and lon is None and alarm is None:
        raise InvalidError("name a pipe, a point (lon and lat) or an alarm", code="no_target")
    if at is not None and pipe is None:
        raise InvalidError("a place on a pipe (at) needs the pipe")
    return iq.Target(pipe, at, lon, lat, alarm, valve_list(unavailable))


def with_addresses(answer: dict[str, Any] | None, lang: str | None) -> dict[str, Any] | None:
    """Each account's ``address`` written out in ``lang`` (the map's list), when asked."""
    if answer is not None and lang is not None:
        for a in answer["accounts"]:
            a["address"] = ops.address_text(a, lang)
    return answer


async def isolation_response(conn: Any, t: iq.Target, lang: str | None = None) -> Response:
    """The isolation's answer, or 422 saying why not: with no valve that can isolate the
    pipe, ``offer`` is the isolation of its zone by the zone's boundary valves."""
    try:
        answer = await iq.isolation_answer(conn, t)
    except NoValvesError as exc:
        return json_response(
            {
                "error": exc.code,
                "detail": str(exc),
                "pipe": exc.pipe,
                "zone": exc.zone,
                "offer": with_addresses(exc.offer_answer, lang),
            },
            status_code=422,
        )
    except IsolationError as exc:
        raise InvalidError(str(exc), code=exc.code) from exc
    return json_response(with_addresses(answer, lang))


@router.get("/isolation", summary="Valve isolation: the valves to close and who loses water")
async def isolation(  # noqa: PLR0917 - FastAPI parameters
    who: Reader,
    conn: Conn,
    pipe: Annotated[str | None, Query(pattern=CODE_PATTERN, description="the failed pipe")] = None,
    at: Annotated[
        float | None, Query(ge=0, le=1, description="where on the pipe, 0..1 from its start")
    ] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    alarm: Annotated[int | None, Query(ge=1, le=2**62, description="a leak or burst alarm")] = None,
    unavailable: Annotated[
        str, Query(max_length=4000, description="valves found seized today, comma-separated")
    ] = "",
    lang: Annotated[
        Literal["uz", "uz_Cyrl", "ru", "en"] | None,
        Query(description="also each account's address written out in this language"),
    ] = None,
) -> Response:
    """The smallest set of valves to close (broken ones passed over to the next ring), the
    pipes and nodes without water, the service connections, addresses and accounts that lose
    supply (critical customers first), the sensors and meters inside, and the same as GeoJSON
    for the map. A pipe that no valve can isolate answers 422 ``no_isolating_valves`` with the
    zone's boundary valves as the offer."""
    t = isolation_target(pipe, at, lon, lat, alarm, unavailable)
    return await isolation_response(conn, t, lang)


class OutageIn(BaseModel):
    """A planned outage: what to isolate (a pipe, a point or an alarm), when, and why."""

    model_config = ConfigDict(extra="forbid")

    pipe: str | None = Field(None, pattern=CODE_PATTERN)
    at: float | None = Field(None, ge=0, le=1)
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    alarm: int | None = Field(None, ge=1, le=2**62)
    unavailable: list[str] = Field(default_factory=list, max_length=200)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: str = Field("", max_length=500)
    kind: Literal["planned", "emergency"] = "planned"
    work_order: int | None = Field(None, ge=1, le=2**62)


@router.post(
    "/outages",
    summary="Announce an outage: notices to the subscribers it cuts off",
    status_code=201,
)
async def announce(
    request: Request, who: Announcer, st: State, conn: Conn, body: OutageIn
) -> Response:
    """Isolates the target, records the outage with the accounts it cuts off, and tells each
    of them in their language: SMS and Telegram where configured and known, a letter to print
    otherwise (and always for a critical customer)."""
    t = isolation_target(
        body.pipe, body.at, body.lon, body.lat, body.alarm, ",".join(body.unavailable)
    )
    req = ops.OutageRequest(
        t, body.starts_at, body.ends_at, body.reason, body.kind, body.work_order
    )
    try:
        out = await ops.announce_outage(conn, st, req, who=who, ip=client_ip(request))
    except NoValvesError:
        return await isolation_response(conn, t)
    except IsolationError as exc:
        raise InvalidError(str(exc), code=exc.code) from exc
    return json_response(out, status_code=201)


@router.get("/outages", summary="Outages, latest first")
async def outages(who: Reader, conn: Conn) -> Response:
    return json_response({"items": await ao.recent_outages(conn)})


@router.get("/outages/{outage_id}", summary="An outage: its accounts and notices")
async def outage(
    who: Reader, conn: Conn, outage_id: Annotated[int, Path(ge=1, le=2**62)]
) -> Response:
    row = await ao.outage(conn, outage_id)
    if row is None:
        raise NotFoundError(f"no outage {outage_id}")
    return json_response(row)


@router.get("/outages/{outage_id}/letters.pdf", summary="The outage's letters to print")
async def outage_letters(
    who: Reader, conn: Conn, outage_id: Annotated[int, Path(ge=1, le=2**62)]
) -> Response:
    rows = await ao.outage_letters(conn, outage_id)
    if not rows and await ao.outage(conn, outage_id) is None:
        raise NotFoundError(f"no outage {outage_id}")
    pdf = ops.letters_pdf(rows, get_billing_config())
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="outage-{outage_id}-letters.pdf"'},
    )


class CriticalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal[
        "hospital", "clinic", "home_dialysis", "school", "kindergarten", "care_home", "other"
    ]
    note: str = Field("", max_length=500)


AccountNo = Annotated[str, Path(pattern=r"^[0-9]{9}$", description="account number")]


@router.get("/critical-customers", summary="Critical customers (schools, clinics...)")
async def critical_list(who: Reader, conn: Conn) -> Response:
    return json_response({"items": await ao.critical_customers(conn)})


async def _critical(
    request: Request, who: Principal, st: State, account_no: str, *, kind: str | None, note: str
) -> Response:
    try:
        out = await run_sync(
            st,
            ops.set_critical,
            account_no,
            kind,
            note,
            who=who,
            ip=client_ip(request),
            at=st.clock(),
        )
    except ao.AccountNotFoundError as exc:
        raise NotFoundError(str(exc)) from exc
    except AssetError as exc:
        raise InvalidError(str(exc)) from exc
    return json_response(out)


@router.put("/critical-customers/{account_no}", summary="Flag an account as critical")
async def critical_set(
    request: Request, who: CriticalEditor, st: State, account_no: AccountNo, body: CriticalIn
) -> Response:
    return await _critical(request, who, st, account_no, kind=body.kind, note=body.note)


@router.delete("/critical-customers/{account_no}", summary="Take the critical flag off")
async def critical_unset(
    request: Request, who: CriticalEditor, st: State, account_no: AccountNo
) -> Response:
    return await _critical(request, who, st, account_no, kind=None, note="")


class ValveState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operable: bool | None = Field(None, description="false: the valve cannot be closed")
    normally_closed: bool | None = Field(None, description="kept closed in normal operation")
    note: str = Field("", max_length=500)


@router.post("/{code}/valve-state", summary="Mark a valve operable or not, open or closed")
async def valve_state(
    request: Request, who: Writer, st: State, code: Code, body: ValveState
) -> Response:
    if body.operable is None and body.normally_closed is None:
        raise InvalidError("say operable or normally_closed")
    try:
        out = await run_sync(
            st,
            ops.set_valve_state,
            code,
            operable=body.operable,
            normally_closed=body.normally_closed,
            note=body.note,
            who=who,
            ip=client_ip(request),
            at=st.clock(),
        )
    except AssetNotFoundError as exc:
        raise NotFoundError(str(exc)) from exc
    except AssetInvalidError as exc:
        raise InvalidError(str(exc)) from exc
    return json_response(out)


# ---------------------------------------------------------------------- renewal, sheets
Lang = Annotated[str | None, Query(max_length=10, description="uz, uz_Cyrl, ru or en")]


@router.get("/renewal", summary="Pipes ranked for renewal, with the failure rates")
async def renewal(
    who: Reader,
    st: State,
    conn: Conn,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 100,
    geometry: Annotated[bool, Query(description="the pipes as GeoJSON too (the map)")] = False,
) -> Response:
    """Failure rates per km and year by material, diameter and age class (from the closed
    repairs), and the pipes ranked by expected failures a year × what a failure cuts off
    (subscribers, critical customers weighed 20 times), each with its reasons."""
    today = st.clock().astimezone(DISPLAY_TZ).date()
    return json_response(await rq.ranking(conn, today=today, limit=limit, geometry=geometry))


@router.get("/renewal.xlsx", summary="The renewal ranking as a workbook")
async def renewal_xlsx(who: Reader, st: State, conn: Conn, lang: Lang = None) -> Response:
    today = st.clock().astimezone(DISPLAY_TZ).date()
    data = await rq.ranking(conn, today=today, limit=100_000)
    body = ops.renewal_xlsx(data, pick_language(lang, None), get_billing_config().utility_name)
    return Response(
        body,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="renewal-{today}.xlsx"'},
    )


@router.get("/sheets/streets", summary="Streets that a route-map sheet can be made of")
async def sheet_streets(who: Reader, conn: Conn) -> Response:
    return json_response({"items": await sq.streets(conn)})


N_ = ops.N_
SHEET_ERRORS = {
    "no_target": N_("Name one street, zone or route, or the two assets a route joins."),
    "paper": N_("The paper must be A4 or A3."),
    "scale": N_("The scale must be one of %(scales)s."),
    "no_street": N_("There is no street %(id)s."),
    "no_zone": N_("There is no zone %(zone)s."),
    "codes": N_("Pipe ids are letters, digits and _ . : / - separated by commas."),
    "no_end": N_("A route needs both the asset it starts from and the one it goes to."),
    "nothing_to_draw": N_("There is no pipe to draw for this."),
    "sheet": N_("These sheets cannot be made at this scale: choose a smaller scale."),
}
"""The sheet's refusals, said in the reader's language (the page's ``lang`` or cookie)."""


def sheet_refusal(lang: str, code: str, status: int = 422, **values: Any) -> ApiError:
    return (NotFoundError if status == 404 else InvalidError)(
        gettext_for(lang).gettext(SHEET_ERRORS[code]) % values, code=code
    )


def sheet_codes(text: str | None, lang: str) -> tuple[str, ...]:
    codes = tuple(c.strip() for c in (text or "").split(",") if c.strip())
    if len(codes) > 500 or any(not _CODE_RE.match(c) for c in codes):
        raise sheet_refusal(lang, "codes")
    return codes


async def sheet_pdf(  # noqa: PLR0917 - the sheet's parameters
    conn: Any,
    st: AppState,
    lang: str,
    street: int | None,
    zone: str | None,
    route: str,
    start: str | None,
    end: str | None,
    paper: str,
    scale: int | None,
) -> tuple[bytes, int]:
    """The PDF of a street's, a zone's or a route's sheets, and how many sheets. Every
    refusal is a 4xx in the reader's language, and nothing is drawn for it."""
    if sum(bool(x) for x in (street, zone, route, start or end)) != 1:
        raise sheet_refusal(lang, "no_target")
    if paper not in PAPERS:
        raise sheet_refusal(lang, "paper")
    if scale is not None and scale not in SCALES:
        raise sheet_refusal(lang, "scale", scales=", ".join(f"1:{s}" for s in SCALES))
    if street:
        found = await sq.street_name(conn, street)
        if found is None:
            raise sheet_refusal(lang, "no_street", 404, id=street)
        name = ops.street_name(found, lang) + (f" ({found['mahalla']})" if found["mahalla"] else "")
        focus, kind = await sq.street_focus(conn, street), "street"
    elif zone:
        if not await sq.zone_exists(conn, zone):
            raise sheet_refusal(lang, "no_zone", 404, zone=zone)
        focus, kind, name = await sq.zone_focus(conn, zone), "zone", zone
    else:
        pipes = sheet_codes(route, lang)
        ends = sheet_codes(",".join(x or "" for x in (start, end)), lang)
        if not route and len(ends) != 2:
            raise sheet_refusal(lang, "no_end")
        focus = await sq.route_focus(conn, pipes, *(ends if not route else (None, None)))
        kind = "route"
        name = " – ".join(ends) if not route else ", ".join(pipes[:6])
    if not focus:
        raise sheet_refusal(lang, "nothing_to_draw")
    feats = await sq.around(conn, focus)
    today = st.clock().astimezone(DISPLAY_TZ).date()
    texts = ops.sheet_texts(lang, kind, name, get_billing_config().utility_name, today)

    def draw() -> tuple[bytes, int]:
        pages = plan(focus, feats, paper=paper, texts=texts, measure=sheet_measure(), scale=scale)  # type: ignore[arg-type]
        return render_sheets(pages, title=texts.title), len(pages)

    try:
        return await asyncio.to_thread(draw)  # seconds of drawing: off the event loop
    except SheetError as exc:
        raise sheet_refusal(lang, "sheet") from exc


@router.get("/sheets.pdf", summary="Route-map sheets of a street, a zone or a route (PDF)")
async def sheets(  # noqa: PLR0917 - FastAPI parameters
    request: Request,
    who: Reader,
    st: State,
    conn: Conn,
    street: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    zone: Annotated[str | None, Query(max_length=64)] = None,
    route: Annotated[str, Query(max_length=8000, description="pipe ids, comma-separated")] = "",
    start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
    paper: Annotated[str, Query(max_length=8, description="A4 or A3")] = "A3",
    scale: Annotated[
        int | None, Query(description="1:N; none: the largest that fits one sheet")
    ] = None,
    lang: Lang = None,
) -> Response:
    """A series of landscape sheets (A4 or A3) over a street, a zone, a list of pipes
    (``route``) or the shortest way along the network between two assets (``from``,
    ``to``): pipes with diameter and material, fittings with their ids, distances to the
    building line, scale bar, north arrow, legend, sheet index, date, the utility's name."""
    pdf, n = await sheet_pdf(
        conn,
        st,
        request_language(lang, request.cookies),
        street,
        zone,
        route,
        start,
        end,
        paper,
        scale,
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": 'attachment; filename="route-sheets.pdf"',
            "X-Sheets": str(n),
        },
    )


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
