"""suvnet alarms: rule engine, ISA-18.2 lifecycle, leak analytics, replay and notifications.

Pure cores: :mod:`alarms.rules` (streaming rules), :mod:`alarms.lifecycle` (ISA-18.2 state
machine), :mod:`alarms.analytics` (leak analytics over arrays), :mod:`alarms.kpi`.
I/O shells: :mod:`alarms.store`, :mod:`alarms.engine`, :mod:`alarms.worker`,
:mod:`alarms.notify`, :mod:`alarms.cli`.
"""
