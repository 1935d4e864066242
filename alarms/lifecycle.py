"""The ISA-18.2 / IEC 62682 alarm lifecycle as a pure state machine.

An :class:`AlarmPoint` is the lifecycle state of one alarm (one rule, one subject). Every
function takes the point and the time (``now``) and returns a :class:`Transition` (the new
point plus what happened) or raises :class:`RefusedError` with a reason. Nothing here touches a
clock, a database or the network.

States (``AlarmPoint.state``):

* ``normal``        condition inactive, nothing to acknowledge;
* ``unack``         condition active, not acknowledged (annunciated);
* ``ack``           condition active, acknowledged;
* ``rtn_unack``     condition returned to normal before it was acknowledged;
* ``shelved``       hidden by an operator for a limited time (at most the rule's maximum);
* ``suppressed``    hidden by design (e.g. the instrument reports comm-fail);
* ``out_of_service`` removed from service by a named user (maintenance).

An *occurrence* (a row in ``alarms``) is open while the point is annunciated and either active
or unacknowledged; hidden points never open occurrences.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from alarms.errors import RefusedError


class State(StrEnum):
    NORMAL = "normal"
    UNACK = "unack"
    ACK = "ack"
    RTN_UNACK = "rtn_unack"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"
    OUT_OF_SERVICE = "out_of_service"


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2, Priority.URGENT: 3}

HIDDEN = frozenset({State.SHELVED, State.SUPPRESSED, State.OUT_OF_SERVICE})


@dataclass(frozen=True)
class AlarmPoint:
    """Lifecycle state of one alarm. ``active`` is the (debounced) process condition."""

    active: bool = False
    acked: bool = True
    shelved_until: datetime | None = None
    shelved_by: str | None = None
    suppressed: bool = False
    out_of_service: bool = False

    @property
    def state(self) -> State:
        if self.out_of_service:
            return State.OUT_OF_SERVICE
        if self.shelved_until is not None:
            return State.SHELVED
        if self.suppressed:
            return State.SUPPRESSED
        if self.active:
            return State.ACK if self.acked else State.UNACK
        return State.NORMAL if self.acked else State.RTN_UNACK

    @property
    def hidden(self) -> bool:
        return self.state in HIDDEN

    @property
    def occurrence_open(self) -> bool:
        return not self.hidden and (self.active or not self.acked)


@dataclass(frozen=True)
class Transition:
    """What one event did to an alarm point."""

    event: str
    ts: datetime
    before: AlarmPoint
    after: AlarmPoint
    user: str | None = None
    comment: str | None = None

    @property
    def from_state(self) -> State:
        return self.before.state

    @property
    def to_state(self) -> State:
        return self.after.state

    @property
    def opens(self) -> bool:
        """A new occurrence starts with this transition."""
        return self.after.occurrence_open and not self.before.occurrence_open

    @property
    def closes(self) -> bool:
        """The open occurrence ends with this transition."""
        return self.before.occurrence_open and not self.after.occurrence_open

    @property
    def annunciated(self) -> bool:
        """Operators and notification channels hear of it: never while the alarm is hidden
        (shelved, suppressed by design or out of service)."""
        return not self.after.hidden


def _require_user(user: str | None) -> str:
    if user is None or not user.strip():
        raise RefusedError("user_required", "a named user is required for this action")
    return user.strip()


def condition(point: AlarmPoint, active: bool, now: datetime) -> Transition | None:
    """The process condition became active or inactive (``None`` if it did not change)."""
    if active == point.active:
        return None
    if point.hidden:
        after = replace(point, active=active, acked=True)
    elif active:
        after = replace(point, active=True, acked=False)
    else:
        after = replace(point, active=False)
    return Transition("activate" if active else "clear", now, point, after)


def acknowledge(
    point: AlarmPoint, user: str | None, comment: str | None, now: datetime
) -> Transition:
    """An operator acknowledges the alarm. Only unacknowledged alarms can be acknowledged."""
    who = _require_user(user)
    st = point.state
    if st not in (State.UNACK, State.RTN_UNACK):
        raise RefusedError(
            "not_unacknowledged",
            f"cannot acknowledge: the alarm is {st.value.replace('_', ' ')}, "
            "only an unacknowledged alarm can be acknowledged",
        )
    return Transition("ack", now, point, replace(point, acked=True), who, comment)


def shelve(
    point: AlarmPoint,
    user: str | None,
    comment: str | None,
    *,
    until: datetime,
    now: datetime,
    max_shelve: timedelta,
) -> Transition:
    """Shelve the alarm until ``until`` (at most ``max_shelve`` from now)."""
    who = _require_user(user)
    if not comment or not comment.strip():
        raise RefusedError("comment_required", "shelving needs a comment saying why")
    st = point.state
    if st is State.OUT_OF_SERVICE:
        raise RefusedError("out_of_service", "cannot shelve: the alarm is out of service")
    if st is State.SHELVED:
        raise RefusedError(
            "already_shelved",
            f"the alarm is already shelved until {point.shelved_until:%Y-%m-%d %H:%M} "
            f"by {point.shelved_by}; unshelve it first",
        )
    if until <= now:
        raise RefusedError("shelve_in_past", "the shelving end time must be in the future")
    if until - now > max_shelve:
        hours = max_shelve.total_seconds() / 3600
        raise RefusedError(
            "shelve_too_long",
            f"cannot shelve for longer than the maximum of {hours:g} h for this alarm",
        )
    after = replace(point, shelved_until=until, shelved_by=who, acked=True)
    return Transition("shelve", now, point, after, who, comment.strip())


def _unhide(point: AlarmPoint, **changes: object) -> AlarmPoint:
    after = replace(point, **changes)  # type: ignore[arg-type]
    if not after.hidden and after.active:
        # the alarm is still active when it comes back: annunciate it again
        after = replace(after, acked=False)
    return after


def unshelve(point: AlarmPoint, user: str | None, now: datetime) -> Transition:
    """An operator takes the alarm off the shelf before its time."""
    who = _require_user(user)
    if point.shelved_until is None:
        raise RefusedError("not_shelved", "cannot unshelve: the alarm is not shelved")
    after = _unhide(point, shelved_until=None, shelved_by=None)
    return Transition("unshelve", now, point, after, who)


def tick(point: AlarmPoint, now: datetime) -> Transition | None:
    """Time passes: a shelf whose time is up expires (``None`` if nothing happens)."""
    if point.shelved_until is not None and now >= point.shelved_until:
        after = _unhide(point, shelved_until=None, shelved_by=None)
        return Transition("shelve_expired", point.shelved_until, point, after)
    return None


def suppress(point: AlarmPoint, on: bool, now: datetime, reason: str) -> Transition | None:
    """Suppression by design switches on or off (``None`` if it does not change)."""
    if on == point.suppressed:
        return None
    if on:
        after = replace(point, suppressed=True, acked=True)
        return Transition("suppress", now, point, after, None, reason)
    return Transition("unsuppress", now, point, _unhide(point, suppressed=False), None, reason)


def remove_from_service(
    point: AlarmPoint, user: str | None, comment: str | None, now: datetime
) -> Transition:
    """Take the alarm out of service (maintenance); needs a named user and a comment."""
    who = _require_user(user)
    if not comment or not comment.strip():
        raise RefusedError("comment_required", "taking an alarm out of service needs a comment")
    if point.out_of_service:
        raise RefusedError("already_out_of_service", "the alarm is already out of service")
    after = replace(point, out_of_service=True, acked=True, shelved_until=None, shelved_by=None)
    return Transition("remove_from_service", now, point, after, who, comment.strip())


def return_to_service(
    point: AlarmPoint, user: str | None, comment: str | None, now: datetime
) -> Transition:
    """Put an out-of-service alarm back in service."""
    who = _require_user(user)
    if not point.out_of_service:
        raise RefusedError("in_service", "the alarm is not out of service")
    return Transition(
        "return_to_service", now, point, _unhide(point, out_of_service=False), who, comment
    )


# ------------------------------------------------------------------ chattering and floods
def is_chattering(activations: list[float], now: float, window_s: float, count: int) -> bool:
    """ISA-18.2 chattering: ``count`` or more activations within the last ``window_s`` seconds."""
    return sum(1 for t in activations if now - window_s < t <= now) >= count


def flood_active(raised: list[float], now: float, window_s: float, threshold: int) -> bool:
    """Alarm flood: more than ``threshold`` alarms raised in the last ``window_s`` seconds."""
    return sum(1 for t in raised if now - window_s < t <= now) > threshold
