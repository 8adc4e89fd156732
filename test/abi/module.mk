# test/abi/: plugins for test/test_abi.c, compiled against header
# snapshots in this directory (never include/oskr/), so they are what a
# plugin built with an older or newer SDK looks like to the current host:
#   echo_1_0.so         the frozen 1.0 header
#   echo_1_2_compat.so  a simulated 1.2 header, declaring 1.1
#   echo_1_2.so         the same, declaring 1.2 (refused by a 1.1 host)
ABI_PLUGIN_CFLAGS = -std=gnu11 -fPIC -fvisibility=hidden $(WARN) -shared \
	$(SANITIZE_CFLAGS) $(PLUGIN_NO_UNDEFINED) $(CFLAGS)
ABI_TEST_SOS := $(addprefix $(B)/test/abi/,echo_1_0.so echo_1_2_compat.so echo_1_2.so)

$(B)/test/abi/echo_1_0.so: test/abi/echo.c test/abi/plugin-1.0.h test/abi/layout.h
	$(quiet) LD $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ABI_PLUGIN_CFLAGS) -DABI_HEADER='"plugin-1.0.h"' -DEXPORT_LAYOUT -o $@ $<

$(B)/test/abi/echo_1_2_compat.so: test/abi/echo.c test/abi/plugin-1.2-draft.h test/abi/layout.h
	$(quiet) LD $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ABI_PLUGIN_CFLAGS) -DABI_HEADER='"plugin-1.2-draft.h"' -DABI_FUTURE \
		-DDECLARE_MINOR=1 -DEXPORT_LAYOUT_1_1 -o $@ $<

$(B)/test/abi/echo_1_2.so: test/abi/echo.c test/abi/plugin-1.2-draft.h test/abi/layout.h
	$(quiet) LD $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ABI_PLUGIN_CFLAGS) -DABI_HEADER='"plugin-1.2-draft.h"' -DABI_FUTURE -o $@ $<

test-bins: $(ABI_TEST_SOS)
