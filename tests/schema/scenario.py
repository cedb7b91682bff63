"""A pipeline whose source changes its schema between windows, on DuckDB or Snowflake (fakesnow).

The source is a JSON-lines file without declared columns (so a key the records start carrying
is a new column); each test writes one hour's records, runs that window, and looks at stage,
pending and target through the pipeline's own tables.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from drivetrain import Pipeline
from drivetrain.errors import PermanentError
from drivetrain.phases import StageToTargetTransfer
from drivetrain.phases.publish import Publish
from drivetrain.record import RunRecord
from tests.sdk.factory import BASE_CONFIG, DAY

HOUR = timedelta(hours=1)
CREDENTIALS_REF = "sf_test"


class Transformed(StageToTargetTransfer):
    """Forces the Arrow path: transform() returns the stage's rows as they are."""

    def transform(self, batch: pa.RecordBatch, ctx: Any) -> pa.RecordBatch:
        return batch


class StoppedBeforePublish(Publish):
    """A run stopped after its audit passed: the window waits in the pending table."""

    def run(self, ctx: Any) -> Any:
        raise PermanentError("stopped before publish (test)")


def hour(i: int) -> datetime:
    return DAY + i * HOUR


def records(i: int, n: int = 10, **extra: Any) -> list[dict[str, Any]]:
    """``n`` records in hour ``i``; ``extra`` values (a callable gets the record's number)."""
    out = []
    for k in range(n):
        row = {"test_id": f"T{i:02d}{k:03d}", "age": k, "reported_at": (hour(i) + timedelta(minutes=k)).isoformat()}
        row.update({key: value(k) if callable(value) else value for key, value in extra.items()})
        out.append(row)
    return out


class Lab:
    """One pipeline folder; ``backend`` is "duckdb" or a fakesnow server and database."""

    def __init__(self, root: Path, *, contract: Any = None, keys: bool = False, arrow: bool = False,
                 snowflake: tuple[Any, str] | None = None, postgres: tuple[Any, str] | None = None,
                 gate: bool = True, tolerance: float = 50.0) -> None:
        self.root = root
        self.arrow = arrow
        config = copy.deepcopy(BASE_CONFIG)
        if snowflake is not None:
            server, database = snowflake
            where = {**server.options(database), "credentials_ref": CREDENTIALS_REF}
        elif postgres is not None:
            from tests.connectors.postgres.warehouse import CREDENTIALS_REF as PG_REF

            server, schema = postgres
            where = {"type": "postgres", "host": server.host, "port": server.port, "database": server.database,
                     "schema": schema, "credentials_ref": PG_REF}
        else:
            where = {"type": "duckdb", "path": "warehouse.duckdb"}
        config["stage_system"] = {**where, "table": "stg_tests"}
        if contract is not None:
            config["stage_system"]["schema_contract"] = contract
        config["target_system"] = {**where, "table": "tests"}
        if keys:
            config["target_system"]["dedup_keys"] = ["test_id"]
        if not gate:
            config["target_system"]["publish"] = "direct"
        config["phases"]["audit"]["count_tolerances"] = {"source_to_stage_tolerance_percent": tolerance,
                                                         "stage_to_target_tolerance_percent": 0.0}
        root.mkdir(parents=True, exist_ok=True)
        (root / "data").mkdir(exist_ok=True)
        self.config = config
        self.save()
        self.hours: dict[int, list[dict[str, Any]]] = {}
        self.phase_classes: dict[str, type] = {}
        """Phases replaced for the next runs (a publish that stops, say)."""
        self.feed([])

    def save(self) -> None:
        (self.root / "config.json").write_text(json.dumps(self.config, indent=2))

    def set_contract(self, contract: Any) -> None:
        self.config["stage_system"]["schema_contract"] = contract
        self.save()

    def feed(self, rows: list[dict[str, Any]], i: int = 0) -> None:
        """Make ``rows`` hour ``i``'s records (the file keeps the other hours' records)."""
        self.hours[i] = rows
        every = [r for h in sorted(self.hours) for r in self.hours[h]]
        (self.root / "data" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in every))

    def pipeline(self) -> Pipeline:
        if self.root.joinpath("config.json").read_text().find('"snowflake"') >= 0:
            from tests.connectors.snowflake.scenario import register_snowflake

            register_snowflake()
        classes: dict[str, type] = {"stage_to_target_transfer": Transformed} if self.arrow else {}
        classes.update(self.phase_classes)
        return type("P", (Pipeline,), {"phase_classes": classes})(self.root / "config.json")

    def run(self, i: int, rows: list[dict[str, Any]] | None = None) -> RunRecord:
        if rows is not None:
            self.feed(rows, i)
        with self.pipeline() as pipeline:
            return pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.window_starting(hour(i)))

    def columns(self, which: str = "target") -> dict[str, str]:
        """Column -> type of the stage, pending or target table (lineage columns left out)."""
        with self.pipeline() as p:
            table = {"stage": p.stage(), "target": p.target(), "pending": p.target().pending()}[which]
            return {c: t for c, t in table.columns().items() if not c.lower().startswith("_drivetrain_")}

    def pending_count(self, i: int) -> int:
        """Rows hour ``i`` will publish: pending rows, or pending stage-row numbers (push-down on DuckDB)."""
        with self.pipeline() as p:
            window = p.grid.window_starting(hour(i))
            return p.target().pending().count(window) + p.target().pending_rows().count(window)

    def rows(self, i: int, which: str = "target") -> list[dict[str, Any]]:
        """The rows of hour ``i`` (data columns only), by test_id."""
        with self.pipeline() as p:
            table = {"stage": p.stage(), "target": p.target(), "pending": p.target().pending()}[which]
            window = p.grid.window_starting(hour(i))
            out = [r for b in table.read(window) for r in pa.Table.from_batches([b]).to_pylist()]
        rows = [{k: v for k, v in r.items() if not k.lower().startswith("_drivetrain_")} for r in out]
        return sorted(rows, key=lambda r: r["test_id"])


def details(record: RunRecord, phase: str) -> Mapping[str, Any]:
    return record.phases[phase].phase_specific_details
