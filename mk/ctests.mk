# C test programs (c_tests/test_*.c): extra plumbing for `make test-c`.
# The build and run rules themselves live in the top-level Makefile.

# `make test-c-valgrind`: the plain C test builds under valgrind memcheck
# (leaks, invalid accesses, uninitialised reads), installing valgrind with
# apt-get when it is missing.
#
# Thread-pool backend only (RIO_CTEST_BACKENDS, honoured by c_tests/check.h):
# valgrind does not see the kernel writing into a buffer through an io_uring
# completion, so every buffer filled by a ring read stays "uninitialised" in
# its eyes and the next memcmp is reported as an error (a false positive).
# The io_uring backend is covered by the AddressSanitizer+UBSan run instead.
VALGRIND ?= valgrind
VALGRIND_FLAGS ?= --leak-check=full --error-exitcode=99 -q --suppressions=$(CURDIR)/c_tests/valgrind.supp

.PHONY: test-c-valgrind valgrind-install
valgrind-install:
	@if ! command -v $(VALGRIND) >/dev/null 2>&1; then \
		echo "test-c-valgrind: installing valgrind"; \
		sudo=; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		export DEBIAN_FRONTEND=noninteractive; \
		{ $$sudo apt-get update -qq && $$sudo apt-get install -y -qq valgrind; } >/dev/null || \
			{ echo "test-c-valgrind: cannot install valgrind (needs root or sudo, and apt-get)"; exit 1; }; \
	fi

# test_threads (64-thread hammer, signal storms) can livelock under
# valgrind's serialised scheduler (seen once: 100% CPU for 10+ minutes);
# it runs plain and under ASan+UBSan instead. Under investigation.
# test_fork (12 busy threads reading and checking megabytes, forking) would
# take many minutes under that scheduler; it runs plain and under ASan.
VALGRIND_BIN := $(filter-out c_tests/build/test_threads c_tests/build/test_fork,$(CTEST_BIN))

test-c-valgrind: valgrind-install $(CTEST_BIN)
	@failed=0; \
	for t in $(VALGRIND_BIN); do \
		echo "== valgrind $$t"; \
		RIO_CTEST_BACKENDS=thread_pool $(VALGRIND) $(VALGRIND_FLAGS) $$t || { echo "FAILED: valgrind $$t"; failed=$$((failed + 1)); }; \
	done; \
	echo "C test programs under valgrind: $$(( $(words $(VALGRIND_BIN)) - failed )) passed, $$failed failed"; \
	[ $$failed -eq 0 ]

TEST_SUITES += test-c-valgrind
