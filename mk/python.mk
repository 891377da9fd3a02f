# Python bindings (bindings/python): a pure-ctypes package tested with pytest
# in a virtualenv (.venv, gitignored) created on first use.
#   make test-python            # both runs below
#   make test-python PYTEST_ARGS="-k wal -x"

PYTHON      ?= python3
VENV        ?= $(CURDIR)/.venv
VENV_PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

TEST_SUITES += test-python

.PHONY: test-python python-venv

$(VENV_PY):
	$(PYTHON) -m venv $(VENV)

python-venv: $(VENV_PY)
	@# prometheus_client: the reference text-format parser validates rio's exposition.
	@$(VENV_PY) -c 'import pytest, setuptools, wheel, prometheus_client' 2>/dev/null || \
		$(VENV_PY) -m pip install -q --disable-pip-version-check pytest setuptools wheel prometheus_client
	@# numpy only feeds the numpy-buffer test; without it that test is skipped (and says so).
	@$(VENV_PY) -c 'import numpy' 2>/dev/null || \
		$(VENV_PY) -m pip install -q --disable-pip-version-check --only-binary=:all: numpy || \
		echo "python: numpy unavailable; the numpy buffer test will be skipped"
	@# Install the package itself (not editable: the tests run the installed copy).
	$(VENV_PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
		--force-reinstall ./bindings/python
	@rm -rf bindings/python/build bindings/python/*.egg-info

test-python: lib python-venv
	@echo "== python: RIO_LIBRARY=$(LIBDIR)/librio.so"
	cd bindings/python && RIO_LIBRARY=$(LIBDIR)/librio.so $(VENV_PY) -P -m pytest -q -rs -p no:cacheprovider tests $(PYTEST_ARGS)
	@echo "== python: no RIO_LIBRARY (lookup from the installed package into the build tree)"
	cd bindings/python && env -u RIO_LIBRARY $(VENV_PY) -P -c \
		'import rio, os, sys; p = os.path.realpath(rio.library_path); \
		 sys.exit(0 if p == os.path.realpath("$(LIBDIR)/librio.so") else "found " + p + ", expected $(LIBDIR)/librio.so")'
	cd bindings/python && env -u RIO_LIBRARY $(VENV_PY) -P -m pytest -q -rs -p no:cacheprovider tests $(PYTEST_ARGS)
