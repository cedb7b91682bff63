"""SQL text and error helpers shared by the SQL database sources.

A :class:`Statement` is what a source sends (text with ``%s`` placeholders and the bound values);
:func:`quote_name` wraps an identifier in the dialect's quote mark; :func:`driver_errors` is the
one way a source turns a driver exception into a :class:`TransientError` or
:class:`PermanentError` whose message names the data, the action and what to do, with the
password blanked; :func:`unreadable_value` is the error for a value that does not fit its
Arrow type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import pyarrow as pa

from drivetrain.errors import ConnectorError, PermanentError, TransientError

#: What building an Arrow array raises for a value that does not fit the column's type.
VALUE_ERRORS: tuple[type[Exception], ...] = (pa.ArrowException, ValueError, TypeError, OverflowError)


@attrs.frozen
class Statement:
    """One SQL statement and its bound parameters."""

    sql: str
    """SQL text with ``%s`` placeholders."""
    params: tuple[Any, ...] = ()
    """Values bound to the placeholders."""


def quote_name(name: str, mark: str) -> str:
    """Quote an identifier that already passed the config's identifier check with ``mark``."""
    if mark in name:  # impossible after validation; refuse rather than escape
        raise ValueError(f"refusing identifier {name!r}")
    return f"{mark}{name}{mark}"


def unreadable_value(column: str, arrow_type: pa.DataType, exc: BaseException) -> PermanentError:
    """The error for a value of ``column`` (as named in the message) that is not ``arrow_type``."""
    return PermanentError(
        f"column {column} holds a value that cannot be read as {arrow_type}: {exc}; "
        "leave the column out with 'columns' or report the value"
    )


#: ``classify(exc)``: whether the failure is transient, the server's error code (or None), a hint.
Classify = Callable[[BaseException], tuple[bool, Any, str]]


@contextmanager
def driver_errors(
    where: str,
    action: str,
    *,
    is_driver_error: Callable[[BaseException], bool],
    classify: Classify,
    text: Callable[[BaseException], str],
    secrets: tuple[str | None, ...] = (),
) -> Iterator[None]:
    """Turn driver (and socket) exceptions raised inside the block into drivetrain errors.

    :param where: the system and the data, first in the message ("MySQL host:port/db.table").
    :param action: what was being done ("counting rows", "reading rows"...).
    :param is_driver_error: whether an exception comes from the driver (others pass through).
    :param classify: transient or not, the error code, and a hint on what to do.
    :param text: the server's own text of the exception.
    :param secrets: text blanked out of the message (the password, as typed and as quoted).
    """
    try:
        yield
    except ConnectorError:
        raise
    except Exception as exc:
        if not is_driver_error(exc):
            raise
        transient, code, hint = classify(exc)
        said = text(exc)
        for hidden in secrets:
            if hidden:
                said = said.replace(hidden, "<SECRET>")
        number = f" {code}" if code is not None and code != "" else ""
        message = f"{where}: {action} failed (error{number}: {said}); {hint}"
        raise (TransientError if transient else PermanentError)(message) from exc
