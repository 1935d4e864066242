"""``suvnet prv``: the office's side of PRV pressure control (docs/pressure-management.md).

``relay`` publishes the critical-point values a gateway's controller reads through the
office; ``learn-curve`` fits a flow-modulation curve from the stored history.
(Configurations go to the gateways through the API or the back-office page.)
"""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console

from suvnet import prv_relay
from suvnet.clock import utcnow
from suvnet.db import connect, database_url
from suvnet.errors import ConfigError
from suvnet.protocol import Topics
from suvnet.prv_learn import learn
from suvnet.prvcontrol import NotEnoughHistoryError
from suvnet.settings import get_settings

app = typer.Typer(
    help="PRV pressure control at the office: relay critical-point values, learn flow curves.",
    no_args_is_help=True,
)
console = Console()


@app.command()
def relay(
    interval: Annotated[float, typer.Option(help="seconds between passes", min=1)] = 30.0,
    once: Annotated[bool, typer.Option("--once", help="one pass, then exit")] = False,
) -> None:
    """Publish, retained, the newest value of every point a controller reads through the
    office ({root}/v1/suvnet-office/value/{device}/{point}); runs until stopped."""
    s = get_settings()
    if not s.mqtt_url:
        raise ConfigError("suvnet prv relay needs SUVNET_MQTT_URL (the office broker)")

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        assert s.mqtt_url is not None
        return await prv_relay.run(
            database_url(s), s.mqtt_url, Topics(s.topic_root), interval_s=interval,
            once=once, stop=stop,
        )  # fmt: skip

    n = asyncio.run(main())
    console.print(f"relayed {n} value(s)")


def _key(text: str, default_point: str) -> tuple[str, str]:
    device, _, point = text.partition("/")
    return device, point or default_point


@app.command("learn-curve")
def learn_curve(  # noqa: PLR0917 - typer options
    prv: Annotated[str, typer.Argument(help="the PRV controller device")],
    meter: Annotated[str, typer.Option(help="the zone's inflow meter, DEVICE[/POINT]")],
    sensor: Annotated[list[str], typer.Option(help="a critical-point sensor, DEVICE[/POINT]")],
    target: Annotated[float, typer.Option(help="pressure to hold there, bar (with margin)")],
    min_bar: Annotated[float, typer.Option(help="lowest setpoint")] = 1.0,
    max_bar: Annotated[float, typer.Option(help="highest setpoint")] = 8.0,
    days: Annotated[int, typer.Option(help="days of history", min=1, max=365)] = 28,
) -> None:
    """Fit the outlet pressure the critical point needs at each inflow from the hourly
    history and print the curve for the site file (flow.curve)."""
    s = get_settings()
    until = utcnow()
    with connect(database_url(s)) as conn:
        try:
            curve, fit = learn(
                conn,
                outlet=_key(prv, "outlet_bar"),
                inflow=_key(meter, "flow_m3h"),
                sensors=[_key(x, "pressure_bar") for x in sensor],
                since=until - timedelta(days=days),
                until=until,
                aim_bar=target,
                min_bar=min_bar,
                max_bar=max_bar,
            )
        except NotEnoughHistoryError as exc:
            raise ConfigError(f"cannot learn a curve for {prv}: {exc}") from exc
    console.print(
        f"{fit.samples} hours; loss outlet -> critical point = {fit.static_bar:.2f} bar + "
        f"{fit.k:.2e} x q^1.852 (q up to {fit.q_max:.1f} m³/h)"
    )
    pairs = ", ".join(f"[{q:g}, {sp:g}]" for q, sp in curve)
    typer.echo(f"curve: [{pairs}]")
