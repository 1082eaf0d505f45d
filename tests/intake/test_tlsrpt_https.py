"""RFC 8460 section 3 end to end: a reporter POSTs a gzipped TLS report over HTTPS to the running web server
(gunicorn serving TLS with a certificate from a test CA, against the test database), as Google's and
Microsoft's senders would; the client verifies the certificate like they do."""

import gzip
import http.client
import json
import os
import ssl
import subprocess
import sys

import pytest
from django.db import connection

from reports.models import Intake, TlsReport
from tests.support.paths import ROOT
from tests.support.tcpproxy import free_port, wait_for_port
from tests.support.tlsrpt import tls_policy, tls_report_json

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def web_server(acme, tls_ca, tmp_path):
    """gunicorn on https://localhost:<port>/ with a certificate the test CA issued for localhost."""
    cert = tls_ca.issue(["localhost"])
    database = connection.settings_dict
    host, db_port = database["HOST"] or "127.0.0.1", database["PORT"] or 5432
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{host}:{db_port}/{database['NAME']}",
        "SECRET_KEY": "test-only",
        "DMARCDASH_DATA_DIR": str(tmp_path),
        "ALLOWED_HOSTS": "localhost",
        "DEBUG": "false",
        "TLSRPT_RATE_LIMIT": "5",
    }
    env.pop("REDIS_URL", None)  # one worker counts the rate limit in its own memory
    command = [
        sys.executable, "-m", "gunicorn", "dmarcdash.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
        "--certfile", cert.cert_file, "--keyfile", cert.key_file,
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, proc, "gunicorn")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def post(port: int, ca_file: str, body: bytes, content_type: str = "application/tlsrpt+gzip") -> tuple[int, dict]:
    context = ssl.create_default_context(cafile=ca_file)
    conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=30)
    try:
        conn.request("POST", "/tlsrpt/", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def test_a_gzipped_report_posted_over_https_is_stored_once(web_server, tls_ca):
    body = gzip.compress(tls_report_json(report_id="https-1"))

    status, answer = post(web_server, tls_ca.ca_file, body)
    assert (status, answer["status"]) == (201, "stored")
    stored = TlsReport.objects.get()
    assert stored.report_id == "https-1" and stored.intake.source == Intake.Channel.HTTPS

    status, answer = post(web_server, tls_ca.ca_file, body)
    assert (status, answer["status"]) == (200, "duplicate")
    assert TlsReport.objects.count() == 1

    stranger = gzip.compress(tls_report_json(report_id="https-2", policies=[tls_policy("nobody.example")]))
    status, answer = post(web_server, tls_ca.ca_file, stranger)
    assert status == 403 and "nobody.example" in answer["error"]
    assert Intake.objects.count() == 2  # the refused one left nothing in the ledger

    status, _ = post(web_server, tls_ca.ca_file, body, "text/plain")
    assert status == 415
    # Five POSTs a minute per client: more are refused (a loop, as the count may straddle a minute).
    answers = [post(web_server, tls_ca.ca_file, body) for _ in range(7)]
    limited = [answer for status, answer in answers if status == 429]
    assert limited and "try again" in limited[0]["error"]
    assert TlsReport.objects.count() == 1


def test_a_client_that_verifies_certificates_refuses_another_ca(web_server, tls_ca, tmp_path):
    from tests.support.testca import TestCA

    other = TestCA(tmp_path / "other-ca")
    with pytest.raises(ssl.SSLCertVerificationError):
        post(web_server, other.ca_file, gzip.compress(tls_report_json()))
