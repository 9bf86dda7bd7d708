"""Create or upgrade every schema (one Alembic tree per database) to its head."""

from __future__ import annotations

import dataclasses
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine


@dataclasses.dataclass(frozen=True)
class Tree:
    name: str
    package: str  # the package holding env.py and versions/
    database: str  # "es" or "legacy": which URL it is applied to
    version_table: str


TREES = (
    Tree("es", "es_app.migrations", "es", "alembic_version_es"),
    Tree("legacy", "legacy_app.migrations", "legacy", "alembic_version_legacy"),
)


def _config(tree: Tree, engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files(tree.package)))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def upgrade(tree: Tree, engine: Engine) -> None:
    """Upgrades one tree to all its heads, in one connection; a no-op when already there."""
    cfg = _config(tree, engine)
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
        conn.commit()


def status(tree: Tree, engine: Engine) -> tuple[set[str], set[str]]:
    """Returns (current revisions, head revisions) of a tree in that database."""
    heads = set(ScriptDirectory.from_config(_config(tree, engine)).get_heads())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn, opts={"version_table": tree.version_table})
                      .get_current_heads())
    return current, heads


def upgrade_all(engines: dict[str, Engine]) -> list[str]:
    """Upgrades every tree whose database is in `engines` ({"es": ..., "legacy": ...}).

    Returns the names of the trees upgraded.
    """
    done = []
    for tree in TREES:
        if tree.database in engines:
            upgrade(tree, engines[tree.database])
            done.append(tree.name)
    return done
