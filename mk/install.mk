# `make install`: the shared library (librio.so.0.<minor>.<patch> with the
# librio.so.0 and librio.so links), librio.a, rio.h, rio.hpp and
# lib/pkgconfig/rio.pc under $(DESTDIR)$(PREFIX).
#   make install PREFIX=$HOME/.local
#   make install DESTDIR=/tmp/stage PREFIX=/usr
# `make test-install` installs into a temporary prefix and builds C and C++
# examples against the installed copy only, shared and static.

PREFIX     ?= /usr/local
DESTDIR    ?=
libdir     ?= $(PREFIX)/lib
includedir ?= $(PREFIX)/include

# The [package] version of Cargo.toml (its first `version = "..."` line).
RIO_VERSION := $(shell sed -n 's/^version *= *"\([^"]*\)".*/\1/p' $(CURDIR)/Cargo.toml | head -n 1)
RIO_MINOR   := $(word 2,$(subst ., ,$(RIO_VERSION)))
RIO_PATCH   := $(word 3,$(subst ., ,$(RIO_VERSION)))
# pkg-config paths relative to ${prefix} when they are under it.
RIO_PC_LIBDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(libdir))
RIO_PC_INCDIR := $(patsubst $(PREFIX)/%,$${prefix}/%,$(includedir))

TEST_SUITES += test-install

.PHONY: install uninstall test-install

# The soname (librio.so.0) is read from the built library; the file is the
# soname plus .<minor>.<patch>.
install: lib header
	@test -n "$(RIO_VERSION)" || { echo "install: no version in Cargo.toml" >&2; exit 1; }
	@soname=$$(readelf -d $(LIBDIR)/librio.so | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'); \
	test -n "$$soname" || { echo "install: $(LIBDIR)/librio.so has no soname" >&2; exit 1; }; \
	real=$$soname.$(RIO_MINOR).$(RIO_PATCH); \
	set -ex; \
	install -d "$(DESTDIR)$(libdir)/pkgconfig" "$(DESTDIR)$(includedir)"; \
	install -m 755 $(LIBDIR)/librio.so "$(DESTDIR)$(libdir)/$$real"; \
	ln -sfn "$$real" "$(DESTDIR)$(libdir)/$$soname"; \
	ln -sfn "$$soname" "$(DESTDIR)$(libdir)/librio.so"; \
	install -m 644 $(LIBDIR)/librio.a "$(DESTDIR)$(libdir)/librio.a"; \
	install -m 644 include/rio.h include/rio.hpp "$(DESTDIR)$(includedir)/"; \
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(RIO_PC_LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(RIO_PC_INCDIR)|' -e 's|@VERSION@|$(RIO_VERSION)|' \
	    rio.pc.in > "$(DESTDIR)$(libdir)/pkgconfig/rio.pc"; \
	chmod 644 "$(DESTDIR)$(libdir)/pkgconfig/rio.pc"

uninstall:
	rm -f "$(DESTDIR)$(libdir)"/librio.so "$(DESTDIR)$(libdir)"/librio.so.$(firstword $(subst ., ,$(RIO_VERSION)))* \
	      "$(DESTDIR)$(libdir)/librio.a" "$(DESTDIR)$(libdir)/pkgconfig/rio.pc" \
	      "$(DESTDIR)$(includedir)/rio.h" "$(DESTDIR)$(includedir)/rio.hpp"

test-install: lib header
	@MAKE="$(MAKE)" RIO_VERSION="$(RIO_VERSION)" ./c_tests/install/run.sh
