"""Endpoints for machines: open to anyone (a load balancer, a Prometheus without a token when
METRICS_TOKEN is unset), and showing no tenant's data, which tests/test_ops.py checks."""

from tests.support.rules import Rule

RULES = {
    "healthz": Rule("open"),
    "metrics": Rule("open"),
    "favicon": Rule("open"),
}
