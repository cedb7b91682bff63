"""The data contract, as a property: whatever happens at the source and whatever runs, the
target ends up holding what the source says, once, and every run accounts for every record.

The source is a JSONL file of mutable records (the shape ``drivetrain new`` scaffolds: merge on
the key, the update time as query field) that also deletes records (``delete_missing``) and
receives late records (``settle_horizon``). Hypothesis generates a history against a simulated
clock: inserts (late ones included, into windows already loaded), updates (a record moves to
the window open now), deletes, the clock moving on, plain runs (the window a plain run takes,
then the reloads settling asks for), re-runs of old windows, partial runs of the window still
open, and runs whose extract or publish
fails and is resumed by the next plain run, or is SIGKILLed in a process of its own at one of
the points a crash hurts most (inside and right after each commit) and is picked up by the next.

What must hold:
- at every step, no record is in the target twice, and the target never holds a version of a
  record older than one it held before (merges never go back);
- at every step, a downstream reader that takes the rows loaded since its last read
  (``_drivetrain_loaded_at``) gets every version that became visible since: none carries a
  load time before that read, even when it was written by a run whose publish failed and was
  published by the next one;
- every successful run's row balances: source count = stage count + rejected, exactly, and the
  stage count equals what the extract wrote;
- after the clock has passed every window and plain runs have nothing left to do, the target
  equals the source's live records, each at its latest version, exactly once -- settling
  compares each window's fingerprint as well as its count, so a late record and a delete in
  the same loaded window do not cancel out -- and running the windows again in order changes
  nothing.

Every history runs with stage, target and drive table in DuckDB, and again in PostgreSQL (a
schema of its own per history on the session's server), and with a MariaDB table as the source
instead of the file (the SQL source's count, fingerprint and extract), with fewer examples
there: a history of runs against a server takes longer than against a file.
"""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain import Pipeline, RunRecord, RunStatus
from drivetrain.settle import plan_reloads
from drivetrain.testing import FaultPlugin, FaultySource

DAY = datetime(2025, 11, 15, tzinfo=UTC)
HOUR = timedelta(hours=1)
WINDOWS = 4
END = DAY + WINDOWS * HOUR

CONFIG: dict[str, Any] = {
    "pipeline_metadata": {"pipeline_name": "contract", "owner_name": "Test Owner", "owner_email": "owner@example.com"},
    "dag_schedule": {"frequency": "hourly", "timezone": "UTC", "start_date": "2025-11-15", "catchup": True},
    "query_window": {"type": "hourly", "duration": "1h", "settle_horizon": "1d"},
    "source_system": {"type": "files", "path": "data/records.jsonl", "query_field": "updated_at", "batch_size": 4},
    "stage_system": {
        "type": "duckdb", "path": "warehouse.duckdb", "table": "stg_records",
        "columns": [
            {"name": "id", "type": "string", "required": True},
            {"name": "version", "type": "integer", "required": True},
            {"name": "updated_at", "type": "timestamp", "required": True},
        ],
    },
    "target_system": {"type": "duckdb", "path": "warehouse.duckdb", "table": "records", "load_strategy": "merge",
                      "merge_keys": ["id"], "delete_missing": True},
    "phases": {
        "audit": {"count_tolerances": {"source_to_stage_tolerance_percent": 0.0, "stage_to_target_tolerance_percent": 0.0}},
        "stage_cleaning": {"archive_location": "archive", "delete_after_days": 1},
    },
    "retry": {"max_retries": 0, "backoff_strategy": "none", "backoff_seconds": 0.01},
}

#: Where a run is SIGKILLed (tests/reliability/child.py): mid-extract, with the window loaded but
#: not committed, inside and right after each commit, and after the audit.
KILL_POINTS = ["batch:0", "loaded:source_to_stage_transfer", "committed:source_to_stage_transfer",
               "commit:stage_to_target_transfer", "committed:stage_to_target_transfer", "after:audit",
               "commit:publish", "committed:publish", "committed:stage_cleaning"]
CHILD = Path(__file__).parents[1] / "reliability" / "child.py"

operation = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, WINDOWS * 60 - 1)),  # minutes after DAY, before now
    st.tuples(st.just("update"), st.integers(0, 50), st.integers(0, 29)),  # which record, minutes into the open window
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.just(("tick",)),
    st.just(("plain",)),
    st.just(("plain",)),
    st.tuples(st.just("rerun"), st.integers(0, WINDOWS - 1)),
    st.just(("fail",)),
    st.just(("fail_publish",)),
    st.tuples(st.just("kill"), st.sampled_from(KILL_POINTS)),
    st.just(("partial",)),
)

#: A row of the target as a downstream reader sees it: id, version, load time.
Row = tuple[str, int, datetime]


#: Histories hypothesis tries per setup: stage, target and drive table in DuckDB or PostgreSQL
#: with the JSONL source; or in DuckDB with a MariaDB table as the source.
BUDGET = {"duckdb": 25, "postgres": 6, "mysql-source": 8}


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_duckdb(folder: Path) -> list[Row]:
    path = folder / "warehouse.duckdb"
    if not path.exists():
        return []
    with duckdb.connect(str(path), read_only=True) as conn:
        exists = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'records'").fetchone()
        if not exists or not exists[0]:
            return []
        return [(str(k), int(v), utc(t)) for k, v, t in
                conn.execute("SELECT id, version, _drivetrain_loaded_at FROM records ORDER BY id").fetchall()]


class Contract:
    """One simulated history: the source file, the clock, and what the target may hold."""

    def __init__(self, folder: Path, *, config: dict[str, Any] | None = None,
                 read: Callable[[Path], list[Row]] = read_duckdb,
                 write_source: Callable[[dict[str, tuple[datetime, int]]], None] | None = None) -> None:
        self.folder = folder
        self.read = read
        self.write_source = write_source
        self.clock = DAY + HOUR  # the first window has just ended
        self.live: dict[str, tuple[datetime, int]] = {}  # id -> (updated_at, version)
        self.next_id = 0
        self.seen_versions: dict[str, int] = {}  # the newest version the target ever held, per id
        self.visible: set[tuple[str, int]] = set()  # (id, version) the target showed at the last read
        self.last_read: datetime | None = None  # when the target was last read (the real clock, as load times)
        self.records: list[RunRecord] = []
        folder.mkdir(parents=True)
        (folder / "data").mkdir()
        (folder / "config.json").write_text(json.dumps(config or CONFIG, indent=2))
        self.write()

    @property
    def now(self) -> datetime:
        return self.clock + timedelta(minutes=30)

    def write(self) -> None:
        if self.write_source is not None:
            self.write_source(self.live)
            return
        lines = [json.dumps({"id": k, "version": v, "updated_at": ts.isoformat().replace("+00:00", "Z")})
                 for k, (ts, v) in sorted(self.live.items())]
        (self.folder / "data" / "records.jsonl").write_text("".join(line + "\n" for line in lines))

    # -- the source changes ---------------------------------------------------------------

    def insert(self, minute: int) -> None:
        ts = DAY + timedelta(minutes=minute)
        if ts >= self.now:  # nothing is written with a time still to come
            ts = self.clock + timedelta(minutes=minute % 30)
        self.live[f"r{self.next_id:03d}"] = (ts, 1)
        self.next_id += 1
        self.write()

    def update(self, which: int, minute: int) -> None:
        if not self.live:
            return
        key = sorted(self.live)[which % len(self.live)]
        ts, version = self.live[key]
        self.live[key] = (max(ts, self.clock + timedelta(minutes=minute)), version + 1)  # updated now
        self.write()

    def delete(self, which: int) -> None:
        if self.live:
            del self.live[sorted(self.live)[which % len(self.live)]]
            self.write()

    def tick(self) -> None:
        # The last window stays open while the history is written: an update made after END
        # would move its record into a window past the grid, which the final re-run does not
        # cover (the target rightly drops it from its old window, and nothing loads it again).
        self.clock = min(self.clock + HOUR, END - HOUR)

    # -- runs ------------------------------------------------------------------------------

    def plain(self, *, fail: bool = False) -> None:
        """What ``drivetrain run PIPELINE`` does at ``now``: its window, then settling's reloads."""
        with Pipeline.load(self.folder) as pipeline:
            if fail:
                pipeline.use(source=FaultySource(pipeline.source(), fail_at_batch=0, transient=False))
            self._runs(pipeline)

    def fail_publish(self) -> None:
        """A plain run whose first publish fails inside its transaction (the next run publishes)."""
        with FaultPlugin(fail={"publish": 1}).installed(), Pipeline.load(self.folder) as pipeline:
            self._runs(pipeline)

    def _runs(self, pipeline: Pipeline) -> None:
        """The window due at ``now`` and settling's reloads, until one fails."""
        runner = pipeline.runner(clock=lambda: self.now, heartbeat_seconds=0.2)
        due = runner.next_window()
        windows = plan_reloads(pipeline, [due] if due is not None else None, note=lambda _: None, now=self.now)
        for window in windows or []:
            record = runner.run(window)
            self.records.append(record)
            self.check_target()  # after each run, not only after the plain run's last reload
            if record.pipeline_status is RunStatus.FAILED:
                break

    def kill(self, point: str) -> None:
        """The window due now, run in a process of its own that is SIGKILLed at ``point`` (a run
        that never reaches the point ends as usual); the next plain run picks up after it."""
        with Pipeline.load(self.folder) as pipeline:
            due = pipeline.runner(clock=lambda: self.now).next_window()
        if due is None:
            return
        child = subprocess.run([sys.executable, str(CHILD), str(self.folder), due.start.isoformat(), "--point", point,
                                "--now", self.now.isoformat()],
                               capture_output=True, text=True, timeout=300)
        assert child.returncode in (0, -signal.SIGKILL), f"the child failed ({child.returncode}):\n{child.stderr[-3000:]}"
        self.check_target()

    def partial(self) -> None:
        """``drivetrain run --window-start <the open window> --allow-partial``: what exists so far
        of the window still open (a plain run completes it once it has ended)."""
        with Pipeline.load(self.folder) as pipeline:
            window = pipeline.grid.window_at(self.clock)
            self.records.append(pipeline.runner(clock=lambda: self.now, heartbeat_seconds=0.2).run(window, partial=True))
        self.check_target()

    def rerun(self, index: int) -> None:
        with Pipeline.load(self.folder) as pipeline:
            window = pipeline.grid.window_at(DAY + index * HOUR)
            if window.end > self.clock:
                return
            self.records.append(pipeline.runner(clock=lambda: self.now, heartbeat_seconds=0.2).run(window))
        self.check_target()

    def settle_fully(self) -> None:
        """The clock past every window; plain runs until they find nothing to do."""
        self.clock = END
        for _ in range(4 * WINDOWS + 4):
            before = len(self.records)
            self.plain()
            if len(self.records) == before:
                return
        raise AssertionError(f"plain runs never settled: {[(r.pipeline_id, r.pipeline_status.value) for r in self.records[-6:]]}")

    def rerun_everything(self) -> None:
        with Pipeline.load(self.folder) as pipeline:
            runner = pipeline.runner(clock=lambda: self.now, heartbeat_seconds=0.2)
            for window in pipeline.grid.windows_between(DAY, END):
                record = runner.run(window)
                self.records.append(record)
                assert record.pipeline_status is RunStatus.SUCCESS, (record.pipeline_id, record.phase_failed)
                self.check_target()

    # -- what must hold --------------------------------------------------------------------

    def target(self) -> list[tuple[str, int]]:
        return [(k, v) for k, v, _ in self.read(self.folder)]

    def check_target(self) -> None:
        read_at = datetime.now(UTC)
        rows = self.read(self.folder)
        ids = [k for k, _, _ in rows]
        assert len(ids) == len(set(ids)), f"a record is in the target twice: {sorted(k for k in ids if ids.count(k) > 1)}"
        for key, version, loaded_at in rows:
            assert version >= self.seen_versions.get(key, 0), f"{key} went back from version {self.seen_versions[key]} to {version}"
            self.seen_versions[key] = version
            if self.last_read is not None and (key, version) not in self.visible:
                assert loaded_at > self.last_read, (
                    f"{key} version {version} became visible after the read at {self.last_read} but says it was "
                    f"loaded at {loaded_at}: a reader of the rows loaded since its last read never gets it")
        self.visible = {(k, v) for k, v, _ in rows}
        self.last_read = read_at

    def check_accounting(self) -> None:
        for record in self.records:
            if record.pipeline_status is not RunStatus.SUCCESS:
                continue
            source = record.phases["source_count"].phase_specific_details.get("count")
            stage = record.phases["stage_count"].phase_specific_details.get("count")
            transfer = record.phases["source_to_stage_transfer"].phase_specific_details
            rejected = transfer.get("records_failed") or 0
            assert source == stage + rejected, f"{record.pipeline_id}: source {source} != stage {stage} + rejected {rejected}"
            assert transfer.get("rows_written") == stage, f"{record.pipeline_id}: extract wrote {transfer.get('rows_written')}, stage counts {stage}"

    def check_exact(self) -> None:
        expected = sorted((k, v) for k, (_, v) in self.live.items())
        assert self.target() == expected


Histories = Callable[[Path], Contract]


@pytest.fixture(params=list(BUDGET))
def warehouse(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_history(warehouse: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Histories:
    """Makes a history whose stage, target and drive table live in ``warehouse``."""
    if warehouse == "duckdb":
        return Contract
    if warehouse == "mysql-source":
        return _mysql_source(request.getfixturevalue("mariadb"), monkeypatch)
    from tests.connectors.postgres.warehouse import env, new_schema, section

    server = request.getfixturevalue("postgres")
    for key, value in env(server).items():
        monkeypatch.setenv(key, value)

    def make(folder: Path) -> Contract:
        schema = new_schema(server)
        config = copy.deepcopy(CONFIG)
        for name in ("stage_system", "target_system"):
            config[name] = {**{k: v for k, v in config[name].items() if k not in ("type", "path")}, **section(server, schema)}

        def read(_: Path) -> list[Row]:
            with server.admin() as conn:
                if conn.execute("SELECT to_regclass(%s)", [f"{schema}.records"]).fetchone()[0] is None:
                    return []
                return [(str(k), int(v), utc(t)) for k, v, t in conn.execute(
                    f'SELECT "id", "version", "_drivetrain_loaded_at" FROM {schema}.records ORDER BY "id"')]

        return Contract(folder, config=config, read=read)

    return make


def _mysql_source(server: Any, monkeypatch: pytest.MonkeyPatch) -> Histories:
    """Histories whose source is a MariaDB table (string key, DATETIME(6) query field, indexed)."""
    monkeypatch.setenv("CONTRACT_MYSQL_USER", server.user)
    monkeypatch.setenv("CONTRACT_MYSQL_PASSWORD", server.password)

    def make(folder: Path) -> Contract:
        table = f"contract_{uuid.uuid4().hex[:10]}"
        with closing(server.admin(database=server.database)) as admin, admin.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {table} (id VARCHAR(8) PRIMARY KEY, version INT NOT NULL,"
                           " updated_at DATETIME(6) NOT NULL, KEY (updated_at))")
        config = copy.deepcopy(CONFIG)
        config["source_system"] = {"type": "mysql", "host": server.host, "port": server.port, "database": server.database,
                                   "table": table, "query_field": "updated_at", "credentials_ref": "contract_mysql",
                                   "batch_size": 4, "connect_timeout": 5}

        def write(live: dict[str, tuple[datetime, int]]) -> None:
            """The source table becomes ``live``, in one transaction."""
            with closing(server.admin(database=server.database)) as admin:
                with admin.cursor() as cursor:
                    cursor.execute(f"DELETE FROM {table}")
                    cursor.executemany(f"INSERT INTO {table} (id, version, updated_at) VALUES (%s, %s, %s)",
                                       [(k, v, ts.astimezone(UTC).replace(tzinfo=None)) for k, (ts, v) in live.items()])
                admin.commit()

        return Contract(folder, config=config, write_source=write)

    return make


@pytest.mark.slow
@pytest.mark.timeout(1200)  # 25 histories take about two minutes alone; a loaded machine or a shrink takes longer
def test_the_target_follows_the_source_and_every_record_is_accounted_for(
    tmp_path_factory: pytest.TempPathFactory, warehouse: str, new_history: Histories
) -> None:
    @settings(max_examples=BUDGET[warehouse], deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(operations=st.lists(operation, min_size=1, max_size=14), initial=st.integers(0, 8))
    def history_keeps_the_contract(operations: list[tuple[Any, ...]], initial: int) -> None:
        history = new_history(tmp_path_factory.mktemp("contract") / "contract")
        for i in range(initial):
            history.insert(i * 7)
        for op, *args in operations:
            if op == "fail":
                history.plain(fail=True)
            else:
                getattr(history, op)(*args)
        history.settle_fully()
        history.check_accounting()
        history.check_exact()
        history.rerun_everything()
        history.check_accounting()
        history.check_exact()

    history_keeps_the_contract()


def test_an_update_in_the_last_open_window_is_loaded_by_the_final_runs(tmp_path: Path, new_history: Histories) -> None:
    """The example CI's random search found when ticks could pass the grid's end: the clock as far
    as it goes, then a record updated into the open window and a late insert."""
    history = new_history(tmp_path / "contract")
    history.insert(0)  # r000
    for _ in range(3):
        history.tick()
    history.update(14, 26)  # r000, version 2, into the last window, still open
    history.insert(0)  # r001, late, into the first window
    history.settle_fully()
    history.check_accounting()
    history.rerun_everything()
    history.check_exact()
    assert history.target() == [("r000", 2), ("r001", 1)]


def test_a_late_record_and_a_delete_in_one_loaded_window_are_settled_by_plain_runs(tmp_path: Path,
                                                                                   new_history: Histories) -> None:
    """The count of the window stays 2 while its records change: plain runs alone must load it again."""
    history = new_history(tmp_path / "contract")
    history.insert(5)  # r000
    history.insert(20)  # r001
    history.plain()  # loads 00:00
    history.delete(0)  # r000 leaves the source
    history.insert(40)  # r002 arrives late into 00:00
    history.settle_fully()
    history.check_accounting()
    history.check_exact()
    assert history.target() == [("r001", 1), ("r002", 1)]


def test_a_late_record_an_update_and_a_delete_end_exactly_as_the_source(tmp_path: Path, new_history: Histories) -> None:
    """One history of the property, spelled out: every kind of change and run, in a few steps."""
    history = new_history(tmp_path / "contract")
    for minute in (5, 20, 40):
        history.insert(minute)  # r000..r002 in the first window
    history.plain()  # loads 00:00
    history.insert(50)  # r003: late, into the window already loaded
    history.update(0, 10)  # r000 moves to the open window 01:00, version 2
    history.tick()
    history.plain(fail=True)  # 01:00's extract fails; 00:00 still counts 3 (r003 in, r000 out): not reloaded
    history.delete(1)  # r001 deleted at the source
    history.plain()  # resumes 01:00 first, then settles 00:00 (3 -> 2: reloaded, r001 leaves)
    assert history.records[-1].pipeline_status is RunStatus.SUCCESS
    history.settle_fully()
    history.check_accounting()
    history.rerun_everything()
    history.check_exact()
    assert history.target() == [("r000", 2), ("r002", 1), ("r003", 1)]


def test_a_window_published_by_the_run_after_a_failed_publish_is_new_to_a_downstream_reader(
    tmp_path: Path, new_history: Histories
) -> None:
    """The publish fails; the next run resumes at publish and shows rows the failed run wrote:
    a reader that read in between must find them among the rows loaded since (check_target)."""
    history = new_history(tmp_path / "contract")
    for minute in (5, 20, 40):
        history.insert(minute)
    history.fail_publish()
    assert history.records[-1].phase_failed == "publish" and history.target() == []
    history.plain()  # resumes 00:00 at publish
    resumed = history.records[-1]
    assert resumed.pipeline_status is RunStatus.SUCCESS
    assert resumed.phases["stage_to_target_transfer"].carried_from == history.records[-2].pipeline_id
    assert history.target() == [("r000", 1), ("r001", 1), ("r002", 1)]


@pytest.mark.parametrize("point", ["committed:stage_to_target_transfer", "commit:publish"])
def test_a_run_killed_at_a_commit_is_picked_up_by_the_next_plain_run(tmp_path: Path, new_history: Histories,
                                                                      point: str) -> None:
    history = new_history(tmp_path / "contract")
    for minute in (5, 20):
        history.insert(minute)
    history.kill(point)
    assert history.target() == []  # killed before the window was published
    history.plain()
    assert history.records[-1].pipeline_status is RunStatus.SUCCESS
    assert history.target() == [("r000", 1), ("r001", 1)]


def test_a_partial_run_of_the_open_window_is_completed_by_plain_runs(tmp_path: Path, new_history: Histories) -> None:
    history = new_history(tmp_path / "contract")  # 01:00 is open, the time is 01:30
    history.insert(70)  # r000 at 01:10, written before the partial run
    history.partial()
    assert history.records[-1].pipeline_status is RunStatus.SUCCESS
    assert history.target() == [("r000", 1)]
    history.insert(80)  # r001 at 01:20, after the partial run
    history.settle_fully()
    history.check_accounting()
    history.check_exact()
    assert history.target() == [("r000", 1), ("r001", 1)]
