"""A DuckDB file that cannot be opened: every kind is a PermanentError naming the file and the fix."""

from __future__ import annotations

import struct
from pathlib import Path

import duckdb
import pytest

from drivetrain.connectors.duckdb.connection import ConnectionPool, duckdb_errors
from drivetrain.errors import PermanentError


def good_file(path: Path) -> Path:
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE TABLE t AS SELECT range AS v FROM range(50000)")
    return path


def flip_bytes(path: Path, start: int, length: int) -> None:
    """Damage the file in place, as a failing disk or a torn copy would."""
    data = bytearray(path.read_bytes())
    for i in range(start, min(start + length, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _checksum(block: bytes) -> int:
    """DuckDB's block checksum (src/common/checksum.cpp), for a header of whole 8-byte words."""
    result = 5381
    for (word,) in struct.iter_unpack("<Q", block):
        result ^= (word * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    return result


def with_storage_version(path: Path, version: int) -> None:
    """Rewrite the main header's storage version (checksum kept valid): a file from another DuckDB."""
    data = bytearray(path.read_bytes())
    data[12:20] = struct.pack("<Q", version)
    data[0:8] = struct.pack("<Q", _checksum(bytes(data[8:4096])))
    path.write_bytes(bytes(data))


def open_error(path: Path) -> str:
    pool = ConnectionPool(path, lock_timeout=5)
    with pytest.raises(PermanentError) as caught, pool.connect() as conn:
        conn.execute("SELECT count(*) FROM t").fetchall()
    return str(caught.value)


class TestUnusableFile:
    def test_a_checksum_mismatch_names_the_file_and_says_to_restore_or_move_it_aside(self, tmp_path: Path) -> None:
        path = good_file(tmp_path / "w.duckdb")
        flip_bytes(path, 5000, 4000)
        message = open_error(path)
        assert message.startswith(f"{path}: the DuckDB file is damaged")
        assert "restore it from a backup" in message
        assert "docs/runbook.md" in message

    def test_a_text_file_is_not_a_database(self, tmp_path: Path) -> None:
        path = tmp_path / "w.duckdb"
        path.write_text("name,value\n" * 500)
        message = open_error(path)
        assert message.startswith(f"{path}: the DuckDB file is not a DuckDB database")
        assert "'path'" in message

    def test_an_empty_file_is_not_a_database(self, tmp_path: Path) -> None:
        path = tmp_path / "w.duckdb"
        path.touch()
        assert "is not a DuckDB database" in open_error(path)

    def test_a_truncated_file_is_not_a_database(self, tmp_path: Path) -> None:
        path = good_file(tmp_path / "w.duckdb")
        path.write_bytes(path.read_bytes()[:5000])
        assert "is not a DuckDB database (or was cut short)" in open_error(path)

    @pytest.mark.parametrize("version", [38, 2000], ids=["older", "newer"])
    def test_a_file_of_another_storage_version_says_how_to_migrate(self, tmp_path: Path, version: int) -> None:
        path = good_file(tmp_path / "w.duckdb")
        with_storage_version(path, version)
        message = open_error(path)
        assert "was written by a DuckDB version this one cannot read" in message
        assert "EXPORT DATABASE" in message

    def test_a_directory_in_place_of_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "w.duckdb"
        path.mkdir()
        message = open_error(path)
        assert message.startswith(f"{path}: the DuckDB file is a directory, not a file")

    def test_a_file_where_its_folder_should_be(self, tmp_path: Path) -> None:
        (tmp_path / "data").write_text("not a folder")
        path = tmp_path / "data" / "w.duckdb"
        message = open_error(path)
        assert message.startswith(f"{path}: cannot create the folder {path.parent}")

    def test_the_damaged_file_is_left_as_it_was(self, tmp_path: Path) -> None:
        path = good_file(tmp_path / "w.duckdb")
        flip_bytes(path, 5000, 4000)
        before = path.read_bytes()
        open_error(path)
        assert path.read_bytes() == before

    def test_a_damaged_block_found_by_a_query_says_what_to_do_too(self, tmp_path: Path) -> None:
        path = tmp_path / "w.duckdb"
        with duckdb.connect(str(path)) as conn:
            conn.execute("CREATE TABLE t AS SELECT range AS v FROM range(500000)")
        flip_bytes(path, path.stat().st_size // 2, 3000)
        pool = ConnectionPool(path, lock_timeout=5)
        with pytest.raises(PermanentError) as caught, pool.connect() as conn, duckdb_errors(f"{path}: t"):
            conn.execute("SELECT sum(v) FROM t").fetchall()
        assert "the DuckDB file is damaged" in str(caught.value)
        assert "restore it from a backup" in str(caught.value)

