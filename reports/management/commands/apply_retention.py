from django.core.management.base import BaseCommand

from reports.intake import retention


class Command(BaseCommand):
    help = (
        "Remove the report records and raw inputs older than each organization's retention, and fold or remove "
        "its old rollups (the daily task does this too; folding keeps every total)."
    )

    def handle(self, *args, **options):
        counts = retention.apply()
        self.stdout.write(
            f"{counts['organizations']} organizations with retention: "
            f"{counts['records']} records removed from {counts['reports']} reports; "
            f"raw bytes of {counts['inputs']} inputs removed ({counts['blobs']} stored copies deleted); "
            f"{counts['rollups_folded']} daily rollup rows folded into months, {counts['rollups_removed']} removed"
        )
