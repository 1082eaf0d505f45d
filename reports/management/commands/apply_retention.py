from django.core.management.base import BaseCommand

from reports.intake import retention


class Command(BaseCommand):
    help = (
        "Remove the report records and raw inputs older than each organization's retention "
        "(the daily task does this too; the dashboard's daily totals are kept)."
    )

    def handle(self, *args, **options):
        counts = retention.apply()
        self.stdout.write(
            f"{counts['organizations']} organizations with retention: "
            f"{counts['records']} records removed from {counts['reports']} reports; "
            f"raw bytes of {counts['inputs']} inputs removed ({counts['blobs']} files deleted)"
        )
