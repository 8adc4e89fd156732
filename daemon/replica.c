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
 * Durable state (snapshots, checkpoints, restore) is in replica_durable.c.
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
#include "replica_internal.h"
#include "timer.h"

#define NO_FREE_SLOT UINT32_MAX

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
	.checkpoint_stable = oskr__replica_checkpoint_stable,
	.checkpoint_resume = oskr__replica_checkpoint_resume,
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

static void init_task(void *a, void *b, void *c)
{
	struct oskr_replica *r = a;
	r->in_init = true;
	int rc = r->plugin->replica_init(&r->ctx, r->state);
	r->in_init = false;
	if (rc == 0)
		oskr__replica_log_resume_outcome(r);
	oskr__replica_resume_forget(r);
	if (rc == 0 && r->snapshot_writer && r->snapshot_interval_ns &&
	    !r->checkpoints_declared)
		oskr__replica_snapshot_timer_arm(r);
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
	oskr__replica_snapshot_take(r, "stop"); /* the app is final now */
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
	rc = oskr__replica_durable_open(r, replica_id, err);
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
	oskr__replica_durable_close(r);
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
	oskr__replica_durable_close(r);
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
