"""The gateway configuration file (``gateway.yaml``), validated into frozen typed objects."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge_agent.commands import control_problems
from edge_agent.errors import ProfileError
from edge_agent.profiles import Profile, default_profiles_dir, load_profiles, published_names
from edge_agent.yamlfile import compose, line_of, load_model
from suvnet.protocol import valid_id
from suvnet.prvcontrol import ControlConfig

_STRICT = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class DeviceConfig(BaseModel):
    """One Modbus device on a bus."""

    model_config = _STRICT
    id: str = Field(description="device id (the registry's devices.code)")
    unit: int = Field(1, ge=0, le=247, description="Modbus unit (slave) id")
    profile: str = Field(description="profile name: firmware_configs/<profile>.yaml")
    start_offset_s: float = Field(0.0, ge=0, description="delay before the first poll")
    jitter_s: float = Field(0.0, ge=0, description="random extra delay of each poll cycle")
    poll_s: float | None = Field(
        None, gt=0, le=86400, description="poll every point this often (overrides the profile)"
    )
    enabled: bool = True

    @field_validator("id")
    @classmethod
    def _id_ok(cls, v: str) -> str:
        if not valid_id(v):
            raise ValueError(f"{v!r} is not a valid device id (1-64 of A-Z a-z 0-9 _ . -)")
        return v


class _BusBase(BaseModel):
    model_config = _STRICT
    name: str
    timeout_s: float = Field(1.0, gt=0, le=60, description="answer timeout per request")
    offline_after: int = Field(3, ge=1, description="consecutive failures before offline")
    retry_max_s: float = Field(60.0, gt=0, description="longest wait between retries offline")
    devices: tuple[DeviceConfig, ...] = Field(min_length=1)


class TcpBus(_BusBase):
    """Modbus TCP: every device gets its own connection and is polled concurrently."""

    kind: Literal["tcp"]
    host: str
    port: int = Field(502, ge=1, le=65535)


class RtuBus(_BusBase):
    """Modbus RTU on a serial RS-485 line: one request at a time, 3.5-character gaps."""

    kind: Literal["rtu"]
    port: str = Field(description="serial device, e.g. /dev/ttyUSB0")
    baudrate: int = Field(19200, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1
    pause_s: float = Field(0.0, ge=0, le=5, description="extra silence between requests")


class RtuTcpBus(_BusBase):
    """RTU frames over TCP (a serial-to-Ethernet converter in front of an RS-485 line)."""

    kind: Literal["rtu_over_tcp"]
    host: str
    port: int = Field(502, ge=1, le=65535)
    baudrate: int | None = Field(None, ge=300, le=921600, description="line speed behind it")
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1
    pause_s: float = Field(0.0, ge=0, le=5)


Bus = Annotated[TcpBus | RtuBus | RtuTcpBus, Field(discriminator="kind")]


class MqttConfig(BaseModel):
    model_config = _STRICT
    url: str = Field("mqtt://127.0.0.1:1883", description="mqtt://host:1883 or mqtts://host:8883")
    username: str | None = None
    password: str | None = None
    password_file: Path | None = Field(None, description="file holding the password")
    ca_file: Path | None = Field(None, description="CA certificate for mqtts://")
    cert_file: Path | None = None
    key_file: Path | None = None
    client_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="MQTT client id; default: the broker user name, else the gateway id. The "
        "office broker ties client ids to users (use_username_as_clientid on the gateway "
        "listener) and uses the user name whatever is sent here",
    )
    topic_root: str = "suvnet"
    keepalive_s: int = Field(30, ge=5, le=3600)
    reconnect_max_s: float = Field(60.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url_ok(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"{v!r} must look like mqtt://host:1883 or mqtts://host:8883")
        return v

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)

    def secret(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        if self.password is not None:
            return self.password
        return urlsplit(self.url).password

    def user(self) -> str | None:
        return self.username or urlsplit(self.url).username


class OutboxConfig(BaseModel):
    model_config = _STRICT
    path: Path = Field(Path("outbox.db"), description="SQLite file (relative: next to config)")
    max_readings: int = Field(2_000_000, ge=100, description="oldest dropped beyond this")
    max_age_days: float = Field(30.0, gt=0, description="readings older than this are dropped")
    commit_interval_s: float = Field(0.05, gt=0, le=5)


class BatchConfig(BaseModel):
    model_config = _STRICT
    # 5000 readings of the longest ids stay under the office's 1 MiB message limit
    max_readings: int = Field(500, ge=1, le=5000, description="readings per message")
    max_latency_s: float = Field(2.0, gt=0, le=600, description="send a partial batch after")
    max_inflight: int = Field(16, ge=1, le=1000, description="unacknowledged batches in flight")
    resend_after_s: float = Field(30.0, gt=0, description="re-send an unacknowledged batch")


class ShareConfig(BaseModel):
    """Points of one device whose latest values this gateway publishes on value topics,
    for the PRV controller of another gateway (docs/protocol.md)."""

    model_config = _STRICT
    device: str
    points: tuple[str, ...] = Field(("pressure_bar",), max_length=64)


class GatewayConfig(BaseModel):
    """Everything a gateway needs: its id, the broker, the outbox and the buses; optionally
    the PRV controllers it runs and the values it shares (the office may replace both by
    commands, which the gateway keeps on disk)."""

    model_config = _STRICT
    gateway: str
    profiles_dir: Path | None = Field(None, description="folder of profile YAML files")
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    health_interval_s: float = Field(30.0, gt=0)
    buses: tuple[Bus, ...] = Field(min_length=1)
    controllers: dict[str, ControlConfig] = Field(
        default_factory=dict, description="PRV device id -> controller configuration"
    )
    share: tuple[ShareConfig, ...] = Field(
        (), description="values published for the controllers of other gateways"
    )

    @field_validator("gateway")
    @classmethod
    def _gw_ok(cls, v: str) -> str:
        if not valid_id(v):
            raise ValueError(f"{v!r} is not a valid gateway id (1-64 of A-Z a-z 0-9 _ . -)")
        return v

    @property
    def mqtt_client_id(self) -> str:
        """The client id the agent connects with: ``mqtt.client_id``, else the broker user
        name, else the gateway id. On the office broker a gateway's user is its gateway id
        (``suvnet mqtt acl``) and the broker replaces any client id by the user name, so the
        default is the id the broker uses anyway, in the agent's log and the broker's."""
        return self.mqtt.client_id or self.mqtt.user() or self.gateway

    @model_validator(mode="after")
    def _unique(self) -> GatewayConfig:
        seen: set[str] = set()
        names: set[str] = set()
        for bus in self.buses:
            if bus.name in names:
                raise ValueError(f"bus name {bus.name!r} is used twice")
            names.add(bus.name)
            units: set[int] = set()
            for d in bus.devices:
                if d.id in seen:
                    raise ValueError(f"device id {d.id!r} is used twice")
                seen.add(d.id)
                if bus.kind != "tcp":
                    if d.unit in units:
                        raise ValueError(f"unit id {d.unit} is used twice on bus {bus.name}")
                    units.add(d.unit)
        return self


class LoadedConfig(BaseModel):
    """A gateway config with its profiles loaded and every reference checked."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    config: GatewayConfig
    base_dir: Path
    profiles: dict[str, Profile]

    @property
    def outbox_path(self) -> Path:
        p = self.config.outbox.path
        return p if p.is_absolute() else self.base_dir / p

    @property
    def control_path(self) -> Path:
        """Where the controller configurations and shares the office sent are kept."""
        out = self.outbox_path
        return out.with_name(f"{out.stem}-control.json")

    def device_profiles(self) -> dict[str, Profile]:
        """The profile of every enabled device, by device id."""
        return {
            d.id: self.profiles[d.profile]
            for bus in self.config.buses
            for d in bus.devices
            if d.enabled
        }


def load_config(path: Path) -> LoadedConfig:
    """Load ``gateway.yaml`` and the profiles it uses; errors name file, line and field."""
    cfg = load_model(path, GatewayConfig)
    base = path.resolve().parent
    pdir = cfg.profiles_dir
    if pdir is None:
        pdir = default_profiles_dir()
    elif not pdir.is_absolute():
        pdir = base / pdir
    profiles = load_profiles(pdir)
    _, node = compose(path)
    for bi, bus in enumerate(cfg.buses):
        for di, dev in enumerate(bus.devices):
            if dev.profile not in profiles:
                loc: list[int | str] = ["buses", bi, "devices", di, "profile"]
                known = ", ".join(sorted(profiles)) or "none"
                raise ProfileError(
                    str(path),
                    line_of(node, loc),
                    f"buses[{bus.name}].devices[{dev.id}].profile",
                    f"no profile {dev.profile!r} in {pdir} (known: {known})",
                )
    loaded = LoadedConfig(config=cfg, base_dir=base, profiles=profiles)
    _check_control(path, node, loaded)
    return loaded


def _check_control(path: Path, node: Any, loaded: LoadedConfig) -> None:
    """The controllers and shares of ``gateway.yaml`` against the devices and profiles."""
    cfg = loaded.config
    by_device = loaded.device_profiles()

    def fail(loc: list[int | str], message: str) -> ProfileError:
        name = ".".join(str(x) if isinstance(x, str) else f"[{x}]" for x in loc)
        return ProfileError(str(path), line_of(node, loc), name.replace(".[", "["), message)

    for dev, ctl in cfg.controllers.items():
        prof = by_device.get(dev)
        if prof is None:
            raise fail(["controllers", dev], f"{dev!r} is not an enabled device of this gateway")
        if prof.controller is None:
            raise fail(["controllers", dev], f"profile {prof.profile} has no controller section")
        problems = control_problems(dev, ctl, by_device, polled=set(by_device))
        if problems:
            first = problems[0]
            raise fail(["controllers", dev, *first.loc], first.message)
    for i, sh in enumerate(cfg.share):
        prof = by_device.get(sh.device)
        if prof is None:
            raise fail(["share", i, "device"], f"{sh.device!r} is not an enabled device here")
        names = set(published_names(prof))
        for j, pt in enumerate(sh.points):
            if pt not in names:
                raise fail(["share", i, "points", j], f"{sh.device} publishes no point {pt!r}")
