"""Every suvnet dashboard.

``network``, ``zone``, ``pressure`` and ``devices`` read the registry and telemetry tables
of the core schema. ``alarms`` and ``billing`` read the tables of the alarms and billing
packages; their panels declare those tables (``SqlTarget.requires``), and the network and
zone dashboards borrow a few alarm panels from ``alarms``.
"""

from __future__ import annotations

from dashboards.boards import alarms, billing, devices, network, pressure, zone
from dashboards.model import Dashboard


def all_dashboards() -> tuple[Dashboard, ...]:
    """The dashboards in the order they are listed."""
    return (
        network.DASHBOARD,
        zone.DASHBOARD,
        pressure.DASHBOARD,
        devices.DASHBOARD,
        alarms.DASHBOARD,
        billing.DASHBOARD,
    )
