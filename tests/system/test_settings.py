"""Settings come from the environment; a bad value stops the process and names the variable."""

import os
import subprocess
import sys

import pytest

from tests.support.paths import ROOT


def start(tmp_path, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY", "REDIS_URL", "DEBUG")}
    clean.update(DMARCDASH_DATA_DIR=str(tmp_path), **env)
    code = (
        "import django; django.setup(); from django.conf import settings as s; print(s.DATABASES['default']['ENGINE'])"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


def test_it_runs_on_sqlite_with_no_configuration(tmp_path):
    result = start(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "django.db.backends.sqlite3"
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_it_uses_postgres_from_database_url(tmp_path):
    result = start(tmp_path, DATABASE_URL="postgres://u@127.0.0.1:5432/x", SECRET_KEY="k")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "django.db.backends.postgresql"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": "mysql://u@h/db", "SECRET_KEY": "k"}, "DATABASE_URL scheme 'mysql' is not supported"),
        ({"DATABASE_URL": "postgres://u@h/db"}, "SECRET_KEY must be set"),
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"DMARC_MAX_RECORDS": "lots"}, "DMARC_MAX_RECORDS='lots' is not a whole number"),
        ({"DMARC_MAX_XML_DEPTH": "3"}, "DMARC_MAX_XML_DEPTH=3 is below the minimum of 8"),
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL must start with redis://"),
    ],
)
def test_it_refuses_a_bad_setting_at_start_and_names_it(tmp_path, env, message):
    result = start(tmp_path, **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_it_treats_an_empty_variable_as_unset(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings as s; print(s.RAW_STORE_DIR, s.ASN_DATABASE)"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    clean.update(DMARCDASH_DATA_DIR=str(tmp_path), DMARCDASH_RAW_DIR="", ASN_DATABASE="")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True)
    assert result.stdout.split() == [str(tmp_path / "raw"), str(tmp_path / "asn.sqlite3")]
