"""Property-based: requests generated from the legacy app's OpenAPI spec never get a 5xx (schemathesis).

Runs in-process (ASGI) on a SQLite, a PostgreSQL and a MariaDB legacy database. Every generated
case is sent twice: as generated, and once more with one value swapped for a hostile one
(NUL and other control characters, lone surrogates, bidi overrides, integers beyond 64
bits), which a generator rarely produces by itself. Half the cases aim at seeded users.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from es_app.store import make_engine
from legacy_app.api import create_app
from migrator import schema

MAX_EXAMPLES = 25  # per operation and mode: 5 operations x 2 modes x 2 requests
TEXT = ["\x00", "Ann\x00Lee", "\ud800", "Ann\udfff", "Ann\u202eeeL", "\x1b[31m", "\x7f", "💥 Ann"]
URL_TEXT = [t for t in TEXT if not any(0xD800 <= ord(c) <= 0xDFFF for c in t)]  # a URL cannot carry a lone surrogate
NUMBERS = [2**63, 2**63 - 1, 99999999999999999999, -(2**63) - 1, 2**31, -1, 0]


def _pick(options: list[Any], *key: object) -> Any:  # noqa: ANN401
    return options[hashlib.sha256(repr(key).encode()).digest()[0] % len(options)]


def _hostile(case) -> Any:  # noqa: ANN001, ANN401
    """Returns a new case with one path, query or body value of `case` swapped for a hostile one."""
    path, query = dict(case.path_parameters or {}), dict(case.query or {})
    body = dict(case.body) if isinstance(case.body, dict) else case.body
    slots: list[tuple[dict, str, list[Any]]] = []
    for params in (path, query):
        slots += [(params, name, NUMBERS + URL_TEXT) for name in params]
    if isinstance(body, dict):
        slots += [(body, name, TEXT + NUMBERS) for name in ("email", "full_name", "phone", "is_active")]
    if slots:
        target, name, options = _pick(slots, case.path_parameters, case.query, case.body)
        target[name] = _pick(options, name, case.path_parameters, case.query, case.body)
    return case.operation.Case(path_parameters=path, query=query, body=body, media_type=case.media_type)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                                        pytest.param("mysql", marks=pytest.mark.mysql)])
def seeded(request, tmp_path_factory):  # noqa: ANN001, ANN201
    if request.param == "postgres":
        from tests.conftest import require_postgres

        require_postgres()
        url = request.getfixturevalue("postgres_databases").new()
    elif request.param == "mysql":
        url = request.getfixturevalue("mysql_databases").new()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('legacy-fuzz') / 'legacy.db'}"
        engine = make_engine(url)
        schema.upgrade_all({"legacy": engine})
        engine.dispose()
    app = create_app(url)
    with TestClient(app) as client:
        ids = [client.post("/users", json={"email": f"fuzz{i}@example.org", "full_name": f"Fuzz {i}"}).json()["id"]
               for i in range(3)]
        yield app, ids
    if request.param == "postgres":
        request.getfixturevalue("postgres_databases").drop(url)
    if request.param == "mysql":
        request.getfixturevalue("mysql_databases").drop(url)


def test_no_server_error(seeded) -> None:  # noqa: ANN001
    app, ids = seeded
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) == 5
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            def run(case) -> None:  # noqa: ANN001
                params = case.path_parameters or {}
                if "user_id" in params and _pick([True, False], params["user_id"]):
                    params["user_id"] = _pick(ids, case.body)
                case.call_and_validate(checks=[not_a_server_error])
                _hostile(case).call_and_validate(checks=[not_a_server_error])

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid
                assert mode is GenerationMode.NEGATIVE
            except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
