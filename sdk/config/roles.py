"""Role collisions: two roles of one pipeline must never name the same table or folder.

Stage, its ``<stage>__rejects`` sibling, target, the keyed transfer's scratch table
``<target>__drivetrain_transfer``, the drive table and drivetrain's own bookkeeping tables each
play one part. A stage that is also the target would have its window emptied by the very run
that loads it; a drive table that is also the target would be overwritten by data. The archive
folder of stage cleaning must not be where the files source reads, or archived Parquet would be
read back as new records. Every such clash is a config problem at the JSON path of the key to
change, found before anything connects.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .problems import JsonPath, Problems

#: Tables drivetrain keeps beside the drive table (leases, schema version, table owners).
BOOKKEEPING_TABLES = ("drivetrain_leases", "drivetrain_meta", "drivetrain_table_owners")
#: Keys that tell one warehouse from another, per connector type; others compare every key.
_PLACE_KEYS = ("path", "account", "host", "port", "database", "endpoint")
_DEFAULT_SCHEMA = {"duckdb": "main"}
_DEFAULT_PATH = {"duckdb": "warehouse.duckdb"}
#: File suffixes of source globs that can never match the archive's Parquet files.
_TEXT_SUFFIXES = (".jsonl", ".json", ".ndjson", ".csv", ".tsv", ".txt", ".gz")


def _plain(value: Any) -> Any:
    """A hashable stand-in for any config value (a config with errors may hold lists anywhere)."""
    return value if isinstance(value, str | int | float | bool | None) else repr(value)


def _place(options: Mapping[str, Any]) -> tuple[Any, ...]:
    """Which warehouse a section names: its type and the keys that locate it."""
    kind = _plain(options.get("type"))
    values = []
    for key in _PLACE_KEYS:
        value = options.get(key, _DEFAULT_PATH.get(str(kind)) if key == "path" else None)
        if key == "path" and isinstance(value, str):
            value = posixpath.normpath(value.replace("\\", "/"))
        value = _plain(value)
        values.append(value.upper() if isinstance(value, str) and key in ("account", "database") else value)
    return (kind, *values)


def _table(options: Mapping[str, Any], name: Any) -> tuple[Any, ...] | None:
    if not isinstance(name, str) or not name:
        return None
    schema = _plain(options.get("schema")) or _DEFAULT_SCHEMA.get(str(options.get("type")), "")
    return (*_place(options), str(schema).lower(), name.lower())


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    return value if isinstance(value, Mapping) else {}


def _roles(data: Mapping[str, Any]) -> Iterator[tuple[str, JsonPath, tuple[Any, ...] | None]]:
    """(what the table is, JSON path of the key naming it, its identity) for every role."""
    stage, target = _section(data, "stage_system"), _section(data, "target_system")
    drive: Mapping[str, Any]
    drive_path: JsonPath
    if isinstance(data.get("drive_table"), Mapping):
        drive, drive_path = _section(data, "drive_table"), ("drive_table", "table")
    else:
        drive, drive_path = {k: v for k, v in stage.items() if k != "table"}, ("stage_system",)
    drive_name = drive.get("table", "pipeline_execution_drive")
    stage_name, target_name = stage.get("table"), target.get("table")
    yield "the drive table", drive_path, _table(drive, drive_name)
    for own in BOOKKEEPING_TABLES:
        yield f"drivetrain's own table {own}", drive_path, _table(drive, own)
    yield "the stage table", ("stage_system", "table"), _table(stage, stage_name)
    rejects = f"{stage_name}__rejects" if isinstance(stage_name, str) else None
    yield "the stage's rejects table", ("stage_system", "table"), _table(stage, rejects)
    yield "the target table", ("target_system", "table"), _table(target, target_name)
    scratch = f"{target_name}__drivetrain_transfer" if isinstance(target_name, str) else None
    yield "the target's transfer scratch table", ("target_system", "table"), _table(target, scratch)


def role_collision_problems(data: Mapping[str, Any], problems: Problems) -> None:
    """Add a problem for every two roles that name one table, and for an archive the source reads."""
    seen: dict[tuple[Any, ...], tuple[str, JsonPath]] = {}
    for what, path, identity in _roles(data):
        if identity is None:
            continue
        earlier = seen.get(identity)
        if earlier is None:
            seen[identity] = (what, path)
            continue
        other, other_path = earlier
        if other_path == path:
            continue  # derived names of one key (a stage named like its own rejects table cannot happen)
        table = ".".join(str(p) for p in identity[-2:] if p)
        problems.add(
            path,
            f"{what} would be {table}, which is already {other} ({'.'.join(map(str, other_path))}): one table "
            "cannot play two parts (the run would empty or overwrite it); choose another table name",
        )
    _archive_problem(data, problems)


def _archive_problem(data: Mapping[str, Any], problems: Problems) -> None:
    cleaning = _section(_section(data, "phases"), "stage_cleaning")
    source = _section(data, "source_system")
    location, pattern = cleaning.get("archive_location"), source.get("path")
    if source.get("type") != "files" or not isinstance(location, str) or not isinstance(pattern, str):
        return
    if "://" in location:
        return
    archive = posixpath.normpath(location.replace("\\", "/"))
    pattern = posixpath.normpath(pattern.replace("\\", "/"))
    has_glob = any(c in pattern for c in "*?[")
    if not has_glob and posixpath.splitext(pattern)[1]:
        return  # one file: the archive's files can never be it
    folder = posixpath.dirname(pattern) if has_glob else pattern
    folder = folder or "."
    if pattern.lower().endswith(_TEXT_SUFFIXES) and "**" not in pattern:
        return  # the source reads text files only: archived Parquet can never match
    if archive == folder or archive.startswith(folder.rstrip("/") + "/") or folder == ".":
        problems.add(
            ("phases", "stage_cleaning", "archive_location"),
            f"{location!r} is inside the folder the files source reads ({source.get('path')!r}): archived "
            "Parquet files would be read back as new records; archive to a folder outside it",
        )
