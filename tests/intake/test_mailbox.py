"""Polling a real Dovecot: every report stored once, every message in the right folder,
the ledger explaining each, and no loss or duplicate when the poller dies at any point."""

import base64
import os
import subprocess
import sys
import threading
import time
from email.message import EmailMessage

import pytest
from django.db import connection

from reports.intake import imap, mailboxes
from reports.models import Intake, Mailbox, Organization, Record, Report
from reports.tenancy.secrets import encrypt
from tests.support.builders import gzipped, record_xml, report_email, report_xml, zipped
from tests.support.dovecot import ImapAccount, append_messages
from tests.support.mailboxes import folder_uids, make_mailbox
from tests.support.paths import ROOT


def google_zip(report_id: str = "google-1", records: int = 1) -> bytes:
    xml = report_xml(
        [record_xml(ip=f"192.0.2.{i + 1}") for i in range(records)],
        org_name="google.com",
        email="noreply-dmarc-support@google.com",
        report_id=report_id,
    )
    return report_email(
        [(f"google.com!example.com!1700000000!1700086399!{report_id}.zip", "application/zip", zipped({"r.xml": xml}))],
        subject=f"Report domain: example.com Submitter: google.com Report-ID: {report_id}",
    )


def mimecast_gzip_body() -> bytes:
    message = EmailMessage()
    message["From"] = "no-reply@mimecastreport.com"
    message["Subject"] = "Report domain: example.com Submitter: mimecast.org Report-ID: m-1"
    message["Content-Type"] = "application/gzip"
    message["Content-Transfer-Encoding"] = "base64"
    payload = gzipped(report_xml(org_name="Mimecast", email="dmarc@mimecast.org", report_id="mimecast-1"))
    message.set_payload(base64.encodebytes(payload + b"\r\n\r\ntrailing"))
    return message.as_bytes()


def plain_xml() -> bytes:
    return report_email([("r.xml", "text/xml", report_xml(org_name="Plain", email="d@plain.example", report_id="p-1"))])


def human_reply() -> bytes:
    message = EmailMessage()
    message["From"] = "someone@example.net"
    message["Subject"] = "Re: why am I getting these?"
    message.set_content("Please stop sending me XML.")
    return message.as_bytes()


def hostile_zip() -> bytes:
    return report_email([("evil.zip", "application/zip", zipped({"../../etc/evil.xml": report_xml()}))])


def failure_report() -> bytes:
    message = EmailMessage()
    message["Subject"] = "DMARC failure report for example.com"
    message.set_content("A message failed DMARC.")
    message.add_attachment(b"Feedback-Type: auth-failure\r\n", maintype="message", subtype="feedback-report")
    message.replace_header("Content-Type", 'multipart/report; report-type="feedback-report"; boundary="b"')
    return message.as_bytes()


def folder_subjects(account: ImapAccount, folder: str) -> list[str]:
    with account.login() as client:
        client.select_folder(folder, readonly=True)
        fetched = client.fetch(client.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]", "FLAGS"])
        for data in fetched.values():
            assert b"\\Seen" not in data[b"FLAGS"]  # fetched with BODY.PEEK: still unread for humans
        return sorted(
            data[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().strip().removeprefix("Subject: ")
            for data in fetched.values()
        )


SEED = [google_zip, mimecast_gzip_body, plain_xml, human_reply, google_zip, hostile_zip, failure_report]


@pytest.mark.django_db
@pytest.mark.embedded
def test_it_drains_a_mailbox_of_real_world_messages(imap_account):
    append_messages(imap_account, "INBOX", [make() for make in SEED])
    mailbox = make_mailbox(imap_account)

    result = imap.poll(mailbox)

    assert result.error == ""
    # The failure report names no domain of Acme's: refused, as failure reports are kept for added domains only.
    assert (result.stored, result.duplicate, result.refused, result.kept, result.moved) == (3, 1, 3, 0, 7)
    assert sorted(Report.objects.values_list("report_id", flat=True)) == ["google-1", "mimecast-1", "p-1"]
    assert folder_uids(imap_account, "INBOX") == []
    assert len(folder_subjects(imap_account, "DMARC-Processed")) == 4
    assert folder_subjects(imap_account, "DMARC-Invalid") == [
        "DMARC failure report for example.com",
        "Re: why am I getting these?",
        "Report Domain: example.com Submitter: reporter.example Report-ID: r-1",
    ]
    ledger = {intake.uid: intake for intake in Intake.objects.filter(mailbox=mailbox)}
    assert [ledger[uid].status for uid in sorted(ledger)] == [
        "stored", "stored", "stored", "refused", "duplicate", "refused", "refused",
    ]  # fmt: skip
    assert "message has no report attachment (subject 'Re: why am I getting these?')" in ledger[4].error
    assert "points outside the archive (zip slip)" in ledger[6].error
    assert ledger[7].kind == "failure"
    assert ledger[1].moved_to == "DMARC-Processed" and ledger[4].moved_to == "DMARC-Invalid"
    assert "ignored bytes after the end of the gzip stream" in Report.objects.get(report_id="mimecast-1").repairs
    mailbox.refresh_from_db()
    assert mailbox.last_success_at is not None and mailbox.failures == 0 and mailbox.uidvalidity

    again = imap.poll(mailbox)
    assert (again.stored, again.moved) == (0, 0)
    assert Intake.objects.count() == 7


@pytest.mark.django_db
@pytest.mark.embedded
def test_it_falls_back_to_copy_delete_expunge_without_move(imap_account_without_move):
    account = imap_account_without_move
    append_messages(account, "INBOX", [google_zip(), human_reply()])
    result = imap.poll(make_mailbox(account))
    assert (result.stored, result.refused, result.moved) == (1, 1, 2)
    assert folder_uids(account, "INBOX") == []
    assert len(folder_uids(account, "DMARC-Processed")) == 1
    assert len(folder_uids(account, "DMARC-Invalid")) == 1


@pytest.mark.django_db
def test_it_refuses_an_oversized_message_without_downloading_it(imap_account, settings):
    settings.DMARC_LIMITS = {**settings.DMARC_LIMITS, "max_message_bytes": 2048}
    big = report_email([("r.xml", "text/xml", report_xml())], body="padding " * 1000)
    append_messages(imap_account, "INBOX", [big])
    result = imap.poll(make_mailbox(imap_account))
    assert result.refused == 1
    intake = Intake.objects.get()
    assert "more than the 2 KiB cap; not downloaded" in intake.error
    assert intake.size == 0
    assert folder_uids(imap_account, "DMARC-Invalid") == [1]


@pytest.mark.django_db
def test_it_records_a_login_failure_and_backs_off(imap_account):
    mailbox = make_mailbox(imap_account, password_encrypted=encrypt("wrong"))
    result = imap.poll(mailbox)
    assert "refused the login" in result.error
    mailbox.refresh_from_db()
    assert mailbox.failures == 1 and "refused the login" in mailbox.last_error
    assert mailbox.next_poll_at > mailbox.last_poll_at
    assert list(imap.due_mailboxes()) == []


@pytest.mark.django_db
def test_one_broken_mailbox_does_not_stop_the_others(dovecot, imap_account):
    append_messages(imap_account, "INBOX", [google_zip()])
    broken = make_mailbox(imap_account, name="broken", port=1)
    working = make_mailbox(imap_account)
    results = [imap.poll(m) for m in (broken, working)]
    assert "cannot connect to 127.0.0.1:1" in results[0].error
    assert results[1].stored == 1


@pytest.mark.django_db
def test_it_refuses_plain_imap_to_a_remote_host(imap_account):
    result = imap.poll(make_mailbox(imap_account, host="imap.example.com"))
    assert result.error == "plain IMAP is only allowed to a loopback address, not imap.example.com"


@pytest.mark.django_db
def test_it_verifies_tls_certificates_and_trusts_a_configured_ca(imap_account):
    append_messages(imap_account, "INBOX", [google_zip()])
    tls = {"security": Mailbox.Security.TLS, "port": imap_account.dovecot.tls_port}
    refused = imap.poll(make_mailbox(imap_account, name="default-ca", **tls))
    assert "CERTIFICATE_VERIFY_FAILED" in refused.error
    trusted = imap.poll(make_mailbox(imap_account, ca_file=str(imap_account.dovecot.ca_file), **tls))
    assert trusted.error == "" and trusted.stored == 1


@pytest.mark.django_db
def test_it_speaks_starttls(imap_account):
    append_messages(imap_account, "INBOX", [google_zip()])
    mailbox = make_mailbox(imap_account, security=Mailbox.Security.STARTTLS, ca_file=str(imap_account.dovecot.ca_file))
    assert imap.poll(mailbox).stored == 1


@pytest.mark.django_db
def test_a_second_poller_of_the_same_mailbox_does_nothing(imap_account):
    append_messages(imap_account, "INBOX", [google_zip()])
    mailbox = make_mailbox(imap_account)
    token = imap.claim(mailbox)
    assert token
    second = imap.poll(mailbox)
    assert second.skipped
    assert not Intake.objects.exists()
    assert folder_uids(imap_account, "INBOX") == [1]
    imap.release(mailbox, token)
    assert imap.poll(mailbox).stored == 1


@pytest.mark.django_db(transaction=True)
def test_two_pollers_racing_store_each_report_once(imap_account):
    append_messages(imap_account, "INBOX", [google_zip(f"g-{i}") for i in range(30)])
    mailbox = make_mailbox(imap_account)
    results = []
    barrier = threading.Barrier(2)

    def run():
        barrier.wait()
        results.append(imap.poll(Mailbox.objects.get(pk=mailbox.pk)))
        connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(r.skipped for r in results) == [False, True]
    assert Report.objects.count() == 30
    assert folder_uids(imap_account, "INBOX") == []


@pytest.mark.django_db
def test_it_configures_the_default_mailbox_from_imap_url(monkeypatch, imap_account):
    append_messages(imap_account, "INBOX", [google_zip()])
    account = imap_account
    url = f"imap+plain://{account.username}:{account.password}@127.0.0.1:{account.dovecot.port}/INBOX"
    monkeypatch.setenv("IMAP_URL", url)
    mailbox = mailboxes.sync_env_mailbox()
    assert (mailbox.organization.slug, mailbox.security, mailbox.password_env) == ("default", "plain", "IMAP_URL")
    assert mailbox.password_encrypted == ""
    assert imap.poll(mailbox).stored == 1
    monkeypatch.setenv("IMAP_URL", "imap+plain://u:p@imap.example.com/INBOX")
    with pytest.raises(imap.MailboxError, match="plain IMAP is only allowed to a loopback address"):
        mailboxes.sync_env_mailbox()


# Crash injection: the poller is a real process killed (os._exit) at each point, then polled again.

CRASH_RUNNER = """
import os, sys
import django
django.setup()
from reports.intake import imap, pipeline
from reports.models import Mailbox

def die(*args, **kwargs):
    os._exit(137)

point = sys.argv[2]
if point == "after_fetch":
    imap.ingest_message = die
elif point == "mid_transaction":
    write_records = pipeline.write_records

    def some_then_die(report_id, records):
        def records_until_the_third():
            for number, record in enumerate(records):
                if number == 2:
                    os._exit(137)
                yield record
        return write_records(report_id, records_until_the_third())

    pipeline.write_records = some_then_die
elif point == "before_move":
    imap._move = die
imap.poll(Mailbox.objects.get(pk=int(sys.argv[1])))
"""


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("point", ["after_fetch", "mid_transaction", "before_move"])
def test_killing_the_poller_loses_nothing_and_stores_nothing_twice(imap_account, settings, point):
    if connection.vendor != "postgresql":
        pytest.skip("the killed poller runs in another process and needs a shared database server")
    append_messages(imap_account, "INBOX", [google_zip("big", records=5), plain_xml(), human_reply()])
    mailbox = make_mailbox(imap_account)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "dmarcdash.settings",
    }
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_RUNNER, str(mailbox.pk), point], env=env, capture_output=True, timeout=120
    )
    assert crashed.returncode == 137, crashed.stderr.decode()[-2000:]
    assert len(folder_uids(imap_account, "INBOX")) == 3  # nothing moved yet
    # Messages move after their whole fetch batch committed: all reports are in before the first move.
    assert Record.objects.count() == (6 if point == "before_move" else 0)

    # The dead poller's lease would lapse on its own after LEASE; time is moved on rather than waited for.
    Mailbox.objects.filter(pk=mailbox.pk).update(leased_until=None)
    result = imap.poll(Mailbox.objects.get(pk=mailbox.pk))

    assert result.error == ""
    assert sorted(Report.objects.values_list("report_id", "record_count")) == [("big", 5), ("p-1", 1)]
    assert Record.objects.count() == 6
    assert folder_uids(imap_account, "INBOX") == []
    assert len(folder_uids(imap_account, "DMARC-Processed")) == 2
    assert len(folder_uids(imap_account, "DMARC-Invalid")) == 1
    assert sorted(Intake.objects.values_list("uid", "status")) == [(1, "stored"), (2, "stored"), (3, "refused")]


@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_polls_due_mailboxes_through_the_redis_broker(imap_account, settings):
    if connection.vendor != "postgresql":
        pytest.skip("the worker runs in another process and needs a shared database server")
    import redis

    broker = "redis://127.0.0.1:6379/15"
    redis.Redis.from_url(broker).flushdb()
    append_messages(imap_account, "INBOX", [google_zip(), human_reply()])
    mailbox = make_mailbox(imap_account)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": broker,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "dmarcdash.settings",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "dmarcdash", "worker", "--pool", "solo", "--without-gossip",
         "--without-mingle", "--loglevel", "INFO"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        enqueue = (
            "import django; django.setup(); from reports.tasks import poll_due_mailboxes; poll_due_mailboxes.delay()"
        )
        subprocess.run([sys.executable, "-c", enqueue], env=env, cwd=ROOT, check=True, timeout=60)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and Intake.objects.exclude(moved_to="").count() < 2:
            time.sleep(0.2)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0].decode(errors="replace")
    assert Intake.objects.exclude(moved_to="").count() == 2, output[-3000:]
    assert "reports.tasks.poll_due_mailboxes" in output and "reports.tasks.poll_mailbox" in output
    assert Report.objects.get().report_id == "google-1"
    mailbox.refresh_from_db()
    assert mailbox.last_success_at is not None


@pytest.mark.django_db(transaction=True)
def test_idle_picks_up_new_mail_without_waiting_for_the_next_poll(imap_account):
    mailbox = make_mailbox(imap_account, poll_interval=3600)
    stop = threading.Event()

    def watch():
        imap.watch(Mailbox.objects.get(pk=mailbox.pk), stop=stop, idle_seconds=60)
        connection.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        deadline = time.monotonic() + 30
        while Mailbox.objects.get(pk=mailbox.pk).last_success_at is None and time.monotonic() < deadline:
            time.sleep(0.1)
        append_messages(imap_account, "INBOX", [google_zip()])
        deadline = time.monotonic() + 30
        while not Report.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert Report.objects.get().report_id == "google-1"


@pytest.mark.django_db
def test_the_mailbox_command_adds_a_mailbox_with_an_encrypted_password(imap_account, monkeypatch):
    import io

    from django.core.management import call_command

    Organization.objects.create(name="Acme", slug="acme")
    account = imap_account
    monkeypatch.setattr("sys.stdin", io.StringIO(account.password + "\n"))
    out = io.StringIO()
    call_command(
        "mailbox", "add", "acme", "rua", "--host", "127.0.0.1", "--port", str(account.dovecot.port),
        "--security", "plain", "--username", account.username, "--password-stdin", stdout=out,
    )  # fmt: skip
    mailbox = Mailbox.objects.get()
    assert mailbox.password_encrypted and account.password not in mailbox.password_encrypted
    append_messages(account, "INBOX", [google_zip()])
    out = io.StringIO()
    call_command("poll_mailboxes", stdout=out)
    assert "1 reports stored" in out.getvalue()
    out = io.StringIO()
    call_command("mailbox", "list", stdout=out)
    assert f"plain://{account.username}@127.0.0.1" in out.getvalue()


@pytest.mark.django_db
def test_it_fetches_bodies_in_batches_bounded_by_bytes(imap_account, monkeypatch):
    import imapclient

    padded = [report_email([("r.xml", "text/xml", report_xml(report_id=f"p{i}"))], body="x" * 3000) for i in range(9)]
    append_messages(imap_account, "INBOX", padded)
    monkeypatch.setattr(imap, "BATCH_BYTES", 10_000)
    fetched: list[int] = []
    real_fetch = imapclient.IMAPClient.fetch

    def fetch(self, messages, data, *args, **kwargs):
        if "BODY.PEEK[]" in data:
            fetched.append(len(messages))
        return real_fetch(self, messages, data, *args, **kwargs)

    monkeypatch.setattr(imapclient.IMAPClient, "fetch", fetch)
    result = imap.poll(make_mailbox(imap_account))
    assert result.stored == 9
    assert sum(fetched) == 9 and max(fetched) <= 2  # each message is ~4.5 KB: two fit in 10,000 bytes


@pytest.mark.django_db
@pytest.mark.embedded
def test_a_mailbox_of_aggregate_tls_and_failure_reports_drains_into_all_three(imap_account):
    from reports.models import FailureSample, TlsReport
    from tests.support.failures import arf_email, text_failure_email
    from tests.support.tlsrpt import failure_detail, tls_policy, tls_report_email, tls_report_json

    tls = tls_report_json(
        report_id="tls-google-1",
        policies=[tls_policy("example.com", successful=40, failures=[failure_detail("certificate-expired")])],
    )
    microsoft = tls_report_json(organization="Microsoft Corporation", report_id="tls-ms-1", policies=[tls_policy()])
    append_messages(
        imap_account,
        "INBOX",
        [
            google_zip(),
            tls_report_email(tls, report_id="tls-google-1"),
            tls_report_email(microsoft, gzip=False, submitter="microsoft.com", report_id="tls-ms-1"),
            tls_report_email(tls, report_id="tls-google-1"),  # delivered twice
            plain_xml(),
            arf_email(auth_failures=("dkim", "spf"), body="The body stays out"),
            text_failure_email(sender_domain="example.com", sender_ip="203.0.113.68"),
        ],
    )
    mailbox = make_mailbox(imap_account)
    mailbox.organization.domains.create(name="example.com")  # TLS reports are kept for added domains only

    result = imap.poll(mailbox)

    assert result.error == ""
    assert (result.stored, result.duplicate, result.refused, result.moved) == (6, 1, 0, 7)
    assert sorted(Report.objects.values_list("report_id", flat=True)) == ["google-1", "p-1"]
    assert sorted(FailureSample.objects.values_list("format", "source_ip")) == [
        ("arf", "198.51.100.7"),
        ("text", "203.0.113.68"),
    ]
    assert ["dkim", "spf"] in list(FailureSample.objects.values_list("auth_failures", flat=True))
    assert sorted(TlsReport.objects.values_list("report_id", "submitter", "failed")) == [
        ("tls-google-1", "google.com", 1),
        ("tls-ms-1", "microsoft.com", 0),
    ]
    kinds = [i.kind for i in Intake.objects.filter(mailbox=mailbox).order_by("uid")]
    assert kinds == ["aggregate", "tlsrpt", "tlsrpt", "tlsrpt", "aggregate", "failure", "failure"]
    assert folder_uids(imap_account, "INBOX") == []
    assert len(folder_subjects(imap_account, "DMARC-Processed")) == 7
