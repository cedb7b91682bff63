"""The fleet benchmark's hand-written SQL for ``metrics`` and ``report``: every figure of the six
metrics, per-phase ones included, from the drive table itself, and the digest both sides answer.

What the SQL computes (SQLite, through the standard library's ``sqlite3``, over the drive rows
of runs that started in the 7-day period, as drivetrain counts them; see
drivetrain.monitoring.metrics):

1. runs by outcome per pipeline, the average seconds of the runs that ended without failing,
   and the failed runs whose window a later run completed;
2. per pipeline and phase, the executions (COMPLETED or FAILED) and the failed ones;
3. per pipeline, phase and expected duration, the timed executions, their average and longest
   seconds, and how many took longer than the expected duration times the pipeline's
   ``duration_multiplier_threshold`` (from its newest run's config snapshot);
4. per pipeline, the audits, their counts and losses, rejected, dropped, unplaceable and
   published rows;
5. per pipeline, when its newest successful run ended and the end of the newest window one
   loaded (over all time);
6. per pipeline, the windows with a failed run and those a later run completed; the phase
   executions with in-phase retries and those that then completed.

The report forms add their dashboards' rows: each pipeline's newest run, the 50 newest failed
runs, failures by phase and runs per day. Phase documents are read with ``json_extract`` (one
call per document, several paths), seconds with ``julianday``.

:func:`digest` turns either side's answer into the same canonical rows (floats to three
places), so the benchmark can check that drivetrain and this SQL answered the same.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from drivetrain.phase_names import PHASE_NAMES, VARIANT_COLUMN

OK = "('SUCCESS', 'SKIPPED')"
TABLE = "pipeline_execution_drive"
#: The period's runs, through the (pipeline_name, pipeline_start_timestamp) index: every
#: pipeline named, so each one's period is a range of it (the plain filter scans every row).
PERIOD = (f"SELECT * FROM {TABLE} WHERE pipeline_name IN (SELECT DISTINCT pipeline_name FROM {TABLE}) "
          "AND pipeline_start_timestamp >= :since")


def _secs(start: str, end: str) -> str:
    return f"((julianday(substr({end}, 1, 26)) - julianday(substr({start}, 1, 26))) * 86400.0)"


def _expected_seconds(text: str) -> str:
    """'30s', '5m', '2h' as seconds (the durations the fleet's configs use)."""
    return (f"(CAST(substr({text}, 1, length({text}) - 1) AS REAL) * "
            f"CASE substr({text}, -1) WHEN 's' THEN 1 WHEN 'm' THEN 60 WHEN 'h' THEN 3600 WHEN 'd' THEN 86400 END)")


RUNS = (
    "SELECT pipeline_name, count(*), sum(pipeline_status = 'SUCCESS'), sum(pipeline_status = 'SKIPPED'), "
    "sum(pipeline_status = 'FAILED'), sum(pipeline_status = 'RUNNING'), "
    f"avg(CASE WHEN pipeline_status IN {OK} THEN {_secs('pipeline_start_timestamp', 'pipeline_end_timestamp')} END), "
    f"sum(CASE WHEN pipeline_status = 'FAILED' THEN EXISTS (SELECT 1 FROM {TABLE} later WHERE later.pipeline_name = d.pipeline_name "
    "AND later.query_window_start_timestamp = d.query_window_start_timestamp "
    "AND later.query_window_end_timestamp = d.query_window_end_timestamp "
    f"AND later.pipeline_status IN {OK} AND later.pipeline_start_timestamp > d.pipeline_start_timestamp) END) "
    f"FROM ({PERIOD}) d GROUP BY pipeline_name"
)

_PICK = " ".join(f"WHEN '{name}' THEN {VARIANT_COLUMN[name]}" for name in PHASE_NAMES)
_NAMES = " UNION ALL ".join(f"SELECT '{name}'" for name in PHASE_NAMES)
PHASES = (
    "WITH multiplier AS MATERIALIZED (SELECT d.pipeline_name, coalesce(json_extract(config_snapshot, "
    f"'$.monitoring.duration_multiplier_threshold'), 2.0) AS m FROM {TABLE} d JOIN (SELECT pipeline_name AS newest_name, "
    f"max(pipeline_start_timestamp) AS newest FROM {TABLE} GROUP BY pipeline_name) ON d.pipeline_name = newest_name "
    "AND d.pipeline_start_timestamp = newest), "
    f"names(phase) AS ({_NAMES}), "
    "docs AS MATERIALIZED (SELECT d.pipeline_name, n.phase, json_extract(CASE n.phase " + _PICK + " END, '$.status', "
    f"'$.start_timestamp', '$.end_timestamp', '$.expected_run_duration', '$.retry_number') AS f FROM ({PERIOD}) d CROSS JOIN names n), "
    "fields AS MATERIALIZED (SELECT pipeline_name, phase, f ->> 0 AS status, f ->> 1 AS started, f ->> 2 AS ended, "
    "f ->> 3 AS expected, f ->> 4 AS retries FROM docs), "
    f"timed AS MATERIALIZED (SELECT *, CASE WHEN status IN ('COMPLETED', 'FAILED') AND started IS NOT NULL AND ended IS NOT NULL "
    f"THEN {_secs('started', 'ended')} END AS took FROM fields) "
    "SELECT t.pipeline_name, phase, expected, sum(status IN ('COMPLETED', 'FAILED')), sum(status = 'FAILED'), "
    "sum(retries > 0), sum(retries > 0 AND status = 'COMPLETED'), count(took), avg(took), max(took), "
    f"sum(took > {_expected_seconds('expected')} * coalesce(m.m, 2.0)) "
    "FROM timed t LEFT JOIN multiplier m ON m.pipeline_name = t.pipeline_name GROUP BY t.pipeline_name, phase, expected"
)

_AUDIT = ("audit_phase", "'$.status', '$.phase_specific_details.source_count', '$.phase_specific_details.stage_count', "
          "'$.phase_specific_details.target_count', '$.phase_specific_details.source_to_stage_loss_percent', "
          "'$.phase_specific_details.stage_to_target_loss_percent'")
COUNTS = (
    "SELECT pipeline_name, sum(a ->> 0 IN ('COMPLETED', 'FAILED')), sum(a ->> 0 = 'COMPLETED'), sum(a ->> 0 = 'FAILED'), "
    + ", ".join(f"{fn}(CASE WHEN a ->> 0 IN ('COMPLETED', 'FAILED') THEN a ->> {i} END)"
                for fn, i in (("sum", 1), ("sum", 2), ("sum", 3), ("avg", 4), ("max", 4), ("avg", 5), ("max", 5)))
    + ", sum(CASE WHEN l ->> 0 = 'COMPLETED' THEN l ->> 1 END), sum(CASE WHEN m ->> 0 = 'COMPLETED' THEN m ->> 1 END), "
    "max(json_extract(source_count_phase, '$.phase_specific_details.unplaceable.records')), "
    "sum(CASE WHEN p ->> 0 = 'COMPLETED' THEN p ->> 1 END) "
    f"FROM (SELECT pipeline_name, source_count_phase, json_extract({_AUDIT[0]}, {_AUDIT[1]}) AS a, "
    "json_extract(source_to_stage_transfer_phase, '$.status', '$.phase_specific_details.records_failed') AS l, "
    "json_extract(stage_to_target_transfer_phase, '$.status', '$.phase_specific_details.rows_dropped') AS m, "
    "json_extract(publish_phase, '$.status', '$.phase_specific_details.rows_published') AS p "
    f"FROM ({PERIOD}) LIMIT -1) GROUP BY pipeline_name"  # LIMIT: kept whole, each document parsed once
)

FRESHNESS = (f"SELECT pipeline_name, max(pipeline_end_timestamp), max(query_window_end_timestamp) FROM {TABLE} "
             f"WHERE pipeline_status IN {OK} GROUP BY pipeline_name")

WINDOWS = (
    "SELECT pipeline_name, count(*), sum(ok > failed_at) FROM (SELECT pipeline_name, "
    "min(CASE WHEN pipeline_status = 'FAILED' THEN pipeline_start_timestamp END) AS failed_at, "
    f"max(CASE WHEN pipeline_status IN {OK} THEN pipeline_start_timestamp END) AS ok FROM ({PERIOD}) "
    "GROUP BY pipeline_name, query_window_start_timestamp, query_window_end_timestamp) WHERE failed_at IS NOT NULL "
    "GROUP BY pipeline_name"
)

#: The report's dashboards beside the metrics: newest run per pipeline, 50 newest failed runs,
#: failures by phase, runs per day.
DASHBOARDS = (
    f"SELECT pipeline_name, pipeline_id, pipeline_status, max(pipeline_start_timestamp) FROM {TABLE} GROUP BY pipeline_name",
    f"SELECT pipeline_name, pipeline_id, phase_failed FROM ({PERIOD}) WHERE pipeline_status = 'FAILED' "
    "ORDER BY pipeline_start_timestamp DESC, pipeline_id DESC LIMIT 50",
    f"SELECT pipeline_name, phase_failed, count(*) FROM ({PERIOD}) WHERE pipeline_status = 'FAILED' GROUP BY 1, 2",
    f"SELECT target_date, sum(pipeline_status = 'SUCCESS'), sum(pipeline_status = 'FAILED') FROM ({PERIOD}) GROUP BY 1",
)


def answer(conn: Any, since: str, *, dashboards: bool = False) -> dict[str, list[list[Any]]]:
    """The six metrics' figures (and the report's dashboards when asked), as :func:`digest` reads them."""
    bind = {"since": since}

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return conn.execute(sql, bind).fetchall()

    phases = rows(PHASES)
    retried: dict[str, list[int]] = {}
    for name, _phase, _expected, _ran, _failed, tried, tried_ok, *_ in phases:
        got = retried.setdefault(name, [0, 0])
        got[0] += tried or 0
        got[1] += tried_ok or 0
    outcomes: dict[tuple[str, str], list[int]] = {}
    for name, phase, _expected, ran, failed, *_ in phases:
        got = outcomes.setdefault((name, phase), [0, 0])
        got[0] += ran or 0
        got[1] += failed or 0
    windows = {r[0]: r[1:] for r in rows(WINDOWS)}
    out = {
        "success_rates": [[*r[:6], r[6], r[7]] for r in rows(RUNS)],
        "phase_failures": [[name, phase, *v] for (name, phase), v in outcomes.items()],
        "durations": [[r[0], r[1], r[2], r[7], r[8], r[9], r[10] or 0] for r in phases if r[7]],
        "count_mismatches": [list(r) for r in rows(COUNTS)],
        "freshness": [[r[0], _iso(r[1]), _iso(r[2])] for r in rows(FRESHNESS)],
        "retries": [[name, *(windows.get(name) or (0, 0)), *tried] for name, tried in retried.items()],
    }
    if dashboards:
        for i, sql in enumerate(DASHBOARDS):
            rows(sql)
            out[f"dashboard_{i}"] = []  # read, as the report reads them; not part of the digest
    return out


def from_metrics(data: dict[str, Any]) -> dict[str, list[list[Any]]]:
    """The same figures from drivetrain's answer (``Metrics.to_json()``, as ``report --json`` prints it)."""
    def pick(section: str, *keys: str) -> list[list[Any]]:
        return [[item[k] for k in keys] for item in data[section]]

    retries = pick("retries", "pipeline", "failed_windows", "recovered_windows", "phase_retries", "phase_retries_recovered")
    return {
        "success_rates": pick("success_rates", "pipeline", "runs", "succeeded", "skipped", "failed", "running",
                              "avg_run_seconds", "recovered"),
        "phase_failures": pick("phase_failures", "pipeline", "phase", "ran", "failed"),
        "durations": pick("durations", "pipeline", "phase", "expected", "runs", "avg_seconds", "max_seconds", "over_threshold"),
        "count_mismatches": pick("count_mismatches", "pipeline", "audits", "audits_passed", "audits_failed", "source_rows",
                                 "stage_rows", "target_rows", "avg_source_to_stage_loss_percent",
                                 "max_source_to_stage_loss_percent", "avg_stage_to_target_loss_percent",
                                 "max_stage_to_target_loss_percent", "rejected", "dropped", "unplaceable", "published"),
        "freshness": [[f["pipeline"], _iso(f["last_success_at"]), _iso(f["data_through"])] for f in data["freshness"]],
        "retries": retries,
    }


def digest(figures: dict[str, list[list[Any]]]) -> dict[str, Any]:
    """Canonical rows (sorted; numbers to three places, NULL sums as 0) and their hash."""
    canon = {}
    for section in sorted(k for k in figures if not k.startswith("dashboard_")):
        canon[section] = sorted(json.dumps([_canon(v) for v in row]) for row in figures[section])
    text = json.dumps(canon, sort_keys=True)
    return {"sha": hashlib.sha256(text.encode()).hexdigest()[:16], "rows": sum(len(v) for v in canon.values()),
            "canonical": canon}


def _canon(value: Any) -> Any:
    if value is None:  # an empty sum: drivetrain prints 0
        return 0.0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return round(float(value), 3) + 0.0
    return value


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return datetime.fromisoformat(str(value)).isoformat()
