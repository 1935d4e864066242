"""The payment providers' callbacks: Payme (``POST /api/payme``) and Click
(``POST /api/click/prepare``, ``POST /api/click/complete``, ``POST /api/click``). No staff
login: Payme sends Basic auth with the cash-desk key, Click signs every call. Each callback
runs in one database transaction. The providers' own state (their transactions) is kept by
the billing package (:mod:`billing.payments`)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import get_state
from api.services.payments import payments_config
from api.syncdb import run_sync
from billing.errors import BillingError
from billing.payments import click, payme

log = logging.getLogger(__name__)
router = APIRouter(tags=["payment providers"])


@router.post(
    "/api/payme",
    summary="Payme Merchant API (JSON-RPC 2.0; Basic auth Paycom:<cash-desk key>)",
)
async def payme_endpoint(request: Request) -> JSONResponse:
    st = get_state(request)
    cfg = payments_config(request)
    body = await request.body()
    try:
        answer = await run_sync(
            st, payme.handle, body, request.headers.get("authorization"), cfg, st.clock()
        )
    except (BillingError, psycopg.Error) as exc:
        log.exception("payme call failed (rolled back)")
        answer = payme.PaymeError(payme.SYSTEM_ERROR, detail=str(exc)).body(_request_id(body))
    return JSONResponse(answer)


def _request_id(body: bytes) -> Any:
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return req.get("id") if isinstance(req, dict) else None


@router.api_route("/api/payme", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def payme_not_post(request: Request) -> JSONResponse:
    return JSONResponse(payme.PaymeError(payme.NOT_POST).body(None))


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def _click(request: Request, action: int | None) -> JSONResponse:
    st = get_state(request)
    cfg = payments_config(request)
    fields = await _form(request)
    act = fields.get("action", "").strip()
    if action is None:
        action = 0 if act == "0" else 1 if act == "1" else None
    if action is None:
        return JSONResponse(
            {
                "click_trans_id": fields.get("click_trans_id"),
                "merchant_trans_id": fields.get("merchant_trans_id"),
                "error": click.ACTION_NOT_FOUND,
                "error_note": click.NOTES[click.ACTION_NOT_FOUND],
            }
        )
    fn: Any = click.prepare if action == 0 else click.complete
    try:
        answer = await run_sync(st, fn, fields, cfg, st.clock())
    except (BillingError, psycopg.Error):
        log.exception("click call failed (rolled back)")
        answer = {
            "click_trans_id": fields.get("click_trans_id"),
            "merchant_trans_id": fields.get("merchant_trans_id"),
            "error": click.UPDATE_FAILED,
            "error_note": click.NOTES[click.UPDATE_FAILED],
        }
    return JSONResponse(answer)


@router.post("/api/click/prepare", summary="Click SHOP API Prepare (action 0), form-encoded")
async def click_prepare(request: Request) -> JSONResponse:
    return await _click(request, 0)


@router.post("/api/click/complete", summary="Click SHOP API Complete (action 1), form-encoded")
async def click_complete(request: Request) -> JSONResponse:
    return await _click(request, 1)


@router.post("/api/click", summary="Click SHOP API, one URL for both actions (by `action`)")
async def click_any(request: Request) -> JSONResponse:
    return await _click(request, None)
