import os
from pathlib import Path

import dns.resolver
import pytest

from reports.lib.parsing import Limits
from tests.support.paths import CORPUS

# Servers, browsers and the shared cast (tests/support): their fixtures are every test's.
pytest_plugins = [
    "tests.support.dnsserver",
    "tests.support.oauthserver",
    "tests.support.dovecot",
    "tests.support.smtpserver",
    "tests.support.browser",
    "tests.support.cast",
    "tests.support.alerting",
    "tests.support.testca",
    "tests.support.httpsserver",
    "tests.support.starttlsserver",
    "tests.support.webhookserver",
    "tests.support.s3server",
]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix) -> None:
    """Each run gets a test database of its own (``TEST_RUN_ID``, else the process id, in its name),
    so two runs on one machine (a developer's and CI's, two worktrees) never drop each other's."""
    from django.conf import settings

    run = os.environ.get("TEST_RUN_ID") or str(os.getpid())
    for database in settings.DATABASES.values():
        if "sqlite" in database["ENGINE"]:
            continue  # in memory: already the run's own
        test = database.setdefault("TEST", {})
        test["NAME"] = f"{test.get('NAME') or 'test_' + database['NAME']}_{run}"


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the real-world corpus is not at {CORPUS} (it is not part of a fresh clone)")
    return CORPUS


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture(autouse=True)
def no_real_dns(monkeypatch) -> None:
    """There is no network here: a DNS query that is not aimed at a test's own server (the
    dns_server fixture) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a real DNS query was attempted")

    monkeypatch.setattr(dns.resolver, "resolve", refuse)
    monkeypatch.setattr(dns.resolver.Resolver, "resolve", refuse)


@pytest.fixture(autouse=True)
def raw_store(settings, tmp_path):
    """The raw store is the test database (rolled back after each test); each test also gets its own
    directory for the inputs earlier versions kept on disk, so nothing leaks between tests."""
    settings.RAW_STORE_DIR = tmp_path / "raw"
    return settings.RAW_STORE_DIR


# The suite's IMAP server (tests/support/dovecot.py) is on 127.0.0.1, which an operator must allow
# (reports/tenancy/netguard.py): here for the processes tests start, below for this one. Tests of the
# guard itself set their own list.
os.environ.setdefault("MAILBOX_ALLOWED_NETWORKS", "127.0.0.0/8")


@pytest.fixture(autouse=True)
def loopback_mailboxes(settings):
    settings.MAILBOX_ALLOWED_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache: ids repeat across tests once their data is rolled back."""
    from django.core.cache import cache

    cache.clear()
