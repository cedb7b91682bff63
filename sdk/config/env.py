"""Environment variables in config values: ``${VAR}`` and ``${VAR:-default}``.

One config can then serve several environments: hosts, databases, paths and table names come
from the environment of the process that loads it::

    "host": "${LAB_DB_HOST}",
    "database": "lab_${DEPLOY_ENV:-dev}",
    "path": "${DATA_DIR:-data}/*.jsonl"

References are replaced in every string value (never in keys, never in comment keys) before
the config is validated, so a resolved value is checked like a written one, and it is the
resolved value that ``drivetrain validate`` shows and the drive table's config snapshot
stores. ``$${`` writes a literal ``${``. Values stay strings: a number or a boolean cannot come
from a variable.

Rules that keep secrets out of config: a reference under a key that names a secret
(``password``, ``api_key``...) is refused with a message pointing at ``credentials_ref``, and
the message for an unset variable names the variable and the JSON path, never a value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import attrs

from .problems import (
    JsonPath,
    Problems,
    format_path,
    is_ignored_key,
    looks_like_secret,
)

__all__ = ["Substitution", "resolve", "substitutions"]

#: ``$${`` (an escaped dollar) or ``${NAME}`` / ``${NAME:-default}``; a default holds no ``}``.
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}:]*)(:-([^}]*))?\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

SECRET_MESSAGE = (
    "a ${...} reference cannot fill a secret; remove this key and name the credentials with "
    "credentials_ref (they then come from the environment or a secrets resolver)"
)


@attrs.frozen
class Substitution:
    """One reference that was replaced: where, what was written, and what it became."""

    path: str
    """JSON path of the value (``source_system.host``)."""
    written: str
    """The value as written in the file."""
    resolved: str
    """The value after the environment was applied."""
    defaulted: tuple[str, ...] = ()
    """Variables that were unset, so their default was used."""


def _expand(text: str, environ: Mapping[str, str], at: JsonPath, problems: Problems,
            defaulted: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, has_default, default = match.group(1), match.group(2) is not None, match.group(3) or ""
        if not _NAME.match(name):
            problems.add(at, f"${{{name}}} is not a variable reference: a name is letters, digits and underscores, "
                             "not starting with a digit (write $${ for a literal ${)")
            return match.group(0)
        if name in environ:
            return environ[name]
        if has_default:
            defaulted.append(name)
            return default
        problems.add(at, f"environment variable {name} is not set (used as ${{{name}}}); set it, or give a default "
                         f"with ${{{name}:-default}}", block=True)
        return match.group(0)

    return _REFERENCE.sub(replace, text)


def _walk(value: Any, environ: Mapping[str, str], problems: Problems, at: JsonPath, found: list[Substitution],
          secret: bool) -> Any:
    if isinstance(value, Mapping):
        return {key: item if is_ignored_key(key) else
                _walk(item, environ, problems, at + (key,), found, secret or looks_like_secret(key))
                for key, item in value.items()}
    if isinstance(value, list):
        return [_walk(item, environ, problems, at + (i,), found, secret) for i, item in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    if secret:
        problems.add(at, SECRET_MESSAGE, block=True)
        return value
    defaulted: list[str] = []
    resolved = _expand(value, environ, at, problems, defaulted)
    if resolved != value:
        found.append(Substitution(format_path(at), value, resolved, tuple(defaulted)))
    return resolved


def resolve(data: Any, problems: Problems, environ: Mapping[str, str] | None = None) -> Any:
    """``data`` with every ``${VAR}`` replaced; unset variables and secret fields go to ``problems``."""
    return _walk(data, os.environ if environ is None else environ, problems, (), [], False)


def substitutions(data: Any, environ: Mapping[str, str] | None = None) -> list[Substitution]:
    """Every reference in ``data`` and what it resolves to now (for ``drivetrain validate``)."""
    found: list[Substitution] = []
    _walk(data, os.environ if environ is None else environ, Problems("config"), (), found, False)
    return found
