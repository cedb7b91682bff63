"""The publish gate on DuckDB: the target shows a window only after its audit passed."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.phases import StageToTargetTransfer
from drivetrain.record import PhaseStatus, RunRecord
from tests.sdk.factory import DAY, expected_target, make_pipeline_dir, make_rows, query

from .conftest import HOUR, changed, snapshot

#: s2s tolerance 0: the rows the factory makes invalid fail the audit; 5 lets them through.
STRICT = {"phases__audit__count_tolerances__source_to_stage_tolerance_percent": 0.0}


def run(folder: Path, transfer: type[StageToTargetTransfer] | None = None) -> RunRecord:
    classes = {"stage_to_target_transfer": transfer} if transfer else {}
    pipeline = type("P", (Pipeline,), {"phase_classes": classes})(folder / "config.json")
    with pipeline:
        return pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.window_starting(DAY))


def set_tolerance(folder: Path, percent: float) -> None:
    import json

    path = folder / "config.json"
    config = json.loads(path.read_text())
    config["phases"]["audit"]["count_tolerances"]["source_to_stage_tolerance_percent"] = percent
    path.write_text(json.dumps(config))


def set_publish(folder: Path, mode: str) -> None:
    import json

    path = folder / "config.json"
    config = json.loads(path.read_text())
    config["target_system"]["publish"] = mode
    path.write_text(json.dumps(config))


def write_rows(folder: Path, rows: list[dict[str, Any]]) -> None:
    import json

    (folder / "data" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def pending_rows(folder: Path, record: RunRecord) -> list[tuple[Any, ...]]:
    """The rows ``show`` points at: the transfer's pending query, run as an operator would."""
    sql = record.phases["stage_to_target_transfer"].phase_specific_details["pending_query"]
    return query(folder, sql.replace("SELECT *", "SELECT test_id, result", 1) + " ORDER BY test_id")


def expected_pairs(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((k, v["result"]) for k, v in expected_target(rows, DAY, DAY + HOUR).items())


class TestReplaceWindow:
    def test_a_failed_audit_leaves_the_target_as_it_was_and_the_pending_rows_inspectable(self, tmp_path: Path) -> None:
        rows = make_rows()
        folder = make_pipeline_dir(tmp_path / "lab", rows)
        assert run(folder).pipeline_status is RunStatus.SUCCESS
        before = snapshot(folder)
        assert before["window"] == expected_pairs(rows)
        new_rows = changed(rows)
        write_rows(folder, new_rows)
        set_tolerance(folder, 0.0)

        failed = run(folder)

        assert failed.pipeline_status is RunStatus.FAILED and failed.phase_failed == "audit"
        assert snapshot(folder) == before  # rows and checksum of the whole target as before
        assert failed.phases["publish"].status is PhaseStatus.PENDING
        assert pending_rows(folder, failed) == expected_pairs(new_rows)
        transfer = failed.phases["stage_to_target_transfer"].phase_specific_details
        assert transfer["pending_table"] == "main.tests__pending_rows" and transfer["publish"] == "after_audit"

        set_tolerance(folder, 5.0)  # the fix
        fixed = run(folder)

        assert fixed.pipeline_status is RunStatus.SUCCESS
        assert snapshot(folder)["window"] == expected_pairs(new_rows)
        assert pending_rows(folder, fixed) == []
        published = fixed.phases["publish"].phase_specific_details
        assert published["rows_published"] == fixed.phases["audit"].phase_specific_details["target_count"]
        assert published["published_at"]

    def test_a_first_load_whose_audit_fails_leaves_no_target_rows(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", **{k: v for k, v in STRICT.items()})
        record = run(folder)
        assert record.phase_failed == "audit"
        tables = {r[0] for r in query(folder, "SELECT table_name FROM information_schema.tables")}
        assert "tests" not in tables or query(folder, "SELECT count(*) FROM tests") == [(0,)]
        assert len(pending_rows(folder, record)) == record.phases["target_count"].phase_specific_details["count"] > 0

    def test_a_passed_audit_shows_exactly_the_audited_rows(self, tmp_path: Path) -> None:
        rows = make_rows()
        folder = make_pipeline_dir(tmp_path / "lab", rows)
        record = run(folder)
        assert record.pipeline_status is RunStatus.SUCCESS
        audited = record.phases["audit"].phase_specific_details["target_count"]
        window = snapshot(folder)["window"]
        assert len(window) == audited == record.phases["publish"].phase_specific_details["rows_published"]
        assert window == expected_pairs(rows)
        assert record.phases["target_count"].phase_specific_details["counted_in"] == "main.tests__pending_rows"


class TestDirect:
    def test_publish_direct_writes_straight_to_the_target_and_skips_publish(self, tmp_path: Path) -> None:
        rows = make_rows()
        folder = make_pipeline_dir(tmp_path / "lab", rows, target_system__publish="direct", **STRICT)
        record = run(folder)
        assert record.phase_failed == "audit"
        assert snapshot(folder)["window"] == expected_pairs(rows)  # the spec's order: already visible
        set_tolerance(folder, 5.0)
        again = run(folder)
        assert again.pipeline_status is RunStatus.SUCCESS
        assert again.phases["publish"].status is PhaseStatus.SKIPPED
        assert "direct" in (again.phases["publish"].skip_reason or "")
        assert "publish" in again.phases_skipped

    @pytest.mark.parametrize("transfer", [None, "Upper"], ids=["push-down", "arrow"])
    def test_switching_to_direct_empties_what_an_audit_failed_attempt_left_pending(self, tmp_path: Path, transfer: str | None) -> None:
        rows = make_rows()
        folder = make_pipeline_dir(tmp_path / "lab", rows, **STRICT)
        cls = Upper if transfer else None
        failed = run(folder, cls)
        assert failed.phase_failed == "audit" and pending_rows(folder, failed)
        set_publish(folder, "direct")
        set_tolerance(folder, 5.0)

        fixed = run(folder, cls)

        assert fixed.pipeline_status is RunStatus.SUCCESS
        left = [name for (name,) in query(folder, "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'tests__pending%'")]
        assert left, "the failed attempt made a pending table"
        for name in left:  # nothing pending may stand for the window, nor show up in `show`
            assert query(folder, f"SELECT count(*) FROM {name}") == [(0,)], name
        assert len(snapshot(folder)["window"]) == len(expected_pairs(rows))

    def test_an_unknown_publish_mode_is_refused_with_its_path(self, tmp_path: Path) -> None:
        from drivetrain.errors import ConfigError

        folder = make_pipeline_dir(tmp_path / "lab", target_system__publish="later")
        with pytest.raises(ConfigError, match="target_system.publish"):
            Pipeline.load(folder)


class TestLoadTime:
    """``_drivetrain_loaded_at`` is when the rows became visible: a reader taking the rows loaded
    since its last read must not miss a window whose audit failed and that was published later."""

    @pytest.mark.parametrize("path", ["numbers", "arrow", "merge"])
    def test_published_rows_carry_the_publish_time_not_the_failed_attempts(self, tmp_path: Path, path: str) -> None:
        rows = make_rows(200, hours=1, duplicates=0)
        options: dict[str, Any] = dict(STRICT)
        if path == "merge":
            options.update(target_system__load_strategy="merge", target_system__merge_keys=["test_id"])
        folder = make_pipeline_dir(tmp_path / "lab", rows, **options)
        cls = Upper if path == "arrow" else None
        failed = run(folder, cls)
        assert failed.phase_failed == "audit"
        (watermark,) = query(folder, "SELECT max(_drivetrain_loaded_at) FROM tests__pending"
                             if path != "numbers" else "SELECT max(_drivetrain_loaded_at) FROM tests__pending_rows")[0]
        assert watermark is not None
        set_tolerance(folder, 5.0)

        fixed = run(folder, cls)

        assert fixed.pipeline_status is RunStatus.SUCCESS
        published_at = fixed.phases["publish"].start_timestamp
        (earliest, latest, n) = query(folder, "SELECT min(_drivetrain_loaded_at), max(_drivetrain_loaded_at), count(*) FROM tests")[0]
        assert n == len(expected_pairs(rows))
        as_utc = lambda t: t if t.tzinfo else t.replace(tzinfo=UTC)  # noqa: E731
        assert as_utc(earliest) == as_utc(latest) >= published_at > as_utc(watermark)


class TestMerge:
    def test_merge_with_delete_missing_happens_at_publish_only(self, tmp_path: Path) -> None:
        rows = make_rows(200, hours=1, invalid_every=0, duplicates=0)
        folder = make_pipeline_dir(tmp_path / "lab", rows, target_system__load_strategy="merge",
                                   target_system__merge_keys=["test_id"], target_system__delete_missing=True)
        assert run(folder).pipeline_status is RunStatus.SUCCESS
        before = snapshot(folder)
        kept = rows[20:]
        kept[0] = {**kept[0], "result": "updated"}
        write_rows(folder, kept + [{**rows[0], "age": "n/a"}])  # one invalid record: fails the strict audit
        set_tolerance(folder, 0.0)
        failed = run(folder)
        assert failed.phase_failed == "audit"
        assert snapshot(folder) == before  # neither the update nor the deletes are visible
        set_tolerance(folder, 5.0)
        fixed = run(folder)
        assert fixed.pipeline_status is RunStatus.SUCCESS
        assert snapshot(folder)["window"] == expected_pairs(kept)
        assert fixed.phases["publish"].phase_specific_details["rows_removed_missing_at_source"] == 20


class Upper(StageToTargetTransfer):
    """The Arrow path: results upper-cased in Python."""

    def transform(self, batch: pa.RecordBatch, ctx: Any) -> pa.RecordBatch:
        index = batch.schema.get_field_index("result")
        return batch.set_column(index, "result", pc.utf8_upper(batch.column(index)))


class TestArrowPath:
    @pytest.mark.parametrize("dedup", [True, False], ids=["keyed", "keyless"])
    def test_the_arrow_path_is_gated_too(self, tmp_path: Path, dedup: bool) -> None:
        rows = make_rows(duplicates=0 if not dedup else 5)
        folder = make_pipeline_dir(tmp_path / "lab", rows, target_system__dedup_keys=["test_id"] if dedup else [], **STRICT)
        failed = run(folder, Upper)
        assert failed.phase_failed == "audit"
        assert failed.phases["stage_to_target_transfer"].phase_specific_details["method"] == "arrow"
        assert snapshot(folder)["window"] == []
        assert [r for _, r in pending_rows(folder, failed)] and all(r.isupper() for _, r in pending_rows(folder, failed))
        set_tolerance(folder, 5.0)
        fixed = run(folder, Upper)
        assert fixed.pipeline_status is RunStatus.SUCCESS
        assert snapshot(folder)["window"] == [(k, r.upper()) for k, r in expected_pairs(rows)]
        assert pending_rows(folder, fixed) == []


class TestSharedTarget:
    def test_publishing_one_pipelines_window_leaves_the_others_rows(self, tmp_path: Path) -> None:
        db = str(tmp_path / "shared.duckdb")

        def make(name: str, n: int) -> Path:
            rows = make_rows(n, hours=1, invalid_every=0, duplicates=0, prefix=name.upper(), seed=n)
            return make_pipeline_dir(tmp_path / name, rows, pipeline_metadata__pipeline_name=name, stage_system__path=db,
                                     stage_system__table=f"stg_{name}", target_system__path=db, target_system__table="orders",
                                     target_system__shared=True)

        a, b = make("a", 30), make("b", 20)
        assert run(a).pipeline_status is RunStatus.SUCCESS
        assert run(b).pipeline_status is RunStatus.SUCCESS
        assert run(a).pipeline_status is RunStatus.SUCCESS
        with duckdb.connect(db, read_only=True) as conn:
            counts = dict(conn.execute("SELECT left(test_id, 1), count(*) FROM orders GROUP BY 1").fetchall())
            pending = conn.execute("SELECT count(*) FROM orders__pending_rows").fetchone()
        assert counts == {"A": 30, "B": 20}
        assert pending == (0,)


class TestMetrics:
    def test_published_rows_count_only_windows_whose_audit_passed(self, tmp_path: Path) -> None:
        from drivetrain.monitoring import metrics

        rows = make_rows()
        folder = make_pipeline_dir(tmp_path / "lab", rows)
        good = run(folder)
        set_tolerance(folder, 0.0)
        failed = run(folder)
        assert failed.phase_failed == "audit"
        with Pipeline.load(folder) as pipeline:
            computed = metrics.compute(pipeline.drive_store(), ["lab"], days=7)
        [counts] = computed.count_mismatches
        assert counts.published == good.phases["publish"].phase_specific_details["rows_published"] > 0


class TestNothingToPublish:
    def test_a_disabled_transfer_publishes_nothing_and_leaves_the_target(self, tmp_path: Path) -> None:
        rows = make_rows()
        folder = make_pipeline_dir(tmp_path / "lab", rows)
        assert run(folder).pipeline_status is RunStatus.SUCCESS
        before = snapshot(folder)
        import json

        config = json.loads((folder / "config.json").read_text())
        config["phases"]["stage_to_target_transfer"] = {"enabled": False}
        config["phases"]["target_count"] = {"enabled": False}
        (folder / "config.json").write_text(json.dumps(config))
        record = run(folder)
        assert record.pipeline_status is RunStatus.SUCCESS
        assert record.phases["publish"].status is PhaseStatus.SKIPPED
        assert "nothing is written to publish" in (record.phases["publish"].skip_reason or "")
        assert snapshot(folder) == before


class TestPublishFailure:
    def test_a_publish_that_fails_inside_its_transaction_is_resumed_at_publish_only(self, tmp_path: Path) -> None:
        from drivetrain.testing import FaultPlugin

        rows = make_rows()
        folder = make_pipeline_dir(tmp_path / "lab", rows)
        assert run(folder).pipeline_status is RunStatus.SUCCESS
        before = snapshot(folder)
        new_rows = changed(rows)
        write_rows(folder, new_rows)
        with FaultPlugin(fail={"publish": 1}).installed():
            failed = run(folder)
        assert failed.phase_failed == "publish"
        assert snapshot(folder) == before
        assert pending_rows(folder, failed) == expected_pairs(new_rows)
        resumed = run(folder)
        assert resumed.pipeline_status is RunStatus.SUCCESS
        for name in ("source_to_stage_transfer", "stage_to_target_transfer", "target_count", "audit"):
            assert resumed.phases[name].carried_from == failed.pipeline_id, name
        assert snapshot(folder)["window"] == expected_pairs(new_rows)


class TestPlan:
    @pytest.mark.parametrize("mode, action", [("after_audit", "run"), ("direct", "skip")])
    def test_a_dry_run_plan_says_whether_publish_runs(self, tmp_path: Path, mode: str, action: str) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", target_system__publish=mode)
        with Pipeline.load(folder) as pipeline:
            plan = {step.phase: step for step in pipeline.runner().plan(pipeline.grid.window_starting(DAY))}
        assert plan["publish"].action == action
