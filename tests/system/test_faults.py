"""Fault injection: real services fail under a running pipeline, and every report is still stored
exactly once (every alert email sent exactly once) after they come back.

The faults are real, never a patched function: Postgres, Redis and Dovecot are reached through TCP
proxies the test cuts (tests/support/tcpproxy.py), the SMTP server is stopped and started, and Celery workers
are separate processes killed with SIGKILL. The workers and beat are the production app
(``tests.support.faults_app`` only shortens beat's minute and Redis's visibility timeout where a test says so).

SMTP down while alerts are sent, in the alert code itself, is tests/test_alerts.py
``test_an_smtp_outage_delays_the_email_and_it_is_sent_exactly_once``; here it is the same fault
under two real alert workers and beat.
"""

import json
import sys
import time
from collections import Counter

import pytest
import redis
from django.db import connection
from django.utils import timezone

from reports.alerts import deliver as alert_mail
from reports.alerts import detect
from reports.intake import imap
from reports.models import AlertEmail, Intake, Mailbox, Report
from tests.support.alerting import recipients
from tests.support.builders import record_xml
from tests.support.dovecot import append_messages
from tests.support.faults import (
    REDIS_DB,
    REDIS_PORT,
    Process,
    TripwireProxy,
    assert_each_report_stored_once,
    celery_env,
    database_proxy,
    database_url,
    enqueue,
    flush_redis,
    heartbeats,
    redis_url,
    report_message,
    start_beat,
    start_worker,
    wait_until,
)
from tests.support.ingest import deliver
from tests.support.mailboxes import folder_uids, make_mailbox
from tests.support.tcpproxy import TcpProxy

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


# A report email of 40 records costs a worker about 14 KB of SQL, its raw bytes kept in the database
# included: the database faults after about 70 of 150, in the second batch of 50, in the middle of a
# poll, whatever the speed of the machine.
DB_FAULT_AFTER = 1_000_000


def test_a_poll_cut_off_from_postgres_stores_every_report_once_after_the_restore(imap_account, env, tmp_path):
    """(a) The database goes away while a Celery worker stores a mailbox's reports: the poll fails
    (the task is retried), no message leaves the INBOX without its reports committed, nothing is
    half-stored, and once the database is back the retried poll stores every report exactly once."""
    count, records = 150, 40
    uids = append_messages(imap_account, "INBOX", [report_message(n, records) for n in range(count)])
    mailbox = make_mailbox(imap_account)
    database = database_proxy(after_bytes=DB_FAULT_AFTER)
    worker = start_worker(env(database=database_url(database.port)), tmp_path)
    try:
        # 1. The worker's connection drops mid-poll, and new ones are refused.
        enqueue(redis_url(), "reports.tasks.poll_mailbox", [mailbox.pk], "intake", expires=300)
        wait_until(lambda: "Retry in" in worker.output(), 120, "the poll failing and being retried", worker)
        assert database.tripped.is_set()

        # 2. During the outage: part of the mailbox is done, the rest still in the INBOX, nothing half-stored.
        remaining = folder_uids(imap_account, "INBOX")
        assert 0 < len(remaining) < count, "the fault came too late or too early to be mid-poll"
        assert left_inbox_unfinished(imap_account, uids, mailbox) == []
        assert_each_report_stored_once([n for n in range(count) if uids[n] not in remaining], records)
        # A retry meets the outage too, and fails the same way.
        wait_until(lambda: worker.output().count("Retry in") >= 2, 60, "a second retry during the outage", worker)

        # 3. The database is back: the retried task takes its own lease back and finishes the job.
        database.disarm()
        database.restore()
        wait_until(lambda: not folder_uids(imap_account, "INBOX"), 300, "the retry", worker, interval=0.5)
        wait_until(lambda: "poll_mailbox" in worker.output() and "succeeded" in worker.output(), 30, "the task", worker)
    finally:
        worker.stop()
        database.close()
    assert_each_report_stored_once(range(count), records)
    assert len(folder_uids(imap_account, "DMARC-Processed")) == count
    assert "skipped" not in worker.output()


def test_worker_and_beat_come_back_by_themselves_after_a_redis_outage(imap_account, env, tmp_path, broker):
    """(b) Redis goes away under a running worker and beat and comes back: both carry on without
    anyone restarting them. Shown by the work after the restore: every queue's heartbeat (sent by
    beat, run by the worker) is fresh again, and reports mailed during the outage are polled by beat's
    schedule and stored, each exactly once. (With Celery and kombu 5.7 the worker used to exit here
    about one time in two: see the Consumer in dmarcdash/celery.py.)"""
    proxy = TcpProxy(REDIS_PORT)
    conf = env(broker_url=redis_url(proxy.port), FAULTS_BEAT_SECONDS="2")
    mailbox = make_mailbox(imap_account, poll_interval=1)
    append_messages(imap_account, "INBOX", [report_message(n, 5) for n in range(10)])
    worker = start_worker(conf, tmp_path)
    beat = start_beat(conf, tmp_path)
    try:
        # 1. Working: heartbeats through every queue, and the first reports polled by beat's schedule.
        wait_until(lambda: len(heartbeats(broker)) == 3, 60, "heartbeats on every queue", worker, beat)
        wait_until(lambda: not folder_uids(imap_account, "INBOX"), 120, "the first poll", worker, beat)

        # 2. Redis goes away for several beat ticks; reports keep arriving in the mailbox meanwhile.
        proxy.cut()
        cut_at = time.time()
        append_messages(imap_account, "INBOX", [report_message(n, 5) for n in range(10, 20)])
        wait_until(lambda: "Connection to broker lost" in worker.output(), 60, "the worker noticing", worker)
        wait_until(lambda: "Message Error" in beat.output(), 60, "beat failing to send", beat)
        time.sleep(5)  # an outage of several ticks, not a blip
        assert max(heartbeats(broker).values()) < cut_at  # nothing ran while Redis was away
        assert len(folder_uids(imap_account, "INBOX")) == 10
        assert worker.alive() and beat.alive()

        # 3. Redis is back: the same processes resume beat's schedule and the worker runs it.
        proxy.restore()
        restored_at = time.time()
        wait_until(
            lambda: len(heartbeats(broker)) == 3 and min(heartbeats(broker).values()) > restored_at,
            120, "fresh heartbeats on every queue after the restore", worker, beat,
        )  # fmt: skip
        wait_until(lambda: not folder_uids(imap_account, "INBOX"), 120, "the reports of the outage", worker, beat)
        assert worker.alive() and beat.alive()
    finally:
        beat.stop()
        worker.stop()
        proxy.close()
    assert_each_report_stored_once(range(20), 5)
    assert len(folder_uids(imap_account, "DMARC-Processed")) == 20
    mailbox.refresh_from_db()
    assert mailbox.failures == 0 and mailbox.last_error == ""


@pytest.mark.parametrize(("cut_mib", "committed"), [(5, 0), (15, 50)])
def test_an_imap_connection_dropped_mid_fetch_loses_nothing_and_doubles_nothing(imap_account, cut_mib, committed):
    """(c) The connection to the IMAP server drops in the middle of fetching a large batch (50
    messages of about 200 KB): in the first batch, or in the second once the first is committed and
    moved. The poll records the error; whatever was committed is in the Processed folder, the rest
    still in the INBOX; the next poll stores every report exactly once."""
    count, records = 100, 3
    uids = append_messages(imap_account, "INBOX", [report_message(n, records, padding=200_000) for n in range(count)])
    proxy = TripwireProxy(imap_account.dovecot.port, after_bytes=cut_mib * 2**20)
    mailbox = make_mailbox(imap_account, port=proxy.port)
    try:
        first = imap.poll(mailbox)
        assert proxy.tripped.is_set() and "connection lost during the poll" in first.error
        assert Mailbox.objects.get(pk=mailbox.pk).failures == 1
        assert len(folder_uids(imap_account, "INBOX")) == count - committed
        assert left_inbox_unfinished(imap_account, uids, mailbox) == []
        assert_each_report_stored_once(range(committed), records)

        proxy.disarm()
        proxy.restore()
        second = imap.poll(Mailbox.objects.get(pk=mailbox.pk))
    finally:
        proxy.close()
    assert second.error == "" and second.stored == count - committed
    assert_each_report_stored_once(range(count), records)
    assert folder_uids(imap_account, "INBOX") == []
    assert len(folder_uids(imap_account, "DMARC-Processed")) == count


def test_a_worker_killed_mid_poll_has_its_task_delivered_again_and_every_report_stored_once(
    imap_account, env, tmp_path, broker
):
    """(e) A worker is killed (SIGKILL, its pool child with it) in the middle of a mailbox poll: its
    database connection is held up mid-batch, so the kill lands there. The task was not acknowledged
    (acks_late), so Redis hands it to the next worker once the visibility timeout passes (5 s here,
    an hour by default); that run takes back the dead run's lease and stores the rest, every report
    exactly once."""
    count, records = 150, 40
    uids = append_messages(imap_account, "INBOX", [report_message(n, records) for n in range(count)])
    mailbox = make_mailbox(imap_account)
    transport = {"visibility_timeout": 5, "unacked_restore_interval": 1, "unacked_restore_throttle": 1}
    database = database_proxy(after_bytes=DB_FAULT_AFTER, stall=True)
    conf = env(database=database_url(database.port), FAULTS_TRANSPORT_OPTIONS=json.dumps(transport))
    first = start_worker(conf, tmp_path, "first")
    try:
        task = enqueue(redis_url(), "reports.tasks.poll_mailbox", [mailbox.pk], "intake", expires=300)
        wait_until(database.tripped.is_set, 120, "the worker held mid-poll", first)
        first.kill()
    finally:
        first.stop()
        # The killed process's sockets are closed; the proxy passes that on and Postgres ends its session.
        database.disarm()
    assert f"poll_mailbox[{task}] succeeded" not in first.output()
    remaining = folder_uids(imap_account, "INBOX")
    assert 0 < len(remaining) < count, "the kill came too late or too early to be mid-poll"
    assert left_inbox_unfinished(imap_account, uids, mailbox) == []
    assert_each_report_stored_once([n for n in range(count) if uids[n] not in remaining], records)
    assert any(task.encode() in message for message in broker.hvals("unacked"))  # held for redelivery

    second = start_worker(conf, tmp_path, "second")
    try:
        wait_until(lambda: not folder_uids(imap_account, "INBOX"), 120, "the redelivered poll", second, interval=0.5)
        wait_until(lambda: f"poll_mailbox[{task}] succeeded" in second.output(), 30, "the task's end", second)
    finally:
        second.stop()
        database.close()
    assert f"poll_mailbox[{task}] received" in second.output()  # the same task, delivered again
    assert "skipped" not in second.output()
    assert_each_report_stored_once(range(count), records)
    assert len(folder_uids(imap_account, "DMARC-Processed")) == count


def test_alert_emails_held_back_by_an_smtp_outage_are_sent_exactly_once_by_racing_workers(
    watched, smtp_server, env, tmp_path, broker
):
    """(d) The mail server is down while two workers and beat send alert emails: every attempt fails
    and is put back for later, nothing is lost. Once it is up, every tick of beat and a burst of extra
    sends race for the same due emails on both workers, and each subscriber gets exactly one.
    (The backoff between attempts is waited out by moving the emails' due time, as test_alerts.py's
    ``test_an_smtp_outage_delays_the_email_and_it_is_sent_exactly_once`` passes a later ``now``.)"""
    smtp_server.stop()
    deliver([record_xml(ip="203.0.113.66", count=12, dkim="fail", spf="fail")], 1, suffix="spoof")
    # Recorded by the after-ingest job, not sent by it: sending is the workers' part here.
    assert len(alert_mail.queue(detect.new_failing_sources(watched))) == 2
    conf = env(EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(smtp_server.port), FAULTS_BEAT_SECONDS="2")
    workers = [start_worker(conf, tmp_path, f"worker{n}") for n in (1, 2)]
    beat = start_beat(conf, tmp_path)

    def attempted(times: int) -> bool:
        return all(email.attempts >= times for email in AlertEmail.objects.all())

    try:
        # 1. SMTP down: each email fails, three times over as its retry falls due.
        for times in (1, 2, 3):
            AlertEmail.objects.filter(status=AlertEmail.Status.PENDING).update(next_attempt_at=timezone.now())
            wait_until(lambda: attempted(times), 60, f"attempt {times} during the outage", *workers, beat)  # noqa: B023
        assert set(AlertEmail.objects.values_list("status", flat=True)) == {AlertEmail.Status.PENDING}
        assert "ConnectionRefusedError" in AlertEmail.objects.first().last_error
        assert smtp_server.messages == []

        # 2. SMTP up and the retries due: beat's ticks and six more sends race on the two workers.
        smtp_server.start()
        AlertEmail.objects.update(next_attempt_at=timezone.now())
        for _ in range(6):
            enqueue(redis_url(), "reports.tasks.send_alert_emails", [], "alerts")
        wait_until(lambda: AlertEmail.objects.filter(status=AlertEmail.Status.SENT).count() == 2, 60, "sent", *workers)
        # Every send queued before is done, and beat ticks twice more: none sends anything again.
        wait_until(lambda: broker.llen("alerts") == 0, 30, "the queued sends", *workers)
        time.sleep(5)
    finally:
        beat.stop()
        for worker in workers:
            worker.stop()
    received = smtp_server.messages
    assert recipients(received) == ["alice@example.org", "bob@example.org"]
    assert {item.message["Subject"] for item in received} == {"[dmarcdash] 1 new failing source for example.com"}
    assert sorted(AlertEmail.objects.values_list("status", "attempts")) == [("sent", 4), ("sent", 4)]
    # Both workers took part in the race (not one doing everything while the other idled).
    assert all("send_alert_emails" in worker.output() for worker in workers)
    assert Counter(Report.objects.values_list("report_id", flat=True)) == Counter(
        {"google.com-3-": 1, "google.com-1-spoof": 1}
    )


def test_the_poll_loop_of_make_run_outlives_a_database_outage(imap_account, env, tmp_path):
    """``manage.py poll_mailboxes --loop`` (what polls under make run) loses a round to a database
    outage, not itself: once the database is back, the mail that came in meanwhile is stored."""
    mailbox = make_mailbox(imap_account)
    append_messages(imap_account, "INBOX", [report_message(0)])
    database = database_proxy()
    command = [sys.executable, "manage.py", "poll_mailboxes", "--loop", "--interval", "1"]
    loop = Process("poll-loop", command, env(database=database_url(database.port)), tmp_path)
    try:
        wait_until(lambda: not folder_uids(imap_account, "INBOX"), 60, "the first poll", loop)
        database.cut()
        wait_until(lambda: "database error" in loop.output(), 60, "the loop meeting the outage", loop)
        append_messages(imap_account, "INBOX", [report_message(1)])
        time.sleep(3)  # a few rounds into the outage
        assert loop.alive(), loop.tail()
        database.restore()
        Mailbox.objects.filter(pk=mailbox.pk).update(next_poll_at=None)  # due again now, not in five minutes
        wait_until(lambda: not folder_uids(imap_account, "INBOX"), 120, "a poll after the outage", loop)
    finally:
        loop.stop()
        database.close()
    assert_each_report_stored_once([0, 1], records=1)
