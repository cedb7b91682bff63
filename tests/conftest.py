"""Fixtures shared by the whole suite: a fresh plugin manager and a clean environment per test."""

from __future__ import annotations

import pytest

from drivetrain.plugins import reset_plugin_manager


@pytest.fixture(autouse=True)
def fresh_plugin_manager():
    """Every test starts with a plugin manager built anew (no plugin left over from another)."""
    reset_plugin_manager()
    yield
    reset_plugin_manager()
