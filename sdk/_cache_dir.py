"""drivetrain's cache folder: what it remembers between commands to start faster.

``$DRIVETRAIN_CACHE_DIR``, default ``$XDG_CACHE_HOME/drivetrain`` (``~/.cache/drivetrain``);
``DRIVETRAIN_CONFIG_CACHE=off`` turns every kind of remembering off. Nothing kept there is
needed: a folder that is removed, or cannot be written, only makes the next start slower.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_base() -> Path | None:
    """The cache folder, or None when remembering is off."""
    if os.environ.get("DRIVETRAIN_CONFIG_CACHE", "").lower() in ("off", "0", "false", "no"):
        return None
    base = os.environ.get("DRIVETRAIN_CACHE_DIR")
    if not base:
        base = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "drivetrain")
    return Path(base)
