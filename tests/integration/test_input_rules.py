"""One table of names, emails and phones, sent to both APIs on both backends (docs/input.md).

The legacy app and the event-sourced side each keep their own validator module (neither
imports the other); this table is what keeps them saying the same thing.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from es_app.api import create_app as create_es_app
from es_app.bootstrap import engine_for
from es_app.settings import Settings
from es_app.worker import stop_embedded
from legacy_app.api import create_app as create_legacy_app

ACCEPTED = [
    ("name", "Zoë Ångström"),
    ("name", "محمد بن سلمان"),
    ("name", "李小龍 😀"),  # an astral character: a surrogate *pair* in JSON
    ("name", "O'Brien-Smith"),
    ("name", "Ann\u00a0Lee"),  # no-break space
    ("name", "\u05e9\u05e8\u05d4 \u200fC"),  # a right-to-left mark is no override
    ("email", "zoë.2@example.org"),
    ("phone", "+49 (30) 1234-5"),
]

CONTROL, SURROGATE, BIDI = ("must not contain control characters", "must not contain lone surrogates",
                            "must not contain bidirectional override characters")
REFUSED = [
    ("name", "Ann\x00", f"{CONTROL} (U+0000)"),
    ("name", "Ann\x01Lee", f"{CONTROL} (U+0001)"),
    ("name", "Ann\tLee", f"{CONTROL} (U+0009)"),
    ("name", "Ann\nLee", f"{CONTROL} (U+000A)"),
    ("name", "Ann\x1bLee", f"{CONTROL} (U+001B)"),
    ("name", "Ann\x7fLee", f"{CONTROL} (U+007F)"),
    ("name", "Ann\x85Lee", f"{CONTROL} (U+0085)"),
    ("name", "Ann\x9fLee", f"{CONTROL} (U+009F)"),
    ("name", "Ann\ud800", f"{SURROGATE} (U+D800)"),
    ("name", "\udfffAnn", f"{SURROGATE} (U+DFFF)"),
    ("name", "Ann\u202aLee", f"{BIDI} (U+202A)"),
    ("name", "Ann\u202eeeL", f"{BIDI} (U+202E)"),
    ("name", "\u2066Ann", f"{BIDI} (U+2066)"),
    ("name", "Ann\u2069", f"{BIDI} (U+2069)"),
    ("email", "ann\x00@example.org", f"{CONTROL} (U+0000)"),
    ("email", "ann\ud800@example.org", f"{SURROGATE} (U+D800)"),
    ("email", "ann\u202e@example.org", f"{BIDI} (U+202E)"),
    ("phone", "+1 555\x00", f"{CONTROL} (U+0000)"),
    ("phone", "+1 555\udc00", f"{SURROGATE} (U+DC00)"),
    ("phone", "+1 \u2067555", f"{BIDI} (U+2067)"),
]


def _send(client: TestClient, method: str, path: str, body: dict[str, Any]):  # noqa: ANN202
    """Sends `body` as ASCII JSON, so a lone surrogate travels as the escape `\\ud800`."""
    return client.request(method, path, content=json.dumps(body), headers={"content-type": "application/json"})


class LegacyApi:
    fields = {"name": "full_name", "email": "email", "phone": "phone"}

    def __init__(self, client: TestClient):
        self.client = client

    def create(self, field: str, value: str):  # noqa: ANN201
        body = {"email": f"{uuid.uuid4().hex[:12]}@example.org", "full_name": "Ann Lee", self.fields[field]: value}
        return _send(self.client, "POST", "/users", body)

    def update(self, user_id: Any, field: str, value: str):  # noqa: ANN201, ANN401
        return _send(self.client, "PUT", f"/users/{user_id}", {self.fields[field]: value})

    @staticmethod
    def reason(response) -> str:  # noqa: ANN001
        return " ".join(error["msg"] for error in response.json()["detail"])


class EsApi(LegacyApi):
    fields = {"name": "name", "email": "email", "phone": "phone"}

    def create(self, field: str, value: str):  # noqa: ANN201
        body = {"email": f"{uuid.uuid4().hex[:12]}@example.org", "name": "Ann Lee", field: value}
        return _send(self.client, "POST", "/users", body)

    def update(self, user_id: Any, field: str, value: str):  # noqa: ANN201, ANN401
        return _send(self.client, "PATCH", f"/users/{user_id}", {field: value})

    @staticmethod
    def reason(response) -> str:  # noqa: ANN001
        return response.json()["detail"]


@pytest.fixture(params=["legacy", "es"])
def api(request, new_database_url, backend) -> Iterator[LegacyApi]:  # noqa: ANN001
    if request.param == "legacy":
        with TestClient(create_legacy_app(new_database_url("legacy")), raise_server_exceptions=False) as client:
            yield LegacyApi(client)
        return
    settings = Settings(es_database_url=new_database_url("es"), broker_url="", catch_up_interval_s=3600)
    try:
        with TestClient(create_es_app(settings), raise_server_exceptions=False) as client:
            yield EsApi(client)
    finally:
        stop_embedded()
        engine_for(settings.es_database_url).dispose()


@pytest.fixture
def mysql_legacy_api(mysql_databases) -> Iterator[LegacyApi]:  # noqa: ANN001
    """The legacy app on a MySQL/MariaDB database: the same table, the same answers."""
    url = mysql_databases.new()
    try:
        with TestClient(create_legacy_app(url), raise_server_exceptions=False) as client:
            yield LegacyApi(client)
    finally:
        mysql_databases.drop(url)


@pytest.mark.mysql
def test_the_legacy_app_on_mysql_accepts_and_refuses_the_same(mysql_legacy_api: LegacyApi) -> None:
    test_both_apps_accept_and_refuse_the_same_names_emails_and_phones(mysql_legacy_api)


def test_both_apps_accept_and_refuse_the_same_names_emails_and_phones(api: LegacyApi) -> None:
    created = api.create("name", "Existing User")
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]

    def check(field: str, value: str, reason: str | None) -> str | None:
        answers = [("POST", api.create(field, value))]
        if reason is not None:
            answers.append(("update", api.update(user_id, field, value)))
        for how, response in answers:
            if reason is None and response.status_code != 201:
                return f"{how} {field}={value!r}: {response.status_code} {response.text}"
            if reason is not None and (response.status_code != 422 or reason not in api.reason(response)):
                return f"{how} {field}={value!r}: {response.status_code} {response.text} (wanted 422 {reason!r})"
        return None

    table = [(field, value, None) for field, value in ACCEPTED] + REFUSED
    assert [problem for field, value, reason in table if (problem := check(field, value, reason))] == []
