/* SPDX-License-Identifier: MIT */
/*
 * The replica runtime's state, shared by its two files: replica.c (the
 * host services, receive path, life cycle) and replica_durable.c (durable
 * state: snapshots, checkpoints, restore). Nothing else includes it.
 */
#ifndef OSKR_DAEMON_REPLICA_INTERNAL_H
#define OSKR_DAEMON_REPLICA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <oskr/plugin.h>

#include "../apps/app.h"
#include "../transport/transport.h"
#include "control.h"
#include "counters.h"
#include "replica.h"
#include "snapshot_store.h"

/* A plugin timer: the SDK handle is (slot index << 32 | generation), so a
 * stale handle (fired or cancelled) is recognised and never touches a
 * reused slot. Slots are only used from stateful tasks: no lock. */
struct timer_slot {
	uint32_t generation;
	bool armed;
	uint64_t internal_id;
	oskr_task_fn fn;
	void *arg;
	uint32_t next_free;
};

struct oskr_replica {
	struct oskr_ctx ctx; /* must stay first: plugins get &ctx */
	const struct oskr_config *config;
	const struct oskr_plugin *plugin;
	void *state;
	struct oskr_instance_info info;
	char log_prefix[64];

	struct oskr_signer *signer;
	struct oskr_stage *stage;
	struct oskr_timers *timers;
	const struct oskr_transport_ops *tops;
	struct oskr_transport *transport;
	unsigned tx_slots;
	pthread_mutex_t shared_slot_lock; /* the non-worker tx slot */

	const struct oskr_app_ops *app_ops;
	void *app;

	struct timer_slot *timer_slots;
	uint32_t timer_slot_count, timer_free_head;

	struct oskr_counters counters;
	_Atomic uint64_t status_view, status_committed, status_executed;
	_Atomic int32_t status_leader;
	uint64_t start_ns;

	/* replica_init completion, waited for by start() */
	pthread_mutex_t init_lock;
	pthread_cond_t init_cond;
	bool init_done;
	int init_rc;

	atomic_bool receiving;
	bool inline_receive; /* config: rx threads may run tasks inline */
	/* Set once replica_fini returned: the SDK promises no callback after
	 * fini, but stateless tasks queued before the stop may still be in
	 * the ring (and may submit more); they are discarded, not run. */
	atomic_bool finished;
	bool started, stopped;

	/* ---- operations (docs/operations.md) ---- */
	/* Task run times, one histogram per worker (+1 for other threads)
	 * so workers never share a cache line. */
	struct oskr__latency_histogram *task_latency[OSKR_TASK_KINDS];
	unsigned latency_slots;
	/* Durable state: NULL without state_dir. `applied` counts the
	 * operations applied to the app (executes + restores) over its
	 * durable history; written by stateful tasks only, read by the
	 * control thread. */
	struct oskr_state_dir *state_dir;
	struct oskr_snapshot_writer *snapshot_writer;
	_Atomic uint64_t applied;
	uint64_t restored_applied;
	/* The last snapshot handed to the writer (stateful): its number,
	 * whether its application state is the app's when `applied` equals
	 * that number (false for a checkpoint whose blob the plugin took
	 * earlier), and whether it is a checkpoint. */
	uint64_t snapshot_applied;
	bool snapshot_current;
	bool snapshot_checkpoint;
	/* Set (stateful) once the plugin declared or resumed from a
	 * checkpoint: the interval snapshots stop for good. */
	bool checkpoints_declared;
	uint64_t snapshot_interval_ns; /* config snapshot.interval; 0 = off */
	/* What was restored at start, kept until replica_init returned:
	 * the file, and its checkpoint when this protocol wrote it (handed
	 * out by checkpoint_resume while in_init). */
	char *restored_path;
	struct oskr_snapshot_meta restored_meta;
	bool resume_available, resumed, in_init;
	void *resume_state;
	size_t resume_state_len;
};

static inline struct oskr_replica *replica_of(struct oskr_ctx *ctx)
{
	return (struct oskr_replica *)ctx;
}

/* True once replica_fini returned: queued tasks are discarded. */
static inline bool finished(struct oskr_replica *r)
{
	return atomic_load_explicit(&r->finished, memory_order_acquire);
}

/* ---- replica_durable.c ---- */

/** Host services checkpoint_stable / checkpoint_resume (ABI 1.1). */
int oskr__replica_checkpoint_stable(struct oskr_ctx *ctx, uint64_t op_number,
				    const void *app, size_t app_len,
				    const void *protocol_state,
				    size_t protocol_len);
int oskr__replica_checkpoint_resume(struct oskr_ctx *ctx, uint64_t *op_number,
				    const void **protocol_state,
				    size_t *protocol_len);
/** A snapshot of the app as it is now (not a checkpoint). Stateful. */
void oskr__replica_snapshot_take(struct oskr_replica *r, const char *why);
/** Arm the interval snapshot timer (snapshot.interval; no-op when 0). */
void oskr__replica_snapshot_timer_arm(struct oskr_replica *r);
/** Open state_dir (lock, writer) and restore the newest valid snapshot
 *  into the app, before replica_init. 0 or negative errno with *err. */
int oskr__replica_durable_open(struct oskr_replica *r, uint32_t replica_id,
			       char **err);
void oskr__replica_durable_close(struct oskr_replica *r);
/** After replica_init: log whether the protocol resumed. */
void oskr__replica_log_resume_outcome(struct oskr_replica *r);
/** Free the restored checkpoint's protocol state (after replica_init). */
void oskr__replica_resume_forget(struct oskr_replica *r);

#endif
