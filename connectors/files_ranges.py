"""What the files source remembers of each file it read whole: where its records fall in time.

For each file a count or an extract read to its end, the files source keeps the earliest and
latest instant of its query field (microseconds since 1970, UTC, as the window filter read
them), its number of records, and what it found in no window (the unplaceable tally and the
unreadable lines). The next read of a window that no remembered range meets answers for that
file without opening it: 0 records, the same unplaceable records. A run of an hour with no
record then parses no file (and imports no pyarrow).

A file is known by its path, inode, size, modification and change times (nanoseconds): any
write changes the change time, so a rewrite that keeps the size and the modification time is
read again, as are an added file (no entry) and a removed one (no longer listed). The kernel
stamps change times from a clock that moves by ticks of a few milliseconds, so a second write
in the tick of the first could keep all four: a file changed less than :data:`SETTLED_NS` before
it was looked at is not remembered (the next read reads it; a file still being written never is). Entries are
kept per source setting (format, query field, zone, unit, delimiter, batch size) and per
drivetrain and pyarrow installation, in the cache folder (:mod:`drivetrain._cache_dir`) under
``files/``; ``DRIVETRAIN_CONFIG_CACHE=off`` turns it off. A cache file that does not read back
exactly as written (damaged, edited: its entries carry a digest; of another layout) is ignored
as a whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import attrs

from drivetrain._cache_dir import cache_file, write_json
from drivetrain.unplaceable import SAMPLE_SIZE, Unplaceable

log = logging.getLogger(__name__)

#: Changes whenever the cache file's layout or the meaning of an entry does.
LAYOUT = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

#: How long a file must have been left alone (its change time before the read began) to be remembered.
SETTLED_NS = 50_000_000

#: A file's identity: inode, size, modification and change times in nanoseconds.
StatKey = tuple[int, int, int, int]


def stat_key(path: Path) -> StatKey | None:
    """What tells the file's bytes changed; None when it cannot be looked at."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def settled(key: StatKey, began_ns: int) -> bool:
    """Whether a file of this identity, looked at from ``began_ns`` (``time.time_ns()``) on, had
    been left alone long enough that any later write gives it another change time."""
    return key[3] < began_ns - SETTLED_NS


def microseconds(instant: datetime) -> int:
    """An aware instant as microseconds since 1970 (UTC), as the window filter compares them."""
    return (instant - _EPOCH) // _MICROSECOND


@attrs.frozen
class FileRange:
    """One file as its last whole read found it."""

    key: StatKey
    rows: int
    low: int | None
    """The earliest query field instant (microseconds since 1970, UTC); None: no record has one."""
    high: int | None
    lost: Unplaceable
    """Its records in no window, as a read of this file alone tallies them."""
    unreadable: int

    def meets(self, start: int, end: int) -> bool:
        """Whether a record of the file can be in the half-open window [start, end)."""
        return self.low is not None and self.high is not None and self.low < end and self.high >= start

    def as_json(self) -> list[Any]:
        return [list(self.key), self.rows, self.low, self.high, dict(self.lost.reasons), list(self.lost.sample),
                self.unreadable]

    @classmethod
    def from_json(cls, kept: Any) -> FileRange:
        """The entry as written by :meth:`as_json`; ValueError for anything else."""
        key, rows, low, high, reasons, sample, unreadable = kept
        if not (isinstance(key, list) and len(key) == 4 and all(_count(k) for k in key)):
            raise ValueError("key")
        if not (_count(rows) and _count(unreadable) and isinstance(reasons, dict) and isinstance(sample, list)):
            raise ValueError("counts")
        if (low is None) != (high is None) or (low is not None and not (_int(low) and _int(high) and low <= high)):
            raise ValueError("range")
        if not (all(isinstance(r, str) and _count(n) and n > 0 for r, n in reasons.items())
                and all(isinstance(s, str) for s in sample) and len(sample) <= SAMPLE_SIZE):
            raise ValueError("unplaceable")
        return cls((key[0], key[1], key[2], key[3]), rows, low, high, Unplaceable(Counter(reasons), list(sample)),
                   unreadable)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    return _int(value) and value >= 0


def merge_lost(total: Unplaceable, part: Unplaceable) -> None:
    """Add one file's tally to the tally of the files before it, as one read of them all would.

    A read keeps the first :data:`SAMPLE_SIZE` examples in reading order, so the examples of a
    file read alone, cut to the room left, are those it would give after the files before it.
    """
    total.reasons.update(part.reasons)
    total.sample.extend(part.sample[: max(total.room, 0)])


class Tracker:
    """The range of one file while it is read."""

    def __init__(self) -> None:
        self.rows = 0
        self.low: int | None = None
        self.high: int | None = None

    def add(self, rows: int, low: int | None, high: int | None) -> None:
        self.rows += rows
        if low is not None and high is not None:
            self.low = low if self.low is None else min(self.low, low)
            self.high = high if self.high is None else max(self.high, high)


class RangeCache:
    """The remembered ranges of one source's files (see the module docstring)."""

    def __init__(self, pattern: str, setting: Iterable[Any]) -> None:
        self._file = cache_file("files", json.dumps([pattern, *setting, LAYOUT, _installation()], default=str))
        self._entries: dict[str, FileRange] | None = None
        self._checks: dict[str, tuple[StatKey, list[str]]] = {}
        self._changed = False

    def _loaded(self) -> dict[str, FileRange]:
        if self._entries is None:
            self._entries, self._checks = _read(self._file) if self._file is not None else ({}, {})
        return self._entries

    def known(self, path: Path, key: StatKey | None) -> FileRange | None:
        """The file's range if it was read whole as it is now."""
        if key is None or self._file is None:
            return None
        found = self._loaded().get(str(path))
        return found if found is not None and found.key == key else None

    def remember(self, path: Path, found: FileRange) -> None:
        if self._file is None:
            return
        entries = self._loaded()
        if entries.get(str(path)) != found:  # a file read again as it was needs no write
            entries[str(path)] = found
            self._changed = True

    def known_check(self, path: Path, key: StatKey | None) -> list[str] | None:
        """What ``check()`` said of the file when it was as it is now."""
        if key is None or self._file is None:
            return None
        self._loaded()
        found = self._checks.get(str(path))
        return list(found[1]) if found is not None and found[0] == key else None

    def remember_check(self, path: Path, key: StatKey, lines: list[str]) -> None:
        if self._file is None:
            return
        self._loaded()
        if self._checks.get(str(path)) != (key, list(lines)):
            self._checks[str(path)] = (key, list(lines))
            self._changed = True

    def save(self, files: list[Path]) -> None:
        """Write the entries of ``files`` (others are gone from the source) if any changed."""
        if self._file is None or not self._changed or self._entries is None:
            return
        listed = {str(path) for path in files}
        kept = {path: entry.as_json() for path, entry in self._entries.items() if path in listed}
        checks = {path: [list(key), lines] for path, (key, lines) in self._checks.items() if path in listed}
        try:
            body = {"files": kept, "checks": checks}
            write_json(self._file, {"layout": LAYOUT, "digest": _digest(body), **body})
            self._changed = False
        except OSError as exc:  # remembering is optional: the next read is only slower
            log.debug("cannot keep the files' ranges in %s: %s", self._file, exc)


def _installation() -> list[Any]:
    """drivetrain's version and pyarrow's files: a new reader may read the same bytes otherwise."""
    from drivetrain import __version__

    spec = find_spec("pyarrow")
    origin = spec.origin if spec is not None else None
    key = stat_key(Path(origin)) if origin else None
    return [__version__, origin, key]


def _read(path: Path) -> tuple[dict[str, FileRange], dict[str, tuple[StatKey, list[str]]]]:
    try:
        kept = json.loads(path.read_text())
        if not (isinstance(kept, dict) and kept.get("layout") == LAYOUT and isinstance(kept.get("files"), dict)
                and isinstance(kept.get("checks"), dict)):
            raise ValueError("layout")
        if kept.get("digest") != _digest({"files": kept["files"], "checks": kept["checks"]}):
            raise ValueError("digest")  # a changed byte could move a range: nothing in the file is trusted
        return ({str(name): FileRange.from_json(entry) for name, entry in kept["files"].items()},
                {str(name): _check_entry(entry) for name, entry in kept["checks"].items()})
    except FileNotFoundError:
        return {}, {}
    except (OSError, ValueError, TypeError) as exc:  # damaged or foreign: read the files instead
        log.debug("ignoring the files' ranges in %s: %s", path, exc)
        return {}, {}


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _check_entry(kept: Any) -> tuple[StatKey, list[str]]:
    key, lines = kept
    if not (isinstance(key, list) and len(key) == 4 and all(_count(k) for k in key)
            and isinstance(lines, list) and all(isinstance(line, str) for line in lines)):
        raise ValueError("check")
    return (key[0], key[1], key[2], key[3]), lines
