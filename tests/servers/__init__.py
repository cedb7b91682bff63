"""The servers the suite starts for real (MariaDB, PostgreSQL, fakesnow, moto), and one way to run them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

Server = TypeVar("Server", bound=Any)


@contextlib.contextmanager
def serving(start: Callable[[], Server], errors: type[Exception], what: str) -> Iterator[Server]:
    """The server ``start()`` returns, stopped when the block ends. A server that cannot start
    fails the test naming ``what`` (never a skip: CI must run every test)."""
    try:
        server = start()
    except errors as exc:
        pytest.fail(f"cannot start {what}: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
