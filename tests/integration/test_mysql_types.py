"""MySQL/MariaDB column types and settings through mapping -> backfill -> capture and relay -> verify: TINYINT(1)
booleans, DATETIME with and without a fraction of a second, utf8mb4 4-byte characters, ON UPDATE CURRENT_TIMESTAMP,
emails differing only by case (a _bin collation; refused under _ci), zero dates (parked with their reason), an
UNSIGNED BIGINT key above 2^63 and a CHAR(36) uuid key. The same mapping, unchanged, gives the same import events
from an SQLite legacy table holding the same rows."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from es_app.store import EventStore, make_engine
from migrator import schema
from migrator.backfill.run import Backfill, BackfillOptions
from migrator.capture import changelog as capture
from migrator.claims.findings import count_findings
from migrator.mapping import USERS, ColumnMap, TableMapping
from migrator.parking.retry import retry
from migrator.relay.runner import Relay
from migrator.verify import verify

from .backfill_helpers import differences, streams_of

pytestmark = pytest.mark.mysql

MEMBERS = TableMapping(
    table="members",
    key="id",
    stream_prefix="member",
    columns=(
        ColumnMap("name", "name", ("strip_control", "trim"), event="MemberRenamed"),
        ColumnMap("active", "active", ("bool",), true_event="MemberActivated", false_event="MemberDeactivated"),
    ),
    import_event_type="MemberImported",
    delete_event_type="MemberDeleted",
    column_event_type="MemberColumnChanged",
    created_at="joined_at",
    updated_at="changed_at",
)
DDL = {
    "mysql": "CREATE TABLE members (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, active TINYINT(1) NOT NULL, "
             "vip TINYINT(1) NULL, visits INT NOT NULL DEFAULT 0, joined_at DATETIME NOT NULL, "
             "changed_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)) "
             "CHARACTER SET utf8mb4",
    "sqlite": "CREATE TABLE members (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, active BOOLEAN NOT NULL, "
              "vip BOOLEAN NULL, visits INTEGER NOT NULL DEFAULT 0, joined_at DATETIME NOT NULL, "
              "changed_at DATETIME NOT NULL)",
}
J = datetime(2019, 3, 4, 5, 6, 7, tzinfo=UTC)  # DATETIME: whole seconds
C = datetime(2021, 8, 9, 10, 11, 12, 345678, tzinfo=UTC)  # DATETIME(6)
MEMBER_ROWS = [
    {"id": 1, "name": " Ann \U0001F600 ", "active": True, "vip": None, "visits": 3, "j": J, "c": C},
    {"id": 2, "name": "Zoë 李雷 \U0001F9D1\u200D\U0001F680", "active": False, "vip": True, "visits": 0, "j": J, "c": C},
    {"id": 3, "name": "Ed\x01die", "active": True, "vip": False, "visits": 7, "j": J, "c": C},
]


@dataclasses.dataclass
class Side:
    legacy: object
    es: object

    @property
    def store(self) -> EventStore:
        return EventStore(self.es)

    def backfill(self, mapping: TableMapping):
        b = Backfill(mapping.bind(self.legacy), self.legacy, self.store, options=BackfillOptions(batch_size=2))
        b.start()
        return b.run_to_end()

    def relay(self, mapping: TableMapping) -> None:
        Relay(mapping.bind(self.legacy), self.legacy, self.store).drain()

    def verify(self, mapping: TableMapping):
        return verify(self.legacy, self.es, [mapping.bind(self.legacy)], full=True, wait=0)


@pytest.fixture
def mysql_side(mysql_databases, tmp_path):
    url = mysql_databases.new()
    side = Side(make_engine(url), make_engine(f"sqlite:///{tmp_path / 'es.db'}"))
    schema.upgrade_all({"es": side.es})
    yield side
    side.legacy.dispose()
    side.es.dispose()
    mysql_databases.drop(url)


def _sqlite_side(tmp_path) -> Side:
    legacy = make_engine(f"sqlite:///{tmp_path / 'legacy.db'}")
    es = make_engine(f"sqlite:///{tmp_path / 'es2.db'}")
    schema.upgrade_all({"es": es})
    return Side(legacy, es)


def _members(side: Side) -> None:
    with side.legacy.begin() as conn:
        conn.execute(text(DDL[side.legacy.dialect.name]))
        conn.execute(text("INSERT INTO members (id, name, active, vip, visits, joined_at, changed_at) "
                          "VALUES (:id, :name, :active, :vip, :visits, :j, :c)"), MEMBER_ROWS)
    capture.install(side.legacy, [MEMBERS])


def _imports(side: Side, mapping: TableMapping) -> dict[str, tuple[dict, dict]]:
    return {sid: (evs[0].data, {k: v for k, v in evs[0].metadata.items() if k != "changelog_watermark"})
            for sid, evs in streams_of(side.store, mapping.bind(side.legacy)).items()}


def test_tinyint_booleans_datetimes_and_4_byte_characters_import_as_from_sqlite(mysql_side, tmp_path):
    _members(mysql_side)
    assert MEMBERS.bind(mysql_side.legacy).coerce["active"] == "bool"  # TINYINT(1)
    assert mysql_side.backfill(MEMBERS).rows_imported == 3
    sqlite_side = _sqlite_side(tmp_path)
    _members(sqlite_side)
    sqlite_side.backfill(MEMBERS)
    imported = _imports(mysql_side, MEMBERS)
    assert imported == _imports(sqlite_side, MEMBERS)  # the same mapping, the same events
    data = imported["member-1"][0]
    assert data["name"] == "Ann \U0001F600" and data["active"] is True
    assert data["row"]["vip"] is None and imported["member-2"][0]["row"]["vip"] is True
    assert data["created_at"] == "2019-03-04T05:06:07.000000+00:00"  # DATETIME, read as UTC
    assert data["updated_at"] == "2021-08-09T10:11:12.345678+00:00"
    assert imported["member-2"][0]["name"] == "Zoë 李雷 \U0001F9D1\u200D\U0001F680"
    assert imported["member-3"][1]["legacy_originals"] == {"name": '"Ed\\u0001die"'}
    sqlite_side.legacy.dispose()
    sqlite_side.es.dispose()


def test_changes_relay_with_on_update_current_timestamp_and_verify_clean(mysql_side):
    _members(mysql_side)
    mysql_side.backfill(MEMBERS)
    with mysql_side.legacy.begin() as conn:
        conn.execute(text("UPDATE members SET name = :n, active = 0, vip = 1 WHERE id = 1"), {"n": "Ann \U0001F431"})
        conn.execute(text("UPDATE members SET visits = visits + 1 WHERE id = 2"))
        conn.execute(text("INSERT INTO members (id, name, active, joined_at) VALUES (4, 'New \U0001F389', 1, "
                          "'2020-02-02 02:02:02')"))  # changed_at: its default, CURRENT_TIMESTAMP(6) in UTC
        conn.execute(text("DELETE FROM members WHERE id = 3"))
    mysql_side.relay(MEMBERS)
    store = mysql_side.store
    assert [e.type for e in store.read_stream("member-1")] == [
        "MemberImported", "MemberRenamed", "MemberDeactivated", "MemberColumnChanged"]
    assert store.read_stream("member-1")[3].data == {"column": "vip", "value": True}
    assert [e.type for e in store.read_stream("member-3")] == ["MemberImported", "MemberDeleted"]
    with mysql_side.legacy.connect() as conn:
        stamps = dict(conn.execute(text("SELECT id, changed_at FROM members")).all())
    assert stamps[1] > C.replace(tzinfo=None) and stamps[2] > C.replace(tzinfo=None)  # ON UPDATE moved them
    assert abs((stamps[4] - datetime.now(UTC).replace(tzinfo=None)).total_seconds()) < 60  # UTC, not local time
    assert differences(mysql_side.legacy, store, MEMBERS.bind(mysql_side.legacy)) == []
    report = mysql_side.verify(MEMBERS)
    assert report.clean, [m.to_json() for m in report.mismatches]
    assert report.tables[0].rows_legacy == 3


def test_emails_differing_only_by_case_under_a_bin_collation_become_a_finding(mysql_side):
    with mysql_side.legacy.begin() as conn:
        conn.execute(text("INSERT INTO users (id, email, full_name, is_active, created_at, updated_at) VALUES "
                          "(1, 'ann@example.org', 'Ann', 1, :t, :t)"), {"t": C})
    with pytest.raises(IntegrityError, match="Duplicate entry"):  # utf8mb4_unicode_ci: the same email
        with mysql_side.legacy.begin() as conn:
            conn.execute(text("INSERT INTO users (id, email, full_name, is_active, created_at, updated_at) VALUES "
                              "(2, 'ANN@example.org', 'Ann 2', 1, :t, :t)"), {"t": C})
    with mysql_side.legacy.begin() as conn:  # a legacy schema whose unique email compares bytes
        conn.execute(text("ALTER TABLE users MODIFY email VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin "
                          "NOT NULL"))
        conn.execute(text("INSERT INTO users (id, email, full_name, is_active, created_at, updated_at) VALUES "
                          "(2, 'ANN@example.org', 'Ann 2', 1, :t, :t)"), {"t": C})
    capture.install(mysql_side.legacy, [USERS])
    run = mysql_side.backfill(USERS)
    assert (run.rows_imported, run.rows_parked) == (2, 0)  # both imported: the lower key claims the email
    with mysql_side.es.connect() as conn:
        assert count_findings(conn, table="users") == {"duplicate_email": 1}
    with mysql_side.legacy.begin() as conn:  # a third spelling, through capture: the relay's finding
        conn.execute(text("INSERT INTO users (id, email, full_name, is_active, created_at, updated_at) VALUES "
                          "(3, 'Ann@Example.org', 'Ann 3', 1, :t, :t)"), {"t": C})
    mysql_side.relay(USERS)
    with mysql_side.es.connect() as conn:
        assert count_findings(conn, table="users") == {"duplicate_email": 2}
    report = verify(mysql_side.legacy, mysql_side.es, [USERS.bind(mysql_side.legacy)], full=True, wait=0)
    assert report.clean and report.tables[0].findings == {"duplicate_email": 2}


def test_a_zero_date_is_parked_with_its_reason_never_a_crash(mysql_side):
    with mysql_side.legacy.begin() as conn:
        conn.execute(text(DDL["mysql"]))
        conn.execute(text("SET SESSION sql_mode = 'STRICT_TRANS_TABLES'"))  # no NO_ZERO_DATE: the table allows them
        conn.execute(text("INSERT INTO members (id, name, active, joined_at, changed_at) VALUES "
                          "(1, 'Ok', 1, '2020-01-01 00:00:00', '2020-01-01 00:00:00'), "
                          "(2, 'Zero', 1, '0000-00-00 00:00:00', '2020-01-01 00:00:00'), "
                          "(3, 'Ok too', 0, '2020-01-01 00:00:00', '2020-01-01 00:00:00')"))
    capture.install(mysql_side.legacy, [MEMBERS])
    run = mysql_side.backfill(MEMBERS)
    assert (run.rows_done, run.rows_imported, run.rows_parked) == (3, 2, 1)
    with mysql_side.es.connect() as conn:
        parked = conn.execute(text("SELECT \"key\", reason FROM migrator_parked")).all()
    assert [(k, "zero date '0000-00-00 00:00:00'" in r) for k, r in parked] == [("2", True)]
    with mysql_side.legacy.begin() as conn:  # a change of the parked row, through capture: parked, not a crash
        conn.execute(text("SET SESSION sql_mode = 'STRICT_TRANS_TABLES'"))
        conn.execute(text("UPDATE members SET name = 'Zero 2' WHERE id = 2"))
        conn.execute(text("UPDATE members SET name = 'Renamed' WHERE id = 1"))
    mysql_side.relay(MEMBERS)
    assert [e.type for e in mysql_side.store.read_stream("member-1")] == ["MemberImported", "MemberRenamed"]
    report = mysql_side.verify(MEMBERS)
    assert report.tables[0].parked >= 1
    assert [(m.key, m.kind) for m in report.mismatches] == [(2, "missing_in_new")]
    with mysql_side.legacy.begin() as conn:  # the fix in the legacy table, then a retry: imported, verify clean
        conn.execute(text("UPDATE members SET joined_at = '2020-01-02 03:04:05' WHERE id = 2"))
    mysql_side.relay(MEMBERS)
    done = retry(mysql_side.store, mysql_side.legacy, MEMBERS.bind(mysql_side.legacy))
    assert (done.resolved, done.still_parked) == (3, 0)  # the row and the two changes parked behind it
    assert mysql_side.store.read_stream("member-2")[0].data["created_at"] == "2020-01-02T03:04:05.000000+00:00"
    assert mysql_side.verify(MEMBERS).clean


KEYS = TableMapping(
    table="big_keys",
    key="id",
    stream_prefix="big",
    columns=(ColumnMap("label", "label", ("trim",), event="BigLabelled"),),
    import_event_type="BigImported",
    delete_event_type="BigDeleted",
    column_event_type="BigColumnChanged",
)
UUIDS = dataclasses.replace(KEYS, table="uuid_keys", stream_prefix="uuid", import_event_type="UuidImported",
                            delete_event_type="UuidDeleted", column_event_type="UuidColumnChanged",
                            columns=(ColumnMap("label", "label", ("trim",), event="UuidLabelled"),))


@pytest.mark.parametrize("mapping, ddl, keys", [
    (KEYS, "id BIGINT UNSIGNED PRIMARY KEY", [1, 2**63 - 1, 2**63, 2**63 + 5, 2**64 - 1]),
    (UUIDS, "id CHAR(36) PRIMARY KEY", sorted(str(uuid.UUID(int=i * 7919 + 1, version=4)) for i in range(5))),
])
def test_an_unsigned_bigint_key_and_a_uuid_key_backfill_relay_and_verify(mysql_side, mapping, ddl, keys):
    with mysql_side.legacy.begin() as conn:
        conn.execute(text(f"CREATE TABLE {mapping.table} ({ddl}, label VARCHAR(50) NOT NULL) CHARACTER SET utf8mb4"))
        conn.execute(text(f"INSERT INTO {mapping.table} (id, label) VALUES (:k, :l)"),
                     [{"k": k, "l": f" label {i} "} for i, k in enumerate(keys[:4])])
    capture.install(mysql_side.legacy, [mapping])
    run = mysql_side.backfill(mapping)
    assert (run.rows_imported, run.last_key) == (4, keys[3])
    with mysql_side.legacy.begin() as conn:
        conn.execute(text(f"INSERT INTO {mapping.table} (id, label) VALUES (:k, 'last')"), {"k": keys[4]})
        conn.execute(text(f"UPDATE {mapping.table} SET label = 'moved' WHERE id = :k"), {"k": keys[3]})
        conn.execute(text(f"DELETE FROM {mapping.table} WHERE id = :k"), {"k": keys[0]})
    mysql_side.relay(mapping)
    store = mysql_side.store
    top = store.read_stream(f"{mapping.stream_prefix}-{keys[4]}")
    assert top[0].data["legacy_key"] == keys[4] and top[0].data["label"] == "last"
    assert [e.type for e in store.read_stream(f"{mapping.stream_prefix}-{keys[0]}")][-1] == mapping.delete_event_type
    assert differences(mysql_side.legacy, store, mapping.bind(mysql_side.legacy)) == []
    report = mysql_side.verify(mapping)
    assert report.clean, [m.to_json() for m in report.mismatches]
    assert (report.tables[0].rows_legacy, report.tables[0].rows_new) == (4, 4)
