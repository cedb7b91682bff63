"""Fuzzing whole configs: whatever config.json holds, the outcome is a pipeline or a ConfigError.

tests/sdk/test_config.py fuzzes the core loader section by section. Here the whole path a run
takes before its first phase is fuzzed (load, then build every connector and the window grid,
as test_bad_config.build_everything does), including each connector's own option checks, and
the file's text itself is damaged. No input may end in a traceback of any other exception.
"""

from __future__ import annotations

import contextlib
import copy
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from drivetrain.errors import ConfigError
from tests.sdk.factory import BASE_CONFIG

from .test_bad_config import build_everything

SOURCE_SECTIONS = [
    {"type": "files", "path": "data/*.jsonl", "query_field": "reported_at"},
    {"type": "mysql", "host": "127.0.0.1", "database": "lab", "table": "t", "query_field": "ts", "credentials_ref": "fz"},
    {"type": "elasticsearch", "endpoint": "http://127.0.0.1:9", "index": "lab", "query_field": "ts"},
    {"type": "servicenow", "host": "127.0.0.1:9", "use_ssl": False, "table": "incident", "credentials_ref": "fz"},
    {"type": "memory", "query_field": "ts"},
]
WAREHOUSE_SECTIONS = [
    {"type": "duckdb", "path": "w.duckdb", "table": "t"},
    {"type": "snowflake", "account": "acct", "database": "DB", "schema": "PUBLIC", "table": "T", "credentials_ref": "fz"},
]
WORDS = ["", "0", "-1", "1h", "0m", "1.5s", "UTC", "Europe/Berlin", "x; DROP TABLE t", "a\"b", "\x00", "é", "s3://b/p",
         "2025-02-29", "merge", "duckdb", "files", "true", "null", "${HOME}", "../../etc/passwd", "9" * 30]

json_scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=16) | st.sampled_from(WORDS)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10) | st.sampled_from(WORDS), inner, max_size=3),
    max_leaves=10,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``node`` (dict keys and list indices)."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(paths(value, (*prefix, i)))
    return found


simple_values = (
    st.sampled_from(WORDS) | st.integers(min_value=-2, max_value=200) | st.booleans() | st.none()
    | st.sampled_from([0.5, 100.5, 1e308, -0.0, [], {}, ["test_id"], {"a": 1}]).map(copy.deepcopy)
)


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    """The factory's config with its connectors swapped, then one to three values changed.

    Half the changes land in a connector section, most new values are plausible ones, so many
    configs get past the core loader to the connectors' own checks.
    """
    data = copy.deepcopy(BASE_CONFIG)
    data["source_system"] = {**draw(st.sampled_from(SOURCE_SECTIONS)), "batch_size": 50}
    for role in ("stage_system", "target_system"):
        if draw(st.booleans()):
            data[role] = {**data[role], **draw(st.sampled_from(WAREHOUSE_SECTIONS)), "table": data[role]["table"]}
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        everywhere = paths(data)
        connectors = [p for p in everywhere if p[0] in ("source_system", "stage_system", "target_system")]
        path = draw(st.sampled_from(connectors if draw(st.booleans()) else everywhere))
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        value = draw(simple_values if draw(st.integers(0, 9)) < 7 else json_values)
        if action == "delete" and isinstance(parent, dict):
            parent.pop(path[-1], None)
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["table", "schema", "path", "port", "host", "batch_size", "query_field",
                                         "source_timezone", "columns", "fields", "index", "x"]))] = value
        else:
            parent[path[-1]] = value
    return data


def outcome(text: str | bytes) -> None:
    """Load ``text`` as a pipeline's config.json and build everything; a ConfigError must list its problems."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "data").mkdir()
        (folder / "data" / "records.jsonl").write_text('{"reported_at": "2025-11-15T00:00:00Z"}\n')
        target = folder / "config.json"
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text)
        try:
            build_everything(folder)
        except ConfigError as error:
            assert error.problems and all(line.strip() for line in error.problems)
            raise


def is_json(text: bytes) -> bool:
    try:
        json.loads(text.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        return False
    return True


FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def credentials() -> Iterator[None]:
    """Credentials for ``credentials_ref: fz``, so sections naming it get to their own checks."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FZ_USER", "fuzz")
        patch.setenv("FZ_PASSWORD", "fuzz-Pa55word")
        yield


class TestFuzzedConfigs:
    @FUZZ
    @given(configs())
    def test_any_mutated_config_builds_or_is_a_config_error(self, data: dict[str, Any]) -> None:
        with contextlib.suppress(ConfigError):  # either outcome is right; any other exception fails
            outcome(json.dumps(data))

    @FUZZ
    @given(st.data())
    def test_damaged_config_text_is_a_config_error(self, data: st.DataObject) -> None:
        text = json.dumps(BASE_CONFIG).encode()
        cut = data.draw(st.integers(min_value=0, max_value=len(text)))
        junk = data.draw(st.binary(max_size=8))
        keep = data.draw(st.integers(min_value=cut, max_value=len(text)))
        damaged = text[:cut] + junk + text[keep:]
        assume(not is_json(damaged))  # damage that still parses is a mutated config: the test above covers those
        with pytest.raises(ConfigError) as caught:
            outcome(damaged)
        assert "config.json" in str(caught.value)
