"""Seed one sandbox world per test session and hand each test its own copy of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from opsmith.sandbox.world import World


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("sandbox-template") / "state"
    World(state).ensure_seeded()
    return state


@pytest.fixture
def state_dir(tmp_path: Path, seeded_template: Path) -> Path:
    target = tmp_path / "state"
    shutil.copytree(seeded_template, target)
    return target


@pytest.fixture
def world(state_dir: Path) -> World:
    return World(state_dir)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
