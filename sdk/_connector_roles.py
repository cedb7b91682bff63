"""The connectors a pipeline can be given instead of building them from its config.

:meth:`drivetrain.Pipeline.use` (and ``Pipeline(..., connectors=...)``) takes them by role.
This module names the roles, the class each one takes, and says clearly what is wrong with
anything else, before the pipeline changes at all.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping

import attrs

from drivetrain.base import Archive, Connector, Source
from drivetrain.tables import WarehouseTable
from drivetrain.warehouse import Warehouse


@attrs.frozen
class Role:
    """One kind of connector a pipeline uses."""

    key: str
    """Where the pipeline caches it (a warehouse role caches the warehouse, not the table)."""
    kind: type[Connector]
    """The class an object given for this role must be an instance of."""
    replaces: str
    """What in the config it stands in for, for messages."""


ROLES: Mapping[str, Role] = {
    "source": Role("source", Source, "source_system"),
    "stage": Role("stage_wh", Warehouse, "the stage_system warehouse (stage_system.table still names the table)"),
    "target": Role("target_wh", Warehouse, "the target_system warehouse (target_system.table still names the table)"),
    "drive_table": Role("drive_wh", Warehouse, "the drive_table warehouse (drive_table.table still names the table)"),
    "archive": Role("archive", Archive, "phases.stage_cleaning.archive_location"),
}


def checked(connectors: Mapping[str, object]) -> dict[str, Connector]:
    """Cache key -> connector for every role given; TypeError saying what to fix otherwise.

    Everything is checked before anything is returned, so a bad call changes nothing.
    """
    out: dict[str, Connector] = {}
    for name, connector in connectors.items():
        role = ROLES.get(name)
        if role is None:
            close = [name.removesuffix("_system")] if name.removesuffix("_system") in ROLES else []
            close = close or difflib.get_close_matches(name, list(ROLES), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"no connector role {name!r}{hint} (the roles are {', '.join(ROLES)})")
        if not isinstance(connector, role.kind):
            raise TypeError(f"{name}: {_wrong(connector, role)}")
        out[role.key] = connector
    return out


def _wrong(given: object, role: Role) -> str:
    wanted = f"a drivetrain.{role.kind.__name__} instance, replacing {role.replaces}"
    if inspect.isclass(given):
        what = "the class itself" if issubclass(given, role.kind) else f"the class {given.__qualname__}"
        return f"expected {wanted}; got {what}: give an instance"
    got = f"got {type(given).__module__}.{type(given).__qualname__}"
    if isinstance(given, WarehouseTable):
        return f"expected {wanted}; {got}: give its warehouse (.warehouse) instead"
    return f"expected {wanted}; {got}"
