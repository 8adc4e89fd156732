# test/: every test/test_*.c is one Check suite binary, linked with the sim
# and the host core. `make test` runs them all, then test/integration/*.sh.
TEST_SRCS := $(wildcard test/test_*.c)
TEST_BINS := $(TEST_SRCS:test/%.c=$(B)/test/%)

$(B)/test/%: $(B)/obj/test/%.o $(B)/liboskr-sim.a $(B)/liboskr-core.a
	$(quiet) LD $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -rdynamic -o $@ $< $(B)/liboskr-sim.a $(B)/liboskr-core.a \
		$(CHECK_LIBS) $(HOST_LIBS)

$(B)/obj/test/%.o: ALL_CFLAGS += $(CHECK_CFLAGS)

test-bins: build $(TEST_BINS)
test: deps
	@$(MAKE) --no-print-directory test-bins
	@scripts/run-tests.sh $(B) $(TESTS)
.PHONY: test-bins

# The whole suite (Check suites and integration scripts) under ASan, UBSan
# and LeakSanitizer, in a build directory of its own.
SANITIZE_BUILD ?= build-asan
test-sanitize:
	@$(MAKE) --no-print-directory B=$(SANITIZE_BUILD) \
		SANITIZE=address,undefined test
.PHONY: test-sanitize

# Loader test plugins: one source, built with different descriptors.
PROBE_VARIANTS := good:  wrong_major:-DPROBE_MAJOR=2 newer_minor:-DPROBE_MINOR=99 \
	small_size:-DPROBE_SIZE=16 no_symbol:-DPROBE_NO_DESCRIPTOR
PROBE_SOS := $(foreach v,$(PROBE_VARIANTS),$(B)/test/plugins/probe_$(word 1,$(subst :, ,$(v))).so)
define probe_rule
$(B)/test/plugins/probe_$(word 1,$(subst :, ,$(1))).so: test/plugins/abi_probe.c include/oskr/plugin.h
	$$(quiet) LD $$@
	@mkdir -p $$(dir $$@)
	$$(Q)$$(CC) $$(PLUGIN_CFLAGS) -MF /dev/null $$(CFLAGS) $(word 2,$(subst :, ,$(1))) -shared \
		$$(PLUGIN_NO_UNDEFINED) -o $$@ $$<
endef
$(foreach v,$(PROBE_VARIANTS),$(eval $(call probe_rule,$(v))))
test-bins: $(PROBE_SOS)

# Helper programs of the integration scripts (test/tools/*.c -> build/test/tools/*):
# a NOTIFY_SOCKET listener, a Prometheus format checker, a kv client.
TEST_TOOL_SRCS := $(wildcard test/tools/*.c)
TEST_TOOLS := $(TEST_TOOL_SRCS:test/tools/%.c=$(B)/test/tools/%)
$(B)/test/tools/%: $(B)/obj/test/tools/%.o $(B)/liboskr-core.a
	$(quiet) LD $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(B)/liboskr-core.a $(HOST_LIBS)
test-bins: $(TEST_TOOLS)
