# C test programs (c_tests/test_*.c): extra plumbing for `make test-c`.
# The build and run rules themselves live in the top-level Makefile.

# The library's soname is librio.so.0 but cargo only writes librio.so, so a
# program linked with -lrio could not be loaded from target/release: add
# the soname link next to it.
.PHONY: ctest-soname-link
ctest-soname-link: lib
	@ln -sf librio.so $(LIBDIR)/librio.so.0

$(CTEST_BIN) $(CTEST_ASAN): ctest-soname-link
