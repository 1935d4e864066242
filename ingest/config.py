"""Typed, validated configuration of the ingest service (``SUVNET_INGEST_*``)."""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from suvnet.errors import ConfigError

CLIENT_ID_PREFIX = "suvnet-ingest-"
"""Default client ids start with it. Ingest connects to the broker's office listener, where
the workers share the user ``suvnet-ingest`` and keep client ids of their own; ``suvnet-`` is
a prefix no gateway code may have (``suvnet mqtt acl`` refuses it), and on the gateway
listener a gateway's client id is always its own code, so no gateway can take over a
worker's session (see docs/operations.md, "The broker")."""

APP_NAME = "suvnet-ingest"
"""application_name of the worker's database connections (``-maintenance`` appended for the
maintenance loop's)."""


def _default_client_id() -> str:
    return f"{CLIENT_ID_PREFIX}{socket.gethostname()}"[:64]


class IngestConfig(BaseSettings):
    """Settings of one ingest worker. Every field is also ``SUVNET_INGEST_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="SUVNET_INGEST_", extra="ignore", frozen=True)

    client_id: str = Field(
        default_factory=_default_client_id,
        description="MQTT client id; must be unique per worker and stable across restarts "
        "(the broker keeps the worker's unacknowledged messages under it). Default "
        "suvnet-ingest-<hostname>; keep the suvnet- prefix, which no gateway can hold",
    )
    group: str = Field("ingest", description="shared-subscription group name")
    shared_subscription: bool = Field(
        True,
        description="subscribe through $share/<group>/... (several workers); off only for a "
        "broker without shared subscriptions, with a single worker",
    )
    mqtt_protocol: Literal["5", "3.1.1"] = Field(
        "5",
        description="MQTT version; with 3.1.1 the broker's own in-flight limit replaces "
        "Receive Maximum",
    )
    session_expiry_s: int = Field(
        7 * 24 * 3600, ge=0, description="how long the broker keeps the session of a stopped worker"
    )
    receive_maximum: int = Field(
        500, ge=1, le=65535, description="unacknowledged messages the broker may send at once"
    )
    batch_max_rows: int = Field(10_000, ge=1, description="readings per database commit")
    batch_max_delay_s: float = Field(0.2, gt=0, description="longest wait to fill a commit")
    batch_linger_s: float = Field(
        0.01,
        gt=0,
        description="a commit that is filling goes ahead as soon as no message has come for "
        "this long (so the last messages of a burst do not wait the whole delay)",
    )
    writers: int = Field(
        2,
        ge=1,
        le=8,
        description="writer threads, each with its own database connection: while one commit "
        "is in the database the next group is formed and sent (acks stay in arrival order)",
    )
    max_age_s: float = Field(
        30 * 24 * 3600.0, gt=0, description="readings older than this (vs now) are refused"
    )
    max_future_s: float = Field(
        300.0, ge=0, description="readings this far ahead of the server clock are refused"
    )
    offline_factor: float = Field(
        3.0, gt=1, description="offline after this many poll periods without good data"
    )
    default_poll_period_s: float = Field(60.0, gt=0)
    state_flush_s: float = Field(2.0, gt=0, description="how often last-seen times are written")
    maintenance_interval_s: float = Field(
        10.0, gt=0, description="rollups and freshness run this often"
    )
    registry_refresh_s: float = Field(30.0, gt=0, description="registry reload period")
    batch_retention_days: int = Field(
        35, ge=1, description="committed-batch records kept for dedupe of re-sent batches"
    )
    metrics_port: int = Field(9464, ge=0, le=65535, description="Prometheus port; 0 = off")
    metrics_addr: str = Field("127.0.0.1", description="address the /metrics server binds")

    @model_validator(mode="after")
    def _check(self) -> IngestConfig:
        if not self.client_id or len(self.client_id) > 64:
            raise ValueError("client_id must be 1-64 characters")
        if any(c in self.group for c in "/+#"):
            raise ValueError("group must not contain '/', '+' or '#'")
        return self

    @property
    def queue_size(self) -> int:
        """Bound of the in-memory message queue (the broker never sends more unacked)."""
        return self.receive_maximum


def load_ingest_config(**overrides: object) -> IngestConfig:
    """Build the config from ``SUVNET_INGEST_*`` and overrides; raise ConfigError if invalid."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return IngestConfig(**clean)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'ingest'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid ingest settings: {problems}") from exc


__all__ = ["APP_NAME", "CLIENT_ID_PREFIX", "IngestConfig", "load_ingest_config"]
