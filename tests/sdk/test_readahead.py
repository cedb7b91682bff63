"""Tests for drivetrain.readahead: a source iterated in a thread of its own, a few items ahead."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivetrain.errors import TransientError
from drivetrain.readahead import ReadAhead


class Recorder:
    """A source that records which threads create, advance and close it."""

    def __init__(self, items: int, fail_at: int | None = None) -> None:
        self.items = items
        self.fail_at = fail_at
        self.produced = 0
        self.opened_in: str | None = None
        self.advanced_in: set[str] = set()
        self.closed_in: str | None = None
        self.error = TransientError("the server went away")

    def __call__(self) -> Iterator[int]:
        self.opened_in = threading.current_thread().name
        return self._items()

    def _items(self) -> Iterator[int]:
        try:
            for i in range(self.items):
                self.advanced_in.add(threading.current_thread().name)
                if i == self.fail_at:
                    raise self.error
                self.produced += 1
                yield i
        finally:
            self.closed_in = threading.current_thread().name


def wait_until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def waiting_for_room(thread_name: str) -> bool:
    """Whether the named thread is blocked inside ``queue.Queue.put``, waiting for the queue to have room."""
    thread = next((t for t in threading.enumerate() if t.name == thread_name), None)
    frame = sys._current_frames().get(thread.ident) if thread is not None and thread.ident is not None else None
    functions = []
    while frame is not None:
        functions.append((Path(frame.f_code.co_filename).name, frame.f_code.co_name))
        frame = frame.f_back
    return ("queue.py", "put") in functions and ("threading.py", "wait") in functions


class TestReadAhead:
    def test_every_item_arrives_in_order(self) -> None:
        source = Recorder(100)
        with ReadAhead(source) as items:
            assert list(items) == list(range(100))
        assert list(items) == []

    def test_the_source_lives_in_the_producer_thread_only(self) -> None:
        source = Recorder(10)
        with ReadAhead(source, name="drivetrain-test-extract") as items:
            list(items)
        assert source.opened_in == "drivetrain-test-extract"
        assert source.advanced_in == {"drivetrain-test-extract"}
        assert source.closed_in == "drivetrain-test-extract"

    def test_the_producer_stays_at_most_depth_items_ahead(self) -> None:
        source = Recorder(1000)
        with ReadAhead(source, depth=3, name="drivetrain-test-bounded") as items:
            for taken in range(1, 4):
                assert next(items) == taken - 1
                # the producer has read as far as it may and now waits for room: it cannot go further
                wait_until(lambda t=taken: source.produced >= t + 4 and waiting_for_room("drivetrain-test-bounded"))
                # taken, three queued, one read and waiting for room
                assert source.produced == taken + 4

    def test_the_sources_error_reaches_the_consumer_unchanged(self) -> None:
        source = Recorder(10, fail_at=4)
        seen = []
        with ReadAhead(source) as items, pytest.raises(TransientError) as raised:
            for item in items:
                seen.append(item)
        assert raised.value is source.error
        assert seen == [0, 1, 2, 3]
        assert source.closed_in is not None

    def test_an_error_while_opening_the_source_reaches_the_consumer(self) -> None:
        def refuse() -> Iterator[int]:
            raise PermissionError("access denied for user 'etl'")

        with ReadAhead(refuse) as items, pytest.raises(PermissionError, match="access denied"):
            next(items)

    def test_leaving_early_stops_the_producer_and_closes_the_source(self) -> None:
        source = Recorder(1_000_000)
        reader = ReadAhead(source)
        with reader as items:
            assert next(items) == 0
        assert source.closed_in is not None  # the generator's finally ran: connections released
        assert source.produced < 10
        assert not any(t.name == "drivetrain-read-ahead" for t in threading.enumerate())

    def test_a_consumer_failure_also_stops_the_producer(self) -> None:
        source = Recorder(1_000_000)
        with pytest.raises(ValueError, match="bad batch"), ReadAhead(source) as items:
            for item in items:
                if item == 2:
                    raise ValueError("bad batch")
        assert source.closed_in is not None
        assert source.produced < 10

    def test_close_waits_for_a_slow_source_to_finish_its_item(self) -> None:
        def slow() -> Iterator[int]:
            try:
                yield 1
                time.sleep(0.3)
                yield 2
            finally:
                closed.append(True)

        closed: list[bool] = []
        with ReadAhead(slow) as items:
            assert next(items) == 1
        assert closed == [True]

    def test_depth_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="depth must be at least 1"):
            ReadAhead(lambda: iter(()), depth=0)
