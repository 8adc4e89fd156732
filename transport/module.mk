# transport/: backends behind transport.h. The DPDK backend is linked into
# oskrd only (tests and clients do not pay for EAL); the registry finds it
# through a weak reference.
CORE_SRCS += $(filter-out transport/dpdk%.c,$(wildcard transport/*.c))
ifeq ($(HAVE_DPDK),1)
DPDK_SRCS := $(wildcard transport/dpdk*.c)
DPDK_OBJS := $(DPDK_SRCS:%.c=$(B)/obj/%.o)
$(DPDK_OBJS): ALL_CFLAGS += $(DPDK_CFLAGS) -DOSKR_HAVE_DPDK
endif
