"""docker-compose.yml and .env.example stay true to the settings the code reads."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SET_BY_COMPOSE = {"DATABASE_URL", "REDIS_URL", "DMARCDASH_DATA_DIR"}


def settings_variables() -> set[str]:
    source = (ROOT / "dmarcdash" / "settings.py").read_text()
    return set(re.findall(r'env(?:str|bool|int|list)\("([A-Z_]+)"', source))


def example_variables() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}


def test_it_defines_every_service_with_a_healthcheck():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "web", "worker", "beat"}
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends == {"postgres": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}}


def test_it_keeps_no_secret_in_the_compose_file():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "SECRET_KEY" not in text
    assert re.search(r"POSTGRES_PASSWORD: \$\{POSTGRES_PASSWORD:\?", text)


def test_it_documents_every_setting_and_only_real_ones():
    documented = example_variables() - {"POSTGRES_PASSWORD"}
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
