"""Property-based: requests generated from the OpenAPI spec never get a 5xx (schemathesis).

Runs on SQLite and on PostgreSQL (which refuses NUL characters and big integers that
SQLite takes, so bad input must be caught before the database). Half the generated
cases aim at real users and carry the admin token, so they reach past 404 and 401.
"""

from __future__ import annotations

import hashlib
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
