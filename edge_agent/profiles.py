"""Device profiles as the gateway uses them.

The model itself (:class:`Profile`, :class:`Point`, the published point ids) lives in
:mod:`suvnet.profiles`, because the office reads the same files to register every point a
device publishes. This module re-exports it and translates a bad file into the edge agent's
:class:`~edge_agent.errors.ProfileError` (file, line and field), as before.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.errors import ProfileError
from suvnet import profiles as _core
from suvnet.errors import FileFormatError
from suvnet.profiles import (
    BIT_TABLES,
    FIXED_WIDTH,
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    Access,
    DataType,
    DeviceKind,
    Order,
    Point,
    PointKind,
    Profile,
    PublishedPoint,
    Schedule,
    ScheduleSlot,
    Table,
    bit_point,
    default_profiles_dir,
    published_names,
    published_points,
    with_poll_period,
)

__all__ = [
    "BIT_TABLES",
    "FIXED_WIDTH",
    "MAX_READ_BITS",
    "MAX_READ_REGISTERS",
    "Access",
    "DataType",
    "DeviceKind",
    "Order",
    "Point",
    "PointKind",
    "Profile",
    "PublishedPoint",
    "Schedule",
    "ScheduleSlot",
    "Table",
    "bit_point",
    "default_profiles_dir",
    "load_profile",
    "load_profiles",
    "published_names",
    "published_points",
    "with_poll_period",
]


def _edge_error(exc: FileFormatError) -> ProfileError:
    return ProfileError(exc.path, exc.line, exc.field, exc.message)


def load_profile(path: Path) -> Profile:
    """Load and validate one profile file; its ``profile`` name must equal the file name."""
    try:
        return _core.load_profile(path)
    except FileFormatError as exc:
        raise _edge_error(exc) from exc


def load_profiles(folder: Path) -> dict[str, Profile]:
    """Every ``*.yaml`` profile directly in ``folder``, by name."""
    try:
        return _core.load_profiles(folder)
    except FileFormatError as exc:
        raise _edge_error(exc) from exc
