"""Airflow connections as the source of a pipeline's ``credentials_ref``."""

from __future__ import annotations

import json

import pytest

from drivetrain import ConfigError, Pipeline
from drivetrain.airflow import connection_credentials, install_connection_resolver
from drivetrain.airflow.credentials import connection_values
from drivetrain.secrets import Secret, redact, resolve_credentials
from tests.sdk.factory import DAY

from .conftest import run_dag

PASSWORD = "pw-9f3Kq!x7-never-logged"


def env_connection(monkeypatch, conn_id: str, **fields) -> None:
    """Define an Airflow connection the documented way: an AIRFLOW_CONN_<ID> JSON variable."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "generic", **fields}))


class TestConnectionValues:
    def test_plain_fields_become_user_password_host_port_and_database(self):
        values = connection_values(login="loader", password="pw", host="db.example", port=3306, schema="lab", extra={})
        assert values == {"user": "loader", "password": "pw", "host": "db.example", "port": "3306", "database": "lab"}

    def test_schema_field_is_the_schema_when_extras_name_the_database(self):
        values = connection_values(login=None, password=None, host=None, port=None, schema="RAW", extra={"database": "LAB"})
        assert values == {"database": "LAB", "schema": "RAW"}

    def test_extras_are_lower_cased_and_lose_their_provider_prefix(self):
        extra = {"Role": "LOADER", "extra__snowflake__account": "xy12345", "warehouse": "WH"}
        values = connection_values(login=None, password=None, host=None, port=None, schema=None, extra=extra)
        assert values == {"role": "LOADER", "account": "xy12345", "warehouse": "WH"}

    def test_non_text_extras_become_text(self):
        extra = {"verify": False, "timeout": 30, "options": {"a": 1}}
        values = connection_values(login=None, password=None, host=None, port=None, schema=None, extra=extra)
        assert values == {"verify": "false", "timeout": "30", "options": '{"a": 1}'}

    def test_empty_fields_are_left_out(self):
        assert connection_values(login="", password=None, host=None, port=None, schema="", extra={"token": ""}) == {}

    def test_connection_fields_win_over_extras_of_the_same_name(self):
        values = connection_values(login="real", password=None, host=None, port=None, schema=None, extra={"user": "other"})
        assert values["user"] == "real"


class TestResolver:
    def test_unknown_connection_gives_none(self, airflow_db):
        assert connection_credentials("af_no_such_connection") is None

    def test_connection_from_airflow_resolves_a_credentials_ref(self, airflow_db, monkeypatch):
        env_connection(monkeypatch, "af_env_mysql", login="loader", password=PASSWORD, host="db.example", port=3306, schema="lab")
        install_connection_resolver()
        creds = resolve_credentials("af_env_mysql")
        assert creds["user"] == "loader" and creds["database"] == "lab" and creds["port"] == "3306"
        assert isinstance(creds["password"], Secret) and creds.reveal("password") == PASSWORD

    def test_resolved_password_is_masked_in_repr_and_redacted_from_text(self, airflow_db, monkeypatch):
        env_connection(monkeypatch, "af_env_masked", login="loader", password=PASSWORD)
        install_connection_resolver()
        creds = resolve_credentials("af_env_masked")
        assert PASSWORD not in repr(creds)
        assert redact(f"login failed for {PASSWORD}") == "login failed for <SECRET>"

    def test_ref_without_a_connection_falls_back_to_environment_variables(self, airflow_db, monkeypatch):
        monkeypatch.setenv("AF_ENV_ONLY_USER", "from_env")
        install_connection_resolver()
        assert resolve_credentials("af_env_only")["user"] == "from_env"

    def test_airflow_is_not_consulted_until_the_resolver_is_installed(self, airflow_db, monkeypatch):
        env_connection(monkeypatch, "af_env_absent", login="loader")
        with pytest.raises(ConfigError, match="no credentials found for 'af_env_absent'"):
            resolve_credentials("af_env_absent")


PROBE_PIPELINE = """
    from drivetrain import CountResult, Pipeline, SourceCount


    class CredentialProbe(SourceCount):
        def run(self, ctx):
            result = super().run(ctx)
            creds = ctx.pipeline.source().credentials
            seen = {"user": creds["user"], "database": creds["database"], "keys": sorted(creds)}
            return CountResult(count=result.count, details={"credentials_seen": seen})


    class ProbeLab(Pipeline):
        phase_classes = {"source_count": CredentialProbe}
"""


class TestCredentialsInsideATask:
    """The task reads the connection from Airflow's metadata database, as on a real worker."""

    @pytest.fixture
    def stored_connection(self, airflow_db):
        from airflow.models import Connection
        from airflow.utils.session import create_session

        with create_session() as session:
            session.add(Connection(conn_id="af_lab_files", conn_type="generic", login="reader", password=PASSWORD,
                                   schema="lab", extra=json.dumps({"role": "READER"})))
        yield "af_lab_files"
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == "af_lab_files").delete()

    def test_pipeline_with_an_airflow_connection_ref_runs_and_never_shows_the_password(self, deploy, stored_connection, capfd, caplog):
        deployed = deploy("af_creds", pipeline_py=PROBE_PIPELINE, source_system__credentials_ref=stored_connection)

        result = run_dag(deployed, DAY)

        assert result.state == "success", result.tasks
        with Pipeline.load(deployed.folder) as pipeline:
            (record,) = pipeline.drive_store().history("af_creds")
        seen = record.phases["source_count"].phase_specific_details["credentials_seen"]
        assert seen == {"user": "reader", "database": "lab", "keys": ["database", "password", "role", "user"]}
        out, err = capfd.readouterr()
        assert PASSWORD not in out + err + caplog.text
        assert PASSWORD not in json.dumps(record.to_row(), default=str)
