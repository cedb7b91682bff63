"""Helpers the SQL source tests share: a source on a test server, reading a window whole."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from drivetrain.config import SystemConfig
from drivetrain.secrets import resolve_credentials

if TYPE_CHECKING:
    from drivetrain.base import Source
    from drivetrain.window import Window

S = TypeVar("S", bound="Source")


def server_source(
    source_type: type[S],
    server: Any,
    kind: str,
    options: dict[str, Any],
    *,
    ref: str,
    user: str | None,
    password: str | None,
    base_dir: Path,
    drop_none: bool = False,
) -> S:
    """A ``kind`` source on ``server``'s ``events`` table, ``options`` overriding any key
    (``drop_none``: a None value removes the key), logged in as ``user`` / ``password`` (the
    server's test role by default) through the credentials named ``ref``."""
    section: dict[str, Any] = {
        "type": kind,
        "host": server.host,
        "port": server.port,
        "database": server.database,
        "table": "events",
        "query_field": "created_at",
        "credentials_ref": ref,
    }
    section.update(options)
    if drop_none:
        section = {k: v for k, v in section.items() if v is not None}
    config = SystemConfig.from_section("source_system", section, base_dir=base_dir, source_file="config.json")
    credentials = resolve_credentials(
        ref,
        environ={
            f"{ref.upper()}_USER": user or server.user,
            f"{ref.upper()}_PASSWORD": password if password is not None else server.password,
        },
    )
    return source_type(config, credentials)


def read_all(src: Any, win: Window) -> pa.Table:
    """Every batch the source extracts for ``win``, as one table of its schema."""
    batches = list(src.extract(win))
    return pa.Table.from_batches(batches, schema=src.schema())
