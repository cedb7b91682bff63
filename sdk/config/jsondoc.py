"""Config documents as plain JSON: reading a file strictly, and the values built from it.

A missing file or bad JSON names the file (and line and column); duplicate keys and
non-finite numbers are remembered by the parser so :func:`normalize` can report them at their
JSON path. Frozen copies, canonical hashes and dotted-path overrides work on the result.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from drivetrain.errors import ConfigError

from .problems import JsonPath, Problems, show

# -- reading ---------------------------------------------------------------------------------


class _Duplicates(dict):  # type: ignore[type-arg]
    """A JSON object that remembers which of its keys appeared more than once."""

    duplicates: tuple[str, ...] = ()


class _NonFinite:
    def __init__(self, text: str) -> None:
        self.text = text


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = _Duplicates(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        repeated: list[str] = []
        for key, _ in pairs:
            if key in seen and key not in repeated:
                repeated.append(key)
            seen.add(key)
        obj.duplicates = tuple(repeated)
    return obj


def read_json(path: str | Path) -> Any:
    """Parse a config file; a missing file or bad JSON raises ConfigError naming the file."""
    source = str(path)
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found", source=source) from None
    except IsADirectoryError:
        raise ConfigError(
            f"{source}: is a folder; expected a config.json file", source=source
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: is not UTF-8 text ({exc.reason})", source=source) from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot be read: {exc.strerror}", source=source) from None
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_NonFinite)
    except json.JSONDecodeError as exc:
        hint = ""
        if exc.msg.startswith(("Expecting property name", "Expecting value")):
            hint = " (JSON allows no trailing commas or comments; use '_comment' keys instead)"
        raise ConfigError(
            f"{source}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}{hint}",
            source=source,
        ) from None
    except ValueError as exc:  # e.g. integers past the interpreter's digit limit
        raise ConfigError(f"{source}: invalid JSON: {exc}", source=source) from None


def normalize(value: Any, problems: Problems, path: JsonPath = ()) -> Any:
    """A plain-JSON copy of ``value`` (dicts, lists, str, int, float, bool, None).

    Non-finite numbers, non-string keys, duplicate keys and values JSON cannot hold are
    reported; the offending value is dropped (None) so validation can go on.
    """
    if isinstance(value, _NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
        text = value.text if isinstance(value, _NonFinite) else show(value)
        problems.add(path, f"{text} is not allowed; numbers must be finite", block=True)
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        problems.add(path, "is too large a number; integers must fit in 64 bits", block=True)
        return None
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        for key in getattr(value, "duplicates", ()):
            problems.add(path + (key,), "appears more than once in the same object; keep one")
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                problems.add(path, f"key {show(key)} is not a string; JSON keys are strings")
                continue
            out[key] = normalize(item, problems, path + (key,))
        return out
    if isinstance(value, list | tuple):
        return [normalize(item, problems, path + (i,)) for i, item in enumerate(value)]
    problems.add(path, f"a {type(value).__name__} value cannot be stored in JSON", block=True)
    return None


# -- plain JSON values ----------------------------------------------------------------------


def freeze(value: Any) -> Any:
    """A read-only deep copy of a JSON value: mappings become proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """A plain, JSON-able deep copy (dicts and lists) of a frozen or plain JSON value."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


def canonical_hash(data: Any) -> str:
    """sha256 hex digest of the canonical JSON of ``data`` (sorted keys, no whitespace)."""
    text = json.dumps(thaw(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_dotted_path(dotted: str) -> list[str | int]:
    """``"stage_system.columns[0].type"`` as ``["stage_system", "columns", 0, "type"]``."""
    parts: list[str | int] = []
    for piece in dotted.split("."):
        match = re.fullmatch(r"([^\[\]]+)((?:\[[0-9]+\])*)", piece)
        if not match:
            raise ValueError(f"{dotted!r} is not a dotted path like 'stage_system.path'")
        parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[([0-9]+)\]", match.group(2)))
    return parts


def apply_override(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``value`` at a dotted path in plain JSON, creating missing objects on the way.

    :raises ValueError: when the path is malformed or runs through a scalar or past a list.
    """
    *parents, last = split_dotted_path(dotted)
    node: Any = data
    for part, following in zip(parents, [*parents[1:], last][: len(parents)], strict=True):
        if isinstance(node, dict) and isinstance(part, str):
            node = node.setdefault(part, [] if isinstance(following, int) else {})
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            raise ValueError(f"{dotted!r} goes through {show(node)}, which has no {part!r}")
    if isinstance(node, dict) and isinstance(last, str):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last <= len(node):
        node[last : last + 1] = [value]
    else:
        raise ValueError(f"{dotted!r} cannot be set inside {show(node)}")
