"""drivetrain's cache folder: what it remembers between commands to start faster.

``$DRIVETRAIN_CACHE_DIR``, default ``$XDG_CACHE_HOME/drivetrain`` (``~/.cache/drivetrain``);
``DRIVETRAIN_CONFIG_CACHE=off`` turns every kind of remembering off. Nothing kept there is
needed: a folder that is removed, or cannot be written, only makes the next start slower.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def cache_base() -> Path | None:
    """The cache folder, or None when remembering is off."""
    if os.environ.get("DRIVETRAIN_CONFIG_CACHE", "").lower() in ("off", "0", "false", "no"):
        return None
    base = os.environ.get("DRIVETRAIN_CACHE_DIR")
    if not base:
        base = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "drivetrain")
    return Path(base)


def cache_file(kind: str, key: str) -> Path | None:
    """The file remembering ``key`` (any text naming what is remembered) among the cache
    folder's ``kind`` files: ``<cache folder>/<kind>/<32 hex digits>.json``; None when
    remembering is off."""
    base = cache_base()
    if base is None:
        return None
    return base / kind / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def write_json(path: Path, document: Any) -> None:
    """Write ``document`` as JSON to ``path`` whole or not at all (a file of this process renamed
    over it), so a process reading it meanwhile sees the old file or the new one. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(document))
    os.replace(partial, path)
