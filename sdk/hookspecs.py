# mypy: disable-error-code="empty-body"
# (A hookspec's body never runs: pluggy reads only its signature and docstring, so the specs
# keep the return type a plugin should give instead of adding "| None" to please mypy.)
"""The hooks drivetrain calls, with their signatures.

Plugins implement them with :data:`drivetrain.hookimpl`. Registration hooks return classes;
lifecycle hooks are told what happened. Hooks can gain arguments in later releases; pluggy
passes an implementation only the arguments it names, so existing plugins keep working.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from drivetrain.base import Connector
    from drivetrain.phases import BasePhase
    from drivetrain.pipeline import Pipeline
    from drivetrain.record import PhaseState, RunRecord

hookspec = pluggy.HookspecMarker("drivetrain")


@hookspec
def drivetrain_register_connectors() -> Mapping[str, type[Connector]]:
    """Connector classes this plugin provides, keyed ``"role:type"``.

    ``role`` is ``source``, ``warehouse`` or ``archive``; ``type`` is what a config section's
    ``"type"`` says. The class must derive from the role's base (Source, Warehouse, Archive). A
    class may also be given as a ``"module:ClassName"`` string, imported only when a config
    uses it. (A key without ``role:`` is still read, for any role its class fits, but new
    plugins should name the role.)

    :returns: ``{"source:mysql": MySQLSource, "warehouse:duckdb": "pkg.mod:DuckDBWarehouse", ...}``
    """


@hookspec
def drivetrain_register_pipelines() -> Mapping[str, type[Pipeline] | Path]:
    """Pipelines this plugin provides, by name: a Pipeline subclass or a folder with config.json.

    The name is how ``drivetrain run NAME`` and ``build_dag("NAME")`` find it. Relative paths in
    its config are read from the config file's folder (docs/plugins.md shows the whole example).

    :returns: ``{"genetic_tests": GeneticTests, "demo": Path(".../demo")}``
    """


@hookspec
def drivetrain_register_phases() -> Mapping[str, type[BasePhase]]:
    """Replacement default phase classes, keyed by phase name, for every pipeline.

    A pipeline's own phase classes still win. Later plugins override earlier ones.

    :returns: ``{"audit": StrictAudit}``
    """


@hookspec
def drivetrain_register_notifiers() -> Mapping[str, type[Any]]:
    """Notifier classes by name (``"email"``, ``"slack"``).

    Each is a :class:`drivetrain.monitoring.Notifier` subclass: ``from_env(environ)`` builds it
    (or returns None when not configured) and ``send(alert)`` delivers one alert.
    """


@hookspec(firstresult=True)
def drivetrain_resolve_credentials(ref: str) -> Mapping[str, str] | None:
    """Look up the secrets a ``credentials_ref`` names (e.g. an Airflow connection).

    Stops at first non-None result. Environment variables are the fallback.

    :param ref: the credentials_ref value from config.
    :returns: lower-case keys (user, password, token...) to values, or None.
    """


@hookspec
def drivetrain_run_started(record: RunRecord, pipeline: Pipeline) -> None:
    """A run has its drive-table row and is about to run its first phase."""


@hookspec
def drivetrain_run_finished(record: RunRecord, pipeline: Pipeline) -> None:
    """A run ended (SUCCESS, FAILED or SKIPPED) and its row is final."""


@hookspec
def drivetrain_phase_started(record: RunRecord, phase: str, pipeline: Pipeline) -> None:
    """A phase is about to run."""


@hookspec
def drivetrain_before_commit(record: RunRecord, phase: str, pipeline: Pipeline) -> None:
    """A phase is about to commit a window's data (inside the transaction, after the lease check).

    Raising here rolls the transaction back and fails the phase. Used for audit trails and
    fault-injection tests.
    """


@hookspec
def drivetrain_phase_finished(record: RunRecord, phase: str, state: PhaseState, pipeline: Pipeline) -> None:
    """A phase ended (COMPLETED, FAILED or SKIPPED); ``state`` is what the drive table holds."""
