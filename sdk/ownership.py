"""Table ownership: which pipeline may write a stage or target table.

A window replace deletes the window's rows before inserting the new ones. Two pipelines writing
one table would therefore erase each other, each run still reporting success. So every table a
pipeline writes is claimed in ``drivetrain_table_owners``, a small table kept in the same schema
of the same warehouse (it survives processes, and every pipeline writing there sees it):

- the first pipeline to write a table owns it; another pipeline writing it fails before it
  changes a row, with an error naming the table, the owner and the key that allows sharing;
- pipelines that all set ``shared: true`` on the section (``target_system`` or
  ``stage_system``) share the table: each then reads, counts, replaces and cleans only the
  rows it loaded, found by the ``_drivetrain_pipeline_id`` lineage column every row carries
  (it starts with the pipeline's name).

Claims are made before the first write of a run and cached for the warehouse object's life.
A claim just made gives way to any other claim it cannot share with (and is removed again), so
of two pipelines claiming one table at the same moment at most one writes; if both give way,
neither writes and the next run takes the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from drivetrain.warehouse import TableRef

#: The claims table, created beside each claimed table (same database and schema).
OWNERS_TABLE = "drivetrain_table_owners"
#: Escape character of the LIKE patterns below (``_`` and ``%`` are wildcards in LIKE).
_ESCAPE = "!"


@attrs.frozen
class Claim:
    """One row of ``drivetrain_table_owners``: a pipeline writes a table."""

    pipeline: str
    """The pipeline's name."""
    shared: bool
    """Whether that pipeline declared the table shared."""
    claimed_at: datetime
    """When the pipeline first wrote the table (the oldest claim owns an unshared table)."""


def owned(ref: TableRef, pipeline: str, shared: Any, section: str) -> TableRef:
    """``ref`` as pipeline ``pipeline`` writes it (``section``: the config section naming it)."""
    return attrs.evolve(ref, owner=pipeline, shared=bool(shared), section=section)


def owner_pattern(pipeline: str) -> str:
    """A LIKE pattern matching exactly the run ids of ``pipeline`` (``NAME_YYYYMMDDTHHMMSSZ_runN``).

    Pipeline names are lower case, so the ``T`` and ``Z`` of the window key keep ``a`` from
    matching the runs of ``a_b``.
    """
    name = pipeline.replace(_ESCAPE, _ESCAPE * 2).replace("_", f"{_ESCAPE}_").replace("%", f"{_ESCAPE}%")
    return f"{name}{_ESCAPE}_{'_' * 8}T{'_' * 6}Z{_ESCAPE}_run%"


def scope_sql(table: TableRef, column_sql: str) -> str:
    """`` AND <column> LIKE '<pattern>' ESCAPE '!'`` for a shared table, else ``""``.

    ``column_sql`` is the quoted (and aliased) lineage column. The pattern is a literal: it is
    built from a validated pipeline name and its quotes are doubled anyway.
    """
    if not (table.shared and table.owner):
        return ""
    literal = owner_pattern(table.owner).replace("'", "''")
    return f" AND {column_sql} LIKE '{literal}' ESCAPE '{_ESCAPE}'"


def judge(table: TableRef, claims: Sequence[Claim], where: str, *, new: bool = True) -> str | None:
    """Why ``table.owner`` may not write ``table`` given every claim on it, or None when it may.

    ``new``: the owner's claim was just made (or, for ``validate``, is not there yet). A new
    claim gives way to any other claim it cannot share with, so of two pipelines claiming at the
    same moment neither writes rather than both. An established claim is judged by age: the
    oldest unshared claim owns the table. ``where`` says where the claims are kept.
    """
    me = table.owner
    if me is None:
        return None
    rows = sorted(claims, key=lambda c: (c.claimed_at, c.pipeline))
    others = [c for c in rows if c.pipeline != me]
    if not others:
        return None
    key = f"{table.section or 'the section naming it'}.shared"
    blocking = [c for c in others if not (table.shared and c.shared)]
    if not new and rows[0].pipeline == me:
        sharers = sorted({c.pipeline for c in others if c.shared})
        if sharers and not table.shared:
            names = ", ".join(repr(p) for p in sharers)
            return (f"table {table} is shared with pipeline(s) {names} (recorded in {where}), but this pipeline's {key} "
                    f"is not true: its window replace would delete their rows. Set {key}: true again, or give this "
                    "pipeline a table of its own")
        return None  # the owner; newer claims of others give way
    if not blocking and (new or rows[0].shared):
        return None
    owner = blocking[0] if blocking else rows[0]
    since = owner.claimed_at.isoformat(timespec="seconds") if isinstance(owner.claimed_at, datetime) else owner.claimed_at
    return (f"table {table} belongs to pipeline {owner.pipeline!r} (recorded in {where} since {since}); pipeline {me!r} "
            f"may not write it, or each would delete the other's rows when it replaces a window. Give {me!r} a table of "
            f"its own, or set {key}: true in both pipelines' configs so each replaces only the rows it loaded")
