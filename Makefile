# Top-level Makefile for sora2api (hand-written; ./configure writes config.mk).
#
#   make                 build build/sora2apid
#   make release         a build without test hooks (build-release/ when
#                        build/ has them)
#   make check           unit tests + integration tests (normal build), the
#                        release-binary tests and the admin UI's browser tests
#   make check-asan      the same suite against an ASan+UBSan build in build-asan/
#   make fuzz            builds the libFuzzer targets (clang) in build-fuzz/
#                        and runs each for FUZZ_SECONDS (60); fails on a crash
#   make install         the release binary; honours PREFIX/DESTDIR
#   make demo            the fake upstream and the daemon, wired together
#   make clean distclean
#
# BUILDDIR selects the object/binary directory so that a normal and a
# sanitizer build can live side by side. TEST_HOOKS (from configure
# --enable-test-hooks, or on the command line) compiles in the /__test/
# routes the black-box suite drives; a release binary never has them.

# In a fresh clone, `make` and `make demo` configure first (scripts/build
# runs autoreconf and configure, then comes back here); other targets
# still want a configured tree.
ifeq ($(wildcard config.mk),)
ifneq ($(filter-out all demo release,$(or $(MAKECMDGOALS),all)),)
$(error config.mk is missing: run ./configure first (autoreconf -fi if there is no configure), or scripts/build)
endif
.DEFAULT_GOAL := all
all demo release:
	scripts/build
	$(MAKE) $@
.PHONY: all demo release
else
include config.mk

PREFIX     ?= $(prefix)
DESTDIR    ?=
BUILDDIR   ?= build
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
DATADIR    ?= $(PREFIX)/share/sora2api
STATEDIR   ?= $(if $(filter /usr,$(PREFIX)),/var/lib/sora2api,$(PREFIX)/var/lib/sora2api)
CACHEDIR   ?= $(if $(filter /usr,$(PREFIX)),/var/cache/sora2api,$(PREFIX)/var/cache/sora2api)
RUNDIR     ?= /run/sora2api
LOGDIR     ?= $(if $(filter /usr,$(PREFIX)),/var/log/sora2api,$(PREFIX)/var/log/sora2api)

WARN    = -Wall -Wextra -Wshadow -Wconversion -Wno-sign-conversion \
          -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
ifeq ($(WERROR),yes)
WARN   += -Werror
endif
OPT     = -O2 -g
ifeq ($(DEBUG),yes)
OPT     = -O0 -g3
endif
ifeq ($(SANITIZE),yes)
# float-cast-overflow is not part of "undefined"; added where the compiler
# has it (probed only for a sanitizer build).
SAN_FCO := $(shell echo 'int main(void){return 0;}' | $(CC) \
             -fsanitize=float-cast-overflow -x c -o /dev/null - \
             >/dev/null 2>&1 && echo ,float-cast-overflow)
OPT     = -O1 -g -fno-omit-frame-pointer \
          -fsanitize=address,undefined$(SAN_FCO) \
          -fno-sanitize-recover=undefined$(SAN_FCO)
SAN_LDFLAGS = -fsanitize=address,undefined$(SAN_FCO)
endif
# The fuzzing build (make fuzz): clang, every object instrumented for
# libFuzzer, ASan and UBSan; any sanitizer report aborts the run.
ifeq ($(FUZZ),yes)
FUZZ_SAN = address,undefined,float-cast-overflow
OPT     = -O1 -g -fno-omit-frame-pointer \
          -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -fno-sanitize-recover=all
SAN_LDFLAGS = -fsanitize=$(FUZZ_SAN)
endif

CPPFLAGS += -D_GNU_SOURCE -DS2A_VERSION='"$(VERSION)"' -Isrc
ifeq ($(TEST_HOOKS),yes)
CPPFLAGS += -DS2A_TEST_HOOKS=1
endif
ifeq ($(HAVE_ACCEPT4),yes)
CPPFLAGS += -DHAVE_ACCEPT4=1
endif
ifeq ($(HAVE_PRCTL),yes)
CPPFLAGS += -DHAVE_PRCTL=1
endif
CFLAGS  += -std=c11 $(WARN) $(OPT) $(PKG_CFLAGS)
LDFLAGS += $(SAN_LDFLAGS)
LDLIBS  += $(PKG_LIBS) -lpthread

COMMON_SRC = $(sort $(wildcard src/common/*.c))
MASTER_SRC = $(sort $(wildcard src/master/*.c))
WORKER_SRC = $(sort $(wildcard src/worker/*.c))
ifneq ($(TEST_HOOKS),yes)
WORKER_SRC := $(filter-out src/worker/testhooks.c,$(WORKER_SRC))
endif
DAEMON_SRC = $(COMMON_SRC) $(MASTER_SRC) $(WORKER_SRC)
DAEMON_OBJ = $(DAEMON_SRC:%.c=$(BUILDDIR)/%.o)
LIB_OBJ    = $(filter-out $(BUILDDIR)/src/master/main.o,$(DAEMON_OBJ))

UNIT_SRC   = $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRC   = $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN   = $(FUZZ_SRC:tests/fuzz/%.c=$(BUILDDIR)/fuzz/%)
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
UNIT_BIN   = $(UNIT_SRC:tests/unit/%.c=$(BUILDDIR)/tests/%)

# The binary the black-box suite drives (with hooks) and the one that is
# installed (without); one of them is $(BUILDDIR) itself.
ifeq ($(TEST_HOOKS),yes)
HOOKS_BUILDDIR   = $(BUILDDIR)
RELEASE_BUILDDIR = $(BUILDDIR)-release
else
HOOKS_BUILDDIR   = $(BUILDDIR)-hooks
RELEASE_BUILDDIR = $(BUILDDIR)
endif

# Black-box tests that need no test hook (no /__test/ route, and not
# SORA2API_TEST_HEARTBEAT_MS as gen-reload.test.js does); they also run
# against the release binary, with release.test.js.
RELEASE_TESTS = tests/integration/release.test.js \
                tests/integration/http-basics.test.js \
                tests/integration/settings.test.js \
                tests/integration/tokens.test.js \
                tests/integration/tokens-bulk.test.js \
                tests/integration/webhooks.test.js

GENERATED  = $(BUILDDIR)/etc/sora2apid.service $(BUILDDIR)/etc/sora2api.init \
             $(BUILDDIR)/etc/sora2api.conf

.PHONY: FORCE all check check-unit check-fake check-integration check-browser check-asan check-docs install \
        uninstall clean distclean format format-check demo release hooks \
        check-release print-release-bin fuzz fuzz-build fuzz-run

all: $(BUILDDIR)/sora2apid $(GENERATED)

# The other flavour, in its own directory.
ifeq ($(TEST_HOOKS),yes)
release:
	$(MAKE) BUILDDIR=$(RELEASE_BUILDDIR) TEST_HOOKS=no all
hooks: all
else
release: all
hooks:
	$(MAKE) BUILDDIR=$(HOOKS_BUILDDIR) TEST_HOOKS=yes all
endif

print-release-bin:
	@echo $(RELEASE_BUILDDIR)/sora2apid

$(BUILDDIR)/sora2apid: $(DAEMON_OBJ)
	$(CC) $(LDFLAGS) -o $@ $(DAEMON_OBJ) $(LDLIBS)

# Objects are rebuilt when the compiler flags change (hooks on or off,
# sanitizers), not only when a source does.
$(BUILDDIR)/cflags.txt: FORCE
	@mkdir -p $(dir $@)
	@echo '$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) $(LDLIBS)' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(BUILDDIR)/%.o: %.c $(BUILDDIR)/cflags.txt
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILDDIR)/tests/%: tests/unit/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(CMOCKA_CFLAGS) -o $@ $< $(LIB_OBJ) \
	    $(LDFLAGS) $(LDLIBS) $(CMOCKA_LIBS)

# test_http.c includes http.c to reach its static helpers.
$(BUILDDIR)/tests/test_http: tests/unit/test_http.c src/worker/http.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(CMOCKA_CFLAGS) -o $@ $< \
	    $(filter-out $(BUILDDIR)/src/worker/http.o,$(LIB_OBJ)) \
	    $(LDFLAGS) $(LDLIBS) $(CMOCKA_LIBS)

# libFuzzer targets: one tests/fuzz/fuzz_<name>.c each, linked against
# every daemon object but main.o; seeds and regression inputs live in
# tests/fuzz/corpus/<name>/ (read-only here: what the fuzzer finds goes to
# build-fuzz/corpus/<name>/, a crash to build-fuzz/crash/<name>-*).
$(BUILDDIR)/fuzz/%: tests/fuzz/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(LIB_OBJ) \
	    $(LDFLAGS) $(LDLIBS)

fuzz:
	$(MAKE) BUILDDIR=build-fuzz CC=$(FUZZ_CC) FUZZ=yes TEST_HOOKS=no fuzz-run

fuzz-build: $(FUZZ_BIN)

# Every target for FUZZ_SECONDS, every corpus input replayed first; one
# make target each, so `make -j` runs them side by side (one line each).
FUZZ_RUNS = $(patsubst $(BUILDDIR)/fuzz/fuzz_%,fuzz-run-%,$(FUZZ_BIN))
fuzz-run: $(FUZZ_RUNS)

fuzz-run-%: $(BUILDDIR)/fuzz/fuzz_%
	@mkdir -p $(BUILDDIR)/corpus/$* $(BUILDDIR)/crash
	@$< -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -max_len=65536 -print_final_stats=1 \
	    -artifact_prefix=$(BUILDDIR)/crash/$*- \
	    $(BUILDDIR)/corpus/$* tests/fuzz/corpus/$* 2>$(BUILDDIR)/fuzz-$*.log \
	    || { tail -60 $(BUILDDIR)/fuzz-$*.log; echo "fuzz $*: FAILED"; exit 1; }
	@echo "== fuzz $* ($(FUZZ_SECONDS) s):" $$(grep -E '^stat::number_of_executed_units|^stat::new_units_added' \
	    $(BUILDDIR)/fuzz-$*.log | tr '\n' ' ')

# Service files carry the installed paths.
SUBST = sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
            -e 's|@STATEDIR@|$(STATEDIR)|g' -e 's|@CACHEDIR@|$(CACHEDIR)|g' \
            -e 's|@RUNDIR@|$(RUNDIR)|g' -e 's|@LOGDIR@|$(LOGDIR)|g' \
            -e 's|@DATADIR@|$(DATADIR)|g'
# Rewritten only when an installation path changes, so generated files
# follow PREFIX=... given to `make install` after a plain `make`.
$(BUILDDIR)/paths.txt: FORCE
	@mkdir -p $(dir $@)
	@echo '$(SBINDIR) $(SYSCONFDIR) $(STATEDIR) $(CACHEDIR) $(RUNDIR) $(LOGDIR) $(DATADIR)' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

FORCE:

$(BUILDDIR)/etc/%: etc/%.in Makefile config.mk $(BUILDDIR)/paths.txt
	@mkdir -p $(dir $@)
	$(SUBST) $< > $@

# The installed configuration: the same file with the installed paths.
$(BUILDDIR)/etc/sora2api.conf: etc/sora2api.conf Makefile config.mk $(BUILDDIR)/paths.txt
	@mkdir -p $(dir $@)
	sed -e 's|^pidfile = .*|pidfile = $(RUNDIR)/sora2apid.pid|' \
	    -e 's|^data_dir = .*|data_dir = $(STATEDIR)|' \
	    -e 's|^cache_dir = .*|cache_dir = $(CACHEDIR)|' \
	    -e 's|^admin_ui_dir = .*|admin_ui_dir = $(DATADIR)/admin-ui|' \
	    -e 's|^error_log = .*|error_log = $(LOGDIR)/error.log|' \
	    -e 's|^access_log = .*|access_log = $(LOGDIR)/access.log|' $< > $@

check: all check-unit check-docs format-check check-fake check-integration \
       check-release check-browser

check-unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

check-docs:
	@scripts/check-docs

# A test that hangs fails after 3 minutes instead of holding the suite
# (where node knows the option).
TEST_TIMEOUT = $(shell node --help 2>/dev/null | grep -q -- --test-timeout && echo --test-timeout=180000)

check-fake:
	node --test $(TEST_TIMEOUT) tests/fake-sora/test/

# The whole black-box suite, against the binary with test hooks.
# Two test files at once (each has its own daemon, fake upstream, ports
# and directories; most of their time is spent waiting on the daemon).
# TEST_CONCURRENCY=1 runs them one by one.
TEST_CONCURRENCY = 2
check-integration: all hooks
	S2A_BUILDDIR=$(HOOKS_BUILDDIR) node --test --test-concurrency=$(TEST_CONCURRENCY) $(TEST_TIMEOUT) tests/integration/

# The admin UI in headless chromium (playwright-core), against the same
# binary; screenshots of every view in $(HOOKS_BUILDDIR)/ui-screenshots/.
check-browser: all hooks
	S2A_BUILDDIR=$(HOOKS_BUILDDIR) node --test --test-concurrency=1 $(TEST_TIMEOUT) tests/browser/

# A part of it against the release binary: no /__test/ route, no hook
# symbol, and the hook-free tests pass.
check-release: release
	S2A_BUILDDIR=$(RELEASE_BUILDDIR) S2A_RELEASE=1 node --test --test-concurrency=1 $(TEST_TIMEOUT) $(RELEASE_TESTS)

check-asan:
	$(MAKE) BUILDDIR=build-asan SANITIZE=yes check-unit check-integration

# Never the hooks build: the release binary is built (in its own
# directory when $(BUILDDIR) has hooks) and installed.
install: release
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(SYSCONFDIR)/sora2api \
	    $(DESTDIR)$(DATADIR)/admin-ui $(DESTDIR)$(DATADIR)/service
	$(INSTALL) -m 755 $(RELEASE_BUILDDIR)/sora2apid $(DESTDIR)$(SBINDIR)/sora2apid
	$(INSTALL) -m 644 man/sora2apid.8 $(DESTDIR)$(MANDIR)/man8/sora2apid.8
	$(INSTALL) -m 644 man/sora2api.conf.5 $(DESTDIR)$(MANDIR)/man5/sora2api.conf.5
	test -f $(DESTDIR)$(SYSCONFDIR)/sora2api/sora2api.conf || \
	    $(INSTALL) -m 640 $(RELEASE_BUILDDIR)/etc/sora2api.conf $(DESTDIR)$(SYSCONFDIR)/sora2api/sora2api.conf
	cp -R admin-ui/. $(DESTDIR)$(DATADIR)/admin-ui/
	$(INSTALL) -m 644 $(RELEASE_BUILDDIR)/etc/sora2apid.service $(DESTDIR)$(DATADIR)/service/sora2apid.service
	$(INSTALL) -m 755 $(RELEASE_BUILDDIR)/etc/sora2api.init $(DESTDIR)$(DATADIR)/service/sora2api.init
	$(INSTALL) -m 644 etc/sora2api.logrotate $(DESTDIR)$(DATADIR)/service/sora2api.logrotate

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/sora2apid $(DESTDIR)$(MANDIR)/man8/sora2apid.8 \
	    $(DESTDIR)$(MANDIR)/man5/sora2api.conf.5
	rm -rf $(DESTDIR)$(DATADIR)

format:
	clang-format -i src/*/*.c src/*/*.h tests/unit/*.c tests/fuzz/*.c

format-check:
	clang-format --dry-run --Werror src/*/*.c src/*/*.h tests/unit/*.c \
	    tests/fuzz/*.c

demo: release
	SORA2APID=$(RELEASE_BUILDDIR)/sora2apid scripts/demo

clean:
	rm -rf build build-asan build-release build-hooks build-asan-release \
	    build-asan-hooks build-fuzz

distclean: clean
	rm -rf config.mk config.log config.status autom4te.cache configure var

-include $(DAEMON_OBJ:.o=.d)
endif
