"""Every record accounted for: records a source cannot place in any window are counted.

A cut-off JSONL line, a null or unreadable query field, a number without ``timestamp_unit``
belong to no window, so no count or extract can hold them and the audit cannot see them. The
files source counts them with reasons and examples; ``source_count`` stores the tally in the
drive row; ``show``, ``status`` and ``report`` print it; ``on_unplaceable: fail`` fails on it.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.config import SystemConfig
from drivetrain.connectors.files import FilesSource
from drivetrain.connectors.mysql import MySQLSource
from drivetrain.errors import PermanentError
from drivetrain.secrets import resolve_credentials
from drivetrain.window import Window
from tests.cli.conftest import Cli
from tests.sdk.factory import DAY, make_pipeline_dir
from tests.servers.mariadb import MariaDBServer

WINDOW = Window(DAY, DAY + timedelta(hours=1))


def good(i: int) -> dict[str, object]:
    return {"test_id": f"T{i:03d}", "age": 40, "result": "negative",
            "reported_at": (DAY + timedelta(minutes=i)).isoformat().replace("+00:00", "Z")}


BAD_LINES = [
    json.dumps({**good(50), "test_id": "NULL", "reported_at": None}),
    json.dumps({**good(51), "test_id": "MONTH13", "reported_at": "2025-13-45"}),
    json.dumps({**good(52), "test_id": "SLASHES", "reported_at": "01/01/2025"}),
    json.dumps({**good(53), "test_id": "NOFIELD"}).replace('"reported_at"', '"reportedAt"'),
]
TRUNCATED = '{"test_id": "CUT", "age": 4'  # the last line, cut off by a writer that died


def write(folder: Path, lines: list[str], *, truncated: bool = True) -> None:
    text = "\n".join(lines) + "\n" + (TRUNCATED if truncated else "")
    (folder / "data" / "records.jsonl").write_text(text)


def files_source(folder: Path, path: str, **options: object) -> FilesSource:
    section = {"type": "files", "path": path, "query_field": "reported_at", **options}
    return FilesSource(SystemConfig.from_section("source_system", section, base_dir=folder))


class TestFilesSourceCounts:
    def test_each_kind_of_unplaceable_record_is_counted_with_its_reason_and_place(self, tmp_path: Path) -> None:
        (tmp_path / "data").mkdir()
        write(tmp_path, [json.dumps(good(i)) for i in range(3)] + BAD_LINES)
        source = files_source(tmp_path, "data/records.jsonl")
        assert source.count(WINDOW) == 3
        lost = source.unplaceable()
        assert lost.records == 5
        assert lost.reasons == {"reported_at: missing or empty": 2, "reported_at: not a timestamp": 2,
                                "line is not valid JSON": 1}
        sample = "\n".join(lost.sample)
        assert "records.jsonl line 8" in sample  # the cut-off last line, by its line number
        assert "'2025-13-45'" in sample and "'01/01/2025'" in sample
        # extract finds the same, so count and extract always agree on what they left out
        assert sum(b.num_rows for b in source.extract(WINDOW)) == 3
        assert source.unplaceable().records == 5

    def test_a_clean_file_has_nothing_unplaceable(self, tmp_path: Path) -> None:
        (tmp_path / "data").mkdir()
        write(tmp_path, [json.dumps(good(i)) for i in range(3)], truncated=False)
        source = files_source(tmp_path, "data/records.jsonl")
        assert source.count(WINDOW) == 3
        assert source.unplaceable().records == 0
        assert source.unplaceable().details() == {}


class TestCsvDelimiter:
    def test_a_semicolon_csv_read_with_commas_names_the_file_and_the_key_to_set(self, tmp_path: Path) -> None:
        (tmp_path / "a.csv").write_text("test_id;reported_at\nT1;2025-11-15T00:10:00Z\n")
        with pytest.raises(PermanentError, match=r"a\.csv: .*';'-separated; set source_system\.delimiter to \";\""):
            files_source(tmp_path, "a.csv").count(WINDOW)
        with pytest.raises(PermanentError, match="delimiter"):
            files_source(tmp_path, "a.csv").check()

    def test_with_the_delimiter_set_it_reads(self, tmp_path: Path) -> None:
        (tmp_path / "a.csv").write_text("test_id;reported_at\nT1;2025-11-15T00:10:00Z\n")
        assert files_source(tmp_path, "a.csv", delimiter=";").count(WINDOW) == 1

    def test_a_csv_without_the_query_field_column_is_an_error_naming_its_columns(self, tmp_path: Path) -> None:
        (tmp_path / "a.csv").write_text("test_id,when\nT1,2025-11-15T00:10:00Z\n")
        with pytest.raises(PermanentError, match=r"a\.csv: no column 'reported_at'.*'test_id', 'when'"):
            files_source(tmp_path, "a.csv").count(WINDOW)


class TestValuesArrowCannotHold:
    """A JSONL integer wider than 64 bits used to raise a bare OverflowError next to a bad line."""

    WIDE = 123456789012345678901234567890

    @pytest.mark.parametrize("value", [WIDE, -WIDE, 2**64, 10**400])
    def test_a_too_wide_integer_next_to_a_bad_line_is_kept_exactly_as_text(self, tmp_path: Path, value: int) -> None:
        (tmp_path / "data").mkdir()
        wide = json.dumps({**good(1), "age": value})
        write(tmp_path, [json.dumps(good(0)), wide, "{broken"], truncated=False)
        source = files_source(tmp_path, "data/records.jsonl")
        source.check()
        rows = pa.Table.from_batches(list(source.extract(WINDOW))).to_pylist()
        assert [r["age"] for r in rows] == ["40", str(value)]
        assert source.unplaceable().reasons == {"line is not valid JSON": 1}

    def test_a_too_wide_integer_alone_is_not_rounded_to_a_float(self, tmp_path: Path) -> None:
        (tmp_path / "data").mkdir()
        write(tmp_path, [json.dumps(good(0)), json.dumps({**good(1), "age": self.WIDE})], truncated=False)
        rows = pa.Table.from_batches(list(files_source(tmp_path, "data/records.jsonl").extract(WINDOW))).to_pylist()
        assert rows[1]["age"] == str(self.WIDE)

    def test_the_run_rejects_it_with_a_reason_and_counts_it(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", [])
        lines = [json.dumps(good(i)) for i in range(40)] + [json.dumps({**good(41), "age": self.WIDE}), "{broken"]
        write(folder, lines, truncated=False)
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner().run(pipeline.grid.window_starting(DAY))
        assert record.pipeline_status is RunStatus.SUCCESS, record.phases
        details = record.phase("source_to_stage_transfer").phase_specific_details
        assert details["records_failed"] == 1
        assert details["reject_reasons"] == {"age: not a valid integer": 1}
        assert record.phase("source_count").phase_specific_details["unplaceable"]["records"] == 1


def _run_folder(tmp_path: Path, **changes: object) -> Path:
    folder = make_pipeline_dir(tmp_path / "lab", [], **changes)
    write(folder, [json.dumps(good(i)) for i in range(3)] + BAD_LINES)
    return folder


class TestInTheDriveRowAndReports:
    def test_warn_records_the_tally_in_source_count_and_the_run_succeeds(self, tmp_path: Path) -> None:
        folder = _run_folder(tmp_path)
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner().run(pipeline.grid.window_starting(DAY))
        assert record.pipeline_status is RunStatus.SUCCESS
        stored = record.phase("source_count").phase_specific_details
        assert stored["count"] == 3
        assert stored["unplaceable"]["records"] == 5
        assert stored["unplaceable"]["reasons"]["reported_at: not a timestamp"] == 2
        assert len(stored["unplaceable"]["sample"]) == 5

    def test_a_clean_source_leaves_no_tally_in_the_row(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", [good(i) for i in range(3)])
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner().run(pipeline.grid.window_starting(DAY))
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert record.phase("source_count").phase_specific_details == {"count": 3}

    def test_fail_fails_source_count_with_the_tally(self, tmp_path: Path) -> None:
        folder = _run_folder(tmp_path, source_system__on_unplaceable="fail")
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner().run(pipeline.grid.window_starting(DAY))
        assert record.pipeline_status is RunStatus.FAILED
        assert record.phase_failed == "source_count"
        message = record.phase("source_count").error_message or ""
        assert "5 record(s) belong to no window" in message and "on_unplaceable: fail" in message

    def test_an_unknown_mode_is_a_config_error(self, tmp_path: Path) -> None:
        folder = _run_folder(tmp_path, source_system__on_unplaceable="ignore")
        with pytest.raises(Exception, match="on_unplaceable"):
            Pipeline.load(folder)

    def test_show_status_and_report_print_it(self, tmp_path: Path) -> None:
        _run_folder(tmp_path)
        cli = Cli(cwd=tmp_path, home=tmp_path / "home")
        run = cli("run", "./lab", "--window-start", "2025-11-15T00:00:00Z")
        assert run.returncode == 0, run
        status = cli("status", "./lab")
        assert "records in no window: 5" in status.stdout, status
        run_id = cli("status", "./lab", "--json").json()[0]["pipeline_id"]
        show = cli("show", run_id, "--pipeline", "./lab")
        assert "records in no window: 5" in show.stdout, show
        assert "2 x reported_at: not a timestamp" in show.stdout
        assert "records.jsonl line 8" in show.stdout
        report = cli("report", "./lab")
        assert "in no window" in report.stdout, report
        html = tmp_path / "report.html"
        assert cli("report", "./lab", "--html", str(html)).returncode == 0
        assert "In no window" in html.read_text()



class TestMySQL:
    def test_null_and_zero_date_rows_are_tallied_with_their_keys(self, mariadb: MariaDBServer) -> None:
        table = f"lost_{uuid.uuid4().hex[:8]}"
        admin = mariadb.admin(database=mariadb.database)
        try:
            with admin.cursor() as cursor:
                cursor.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, ts DATETIME(6) NULL, KEY (ts))")
                cursor.execute("SET SESSION sql_mode = ''")
                cursor.execute(f"INSERT INTO {table} VALUES (1, '2025-11-15 00:10:00'), (2, NULL), (3, NULL),"
                               " (4, '0000-00-00 00:00:00')")
            admin.commit()
        finally:
            admin.close()
        section = {"type": "mysql", "host": mariadb.host, "port": mariadb.port, "database": mariadb.database,
                   "table": table, "query_field": "ts", "credentials_ref": "lost_mysql"}
        config = SystemConfig.from_section("source_system", section, base_dir=Path("."), source_file="config.json")
        creds = resolve_credentials("lost_mysql", environ={"LOST_MYSQL_USER": mariadb.user,
                                                            "LOST_MYSQL_PASSWORD": mariadb.password})
        with MySQLSource(config, creds) as source:
            assert source.count(WINDOW) == 1
            lost = source.unplaceable()
        assert lost is not None
        assert lost.reasons == {"ts: NULL": 2, "ts: zero or invalid date": 1}
        assert f"{mariadb.database}.{table} id=2: ts: NULL" in lost.sample
        assert f"{mariadb.database}.{table} id=4: ts: zero or invalid date" in lost.sample


class TestElasticsearch:
    def test_documents_without_the_query_field_are_tallied(self) -> None:
        from drivetrain.connectors.elasticsearch import ElasticsearchSource
        from tests.connectors.test_elasticsearch import SERVER_VERSION, start_emulator

        emulator = start_emulator(SERVER_VERSION)
        try:
            emulator.add_documents("lab", [
                {"_id": "a", "reported_at": "2025-11-15T00:10:00Z"},
                {"_id": "b", "reported_at": "2025-11-15T02:10:00Z"},
                {"_id": "c", "other": 1},
                {"_id": "d", "reported_at": None},
            ], mapping={"properties": {"reported_at": {"type": "date"}}})
            section = {"type": "elasticsearch", "endpoint": emulator.url, "index": "lab", "query_field": "reported_at"}
            config = SystemConfig.from_section("source_system", section, base_dir=Path("."))
            with ElasticsearchSource(config) as source:
                assert source.count(WINDOW) == 1
                lost = source.unplaceable()
        finally:
            emulator.stop()
        assert lost is not None
        assert lost.records == 2
        assert lost.sample == ["index lab: reported_at: missing, or not indexed as a date (ignore_malformed)"]


class TestServiceNow:
    def test_records_with_an_empty_query_field_are_tallied(self) -> None:
        from drivetrain.connectors.servicenow import ServiceNowSource
        from tests.emulators.servicenow import SnEmulator

        emulator = SnEmulator()
        emulator.start()
        try:
            emulator.add_records("incident", [
                {"number": "INC1", "sys_updated_on": "2025-11-15 00:10:00"},
                {"number": "INC2", "sys_updated_on": ""},
                {"number": "INC3", "sys_updated_on": ""},
            ])
            section = {"type": "servicenow", "host": emulator.host, "use_ssl": False, "table": "incident",
                       "credentials_ref": "lost_sn"}
            config = SystemConfig.from_section("source_system", section, base_dir=Path("."), source_file="config.json")
            creds = resolve_credentials("lost_sn", environ={"LOST_SN_USER": emulator.user,
                                                             "LOST_SN_PASSWORD": emulator.password})
            with ServiceNowSource(config, creds) as source:
                assert source.count(WINDOW) == 1
                lost = source.unplaceable()
        finally:
            emulator.stop()
        assert lost is not None
        assert lost.reasons == {"sys_updated_on: empty": 2}
        assert lost.sample == ["table incident: sys_updated_on: empty"]


def test_a_window_whose_source_was_fixed_after_a_failed_audit_succeeds_on_the_next_run(tmp_path: Path) -> None:
    """The carried source count used to be kept after the fix, so the audit failed forever."""
    folder = make_pipeline_dir(tmp_path / "lab", [])
    bad = json.dumps({**good(1), "age": 999})  # rejected: above the declared maximum
    write(folder, [json.dumps(good(0)), bad], truncated=False)
    with Pipeline.load(folder) as pipeline:
        window = pipeline.grid.window_starting(DAY)
        first = pipeline.runner().run(window)
        assert (first.pipeline_status, first.phase_failed) == (RunStatus.FAILED, "audit")
        write(folder, [json.dumps(good(0))], truncated=False)  # the producer fixed its data
        second = pipeline.runner().run(window)
    assert second.pipeline_status is RunStatus.SUCCESS, second.phases
    assert second.phase("source_count").phase_specific_details["count"] == 1
