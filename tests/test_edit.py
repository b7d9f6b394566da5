"""`glassformer edit N`: the learner's own copy of a chapter in marimo's editor; the read-only
course server never runs code the learner sends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from course_server import Server, free_port

pytestmark = pytest.mark.slow


def answers(url: str, deadline: float) -> int | None:
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as exc:  # e.g. 401 before the token is given: it is up
            return exc.code
        except OSError:
            time.sleep(0.3)
    return None


def test_edit_copies_the_chapter_and_starts_the_editor(tmp_path):
    port = free_port()
    env = {**os.environ, "GLASSFORMER_DATA": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "glassformer.cli", "edit", "8", "--dir", str(tmp_path / "mine"),
                             "--no-browser", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        status = answers(f"http://127.0.0.1:{port}/", time.time() + 60)
        assert status is not None and status < 500, f"the editor did not answer (status {status})"
        copy = tmp_path / "mine" / "ch08_logits_to_words.py"
        assert copy.exists() and (tmp_path / "mine" / "course.css").exists()
        assert "auto_instantiate = true" in (tmp_path / "mine" / "pyproject.toml").read_text()  # runs on open
        assert "common.chapter(__file__)" in copy.read_text()  # the copy still finds its identity by name
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
    assert "Traceback" not in out, out[-3000:]


def test_edit_refuses_a_chapter_that_is_not_written(tmp_path):
    result = subprocess.run([sys.executable, "-m", "glassformer.cli", "edit", "12", "--dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "not written yet" in result.stderr and "Traceback" not in result.stderr


def test_the_course_server_refuses_to_run_code(tmp_path):
    """Chapters are served in marimo's run mode: the endpoints that run or save code need edit mode."""
    server = Server(tmp_path).start()
    try:
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
    finally:
        server.stop()
