"""Payments: cashier desk, bank statements, Payme Merchant API and Click SHOP API.

Every channel ends in :func:`billing.ledger.post_payment` inside the same database
transaction as its own state change (docs/payments.md)."""
