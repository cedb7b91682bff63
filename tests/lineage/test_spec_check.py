"""The spec check rejects malformed events: real events from a run, broken one way at a time."""

from __future__ import annotations

import copy
import json
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from drivetrain.testing import FaultPlugin
from tests.lineage.conftest import receiving
from tests.lineage.receiver import Receiver
from tests.lineage.spec import link_errors, spec_errors
from tests.lineage.test_openlineage import _folder, _run

Event = dict[str, Any]


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Event]]:
    """Every event of a run whose load phase failed: parent, error, time and statistics facets."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        server = receiving(monkeypatch, tmp_path_factory)
        try:
            _run(_folder(tmp_path_factory.mktemp("run")), FaultPlugin(fail={"stage_to_target_transfer": 99}))
        finally:
            server.stop()
    assert server.invalid() == {}
    yield server.events


@pytest.fixture
def phase_end(events: list[Event]) -> Event:
    """The FAIL event of the failed phase, a copy to break."""
    (end,) = [e for e in events if e["job"]["name"] == "lab.stage_to_target_transfer" and e["eventType"] == "FAIL"]
    return copy.deepcopy(end)


def _facets(event: Event) -> dict[str, Any]:
    return event["run"]["facets"]


BREAKS: dict[str, tuple[Callable[[Event], Any], str]] = {
    "missing runId": (lambda e: e["run"].pop("runId"), "event.run.runId: required by Run, missing"),
    "runId not a UUID": (lambda e: e["run"].update(runId="run-1"), "event.run.runId: 'run-1' is not a UUID"),
    "runId without dashes": (lambda e: e["run"].update(runId=e["run"]["runId"].replace("-", "")), "not a UUID in its canonical form"),
    "unknown eventType": (lambda e: e.update(eventType="DONE"), "event.eventType: 'DONE' is not one of"),
    "no eventType": (lambda e: e.pop("eventType"), "event.eventType: required by RunEvent, missing"),
    "eventTime without offset": (lambda e: e.update(eventTime="2025-11-15T00:00:00"), "event.eventTime: '2025-11-15T00:00:00' is not an RFC 3339"),
    "eventTime a date": (lambda e: e.update(eventTime="2025-11-15"), "event.eventTime: '2025-11-15' is not an RFC 3339"),
    "no producer": (lambda e: e.pop("producer"), "event.producer: required by RunEvent, missing"),
    "producer not a URI": (lambda e: e.update(producer="drivetrain"), "event.producer: 'drivetrain' is not an absolute URI"),
    "another schemaURL": (lambda e: e.update(schemaURL="https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent"),
                          "event.schemaURL: 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent', but a RunEvent is"),
    "no job": (lambda e: e.pop("job"), "event.job: required by RunEvent, missing"),
    "misspelt job field": (lambda e: e["job"].update(nmae=e["job"].pop("name")), "event.job.nmae: not a field of Job"),
    "unknown top-level key": (lambda e: e.update(extra=1), "event.extra: not a field of RunEvent"),
    "facet without _schemaURL": (lambda e: _facets(e)["nominalTime"].pop("_schemaURL"),
                                 "event.run.facets.nominalTime: a facet must be an object with a _schemaURL"),
    "facet without _producer": (lambda e: _facets(e)["nominalTime"].pop("_producer"),
                                "event.run.facets.nominalTime._producer: required by NominalTimeRunFacet, missing"),
    "facet naming an unknown schema": (lambda e: _facets(e)["nominalTime"].update(_schemaURL="https://example.com/Nominal.json"),
                                       "names no facet schema the OpenLineage client defines"),
    "facet naming another facet's schema": (lambda e: _facets(e)["nominalTime"].update(_schemaURL=_facets(e)["errorMessage"]["_schemaURL"]),
                                            "event.run.facets.nominalTime: the spec names a ErrorMessageRunFacet 'errorMessage', not 'nominalTime'"),
    "facet under another key": (lambda e: _facets(e).update(window=_facets(e).pop("nominalTime")),
                                "event.run.facets.window: the spec names a NominalTimeRunFacet 'nominalTime', not 'window'"),
    "run facet among job facets": (lambda e: e["job"]["facets"].update(parent=_facets(e)["parent"]),
                                   "event.job.facets.parent: a ParentRunFacet is not a JobFacet"),
    "facet missing a required field": (lambda e: _facets(e)["errorMessage"].pop("programmingLanguage"),
                                       "event.run.facets.errorMessage.programmingLanguage: required by ErrorMessageRunFacet, missing"),
    "nominal time without offset": (lambda e: _facets(e)["nominalTime"].update(nominalStartTime="2025-11-15T00:00:00"),
                                    "event.run.facets.nominalTime.nominalStartTime: '2025-11-15T00:00:00' is not an RFC 3339"),
    "parent without run": (lambda e: _facets(e)["parent"].pop("run"), "event.run.facets.parent.run: required by ParentRunFacet, missing"),
    "parent runId not a UUID": (lambda e: _facets(e)["parent"]["run"].update(runId="lab"), "event.run.facets.parent.run.runId: 'lab' is not a UUID"),
    "row count a string": (lambda e: e["inputs"][0]["inputFacets"]["inputStatistics"].update(rowCount="23"),
                           "event.inputs[0].inputFacets.inputStatistics.rowCount: expected int, got '23'"),
    "row count a boolean": (lambda e: e["inputs"][0]["inputFacets"]["inputStatistics"].update(rowCount=True),
                            "event.inputs[0].inputFacets.inputStatistics.rowCount: expected int, got True"),
    "inputs not a list": (lambda e: e.update(inputs=e["inputs"][0]), "event.inputs: expected a list"),
}


def test_the_unbroken_event_keeps_the_spec(phase_end: Event) -> None:
    assert spec_errors(phase_end) == []


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_a_broken_event_is_rejected_with_where_and_why(phase_end: Event, name: str) -> None:
    breaking, expected = BREAKS[name]
    breaking(phase_end)
    errors = spec_errors(phase_end)
    assert any(expected in error for error in errors), errors


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, (*path, i))
    else:
        yield path


def test_every_value_of_every_event_is_type_checked(events: list[Event]) -> None:
    """A string where a number belongs, or a number where a string does, anywhere, is rejected."""
    unchecked = []
    for i, event in enumerate(events):
        for path in _leaves(event):
            broken = copy.deepcopy(event)
            *parents, last = path
            holder = broken
            for step in parents:
                holder = holder[step]
            holder[last] = 7 if isinstance(holder[last], str) else "7"
            if not spec_errors(broken):
                unchecked.append((i, path))
    assert unchecked == []


def test_a_parent_naming_a_run_never_reported_is_a_broken_link(events: list[Event]) -> None:
    assert link_errors(events) == []
    orphan = [e for e in events if e["job"]["name"] != "lab"]
    assert any("was never reported" in error for error in link_errors(orphan))
    moved = copy.deepcopy(events)
    for event in moved:
        if "parent" in event["run"]["facets"]:
            event["run"]["facets"]["parent"]["job"]["name"] = "other"
    assert any("is of job [('drivetrain', 'lab')], the facet says ('drivetrain', 'other')" in e for e in link_errors(moved))


def test_the_receiver_reports_a_broken_event_it_was_sent(phase_end: Event) -> None:
    server = Receiver().start()
    try:
        phase_end["run"].pop("runId")
        request = urllib.request.Request(f"{server.url}/api/v1/lineage", data=json.dumps(phase_end).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            assert response.status == 200
    finally:
        server.stop()
    invalid = server.invalid()
    assert "event.run.runId: required by Run, missing" in invalid["event 0"]
    assert any("was never reported" in error for error in invalid["links"])
