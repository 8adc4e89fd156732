/* SPDX-License-Identifier: MIT */
/*
 * oskr sim: an in-process, single-threaded, deterministic network and host
 * for testing protocol plugins. n replicas and m clients of one plugin run
 * in one process on virtual time; every source of nondeterminism (delays,
 * drops, duplicates, reordering, the order tasks run in) is drawn from one
 * seeded PRNG, so a failing run is reproduced from its seed.
 *
 * The sim implements the same struct oskr_host as oskrd: stateless tasks
 * and stateful tasks run inline, one at a time, in event order; timers fire
 * on virtual time. Sign/verify use real P-256 keys generated in memory when
 * `real_signatures` is set, and otherwise a fast keyed-hash scheme that is
 * still unforgeable by plugins (the per-replica secrets stay in the sim).
 *
 * Safety checking: the sim records, for every replica, the sequence of ops
 * it executed (through app_execute) and, for every client, the results it
 * accepted. oskr_sim_check_safety() verifies that the sequences of all
 * correct replicas are prefixes of one another and that no client accepted
 * two different results for one request.
 */
#ifndef OSKR_SIM_H
#define OSKR_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oskr/plugin.h>

struct oskr_sim;

#define OSKR_SIM_MAX_REPLICAS 32
#define OSKR_SIM_MAX_CLIENTS 256

/** Who sent / receives a message in filters: replicas are 0..n-1, client
 *  k is OSKR_SIM_CLIENT(k). */
#define OSKR_SIM_CLIENT(k) (-1 - (int32_t)(k))
#define OSKR_SIM_IS_CLIENT(node) ((node) < 0)
#define OSKR_SIM_CLIENT_INDEX(node) ((uint32_t)(-1 - (node)))

struct oskr_sim_config {
	const struct oskr_plugin *plugin;
	uint32_t replica_count; /* n */
	uint32_t fault_count; /* f */
	uint32_t client_count;
	uint64_t seed;
	/** YAML text of a mapping given to the plugin as protocol.options
	 *  (e.g. "batch_size: 10\ncheckpoint_interval: 100\n"), or NULL. */
	const char *protocol_options;
	/** "null" or "kv" (default "null"). */
	const char *app;
	/** Network: each message independently dropped / duplicated with
	 *  these probabilities; delay uniform in [min_delay_ns,
	 *  max_delay_ns] (a spread gives reordering). Defaults (0 rates,
	 *  delay 10–50 µs) apply to zero fields except the rates. */
	double drop_rate;
	double duplicate_rate;
	uint64_t min_delay_ns, max_delay_ns;
	/** Real P-256 signatures (slower) instead of the fast scheme. */
	bool real_signatures;
	/** Max message size reported to plugins (default 65000). */
	uint32_t max_message;
};

/** Create a sim and run every replica's and client's init. 0 or negative
 *  (a message is printed to stderr naming the reason). */
int oskr_sim_create(struct oskr_sim **out, const struct oskr_sim_config *c);
/** Run every instance's fini and free everything. */
void oskr_sim_destroy(struct oskr_sim *sim);

/* ---- network faults (take effect for messages sent afterwards) ---- */
void oskr_sim_set_drop_rate(struct oskr_sim *sim, double rate);
void oskr_sim_set_duplicate_rate(struct oskr_sim *sim, double rate);
void oskr_sim_set_delay(struct oskr_sim *sim, uint64_t min_ns, uint64_t max_ns);
/** Partition: messages between replicas on different sides of the mask
 *  (bit r set = side A) are dropped; clients reach every replica unless
 *  `isolate_clients` is set, in which case clients reach only side A. */
void oskr_sim_partition(struct oskr_sim *sim, uint64_t side_a_mask,
			bool isolate_clients);
void oskr_sim_heal(struct oskr_sim *sim);
/** Crash replica r: it receives nothing, its timers and queued tasks are
 *  discarded, it sends nothing. Its state is kept until restart. */
void oskr_sim_crash(struct oskr_sim *sim, uint32_t replica);
/** Restart a crashed replica empty: fini, fresh zeroed state, fresh
 *  application, replica_init again ("restarts empty"). */
int oskr_sim_restart(struct oskr_sim *sim, uint32_t replica);
bool oskr_sim_is_crashed(struct oskr_sim *sim, uint32_t replica);

/**
 * Durable checkpoints (ABI 1.1). The sim's host->checkpoint_stable keeps,
 * per replica, a copy of the latest checkpoint the plugin declared: its op
 * number, the application snapshot (the blob the plugin passed, or one the
 * sim took at the call when it passed NULL) and the protocol state. This
 * copy is the replica's "disk": it survives crashes and restarts and is
 * freed with the sim.
 *
 * Restart crashed replica r like oskr_sim_restart (fini, fresh zeroed
 * state, fresh application, replica_init), but restore the fresh
 * application from r's latest declared checkpoint first; during that
 * replica_init host->checkpoint_resume returns the checkpoint's op number
 * and protocol state. The safety record continues from the restored state,
 * as after an app_restore. Without a declared checkpoint this is exactly
 * oskr_sim_restart (checkpoint_resume returns -ENOENT).
 */
int oskr_sim_restart_from_checkpoint(struct oskr_sim *sim, uint32_t replica);
/** The latest checkpoint replica r declared: *op (may be NULL) gets its op
 *  number and *count (may be NULL) the number of checkpoint_stable calls
 *  that succeeded on r so far (restarts included). False, with *count set
 *  to 0, when r declared none. */
bool oskr_sim_last_checkpoint(struct oskr_sim *sim, uint32_t replica,
			      uint64_t *op, uint64_t *count);

/**
 * Byzantine behaviour and message inspection: called for every message
 * as it is sent (before drop/delay). It may modify the bytes in place
 * (*len may shrink or grow up to capacity) and returns false to drop the
 * message. @p src / @p dst are node ids (see OSKR_SIM_CLIENT).
 */
typedef bool (*oskr_sim_filter_fn)(void *arg, int32_t src, int32_t dst,
				   uint8_t *data, uint32_t *len,
				   uint32_t capacity);
void oskr_sim_set_filter(struct oskr_sim *sim, oskr_sim_filter_fn fn,
			 void *arg);
/** Mark replica r as Byzantine: it is excluded from safety checks (its
 *  executed sequence may differ). */
void oskr_sim_set_byzantine(struct oskr_sim *sim, uint32_t replica, bool on);
/** Deliver @p len bytes to node @p dst as if sent by node @p src (after
 *  the usual delay; not filtered, never dropped). */
int oskr_sim_inject(struct oskr_sim *sim, int32_t src, int32_t dst,
		    const void *data, size_t len);
/** Sign as replica r (tests crafting Byzantine messages with valid
 *  signatures). Same format as the replica's own host->sign. */
int oskr_sim_sign_as(struct oskr_sim *sim, uint32_t replica, const void *data,
		     size_t len, uint8_t *sig, size_t *sig_len);

/* ---- clients ---- */

/** Start a request on client k (at most one outstanding per client).
 *  *request_number (may be NULL) gets its number (1, 2, …).
 *  -EBUSY if client k has one outstanding. */
int oskr_sim_invoke(struct oskr_sim *sim, uint32_t client, const void *op,
		    size_t op_len, uint64_t *request_number);
bool oskr_sim_client_busy(struct oskr_sim *sim, uint32_t client);
/** Result of the last completed request of client k (NULL if none). */
const uint8_t *oskr_sim_client_result(struct oskr_sim *sim, uint32_t client,
				      size_t *len);
uint64_t oskr_sim_completed(struct oskr_sim *sim); /* all clients */

/**
 * Closed-loop workload: every client issues requests back to back until
 * @p total requests completed overall, or virtual time reaches
 * @p deadline_ns (absolute). Ops come from @p make_op (or, if NULL, an
 * 8-byte op holding a counter; with the kv app a put of a unique key).
 * Returns the number completed.
 */
typedef size_t (*oskr_sim_op_fn)(void *arg, uint32_t client, uint64_t seq,
				 uint8_t *op, size_t capacity);
uint64_t oskr_sim_run_workload(struct oskr_sim *sim, uint64_t total,
			       uint64_t deadline_ns, oskr_sim_op_fn make_op,
			       void *arg);

/* ---- running ---- */

/** Virtual now. */
uint64_t oskr_sim_now(struct oskr_sim *sim);
/** Run events until virtual time passes @p ns from now (or no events). */
void oskr_sim_run_for(struct oskr_sim *sim, uint64_t ns);
/** Run until pred(arg) is true, checked after each event, or until
 *  @p max_ns of virtual time passes. Returns pred's last value. */
bool oskr_sim_run_until(struct oskr_sim *sim, bool (*pred)(void *arg),
			void *arg, uint64_t max_ns);
/** Events run so far (deliveries, tasks, timers that fired). */
uint64_t oskr_sim_events(struct oskr_sim *sim);
/** A hash of every event run so far (time, kind, instance): equal for two
 *  runs of one seed and configuration, the determinism check. */
uint64_t oskr_sim_trace_digest(struct oskr_sim *sim);

/* ---- checks and inspection ---- */

/** Safety: executed sequences of correct (not Byzantine) replicas are
 *  prefixes of each other (crashed replicas included: a crash keeps what
 *  was executed) and no client accepted two results for one request.
 *  After a restart, a replica's sequence restarts from the state it
 *  restored: the sim resets its record on app_restore to "snapshot + the
 *  ops after", comparing by the snapshot digest. On failure, writes a
 *  reason to @p why. */
bool oskr_sim_check_safety(struct oskr_sim *sim, char *why, size_t why_len);
/** Number of ops replica r executed since start (or since its restart,
 *  counting restored state as the snapshot's op count when known). */
uint64_t oskr_sim_executed(struct oskr_sim *sim, uint32_t replica);
/** Plugin state of replica r (for white-box memory-bound checks). */
void *oskr_sim_replica_state(struct oskr_sim *sim, uint32_t replica);
/** Value of a counter the plugin bumped with host->count on replica r
 *  (clients: OSKR_SIM_CLIENT(k)). */
uint64_t oskr_sim_counter(struct oskr_sim *sim, int32_t node,
			  const char *name);
/** Messages sent / delivered / dropped by the network so far. */
struct oskr_sim_net_stats {
	uint64_t sent, delivered, dropped, duplicated;
};
void oskr_sim_net_stats(struct oskr_sim *sim, struct oskr_sim_net_stats *out);
/** Buffers and timers currently alive in the sim (leak/bound checks). */
uint64_t oskr_sim_live_buffers(struct oskr_sim *sim);
uint64_t oskr_sim_live_timers(struct oskr_sim *sim, uint32_t replica);

#endif
