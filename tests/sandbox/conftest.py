"""Sandbox tests use the session's seeded world (tests/conftest.py), one copy per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmith.sandbox.world import World


@pytest.fixture
def world(state_dir: Path) -> World:
    return World(state_dir)
