"""Direct mail intake end to end: ``manage.py intake_server`` runs as its own process against the
test database (on real Postgres) and Redis, and mail is delivered to it the way Postfix would,
with Python's ``smtplib.LMTP`` (and ``smtplib.SMTP``).

The database fault is real: the server reaches Postgres through a TCP proxy the test cuts, so its
connection drops and new ones are refused, as when the database restarts or the network fails.
"""

import json
import os
import smtplib
import socket
import subprocess
import sys

import pytest
import redis
from django.db import connection

from reports.models import Intake, Report
from tests.support.builders import gzipped, record_xml, report_email, report_xml
from tests.support.paths import ROOT
from tests.support.tcpproxy import TcpProxy, free_port, wait_for_port

pytestmark = pytest.mark.django_db(transaction=True)

ADDRESS = "dmarc@reports.example.net"
PINNED = "acme-reports@reports.example.net"
MAX_BYTES = 200 * 1024
REDIS_DB = 14  # queued follow-up tasks land here, away from other tests; emptied after each test


class IntakeServer:
    def __init__(self, proc: subprocess.Popen, lmtp_port: int, smtp_port: int, proxy: TcpProxy) -> None:
        self.proc = proc
        self.lmtp_port = lmtp_port
        self.smtp_port = smtp_port
        self.database = proxy

    def lmtp(self) -> smtplib.LMTP:
        client = smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=30)
        client.ehlo_or_helo_if_needed()
        return client


@pytest.fixture
def intake_server(acme, tmp_path) -> IntakeServer:
    database = connection.settings_dict
    proxy = TcpProxy(int(database["PORT"] or 5432), database["HOST"] or "127.0.0.1")
    lmtp_port, smtp_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@127.0.0.1:{proxy.port}/{database['NAME']}",
        "DATABASE_CONN_MAX_AGE": "600",  # one connection kept across messages, as in production
        "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        "SECRET_KEY": "test-only",
        "DMARCDASH_DATA_DIR": str(tmp_path),
        "INTAKE_ADDRESSES": f"{ADDRESS}, {PINNED}=acme",
        "DMARC_MAX_MESSAGE_BYTES": str(MAX_BYTES),
        "DKIM_VERIFY": "false",  # no DNS here; DKIM of report emails has its own tests
        "LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "intake_server",
            "--lmtp",
            f"127.0.0.1:{lmtp_port}",
            "--smtp",
            f"127.0.0.1:{smtp_port}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(lmtp_port, proc, "intake_server")
        wait_for_port(smtp_port, proc, "intake_server")  # the listeners start one after the other
        yield IntakeServer(proc, lmtp_port, smtp_port, proxy)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proxy.close()
        redis.Redis(db=REDIS_DB).flushdb()


def message(report_id: str = "r-1", ip: str = "192.0.2.10", count: int = 7) -> bytes:
    xml = report_xml([record_xml(ip=ip, count=count)], report_id=report_id)
    # CRLF, as on the wire: smtplib sends bytes as they are.
    return report_email([("report.xml.gz", "application/gzip", gzipped(xml))]).replace(b"\n", b"\r\n")


def test_a_report_delivered_over_lmtp_is_stored(intake_server, acme):
    with intake_server.lmtp() as client:
        refused = client.sendmail("noreply@reporter.example", [ADDRESS], message())
    assert refused == {}
    report = Report.objects.get(report_id="r-1")
    assert report.domain.name == "example.com" and report.message_count == 7
    intake = report.intake
    assert intake.source == Intake.Channel.LMTP and intake.status == Intake.Status.STORED
    assert intake.name.startswith("Report Domain: example.com")


def test_a_database_error_answers_451_and_the_retry_stores_it_exactly_once(intake_server, acme):
    data = message("r-retry")
    # The server has a database connection open from an earlier message, as it would in production.
    with intake_server.lmtp() as client:
        client.sendmail("noreply@reporter.example", [ADDRESS], message("r-warm"))

    intake_server.database.cut()
    with intake_server.lmtp() as client:
        with pytest.raises(smtplib.SMTPDataError) as failed:
            client.sendmail("noreply@reporter.example", [ADDRESS], data)
    assert failed.value.smtp_code == 451
    assert b"try again later" in failed.value.smtp_error
    # A second message in the outage: refused the same way (the server does not wedge).
    with intake_server.lmtp() as client:
        with pytest.raises(smtplib.SMTPDataError):
            client.sendmail("noreply@reporter.example", [ADDRESS], data)

    intake_server.database.restore()
    with intake_server.lmtp() as client:
        assert client.sendmail("noreply@reporter.example", [ADDRESS], data) == {}
    assert Report.objects.filter(report_id="r-retry").count() == 1
    # One ledger row for the message, whatever the attempts: it is the stored one.
    (intake,) = Intake.objects.filter(reports__report_id="r-retry")
    assert Intake.objects.filter(sha256=intake.sha256).count() == 1
    assert intake.status == Intake.Status.STORED
    # The MTA delivering it once more (a reply lost on the way) stores nothing twice either.
    with intake_server.lmtp() as client:
        client.sendmail("noreply@reporter.example", [ADDRESS], data)
    assert Report.objects.filter(report_id="r-retry").count() == 1


def test_an_unknown_recipient_is_refused_with_550_and_the_known_one_still_gets_it(intake_server, acme):
    with intake_server.lmtp() as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("noreply@reporter.example", ["postmaster@reports.example.net"], message())
        assert refused.value.recipients["postmaster@reports.example.net"][0] == 550
        client.rset()
        partly = client.sendmail("noreply@reporter.example", ["someone@else.example", ADDRESS], message("r-2"))
    assert partly["someone@else.example"][0] == 550
    assert Report.objects.filter(report_id="r-2").count() == 1
    assert not Report.objects.filter(report_id="r-1").exists()


def test_an_oversized_message_is_refused_with_552(intake_server, acme):
    padding = (b"x" * 76 + b"\r\n") * (MAX_BYTES // 78 + 1)  # lines of legal length, too many of them
    with intake_server.lmtp() as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # SIZE= at MAIL FROM already says too big
            client.sendmail("noreply@reporter.example", [ADDRESS], message() + padding)
        assert refused.value.smtp_code == 552
    # Without the SIZE hint the server counts the bytes itself while they arrive.
    with socket.create_connection(("127.0.0.1", intake_server.lmtp_port), timeout=30) as raw:
        replies = raw.makefile("rb")
        replies.readline()
        for command in (b"LHLO mta.test", b"MAIL FROM:<noreply@reporter.example>", f"RCPT TO:<{ADDRESS}>".encode()):
            raw.sendall(command + b"\r\n")
            while replies.readline()[3:4] == b"-":
                pass
        raw.sendall(b"DATA\r\n")
        assert replies.readline().startswith(b"354")
        raw.sendall(message() + padding + b"\r\n.\r\n")
        assert replies.readline().startswith(b"552")
    assert Intake.objects.count() == 0


def test_lmtp_answers_once_per_recipient(intake_server, acme):
    """RFC 2033: after DATA, one reply per accepted recipient, in order (smtplib reads only one)."""
    with socket.create_connection(("127.0.0.1", intake_server.lmtp_port), timeout=30) as raw:
        replies = raw.makefile("rb")
        replies.readline()
        raw.sendall(b"LHLO mta.test\r\n")
        while replies.readline()[3:4] == b"-":
            pass
        for command in (b"MAIL FROM:<noreply@reporter.example>", f"RCPT TO:<{ADDRESS}>", f"RCPT TO:<{PINNED}>"):
            raw.sendall((command if isinstance(command, bytes) else command.encode()) + b"\r\n")
            assert replies.readline().startswith(b"250")
        raw.sendall(b"DATA\r\n")
        assert replies.readline().startswith(b"354")
        raw.sendall(message("r-two") + b"\r\n.\r\n")
        first, second = replies.readline(), replies.readline()
    assert first.startswith(b"250 2.0.0 input ") and second.startswith(b"250 2.0.0 input ")
    # Both routes store the report for Acme's domain once; the second is a duplicate of the first.
    assert Report.objects.filter(report_id="r-two").count() == 1
    assert sorted(Intake.objects.values_list("status", flat=True)) == ["duplicate", "stored"]
    assert set(Intake.objects.values_list("organization_id", flat=True)) == {None, acme.pk}


def test_smtp_works_too_and_mail_that_is_no_report_is_accepted_with_its_reason_in_the_ledger(intake_server, acme):
    not_a_report = b"From: someone@else.example\r\nSubject: hello\r\n\r\nAre you there?\r\n"
    with smtplib.SMTP("127.0.0.1", intake_server.smtp_port, timeout=30) as client:
        assert client.sendmail("noreply@reporter.example", [ADDRESS], message("r-smtp")) == {}
        assert client.sendmail("someone@else.example", [ADDRESS], not_a_report) == {}
    assert Report.objects.filter(report_id="r-smtp").count() == 1
    refused = Intake.objects.get(name="hello")
    assert refused.source == Intake.Channel.LMTP
    assert refused.status == Intake.Status.REFUSED and refused.error


def test_a_retry_finishes_the_ledger_row_an_attempt_left_unfinished(acme, tmp_path, settings):
    """The database went away after the input's row was written: the retry completes that row."""
    from reports.intake import lmtp, rawstore

    settings.RAW_STORE_DIR = tmp_path
    settings.DKIM_VERIFY = False
    data = message("r-half")
    sha256, size = rawstore.save_bytes(data)
    left = Intake.objects.create(
        source=Intake.Channel.LMTP, name="half", sha256=sha256, size=size, organization=None, status="failed"
    )
    reply = lmtp.deliver(data, None)
    assert reply == f"250 2.0.0 input {left.pk} stored"
    assert list(Intake.objects.values_list("pk", "status")) == [(left.pk, "stored")]
    assert Report.objects.get(report_id="r-half").intake_id == left.pk


def test_the_server_logs_json_lines_and_each_line_about_an_input_names_it(intake_server, acme):
    with intake_server.lmtp() as client:
        client.sendmail("noreply@reporter.example", [ADDRESS], message("r-log"))
    intake = Intake.objects.get()
    intake_server.proc.terminate()
    output, _ = intake_server.proc.communicate(timeout=15)
    entries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert entries and all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
    (done,) = [entry for entry in entries if entry.get("input") == intake.pk and "stored" in entry["message"]]
    assert done["message"] == "Direct delivery (LMTP/SMTP) stored: 1 stored, 0 duplicate, 0 refused"
    assert done["logger"] == "reports.intake.pipeline" and done["level"] == "INFO"


def test_a_tls_report_delivered_over_lmtp_is_stored(intake_server, acme):
    from reports.models import TlsReport
    from tests.support.tlsrpt import tls_report_email, tls_report_json

    email = tls_report_email(tls_report_json(report_id="lmtp-tls-1"), report_id="lmtp-tls-1")
    with intake_server.lmtp() as client:
        refused = client.sendmail("noreply-smtp-tls-reporting@google.com", [ADDRESS], email)
    assert refused == {}
    stored = TlsReport.objects.get(report_id="lmtp-tls-1")
    assert stored.domain.name == "example.com" and stored.submitter == "google.com"
    assert stored.intake.source == Intake.Channel.LMTP and stored.intake.kind == Intake.Kind.TLSRPT
