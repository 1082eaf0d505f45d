from django.core.management.base import BaseCommand, CommandError

from reports.intake import pipeline
from reports.models import Intake


class Command(BaseCommand):
    help = "Run ledger inputs through parsing and storage again (after a fix or a raised cap)."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int, help="intake ids (see the ledger)")
        parser.add_argument("--refused", action="store_true", help="replay every refused, partial or failed input")
        parser.add_argument(
            "--kept",
            action="store_true",
            help="replay every input kept aside as another kind of report (e.g. TLS reports received before "
            "dmarcdash parsed them)",
        )
        parser.add_argument(
            "--kind", choices=[k.value for k in Intake.Kind], help="with --kept or --refused: only inputs of this kind"
        )

    def handle(self, *args, ids: list[int], refused: bool, kept: bool, kind: str | None, **options):
        intakes = Intake.objects.none()
        if ids:
            intakes = Intake.objects.filter(pk__in=ids)
            missing = set(ids) - set(intakes.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"no intake with id {', '.join(map(str, sorted(missing)))}")
        statuses = (["refused", "partial", "failed"] if refused else []) + (["kept"] if kept else [])
        if statuses:
            wanted = Intake.objects.filter(status__in=statuses)
            intakes = intakes | (wanted.filter(kind=kind) if kind else wanted)
        if not ids and not statuses:
            raise CommandError("name intake ids or use --refused or --kept")
        for intake in intakes.order_by("pk"):
            try:
                result = pipeline.replay(intake)
            except pipeline.RawPurged as exc:
                self.stdout.write(f"intake {intake.pk} skipped: {exc}")
                continue
            for outcome in result.outcomes:
                if outcome.reason:
                    detail = f": {outcome.reason}"
                elif outcome.kind == "tlsrpt":
                    detail = f" (TLS report, {outcome.sessions} sessions)"
                else:
                    detail = f" ({outcome.records} records)"
                self.stdout.write(f"intake {intake.pk} {outcome.name}: {outcome.status}{detail}")
