"""What intake tells the rest of the application, once its transaction is committed.

``reports_stored`` is sent after each report is stored: the tasks module connects the source IP
lookups and the dashboard's window refresh to it, so ingest needs no Celery (and no import of the
areas that come after it).
"""

from django.dispatch import Signal

reports_stored = Signal()
