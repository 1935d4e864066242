"""Every ISA-18.2 lifecycle transition, and every refusal, with a moved clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alarms import lifecycle as lc
from alarms.errors import RefusedError
from alarms.lifecycle import AlarmPoint, State

T = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
MAX = timedelta(hours=8)


def _act(p: AlarmPoint, active: bool, t: datetime = T) -> lc.Transition:
    tr = lc.condition(p, active, t)
    assert tr is not None
    return tr


def test_normal_unack_ack_normal() -> None:
    p = AlarmPoint()
    assert p.state is State.NORMAL
    tr = _act(p, True)
    assert (tr.from_state, tr.to_state, tr.opens, tr.annunciated) == (
        State.NORMAL,
        State.UNACK,
        True,
        True,
    )
    tr2 = lc.acknowledge(tr.after, "aziz", "seen", T + timedelta(minutes=1))
    assert tr2.to_state is State.ACK and not tr2.closes and tr2.user == "aziz"
    tr3 = _act(tr2.after, False, T + timedelta(minutes=5))
    assert tr3.to_state is State.NORMAL and tr3.closes


def test_return_to_normal_unacknowledged_then_ack_closes() -> None:
    tr = _act(_act(AlarmPoint(), True).after, False)
    assert tr.to_state is State.RTN_UNACK and not tr.closes
    # re-activation before the ack: the same occurrence, unack again
    again = _act(tr.after, True)
    assert again.to_state is State.UNACK and not again.opens
    tr2 = lc.acknowledge(tr.after, "aziz", None, T)
    assert tr2.from_state is State.RTN_UNACK and tr2.to_state is State.NORMAL and tr2.closes


def test_no_change_is_not_a_transition() -> None:
    assert lc.condition(AlarmPoint(), False, T) is None
    assert lc.suppress(AlarmPoint(), False, T, "x") is None
    assert lc.tick(AlarmPoint(), T) is None


@pytest.mark.parametrize(
    ("point", "reason"),
    [
        (AlarmPoint(), "not_unacknowledged"),
        (AlarmPoint(active=True, acked=True), "not_unacknowledged"),
        (AlarmPoint(shelved_until=T + MAX, shelved_by="x"), "not_unacknowledged"),
        (AlarmPoint(active=True, suppressed=True), "not_unacknowledged"),
        (AlarmPoint(out_of_service=True), "not_unacknowledged"),
    ],
)
def test_ack_refused_unless_unacknowledged(point: AlarmPoint, reason: str) -> None:
    with pytest.raises(RefusedError) as ei:
        lc.acknowledge(point, "aziz", None, T)
    assert ei.value.reason == reason
    assert point.state.value.replace("_", " ") in str(ei.value)


def test_ack_needs_a_named_user() -> None:
    p = _act(AlarmPoint(), True).after
    with pytest.raises(RefusedError) as ei:
        lc.acknowledge(p, "  ", None, T)
    assert ei.value.reason == "user_required"


def test_shelve_hides_and_expires_with_the_clock() -> None:
    p = _act(AlarmPoint(), True).after
    tr = lc.shelve(p, "aziz", "pump repair", until=T + timedelta(hours=2), now=T, max_shelve=MAX)
    assert tr.to_state is State.SHELVED and tr.closes and not tr.annunciated
    # the condition clears and returns while shelved: journaled, never annunciated
    c1 = _act(tr.after, False, T + timedelta(minutes=10))
    c2 = _act(c1.after, True, T + timedelta(minutes=20))
    assert not c1.annunciated and not c2.annunciated and not c2.opens
    assert lc.tick(c2.after, T + timedelta(hours=1, minutes=59)) is None
    exp = lc.tick(c2.after, T + timedelta(hours=3))
    assert exp is not None and exp.event == "shelve_expired"
    assert exp.ts == T + timedelta(hours=2)  # the shelf's own end, not the time of the check
    # still active when it comes back: annunciated again as a new occurrence
    assert exp.to_state is State.UNACK and exp.opens and exp.annunciated


def test_unshelve_inactive_returns_to_normal() -> None:
    tr = lc.shelve(AlarmPoint(), "a", "test", until=T + timedelta(hours=1), now=T, max_shelve=MAX)
    un = lc.unshelve(tr.after, "a", T + timedelta(minutes=5))
    assert un.to_state is State.NORMAL and not un.opens


@pytest.mark.parametrize(
    ("point", "until", "comment", "reason"),
    [
        (AlarmPoint(), T + timedelta(hours=9), "x", "shelve_too_long"),
        (AlarmPoint(), T - timedelta(seconds=1), "x", "shelve_in_past"),
        (AlarmPoint(), T + timedelta(hours=1), "", "comment_required"),
        (
            AlarmPoint(shelved_until=T + timedelta(hours=1)),
            T + timedelta(hours=2),
            "x",
            "already_shelved",
        ),
        (AlarmPoint(out_of_service=True), T + timedelta(hours=1), "x", "out_of_service"),
    ],
)
def test_shelve_refusals(point: AlarmPoint, until: datetime, comment: str, reason: str) -> None:
    with pytest.raises(RefusedError) as ei:
        lc.shelve(point, "aziz", comment, until=until, now=T, max_shelve=MAX)
    assert ei.value.reason == reason


def test_unshelve_refused_when_not_shelved() -> None:
    with pytest.raises(RefusedError) as ei:
        lc.unshelve(AlarmPoint(), "aziz", T)
    assert ei.value.reason == "not_shelved"


def test_suppressed_by_design() -> None:
    p = _act(AlarmPoint(), True).after
    sup = lc.suppress(p, True, T, "comm-fail")
    assert sup is not None and sup.to_state is State.SUPPRESSED and sup.closes
    assert not sup.annunciated
    c = _act(sup.after, False, T + timedelta(minutes=1))
    assert c.to_state is State.SUPPRESSED and not c.annunciated
    un = lc.suppress(c.after, False, T + timedelta(minutes=2), "good again")
    assert un is not None and un.to_state is State.NORMAL and not un.opens


def test_out_of_service_and_back() -> None:
    p = _act(AlarmPoint(), True).after
    oos = lc.remove_from_service(p, "tech", "sensor replaced", T)
    assert oos.to_state is State.OUT_OF_SERVICE and oos.closes
    with pytest.raises(RefusedError) as ei:
        lc.remove_from_service(oos.after, "tech", "again", T)
    assert ei.value.reason == "already_out_of_service"
    with pytest.raises(RefusedError) as ei2:
        lc.remove_from_service(p, "tech", "", T)
    assert ei2.value.reason == "comment_required"
    back = lc.return_to_service(oos.after, "tech", "done", T + timedelta(hours=1))
    assert back.to_state is State.UNACK and back.opens  # still active
    with pytest.raises(RefusedError) as ei3:
        lc.return_to_service(back.after, "tech", None, T)
    assert ei3.value.reason == "in_service"


def test_chattering_and_flood_windows() -> None:
    t = T.timestamp()
    assert lc.is_chattering([t, t + 10, t + 20], t + 20, 60, 3)
    assert not lc.is_chattering([t, t + 10, t + 70], t + 70, 60, 3)
    raised = [t + 30 * i for i in range(11)]
    assert lc.flood_active(raised, t + 300, 600, 10)
    assert not lc.flood_active(raised[:10], t + 300, 600, 10)
    assert not lc.flood_active(raised, t + 700, 600, 10)
