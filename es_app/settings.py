"""All configuration in one place, read from the environment (and `.env`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

VAR_DIR = Path("var")
PLACEHOLDER_TOKENS = frozenset({"change-me"})  # shipped as examples once: never accepted as a token


def _sqlite_url(name: str) -> str:
    return f"sqlite:///{VAR_DIR / name}"


class Settings(BaseSettings):
    """Returns the process's configuration. Empty `BROKER_URL` means embedded mode."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    es_database_url: str = Field(default_factory=lambda: _sqlite_url("es.db"))
    legacy_database_url: str = Field(default_factory=lambda: _sqlite_url("legacy.db"))
    broker_url: str = ""

    snapshot_every: int = 100
    # the bearer token of /events and /admin; empty (or the example's placeholder) turns those routes off
    admin_token: str = ""
    # a header a reverse proxy sets to the caller it authenticated (and strips from clients): the actor
    trusted_actor_header: str = ""
    max_request_body_bytes: int = Field(default=1024 * 1024, ge=1)  # larger bodies get 413
    projection_shards: int = 1
    read_your_writes_timeout_s: float = 5.0

    # worker and projections (es_app.worker, es_app.projections)
    broker_key_prefix: str = ""  # prefixes every broker key (isolates deployments sharing one Redis)
    projection_batch_size: int = 2000
    projection_max_retries: int = 3  # Celery retries of a failing handler before its event is parked
    projection_retry_backoff_s: float = 1.0  # first retry delay; doubles each time
    catch_up_interval_s: float = 10.0  # beat: how often workers catch up without a wake-up message
    # embedded mode: wake-ups within this long of the last run's start are handled by one run (0: one run each)
    embedded_coalesce_ms: float = Field(default=20.0, ge=0)
    # servers mode: a process's wake-up hints within this long of the last one sent go as one (0: one each)
    hint_coalesce_ms: float = Field(default=20.0, ge=0)

    # migrator relay (migrator.relay, migrator.tasks)
    mapping_file: str = ""  # TOML/JSON/YAML table mappings for the relay task; empty = the built-in users mapping
    relay_interval_s: float = 2.0  # beat: how often the relay task runs without a wake-up
    relay_batch_size: int = 1000  # changelog rows per relay transaction

    # migrator phases (migrator.phases): the migration's stream and the guards of its steps
    migration_name: str = "users"  # the stream `migration-<name>`
    verify_max_age_s: float = Field(default=3600.0, gt=0)  # shadow_reads, reads_switched: clean verify this recent
    shadow_min_compared: int = Field(default=1000, ge=1)  # reads_switched: at least this many shadow reads compared
    shadow_max_mismatch_rate: float = Field(default=0.001, ge=0, le=1)  # reads_switched: mismatched / compared
    reads_switched_min_s: float = Field(default=3600.0, ge=0)  # writes_switched: reads switched this long
    relay_max_idle_s: float = Field(default=60.0, gt=0)  # dual_write: the relay's offset moved this recently
    # backfilled, decommissioned: how long a guard waits for the relay to catch up with the changes waiting at
    # the check (a table under constant writes is never seen with an exactly empty backlog)
    relay_catch_up_wait_s: float = Field(default=10.0, ge=0)
                                                         # while changes wait
    writes_switched_min_s: float = Field(default=3600.0, ge=0)  # decommissioned: reads and writes `new` this long

    # shadow reads and the read switchover (migrator.shadow, migrator.switchover; docs/shadow.md)
    shadow_timeout_ms: float = Field(default=100.0, gt=0)  # a candidate read slower than this is a timeout
    shadow_pool: int = Field(default=4, ge=1)  # threads running candidate reads in the legacy app
    shadow_queue: int = Field(default=64, ge=0)  # candidate reads waiting for a thread; beyond it they are skipped
    shadow_flush_s: float = Field(default=5.0, gt=0)  # how often shadow counts are appended to the migration
    read_wait_s: float = Field(default=2.0, ge=0)  # new reads: wait this long for relay and projection, then legacy
    routes_poll_s: float = Field(default=1.0, gt=0)  # how often the legacy app looks at the migration's modes

    # the dashboard (migrator.dashboard): the bearer token of its phase actions; empty (or the example's
    # placeholder) leaves it read-only
    dashboard_token: str = ""

    @property
    def embedded(self) -> bool:
        return not self.broker_url

    @property
    def admin_disabled_reason(self) -> str | None:
        """Returns why the admin routes are off (no usable ADMIN_TOKEN), or None when they are on."""
        if not self.admin_token.strip():
            return "admin routes are disabled: set ADMIN_TOKEN"
        if self.admin_token.strip() in PLACEHOLDER_TOKENS:
            return "admin routes are disabled: ADMIN_TOKEN is the example placeholder; set a secret"
        return None


@lru_cache
def get_settings() -> Settings:
    return Settings()
