# C++ wrappers (include/rio.hpp): c_tests/test_cpp.cpp is built as C++17 and
# as C++20 (std::span overloads), plus a C++20 ASan/UBSan build, and run.

CXX      ?= g++
CXXFLAGS_RIO := -Wall -Wextra -Werror -g -O1 -I$(CURDIR)/include
CPPTEST_BIN  := c_tests/build/test_cpp17 c_tests/build/test_cpp20 c_tests/build/asan/test_cpp20

TEST_SUITES += test-cpp

.PHONY: test-cpp

c_tests/build/test_cpp%: c_tests/test_cpp.cpp include/rio.hpp include/rio.h lib
	@mkdir -p $(dir $@)
	@ln -sf librio.so $(LIBDIR)/librio.so.0
	$(CXX) -std=c++$* $(CXXFLAGS_RIO) -o $@ $< $(LDFLAGS)

c_tests/build/asan/test_cpp%: c_tests/test_cpp.cpp include/rio.hpp include/rio.h lib
	@mkdir -p $(dir $@)
	@ln -sf librio.so $(LIBDIR)/librio.so.0
	$(CXX) -std=c++$* $(CXXFLAGS_RIO) $(SANFLAGS) -o $@ $< $(LDFLAGS)

test-cpp: $(CPPTEST_BIN)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		./c_tests/run.sh $(CPPTEST_BIN)
