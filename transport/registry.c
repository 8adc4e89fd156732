/* SPDX-License-Identifier: MIT */
/*
 * Which backend serves a config's `transport:`. The DPDK backend is linked
 * into oskrd only (tests, clients and tools do not pay for EAL), so it is
 * referenced weakly: where it is not linked its address is NULL.
 */
#include "transport.h"

#pragma weak oskr__dpdk_transport

const struct oskr_transport_ops *
oskr__transport_for(enum oskr_transport_kind kind)
{
	switch (kind) {
	case OSKR_TRANSPORT_UDP:
		return &oskr__udp_transport;
	case OSKR_TRANSPORT_DPDK:
		return &oskr__dpdk_transport; /* NULL unless linked */
	case OSKR_TRANSPORT_SIM:
		/* The sim replaces the whole host (sim/sim.h), not just the
		 * transport: there is no transport_ops for it. */
		return NULL;
	}
	return NULL;
}

const char *oskr__drop_reason_name(enum oskr__drop_reason reason)
{
	/* Names are counter suffixes ("drop_<name>"): [a-z_] only. */
	static const char *const names[OSKR_DROP_REASON_COUNT] = {
		[OSKR_DROP_SHORT] = "short",
		[OSKR_DROP_WRONG_TYPE] = "wrong_type",
		[OSKR_DROP_UNKNOWN_DEST] = "unknown_dest",
		[OSKR_DROP_TRUNCATED] = "truncated",
		[OSKR_DROP_NO_BUFFER] = "no_buffer",
		[OSKR_DROP_QUEUE_FULL] = "queue_full",
		[OSKR_DROP_TX_FAILED] = "tx_failed",
	};

	if ((unsigned)reason >= OSKR_DROP_REASON_COUNT || !names[reason])
		return "unknown";
	return names[reason];
}
