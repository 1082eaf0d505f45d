"""A separate ingest process, fed one path at a time, killed when it passes its memory or time cap.

Run as ``python -m tests.support.hostile.worker`` it is the child: Django set up once, then
for each path read from stdin ``manage.py ingest --json PATH`` (the real CLI path)
and one JSON line back with the outcomes, the peak RSS and the seconds it took.
The ``Worker`` class is the parent's side: it watches the child's peak RSS from
/proc while it works and kills it past ``MEMORY_CAP_MB`` or the input's time cap,
like a Celery worker under a memory limit, then starts a fresh one for the next input.

Peak RSS is VmHWM: ru_maxrss would also count the parent's memory, which Linux
carries into a child across fork and exec. The child resets it before each input
(``clear_refs``), so each input is measured on its own, on top of whatever the
inputs before it left behind, as in a long-lived worker.
"""

import io
import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.paths import ROOT

MEMORY_CAP_MB = 256  # the worker's cap (issue 10)
POLL_SECONDS = 0.02
START_SECONDS = 120.0


def peak_rss_mb(pid: int | str = "self") -> float:
    """VmHWM of a process in MB; 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as control:
        control.write("5")


def worker_env(data: Path, temp: Path, **extra: str) -> dict[str, str]:
    """The child's environment: its own data store and TMPDIR, nothing inherited that points elsewhere."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(
        DMARCDASH_DATA_DIR=str(data),
        TMPDIR=str(temp),
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="dmarcdash.settings",
        **extra,
    )
    return env


@dataclass
class Run:
    """What became of one path: the ingest command's JSON lines and what the input cost."""

    outcomes: list[dict] = field(default_factory=list)
    exit: int | None = None
    peak_mb: float = 0.0
    seconds: float = 0.0
    killed: str = ""  # why the parent stopped the worker, empty when it answered


class Worker:
    def __init__(self, env: dict[str, str], cwd: Path, log: Path, migrate: bool = False):
        self.env = env
        self.cwd = cwd
        self.log = log
        self.migrate = migrate
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        command = [sys.executable, "-m", "tests.support.hostile.worker"] + (["--migrate"] if self.migrate else [])
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        line = self._answer(time.monotonic() + START_SECONDS)
        if line != "ready\n":
            self.close()
            raise AssertionError(f"the ingest worker did not start ({line!r}); see {self.log}")

    def ingest(self, path: Path, time_cap: float) -> Run:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        started = time.monotonic()
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        peak = 0.0
        deadline = started + time_cap
        while True:
            ready, _, _ = select.select([self.proc.stdout], [], [], POLL_SECONDS)
            elapsed = time.monotonic() - started
            if ready:
                line = self.proc.stdout.readline()
                if line:
                    return Run(**json.loads(line))
                self.proc.wait()
                return self._stopped(peak, elapsed, f"the worker died (exit code {self.proc.returncode})")
            peak = max(peak, peak_rss_mb(self.proc.pid))
            if peak > MEMORY_CAP_MB:
                return self._stopped(peak, elapsed, f"killed over the {MEMORY_CAP_MB} MB memory cap")
            if time.monotonic() > deadline:
                return self._stopped(peak, elapsed, f"killed past the {time_cap:g} s time cap")

    def _answer(self, deadline: float) -> str:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                return self.proc.stdout.readline()
        return ""

    def _stopped(self, peak: float, elapsed: float, why: str) -> Run:
        self.close()
        return Run(peak_mb=peak, seconds=elapsed, killed=why)

    def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except BrokenPipeError:
                pass
        self.proc = None


def serve(migrate: bool) -> None:
    """The child: one ``ingest --json`` per path read from stdin, one JSON line back for each."""
    import django

    django.setup()
    from django.core.management import call_command

    if migrate:
        call_command("migrate", verbosity=0)
    # Only the answers go to the real stdout: anything printed while ingesting goes to the log.
    answers, sys.stdout = sys.stdout, sys.stderr
    answers.write("ready\n")
    answers.flush()
    for line in sys.stdin:
        reset_peak_rss()
        started = time.monotonic()
        out = io.StringIO()
        code = 0
        try:
            call_command("ingest", line.rstrip("\n"), as_json=True, stdout=out)
        except SystemExit as exit:
            code = exit.code
        run = Run(
            outcomes=[json.loads(text) for text in out.getvalue().splitlines()],
            exit=code,
            peak_mb=peak_rss_mb(),
            seconds=time.monotonic() - started,
        )
        answers.write(json.dumps(run.__dict__) + "\n")
        answers.flush()


if __name__ == "__main__":
    serve(migrate="--migrate" in sys.argv[1:])
