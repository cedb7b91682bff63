"""How config problems are collected and said: JSON paths, one line per problem, one error.

Every config check (the loader's, a connector's, a role check's) adds ``(path, message)`` to a
:class:`Problems`; :meth:`Problems.raise_if_any` raises them together as one
:class:`~drivetrain.errors.ConfigError`, ``FILE: json.path: message`` sorted by path. Also here:
the keys a config may hold for people (comments) and the keys that look like secrets, which
every check must treat the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from drivetrain.errors import ConfigError

JsonPath = tuple["str | int", ...]

#: Keys people add for themselves; ignored anywhere in a config.
_IGNORED = re.compile(r"^(_comment|//)")
#: Key names that hold secrets, compared lower-cased with '-' read as '_'.
SECRET_KEYS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "private_key",
        "access_key",
        "secret_access_key",
    }
)
SECRETS_MESSAGE = (
    "secrets do not belong in config; set credentials_ref and provide them through the environment"
)
_SECRET_SUFFIXES = tuple(f"_{name}" for name in SECRET_KEYS)


def is_ignored_key(key: object) -> bool:
    """Whether ``key`` is a comment key or ``$schema``, which every part of a config may hold."""
    return isinstance(key, str) and (key == "$schema" or bool(_IGNORED.match(key)))


def looks_like_secret(key: object) -> bool:
    """Whether a config key names a secret (``password``, ``db_password``, ``API-Key``...)."""
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "_")
    return name in SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


def strip_ignored(value: Any) -> Any:
    """A copy of a JSON value without comment keys and ``$schema``, at any depth."""
    if isinstance(value, Mapping):
        return {k: strip_ignored(v) for k, v in value.items() if not is_ignored_key(k)}
    if isinstance(value, list | tuple):
        return [strip_ignored(v) for v in value]
    return value


def format_path(path: Iterable[str | int]) -> str:
    """``("stage_system", "columns", 2, "type")`` as ``stage_system.columns[2].type``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def show(value: Any) -> str:
    """A short, JSON-flavoured rendering of a value for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def did_you_mean(word: object, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or an empty string."""
    import difflib

    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class Problems:
    """Collects ``(path, message)`` pairs and turns them into one sorted ConfigError."""

    def __init__(self, source: str, prefix: JsonPath = ()) -> None:
        self.source = source
        self.prefix = prefix
        self._items: dict[str, JsonPath] = {}
        self._blocked: set[JsonPath] = set()

    def add(self, path: Iterable[str | int], message: str, *, block: bool = False) -> None:
        """Record a problem at ``path`` (relative to the prefix).

        ``block`` hides later problems at or below the same path: they would only repeat it.
        """
        full = self.prefix + tuple(path)
        if any(full[: len(b)] == b for b in self._blocked):
            return
        if block:
            self._blocked.add(full)
        where = format_path(full)
        line = f"{self.source}: {where}: {message}" if where else f"{self.source}: {message}"
        self._items.setdefault(line, full)

    def __bool__(self) -> bool:
        return bool(self._items)

    def lines(self) -> list[str]:
        """Every problem, one line each, sorted by JSON path."""

        def key(item: tuple[str, JsonPath]) -> tuple[Any, ...]:
            line, path = item
            parts = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in path)
            return (parts, line)

        return [line for line, _ in sorted(self._items.items(), key=key)]

    def raise_if_any(self) -> None:
        """Raise one ConfigError holding every problem, if there is any."""
        if self._items:
            raise ConfigError(self.lines(), source=self.source)
