"""The compose topology as local processes: both APIs in uvicorn, real `celery worker`s and beat.

Users are created and renamed over HTTP; the read model converges through the
projections worker, the notifications worker writes one welcome per user, and
`min_position` gives read-your-writes. Broker keys carry a unique prefix and are
removed afterwards.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from es_app.bootstrap import build
from es_app.projections.tables import notifications
from es_app.settings import Settings
from migrator.topology import Topology, load_compose, local_env
from tests.conftest import REDIS_URL, require_redis

from .celery_worker import clean_redis, new_prefix, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
ADMIN = {"Authorization": "Bearer e2e-token"}


def test_compose_file_has_the_topology_of_the_issue():
    services = {s.name: s for s in load_compose(COMPOSE)}
    assert set(services) >= {"init", "es-api", "legacy-api", "projections-worker", "notifications-worker", "beat"}
    assert services["es-api"].argv[:3] == ("migrator", "serve", "es")
    assert services["legacy-api"].argv[:3] == ("migrator", "serve", "legacy")
    assert "projections" in services["projections-worker"].argv[services["projections-worker"].argv.index("-Q") + 1]
    assert services["notifications-worker"].argv[services["notifications-worker"].argv.index("-Q") + 1] \
        == "notifications"
    assert "beat" in services["beat"].argv and services["init"].one_shot


@pytest.fixture
def topology(postgres_databases, tmp_path):
    require_redis()
    prefix = new_prefix()
    es_url, legacy_url = postgres_databases.new(), postgres_databases.new()
    env = local_env(es_url, legacy_url, REDIS_URL, broker_key_prefix=prefix, admin_token="e2e-token",
                    catch_up_interval_s=2)
    topo = Topology(load_compose(COMPOSE), env, tmp_path / "topology")
    try:
        topo.start(["init", "es-api", "legacy-api", "projections-worker", "notifications-worker", "beat"])
        yield topo, Settings(es_database_url=es_url, legacy_database_url=legacy_url)
    finally:
        topo.stop()
        clean_redis(prefix)
        for url in (es_url, legacy_url):
            postgres_databases.drop(url)


def test_http_commands_converge_through_real_workers(topology):
    topo, settings = topology
    api = httpx.Client(base_url=topo.url("es-api"), timeout=30)
    users = {}
    for i in range(5):
        r = api.post("/users", json={"name": f"User {i}", "email": f"user{i}@example.org"}, headers={"X-Actor": "e2e"})
        assert r.status_code == 201, r.text
        users[r.json()["id"]] = f"User {i}"
    last = 0
    for uid in users:
        r = api.patch(f"/users/{uid}", json={"name": f"Renamed {uid[-4:]}"})
        assert r.status_code == 200, r.text
        users[uid], position = f"Renamed {uid[-4:]}", r.json()["position"]
        # read-your-writes: the query waits until the projections worker has applied this position
        view = api.get(f"/users/{uid}", params={"min_position": position})
        assert view.status_code == 200, view.text
        assert view.json()["name"] == users[uid] and view.json()["read_model"]["stale"] is False
        assert view.json()["read_model"]["position"] >= position
        last = max(last, position)

    def converged() -> bool:
        page = api.get("/users", params={"limit": 100}).json()
        return {u["id"]: u["name"] for u in page["items"]} == users and not page["read_model"]["stale"]

    wait_until(converged, "the read model to hold every rename", timeout=60)

    es = build(settings)

    def welcomed() -> bool:
        with es.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(notifications)).scalar_one() == len(users)

    wait_until(welcomed, "one welcome notification per user from the notifications worker", timeout=60)
    status = {s["name"]: s for s in api.get("/admin/projections", headers=ADMIN).json()}
    assert status["users"]["position"] >= last and status["users"]["lag"] == 0
    assert f'es_events_appended_total{{command="ChangeUser"}} {len(users)}.0' in api.get("/metrics").text
    health = api.get("/health").json()
    assert health["mode"] == "servers" and health["status"] == "ok"
    legacy = httpx.post(f"{topo.url('legacy-api')}/users", json={"email": "old@example.org", "full_name": "Old Timer"})
    assert legacy.status_code == 201, legacy.text
    es.engine.dispose()
