"""Debian's chromium through Playwright, for the browser tests (admin, Swagger UI).

With ``OAUTH_CC_REQUIRE_BROWSER=1`` (CI) a missing browser fails the run; elsewhere the module
using it is skipped with the command that installs what is missing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def playwright_or_skip() -> Any:
    """``playwright.sync_api``; call it at the top of a browser test module."""
    if os.environ.get("OAUTH_CC_REQUIRE_BROWSER") == "1":
        from playwright import sync_api

        if not Path(CHROMIUM).exists():
            raise AssertionError(f"{CHROMIUM} is missing (apt-get install -y chromium)")
        return sync_api
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)
    return sync_api
