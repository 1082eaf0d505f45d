"""/healthz and /metrics as a load balancer and Prometheus see them: the app runs under gunicorn in
its own process, on the test database (real Postgres) and a real Redis, each reached through a
TCP proxy the test can cut, so a failing dependency is a real failure, not a patched function."""

import http.client
import os
import re
import subprocess
import sys

import pytest
import redis
from django.db import connection
from django.utils import timezone

from reports.intake import monitoring
from reports.intake.pipeline import ingest_bytes
from reports.models import Domain, Intake, Mailbox, Organization
from tests.support.builders import record_xml, report_xml
from tests.support.paths import ROOT
from tests.support.tcpproxy import TcpProxy, free_port, wait_for_port

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_DB = 13  # this module's own: emptied before and after each test
TOKEN = "metrics-test-token"  # noqa: S105 (a test value)


class Web:
    def __init__(self, port: int, database: TcpProxy, redis_proxy: TcpProxy, proc: subprocess.Popen) -> None:
        self.port = port
        self.database = database
        self.redis = redis_proxy
        self.proc = proc

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            client.request("GET", path, headers=headers or {})
            response = client.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            client.close()


@pytest.fixture
def redis_cache(settings):
    """The test process writes heartbeats where the web process reads them: the same Redis database."""
    client = redis.Redis(db=REDIS_DB)
    client.flushdb()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:6379/{REDIS_DB}",
        }
    }
    yield client
    client.flushdb()


@pytest.fixture
def web(redis_cache, tmp_path) -> Web:
    database = connection.settings_dict
    db_proxy = TcpProxy(int(database["PORT"] or 5432), database["HOST"] or "127.0.0.1")
    redis_proxy = TcpProxy(6379)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@127.0.0.1:{db_proxy.port}/{database['NAME']}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_proxy.port}/{REDIS_DB}",
        "SECRET_KEY": "test-only",
        "DMARCDASH_DATA_DIR": str(tmp_path),
        "ALLOWED_HOSTS": "127.0.0.1",
        "METRICS_TOKEN": TOKEN,
    }
    command = [sys.executable, "-m", "gunicorn", "dmarcdash.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    app = Web(port, db_proxy, redis_proxy, proc)
    try:
        wait_for_port(port, proc, "gunicorn")
        yield app
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        db_proxy.close()
        redis_proxy.close()


def all_queues_beat() -> None:
    for queue in monitoring.QUEUES:
        monitoring.beat(queue)


def health(web: Web) -> tuple[int, dict]:
    import json

    status, _, body = web.get("/healthz")
    return status, json.loads(body)


def test_healthz_is_ok_when_everything_answers_and_names_no_tenant(web):
    organization = Organization.objects.create(name="Acme", slug="acme")
    fresh = Mailbox.objects.create(
        organization=organization, name="Secret inbox", host="imap.acme.example", username="dmarc",
        last_poll_at=timezone.now(), last_success_at=timezone.now(),
    )  # fmt: skip
    never = Mailbox.objects.create(organization=organization, name="New one", host="imap.acme.example", username="x")
    all_queues_beat()
    status, body = health(web)
    assert status == 200
    assert body["checks"]["database"] == {"ok": True, "vendor": "postgresql"}
    assert body["checks"]["broker"] == {"ok": True, "broker": "redis"}
    assert body["checks"]["workers"]["ok"] and set(body["checks"]["workers"]["heartbeat_age_seconds"]) == {
        "intake",
        "enrichment",
        "alerts",
    }
    # One mailbox never read is stale: reported, the status says so, but the load balancer still gets 200.
    states = {m["mailbox"]: m for m in body["mailboxes"]}
    assert states[fresh.pk]["stale"] is False and states[fresh.pk]["last_poll_age_seconds"] < 60
    assert states[never.pk]["stale"] is True and states[never.pk]["last_poll_age_seconds"] is None
    assert body["status"] == "degraded"
    _, headers, raw = web.get("/healthz")
    assert b"Secret inbox" not in raw and b"imap.acme.example" not in raw
    assert "no-cache" in headers["Cache-Control"]


def test_healthz_fails_for_a_queue_nobody_serves(web):
    monitoring.beat("intake")
    monitoring.beat("alerts")
    status, body = health(web)
    assert status == 503 and body["status"] == "fail"
    assert body["checks"]["workers"]["error"] == "no worker heartbeat within 180s on: enrichment"


def test_healthz_fails_while_the_database_is_unreachable_and_recovers(web):
    all_queues_beat()
    assert health(web)[0] == 200
    web.database.cut()
    status, body = health(web)
    assert status == 503
    assert body["checks"]["database"]["ok"] is False and "OperationalError" in body["checks"]["database"]["error"]
    assert body["checks"]["broker"]["ok"] is True  # the other checks still run
    assert "postgres://" not in body["checks"]["database"]["error"]  # no connection string
    web.database.restore()
    assert health(web)[0] == 200


def test_healthz_fails_while_redis_is_unreachable_and_recovers(web):
    all_queues_beat()
    assert health(web)[0] == 200
    web.redis.cut()
    status, body = health(web)
    assert status == 503
    assert body["checks"]["broker"]["ok"] is False and body["checks"]["workers"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    web.redis.restore()
    assert health(web)[0] == 200


def metric(text: str, name: str, **labels) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + wanted + '}') if labels else ''} (\S+)$"
    found = re.findall(pattern, text, re.M)
    assert len(found) == 1, f"{name} {labels} not in:\n{text}"
    return float(found[0])


def test_metrics_count_the_pipeline_and_need_the_token(web, redis_cache):
    organization = Organization.objects.create(name="Acme", slug="acme")
    Domain.objects.create(organization=organization, name="example.com")
    for number, count in enumerate((5, 7)):
        xml = report_xml([record_xml(count=count), record_xml(ip="198.51.100.9", count=1)], report_id=f"m-{number}")
        ingest_bytes(xml, source=Intake.Channel.UPLOAD, name=f"{number}.xml", organization=organization)
    ingest_bytes(report_xml([record_xml()], report_id="m-0"), source=Intake.Channel.API, name="again.xml")
    ingest_bytes(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><feedback/>', source="upload", name="xxe.xml")
    ingest_bytes(b"PK\x03\x04 not really", source=Intake.Channel.UPLOAD, name="broken.zip")
    mailbox = Mailbox.objects.create(
        organization=organization, name="Inbox", host="imap.acme.example", username="dmarc",
        last_poll_at=timezone.now(), last_success_at=timezone.now(), failing_since=timezone.now(),
    )  # fmt: skip
    all_queues_beat()
    redis_cache.rpush("alerts", b"{}", b"{}")  # two tasks waiting in the alerts queue

    assert web.get("/metrics")[0] == 401
    assert web.get("/metrics", {"Authorization": "Bearer wrong"})[0] == 401
    status, headers, body = web.get("/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
    text = body.decode()
    assert metric(text, "dmarcdash_reports_total") == 2
    assert metric(text, "dmarcdash_records_total") == 4
    assert metric(text, "dmarcdash_messages_total") == 5 + 1 + 7 + 1
    assert metric(text, "dmarcdash_inputs_total", source="upload", status="stored") == 2
    assert metric(text, "dmarcdash_inputs_total", source="api", status="duplicate") == 1
    assert metric(text, "dmarcdash_inputs_total", source="upload", status="refused") == 2
    assert metric(text, "dmarcdash_inputs_refused_total", reason="doctype") == 1
    assert metric(text, "dmarcdash_inputs_refused_total", reason="archive") == 1
    assert metric(text, "dmarcdash_mailbox_failing", mailbox=mailbox.pk) == 1
    assert metric(text, "dmarcdash_mailbox_last_poll_age_seconds", mailbox=mailbox.pk) < 60
    assert metric(text, "dmarcdash_queue_depth", queue="alerts") == 2
    assert metric(text, "dmarcdash_queue_depth", queue="intake") == 0
    assert metric(text, "dmarcdash_worker_heartbeat_age_seconds", queue="enrichment") < 60
    assert metric(text, "dmarcdash_dependency_up", dependency="database") == 1
    assert "Inbox" not in text and "example.com" not in text


def test_metrics_say_which_dependency_is_down(web):
    web.database.cut()
    status, _, body = web.get("/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200  # the scrape itself works: it reports the outage
    text = body.decode()
    assert metric(text, "dmarcdash_dependency_up", dependency="database") == 0
    assert metric(text, "dmarcdash_dependency_up", dependency="broker") == 1
    assert "dmarcdash_reports_total" not in text


def test_gunicorn_serves_the_static_files_itself(web):
    status, headers, body = web.get("/static/css/dmarcdash.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    assert b".muted" in body
    assert web.get("/static/nothing-here.css")[0] == 404


def test_every_task_goes_to_a_queue_a_worker_serves():
    from django.conf import settings

    from dmarcdash.celery import app

    app.loader.import_default_modules()
    ours = {name for name in app.tasks if name.startswith("reports.")}
    routed = set(settings.CELERY_TASK_ROUTES)
    assert ours - routed == {"reports.tasks.heartbeat"}  # sent to each queue by name
    assert {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} == set(monitoring.QUEUES)
    beats = [entry for entry in settings.CELERY_BEAT_SCHEDULE.values() if entry["task"] == "reports.tasks.heartbeat"]
    assert sorted(entry["options"]["queue"] for entry in beats) == sorted(monitoring.QUEUES)
    assert all(entry["args"] == [entry["options"]["queue"]] for entry in beats)
