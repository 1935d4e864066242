"""``suvnet simulator``: run simulated Modbus devices for tests, demos and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated

import typer

from edge_agent.errors import EdgeError
from edge_agent.profiles import default_profiles_dir, load_profiles
from simulator.devices import SimulatedDevice
from simulator.server import SimServer

app = typer.Typer(
    help="Simulated field devices: Modbus servers that answer with a device profile's registers.",
    no_args_is_help=True,
)


@app.command()
def serve(  # noqa: PLR0917 - typer options
    profile: Annotated[
        list[str],
        typer.Option(
            "--profile",
            "-p",
            help="device to simulate: PROFILE or PROFILE:UNIT (repeat for several unit ids, "
            "e.g. a whole RS-485 line)",
        ),
    ],
    port: Annotated[int, typer.Option(help="TCP port to listen on (Modbus TCP)")] = 5020,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    rtu: Annotated[
        str | None, typer.Option(help="serve Modbus RTU on this serial port or pty instead")
    ] = None,
    rtu_over_tcp: Annotated[
        bool, typer.Option(help="answer RTU frames over TCP (like a serial-to-Ethernet converter)")
    ] = False,
    baudrate: Annotated[int, typer.Option(help="RTU line speed")] = 19200,
    parity: Annotated[str, typer.Option(help="RTU parity: N, E or O")] = "N",
    profiles_dir: Annotated[
        Path | None, typer.Option(help="folder of profile YAML files (default: firmware_configs)")
    ] = None,
    step: Annotated[float, typer.Option(help="seconds between value updates")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="random seed for repeatable values")] = None,
) -> None:
    """Serve simulated devices until Ctrl-C.

    Example: suvnet simulator serve --profile prv_controller:1 --profile pressure_transmitter:2
    --port 5020, then read it with: mbpoll -m tcp -p 5020 -a 1 -t 3 -r 1 -c 5 127.0.0.1
    """
    try:
        profiles = load_profiles(profiles_dir or default_profiles_dir())
    except EdgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    devices = []
    for i, spec in enumerate(profile):
        name, _, unit_s = spec.partition(":")
        if name not in profiles:
            typer.echo(
                f"error: unknown profile {name!r} (known: {', '.join(sorted(profiles))})", err=True
            )
            raise typer.Exit(2)
        try:
            unit = int(unit_s) if unit_s else i + 1
        except ValueError as exc:
            typer.echo(f"error: {spec!r}: the unit id after ':' must be a number", err=True)
            raise typer.Exit(2) from exc
        devices.append(
            SimulatedDevice(profiles[name], unit, seed=None if seed is None else seed + i)
        )
    server = SimServer(
        devices, host=host, port=port, serial_port=rtu, baudrate=baudrate, parity=parity,
        step_s=step, rtu_over_tcp=rtu_over_tcp,
    )  # fmt: skip
    where = f"RTU on {rtu} at {baudrate} baud" if rtu else f"Modbus TCP on {host}:{port}"
    if rtu_over_tcp and not rtu:
        where = f"RTU over TCP on {host}:{port}"
    for d in devices:
        typer.echo(f"unit {d.unit}: {d.profile.profile} ({d.profile.description})")
    typer.echo(f"serving {len(devices)} simulated device(s), {where}; Ctrl-C stops")

    async def _main() -> None:
        async with server:
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main())


@app.command("profiles")
def list_profiles(
    profiles_dir: Annotated[Path | None, typer.Option(help="folder of profile YAML files")] = None,
) -> None:
    """List the device profiles a simulator can serve, with their points."""
    try:
        profiles = load_profiles(profiles_dir or default_profiles_dir())
    except EdgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for prof in profiles.values():
        typer.echo(f"{prof.profile}: {prof.description}")
        for p in prof.points:
            typer.echo(
                f"    {p.name:<22} {p.table:<8} {p.address:>5}  {p.type:<8} {p.unit:<6} {p.access}"
            )
