"""Typed payment settings, from ``SUVNET_*`` environment variables (docs/payments.md).

Nothing about a provider is hard-coded: merchant ids and keys come from here. A channel whose
settings are missing answers every callback with its protocol's authorization error.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from billing.payments.errors import PaymentsConfigError

PAYME_TIMEOUT_MS = 43_200_000  # 12 hours, fixed by the Payme Merchant API


class PaymentsConfig(BaseSettings):
    """Settings of the payment channels."""

    model_config = SettingsConfigDict(env_prefix="SUVNET_", extra="ignore", frozen=True)

    payme_merchant_id: str | None = Field(None, description="Payme cash-desk (merchant) id")
    payme_key: SecretStr | None = Field(
        None, description="Payme cash-desk key (Basic auth password of Payme's callbacks)"
    )
    payme_test_key: SecretStr | None = Field(
        None, description="Payme sandbox key, accepted as well when set (testing only)"
    )
    payme_account_field: str = Field(
        "account", description="name of the account field in Payme's `account` object"
    )
    payme_timeout_ms: int = Field(PAYME_TIMEOUT_MS, gt=0)
    payme_min_tiyin: int = Field(100, gt=0, description="smallest payment accepted (tiyin)")
    payme_max_tiyin: int = Field(10**12, gt=0, description="largest payment accepted (tiyin)")
    payme_cancel_after_perform: bool = Field(
        True, description="allow Payme to cancel a performed payment (reversed in the ledger)"
    )
    click_service_id: str | None = Field(None, description="Click service id")
    click_merchant_id: str | None = Field(None, description="Click merchant id")
    click_secret_key: SecretStr | None = Field(None, description="Click SECRET_KEY (signatures)")
    click_min_tiyin: int = Field(100, gt=0)
    click_max_tiyin: int = Field(10**12, gt=0)
    timezone: str = Field("Asia/Tashkent", description="the office's day (shifts, same-day void)")
    fuzzy_min_score: float = Field(
        0.55, ge=0, le=1, description="name/address similarity that makes a review suggestion"
    )


def load_payments_config(**overrides: object) -> PaymentsConfig:
    try:
        return PaymentsConfig(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"SUVNET_{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise PaymentsConfigError(f"invalid payment settings: {problems}") from exc


@lru_cache(maxsize=1)
def get_payments_config() -> PaymentsConfig:
    return load_payments_config()
