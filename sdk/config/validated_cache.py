"""Remembering which config documents already passed validation, so a fleet loads fast.

Validating a config (the JSON Schema, secrets, cross-key checks) costs about 15 ms; a command
that reads 500 pipelines (``drivetrain status``, ``report``) paid 6 s for it on every call.
Validation depends only on the document and on drivetrain itself, so once a document has
passed, the same document passes again: this module keeps an empty marker file per document
that passed, named by a hash of

* the document as validated: after ``${VAR}`` substitution, so a changed file **or** a
  changed environment variable gives another name and is validated again;
* drivetrain's version, the config schema, and the size and modification time of every module
  of :mod:`drivetrain.config` (an upgrade or an edited check validates everything again).

A marker says nothing but "passed": a document that fails is never remembered and its errors
are reported each time. The markers live in ``$DRIVETRAIN_CACHE_DIR/validated-configs``,
default ``$XDG_CACHE_HOME/drivetrain`` (``~/.cache/drivetrain``). ``DRIVETRAIN_CONFIG_CACHE=off``
turns remembering off; a cache folder that cannot be written is simply not used.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from drivetrain._cache_dir import cache_base

__all__ = ["cache_folder", "known_valid", "remember"]

def cache_folder() -> Path | None:
    """Where the markers live, or None when remembering is off."""
    base = cache_base()
    return None if base is None else base / "validated-configs"


@functools.cache
def _fingerprint() -> str:
    """drivetrain's version, its config schema and its config modules, as one hash."""
    from drivetrain import __version__
    from drivetrain.config.schema_check import _schema_text

    digest = hashlib.sha256(__version__.encode())
    digest.update(_schema_text().encode())
    for module in sorted(Path(__file__).parent.glob("*.py")):
        stat = module.stat()
        digest.update(f"{module.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _marker(document: Any) -> Path | None:
    folder = cache_folder()
    if folder is None:
        return None
    try:
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None  # not plain JSON: validation will say why, every time
    name = hashlib.sha256(f"{_fingerprint()}\n{text}".encode()).hexdigest()
    return folder / name[:2] / name


def known_valid(document: Any) -> bool:
    """Whether this very document (after substitution) passed validation before."""
    marker = _marker(document)
    return marker is not None and marker.exists()


def remember(document: Any) -> None:
    """Note that ``document`` passed validation; never fails (a cache that cannot be written is skipped)."""
    marker = _marker(document)
    if marker is None:
        return
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        return
