/* SPDX-License-Identifier: MIT */
/*
 * A minimal plugin compiled several ways by test/module.mk to exercise the
 * loader's checks: -DPROBE_MAJOR/-DPROBE_MINOR/-DPROBE_SIZE override the
 * descriptor's version and size, -DPROBE_NO_DESCRIPTOR exports nothing.
 */
#include <oskr/plugin.h>

#ifndef PROBE_MAJOR
#define PROBE_MAJOR OSKR_ABI_MAJOR
#endif
#ifndef PROBE_MINOR
#define PROBE_MINOR OSKR_ABI_MINOR
#endif
#ifndef PROBE_SIZE
#define PROBE_SIZE sizeof(struct oskr_plugin)
#endif

static int probe_init(struct oskr_ctx *ctx, void *state)
{
	return 0;
}

static void probe_receive(struct oskr_ctx *ctx, void *state,
			  const struct oskr_msg *msg)
{
}

#ifndef PROBE_NO_DESCRIPTOR
OSKR_PLUGIN_EXPORT = {
	.abi_major = PROBE_MAJOR,
	.abi_minor = PROBE_MINOR,
	.size = PROBE_SIZE,
	.name = "probe",
	.version = "0.0.1",
	.description = "loader test plugin",
	.replica_state_size = 8,
	.replica_init = probe_init,
	.replica_receive = probe_receive,
};
#else
/* Exported, but not under the descriptor's symbol name. */
OSKR_EXPORT int probe_something_else(void);
int probe_something_else(void)
{
	probe_receive(0, 0, 0);
	return probe_init(0, 0);
}
#endif
