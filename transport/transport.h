/* SPDX-License-Identifier: MIT */
/*
 * The transport interface between the host and a network backend (udp,
 * dpdk). Plugins never see it: they use oskr_host.send_* and receive
 * struct oskr_msg. Adding a backend changes nothing in the plugin ABI.
 *
 * Threads:
 *  - a *replica* transport runs its own rx threads (start) and calls
 *    deliver() from them;
 *  - a *client* transport has no threads: its owner calls poll(), which
 *    calls deliver() inline.
 *  - send/flush take a tx slot: each stage worker owns slot == its worker
 *    index, so the send path takes no lock; slot `tx_slots - 1` is
 *    reserved for non-worker threads (main thread, init) and is guarded
 *    by the caller.
 */
#ifndef OSKR_TRANSPORT_H
#define OSKR_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>

#include <oskr/plugin.h>

#include "../daemon/config.h"

struct oskr_transport;

/** Receive upcall: @p buf carries one reference that now belongs to the
 *  callee. @p from_replica is the configured replica whose address sent
 *  it, or -1. */
typedef void (*oskr__deliver_fn)(void *arg, struct oskr_buf *buf,
				 const struct oskr_addr *from,
				 int32_t from_replica);

/** Drop reasons counted by every transport. */
enum oskr__drop_reason {
	OSKR_DROP_SHORT,       /* shorter than the framing header */
	OSKR_DROP_WRONG_TYPE,  /* wrong ethertype / not ours */
	OSKR_DROP_UNKNOWN_DEST,/* destination id not this node */
	OSKR_DROP_TRUNCATED,   /* payload length field beyond the frame */
	OSKR_DROP_NO_BUFFER,   /* allocation failed */
	OSKR_DROP_QUEUE_FULL,  /* stage ring full */
	OSKR_DROP_TX_FAILED,   /* kernel/NIC refused */
	OSKR_DROP_REASON_COUNT,
};
const char *oskr__drop_reason_name(enum oskr__drop_reason reason);

struct oskr_transport_stats {
	uint64_t rx_packets, tx_packets, rx_bytes, tx_bytes;
	uint64_t drops[OSKR_DROP_REASON_COUNT];
};

/** Per-thread counters a backend keeps (one per rx thread and per tx
 *  slot, each on its own cache line); stats() sums them. */
struct oskr__transport_counters {
	_Atomic uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
	_Atomic uint64_t drops[OSKR_DROP_REASON_COUNT];
};
/** Add @p counters into @p out (relaxed loads). */
void oskr__transport_counters_sum(const struct oskr__transport_counters *c,
				  struct oskr_transport_stats *out);

struct oskr_transport_ops {
	const char *name;
	/**
	 * Open for replica @p replica_id (>= 0), or as a client (-1: bind an
	 * ephemeral address). @p tx_slots = workers + 1.
	 */
	int (*open)(struct oskr_transport **out, const struct oskr_config *config,
		    int32_t replica_id, unsigned tx_slots, char **err);
	/** Replica mode: start rx threads calling @p deliver. */
	int (*start)(struct oskr_transport *t, oskr__deliver_fn deliver,
		     void *arg);
	/** Client mode: wait up to @p timeout_ms for packets, deliver them
	 *  inline; returns the number delivered or a negative error. */
	int (*poll)(struct oskr_transport *t, oskr__deliver_fn deliver,
		    void *arg, int timeout_ms);
	/** A pollable fd for client mode (or -1). */
	int (*fd)(struct oskr_transport *t);
	/** Stop rx threads (replica mode); idempotent. */
	void (*stop)(struct oskr_transport *t);
	void (*close)(struct oskr_transport *t);

	/** Any thread. */
	int (*buf_alloc)(struct oskr_transport *t, size_t capacity,
			 struct oskr_buf **out);
	/** Queue @p buf to a replica / address on @p tx_slot; consumes the
	 *  reference. Sends may be batched until flush. */
	int (*send_replica)(struct oskr_transport *t, unsigned tx_slot,
			    uint32_t replica_id, struct oskr_buf *buf);
	int (*send_addr)(struct oskr_transport *t, unsigned tx_slot,
			 const struct oskr_addr *addr, struct oskr_buf *buf);
	/** Transmit what is batched on @p tx_slot. */
	void (*flush)(struct oskr_transport *t, unsigned tx_slot);

	uint32_t (*max_message)(struct oskr_transport *t);
	/** This endpoint's own address (clients: the ephemeral one). */
	void (*local_addr)(struct oskr_transport *t, struct oskr_addr *out);
	void (*stats)(struct oskr_transport *t,
		      struct oskr_transport_stats *out);
};

extern const struct oskr_transport_ops oskr__udp_transport;
extern const struct oskr_transport_ops oskr__dpdk_transport; /* if built */

/** The backend for a config (NULL if not compiled in). */
const struct oskr_transport_ops *
oskr__transport_for(enum oskr_transport_kind kind);

#endif
