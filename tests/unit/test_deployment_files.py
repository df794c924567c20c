"""The production stack file names every service and only settings the engine knows."""

from __future__ import annotations

from pathlib import Path

import yaml

from engine.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_the_whole_production_stack():
    services = compose()["services"]
    for name in ("db", "redis", "migrate", "api", "worker", "beat", "flower", "mailpit"):
        assert name in services, name
    for name in ("db", "redis", "api", "worker"):
        assert "healthcheck" in services[name], name
    assert services["migrate"]["command"] == ["aihp", "db", "upgrade"]


def test_compose_environment_only_uses_real_settings():
    env = compose()["x-engine-env"]
    known = {f"AIHP_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= known, set(env) - known
    assert env["AIHP_BROKER_URL"].startswith("redis://")
    assert env["AIHP_DATABASE_URL"].startswith("postgresql+psycopg://")


def test_engine_services_wait_for_the_migration():
    services = compose()["services"]
    for name in ("api", "worker", "beat"):
        waits = services[name]["depends_on"]
        assert waits["migrate"]["condition"] == "service_completed_successfully", name
