"""drivetrain's own connectors and pipelines, registered like any plugin's."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drivetrain.plugins import hookimpl

CONNECTORS = {
    "source:files": "drivetrain.connectors.files:FilesSource",
    "source:mysql": "drivetrain.connectors.mysql:MySQLSource",
    "source:mariadb": "drivetrain.connectors.mysql:MySQLSource",
    "source:postgres": "drivetrain.connectors.postgres:PostgresSource",
    "source:postgresql": "drivetrain.connectors.postgres:PostgresSource",
    "source:elasticsearch": "drivetrain.connectors.elasticsearch:ElasticsearchSource",
    "source:servicenow": "drivetrain.connectors.servicenow:ServiceNowSource",
    "warehouse:duckdb": "drivetrain.connectors.duckdb:DuckDBWarehouse",
    "warehouse:snowflake": "drivetrain.connectors.snowflake:SnowflakeWarehouse",
    "warehouse:postgres": "drivetrain.connectors.postgres:PostgresWarehouse",
    "warehouse:postgresql": "drivetrain.connectors.postgres:PostgresWarehouse",
    "warehouse:sqlite": "drivetrain.connectors.sqlite:SqliteWarehouse",
    "source:memory": "drivetrain.testing:MemorySource",
    "archive:local": "drivetrain.connectors.local_archive:LocalArchive",
    "archive:s3": "drivetrain.connectors.s3:S3Archive",
}


@hookimpl
def drivetrain_register_connectors() -> Mapping[str, Any]:
    return CONNECTORS


@hookimpl
def drivetrain_register_pipelines() -> Mapping[str, Path]:
    from drivetrain import contrib

    root = Path(contrib.__file__).parent
    return {p.name: p for p in sorted(root.iterdir()) if (p / "config.json").is_file()}
