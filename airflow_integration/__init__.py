"""drivetrain on Airflow 3: one DAG per pipeline, one task per phase.

::

    from drivetrain.airflow import build_dag
    dag = build_dag("genetic_tests")

Needs the ``airflow`` extra (``pip install 'drivetrain[airflow]'``). The rest of drivetrain
never imports Airflow; only this package does.
"""

from __future__ import annotations

from drivetrain.errors import MissingExtraError

try:
    import airflow.sdk  # noqa: F401 - fail here, with the extra to install, not deep inside
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise MissingExtraError("apache-airflow", "airflow") from exc

from .credentials import (
    connection_credentials,
    install_connection_resolver,
    uninstall_connection_resolver,
)
from .dag_factory import DAG_SHAPES, build_dag, dag_arguments
from .operators import (
    AIRFLOW_RUN_KEY,
    PipelinePhaseOperator,
    PipelineStartOperator,
    window_for_interval,
)
from .run_tasks import (
    PipelineFailureWatcher,
    PipelineFinishOperator,
    PipelineNotifyOperator,
    run_summary,
)
from .run_window import CONF_WINDOW_START, DagRunFacts, RunWindowError, window_for_run
from .window_tasks import PipelineCatchUpOperator, PipelineWindowOperator

__all__ = [
    "AIRFLOW_RUN_KEY",
    "CONF_WINDOW_START",
    "DAG_SHAPES",
    "DagRunFacts",
    "PipelineCatchUpOperator",
    "PipelineFailureWatcher",
    "PipelineFinishOperator",
    "PipelineNotifyOperator",
    "PipelinePhaseOperator",
    "PipelineStartOperator",
    "PipelineWindowOperator",
    "RunWindowError",
    "build_dag",
    "connection_credentials",
    "dag_arguments",
    "install_connection_resolver",
    "run_summary",
    "uninstall_connection_resolver",
    "window_for_interval",
    "window_for_run",
]
