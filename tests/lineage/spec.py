"""Checks a received OpenLineage event against the spec, as the installed client models it.

The ``openlineage-python`` client ships its model of the spec as attrs classes generated from
the published JSON schemas (``openlineage.client.generated``): one class per object of the core
schema (``RunEvent``, ``Run``, ``Job``, ``InputDataset``...) and one per facet schema, each class
knowing the schema address it was generated from (``_get_schema()``). The client serialises
events but offers no way back, so :func:`spec_errors` rebuilds the event strictly through those
classes:

- every key must be a field of the class (no unknown keys), every field without a default must
  be there, and values must have the field's type (``str``, ``int`` but not ``bool``, an enum
  value such as ``eventType``, lists and maps of the same, nested classes);
- each facet is rebuilt as the facet class whose schema its ``_schemaURL`` names (so a facet
  without one, or naming a schema the client does not define, is rejected), that class must be a
  facet of the right kind (run, job, dataset, input or output), and it must sit under the key the
  spec gives that facet (``parent``, ``nominalTime``...);
- the classes' own validators run (run ids are UUIDs, times ISO 8601), and this module adds the
  formats the schema states: RFC 3339 date-times, canonical UUID strings, absolute URIs;
- ``schemaURL`` / ``_schemaURL`` and ``producer`` / ``_producer`` are required, as in the spec,
  and ``eventType`` too, since drivetrain always sends it.

:func:`link_errors` checks what no single event can: every parent facet names a run that was
reported, under the job it names.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import types
import typing
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from enum import Enum
from typing import Any
from urllib.parse import urlparse

import attrs
import openlineage.client.generated as generated
from openlineage.client.event_v2 import RunEvent
from openlineage.client.generated import base

#: The key the spec gives each facet drivetrain (or the client, for ``tags``) sends.
#: A facet class not listed here is rejected: add it with the key its schema names.
FACET_KEYS: dict[str, str] = {
    "ParentRunFacet": "parent",
    "NominalTimeRunFacet": "nominalTime",
    "ErrorMessageRunFacet": "errorMessage",
    "TagsRunFacet": "tags",
    "ProcessingEngineRunFacet": "processing_engine",
    "JobTypeJobFacet": "jobType",
    "DocumentationJobFacet": "documentation",
    "TagsJobFacet": "tags",
    "InputStatisticsInputDatasetFacet": "inputStatistics",
    "OutputStatisticsOutputDatasetFacet": "outputStatistics",
}

#: Required by the spec though the client's classes give them defaults.
ALWAYS_REQUIRED = {"schemaURL", "producer", "_schemaURL", "_producer", "eventType"}
DATE_TIMES = {"eventTime", "nominalStartTime", "nominalEndTime"}
UUIDS = {"runId"}
URIS = {"schemaURL", "producer", "_schemaURL", "_producer"}

# RFC 3339 section 5.6 date-time: full date, "T", full time with a mandatory offset
RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)\Z")
FACET_BASES = (base.RunFacet, base.JobFacet, base.DatasetFacet, base.InputDatasetFacet, base.OutputDatasetFacet)


def _facet_classes() -> dict[str, type[base.BaseFacet]]:
    """Every concrete facet class the client defines, by the schema address it was generated from."""
    found: dict[str, type[base.BaseFacet]] = {}
    for module_info in pkgutil.iter_modules(generated.__path__):
        module = importlib.import_module(f"{generated.__name__}.{module_info.name}")
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, base.BaseFacet) and value.__module__ == module.__name__
                    and value not in (base.BaseFacet, *FACET_BASES)):
                found[value._get_schema()] = value
    return found


FACETS = _facet_classes()


def spec_errors(event: Any) -> list[str]:
    """Every way ``event`` (the JSON received, parsed) breaks the spec; empty when it keeps it."""
    errors: list[str] = []
    _build(RunEvent, event, "event", errors)
    return errors


def _format_errors(name: str, value: Any, where: str) -> Iterator[str]:
    if not isinstance(value, str):
        return
    if name in DATE_TIMES and not (RFC3339.match(value) and _parses(value)):
        yield f"{where}: {value!r} is not an RFC 3339 date-time (date, 'T', time and offset)"
    if name in UUIDS and not _is_uuid(value):
        yield f"{where}: {value!r} is not a UUID in its canonical form"
    if name in URIS and not (urlparse(value).scheme and urlparse(value).netloc):
        yield f"{where}: {value!r} is not an absolute URI"


def _parses(value: str) -> bool:
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _build(kind: Any, value: Any, where: str, errors: list[str]) -> Any:
    """``value`` as an instance of the type ``kind``; what does not fit goes to ``errors``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _build_one_of([a for a in args if a is not type(None)], value, where, errors)
    if origin is typing.Literal:
        if value not in args:
            errors.append(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            errors.append(f"{where}: expected a list, got {value!r}")
            return None
        return [_build(args[0], item, f"{where}[{i}]", errors) for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            errors.append(f"{where}: expected an object, got {value!r}")
            return None
        if isinstance(args[1], type) and issubclass(args[1], base.BaseFacet):
            return {k: _facet(args[1], k, v, f"{where}.{k}", errors) for k, v in value.items()}
        return {k: _build(args[1], v, f"{where}.{k}", errors) for k, v in value.items()}
    if isinstance(kind, type) and issubclass(kind, Enum):
        try:
            return kind(value)
        except ValueError:
            errors.append(f"{where}: {value!r} is not one of {[m.value for m in kind]}")
            return None
    if attrs.has(kind):
        return _object(kind, value, where, errors)
    if kind is float:
        kind = (int, float)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        errors.append(f"{where}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _build_one_of(kinds: list[Any], value: Any, where: str, errors: list[str]) -> Any:
    tried: list[str] = []
    for kind in kinds:
        attempt: list[str] = []
        built = _build(kind, value, where, attempt)
        if not attempt:
            return built
        tried.extend(attempt)
    errors.extend(tried)
    return None


def _facet(declared: type[base.BaseFacet], key: str, value: Any, where: str, errors: list[str]) -> Any:
    if not isinstance(value, dict) or "_schemaURL" not in value:
        errors.append(f"{where}: a facet must be an object with a _schemaURL, got {value!r}")
        return None
    facet = FACETS.get(value["_schemaURL"])
    if facet is None:
        errors.append(f"{where}: _schemaURL {value['_schemaURL']!r} names no facet schema the OpenLineage client defines")
        return None
    if not issubclass(facet, declared):
        errors.append(f"{where}: a {facet.__name__} is not a {declared.__name__}")
        return None
    expected = FACET_KEYS.get(facet.__name__)
    if expected is None:
        errors.append(f"{where}: {facet.__name__} has no key in FACET_KEYS (tests/lineage/spec.py): add the spec's key")
    elif key != expected:
        errors.append(f"{where}: the spec names a {facet.__name__} {expected!r}, not {key!r}")
    return _object(facet, value, where, errors)


def _object(cls: type, value: Any, where: str, errors: list[str]) -> Any:
    """An instance of the attrs class ``cls`` from the object ``value``, strictly."""
    if not isinstance(value, dict):
        errors.append(f"{where}: expected a {cls.__name__} object, got {value!r}")
        return None
    attrs.resolve_types(cls)
    fields = {f.name: f for f in attrs.fields(cls)}
    before = len(errors)
    errors.extend(f"{where}.{key}: not a field of {cls.__name__}" for key in value if key not in fields)
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in value:
            if field.default is attrs.NOTHING or name in ALWAYS_REQUIRED:
                errors.append(f"{where}.{name}: required by {cls.__name__}, missing")
            continue
        errors.extend(_format_errors(name, value[name], f"{where}.{name}"))
        built = _build(field.type, value[name], f"{where}.{name}", errors)
        if field.init:
            kwargs[field.alias or name] = built
    if len(errors) > before:
        return None
    try:
        instance = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        errors.append(f"{where}: the client's {cls.__name__} rejects it: {exc}")
        return None
    for name, field in fields.items():  # schemaURL / _schemaURL: set by the class, not given
        if not field.init and name in value and value[name] != getattr(instance, name):
            errors.append(f"{where}.{name}: {value[name]!r}, but a {cls.__name__} is {getattr(instance, name)!r}")
    return instance


def link_errors(events: Iterable[dict[str, Any]]) -> list[str]:
    """Parent facets that name a run no event reported, or a run under another job."""
    events = list(events)
    jobs: dict[str, set[tuple[str, str]]] = {}
    for event in events:
        run, job = event.get("run") or {}, event.get("job") or {}
        jobs.setdefault(str(run.get("runId")), set()).add((job.get("namespace"), job.get("name")))
    errors = [f"run {run}: reported under several jobs {sorted(named)}" for run, named in jobs.items() if len(named) > 1]
    for i, event in enumerate(events):
        parent = ((event.get("run") or {}).get("facets") or {}).get("parent")
        if not isinstance(parent, dict):
            continue
        run = str((parent.get("run") or {}).get("runId"))
        job = ((parent.get("job") or {}).get("namespace"), (parent.get("job") or {}).get("name"))
        if run not in jobs:
            errors.append(f"event {i}: parent run {run} was never reported")
        elif jobs[run] != {job}:
            errors.append(f"event {i}: parent run {run} is of job {sorted(jobs[run])}, the facet says {job}")
    return errors
