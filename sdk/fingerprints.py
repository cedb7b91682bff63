"""Fingerprints of a window's records, for settling (see :meth:`drivetrain.base.Source.fingerprint`).

A source whose own system cannot hash its rows (a file, an API) fingerprints the batches it
extracts::

    from drivetrain.fingerprints import of_batches

    def fingerprint(self, window):
        return of_batches(self.extract(window))
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["of_batches"]


def of_batches(batches: Iterable[pa.RecordBatch]) -> str:
    """``<records>:<digest>``: every record hashed whole (every field, as read) and summed, so the
    digest changes when a record enters, leaves or changes, and not with the order of records
    or batches. Hashed by DuckDB, a batch at a time (memory stays that of one batch)."""
    import duckdb

    from drivetrain.sql.names import quote_name

    records = digest = 0
    with duckdb.connect() as conn:
        for batch in batches:
            if not batch.num_rows:
                continue
            conn.register("batch", batch)
            fields = ", ".join(quote_name(name) for name in batch.schema.names)
            [(rows, total)] = conn.execute(f"SELECT count(*), coalesce(sum(hash({fields})), 0) FROM batch").fetchall()
            conn.unregister("batch")
            records, digest = records + int(rows), (digest + int(total)) % 2**64
    return f"{records}:{digest:016x}"
