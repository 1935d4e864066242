"""The exception hierarchy of the alarms package."""

from __future__ import annotations

from suvnet.errors import SuvnetError


class AlarmsError(SuvnetError):
    """Base of every error the alarms package raises on purpose."""


class RefusedError(AlarmsError):
    """An operator action that the alarm lifecycle does not allow in the current state.

    ``reason`` is a short machine-readable code, the message explains it to the operator.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RuleConfigError(AlarmsError):
    """An alarm rule is configured inconsistently (missing limit, unknown unit, ...).

    ``field`` names the rule setting at fault (``limit``, ``point``, ``params``, ...) when
    it is known; ``path`` the same more precisely (``("params", "flow_point")``).
    """

    def __init__(
        self, message: str, field: str | None = None, path: tuple[str, ...] | None = None
    ) -> None:
        super().__init__(message)
        self.field = field
        self.path = path if path is not None else ((field,) if field else None)


class NotFoundError(AlarmsError):
    """The named alarm, rule or position does not exist."""


class DeliveryError(AlarmsError):
    """A notification could not be delivered (the outbox retries it)."""
