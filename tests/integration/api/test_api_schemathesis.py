"""Property-based: requests generated from the OpenAPI spec never get a 5xx (schemathesis).

Runs on SQLite and on PostgreSQL (which refuses NUL characters and big integers that
SQLite takes, so bad input must be caught before the database). Half the generated
cases aim at real users and carry the admin token, so they reach past 404 and 401.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import quote

import pytest
import schemathesis
from schemathesis import GenerationMode
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error

from es_app.api import create_app
from es_app.bootstrap import engine_for
from es_app.settings import Settings
from es_app.store import make_engine
from es_app.worker import stop_embedded
from migrator import schema as schemas

from .conftest import ADMIN_TOKEN, unique_email

MAX_EXAMPLES = 12  # per operation and mode: 19 operations x 2 modes


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def seeded(request, tmp_path_factory):  # noqa: ANN001, ANN201
    if request.param == "postgres":
        from tests.conftest import require_postgres

        require_postgres()
        url = request.getfixturevalue("postgres_databases").new()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'es.db'}"
        engine = make_engine(url)
        schemas.upgrade_all({"es": engine})
        engine.dispose()
    app = create_app(Settings(es_database_url=url, broker_url="", admin_token=ADMIN_TOKEN,
                              read_your_writes_timeout_s=0.2, catch_up_interval_s=3600))
    with TestClient(app) as client:
        ids = [client.post("/users", json={"name": f"Fuzz {i}", "email": unique_email()}).json()["id"]
               for i in range(3)]
        yield app, ids
    stop_embedded()
    engine_for(url).dispose()
    if request.param == "postgres":
        request.getfixturevalue("postgres_databases").drop(url)


def _even(value: object) -> bool:
    return hashlib.sha256(repr(value).encode()).digest()[0] % 2 == 0


def _aim(case, ids: list[str]) -> None:  # noqa: ANN001
    """Points half the cases at seeded users and gives half the admin token (a function of the case)."""
    params = case.path_parameters or {}
    if "user_id" in params and _even(params["user_id"]):
        params["user_id"] = ids[hashlib.sha256(repr(case.body).encode()).digest()[0] % len(ids)]
    if _even((case.method, case.path, case.query, case.body)):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_no_server_error(seeded) -> None:  # noqa: ANN001
    app, ids = seeded
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 19
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def run(case) -> None:  # noqa: ANN001
                _aim(case, ids)
                case.call_and_validate(checks=[not_a_server_error])

            try:
                run()
            except Unsatisfiable:  # no parameters and no body: nothing to make invalid
                assert mode is GenerationMode.NEGATIVE and not operation.query and not operation.body
            except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)


# -- hostile values, one at a time, in every parameter and body field the spec declares ------------
JSON_VALUES: list[object] = ["\x00", "A\x00B", "\ud800", "A\udfffB", "\u202eevil", "9" * 40, "",
                             10**30, -(10**30), 2**63, 1e308, float("nan"), float("inf"), True, None, [], {}]
TEXT_VALUES = ["\x00", "A\x00B", "\ud800", "A\udfffB", "\u202e", "9" * 40, "-" + "9" * 40, "1e308", "NaN",
               "2026-13-45T99:99", "", " "]
HEADER_VALUES = ["9" * 40, "-" + "9" * 40, '"9', 'W/"', "\xe9\xff", " ", "*" * 300]
RAW_BODIES = [b"9" * 5000, b"[" * 5000, b'{"name": 1e999, "email": "a@example.org"}', b'"\\ud800"',
              b'{"name": "\\ud800", "email": "a@example.org"}', b"\xff\xfe", b'{"reason": NaN}']


def _wire(text: str) -> str:
    """Returns `text` percent-encoded as raw UTF-8, lone surrogates included (what a hostile client sends)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _base_body(spec: dict, operation: dict) -> dict | None:
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return None
    ref = schema.get("$ref") or next(s["$ref"] for s in schema["anyOf"] if "$ref" in s)
    model = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    example = dict((model.get("examples") or [{}])[0])
    if "email" in example:
        example["email"] = unique_email()
    return example | {k: "x" for k in model.get("required", []) if k not in example}


def _requests(spec: dict, user_id: str):  # noqa: ANN201
    """Yields (label, method, url, headers, body bytes): each declared input made hostile in turn."""
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            params = operation.get("parameters", [])
            path_values = {p["name"]: (user_id if p["name"] == "user_id" else "1")
                           for p in params if p["in"] == "path"}
            body = _base_body(spec, operation)
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}

            def request(label, paths=path_values, query="", extra=None, content=None):  # noqa: ANN001, ANN202
                url = path.format(**{k: _wire(v) for k, v in paths.items()}) + (f"?{query}" if query else "")
                raw = content if content is not None else (json.dumps(body).encode() if body is not None else b"")
                return (f"{method.upper()} {path} {label}", method.upper(), url, headers | (extra or {}), raw)

            for p in params:
                if p["in"] == "path":
                    for value in TEXT_VALUES:
                        yield request(f"path {p['name']}={value!r}", paths=path_values | {p["name"]: value})
                elif p["in"] == "query":
                    for value in TEXT_VALUES:
                        yield request(f"query {p['name']}={value!r}", query=f"{p['name']}={_wire(value)}")
                elif p["in"] == "header":
                    for value in HEADER_VALUES:
                        yield request(f"header {p['name']}={value!r}", extra={p["name"]: value})
            for value in HEADER_VALUES:
                yield request(f"bearer {value!r}", extra={"Authorization": f"Bearer {value}"})
            if body is not None:
                for field in body:
                    for value in JSON_VALUES:
                        yield request(f"body {field}={value!r}", content=json.dumps(body | {field: value}).encode())
                for raw in RAW_BODIES:
                    yield request(f"raw body {raw[:30]!r}", content=raw)


def test_no_server_error_on_hostile_values(seeded) -> None:  # noqa: ANN001
    """NUL, lone surrogates, bidi overrides, huge and non-finite numbers in every path, query and header
    parameter and every body field of the spec, one at a time, on a real user with the admin token."""
    app, ids = seeded
    spec = app.openapi()
    failures = []
    with TestClient(app, raise_server_exceptions=False) as client:
        for label, method, url, headers, content in _requests(spec, ids[0]):
            raw_headers = {k: v.encode("latin-1") for k, v in headers.items()}  # as sent on the wire
            r = client.request(method, url, headers=raw_headers, content=content)
            if r.status_code >= 500:
                failures.append(f"{label}: {r.status_code} {r.text[:200]}")
    assert not failures, f"{len(failures)} server errors:\n" + "\n".join(failures[:40])
