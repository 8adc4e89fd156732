# oskr: one non-recursive Makefile (BIRD style); each directory adds its
# sources in a small module.mk fragment. Objects go out of tree to $(B).
#
#   make                 build everything into build/
#   make test            build and run the test suite (Check + integration)
#   make demo            the main job: local cluster + benchmark (README)
#   make bench           benchmark matrix (never part of `make test`)
#   make install PREFIX=/usr DESTDIR=/tmp/x
#   make V=1             show commands
#   make SANITIZE=address,undefined test
#   make test-sanitize   the same into build-asan/ (docs/hardening.md)
#   make fuzz            libFuzzer targets, FUZZ_SECONDS each (test/fuzz/)

B ?= build
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
PLUGINDIR ?= $(LIBDIR)/oskr/plugins
DESTDIR ?=
PKG_CONFIG ?= pkg-config
CC ?= cc
VERSION := 0.1.0

ifeq ($(V),1)
Q :=
quiet = @true
else
Q := @
quiet = @printf '  %-7s %s\n'
endif

DEPS_PKGS := libcrypto yaml-0.1 check ck libmicrohttpd
HAVE_DPDK := $(shell $(PKG_CONFIG) --exists libdpdk 2>/dev/null && echo 1)

CRYPTO_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcrypto 2>/dev/null)
CRYPTO_LIBS := $(shell $(PKG_CONFIG) --libs libcrypto 2>/dev/null)
YAML_CFLAGS := $(shell $(PKG_CONFIG) --cflags yaml-0.1 2>/dev/null)
YAML_LIBS := $(shell $(PKG_CONFIG) --libs yaml-0.1 2>/dev/null)
# libmicrohttpd: oskrd's HTTP /metrics endpoint (daemon/metrics_http.c)
MHD_CFLAGS := $(shell $(PKG_CONFIG) --cflags libmicrohttpd 2>/dev/null)
MHD_LIBS := $(shell $(PKG_CONFIG) --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)
# ck.pc adds -D__x86_64__ which is harmless; the library is header + libck.
CK_LIBS := $(shell $(PKG_CONFIG) --libs ck 2>/dev/null || echo -lck)
ifeq ($(HAVE_DPDK),1)
DPDK_CFLAGS := $(shell $(PKG_CONFIG) --cflags libdpdk)
DPDK_LIBS := $(shell $(PKG_CONFIG) --libs libdpdk)
endif

OPT ?= -O2 -g
WARN := -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow \
	-Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers
CFLAGS ?= $(OPT)
BASE_CFLAGS := -std=gnu11 -pthread -fPIC $(WARN) -Iinclude -I. \
	-DOSKR_VERSION='"$(VERSION)"' \
	-DOSKR_INSTALL_PLUGIN_DIR='"$(PLUGINDIR)"' \
	-MMD -MP
# SANITIZE=address,undefined (make test-sanitize): every object, plugin
# and test is instrumented; a UBSan finding aborts (exit non-zero) instead
# of printing and going on, so the test that hit it fails. A sanitized
# shared object leaves the runtime's symbols to the executable that loads
# it, so plugins are then linked without -Wl,--no-undefined. SANITIZE is
# exported so that a test script running make on the same build directory
# (make install …) builds with the same instrumentation.
ifneq ($(SANITIZE),)
export SANITIZE
SANITIZE_CFLAGS := -fsanitize=$(SANITIZE) -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
BASE_CFLAGS += $(SANITIZE_CFLAGS)
LDFLAGS += -fsanitize=$(SANITIZE)
PLUGIN_NO_UNDEFINED :=
else
SANITIZE_CFLAGS :=
PLUGIN_NO_UNDEFINED := -Wl,--no-undefined
endif
ALL_CFLAGS = $(BASE_CFLAGS) $(CRYPTO_CFLAGS) $(YAML_CFLAGS) $(CFLAGS)
HOST_LIBS = $(CRYPTO_LIBS) $(YAML_LIBS) $(CK_LIBS) -ldl -lpthread -lm

.SECONDEXPANSION:
# Keep objects made through pattern chains (plugins, tests).
.SECONDARY:

# Filled in by the module.mk fragments.
CORE_SRCS :=
SIM_SRCS :=
PLUGINS :=
PROGRAMS :=
TEST_SRCS :=

include transport/module.mk
include daemon/module.mk
include apps/module.mk
include client/module.mk
include sim/module.mk
include plugins/module.mk
include test/module.mk
include test/evil/module.mk
include test/abi/module.mk
include tools/module.mk
include test/fuzz/module.mk

CORE_OBJS := $(CORE_SRCS:%.c=$(B)/obj/%.o)
SIM_OBJS := $(SIM_SRCS:%.c=$(B)/obj/%.o)

# `make`, `make test` and `make demo` first make sure the Debian packages
# are there (installing them as root), then re-enter make so pkg-config is
# evaluated with the packages present.
all: deps
	@$(MAKE) --no-print-directory build
build: $(B)/liboskr-core.a $(PROGRAMS) $(PLUGINS:%=$(B)/plugins/%.so)
.PHONY: all build test demo bench install clean deps

$(B)/obj/%.o: %.c
	$(quiet) CC $<
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) $(EXTRA_CFLAGS_$(subst /,_,$*)) -c $< -o $@

$(B)/liboskr-core.a: $(CORE_OBJS)
	$(quiet) AR $@
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/liboskr-sim.a: $(SIM_OBJS)
	$(quiet) AR $@
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

# Plugins: only the SDK headers, hidden visibility, nothing of the host.
PLUGIN_CFLAGS := -std=gnu11 -fPIC -fvisibility=hidden $(WARN) -Iinclude \
	-MMD -MP $(SANITIZE_CFLAGS)
# (no '%' in the second expansion: make would substitute the stem into it)
$(B)/plugins/%.so: $$(addprefix $(B)/pobj/,$$(subst .c,.o,$$(wildcard plugins/$$*/*.c)))
	$(quiet) LD $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) -shared $(LDFLAGS) $(PLUGIN_NO_UNDEFINED) -o $@ $^

$(B)/pobj/%.o: %.c
	$(quiet) CC $<
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(PLUGIN_CFLAGS) $(CFLAGS) -c $< -o $@

clean:
	rm -rf $(B)

deps:
	@scripts/deps.sh

# The main job (README): build, start a local cluster, benchmark, stop.
DEMO_PROTOCOL ?= pbft
demo: deps
	@$(MAKE) --no-print-directory build
	@scripts/demo.sh $(B) $(DEMO_PROTOCOL)

# The benchmark matrix (docs/benchmarks.md); never part of `make test`.
# `make bench BENCH_ARGS=--quick` for the short run; see scripts/bench.sh -h.
BENCH_ARGS ?=
bench: deps
	@$(MAKE) --no-print-directory build
	@OSKR_BENCH_CFLAGS='$(CFLAGS)$(if $(SANITIZE), -fsanitize=$(SANITIZE))' \
		scripts/bench.sh -b $(B) $(BENCH_ARGS)

-include $(shell find $(B) -name '*.d' 2>/dev/null)

# ---- install (FHS; wireguard-tools style variables) ----
$(B)/oskr.pc: oskr.pc.in Makefile
	$(quiet) GEN $@
	@mkdir -p $(dir $@)
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@PLUGINDIR@|$(PLUGINDIR)|' -e 's|@BINDIR@|$(BINDIR)|' \
		-e 's|@VERSION@|$(VERSION)|' -e 's|@ABI@|1.0|' $< >$@

# systemd directories asked of pkg-config (wireguard-tools style), with
# FHS fallbacks when systemd.pc is absent.
SYSTEMDUNITDIR ?= $(or $(shell $(PKG_CONFIG) --variable=systemdsystemunitdir systemd 2>/dev/null),$(PREFIX)/lib/systemd/system)
SYSUSERSDIR ?= $(or $(shell $(PKG_CONFIG) --variable=sysusersdir systemd 2>/dev/null),$(PREFIX)/lib/sysusers.d)
# The units name /usr/sbin/oskrd and /etc/oskr: rewritten for this prefix.
UNIT_PATHS = -e 's|/usr/sbin/oskrd|$(SBINDIR)/oskrd|g' \
	-e 's|/etc/oskr/|$(SYSCONFDIR)/oskr/|g' -e 's|/etc/default/|$(SYSCONFDIR)/default/|g'

install: build
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(PLUGINDIR) \
		$(DESTDIR)$(INCLUDEDIR)/oskr $(DESTDIR)$(LIBDIR)/pkgconfig \
		$(DESTDIR)$(SYSCONFDIR)/oskr $(DESTDIR)$(SYSTEMDUNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(DATADIR)/oskr
	install -m 0755 $(B)/oskrd $(DESTDIR)$(SBINDIR)/oskrd
	for p in oskr-bench oskr-keygen oskrctl oskr-plugin-test; do \
		[ ! -f $(B)/$$p ] || install -m 0755 $(B)/$$p $(DESTDIR)$(BINDIR)/$$p; done
	install -m 0755 $(PLUGINS:%=$(B)/plugins/%.so) $(DESTDIR)$(PLUGINDIR)/
	install -m 0644 include/oskr/*.h $(DESTDIR)$(INCLUDEDIR)/oskr/
	install -m 0755 $(B)/liboskr-client.so $(DESTDIR)$(LIBDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@PLUGINDIR@|$(PLUGINDIR)|' -e 's|@BINDIR@|$(BINDIR)|' \
		-e 's|@VERSION@|$(VERSION)|' -e 's|@ABI@|1.0|' oskr.pc.in \
		>$(DESTDIR)$(LIBDIR)/pkgconfig/oskr.pc
	for u in oskrd.service oskrd@.service; do \
		sed $(UNIT_PATHS) conf/systemd/$$u >$(DESTDIR)$(SYSTEMDUNITDIR)/$$u && \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u || exit 1; done
	install -m 0644 conf/systemd/oskr.sysusers $(DESTDIR)$(SYSUSERSDIR)/oskr.conf
	install -m 0644 conf/systemd/oskrd-dpdk.conf $(DESTDIR)$(DATADIR)/oskr/oskrd-dpdk.conf
	install -m 0644 docs/man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 docs/man/*.5 $(DESTDIR)$(MANDIR)/man5/
	for c in conf/*.yaml; do [ ! -f "$$c" ] || install -m 0644 "$$c" $(DESTDIR)$(SYSCONFDIR)/oskr/; done
.PHONY: install
