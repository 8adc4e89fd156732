# tools/: oskr-plugin-test, the plugin conformance kit (tools/conformance/).
# It runs any plugin .so on the sim, so it links the sim and the host core;
# it is installed next to oskr-bench for plugin authors.
KIT_SRCS := $(wildcard tools/conformance/*.c)
KIT_OBJS := $(KIT_SRCS:%.c=$(B)/obj/%.o)
PROGRAMS += $(B)/oskr-plugin-test

$(B)/oskr-plugin-test: $(KIT_OBJS) $(B)/liboskr-sim.a $(B)/liboskr-core.a
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(KIT_OBJS) $(B)/liboskr-sim.a \
		$(B)/liboskr-core.a $(HOST_LIBS)
