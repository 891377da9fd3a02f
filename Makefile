# librio: `make` builds the library and header; `make test` runs every suite;
# `make bench` runs the comparison benchmark. Everything a fresh machine
# lacks is installed by scripts/setup.sh (idempotent).

CARGO    ?= cargo
PROFILE  := release
LIBDIR   := $(CURDIR)/target/$(PROFILE)
CC       ?= gcc
CFLAGS   := -std=c11 -Wall -Wextra -Werror -g -O1 -D_GNU_SOURCE -I$(CURDIR)/include
LDFLAGS  := -L$(LIBDIR) -Wl,-rpath,$(LIBDIR) -lrio -lpthread
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
CTEST_SRC := $(sort $(wildcard c_tests/test_*.c))
CTEST_BIN := $(patsubst c_tests/%.c,c_tests/build/%,$(CTEST_SRC))
CTEST_ASAN := $(patsubst c_tests/%.c,c_tests/build/asan/%,$(CTEST_SRC))

.PHONY: all lib header test test-rust test-c test-c-plain test-c-asan test-exports setup bench clean

all: lib header

# cargo writes only librio.so; programs linked with -lrio load the soname
# librio.so.0, so the link sits next to it.
lib:
	$(CARGO) build --$(PROFILE) --lib
	@ln -sf librio.so $(LIBDIR)/librio.so.0

# Copies the header cbindgen generated during the build into include/.
header: lib
	cp "$$(ls -t target/$(PROFILE)/build/librio-*/out/rio.h | head -n 1)" include/rio.h

setup:
	./scripts/setup.sh

# Each mk/*.mk adds its suite to TEST_SUITES (Python, Go, WAL crash test,
# benchmark smoke run...), so suites can be added without editing this file.
TEST_SUITES :=
include $(sort $(wildcard mk/*.mk))

# On this machine kind io_uring works: a suite that finds it unavailable
# fails instead of skipping its io_uring half.
test: export RIO_REQUIRE_IO_URING = 1
test: export RIO_CTEST_REQUIRE_IO_URING = 1
test: setup lib test-rust test-exports test-c $(TEST_SUITES)
	@echo "make test: all suites passed"

test-rust:
	$(CARGO) test --$(PROFILE)

# Only rio_* symbols may be exported from the shared object.
test-exports: lib
	@bad=$$(nm -D --defined-only $(LIBDIR)/librio.so | awk '{print $$3}' | grep -v '^rio_' || true); \
	if [ -n "$$bad" ]; then echo "non-rio symbols exported:"; echo "$$bad"; exit 1; fi; \
	readelf -d $(LIBDIR)/librio.so | grep -q 'SONAME.*librio.so.0' || { echo "soname is not librio.so.0"; exit 1; }; \
	echo "exports: only rio_* symbols, soname librio.so.0"

c_tests/build/%: c_tests/%.c c_tests/check.h include/rio.h lib
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS)

c_tests/build/asan/%: c_tests/%.c c_tests/check.h include/rio.h lib
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANFLAGS) -o $@ $< $(LDFLAGS)

test-c: test-c-plain test-c-asan

test-c-plain: $(CTEST_BIN)
	@./c_tests/run.sh $(CTEST_BIN)

test-c-asan: $(CTEST_ASAN)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		./c_tests/run.sh $(CTEST_ASAN)

clean:
	$(CARGO) clean
	rm -rf c_tests/build
