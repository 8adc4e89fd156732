/* SPDX-License-Identifier: MIT */
/* Summing the per-thread counters every backend keeps (transport.h). */
#include "transport.h"

#include <stdatomic.h>

void oskr__transport_counters_sum(const struct oskr__transport_counters *c,
				  struct oskr_transport_stats *out)
{
	out->rx_packets += atomic_load_explicit(&c->rx_packets,
						memory_order_relaxed);
	out->rx_bytes += atomic_load_explicit(&c->rx_bytes,
					      memory_order_relaxed);
	out->tx_packets += atomic_load_explicit(&c->tx_packets,
						memory_order_relaxed);
	out->tx_bytes += atomic_load_explicit(&c->tx_bytes,
					      memory_order_relaxed);
	for (unsigned reason = 0; reason < OSKR_DROP_REASON_COUNT; reason++)
		out->drops[reason] += atomic_load_explicit(
			&c->drops[reason], memory_order_relaxed);
}
