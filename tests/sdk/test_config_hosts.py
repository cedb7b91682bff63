"""Credentials written into a host or URL are refused for every connector, without echoing them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivetrain import Pipeline
from drivetrain.config import PipelineConfig, SystemConfig
from drivetrain.config.hosts import CREDENTIALS_IN_URL, credentials_in_url
from drivetrain.errors import ConfigError

from .factory import BASE_CONFIG

PASSWORD = "Sn0wP4ss-9931"

MYSQL = {"type": "mysql", "host": "db.example.com", "database": "lims", "table": "results", "query_field": "reported_at"}
ELASTIC = {"type": "elasticsearch", "endpoint": "https://es.example.com:9200", "index": "results", "query_field": "reported_at"}
SERVICENOW = {"type": "servicenow", "instance": "dev123", "table": "incident", "query_field": "sys_updated_on"}
SNOWFLAKE = {"type": "snowflake", "account": "myorg-acct", "database": "LAB", "table": "STG_TESTS"}

#: (what to change, the JSON path reported): every host- or URL-like key of the built-in connectors.
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("mysql host", {"source_system": {**MYSQL, "host": f"etl:{PASSWORD}@db.example.com"}}, "source_system.host"),
    ("mysql host with a scheme", {"source_system": {**MYSQL, "host": f"mysql://etl:{PASSWORD}@db"}}, "source_system.host"),
    ("elasticsearch endpoint", {"source_system": {**ELASTIC, "endpoint": f"https://elastic:{PASSWORD}@es:9200"}},
     "source_system.endpoint"),
    ("elasticsearch hosts", {"source_system": {**{k: v for k, v in ELASTIC.items() if k != "endpoint"},
                                               "hosts": ["https://es1:9200", f"es2.local:{PASSWORD}@es2:9200"]}},
     "source_system.hosts[1]"),
    ("servicenow instance", {"source_system": {**SERVICENOW, "instance": f"admin:{PASSWORD}@dev123"}},
     "source_system.instance"),
    ("snowflake host", {"stage_system": {**SNOWFLAKE, "host": f"svc:{PASSWORD}@sf.local"}}, "stage_system.host"),
    ("files path on s3", {"source_system": {"type": "files", "path": f"s3://AKIA1:{PASSWORD}@bucket/in/*.jsonl",
                                            "query_field": "reported_at"}}, "source_system.path"),
    ("s3 archive location", {"phases": {"stage_cleaning": {"archive_location": f"s3://AKIA1:{PASSWORD}@bucket/archive"}}},
     "phases.stage_cleaning.archive_location"),
    ("s3 archive endpoint_url", {"phases": {"stage_cleaning": {
        "archive_location": "s3://bucket/archive", "archive_options": {"endpoint_url": f"http://minio:{PASSWORD}@127.0.0.1:9000"}}}},
     "phases.stage_cleaning.archive_options.endpoint_url"),
    ("drive table host", {"drive_table": {**SNOWFLAKE, "table": "DRIVE", "host": f"u:{PASSWORD}@sf.local"}}, "drive_table.host"),
]


def write(tmp_path: Path, change: dict[str, Any]) -> Path:
    config = copy.deepcopy(BASE_CONFIG)
    for section, value in change.items():
        if section == "phases":
            config["phases"]["stage_cleaning"] = {**config["phases"]["stage_cleaning"], **value["stage_cleaning"]}
        else:
            config[section] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


class TestCredentialsInHostsAndUrls:
    @pytest.mark.parametrize(("change", "where"), [(c, w) for _, c, w in CASES], ids=[name for name, _, _ in CASES])
    def test_are_refused_naming_the_key_and_never_showing_the_password(
        self, tmp_path: Path, change: dict[str, Any], where: str
    ) -> None:
        with pytest.raises(ConfigError) as caught:
            PipelineConfig.from_file(write(tmp_path, change))
        text = str(caught.value)
        assert f"config.json: {where}: {CREDENTIALS_IN_URL}" in text
        assert PASSWORD not in text

    def test_an_override_cannot_bring_them_in(self, tmp_path: Path) -> None:
        path = write(tmp_path, {"source_system": MYSQL})
        with pytest.raises(ConfigError) as caught:
            Pipeline(path, overrides={"source_system.host": f"etl:{PASSWORD}@db"})
        assert "source_system.host" in str(caught.value) and PASSWORD not in str(caught.value)

    def test_a_section_built_on_its_own_is_checked_too(self) -> None:
        with pytest.raises(ConfigError, match=r"source_system\.host: holds a user or password"):
            SystemConfig.from_section("source_system", {**MYSQL, "host": f"etl:{PASSWORD}@db"}, base_dir=Path("."))

    def test_hosts_urls_and_paths_without_a_user_pass(self, tmp_path: Path) -> None:
        config = PipelineConfig.from_file(write(tmp_path, {
            "source_system": {"type": "files", "path": "data/user@example.com/*.jsonl", "query_field": "reported_at"},
            "phases": {"stage_cleaning": {"archive_location": "s3://bucket/archive",
                                          "archive_options": {"endpoint_url": "http://127.0.0.1:9000/path@x"}}},
        }))
        assert config.source.get("path") == "data/user@example.com/*.jsonl"


class TestTheRule:
    @settings(max_examples=80, deadline=None)
    @given(user=st.text("abcdefgh0123456789._-", min_size=1, max_size=10),
           password=st.text("abcdefghXYZ0123456789!$%^*()_-", min_size=0, max_size=12),
           host=st.sampled_from(["db", "db.example.com", "10.0.0.5", "[::1]"]),
           port=st.sampled_from(["", ":3306"]), scheme=st.sampled_from(["", "http://", "https://", "mysql://", "s3://"]))
    def test_any_user_before_the_host_is_found(self, user: str, password: str, host: str, port: str, scheme: str) -> None:
        secret = f":{password}" if password else ""
        assert credentials_in_url(f"{scheme}{user}{secret}@{host}{port}/path")

    @pytest.mark.parametrize("value", ["db.example.com", "db:3306", "https://es:9200/path@v1", "s3://bucket/a@b",
                                       "https://host/?q=a@b", "[::1]:9200"])
    def test_hosts_and_urls_without_a_user_are_accepted(self, value: str) -> None:
        assert not credentials_in_url(value)

    def test_a_value_under_an_ordinary_key_needs_a_scheme_to_count(self) -> None:
        assert not credentials_in_url("owner@example.com", host_like=False)
        assert not credentials_in_url("see https://jdoe@wiki.example.com/page", host_like=False)
        assert credentials_in_url("https://u:p@host", host_like=False)
