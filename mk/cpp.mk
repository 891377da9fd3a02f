# C++ wrappers (include/rio.hpp): c_tests/test_cpp.cpp is built as C++17 and
# as C++20 (std::span overloads), plus a C++20 ASan/UBSan build, and run.

CXX      ?= g++
CXXFLAGS_RIO := -Wall -Wextra -Werror -g -O1 -I$(CURDIR)/include
CPPTEST_BIN  := c_tests/build/test_cpp17 c_tests/build/test_cpp20 c_tests/build/asan/test_cpp20

TEST_SUITES += test-cpp

.PHONY: test-cpp test-cpp-doc

c_tests/build/test_cpp%: c_tests/test_cpp.cpp include/rio.hpp include/rio.h lib
	@mkdir -p $(dir $@)
	@ln -sf librio.so $(LIBDIR)/librio.so.0
	$(CXX) -std=c++$* $(CXXFLAGS_RIO) -o $@ $< $(LDFLAGS)

c_tests/build/asan/test_cpp%: c_tests/test_cpp.cpp include/rio.hpp include/rio.h lib
	@mkdir -p $(dir $@)
	@ln -sf librio.so $(LIBDIR)/librio.so.0
	$(CXX) -std=c++$* $(CXXFLAGS_RIO) $(SANFLAGS) -o $@ $< $(LDFLAGS)

test-cpp: $(CPPTEST_BIN) test-cpp-doc
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		./c_tests/run.sh $(CPPTEST_BIN)

# The C++ examples of docs/bindings.md (files, then WAL) must compile
# (-Werror) and run.
CPP_DOC_DIR := c_tests/build/doc-example
test-cpp-doc: lib
	@rm -rf $(CPP_DOC_DIR) && mkdir -p $(CPP_DOC_DIR)
	@for n in 1 2; do awk -v n=$$n '/^```cpp$$/{k++; if (k == n) {on = 1; next}} on && /^```$$/{exit} on' \
		docs/bindings.md > $(CPP_DOC_DIR)/example$$n.cpp; done
	@ln -sf librio.so $(LIBDIR)/librio.so.0
	$(CXX) -std=c++17 $(CXXFLAGS_RIO) -o $(CPP_DOC_DIR)/example1 $(CPP_DOC_DIR)/example1.cpp $(LDFLAGS)
	$(CXX) -std=c++17 $(CXXFLAGS_RIO) -o $(CPP_DOC_DIR)/example2 $(CPP_DOC_DIR)/example2.cpp $(LDFLAGS)
	@cd $(CPP_DOC_DIR) && out=$$(./example1) && echo "$$out" && case "$$out" in \
		"read 15 bytes: hello, io_uring (backend "*) echo "docs/bindings.md C++ file example: 1 passed, 0 failed" ;; \
		*) echo "docs/bindings.md C++ file example: 0 passed, 1 failed"; exit 1 ;; esac
	@cd $(CPP_DOC_DIR) && out=$$(./example2) && echo "$$out" && case "$$out" in \
		"appended 1 to 3"*"3 del k1") echo "docs/bindings.md C++ WAL example: 1 passed, 0 failed" ;; \
		*) echo "docs/bindings.md C++ WAL example: 0 passed, 1 failed"; exit 1 ;; esac
