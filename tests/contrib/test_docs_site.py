"""mkdocs.yml lists every page of docs/, and links between the pages land on real headings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))
_LINK = re.compile(r"\]\(([^)#\s]+\.md)?(?:#([^)\s]+))?\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*)$", re.M)


def nav_pages(node: Any) -> list[str]:
    """Every page file named in a mkdocs ``nav`` tree."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [page for item in node for page in nav_pages(item)]
    if isinstance(node, dict):
        return [page for value in node.values() for page in nav_pages(value)]
    return []


def anchors(page: str) -> set[str]:
    """The ids mkdocs (and GitHub) give the page's headings: lower case, punctuation dropped."""
    text = re.sub(r"```.*?```", "", (DOCS / page).read_text(encoding="utf-8"), flags=re.S)
    return {re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", h.strip().lower())) for h in _HEADING.findall(text)}


class TestSiteConfig:
    def test_the_nav_lists_every_page_once(self) -> None:
        config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
        assert config["docs_dir"] == "docs"
        assert sorted(nav_pages(config["nav"])) == PAGES

    @pytest.mark.parametrize("page", PAGES)
    def test_links_to_other_pages_and_headings_resolve(self, page: str) -> None:
        text = re.sub(r"```.*?```", "", (DOCS / page).read_text(encoding="utf-8"), flags=re.S)
        broken = []
        for target, fragment in _LINK.findall(text):
            linked = target or page
            if target and not (DOCS / target).is_file():
                broken.append(target)
            elif fragment and fragment not in anchors(linked):
                broken.append(f"{linked}#{fragment}")
        assert broken == []
