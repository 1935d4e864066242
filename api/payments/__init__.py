"""Payment endpoints: Payme Merchant API, Click SHOP API (both without staff login: they carry
their own authentication), the cashier desk, bank statements and the review queue."""

from __future__ import annotations

from fastapi import APIRouter

from api.payments import cashier, providers, statements, web

router = APIRouter()
router.include_router(providers.router)
router.include_router(cashier.router)
router.include_router(statements.router)
router.include_router(web.router)

__all__ = ["router"]
