"""Fixtures of the billing tests: a non-autocommit connection to the module's database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from billing.config import BillingConfig, load_billing_config

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_url) as c:
        yield c


@pytest.fixture
def cfg() -> BillingConfig:
    return load_billing_config(
        payme_merchant_id="5e730e8e0b852a417aa49ceb",
        payme_checkout_url="https://checkout.example.test",
        click_service_id="1234",
        click_merchant_id="5678",
        click_pay_url="https://click.example.test/services/pay",
    )
