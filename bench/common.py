"""What the benchmarks share: a database to run on and an honest peak-memory figure."""

import psycopg


def create_database(url: str) -> None:
    """Create the Postgres database named by ``url`` if it does not exist yet."""
    if not url.startswith("postgres"):
        return
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            conn.execute(f'create database "{name}"')


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries the parent's
    peak into a child across fork and exec, which would hide whether memory grows."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0
