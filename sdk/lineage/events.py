"""Building and sending the OpenLineage events (see :mod:`drivetrain.lineage`)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from drivetrain.errors import MissingExtraError
from drivetrain.lineage.datasets import Dataset, dataset_of
from drivetrain.phase_names import (
    SOURCE_COUNT,
    SOURCE_TO_STAGE_TRANSFER,
    STAGE_CLEANING,
    STAGE_COUNT,
    STAGE_TO_TARGET_TRANSFER,
    TARGET_CLEANING,
    TARGET_COUNT,
)
from drivetrain.record import PhaseState, PhaseStatus, RunRecord, RunStatus
from drivetrain.secrets import redact

if TYPE_CHECKING:
    from drivetrain.pipeline import Pipeline

log = logging.getLogger("drivetrain.lineage")

#: Job namespace when OPENLINEAGE_NAMESPACE is not set.
DEFAULT_NAMESPACE = "drivetrain"
PRODUCER = "https://github.com/drivetrain-dev/drivetrain"

#: Phase -> (systems read, systems written), as roles: source, stage, target.
PHASE_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    SOURCE_COUNT: (("source",), ()),
    SOURCE_TO_STAGE_TRANSFER: (("source",), ("stage",)),
    STAGE_COUNT: (("stage",), ()),
    STAGE_TO_TARGET_TRANSFER: (("stage",), ("target",)),
    TARGET_COUNT: (("target",), ()),
    STAGE_CLEANING: ((), ("stage",)),
    TARGET_CLEANING: ((), ("target",)),
}

_started: set[str] = set()
"""Phase run ids that had a START event, so a FINISH is sent only for those."""
_given_up: set[str] = set()
"""Runs (pipeline_id) whose receiver failed: they send nothing more."""
_lock = threading.Lock()


def airflow_provider_active() -> bool:
    """Whether this process is an Airflow task whose OpenLineage provider reports lineage.

    True when Airflow has set ``AIRFLOW_CTX_DAG_ID`` (it does for every running task), the
    ``apache-airflow-providers-openlineage`` package is importable, the provider is not
    disabled (``[openlineage] disabled`` / ``AIRFLOW__OPENLINEAGE__DISABLED``, or no transport
    configured) and drivetrain's operators are not in ``[openlineage] disabled_for_operators``.
    """
    if not os.environ.get("AIRFLOW_CTX_DAG_ID"):
        return False
    try:
        from airflow.providers.openlineage import conf
    except ImportError:
        return False
    try:
        if any(name.startswith("drivetrain.") for name in conf.disabled_operators()):
            return False
        return not conf.is_disabled()
    except Exception:  # noqa: BLE001 - a provider we cannot ask is one we must not duplicate
        return True


def enabled(pipeline: Pipeline) -> bool:
    """Lineage is on in the config and no Airflow provider already reports it."""
    if not getattr(pipeline.config.monitoring, "openlineage", False):
        return False
    if airflow_provider_active():
        log.debug("%s: the Airflow OpenLineage provider reports this task; drivetrain sends no events", pipeline.name)
        return False
    return True


def _client() -> Any:
    try:
        from openlineage.client import OpenLineageClient
    except ImportError as exc:
        raise MissingExtraError("openlineage-python", "openlineage") from exc
    return OpenLineageClient()


def _producer() -> str:
    # imported here (20 ms), only when an event is sent
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{PRODUCER}/tree/v{version('drivetrain')}"
    except PackageNotFoundError:
        return PRODUCER


def namespace() -> str:
    """The job namespace: ``OPENLINEAGE_NAMESPACE``, else ``drivetrain``."""
    return os.environ.get("OPENLINEAGE_NAMESPACE") or DEFAULT_NAMESPACE


def run_id(record: RunRecord, phase: str | None = None) -> str:
    """A stable UUID for a run (or one of its phases), the same in its START and its end."""
    from openlineage.client.uuid import generate_static_uuid

    key = record.pipeline_id if phase is None else f"{record.pipeline_id}/{phase}"
    return str(generate_static_uuid(record.pipeline_start_timestamp, key.encode()))


def _datasets(pipeline: Pipeline) -> dict[str, Dataset]:
    config = pipeline.config
    return {
        "source": dataset_of(config.source, "source"),
        "stage": dataset_of(config.stage, "warehouse"),
        "target": dataset_of(config.target, "warehouse"),
    }


def _rows(state: PhaseState | None, key: str) -> int | None:
    value = (state.phase_specific_details if state is not None else {}).get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _counts(record: RunRecord) -> dict[str, int | None]:
    """Rows read from the source and written to stage and target in this window."""
    phases = record.phases
    return {
        "source": _rows(phases.get(SOURCE_COUNT), "count") or _rows(phases.get(SOURCE_TO_STAGE_TRANSFER), "rows_read"),
        "stage": _rows(phases.get(SOURCE_TO_STAGE_TRANSFER), "rows_written"),
        "target": _rows(phases.get(STAGE_TO_TARGET_TRANSFER), "rows_written"),
    }


def _inputs(roles: tuple[str, ...], datasets: Mapping[str, Dataset], counts: Mapping[str, int | None]) -> list[Any]:
    from openlineage.client.event_v2 import InputDataset
    from openlineage.client.generated.input_statistics_input_dataset import (
        InputStatisticsInputDatasetFacet,
    )

    out = []
    for role in roles:
        ds, rows = datasets[role], counts.get(role)
        facets: dict[str, Any] = {"inputStatistics": InputStatisticsInputDatasetFacet(rowCount=rows)} if rows is not None else {}
        out.append(InputDataset(namespace=ds.namespace, name=ds.name, inputFacets=facets))
    return out


def _outputs(roles: tuple[str, ...], datasets: Mapping[str, Dataset], counts: Mapping[str, int | None]) -> list[Any]:
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.generated.output_statistics_output_dataset import (
        OutputStatisticsOutputDatasetFacet,
    )

    out = []
    for role in roles:
        ds, rows = datasets[role], counts.get(role)
        facets: dict[str, Any] = {"outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=rows)} if rows is not None else {}
        out.append(OutputDataset(namespace=ds.namespace, name=ds.name, outputFacets=facets))
    return out


def _event(state: str, *, job: str, run: str, run_facets: dict[str, Any], inputs: list[Any], outputs: list[Any],
           job_type: str, description: str | None = None) -> Any:
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.generated.documentation_job import DocumentationJobFacet
    from openlineage.client.generated.job_type_job import JobTypeJobFacet

    job_facets: dict[str, Any] = {
        "jobType": JobTypeJobFacet(processingType="BATCH", integration="DRIVETRAIN", jobType=job_type)}
    if description:
        job_facets["documentation"] = DocumentationJobFacet(description=description)
    return RunEvent(
        eventType=RunState[state], eventTime=datetime.now(UTC).isoformat(), producer=_producer(),
        run=Run(runId=run, facets=run_facets), job=Job(namespace=namespace(), name=job, facets=job_facets),
        inputs=inputs, outputs=outputs,
    )


def _window_facets(record: RunRecord) -> dict[str, Any]:
    from openlineage.client.generated.nominal_time_run import NominalTimeRunFacet

    return {"nominalTime": NominalTimeRunFacet(
        nominalStartTime=record.query_window_start_timestamp.astimezone(UTC).isoformat(),
        nominalEndTime=record.query_window_end_timestamp.astimezone(UTC).isoformat())}


def _error_facet(message: str | None) -> dict[str, Any]:
    from openlineage.client.generated.error_message_run import ErrorMessageRunFacet

    return {"errorMessage": ErrorMessageRunFacet(message=redact(message or "failed"), programmingLanguage="python")}


def _send(event: Any, record: RunRecord, pipeline: Pipeline) -> None:
    """Send one event; after a failure the rest of this run's events are dropped (one warning).

    The client retries a receiver that is down for several seconds per event; giving up for
    the run keeps a lineage outage from slowing every phase.
    """
    with _lock:
        if record.pipeline_id in _given_up:
            return
    try:
        _client().emit(event)
    except MissingExtraError:
        raise
    except Exception as exc:  # noqa: BLE001 - lineage must never fail a run
        with _lock:
            _given_up.add(record.pipeline_id)
        log.warning("%s: could not send an OpenLineage %s event (%s); the rest of run %s sends none",
                    pipeline.name, event.eventType.value, redact(str(exc)), record.pipeline_id)


def run_event(record: RunRecord, pipeline: Pipeline, *, finished: bool) -> Any:
    """The pipeline-level event: START, or COMPLETE / FAIL once the row is final."""
    state = "START"
    facets = _window_facets(record)
    if finished:
        state = "FAIL" if record.pipeline_status is RunStatus.FAILED else "COMPLETE"
        if state == "FAIL":
            failed = record.phases.get(record.phase_failed or "")
            facets.update(_error_facet(f"{record.phase_failed}: {failed.error_message if failed else 'failed'}"))
    datasets = _datasets(pipeline)
    counts = _counts(record) if finished else {}
    return _event(state, job=pipeline.name, run=run_id(record), run_facets=facets,
                  inputs=_inputs(("source",), datasets, counts), outputs=_outputs(("stage", "target"), datasets, counts),
                  job_type="PIPELINE", description=pipeline.config.metadata.pipeline_description or None)


def phase_event(record: RunRecord, phase: str, pipeline: Pipeline, state: PhaseState | None) -> Any:
    """A phase's START (``state`` None) or its COMPLETE / FAIL, with the run as its parent."""
    from openlineage.client.generated.parent_run import Job as ParentJob
    from openlineage.client.generated.parent_run import ParentRunFacet
    from openlineage.client.generated.parent_run import Run as ParentRun

    facets: dict[str, Any] = {
        "parent": ParentRunFacet(run=ParentRun(runId=run_id(record)), job=ParentJob(namespace=namespace(), name=pipeline.name)),
        **_window_facets(record),
    }
    kind = "START"
    counts: dict[str, int | None] = {}
    if state is not None:
        kind = "FAIL" if state.status is PhaseStatus.FAILED else "COMPLETE"
        if kind == "FAIL":
            facets.update(_error_facet(state.error_message))
        counts = _counts(record)
        if phase.endswith("_count"):
            counts[phase.removesuffix("_count")] = _rows(state, "count")
    reads, writes = PHASE_IO.get(phase, ((), ()))
    datasets = _datasets(pipeline) if reads or writes else {}
    return _event(kind, job=f"{pipeline.name}.{phase}", run=run_id(record, phase), run_facets=facets,
                  inputs=_inputs(reads, datasets, counts), outputs=_outputs(writes, datasets, counts), job_type="TASK")


def send_run(record: RunRecord, pipeline: Pipeline, *, finished: bool) -> None:
    """Send the run's START, or its end (and forget the run)."""
    if enabled(pipeline):
        _send(run_event(record, pipeline, finished=finished), record, pipeline)
    if finished:
        with _lock:
            _given_up.discard(record.pipeline_id)


def send_phase(record: RunRecord, phase: str, pipeline: Pipeline, state: PhaseState | None) -> None:
    """Send a phase's START, or its end when its START was sent (a phase skipped unstarted sends nothing)."""
    if not enabled(pipeline):
        return
    key = run_id(record, phase)
    with _lock:
        if state is None:
            _started.add(key)
        elif key in _started:
            _started.discard(key)
        else:
            return
    _send(phase_event(record, phase, pipeline, state), record, pipeline)
