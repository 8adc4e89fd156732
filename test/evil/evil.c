/* SPDX-License-Identifier: MIT */
/*
 * A test-only Byzantine replica (issue 9 §3, "as a real process"): a
 * plugin that loads the real protocol plugin named by $OSKR_EVIL_TARGET
 * and forwards every callback to it, but hands it a wrapped host table
 * whose send services corrupt outgoing replica-to-replica messages. The
 * replica then runs the honest protocol logic (it signs with its own key,
 * follows views, answers clients) while what reaches the other replicas
 * is forged, truncated, oversized, garbage or replayed. The honest
 * replicas must stay safe and live and count every drop by reason.
 *
 *   oskrd -c CONFIG -i 3 -m build/test/evil/evil.so
 *   with OSKR_EVIL_TARGET=build/plugins/pbft.so   the real plugin (path)
 *        OSKR_EVIL_MODE=forge,replay               comma list (below)
 *        OSKR_EVIL_RATE=1.0                        probability per message
 *        OSKR_EVIL_SEED=N                          PRNG seed (optional)
 *
 * Modes; for each outgoing message to another replica, one of the listed
 * modes is picked uniformly and applied with probability OSKR_EVIL_RATE:
 *   forge       flip one bit in the last 16 bytes (where the signature of
 *               pbft and hotstuff messages lives)
 *   truncate    cut the message to half its length
 *   oversize    pad it with random bytes to 64000 bytes (or max_message)
 *   garbage     replace it with 1..2048 random bytes
 *   replay      send it, and also an earlier message to the same replica
 *               (from a ring of EVIL_RING messages of up to EVIL_RING_MSG
 *               bytes, one in EVIL_RING_SAMPLE of those sent, so it spans
 *               a few hundred messages): old views, old sequence numbers
 *   impersonate accepted but does nothing: on UDP the source address is
 *               the sender's own, and a claimed replica id lives inside
 *               the protocol's format, which this wrapper does not parse
 *               (the sim-transport tests forge claimed ids)
 *   to_clients  also apply the modes to send_to_addr (replies to clients)
 * send_to_all is split into one copy per replica, each mutated on its own
 * draw, so with a rate below 1 the replicas see different messages
 * (equivocation at the byte level). Messages to itself pass unchanged.
 * Every mutation is counted in the evil replica's metrics as
 * "evil_<mode>".
 *
 * The host calls tasks and timers as fn(real_ctx, wrapper_state, arg); the
 * plugin expects fn(wrapped_ctx, target_state, arg), so submit_* and
 * timer_arm go through a small heap trampoline.
 */
#include <oskr/plugin.h>

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVIL_RING 64
/* one sent message in EVIL_RING_SAMPLE is kept: the ring spans old views */
#define EVIL_RING_SAMPLE 4
#define EVIL_RING_MSG 4096
#define EVIL_OVERSIZE 64000
#define EVIL_GARBAGE_MAX 2048

enum evil_mode {
	EVIL_FORGE,
	EVIL_TRUNCATE,
	EVIL_OVERSIZE_MODE,
	EVIL_GARBAGE,
	EVIL_REPLAY,
	EVIL_MODES,
};

static const char *const mode_names[EVIL_MODES] = {
	[EVIL_FORGE] = "forge",		[EVIL_TRUNCATE] = "truncate",
	[EVIL_OVERSIZE_MODE] = "oversize", [EVIL_GARBAGE] = "garbage",
	[EVIL_REPLAY] = "replay",
};

struct evil_ring_entry {
	uint32_t len;
	uint8_t data[EVIL_RING_MSG];
};

struct evil_task;

/* One per wrapped instance. `ctx` must stay the first member: the plugin's
 * ctx pointer is this struct's address. */
struct evil_instance {
	struct oskr_ctx ctx;
	struct oskr_ctx *real;
	struct oskr_host host;
	void *target_state;
	uint32_t replica_id, replica_count, max_message;

	enum evil_mode modes[EVIL_MODES];
	unsigned mode_count;
	bool to_clients;
	uint64_t rate_threshold; /* apply when rand32 < this (2^32 = always) */
	_Atomic uint64_t rng;

	/* replay ring; sends come from any worker thread */
	atomic_flag ring_lock;
	unsigned ring_next, ring_used;
	struct evil_ring_entry ring[EVIL_RING];

	/* armed timers' trampolines (stateful only: no lock) */
	struct evil_task *timers;
};

/* What the host allocates: just a pointer, since the target's state size
 * is known only once the target is loaded. */
struct evil_state {
	struct evil_instance *inst;
};

struct evil_task {
	struct evil_instance *inst;
	oskr_task_fn fn;
	void *arg;
	oskr_timer_id id;
	struct evil_task *next; /* timers only */
};

static void *target_handle;
static const struct oskr_plugin *target;

static struct evil_instance *instance_of(struct oskr_ctx *ctx)
{
	return (struct evil_instance *)ctx;
}

static int load_target(void)
{
	if (target)
		return 0;
	const char *path = getenv("OSKR_EVIL_TARGET");
	if (!path || !path[0]) {
		fprintf(stderr, "evil: set OSKR_EVIL_TARGET to the real "
				"plugin's .so path\n");
		return -EINVAL;
	}
	void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!handle) {
		fprintf(stderr, "evil: cannot load %s: %s\n", path, dlerror());
		return -ENOEXEC;
	}
	const struct oskr_plugin *d = dlsym(handle, OSKR_PLUGIN_SYMBOL);
	if (!d || d->abi_major != OSKR_ABI_MAJOR ||
	    d->abi_minor > OSKR_ABI_MINOR || !d->replica_init ||
	    !d->replica_receive) {
		fprintf(stderr, "evil: %s is not a usable oskr %d.%d plugin\n",
			path, OSKR_ABI_MAJOR, OSKR_ABI_MINOR);
		dlclose(handle);
		return -ENOENT;
	}
	target_handle = handle;
	target = d;
	return 0;
}

__attribute__((destructor)) static void unload_target(void)
{
	if (target_handle)
		dlclose(target_handle);
	target_handle = NULL;
	target = NULL;
}

/* ---- randomness: xorshift64*, lock-free across workers ---- */

static uint32_t evil_rand(struct evil_instance *inst)
{
	uint64_t old = atomic_load_explicit(&inst->rng, memory_order_relaxed);
	uint64_t x;
	do {
		x = old;
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
	} while (!atomic_compare_exchange_weak_explicit(
		&inst->rng, &old, x, memory_order_relaxed,
		memory_order_relaxed));
	return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

static void fill_random(struct evil_instance *inst, uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)evil_rand(inst);
}

/* ---- the mutations ---- */

static void ring_push(struct evil_instance *inst, const struct oskr_buf *buf)
{
	if (buf->len == 0 || buf->len > EVIL_RING_MSG ||
	    evil_rand(inst) % EVIL_RING_SAMPLE)
		return;
	while (atomic_flag_test_and_set_explicit(&inst->ring_lock,
						 memory_order_acquire))
		;
	struct evil_ring_entry *e = &inst->ring[inst->ring_next];
	memcpy(e->data, buf->data, buf->len);
	e->len = buf->len;
	inst->ring_next = (inst->ring_next + 1) % EVIL_RING;
	if (inst->ring_used < EVIL_RING)
		inst->ring_used++;
	atomic_flag_clear_explicit(&inst->ring_lock, memory_order_release);
}

/* A copy of a random earlier message, or NULL when the ring is empty. */
static struct oskr_buf *ring_pick(struct evil_instance *inst)
{
	struct oskr_buf *out;
	if (inst->real->host->buf_alloc(inst->real, EVIL_RING_MSG, &out))
		return NULL;
	while (atomic_flag_test_and_set_explicit(&inst->ring_lock,
						 memory_order_acquire))
		;
	uint32_t len = 0;
	if (inst->ring_used) {
		struct evil_ring_entry *e =
			&inst->ring[evil_rand(inst) % inst->ring_used];
		len = e->len;
		memcpy(out->data, e->data, len);
	}
	atomic_flag_clear_explicit(&inst->ring_lock, memory_order_release);
	if (!len) {
		inst->real->host->buf_release(out);
		return NULL;
	}
	out->len = len;
	return out;
}

static struct oskr_buf *copy_buf(struct evil_instance *inst,
				 const struct oskr_buf *buf, size_t capacity)
{
	struct oskr_buf *out;
	if (capacity < buf->len)
		capacity = buf->len;
	if (capacity == 0)
		capacity = 1;
	if (inst->real->host->buf_alloc(inst->real, capacity, &out))
		return NULL;
	memcpy(out->data, buf->data, buf->len);
	out->len = buf->len;
	return out;
}

/*
 * Decide what to send instead of @p buf (consumed). Returns the buffer to
 * send (possibly @p buf itself) and, for replay, an extra one in *extra.
 * A mutation works on a fresh copy: the plugin may have sent a received
 * (read-only) buffer, or the same buffer more than once with buf_hold.
 */
static struct oskr_buf *mutate(struct evil_instance *inst,
			       struct oskr_buf *buf, struct oskr_buf **extra)
{
	*extra = NULL;
	if (inst->mode_count == 0 ||
	    (uint64_t)evil_rand(inst) >= inst->rate_threshold)
		return buf;
	enum evil_mode mode = inst->modes[evil_rand(inst) % inst->mode_count];
	const struct oskr_host *h = inst->real->host;
	if (mode == EVIL_REPLAY) {
		*extra = ring_pick(inst);
		if (!*extra)
			return buf;
		h->count(inst->real, "evil_replay", 1);
		return buf;
	}
	size_t capacity = buf->len;
	if (mode == EVIL_OVERSIZE_MODE)
		capacity = EVIL_OVERSIZE < inst->max_message ? EVIL_OVERSIZE
							     : inst->max_message;
	else if (mode == EVIL_GARBAGE)
		capacity = EVIL_GARBAGE_MAX < inst->max_message
				   ? EVIL_GARBAGE_MAX
				   : inst->max_message;
	struct oskr_buf *out = copy_buf(inst, buf, capacity);
	if (!out)
		return buf;
	h->buf_release(buf);
	uint32_t r = evil_rand(inst);
	switch (mode) {
	case EVIL_FORGE:
		if (out->len) {
			uint32_t window = out->len < 16 ? out->len : 16;
			out->data[out->len - 1 - r % window] ^=
				(uint8_t)(1u << ((r >> 8) % 8));
		}
		break;
	case EVIL_TRUNCATE:
		out->len /= 2;
		break;
	case EVIL_OVERSIZE_MODE:
		if (out->len < capacity) {
			fill_random(inst, out->data + out->len,
				    capacity - out->len);
			out->len = (uint32_t)capacity;
		}
		break;
	case EVIL_GARBAGE:
		out->len = 1 + r % (uint32_t)capacity;
		fill_random(inst, out->data, out->len);
		break;
	case EVIL_REPLAY:
	case EVIL_MODES:
		break;
	}
	char name[32];
	snprintf(name, sizeof(name), "evil_%s", mode_names[mode]);
	h->count(inst->real, name, 1);
	return out;
}

/* ---- wrapped send services ---- */

static int send_one(struct evil_instance *inst, uint32_t replica_id,
		    struct oskr_buf *buf)
{
	const struct oskr_host *h = inst->real->host;
	if (replica_id == inst->replica_id)
		return h->send_to_replica(inst->real, replica_id, buf);
	ring_push(inst, buf);
	struct oskr_buf *extra;
	buf = mutate(inst, buf, &extra);
	int rc = h->send_to_replica(inst->real, replica_id, buf);
	if (extra)
		h->send_to_replica(inst->real, replica_id, extra);
	return rc;
}

static int evil_send_to_replica(struct oskr_ctx *ctx, uint32_t replica_id,
				struct oskr_buf *buf)
{
	return send_one(instance_of(ctx), replica_id, buf);
}

static int evil_send_to_all(struct oskr_ctx *ctx, struct oskr_buf *buf)
{
	struct evil_instance *inst = instance_of(ctx);
	const struct oskr_host *h = inst->real->host;
	int rc = 0;
	for (uint32_t id = 0; id < inst->replica_count; id++) {
		if (id == inst->replica_id)
			continue;
		struct oskr_buf *copy = copy_buf(inst, buf, buf->len);
		if (!copy) {
			rc = -ENOMEM;
			continue;
		}
		int err = send_one(inst, id, copy);
		if (err && !rc)
			rc = err;
	}
	h->buf_release(buf);
	return rc;
}

static int evil_send_to_addr(struct oskr_ctx *ctx,
			     const struct oskr_addr *addr, struct oskr_buf *buf)
{
	struct evil_instance *inst = instance_of(ctx);
	const struct oskr_host *h = inst->real->host;
	if (!inst->to_clients)
		return h->send_to_addr(inst->real, addr, buf);
	struct oskr_buf *extra;
	buf = mutate(inst, buf, &extra);
	int rc = h->send_to_addr(inst->real, addr, buf);
	if (extra)
		h->send_to_addr(inst->real, addr, extra);
	return rc;
}

/* ---- tasks and timers: give the plugin its own ctx and state ---- */

static void task_trampoline(struct oskr_ctx *real, void *state, void *arg)
{
	struct evil_task *t = arg;
	struct evil_instance *inst = t->inst;
	oskr_task_fn fn = t->fn;
	void *fn_arg = t->arg;
	free(t);
	fn(&inst->ctx, inst->target_state, fn_arg);
}

static void timer_trampoline(struct oskr_ctx *real, void *state, void *arg)
{
	struct evil_task *t = arg;
	struct evil_instance *inst = t->inst;
	for (struct evil_task **p = &inst->timers; *p; p = &(*p)->next) {
		if (*p == t) {
			*p = t->next;
			break;
		}
	}
	task_trampoline(real, state, arg);
}

static struct evil_task *task_new(struct evil_instance *inst, oskr_task_fn fn,
				  void *arg)
{
	struct evil_task *t = calloc(1, sizeof(*t));
	if (t) {
		t->inst = inst;
		t->fn = fn;
		t->arg = arg;
	}
	return t;
}

static int evil_submit_stateless(struct oskr_ctx *ctx, oskr_task_fn fn,
				 void *arg)
{
	struct evil_instance *inst = instance_of(ctx);
	struct evil_task *t = task_new(inst, fn, arg);
	if (!t)
		return -EAGAIN;
	int rc = inst->real->host->submit_stateless(inst->real,
						    task_trampoline, t);
	if (rc)
		free(t);
	return rc;
}

static int evil_submit_stateful(struct oskr_ctx *ctx, oskr_task_fn fn,
				void *arg)
{
	struct evil_instance *inst = instance_of(ctx);
	struct evil_task *t = task_new(inst, fn, arg);
	if (!t)
		return -EAGAIN;
	int rc = inst->real->host->submit_stateful(inst->real,
						   task_trampoline, t);
	if (rc)
		free(t);
	return rc;
}

static int evil_timer_arm(struct oskr_ctx *ctx, uint64_t delay_ns,
			  oskr_task_fn fn, void *arg, oskr_timer_id *out)
{
	struct evil_instance *inst = instance_of(ctx);
	struct evil_task *t = task_new(inst, fn, arg);
	if (!t)
		return -ENOMEM;
	int rc = inst->real->host->timer_arm(inst->real, delay_ns,
					     timer_trampoline, t, &t->id);
	if (rc) {
		free(t);
		return rc;
	}
	/* stateful: the timer cannot fire before this task ends */
	t->next = inst->timers;
	inst->timers = t;
	*out = t->id;
	return 0;
}

static int evil_timer_cancel(struct oskr_ctx *ctx, oskr_timer_id timer)
{
	struct evil_instance *inst = instance_of(ctx);
	int rc = inst->real->host->timer_cancel(inst->real, timer);
	if (rc)
		return rc;
	for (struct evil_task **p = &inst->timers; *p; p = &(*p)->next) {
		if ((*p)->id == timer) {
			struct evil_task *t = *p;
			*p = t->next;
			free(t);
			break;
		}
	}
	return 0;
}

/* ---- every other service: forward with the real ctx ---- */

static const struct oskr_instance_info *evil_info(struct oskr_ctx *ctx)
{
	struct evil_instance *inst = instance_of(ctx);
	return inst->real->host->info(inst->real);
}

static int evil_buf_alloc(struct oskr_ctx *ctx, size_t capacity,
			  struct oskr_buf **out)
{
	struct evil_instance *inst = instance_of(ctx);
	return inst->real->host->buf_alloc(inst->real, capacity, out);
}

static size_t evil_signature_size(struct oskr_ctx *ctx)
{
	struct evil_instance *inst = instance_of(ctx);
	return inst->real->host->signature_size(inst->real);
}

static int evil_sign(struct oskr_ctx *ctx, const void *data, size_t len,
		     uint8_t *sig, size_t *sig_len)
{
	struct evil_instance *inst = instance_of(ctx);
	return inst->real->host->sign(inst->real, data, len, sig, sig_len);
}

static bool evil_verify(struct oskr_ctx *ctx, uint32_t replica_id,
			const void *data, size_t len, const uint8_t *sig,
			size_t sig_len)
{
	struct evil_instance *inst = instance_of(ctx);
	return inst->real->host->verify(inst->real, replica_id, data, len, sig,
					sig_len);
}

static void evil_digest(struct oskr_ctx *ctx, const void *data, size_t len,
			uint8_t out[OSKR_DIGEST_SIZE])
{
	struct evil_instance *inst = instance_of(ctx);
	inst->real->host->digest(inst->real, data, len, out);
}

static uint64_t evil_now_ns(struct oskr_ctx *ctx)
{
	struct evil_instance *inst = instance_of(ctx);
	return inst->real->host->now_ns(inst->real);
}

static int evil_app_execute(struct oskr_ctx *ctx, const void *op,
			    size_t op_len, void *result,
			    size_t result_capacity, size_t *result_len)
{
	struct evil_instance *inst = instance_of(ctx);
	return inst->real->host->app_execute(inst->real, op, op_len, result,
					     result_capacity, result_len);
}

static int evil_app_snapshot(struct oskr_ctx *ctx, void **out,
			     size_t *out_len)
{
	struct evil_instance *inst = instance_of(ctx);
	return inst->real->host->app_snapshot(inst->real, out, out_len);
}

static int evil_app_restore(struct oskr_ctx *ctx, const void *snapshot,
			    size_t len)
{
	struct evil_instance *inst = instance_of(ctx);
	return inst->real->host->app_restore(inst->real, snapshot, len);
}

static void evil_blob_free(struct oskr_ctx *ctx, void *blob)
{
	struct evil_instance *inst = instance_of(ctx);
	inst->real->host->blob_free(inst->real, blob);
}

static int evil_client_complete(struct oskr_ctx *ctx, uint64_t request_number,
				const void *result, size_t len)
{
	struct evil_instance *inst = instance_of(ctx);
	return inst->real->host->client_complete(inst->real, request_number,
						 result, len);
}

static const struct oskr_conf *evil_conf(struct oskr_ctx *ctx)
{
	struct evil_instance *inst = instance_of(ctx);
	return inst->real->host->conf(inst->real);
}

OSKR_PRINTF(3, 4)
static void evil_log(struct oskr_ctx *ctx, enum oskr_log_level level,
		     const char *fmt, ...)
{
	struct evil_instance *inst = instance_of(ctx);
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	inst->real->host->log(inst->real, level, "%s", line);
}

static void evil_count(struct oskr_ctx *ctx, const char *name, uint64_t delta)
{
	struct evil_instance *inst = instance_of(ctx);
	inst->real->host->count(inst->real, name, delta);
}

static void evil_set_status(struct oskr_ctx *ctx, uint64_t view,
			    int32_t leader, uint64_t committed,
			    uint64_t executed)
{
	struct evil_instance *inst = instance_of(ctx);
	inst->real->host->set_status(inst->real, view, leader, committed,
				     executed);
}

/* ABI 1.1 services: forwarded only when the real host has them (the
 * wrapper's table is cut to the real one's size below). */
static int evil_checkpoint_stable(struct oskr_ctx *ctx, uint64_t op_number,
				  const void *app, size_t app_len,
				  const void *protocol_state,
				  size_t protocol_len)
{
	struct evil_instance *inst = instance_of(ctx);
	return inst->real->host->checkpoint_stable(inst->real, op_number, app,
						   app_len, protocol_state,
						   protocol_len);
}

static int evil_checkpoint_resume(struct oskr_ctx *ctx, uint64_t *op_number,
				  const void **protocol_state,
				  size_t *protocol_len)
{
	struct evil_instance *inst = instance_of(ctx);
	return inst->real->host->checkpoint_resume(inst->real, op_number,
						   protocol_state,
						   protocol_len);
}

/* ---- set-up ---- */

static int parse_modes(struct evil_instance *inst, const char *list)
{
	char copy[256];
	snprintf(copy, sizeof(copy), "%s", list);
	char *saveptr = NULL;
	for (char *tok = strtok_r(copy, ",", &saveptr); tok;
	     tok = strtok_r(NULL, ",", &saveptr)) {
		if (strcmp(tok, "impersonate") == 0) {
			inst->host.log(&inst->ctx, OSKR_LOG_WARN,
				       "evil: 'impersonate' does nothing on a "
				       "real transport (the source address is "
				       "this replica's own)");
			continue;
		}
		if (strcmp(tok, "to_clients") == 0) {
			inst->to_clients = true;
			continue;
		}
		unsigned m;
		for (m = 0; m < EVIL_MODES; m++)
			if (strcmp(tok, mode_names[m]) == 0)
				break;
		if (m == EVIL_MODES) {
			inst->host.log(&inst->ctx, OSKR_LOG_ERROR,
				       "evil: unknown mode '%s' in "
				       "OSKR_EVIL_MODE",
				       tok);
			return -EINVAL;
		}
		inst->modes[inst->mode_count++] = (enum evil_mode)m;
		if (inst->mode_count == EVIL_MODES)
			break;
	}
	return 0;
}

static int parse_rate(struct evil_instance *inst, const char *text)
{
	char *end;
	double rate = strtod(text, &end);
	if (end == text || *end || !(rate >= 0.0 && rate <= 1.0)) {
		inst->host.log(&inst->ctx, OSKR_LOG_ERROR,
			       "evil: OSKR_EVIL_RATE '%s' is not in [0, 1]",
			       text);
		return -EINVAL;
	}
	inst->rate_threshold = (uint64_t)(rate * 4294967296.0);
	return 0;
}

static void wrap_host(struct evil_instance *inst, struct oskr_ctx *real)
{
	const struct oskr_host *h = real->host;
	size_t size = h->size < sizeof(inst->host) ? h->size
						   : sizeof(inst->host);
	memcpy(&inst->host, h, size);
	inst->host.size = (uint32_t)size;
	inst->host.info = evil_info;
	inst->host.buf_alloc = evil_buf_alloc;
	inst->host.send_to_replica = evil_send_to_replica;
	inst->host.send_to_all = evil_send_to_all;
	inst->host.send_to_addr = evil_send_to_addr;
	inst->host.signature_size = evil_signature_size;
	inst->host.sign = evil_sign;
	inst->host.verify = evil_verify;
	inst->host.digest = evil_digest;
	inst->host.submit_stateless = evil_submit_stateless;
	inst->host.submit_stateful = evil_submit_stateful;
	inst->host.timer_arm = evil_timer_arm;
	inst->host.timer_cancel = evil_timer_cancel;
	inst->host.now_ns = evil_now_ns;
	inst->host.app_execute = evil_app_execute;
	inst->host.app_snapshot = evil_app_snapshot;
	inst->host.app_restore = evil_app_restore;
	inst->host.blob_free = evil_blob_free;
	inst->host.client_complete = evil_client_complete;
	inst->host.conf = evil_conf;
	inst->host.log = evil_log;
	inst->host.count = evil_count;
	inst->host.set_status = evil_set_status;
	/* Every service that takes a ctx must be wrapped: a copied pointer
	 * would get the wrapper's ctx, which the real host cannot read. */
	if (OSKR_HOST_HAS(h, checkpoint_stable))
		inst->host.checkpoint_stable = evil_checkpoint_stable;
	if (OSKR_HOST_HAS(h, checkpoint_resume))
		inst->host.checkpoint_resume = evil_checkpoint_resume;
	/* buf_hold, buf_release and conf_* take no ctx: copied as they are */
	inst->ctx.host = &inst->host;
	inst->real = real;
}

static void instance_free(struct evil_instance *inst)
{
	while (inst->timers) {
		struct evil_task *t = inst->timers;
		inst->timers = t->next;
		free(t);
	}
	free(inst->target_state);
	free(inst);
}

static int evil_replica_init(struct oskr_ctx *ctx, void *state)
{
	struct evil_state *s = state;
	int rc = load_target();
	if (rc)
		return rc;
	struct evil_instance *inst = calloc(1, sizeof(*inst));
	if (!inst)
		return -ENOMEM;
	wrap_host(inst, ctx);
	atomic_flag_clear(&inst->ring_lock);
	const struct oskr_instance_info *info = ctx->host->info(ctx);
	inst->replica_id = (uint32_t)info->replica_id;
	inst->replica_count = info->replica_count;
	inst->max_message = info->max_message;
	inst->target_state = calloc(1, target->replica_state_size
					       ? target->replica_state_size
					       : 1);
	if (!inst->target_state) {
		rc = -ENOMEM;
		goto err_free;
	}

	const char *modes = getenv("OSKR_EVIL_MODE");
	const char *rate = getenv("OSKR_EVIL_RATE");
	const char *seed = getenv("OSKR_EVIL_SEED");
	inst->rate_threshold = 1ULL << 32;
	rc = parse_modes(inst, modes ? modes : "forge");
	if (rc)
		goto err_free;
	if (rate && rate[0]) {
		rc = parse_rate(inst, rate);
		if (rc)
			goto err_free;
	}
	uint64_t seed_value = seed && seed[0] ? strtoull(seed, NULL, 0)
					      : 0x9E3779B97F4A7C15ULL;
	seed_value ^= (uint64_t)inst->replica_id << 32;
	atomic_init(&inst->rng, seed_value ? seed_value : 1);

	ctx->host->log(ctx, OSKR_LOG_WARN,
		       "evil: Byzantine wrapper around %s %s: modes '%s', rate "
		       "%s%s",
		       target->name, target->version, modes ? modes : "forge",
		       rate && rate[0] ? rate : "1.0",
		       inst->to_clients ? ", replies to clients too" : "");
	s->inst = inst;
	rc = target->replica_init(&inst->ctx, inst->target_state);
	if (rc) {
		s->inst = NULL;
		goto err_free;
	}
	return 0;

err_free:
	instance_free(inst);
	return rc;
}

static void evil_replica_receive(struct oskr_ctx *ctx, void *state,
				 const struct oskr_msg *msg)
{
	struct evil_state *s = state;
	target->replica_receive(&s->inst->ctx, s->inst->target_state, msg);
}

static void evil_replica_fini(struct oskr_ctx *ctx, void *state)
{
	struct evil_state *s = state;
	if (!s->inst)
		return;
	if (target->replica_fini)
		target->replica_fini(&s->inst->ctx, s->inst->target_state);
	instance_free(s->inst);
	s->inst = NULL;
}

static int evil_config_check(const struct oskr_host *host,
			     const struct oskr_conf *conf,
			     uint32_t replica_count, uint32_t fault_count)
{
	int rc = load_target();
	if (rc)
		return rc;
	if (!target->config_check)
		return 0;
	return target->config_check(host, conf, replica_count, fault_count);
}

OSKR_PLUGIN_EXPORT = {
	OSKR_PLUGIN_HEADER,
	.name = "evil",
	.version = "0.1.0",
	.description = "test only: Byzantine wrapper around $OSKR_EVIL_TARGET",
	.replica_state_size = sizeof(struct evil_state),
	.client_state_size = 0,
	.config_check = evil_config_check,
	.replica_init = evil_replica_init,
	.replica_receive = evil_replica_receive,
	.replica_fini = evil_replica_fini,
};
