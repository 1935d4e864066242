"""Payment links for slips and the customer cabinet (Payme and Click).

* Payme checkout: ``<payme_checkout_url>/<base64("m=<merchant_id>;ac.account=<account>;a=<amount
  in tiyin>")>``.
* Click: ``<click_pay_url>?service_id=..&merchant_id=..&amount=<so'm>&transaction_param=<account>``.

Base URLs come from :class:`billing.config.BillingConfig`, and so do the merchant ids, except
for an account of a branch with its own contract with the provider (``own``, from
:func:`billing.branches.account_contracts`; docs/branches.md): its link names the branch's
cash desk or service, whose callbacks pay only that branch's accounts.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Mapping
from urllib.parse import urlencode

from billing.accountno import normalize
from billing.branches import Contract, Provider
from billing.config import BillingConfig
from billing.errors import BillingError


def _amount(amount_tiyin: int) -> int:
    if amount_tiyin < 0:
        raise BillingError(f"payment link amount must not be negative, got {amount_tiyin} tiyin")
    return amount_tiyin


def payme_payload(merchant_id: str, account: str, amount_tiyin: int) -> str:
    """The base64 part of a Payme checkout link."""
    raw = f"m={merchant_id};ac.account={normalize(account)};a={_amount(amount_tiyin)}"
    return base64.b64encode(raw.encode()).decode("ascii")


def payme_link(
    cfg: BillingConfig, account: str, amount_tiyin: int, own: Contract | None = None
) -> str:
    merchant = own.merchant_id if own is not None else cfg.payme_merchant_id
    if not merchant or not cfg.payme_checkout_url:
        raise BillingError(
            "Payme link needs SUVNET_BILLING_PAYME_MERCHANT_ID and "
            "SUVNET_BILLING_PAYME_CHECKOUT_URL"
        )
    base = cfg.payme_checkout_url.rstrip("/")
    return f"{base}/{payme_payload(merchant, account, amount_tiyin)}"


def click_link(
    cfg: BillingConfig, account: str, amount_tiyin: int, own: Contract | None = None
) -> str:
    service = own.service_id if own is not None else cfg.click_service_id
    merchant = own.merchant_id if own is not None else cfg.click_merchant_id
    if not service or not merchant or not cfg.click_pay_url:
        raise BillingError(
            "Click link needs SUVNET_BILLING_CLICK_SERVICE_ID, _CLICK_MERCHANT_ID and "
            "_CLICK_PAY_URL"
        )
    amt = _amount(amount_tiyin)
    query = urlencode(
        {
            "service_id": service,
            "merchant_id": merchant,
            "amount": f"{amt // 100}.{amt % 100:02d}",
            "transaction_param": normalize(account),
        }
    )
    return f"{cfg.click_pay_url}?{query}"


def links(
    cfg: BillingConfig,
    account: str,
    amount_tiyin: int,
    own: Mapping[Provider, Contract] | None = None,
) -> dict[Provider, str]:
    """The Payme and Click links that can be made (Payme first), each through the branch's
    own contract with that provider when ``own`` has one."""
    own = own or {}
    out: dict[Provider, str] = {}
    with contextlib.suppress(BillingError):
        out["payme"] = payme_link(cfg, account, amount_tiyin, own.get("payme"))
    with contextlib.suppress(BillingError):
        out["click"] = click_link(cfg, account, amount_tiyin, own.get("click"))
    return out


def best_link(
    cfg: BillingConfig,
    account: str,
    amount_tiyin: int,
    own: Mapping[Provider, Contract] | None = None,
) -> str | None:
    """The Payme link when it can be made, else the Click link, else None."""
    _amount(amount_tiyin)
    found = links(cfg, account, amount_tiyin, own)
    return found.get("payme") or found.get("click")
