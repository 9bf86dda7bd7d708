"""docker-compose.yml and .env.example ship no secrets and publish no database or broker port.

Docker cannot run here, so the compose file is read with pyyaml and its `${...}` references are
interpolated the way compose does (`${VAR}`, `${VAR:-default}`, `${VAR:?error}`, `$$`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from es_app.settings import PLACEHOLDER_TOKENS, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
_REF = re.compile(r"\$\$|\$\{(\w+)(?:(:[-?])([^}]*))?\}")
SECRETS = ("ADMIN_TOKEN", "POSTGRES_PASSWORD")


class MissingVariable(Exception):
    pass


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Returns the compose document with every `${...}` replaced; MissingVariable for a `:?` one unset."""
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if not isinstance(node, str):
        return node

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.groups()
        value = env.get(name, "")
        if op == ":?" and not value:
            raise MissingVariable(f"{name}: {arg}")
        return value or (arg if op == ":-" else "")

    return _REF.sub(one, node)


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_postgres_and_redis_publish_no_port():
    services = _compose()["services"]
    assert "ports" not in services["postgres"] and "ports" not in services["redis"]
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert not any(str(p).split(":")[-1] in ("5432", "6379") for p in published)


def test_secrets_have_no_default_and_are_required():
    text = COMPOSE.read_text()
    refs = [m.groups() for m in _REF.finditer(text) if m.group(1) in SECRETS]
    assert {name for name, _, _ in refs} == set(SECRETS)
    assert all(op == ":?" and "set" in arg and ".env" in arg for _, op, arg in refs), refs
    for missing in SECRETS:
        env = {name: "s3cret" for name in SECRETS if name != missing}
        with pytest.raises(MissingVariable, match=missing):
            interpolate(_compose(), env)


def test_the_es_api_gets_the_token_and_the_urls_the_password():
    services = interpolate(_compose(), {"ADMIN_TOKEN": "tok-1", "POSTGRES_PASSWORD": "pw-2"})["services"]
    es = services["es-api"]["environment"]
    assert es["ADMIN_TOKEN"] == "tok-1"
    assert es["ES_DATABASE_URL"] == "postgresql://postgres:pw-2@postgres:5432/es" and es["BROKER_URL"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pw-2"
    assert services["legacy-api"]["environment"]["LEGACY_DATABASE_URL"].startswith("postgresql://postgres:pw-2@")


def test_env_example_ships_no_secret_and_names_only_known_settings():
    pairs = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                 if line.strip() and not line.startswith("#"))
    assert pairs["ADMIN_TOKEN"] == "" and pairs["POSTGRES_PASSWORD"] == ""
    assert not any(v in PLACEHOLDER_TOKENS for v in pairs.values())
    known = {name.upper() for name in Settings.model_fields} | {"POSTGRES_PASSWORD"}
    assert set(pairs) <= known, set(pairs) - known
