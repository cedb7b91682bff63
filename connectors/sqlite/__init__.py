"""SQLite as the home of the drive table (``drive_table: {"type": "sqlite", "path": ...}``).

Only the drive table, its leases and its meta rows live there: SQLite is not a stage or a
target. In WAL mode many processes read it while one writes, and a write holds the file for
the few milliseconds of its transaction, so pipelines sharing one drive table never take turns
phase by phase (see :mod:`.drive`).
"""

from .warehouse import SqliteWarehouse

__all__ = ["SqliteWarehouse"]
