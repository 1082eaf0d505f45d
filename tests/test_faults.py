"""Fault injection: real services fail under a running pipeline, and every report is still stored
exactly once (every alert email sent exactly once) after they come back.

The faults are real, never a patched function: Postgres, Redis and Dovecot are reached through TCP
proxies the test cuts (tests/tcpproxy.py), the SMTP server is stopped and started, and Celery workers
are separate processes killed with SIGKILL. The workers and beat are the production app
(``tests.faults_app`` only shortens beat's minute and Redis's visibility timeout where a test says so).

SMTP down while alerts are sent, in the alert code itself, is tests/test_alerts.py
``test_an_smtp_outage_delays_the_email_and_it_is_sent_exactly_once``; here it is the same fault
under two real alert workers and beat.
"""

import pytest
import redis
from django.db import connection

from reports.models import Intake
from tests.dovecot import append_messages
from tests.faults import (
    REDIS_DB,
    REDIS_PORT,
    assert_each_report_stored_once,
    celery_env,
    database_proxy,
    database_url,
    enqueue,
    flush_redis,
    redis_url,
    report_message,
    start_worker,
    wait_until,
)
from tests.test_mailbox import folder_uids, make_mailbox

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def postgres():
    if connection.vendor != "postgresql":
        pytest.skip("the faulted processes share the test database: it must be a database server")


@pytest.fixture
def broker():
    """This module's Redis database, empty before and after each test."""
    flush_redis()
    yield redis.Redis(port=REDIS_PORT, db=REDIS_DB)
    flush_redis()


@pytest.fixture
def env(tmp_path, dns_server, broker):
    """What a worker or beat of these tests runs with; DNS lookups (enrichment after ingest) go to
    a local test server that knows no name, so none leaves the machine."""

    def make(database: str | None = None, broker_url: str | None = None, **extra: str) -> dict:
        return celery_env(
            database=database or database_url(),
            broker=broker_url or redis_url(),
            data_dir=tmp_path,
            DNS_RESOLVER=f"127.0.0.1:{dns_server.port}",
            **extra,
        )

    return make


def left_inbox_unfinished(account, uids: list[int], mailbox) -> list[int]:
    """UIDs that are no longer in the INBOX although their ledger row is not finished: lost mail."""
    remaining = set(folder_uids(account, "INBOX"))
    finished = {i.uid for i in Intake.objects.filter(mailbox=mailbox) if i.finished}
    return sorted(uid for uid in uids if uid not in remaining and uid not in finished)


def test_a_poll_cut_off_from_postgres_stores_every_report_once_after_the_restore(imap_account, env, tmp_path):
    """(a) The database goes away while a Celery worker stores a mailbox's reports: the poll fails
    (the task is retried), no message leaves the INBOX without its reports committed, and once the
    database is back the retried poll stores every report exactly once."""
    count, records = 150, 40
    uids = append_messages(imap_account, "INBOX", [report_message(n, records) for n in range(count)])
    mailbox = make_mailbox(imap_account)
    database = database_proxy()
    worker = start_worker(env(database=database_url(database.port)), tmp_path)
    try:
        enqueue(redis_url(), "reports.tasks.poll_mailbox", [mailbox.pk], "intake", expires=300)
        # 1. Cut once the first batch is committed and moved, while the next ones are being stored.
        wait_until(
            lambda: Intake.objects.filter(mailbox=mailbox).exclude(moved_to="").exists(), 120, "a first batch", worker
        )
        database.cut()
        wait_until(lambda: "Retry in" in worker.output(), 60, "the poll failing and being retried", worker)

        # 2. During the outage: part of the mailbox is done, the rest still in the INBOX, nothing half-stored.
        remaining = folder_uids(imap_account, "INBOX")
        assert 0 < len(remaining) < count, "the cut came too late or too early to be mid-poll"
        assert left_inbox_unfinished(imap_account, uids, mailbox) == []
        done = [n for n in range(count) if uids[n] not in remaining]
        assert_each_report_stored_once(done, records)
        # A retry meets the outage too, and fails the same way.
        wait_until(lambda: worker.output().count("Retry in") >= 2, 60, "a second retry during the outage", worker)

        # 3. The database is back: the retried task takes its own lease back and finishes the job.
        database.restore()
        wait_until(
            lambda: not folder_uids(imap_account, "INBOX"),
            300,
            "the retried poll draining the INBOX",
            worker,
            interval=0.5,
        )
        wait_until(lambda: "poll_mailbox" in worker.output() and "succeeded" in worker.output(), 30, "the task", worker)
    finally:
        worker.stop()
        database.close()
    assert_each_report_stored_once(range(count), records), worker.tail()
    assert len(folder_uids(imap_account, "DMARC-Processed")) == count
    assert "skipped" not in worker.output()
