"""The command group: help on every command, usage errors, and output on a real terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
from pathlib import Path

import pytest

from .conftest import SCRIPT, Cli

COMMANDS = ["demo", "new", "validate", "run", "status", "history", "show", "docs", "new-plugin"]


class TestHelp:
    def test_the_group_help_lists_every_command_and_the_exit_statuses(self, cli: Cli) -> None:
        result = cli("--help")
        assert result.returncode == 0, result
        for command in COMMANDS:
            assert f"  {command} " in result.stdout
        assert "3 the window is being run by" in result.stdout

    @pytest.mark.parametrize("command", COMMANDS)
    def test_every_command_has_help(self, cli: Cli, command: str) -> None:
        result = cli(command, "--help")
        assert result.returncode == 0, result
        assert result.stdout.startswith(f"Usage: drivetrain {command}")

    def test_an_unknown_command_exits_2(self, cli: Cli) -> None:
        result = cli("runn")
        assert result.returncode == 2, result
        assert "No such command 'runn'" in result.stderr

    def test_a_missing_argument_exits_2(self, cli: Cli) -> None:
        result = cli("history")
        assert result.returncode == 2, result
        assert "Missing argument 'PIPELINE'" in result.stderr

    def test_version(self, cli: Cli) -> None:
        result = cli("--version")
        assert result.returncode == 0, result
        assert result.stdout.startswith("drivetrain, version ")


def run_in_terminal(args: list[str], cwd: Path, home: Path) -> tuple[int, str]:
    """Run the script with a pseudo-terminal as stdout and stderr; returns (status, output)."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "HOME": str(home), "TERM": "xterm-256color", "COLUMNS": "160"}
    process = subprocess.Popen([str(SCRIPT), *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                               stdout=terminal, stderr=terminal)
    os.close(terminal)
    chunks = []
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        if not ready:
            process.kill()
            break
        try:
            data = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process exited
            break
        if not data:
            break
        chunks.append(data)
    os.close(controller)
    return process.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


class TestTerminal:
    def test_run_and_history_draw_on_a_terminal(self, cli: Cli, shop: Path) -> None:
        status, text = run_in_terminal(["run", "./shop"], cli.cwd, cli.home)
        assert status == 0, text
        assert "shop_20250101T000000Z_run1" in text
        status, text = run_in_terminal(["history", "./shop"], cli.cwd, cli.home)
        assert status == 0, text
        assert "┃" in text or "|" in text  # a rich table, not plain columns
        assert "shop_20250101T000000Z_run1" in text
