"""Operator actions (acknowledge, shelve, unshelve, out of service) and replay runs.

Each action locks the alarm's state row, asks the pure lifecycle whether the action is allowed
(a refusal raises RefusedError with the reason), and journals the transition.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from alarms import lifecycle as lc
from alarms.engine import PassResult, run_pass
from alarms.errors import NotFoundError, RefusedError
from alarms.leakrule import repair
from alarms.store import Conn, StateRow, load_rule, lock_state, save_state, write_transition

log = logging.getLogger(__name__)

Action = Literal[
    "ack", "shelve", "unshelve", "remove_from_service", "return_to_service", "repaired"
]


@dataclass(frozen=True)
class Target:
    rule_id: int
    run_id: int
    subject: str


def find_target(conn: Conn, ref: str) -> Target:
    """An alarm by occurrence id (``123``) or by rule code (``P12-low``, ``rule:subject``)."""
    if ref.isdigit():
        row = conn.execute(
            "SELECT rule_id, run_id, subject FROM alarms WHERE id = %s", (int(ref),)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"there is no alarm number {ref}")
        return Target(int(row[0]), int(row[1]), str(row[2]))
    code, _, subject = ref.partition(":")
    row = conn.execute("SELECT id FROM alarm_rules WHERE code = %s", (code,)).fetchone()
    if row is None:
        raise NotFoundError(f"there is no alarm rule with the code {code!r}")
    return Target(int(row[0]), 0, subject)


def act(
    conn: Conn,
    ref: str,
    action: Action,
    *,
    user: str | None,
    comment: str | None = None,
    now: datetime,
    until: datetime | None = None,
) -> lc.Transition:
    """Apply an operator action; raises RefusedError (with ``reason``) when not allowed.

    ``repaired`` (a leak rule's leak was repaired, at ``until`` or now) is :func:`repaired`;
    its last transition is returned."""
    if action == "repaired":
        trs = repaired(conn, ref, user=user, comment=comment, now=now, at=until)
        return (
            trs[-1]
            if trs
            else lc.Transition("repaired", until or now, lc.AlarmPoint(), lc.AlarmPoint())
        )
    tgt = find_target(conn, ref)
    rule = load_rule(conn, tgt.rule_id)
    with conn.transaction():
        st = lock_state(conn, tgt.rule_id, tgt.run_id, tgt.subject, skip_locked=False)
        assert st is not None
        tr = _decide(
            st,
            action,
            user=user,
            comment=comment,
            now=now,
            until=until,
            max_shelve_s=rule.max_shelve_s,
        )
        write_transition(conn, rule, st, tr)
        save_state(conn, st, now)
    log.info(
        "alarm %s: %s by %s (%s -> %s)", ref, action, user, tr.from_state.value, tr.to_state.value
    )
    return tr


def repaired(
    conn: Conn,
    ref: str,
    *,
    user: str | None,
    comment: str | None = None,
    now: datetime,
    at: datetime | None = None,
) -> list[lc.Transition]:
    """The leak alarmed by a ``leak`` rule was repaired (at ``at``, default ``now``).

    The hook for work orders and dispatchers: it closes the rule's open leak event
    (``leak_events.close_reason = 'repaired'``), clears the alarm and acknowledges it for
    ``user`` with ``comment``, so the occurrence ends; the rule then learns the zone afresh
    (nothing is judged for ``settle_h`` after the repair). ``ref``: the alarm number or the
    rule code. Refused (RefusedError) for a rule that is not a leak rule
    (``not_a_leak_rule``), without an open leak event (``no_open_leak``), without a user
    (``user_required``) or with a repair time in the future (``repair_in_future``).
    """
    who = (user or "").strip()
    if not who:
        raise RefusedError("user_required", "a named user is required for this action")
    tgt = find_target(conn, ref)
    rule = load_rule(conn, tgt.rule_id)
    when = at or now
    with conn.transaction():
        st = lock_state(conn, tgt.rule_id, tgt.run_id, "", skip_locked=False)
        assert st is not None
        trs = repair(conn, rule, st, user=who, comment=comment, at=when, now=now)
        save_state(conn, st, now)
    log.info("leak of %s repaired at %s (by %s)", ref, when, who)
    return trs


def _decide(
    st: StateRow,
    action: Action,
    *,
    user: str | None,
    comment: str | None,
    now: datetime,
    until: datetime | None,
    max_shelve_s: float,
) -> lc.Transition:
    p = st.point
    if action == "ack":
        return lc.acknowledge(p, user, comment, now)
    if action == "shelve":
        return lc.shelve(
            p,
            user,
            comment,
            until=until or now,
            now=now,
            max_shelve=timedelta(seconds=max_shelve_s),
        )
    if action == "unshelve":
        return lc.unshelve(p, user, now)
    if action == "remove_from_service":
        return lc.remove_from_service(p, user, comment, now)
    return lc.return_to_service(p, user, comment, now)


def replay(
    conn: Conn,
    from_ts: datetime,
    to_ts: datetime,
    *,
    now: datetime,
    user: str = "",
    note: str = "",
    batch: int = 20000,
    on_pass: Callable[[PassResult], None] | None = None,
) -> int:
    """Evaluate every rule over stored history exactly as the live worker does.

    The alarms are written under a new replay run (``alarms.replayed`` is true). The rules
    that could not be evaluated (no points, no readings in the window) are listed in
    ``alarm_replay_runs.problems``. Returns the run id.
    """
    row = conn.execute(
        "INSERT INTO alarm_replay_runs (from_ts, to_ts, started_by, note) VALUES (%s,%s,%s,%s) "
        "RETURNING id",
        (from_ts, to_ts, user, note),
    ).fetchone()
    assert row is not None
    run_id = int(row[0])
    problems: list[str] = []
    while True:
        res = run_pass(conn, now, run_id=run_id, start=from_ts, until=to_ts, batch=batch)
        problems += [e for e in res.errors if e not in problems]
        if on_pass is not None:
            on_pass(res)
        if not res.more:
            break
    conn.execute(
        "UPDATE alarm_replay_runs SET finished_at = now(), problems = %s, "
        "alarms = (SELECT count(*) FROM alarms WHERE run_id = %s) WHERE id = %s",
        (problems, run_id, run_id),
    )
    log.info("replay run %s finished (%s .. %s)", run_id, from_ts, to_ts)
    return run_id
