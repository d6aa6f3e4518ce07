# libsslsess: build, test, demo, benchmark, install.
#
#   make demo     a real TLS server and client through libsslsess
#   make check    every test (Rust unit tests, C suites three ways, valgrind,
#                 handshakes, unmodified programs, threaded stress)
#   make bench    libsslsess against plain libssl, side by side
#   make install PREFIX=/usr/local

PREFIX    ?= /usr/local
LIBDIR    ?= $(PREFIX)/lib
INCDIR    ?= $(PREFIX)/include
CC        ?= cc
CARGO     ?= cargo

OUT       := target/release
LIB       := $(OUT)/libsslsess.so
SONAME    := libsslsess.so.0
VERSION   := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

# Shared with the scripts under tests-c/, benches/ and .ci/.
export SSLSESS_ROOT   := $(CURDIR)
export SSLSESS_LIBDIR := $(CURDIR)/$(OUT)
export SSLSESS_LIB    := $(CURDIR)/$(LIB)
export SSLSESS_BUILD  := $(CURDIR)/build
export CC
export CARGO

.PHONY: all lib setup check unit conformance handshake programs nginx symbolic unresolved stress demo bench install clean

all: lib

lib:
	$(CARGO) build --release --quiet
	ln -sf libsslsess.so $(OUT)/$(SONAME)

# Tools the suites need beyond a fresh machine's (curl, pkg-config, nginx).
setup:
	bash .ci/setup

check: setup
	$(MAKE) unit conformance handshake programs nginx symbolic unresolved stress
	@echo "make check: all suites passed"

unit:
	$(CARGO) test --release --lib --quiet

conformance: lib
	bash tests-c/conformance.sh

handshake: lib
	bash tests-c/handshake.sh

programs: lib
	bash tests-c/programs.sh

nginx: lib
	bash tests-c/nginx.sh

symbolic: lib
	bash tests-c/symbolic.sh

unresolved: lib
	bash tests-c/unresolved.sh

stress: lib
	bash tests-c/stress.sh

demo: lib
	bash tests-c/demo.sh

bench: lib
	bash benches/run.sh

install: lib
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 755 $(LIB) $(DESTDIR)$(LIBDIR)/libsslsess.so.$(VERSION)
	ln -sf libsslsess.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libsslsess.so
	install -m 644 include/sslsess.h $(DESTDIR)$(INCDIR)/sslsess.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    sslsess.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/sslsess.pc

clean:
	$(CARGO) clean
	rm -rf build
