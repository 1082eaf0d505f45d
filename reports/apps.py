from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "DMARC reports"

    def ready(self) -> None:
        from django.conf import settings

        from reports.lib import resolver

        # Read at each lookup, so a changed setting (a test's) takes effect at once.
        resolver.configuration = lambda: (settings.DNS_RESOLVER, settings.DNS_TIMEOUT)
        # The tasks module connects intake's "reports stored" signal to the enrichment and
        # window tasks: ingest itself knows nothing of Celery.
        from django.core import checks

        from reports import tasks  # noqa: F401
        from reports.intake import rawstore

        checks.register(rawstore.legacy_inputs_check)
