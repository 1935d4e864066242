"""The work orders' JSON API (``/api/v1/work-orders``): repairs, inspections, replacements,
new connections and flushing on the register's assets, with their dates, crew, materials,
cost (tiyin), photos and the valves operated. Every staff role reads; the dispatcher and the
technical department create; the technical department changes, closes and cancels. Closing a
repair started by an alarm reports the repair to the alarm (its journal shows it). Every
change is audited. A work order on an abandoned asset, or one that ends before it starts, is
refused with 422 and nothing is written."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from api.deps import Conn, Paging, State, client_ip, require
from api.errors import InvalidError, NotFoundError
from api.responses import json_response
from api.security import READ_REGISTRY, Principal
from api.services import asset_ops as ops
from api.syncdb import run_sync
from assets import work_order_queries as wq
from assets.errors import AssetError

router = APIRouter(prefix="/api/v1/work-orders", tags=["work orders"])

Reader = Annotated[Principal, Depends(require(READ_REGISTRY))]
Creator = Annotated[Principal, Depends(require(ops.WORK_ORDER_CREATE))]
Editor = Annotated[Principal, Depends(require(ops.WORK_ORDER_EDIT))]
WorkOrderId = Annotated[int, Path(ge=1, le=2**62, description="the work order's id")]
Kind = Literal["repair", "inspection", "replacement", "new_connection", "flushing"]
Failure = Literal["break", "joint_leak", "corrosion", "third_party"]
MAX_PHOTO_BYTES = 20 * 1024 * 1024


class Material(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item: str = Field(min_length=1, max_length=200)
    quantity: float = Field(gt=0, le=1e9)
    unit: str = Field("", max_length=20)


class WorkOrderFields(BaseModel):
    """The fields of a work order (times with their zone; the cost in tiyin)."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind | None = None
    failure: Failure | None = None
    alarm_id: int | None = Field(None, ge=1, le=2**62)
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    reported_at: AwareDatetime | None = None
    planned_for: date | None = None
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    crew: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=4000)
    materials: list[Material] | None = Field(None, max_length=100)
    cost_tiyin: int | None = Field(None, ge=0, le=10**15)

    def values(self) -> dict[str, Any]:
        out = self.model_dump(exclude_unset=True)
        if "materials" in out and out["materials"] is not None:
            out["materials"] = [dict(m) for m in out["materials"]]
        return out


class NewWorkOrder(WorkOrderFields):
    asset: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,63}$")
    kind: Kind


class WorkOrderChange(WorkOrderFields):
    version: int = Field(ge=1, description="the version read; a newer one answers 409")


class Cancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class ValveOperation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    valve: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,63}$")
    action: Literal["closed", "opened", "found_inoperable"]
    at: AwareDatetime | None = None
    note: str = Field("", max_length=500)


async def _sync(st: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await run_sync(st, fn, *args, **kwargs)
    except AssetError as exc:
        raise ops.api_error(exc) from exc


@router.get("", summary="Work orders, newest first (filters: asset, status, kind, alarm)")
async def list_work_orders(  # noqa: PLR0917 - FastAPI parameters
    who: Reader,
    conn: Conn,
    pg: Paging,
    asset: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[Literal["open", "closed", "cancelled"] | None, Query()] = None,
    kind: Annotated[Kind | None, Query()] = None,
    alarm: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    return json_response(
        await wq.list_work_orders(conn, pg, asset=asset, status=status, kind=kind, alarm=alarm)
    )


@router.post("", summary="Open a work order", status_code=201)
async def create(request: Request, who: Creator, st: State, body: NewWorkOrder) -> Response:
    fields = body.values()
    asset = fields.pop("asset")
    row = await _sync(
        st,
        ops.create_work_order,
        asset,
        fields,
        who=who,
        ip=client_ip(request),
        at=st.clock(),
    )
    return json_response(row, status_code=201)


@router.get("/{wo_id}", summary="A work order: fields, valves, photos, journal")
async def get_work_order(who: Reader, conn: Conn, wo_id: WorkOrderId) -> Response:
    row = await wq.work_order(conn, wo_id)
    if row is None:
        raise NotFoundError(f"no work order {wo_id}")
    return json_response(row)


@router.patch("/{wo_id}", summary="Change a work order (optimistic locking by version)")
async def change(
    request: Request, who: Editor, st: State, wo_id: WorkOrderId, body: WorkOrderChange
) -> Response:
    fields = body.values()
    version = fields.pop("version")
    row = await _sync(
        st,
        ops.change_work_order,
        wo_id,
        fields,
        version=version,
        who=who,
        ip=client_ip(request),
        at=st.clock(),
    )
    return json_response(row)


@router.post("/{wo_id}/close", summary="Close a work order (a repair reports to its alarm)")
async def close(
    request: Request, who: Editor, st: State, wo_id: WorkOrderId, body: WorkOrderFields
) -> Response:
    row = await _sync(
        st,
        ops.close_work_order,
        wo_id,
        body.values(),
        who=who,
        ip=client_ip(request),
        at=st.clock(),
    )
    return json_response(row)


@router.post("/{wo_id}/cancel", summary="Cancel an open work order")
async def cancel(
    request: Request, who: Editor, st: State, wo_id: WorkOrderId, body: Cancel
) -> Response:
    row = await _sync(
        st,
        ops.cancel_work_order,
        wo_id,
        body.reason,
        who=who,
        ip=client_ip(request),
        at=st.clock(),
    )
    return json_response(row)


@router.post("/{wo_id}/valves", summary="Record a valve the crew operated", status_code=201)
async def valve(
    request: Request, who: Editor, st: State, wo_id: WorkOrderId, body: ValveOperation
) -> Response:
    row = await _sync(
        st,
        ops.operate_valve,
        wo_id,
        body.valve,
        body.action,
        when=body.at,
        note=body.note,
        who=who,
        ip=client_ip(request),
        at=st.clock(),
    )
    return json_response(row, status_code=201)


@router.post("/{wo_id}/photos", summary="Attach a photo or document", status_code=201)
async def photo(  # noqa: PLR0917 - FastAPI parameters
    request: Request,
    who: Editor,
    st: State,
    wo_id: WorkOrderId,
    file: Annotated[UploadFile, File()],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    content = await file.read(MAX_PHOTO_BYTES + 1)
    if len(content) > MAX_PHOTO_BYTES:
        raise InvalidError(f"a photo may have at most {MAX_PHOTO_BYTES} bytes")
    doc_id = await _sync(
        st,
        ops.attach_photo,
        wo_id,
        filename=file.filename or "photo",
        content_type=file.content_type or "application/octet-stream",
        content=content,
        note=note,
        who=who,
        ip=client_ip(request),
        at=st.clock(),
    )
    return json_response({"id": doc_id}, status_code=201)
