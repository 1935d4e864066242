"""SQL edge of the alarms package: rules, lifecycle state rows, occurrences and the journal.

Every write of a lifecycle transition goes through :func:`write_transition`, for the worker,
replay and operator actions alike, so the journal (``alarm_events``) holds every transition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from alarms import zone
from alarms.errors import NotFoundError, RuleConfigError
from alarms.lifecycle import AlarmPoint, Priority, Transition
from alarms.rules import EvalState, Kind, RuleConfig

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
            f"SELECT {_RULE_COLS} FROM alarm_rules WHERE enabled ORDER BY id"  # noqa: S608 (a fixed column list)
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
            f"SELECT {_RULE_COLS} FROM alarm_rules WHERE id = %s",  # noqa: S608 (a fixed column list)
            (rule_id,),
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
        "SELECT active, acked, shelved_until, shelved_by, suppressed, out_of_service, alarm_id, "  # noqa: S608 (the lock clause is one of two fixed strings)
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
        conn.execute(f"UPDATE alarms SET {', '.join(sets)} WHERE id = %s", [*args, alarm_id])  # noqa: S608 (fixed column assignments, values are parameters)
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


# ------------------------------------------------------------------ rule definitions
# One definition of a rule as a person writes it (rules file, site file ``alarms:`` section,
# API), one validation (RuleConfig.build) and one upsert, shared by all three.

RuleCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
RefCode = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Change = Literal["created", "updated", "unchanged"]


class RuleIn(BaseModel):
    """An alarm rule as written in a rules file, a site file or an API request."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    code: RuleCode
    name: str = Field("", max_length=200)
    kind: Kind
    point: RefCode | None = Field(None, description="the watched point, as device/point")
    zone: RefCode | None = Field(None, description="zone code (zone analytics, service_min)")
    device: RefCode | None = Field(None, description="device code (offline)")
    position: RefCode = Field("default", description="operator position code")
    priority: Priority = Priority.MEDIUM
    unit: str = Field("", max_length=32)
    limit: float | None = Field(None, ge=-1e12, le=1e12)
    deadband: float = Field(0.0, ge=0, le=1e12)
    on_delay_s: float = Field(0.0, ge=0, le=1e9)
    off_delay_s: float = Field(0.0, ge=0, le=1e9)
    max_shelve_s: float = Field(8 * 3600.0, gt=0, le=1e9)
    params: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class PositionIn(BaseModel):
    """An operator position (a dispatcher desk that alarms are routed to)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: RuleCode
    name: str = Field("", max_length=200)


def save_position(conn: Conn, pos: PositionIn) -> Change:
    """Create or update an operator position (matched by code)."""
    row = conn.execute(
        "INSERT INTO alarm_positions (code, name) VALUES (%s, %s) "
        "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name "
        "WHERE alarm_positions.name IS DISTINCT FROM EXCLUDED.name RETURNING (xmax = 0)",
        (pos.code, pos.name),
    ).fetchone()
    return "unchanged" if row is None else ("created" if row[0] else "updated")


def _ref_id(conn: Conn, rule: RuleIn, key: str) -> int | None:
    value = getattr(rule, key)
    if value is None:
        return None
    if key == "point":
        dev, _, pname = str(value).partition("/")
        row = conn.execute(
            "SELECT p.id FROM points p JOIN devices d ON d.id = p.device_id "
            "WHERE d.code = %s AND p.name = %s",
            (dev, pname),
        ).fetchone()
        what = f"no point {value!r} (write it as device/point)"
    else:
        table = {"zone": "zones", "device": "devices", "position": "alarm_positions"}[key]
        row = conn.execute(f"SELECT id FROM {table} WHERE code = %s", (value,)).fetchone()  # noqa: S608 (the table comes from a fixed mapping)
        what = f"no {key} {value!r}" if key != "position" else f"no operator position {value!r}"
    if row is None:
        raise RuleConfigError(f"rule {rule.code}: {what}", key)
    return int(row[0])


def save_rule(conn: Conn, rule: RuleIn) -> tuple[Change, RuleConfig]:
    """Validate a rule and create or update it (matched by code).

    Raises RuleConfigError (with ``field``) for a bad rule, an unknown point, zone, device
    or position, or an enabled zone rule that would watch nothing (no district meter, no
    flow point, no customer meter it needs: alarms.zone). A rule whose stored settings
    already equal these is left untouched.
    """
    ids = {f"{k}_id": _ref_id(conn, rule, k) for k in ("point", "zone", "device", "position")}
    try:
        cfg = RuleConfig.build(
            id=0,
            code=rule.code,
            kind=rule.kind.value,
            priority=rule.priority.value,
            unit=rule.unit,
            limit=rule.limit,
            deadband=rule.deadband,
            on_delay_s=rule.on_delay_s,
            off_delay_s=rule.off_delay_s,
            max_shelve_s=rule.max_shelve_s,
            params=dict(rule.params),
            **ids,
        )
    except (ValueError, TypeError) as exc:
        raise RuleConfigError(f"rule {rule.code}: {exc}") from exc
    if rule.enabled:
        # a zone rule that would watch nothing is refused now, not found out months later
        try:
            zone.check_rule(conn, cfg.kind.value, cfg.zone_id, cfg.params)
        except zone.ZoneSetupError as exc:
            raise RuleConfigError(f"rule {rule.code}: {exc}", exc.field, exc.path) from exc
    row = conn.execute(
        "INSERT INTO alarm_rules AS r (code, name, kind, point_id, zone_id, device_id, "
        "position_id, priority, unit, limit_value, deadband, on_delay_s, off_delay_s, "
        "max_shelve_s, params, enabled) "
        "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
        "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, "
        "point_id = EXCLUDED.point_id, zone_id = EXCLUDED.zone_id, "
        "device_id = EXCLUDED.device_id, position_id = EXCLUDED.position_id, "
        "priority = EXCLUDED.priority, unit = EXCLUDED.unit, "
        "limit_value = EXCLUDED.limit_value, deadband = EXCLUDED.deadband, "
        "on_delay_s = EXCLUDED.on_delay_s, off_delay_s = EXCLUDED.off_delay_s, "
        "max_shelve_s = EXCLUDED.max_shelve_s, params = EXCLUDED.params, "
        "enabled = EXCLUDED.enabled "
        "WHERE (r.name, r.kind, r.point_id, r.zone_id, r.device_id, r.position_id, r.priority, "
        "r.unit, r.limit_value, r.deadband, r.on_delay_s, r.off_delay_s, r.max_shelve_s, "
        "r.params, r.enabled) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.kind, EXCLUDED.point_id, "
        "EXCLUDED.zone_id, EXCLUDED.device_id, EXCLUDED.position_id, EXCLUDED.priority, "
        "EXCLUDED.unit, EXCLUDED.limit_value, EXCLUDED.deadband, EXCLUDED.on_delay_s, "
        "EXCLUDED.off_delay_s, EXCLUDED.max_shelve_s, EXCLUDED.params, EXCLUDED.enabled) "
        "RETURNING (xmax = 0)",
        (
            cfg.code,
            rule.name,
            cfg.kind.value,
            cfg.point_id,
            cfg.zone_id,
            cfg.device_id,
            cfg.position_id,
            cfg.priority.value,
            cfg.unit,
            cfg.limit,
            cfg.deadband,
            cfg.on_delay_s,
            cfg.off_delay_s,
            cfg.max_shelve_s,
            Jsonb(dict(rule.params)),
            rule.enabled,
        ),
    ).fetchone()
    change: Change = "unchanged" if row is None else ("created" if row[0] else "updated")
    return change, cfg


def set_rule_enabled(conn: Conn, code: str, enabled: bool) -> Change:
    """Enable or disable a rule by code; NotFoundError if there is none."""
    row = conn.execute("SELECT enabled FROM alarm_rules WHERE code = %s", (code,)).fetchone()
    if row is None:
        raise NotFoundError(f"alarm rule {code!r} does not exist")
    if bool(row[0]) == enabled:
        return "unchanged"
    conn.execute("UPDATE alarm_rules SET enabled = %s WHERE code = %s", (enabled, code))
    return "updated"


RULE_LIST_SQL = (
    "SELECT r.code, r.name, r.kind, r.priority, r.unit, r.limit_value AS limit, r.deadband, "
    "r.on_delay_s, r.off_delay_s, r.max_shelve_s, d.code || '/' || p.name AS point, "
    "z.code AS zone, dv.code AS device, ap.code AS position, r.params, r.enabled "
    "FROM alarm_rules r LEFT JOIN points p ON p.id = r.point_id "
    "LEFT JOIN devices d ON d.id = p.device_id LEFT JOIN zones z ON z.id = r.zone_id "
    "LEFT JOIN devices dv ON dv.id = r.device_id "
    "JOIN alarm_positions ap ON ap.id = r.position_id"
)
