"""incidents: the registered pipeline, the ServiceNow emulator (through pysnow) -> Snowflake.

The module runs the 10:00 window, then resolves three of its incidents at 11:20 in the
emulator (their ``sys_updated_on`` moves into the next hour), then runs the 11:00 window: the
merge on ``sys_id`` must leave each incident once, in its latest state.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import attrs
import pytest

from drivetrain import Pipeline, RunRecord, RunStatus
from tests.emulators.servicenow import SnEmulator
from tests.servers.fakesnow_server import FakeSnowServer

from .conftest import archive_override, new_databases, sf_rows, snowflake_overrides
from .datasets import (
    INCIDENTS_PER_WINDOW,
    WINDOWS,
    incident_is_valid,
    incident_records,
    incidents_expected,
    resolve,
)

#: Three open incidents of the first window, resolved during the second.
RESOLVED = tuple(r["sys_id"] for r in incident_records()
                 if r["sys_id"].startswith("00") and r["state"]["value"] != "6" and incident_is_valid(r))[:3]
RESOLVED_AT = WINDOWS[1][0] + timedelta(minutes=20)


@attrs.frozen
class Loaded:
    """What the module's runs left behind: records, and the target after each window."""

    records: list[RunRecord]
    incidents: list[dict[str, Any]]
    targets: list[dict[str, tuple[Any, ...]]]
    stage_db: str
    target_db: str
    server: FakeSnowServer


def target_now(server: FakeSnowServer, database: str) -> dict[str, tuple[Any, ...]]:
    rows = sf_rows(server, database, 'SELECT "sys_id", "number", "state_label", "priority_label", "assignment_group_name", '
                                     '"is_resolved", "resolution_hours" FROM ITSM.INCIDENTS')
    return {r[0]: (*r[1:5], bool(r[5]), None if r[6] is None else round(float(r[6]), 2)) for r in rows}


def resolve_in_servicenow(sn: SnEmulator, incidents: list[dict[str, Any]]) -> None:
    """Agents resolve three incidents of the first window; the emulator's records change too."""
    for n, sys_id in enumerate(RESOLVED):
        when = RESOLVED_AT + timedelta(seconds=n)
        resolve(next(r for r in incidents if r["sys_id"] == sys_id), when)
        resolve(next(r for r in sn.tables["incident"] if r["sys_id"] == sys_id), when)


@pytest.fixture(scope="module")
def loaded(sn_server: SnEmulator, fakesnow_server: FakeSnowServer, warehouse_env: dict[str, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    sn_server.reset()
    incidents = incident_records()
    sn_server.add_records("incident", copy.deepcopy(incidents))
    stage_db, target_db = new_databases(fakesnow_server)
    changes = {"source_system.host": sn_server.host, "source_system.use_ssl": False,
               **snowflake_overrides(fakesnow_server, stage_db, target_db), **archive_override(tmp_path_factory.mktemp("archive"))}
    records, targets = [], []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SERVICENOW_ITSM_USER", sn_server.user)
        patch.setenv("SERVICENOW_ITSM_PASSWORD", sn_server.password)
        with Pipeline.load("incidents", overrides=changes) as pipeline:
            runner = pipeline.runner(heartbeat_seconds=0.5)
            for index, (start, _end) in enumerate(WINDOWS):
                if index == 1:
                    resolve_in_servicenow(sn_server, incidents)
                records.append(runner.run(pipeline.grid.window_starting(start)))
                targets.append(target_now(fakesnow_server, target_db))
    yield Loaded(records, incidents, targets, stage_db, target_db, fakesnow_server)
    sn_server.reset()


class TestRuns:
    def test_both_windows_succeed(self, loaded: Loaded) -> None:
        failures = {r.pipeline_id: r.phases[r.phase_failed].error_message for r in loaded.records if r.phase_failed}
        assert [r.pipeline_status for r in loaded.records] == [RunStatus.SUCCESS, RunStatus.SUCCESS], failures

    def test_the_audit_counts_resolved_incidents_in_the_window_of_their_update(self, loaded: Loaded) -> None:
        counts = [(a["source_count"], a["stage_count"], a["target_count"])
                  for a in (r.phases["audit"].phase_specific_details for r in loaded.records)]
        second = INCIDENTS_PER_WINDOW + len(RESOLVED)
        assert counts == [(INCIDENTS_PER_WINDOW, INCIDENTS_PER_WINDOW - 2, INCIDENTS_PER_WINDOW - 2), (second, second - 2, second - 2)]


class TestTarget:
    def test_the_first_window_holds_its_incidents_with_display_labels(self, loaded: Loaded) -> None:
        assert loaded.targets[0] == incidents_expected(incident_records(), WINDOWS[0][1])

    def test_a_resolved_incident_replaces_its_earlier_row(self, loaded: Loaded) -> None:
        before, after = loaded.targets
        assert [before[s][4] for s in RESOLVED] == [False] * len(RESOLVED)
        assert [after[s][1] for s in RESOLVED] == ["Resolved"] * len(RESOLVED)
        assert all(after[s][4] is True and after[s][5] is not None for s in RESOLVED)

    def test_after_both_windows_each_valid_incident_is_there_once_in_its_latest_state(self, loaded: Loaded) -> None:
        want = incidents_expected(loaded.incidents, WINDOWS[1][1])
        assert loaded.targets[1] == want
        total = sf_rows(loaded.server, loaded.target_db, "SELECT COUNT(*) FROM ITSM.INCIDENTS")[0][0]
        assert total == len(want)

    def test_references_keep_their_sys_id_beside_the_label(self, loaded: Loaded) -> None:
        rows = sf_rows(loaded.server, loaded.target_db,
                       'SELECT DISTINCT "assignment_group_id", "assignment_group_name" FROM ITSM.INCIDENTS ORDER BY 2')
        assert [r[1] for r in rows] == ["Database", "Network", "Service Desk"]
        assert all(len(r[0]) == 32 for r in rows)


class TestRejects:
    def test_unreadable_dates_and_unknown_priorities_are_rejected_with_their_reasons(self, loaded: Loaded) -> None:
        reasons = [r[0] for r in sf_rows(loaded.server, loaded.stage_db, 'SELECT "reason" FROM STAGING.STG_INCIDENTS__REJECTS')]
        assert len(reasons) == 2 * len(WINDOWS)
        assert sum("opened_at" in r for r in reasons) == len(WINDOWS)
        assert sum(r == "priority: above the maximum 5" for r in reasons) == len(WINDOWS)


class TestDriveTable:
    def test_the_drive_table_holds_one_successful_run_per_window(self, loaded: Loaded) -> None:
        rows = sf_rows(loaded.server, loaded.stage_db,
                       "SELECT PIPELINE_ID, PIPELINE_STATUS, PHASE_FAILED FROM STAGING.PIPELINE_EXECUTION_DRIVE ORDER BY 1")
        assert rows == [("incidents_20251115T100000Z_run1", "SUCCESS", None),
                        ("incidents_20251115T110000Z_run1", "SUCCESS", None)]
