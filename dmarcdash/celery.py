"""Celery wiring: settings come from Django's under the CELERY_ namespace.

Without REDIS_URL the broker is in memory and tasks run eagerly in-process, so
the embedded default needs no other server.
"""

import logging
import os

from celery import Celery
from celery.worker import consumer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarcdash.settings")

log = logging.getLogger(__name__)


class Consumer(consumer.Consumer):
    """Celery's worker consumer, made to outlive a lost Redis connection.

    Celery 5.7 (kombu 5.7) cleans up a lost connection by collecting it, which drops the
    transport's client, and then closing it. When the loss is noticed on the pub/sub connection
    (remote control, gossip) while the worker holds unacknowledged messages (a running acks_late
    task, a task waiting for its countdown), that close needs the dropped client and raises
    AttributeError, which Celery does not expect there: the worker exits with "Unrecoverable
    error" instead of reconnecting. The close only tidies up a dead connection, and the messages
    stay in Redis's unacked set (delivered again after the visibility timeout), so the error is
    logged and the worker reconnects. tests/test_faults.py cuts Redis under a worker to show it.
    """

    def on_connection_error_after_connected(self, exc):
        connection = self.connection
        if connection is not None:
            close = connection.close

            def close_what_is_left():
                try:
                    close()
                except AttributeError as error:
                    log.warning("the lost broker connection did not close cleanly (%r); reconnecting", error)

            connection.close = close_what_is_left
        super().on_connection_error_after_connected(exc)


app = Celery("dmarcdash")
app.config_from_object("django.conf:settings", namespace="CELERY")
# A default, under Django's CELERY_WORKER_CONSUMER if that is ever set.
app.add_defaults({"worker_consumer": f"{__name__}:Consumer"})
app.autodiscover_tasks()
