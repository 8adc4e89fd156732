# daemon/: oskrd and the host pieces shared with the client library and sim.
# metrics_http.c is oskrd's alone: only oskrd links libmicrohttpd.
OSKRD_ONLY_SRCS := daemon/main.c daemon/metrics_http.c
CORE_SRCS += $(filter-out $(OSKRD_ONLY_SRCS),$(wildcard daemon/*.c))
PROGRAMS += $(B)/oskrd
OSKRD_OBJS := $(OSKRD_ONLY_SRCS:%.c=$(B)/obj/%.o)
EXTRA_CFLAGS_daemon_metrics_http = $(MHD_CFLAGS)

$(B)/oskrd: $(OSKRD_OBJS) $(B)/liboskr-core.a $(DPDK_OBJS)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -rdynamic -o $@ $(OSKRD_OBJS) $(DPDK_OBJS) \
		$(B)/liboskr-core.a $(HOST_LIBS) $(MHD_LIBS) $(DPDK_LIBS)
