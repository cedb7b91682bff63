"""Secrets: masking, credential resolution and log redaction."""

from __future__ import annotations

import io
import logging
import pickle
import uuid
from collections.abc import Iterator, Mapping

import pytest

from drivetrain.errors import ConfigError
from drivetrain.secrets import (
    Credentials,
    RedactingFilter,
    Secret,
    install_redaction,
    redact,
    register_resolver,
    register_secret,
    resolve_credentials,
    unregister_resolver,
)


def unique(label: str) -> str:
    """A value no other test has registered, so redaction assertions stay independent."""
    return f"{label}-{uuid.uuid4().hex[:12]}"


class TestSecret:
    def test_repr_and_str_are_masked(self) -> None:
        secret = Secret("p4ssw0rd-value")
        assert repr(secret) == "<SECRET>"
        assert str(secret) == "<SECRET>"
        assert f"{secret}" == "<SECRET>"

    def test_reveal_gives_the_value(self) -> None:
        assert Secret("p4ssw0rd-value").reveal() == "p4ssw0rd-value"

    def test_equality_is_by_value(self) -> None:
        assert Secret("same-value") == Secret("same-value")
        assert Secret("same-value") != Secret("other-value")
        assert len({Secret("same-value"), Secret("same-value")}) == 1

    def test_is_not_equal_to_the_plain_string(self) -> None:
        assert Secret("same-value") != "same-value"

    def test_masked_inside_containers(self) -> None:
        assert repr({"password": Secret("p4ssw0rd-value")}) == "{'password': <SECRET>}"

    def test_survives_pickling(self) -> None:
        assert pickle.loads(pickle.dumps(Secret("p4ssw0rd-value"))).reveal() == "p4ssw0rd-value"

    def test_wraps_only_strings(self) -> None:
        with pytest.raises(TypeError):
            Secret(1234)  # type: ignore[arg-type]


class TestCredentials:
    @pytest.fixture
    def creds(self) -> Credentials:
        return Credentials(
            "wh",
            {"USER": "loader", "Host": "db.local", "password": "pw-abcdef", "token": "tk-123456"},
        )

    def test_keys_are_lower_case(self, creds: Credentials) -> None:
        assert sorted(creds) == ["host", "password", "token", "user"]

    def test_plain_keys_stay_strings(self, creds: Credentials) -> None:
        assert creds["user"] == "loader" and creds["host"] == "db.local"

    def test_other_keys_become_secrets(self, creds: Credentials) -> None:
        assert isinstance(creds["password"], Secret)
        assert isinstance(creds["token"], Secret)

    def test_reveal_gives_raw_values(self, creds: Credentials) -> None:
        assert creds.reveal("password") == "pw-abcdef"
        assert creds.reveal("user") == "loader"
        assert creds.reveal("missing") is None

    def test_lookup_ignores_case(self, creds: Credentials) -> None:
        assert creds.reveal("PASSWORD") == "pw-abcdef"

    def test_repr_masks_secrets(self, creds: Credentials) -> None:
        text = repr(creds)
        assert "pw-abcdef" not in text and "tk-123456" not in text
        assert "'password': <SECRET>" in text and "'user': 'loader'" in text

    def test_is_read_only(self, creds: Credentials) -> None:
        with pytest.raises(TypeError):
            creds["user"] = "x"  # type: ignore[index]


class TestResolveCredentials:
    @pytest.fixture
    def resolvers(self) -> Iterator[list[object]]:
        added: list[object] = []
        yield added
        for resolver in added:
            unregister_resolver(resolver)  # type: ignore[arg-type]

    def test_reads_variables_named_after_the_ref(self) -> None:
        environ = {"MYSQL_PROD_USER": "etl", "MYSQL_PROD_PASSWORD": "pw-mysql-1", "OTHER": "x"}
        creds = resolve_credentials("mysql_prod", environ=environ)
        assert dict(creds.items()) == {"user": "etl", "password": Secret("pw-mysql-1")}

    def test_non_alphanumerics_in_the_ref_become_underscores(self) -> None:
        creds = resolve_credentials("snow-flake.svc", environ={"SNOW_FLAKE_SVC_ACCOUNT": "acme"})
        assert creds["account"] == "acme"

    def test_reads_os_environ_by_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DT_TEST_REF_USER", "someone")
        assert resolve_credentials("dt_test_ref")["user"] == "someone"

    def test_missing_credentials_name_the_path_and_variables(self) -> None:
        with pytest.raises(ConfigError) as caught:
            resolve_credentials(
                "mysql_prod",
                environ={},
                json_path="target_system.credentials_ref",
                source_file="p/config.json",
            )
        assert caught.value.problems == [
            "p/config.json: target_system.credentials_ref: no credentials found for "
            "'mysql_prod'; set environment variables named MYSQL_PROD_<KEY>, such as "
            "MYSQL_PROD_USER and MYSQL_PROD_PASSWORD"
        ]

    def test_a_ref_without_letters_or_digits_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="is not a usable credentials_ref"):
            resolve_credentials("--", environ={"___USER": "x"})

    def test_registered_resolvers_come_before_the_environment(
        self, resolvers: list[object]
    ) -> None:
        def vault(ref: str) -> Mapping[str, str] | None:
            return {"user": "from-vault", "password": "pw-vault-1"} if ref == "wh" else None

        resolvers.append(register_resolver(vault))
        creds = resolve_credentials("wh", environ={"WH_USER": "from-env"})
        assert creds["user"] == "from-vault"

    def test_resolvers_are_tried_in_registration_order(self, resolvers: list[object]) -> None:
        def first(ref: str) -> Mapping[str, str] | None:
            return {"user": "first"}

        def second(ref: str) -> Mapping[str, str] | None:
            return {"user": "second"}

        resolvers.extend([register_resolver(first), register_resolver(second)])
        assert resolve_credentials("wh", environ={})["user"] == "first"

    def test_a_resolver_returning_none_falls_through(self, resolvers: list[object]) -> None:
        def unknown(ref: str) -> Mapping[str, str] | None:
            return None

        resolvers.append(register_resolver(unknown))
        assert resolve_credentials("wh", environ={"WH_USER": "from-env"})["user"] == "from-env"

    def test_unregistered_resolvers_are_no_longer_asked(self) -> None:
        def vault(ref: str) -> Mapping[str, str] | None:
            return {"user": "from-vault"}

        register_resolver(vault)
        unregister_resolver(vault)
        assert resolve_credentials("wh", environ={"WH_USER": "from-env"})["user"] == "from-env"


class TestRedact:
    def test_resolved_secrets_are_redacted(self) -> None:
        password = unique("pw")
        resolve_credentials("redact_a", environ={"REDACT_A_PASSWORD": password})
        assert redact(f"login failed with {password}!") == "login failed with <SECRET>!"

    def test_plain_credential_values_are_not_redacted(self) -> None:
        user = unique("user")
        resolve_credentials("redact_b", environ={"REDACT_B_USER": user})
        assert redact(f"user {user}") == f"user {user}"

    def test_registered_secrets_are_redacted(self) -> None:
        token = unique("token")
        register_secret(token)
        assert redact(f"Bearer {token}") == "Bearer <SECRET>"

    def test_short_values_are_not_remembered(self) -> None:
        register_secret("abc")
        assert redact("abc abcd") == "abc abcd"

    def test_longer_secret_wins_over_one_it_contains(self) -> None:
        inner = unique("inner")
        register_secret(inner)
        register_secret(f"{inner}-outer")
        assert redact(f"[{inner}-outer]") == "[<SECRET>]"


class TestRedactingFilter:
    @pytest.fixture
    def logged(self) -> Iterator[tuple[logging.Logger, io.StringIO]]:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger = logging.getLogger(f"drivetrain.test.{uuid.uuid4().hex}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        yield logger, stream
        logger.removeHandler(handler)

    def test_redacts_message_arguments(self, logged: tuple[logging.Logger, io.StringIO]) -> None:
        logger, stream = logged
        secret = unique("pw")
        register_secret(secret)
        install_redaction(logger)
        logger.info("connecting with %s to %s", secret, "db.local")
        assert stream.getvalue() == "INFO connecting with <SECRET> to db.local\n"

    def test_redacts_the_message_itself(self, logged: tuple[logging.Logger, io.StringIO]) -> None:
        logger, stream = logged
        secret = unique("pw")
        register_secret(secret)
        install_redaction(logger)
        logger.warning(f"dsn=mysql://etl:{secret}@db")
        assert secret not in stream.getvalue() and "<SECRET>@db" in stream.getvalue()

    def test_redacts_tracebacks(self, logged: tuple[logging.Logger, io.StringIO]) -> None:
        logger, stream = logged
        secret = unique("pw")
        register_secret(secret)
        install_redaction(logger)
        try:
            raise RuntimeError(f"auth failed for {secret}")
        except RuntimeError:
            logger.exception("connect failed")
        assert secret not in stream.getvalue()
        assert "RuntimeError: auth failed for <SECRET>" in stream.getvalue()

    def test_covers_records_from_child_loggers(
        self, logged: tuple[logging.Logger, io.StringIO]
    ) -> None:
        logger, stream = logged
        secret = unique("pw")
        register_secret(secret)
        install_redaction(logger)
        logger.getChild("mysql").info("password is %s", secret)
        assert stream.getvalue() == "INFO password is <SECRET>\n"

    def test_installing_twice_adds_one_filter(
        self, logged: tuple[logging.Logger, io.StringIO]
    ) -> None:
        logger, _ = logged
        first = install_redaction(logger)
        second = install_redaction(logger)
        filters = [f for f in logger.handlers[0].filters if isinstance(f, RedactingFilter)]
        assert filters == [first] and second is first


class TestPluginResolver:
    def test_the_resolve_credentials_hook_is_asked_before_the_environment(self) -> None:
        from drivetrain import hookimpl
        from drivetrain.plugins import get_plugin_manager
        from drivetrain.secrets import resolve_credentials

        class Vault:
            @hookimpl
            def drivetrain_resolve_credentials(self, ref):
                return {"user": "svc", "password": "from-vault-123"} if ref == "vaulted" else None

        get_plugin_manager().register(Vault())
        creds = resolve_credentials("vaulted", environ={"VAULTED_USER": "env-user"})
        assert creds.reveal("user") == "svc" and creds.reveal("password") == "from-vault-123"
        assert resolve_credentials("other", environ={"OTHER_USER": "u"}).reveal("user") == "u"
