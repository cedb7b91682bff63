"""Typed views of the keys the core itself reads in the connector sections.

A connector section (:class:`~drivetrain.config.SystemConfig`) stays an open mapping for its
connector, but a few keys mean the same whatever the connector: the field windows are cut on,
the batch size, how the target is keyed and loaded. The core reads them through these classes
(``config.source_keys``, ``config.stage_keys``, ``config.target_keys`` on
:class:`~drivetrain.config.PipelineConfig`), never by string: a value's type and default are
decided once, here. The loader has already validated every one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol

import attrs


class Section(Protocol):
    """What the typed views read of a connector section (a :class:`~drivetrain.config.SystemConfig`)."""

    def get(self, key: str, default: Any = None) -> Any:
        """The option ``key``, else ``default``."""
        ...

#: ``target_system.load_strategy``: replace each window's rows, or merge on ``merge_keys``.
REPLACE_WINDOW = "replace_window"
MERGE = "merge"


def _names(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


def _optional_text(value: object) -> str | None:
    return None if value is None else str(value)


def _renames(value: object) -> Mapping[str, str]:
    items = value.items() if isinstance(value, Mapping) else ()
    return MappingProxyType({str(k): str(v) for k, v in items})


@attrs.frozen
class SourceKeys:
    """The core keys of ``source_system``."""

    query_field: str | None = attrs.field(default=None, converter=_optional_text)
    """The field of the records that windows are cut on."""
    batch_size: int = attrs.field(default=10_000, converter=int)
    """Records per batch read from the source."""
    timestamp_unit: str | None = attrs.field(default=None, converter=_optional_text)
    """The unit of query-field values given as numbers (``s``, ``ms``, ``us``, ``ns``), if any."""
    source_timezone: str = attrs.field(default="UTC", converter=str)
    """The zone of timestamps the source gives without one."""

    @classmethod
    def from_section(cls, section: Section) -> SourceKeys:
        return cls(
            query_field=section.get("query_field"),
            batch_size=section.get("batch_size", 10_000),
            timestamp_unit=section.get("timestamp_unit"),
            source_timezone=section.get("source_timezone", "UTC"),
        )


@attrs.frozen
class StageKeys:
    """The core keys of ``stage_system`` (its declared columns are ``SystemConfig.columns``)."""

    shared: bool = attrs.field(default=False, converter=bool)
    """Whether other pipelines that also say so may write the stage table (each its own rows)."""

    @classmethod
    def from_section(cls, section: Section) -> StageKeys:
        return cls(shared=bool(section.get("shared")))


@attrs.frozen
class TargetKeys:
    """The core keys of ``target_system``: how the target is keyed and loaded."""

    query_field: str | None = attrs.field(default=None, converter=_optional_text)
    """The target column windows are cut on, when not the (renamed) source query field."""
    rename: Mapping[str, str] = attrs.field(factory=dict, converter=_renames)
    """Stage column -> target column."""
    dedup_keys: tuple[str, ...] = attrs.field(default=(), converter=_names)
    """Columns identifying a record within a window: the latest copy of each key is kept."""
    merge_keys: tuple[str, ...] = attrs.field(default=(), converter=_names)
    """Columns a merge matches target rows on (load_strategy ``merge``)."""
    load_strategy: str = attrs.field(default=REPLACE_WINDOW, converter=str)
    """``replace_window`` or ``merge``."""
    delete_missing: bool = attrs.field(default=False, converter=bool)
    """With a merge: delete the window's target rows whose key the source no longer has."""
    version_column: str | None = attrs.field(default=None, converter=_optional_text)
    """With a merge: the column that orders versions of a record (default: the query field)."""
    shared: bool = attrs.field(default=False, converter=bool)
    """Whether other pipelines that also say so may write the target table (each its own rows)."""

    @classmethod
    def from_section(cls, section: Section) -> TargetKeys:
        return cls(
            query_field=section.get("query_field"),
            rename=section.get("rename") or {},
            dedup_keys=section.get("dedup_keys") or (),
            merge_keys=section.get("merge_keys") or (),
            load_strategy=section.get("load_strategy") or REPLACE_WINDOW,
            delete_missing=bool(section.get("delete_missing")),
            version_column=section.get("version_column"),
            shared=bool(section.get("shared")),
        )

    @property
    def is_merge(self) -> bool:
        """Whether rows are merged on ``merge_keys`` rather than the window replaced."""
        return self.load_strategy == MERGE

    @property
    def active_merge_keys(self) -> tuple[str, ...]:
        """``merge_keys`` when merging, else nothing (a replace ignores them)."""
        return self.merge_keys if self.is_merge else ()

    def query_field_for(self, source_field: str | None) -> str | None:
        """The target's query column: ``query_field``, else the source's field as renamed."""
        if self.query_field:
            return self.query_field
        return self.rename.get(source_field, source_field) if source_field is not None else None
