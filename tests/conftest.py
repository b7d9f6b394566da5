import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests import their helpers (hf_models) directly


@pytest.fixture(scope="session", autouse=True)
def offline_cache(tmp_path_factory):
    """Tests never download: TinyShakespeare comes from the copy inside the package, and the
    download cache is an empty temp dir with downloading switched off."""
    cache = tmp_path_factory.mktemp("glassformer-cache")
    # The machine's measured decisions (machine.py) are shared by the test workers, the course server and
    # the chapter runs, as on a learner's machine: measured once for the session, not once per process.
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "glassformer-machine"
    shared.mkdir(exist_ok=True)
    (cache / "machine").symlink_to(shared, target_is_directory=True)
    os.environ["GLASSFORMER_CACHE"] = str(cache)
    os.environ["GLASSFORMER_OFFLINE"] = "1"
    os.environ.pop("GLASSFORMER_TINYSHAKESPEARE", None)
    yield cache


# Browser tests (tests/test_browser*.py): one course server and one chromium for the whole session,
# a fresh page (its own browser context) per test. Helpers for them are in browser_support.py.

def pytest_collection_modifyitems(config, items):
    """The browser tests first, then the docstring examples, then the rest (each kept in its order).
    pytest-xdist's `--dist load` (make test) hands each worker a first block of a quarter of its
    share (~90 tests) and the rest to whichever worker runs low: so one worker gets every browser
    test (one server, one chromium) padded with examples that take milliseconds, and the other takes
    everything else as it goes. In file order the first block also held ~20 s of other tests, and
    that worker ended 15-50 s after the other. (`--dist loadgroup` would say this with a mark, but
    pytest-xdist 3.8 cannot rename test ids under pytest 9, so its groups are ignored.)"""
    def rank(item) -> int:
        if item.path.name.startswith("test_browser"):
            return 0
        return 1 if isinstance(item, pytest.DoctestItem) else 2

    items.sort(key=rank)


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


# The headless chapter runs (tests/test_course.py): two subprocesses started with the session.

class Headless:
    """The chapters `keys` run headless in one subprocess (tests/run_chapters.py); `results()` waits for
    it: key -> {"ok", "error", "warnings", "seconds"}; `page(key)` is what the chapter showed, as one
    text. Its output goes to files in `folder` (a pipe nobody reads while the tests run could fill up
    and stall it), and its exit status to `folder`/exit_status, so that a process that did not start
    the run (the other pytest-xdist worker) can wait for it too: `Headless.attach(folder)`."""

    def __init__(self, folder: Path, keys: list[str] | None = None, model: str | None = None,
                 env: dict | None = None) -> None:
        self.out, self.err, self.pages = folder / "stdout.txt", folder / "stderr.txt", folder / "pages"
        self.status = folder / "exit_status"
        self.proc = None
        self._results: dict | None = None
        if keys is None:  # attached: another process started the run
            return
        folder.mkdir(parents=True, exist_ok=True)
        self.pages.mkdir(exist_ok=True)
        command = [sys.executable, str(Path(__file__).parent / "run_chapters.py"), "--pages", str(self.pages),
                   *(["--model", model] if model else []), *keys]
        with self.out.open("w") as out, self.err.open("w") as err:
            # Niced: the runs fill the cores the foreground tests leave idle (browser tests wait a lot)
            # instead of slowing them; they are only waited for late in the session.
            self.proc = subprocess.Popen(["sh", "-c", '"$@"; echo $? > "$0"', str(self.status), *command],
                                         stdout=out, stderr=err, text=True, preexec_fn=lambda: os.nice(10),
                                         start_new_session=True,   # killed as a group: sh and the run
                                         env={**os.environ, "GLASSFORMER_DATA": str(folder / "data"),
                                              "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})})

    @classmethod
    def attach(cls, folder: Path) -> "Headless":
        return cls(folder)

    def wait(self, timeout: float = 600) -> int:
        deadline = time.time() + timeout
        while not (self.status.exists() and self.status.read_text().strip()):
            assert time.time() < deadline, f"the headless run in {self.status.parent} did not end in {timeout:.0f} s"
            time.sleep(0.2)
        return int(self.status.read_text())

    def results(self) -> dict:
        import json

        if self._results is None:
            code = self.wait()
            assert code == 0, self.err.read_text()[-3000:]
            self._results = json.loads(self.out.read_text().strip().splitlines()[-1])
        return self._results

    def page(self, key: str) -> str:
        result = self.results()[key]
        assert result["ok"], f"chapter {key} failed headless: {result['error']}"
        return (self.pages / f"{key}.txt").read_text()


@pytest.fixture(scope="session", autouse=True)
def headless_runs(request, tmp_path_factory):
    """Both headless runs, started together (each on one thread: on 2 cores the two overlap):
    every built chapter and the template on the default (course) model, and every chapter that runs
    on the picker's model with the picker on a tiny GPT-2 (BPE, 64-token context). Started with the
    session when any selected test needs them, so they run while the first tests wait on the browser. With
    pytest-xdist the workers share one pair of runs: the first worker to create the shared folder
    starts them, the others attach to it."""
    users = {"headless", "headless_bpe", "course_page"}
    if not any(users & set(item.fixturenames) for item in request.session.items):
        yield None
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        root = tmp_path_factory.getbasetemp().parent / "headless"   # the base folder all workers share
        try:
            root.mkdir()
        except FileExistsError:
            yield {name: Headless.attach(root / name) for name in ("course", "bpe")}
            return
    else:
        root = tmp_path_factory.mktemp("headless")
    from glassformer.course import catalog
    from hf_models import make_gpt2_cache
    from run_chapters import picker_chapters

    built = [c.key for c in catalog.CHAPTERS if c.built]
    hub = make_gpt2_cache(root / "hub")
    runs = {"course": Headless(root / "course", built + ["template"]),
            "bpe": Headless(root / "bpe", picker_chapters(), model="gpt2", env={"HF_HUB_CACHE": str(hub)})}
    yield runs
    for run in runs.values():
        if worker and run.proc.poll() is None:   # another worker may still need it
            try:
                run.proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                pass
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def course_page(headless_runs):
    """key -> the text chapter `key` showed in the headless run on the course model, with the default
    text and settings (a fresh data folder): a claim about a page's default state is checked on that
    run instead of running the chapter once more."""
    return headless_runs["course"].page


# GLASSFORMER_TIMELINE=file: each test's worker, start and end (wall clock) appended to the file, to see
# where a run's time goes (which tests overlap, what the last minute waits on).
if os.environ.get("GLASSFORMER_TIMELINE"):
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        start = time.time()
        yield
        with open(os.environ["GLASSFORMER_TIMELINE"], "a") as f:
            f.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}\t{start:.2f}\t{time.time():.2f}\t{item.nodeid}\n")
