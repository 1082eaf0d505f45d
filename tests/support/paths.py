"""Where things are, for tests that start processes or read files."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
EXPECTED = ROOT / "tests" / "expected"
ARTIFACTS = ROOT / "artifacts"
# The real-world reports in the steering repo's shared/ (not part of a clean clone: tests skip without it).
CORPUS = ROOT.parent / "shared" / "corpus" / "parsedmarc-samples"
