"""What every browser test shares: chromium's path and flags, waiting for a chapter, failing on
any error output or console error, screenshots (out/screenshots/). The fixtures (a course server
and a browser shared by the whole session, a fresh page per test) are in conftest.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[1] / "out" / "screenshots"
ERROR_TEXTS = ["Traceback (most recent call last)", "An internal error occurred", "This cell raised an exception",
               "MultipleDefinitionError", "NameError"]


def require_chromium() -> None:
    """Skip without chromium, except in CI, where a missing browser is a broken setup."""
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed: `make test` installs it with apt-get (as root)", pytrace=False)
    pytest.skip("chromium is not installed (`make test` installs it with apt-get as root)")


def wait_for_chapter(page, timeout: float = 90) -> None:
    """Until the quiz's score line (one of the last cells) has rendered, plus a moment for the rest."""
    page.wait_for_selector("text=/Score: \\d+ of \\d+ correct/", timeout=timeout * 1000)
    page.wait_for_timeout(500)


def assert_clean(page, where: str) -> None:
    for text in ERROR_TEXTS:
        assert page.locator(f"text={text}").count() == 0, f"{where}: error output on the page: {text}"
    errors = [e for e in page.console_errors if "favicon" not in e]
    assert not errors, f"{where}: console errors: {errors[:3]}"


def shot(page, name: str) -> None:
    """A screenshot to look at (out/screenshots/). Skipped in CI (CI=true), where nobody opens it and
    it costs a second or two per page; GLASSFORMER_SCREENSHOTS=1 or 0 forces either way. marimo
    scrolls inside its own container, so a tall viewport stands in for a full-page shot."""
    default = "0" if os.environ.get("CI") == "true" else "1"
    if os.environ.get("GLASSFORMER_SCREENSHOTS", default) == "0":
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.bring_to_front()
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))")
    page.set_viewport_size({"width": 1280, "height": min(int(height) + 40, 12000)})
    page.wait_for_timeout(800)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def svg_text(page, contains: str) -> str:
    """The markup of the first chart whose title contains `contains`."""
    return page.locator(f"svg:has-text('{contains}')").first.inner_html()


def wait_until(page, condition, what: str, timeout: float = 30) -> None:
    """Poll `condition()` every 100 ms until it holds; fail with `what` after `timeout` seconds."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline and not condition():
        page.wait_for_timeout(100)
    assert condition(), f"timed out: {what}"
