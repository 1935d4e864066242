"""The exception hierarchy of the asset register."""

from __future__ import annotations

from dataclasses import dataclass

from suvnet.errors import SuvnetError


class AssetError(SuvnetError):
    """Base of every error the asset register raises on purpose."""


class CrsError(AssetError):
    """A coordinate reference system is missing, unknown, or does not fit the coordinates."""


@dataclass(frozen=True)
class FeatureProblem:
    """One thing wrong with one feature of an input file: where it is and what is wrong."""

    file: str
    layer: str
    feature: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}"
        if self.layer:
            where += f", layer {self.layer}"
        if self.feature:
            where += f", feature {self.feature}"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


class ImportRefusedError(AssetError):
    """An input file has problems; nothing of it was imported. ``problems`` names each one."""

    def __init__(self, problems: list[FeatureProblem]) -> None:
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{len(problems)} problem(s), nothing was imported:\n{shown}{more}")


class AssetNotFoundError(AssetError):
    """No asset has this code."""

    def __init__(self, code: str) -> None:
        super().__init__(f"no asset with code {code!r}")
        self.code = code


class AssetConflictError(AssetError):
    """The asset was changed by someone else since the version the caller edited."""

    def __init__(self, code: str, expected: int, current: int) -> None:
        super().__init__(
            f"asset {code} was changed since version {expected} (it is now at version "
            f"{current}): reload it, then apply your change again"
        )
        self.code = code
        self.expected = expected
        self.current = current


class AssetInvalidError(AssetError):
    """A change was refused by the register's checks (the message names the field)."""
