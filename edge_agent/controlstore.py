"""The controller configurations and value shares the office sent, kept on the gateway's disk.

A ``control`` or ``share`` command changes what the gateway does at once and is written here
(``<outbox>-control.json`` next to the outbox), so that after a restart or a power cut the
gateway regulates as the office last said, with or without a link. An entry here wins over
the same device in ``gateway.yaml``; ``control: null`` stops regulating a device.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import EdgeError

log = logging.getLogger(__name__)


class ControlStoreError(EdgeError):
    """The control file could not be written."""


@dataclass
class ControlStore:
    path: Path
    controllers: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    share: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path) -> ControlStore:
        """Read the file; a missing file is empty, an unreadable one is logged and ignored
        (the configuration of ``gateway.yaml`` then applies until the office sends again)."""
        store = cls(path)
        if not path.exists():
            return store
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.error("ignoring the unreadable control file %s: %s", path, exc)
            return store
        ctl = doc.get("controllers", {}) if isinstance(doc, dict) else None
        share = doc.get("share", {}) if isinstance(doc, dict) else None
        if not isinstance(ctl, dict) or not isinstance(share, dict):
            log.error("ignoring the control file %s: not what the agent writes", path)
            return store
        store.controllers = {str(k): (v if isinstance(v, dict) else None) for k, v in ctl.items()}
        store.share = {
            str(k): tuple(str(p) for p in v) for k, v in share.items() if isinstance(v, list)
        }
        return store

    def set_control(self, device: str, wire: Mapping[str, Any] | None) -> None:
        self.controllers[device] = None if wire is None else dict(wire)
        self._save()

    def set_share(self, device: str, points: tuple[str, ...]) -> None:
        self.share[device] = points
        self._save()

    def _save(self) -> None:
        doc = {
            "v": 1,
            "controllers": self.controllers,
            "share": {k: list(v) for k, v in self.share.items()},
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise ControlStoreError(f"cannot write {self.path}: {exc}") from exc
