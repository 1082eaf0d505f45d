"""Raw inputs kept in the database (reports.intake.rawdb): one row per input, its bytes in chunks.

Rows are written once under the sha256 of the bytes as received and never updated in place (key
rotation replaces a row's chunks in one transaction), so any number of processes on any number of
hosts can read and write them with nothing but the database between them.
"""

from django.db import models


class RawBlob(models.Model):
    sha256 = models.CharField(max_length=64, primary_key=True)
    size = models.BigIntegerField(help_text="bytes as stored: the input's, or its encrypted form")
    written_at = models.DateTimeField()

    class Meta:
        db_table = "reports_rawblob"

    def __str__(self) -> str:
        return self.sha256


class RawChunk(models.Model):
    """Fixed-size pieces (the last one shorter), so a seek reads one chunk, never the whole input."""

    blob = models.ForeignKey(RawBlob, on_delete=models.CASCADE, related_name="chunks", db_column="sha256")
    seq = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        db_table = "reports_rawchunk"
        constraints = [models.UniqueConstraint(fields=["blob", "seq"], name="rawchunk_once")]

    def __str__(self) -> str:
        return f"{self.blob_id}#{self.seq}"
