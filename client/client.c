/* SPDX-License-Identifier: MIT */
/*
 * liboskr-client: the host side of a plugin's client callbacks. A client
 * is single threaded: "stateless" and "stateful" tasks both run inline, in
 * FIFO order, from oskr_client_poll(); timers are a small per-client list
 * checked by the poll loop.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <oskr/client.h>

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <oskr/plugin.h>

#include "../daemon/buf.h"
#include "../daemon/config.h"
#include "../daemon/counters.h"
#include "../daemon/loader.h"
#include "../daemon/log.h"
#include "../daemon/signer.h"
#include "../daemon/timer.h"
#include "../transport/transport.h"

struct client_timer {
	oskr_timer_id id; /* 0 = free */
	uint64_t deadline_ns;
	oskr_task_fn fn;
	void *arg;
};

struct client_task {
	oskr_task_fn fn;
	void *arg;
};

struct oskr_client {
	struct oskr_ctx ctx; /* must stay first */
	struct oskr_config *config;
	struct oskr_loaded_plugin plugin;
	const struct oskr_plugin *descriptor;
	void *state;
	struct oskr_instance_info info;
	struct oskr_signer *signer;
	const struct oskr_transport_ops *tops;
	struct oskr_transport *transport;
	struct oskr_counters counters;
	char log_prefix[48];

	struct client_timer *timers;
	size_t timer_capacity;
	oskr_timer_id next_timer_id;

	struct client_task *tasks; /* ring */
	size_t task_capacity, task_head, task_count;

	/* the outstanding request */
	bool busy;
	uint64_t request_number;
	oskr_client_done_fn done;
	void *done_arg;
	unsigned completions; /* since the last poll round */
};

static struct oskr_client *client_of(struct oskr_ctx *ctx)
{
	return (struct oskr_client *)ctx;
}

/* ---- host services ---- */

static const struct oskr_instance_info *host_info(struct oskr_ctx *ctx)
{
	return &client_of(ctx)->info;
}

static int host_buf_alloc(struct oskr_ctx *ctx, size_t capacity,
			  struct oskr_buf **out)
{
	struct oskr_client *c = client_of(ctx);
	if (capacity > c->info.max_message)
		return -EMSGSIZE;
	return c->tops->buf_alloc(c->transport, capacity, out);
}

static int host_send_to_replica(struct oskr_ctx *ctx, uint32_t replica_id,
				struct oskr_buf *buf)
{
	struct oskr_client *c = client_of(ctx);
	if (replica_id >= c->info.replica_count) {
		oskr__buf_release(buf);
		return -EINVAL;
	}
	int rc = c->tops->send_replica(c->transport, 0, replica_id, buf);
	c->tops->flush(c->transport, 0);
	return rc;
}

static int host_send_to_all(struct oskr_ctx *ctx, struct oskr_buf *buf)
{
	struct oskr_client *c = client_of(ctx);
	int rc = 0;
	for (uint32_t id = 0; id < c->info.replica_count; id++) {
		oskr__buf_hold(buf);
		int one = c->tops->send_replica(c->transport, 0, id, buf);
		if (one < 0 && rc == 0)
			rc = one;
	}
	c->tops->flush(c->transport, 0);
	oskr__buf_release(buf);
	return rc;
}

static int host_send_to_addr(struct oskr_ctx *ctx, const struct oskr_addr *addr,
			     struct oskr_buf *buf)
{
	struct oskr_client *c = client_of(ctx);
	int rc = c->tops->send_addr(c->transport, 0, addr, buf);
	c->tops->flush(c->transport, 0);
	return rc;
}

static size_t host_signature_size(struct oskr_ctx *ctx)
{
	return oskr__signer_signature_size(client_of(ctx)->signer);
}

static int host_sign(struct oskr_ctx *ctx, const void *data, size_t len,
		     uint8_t *sig, size_t *sig_len)
{
	return -ENOKEY; /* clients hold no private key */
}

static bool host_verify(struct oskr_ctx *ctx, uint32_t replica_id,
			const void *data, size_t len, const uint8_t *sig,
			size_t sig_len)
{
	return oskr__signer_verify(client_of(ctx)->signer, replica_id, data,
				   len, sig, sig_len);
}

static void host_digest(struct oskr_ctx *ctx, const void *data, size_t len,
			uint8_t out[OSKR_DIGEST_SIZE])
{
	oskr__sha256(data, len, out);
}

static int host_submit(struct oskr_ctx *ctx, oskr_task_fn fn, void *arg)
{
	struct oskr_client *c = client_of(ctx);
	if (c->task_count == c->task_capacity) {
		size_t grown = c->task_capacity ? c->task_capacity * 2 : 16;
		if (grown > 65536)
			return -EAGAIN;
		struct client_task *tasks = malloc(grown * sizeof(*tasks));
		if (!tasks)
			return -EAGAIN;
		for (size_t i = 0; i < c->task_count; i++)
			tasks[i] = c->tasks[(c->task_head + i) %
					    c->task_capacity];
		free(c->tasks);
		c->tasks = tasks;
		c->task_capacity = grown;
		c->task_head = 0;
	}
	c->tasks[(c->task_head + c->task_count) % c->task_capacity] =
		(struct client_task){fn, arg};
	c->task_count++;
	return 0;
}

static void run_tasks(struct oskr_client *c)
{
	/* Bounded: a task may queue another, but never more than the ring. */
	for (size_t budget = 1u << 20; c->task_count && budget; budget--) {
		struct client_task task = c->tasks[c->task_head];
		c->task_head = (c->task_head + 1) % c->task_capacity;
		c->task_count--;
		task.fn(&c->ctx, c->state, task.arg);
	}
}

static int host_timer_arm(struct oskr_ctx *ctx, uint64_t delay_ns,
			  oskr_task_fn fn, void *arg, oskr_timer_id *out)
{
	struct oskr_client *c = client_of(ctx);
	size_t slot = c->timer_capacity;
	for (size_t i = 0; i < c->timer_capacity; i++) {
		if (c->timers[i].id == 0) {
			slot = i;
			break;
		}
	}
	if (slot == c->timer_capacity) {
		size_t grown = c->timer_capacity ? c->timer_capacity * 2 : 8;
		if (grown > 4096)
			return -ENOSPC;
		struct client_timer *timers =
			realloc(c->timers, grown * sizeof(*timers));
		if (!timers)
			return -ENOMEM;
		memset(timers + c->timer_capacity, 0,
		       (grown - c->timer_capacity) * sizeof(*timers));
		c->timers = timers;
		c->timer_capacity = grown;
	}
	c->timers[slot] = (struct client_timer){
		.id = ++c->next_timer_id,
		.deadline_ns = oskr__monotonic_ns() + delay_ns,
		.fn = fn,
		.arg = arg,
	};
	*out = c->timers[slot].id;
	return 0;
}

static int host_timer_cancel(struct oskr_ctx *ctx, oskr_timer_id timer)
{
	struct oskr_client *c = client_of(ctx);
	for (size_t i = 0; i < c->timer_capacity; i++) {
		if (timer != 0 && c->timers[i].id == timer) {
			c->timers[i].id = 0;
			return 0;
		}
	}
	return -ENOENT;
}

static uint64_t host_now_ns(struct oskr_ctx *ctx)
{
	return oskr__monotonic_ns();
}

static int host_app_execute(struct oskr_ctx *ctx, const void *op,
			    size_t op_len, void *result,
			    size_t result_capacity, size_t *result_len)
{
	return -ENOTSUP;
}

static int host_app_snapshot(struct oskr_ctx *ctx, void **out, size_t *len)
{
	return -ENOTSUP;
}

static int host_app_restore(struct oskr_ctx *ctx, const void *s, size_t len)
{
	return -ENOTSUP;
}

static void host_blob_free(struct oskr_ctx *ctx, void *blob)
{
	free(blob);
}

static int host_client_complete(struct oskr_ctx *ctx, uint64_t request_number,
				const void *result, size_t len)
{
	struct oskr_client *c = client_of(ctx);
	if (!c->busy || request_number != c->request_number)
		return -ENOENT; /* late or duplicate completion: ignored */
	c->busy = false;
	c->completions++;
	if (c->done)
		c->done(c->done_arg, request_number, result, len);
	return 0;
}

static const struct oskr_conf *host_conf(struct oskr_ctx *ctx)
{
	return client_of(ctx)->config->protocol_options;
}

static void host_log(struct oskr_ctx *ctx, enum oskr_log_level level,
		     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	oskr__vlog(level, client_of(ctx)->log_prefix, fmt, ap);
	va_end(ap);
}

static void host_count(struct oskr_ctx *ctx, const char *name, uint64_t delta)
{
	oskr__counters_add(&client_of(ctx)->counters, name, delta);
}

static void host_set_status(struct oskr_ctx *ctx, uint64_t view,
			    int32_t leader, uint64_t committed,
			    uint64_t executed)
{
}

/* Clients have no durable state (ABI 1.1 checkpoint services). */
static int host_checkpoint_stable(struct oskr_ctx *ctx, uint64_t op_number,
				  const void *app, size_t app_len,
				  const void *protocol_state,
				  size_t protocol_len)
{
	return -ENOTSUP;
}

static int host_checkpoint_resume(struct oskr_ctx *ctx, uint64_t *op_number,
				  const void **protocol_state,
				  size_t *protocol_len)
{
	return -ENOENT;
}

static const struct oskr_host client_host = {
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
	.submit_stateless = host_submit,
	.submit_stateful = host_submit,
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

/* ---- life cycle ---- */

static int set_error(char *err, size_t err_len, int rc, const char *message)
{
	if (err && err_len)
		snprintf(err, err_len, "%s", message ? message : strerror(-rc));
	return rc;
}

int oskr_client_open(struct oskr_client **out, const char *config_path,
		     const struct oskr_client_options *options, char *err,
		     size_t err_len)
{
	char *message = NULL;
	int rc;
	struct oskr_client *c = calloc(1, sizeof(*c));
	if (!c)
		return set_error(err, err_len, -ENOMEM, NULL);
	c->ctx.host = &client_host;
	oskr__counters_init(&c->counters);

	rc = oskr__config_load(config_path, &c->config, &message);
	if (rc < 0)
		goto err_free;
	const char *protocol = options && options->protocol
				       ? options->protocol
				       : c->config->protocol;
	if (!protocol) {
		rc = oskr__errorf(&message,
				  "%s: no protocol given (set `protocol:` in "
				  "the config or pass -m)",
				  config_path);
		goto err_config;
	}
	rc = oskr__plugin_load(protocol, &c->plugin, &message);
	if (rc < 0)
		goto err_config;
	c->descriptor = c->plugin.descriptor;
	if (!c->descriptor->client_init) {
		rc = oskr__errorf(&message,
				  "%s: plugin '%s' has no client side",
				  c->plugin.path, c->descriptor->name);
		goto err_plugin;
	}
	c->state = calloc(1, c->descriptor->client_state_size
				     ? c->descriptor->client_state_size
				     : 1);
	if (!c->state) {
		rc = -ENOMEM;
		goto err_plugin;
	}
	const char **public_keys =
		calloc(c->config->replica_count, sizeof(*public_keys));
	if (!public_keys) {
		rc = -ENOMEM;
		goto err_state;
	}
	for (uint32_t i = 0; i < c->config->replica_count; i++)
		public_keys[i] = c->config->replicas[i].public_key;
	rc = oskr__signer_create(&c->signer, NULL, public_keys,
				 c->config->replica_count, &message);
	free(public_keys);
	if (rc < 0)
		goto err_state;

	c->tops = oskr__transport_for(c->config->transport);
	if (!c->tops) {
		rc = oskr__errorf(&message, "%s: transport not available in "
					    "the client library",
				  config_path);
		goto err_signer;
	}
	rc = c->tops->open(&c->transport, c->config, -1, 1, &message);
	if (rc < 0)
		goto err_signer;

	uint64_t client_id = 0;
	while (client_id == 0) {
		if (getrandom(&client_id, sizeof(client_id), 0) !=
		    (ssize_t)sizeof(client_id))
			client_id = oskr__monotonic_ns() ^ (uint64_t)getpid();
	}
	c->info = (struct oskr_instance_info){
		.size = sizeof(c->info),
		.replica_count = c->config->replica_count,
		.fault_count = c->config->fault_count,
		.replica_id = -1,
		.client_id = client_id,
		.max_message = c->tops->max_message(c->transport),
		.worker_count = 1,
	};
	snprintf(c->log_prefix, sizeof(c->log_prefix), "%s client %016llx",
		 c->descriptor->name, (unsigned long long)client_id);
	rc = c->descriptor->client_init(&c->ctx, c->state);
	if (rc < 0) {
		oskr__errorf(&message, "plugin %s: client_init failed: %s",
			     c->descriptor->name, strerror(-rc));
		goto err_transport;
	}
	run_tasks(c);
	*out = c;
	return 0;

err_transport:
	c->tops->close(c->transport);
err_signer:
	oskr__signer_free(c->signer);
err_state:
	free(c->state);
err_plugin:
	oskr__plugin_unload(&c->plugin);
err_config:
	oskr__config_free(c->config);
err_free:
	set_error(err, err_len, rc, message);
	free(message);
	oskr__counters_destroy(&c->counters);
	free(c);
	return rc;
}

void oskr_client_close(struct oskr_client *c)
{
	if (!c)
		return;
	if (c->descriptor->client_fini)
		c->descriptor->client_fini(&c->ctx, c->state);
	c->task_count = 0;
	c->tops->close(c->transport);
	oskr__signer_free(c->signer);
	free(c->state);
	free(c->timers);
	free(c->tasks);
	oskr__plugin_unload(&c->plugin);
	oskr__config_free(c->config);
	oskr__counters_destroy(&c->counters);
	free(c);
}

uint64_t oskr_client_id(const struct oskr_client *c)
{
	return c->info.client_id;
}

int oskr_client_invoke_async(struct oskr_client *c, const void *op,
			     size_t op_len, oskr_client_done_fn done,
			     void *arg)
{
	if (c->busy)
		return -EBUSY;
	c->busy = true;
	c->request_number++;
	c->done = done;
	c->done_arg = arg;
	int rc = c->descriptor->client_invoke(&c->ctx, c->state,
					      c->request_number, op, op_len);
	if (rc < 0) {
		c->busy = false;
		return rc;
	}
	run_tasks(c);
	return 0;
}

static void client_deliver(void *arg, struct oskr_buf *buf,
			   const struct oskr_addr *from, int32_t from_replica)
{
	struct oskr_client *c = arg;
	struct oskr_msg msg = {
		.buf = buf,
		.from = *from,
		.from_replica = from_replica,
	};
	c->descriptor->client_receive(&c->ctx, c->state, &msg);
	oskr__buf_release(buf);
	run_tasks(c);
}

static void fire_timers(struct oskr_client *c, uint64_t now)
{
	for (size_t i = 0; i < c->timer_capacity; i++) {
		struct client_timer *t = &c->timers[i];
		if (t->id == 0 || t->deadline_ns > now)
			continue;
		oskr_task_fn fn = t->fn;
		void *arg = t->arg;
		t->id = 0; /* one-shot; fn may re-arm into this slot */
		fn(&c->ctx, c->state, arg);
		run_tasks(c);
	}
}

static uint64_t next_deadline(struct oskr_client *c)
{
	uint64_t next = UINT64_MAX;
	for (size_t i = 0; i < c->timer_capacity; i++)
		if (c->timers[i].id && c->timers[i].deadline_ns < next)
			next = c->timers[i].deadline_ns;
	return next;
}

#define POLL_MAX_FDS 1024

int oskr_client_poll(struct oskr_client *const *clients, size_t count,
		     int timeout_ms)
{
	if (count > POLL_MAX_FDS)
		return -EINVAL;
	struct pollfd fds[POLL_MAX_FDS];
	uint64_t now = oskr__monotonic_ns();
	uint64_t wake = timeout_ms < 0 ? UINT64_MAX
				       : now + (uint64_t)timeout_ms * 1000000;
	for (size_t i = 0; i < count; i++) {
		clients[i]->completions = 0;
		fds[i].fd = clients[i]->tops->fd(clients[i]->transport);
		fds[i].events = POLLIN;
		fds[i].revents = 0;
		uint64_t deadline = next_deadline(clients[i]);
		if (deadline < wake)
			wake = deadline;
	}
	int wait_ms = 0;
	if (wake > now)
		wait_ms = wake == UINT64_MAX
				  ? -1
				  : (int)((wake - now + 999999) / 1000000);
	/* Transports without a pollable fd (DPDK: no virtual device can wake
	 * a blocked process) are polled in rounds, with a back-off that goes
	 * spin -> yield -> short sleep and resets on traffic. */
	bool any_fdless = false;
	for (size_t i = 0; i < count; i++)
		any_fdless |= fds[i].fd < 0;
	int ready;
	if (!any_fdless) {
		ready = poll(fds, count, wait_ms);
		if (ready < 0 && errno != EINTR)
			return -errno;
	} else {
		unsigned idle_rounds = 0;
		for (;;) {
			ready = poll(fds, count, 0);
			if (ready < 0 && errno != EINTR)
				return -errno;
			int delivered = 0;
			for (size_t i = 0; i < count; i++) {
				struct oskr_client *c = clients[i];
				if (fds[i].fd >= 0)
					continue;
				int got = c->tops->poll(c->transport,
							client_deliver, c, 0);
				if (got > 0)
					delivered += got;
			}
			if (ready > 0 || delivered > 0)
				break;
			if (oskr__monotonic_ns() >= wake)
				break;
			if (++idle_rounds < 256)
				continue;
			if (idle_rounds < 512)
				sched_yield();
			else
				usleep(20);
		}
	}
	int completions = 0;
	now = oskr__monotonic_ns();
	for (size_t i = 0; i < count; i++) {
		struct oskr_client *c = clients[i];
		if (ready > 0 && fds[i].fd >= 0 && (fds[i].revents & POLLIN))
			c->tops->poll(c->transport, client_deliver, c, 0);
		fire_timers(c, now);
		completions += (int)c->completions;
		c->completions = 0;
	}
	return completions;
}

struct sync_result {
	bool done;
	void *result;
	size_t capacity;
	size_t *result_len;
	int rc;
};

static void sync_done(void *arg, uint64_t request_number, const void *result,
		      size_t len)
{
	struct sync_result *s = arg;
	s->done = true;
	if (s->result_len)
		*s->result_len = len;
	if (len > s->capacity) {
		s->rc = -ENOSPC;
		return;
	}
	if (len)
		memcpy(s->result, result, len);
	s->rc = 0;
}

int oskr_client_invoke(struct oskr_client *c, const void *op, size_t op_len,
		       void *result, size_t result_capacity,
		       size_t *result_len, uint64_t timeout_ms)
{
	struct sync_result s = {
		.result = result,
		.capacity = result_capacity,
		.result_len = result_len,
	};
	int rc = oskr_client_invoke_async(c, op, op_len, sync_done, &s);
	if (rc < 0)
		return rc;
	uint64_t deadline = oskr__monotonic_ns() + timeout_ms * 1000000;
	while (!s.done) {
		uint64_t now = oskr__monotonic_ns();
		if (now >= deadline) {
			/* Abandon the request: a late reply is ignored. */
			c->busy = false;
			return -ETIMEDOUT;
		}
		uint64_t left_ms = (deadline - now) / 1000000 + 1;
		rc = oskr_client_poll(&c, 1, left_ms > 100 ? 100 : (int)left_ms);
		if (rc < 0)
			return rc;
	}
	return s.rc;
}
