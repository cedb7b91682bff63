"""Options, sessions, QUERY_TAG and error mapping of the Snowflake connector."""

from __future__ import annotations

import json
import sys
import threading

import pytest

from drivetrain.config import SystemConfig
from drivetrain.connectors.snowflake import SnowflakeWarehouse, tags
from drivetrain.connectors.snowflake.config import parse_options
from drivetrain.connectors.snowflake.connection import snowflake_connector
from drivetrain.connectors.snowflake.errors import snowflake_errors
from drivetrain.errors import ConfigError, MissingExtraError, PermanentError, TransientError
from drivetrain.secrets import Credentials

from .conftest import ENV, make_warehouse, section


def options(server, database, credentials=None, **extra):
    config = SystemConfig.from_section("stage_system", {**section(server, database), **extra})
    return parse_options(config, credentials if credentials is not None else Credentials("sf_test", {"user": "u", "password": "pw-secret-1"}))


class TestOptions:
    def test_defaults_apply(self, fakesnow_server, database):
        opts = options(fakesnow_server, database)
        assert (opts.schema, opts.client_session_keep_alive, opts.lock_timeout_seconds) == ("PUBLIC", True, 300)
        assert opts.user == "u"

    def test_account_and_database_may_come_from_the_credentials(self, fakesnow_server):
        config = SystemConfig.from_section("stage_system", {"type": "snowflake", "credentials_ref": "sf_test"})
        opts = parse_options(config, Credentials("sf_test", {"account": "acme-x", "database": "RAW", "user": "u", "password": "pw-secret-1"}))
        assert (opts.account, opts.database) == ("acme-x", "RAW")

    def test_a_missing_account_names_the_key(self):
        config = SystemConfig.from_section("stage_system", {"type": "snowflake", "database": "RAW", "credentials_ref": "sf_test"})
        with pytest.raises(ConfigError, match=r"stage_system\.account: required"):
            parse_options(config, Credentials("sf_test", {"user": "u", "password": "p-secret"}))

    def test_missing_secrets_say_which_variable_to_set(self, fakesnow_server, database):
        with pytest.raises(ConfigError, match="SF_TEST_PASSWORD"):
            options(fakesnow_server, database, credentials=Credentials("sf_test", {"user": "u"}))

    def test_unknown_options_are_refused_by_the_schema(self, fakesnow_server, database):
        config = SystemConfig.from_section("stage_system", {**section(fakesnow_server, database), "wharehouse": "X"})
        with pytest.raises(ConfigError, match="wharehouse"):
            config.validate_against(SnowflakeWarehouse.options_schema)

    def test_secrets_never_show_in_repr_or_descriptions(self, fakesnow_server, database, sf_env):
        wh = make_warehouse(fakesnow_server, database, table="t")
        try:
            text = " ".join([repr(wh.options), wh.describe(), repr(wh), str(wh.credentials)])
            assert ENV["SF_TEST_PASSWORD"] not in text and "<SECRET>" in repr(wh.options)
        finally:
            wh.close()

    def test_an_inline_private_key_logs_in_with_a_jwt(self, fakesnow_server, database):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(b"phrase-1234")).decode()
        opts = options(fakesnow_server, database, Credentials("sf_test", {"user": "u", "private_key": pem, "private_key_passphrase": "phrase-1234"}))
        kwargs = opts.connect_kwargs({})
        assert kwargs["authenticator"] == "SNOWFLAKE_JWT" and isinstance(kwargs["private_key"], bytes) and "password" not in kwargs
        assert "phrase-1234" not in repr(opts) and "PRIVATE KEY" not in repr(opts)
        import snowflake.connector

        with snowflake.connector.connect(**kwargs) as conn:  # the driver signs a JWT; fakesnow accepts any login
            assert conn.cursor().execute("SELECT 1").fetchone() == (1,)

    def test_a_key_file_is_passed_to_the_driver_with_its_passphrase(self, fakesnow_server, database, tmp_path):
        opts = options(fakesnow_server, database, Credentials("sf_test", {"user": "u", "private_key_path": str(tmp_path / "k.p8"),
                                                                          "private_key_passphrase": "phrase-1234"}))
        kwargs = opts.connect_kwargs({})
        assert kwargs["private_key_file"] == str(tmp_path / "k.p8") and kwargs["private_key_file_pwd"] == "phrase-1234"

    def test_an_unreadable_private_key_is_permanent_and_does_not_echo_it(self, fakesnow_server, database):
        opts = options(fakesnow_server, database, Credentials("sf_test", {"user": "u", "private_key": "not-a-key-at-all"}))
        with pytest.raises(PermanentError, match="cannot be read") as info:
            opts.connect_kwargs({})
        assert "not-a-key-at-all" not in str(info.value)


class TestSessions:
    def test_login_sets_keep_alive_lock_timeout_utc_and_a_base_query_tag(self, warehouse, fakesnow_server):
        session = warehouse.pool.session()
        sent = fakesnow_server.logins[int(session.session_id)]
        assert sent["CLIENT_SESSION_KEEP_ALIVE"] is True
        assert (sent["LOCK_TIMEOUT"], sent["TIMEZONE"]) == (300, "UTC")
        assert json.loads(sent["QUERY_TAG"]) == {"app": "drivetrain"}

    def test_each_thread_gets_its_own_session_and_ended_threads_hand_theirs_on(self, warehouse):
        main = warehouse.pool.session()
        seen = []
        for _ in range(2):
            t = threading.Thread(target=lambda: seen.append(warehouse.pool.session()))
            t.start()
            t.join()
        assert main is warehouse.pool.session()
        assert seen[0] is not main and seen[1] is seen[0]

    def test_a_failed_transaction_is_rolled_back(self, warehouse, fakesnow_server, database):
        session = warehouse.pool.session()
        session.execute('CREATE TABLE "X" ("a" INTEGER)', what="t")
        with pytest.raises(ZeroDivisionError), session.transaction("t"):
            session.execute('INSERT INTO "X" ("a") SELECT 1', what="t")
            raise ZeroDivisionError
        assert session.rows('SELECT COUNT(*) FROM "X"', what="t") == [(0,)]

    def test_a_lost_session_is_transient_and_the_next_statement_logs_in_again(self, warehouse, fakesnow_server):
        session = warehouse.pool.session()
        assert fakesnow_server.abort_session(int(session.session_id))
        with pytest.raises(TransientError):
            session.rows("SELECT 1", what="probe")
        fresh = warehouse.pool.session()
        assert fresh is not session and fresh.rows("SELECT 1", what="probe") == [(1,)]

    def test_without_the_driver_the_error_names_the_extra(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "snowflake.connector", None)
        with pytest.raises(MissingExtraError, match=r"drivetrain\[snowflake\]"):
            snowflake_connector()


class TestQueryTag:
    def test_statements_carry_pipeline_run_and_phase_of_the_context(self, warehouse, fakesnow_server, database):
        tags.set_context(pipeline="lab", run_id="lab_run7", phase="audit")
        try:
            warehouse.pool.session().rows("SELECT 42", what="probe")
        finally:
            tags.set_context()
        sent = [s for s in fakesnow_server.statements_for(database) if s.sql == "SELECT 42"]
        assert json.loads(sent[-1].query_tag) == {"app": "drivetrain", "pipeline": "lab", "run_id": "lab_run7", "phase": "audit"}

    def test_hints_fill_in_what_the_context_lacks(self):
        tags.set_context()
        assert json.loads(tags.query_tag("", {"pipeline": "lab", "phase": "lease", "run_id": None})) == {
            "app": "drivetrain", "pipeline": "lab", "phase": "lease"}

    def test_a_long_tag_is_cut_to_snowflakes_limit(self):
        tags.set_context(pipeline="p" * 5000)
        try:
            assert len(tags.query_tag("x")) <= tags.MAX_TAG_LENGTH
        finally:
            tags.set_context()


class TestErrors:
    @pytest.mark.parametrize(("errno", "transient"), [(625, True), (630, True), (390114, True), (2003, False), (3001, False), (1003, False)])
    def test_error_numbers_map_to_transient_or_permanent(self, errno, transient):
        import snowflake.connector.errors as sf

        with pytest.raises(TransientError if transient else PermanentError, match=f"{errno:06d}"), snowflake_errors("probe"):
            raise sf.ProgrammingError(msg="from the server", errno=errno, sqlstate="57014" if transient else "42S02")

    def test_a_missing_object_on_the_server_is_permanent(self, warehouse):
        with pytest.raises(PermanentError, match="002003.*does not exist"):
            warehouse.pool.session().rows('SELECT * FROM "NOPE"', what="probe")

    def test_bad_sql_is_permanent(self, warehouse):
        with pytest.raises(PermanentError):
            warehouse.pool.session().rows("SELEKT 1", what="probe")

    def test_an_unreachable_server_is_transient(self, fakesnow_server, database, sf_env):
        from tests.servers.fakesnow_server import _free_port

        wh = make_warehouse(fakesnow_server, database, table="t", port=_free_port(), login_timeout=2)
        try:
            with pytest.raises(TransientError, match="log in"):
                wh.pool.session()
        finally:
            wh.close()

    def test_secrets_are_blanked_out_of_messages(self, warehouse):
        import snowflake.connector.errors as sf

        with pytest.raises(PermanentError) as info, snowflake_errors("probe"):
            raise sf.ProgrammingError(msg=f"bad thing near {ENV['SF_TEST_PASSWORD']}", errno=1003)
        assert ENV["SF_TEST_PASSWORD"] not in str(info.value) and "<SECRET>" in str(info.value)
