from pathlib import Path

import pytest

from reports.parsing import Limits

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "parsedmarc-samples"


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the real-world corpus is not at {CORPUS} (it is not part of a fresh clone)")
    return CORPUS


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture(autouse=True)
def raw_store(settings, tmp_path):
    """Each test gets its own raw store, so nothing leaks between tests."""
    settings.RAW_STORE_DIR = tmp_path / "raw"
    return settings.RAW_STORE_DIR


from tests.dovecot import dovecot, dovecot_without_move, imap_account, imap_account_without_move  # noqa: E402, F401
