"""The real Celery app of dmarcdash/celery.py, for fault-injection tests: ``celery -A tests.support.faults_app worker``.

Two test-only knobs, read from the environment, and nothing else changes (tasks, routes, acks_late,
serialization and the beat schedule's entries are the production ones):

- ``FAULTS_TRANSPORT_OPTIONS``: JSON for ``broker_transport_options``. A short ``visibility_timeout``
  makes Redis hand a killed worker's unacknowledged task to another worker within seconds instead of
  the default hour, so a test can watch the redelivery.
- ``FAULTS_BEAT_SECONDS``: beat's every-minute entries (heartbeats, mailbox polls, alert emails) run
  this often instead, their ``expires`` scaled alike; the hourly, daily and weekly entries are left out.
  A test then sees several beat ticks during an outage of a few seconds.

PYTEST_DONT_REWRITE: imported by the Celery processes, not a test module.
"""

import json
import os

from dmarcdash.celery import app

if options := os.environ.get("FAULTS_TRANSPORT_OPTIONS"):
    app.conf.broker_transport_options = json.loads(options)

if seconds := float(os.environ.get("FAULTS_BEAT_SECONDS") or 0):
    every_minute = {name: entry for name, entry in app.conf.beat_schedule.items() if entry["schedule"] == 60.0}
    app.conf.beat_schedule = {
        name: {**entry, "schedule": seconds, "options": {**entry["options"], "expires": seconds * 55 / 60}}
        for name, entry in every_minute.items()
    }

__all__ = ["app"]
