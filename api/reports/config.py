"""Typed settings of the report forms: who signs them, and the claim letters' deadline.

Values come from ``SUVNET_REPORTS_*`` environment variables, then from the ``reports:``
section of the YAML file named by ``SUVNET_CONFIG``, then from the defaults (blank: the form
prints an empty line to sign on). A name set for one form (``reports: forms: legal:
prepared_by: ...``) wins over the one for every form::

    reports:
      prepared_by: "Karimova D."        # every form
      checked_by: "Tursunov B."
      approved_by: "Rahimov A., director"
      forms:
        legal: {prepared_by: "Saidov O., lawyer"}
      claim_payment_days: 10

The utility's name and requisites are billing's (``SUVNET_BILLING_UTILITY_*``,
:mod:`billing.config`): the forms print the same ones as the invoices.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class ReportSettingsError(ValueError):
    """The report settings cannot be read or are not valid."""


class Signatures(BaseModel):
    """The names printed on a form's signature lines ("" = a blank line)."""

    model_config = ConfigDict(frozen=True)

    prepared_by: str = Field("", max_length=120)
    checked_by: str = Field("", max_length=120)
    approved_by: str = Field("", max_length=120)


class ReportSettings(BaseSettings):
    """Settings of the department report forms (docs/reports.md)."""

    model_config = SettingsConfigDict(env_prefix="SUVNET_REPORTS_", extra="ignore", frozen=True)

    prepared_by: str = Field("", max_length=120)
    checked_by: str = Field("", max_length=120)
    approved_by: str = Field("", max_length=120)
    forms: dict[str, Signatures] = Field(default_factory=dict)
    claim_payment_days: int = Field(
        10, ge=1, le=90, description="the claim letter asks for payment within this many days"
    )

    def signatures(self, form: str) -> Signatures:
        """The names for ``form``: its own where set, else the ones for every form."""
        own = self.forms.get(form, Signatures())
        return Signatures(
            prepared_by=own.prepared_by or self.prepared_by,
            checked_by=own.checked_by or self.checked_by,
            approved_by=own.approved_by or self.approved_by,
        )


def _yaml_section() -> dict[str, Any]:
    cfg = os.environ.get("SUVNET_CONFIG")
    if not cfg:
        return {}
    try:
        loaded = yaml.safe_load(Path(cfg).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ReportSettingsError(f"cannot read config file {cfg}: {exc}") from exc
    section = loaded.get("reports", {}) if isinstance(loaded, dict) else {}
    if not isinstance(section, dict):
        raise ReportSettingsError(f"config file {cfg}: 'reports' must be a mapping")
    return section


def load_report_settings(**overrides: Any) -> ReportSettings:
    """Build and validate the report settings; the environment wins over the file."""
    data = {**_yaml_section(), **overrides}
    prefix = "SUVNET_REPORTS_"
    for k in {k[len(prefix) :].lower() for k in os.environ if k.startswith(prefix)}:
        if k not in overrides:
            data.pop(k, None)
    try:
        return ReportSettings(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ReportSettingsError(f"invalid report settings: {problems}") from exc


@lru_cache(maxsize=1)
def get_report_settings() -> ReportSettings:
    return load_report_settings()
