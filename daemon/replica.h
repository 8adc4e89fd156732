/* SPDX-License-Identifier: MIT */
/*
 * One replica inside oskrd: the host side of the plugin ABI. It wires the
 * loaded plugin to the stage worker pool, the timers, the signer, the
 * transport and the application, and implements struct oskr_host.
 */
#ifndef OSKR_DAEMON_REPLICA_H
#define OSKR_DAEMON_REPLICA_H

#include <stdint.h>

#include <oskr/plugin.h>

#include "config.h"
#include "control.h" /* task latency histogram */
#include "snapshot_store.h" /* writer stats */

struct oskr_replica;

/** Build everything (keys, app, stage, timers, transport) but start no
 *  thread. 0 or negative with *err. */
int oskr__replica_create(struct oskr_replica **out,
			 const struct oskr_config *config, uint32_t replica_id,
			 const struct oskr_plugin *plugin, char **err);
/** Start workers, timers, run replica_init as the first stateful task and
 *  wait for it, then start receiving. 0 or negative with *err. */
int oskr__replica_start(struct oskr_replica *replica, char **err);
/** Graceful stop: stop rx, run replica_fini as the last stateful task,
 *  drain and join workers, close the transport. Idempotent. */
void oskr__replica_stop(struct oskr_replica *replica);
void oskr__replica_free(struct oskr_replica *replica);

struct oskr_replica_status {
	uint64_t view, committed, executed;
	int32_t leader;
	uint64_t uptime_ns;
	uint64_t stateless_queued, stateful_queued;
	uint64_t heartbeat;
};
void oskr__replica_status(struct oskr_replica *replica,
			  struct oskr_replica_status *out);

/** Visit every counter (plugin counters, then host counters). */
void oskr__replica_counters(struct oskr_replica *replica,
			    void (*visit)(void *arg, const char *name,
					  uint64_t value),
			    void *arg);

/* ---- operations: task latency and durable state (daemon/control.c,
 * daemon/snapshot_store.c, docs/operations.md) ---- */

/** Add the run time histogram of @p kind tasks (all workers) to @p out.
 *  Any thread. */
void oskr__replica_task_latency(struct oskr_replica *replica,
				enum oskr__task_kind kind,
				struct oskr__latency_totals *out);

struct oskr_replica_durable {
	const char *state_dir; /* "%i" expanded; NULL = no durable state */
	/* operations applied to the app over its durable history (ops
	 * executed plus restores), continuing from the restored snapshot */
	uint64_t applied;
	uint64_t restored_applied; /* of the snapshot restored; 0 = none */
	/* the checkpoint the protocol resumed from (checkpoint_resume) */
	bool resumed;
	uint64_t resumed_op;
	struct oskr_snapshot_writer_stats writer;
};
/** Any thread. */
void oskr__replica_durable_status(struct oskr_replica *replica,
				  struct oskr_replica_durable *out);

#endif
