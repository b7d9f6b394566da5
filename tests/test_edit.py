"""`glassformer edit N`: the learner's own copy of a chapter in marimo's editor, which answers only
with its access token; the read-only course server never runs code the learner sends."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from course_server import free_port

pytestmark = pytest.mark.slow


def answers(url: str, deadline: float) -> int | None:
    """The HTTP status of a GET once the server listens; None if it never does before the deadline."""
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:  # not listening yet
            time.sleep(0.3)
    return None


def collect(stream, lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


def wait_for_token(lines: list[str], deadline: float) -> str | None:
    """The access token in the URL the editor prints when it starts (marimo's token authentication)."""
    while time.time() < deadline:
        found = re.search(r"access_token=([\w-]+)", "".join(lines))
        if found:
            return found.group(1)
        time.sleep(0.3)
    return None


def test_edit_copies_the_chapter_and_serves_it_only_with_its_token(tmp_path):
    port = free_port()
    env = {**os.environ, "GLASSFORMER_DATA": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "glassformer.cli", "edit", "8", "--dir", str(tmp_path / "mine"),
                             "--no-browser", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=collect, args=(proc.stdout, lines), daemon=True)
    reader.start()
    try:
        api = f"http://127.0.0.1:{port}/api/status"  # an API route answers 401, where a page redirects to a login
        without = answers(api, time.time() + 90)
        assert without in (401, 403), f"without its token the editor answered {without}"
        token = wait_for_token(lines, time.time() + 10)
        assert token, "the editor printed no URL with an access token:\n" + "".join(lines)[-3000:]
        wrong = answers(f"{api}?access_token=not-{token}", time.time() + 10)
        assert wrong in (401, 403), f"with a wrong token the editor answered {wrong}"
        right = answers(f"{api}?access_token={token}", time.time() + 10)
        assert right == 200, f"with its own token the editor answered {right}"
        copy = tmp_path / "mine" / "ch08_logits_to_words.py"
        assert copy.exists() and (tmp_path / "mine" / "course.css").exists()
        assert "auto_instantiate = true" in (tmp_path / "mine" / "pyproject.toml").read_text()  # runs on open
        assert "common.chapter(__file__)" in copy.read_text()  # the copy still finds its identity by name
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        reader.join(timeout=10)
    out = "".join(lines)
    assert "Traceback" not in out, out[-3000:]


def test_edit_refuses_a_chapter_that_is_not_written(tmp_path, monkeypatch, capsys):
    from glassformer import cli
    from glassformer.course import catalog

    planned = catalog.Chapter("14", "A chapter not written yet", "Planned.", "ch14_not_written.py")
    monkeypatch.setattr(catalog, "CHAPTERS", [*catalog.CHAPTERS, planned])   # every real chapter is built now
    assert cli.main(["edit", "14", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not written yet" in err and "Traceback" not in err and not any(tmp_path.iterdir())


def test_the_course_server_refuses_to_run_code(server):
    """Chapters are served in marimo's run mode: the endpoints that run or save code need edit mode (the
    session's course server, the one the browser tests use)."""
    for endpoint in ("api/kernel/run", "api/kernel/save", "api/kernel/set_cell_config"):
        body = b'{"cellIds": ["x"], "codes": ["import os; os.system(\\"touch /tmp/pwned\\")"]}'
        request = urllib.request.Request(f"{server.url}/chapter/8/{endpoint}", data=body,
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                status = r.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status in (401, 403, 404, 405), f"{endpoint} answered {status}"
