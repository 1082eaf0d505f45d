from django.core.management.base import BaseCommand

from reports.enrichment import ip_lookup
from reports.models import SourceIP


class Command(BaseCommand):
    help = "Look up the source IPs that are due: reverse DNS, forward confirmation, ASN, country, named sender."

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="look up every known IP again now")
        parser.add_argument("--limit", type=int, default=2000, help="IPs per round")
        parser.add_argument("--seconds", type=float, default=240.0, help="time budget per round")

    def handle(self, *args, all: bool, limit: int, seconds: float, **options):
        if all:
            SourceIP.objects.update(expires_at=None)
        added = ip_lookup.register_new_ips()
        self.stdout.write(f"{added} new source IPs registered")
        while True:
            result = ip_lookup.enrich_due(limit=limit, seconds=seconds)
            self.stdout.write(result.summary())
            if not result.remaining or not result.looked_up:
                break
