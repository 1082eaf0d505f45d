from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from reports.management import demo, demofailures, demotls


class Command(BaseCommand):
    help = (
        "Load 90 days of realistic DMARC reports for two demo domains (demo-shop.example, demo-news.example), "
        "and 30 days of SMTP TLS reports for demo-shop.example, in an organization named Demo, through the real "
        "ingest and enrichment; safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--user", metavar="USERNAME", help="an existing user to make owner of Demo (default: the only superuser)"
        )
        parser.add_argument("--url", default=settings.SITE_URL, help="where the site runs, for the last line")

    def handle(self, *args, user: str | None, url: str, **options):
        try:
            owner = demo.pick_owner(user)
            self.stdout.write(f"Loading {demo.DAYS} days of demo reports; this takes 10 to 30 seconds...")
            summary = demo.load_demo(owner=owner)
            tls_stored, tls_duplicates, tls_refusals = demotls.load_tls(summary.organization, demo.utc_today())
            failures = demofailures.load_failures(summary.organization, demo.utc_today())
        except demo.DemoError as exc:
            raise CommandError(str(exc)) from exc
        s = summary
        self.stdout.write(
            f"Organization {s.organization.name!r} (slug {s.organization.slug}): {', '.join(s.domains)}, "
            f"{s.first_day} to {s.last_day} (UTC)."
        )
        self.stdout.write(
            f"{s.reports} reports: {s.stored} stored, {s.duplicates} duplicates (loaded before), {s.refused} refused; "
            f"{s.records:,} records, {s.messages:,} messages in all."
        )
        for refusal in s.refusals[:5]:
            self.stdout.write(f"  refused: {refusal}")
        self.stdout.write(
            f"{tls_stored + tls_duplicates + len(tls_refusals)} SMTP TLS reports for {demo.SHOP} "
            f"({demotls.DAYS} days): {tls_stored} stored, {tls_duplicates} duplicates, {len(tls_refusals)} refused."
        )
        for refusal in tls_refusals[:5]:
            self.stdout.write(f"  refused: {refusal}")
        stored, duplicates, refusals = failures
        self.stdout.write(
            f"{stored + duplicates + len(refusals)} failure reports ({demofailures.DAYS} days): {stored} stored, "
            f"{duplicates} duplicates, {len(refusals)} refused."
        )
        for refusal in refusals[:5]:
            self.stdout.write(f"  refused: {refusal}")
        tls_refusals = tls_refusals + refusals
        self.stdout.write(
            f"{s.source_ips} source IPs looked up (demo DNS), {s.named_ips} named: {', '.join(s.senders)}."
        )
        if s.owner:
            self.stdout.write(f"{s.owner} is an owner of {s.organization.name}.")
        else:
            self.stdout.write(
                "No owner added (there is not exactly one superuser; superusers see every organization): "
                "run again with --user USERNAME to add one."
            )
        self.stdout.write(f"Done in {s.seconds:.1f}s. Next: open {url} and log in as {s.owner or 'a superuser'}.")
        if s.refused or tls_refusals:
            raise CommandError(f"{s.refused + len(tls_refusals)} demo reports were refused")
