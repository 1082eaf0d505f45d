import json
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from reports.intake import backlog, rawstore
from reports.intake.pipeline import ingest_path, iter_inputs
from reports.models import Intake


class Command(BaseCommand):
    help = (
        "Ingest DMARC aggregate and SMTP TLS reports from files and directories (.xml, .json, .gz, .zip, .eml, mixed)."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print one JSON object per report or refusal"
        )
        parser.add_argument("--progress", action="store_true", help="show progress even when not on a terminal")
        parser.add_argument(
            "--defer",
            action="store_true",
            help="only keep and record the inputs; the Celery workers parse them, on any host (needs REDIS_URL)",
        )

    def handle(self, *args, paths, as_json: bool, progress: bool, defer: bool, **options):
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise CommandError(f"no such file or directory: {', '.join(missing)}")
        inputs = list(iter_inputs(paths))
        if defer:
            return self._defer(inputs)
        show_progress = progress or (sys.stderr.isatty() and not as_json)
        totals = {"stored": 0, "duplicate": 0, "refused": 0, "failed": 0, "kept": 0}
        records = messages = tls_reports = sessions = 0
        started = time.monotonic()
        for number, path in enumerate(inputs, 1):
            if show_progress:
                elapsed = time.monotonic() - started
                sys.stderr.write(f"[{number}/{len(inputs)} {elapsed:.0f}s] {path}\n")
                sys.stderr.flush()
            try:
                result = ingest_path(path, source=Intake.Channel.CLI)
            except rawstore.StoreUnavailable as exc:
                raise CommandError(f"{path}: {exc}. Run the command again once the store is back.") from exc
            for outcome in result.outcomes:
                totals[outcome.status] += 1
                if outcome.status == "stored" and outcome.kind == "tlsrpt":
                    tls_reports += 1
                    sessions += outcome.sessions
                elif outcome.status == "stored":
                    records += outcome.records
                    messages += outcome.messages
            if as_json:
                self._print_json(path, result)
            else:
                self._print_line(path, result)
        elapsed = time.monotonic() - started
        refused = totals["refused"] + totals["failed"]
        summary = (
            f"{len(inputs)} inputs: {totals['stored']} reports stored ({records} records, {messages} messages; "
            f"{tls_reports} TLS reports, {sessions} sessions), "
            f"{totals['duplicate']} duplicates, {totals['kept']} other reports kept, {refused} refused, "
            f"in {elapsed:.1f}s"
        )
        (sys.stderr if as_json else self.stdout).write(summary + "\n")
        if refused:
            sys.exit(1)

    def _defer(self, inputs: list[Path]) -> None:
        if not settings.REDIS_URL:
            raise CommandError("--defer hands the parsing to Celery workers: set REDIS_URL (without it, leave it out)")
        from reports import tasks

        started = time.monotonic()
        for path in inputs:
            try:
                intake = backlog.record_path(path)
            except rawstore.StoreUnavailable as exc:
                raise CommandError(f"{path}: {exc}. Run the command again once the store is back.") from exc
            tasks.process_input.delay(intake.pk)
            self.stdout.write(f"recorded: {path} as input {intake.pk}")
        self.stdout.write(
            f"{len(inputs)} inputs recorded in {time.monotonic() - started:.1f}s; the workers parse them "
            "(the Ingestion page shows each one's outcome)"
        )

    def _print_json(self, path: Path, result) -> None:
        for outcome in result.outcomes:
            line = {"path": str(path), "intake": result.intake.pk, **outcome.as_dict()}
            line["document"] = line.pop("name")
            self.stdout.write(json.dumps(line, ensure_ascii=False))

    def _print_line(self, path: Path, result) -> None:
        for outcome in result.outcomes:
            where = str(path) if outcome.name == path.name else f"{path} [{outcome.name}]"
            if outcome.status in ("refused", "failed", "kept"):
                self.stdout.write(f"{outcome.status}: {where}: {outcome.reason}")
            elif outcome.kind == "tlsrpt":
                self.stdout.write(
                    f"{outcome.status}: {where}: TLS report for {outcome.domain} from {outcome.org_name}, "
                    f"report {outcome.report_id}, {outcome.sessions} sessions, {outcome.failed_sessions} failed"
                )
            else:
                self.stdout.write(
                    f"{outcome.status}: {where}: {outcome.domain} from {outcome.org_name or '(no org_name)'}, "
                    f"report {outcome.report_id}, {outcome.records} records, {outcome.messages} messages"
                )
