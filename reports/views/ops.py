"""Endpoints for the machines that run dmarcdash: /healthz for load balancers, /metrics for Prometheus.

/healthz is open (a load balancer has no login) and shows no tenant data: checks, ages and
mailbox ids. /metrics needs ``Authorization: Bearer $METRICS_TOKEN`` when METRICS_TOKEN is set;
leave it unset only where the web port is not reachable from outside.
"""

import hmac

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from reports.intake import monitoring


@never_cache
@require_GET
def healthz(request):
    result = monitoring.health()
    return JsonResponse(result.as_json(), status=200 if result.ok else 503)


class PipelineCollector:
    """Builds every metric at scrape time from monitoring's counts."""

    def collect(self):
        health = monitoring.health()
        up = GaugeMetricFamily("dmarcdash_dependency_up", "1 when the dependency answers", labels=["dependency"])
        for name, check in health.checks.items():
            up.add_metric([name], 1 if check["ok"] else 0)
        yield up
        if not health.checks["database"]["ok"]:
            return  # the rest comes from the database
        counts = monitoring.pipeline_counts()
        totals = counts["totals"]
        yield CounterMetricFamily("dmarcdash_reports", "Aggregate reports stored", value=totals["reports"])
        yield CounterMetricFamily("dmarcdash_records", "Report records stored", value=totals["records"])
        yield CounterMetricFamily("dmarcdash_messages", "Messages the stored reports count", value=totals["messages"])
        inputs = CounterMetricFamily("dmarcdash_inputs", "Inputs in the ledger", labels=["source", "status"])
        for row in counts["inputs"]:
            inputs.add_metric([row["source"], row["status"]], row["n"])
        yield inputs
        refused = CounterMetricFamily(
            "dmarcdash_inputs_refused", "Inputs with refused parts, by reason", labels=["reason"]
        )
        for row in counts["refused"]:
            refused.add_metric([row["reason"]], row["n"])
        yield refused
        emails = GaugeMetricFamily("dmarcdash_alert_emails", "Alert emails by state", labels=["kind", "status"])
        attempts = CounterMetricFamily("dmarcdash_alert_email_attempts", "SMTP attempts for alert emails")
        tried = 0
        for row in counts["emails"]:
            emails.add_metric([row["kind"], row["status"]], row["n"])
            tried += row["attempts"] or 0
        attempts.add_metric([], tried)
        yield emails
        yield attempts
        poll = GaugeMetricFamily(
            "dmarcdash_mailbox_last_poll_age_seconds", "Seconds since the mailbox was polled", labels=["mailbox"]
        )
        success = GaugeMetricFamily(
            "dmarcdash_mailbox_last_success_age_seconds",
            "Seconds since the mailbox was last read successfully",
            labels=["mailbox"],
        )
        failing = GaugeMetricFamily("dmarcdash_mailbox_failing", "1 while the mailbox's polls fail", labels=["mailbox"])
        for state in health.mailboxes:  # read by health() above, this scrape
            label = [str(state["mailbox"])]
            if state["last_poll_age_seconds"] is not None:
                poll.add_metric(label, state["last_poll_age_seconds"])
            if state["last_success_age_seconds"] is not None:
                success.add_metric(label, state["last_success_age_seconds"])
            failing.add_metric(label, 1 if state["failing"] else 0)
        yield poll
        yield success
        yield failing
        depth = GaugeMetricFamily("dmarcdash_queue_depth", "Tasks waiting in each Celery queue", labels=["queue"])
        for queue, length in monitoring.queue_depths().items():
            if length is not None:
                depth.add_metric([queue], length)
        yield depth
        workers = health.checks["workers"].get("heartbeat_age_seconds") or {}
        heartbeat = GaugeMetricFamily(
            "dmarcdash_worker_heartbeat_age_seconds", "Seconds since a worker served the queue", labels=["queue"]
        )
        for queue, age in workers.items():
            if age is not None:
                heartbeat.add_metric([queue], age)
        yield heartbeat


def _authorized(request) -> bool:
    if not settings.METRICS_TOKEN:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), settings.METRICS_TOKEN.encode())


@never_cache
@require_GET
def metrics(request):
    if not _authorized(request):
        response = HttpResponse("metrics need Authorization: Bearer <METRICS_TOKEN>\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
]
