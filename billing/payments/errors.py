"""The exception hierarchy of the payments package."""

from __future__ import annotations

from billing.errors import BillingError


class PaymentsError(BillingError):
    """Base of every error the payments package raises on purpose."""


class PaymentsConfigError(PaymentsError):
    """The payment settings are missing or invalid."""


class CashierError(PaymentsError):
    """A cashier payment or void was refused (unknown receipt, bad amount...)."""


class RequestKeyReusedError(CashierError):
    """The idempotency key of a desk payment was used before for a different payment."""

    def __init__(self, message: str, receipt_no: str) -> None:
        super().__init__(message)
        self.receipt_no = receipt_no


class VoidRefusedError(CashierError):
    """The caller may not void this payment (not theirs, not today, already voided)."""


class StatementError(PaymentsError):
    """A bank statement file could not be read; names the line and what is wrong."""


class StatementUnbalancedError(StatementError):
    """Opening balance + movements differ from the closing balance."""

    def __init__(self, message: str, difference_tiyin: int) -> None:
        super().__init__(message)
        self.difference_tiyin = difference_tiyin


class AllocationError(PaymentsError):
    """A manual allocation of a bank credit was refused."""
