from django.core.management.base import BaseCommand, CommandError

from reports.intake import pipeline
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
            try:
                result = pipeline.replay(intake)
            except pipeline.RawPurged as exc:
                self.stdout.write(f"intake {intake.pk} skipped: {exc}")
                continue
            for outcome in result.outcomes:
                detail = f": {outcome.reason}" if outcome.reason else f" ({outcome.records} records)"
                self.stdout.write(f"intake {intake.pk} {outcome.name}: {outcome.status}{detail}")
