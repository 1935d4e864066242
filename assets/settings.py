"""Settings of the asset register's map (typed, from ``SUVNET_*`` environment variables)."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class MapSettings(BaseSettings):
    """``SUVNET_MAP_TILE_URL``: an optional base map (an XYZ tile address with {z}, {x} and
    {y}, for example a tile server on the office network); without it the map draws the
    network on a plain background and needs nothing from outside."""

    model_config = SettingsConfigDict(env_prefix="SUVNET_", extra="ignore", frozen=True)

    map_tile_url: str | None = Field(None, description="XYZ tile URL of an optional base map")
    map_tile_attribution: str = Field("", max_length=200)

    @field_validator("map_tile_url", mode="before")
    @classmethod
    def _tile_url(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip():
            return None
        if isinstance(v, str):
            parts = urlsplit(v)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("SUVNET_MAP_TILE_URL must be an http(s) address")
            if not all(k in v for k in ("{z}", "{x}", "{y}")):
                raise ValueError("SUVNET_MAP_TILE_URL must contain {z}, {x} and {y}")
        return v

    @property
    def tile_origin(self) -> str | None:
        """scheme://host[:port] of the tiles (what the page's CSP must allow for images)."""
        if not self.map_tile_url:
            return None
        parts = urlsplit(self.map_tile_url)
        return f"{parts.scheme}://{parts.netloc.replace('{s}', '*')}"


@lru_cache(maxsize=1)
def map_settings() -> MapSettings:
    return MapSettings()
