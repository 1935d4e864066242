"""SQL edge of the alarms package: rules, lifecycle state rows, occurrences and the journal.

Every write of a lifecycle transition goes through :func:`write_transition`, for the worker,
replay and operator actions alike, so the journal (``alarm_events``) holds every transition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from alarms.errors import NotFoundError, RuleConfigError
from alarms.lifecycle import AlarmPoint, Transition
from alarms.rules import EvalState, RuleConfig

Conn = psycopg.Connection[Any]

_RULE_COLS = (
    "id, code, kind, priority, unit, limit_value AS limit, deadband, on_delay_s, off_delay_s, "
    "max_shelve_s, point_id, zone_id, device_id, position_id, params"
)


def to_ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def to_epoch(ts: datetime) -> float:
    return ts.timestamp()


def load_rules(conn: Conn, errors: list[str] | None = None) -> list[RuleConfig]:
    """Every enabled rule, validated.

    A bad rule raises RuleConfigError naming it, or, with ``errors`` given, is left out and
    its problem appended there (the worker keeps evaluating the good rules).
    """
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_RULE_COLS} FROM alarm_rules WHERE enabled ORDER BY id"
        ).fetchall()
    out: list[RuleConfig] = []
    for r in rows:
        try:
            out.append(RuleConfig.build(**r))
        except RuleConfigError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
    return out


def load_rule(conn: Conn, rule_id: int) -> RuleConfig:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {_RULE_COLS} FROM alarm_rules WHERE id = %s", (rule_id,)
        ).fetchone()
    if row is None:
        raise NotFoundError(f"alarm rule {rule_id} does not exist")
    return RuleConfig.build(**row)


@dataclass
class StateRow:
    """One alarm_rule_state row, locked by the current transaction."""

    rule_id: int
    run_id: int
    subject: str
    point: AlarmPoint
    alarm_id: int | None
    watermark: datetime | None
    eval: EvalState
    extra: dict[str, Any]


def ensure_state(conn: Conn, rule_id: int, run_id: int, subject: str = "") -> None:
    conn.execute(
        "INSERT INTO alarm_rule_state (rule_id, run_id, subject) VALUES (%s, %s, %s) "
        "ON CONFLICT DO NOTHING",
        (rule_id, run_id, subject),
    )


def lock_state(
    conn: Conn, rule_id: int, run_id: int, subject: str = "", *, skip_locked: bool = True
) -> StateRow | None:
    """Lock a state row for this transaction; ``None`` if another worker holds it."""
    ensure_state(conn, rule_id, run_id, subject)
    tail = "FOR UPDATE SKIP LOCKED" if skip_locked else "FOR UPDATE"
    row = conn.execute(
        "SELECT active, acked, shelved_until, shelved_by, suppressed, out_of_service, alarm_id, "
        "watermark, eval_state FROM alarm_rule_state "
        f"WHERE rule_id = %s AND run_id = %s AND subject = %s {tail}",
        (rule_id, run_id, subject),
    ).fetchone()
    if row is None:
        return None
    ev = dict(row[8] or {})
    extra = {k: v for k, v in ev.items() if k.startswith("_")}
    return StateRow(
        rule_id,
        run_id,
        subject,
        AlarmPoint(row[0], row[1], row[2], row[3], row[4], row[5]),
        row[6],
        row[7],
        EvalState.from_json({k: v for k, v in ev.items() if not k.startswith("_")}),
        extra,
    )


def save_state(conn: Conn, st: StateRow, now: datetime) -> None:
    p = st.point
    conn.execute(
        "UPDATE alarm_rule_state SET state = %s, active = %s, acked = %s, shelved_until = %s, "
        "shelved_by = %s, suppressed = %s, out_of_service = %s, alarm_id = %s, watermark = %s, "
        "eval_state = %s, updated_at = %s WHERE rule_id = %s AND run_id = %s AND subject = %s",
        (
            p.state.value,
            p.active,
            p.acked,
            p.shelved_until,
            p.shelved_by,
            p.suppressed,
            p.out_of_service,
            st.alarm_id,
            st.watermark,
            json.dumps(st.eval.to_json() | st.extra),
            now,
            st.rule_id,
            st.run_id,
            st.subject,
        ),
    )


def _zone_device(conn: Conn, rule: RuleConfig) -> tuple[int | None, int | None]:
    if rule.point_id is not None:
        row = conn.execute(
            "SELECT d.zone_id, d.id FROM points p JOIN devices d ON d.id = p.device_id "
            "WHERE p.id = %s",
            (rule.point_id,),
        ).fetchone()
        if row is not None:
            return (rule.zone_id or row[0], row[1])
    if rule.device_id is not None:
        row = conn.execute(
            "SELECT zone_id FROM devices WHERE id = %s", (rule.device_id,)
        ).fetchone()
        return (rule.zone_id or (row[0] if row else None), rule.device_id)
    return rule.zone_id, None


def write_transition(
    conn: Conn,
    rule: RuleConfig,
    st: StateRow,
    tr: Transition,
    *,
    value: float | None = None,
    message: str = "",
    chattering: bool = False,
) -> int | None:
    """Journal one transition, open/update/close the occurrence, queue notifications.

    Updates ``st.point`` and ``st.alarm_id``; returns the id of the event.
    """
    alarm_id = st.alarm_id
    if tr.opens:
        zone_id, device_id = _zone_device(conn, rule)
        row = conn.execute(
            "INSERT INTO alarms (rule_id, run_id, subject, kind, priority, position_id, zone_id, "
            "point_id, device_id, state, raised_at, value, message, chattering) "
            "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING id",
            (
                rule.id,
                st.run_id,
                st.subject,
                rule.kind.value,
                rule.priority.value,
                rule.position_id,
                zone_id,
                rule.point_id,
                device_id,
                tr.to_state.value,
                tr.ts,
                value,
                message,
                chattering,
            ),
        ).fetchone()
        assert row is not None
        alarm_id = int(row[0])
    elif alarm_id is not None:
        sets = ["state = %s"]
        args: list[Any] = [tr.to_state.value]
        if tr.event == "clear":
            sets.append("cleared_at = %s")
            args.append(tr.ts)
        if tr.event == "activate":
            sets.append("cleared_at = NULL")
            sets.append("value = %s")
            args.append(value)
            if chattering:
                sets.append("chattering = true")
        if tr.event == "ack":
            sets += ["acked_at = %s", "acked_by = %s", "ack_comment = %s"]
            args += [tr.ts, tr.user, tr.comment]
        if tr.closes:
            sets.append("closed_at = %s")
            args.append(tr.ts)
            if tr.event in ("shelve", "suppress", "remove_from_service"):
                sets.append("cleared_at = coalesce(cleared_at, %s)")
                args.append(tr.ts)
        conn.execute(f"UPDATE alarms SET {', '.join(sets)} WHERE id = %s", [*args, alarm_id])
    ev = conn.execute(
        "INSERT INTO alarm_events (alarm_id, rule_id, run_id, subject, ts, event, from_state, "
        "to_state, user_name, comment, value, message) "
        "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING id",
        (
            alarm_id if (tr.opens or tr.closes or st.point.occurrence_open) else None,
            rule.id,
            st.run_id,
            st.subject,
            tr.ts,
            tr.event,
            tr.from_state.value,
            tr.to_state.value,
            tr.user,
            tr.comment,
            value,
            message,
        ),
    ).fetchone()
    assert ev is not None
    event_id = int(ev[0])
    if st.run_id == 0 and alarm_id is not None:
        queue_notifications(conn, event_id, alarm_id, tr.event, annunciated=tr.annunciated)
    st.point = tr.after
    st.alarm_id = None if tr.closes else alarm_id
    return event_id


def queue_notifications(
    conn: Conn, event_id: int, alarm_id: int, event: str, *, annunciated: bool
) -> None:
    """Put one outbox row per matching route (zone, minimum priority, event kind).

    Nothing goes to people for hidden (shelved, suppressed, out-of-service) alarms; Grafana
    annotations record every state change.
    """
    conn.execute(
        """
        INSERT INTO alarm_notifications (event_id, route_id, channel, target, next_attempt_at,
                                         payload)
        SELECT %(ev)s, ro.id, ro.channel, ro.target, least(e.ts, now()), jsonb_build_object(
                   'event', e.event, 'ts', e.ts, 'alarm_id', a.id, 'rule', r.code,
                   'rule_name', r.name, 'kind', a.kind, 'priority', a.priority,
                   'state', e.to_state, 'zone', z.code, 'value', e.value,
                   'message', coalesce(nullif(e.message, ''), a.message),
                   'user', e.user_name, 'comment', e.comment)
        FROM alarm_events e
        JOIN alarms a ON a.id = %(alarm)s
        JOIN alarm_rules r ON r.id = a.rule_id
        LEFT JOIN zones z ON z.id = a.zone_id
        JOIN alarm_routes ro ON ro.enabled
             AND (ro.zone_id IS NULL OR ro.zone_id = a.zone_id)
             AND array_position(ARRAY['low','medium','high','urgent'], a.priority)
                 >= array_position(ARRAY['low','medium','high','urgent'], ro.min_priority)
             AND %(event)s = ANY (ro.events)
             AND (%(ann)s OR ro.channel = 'grafana')
        WHERE e.id = %(ev)s
        ON CONFLICT DO NOTHING
        """,
        {"ev": event_id, "alarm": alarm_id, "event": event, "ann": annunciated},
    )
