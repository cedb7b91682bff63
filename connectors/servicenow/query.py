"""Encoded queries for one window: the filter count and extract share, and the paging order.

Why the plain ``field>=YYYY-MM-DD HH:MM:SS`` form and not ``javascript:gs.dateGenerate(...)``:
ServiceNow stores date-times in UTC and compares a plain date-time written in a query as UTC,
which is exactly what a drivetrain window is. ``gs.dateGenerate`` instead reads its arguments
in the time zone of the integration user's profile, so the same config would select different
records when someone changes that profile, and it needs the instance to evaluate script inside
a query. The plain form is also what the emulator in ``tests/emulators`` understands.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drivetrain.window import Window

    from .config import ServiceNowOptions

#: How ServiceNow writes a stored date-time (always UTC for stored values).
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def format_bound(moment: datetime) -> str:
    """Write a window bound as a ServiceNow UTC date-time, rounded up to the whole second.

    ServiceNow keeps whole seconds, so a stored value ``t`` lies in ``[start, end)`` exactly
    when ``t >= ceil(start)`` and ``t < ceil(end)``: rounding both bounds up keeps the window
    half-open even when a bound carries microseconds.
    """
    utc = moment.astimezone(UTC)
    if utc.microsecond:
        utc = utc.replace(microsecond=0) + timedelta(seconds=1)
    return utc.strftime(DATETIME_FORMAT)


def window_filter(options: ServiceNowOptions, window: Window) -> str:
    """The encoded query selecting the window's records, ``extra_query`` ANDed on.

    :meth:`count` and :meth:`extract` both send this exact string (extract appends the
    ordering), so they select the same records.
    """
    field = options.query_field
    parts = [f"{field}>={format_bound(window.start)}", f"{field}<{format_bound(window.end)}"]
    if options.extra_query:
        parts.append(options.extra_query)
    return "^".join(parts)


def paging_query(options: ServiceNowOptions, window: Window) -> str:
    """:func:`window_filter` with a total order: query field, then the unique ``sys_id``.

    Offset paging only returns every record once if the order never ties, even when
    thousands of records share one timestamp; ``sys_id`` breaks every tie.
    """
    return f"{window_filter(options, window)}^ORDERBY{options.query_field}^ORDERBYsys_id"
