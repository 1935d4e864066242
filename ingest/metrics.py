"""Prometheus metrics of one ingest worker (its own registry, served on ``/metrics``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


def _registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=_registry)

    def __post_init__(self) -> None:
        r = self.registry
        self.messages = Counter(
            "suvnet_ingest_messages", "MQTT messages taken, by kind", ["kind"], registry=r
        )
        self.readings = Counter(
            "suvnet_ingest_readings", "Readings committed to the readings table", registry=r
        )
        self.duplicate_readings = Counter(
            "suvnet_ingest_duplicate_readings",
            "Readings already present (same point and timestamp), skipped",
            registry=r,
        )
        self.duplicate_batches = Counter(
            "suvnet_ingest_duplicate_batches",
            "Batches received again after they were committed (acked, not re-written)",
            registry=r,
        )
        self.dead_letters = Counter(
            "suvnet_ingest_dead_letters", "Dead letters written, by reason", ["reason"], registry=r
        )
        self.commits = Counter("suvnet_ingest_commits", "Write transactions committed", registry=r)
        self.commit_seconds = Histogram(
            "suvnet_ingest_commit_seconds",
            "Duration of one write transaction",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.latency = Histogram(
            "suvnet_ingest_latency_seconds",
            "Gateway send time to commit (includes clock skew and outbox replay)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
            registry=r,
        )
        self.lag = Gauge(
            "suvnet_ingest_lag_seconds",
            "Age of the newest committed batch at commit (send time to commit)",
            registry=r,
        )
        self.queue_depth = Gauge(
            "suvnet_ingest_queue_depth", "Messages received and not yet committed", registry=r
        )
        self.db_up = Gauge(
            "suvnet_ingest_db_up", "1 when the database connection works", registry=r
        )
        self.mqtt_up = Gauge("suvnet_ingest_mqtt_up", "1 while connected to the broker", registry=r)
        self.db_failures = Counter(
            "suvnet_ingest_db_failures", "Failed write attempts (retried)", registry=r
        )
        self.state_changes = Counter(
            "suvnet_ingest_state_changes",
            "Online/offline transitions recorded, by kind",
            ["kind", "state"],
            registry=r,
        )
        self.rollup_buckets = Counter(
            "suvnet_ingest_rollup_buckets", "5-minute buckets re-aggregated", registry=r
        )
        self.task_restarts = Counter(
            "suvnet_ingest_task_restarts",
            "Background tasks restarted after a crash",
            ["task"],
            registry=r,
        )
