"""Idempotency-Key: the first response of a keyed command, stored with its events in one transaction.

A command sent with a key runs through `KeyedStore`, an EventStore stand-in whose
`append` takes the append lock, checks the key, appends and records the response
in the same write transaction. So the key row exists if and only if the events
do: a retry after a crash either finds both or neither, and two concurrent
requests with one key are serialised by the append lock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

from es_app.dialect import dialect_for
from es_app.store import AppendResult, Claim, EventStore, Expected, ExpectedVersion, NewEvent, write_transaction
from es_app.store.driver import driver_cursor, dumps

metadata = MetaData()
Json = JSON().with_variant(JSONB(), "postgresql")

idempotency_keys = Table(
    "api_idempotency_keys",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),  # sha256 of actor, method, path and body
    Column("status_code", Integer, nullable=False),
    Column("body", Json, nullable=False),
    Column("headers", Json, nullable=False),
    Column("stream_id", String(255), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


@dataclasses.dataclass(frozen=True)
class StoredResponse:
    """Returns the first response given to a keyed command."""

    status_code: int
    body: dict[str, Any]
    headers: dict[str, str]
    request_hash: str


class KeyReplay(Exception):
    """The key was already used; `stored` is its first response."""

    def __init__(self, stored: StoredResponse):
        super().__init__("idempotency key already used")
        self.stored = stored


def request_hash(actor: str, method: str, path: str, body: Any) -> str:
    """Returns a fingerprint of a request, to tell a retry from a reuse of the key for something else."""
    canonical = json.dumps([actor, method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# built once: a Core statement costs more to build than to run (the compiled cache serves its SQL)
_LOOKUP = select(idempotency_keys).where(idempotency_keys.c.key == bindparam("idem_key"))
_INSERT = idempotency_keys.insert()
# the same row as a transaction's last write (Dialect.writes_with_commit), its JSON encoded by the store's codec
_JSON = ("body", "headers")
_INSERT_LAST = (f"INSERT INTO api_idempotency_keys ({', '.join(c.name for c in idempotency_keys.columns)}) "
                f"VALUES ({', '.join(['%s'] * len(idempotency_keys.columns))})")


def lookup(engine_or_conn: Engine | Connection, key: str) -> StoredResponse | None:
    """Returns the stored first response for `key`, or None."""
    if isinstance(engine_or_conn, Connection):
        row = engine_or_conn.execute(_LOOKUP, {"idem_key": key}).first()
    else:
        with engine_or_conn.connect() as conn:
            row = conn.execute(_LOOKUP, {"idem_key": key}).first()
    if row is None:
        return None
    return StoredResponse(row.status_code, dict(row.body), dict(row.headers), row.request_hash)


# the lookup as the append's probe: run under the append lock, on PostgreSQL in the append's round trip
_PROBE = "SELECT status_code, body, headers, request_hash FROM api_idempotency_keys WHERE key = %s"


def _stored(row: tuple[Any, ...]) -> StoredResponse:
    """Returns the response of a `_PROBE` row, or of those columns of `api_keyed_append`'s (JSON comes as text
    from SQLite, parsed from PostgreSQL)."""
    status, body, headers, fingerprint = row
    decoded = [json.loads(v) if isinstance(v, str) else v for v in (body, headers)]
    return StoredResponse(status, dict(decoded[0]), dict(decoded[1]), fingerprint)


Responder = Callable[[AppendResult], tuple[int, dict[str, Any], dict[str, str]]]


def etag(version: int) -> str:
    """Returns the ETag of a stream's version."""
    return f'"{version}"'


@dataclasses.dataclass(frozen=True)
class Answer:
    """A command's answer: `status`, the body {id, version, position} and the headers ETag (and
    Location, `location_prefix` + the stream id, when given). A Responder; on PostgreSQL
    `api_keyed_append` stores the same for a keyed command in its one call (tests hold the two equal)."""

    status: int
    location_prefix: str | None = None

    def __call__(self, result: AppendResult) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {"ETag": etag(result.version)}
        if self.location_prefix is not None:
            headers = {"Location": f"{self.location_prefix}{result.stream_id}", **headers}
        return self.status, {"id": result.stream_id, "version": result.version, "position": result.position}, headers


class KeyedStore:
    """An EventStore whose `append` also records the command's response under an idempotency key."""

    def __init__(self, store: EventStore, key: str, fingerprint: str, respond: Responder):
        self._store, self._key, self._hash, self._respond = store, key, fingerprint, respond

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def append(self, stream_id: str, new_events: Sequence[NewEvent],
               expected_version: Expected = ExpectedVersion.ANY, *,
               claims: Sequence[Claim] = (), releases: Sequence[Claim] = ()) -> AppendResult:
        if isinstance(self._respond, Answer):
            answered = self._append_called(self._respond, stream_id, new_events, expected_version, claims, releases)
            if answered is not None:
                return answered
        return self._append_in_transaction(stream_id, new_events, expected_version, claims, releases)

    def _append_called(self, answer: Answer, stream_id: str, new_events: Sequence[NewEvent], expected: Expected,
                       claims: Sequence[Claim], releases: Sequence[Claim]) -> AppendResult | None:
        """The key's lookup, the append and the key's row in one call of `api_keyed_append` (PostgreSQL);
        None where the store cannot (SQLite) or when the stream's version did not match, for
        `_append_in_transaction` to settle (an exact retry of stored events, or ConcurrencyError)."""
        row = self._store.append_call("api_keyed_append",
                                      (self._key, self._hash, answer.status, answer.location_prefix, datetime.now(UTC)),
                                      stream_id, new_events, expected, claims=claims, releases=releases)
        if row is None:
            return None
        outcome, version, positions = row[:3]
        if outcome == "replay":
            raise KeyReplay(_stored(row[3:]))  # the stored row's status, body, headers and request hash
        if outcome != "appended":
            return None
        return AppendResult(stream_id, version, positions[-1], tuple(positions))

    def _append_in_transaction(self, stream_id: str, new_events: Sequence[NewEvent], expected_version: Expected,
                               claims: Sequence[Claim], releases: Sequence[Claim]) -> AppendResult:
        """The key's lookup under the append lock, the append and the key's row in one write transaction."""
        with write_transaction(self._store.engine) as conn:
            result, found = self._store.append_probed_in(conn, stream_id, new_events, expected_version,
                                                         probe=(_PROBE, (self._key,)), claims=claims,
                                                         releases=releases)
            if result is None:
                raise KeyReplay(_stored(found[0]))
            status, body, headers = self._respond(result)
            values = {"key": self._key, "request_hash": self._hash, "status_code": status, "body": body,
                      "headers": headers, "stream_id": stream_id, "position": result.position,
                      "created_at": datetime.now(UTC)}
            dialect = dialect_for(conn)
            if not dialect.commits_with_last_write:
                conn.execute(_INSERT, values)
                return result
            with driver_cursor(conn) as cur, dialect.writes_with_commit(cur):  # PostgreSQL: with the COMMIT
                cur.execute(_INSERT_LAST, [dumps(v) if k in _JSON else v for k, v in values.items()], prepare=True)
        return result
