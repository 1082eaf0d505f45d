"""What the benchmarks share: a database to run on, table sizes and an honest peak-memory figure."""

import psycopg


def create_database(url: str) -> None:
    """Create the Postgres database named by ``url`` if it does not exist yet."""
    if not url.startswith("postgres"):
        return
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            conn.execute(f'create database "{name}"')


def table_size(cursor, table: str) -> tuple[int, int]:
    """Bytes of a table (heap and TOAST) and of its indexes, its partitions' included: a partitioned
    table holds nothing itself, so pg_total_relation_size of it is 0 (and pg_partition_tree of a
    table that is not partitioned is empty)."""
    cursor.execute(
        "SELECT coalesce(sum(pg_table_size(relid)), 0), coalesce(sum(pg_indexes_size(relid)), 0) "
        "FROM (SELECT relid FROM pg_partition_tree(%s) UNION SELECT %s::regclass) tree",
        [table, table],
    )
    table, indexes = cursor.fetchone()
    return int(table), int(indexes)


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: Linux carries the parent's
    peak into a child across fork and exec, which would hide whether memory grows."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def backend_cpu_seconds(connection) -> float | None:
    """CPU seconds the PostgreSQL backend serving ``connection`` (a Django connection) has used so
    far, read from /proc: only when the server runs on this machine and /proc shows it (else None)."""
    import os

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3 (state).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
