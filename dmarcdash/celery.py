"""Celery wiring: settings come from Django's under the CELERY_ namespace.

Without REDIS_URL the broker is in memory and tasks run eagerly in-process, so
the embedded default needs no other server.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarcdash.settings")

app = Celery("dmarcdash")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
