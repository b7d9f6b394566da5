import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests import their helpers (hf_models) directly


@pytest.fixture(scope="session", autouse=True)
def offline_cache(tmp_path_factory):
    """Tests never download: TinyShakespeare comes from the copy inside the package, and the
    download cache is an empty temp dir with downloading switched off."""
    cache = tmp_path_factory.mktemp("glassformer-cache")
    os.environ["GLASSFORMER_CACHE"] = str(cache)
    os.environ["GLASSFORMER_OFFLINE"] = "1"
    os.environ.pop("GLASSFORMER_TINYSHAKESPEARE", None)
    yield cache


# Browser tests (tests/test_browser*.py): one course server and one chromium for the whole session,
# a fresh page (its own browser context) per test. Helpers for them are in browser_support.py.

@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("learner-data")


@pytest.fixture(scope="session")
def server(data_dir):
    from course_server import Server

    srv = Server(data_dir).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def browser():
    from browser_support import CHROMIUM, FLAGS, require_chromium

    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # screenshots expand it
    pg = context.new_page()
    pg.console_errors = []
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.console_errors.append(str(e)))
    yield pg
    context.close()
