# Python bindings (bindings/python): a pure-ctypes package tested with pytest.
# The development virtualenv (.venv, gitignored, created on first use) holds
# the test and build tools; the package itself is imported from the source
# tree here, and installed from the wheel by `make test-wheel` (mk/wheel.mk).
#   make test-python            # mypy --strict, then the suite from the source tree
#   make test-python PYTEST_ARGS="-k wal -x"

PYTHON      ?= python3
VENV        ?= $(CURDIR)/.venv
VENV_PY     := $(VENV)/bin/python
PYTEST_ARGS ?=
# The suite's own needs (prometheus_client: the reference text-format parser
# validates rio's exposition) and mypy for the type check.
PY_TEST_DEPS := pytest prometheus_client mypy

TEST_SUITES += test-python

.PHONY: test-python test-python-types python-venv

$(VENV_PY):
	$(PYTHON) -m venv $(VENV)

python-venv: $(VENV_PY)
	@$(VENV_PY) -c 'import pytest, prometheus_client, mypy' 2>/dev/null || \
		$(VENV_PY) -m pip install -q --disable-pip-version-check $(PY_TEST_DEPS)
	@# numpy only feeds the numpy-buffer test; without it that test is skipped (and says so).
	@$(VENV_PY) -c 'import numpy' 2>/dev/null || \
		$(VENV_PY) -m pip install -q --disable-pip-version-check --only-binary=:all: numpy || \
		echo "python: numpy unavailable; the numpy buffer test will be skipped"

# Every module of the package, strict (configured in pyproject.toml).
test-python-types: python-venv
	cd bindings/python && $(VENV_PY) -m mypy

# From the source tree with RIO_LIBRARY unset: the lookup must walk up from
# the package to this build tree's library (RIO_LIBRARY itself is covered by
# tests/test_lookup.py, the wheel's copy by test-wheel).
test-python: lib python-venv test-python-types
	@echo "== python: source tree, no RIO_LIBRARY (lookup into the build tree)"
	cd bindings/python && env -u RIO_LIBRARY $(VENV_PY) -P -c \
		'import sys; sys.path.insert(0, "."); import rio, os; p = os.path.realpath(rio.LIBRARY_PATH); \
		 sys.exit(0 if p == os.path.realpath("$(LIBDIR)/librio.so") else "found " + p + ", expected $(LIBDIR)/librio.so")'
	cd bindings/python && env -u RIO_LIBRARY $(VENV_PY) -P -m pytest -q -rfEs -p no:cacheprovider tests $(PYTEST_ARGS)

# Per-call cost of the binding next to os.preadv/os.pwrite (benches/
# python_call_cost.py, docs/bindings.md "Per-call cost"): part of `make bench`,
# written next to the other results as bench-results/python.{json,md}.
#   make bench-python PY_BENCH_ARGS='--reps 31 --calls 5000'
PY_BENCH_ARGS ?=
PY_BENCH := cd $(CURDIR) && env -u RIO_LIBRARY PYTHONPATH=$(CURDIR)/bindings/python $(PYTHON) -P benches/python_call_cost.py

.PHONY: bench-python bench-python-smoke
bench: bench-python
bench-python: lib
	@mkdir -p bench-results
	$(PY_BENCH) --dir bench-results --out bench-results $(PY_BENCH_ARGS)

# Tiny run in `make test`, so the script cannot rot (it also checks every
# call moves one page and reads see the written data).
TEST_SUITES += bench-python-smoke
bench-python-smoke: lib
	@mkdir -p bench-results/smoke
	$(PY_BENCH) --reps 1 --calls 200 --dir bench-results/smoke --out bench-results/smoke
	@$(PYTHON) -c 'import json, sys; d = json.load(open("bench-results/smoke/python.json")); \
		sys.exit(0 if d["median_ns"]["os.preadv"] > 0 and len(d["ratios"]) >= 7 else "bench-python-smoke: incomplete report")' && \
		echo "bench-python-smoke: every Python row measured"
