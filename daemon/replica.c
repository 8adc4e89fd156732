/* SPDX-License-Identifier: MIT */
/*
 * The replica runtime: implements struct oskr_host for one replica on the
 * threaded stage pool. Receive path:
 *
 *   transport rx thread --deliver()--> stateless task: plugin.replica_receive
 *   plugin --submit_stateful--> stateful ring --> one worker at a time
 *   timers --expire--> stateful task
 *
 * Sends take the calling worker's tx slot (no lock); threads that are not
 * stage workers share one extra slot under a mutex and flush at once.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "replica.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../apps/app.h"
#include "../transport/transport.h"
#include "buf.h"
#include "control.h"
#include "counters.h"
#include "log.h"
#include "signer.h"
#include "snapshot_store.h"
#include "stage.h"
#include "timer.h"

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

#define NO_FREE_SLOT UINT32_MAX

static struct oskr_replica *replica_of(struct oskr_ctx *ctx)
{
	return (struct oskr_replica *)ctx;
}

/* ---- task timing ---- */

static void observe_task(struct oskr_replica *r, enum oskr__task_kind kind,
			 uint64_t start_ns)
{
	int worker = oskr__stage_worker_index();
	unsigned slot = worker >= 0 && (unsigned)worker < r->latency_slots - 1
				? (unsigned)worker
				: r->latency_slots - 1;
	oskr__latency_observe(&r->task_latency[kind][slot],
			      oskr__monotonic_ns() - start_ns);
}

static void snapshot_take(struct oskr_replica *r, const char *why);

/* ---- host services ---- */

static const struct oskr_instance_info *host_info(struct oskr_ctx *ctx)
{
	return &replica_of(ctx)->info;
}

static int host_buf_alloc(struct oskr_ctx *ctx, size_t capacity,
			  struct oskr_buf **out)
{
	struct oskr_replica *r = replica_of(ctx);
	if (capacity > r->info.max_message)
		return -EMSGSIZE;
	return r->tops->buf_alloc(r->transport, capacity, out);
}

/* Returns the tx slot for the calling thread, locking the shared slot for
 * non-workers (unlock with release_slot). */
static unsigned acquire_slot(struct oskr_replica *r)
{
	int worker = oskr__stage_worker_index();
	if (worker >= 0 && (unsigned)worker < r->tx_slots - 1)
		return (unsigned)worker;
	pthread_mutex_lock(&r->shared_slot_lock);
	return r->tx_slots - 1;
}

static void release_slot(struct oskr_replica *r, unsigned slot)
{
	if (slot == r->tx_slots - 1) {
		/* Nobody else flushes this slot: send now. */
		r->tops->flush(r->transport, slot);
		pthread_mutex_unlock(&r->shared_slot_lock);
	}
}

static int host_send_to_replica(struct oskr_ctx *ctx, uint32_t replica_id,
				struct oskr_buf *buf)
{
	struct oskr_replica *r = replica_of(ctx);
	if (replica_id >= r->info.replica_count) {
		oskr__buf_release(buf);
		return -EINVAL;
	}
	unsigned slot = acquire_slot(r);
	int rc = r->tops->send_replica(r->transport, slot, replica_id, buf);
	release_slot(r, slot);
	return rc;
}

static int host_send_to_all(struct oskr_ctx *ctx, struct oskr_buf *buf)
{
	struct oskr_replica *r = replica_of(ctx);
	unsigned slot = acquire_slot(r);
	int rc = 0;
	uint32_t self = (uint32_t)r->info.replica_id;
	for (uint32_t id = 0; id < r->info.replica_count; id++) {
		if (id == self)
			continue;
		/* each queued send consumes one reference */
		oskr__buf_hold(buf);
		int one = r->tops->send_replica(r->transport, slot, id, buf);
		if (one < 0 && rc == 0)
			rc = one;
	}
	release_slot(r, slot);
	oskr__buf_release(buf);
	return rc;
}

static int host_send_to_addr(struct oskr_ctx *ctx, const struct oskr_addr *addr,
			     struct oskr_buf *buf)
{
	struct oskr_replica *r = replica_of(ctx);
	unsigned slot = acquire_slot(r);
	int rc = r->tops->send_addr(r->transport, slot, addr, buf);
	release_slot(r, slot);
	return rc;
}

static size_t host_signature_size(struct oskr_ctx *ctx)
{
	return oskr__signer_signature_size(replica_of(ctx)->signer);
}

static int host_sign(struct oskr_ctx *ctx, const void *data, size_t len,
		     uint8_t *sig, size_t *sig_len)
{
	return oskr__signer_sign(replica_of(ctx)->signer, data, len, sig,
				 sig_len);
}

static bool host_verify(struct oskr_ctx *ctx, uint32_t replica_id,
			const void *data, size_t len, const uint8_t *sig,
			size_t sig_len)
{
	return oskr__signer_verify(replica_of(ctx)->signer, replica_id, data,
				   len, sig, sig_len);
}

static void host_digest(struct oskr_ctx *ctx, const void *data, size_t len,
			uint8_t out[OSKR_DIGEST_SIZE])
{
	oskr__sha256(data, len, out);
}

/* Stage tasks carry (fn, a, b, c); plugin tasks are (trampoline, replica,
 * plugin fn, arg). Function pointers travel through void * as POSIX
 * (dlsym) guarantees they can. */
union fn_pointer {
	oskr_task_fn fn;
	void *pointer;
};

static void *fn_to_pointer(oskr_task_fn fn)
{
	union fn_pointer u = {.fn = fn};
	return u.pointer;
}

static oskr_task_fn pointer_to_fn(void *pointer)
{
	union fn_pointer u = {.pointer = pointer};
	return u.fn;
}

static bool finished(struct oskr_replica *r)
{
	return atomic_load_explicit(&r->finished, memory_order_acquire);
}

static void run_plugin_task(void *a, void *b, void *c)
{
	struct oskr_replica *r = a;
	if (finished(r))
		return;
	uint64_t start = oskr__monotonic_ns();
	pointer_to_fn(b)(&r->ctx, r->state, c);
	observe_task(r, OSKR_TASK_STATELESS, start);
}

static void run_plugin_stateful_task(void *a, void *b, void *c)
{
	struct oskr_replica *r = a;
	if (finished(r))
		return;
	uint64_t start = oskr__monotonic_ns();
	pointer_to_fn(b)(&r->ctx, r->state, c);
	observe_task(r, OSKR_TASK_STATEFUL, start);
}

static int host_submit_stateless(struct oskr_ctx *ctx, oskr_task_fn fn,
				 void *arg)
{
	struct oskr_replica *r = replica_of(ctx);
	if (finished(r))
		return -ESHUTDOWN;
	return oskr__stage_submit_stateless(r->stage, run_plugin_task, r,
					    fn_to_pointer(fn), arg);
}

static int host_submit_stateful(struct oskr_ctx *ctx, oskr_task_fn fn,
				void *arg)
{
	struct oskr_replica *r = replica_of(ctx);
	if (finished(r))
		return -ESHUTDOWN;
	return oskr__stage_submit_stateful(r->stage, run_plugin_stateful_task,
					   r, fn_to_pointer(fn), arg);
}

static void timer_fired(void *a, void *b)
{
	struct oskr_replica *r = a;
	uint64_t handle = (uint64_t)(uintptr_t)b;
	uint32_t index = (uint32_t)(handle >> 32);
	uint32_t generation = (uint32_t)handle;
	if (finished(r) || index >= r->timer_slot_count)
		return;
	struct timer_slot *slot = &r->timer_slots[index];
	if (!slot->armed || slot->generation != generation)
		return; /* cancelled after it expired */
	oskr_task_fn fn = slot->fn;
	void *arg = slot->arg;
	slot->armed = false;
	slot->generation++;
	slot->next_free = r->timer_free_head;
	r->timer_free_head = index;
	uint64_t start = oskr__monotonic_ns();
	fn(&r->ctx, r->state, arg);
	observe_task(r, OSKR_TASK_STATEFUL, start);
}

static int host_timer_arm(struct oskr_ctx *ctx, uint64_t delay_ns,
			  oskr_task_fn fn, void *arg, oskr_timer_id *out)
{
	struct oskr_replica *r = replica_of(ctx);
	if (r->timer_free_head == NO_FREE_SLOT) {
		uint32_t old = r->timer_slot_count;
		uint32_t grown = old ? old * 2 : 64;
		struct timer_slot *slots =
			realloc(r->timer_slots, grown * sizeof(*slots));
		if (!slots)
			return -ENOMEM;
		for (uint32_t i = old; i < grown; i++) {
			slots[i] = (struct timer_slot){
				.generation = 1,
				.next_free = i + 1 < grown ? i + 1
							   : NO_FREE_SLOT,
			};
		}
		r->timer_slots = slots;
		r->timer_slot_count = grown;
		r->timer_free_head = old;
	}
	uint32_t index = r->timer_free_head;
	struct timer_slot *slot = &r->timer_slots[index];
	uint64_t handle = (uint64_t)index << 32 | slot->generation;
	int rc = oskr__timers_arm(r->timers, delay_ns, timer_fired, r,
				  (void *)(uintptr_t)handle,
				  &slot->internal_id);
	if (rc < 0)
		return rc;
	r->timer_free_head = slot->next_free;
	slot->armed = true;
	slot->fn = fn;
	slot->arg = arg;
	*out = handle;
	return 0;
}

static int host_timer_cancel(struct oskr_ctx *ctx, oskr_timer_id timer)
{
	struct oskr_replica *r = replica_of(ctx);
	uint32_t index = (uint32_t)(timer >> 32);
	uint32_t generation = (uint32_t)timer;
	if (index >= r->timer_slot_count)
		return -ENOENT;
	struct timer_slot *slot = &r->timer_slots[index];
	if (!slot->armed || slot->generation != generation)
		return -ENOENT;
	oskr__timers_cancel(r->timers, slot->internal_id);
	slot->armed = false;
	slot->generation++;
	slot->next_free = r->timer_free_head;
	r->timer_free_head = index;
	return 0;
}

static uint64_t host_now_ns(struct oskr_ctx *ctx)
{
	return oskr__monotonic_ns();
}

static int host_app_execute(struct oskr_ctx *ctx, const void *op,
			    size_t op_len, void *result,
			    size_t result_capacity, size_t *result_len)
{
	struct oskr_replica *r = replica_of(ctx);
	int rc = r->app_ops->execute(r->app, op, op_len, result,
				     result_capacity, result_len);
	if (rc == 0)
		atomic_fetch_add_explicit(&r->applied, 1,
					  memory_order_relaxed);
	return rc;
}

static int host_app_snapshot(struct oskr_ctx *ctx, void **out,
			     size_t *out_len)
{
	struct oskr_replica *r = replica_of(ctx);
	return r->app_ops->snapshot(r->app, out, out_len);
}

static int host_app_restore(struct oskr_ctx *ctx, const void *snapshot,
			    size_t len)
{
	struct oskr_replica *r = replica_of(ctx);
	int rc = r->app_ops->restore(r->app, snapshot, len);
	if (rc == 0) /* state transfer: the state changed */
		atomic_fetch_add_explicit(&r->applied, 1,
					  memory_order_relaxed);
	return rc;
}

static void host_blob_free(struct oskr_ctx *ctx, void *blob)
{
	free(blob);
}

static int host_client_complete(struct oskr_ctx *ctx, uint64_t request_number,
				const void *result, size_t len)
{
	return -ENOTSUP; /* replicas have no invoking application */
}

static const struct oskr_conf *host_conf(struct oskr_ctx *ctx)
{
	return replica_of(ctx)->config->protocol_options;
}

static void host_log(struct oskr_ctx *ctx, enum oskr_log_level level,
		     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	oskr__vlog(level, replica_of(ctx)->log_prefix, fmt, ap);
	va_end(ap);
}

static void host_count(struct oskr_ctx *ctx, const char *name, uint64_t delta)
{
	oskr__counters_add(&replica_of(ctx)->counters, name, delta);
}

static void host_set_status(struct oskr_ctx *ctx, uint64_t view,
			    int32_t leader, uint64_t committed,
			    uint64_t executed)
{
	struct oskr_replica *r = replica_of(ctx);
	atomic_store_explicit(&r->status_view, view, memory_order_relaxed);
	atomic_store_explicit(&r->status_leader, leader, memory_order_relaxed);
	atomic_store_explicit(&r->status_committed, committed,
			      memory_order_relaxed);
	atomic_store_explicit(&r->status_executed, executed,
			      memory_order_relaxed);
}

/* ---- durable checkpoints (ABI 1.1; docs/operations.md) ---- */

/* The plugin declares that the app state after @p op_number is stable.
 * The file is named by the host's `applied` count *now*, also when the
 * plugin hands an application blob it took earlier (at op_number): the
 * host does not know how many operations it has applied since, and
 * naming by "now" keeps file numbers growing in the order the files are
 * written, which is all the newest-file rule needs. The number of such a
 * file is then an upper bound of the operations in it, never a lower
 * one, so the restored counter never goes backwards. */
static int host_checkpoint_stable(struct oskr_ctx *ctx, uint64_t op_number,
				  const void *app, size_t app_len,
				  const void *protocol_state,
				  size_t protocol_len)
{
	struct oskr_replica *r = replica_of(ctx);
	if (!r->snapshot_writer)
		return 0; /* no state_dir: nothing to persist */
	if (protocol_len && !protocol_state)
		return -EINVAL;
	if (protocol_len > SIZE_MAX / 2)
		return -ENOMEM;
	uint8_t *payload;
	size_t blob_len;
	if (app) { /* app_len is ignored when app is NULL (plugin.h) */
		payload = app_len <= SIZE_MAX / 2
				  ? malloc(app_len + protocol_len + 1)
				  : NULL;
		if (!payload)
			return -ENOMEM;
		memcpy(payload, app, app_len);
		blob_len = app_len;
	} else {
		void *blob = NULL;
		int rc = r->app_ops->snapshot(r->app, &blob, &blob_len);
		if (rc < 0) {
			OSKR_ERROR("checkpoint at op %" PRIu64 ": the %s app "
				   "cannot serialise its state: %s",
				   op_number, r->app_ops->name, strerror(-rc));
			return rc;
		}
		/* Append the protocol state to the app's own blob: no copy
		 * of the (large) application state. */
		if (protocol_len) {
			uint8_t *grown = blob_len <= SIZE_MAX / 2
						 ? realloc(blob,
							   blob_len + protocol_len)
						 : NULL;
			if (!grown) {
				free(blob);
				return -ENOMEM;
			}
			blob = grown;
		}
		payload = blob;
	}
	if (protocol_len)
		memcpy(payload + blob_len, protocol_state, protocol_len);
	uint64_t applied = atomic_load_explicit(&r->applied,
						memory_order_relaxed);
	struct oskr_snapshot_meta meta = {
		.applied = applied,
		.checkpoint = true,
		.checkpoint_op = op_number,
		.protocol_state_len = protocol_len,
	};
	snprintf(meta.app, sizeof(meta.app), "%s", r->app_ops->name);
	snprintf(meta.protocol, sizeof(meta.protocol), "%s", r->plugin->name);
	oskr__snapshot_writer_submit(r->snapshot_writer, &meta, payload,
				     blob_len + protocol_len);
	r->snapshot_applied = applied;
	r->snapshot_current = app == NULL;
	r->snapshot_checkpoint = true;
	if (!r->checkpoints_declared) {
		r->checkpoints_declared = true;
		OSKR_INFO("%s declares stable checkpoints: snapshots are "
			  "written at its checkpoints (and at stop) from now "
			  "on, no longer every interval",
			  r->plugin->name);
	}
	oskr__counters_add(&r->counters, "checkpoint_snapshots", 1);
	OSKR_DEBUG("checkpoint at op %" PRIu64 " queued for writing (%zu + "
		   "%zu bytes, %" PRIu64 " applied)",
		   op_number, blob_len, protocol_len, applied);
	return 0;
}

static int host_checkpoint_resume(struct oskr_ctx *ctx, uint64_t *op_number,
				  const void **protocol_state,
				  size_t *protocol_len)
{
	struct oskr_replica *r = replica_of(ctx);
	if (!op_number || !protocol_state || !protocol_len)
		return -EINVAL;
	if (!r->in_init)
		return -EINVAL; /* the state is freed once init returned */
	if (!r->resume_available)
		return -ENOENT;
	*op_number = r->restored_meta.checkpoint_op;
	*protocol_state = r->resume_state;
	*protocol_len = r->resume_state_len;
	if (!r->resumed) {
		r->resumed = true;
		/* A protocol that resumes from checkpoints declares them:
		 * an interval snapshot (no checkpoint) written before its
		 * first new one would hide the one it resumed from. */
		r->checkpoints_declared = true;
		OSKR_INFO("resuming %s from checkpoint at op %" PRIu64
			  " (file %s)",
			  r->plugin->name, r->restored_meta.checkpoint_op,
			  r->restored_path);
	}
	return 0;
}

static const struct oskr_host replica_host = {
	.size = sizeof(struct oskr_host),
	.abi_major = OSKR_ABI_MAJOR,
	.abi_minor = OSKR_ABI_MINOR,
	.info = host_info,
	.buf_alloc = host_buf_alloc,
	.buf_hold = oskr__buf_hold,
	.buf_release = oskr__buf_release,
	.send_to_replica = host_send_to_replica,
	.send_to_all = host_send_to_all,
	.send_to_addr = host_send_to_addr,
	.signature_size = host_signature_size,
	.sign = host_sign,
	.verify = host_verify,
	.digest = host_digest,
	.submit_stateless = host_submit_stateless,
	.submit_stateful = host_submit_stateful,
	.timer_arm = host_timer_arm,
	.timer_cancel = host_timer_cancel,
	.now_ns = host_now_ns,
	.app_execute = host_app_execute,
	.app_snapshot = host_app_snapshot,
	.app_restore = host_app_restore,
	.blob_free = host_blob_free,
	.client_complete = host_client_complete,
	.conf = host_conf,
	.conf_u64 = oskr__conf_u64,
	.conf_bool = oskr__conf_bool,
	.conf_ms = oskr__conf_ms,
	.conf_check_keys = oskr__conf_check_keys,
	.log = host_log,
	.count = host_count,
	.set_status = host_set_status,
	.checkpoint_stable = host_checkpoint_stable,
	.checkpoint_resume = host_checkpoint_resume,
};

/* ---- receive path ---- */

static void receive_task(void *a, void *b, void *c)
{
	struct oskr_replica *r = a;
	struct oskr_buf *buf = b;
	if (finished(r)) {
		oskr__buf_release(buf);
		return;
	}
	struct oskr__buf *inner = oskr__buf_from_pub(buf);
	struct oskr_msg msg = {
		.buf = buf,
		.from = inner->from,
		.from_replica = inner->from_replica,
	};
	uint64_t start = oskr__monotonic_ns();
	r->plugin->replica_receive(&r->ctx, r->state, &msg);
	observe_task(r, OSKR_TASK_STATELESS, start);
	oskr__buf_release(buf); /* the borrow ends with the callback */
}

static void deliver(void *arg, struct oskr_buf *buf,
		    const struct oskr_addr *from, int32_t from_replica)
{
	struct oskr_replica *r = arg;
	if (!atomic_load_explicit(&r->receiving, memory_order_acquire)) {
		oskr__buf_release(buf);
		return;
	}
	struct oskr__buf *inner = oskr__buf_from_pub(buf);
	inner->from = *from;
	inner->from_replica = from_replica;
	/* On an idle pool the rx thread runs the message to completion
	 * itself (docs/stage.md, "Inline execution"). */
	int rc = r->inline_receive
			 ? oskr__stage_submit_stateless_inline(
				   r->stage, receive_task, r, buf, NULL)
			 : oskr__stage_submit_stateless(r->stage, receive_task,
							r, buf, NULL);
	if (rc < 0) {
		oskr__counters_add(&r->counters, "drop_stage_full", 1);
		oskr__buf_release(buf);
	}
}

static void flush_after_batch(void *arg, unsigned worker)
{
	struct oskr_replica *r = arg;
	if (worker < r->tx_slots - 1)
		r->tops->flush(r->transport, worker);
}

/* ---- durable state (docs/operations.md, "Durable state") ----
 *
 * The app is serialised inside a stateful task (the only place the app
 * may be touched) and handed to the snapshot writer thread, which does
 * the file I/O. A snapshot is taken at every checkpoint the plugin
 * declares (checkpoint_stable above); until the first one (forever for a
 * plugin that never declares one), every snapshot.interval if the app
 * changed; and after replica_fini on a graceful stop. At start the newest
 * valid snapshot is restored before replica_init. */

/* A snapshot of the app as it is now, not a checkpoint. */
static void snapshot_take(struct oskr_replica *r, const char *why)
{
	uint64_t applied = atomic_load_explicit(&r->applied,
						memory_order_relaxed);
	if (!r->snapshot_writer)
		return;
	/* Nothing new. After a checkpoint at this very number a stop
	 * snapshot is still written (it replaces that file): the state it
	 * holds may be older, and a stop snapshot carries no checkpoint. */
	if (applied == r->snapshot_applied && r->snapshot_current &&
	    !r->snapshot_checkpoint)
		return;
	void *blob = NULL;
	size_t len = 0;
	int rc = r->app_ops->snapshot(r->app, &blob, &len);
	if (rc < 0) {
		OSKR_ERROR("snapshot (%s): the %s app cannot serialise its "
			   "state: %s",
			   why, r->app_ops->name, strerror(-rc));
		return;
	}
	struct oskr_snapshot_meta meta = {.applied = applied};
	snprintf(meta.app, sizeof(meta.app), "%s", r->app_ops->name);
	snprintf(meta.protocol, sizeof(meta.protocol), "%s", r->plugin->name);
	oskr__snapshot_writer_submit(r->snapshot_writer, &meta, blob, len);
	r->snapshot_applied = applied;
	r->snapshot_current = true;
	r->snapshot_checkpoint = false;
}

static void snapshot_timer_arm(struct oskr_replica *r);

static void snapshot_timer_fired(void *a, void *b)
{
	struct oskr_replica *r = a;
	if (r->checkpoints_declared || finished(r))
		return; /* checkpoints took over: the timer is not re-armed */
	snapshot_take(r, "interval");
	snapshot_timer_arm(r);
}

static void snapshot_timer_arm(struct oskr_replica *r)
{
	uint64_t id;
	int rc = oskr__timers_arm(r->timers, r->snapshot_interval_ns,
				  snapshot_timer_fired, r, NULL, &id);
	if (rc < 0)
		OSKR_ERROR("periodic snapshots stop: cannot arm a timer: %s",
			   strerror(-rc));
}

struct restore_context {
	struct oskr_replica *replica;
	unsigned skipped;
};

static int restore_accept(void *arg, const char *path,
			  const struct oskr_snapshot_meta *meta,
			  const void *payload, size_t len, char **why)
{
	struct restore_context *context = arg;
	struct oskr_replica *r = context->replica;
	if (strcmp(meta->app, r->app_ops->name) != 0)
		return oskr__errorf(why,
				    "written by the %s app, this replica runs "
				    "%s",
				    meta->app, r->app_ops->name);
	/* payload: the app's blob, then the protocol state (checkpoints) */
	size_t app_len = len - (size_t)meta->protocol_state_len;
	int rc = r->app_ops->restore(r->app, payload, app_len);
	if (rc < 0) {
		oskr__errorf(why, "the %s app refuses its contents: %s",
			     r->app_ops->name, strerror(-rc));
		return rc;
	}
	/* The protocol may resume from it only if this protocol wrote it:
	 * the state blob is the plugin's own, opaque to everyone else. The
	 * header holds the name as written, cut to fit. */
	char protocol[sizeof(meta->protocol)];
	snprintf(protocol, sizeof(protocol), "%s", r->plugin->name);
	if (meta->checkpoint && strcmp(meta->protocol, protocol) == 0) {
		size_t state_len = (size_t)meta->protocol_state_len;
		void *state = malloc(state_len ? state_len : 1);
		if (!state) {
			oskr__errorf(why, "out of memory");
			return -ENOMEM;
		}
		if (state_len)
			memcpy(state, (const uint8_t *)payload + app_len,
			       state_len);
		r->resume_state = state;
		r->resume_state_len = state_len;
		r->resume_available = true;
	}
	return 0;
}

static void restore_report(void *arg, const char *path, const char *why)
{
	struct restore_context *context = arg;
	context->skipped++;
	OSKR_ERROR("%s: %s; skipped, not loaded", path, why);
}

/* What was restored is only needed until replica_init returned. */
static void resume_forget(struct oskr_replica *r)
{
	free(r->resume_state);
	r->resume_state = NULL;
	r->resume_state_len = 0;
	r->resume_available = false;
	free(r->restored_path);
	r->restored_path = NULL;
}

static void durable_close(struct oskr_replica *r)
{
	oskr__snapshot_writer_free(r->snapshot_writer);
	r->snapshot_writer = NULL;
	oskr__state_dir_close(r->state_dir);
	r->state_dir = NULL;
	resume_forget(r);
}

/* Lock the state directory and restore the newest valid snapshot into the
 * app (before any thread runs). */
static int durable_open(struct oskr_replica *r, uint32_t replica_id,
			char **err)
{
	if (!r->config->state_dir)
		return 0;
	char *path = oskr__expand_replica_id(r->config->state_dir, replica_id);
	if (!path) {
		oskr__errorf(err, "out of memory");
		return -ENOMEM;
	}
	int rc = oskr__state_dir_open(&r->state_dir, path, err);
	free(path);
	if (rc < 0)
		return rc;
	const char *dir = oskr__state_dir_path(r->state_dir);
	struct restore_context context = {.replica = r};
	struct oskr_snapshot_meta meta;
	char *from = NULL;
	rc = oskr__snapshot_load_newest(dir, restore_accept, restore_report,
					&context, &meta, &from, err);
	if (rc == 0) {
		time_t written = (time_t)(meta.created_unix_ms / 1000);
		struct tm tm;
		char when[32] = "?";
		if (gmtime_r(&written, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		char checkpoint[64] = "";
		if (meta.checkpoint)
			snprintf(checkpoint, sizeof(checkpoint),
				 " (checkpoint at op %" PRIu64 ")",
				 meta.checkpoint_op);
		OSKR_INFO("restored %s: %" PRIu64 " operations applied, %" PRIu64
			  " bytes of %s state, written by %s at %s%s",
			  from, meta.applied,
			  meta.payload_len - meta.protocol_state_len, meta.app,
			  meta.protocol[0] ? meta.protocol : "?", when,
			  checkpoint);
		atomic_store_explicit(&r->applied, meta.applied,
				      memory_order_relaxed);
		/* The app holds exactly that file's state now. */
		r->snapshot_applied = meta.applied;
		r->snapshot_current = true;
		r->snapshot_checkpoint = meta.checkpoint;
		r->restored_applied = meta.applied;
		r->restored_meta = meta;
		r->restored_path = from;
	} else if (rc == -ENOENT) {
		if (context.skipped)
			OSKR_ERROR("state_dir %s: none of the %u snapshot "
				   "file(s) is usable; starting with an empty "
				   "%s app",
				   dir, context.skipped, r->app_ops->name);
		else
			OSKR_INFO("state_dir %s: no snapshot yet; starting "
				  "with an empty %s app",
				  dir, r->app_ops->name);
	} else {
		goto err_close;
	}
	rc = oskr__snapshot_writer_create(&r->snapshot_writer, dir,
					  r->config->snapshot.keep);
	if (rc < 0) {
		oskr__errorf(err, "cannot start the snapshot writer: %s",
			     strerror(-rc));
		goto err_close;
	}
	return 0;

err_close:
	durable_close(r);
	return rc;
}

/* ---- life cycle ---- */

/* Say from where the protocol starts, once replica_init returned (a
 * resume was logged by checkpoint_resume itself). */
static void log_resume_outcome(struct oskr_replica *r)
{
	const struct oskr_snapshot_meta *meta = &r->restored_meta;
	if (!r->restored_path || r->resumed)
		return;
	if (r->resume_available) {
		OSKR_WARN("%s did not resume from the checkpoint at op %" PRIu64
			  " in %s (its replica_init does not call "
			  "checkpoint_resume); the protocol starts from op 0 "
			  "on top of the restored application",
			  r->plugin->name, meta->checkpoint_op,
			  r->restored_path);
		return;
	}
	char why[96];
	if (meta->format_version == OSKR_SNAPSHOT_FORMAT_V1)
		snprintf(why, sizeof(why), "format 1, before checkpoints");
	else if (meta->checkpoint)
		snprintf(why, sizeof(why), "a checkpoint of %s, not of %s",
			 meta->protocol, r->plugin->name);
	else
		snprintf(why, sizeof(why),
			 "not a checkpoint: written at a stop or by the "
			 "interval");
	OSKR_INFO("restored %s (%s); the protocol starts from op 0",
		  r->restored_path, why);
}

static void init_task(void *a, void *b, void *c)
{
	struct oskr_replica *r = a;
	r->in_init = true;
	int rc = r->plugin->replica_init(&r->ctx, r->state);
	r->in_init = false;
	if (rc == 0)
		log_resume_outcome(r);
	resume_forget(r);
	if (rc == 0 && r->snapshot_writer && r->snapshot_interval_ns &&
	    !r->checkpoints_declared)
		snapshot_timer_arm(r);
	pthread_mutex_lock(&r->init_lock);
	r->init_rc = rc;
	r->init_done = true;
	pthread_cond_broadcast(&r->init_cond);
	pthread_mutex_unlock(&r->init_lock);
}

static void fini_task(void *a, void *b, void *c)
{
	struct oskr_replica *r = a;
	if (r->plugin->replica_fini)
		r->plugin->replica_fini(&r->ctx, r->state);
	atomic_store_explicit(&r->finished, true, memory_order_release);
	snapshot_take(r, "stop"); /* the app is final now */
}

int oskr__replica_create(struct oskr_replica **out,
			 const struct oskr_config *config, uint32_t replica_id,
			 const struct oskr_plugin *plugin, char **err)
{
	int rc = -ENOMEM;
	struct oskr_replica *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->ctx.host = &replica_host;
	r->config = config;
	r->plugin = plugin;
	r->timer_free_head = NO_FREE_SLOT;
	/* Nothing applied, nothing to write until something is. */
	r->snapshot_current = true;
	r->snapshot_interval_ns = config->snapshot.interval_ms * 1000000ull;
	snprintf(r->log_prefix, sizeof(r->log_prefix), "%s r%u", plugin->name,
		 replica_id);
	oskr__counters_init(&r->counters);
	pthread_mutex_init(&r->shared_slot_lock, NULL);
	pthread_mutex_init(&r->init_lock, NULL);
	pthread_cond_init(&r->init_cond, NULL);
	atomic_init(&r->status_leader, -1);
	r->latency_slots = config->workers + 1;
	for (int kind = 0; kind < OSKR_TASK_KINDS; kind++) {
		size_t size = r->latency_slots * sizeof(*r->task_latency[kind]);
		r->task_latency[kind] = aligned_alloc(
			_Alignof(struct oskr__latency_histogram), size);
		if (!r->task_latency[kind])
			goto err_free;
		memset(r->task_latency[kind], 0, size);
	}

	if (replica_id >= config->replica_count) {
		rc = oskr__errorf(err,
				  "%s: replica id %u is out of range (the "
				  "cluster has %u replicas)",
				  config->file, replica_id,
				  config->replica_count);
		goto err_free;
	}
	r->state = calloc(1, plugin->replica_state_size
				     ? plugin->replica_state_size
				     : 1);
	if (!r->state)
		goto err_free;

	/* keys: own private key + every replica's public key */
	char *private_key = oskr__config_private_key_path(config, replica_id);
	const char **public_keys =
		calloc(config->replica_count, sizeof(*public_keys));
	if (!private_key || !public_keys) {
		free(private_key);
		free(public_keys);
		goto err_state;
	}
	for (uint32_t i = 0; i < config->replica_count; i++)
		public_keys[i] = config->replicas[i].public_key;
	rc = oskr__signer_create(&r->signer, private_key, public_keys,
				 config->replica_count, err);
	free(private_key);
	free(public_keys);
	if (rc < 0)
		goto err_state;

	r->app_ops = oskr__app_find(config->app ? config->app : "null");
	if (!r->app_ops) {
		rc = oskr__errorf(err, "%s: unknown app '%s' (expected null or "
				       "kv)",
				  config->file, config->app);
		goto err_signer;
	}
	rc = r->app_ops->create(&r->app, config->app_options, err);
	if (rc < 0)
		goto err_signer;
	rc = durable_open(r, replica_id, err);
	if (rc < 0)
		goto err_app;

	r->tops = oskr__transport_for(config->transport);
	if (!r->tops) {
		rc = oskr__errorf(err,
				  "%s: this oskrd was built without the "
				  "requested transport",
				  config->file);
		goto err_durable;
	}
	r->tx_slots = config->workers + 1;
	r->inline_receive = config->inline_receive;
	rc = r->tops->open(&r->transport, config, (int32_t)replica_id,
			   r->tx_slots, err);
	if (rc < 0)
		goto err_durable;

	struct oskr_stage_config stage_config = {
		.workers = config->workers,
		.ring_size = config->ring_size,
		.cores = config->cores,
		.core_count = config->core_count,
		.after_batch = flush_after_batch,
		.after_batch_arg = r,
	};
	rc = oskr__stage_create(&r->stage, &stage_config);
	if (rc < 0) {
		oskr__errorf(err, "cannot create the worker pool: %s",
			     strerror(-rc));
		goto err_transport;
	}
	rc = oskr__timers_create(&r->timers, r->stage, config->max_timers);
	if (rc < 0) {
		oskr__errorf(err, "cannot create timers: %s", strerror(-rc));
		goto err_stage;
	}

	r->info = (struct oskr_instance_info){
		.size = sizeof(struct oskr_instance_info),
		.replica_count = config->replica_count,
		.fault_count = config->fault_count,
		.replica_id = (int32_t)replica_id,
		.client_id = 0,
		.max_message = r->tops->max_message(r->transport),
		.worker_count = config->workers,
	};
	*out = r;
	return 0;

err_stage:
	oskr__stage_free(r->stage);
err_transport:
	r->tops->close(r->transport);
err_durable:
	durable_close(r);
err_app:
	r->app_ops->destroy(r->app);
err_signer:
	oskr__signer_free(r->signer);
err_state:
	free(r->state);
err_free:
	for (int kind = 0; kind < OSKR_TASK_KINDS; kind++)
		free(r->task_latency[kind]);
	pthread_cond_destroy(&r->init_cond);
	pthread_mutex_destroy(&r->init_lock);
	pthread_mutex_destroy(&r->shared_slot_lock);
	oskr__counters_destroy(&r->counters);
	free(r);
	return rc;
}

int oskr__replica_start(struct oskr_replica *r, char **err)
{
	r->start_ns = oskr__monotonic_ns();
	int rc = oskr__stage_start(r->stage);
	if (rc < 0)
		return oskr__errorf(err, "cannot start workers: %s",
				    strerror(-rc));
	rc = oskr__timers_start(r->timers);
	if (rc < 0)
		return oskr__errorf(err, "cannot start timers: %s",
				    strerror(-rc));
	r->started = true;
	/* replica_init is the first stateful task: nothing is delivered
	 * before it returns. */
	rc = oskr__stage_submit_stateful(r->stage, init_task, r, NULL, NULL);
	if (rc < 0)
		return oskr__errorf(err, "cannot queue replica_init: %s",
				    strerror(-rc));
	pthread_mutex_lock(&r->init_lock);
	while (!r->init_done)
		pthread_cond_wait(&r->init_cond, &r->init_lock);
	rc = r->init_rc;
	pthread_mutex_unlock(&r->init_lock);
	if (rc < 0)
		return oskr__errorf(err, "plugin %s: replica_init failed: %s",
				    r->plugin->name, strerror(-rc));
	atomic_store_explicit(&r->receiving, true, memory_order_release);
	rc = r->tops->start(r->transport, deliver, r);
	if (rc < 0)
		return oskr__errorf(err, "cannot start the %s transport: %s",
				    r->tops->name, strerror(-rc));
	return 0;
}

void oskr__replica_stop(struct oskr_replica *r)
{
	if (r->stopped)
		return;
	r->stopped = true;
	atomic_store_explicit(&r->receiving, false, memory_order_release);
	if (r->transport)
		r->tops->stop(r->transport);
	if (!r->started)
		return;
	/* No new timer fires; fini runs after everything queued so far. */
	oskr__timers_stop(r->timers);
	if (r->init_done && r->init_rc == 0)
		oskr__stage_submit_stateful(r->stage, fini_task, r, NULL,
					    NULL);
	oskr__stage_stop(r->stage);
	/* anything still batched on the shared slot */
	pthread_mutex_lock(&r->shared_slot_lock);
	r->tops->flush(r->transport, r->tx_slots - 1);
	pthread_mutex_unlock(&r->shared_slot_lock);
	/* fini_task queued the final snapshot: make it durable now */
	if (r->snapshot_writer) {
		int rc = oskr__snapshot_writer_flush(r->snapshot_writer);
		struct oskr_snapshot_writer_stats stats;
		oskr__snapshot_writer_stats(r->snapshot_writer, &stats);
		if (rc == 0 && stats.written)
			OSKR_INFO("state_dir %s: snapshot at %" PRIu64
				  " applied operations is on disk",
				  oskr__state_dir_path(r->state_dir),
				  stats.last_applied);
	}
}

void oskr__replica_free(struct oskr_replica *r)
{
	if (!r)
		return;
	oskr__replica_stop(r);
	oskr__timers_free(r->timers);
	oskr__stage_free(r->stage);
	r->tops->close(r->transport);
	durable_close(r);
	r->app_ops->destroy(r->app);
	oskr__signer_free(r->signer);
	free(r->timer_slots);
	for (int kind = 0; kind < OSKR_TASK_KINDS; kind++)
		free(r->task_latency[kind]);
	free(r->state);
	pthread_cond_destroy(&r->init_cond);
	pthread_mutex_destroy(&r->init_lock);
	pthread_mutex_destroy(&r->shared_slot_lock);
	oskr__counters_destroy(&r->counters);
	free(r);
}

void oskr__replica_status(struct oskr_replica *r,
			  struct oskr_replica_status *out)
{
	struct oskr_stage_stats stats;
	oskr__stage_stats(r->stage, &stats);
	*out = (struct oskr_replica_status){
		.view = atomic_load_explicit(&r->status_view,
					     memory_order_relaxed),
		.leader = atomic_load_explicit(&r->status_leader,
					       memory_order_relaxed),
		.committed = atomic_load_explicit(&r->status_committed,
						  memory_order_relaxed),
		.executed = atomic_load_explicit(&r->status_executed,
						 memory_order_relaxed),
		.uptime_ns = r->start_ns ? oskr__monotonic_ns() - r->start_ns
					 : 0,
		.stateless_queued = stats.stateless_queued,
		.stateful_queued = stats.stateful_queued,
		.heartbeat = stats.heartbeat,
	};
}

void oskr__replica_counters(struct oskr_replica *r,
			    void (*visit)(void *arg, const char *name,
					  uint64_t value),
			    void *arg)
{
	oskr__counters_visit(&r->counters, visit, arg);
	struct oskr_transport_stats ts;
	r->tops->stats(r->transport, &ts);
	visit(arg, "rx_packets", ts.rx_packets);
	visit(arg, "tx_packets", ts.tx_packets);
	visit(arg, "rx_bytes", ts.rx_bytes);
	visit(arg, "tx_bytes", ts.tx_bytes);
	for (int reason = 0; reason < OSKR_DROP_REASON_COUNT; reason++) {
		char name[64];
		snprintf(name, sizeof(name), "drop_%s",
			 oskr__drop_reason_name(reason));
		visit(arg, name, ts.drops[reason]);
	}
	struct oskr_stage_stats ss;
	oskr__stage_stats(r->stage, &ss);
	visit(arg, "stage_stateless_run", ss.stateless_run);
	visit(arg, "stage_stateful_run", ss.stateful_run);
	visit(arg, "stage_rejected_full", ss.rejected_full);
	visit(arg, "stage_inline_runs", ss.inline_runs);
	visit(arg, "stage_inline_tasks",
	      ss.inline_stateless_run + ss.inline_stateful_run);
}

/* ---- operations (docs/operations.md) ---- */

void oskr__replica_task_latency(struct oskr_replica *r,
				enum oskr__task_kind kind,
				struct oskr__latency_totals *out)
{
	if ((unsigned)kind >= OSKR_TASK_KINDS)
		return;
	for (unsigned slot = 0; slot < r->latency_slots; slot++)
		oskr__latency_accumulate(&r->task_latency[kind][slot], out);
}

void oskr__replica_durable_status(struct oskr_replica *r,
				  struct oskr_replica_durable *out)
{
	*out = (struct oskr_replica_durable){
		.state_dir = r->state_dir ? oskr__state_dir_path(r->state_dir)
					  : NULL,
		.applied = atomic_load_explicit(&r->applied,
						memory_order_relaxed),
		.restored_applied = r->restored_applied,
		/* set in replica_init, before the control socket answers */
		.resumed = r->resumed,
		.resumed_op = r->resumed ? r->restored_meta.checkpoint_op : 0,
	};
	if (r->snapshot_writer)
		oskr__snapshot_writer_stats(r->snapshot_writer, &out->writer);
}
