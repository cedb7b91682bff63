"""The connector interfaces: what a source, a warehouse table and an archive must do.

Users subclass these to add a system; the built-in implementations live in
``drivetrain.connectors``. Each class keeps one or two abstract methods and gives the rest a
sensible default. Connectors translate their driver's exceptions into
:class:`~drivetrain.errors.TransientError` / :class:`~drivetrain.errors.PermanentError`
at the boundary, so nothing above them sees a driver exception.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.config import Credentials, SystemConfig
    from drivetrain.unplaceable import Unplaceable
    from drivetrain.window import Window


class Connector(abc.ABC):  # noqa: B024 - an ABC for its subclasses' sake, nothing abstract itself
    """What every connector shares: its config section, its credentials, and a lifecycle.

    :param config: the config section (``source_system``, ``stage_system``...) it was built from.
    :param credentials: the secrets named by the section's ``credentials_ref``, if any.
    """

    #: The ``type`` value in config that selects this connector ("mysql", "duckdb"...).
    type_name: ClassVar[str] = ""
    #: JSON Schema (draft 2020-12) of the whole config section for this connector type.
    #: The config loader validates the section against it, so typos are caught before a run.
    options_schema: ClassVar[Mapping[str, Any]] = {"type": "object"}

    def __init__(self, config: SystemConfig, credentials: Credentials | None = None) -> None:
        self.config = config
        self.credentials = credentials

    def check(self) -> list[str]:
        """Check connectivity and prerequisites; return what was checked, raise on a problem."""
        return []

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Called once the run no longer needs this connector."""

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        """A short, secret-free description for logs and the drive table."""
        return self.type_name or type(self).__name__


class Source(Connector):
    """Where records come from, queried one half-open time window at a time."""

    @abc.abstractmethod
    def count(self, window: Window) -> int:
        """Count the records whose query field lies in ``[window.start, window.end)``.

        Uses exactly the predicate :meth:`extract` uses, so the two agree.
        """

    @abc.abstractmethod
    def extract(self, window: Window) -> Iterator[pa.RecordBatch]:
        """Yield the window's records as Arrow record batches of at most ``batch_size`` rows.

        Memory stays bounded by the batch size whatever the window holds. A stream that ends
        early (lost connection, expired cursor) raises; it never looks like a complete result.

        A source that cannot parse a record may still yield it, with the reserved column
        ``_drivetrain_error`` set to the reason and ``_drivetrain_raw`` to the raw text, so the
        record is rejected with that reason instead of being lost.
        """

    def fingerprint(self, window: Window) -> str | None:
        """A digest of which records the window holds, or None when this source cannot tell.

        Settling (``query_window.settle_horizon``) compares it, beside the count, with the one
        the window's last load recorded: a late record and a deleted one in the same window
        leave the count as it was, not the fingerprint. It must change when a record enters or
        leaves the window (by its key, or the whole record for a source without one) and stay
        equal while the window holds the same records; it is only ever compared with another
        fingerprint of the same source. The default says this source has none: settling then
        compares counts only.
        """
        return None

    def unplaceable(self) -> Unplaceable | None:
        """Records the last :meth:`count` read but could place in no window, or None.

        A source that can meet records without a readable query field (see
        :mod:`drivetrain.unplaceable`) overrides this; the default says it never does.
        """
        return None


class Archive(Connector):
    """Where stage rows go before they are deleted: Parquet files partitioned by date."""

    @abc.abstractmethod
    def write(
        self, pipeline_name: str, target_date: date, run_id: str, batches: Iterator[pa.RecordBatch]
    ) -> ArchiveReceipt:
        """Write the batches for one target_date and verify them; return what was written."""

    def location(self) -> str:
        """Where this archive writes, for the drive table (no secrets)."""
        return self.describe()


class ArchiveReceipt:
    """What an archive wrote: the object URIs and the row count verified by reading back."""

    def __init__(self, uris: list[str], rows: int) -> None:
        self.uris = uris
        self.rows = rows

    def __repr__(self) -> str:
        return f"ArchiveReceipt(uris={self.uris!r}, rows={self.rows})"
