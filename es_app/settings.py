"""All configuration in one place, read from the environment (and `.env`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

VAR_DIR = Path("var")


def _sqlite_url(name: str) -> str:
    return f"sqlite:///{VAR_DIR / name}"


class Settings(BaseSettings):
    """Returns the process's configuration. Empty `BROKER_URL` means embedded mode."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    es_database_url: str = Field(default_factory=lambda: _sqlite_url("es.db"))
    legacy_database_url: str = Field(default_factory=lambda: _sqlite_url("legacy.db"))
    broker_url: str = ""

    snapshot_every: int = 100
    admin_token: str = "change-me"
    projection_shards: int = 1
    read_your_writes_timeout_s: float = 5.0

    @property
    def embedded(self) -> bool:
        return not self.broker_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
