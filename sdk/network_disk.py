"""Whether a file lives on a network file system, for ``drivetrain validate``'s warnings.

The drive file (SQLite in WAL mode, or DuckDB) and a DuckDB warehouse file keep two processes
apart with file locks, and SQLite's WAL shares memory between the processes using the file.
Over NFS, SMB and the like neither is dependable: two runs on two machines may both believe
they hold the window, and a WAL file shared that way can be damaged. Nothing stops a user from
pointing ``path`` at such a mount, so ``validate`` says so before the first run does.

The file system is read from the mount table (``/proc/self/mounts`` on Linux): the mount
point that holds the file's folder, longest match. Where there is no such table (macOS,
Windows) nothing is said.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

#: The mount table read (Linux); elsewhere the check says nothing.
MOUNTS = Path("/proc/self/mounts")

#: File system types whose locks and shared memory do not hold across machines.
NETWORK_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph", "glusterfs", "lustre",
    "gpfs", "beegfs", "ocfs2", "gfs2", "davfs", "fuse.sshfs", "fuse.glusterfs", "fuse.s3fs",
    "fuse.gcsfuse", "fuse.rclone", "fuse.mountpoint-s3", "fuse.juicefs", "fuse.cephfs", "fuse.davfs",
})


def _unescape(field: str) -> str:
    """A mount table field with its octal escapes (``\\040`` for a space) decoded."""
    if "\\" not in field:
        return field
    return field.encode("latin-1").decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def mount_of(path: Path, table: Iterable[str]) -> tuple[str, str] | None:
    """The (mount point, file system type) that holds ``path``, from mount table lines."""
    best: tuple[str, str] | None = None
    target = str(path)
    for line in table:
        fields = line.split()
        if len(fields) < 3:
            continue
        point, kind = _unescape(fields[1]), fields[2]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, kind)  # a later mount over the same point hides the earlier one
    return best


def _existing(path: Path) -> Path:
    """``path`` resolved, or its nearest folder that exists (a file not made yet is placed there)."""
    path = Path(os.path.abspath(path))
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate.resolve()
    return path


def network_file_system(path: Path) -> tuple[str, str] | None:
    """(mount point, type) when ``path`` is on a network file system, else None (also when
    the mount table cannot be read)."""
    try:
        lines = MOUNTS.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    found = mount_of(_existing(path), lines)
    if found is None or found[1].lower() not in NETWORK_TYPES:
        return None
    return found


def network_disk_warnings(files: Iterable[Path], what: str, elsewhere: str) -> list[str]:
    """``warning:`` lines for ``validate``, one per file of ``what`` on a network file system;
    ``elsewhere`` names where such a file belongs when pipelines run on several machines."""
    lines = []
    for path in files:
        found = network_file_system(path)
        if found is not None:
            point, kind = found
            lines.append(
                f"warning: the {what} {path} is on a network file system ({kind} mounted at {point}), "
                "where file locks do not dependably keep two processes apart: two runs may write it at "
                "once and damage it; move it to a local disk of the machine that runs the pipelines (for "
                f"pipelines on several machines, use {elsewhere})"
            )
    return lines
