"""Every error drivetrain raises on purpose.

The tree::

    DrivetrainError
    ├── ConfigError            a config file is wrong; carries the file and the JSON path
    ├── ConnectorError         a source, warehouse or archive failed
    │   ├── TransientError     worth retrying: timeouts, lock waits, throttling, lost connections
    │   └── PermanentError     retrying will not help: bad credentials, missing table, bad SQL
    │       └── MissingExtraError  a connector's client library is not installed
    ├── LeaseError             another run holds the window (or took it over from us)
    ├── WindowNotEnded         a window was asked for before it ended, without allowing a partial run
    ├── PhaseFailed            a phase reported failure (``skip_dag_run`` or ``error_message``)
    │   ├── AuditFailed        counts are out of tolerance
    │   └── PhaseTimeout       the phase ran past its ``timeout_minutes``
    └── PipelineNotFound       no registered pipeline or folder with that name

Connectors translate their driver's exceptions at the boundary (``raise TransientError(...)
from exc``), so phases and the runner only ever see this tree. Messages say what to do.
"""

from __future__ import annotations


class DrivetrainError(Exception):
    """Root of every error drivetrain raises on purpose."""


class ConfigError(DrivetrainError):
    """A configuration file is invalid.

    ``problems`` holds one line per problem, each ``file: json.path: what is wrong``.
    """

    def __init__(self, problems: list[str] | str, *, source: str = "config") -> None:
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(self.problems))


class ConnectorError(DrivetrainError):
    """A source, warehouse, archive or notifier failed."""

    #: Whether running the same operation again may succeed.
    transient: bool = False


class TransientError(ConnectorError):
    """Worth retrying with backoff: timeouts, lock waits, throttling, dropped connections."""

    transient = True


class PermanentError(ConnectorError):
    """Retrying will not help until someone fixes the cause (credentials, schema, SQL, data)."""


class MissingExtraError(PermanentError):
    """A connector needs a client library that is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"the {package!r} package is not installed: pip install 'drivetrain[{extra}]'"
        )


class LeaseError(DrivetrainError):
    """Another run holds the lease of this pipeline and window, or took it over from us."""

    def __init__(self, message: str, *, holder: str | None = None) -> None:
        self.holder = holder
        super().__init__(message)


class WindowNotEnded(DrivetrainError):
    """A run of a window that has not ended yet was asked for without allowing a partial run."""


class PhaseFailed(DrivetrainError):
    """A phase reported failure through its result rather than by raising."""

    def __init__(self, phase: str, message: str) -> None:
        self.phase = phase
        super().__init__(message)


class AuditFailed(PhaseFailed):
    """Counts between source, stage and target are out of the configured tolerance."""


class PhaseTimeout(PhaseFailed):
    """A phase ran longer than its ``timeout_minutes`` and was cancelled."""


class PipelineNotFound(DrivetrainError):
    """No registered pipeline and no folder holding ``config.json`` has that name."""
