"""Payment links for slips and the customer cabinet (Payme and Click).

* Payme checkout: ``<payme_checkout_url>/<base64("m=<merchant_id>;ac.account=<account>;a=<amount
  in tiyin>")>``.
* Click: ``<click_pay_url>?service_id=..&merchant_id=..&amount=<so'm>&transaction_param=<account>``.

Merchant ids and base URLs always come from :class:`billing.config.BillingConfig`.
"""

from __future__ import annotations

import base64
from urllib.parse import urlencode

from billing.accountno import normalize
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


def payme_link(cfg: BillingConfig, account: str, amount_tiyin: int) -> str:
    if not cfg.payme_merchant_id or not cfg.payme_checkout_url:
        raise BillingError(
            "Payme link needs SUVNET_BILLING_PAYME_MERCHANT_ID and "
            "SUVNET_BILLING_PAYME_CHECKOUT_URL"
        )
    base = cfg.payme_checkout_url.rstrip("/")
    return f"{base}/{payme_payload(cfg.payme_merchant_id, account, amount_tiyin)}"


def click_link(cfg: BillingConfig, account: str, amount_tiyin: int) -> str:
    if not cfg.click_service_id or not cfg.click_merchant_id or not cfg.click_pay_url:
        raise BillingError(
            "Click link needs SUVNET_BILLING_CLICK_SERVICE_ID, _CLICK_MERCHANT_ID and "
            "_CLICK_PAY_URL"
        )
    amt = _amount(amount_tiyin)
    query = urlencode(
        {
            "service_id": cfg.click_service_id,
            "merchant_id": cfg.click_merchant_id,
            "amount": f"{amt // 100}.{amt % 100:02d}",
            "transaction_param": normalize(account),
        }
    )
    return f"{cfg.click_pay_url}?{query}"


def best_link(cfg: BillingConfig, account: str, amount_tiyin: int) -> str | None:
    """The Payme link when configured, else the Click link, else None."""
    if cfg.payme_merchant_id and cfg.payme_checkout_url:
        return payme_link(cfg, account, amount_tiyin)
    if cfg.click_service_id and cfg.click_merchant_id and cfg.click_pay_url:
        return click_link(cfg, account, amount_tiyin)
    return None
