-- Alarm floods (ISA-18.2): while a position is in flood, the notifications of its individual
-- alarms to people are held back ('held'); the flood alarm itself is sent instead. Grafana
-- annotations are records, not messages to people: they are never held.
ALTER TABLE alarm_notifications DROP CONSTRAINT alarm_notifications_status_check;
ALTER TABLE alarm_notifications ADD CONSTRAINT alarm_notifications_status_check
    CHECK (status IN ('pending', 'sent', 'dead', 'held'));
