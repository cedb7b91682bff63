"""``drivetrain --help`` lists the commands from their summaries, without importing them.

The list must read exactly as click would write it from the commands themselves, at any width.
"""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest

from drivetrain.cli import LAZY_COMMANDS, SUMMARIES, cli


def first_paragraph(text: str) -> str:
    end = text.find("\n\n")
    return " ".join((text if end < 0 else text[:end]).split())


class TestSummaries:
    @pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
    def test_each_summary_is_the_first_paragraph_of_the_commands_help(self, name: str) -> None:
        command = cli.get_command(click.Context(cli), name)
        assert command is not None and command.short_help is None and not command.hidden
        assert SUMMARIES[name] == first_paragraph(command.help or "")

    def test_every_command_has_one(self) -> None:
        assert set(SUMMARIES) == set(LAZY_COMMANDS)

    @pytest.mark.parametrize("columns", ["50", "80", "200"])
    def test_help_without_the_commands_imported_reads_as_with_them(self, columns: str) -> None:
        env = {**os.environ, "COLUMNS": columns}
        every = ("import click, sys\nfrom drivetrain.cli import LAZY_COMMANDS, cli, main\n"
                 "for name in LAZY_COMMANDS:\n    cli.get_command(click.Context(cli), name)\n"
                 "sys.argv = ['drivetrain']\nmain(['--help'])")
        fresh, loaded = (subprocess.run(argv, capture_output=True, text=True, env=env, check=False).stdout
                         for argv in ([sys.executable, "-m", "drivetrain", "--help"], [sys.executable, "-c", every]))
        assert fresh == loaded
        assert "Commands:" in fresh and "validate" in fresh
