"""suvnet billing: accounts, tariffs, numba consumption kernels, billing run, ledger, slips.

The payments engineer posts into the same ledger through :func:`billing.ledger.post_payment`.
"""
