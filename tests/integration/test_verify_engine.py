"""The verify engine (migrator.verify.verify): legacy and event store in two databases (of the test's backend,
or a SQLite legacy beside it), a dirty seeded table backfilled, injected differences found exactly, keys in
flight pending rather than different, `since` re-checking only changed keys, the JSON document's shape."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest
from sqlalchemy import text

from es_app.projections import run_projections
from es_app.store import EventStore, make_engine
from migrator.backfill.run import Backfill, BackfillOptions
from migrator.capture import changelog as capture
from migrator.mapping import USERS, ColumnMap, strip_control
from migrator.relay.runner import Relay
from migrator.seed import seed_users
from migrator.verify import KINDS, verify
from tests.conftest import require_mysql, require_postgres

from .backfill_helpers import ACCOUNTS, create_accounts, insert_accounts, insert_users, keys
from .parking_helpers import sqlite_legacy
from .projection_helpers import container


@dataclasses.dataclass
class World:
    legacy: object
    es: object
    es_url: str

    @property
    def store(self) -> EventStore:
        return EventStore(self.es)

    @property
    def users(self):
        return USERS.bind(self.legacy)

    def relay(self, mapping=None) -> None:
        Relay(mapping or self.users, self.legacy, self.store).drain()

    def project(self) -> None:
        run_projections(container(self.es_url), names=["users"])

    def verify(self, mappings=None, **options):
        options.setdefault("wait", 0)
        return verify(self.legacy, self.es, mappings or [self.users], **options)

    def behind_capture(self, sql: str, mapping=USERS, **params) -> None:
        """Writes to the legacy table with capture removed: no changelog row at all."""
        capture.remove(self.legacy, [mapping])
        with self.legacy.begin() as conn:
            conn.execute(text(sql), params)
        capture.install(self.legacy, [mapping])


LAYOUTS = [("sqlite", "two databases"), pytest.param(("postgres", "two databases"), marks=pytest.mark.postgres),
           pytest.param(("postgres", "sqlite legacy"), marks=pytest.mark.postgres),
           pytest.param(("sqlite", "mysql legacy"), marks=pytest.mark.mysql),
           pytest.param(("postgres", "mysql legacy"), marks=[pytest.mark.postgres, pytest.mark.mysql])]


@pytest.fixture(params=LAYOUTS, ids=lambda p: "-".join(p))
def layout(request) -> tuple[str, str]:
    """(event-store backend, where the legacy table is): on SQLite both layouts are the same one."""
    if request.param[0] == "postgres":
        require_postgres()
    if request.param[1] == "mysql legacy":
        require_mysql()
    return request.param


@pytest.fixture
def backend(layout) -> str:
    return layout[0]


@pytest.fixture
def world(layout, new_database_url, tmp_path, request):
    """A legacy database with capture installed and an event store in another database."""
    es_url = new_database_url("es")
    if layout[1] == "two databases":
        legacy = make_engine(new_database_url("legacy"))
        capture.install(legacy, [USERS])
    elif layout[1] == "mysql legacy":
        legacy = make_engine(request.getfixturevalue("mysql_databases").new())
        capture.install(legacy, [USERS])
    else:
        legacy = sqlite_legacy(tmp_path)
    es = make_engine(es_url)
    yield World(legacy, es, es_url)
    legacy.dispose()
    es.dispose()


def _backfilled(w: World, seeded: int = 40, plain: int = 20) -> None:
    """Seeds dirty rows (Faker names, padded names, mixed-case emails), backfills and projects them."""
    seed_users(w.legacy, seeded, seed=11)
    with w.legacy.connect() as conn:
        top = conn.execute(text("SELECT max(id) FROM users")).scalar() or 0
    insert_users(w.legacy, keys(plain, start=top + 1))
    b = Backfill(w.users, w.legacy, w.store, options=BackfillOptions())
    b.start()
    assert b.run_to_end().status == "done"
    w.relay()  # the inserts' changelog rows: already in the backfilled rows, nothing to append
    w.project()


def _ids(w: World) -> list[int]:
    with w.legacy.connect() as conn:
        return list(conn.execute(text("SELECT id FROM users ORDER BY id")).scalars())


def _found(report) -> dict:
    return {(m.key, m.kind): {f: (v.legacy, v.new, v.replay) for f, v in m.fields.items()}
            for m in report.mismatches}


def test_a_backfilled_dirty_table_is_clean_and_each_injected_difference_is_found_exactly(world):
    w = world
    _backfilled(w)
    with w.legacy.connect() as conn:
        dirty = conn.execute(text("SELECT count(*) FROM users WHERE full_name <> trim(full_name) "
                                  "OR email <> lower(email)")).scalar()
    assert dirty > 0  # the comparison goes through the mapping's normalizers
    ids = _ids(w)
    report = w.verify()
    assert report.clean and report.counts == dict.fromkeys(KINDS, 0) and report.mismatches == ()
    [t] = report.tables
    assert (t.rows_legacy, t.rows_new, t.keys_compared, t.method, t.streamed_fields) == (
        len(ids), len(ids), len(ids), "checksum", ())
    assert t.keys_replayed == len(ids)  # the default sample is larger than the table

    changed, deleted, corrected, projected, sample_only = ids[2], ids[5], ids[8], ids[11], ids[14]
    with w.legacy.connect() as conn:
        old_name = conn.execute(text("SELECT full_name FROM users WHERE id = :k"), {"k": changed}).scalar()
        legacy_email = conn.execute(text("SELECT email FROM users WHERE id = :k"), {"k": corrected}).scalar()
    w.behind_capture("UPDATE users SET full_name = ' Changed  Name ' WHERE id = :k", k=changed)
    w.behind_capture("DELETE FROM users WHERE id = :k", k=deleted)
    w.behind_capture("INSERT INTO users (id, email, full_name, is_active, phone, created_at, updated_at) "
                     "VALUES (:k, 'New@Example.org', 'New One', true, NULL, '2020-01-01', '2020-01-01')",
                     k=ids[-1] + 100)
    c = container(w.es_url)
    c.user_service.execute(f"user-{corrected}", lambda u: u.correct("email", "fixed@example.org", "typo"))
    w.project()
    with w.es.begin() as conn:
        conn.execute(text("UPDATE users_view SET name = 'Wrong' WHERE id = :s"), {"s": f"user-{projected}"})
    report = w.verify(sample=0)
    found = _found(report)
    assert set(found) == {(changed, "field_differs"), (deleted, "missing_in_legacy"),
                          (ids[-1] + 100, "missing_in_new"), (corrected, "field_differs"),
                          (projected, "replay_differs")}
    assert found[(changed, "field_differs")] == {"name": ("Changed  Name", strip_control(old_name).strip(),
                                                          strip_control(old_name).strip())}
    assert found[(corrected, "field_differs")] == {"email": (legacy_email.strip().lower(), "fixed@example.org",
                                                             "fixed@example.org")}
    [[name]] = [list(v) for (k, kind), v in found.items() if kind == "replay_differs"]
    assert name == "name" and found[(projected, "replay_differs")]["name"][1] == "Wrong"
    assert found[(ids[-1] + 100, "missing_in_new")]["email"] == ("new@example.org", None, None)
    assert found[(deleted, "missing_in_legacy")]["name"][0] is None
    assert not report.clean and report.counts == {"missing_in_new": 1, "missing_in_legacy": 1, "field_differs": 2,
                                                  "replay_differs": 1, "pending": 0}
    [t] = report.tables
    assert (t.rows_legacy, t.rows_new, t.keys_compared) == (len(ids), len(ids), len(ids) + 1)
    by_key = {m.key: m for m in report.mismatches}
    assert by_key[corrected].explain.event["type"] == "UserCorrected"
    assert by_key[projected].explain.summary.startswith("the read model disagrees")
    assert by_key[changed].explain.event["source"] == "backfill"
    assert "bypassed capture" in by_key[changed].explain.summary
    assert report.mismatches_total == 5 and not report.to_json()["mismatches_truncated"]

    limited = w.verify(sample=0, max_mismatches=2)
    assert len(limited.mismatches) == 2 and limited.mismatches_total == 5 and limited.counts == report.counts
    assert limited.to_json()["mismatches_truncated"] is True
    # a difference the checksum cannot see (read model and legacy agree) is found by the replay sample
    with w.es.begin() as conn:
        conn.execute(text("UPDATE users_view SET name = 'Wrong' WHERE id = :s"), {"s": f"user-{sample_only}"})
    assert (sample_only, "replay_differs") in _found(w.verify(full=True))


def test_changes_not_yet_relayed_or_projected_are_pending_and_settle(world):
    w = world
    _backfilled(w, seeded=10, plain=10)
    k = _ids(w)[3]
    with w.legacy.begin() as conn:
        conn.execute(text("UPDATE users SET full_name = 'Renamed' WHERE id = :k"), {"k": k})
    with w.legacy.connect() as conn:
        change_id = capture.latest_change_id(conn, "users")
    report = w.verify(wait=0.3)
    assert report.clean and report.counts["pending"] == 1
    [m] = report.mismatches
    assert (m.key, m.kind, m.explain.pending["changelog_id"]) == (k, "pending", change_id)
    assert "not relayed yet" in m.explain.summary

    w.relay()  # relayed, not projected
    report = w.verify(wait=0)
    [m] = report.mismatches
    assert m.kind == "pending" and m.explain.pending["changelog_id"] is None
    assert m.explain.event["position"] > m.explain.pending["read_model_position"]

    def catch_up() -> None:
        time.sleep(0.3)
        w.project()

    helper = threading.Thread(target=catch_up)
    helper.start()
    report = w.verify(wait=10)
    helper.join()
    assert report.clean and report.counts == dict.fromkeys(KINDS, 0)


def test_since_verifies_only_the_keys_changed_after_the_watermarks(world):
    w = world
    _backfilled(w, seeded=10, plain=10)
    ids = _ids(w)
    first = w.verify()
    marks = first.to_json()["watermarks"]
    assert set(marks) == {"users"} and marks["users"]["position"] == w.store.head_position()
    with w.legacy.begin() as conn:
        conn.execute(text("UPDATE users SET email = 'Moved@Example.org' WHERE id = :k"), {"k": ids[1]})
    w.relay()
    w.project()
    w.behind_capture("UPDATE users SET full_name = 'Unseen' WHERE id = :k", k=ids[2])  # no changelog row
    again = w.verify(since=marks)
    [t] = again.tables
    assert again.clean and (t.keys_compared, t.keys_replayed, t.method) == (1, 1, "stream")
    assert again.to_json()["options"]["since_last"] is True
    assert again.watermarks["users"]["changelog_id"] > marks["users"]["changelog_id"]
    assert [m.key for m in w.verify(sample=0).mismatches] == [ids[2]]  # a whole run sees it


def test_a_table_without_read_model_compares_legacy_rows_with_live_streams(world):
    w = world
    create_accounts(w.legacy)
    capture.install(w.legacy, [ACCOUNTS])
    insert_accounts(w.legacy, ["acc-a", "acc-b", "o'brien", "acc-d"])
    accounts = ACCOUNTS.bind(w.legacy)
    w.relay(accounts)
    report = w.verify([accounts])
    [t] = report.tables
    assert report.clean and (t.method, t.rows_legacy, t.rows_new, t.keys_replayed) == ("stream", 4, 4, 4)
    w.behind_capture("UPDATE accounts SET note = 'later' WHERE code = 'o''brien'", mapping=ACCOUNTS)
    w.behind_capture("DELETE FROM accounts WHERE code = 'acc-a'", mapping=ACCOUNTS)
    w.behind_capture("INSERT INTO accounts (code, owner, balance_cents, closed, note, changed_at) "
                     "VALUES ('acc-z', 'Zed', 5, false, NULL, '2020-01-01')", mapping=ACCOUNTS)
    found = _found(w.verify([accounts]))
    assert set(found) == {("o'brien", "field_differs"), ("acc-a", "missing_in_legacy"), ("acc-z", "missing_in_new")}
    assert found[("o'brien", "field_differs")] == {"extra.note": ("later", "note 2", "note 2")}


def test_the_json_document_has_the_documented_shape(world):
    w = world
    _backfilled(w, seeded=5, plain=5)
    w.behind_capture("UPDATE users SET phone = '+1 555 9999' WHERE id = :k", k=_ids(w)[0])
    doc = w.verify(sample=10).to_json()
    assert json.loads(json.dumps(doc)) == doc
    assert list(doc) == ["format", "id", "clean", "started_at", "finished_at", "duration_s", "options", "counts",
                         "tables", "watermarks", "mismatches_total", "mismatches_truncated", "mismatches"]
    assert doc["format"] == 1 and doc["id"] is None and doc["clean"] is False
    assert doc["options"] == {"tables": ["users"], "sample": 10, "full": False, "since_last": False,
                              "since_run": None, "wait_s": 0}
    assert list(doc["counts"]) == list(KINDS)
    [t] = doc["tables"]
    assert list(t) == ["table", "category", "rows_legacy", "rows_new", "keys_compared", "keys_replayed", "method",
                       "streamed_fields", "counts", "duration_s", "rows_per_s", "findings", "parked"]
    assert (t["table"], t["category"], t["keys_replayed"], t["parked"]) == ("users", "user", 10, 0)
    assert set(doc["watermarks"]["users"]) == {"changelog_id", "position"}
    [m] = doc["mismatches"]
    assert list(m) == ["table", "key", "stream_id", "kind", "fields", "explain"]
    assert isinstance(m["key"], int) and m["stream_id"] == f"user-{m['key']}" and m["kind"] == "field_differs"
    assert list(m["fields"]["phone"]) == ["legacy", "new", "replay"] and m["fields"]["phone"]["legacy"] == "+1 555 9999"
    assert list(m["explain"]) == ["changelog", "event", "pending", "summary"]
    assert list(m["explain"]["event"]) == ["type", "position", "version", "source", "at"]


def _squash(value):
    """A normalizer given as a function: it has no SQL form."""
    return value.strip() if isinstance(value, str) else value


def test_a_field_whose_normalizer_has_no_sql_form_is_streamed_on_postgresql(world, backend):
    w = world
    _backfilled(w, seeded=5, plain=10)
    mapping = dataclasses.replace(USERS, columns=(*USERS.columns[:3], ColumnMap(
        "phone", "phone", ("strip_control", _squash, "blank_to_none"), event="UserPhoneChanged"))).bind(w.legacy)
    report = w.verify([mapping])
    assert report.clean
    k = _ids(w)[4]
    w.behind_capture("UPDATE users SET phone = '+1 000' WHERE id = :k", k=k)
    report = w.verify([mapping], sample=0)
    [t] = report.tables
    assert t.streamed_fields == (() if w.legacy.dialect.name == "sqlite" else ("phone",))
    assert [(m.key, m.kind, list(m.fields)) for m in report.mismatches] == [(k, "field_differs", ["phone"])]


def test_a_correct_system_verifies_clean_under_live_writes(world):
    w = world
    _backfilled(w, seeded=10, plain=30)
    ids = _ids(w)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        n = 0
        try:
            while not stop.is_set():
                k = ids[(n * 7 + offset) % len(ids)]
                with w.legacy.begin() as conn:
                    conn.execute(text("UPDATE users SET full_name = :n, is_active = :a WHERE id = :k"),
                                 {"n": f" Live {n} ", "a": n % 2 == 0, "k": k})
                n += 1
                time.sleep(0.01)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    def pump() -> None:
        try:
            while not stop.is_set():
                w.relay()
                w.project()
                time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)] + [threading.Thread(target=pump)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        reports = [w.verify(wait=10, sample=50) for _ in range(2)]
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    for report in reports:
        assert report.clean, [m.to_json() for m in report.mismatches]


TRICKY = [" Ann ", "ANN@X.ORG", "\tTab\x0b\x1f", "Ed\x01die\x7f", "\u00a0nbsp\u3000", "", "   ", None, "a|b", "1:x",
          "Zoë@Ünal.example", "\u2028line\u2029"]


@pytest.mark.parametrize("normalize", [("strip_control", "trim"), ("strip_control", "email"),
                                       ("strip_control", "trim", "blank_to_none"), ("lower",), ("text",)])
def test_the_sql_form_of_a_normalizer_gives_the_python_value_or_never_matches(es_engine, normalize):
    from migrator.mapping import compose
    from migrator.verify.sqlforms import NON_ASCII_MARK, Source, digest, forms_for, value_text

    forms = forms_for(es_engine.dialect.name)
    fn = compose(normalize)
    source = Source("f", "x", fn, "text", normalize)
    with es_engine.connect() as conn:
        forms.prepare(conn, [source], "verify_test_digest")
        for value in TRICKY:
            digest_sql = forms.row_hash(["f.verify_f0"], "verify_test_digest")
            row = conn.execute(text(f"SELECT f.verify_f0, {digest_sql} FROM (SELECT {forms.field_sql(source)} AS "
                                    "verify_f0 FROM (SELECT CAST(:v AS TEXT) AS x) s) f"),
                               {"v": value, **forms.params()}).one()
            expected = value_text(fn(value))
            if es_engine.dialect.name == "sqlite":  # canonicalized by the registered Python function
                assert row[1] == digest([fn(value)])
            elif row[0] is not None and row[0].endswith(NON_ASCII_MARK):
                assert row[0] != expected and row[1] != digest([fn(value)])  # never equal: compared in Python
            else:
                assert (row[0], row[1]) == (expected, digest([fn(value)])), repr(value)


def test_drilling_down_by_key_ranges_or_key_hashes_finds_the_same_rows(world):
    from migrator.verify.checksum import compare_checksums, sides_for
    from migrator.verify.readmodel import USERS_VIEW

    w = world
    _backfilled(w, seeded=30, plain=30)
    ids = _ids(w)
    w.behind_capture("UPDATE users SET email = 'Other@Example.org' WHERE id = :k", k=ids[7])
    w.behind_capture("DELETE FROM users WHERE id = :k", k=ids[20])
    with w.es.begin() as conn:
        conn.execute(text("UPDATE users_view SET active = NOT active WHERE id = :s"), {"s": f"user-{ids[33]}"})
    sides = sides_for(w.users, USERS_VIEW, w.legacy, w.es)
    hashed = dataclasses.replace(sides, legacy=dataclasses.replace(sides.legacy, int_key=None))
    for variant in (sides, hashed):
        default = compare_checksums(variant)
        deep = compare_checksums(variant, rows_per_bucket=4, threshold=2)
        assert sorted(default.candidates) == sorted(deep.candidates) == [ids[7], ids[20], ids[33]]
        assert deep.levels >= 1 and deep.rows_compared_in_python < default.rows_compared_in_python
        assert (deep.rows_legacy, deep.rows_new, deep.only_new) == (len(ids) - 1, len(ids), 1)
