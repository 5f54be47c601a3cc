# Two entry points, each doing its own set-up in .venv (Python 3.11, pinned set in requirements/ci.txt):
#   make bench   the benchmark suite on the default models and data, with timing
#   make test    unit tests + every budget check of the suite, timing off (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
THREADS ?= 1

.PHONY: bench test compare baseline setup clean-cache

$(VENV)/.installed: pyproject.toml requirements/ci.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/ci.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

bench: $(VENV)/.installed
	$(PY) -m pytest benchmarks/ --edgeopt-threads $(THREADS)

# Two workers; a fine-tune and the variants built on it stay on one worker (see benchmarks/conftest.py).
# PYTEST_ARGS adds options, e.g. PYTEST_ARGS="--junitxml=report.xml".
PYTEST_ARGS ?=
test: $(VENV)/.installed
	$(PY) -m pytest tests/ benchmarks/ --benchmark-disable -n 2 --dist loadgroup --durations=15 $(PYTEST_ARGS)

# Gate: fail when a median is 25% slower than the baseline stored in benchmarks/baselines.
compare: $(VENV)/.installed
	$(PY) -m pytest benchmarks/ --benchmark-compare --benchmark-compare-fail=median:25%

# Re-record the stored latency baseline (a reviewed change: commit the new file with the reason).
baseline: $(VENV)/.installed
	$(PY) -m pytest benchmarks/ --benchmark-save=baseline

clean-cache:
	rm -rf .edgeopt-cache
