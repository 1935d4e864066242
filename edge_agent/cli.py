"""``suvnet-edge``: the gateway command line (argparse only, so the ``edge`` extra suffices)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TextIO

from suvnet.errors import SuvnetError
from suvnet.logs import setup_logging

log = logging.getLogger("edge_agent")


def _out(text: str, file: TextIO | None = None) -> None:
    (file or sys.stdout).write(text + "\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="suvnet-edge",
        description=(
            "The suvnet gateway agent: polls Modbus devices (TCP and RTU) as their profiles "
            "describe, keeps every reading in an on-disk outbox and sends it to the office over "
            "MQTT until the office confirms it is stored. See docs/gateway-install.md."
        ),
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--log-format", default="console", choices=["console", "json"])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the gateway agent until stopped (Ctrl-C, SIGTERM)")
    run.add_argument("--config", "-c", type=Path, required=True, help="gateway.yaml")
    check = sub.add_parser(
        "check", help="validate gateway.yaml and every profile it uses, then exit"
    )
    check.add_argument("--config", "-c", type=Path, required=True, help="gateway.yaml")
    prof = sub.add_parser("check-profile", help="validate device profile files")
    prof.add_argument("files", type=Path, nargs="+", help="profile YAML files")
    return p


async def _run(config: Path) -> None:
    from edge_agent.agent import Agent
    from edge_agent.config import load_config

    agent = Agent(load_config(config))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await agent.run(stop)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        if args.command == "run":
            asyncio.run(_run(args.config))
        elif args.command == "check":
            from edge_agent.config import load_config

            loaded = load_config(args.config)
            n = sum(len(b.devices) for b in loaded.config.buses)
            _out(
                f"{args.config}: gateway {loaded.config.gateway}, {len(loaded.config.buses)} "
                f"buses, {n} devices, profiles: {', '.join(sorted(loaded.profiles))}: OK"
            )
        else:
            from edge_agent.profiles import load_profile

            for f in args.files:
                prof = load_profile(f)
                _out(f"{f}: profile {prof.profile}, {len(prof.points)} points: OK")
    except SuvnetError as exc:
        _out(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
