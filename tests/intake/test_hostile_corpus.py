"""The hostile corpus (tests/support/hostile/corpus.py) through the real ingest path, in a separate process.

One worker process (tests/support/hostile/worker.py) takes the inputs one after another, as
a Celery worker would, against the test database: each must end in the ledger as
refused with its reason (or kept, or stored with what was repaired) while the
process stays under the 256 MB memory cap and its time cap, and the good report
after them must still be stored. The inputs are written to tmp_path, the big ones
streamed; the child's TMPDIR and working directory are empty folders that must
stay empty, and its data store may hold nothing but the inputs' raw bytes.

The table of results is printed (pytest -s) and written to artifacts/hostile-corpus.md.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from reports.models import Intake, RawBlob, Report
from tests.support.hostile.corpus import CASES, GOOD, LEAK, Case
from tests.support.hostile.worker import MEMORY_CAP_MB, ROOT, Run, Worker, worker_env

# The marker makes pytest-django create the test database the worker writes to.
pytestmark = pytest.mark.django_db

ALL = [*CASES, GOOD]


@dataclass
class Result:
    case: Case
    path: Path
    run: Run
    status: str = ""
    error: str = ""
    reports: list[dict] | None = None

    @property
    def reason(self) -> str:
        if self.run.killed:
            return self.run.killed
        if self.error:
            return self.error.partition(": ")[2] or self.error
        repairs = sorted({repair for report in self.reports for repair in report["repairs"]})
        return "; ".join(repairs)


@dataclass
class CorpusRun:
    results: dict[str, Result]
    inputs: Path
    data: Path
    temp: Path
    cwd: Path
    stored: set[str]  # the raw store's digests


def table(results: list[Result]) -> str:
    lines = [
        "| input | outcome | reason | peak RSS | seconds |",
        "|---|---|---|---:|---:|",
    ]
    for result in results:
        reason = result.reason.replace("|", "\\|").replace("\n", " ")
        if len(reason) > 140:
            reason = reason[:137] + "..."
        outcome = "killed" if result.run.killed else result.status
        lines.append(
            f"| {result.case.name} | {outcome} | {reason} | {result.run.peak_mb:.0f} MB | {result.run.seconds:.1f} |"
        )
    return "\n".join(lines) + "\n"


def read_ledger(result: Result) -> None:
    """The ledger row the worker left for this input, and its stored reports."""
    intake = Intake.objects.filter(name=str(result.path)).order_by("pk").last()
    if intake is None:
        return
    result.status, result.error = intake.status, intake.error
    result.reports = list(
        Report.objects.filter(intake=intake).values(
            "report_id", "org_name", "email", "extra_contact_info", "repairs", "record_count"
        )
    )


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, django_db_setup, django_db_blocker) -> CorpusRun:
    with django_db_blocker.unblock():
        if connection.vendor != "postgresql":
            pytest.skip("the worker process writes to the test database, which needs Postgres (make test-postgres)")
        root = tmp_path_factory.mktemp("hostile-corpus")
        inputs, data, temp, cwd = (root / name for name in ("inputs", "data", "tmp", "cwd"))
        for folder in (inputs, data, temp, cwd):
            folder.mkdir()
        paths = {case.name: case.write(inputs) for case in ALL}
        database = connection.settings_dict
        env = worker_env(
            data,
            temp,
            DATABASE_URL=(
                f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}"
                f"/{database['NAME']}"
            ),
            SECRET_KEY="test-only",
        )
        if database["PASSWORD"]:
            env["PGPASSWORD"] = database["PASSWORD"]
        results = {}
        try:
            with Worker(env, cwd, root / "worker.log") as worker:
                for case in ALL:
                    run = worker.ingest(paths[case.name], case.time_cap)
                    results[case.name] = Result(case, paths[case.name], run)
            for result in results.values():
                read_ledger(result)
            rendered = table(list(results.values()))
            print("\n" + rendered)
            (ROOT / "artifacts").mkdir(exist_ok=True)
            (ROOT / "artifacts" / "hostile-corpus.md").write_text(rendered)
            stored = set(RawBlob.objects.values_list("sha256", flat=True))
            yield CorpusRun(results, inputs, data, temp, cwd, stored)
        finally:
            # The worker committed for real: leave the database as a transactional test would.
            call_command("flush", interactive=False, verbosity=0)


def test_the_corpus_has_at_least_fifty_hostile_inputs():
    assert len(CASES) >= 50


@pytest.mark.parametrize("case", ALL, ids=[case.name for case in ALL])
def test_it_refuses_or_records_each_input_within_the_memory_and_time_caps(corpus_run, case):
    result = corpus_run.results[case.name]
    assert not result.run.killed, result.run.killed
    assert result.run.peak_mb < MEMORY_CAP_MB
    assert result.status == case.expect, (result.status, result.error)
    if case.expect == "stored":
        assert result.reports, "no report stored"
        for report in result.reports:
            assert not case.phrase or any(case.phrase in repair for repair in report["repairs"]), report["repairs"]
    else:
        assert case.phrase in result.error


@pytest.mark.parametrize("case", ALL, ids=[case.name for case in ALL])
def test_no_input_reads_the_file_its_entities_point_at(corpus_run, case):
    result = corpus_run.results[case.name]
    assert LEAK not in result.error
    for report in result.reports or []:
        assert not any(LEAK in str(value) for value in report.values())


def test_the_good_report_after_them_is_stored_by_the_same_worker(corpus_run):
    result = corpus_run.results[GOOD.name]
    assert result.status == "stored"
    assert [(report["report_id"], report["record_count"]) for report in result.reports] == [("still-works", 1)]
    assert not any(other.run.killed for other in corpus_run.results.values())


def test_a_million_record_report_is_stored_whole(corpus_run):
    (report,) = corpus_run.results["million-records.xml.gz"].reports
    assert report["record_count"] == 1_000_000


def test_nothing_is_written_outside_the_data_store(corpus_run):
    assert list(corpus_run.temp.iterdir()) == []
    assert list(corpus_run.cwd.iterdir()) == []
    assert not (corpus_run.cwd.parent.parent / "escaped.xml").exists()
    assert not Path("/tmp/dmarcdash-zip-slip.xml").exists()
    # The raw inputs went to the shared store (the database), not to this host's disk.
    assert {p.name for p in corpus_run.data.iterdir()} == {"uploads"}
    assert list((corpus_run.data / "uploads").iterdir()) == []
    assert corpus_run.stored == {sha256(path) for path in corpus_run.inputs.iterdir()}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        while chunk := data.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
