# Everything the project needs is installed from here: a venv with pip (pip takes the
# CPU wheel of torch==2.13.0 that lies on these machines instead of a multi-GB CUDA build),
# and Debian's chromium for the browser tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: start test bench chromium clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[course,test]'
	touch $(STAMP)

start: $(STAMP)
	$(VENV)/bin/glassformer start

# The browser tests drive Debian's chromium (Playwright's own browser download does not work offline).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium is missing; install it (sudo apt-get install chromium) or the browser tests are skipped"; fi; }

# The tests and every docstring example of the library (the chapters' code panels show them), in two
# processes (pytest-xdist): the browser tests wait on a server much of the time, and on 2 cores two
# workers measured 220 s against 269 s for one. The browser tests go to one worker and the rest to
# whichever is free (tests/conftest.py orders them for that), and each process runs torch on one thread:
# the two workers, the course server's kernels and two headless chapter runs already share the 2 cores.
# Measured from a fresh clone: 235-248 s before, 238 s with one thread (and the machine probe shared,
# the BPE chapter run trimmed: tests/conftest.py), 220 s with the ordering too.
test: $(STAMP) chromium
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --durations=10 tests src/glassformer --doctest-modules --ignore=src/glassformer/course/chapters

# The benchmarks' own references (CTranslate2 for generation) and plots: the bench extra.
$(VENV)/.bench: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	touch $@

bench: $(VENV)/.bench
	$(PY) bench/generate.py
	$(PY) bench/train.py
	$(PY) bench/bpe.py
	$(PY) bench/ui_latency.py

clean:
	rm -rf $(VENV) .pytest_cache
