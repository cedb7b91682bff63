"""The report queries: portable SQL over the drive table, one builder per question.

Every query is written with the store's :class:`~drivetrain.drive.SqlDialect` helpers (JSON
fields, seconds between timestamps, bound parameters) and otherwise plain SQL that DuckDB and
Snowflake both run: ``CASE``, ``COUNT``, ``SUM``, ``AVG``, ``MAX``, ``GROUP BY``, ``UNION ALL``,
``ROW_NUMBER() OVER (...)`` in a subquery, correlated ``EXISTS``. Column aliases are read back
case-insensitively (Snowflake returns unquoted aliases in upper case): see :func:`rows_of`.

A phase's duration comes from its JSON ``start_timestamp`` and ``end_timestamp``. They are
stored as ISO text in UTC, so a plain ``CAST(... AS TIMESTAMP)`` reads them on both engines.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

import attrs

from drivetrain.phase_names import (
    PHASE_NAMES,
    SOURCE_COUNT,
    SOURCE_TO_STAGE_TRANSFER,
    STAGE_TO_TARGET_TRANSFER,
    VARIANT_COLUMN,
)
from drivetrain.sql import drive_phases

#: Runs that ended without failing: SUCCESS, and SKIPPED (the window had nothing to do).
OK_STATUSES = ("SUCCESS", "SKIPPED")
#: A phase's outcome counts over rows of ``status`` and ``retries`` (the phase summary's or the
#: phase documents' fields): executions, failures, retried ones and retried ones that completed.
PHASE_OUTCOMES = ("SUM(CASE WHEN status IN ('COMPLETED', 'FAILED') THEN 1 ELSE 0 END) AS ran, "
                  "SUM(CASE WHEN status = 'FAILED' THEN 1 ELSE 0 END) AS failed, "
                  "SUM(CASE WHEN retries > 0 THEN 1 ELSE 0 END) AS retried, "
                  "SUM(CASE WHEN retries > 0 AND status = 'COMPLETED' THEN 1 ELSE 0 END) AS retried_ok")


class Dialect(Protocol):
    """The parts of :class:`drivetrain.drive.SqlDialect` the queries use."""

    param: str

    def json_text(self, column: str, *path: str) -> str: ...

    def json_number(self, column: str, *path: str) -> str: ...

    def seconds_between(self, start: str, end: str) -> str: ...


class ReportSource(Protocol):
    """What the report reads: a drive store's ``query``, ``dialect`` and ``table_sql``."""

    location: str
    dialect: Any
    table_sql: str

    def query(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, object]]: ...


def rows_of(source: ReportSource, query: Query) -> list[dict[str, Any]]:
    """Run ``query`` on ``source``; every row's keys in lower case."""
    return [{str(k).lower(): v for k, v in row.items()} for row in source.query(query.sql, query.params)]


@attrs.frozen
class Query:
    """SQL text and its bound parameters."""

    sql: str
    params: tuple[Any, ...] = ()


@attrs.frozen
class Field:
    """A field read from a JSON column: named ``alias`` in the result, as text or a number."""

    alias: str
    column: str
    path: tuple[str, ...]
    number: bool = False


@attrs.frozen
class Queries:
    """Builds the report's queries for one drive table.

    :param dialect: the store's SQL helpers.
    :param table: the drive table's qualified, quoted name.
    :param pipelines: only these pipelines (all when empty).
    :param since: only runs that started at or after this instant (None: every run).
    :param windows: the drive table's window summary (see :mod:`drivetrain.sql.drive_windows`),
        when it has one: the questions about whole windows read it instead of the drive table.
    :param phases: the drive table's phase summary (see :mod:`drivetrain.sql.drive_phases`),
        when it has one: the per-phase figures read its narrow rows instead of the phase documents.
    """

    dialect: Dialect
    table: str
    pipelines: tuple[str, ...] = ()
    since: datetime | None = None
    windows: str | None = None
    phases: str | None = None

    # -- building blocks ------------------------------------------------------------------

    def _where(self, *, period: bool = True, extra: str = "", table: str | None = None,
               start: str = "pipeline_start_timestamp") -> tuple[str, tuple[Any, ...]]:
        clauses: list[str] = []
        params: list[Any] = []
        p = self.dialect.param
        if self.pipelines:
            clauses.append(f"pipeline_name IN ({', '.join(p for _ in self.pipelines)})")
            params.extend(self.pipelines)
        if period and self.since is not None:
            if not self.pipelines and getattr(self.dialect, "period_by_pipeline", False):
                # every pipeline, named, so the period is a range of the (pipeline_name,
                # pipeline_start_timestamp) index per pipeline, not a scan of the whole table
                clauses.append(f"pipeline_name IN (SELECT DISTINCT pipeline_name FROM {table or self.table})")
            clauses.append(f"{start} >= {p}")
            params.append(self.since)
        if extra:
            clauses.append(extra)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)

    def _text(self, phase: str, *path: str) -> str:
        return self.dialect.json_text(VARIANT_COLUMN[phase], *path)

    def _number(self, phase: str, *path: str) -> str:
        return self.dialect.json_number(VARIANT_COLUMN[phase], *path)

    def _select(self, keep: str, fields: Sequence[Field], where: str) -> str:
        """``SELECT keep, <fields> FROM table where``, each field named by its alias.

        A dialect that reads several fields of a JSON column from one parse (``json_fields``:
        DuckDB, SQLite) gets each JSON column parsed once per row, in a subquery; the others read
        field by field (Snowflake's VARIANT and PostgreSQL's jsonb are parsed already)."""
        many = getattr(self.dialect, "json_fields", None)
        if many is None:
            reads = [f"{(self.dialect.json_number if f.number else self.dialect.json_text)(f.column, *f.path)} AS {f.alias}"
                     for f in fields]
            return f"SELECT {keep}, {', '.join(reads)} FROM {self.table}{where}"
        columns: dict[str, list[Field]] = {}
        for f in fields:
            columns.setdefault(f.column, []).append(f)
        parsed, reads = [], []
        for n, (column, group) in enumerate(columns.items()):
            parsed.append(f"{many(column, [f.path for f in group])} AS json_{n}")
            reads += [f"{self.dialect.json_item(f'json_{n}', i, number=f.number)} AS {f.alias}"  # type: ignore[attr-defined]
                      for i, f in enumerate(group)]
        fence = getattr(self.dialect, "json_fields_fence", "")
        return f"SELECT {keep}, {', '.join(reads)} FROM (SELECT *, {', '.join(parsed)} FROM {self.table}{where}{fence}) parsed"

    def failed_phase_error(self) -> str:
        """SQL: the error message of the phase named by ``phase_failed``."""
        whens = " ".join(f"WHEN '{name}' THEN {self._text(name, 'error_message')}" for name in PHASE_NAMES)
        return f"CASE phase_failed {whens} END"

    #: What :meth:`phase_rows` reads of each phase: (alias, path in the phase document, as a number),
    #: as the phase summary reads it.
    PHASE_FIELDS = drive_phases.FIELDS

    def phase_rows(self, phases: Sequence[str] = PHASE_NAMES) -> Query:
        """One row per (run, phase): the phase columns (default all ten) unfolded with UNION ALL,
        or, where the dialect says a pass over the table costs more than the rows it keeps
        (``phases_in_one_pass``: SQLite), from one pass (:meth:`_phase_rows_in_one_pass`)."""
        where, params = self._where()
        names = [p for p in PHASE_NAMES if p in phases]
        if getattr(self.dialect, "phases_in_one_pass", False):
            return Query(self._phase_rows_in_one_pass(names, where), params)
        parts = []
        for name in names:
            column = VARIANT_COLUMN[name]
            fields = [Field(alias, column, path, number=number) for alias, path, number in self.PHASE_FIELDS]
            parts.append(self._select(f"pipeline_name, pipeline_id, '{name}' AS phase", fields, where))
        return Query(" UNION ALL ".join(parts), params * len(parts))

    def _phase_rows_in_one_pass(self, names: Sequence[str], where: str) -> str:
        """:meth:`phase_rows` reading the period's drive rows once: each phase column's fields
        parsed in the same pass (``json_fields``), then each run crossed with the phase names
        and the phase's fields picked by name. On SQLite each UNION ALL branch was a scan of
        the wide drive table of its own (a 500-pipeline fleet's week: ten scans, 17 s)."""
        many, item = self.dialect.json_fields, self.dialect.json_item  # type: ignore[attr-defined]
        fence = getattr(self.dialect, "json_fields_fence", "")
        paths = [path for _, path, _ in self.PHASE_FIELDS]
        parsed = ", ".join(f"{many(VARIANT_COLUMN[name], paths)} AS json_{n}" for n, name in enumerate(names))
        pick = " ".join(f"WHEN '{name}' THEN json_{n}" for n, name in enumerate(names))
        listed = " UNION ALL ".join(f"SELECT '{name}' AS phase" for name in names)
        reads = ", ".join(f"{item('phase_fields', i, number=number)} AS {alias}"
                          for i, (alias, _, number) in enumerate(self.PHASE_FIELDS))
        # CROSS JOIN keeps the runs the outer loop: each drive row is read and parsed once
        runs = (f"SELECT pipeline_name, pipeline_id, phase, CASE phase {pick} END AS phase_fields "
                f"FROM (SELECT pipeline_name, pipeline_id, {parsed} FROM {self.table}{where}{fence}) parsed "
                f"CROSS JOIN ({listed}) phase_names{fence}")
        # fenced too: a query over these rows reads each field once, not once per mention
        return f"SELECT pipeline_name, pipeline_id, phase, {reads} FROM ({runs}) phase_fields{fence}"

    # -- the questions --------------------------------------------------------------------

    def run_outcomes(self) -> Query:
        """Metric 1: runs per pipeline by status in the period."""
        where, params = self._where()
        ok = ", ".join(f"'{s}'" for s in OK_STATUSES)
        sql = (
            "SELECT pipeline_name, COUNT(*) AS runs, "
            "SUM(CASE WHEN pipeline_status = 'SUCCESS' THEN 1 ELSE 0 END) AS succeeded, "
            "SUM(CASE WHEN pipeline_status = 'SKIPPED' THEN 1 ELSE 0 END) AS skipped, "
            "SUM(CASE WHEN pipeline_status = 'FAILED' THEN 1 ELSE 0 END) AS failed, "
            "SUM(CASE WHEN pipeline_status = 'RUNNING' THEN 1 ELSE 0 END) AS running, "
            f"AVG(CASE WHEN pipeline_status IN ({ok}) THEN "
            f"{self.dialect.seconds_between('pipeline_start_timestamp', 'pipeline_end_timestamp')} END) AS avg_run_seconds "
            f"FROM {self.table}{where} GROUP BY pipeline_name"
        )
        return Query(sql, params)

    def recovered_failures(self) -> Query:
        """Metric 1 beside the spec's: failed runs in the period whose window a later run completed."""
        where, params = self._where()
        ok = ", ".join(f"'{s}'" for s in OK_STATUSES)
        windows = (
            "SELECT pipeline_name AS w_pipeline, query_window_start_timestamp AS w_start, query_window_end_timestamp AS w_end, "
            f"MAX(CASE WHEN pipeline_status IN ({ok}) THEN pipeline_start_timestamp END) AS last_success "
            f"FROM {self.table} GROUP BY pipeline_name, query_window_start_timestamp, query_window_end_timestamp"
        )
        if self.windows:  # each window's newest success is kept there: no grouping of the whole table
            windows = (f"SELECT pipeline_name AS w_pipeline, window_start AS w_start, window_end AS w_end, "
                       f"ok_start AS last_success FROM {self.windows}")
        sql = (
            "SELECT pipeline_name, SUM(CASE WHEN pipeline_status = 'FAILED' AND last_success > pipeline_start_timestamp "
            "THEN 1 ELSE 0 END) AS recovered "
            f"FROM (SELECT * FROM {self.table}{where}) runs JOIN ({windows}) windows "
            "ON w_pipeline = pipeline_name AND w_start = query_window_start_timestamp AND w_end = query_window_end_timestamp "
            "GROUP BY pipeline_name"
        )
        return Query(sql, params)

    def phase_outcomes(self) -> Query:
        """Metric 2 (and in-phase retries of metric 6): per pipeline and phase."""
        inner = self.phase_rows()
        sql = (
            "SELECT pipeline_name, phase, "
            "SUM(CASE WHEN status IN ('COMPLETED', 'FAILED') THEN 1 ELSE 0 END) AS ran, "
            "SUM(CASE WHEN status = 'FAILED' THEN 1 ELSE 0 END) AS failed, "
            "SUM(CASE WHEN retries > 0 THEN 1 ELSE 0 END) AS retried, "
            "SUM(CASE WHEN retries > 0 AND status = 'COMPLETED' THEN 1 ELSE 0 END) AS retried_ok "
            f"FROM ({inner.sql}) phases GROUP BY pipeline_name, phase"
        )
        return Query(sql, inner.params)

    def _seconds(self) -> str:
        return self.dialect.seconds_between("CAST(started AS TIMESTAMP)", "CAST(ended AS TIMESTAMP)")

    #: A phase execution with both ends recorded. The duration queries count with it inside
    #: ``CASE`` rather than filtering with it: a filter over fields read from one JSON parse
    #: is pushed below the parse by DuckDB and reads the JSON again (0.3 s -> 0.9 s here).
    TIMED = drive_phases.TIMED

    def phase_durations(self) -> Query:
        """Metric 3: phase durations per pipeline, phase and expected duration (as written)."""
        inner = self.phase_rows()
        timed = self.TIMED
        sql = (
            f"SELECT pipeline_name, phase, expected, SUM(CASE WHEN {timed} THEN 1 ELSE 0 END) AS runs, "
            f"AVG(CASE WHEN {timed} THEN {self._seconds()} END) AS avg_seconds, "
            f"MAX(CASE WHEN {timed} THEN {self._seconds()} END) AS max_seconds "
            f"FROM ({inner.sql}) phases GROUP BY pipeline_name, phase, expected "
            f"HAVING SUM(CASE WHEN {timed} THEN 1 ELSE 0 END) > 0"
        )
        return Query(sql, inner.params)

    def phase_stats(self) -> Query:
        """Metrics 2, 3 and 6 in one pass over the phases: per pipeline, phase and expected
        duration, :meth:`phase_outcomes`' counts and :meth:`phase_durations`' times (``runs``:
        the executions timed). Summed over ``expected``, the counts are ``phase_outcomes``'.

        From the phase summary, when there is one, only the phases that did something have
        rows (the others count nothing): a pipeline's phases without one are its zeros."""
        if self.phases:
            where, params = self._where(table=self.phases, start="pipeline_start")
            sql = (
                "SELECT pipeline_name, phase, expected, "
                f"{PHASE_OUTCOMES}, "
                "COUNT(micros) AS runs, AVG(micros) / 1000000.0 AS avg_seconds, MAX(micros) / 1000000.0 AS max_seconds "
                f"FROM {self.phases}{where} GROUP BY pipeline_name, phase, expected"
            )
            return Query(sql, params)
        inner = self.phase_rows()
        timed = self.TIMED
        # each duration computed once, in a subquery the dialect keeps whole (SQLite's exact
        # seconds between two instants are a few string functions: twice per row cost 35 s a week)
        fence = getattr(self.dialect, "json_fields_fence", "")
        timed_rows = f"SELECT *, CASE WHEN {timed} THEN {self._seconds()} END AS took FROM ({inner.sql}) phase_rows{fence}"
        sql = (
            "SELECT pipeline_name, phase, expected, "
            f"{PHASE_OUTCOMES}, "
            f"SUM(CASE WHEN {timed} THEN 1 ELSE 0 END) AS runs, "
            "AVG(took) AS avg_seconds, MAX(took) AS max_seconds "
            f"FROM ({timed_rows}) phases GROUP BY pipeline_name, phase, expected"
        )
        return Query(sql, inner.params)

    def runs_over(self, limits: Sequence[tuple[str, str, str, float]]) -> Query:
        """Metric 3: how many runs of each (pipeline, phase, expected) took over its limit (s);
        only the phases named in ``limits`` are read."""
        if self.phases:
            return self._runs_over_summarized(self.phases, limits)
        p = self.dialect.param
        inner = self.phase_rows(sorted({phase for _, phase, _, _ in limits}) or PHASE_NAMES[:1])
        cases: list[str] = []
        params: list[Any] = []
        for pipeline, phase, expected, seconds in limits:
            cases.append(f"(pipeline_name = {p} AND phase = {p} AND expected = {p} AND {self._seconds()} > {p})")
            params.extend([pipeline, phase, expected, seconds])
        over = f"CASE WHEN {self.TIMED} AND ({' OR '.join(cases) or '1 = 0'}) THEN 1 ELSE 0 END"
        sql = (
            f"SELECT pipeline_name, phase, expected, SUM({over}) AS over_limit "
            f"FROM ({inner.sql}) phases GROUP BY pipeline_name, phase, expected HAVING SUM({over}) > 0"
        )
        params = params + list(inner.params) + params  # in the order the text binds them
        return Query(sql, tuple(params))

    def _runs_over_summarized(self, phases: str, limits: Sequence[tuple[str, str, str, float]]) -> Query:
        """:meth:`runs_over` from the phase summary: whole microseconds against each limit in microseconds."""
        p = self.dialect.param
        where, params = self._where(table=phases, start="pipeline_start")
        cases: list[str] = []
        bound: list[Any] = []
        for pipeline, phase, expected, seconds in limits:
            cases.append(f"(pipeline_name = {p} AND phase = {p} AND expected = {p} AND micros > {p})")
            bound.extend([pipeline, phase, expected, seconds * 1_000_000])
        over = f"CASE WHEN {' OR '.join(cases) or '1 = 0'} THEN 1 ELSE 0 END"
        sql = (f"SELECT pipeline_name, phase, expected, SUM({over}) AS over_limit FROM {phases}{where} "
               f"GROUP BY pipeline_name, phase, expected HAVING SUM({over}) > 0")
        return Query(sql, (*bound, *params, *bound))

    def counts(self) -> Query:
        """Metric 4 and the data-quality dashboard: audited counts, losses, rejected rows."""
        where, params = self._where()
        audit = "audit"
        s2s, s2t = SOURCE_TO_STAGE_TRANSFER, STAGE_TO_TARGET_TRANSFER
        details = "phase_specific_details"

        def field(alias: str, phase: str, *path: str, number: bool = True) -> Field:
            return Field(alias, VARIANT_COLUMN[phase], path, number=number)

        inner = self._select("pipeline_name", [
            field("audit_status", audit, "status", number=False),
            field("source_rows", audit, details, "source_count"),
            field("stage_rows", audit, details, "stage_count"),
            field("target_rows", audit, details, "target_count"),
            field("s2s_loss", audit, details, "source_to_stage_loss_percent"),
            field("s2t_loss", audit, details, "stage_to_target_loss_percent"),
            field("load_status", s2s, "status", number=False),
            field("rejected", s2s, details, "records_failed"),
            field("move_status", s2t, "status", number=False),
            field("dropped", s2t, details, "rows_dropped"),
            field("unplaceable", SOURCE_COUNT, details, "unplaceable", "records"),
            field("publish_status", "publish", "status", number=False),
            field("published", "publish", details, "rows_published"),
        ], where)
        audited = "audit_status IN ('COMPLETED', 'FAILED')"
        sql = (
            "SELECT pipeline_name, "
            f"SUM(CASE WHEN {audited} THEN 1 ELSE 0 END) AS audits, "
            "SUM(CASE WHEN audit_status = 'COMPLETED' THEN 1 ELSE 0 END) AS audits_passed, "
            "SUM(CASE WHEN audit_status = 'FAILED' THEN 1 ELSE 0 END) AS audits_failed, "
            f"SUM(CASE WHEN {audited} THEN source_rows END) AS source_rows, "
            f"SUM(CASE WHEN {audited} THEN stage_rows END) AS stage_rows, "
            f"SUM(CASE WHEN {audited} THEN target_rows END) AS target_rows, "
            f"AVG(CASE WHEN {audited} THEN s2s_loss END) AS avg_s2s_loss, "
            f"MAX(CASE WHEN {audited} THEN s2s_loss END) AS max_s2s_loss, "
            f"AVG(CASE WHEN {audited} THEN s2t_loss END) AS avg_s2t_loss, "
            f"MAX(CASE WHEN {audited} THEN s2t_loss END) AS max_s2t_loss, "
            "SUM(CASE WHEN load_status = 'COMPLETED' THEN rejected END) AS rejected, "
            "SUM(CASE WHEN move_status = 'COMPLETED' THEN dropped END) AS dropped, "
            "MAX(unplaceable) AS unplaceable, "
            "SUM(CASE WHEN publish_status = 'COMPLETED' THEN published END) AS published "
            f"FROM ({inner}) audits GROUP BY pipeline_name"
        )
        return Query(sql, params)

    def freshness(self) -> Query:
        """Metric 5: the newest run that ended without failing, over all time."""
        ok = ", ".join(f"'{s}'" for s in OK_STATUSES)
        if self.windows:  # from the summary: its windows with an OK run
            where, params = self._where(period=False, extra="ok_start IS NOT NULL")
            sql = (f"SELECT pipeline_name, MAX(ok_end) AS last_success_at, MAX(window_end) AS data_through "
                   f"FROM {self.windows}{where} GROUP BY pipeline_name")
            return Query(sql, params)
        where, params = self._where(period=False, extra=f"pipeline_status IN ({ok})")
        sql = (
            "SELECT pipeline_name, MAX(pipeline_end_timestamp) AS last_success_at, "
            "MAX(query_window_end_timestamp) AS data_through "
            f"FROM {self.table}{where} GROUP BY pipeline_name"
        )
        return Query(sql, params)

    def window_recovery(self) -> Query:
        """Metric 6: windows with a failed run in the period, and whether a later run succeeded."""
        where, params = self._where()
        ok = ", ".join(f"'{s}'" for s in OK_STATUSES)
        per_window = (
            "SELECT pipeline_name, query_window_start_timestamp, query_window_end_timestamp, "
            "MIN(CASE WHEN pipeline_status = 'FAILED' THEN pipeline_start_timestamp END) AS first_failure, "
            f"MAX(CASE WHEN pipeline_status IN ({ok}) THEN pipeline_start_timestamp END) AS last_success "
            f"FROM {self.table}{where} "
            "GROUP BY pipeline_name, query_window_start_timestamp, query_window_end_timestamp"
        )
        sql = (
            "SELECT pipeline_name, COUNT(*) AS failed_windows, "
            "SUM(CASE WHEN last_success > first_failure THEN 1 ELSE 0 END) AS recovered "
            f"FROM ({per_window}) windows WHERE first_failure IS NOT NULL GROUP BY pipeline_name"
        )
        return Query(sql, params)

    def latest_runs(self) -> Query:
        """The pipeline-health dashboard: each pipeline's newest run, with its alert settings."""
        where, params = self._where(period=False)
        snap = "config_snapshot"
        inner = (
            "SELECT pipeline_name, pipeline_id, pipeline_status, pipeline_start_timestamp, "
            "pipeline_end_timestamp, query_window_start_timestamp, query_window_end_timestamp, "
            f"phase_failed, {self.failed_phase_error()} AS error_message, "
            f"{self.dialect.json_number(snap, 'monitoring', 'duration_multiplier_threshold')} AS duration_multiplier, "
            f"{self.dialect.json_text(snap, 'monitoring', 'freshness_threshold')} AS freshness_threshold, "
            f"{self.dialect.json_text(snap, 'monitoring', 'alert_on_stale_data')} AS alert_on_stale_data, "
            f"{self.dialect.json_number(snap, 'monitoring', 'success_rate_threshold')} AS success_rate_threshold, "
            "ROW_NUMBER() OVER (PARTITION BY pipeline_name "
            "ORDER BY pipeline_start_timestamp DESC, pipeline_id DESC) AS newest "
            f"FROM {self.table} runs JOIN (SELECT pipeline_name AS newest_name, MAX(pipeline_start_timestamp) AS newest_start "
            f"FROM {self.table}{where} GROUP BY pipeline_name) last_start "
            "ON pipeline_name = newest_name AND pipeline_start_timestamp = newest_start"
        )
        # the window function ranks only each pipeline's runs at its latest start (a fleet's
        # whole table ranked by it took 8.6 s for 4.4M rows; the grouped maximum 0.07 s)
        return Query(f"SELECT * FROM ({inner}) runs WHERE newest = 1", params)

    def failed_runs(self, limit: int) -> Query:
        """The failure-analysis dashboard: failed runs, newest first, and whether a retry fixed them."""
        where, params = self._where(extra="pipeline_status = 'FAILED'")
        ok = ", ".join(f"'{s}'" for s in OK_STATUSES)
        sql = (
            "SELECT pipeline_name, pipeline_id, pipeline_start_timestamp, query_window_start_timestamp, "
            f"query_window_end_timestamp, pipeline_retry_number, phase_failed, {self.failed_phase_error()} AS error_message, "
            f"CASE WHEN EXISTS (SELECT 1 FROM {self.table} later_run WHERE later_run.pipeline_name = failed_run.pipeline_name "
            "AND later_run.query_window_start_timestamp = failed_run.query_window_start_timestamp "
            "AND later_run.query_window_end_timestamp = failed_run.query_window_end_timestamp "
            f"AND later_run.pipeline_status IN ({ok}) "
            "AND later_run.pipeline_start_timestamp > failed_run.pipeline_start_timestamp) THEN 1 ELSE 0 END AS recovered "
            f"FROM {self.table} failed_run{where} "
            f"ORDER BY pipeline_start_timestamp DESC, pipeline_id DESC LIMIT {int(limit)}"
        )
        return Query(sql, params)

    def _reload(self, key: str, *, number: bool = False) -> str:
        read = self._number if number else self._text
        return read(SOURCE_COUNT, "phase_specific_details", "reload", key)

    def _reloaded(self) -> str:
        """The run loaded its window again because the source count changed, or (the count the
        same) its fingerprint: ``records_changed`` is only ever written as true."""
        return f"({self._reload('drift', number=True)} <> 0 OR {self._reload('records_changed')} IS NOT NULL)"

    def reload_count(self) -> Query:
        """How many runs :meth:`reloads` would list without a limit (``reloads``)."""
        where, params = self._where(extra=self._reloaded())
        return Query(f"SELECT COUNT(*) AS reloads FROM {self.table}{where}", params)

    def reloads(self, limit: int) -> Query:
        """Late data: runs that loaded their window again because its source records had changed."""
        reload = self._reload
        where, params = self._where(extra=self._reloaded())
        sql = (
            "SELECT pipeline_name, pipeline_id, pipeline_status, pipeline_start_timestamp, "
            "query_window_start_timestamp, query_window_end_timestamp, "
            f"{reload('previous_run')} AS previous_run, {reload('previous_count', number=True)} AS previous_count, "
            f"{reload('count', number=True)} AS source_count, {reload('reason')} AS reason "
            f"FROM {self.table}{where} ORDER BY pipeline_start_timestamp DESC, pipeline_id DESC LIMIT {int(limit)}"
        )
        return Query(sql, params)

    def failures_by_phase(self) -> Query:
        """The failure-analysis dashboard: where runs stopped (``phase_failed``), per pipeline."""
        where, params = self._where(extra="pipeline_status = 'FAILED'")
        sql = (
            "SELECT pipeline_name, phase_failed, COUNT(*) AS failures "
            f"FROM {self.table}{where} GROUP BY pipeline_name, phase_failed"
        )
        return Query(sql, params)

    def daily(self) -> Query:
        """Runs per target date and outcome, for the charts."""
        where, params = self._where()
        sql = (
            "SELECT target_date, "
            "SUM(CASE WHEN pipeline_status = 'SUCCESS' THEN 1 ELSE 0 END) AS succeeded, "
            "SUM(CASE WHEN pipeline_status = 'SKIPPED' THEN 1 ELSE 0 END) AS skipped, "
            "SUM(CASE WHEN pipeline_status = 'FAILED' THEN 1 ELSE 0 END) AS failed, "
            "SUM(CASE WHEN pipeline_status = 'RUNNING' THEN 1 ELSE 0 END) AS running "
            f"FROM {self.table}{where} GROUP BY target_date ORDER BY target_date"
        )
        return Query(sql, params)
