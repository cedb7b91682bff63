"""The one-command demo: a synthetic day of genetic test results, loaded hour by hour.

:func:`generate_source` writes a deterministic JSONL file of lab results for one day, with a
small share of broken records (missing ids, unreadable timestamps, impossible ages) and a few
results sent twice. :func:`run_demo` then runs the registered ``demo`` pipeline over that day,
one hourly window at a time, into a DuckDB file under the demo folder. One window is made to
fail in ``stage_to_target_transfer`` on purpose; the next run picks that window up first and
skips the phases the failed attempt already finished, exactly as a scheduled run would.

The command line (``drivetrain demo``) only renders what this module returns.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from drivetrain._user_path import user_path
from drivetrain.errors import DrivetrainError
from drivetrain.record import RunRecord, RunStatus
from drivetrain.window import Window

#: The day the synthetic source covers; the demo pipeline's schedule starts on it.
DEMO_DAY = date(2025, 11, 15)
#: The local hour whose first attempt fails on purpose.
FAILING_HOUR = 13
#: The phase that fails in that attempt.
FAILING_PHASE = "stage_to_target_transfer"
#: Where ``drivetrain demo`` writes without ``--dir``; the registered demo config points here too.
DEFAULT_DIR = Path("~/.drivetrain/demo")
SEED = 20251115

GENES = {
    "BRCA1": ["c.68_69delAG", "c.5266dupC", "c.181T>G", "c.4035delA"],
    "BRCA2": ["c.5946delT", "c.9097dupA", "c.8537_8538delAG"],
    "TP53": ["c.743G>A", "c.524G>A", "c.818G>A"],
    "CFTR": ["c.1521_1523delCTT", "c.1624G>T", "c.3846G>A"],
    "MLH1": ["c.350C>T", "c.1852_1854delAAG"],
    "APOE": ["c.388T>C", "c.526C>T"],
    "HBB": ["c.20A>T", "c.19G>A"],
    "LDLR": ["c.1646G>A", "c.2312-3C>A"],
}
RESULTS = ["negative"] * 12 + ["positive"] * 3 + ["variant of uncertain significance"] * 3 + ["inconclusive"]
SPECIMENS = ["blood", "blood", "saliva", "buccal swab", "tissue"]
LABS = ["LAB-BOS-01", "LAB-CHI-02", "LAB-SEA-01", "LAB-ATL-03"]
PANELS = ["hereditary cancer", "carrier screening", "cardio", "pharmacogenomics"]
INSTRUMENTS = ["NovaSeq 6000", "NextSeq 2000", "MiSeq"]


@attrs.frozen
class SourceStats:
    """What :func:`generate_source` wrote."""

    path: Path
    records: int
    """Lines in the file."""
    invalid: int
    """Records the stage schema rejects."""
    duplicates: int
    """Records that repeat an earlier test_id in the same hour (dropped on the way to target)."""


def _hour_volume(hour: int, rng: random.Random) -> int:
    """Results reported in one hour: quiet at night, busy in the afternoon."""
    daylight = max(0.0, 1.0 - abs(hour - 14) / 8.0)
    return int(180 + 620 * daylight + rng.randint(0, 60))


def _record(test_no: int, reported: datetime, rng: random.Random) -> dict[str, Any]:
    gene = rng.choice(list(GENES))
    collected = reported - timedelta(days=rng.randint(1, 6), minutes=rng.randint(0, 1439))
    return {
        "test_id": f"GT-{reported:%Y%m%d}-{test_no:06d}",
        "patient_id": f"P{rng.randint(100000, 999999)}",
        "patient_age": rng.randint(0, 95),
        "gene": gene,
        "variant": rng.choice(GENES[gene]),
        "result": rng.choice(RESULTS),
        "specimen_type": rng.choice(SPECIMENS),
        "lab_code": rng.choice(LABS),
        "collected_at": collected.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reported_at": reported.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "metadata": {
            "panel": rng.choice(PANELS),
            "instrument": rng.choice(INSTRUMENTS),
            "read_depth": rng.randint(80, 900),
            "flags": rng.sample(["low_coverage", "rerun", "manual_review", "external_order"], k=rng.randint(0, 2)),
        },
    }


def _break(record: dict[str, Any], kind: int) -> None:
    """Make a record invalid in one of the ways real lab feeds are."""
    if kind == 0:
        record["test_id"] = None
    elif kind == 1:
        record["collected_at"] = "2025-11-31T25:61:00"
    elif kind == 2:
        record["patient_age"] = 212
    else:
        record.pop("patient_id")


def generate_source(path: Path, *, day: date = DEMO_DAY, seed: int = SEED) -> SourceStats:
    """Write one day of synthetic results to ``path`` (JSONL); the same seed gives the same file.

    Every hour holds about 2% invalid records and about 1% repeats of a valid record a few
    minutes later, so every window passes the demo config's tolerances (3% and 2%).
    """
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines: list[dict[str, Any]] = []
    invalid = duplicates = 0
    test_no = 0
    for hour in range(24):
        start = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
        count = _hour_volume(hour, rng)
        n_invalid, n_dupes = round(count * 0.02), round(count * 0.01)
        seconds = sorted(rng.uniform(0, 3600 - 600) for _ in range(count - n_dupes))
        records = []
        for offset in seconds:
            test_no += 1
            records.append(_record(test_no, start + timedelta(seconds=offset), rng))
        broken = rng.sample(range(len(records)), n_invalid)
        for n, index in enumerate(broken):
            _break(records[index], n % 4)
        clean = [r for i, r in enumerate(records) if i not in set(broken)]
        for original in rng.sample(clean, n_dupes):
            again = json.loads(json.dumps(original))
            resent = datetime.fromisoformat(original["reported_at"].replace("Z", "+00:00")) + timedelta(minutes=rng.randint(1, 9))
            again["reported_at"] = resent.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            again["metadata"]["flags"] = [*again["metadata"]["flags"], "resent"]
            records.append(again)
        records.sort(key=lambda r: r["reported_at"])
        lines.extend(records)
        invalid += n_invalid
        duplicates += n_dupes
    with open(path, "w", encoding="utf-8") as fh:
        for record in lines:
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")
    return SourceStats(path=path, records=len(lines), invalid=invalid, duplicates=duplicates)


def demo_paths(folder: Path) -> dict[str, Path]:
    """Where the demo keeps its source, warehouse and archive under ``folder``."""
    return {
        "source": folder / "source" / f"genetic_tests_{DEMO_DAY.isoformat()}.jsonl",
        "warehouse": folder / "warehouse.duckdb",
        "archive": folder / "archive",
    }


def demo_overrides(folder: Path) -> dict[str, str]:
    """Config overrides that point the registered demo pipeline at ``folder``."""
    paths = demo_paths(folder)
    warehouse = str(paths["warehouse"])
    return {
        "source_system.path": str(paths["source"].parent / "*.jsonl"),
        "stage_system.path": warehouse,
        "target_system.path": warehouse,
        "phases.stage_cleaning.archive_location": str(paths["archive"]),
    }


#: The file that marks a folder as the demo's own; without it the demo deletes nothing there.
MARKER = ".drivetrain-demo"
#: Everything the demo may leave in its folder (the DuckDB file and its side files included).
DEMO_ENTRIES = frozenset({
    MARKER, "config.json", "source", "archive",
    "warehouse.duckdb", "warehouse.duckdb.wal", "warehouse.duckdb.tmp", "warehouse.duckdb.locks",
    "drive.duckdb", "drive.duckdb.wal", "drive.duckdb.tmp", "drive.duckdb.locks",
    "drive.sqlite", "drive.sqlite-wal", "drive.sqlite-shm", "drive.sqlite-journal",
})
_CONFIG_COMMENT = "Written by `drivetrain demo`"


class DemoFolderError(DrivetrainError):
    """The demo was pointed at a folder that holds something it did not create."""


def _made_by_an_earlier_demo(folder: Path) -> bool:
    """The marker, or (for folders written before the marker existed) the demo's own config.json."""
    if (folder / MARKER).is_file():
        return True
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and str(config.get("_comment", "")).startswith(_CONFIG_COMMENT)


def _foreign_entries(folder: Path) -> list[str]:
    """What in ``folder`` the demo would not have written, relative to it."""
    foreign = [entry.name for entry in folder.iterdir() if entry.name not in DEMO_ENTRIES]
    source = folder / "source"
    if source.is_dir() and not source.is_symlink():
        foreign += [f"source/{entry.name}" for entry in source.iterdir()
                    if not (entry.name.startswith("genetic_tests_") and entry.name.endswith(".jsonl"))]
    elif source.exists() or source.is_symlink():
        foreign.append("source")
    archive = folder / "archive"
    if archive.is_dir() and not archive.is_symlink():
        foreign += [f"archive/{entry.name}" for entry in archive.iterdir() if entry.name != "pipeline_name=demo"]
    elif archive.exists() or archive.is_symlink():
        foreign.append("archive")
    return sorted(foreign)


def check_folder(folder: Path) -> None:
    """Refuse a folder the demo may not reset: one holding anything an earlier demo did not write.

    An empty or missing folder is fine; so is one an earlier demo made (it holds the
    :data:`MARKER` file) and that holds nothing else. Everything else is someone's data.

    :raises DemoFolderError: saying why and what to do instead.
    """
    if not folder.exists():
        return
    if not folder.is_dir():
        raise DemoFolderError(f"{folder} is a file, not a folder; give --dir a new or empty folder")
    if not any(folder.iterdir()):
        return
    advice = ("The demo replaces its warehouse.duckdb, source/ and archive/, so it only runs in a new or empty "
              "folder or in one an earlier demo made; give --dir another folder")
    if not _made_by_an_earlier_demo(folder):
        raise DemoFolderError(f"{folder} is not empty and was not made by drivetrain demo (it has no {MARKER} "
                              f"file); nothing was changed. {advice}")
    foreign = _foreign_entries(folder)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise DemoFolderError(f"{folder} holds files drivetrain demo did not write ({shown}); nothing was "
                              f"changed. Move them away, or {advice[advice.index('give'):]}")


def reset_folder(folder: Path) -> None:
    """Check ``folder`` with :func:`check_folder`, remove what an earlier demo left there, mark it.

    :raises DemoFolderError: the folder holds something the demo did not write; nothing is removed.
    """
    check_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("warehouse.duckdb", "warehouse.duckdb.wal", "drive.duckdb", "drive.duckdb.wal", "drive.sqlite",
                 "drive.sqlite-wal", "drive.sqlite-shm", "drive.sqlite-journal", "config.json"):
        (folder / name).unlink(missing_ok=True)
    for name in ("archive", "source", "warehouse.duckdb.tmp", "drive.duckdb.tmp"):
        sub = folder / name
        if sub.is_symlink():
            sub.unlink()
        elif sub.is_dir():
            shutil.rmtree(sub)
    (folder / MARKER).write_text(
        "This folder was made by `drivetrain demo`; running the demo here again replaces its contents.\n",
        encoding="utf-8")


@attrs.frozen
class WindowOutcome:
    """One attempt the demo made."""

    window: Window
    record: RunRecord
    deliberate_failure: bool = False
    """This attempt was made to fail on purpose."""

    def count(self, phase: str, key: str = "count") -> int | None:
        state = self.record.phases[phase]
        value = state.phase_specific_details.get(key)
        return int(value) if value is not None else None


@attrs.frozen
class DemoResult:
    """Everything the demo did, for the summary."""

    folder: Path
    warehouse: Path
    source: SourceStats
    outcomes: list[WindowOutcome]
    seconds: float
    """Wall-clock time of the pipeline runs (generation excluded)."""
    tolerances: tuple[float, float] = (0.0, 0.0)
    """The audit's source->stage and stage->target tolerances, in percent."""

    @property
    def final(self) -> list[WindowOutcome]:
        """The last attempt of each window, in window order."""
        last: dict[Window, WindowOutcome] = {}
        for outcome in self.outcomes:
            last[outcome.window] = outcome
        return [last[w] for w in sorted(last)]

    @property
    def succeeded(self) -> bool:
        return all(o.record.pipeline_status is RunStatus.SUCCESS for o in self.final)

    def totals(self) -> dict[str, int]:
        """Counts over the day, from the audit of each window's last attempt."""
        out = {"source": 0, "stage": 0, "target": 0, "rejected": 0, "duplicates": 0}
        for outcome in self.final:
            audit = outcome.record.phases["audit"].phase_specific_details
            transfer_in = outcome.record.phases["source_to_stage_transfer"].phase_specific_details
            transfer_out = outcome.record.phases["stage_to_target_transfer"].phase_specific_details
            out["source"] += int(audit.get("source_count") or 0)
            out["stage"] += int(audit.get("stage_count") or 0)
            out["target"] += int(audit.get("target_count") or 0)
            out["rejected"] += int(transfer_in.get("records_failed") or 0)
            out["duplicates"] += int(transfer_out.get("rows_dropped") or 0)
        return out


def run_demo(
    folder: Path,
    *,
    on_window: Callable[[WindowOutcome], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> DemoResult:
    """Generate the source under ``folder`` and run the demo pipeline over its day.

    :param folder: where the source, the DuckDB file and the archive go (created if needed;
        files of an earlier demo there are replaced).
    :raises DemoFolderError: ``folder`` holds something an earlier demo did not write.
    :param on_window: called after every attempt, for live output.
    :param progress: called with rows moved, for a progress bar.
    :returns: every attempt, in the order they ran.
    """
    from drivetrain.pipeline import Pipeline
    from drivetrain.testing import FaultPlugin

    folder = user_path(folder).resolve()
    reset_folder(folder)
    paths = demo_paths(folder)
    stats = generate_source(paths["source"])
    pipeline = Pipeline.load("demo", overrides=demo_overrides(folder))
    write_folder_config(pipeline, folder)
    outcomes: list[WindowOutcome] = []
    day_end = datetime.combine(DEMO_DAY + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    failing_start = datetime.combine(DEMO_DAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=FAILING_HOUR)
    started = time.monotonic()
    attempts: dict[Window, int] = {}
    try:
        runner = pipeline.runner(progress=progress)
        with _one_connection(pipeline):
            while (window := runner.next_window(now=day_end)) is not None:
                attempts[window] = attempts.get(window, 0) + 1
                if attempts[window] > 2:
                    break  # a window failed again for a real reason: stop, the summary shows it
                deliberate = window.start == failing_start and attempts[window] == 1
                if deliberate:
                    faults = FaultPlugin(fail={FAILING_PHASE: 1}, message="deliberate failure injected by the demo")
                    with faults.installed(), _quiet_run_log():
                        record = runner.run(window)
                else:
                    record = runner.run(window)
                outcome = WindowOutcome(window=window, record=record, deliberate_failure=deliberate)
                outcomes.append(outcome)
                if on_window is not None:
                    on_window(outcome)
    finally:
        pipeline.close()
    audit = pipeline.config.phases.audit
    return DemoResult(folder=folder, warehouse=paths["warehouse"], source=stats, outcomes=outcomes,
                      seconds=time.monotonic() - started,
                      tolerances=(audit.source_to_stage_tolerance_percent, audit.stage_to_target_tolerance_percent))


@contextmanager
def _one_connection(pipeline: Any) -> Iterator[None]:
    """Keep one warehouse connection open for the whole demo.

    The DuckDB connector opens the file for each operation so that other processes can use it
    between operations; a run makes dozens of them, and reopening the file dominates a small
    demo's time. The demo owns its folder, so it holds the connection throughout; nested uses
    on this thread share it. Warehouses without ``connect()`` are left alone. The drive file is
    kept open between runs too (and handed over at once if another process asks for it).
    """
    connect = getattr(pipeline.stage().warehouse, "connect", None)
    if connect is None:
        yield
        return
    with connect(), pipeline.drive_store().keep_open():
        yield


@contextmanager
def _quiet_run_log() -> Iterator[None]:
    """Silence the runner's log (and its traceback) for the failure the demo causes on purpose."""
    logger = logging.getLogger("drivetrain.run")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def write_folder_config(pipeline: Any, folder: Path) -> Path:
    """Save the demo's effective config as ``folder/config.json``.

    That makes the demo folder a pipeline folder of its own, so ``drivetrain history FOLDER``,
    ``drivetrain status --dir FOLDER`` and ``drivetrain run FOLDER`` work on the demo's output.
    """
    config = pipeline.config.snapshot()
    config["_comment"] = (
        "Written by `drivetrain demo`: the registered demo pipeline with its paths pointed at this folder."
    )
    target = folder / "config.json"
    target.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return target


def example_query() -> str:
    """SQL over the drive table a user can paste to see the demo's runs."""
    return (
        "SELECT pipeline_id, pipeline_status, phase_failed, phases_skipped, pipeline_run_duration "
        "FROM pipeline_execution_drive ORDER BY query_window_start_timestamp, pipeline_retry_number"
    )
