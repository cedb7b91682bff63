"""``validate`` warns when the drive file or a DuckDB warehouse file is on a network file system.

The mount table is the operating system's (``/proc/self/mounts``); where a test needs a
network mount that this machine does not have, it points :data:`MOUNTS` at a mount table that
says the test's folder is one, the input the operating system would give on such a machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from drivetrain import network_disk
from drivetrain.cli import cli as drivetrain_cli
from drivetrain.network_disk import mount_of, network_disk_warnings, network_file_system

TABLE = """\
sysfs /sys sysfs rw,nosuid 0 0
/dev/sda1 / ext4 rw,relatime 0 0
server:/export /mnt/nfs nfs4 rw,relatime,vers=4.2 0 0
//fs/share /mnt/my\\040share cifs rw 0 0
/dev/sdb1 /mnt/nfs/local ext4 rw 0 0
tmpfs /mnt/over tmpfs rw 0 0
server:/over /mnt/over nfs rw 0 0
"""


class TestMountOf:
    @pytest.mark.parametrize(("path", "expected"), [
        ("/srv/pipelines/drive.sqlite", ("/", "ext4")),
        ("/mnt/nfs/drive.sqlite", ("/mnt/nfs", "nfs4")),
        ("/mnt/nfs", ("/mnt/nfs", "nfs4")),
        ("/mnt/nfs2/drive.sqlite", ("/", "ext4")),  # a name that only starts like the mount point
        ("/mnt/nfs/local/warehouse.duckdb", ("/mnt/nfs/local", "ext4")),  # the deepest mount holds it
        ("/mnt/my share/drive.sqlite", ("/mnt/my share", "cifs")),  # \\040 in the table is a space
        ("/mnt/over/x.duckdb", ("/mnt/over", "nfs")),  # a later mount over the same point hides the first
    ])
    def test_the_deepest_mount_point_holding_the_path(self, path: str, expected: tuple[str, str]) -> None:
        assert mount_of(Path(path), TABLE.splitlines()) == expected

    def test_no_table_no_mount(self) -> None:
        assert mount_of(Path("/x"), []) is None


@pytest.fixture
def network_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as an NFS mount, as a machine's mount table would say it."""
    real = Path("/proc/self/mounts").read_text() if Path("/proc/self/mounts").exists() else ""
    table = tmp_path.parent / f"{tmp_path.name}.mounts"
    folder = tmp_path.resolve()
    escaped = str(folder).replace(" ", "\\040")
    table.write_text(real + f"server:/export {escaped} nfs4 rw,relatime 0 0\n")
    monkeypatch.setattr(network_disk, "MOUNTS", table)
    return folder


class TestNetworkFileSystem:
    def test_a_file_not_made_yet_is_placed_in_its_nearest_folder(self, network_folder: Path) -> None:
        assert network_file_system(network_folder / "not" / "yet" / "drive.sqlite") == (str(network_folder), "nfs4")

    def test_a_local_folder_says_nothing(self, tmp_path: Path) -> None:
        assert network_file_system(tmp_path / "drive.sqlite") is None
        assert network_disk_warnings([tmp_path / "drive.sqlite"], "drive file", "elsewhere") == []

    def test_an_unreadable_mount_table_says_nothing(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(network_disk, "MOUNTS", tmp_path / "missing")
        assert network_file_system(tmp_path / "drive.sqlite") is None


def _validate(folder: Path) -> str:
    old = Path.cwd()
    os.chdir(folder.parent)
    try:
        result = CliRunner().invoke(drivetrain_cli, ["validate", f"./{folder.name}"], catch_exceptions=False)
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    return result.output


class TestValidate:
    def test_files_on_a_network_disk_are_warned_about_and_validate_still_passes(
            self, network_folder: Path, demo_pipeline: Path) -> None:
        out = _validate(demo_pipeline)
        warnings = [line.strip() for line in out.splitlines() if "network file system" in line]
        drive = [w for w in warnings if "the drive file" in w]
        warehouse = [w for w in warnings if "the warehouse file" in w]
        assert len(drive) == 1, out
        assert len(warehouse) == 2, out  # the stage's and the target's (one file)
        assert "drive.sqlite" in drive[0] and f"nfs4 mounted at {network_folder}" in drive[0]
        assert "a drive table on PostgreSQL or Snowflake" in drive[0]
        assert ".duckdb" in warehouse[0] and "local disk" in warehouse[0]

    def test_on_a_local_disk_nothing_is_said(self, tmp_path: Path, demo_pipeline: Path) -> None:
        assert "network file system" not in _validate(demo_pipeline)


@pytest.fixture
def demo_pipeline(tmp_path: Path) -> Path:
    """``drivetrain new shop`` in the test's folder (DuckDB warehouse, drive.sqlite)."""
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(drivetrain_cli, ["new", "shop"], catch_exceptions=False)
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    return tmp_path / "shop"
