"""What the browser stories share: Debian's Chromium under Playwright, and where screenshots go.

Screenshots for the README are written to docs/screenshots only when asked (OPSMITH_SCREENSHOTS=1),
so that a test run leaves the checkout as it was; otherwise they go to the session's tmp dir, and
the code that takes them still runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "docs" / "screenshots"
SCREENSHOTS_ENV = "OPSMITH_SCREENSHOTS"


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where `shot` writes: docs/screenshots when OPSMITH_SCREENSHOTS=1, else a tmp dir."""
    if os.environ.get(SCREENSHOTS_ENV) == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        return SHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser(served: object) -> Iterator[Browser]:
    # Depends on the module's `served` so that the browser is closed before the server stops.
    del served
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox"] if os.geteuid() == 0 else [],
        )
        yield launched
        launched.close()
