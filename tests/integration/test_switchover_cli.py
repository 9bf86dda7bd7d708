"""`migrator rollback` from writes_switched drains the reverse projection before legacy writes go on alone."""

from __future__ import annotations

import json

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


def test_reverse_catches_up_while_switched_and_shows_the_keys_that_wait(new_database_url, capsys):
    world = make_world(new_database_url)
    urls = ["--es-url", world.es_url, "--legacy-url", world.legacy_url]

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([*argv, *urls])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    try:
        world.es.user_service.execute("user-1", lambda u: u.change_name("Not yet"))
        code, out, _ = run("reverse", "--json")  # writes are the legacy app's: nothing is written
        table = json.loads(out)["tables"][0]
        assert code == 0 and (table["written"], table["caught_up"]) == (0, False)
        assert world.row(1)["full_name"] == "User 1"

        advance(world.store, load(world.store), "writes_switched", lambda phase, state: [], "test")
        code, out, _ = run("reverse", "--json")
        doc = json.loads(out)
        assert code == 0 and doc["writes"] == "new"
        last = world.store.read_stream("user-1")[-1].position
        assert doc["tables"] == [{"table": "users", "position": last, "caught_up": True, "written": 1, "waiting": []}]
        assert world.row(1)["full_name"] == "Not yet"

        world.legacy_writes().update(2, {"phone": "1"})  # a direct write the relay has not seen
        world.es.user_service.execute("user-2", lambda u: u.change_name("Waits"))
        code, out, _ = run("reverse")
        assert code == 0 and "1 key(s) waiting" in out
        assert "key 2: the legacy row has a change the relay has not relayed yet" in out
        code, out, _ = run("reverse", "--drain")
        assert code == 0 and "0 key(s) waiting" in out
        assert (world.row(2)["full_name"], world.row(2)["phone"]) == ("Waits", "1")

        code, out, err = run("reverse", "--bogus")
        assert code == 2 and len(err.splitlines()) == 1 and not out
    finally:
        world.legacy.dispose()


def test_reverse_help(capsys):
    assert main(["reverse", "--help"]) == 0
    assert "--drain" in capsys.readouterr().out
