"""Dataset names for each built-in system, from real config sections."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivetrain.config import SystemConfig
from drivetrain.lineage.datasets import Dataset, dataset_of

CASES = [
    ("source_system", "source", {"type": "mysql", "host": "db.example.com", "port": 3307, "database": "lab",
                                  "table": "results", "query_field": "updated_at", "credentials_ref": "lab"},
     Dataset("mysql://db.example.com:3307", "lab.results")),
    ("source_system", "source", {"type": "mariadb", "host": "db", "database": "lab", "table": "r", "query_field": "u",
                                  "credentials_ref": "lab"},
     Dataset("mysql://db:3306", "lab.r")),
    ("source_system", "source", {"type": "elasticsearch", "endpoint": "https://es.example.com", "index": "reports",
                                  "query_field": "updated_at"},
     Dataset("elasticsearch://es.example.com:443", "reports")),
    ("source_system", "source", {"type": "servicenow", "instance": "acme", "table": "incident",
                                  "query_field": "sys_updated_on", "credentials_ref": "snow"},
     Dataset("servicenow://acme.service-now.com", "incident")),
    ("target_system", "warehouse", {"type": "snowflake", "account": "MyOrg-Acct", "database": "analytics",
                                     "schema": "lab", "table": "results", "credentials_ref": "sf"},
     Dataset("snowflake://myorg-acct", "ANALYTICS.LAB.RESULTS")),
]


@pytest.mark.parametrize(("role", "kind", "section", "expected"), CASES, ids=[c[2]["type"] for c in CASES])
def test_each_built_in_system_is_named_per_the_conventions(role: str, kind: str, section: dict, expected: Dataset) -> None:
    assert dataset_of(SystemConfig.from_section(role, section), kind) == expected


def test_relative_paths_are_named_absolute_under_the_config_folder(tmp_path: Path) -> None:
    files = SystemConfig.from_section("source_system", {"type": "files", "path": "data/*.jsonl", "query_field": "t"},
                                      base_dir=tmp_path)
    duck = SystemConfig.from_section("stage_system", {"type": "duckdb", "path": "w.duckdb", "table": "stg", "schema": "raw"},
                                     base_dir=tmp_path)
    assert dataset_of(files, "source") == Dataset("file", f"{tmp_path.as_posix()}/data/*.jsonl")
    assert dataset_of(duck, "warehouse") == Dataset(f"duckdb://{tmp_path.resolve().as_posix()}/w.duckdb", "raw.stg")
