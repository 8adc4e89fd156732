# test/evil/: the Byzantine wrapper plugin of test/integration/byzantine.sh
# (docs/hardening.md). Built like a plugin (SDK header, libc, hidden
# visibility) plus libdl: it dlopens the real plugin it wraps.
EVIL_SO := $(B)/test/evil/evil.so
$(EVIL_SO): test/evil/evil.c include/oskr/plugin.h
	$(quiet) LD $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(PLUGIN_CFLAGS) -MF /dev/null $(CFLAGS) -shared \
		$(LDFLAGS) $(PLUGIN_NO_UNDEFINED) -o $@ $< -ldl
test-bins: $(EVIL_SO)
