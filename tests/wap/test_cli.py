"""What the CLI says about the gate: ``show`` points at the pending rows of a run whose audit failed."""

from __future__ import annotations

import duckdb

from tests.cli.conftest import Cli, add_invalid_order, cli, edit_config, scaffold_template, shop  # noqa: F401 - fixtures


def strict_audit(config: dict) -> None:
    config["phases"].setdefault("audit", {})["count_tolerances"] = {"source_to_stage_tolerance_percent": 0}


def test_show_of_a_failed_audit_names_the_pending_table_and_the_query(cli: Cli, shop) -> None:  # noqa: F811
    edit_config(shop, strict_audit)
    add_invalid_order(shop, hour=0)
    cli("run", "./shop")
    result = cli("show", "shop_20250101T000000Z_run1", "--dir", "shop")
    assert result.returncode == 0, result
    assert "outcome: failed at audit" in result.stdout
    history = cli("history", "./shop").stdout
    assert "target unchanged: " in history and "4 rows wait in main.shop__pending" in history
    assert "pending rows (written, not published, not visible in the target): " in result.stdout
    query = next(line for line in result.stdout.splitlines() if "query them: " in line).split("query them: ", 1)[1]
    with duckdb.connect(str(shop / "warehouse.duckdb"), read_only=True) as conn:
        pending = conn.execute(query).fetchall()
    shown = cli("show", "shop_20250101T000000Z_run1", "--dir", "shop", "--json").json()
    assert len(pending) == shown["target_count_phase"]["phase_specific_details"]["count"] > 0
    assert shown["publish_phase"]["status"] == "PENDING"


def test_show_of_a_published_run_has_no_pending_lines(cli: Cli, shop) -> None:  # noqa: F811
    cli("run", "./shop")
    result = cli("show", "shop_20250101T000000Z_run1", "--dir", "shop")
    assert "pending rows" not in result.stdout
    assert "publish" in result.stdout and "rows_published=4" in result.stdout
    assert "published 4" in cli("history", "./shop").stdout
