# make run  : install everything into .venv and run the main job: `vistune run` (embedded local Ray, smoke preset)
# make test : install everything into .venv and run the test suite
# make bench: codec benchmark table

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.vistune-installed

.PHONY: run demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch from this machine's disk; a GPU box can install its CUDA build instead.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/vistune run

demo: $(STAMP)
	$(VENV)/bin/vistune demo

test: $(STAMP)
	$(PY) -m pytest -n 2 tests

bench: $(STAMP)
	$(PY) bench/codecs.py
	$(PY) bench/encode.py

clean:
	rm -rf $(VENV) outputs
