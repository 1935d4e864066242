"""The exception hierarchy of the dashboards package."""

from __future__ import annotations

from suvnet.errors import SuvnetError


class DashboardsError(SuvnetError):
    """Base of every error the dashboards package raises on purpose."""


class MacroError(DashboardsError):
    """A Grafana macro or template variable in a panel query could not be expanded."""


class PushError(DashboardsError):
    """Grafana refused or could not be reached while pushing dashboards."""


class AclError(DashboardsError):
    """The MQTT password or ACL files could not be produced."""
