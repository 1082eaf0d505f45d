"""Records get ``day`` (the UTC day their report begins) and, on PostgreSQL, become a table
partitioned by month on it: reports/partitions.py creates the months to come and retention
drops whole months. On SQLite the column is filled and nothing else changes.

The PostgreSQL step rewrites the record table once, in the migration's transaction (the
records are read while it runs, but not written): about a minute for 10M records on two cores. The primary key becomes (id, day): a key
of a partitioned table must hold the partition key; ids still come from one sequence, so
Django's ``id`` stays unique. The DEFAULT partition takes any month without a partition of
its own, so ingest never fails for want of one.

Everything here is frozen as it was written, on purpose: reports/partitions.py may change.
"""

import datetime

from django.db import migrations, models

TABLE = "reports_record"
MONTHS_AHEAD = 3  # the current month and this many after it exist after migrating


def _month(day: datetime.date) -> datetime.date:
    return day.replace(day=1)


def _next_month(month: datetime.date) -> datetime.date:
    return (month + datetime.timedelta(days=32)).replace(day=1)


def _columns(cursor, table: str) -> list[str]:
    cursor.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        [table],
    )
    return [row[0] for row in cursor.fetchall()]


def _indexes(cursor, table: str) -> list[str]:
    """CREATE INDEX statements of the table's indexes other than its primary key; they name the
    table, so they apply as they are to the table that takes its name."""
    cursor.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s "
        "AND indexname <> %s ORDER BY indexname",
        [table, f"{table}_pkey"],
    )
    return [row[0] for row in cursor.fetchall()]


def _rebuild(schema_editor, partitioned: bool) -> None:
    """Copy the record table into a new one, partitioned by month or plain, and take its place."""
    quote = schema_editor.quote_name
    new = f"{TABLE}_rebuilt"
    with schema_editor.connection.cursor() as cursor:
        columns = _columns(cursor, TABLE)
        indexes = _indexes(cursor, TABLE)
        # Defaults and constraints (the CHECK on count) are copied; the identity gets its own
        # sequence, moved past the ids already given below.
        like = f"LIKE {quote(TABLE)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY"
        if partitioned:
            cursor.execute(f"CREATE TABLE {quote(new)} ({like}) PARTITION BY RANGE (day)")
            cursor.execute(f"ALTER TABLE {quote(new)} ADD PRIMARY KEY (id, day)")
            cursor.execute(f"CREATE TABLE {quote(TABLE + '_default')} PARTITION OF {quote(new)} DEFAULT")
            cursor.execute(
                "SELECT DISTINCT date_trunc('month', begin AT TIME ZONE 'UTC')::date FROM reports_report"
            )
            months = {row[0] for row in cursor.fetchall()}
            month = _month(datetime.datetime.now(datetime.UTC).date())
            for _ in range(MONTHS_AHEAD + 1):
                months.add(month)
                month = _next_month(month)
            for month in sorted(months):
                cursor.execute(
                    f"CREATE TABLE {quote(f'{TABLE}_{month:%Y_%m}')} PARTITION OF {quote(new)} "
                    "FOR VALUES FROM (%s) TO (%s)",
                    [month, _next_month(month)],
                )
            # The day is the report's, as ingest writes it; a record without a report (none
            # can exist with the constraint this migration removes) would not be copied.
            names = ", ".join(quote(name) for name in columns)
            values = ", ".join(
                "(p.begin AT TIME ZONE 'UTC')::date" if name == "day" else f"r.{quote(name)}" for name in columns
            )
            cursor.execute(
                f"INSERT INTO {quote(new)} ({names}) SELECT {values} FROM {quote(TABLE)} r "  # noqa: S608
                "JOIN reports_report p ON p.id = r.report_id"
            )
        else:
            cursor.execute(f"CREATE TABLE {quote(new)} ({like})")
            cursor.execute(f"ALTER TABLE {quote(new)} ADD PRIMARY KEY (id)")
            names = ", ".join(quote(name) for name in columns)
            cursor.execute(f"INSERT INTO {quote(new)} ({names}) SELECT {names} FROM {quote(TABLE)}")  # noqa: S608
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence(%s, 'id'), coalesce(max(id), 0) + 1, false) FROM {quote(new)}",  # noqa: S608
            [new],
        )
        sequence = f"{TABLE}_id_seq"
        cursor.execute(f"DROP TABLE {quote(TABLE)}")
        cursor.execute(f"ALTER TABLE {quote(new)} RENAME TO {quote(TABLE)}")
        cursor.execute(f"ALTER INDEX {quote(new + '_pkey')} RENAME TO {quote(TABLE + '_pkey')}")
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
        cursor.execute(f"ALTER SEQUENCE {cursor.fetchone()[0]} RENAME TO {quote(sequence)}")
        for statement in indexes:
            cursor.execute(statement)
        # A new table has no statistics until autovacuum comes by, and it never analyzes a
        # partitioned one: plans made meanwhile would guess.
        cursor.execute(f"ANALYZE {quote(TABLE)}")


def partition(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        _rebuild(schema_editor, partitioned=True)
    else:
        schema_editor.execute(
            f"UPDATE {TABLE} SET day = (SELECT date(begin) FROM reports_report "  # noqa: S608
            f"WHERE reports_report.id = {TABLE}.report_id)"
        )


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        _rebuild(schema_editor, partitioned=False)


class Migration(migrations.Migration):

    dependencies = [
        ('reports', '0020_intake_source_lmtp'),
    ]

    operations = [
        migrations.AlterField(
            model_name='record',
            name='report',
            field=models.ForeignKey(db_constraint=False, on_delete=models.deletion.CASCADE, related_name='records', to='reports.report'),
        ),
        migrations.AddField(
            model_name='record',
            name='day',
            field=models.DateField(null=True, help_text='the UTC day its report begins: the partition key on PostgreSQL'),
        ),
        migrations.RunPython(partition, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='record',
            name='day',
            field=models.DateField(help_text='the UTC day its report begins: the partition key on PostgreSQL'),
        ),
        # Backwards, the plain table comes back before ``day`` may be null again (it is in the
        # partitioned table's primary key).
        migrations.RunPython(migrations.RunPython.noop, unpartition),
    ]
