"""The exception hierarchy of the billing package."""

from __future__ import annotations

from suvnet.errors import SuvnetError


class BillingError(SuvnetError):
    """Base of every error that billing raises on purpose."""


class AccountNumberError(BillingError):
    """An account number is malformed or its check digit is wrong."""


class LedgerError(BillingError):
    """A ledger posting was refused (bad amount, unknown account, double reversal...)."""


class TariffError(BillingError):
    """No tariff or norm applies, or tariff data is inconsistent."""


class BillingRunError(BillingError):
    """A billing run could not be started or finished."""


class ImportRejectedError(BillingError):
    """An account import file was rejected as a whole; see ``report`` for the rows."""

    def __init__(self, message: str, report: list[tuple[int, str]]) -> None:
        super().__init__(message)
        self.report = report


class DocumentError(BillingError):
    """A PDF document (slip, invoice, statement, letter) could not be produced."""


class ChannelError(BillingError):
    """A dunning message could not be delivered through its channel."""


class AccountDataError(BillingError):
    """Account or meter data is invalid (bad INN, phone, unknown address...)."""


class NoContactError(ChannelError):
    """The account has no address for this channel (no phone, no Telegram chat)."""
