"""docker-compose.yml and .env.example stay true to the settings the code reads."""

import re
import shutil
import subprocess

import pytest
import yaml

from tests.support.paths import ROOT

SET_BY_COMPOSE = {"DATABASE_URL", "REDIS_URL", "DMARCDASH_DATA_DIR"}
# Read by docker compose itself (or by gunicorn), not by dmarcdash's settings.
COMPOSE_ONLY = {"POSTGRES_PASSWORD", "WEB_PORT", "INTAKE_PORT", "WEB_CONCURRENCY"}
APP_SERVICES = {"web", "intake", "worker-intake", "worker-enrichment", "worker-alerts", "beat"}


def settings_variables() -> set[str]:
    source = (ROOT / "dmarcdash" / "settings.py").read_text()
    return set(re.findall(r'env(?:str|bool|int|list)\(\s*"([A-Z0-9_]+)"', source))


def example_variables() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}


def compose_file() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_it_defines_every_service_with_a_healthcheck_and_starts_them_after_the_migrations():
    services = compose_file()["services"]
    assert set(services) == {"postgres", "redis", "migrate"} | APP_SERVICES
    for name in APP_SERVICES | {"postgres", "redis"}:
        assert services[name]["healthcheck"]["test"], name
    for name in APP_SERVICES:
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name
    # Only the one-shot migrate service migrates: two web processes never race to.
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["migrate"]["restart"] == "no"
    for name in APP_SERVICES:
        assert "migrate" not in " ".join(services[name]["command"]), name


def test_each_queue_has_its_worker_and_web_is_gunicorn_checked_by_healthz():
    from django.conf import settings

    services = compose_file()["services"]
    queues = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    served = {}
    for name in APP_SERVICES:
        command = services[name]["command"]
        if command[:4] == ["celery", "-A", "dmarcdash", "worker"]:
            served[name] = command[command.index("-Q") + 1]
    assert sorted(served.values()) == sorted(queues)
    assert services["web"]["command"][0] == "gunicorn"
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["intake"]["command"][2] == "intake_server"
    # The LMTP port is for the host's MTA only.
    assert all(port.startswith("127.0.0.1:") for port in services["intake"]["ports"])


def test_every_variable_the_compose_file_names_is_documented():
    named = set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "docker-compose.yml").read_text()))
    assert named and named <= example_variables()


def test_it_keeps_no_secret_in_the_compose_file():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "SECRET_KEY" not in text
    assert re.search(r"POSTGRES_PASSWORD: \$\{POSTGRES_PASSWORD:\?", text)


def test_it_documents_every_setting_and_only_real_ones():
    documented = example_variables() - COMPOSE_ONLY
    assert documented == settings_variables() - SET_BY_COMPOSE


def test_docker_compose_accepts_the_file(tmp_path):
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (make test installs it with apt when run as root)")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    result = subprocess.run([compose, "config", "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    (tmp_path / ".env").write_text("SECRET_KEY=x\n")
    result = subprocess.run([compose, "config", "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "set POSTGRES_PASSWORD in .env" in result.stderr
