# Everything the project needs is installed from here: a venv with pip (pip takes the
# CPU wheel of torch==2.13.0 that lies on these machines instead of a multi-GB CUDA build).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: start test bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[course,test]'
	touch $(STAMP)

start: $(STAMP)
	$(VENV)/bin/glassformer start

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/generate.py

clean:
	rm -rf $(VENV) .pytest_cache
