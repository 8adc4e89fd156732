# client/: the client library (in liboskr-core.a, and as
# build/liboskr-client.so for programs outside this tree), oskr-bench,
# oskr-keygen, oskrctl.
CLIENT_PROGRAM_SRCS := client/bench.c client/keygen.c client/oskrctl.c
CORE_SRCS += $(filter-out $(CLIENT_PROGRAM_SRCS),$(wildcard client/*.c))
CLIENT_PROGRAMS := $(patsubst client/%.c,%,$(filter $(CLIENT_PROGRAM_SRCS),$(wildcard client/*.c)))
# bench.c -> oskr-bench, keygen.c -> oskr-keygen, oskrctl.c -> oskrctl
client_program_name = $(if $(filter oskrctl,$(1)),oskrctl,oskr-$(1))
PROGRAMS += $(foreach p,$(CLIENT_PROGRAMS),$(B)/$(call client_program_name,$(p)))

# oskr-bench also links the DPDK backend (when built) so a benchmark can run
# against a DPDK cluster; the other tools never need it.
client_extra_objs = $(if $(filter bench,$(1)),$(DPDK_OBJS))
client_extra_libs = $(if $(filter bench,$(1)),$(DPDK_LIBS))
define client_program_rule
$(B)/$(call client_program_name,$(1)): $(B)/obj/client/$(1).o $(B)/liboskr-core.a $(call client_extra_objs,$(1))
	$$(quiet) LD $$@
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$< $(call client_extra_objs,$(1)) $(B)/liboskr-core.a \
		$$(HOST_LIBS) $(call client_extra_libs,$(1))
endef
$(foreach p,$(CLIENT_PROGRAMS),$(eval $(call client_program_rule,$(p))))

PROGRAMS += $(B)/liboskr-client.so
$(B)/liboskr-client.so: $(B)/liboskr-core.a
	$(quiet) LD $@
	$(Q)$(CC) -shared $(LDFLAGS) -o $@ -Wl,--whole-archive $(B)/liboskr-core.a \
		-Wl,--no-whole-archive $(HOST_LIBS)
