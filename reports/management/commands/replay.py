from django.core.management.base import BaseCommand, CommandError

from reports.intake.pipeline import process_intake
from reports.models import Intake


class Command(BaseCommand):
    help = "Run ledger inputs through parsing and storage again (after a fix or a raised cap)."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int, help="intake ids (see the ledger)")
        parser.add_argument("--refused", action="store_true", help="replay every refused, partial or failed input")

    def handle(self, *args, ids: list[int], refused: bool, **options):
        intakes = Intake.objects.none()
        if ids:
            intakes = Intake.objects.filter(pk__in=ids)
            missing = set(ids) - set(intakes.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"no intake with id {', '.join(map(str, sorted(missing)))}")
        if refused:
            intakes = intakes | Intake.objects.filter(status__in=["refused", "partial", "failed"])
        if not ids and not refused:
            raise CommandError("name intake ids or use --refused")
        for intake in intakes.order_by("pk"):
            if intake.raw_purged_at is not None:
                # Without its bytes a replay would only mark the input failed; what it stored stays.
                removed = f"{intake.raw_purged_at:%Y-%m-%d}"
                self.stdout.write(f"intake {intake.pk} skipped: its raw bytes were removed on {removed} by retention")
                continue
            result = process_intake(intake)
            for outcome in result.outcomes:
                detail = f": {outcome.reason}" if outcome.reason else f" ({outcome.records} records)"
                self.stdout.write(f"intake {intake.pk} {outcome.name}: {outcome.status}{detail}")
