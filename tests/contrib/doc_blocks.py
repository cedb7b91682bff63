"""Reading the fenced blocks of the user docs, so tests can run what the docs show.

Conventions the docs follow (and these helpers rely on):

- ``bash`` blocks: every line starting with ``drivetrain`` is a command a reader may paste; a
  line ending in ``\\`` continues on the next. Other lines (``pip``, ``python``...) are left to
  the reader. ``VAR=value`` lines define the placeholders the commands use as ``"$VAR"``.
- ``sql`` blocks: the first line is a comment naming where the block runs, ``-- DuckDB: ...``
  or ``-- Snowflake: ...``; tests run those two kinds. Blocks for other systems (``-- MySQL:``)
  or for administrators (``-- Snowflake administrator:``) are shown only.
"""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
_FENCE = re.compile(r"^```([A-Za-z0-9_-]*)[^\n]*\n(.*?)^```", re.S | re.M)
_ASSIGNMENT = re.compile(r"(?:^|;\s*)([A-Z][A-Z0-9_]*)=")
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def blocks(page: str, language: str) -> list[str]:
    """The text of every fenced block of ``language`` in ``docs/<page>``, in order."""
    text = (DOCS / page).read_text(encoding="utf-8")
    return [body for lang, body in _FENCE.findall(text) if lang == language]


def _lines(block: str) -> list[str]:
    """Lines of a shell block with backslash continuations joined."""
    out: list[str] = []
    pending = ""
    for raw in block.splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if line:
            out.append(line)
    return out


def commands(page: str) -> list[str]:
    """Every ``drivetrain ...`` line of the page's bash blocks, in order."""
    return [line for block in blocks(page, "bash") for line in _lines(block) if line.startswith("drivetrain ")]


def placeholders(page: str) -> set[str]:
    """Names the page's bash blocks assign (``PIPELINE=...``)."""
    return {name for block in blocks(page, "bash") for line in _lines(block)
            if not line.startswith("drivetrain ") for name in _ASSIGNMENT.findall(line)}


def variables_used(command: str) -> set[str]:
    """Shell variables a command line expands (``"$RUN_ID"``)."""
    return set(_VARIABLE.findall(command.split("#", 1)[0]))


def sql(page: str, dialect: str) -> list[tuple[str, list[str]]]:
    """``(title, statements)`` of every sql block whose first line is ``-- <dialect>: title``."""
    found = []
    for block in blocks(page, "sql"):
        first, _, rest = block.partition("\n")
        match = re.match(rf"--\s*{re.escape(dialect)}:\s*(.*)$", first.strip())
        if match:
            found.append((match.group(1), statements(rest)))
    return found


def statements(text: str) -> list[str]:
    """SQL statements of a block: split where a line ends with ``;``; comments dropped."""
    out, current = [], []
    for line in text.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            out.append("\n".join(current).strip().rstrip(";"))
            current = []
    if "".join(current).strip():
        out.append("\n".join(current).strip())
    return out
