"""Old name of :mod:`billing.proration` (days of service of an account in a period).

Kept only so that ``billing/zone_usage.py`` (another change in flight) keeps importing until its
import names :mod:`billing.proration`; then delete this file. New code imports
:mod:`billing.proration`.
"""

from __future__ import annotations

from billing.proration import ACTIVE, CLOSED, NONE, SUSPENDED, Service, fetch_services, service_days

__all__ = ["ACTIVE", "CLOSED", "NONE", "SUSPENDED", "Service", "fetch_services", "service_days"]
