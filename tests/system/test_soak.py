"""Soak: the dashboard under 50 concurrent logged-in users (bench/load.py against gunicorn in its own
process, on the test database and Redis), run by ``make test-soak``, not by ``make test``.

The figures are printed (p95 among them) and recorded nowhere else; only errors fail the test,
never a time, which depends on the machine and whoever else is using it."""

import pytest
from django.db import connection

from bench import load
from tests.support.faults import database_url

pytestmark = [pytest.mark.soak, pytest.mark.django_db(transaction=True)]

USERS = 50
REQUESTS = 1000


def test_fifty_concurrent_users_browse_the_dashboard_without_a_single_error(tmp_path, capsys):
    if connection.vendor != "postgresql":
        pytest.skip("gunicorn runs in its own process: the database must be a server")
    figures = load.run(database_url(), users=USERS, requests=REQUESTS, data_dir=tmp_path)
    with capsys.disabled():
        print(f"\n{figures.report()}")
    assert figures.requests == REQUESTS and len(figures.latencies) == REQUESTS
    assert not figures.errors, figures.report()
