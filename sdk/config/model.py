"""The typed pipeline configuration: one frozen attrs class per config.json section.

Build it with :meth:`PipelineConfig.from_file` (or :func:`drivetrain.config.load_config`), or
:meth:`PipelineConfig.from_dict` in tests. Both validate everything first (see
:mod:`drivetrain.config.loader`) and raise one :class:`~drivetrain.errors.ConfigError` listing
every problem; past that point the model holds only valid, typed values with defaults filled in.

Connector sections stay open mappings: :class:`SystemConfig` carries the whole section as
read-only ``options`` and helpers (``get``, ``require``, ``path``, ``error``,
``validate_against``) that give connectors errors in the same ``FILE: json.path: ...`` form.


The phase sections live in :mod:`drivetrain.config.phases`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from drivetrain._user_path import user_path
from drivetrain.errors import ConfigError

from . import checks, jsondoc, schema_check, validated_cache
from ._convert import _duration, _freeze_options, _optional_duration
from .core_keys import SourceKeys, StageKeys, TargetKeys
from .hosts import embedded_credential_problems
from .phases import PhasesConfig, StageCleaningConfig
from .problems import Problems, show, strip_ignored

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from drivetrain.secrets import Credentials

#: The cron expression each non-custom frequency stands for.
DEFAULT_CRON = {"hourly": "0 * * * *", "daily": "0 0 * * *", "weekly": "0 0 * * 0"}
#: Where the drive table lives when config does not say.
DEFAULT_DRIVE_TABLE = "pipeline_execution_drive"
#: Defaults :meth:`SystemConfig.get` falls back to, per role, for keys the core knows.
ROLE_DEFAULTS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "source_system": {"batch_size": 10_000},
        "target_system": {"load_strategy": "replace_window"},
        "drive_table": {"table": DEFAULT_DRIVE_TABLE},
    }
)
#: Keys the core validates in each role; connector schemas need not repeat them.
CORE_KEYS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "source_system": frozenset(
            {"type", "credentials_ref", "query_field", "batch_size", "timestamp_unit", "on_unplaceable"}
        ),
        "stage_system": frozenset({"type", "credentials_ref", "columns", "shared", "schema_contract"}),
        "target_system": frozenset(
            {"type", "credentials_ref", "query_field", "dedup_keys", "load_strategy", "merge_keys", "rename", "shared",
             "delete_missing", "version_column", "publish"}
        ),
        "drive_table": frozenset({"type", "credentials_ref", "table"}),
        "archive": frozenset({"type", "location"}),
    }
)


@attrs.frozen
class MetadataConfig:
    """``pipeline_metadata``: who owns the pipeline and who hears about it."""

    pipeline_name: str
    """Unique name; used in the drive table, logs and alerts."""
    pipeline_description: str | None = None
    """What the pipeline does, for people."""
    owner_name: str | None = None
    """The person responsible."""
    owner_email: str | None = None
    """The owner's address."""
    notification_emails: tuple[str, ...] = ()
    """Who gets failure notices."""
    slack_channel: str | None = None
    """Channel for alerts, with its '#'."""
    tags: tuple[str, ...] = ()
    """Free labels for search and dashboards."""


@attrs.frozen
class ScheduleConfig:
    """``dag_schedule``: when the pipeline runs."""

    frequency: str
    """hourly, daily, weekly or custom."""
    cron_expression: str
    """Five-field cron; filled in from ``frequency`` when config leaves it out."""
    timezone: str
    """IANA zone the cron expression is read in."""
    start_date: date
    """The first day runs are scheduled for; the window grid is anchored on it."""
    catchup: bool = False
    """Whether missed runs are backfilled."""
    dag_shape: str = "phases"
    """The Airflow DAG's shape: phases, window or catchup (see drivetrain.airflow.build_dag)."""
    max_windows_per_run: int = 200
    """With the catchup shape: the most windows one Airflow DAG run loads."""

    @property
    def tzinfo(self) -> ZoneInfo:
        """The schedule's zone as a ZoneInfo."""
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone)


@attrs.frozen
class QueryWindowConfig:
    """``query_window``: the slice of time one run processes."""

    type: str
    """hourly, daily or custom."""
    duration: str
    """The window length as written (``"1h"``, ``"1d"``), for the drive table."""
    length: timedelta = attrs.field(eq=False)
    """The window length as a timedelta ("1d" is 24 hours here; windows use calendar days)."""
    settle_horizon: timedelta | None = attrs.field(default=None, eq=False)
    """How long after its end a window's records may still arrive; None: loaded windows are final."""
    settle_horizon_text: str | None = None
    """The horizon as written (``"6h"``)."""


@attrs.frozen
class ColumnConfig:
    """One entry of ``stage_system.columns``: a column of the declared record schema."""

    name: str
    """Column name."""
    type: str
    """string, integer, float, boolean, timestamp, date or json."""
    required: bool = False
    """Whether every record must carry the field."""
    nullable: bool = True
    """Whether the field may be null."""
    max_length: int | None = attrs.field(default=None, converter=attrs.converters.optional(int))
    """Longest allowed string, for string columns."""
    min: int | float | datetime | date | None = None
    """Smallest allowed value (numbers, or aware datetimes / dates)."""
    max: int | float | datetime | date | None = None
    """Largest allowed value."""
    description: str | None = None
    """What the column holds."""


def _columns(section: Mapping[str, Any]) -> tuple[ColumnConfig, ...]:
    out = []
    for column in section.get("columns") or ():
        kind = column["type"]
        bounds = {k: checks.column_bound(kind, column[k]) for k in ("min", "max") if k in column}
        out.append(
            ColumnConfig(
                name=column["name"],
                type=kind,
                required=column.get("required", False),
                nullable=column.get("nullable", True),
                max_length=column.get("max_length"),
                description=column.get("description"),
                **bounds,
            )
        )
    return tuple(out)


@attrs.frozen
class SystemConfig:
    """A connector section (``source_system``, ``stage_system``, ``target_system``,
    ``drive_table``) or the stage-cleaning archive.

    The core validates only ``type``, ``credentials_ref`` and a few common keys; everything
    else belongs to the connector ``type`` names, which reads it through :meth:`get`,
    :meth:`require` and :meth:`path` and checks it with :meth:`validate_against`.
    """

    role: str
    """source_system, stage_system, target_system, drive_table or archive."""
    type: str
    """The connector type ("duckdb", "mysql"...)."""
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze_options, hash=False)
    """Read-only view of the whole section as written (comment keys removed)."""
    credentials_ref: str | None = None
    """Names the credentials (environment prefix or resolver id); never the secret itself."""
    base_dir: Path = attrs.field(default=Path("."), converter=Path)
    """Folder relative paths are resolved against: the config file's folder."""
    source_file: str = "config.json"
    """The config file, for messages."""
    json_path: str = attrs.field(default=attrs.Factory(lambda self: self.role, takes_self=True))
    """Where the section sits in config.json (the role, or phases.stage_cleaning for archive)."""
    columns: tuple[ColumnConfig, ...] = ()
    """The declared record schema (stage_system only)."""

    @classmethod
    def from_section(
        cls,
        role: str,
        section: Mapping[str, Any],
        *,
        base_dir: Path = Path("."),
        source_file: str = "config.json",
    ) -> SystemConfig:
        """Validate one section with the core rules for ``role`` and build it.

        :raises ConfigError: listing every problem, paths prefixed by ``role``.
        """
        if role not in CORE_KEYS:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(CORE_KEYS)}")
        problems = Problems(source_file, (role,))
        clean = strip_ignored(jsondoc.normalize(section, problems))
        embedded_credential_problems(clean, problems)
        if role == "archive" or not isinstance(clean, dict):
            if not isinstance(clean, dict) or not isinstance(clean.get("type"), str):
                problems.add(("type",), "'type' is required and must be a string")
        else:
            checks.secret_key_problems(clean, problems)
            definition = {"$defs": schema_check.schema()["$defs"], "$ref": f"#/$defs/{role}"}
            schema_check.schema_problems(schema_check.make_validator(definition), clean, problems)
            if role == "stage_system":
                checks.column_problems(clean.get("columns"), problems, ("columns",))
        problems.raise_if_any()
        return cls._build(role, clean, base_dir=Path(base_dir), source_file=source_file)

    @classmethod
    def _build(
        cls,
        role: str,
        section: Mapping[str, Any],
        *,
        base_dir: Path,
        source_file: str,
        json_path: str | None = None,
    ) -> SystemConfig:
        return cls(
            role=role,
            type=section["type"],
            options=section,
            credentials_ref=section.get("credentials_ref"),
            base_dir=base_dir,
            source_file=source_file,
            json_path=json_path or role,
            columns=_columns(section) if role == "stage_system" else (),
        )

    def get(self, key: str, default: Any = None) -> Any:
        """The option ``key``, else the core default for this role, else ``default``."""
        if key in self.options:
            return self.options[key]
        return ROLE_DEFAULTS.get(self.role, {}).get(key, default)

    def require(self, key: str) -> Any:
        """The option ``key``; ConfigError ``FILE: role.key: required for type X`` if absent."""
        value = self.get(key)
        if value is None:
            raise self.error(key, f"required for type {self.type!r}")
        return value

    def path(self, key: str, default: str | Path | None = None) -> Path | None:
        """The option ``key`` as a local path: ``~`` expanded, relative ones under base_dir."""
        value = self.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str | Path) or not str(value).strip():
            raise self.error(key, f"expected a file or folder path, got {show(value)}")
        if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", str(value)):
            raise self.error(key, f"expected a local path, got the URL {show(str(value))}")
        path = user_path(value)
        return path if path.is_absolute() else self.base_dir / path

    def error(self, key: str, message: str) -> ConfigError:
        """A ConfigError for option ``key``: ``FILE: json_path.key: message``."""
        where = f"{self.json_path}.{key}" if key else self.json_path
        return ConfigError(f"{self.source_file}: {where}: {message}", source=self.source_file)

    def validate_against(self, schema: Mapping[str, Any]) -> None:
        """Check the section against a connector's JSON Schema (draft 2020-12).

        Keys the core already validated for this role (``type``, ``credentials_ref``,
        ``batch_size``...) are left out unless the schema names them, so a closed connector
        schema need not repeat them.

        :raises ConfigError: every problem, paths prefixed by this section's JSON path.
        """
        named = set(schema.get("properties", {}))
        core = CORE_KEYS.get(self.role, frozenset()) - named
        section = {k: v for k, v in jsondoc.thaw(self.options).items() if k not in core}
        where = tuple(self.json_path.split("."))
        # an archive's own keys are written under phases.stage_cleaning.archive_options
        problems = Problems(self.source_file, where + ("archive_options",) if self.role == "archive" else where)
        also_known = sorted(core) if self.role != "archive" else []
        # a section that passed this very schema before passes again (see validated_cache)
        checked = {"connector_schema": jsondoc.thaw(schema), "section": section, "also_known": also_known}
        if validated_cache.known_valid(checked):
            return
        schema_check.schema_problems(schema_check.make_validator(schema), section, problems, also_known=also_known)
        problems.raise_if_any()
        validated_cache.remember(checked)

    def credentials(self, environ: Mapping[str, str] | None = None) -> Credentials | None:
        """Resolve ``credentials_ref`` (None when the section has none)."""
        from drivetrain.secrets import resolve_credentials

        if self.credentials_ref is None:
            return None
        key = "archive_credentials_ref" if self.role == "archive" else "credentials_ref"
        return resolve_credentials(
            self.credentials_ref,
            environ=environ,
            json_path=f"{self.json_path}.{key}",
            source_file=self.source_file,
        )


@attrs.frozen
class RetryConfig:
    """``retry``: how a phase retries transient errors."""

    max_retries: int = attrs.field(default=3, converter=int)
    """Retries after the first attempt (so 3 means up to 4 attempts)."""
    backoff_strategy: str = "exponential"
    """exponential, linear or none."""
    backoff_seconds: float = attrs.field(default=1.0, converter=float)
    """First wait (exponential) or every wait (linear)."""
    max_backoff_seconds: float = attrs.field(default=300.0, converter=float)
    """No wait is longer than this."""

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if attempt < 1:
            raise ValueError(f"retry attempts count from 1, got {attempt}")
        if self.backoff_strategy == "none":
            return 0.0
        if self.backoff_strategy == "linear":
            wait = self.backoff_seconds
        elif attempt > 64:  # 2**64 times any positive wait is past every cap
            wait = self.max_backoff_seconds if self.backoff_seconds > 0 else 0.0
        else:
            wait = self.backoff_seconds * 2.0 ** (attempt - 1)
        return float(min(wait, self.max_backoff_seconds))


@attrs.frozen
class MonitoringConfig:
    """``monitoring``: alert thresholds."""

    alert_on_failure: bool = True
    """Notify when a run fails."""
    alert_on_duration_exceed: bool = True
    """Notify when a phase runs far past its expected duration."""
    duration_multiplier_threshold: float = attrs.field(default=2.0, converter=float)
    """"Far past" means more than this many times the expected duration."""
    alert_on_stale_data: bool = False
    """Notify when the newest target data is older than ``freshness_threshold``."""
    freshness_threshold: timedelta | None = None
    """How old the newest data may get."""
    freshness_threshold_text: str | None = None
    """The threshold as written."""
    openlineage: bool = False
    """Send OpenLineage run and phase events (docs/lineage.md)."""
    alert_on_low_success_rate: bool = True
    """Notify when a run takes the success rate below ``success_rate_threshold``."""
    success_rate_threshold: float = attrs.field(default=90.0, converter=float)
    """Percent of runs that must end without an unrecovered failure."""
    success_rate_period: timedelta = timedelta(days=7)
    """How far back the success rate looks."""
    success_rate_period_text: str = "7d"
    """The period as written."""
    notify_on_success: bool = False
    """Send a summary of each successful run."""


@attrs.frozen(repr=False)
class PipelineConfig:
    """A whole, validated config.json. Build it with :meth:`from_file` or :meth:`from_dict`."""

    name: str
    """The pipeline name (``pipeline_metadata.pipeline_name``)."""
    metadata: MetadataConfig
    """``pipeline_metadata``."""
    schedule: ScheduleConfig
    """``dag_schedule``, with the cron expression resolved."""
    query_window: QueryWindowConfig
    """``query_window``."""
    source: SystemConfig
    """``source_system``."""
    stage: SystemConfig
    """``stage_system``."""
    target: SystemConfig
    """``target_system``."""
    drive_table: SystemConfig
    """``drive_table``, or the stage system's warehouse with the default table name."""
    phases: PhasesConfig
    """``phases``, every phase present with defaults filled in."""
    retry: RetryConfig
    """``retry``."""
    monitoring: MonitoringConfig
    """``monitoring``."""
    archive: SystemConfig | None
    """Where stage cleaning archives to (role "archive"), or None when it does not archive."""
    base_dir: Path
    """The config file's folder; relative paths in config are resolved against it."""
    source_file: str
    """The config file as given, for messages."""
    raw: Mapping[str, Any] = attrs.field(eq=False, hash=False)
    """The parsed JSON as read, comments included, read-only."""
    config_hash: str
    """sha256 of the canonical JSON (sorted keys, no whitespace, comment keys removed)."""

    @property
    def source_keys(self) -> SourceKeys:
        """The core keys of ``source_system``, typed (query field, batch size...)."""
        return SourceKeys.from_section(self.source)

    @property
    def stage_keys(self) -> StageKeys:
        """The core keys of ``stage_system``, typed."""
        return StageKeys.from_section(self.stage)

    @property
    def target_keys(self) -> TargetKeys:
        """The core keys of ``target_system``, typed (keys, load strategy, rename...)."""
        return TargetKeys.from_section(self.target)

    @classmethod
    def from_file(cls, path: str | Path) -> PipelineConfig:
        """Read, validate and build a config file.

        :raises ConfigError: listing every problem as ``FILE: json.path: message``.
        """
        data = jsondoc.read_json(path)
        return cls.from_dict(data, source=str(path), base_dir=Path(path).absolute().parent)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, source: str = "config.json", base_dir: Path | None = None
    ) -> PipelineConfig:
        """Validate and build from parsed JSON; ``base_dir`` defaults to the working folder.

        :raises ConfigError: listing every problem as ``SOURCE: json.path: message``.
        """
        clean, doc = checks.validate_document(data, source)
        base = Path.cwd() if base_dir is None else Path(base_dir)

        def system(role: str) -> SystemConfig:
            return SystemConfig._build(role, doc[role], base_dir=base, source_file=source)

        metadata: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in doc["pipeline_metadata"].items()
        }
        schedule = doc["dag_schedule"]
        window = doc["query_window"]
        phases = PhasesConfig.from_section(doc.get("phases", {}))
        monitoring = dict(doc.get("monitoring", {}))
        freshness = monitoring.pop("freshness_threshold", None)
        period = monitoring.pop("success_rate_period", "7d")
        stage = system("stage_system")
        if "drive_table" in doc:
            drive = SystemConfig._build(
                "drive_table",
                {"table": DEFAULT_DRIVE_TABLE, **doc["drive_table"]},
                base_dir=base,
                source_file=source,
            )
        else:
            options = {k: v for k, v in doc["stage_system"].items() if k not in ("columns", "shared", "schema_contract")}
            drive = SystemConfig._build(
                "drive_table",
                {**options, "table": DEFAULT_DRIVE_TABLE},
                base_dir=base,
                source_file=source,
            )
        return cls(
            name=doc["pipeline_metadata"]["pipeline_name"],
            metadata=MetadataConfig(**metadata),
            schedule=ScheduleConfig(
                frequency=schedule["frequency"],
                cron_expression=schedule.get("cron_expression")
                or DEFAULT_CRON[schedule["frequency"]],
                timezone=schedule.get("timezone", "UTC"),
                start_date=date.fromisoformat(schedule["start_date"]),
                catchup=schedule.get("catchup", False),
                dag_shape=schedule.get("dag_shape", "phases"),
                max_windows_per_run=schedule.get("max_windows_per_run", 200),
            ),
            query_window=QueryWindowConfig(
                type=window["type"],
                duration=window["duration"],
                length=_duration(window["duration"]),
                settle_horizon=_optional_duration(window.get("settle_horizon")),
                settle_horizon_text=window.get("settle_horizon"),
            ),
            source=system("source_system"),
            stage=stage,
            target=system("target_system"),
            drive_table=drive,
            phases=phases,
            retry=RetryConfig(**doc.get("retry", {})),
            monitoring=MonitoringConfig(
                **monitoring,
                freshness_threshold=_optional_duration(freshness),
                freshness_threshold_text=freshness,
                success_rate_period=_duration(period),
                success_rate_period_text=period,
            ),
            archive=_archive(phases.stage_cleaning, base, source),
            base_dir=base,
            source_file=source,
            raw=jsondoc.freeze(clean),
            config_hash=jsondoc.canonical_hash(doc),
        )

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able deep copy of the config as written, comment keys removed."""
        return strip_ignored(jsondoc.thaw(self.raw))  # type: ignore[no-any-return]

    def with_overrides(self, changes: Mapping[str, Any]) -> PipelineConfig:
        """A copy with dotted-path changes applied and everything validated again.

        ``{"stage_system.path": "/tmp/x.duckdb", "stage_system.columns[0].type": "string"}``;
        missing objects along a path are created.

        :raises ConfigError: when a path cannot be applied or the result is invalid.
        """
        data = jsondoc.thaw(self.raw)
        for dotted, value in changes.items():
            try:
                jsondoc.apply_override(data, dotted, value)
            except ValueError as exc:
                raise ConfigError(
                    f"{self.source_file}: {dotted}: cannot apply override: {exc}",
                    source=self.source_file,
                ) from None
        return PipelineConfig.from_dict(data, source=self.source_file, base_dir=self.base_dir)

    def __copy__(self) -> PipelineConfig:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> PipelineConfig:
        """Frozen all the way down, so a copy is the object itself (Airflow deep-copies DAGs)."""
        return self

    def __repr__(self) -> str:
        return (
            f"PipelineConfig(name={self.name!r}, source_file={self.source_file!r}, "
            f"config_hash={self.config_hash[:12]!r})"
        )


def _archive(phase: StageCleaningConfig, base_dir: Path, source: str) -> SystemConfig | None:
    if not (phase.enabled and phase.archive_before_delete and phase.archive_location):
        return None
    location = phase.archive_location
    options = {
        **jsondoc.thaw(phase.archive_options),
        "type": "s3" if location.startswith("s3://") else "local",
        "location": location,
    }
    return SystemConfig(
        role="archive",
        type=options["type"],
        options=options,
        credentials_ref=phase.archive_credentials_ref,
        base_dir=base_dir,
        source_file=source,
        json_path="phases.stage_cleaning",
    )
