"""Turn measurements into medians, ratios, target verdicts, JSON and a Markdown table."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: Path name -> what the table calls it, in table order.
LABELS: dict[str, str] = {
    "limit": "`mariadb --batch --quick` dumping the window to /dev/null (the limit)",
    "connectorx_fetch": "connectorx `arrow_stream`, fetch only (no load)",
    "connectorx_duckdb_load": "connectorx `arrow_stream` + DuckDB insert, no dedup (the extract+load limit)",
    "pymysql_fetch": "pymysql streaming cursor, fetch only (no conversion, no load)",
    "drivetrain_s2s_fast": "drivetrain source -> stage, connectorx reader",
    "drivetrain_s2s_pymysql": "drivetrain source -> stage, pymysql reader",
    "dlt_connectorx": "dlt, sql_database with connectorx backend",
    "dlt_pyarrow": "dlt, sql_database with pyarrow backend (pymysql)",
    "dlt_default": "dlt, sql_database with default backend",
    "dlt_connectorx_merge": "dlt, connectorx backend, merge on the key",
    "dlt_pyarrow_merge": "dlt, pyarrow backend, merge on the key (the issue's peer)",
    "drivetrain_push_down": "drivetrain stage -> target push-down (dedup on id)",
    "duckdb_delete_insert_qualify": "hand-written delete window + `INSERT ... SELECT ... QUALIFY`",
    "duckdb_delete_insert_qualify_bounded": "the same under drivetrain's default memory_limit",
    "duckdb_keys_first_bounded": "hand-written dedup sorting only the keys, default memory_limit",
    "duckdb_merge_named": "hand-written `MERGE` naming the columns to set",
    "duckdb_merge_star": "hand-written `MERGE ... UPDATE SET *`",
    "drivetrain_counts": "drivetrain source + stage + target counts",
    "drivetrain_pipeline": "drivetrain whole run (every phase, drive table, audit, publish gate)",
    "drivetrain_pipeline_direct": "drivetrain whole run with publish: direct (no gate)",
    "drivetrain_pipeline_rows_pending": "the same whole run with whole rows pending (publish copies the window again)",
    "drivetrain_pipeline_pymysql": "drivetrain whole run with the pymysql reader",
    "drivetrain_pipeline_1gb": "drivetrain whole run with `memory_limit: 1GB` (large windows insert on every thread)",
}


def median_of(runs: Sequence[Mapping[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarize(measurements: Mapping[str, Mapping[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """``{size: {path: [run, ...]}}`` -> ``{size: {path: {seconds, rows, rows_per_s, rss_mb}}}``."""
    out: dict[str, Any] = {}
    for size, paths in measurements.items():
        out[size] = {}
        for name, runs in paths.items():
            ok = [r for r in runs if r.get("error") is None]
            seconds = median_of(ok, "seconds")
            rows = median_of(ok, "rows")
            out[size][name] = {
                "seconds": seconds,
                "rows": int(rows) if rows is not None else None,
                "rows_per_s": (rows / seconds) if seconds and rows else None,
                "rss_mb": median_of(ok, "rss_mb"),
                "cpu_seconds": median_of(ok, "cpu_seconds"),
                "runs": len(ok),
                "errors": [r["error"] for r in runs if r.get("error") is not None],
            }
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with its measured ratio and whether it is met."""
    def get(size: str, name: str, key: str = "seconds") -> float | None:
        return summary.get(size, {}).get(name, {}).get(key)

    checks: list[dict[str, Any]] = []

    def add(target: str, value: float | None, limit: float, kind: str = "max") -> None:
        met = None if value is None else (value <= limit if kind == "max" else value >= limit)
        checks.append({"target": target, "measured": value, "limit": limit, "kind": kind, "met": met})

    for size in summary:
        add(f"source -> stage (connectorx) / limit, {size}",
            _ratio(get(size, "drivetrain_s2s_fast"), get(size, "limit")), 1.5)
    for size in summary:
        add(f"source -> stage (pymysql) / pymysql fetch-only, {size}",
            _ratio(get(size, "drivetrain_s2s_pymysql"), get(size, "pymysql_fetch")), 1.3)
    for size in summary:
        add(f"speed-up over dlt's fastest backend, {size}",
            _ratio(_fastest_dlt(summary[size]), get(size, "drivetrain_s2s_fast")), 2.0, "min")
    sizes = list(summary)
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        add(f"peak RSS {large} / {small} (connectorx source -> stage)",
            _ratio(get(large, "drivetrain_s2s_fast", "rss_mb"), get(small, "drivetrain_s2s_fast", "rss_mb")), 1.3)
        add(f"peak RSS {large}, MB (connectorx source -> stage)",
            get(large, "drivetrain_s2s_fast", "rss_mb"), 400.0)
    for size in summary:
        add(f"push-down / hand-written delete + insert, {size}",
            _ratio(get(size, "drivetrain_push_down"), get(size, "duckdb_delete_insert_qualify")), 1.2)
    for size in summary:
        data_ops = [get(size, n) for n in ("drivetrain_s2s_fast", "drivetrain_push_down", "drivetrain_counts")]
        known = [v for v in data_ops if v is not None]
        total = sum(known) if len(known) == len(data_ops) else None
        add(f"whole run / sum of its data operations, {size}",
            _ratio(get(size, "drivetrain_pipeline"), total), 1.15)
    for size in summary:
        add(f"whole run with the publish gate / without it (publish: direct), {size} (issue 17)",
            _ratio(get(size, "drivetrain_pipeline"), get(size, "drivetrain_pipeline_direct")), 1.10)
    _issue_22(summary, get, add)
    return checks


def _issue_22(summary: Mapping[str, Any], get: Any, add: Any) -> None:
    """Issue 22's targets: whole-run memory, whole run against its essential operations and
    against dlt, the pymysql reader against its bare fetch."""
    sizes = list(summary)
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        add(f"whole run peak RSS {large} / {small}",
            _ratio(get(large, "drivetrain_pipeline", "rss_mb"), get(small, "drivetrain_pipeline", "rss_mb")), 1.3)
        add(f"whole run peak RSS {large}, MB", get(large, "drivetrain_pipeline", "rss_mb"), 400.0)
    for size in sizes:
        limit, hand = get(size, "connectorx_duckdb_load"), get(size, "duckdb_delete_insert_qualify")
        add(f"whole run / (extract+load limit + hand-written push-down), {size}",
            _ratio(get(size, "drivetrain_pipeline"), limit + hand if limit and hand else None), 1.15)
    for size in sizes:  # the cost of the bounded default: the same whole run given the memory
        limit, hand = get(size, "connectorx_duckdb_load"), get(size, "duckdb_delete_insert_qualify")
        add(f"whole run with memory_limit 1GB / (extract+load limit + hand-written push-down), {size} (not the default)",
            _ratio(get(size, "drivetrain_pipeline_1gb"), limit + hand if limit and hand else None), 1.15)
    for size in sizes:
        add(f"whole run: speed-up over dlt's fastest backend, {size}",
            _ratio(_fastest_dlt(summary[size]), get(size, "drivetrain_pipeline")), 2.0 if size == sizes[0] else 1.5,
            "min")
    for size in sizes:
        add(f"whole run: speed-up over dlt merging on the key, {size}",
            _ratio(get(size, "dlt_connectorx_merge"), get(size, "drivetrain_pipeline")), 4.0, "min")
    for size in sizes:
        add(f"whole run: speed-up over dlt merging on the key, pyarrow backend (the issue's table), {size}",
            _ratio(get(size, "dlt_pyarrow_merge"), get(size, "drivetrain_pipeline")), 4.0, "min")
    for size in sizes:
        add(f"whole run (pymysql reader) / pymysql fetch-only, {size} (issue 22: <= 0.9)",
            _ratio(get(size, "drivetrain_pipeline_pymysql"), get(size, "pymysql_fetch")), 0.9)
    for size in sizes:
        add(f"whole run (pymysql reader) / pymysql fetch-only, CPU time of the process, {size} (issue 22: <= 0.9)",
            _ratio(get(size, "drivetrain_pipeline_pymysql", "cpu_seconds"), get(size, "pymysql_fetch", "cpu_seconds")),
            0.9)
    for size in sizes:
        add(f"source -> stage (pymysql) / pymysql fetch-only, {size} (issue 22: <= 0.9)",
            _ratio(get(size, "drivetrain_s2s_pymysql"), get(size, "pymysql_fetch")), 0.9)


def _fastest_dlt(paths: Mapping[str, Any]) -> float | None:
    times = [v["seconds"] for k, v in paths.items()
             if k.startswith("dlt_") and not k.endswith("_merge") and v.get("seconds")]
    return min(times) if times else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(summary: Mapping[str, Any], checks: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> str:
    """The results as a Markdown page."""
    sizes = list(summary)
    lines = [
        "# drivetrain benchmark results",
        "",
        f"- when: {meta.get('finished_at', '?')}; machine: {meta.get('machine', '?')}",
        f"- data set: {meta.get('shape', 'narrow')}, {meta.get('rows', '?'):,} rows over {meta.get('days', '?')} days in MariaDB "
        f"{meta.get('server_version', '?')} on loopback; windows: {', '.join(sizes)}",
        f"- medians of {meta.get('repetitions', '?')} interleaved runs, each path in its own process; "
        f"load average before / after: {meta.get('load_before', '?')} / {meta.get('load_after', '?')}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in meta.get('versions', {}).items())}",
        f"- drivetrain batch_size {meta.get('batch_size', 50_000):,}; DuckDB settings for drivetrain and the "
        f"hand-written SQL: {meta.get('duckdb') or 'none set (drivetrain: its default memory_limit; hand-written: DuckDB defaults)'}",
        "",
    ]
    head = "| path | " + " | ".join(f"{s} s | {s} CPU s | {s} rows/s | {s} RSS MB" for s in sizes) + " |"
    lines += [head, "|---|" + "---:|" * (4 * len(sizes))]
    names = [n for n in LABELS if any(n in summary[s] for s in sizes)]
    for name in names:
        cells = []
        for size in sizes:
            row = summary[size].get(name)
            if row is None or row["seconds"] is None:
                cells += ["not run" if row is None else "failed", "", "", ""]
                continue
            cells += [_fmt(row["seconds"]), _fmt(row.get("cpu_seconds")), _fmt(row["rows_per_s"], 0),
                      _fmt(row["rss_mb"], 0)]
        lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + " |")
    lines += ["", "## Targets (ratios from this run)", "", "| target | measured | limit | met |", "|---|---:|---:|---|"]
    for check in checks:
        met = {True: "yes", False: "**no**", None: "not measured"}[check["met"]]
        bound = ("<= " if check["kind"] == "max" else ">= ") + _fmt(check["limit"])
        lines.append(f"| {check['target']} | {_fmt(check['measured'])} | {bound} | {met} |")
    errors = [(s, n, e) for s in sizes for n, v in summary[s].items() for e in v["errors"]]
    if errors:
        lines += ["", "## Failed runs", ""] + [f"- {s} {n}: {e}" for s, n, e in errors]
    notes = meta.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write(folder: Path, name: str, document: Mapping[str, Any], page: str) -> tuple[Path, Path]:
    """Write ``name.json`` and ``name.md`` in ``folder`` (via temporary files, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for suffix, text in ((".json", json.dumps(document, indent=2, default=str) + "\n"), (".md", page)):
        target = folder / f"{name}{suffix}"
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(target)
        out.append(target)
    return out[0], out[1]


def publish(folder: Path, name: str, document: Mapping[str, Any], page: str) -> int:
    """:func:`write` the report, print its page, and give the exit status of a finished benchmark."""
    write(folder, name, document, page)
    print(page)
    return 0
