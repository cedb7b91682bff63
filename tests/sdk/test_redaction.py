"""Redaction masks whole secret values, in their encoded forms, and never pieces of other words."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from drivetrain import redaction
from drivetrain.redaction import redact, register_secret
from drivetrain.secrets import Credentials, resolve_credentials


@pytest.fixture(autouse=True)
def isolated() -> Iterator[None]:
    """Each test starts from the secrets known before it and leaves them as they were.

    Short secrets such as 'snow' would otherwise stay registered for the rest of the session.
    """
    with redaction._lock:
        saved = set(redaction._known)
    yield
    with redaction._lock:
        redaction._known.clear()
        redaction._known.update(saved)
        redaction._pattern = None


class TestWholeValues:
    def test_a_short_password_is_not_masked_inside_other_words(self) -> None:
        register_secret("snow")
        text = "connecting to snowflake account snowy_co, stage snow_stage, file /data/snow.duckdb, host db-snow-1"
        assert redact(text) == text

    def test_a_short_password_is_masked_where_it_stands_whole(self) -> None:
        register_secret("snow")
        assert redact("mysql://etl:snow@db:3306/lims") == "mysql://etl:<SECRET>@db:3306/lims"
        assert redact("password=snow; host=db") == "password=<SECRET>; host=db"
        assert redact('{"password": "snow"}') == '{"password": "<SECRET>"}'
        assert redact("login failed for snow.") == "login failed for <SECRET>."
        assert redact("snow") == "<SECRET>"

    def test_paths_that_merely_contain_the_password_are_left_alone(self) -> None:
        register_secret("data")
        path = "/tmp/pytest-of-root/test_data0/datasets/raw_data/database.duckdb"
        assert redact(f"cannot open {path}") == f"cannot open {path}"

    def test_a_folder_named_like_a_short_password_stays_readable(self) -> None:
        register_secret("snow")
        for text in ("/var/lib/snow/stage", "C:\\data\\snow\\x.csv", "s3://bucket/snow/2025/part.parquet"):
            assert redact(f"cannot open {text}") == f"cannot open {text}"
        assert redact("password=snow/") == "password=<SECRET>/"

    def test_a_long_token_in_a_url_path_is_masked(self) -> None:
        register_secret("xoxb-4411-tokenvalue")
        assert redact("POST https://hooks.example.com/services/xoxb-4411-tokenvalue") == "POST https://hooks.example.com/services/<SECRET>"

    def test_a_secret_that_starts_and_ends_with_punctuation_is_masked_anywhere(self) -> None:
        register_secret("!pa$$!")
        assert redact("token=x!pa$$!y") == "token=x<SECRET>y"

    def test_values_under_four_characters_are_not_remembered(self) -> None:
        register_secret("abc")
        assert redact("abc abcd") == "abc abcd"


class TestEncodedForms:
    PASSWORD = 'p@ss w/rd"\\é-Zx91'

    def test_the_url_encoded_password_is_masked(self) -> None:
        register_secret(self.PASSWORD)
        lower_hex = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(self.PASSWORD, safe=""))
        for encoded in (quote(self.PASSWORD, safe=""), quote(self.PASSWORD), quote_plus(self.PASSWORD), lower_hex):
            assert redact(f"dsn=mysql://etl:{encoded}@db/lims") == "dsn=mysql://etl:<SECRET>@db/lims"

    def test_the_json_escaped_password_is_masked(self) -> None:
        register_secret(self.PASSWORD)
        for dumped in (json.dumps({"password": self.PASSWORD}), json.dumps({"password": self.PASSWORD}, ensure_ascii=False)):
            assert redact(dumped) == '{"password": "<SECRET>"}'

    def test_the_repr_of_the_password_is_masked(self) -> None:
        register_secret(self.PASSWORD)
        assert redact(f"connect(password={self.PASSWORD!r})") == "connect(password='<SECRET>')"

    def test_the_base64_password_is_masked(self) -> None:
        register_secret("s3cret-token-value")
        encoded = base64.b64encode(b"s3cret-token-value").decode()
        assert redact(f"x-api-key: {encoded}") == "x-api-key: <SECRET>"

    def test_a_basic_auth_header_of_resolved_credentials_is_masked(self) -> None:
        resolve_credentials("basic_ref", environ={"BASIC_REF_USER": "svc", "BASIC_REF_PASSWORD": "snow"})
        header = "Basic " + base64.b64encode(b"svc:snow").decode()
        assert redact(f"send: Authorization: {header}") == "send: Authorization: Basic <SECRET>"

    def test_a_basic_auth_header_is_masked_in_logged_http_traffic(self, caplog: pytest.LogCaptureFixture) -> None:
        from drivetrain.secrets import install_redaction

        creds = Credentials("traffic", {"username": "reader", "password": "hunter22"})
        token = base64.b64encode(f"reader:{creds.reveal('password')}".encode()).decode()
        logger = logging.getLogger("drivetrain.test.http")
        with caplog.at_level(logging.DEBUG, logger="drivetrain.test.http"):
            install_redaction(logging.getLogger())
            caplog.handler.addFilter(install_redaction(logger))
            logger.debug("header: Authorization: Basic %s", token)
        assert token not in caplog.text and "Basic <SECRET>" in caplog.text


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=8)
secrets = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=4, max_size=12)
separators = st.sampled_from([" ", ":", "@", "=", "'", '"', ",", ";", "(", ")", "\n", "&", "?"])


class TestProperties:
    @settings(max_examples=60, deadline=None)
    @given(secret=secrets, word=words)
    def test_a_secret_glued_to_a_word_is_never_masked(self, secret: str, word: str) -> None:
        register_secret(secret)
        for text in (secret + word, word + secret, f"{word}.{secret}", f"{secret}-{word}"):
            assert redact(text) == text

    @settings(max_examples=60, deadline=None)
    @given(secret=secrets, before=separators, after=separators, word=words)
    def test_a_secret_between_separators_never_survives(self, secret: str, before: str, after: str, word: str) -> None:
        assume(secret not in word)
        register_secret(secret)
        text = f"{word}{before}{secret}{after}{word}"
        assert redact(text) == f"{word}{before}<SECRET>{after}{word}"
