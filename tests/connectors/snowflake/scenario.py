"""Pipeline folders with Snowflake (on the fakesnow server) as drive table, stage and target.

The folders come from tests/sdk/factory.make_pipeline_dir (files source, synthetic rows with
known expected targets); only the warehouse sections change. Snowflake is registered as a
warehouse type through a plugin until the built-in plugin lists it.
"""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from typing import Any

from drivetrain.plugins import get_plugin_manager, hookimpl
from tests.sdk.factory import BASE_CONFIG, make_pipeline_dir
from tests.servers.fakesnow_server import FakeSnowServer

from .conftest import CREDENTIALS_REF, sf_rows

SNOWFLAKE = "drivetrain.connectors.snowflake:SnowflakeWarehouse"


class SnowflakePlugin:
    """Registers the Snowflake warehouse (a no-op once drivetrain's built-ins do)."""

    @hookimpl
    def drivetrain_register_connectors(self) -> dict[str, str]:
        return {"warehouse:snowflake": SNOWFLAKE}


def register_snowflake() -> None:
    pm = get_plugin_manager()
    if pm.get_plugin("tests-snowflake") is None:
        pm.register(SnowflakePlugin(), name="tests-snowflake")


def make_snowflake_pipeline(root: Path, server: FakeSnowServer, database: str, rows: list[dict[str, Any]] | None = None, **changes: Any) -> Path:
    """make_pipeline_dir with stage and target (and so the drive table) in ``database``."""
    connection = {**server.options(database), "credentials_ref": CREDENTIALS_REF}
    stage = {**copy.deepcopy(BASE_CONFIG["stage_system"]), **connection}
    stage.pop("path")
    target = {**copy.deepcopy(BASE_CONFIG["target_system"]), **connection}
    target.pop("path")
    return make_pipeline_dir(root, rows, **{"stage_system": stage, "target_system": target, **changes})


def target_rows(server: FakeSnowServer, database: str, start: datetime, end: datetime) -> list[tuple[str, str]]:
    return [tuple(r) for r in sf_rows(
        server, database,
        'SELECT "test_id", "result" FROM TESTS WHERE "reported_at" >= ? AND "reported_at" < ? ORDER BY "test_id"', [start, end],
    )]
