"""Typed billing configuration.

Values come from ``SUVNET_BILLING_*`` environment variables, then from the ``billing:`` section
of the YAML file named by ``SUVNET_CONFIG``, then from the defaults below. Nothing about payment
providers is hard-coded: merchant ids and checkout base URLs must be configured.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from billing.errors import BillingError


class ConsumptionParams(BaseModel):
    """Validation and estimation rules of the consumption kernels."""

    model_config = ConfigDict(frozen=True)

    spike_max_m3_per_h: float = Field(
        5.0, gt=0, description="an interval whose average flow exceeds this is a spike"
    )
    reverse_max_m3: float = Field(
        0.05, ge=0, description="a backwards step up to this size is reverse flow (kept, net)"
    )
    long_zero_days: float = Field(
        14.0, gt=0, description="zero consumption for this long flags a stopped meter"
    )
    gap_hours: float = Field(
        48.0, gt=0, description="an interval longer than this between readings is a gap"
    )
    prolonged_estimation_days: float = Field(
        31.0, gt=0, description="estimated time above this in a period is prolonged estimation"
    )
    rollover_window: float = Field(
        0.1,
        gt=0,
        lt=0.5,
        description="fraction of the register range near 0 / full scale that identifies a rollover",
    )
    history_days: float = Field(
        92.0, gt=0, description="history used to average consumption for estimates"
    )


DEFAULT_UTILITY_NAME = "Suv ta'minoti MChJ"
"""The placeholder name of the utility until ``SUVNET_BILLING_UTILITY_NAME`` is set."""


class BillingConfig(BaseSettings):
    """Billing settings (see docs/billing.md for every field)."""

    model_config = SettingsConfigDict(env_prefix="SUVNET_BILLING_", extra="ignore", frozen=True)

    utility_name: str = DEFAULT_UTILITY_NAME
    utility_inn: str = ""
    utility_bank_account: str = ""
    utility_mfo: str = ""
    utility_address: str = ""
    utility_phone: str = ""
    utility_bank: str = Field(
        "", description="the utility's bank, e.g. 'Xalq banki Urganch filiali'"
    )
    cabinet_url: str | None = Field(
        None,
        description="the customer cabinet's address as customers reach it (https://.../cabinet/): "
        "the slip's QR code when no payment link is configured",
    )
    default_language: Literal["uz", "ru"] = "uz"
    timezone: str = Field("Asia/Tashkent", description="billing months start at local midnight")
    # payment links (format from the payments issue)
    # the merchant ids are shared with the payment callbacks: SUVNET_PAYME_MERCHANT_ID etc.
    # (docs/payments.md) are read as well, so an operator sets each id once
    payme_merchant_id: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "payme_merchant_id", "SUVNET_BILLING_PAYME_MERCHANT_ID", "SUVNET_PAYME_MERCHANT_ID"
        ),
    )
    payme_checkout_url: str | None = Field(
        None, description="Payme checkout base URL; the base64 payload is appended after '/'"
    )
    click_service_id: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "click_service_id", "SUVNET_BILLING_CLICK_SERVICE_ID", "SUVNET_CLICK_SERVICE_ID"
        ),
    )
    click_merchant_id: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "click_merchant_id", "SUVNET_BILLING_CLICK_MERCHANT_ID", "SUVNET_CLICK_MERCHANT_ID"
        ),
    )
    click_pay_url: str | None = Field(None, description="Click payment page base URL")
    # penalty (legal entities only)
    penalty_enabled: bool = False
    penalty_rate_bp_per_day: int = Field(4, ge=0, le=1000, description="0.04 %/day = 4 bp")
    penalty_grace_days: int = Field(30, ge=0)
    penalty_cap_bp: int = Field(5000, ge=0, le=10000, description="cap as share of the debt")
    payment_due_day: int = Field(10, ge=1, le=28, description="day of the next month")
    # documents
    font_path: Path | None = None
    font_bold_path: Path | None = None
    # dunning channels
    sms_gateway_url: str | None = None
    sms_gateway_token: str | None = None
    sms_sender: str = "SUVNET"
    telegram_bot_token: str | None = None
    telegram_api_url: str | None = None
    consumption: ConsumptionParams = ConsumptionParams()


REQUISITES: tuple[tuple[str, str, str], ...] = (
    ("utility_name", "SUVNET_BILLING_UTILITY_NAME", "the utility's name"),
    ("utility_inn", "SUVNET_BILLING_UTILITY_INN", "the utility's STIR (INN, 9 digits)"),
    (
        "utility_bank_account",
        "SUVNET_BILLING_UTILITY_BANK_ACCOUNT",
        "the utility's bank account (20 digits)",
    ),
    ("utility_mfo", "SUVNET_BILLING_UTILITY_MFO", "the bank's MFO (5 digits)"),
    ("utility_address", "SUVNET_BILLING_UTILITY_ADDRESS", "the utility's address"),
    ("utility_phone", "SUVNET_BILLING_UTILITY_PHONE", "the utility's phone"),
)
"""The seller's requisites printed on every slip and invoice: (field, setting, what)."""
_DIGITS = {"utility_inn": 9, "utility_bank_account": 20, "utility_mfo": 5}


def requisites_problems(cfg: BillingConfig) -> list[tuple[str, str]]:
    """What is missing or malformed in the requisites the slips and invoices print, as
    ``(field, English sentence)``: a blank STIR, MFO or bank account, the placeholder name,
    no phone or address; and a slip without a QR code (no payment link and no cabinet
    address). Empty when the documents are complete. Shown by ``suvnet billing info``,
    before billing runs and slips, and on the billing page."""
    out: list[tuple[str, str]] = []
    for name, setting, what in REQUISITES:
        value = str(getattr(cfg, name) or "").strip()
        if not value or (name == "utility_name" and value == DEFAULT_UTILITY_NAME):
            out.append((name, f"{what} is not set ({setting}): documents print it blank"))
            continue
        digits = _DIGITS.get(name)
        if digits is not None and not (
            value.isascii() and value.isdigit() and len(value) == digits
        ):
            out.append((name, f"{what} is {value!r}, not {digits} digits ({setting})"))
    has_link = bool(
        (cfg.payme_merchant_id and cfg.payme_checkout_url)
        or (cfg.click_service_id and cfg.click_merchant_id and cfg.click_pay_url)
    )
    if not has_link and not (cfg.cabinet_url or "").strip():
        what = "slips carry no QR code: set SUVNET_BILLING_CABINET_URL (the customer cabinet's"
        out.append(("qr", what + " address) or a Payme or Click payment link"))
    return out


def _yaml_section() -> dict[str, Any]:
    cfg = os.environ.get("SUVNET_CONFIG")
    if not cfg:
        return {}
    try:
        loaded = yaml.safe_load(Path(cfg).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BillingError(f"cannot read config file {cfg}: {exc}") from exc
    section = loaded.get("billing", {}) if isinstance(loaded, dict) else {}
    if not isinstance(section, dict):
        raise BillingError(f"config file {cfg}: 'billing' must be a mapping")
    return section


def load_billing_config(**overrides: Any) -> BillingConfig:
    """Build and validate the billing settings; raise :class:`BillingError` listing problems."""
    data = {**_yaml_section(), **overrides}
    prefix = "SUVNET_BILLING_"
    env_keys = {k[len(prefix) :].lower() for k in os.environ if k.startswith(prefix)}
    for k in env_keys:  # environment wins over the file
        data.pop(k, None)
    try:
        return BillingConfig(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise BillingError(f"invalid billing settings: {problems}") from exc


@lru_cache(maxsize=1)
def get_billing_config() -> BillingConfig:
    return load_billing_config()
