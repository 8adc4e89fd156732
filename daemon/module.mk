# daemon/: oskrd and the host pieces shared with the client library and sim.
CORE_SRCS += $(filter-out daemon/main.c,$(wildcard daemon/*.c))
PROGRAMS += $(B)/oskrd

$(B)/oskrd: $(B)/obj/daemon/main.o $(B)/liboskr-core.a $(DPDK_OBJS)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -rdynamic -o $@ $(B)/obj/daemon/main.o $(DPDK_OBJS) \
		$(B)/liboskr-core.a $(HOST_LIBS) $(DPDK_LIBS)
