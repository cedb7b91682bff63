"""Small converters shared by the config model's attrs fields."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from . import jsondoc


def _freeze_options(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return jsondoc.freeze(value)  # type: ignore[no-any-return]


def _optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _duration(text: str) -> timedelta:
    from drivetrain.durations import parse_duration

    return parse_duration(text)


def _optional_duration(text: str | None) -> timedelta | None:
    return None if text is None else _duration(text)
