"""A guard against the next misuse bug: every command driven with generated arguments, configs and
drive rows must end with a message, never a traceback.

For each invocation (in-process, with click's CliRunner, so hundreds run in CI within a
couple of minutes) the properties are:

- no exception escapes the command (click's own exits aside) and no traceback is printed;
- the exit status is one of the documented ones (0, 1, 2, 3), and the last-resort
  "internal error" guard never fires: each failure has its own clear message;
- with ``--json``, stdout is one valid JSON document (the result, or ``{"error": {...}}``).

Generated text never holds NUL or lone surrogates: a shell cannot pass those in argv.
Ranges (``--from``/``--to``) are drawn so that any range that is accepted holds few windows,
and configs keep windows of an hour or more: the cost of a huge backfill is not the subject.
The corpus (``@example``) holds every misuse reported so far.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from drivetrain.cli import cli
from drivetrain.phase_names import PHASE_NAMES, VARIANT_COLUMN
from tests.sdk.factory import drive_execute

from .conftest import SAMPLE_DAY

EXIT_CODES = {0, 1, 2, 3}
JSON_COMMANDS = {"run", "status", "history", "show", "report"}
RUN_ID = "shop_20250101T000000Z_run1"

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
TIMESTAMPS = st.sampled_from([
    f"{SAMPLE_DAY}T00:00:00Z", f"{SAMPLE_DAY}T01:00:00Z", f"{SAMPLE_DAY}T00:30:00Z", SAMPLE_DAY, f"{SAMPLE_DAY}T03:00",
    "2025-01-01T05:00:00+05:00", "0001-01-01T00:00:00Z", "9999-12-31T23:00:00Z", "9999-12-31T23:59:59-01:00",
    "1899-12-31T23:00:00Z", "3000-01-01T00:00:00Z", "2999-12-31T23:00:00Z", "1900-01-01T00:00:00Z", "nan", "",
    "2025-02-30", "2025-01-01T25:00", "now", "-1",
]) | TEXT
#: --from/--to: near the sample day, or outside the accepted range (so an accepted range is short).
RANGE_ENDS = st.sampled_from([SAMPLE_DAY, f"{SAMPLE_DAY}T02:00", f"{SAMPLE_DAY}T00:30", "2024-12-31T22:00:00Z",
                              "0001-01-01", "9999-12-31", "1899-01-01", "x"])
NUMBERS = st.sampled_from(["0", "1", "-1", "5", "nan", "inf", "-inf", "1e308", "99999999999999999999", "0.5", "abc",
                           "1000000", "1000001", ""]) | st.integers().map(str) | st.floats().map(str)
#: Folders: absolute ones only where nothing can be written (tests may run as root); the rest in the workspace.
PATHS = st.sampled_from(["shop", ".", "/proc", "/proc/self", "/etc/passwd", "/etc/passwd/x", "afile", "afile/sub",
                         "/missing/dir", "made", "made/deeper", ""]) | TEXT.filter(lambda t: not t.startswith(("/", "~")))
PIPELINES = st.sampled_from(["shop", "./shop", "shop/config.json", "nope", "demo", "genetic_tests", "afile", "", ".",
                             "a" * 300]) | TEXT

OPTIONS: dict[str, dict[str, Any]] = {
    "run": {"--window-start": TIMESTAMPS, "--window-end": TIMESTAMPS, "--from": RANGE_ENDS, "--to": RANGE_ENDS,
            "--only-gaps": None, "--dry-run": None, "--json": None},
    "status": {"--dir": PATHS, "--json": None},
    "history": {"-n": NUMBERS, "--status": st.sampled_from(["success", "FAILED", "running", "bogus", ""]), "--json": None},
    "show": {"-p": PIPELINES, "--dir": PATHS, "--json": None},
    "report": {"--days": NUMBERS, "--json": None, "--html": PATHS.map(lambda p: f"{p}/r.html" if p else p),  # never at /
               "--dir": PATHS},
    "new": {"--dir": PATHS.filter(lambda p: p != "/missing/dir"), "--source": st.sampled_from(["files", "mysql", "bogus"])},
    "validate": {},
    # demo is given only folders it must refuse: a real demo loads a day of data (see test_demo.py)
    "demo": {"--dir": st.sampled_from(["/etc/passwd", "afile", "afile/sub", "/etc/passwd/x", "shop/config.json"])},
}
POSITIONAL: dict[str, Any] = {
    "run": PIPELINES, "status": st.none() | PIPELINES, "history": PIPELINES,
    "show": st.sampled_from([RUN_ID, "nope", "a_b_c", "shop_x_run1", "", "a" * 300 + "_x_y"]) | TEXT,
    "report": st.lists(PIPELINES, max_size=2), "new": st.sampled_from(["x", "X", "made_one", "1x", "", "a" * 70]) | TEXT,
    "validate": PIPELINES,
    "demo": st.none(),
}
ROOT = st.lists(st.sampled_from(["-v", "-q", "--log-format=json", "-qq"]), max_size=2, unique=True)


@st.composite
def argv(draw: st.DrawFn) -> list[str]:
    """A command line: root options, a command, its positional argument(s) and some options."""
    command = draw(st.sampled_from(sorted(OPTIONS)))
    args = [*draw(ROOT), command]
    positional = draw(POSITIONAL[command])
    args += positional if isinstance(positional, list) else [positional] if positional is not None else []
    names = draw(st.lists(st.sampled_from(sorted(OPTIONS[command])), max_size=4, unique=True)) if OPTIONS[command] else []
    if command == "demo":
        names = ["--dir"]
    if "--from" in names and "--to" not in names:
        names.append("--to")  # --to defaults to now: a backfill of every hour since the sample day
    for name in names:
        values = OPTIONS[command][name]
        args += [name] if values is None else [name, draw(values)]
    return args


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A working folder with the scaffolded ``shop`` (one window run) and a file ``afile``; HOME points
    into it, so nothing outside is read or written."""
    root = tmp_path_factory.mktemp("fuzz")
    saved_cwd, saved_home = Path.cwd(), os.environ.get("HOME")
    os.environ["HOME"] = str(root / "home")
    os.chdir(root)
    try:
        assert invoke(["new", "shop"]).exit_code == 0
        assert invoke(["run", "./shop", "--window-start", f"{SAMPLE_DAY}T00:00:00Z"]).exit_code == 0
        (root / "afile").write_text("a file, not a folder")
        yield root
    finally:
        os.chdir(saved_cwd)
        if saved_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = saved_home


def invoke(args: list[str]) -> Result:
    return CliRunner().invoke(cli, args, catch_exceptions=True)


def check(args: list[str]) -> Result:
    """Run ``drivetrain ARGS`` in-process and assert the properties of the module docstring."""
    result = invoke(args)
    shown = f"drivetrain {args!r} -> {result.exit_code}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"an exception escaped: {shown}") from result.exception
    assert result.exit_code in EXIT_CODES, shown
    assert "Traceback" not in result.stdout + result.stderr, shown
    assert "internal error" not in result.stderr, shown
    command = next((a for a in args if a in OPTIONS), None)
    if command in JSON_COMMANDS and "--json" in args and "--help" not in args:
        try:
            parsed = json.loads(result.stdout)
        except ValueError as exc:
            raise AssertionError(f"--json printed no valid JSON: {shown}") from exc
        failed_runs = command == "run" and result.exit_code == 1 and isinstance(parsed, list)  # the rows, FAILED
        if result.exit_code and not failed_runs:
            assert parsed["error"]["exit_code"] == result.exit_code, shown
            assert parsed["error"]["kind"] != "internal", shown
    return result


FAST = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))


class TestGeneratedCommandLines:
    @FAST
    @given(args=argv())
    @example(args=["new", "X", "--dir", "afile"])
    @example(args=["new", "x", "--dir", "afile"])
    @example(args=["new", "x", "--dir", "/proc"])
    @example(args=["report", "--days", "nan"])
    @example(args=["report", "--days", "inf"])
    @example(args=["report", "--days", "1e308"])
    @example(args=["report", "--days", "nan", "--json"])
    @example(args=["report", "--html", "/missing/dir/x.html"])
    @example(args=["report", "--html", "/missing/dir/x.html", "--json"])
    @example(args=["demo", "--dir", "/etc/passwd"])
    @example(args=["run", "./shop", "--window-start", "9999-12-31T23:00:00Z"])
    @example(args=["run", "./shop", "--window-start", "0001-01-01T00:00:00Z"])
    @example(args=["run", "./shop", "--window-start", "0001-01-01T00:00:00Z", "--json"])
    @example(args=["run", "./shop", "--window-start", "9999-12-31T23:59:59-01:00"])
    @example(args=["history", "./shop", "-n", "99999999999999999999"])
    @example(args=["history", "./shop", "-n", "99999999999999999999", "--json"])
    @example(args=["history", "nope", "--json"])
    @example(args=["show", "nope", "--json"])
    @example(args=["status", "nope", "--json"])
    @example(args=["status", "--json", "--bogus"])
    @example(args=["run", "./shop", "--dry-run", "--json"])
    def test_any_command_line_ends_with_a_message_not_a_traceback(self, workspace: Path, args: list[str]) -> None:
        check(args)

    @pytest.mark.slow
    @LONG
    @given(args=argv())
    def test_many_more_command_lines(self, workspace: Path, args: list[str]) -> None:
        check(args)


# -- generated configs --------------------------------------------------------------------------

#: Text in configs never starts an absolute path: a generated stage path must not create files outside.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT.filter(lambda t: not t.startswith(("/", "~"))),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
#: Config paths to change, and what to put there (windows stay an hour or longer; see the docstring).
CONFIG_CHANGES: dict[tuple[str, ...], Any] = {
    ("pipeline_metadata", "pipeline_name"): st.sampled_from(["shop", "other", "", "Bad Name", "x" * 300]) | JSON_VALUES,
    ("dag_schedule", "timezone"): st.sampled_from(["UTC", "Europe/Paris", "Mars/Olympus", ""]) | JSON_VALUES,
    ("dag_schedule", "start_date"): st.sampled_from([SAMPLE_DAY, "2024-12-31", "bogus", "2025-13-01"]) | JSON_VALUES,
    ("dag_schedule", "frequency"): st.sampled_from(["hourly", "daily", "@weekly", "bogus"]) | JSON_VALUES,
    ("query_window", "duration"): st.sampled_from(["1h", "2h", "1d", "0h", "-1h", "bogus", "1 h"]) | JSON_VALUES,
    ("source_system",): JSON_VALUES,
    ("source_system", "path"): st.sampled_from(["data/sample.jsonl", "/etc/passwd", "/proc", "missing.jsonl"]) | JSON_VALUES,
    ("source_system", "type"): st.sampled_from(["files", "mysql", "nope"]) | JSON_VALUES,
    ("stage_system", "path"): st.sampled_from(["warehouse.duckdb", "/etc/passwd", "/proc/x.duckdb", "afile/x.duckdb",
                                               "data"]) | JSON_VALUES,
    ("stage_system", "table"): st.sampled_from(["stg_shop", "bad name", "", "x;drop"]) | JSON_VALUES,
    ("target_system", "dedup_keys"): JSON_VALUES,
    ("phases",): JSON_VALUES,
    ("phases", "stage_cleaning", "delete_after_days"): NUMBERS.map(lambda n: float(n) if _is_number(n) else n),
    ("retry",): JSON_VALUES,
    ("retry", "max_retries"): JSON_VALUES,
    ("drive_table",): JSON_VALUES,
    ("unknown_key",): JSON_VALUES,
}
CONFIG_COMMANDS = st.sampled_from([
    ["validate", "./shop"], ["status", "./shop", "--json"], ["history", "./shop", "--json"], ["run", "./shop", "--dry-run"],
    ["run", "./shop", "--window-start", f"{SAMPLE_DAY}T01:00:00Z", "--json"], ["report", "./shop", "--json"],
    ["show", RUN_ID, "--json"],
])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def set_path(config: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node: Any = config
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


@pytest.fixture
def copy_of_shop(workspace: Path) -> Iterator[Path]:
    """A fresh folder per example is made in the test (hypothesis runs many examples per call)."""
    yield workspace


def fresh_copy(workspace: Path, name: str) -> Path:
    folder = workspace / name
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(workspace / "shop", folder, ignore=shutil.ignore_patterns("*.locks"))
    return folder


class TestGeneratedConfigs:
    @FAST
    @given(changes=st.lists(st.sampled_from(sorted(CONFIG_CHANGES)).flatmap(
        lambda path: CONFIG_CHANGES[path].map(lambda value: (path, value))), min_size=1, max_size=3),
        command=CONFIG_COMMANDS)
    @example(changes=[(("stage_system", "path"), "/etc/passwd")], command=["status", "./shop", "--json"])
    @example(changes=[(("dag_schedule", "timezone"), "Mars/Olympus")], command=["validate", "./shop"])
    def test_any_config_ends_with_a_message_not_a_traceback(self, workspace: Path, changes: list[Any],
                                                             command: list[str]) -> None:
        folder = fresh_copy(workspace, "shop_cfg")
        config = json.loads((folder / "config.json").read_text())
        for path, value in changes:
            set_path(config, path, value)
        (folder / "config.json").write_text(json.dumps(config))
        check([command[0], "shop_cfg", *command[2:]] if command[1] == "shop" else [*command, "-p", "shop_cfg"])


# -- generated drive rows -----------------------------------------------------------------------

DAMAGEABLE = [*VARIANT_COLUMN.values(), "config_snapshot"]
ROW_COMMANDS = st.sampled_from([
    ["history", "./shop_rows", "--json"], ["history", "./shop_rows"], ["status", "./shop_rows", "--json"],
    ["show", RUN_ID, "-p", "./shop_rows", "--json"], ["show", RUN_ID, "-p", "./shop_rows"], ["report", "./shop_rows", "--json"],
    ["run", "./shop_rows", "--json"], ["run", "./shop_rows", "--window-start", f"{SAMPLE_DAY}T00:00:00Z"],
])
PHASE_OBJECTS = JSON_VALUES | st.fixed_dictionaries({}, optional={
    key: JSON_VALUES | st.sampled_from(["COMPLETED", "FAILED", "2025-01-01T00:00:00Z", 1])
    for key in ("status", "start_timestamp", "end_timestamp", "retry_number", "error_message", "skip_reason",
                "carried_from", "phase_specific_details")
})


class TestGeneratedDriveRows:
    @FAST
    @given(damage=st.dictionaries(st.sampled_from(DAMAGEABLE), PHASE_OBJECTS, min_size=1, max_size=3),
           status=st.sampled_from([None, "SUCCESS", "FAILED", "RUNNING", "DONE", ""]),
           arrays=st.sampled_from([None, ["audit", "bogus"], [], list(PHASE_NAMES)]),
           command=ROW_COMMANDS)
    @example(damage={"audit_phase": [1, 2]}, status="DONE", arrays=None, command=["run", "./shop_rows", "--json"])
    @example(damage={"config_snapshot": {"dag_schedule": {"timezone": "Mars/Olympus"}}}, status=None, arrays=None,
             command=["history", "./shop_rows"])
    # a phase column that is not JSON (SQLite keeps any text): once refused by the phase summary's trigger
    @example(damage={"stale_pipeline_handling_phase": float("inf")}, status=None, arrays=None,
             command=["report", "./shop_rows", "--json"])
    def test_any_damaged_row_ends_with_a_message_not_a_traceback(self, workspace: Path, damage: dict[str, Any],
                                                                  status: str | None, arrays: list[str] | None,
                                                                  command: list[str]) -> None:
        folder = fresh_copy(workspace, "shop_rows")
        sets = [f'"{column}" = ?' for column in damage]
        params: list[Any] = [json.dumps(value) for value in damage.values()]
        if status is not None:
            sets.append("pipeline_status = ?")
            params.append(status)
        if arrays is not None:
            sets.append("phases_completed = ?")
            params.append(arrays)
        drive_execute(folder, f"UPDATE pipeline_execution_drive SET {', '.join(sets)}", params)
        check(command)
