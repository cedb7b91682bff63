"""Paths a user writes, with ``~`` expanded as a shell does."""

from __future__ import annotations

import os
from pathlib import Path


def user_path(value: str | os.PathLike[str]) -> Path:
    """``value`` as a Path, a leading ``~`` or ``~user`` expanded to that home folder.

    A ``~user`` naming no user (or a ``~`` with no home known) is kept as written, as a shell
    keeps it, so the caller's own "not found" message names it; ``Path.expanduser`` raises a
    bare RuntimeError there instead.
    """
    return Path(os.path.expanduser(os.fspath(value)))
