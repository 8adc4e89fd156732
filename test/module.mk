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
