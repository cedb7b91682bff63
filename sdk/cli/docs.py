"""``drivetrain docs [PAGE]``: the user documentation, shipped inside the package.

The pages of ``docs/`` are installed as ``drivetrain/docs``, so an installed user reads the
documentation of the version they run, offline: ``drivetrain docs`` lists the pages and where
they are, ``drivetrain docs configuration`` prints one.
"""

from __future__ import annotations

from pathlib import Path

import click

from ._output import EXIT_USAGE, CliError, output


def docs_folder() -> Path:
    """The installed pages (``drivetrain/docs``), or ``docs/`` of a source checkout."""
    import drivetrain

    package = Path(drivetrain.__file__).parent
    for candidate in (package / "docs", package.parent / "docs"):
        if (candidate / "index.md").is_file():
            return candidate
    raise CliError(f"the documentation is not installed next to {package}; reinstall drivetrain", EXIT_USAGE)


@click.command("docs")
@click.argument("page", required=False)
def docs_command(page: str | None) -> None:
    """List the documentation pages, or print PAGE (e.g. configuration, plugins).

    The pages ship with the package: they describe the version installed.
    """
    out = output()
    folder = docs_folder()
    pages = sorted(p.stem for p in folder.glob("*.md"))
    if page is None:
        out.line(f"drivetrain documentation in {folder}:")
        for name in pages:
            out.line(f"  {name}")
        out.line("")
        out.line("Print one with: drivetrain docs PAGE")
        return
    name = page.removesuffix(".md")
    if name not in pages:
        import difflib

        close = difflib.get_close_matches(name, pages, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise CliError(f"no documentation page {page!r}{hint} (pages: {', '.join(pages)})", EXIT_USAGE)
    click.echo((folder / f"{name}.md").read_text(encoding="utf-8"), nl=False)
