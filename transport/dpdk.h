/* SPDX-License-Identifier: MIT */
/*
 * Extras of the dpdk backend beyond transport.h, for oskrd start-up and the
 * test harness (test/dpdk/). Built only with -DOSKR_HAVE_DPDK; no DPDK
 * header leaks out of here.
 */
#ifndef OSKR_TRANSPORT_DPDK_H
#define OSKR_TRANSPORT_DPDK_H

#include <stdbool.h>
#include <stddef.h>

#include "transport.h"

/** Wait up to @p timeout_ms for the port's link to come up (a memif
 *  server's link is down until its client connects). Any thread.
 *  @return 0, or -ETIMEDOUT. */
int oskr__dpdk_wait_link(struct oskr_transport *t, int timeout_ms);

/** True while the port's link is up. Any thread. */
bool oskr__dpdk_link_up(struct oskr_transport *t);

/**
 * Queue @p len raw bytes as one frame on @p tx_slot, exactly as given (no
 * framing added): the harness injects malformed frames with it. Same
 * threading rules as send_*; flush() transmits. @return 0, -EINVAL
 * (bad slot, or @p len 0: memif would resend a stale frame for it),
 * -EMSGSIZE (longer than an mbuf holds), -ENOMEM (pool empty).
 */
int oskr__dpdk_send_raw(struct oskr_transport *t, unsigned tx_slot,
			const void *frame, size_t len);

#endif
