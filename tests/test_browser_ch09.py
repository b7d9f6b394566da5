"""Chapter 9 in chromium: start a real training run from the page, see its loss curve get points,
stop it. The background process is always killed at the end, whatever happens."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from browser_support import assert_clean, shot, wait_for_chapter

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def kill_training(data_dir) -> None:
    """End any run the page started (its pid is in the lock file), and wait until it is gone."""
    lock = data_dir / "training.lock"
    try:
        pid = int(json.loads(lock.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                return
            time.sleep(0.1)


def test_chapter_9_start_a_run_see_the_curve_stop_it(server, page, data_dir):
    page.goto(server.url + "/chapter/9")
    wait_for_chapter(page)
    try:
        page.bring_to_front()
        page.locator("button:has-text('Start a new run')").first.click()
        page.wait_for_selector("text=Started at", timeout=20_000)  # the command line the page launched
        assert (data_dir / "training.lock").exists()
        # Two logged training losses (steps 10 and 20) = two points on the curve; the facts line names the step.
        facts = page.locator("text=/^step \\d+ · train loss/").first
        deadline = time.time() + 120
        step = 0
        while time.time() < deadline:
            if facts.count():
                step = int(re.match(r"step (\d+)", facts.inner_text()).group(1))
                if step >= 20:
                    break
            page.wait_for_timeout(500)
        assert step >= 20, "the live chart never showed two training-loss points"
        chart = page.locator("svg:has-text('live run: loss as it trains')").first.inner_html()
        assert chart.count('aria-roledescription="point"') >= 2 or chart.count("<path") >= 2
        page.locator("button:has-text('Stop')").first.click()
        page.wait_for_selector("text=/Stopped live \\(process \\d+\\)/", timeout=30_000)
        assert not (data_dir / "training.lock").exists()
        assert (data_dir / "runs" / "live" / "checkpoint.safetensors").exists()  # resumable
        page.wait_for_selector("text=Resume continues it", timeout=10_000)
        assert_clean(page, "chapter 9")
        page.locator("h1").first.scroll_into_view_if_needed()  # the screenshot starts at the title
        shot(page, "chapter09")
    finally:
        kill_training(data_dir)
