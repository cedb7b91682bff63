"""Real Airflow 3 for the tests: a temporary AIRFLOW_HOME, a metadata database, a dags folder.

Airflow reads its configuration when first imported, so the environment is set here, when
pytest loads this file and before any test module imports ``drivetrain.airflow``. The
database is initialised once per session. Each test writes its own pipeline folder and a
one-line DAG file into the dags folder (``dag.test()`` runs only DAGs parsed from there).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.sdk.factory import make_pipeline_dir

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="drivetrain-airflow-"))
DAGS_FOLDER = AIRFLOW_HOME / "dags"
DAGS_FOLDER.mkdir()
os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
    }
)


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """The metadata database, initialised once; the whole AIRFLOW_HOME goes at the end."""
    try:
        from airflow.utils import db

        db.initdb()
    except Exception as exc:  # noqa: BLE001 - say clearly why every Airflow test fails
        pytest.fail(f"could not initialise the Airflow metadata database in {AIRFLOW_HOME}: {exc!r}")
    yield AIRFLOW_HOME
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_connection_resolver() -> Iterator[None]:
    """The operators install the Airflow-connection resolver; no test leaves it behind."""
    yield
    from drivetrain.airflow import uninstall_connection_resolver

    uninstall_connection_resolver()


@attrs.frozen
class DeployedPipeline:
    """A pipeline folder and the DAG file that serves it from the dags folder."""

    name: str
    folder: Path
    dag_file: Path

    @property
    def dag_id(self) -> str:
        return f"pipeline_{self.name}"


@attrs.frozen
class DagRunResult:
    """What one ``dag.test()`` left: the DAG run's state and each task's state."""

    state: str
    tasks: dict[str, str]

    def with_state(self, state: str) -> list[str]:
        return sorted(task for task, s in self.tasks.items() if s == state)


def deploy_pipeline(root: Path, name: str, *, pipeline_py: str | None = None, build_args: str = "",
                    rows: list[dict[str, Any]] | None = None, **changes: Any) -> DeployedPipeline:
    """A pipeline folder under ``root`` (factory rows, files -> DuckDB) and its DAG file.

    :param pipeline_py: source of the folder's ``pipeline.py`` (a Pipeline subclass), if any.
    :param build_args: more ``build_dag`` arguments, as source text (``'shape="window"'``).
    :param rows: the source rows (default: the factory's).
    :param changes: config changes as make_pipeline_dir takes them (``a__b=value``).
    """
    folder = make_pipeline_dir(root / name, rows, pipeline_metadata__pipeline_name=name, **changes)
    if pipeline_py is not None:
        (folder / "pipeline.py").write_text(textwrap.dedent(pipeline_py))
    dag_file = DAGS_FOLDER / f"{name}_dag.py"
    extra = f", {build_args}" if build_args else ""
    dag_file.write_text(f"from drivetrain.airflow import build_dag\n\ndag = build_dag({str(folder)!r}{extra})\n")
    return DeployedPipeline(name, folder, dag_file)


@pytest.fixture
def deploy(airflow_db: Path, tmp_path: Path):
    """``deploy(name, pipeline_py=..., **config_changes)`` for one test."""

    def _deploy(name: str, **kwargs: Any) -> DeployedPipeline:
        return deploy_pipeline(tmp_path, name, **kwargs)

    return _deploy


def run_dag(
    deployed: DeployedPipeline,
    logical_date: datetime | None,
    *,
    run_after: datetime | None = None,
    conf: dict[str, Any] | None = None,
) -> DagRunResult:
    """Parse the DAG file as Airflow does and run one manual DAG run with ``logical_date``
    (the start of the window it loads; None for a run without one, created at ``run_after``)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(deployed.dag_file))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag(deployed.dag_id)
    assert dag is not None, f"{deployed.dag_file} defines no DAG {deployed.dag_id}"
    run = dag.test(logical_date=logical_date, run_after=run_after, run_conf=conf)
    tasks = {ti.task_id: _text(ti.state) for ti in run.get_task_instances()}
    return DagRunResult(_text(run.state), tasks)


def _text(state: Any) -> str:
    return str(getattr(state, "value", state))
