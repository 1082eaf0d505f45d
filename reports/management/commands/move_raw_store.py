"""Move raw inputs from one store to another: by default from the directory earlier versions kept
them in (DMARCDASH_RAW_DIR, ``data/raw``) to the configured store (DMARCDASH_RAW_STORE)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from reports.intake import rawstore


class Command(BaseCommand):
    help = (
        "Move every raw input from one store to another (default: from the data directory's raw/ to the configured "
        "store), checking each against its sha256 first; safe to stop and run again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--from", dest="source", help="file:///path, database, postgres://... or s3://bucket/prefix"
        )
        parser.add_argument("--to", dest="target", help="default: the configured store (DMARCDASH_RAW_STORE)")
        parser.add_argument("--keep", action="store_true", help="copy only: leave the inputs in the old store too")

    def handle(self, *args, source: str | None, target: str | None, keep: bool, **options):
        source = source or f"file://{settings.RAW_STORE_DIR}"
        target = target or settings.RAW_STORE
        if source.removeprefix("file://") == target.removeprefix("file://"):
            raise CommandError(f"{source} is the store to move to: name another with --from or --to")
        old, new = rawstore.backend_for(source), rawstore.backend_for(target)
        moved = present = damaged = size = 0
        for sha256 in list(old.digests()):
            stored = rawstore.verified_size(old, sha256)
            if stored is None:
                damaged += 1
                self.stderr.write(f"{sha256}: its bytes do not match its name; left in {old.description}")
                continue
            if new.exists(sha256):
                present += 1
            else:
                with old.open(sha256) as stream:
                    new.put(sha256, stream, stored)
                if rawstore.verified_size(new, sha256) != stored:
                    raise CommandError(f"{sha256}: the copy in {new.description} does not match; nothing removed")
                moved += 1
                size += stored
            if not keep:
                old.delete(sha256)
        verb = "copied" if keep else "moved"
        self.stdout.write(
            f"{moved} raw inputs {verb} ({size / 1e6:.1f} MB) from {old.description} to {new.description}; "
            f"{present} were there already; {damaged} damaged left in place."
        )
        if damaged:
            raise CommandError(f"{damaged} raw inputs could not be verified")
