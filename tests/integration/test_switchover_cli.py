"""`migrator rollback` from writes_switched drains the reverse projection before legacy writes go on alone."""

from __future__ import annotations

from migrator.cli import main
from migrator.phases.machine import advance, load

from .switchover_helpers import make_world


def test_rollback_from_switched_writes_drains_the_reverse_projection(new_database_url, capsys):
    world = make_world(new_database_url, same_database=True)
    try:
        advance(world.store, load(world.store), "writes_switched", lambda phase, state: [], "test")
        world.es.user_service.execute("user-1", lambda u: u.change_name("Through the API"))
        assert world.row(1)["full_name"] == "User 1"
        capsys.readouterr()
        code = main(["rollback", "--es-url", world.es_url, "--legacy-url", world.legacy_url])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "writes_switched → reads_switched (rolled back)" in out
        assert "reverse projection users: rows at position" in out and "0 key(s) waiting" in out
        assert world.row(1)["full_name"] == "Through the API"
        assert world.verify().clean
    finally:
        world.legacy.dispose()
