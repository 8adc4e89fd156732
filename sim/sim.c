/* SPDX-License-Identifier: MIT */
/*
 * The oskr sim: one thread, virtual time, one seeded PRNG.
 *
 * Everything that happens is an event in one min-heap ordered by
 * (virtual time, sequence number): a message delivery, a stateless task,
 * the next stateful task of an instance, a timer. Events run to completion
 * one at a time, so the only nondeterminism a real host has — delays,
 * losses and the interleaving of tasks on workers — is drawn from the PRNG
 * and a failing run replays exactly from its seed.
 *
 * How the stage model maps onto events:
 *  - a stateless task is an event: replica_receive runs when its message
 *    is delivered (after the random network delay), submit_stateless at
 *    now + a random 0-2 µs jitter, so different seeds interleave stateless
 *    and stateful work differently;
 *  - stateful tasks of an instance wait in a FIFO; one "drain" event at a
 *    time (again at now + jitter) runs the head, so order is strictly FIFO;
 *  - a timer is an event at its deadline that runs its callback as a
 *    stateful task if the timer is still armed (timer_cancel removes it
 *    from the instance's armed set, so a cancelled timer never fires).
 *
 * Messages: every delivery gets its own fresh buffer (a copy per
 * destination and per duplicate), borrowed by the receive callback; the sim
 * drops its reference when the callback returns. The sim tracks every live
 * buffer so leaks are visible (oskr_sim_live_buffers) and so destroy can
 * free buffers a crashed instance still referenced.
 *
 * Crashes discard the instance's queued events: buffers of discarded
 * deliveries are released, but the `arg` of a discarded task is lost, as
 * in a real crash (the sim cannot know how to free it; a held buffer as
 * the arg is freed at destroy). Lost args are kept reachable for the life
 * of the process (keep_lost_arg), so that LeakSanitizer (make
 * test-sanitize) reports what a plugin itself leaked, not what the sim
 * dropped. A restart keeps the instance's counters
 * (they are the test's observations) and resets its execution record.
 *
 * Loopback (a replica sending to itself) goes through the filter but is
 * never dropped, duplicated or partitioned: it is local delivery.
 *
 * Durable checkpoints (ABI 1.1): checkpoint_stable keeps a copy of the
 * latest declared checkpoint per replica — its "disk", which crashes and
 * restarts do not touch. oskr_sim_restart_from_checkpoint restores the
 * fresh application from it (through the same path as app_restore, so the
 * safety record continues from the checkpoint's position) and lets
 * checkpoint_resume hand its op number and protocol state to replica_init.
 * checkpoint_resume outside replica_init and an app blob that is not an
 * app_snapshot blob are misuse (below).
 *
 * Services the SDK marks "stateful only" (timer_arm/cancel, app_*,
 * client_complete, checkpoint_stable) are refused with -EPERM, logged
 * and counted as "sim_misuse" when called from a stateless task: on one
 * thread such a call would work here and race in oskrd.
 */
#include "sim.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "apps/app.h"
#include "daemon/buf.h"
#include "daemon/config.h"
#include "daemon/log.h"

#include "sim_internal.h"

/* ---- PRNG: xoshiro256** seeded through splitmix64 ---- */

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void prng_seed(struct sim_prng *prng, uint64_t seed)
{
	uint64_t state = seed;
	for (int i = 0; i < 4; i++)
		prng->s[i] = splitmix64(&state);
}

static inline uint64_t rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t prng_next(struct sim_prng *prng)
{
	uint64_t *s = prng->s;
	uint64_t result = rotl64(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return result;
}

/* Uniform in [lo, hi]. */
static uint64_t prng_range(struct sim_prng *prng, uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return lo;
	uint64_t span = hi - lo + 1;
	if (span == 0) /* the whole u64 range */
		return prng_next(prng);
	return lo + prng_next(prng) % span;
}

/* True with probability @p p. No draw for p <= 0, so adding a zero-rate
 * fault does not shift the random sequence. */
static bool prng_chance(struct sim_prng *prng, double p)
{
	if (p <= 0)
		return false;
	if (p >= 1)
		return true;
	return (double)(prng_next(prng) >> 11) * 0x1.0p-53 < p;
}

/* ---- small tables ---- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

/* Open-addressing set of nonzero u64 (armed timer ids), linear probing
 * with backward-shift deletion. */
static bool id_set_contains(const struct sim_id_set *set, uint64_t id)
{
	if (!set->capacity)
		return false;
	size_t mask = set->capacity - 1;
	for (size_t i = mix64(id) & mask;; i = (i + 1) & mask) {
		if (set->slots[i] == id)
			return true;
		if (set->slots[i] == 0)
			return false;
	}
}

static int id_set_insert(struct sim_id_set *set, uint64_t id)
{
	if ((set->count + 1) * 2 > set->capacity) {
		size_t capacity = set->capacity ? set->capacity * 2 : 16;
		uint64_t *slots = calloc(capacity, sizeof(*slots));
		if (!slots)
			return -ENOMEM;
		for (size_t i = 0; i < set->capacity; i++) {
			uint64_t old = set->slots[i];
			if (!old)
				continue;
			size_t j = mix64(old) & (capacity - 1);
			while (slots[j])
				j = (j + 1) & (capacity - 1);
			slots[j] = old;
		}
		free(set->slots);
		set->slots = slots;
		set->capacity = capacity;
	}
	size_t mask = set->capacity - 1;
	size_t i = mix64(id) & mask;
	while (set->slots[i])
		i = (i + 1) & mask;
	set->slots[i] = id;
	set->count++;
	return 0;
}

static bool id_set_remove(struct sim_id_set *set, uint64_t id)
{
	if (!set->capacity)
		return false;
	size_t mask = set->capacity - 1;
	size_t i = mix64(id) & mask;
	while (set->slots[i] != id) {
		if (set->slots[i] == 0)
			return false;
		i = (i + 1) & mask;
	}
	/* Backward shift: pull later members of the probe run into the hole
	 * unless their home slot lies cyclically in (hole, j]. */
	size_t j = i;
	for (;;) {
		j = (j + 1) & mask;
		uint64_t moved = set->slots[j];
		if (!moved)
			break;
		size_t home = mix64(moved) & mask;
		bool stays = i <= j ? (i < home && home <= j)
				    : (i < home || home <= j);
		if (!stays) {
			set->slots[i] = moved;
			i = j;
		}
	}
	set->slots[i] = 0;
	set->count--;
	return true;
}

static void id_set_clear(struct sim_id_set *set)
{
	free(set->slots);
	set->slots = NULL;
	set->capacity = 0;
	set->count = 0;
}

/* Counters: few names per instance, looked up by a precomputed hash. */
static uint32_t name_hash(const char *name)
{
	uint32_t h = 2166136261u;
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h;
}

static struct sim_counter *counter_find(struct sim_node *node,
					const char *name, bool create)
{
	uint32_t hash = name_hash(name);
	for (size_t i = 0; i < node->counter_count; i++) {
		struct sim_counter *c = &node->counters[i];
		if (c->hash == hash && strcmp(c->name, name) == 0)
			return c;
	}
	if (!create || node->counter_count == SIM_MAX_COUNTERS)
		return NULL;
	size_t name_len = strlen(name);
	if (name_len >= sizeof(node->counters[0].name))
		return NULL;
	struct sim_counter *c = &node->counters[node->counter_count++];
	c->hash = hash;
	memcpy(c->name, name, name_len + 1);
	c->value = 0;
	return c;
}

/* ---- buffers ---- */

static void sim_buf_free(struct oskr__buf *base)
{
	struct sim_buf *buf = (struct sim_buf *)base;
	struct oskr_sim *sim = buf->sim;
	if (buf->prev)
		buf->prev->next = buf->next;
	else
		sim->live_buf_head = buf->next;
	if (buf->next)
		buf->next->prev = buf->prev;
	sim->live_buffers--;
	free(buf);
}

/* A heap buffer with buf.h's reference counting (oskr__buf_hold/release
 * drive it) and a free hook that keeps the sim's list of live buffers. */
static struct oskr_buf *sim_buf_alloc(struct oskr_sim *sim, size_t capacity)
{
	if (capacity > UINT32_MAX)
		return NULL;
	struct sim_buf *buf = malloc(sizeof(*buf) + capacity);
	if (!buf)
		return NULL;
	buf->base.pub.data = buf->data;
	buf->base.pub.len = (uint32_t)capacity;
	buf->base.pub.capacity = (uint32_t)capacity;
	atomic_init(&buf->base.refs, 1);
	buf->base.free_fn = sim_buf_free;
	buf->base.owner = sim;
	buf->sim = sim;
	buf->prev = NULL;
	buf->next = sim->live_buf_head;
	if (buf->next)
		buf->next->prev = buf;
	sim->live_buf_head = buf;
	sim->live_buffers++;
	return &buf->base.pub;
}

/* ---- the event heap ---- */

static bool event_before(const struct sim_event *a, const struct sim_event *b)
{
	if (a->time != b->time)
		return a->time < b->time;
	return a->seq < b->seq;
}

static void heap_sift_down(struct oskr_sim *sim, size_t i)
{
	struct sim_event *h = sim->heap;
	size_t n = sim->heap_count;
	struct sim_event moving = h[i];
	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= n)
			break;
		if (child + 1 < n && event_before(&h[child + 1], &h[child]))
			child++;
		if (!event_before(&h[child], &moving))
			break;
		h[i] = h[child];
		i = child;
	}
	h[i] = moving;
}

static int heap_push(struct oskr_sim *sim, struct sim_event *event)
{
	if (sim->heap_count == sim->heap_capacity) {
		size_t capacity = sim->heap_capacity ? sim->heap_capacity * 2
						     : 1024;
		struct sim_event *heap =
			realloc(sim->heap, capacity * sizeof(*heap));
		if (!heap)
			return -ENOMEM;
		sim->heap = heap;
		sim->heap_capacity = capacity;
	}
	event->seq = sim->next_seq++;
	size_t i = sim->heap_count++;
	struct sim_event *h = sim->heap;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!event_before(event, &h[parent]))
			break;
		h[i] = h[parent];
		i = parent;
	}
	h[i] = *event;
	return 0;
}

static void heap_pop(struct oskr_sim *sim, struct sim_event *out)
{
	*out = sim->heap[0];
	sim->heap[0] = sim->heap[--sim->heap_count];
	if (sim->heap_count)
		heap_sift_down(sim, 0);
}

/* Give back what a discarded event owns (a delivery's buffer). */
/* The args of tasks a crash (or destroy) discarded without running them.
 * A real crash takes the process's memory along; here the process goes
 * on, so the pointers stay reachable from this global until exit and
 * LeakSanitizer does not blame the plugin for what the sim dropped. Never
 * freed, by design: a handful per crash, in test processes only. */
static pthread_mutex_t lost_args_lock = PTHREAD_MUTEX_INITIALIZER;
static void **lost_args;
static size_t lost_arg_count, lost_arg_capacity;

static void keep_lost_arg(void *arg)
{
	if (!arg)
		return;
	pthread_mutex_lock(&lost_args_lock);
	if (lost_arg_count == lost_arg_capacity) {
		size_t capacity = lost_arg_capacity ? 2 * lost_arg_capacity : 64;
		void **grown = realloc(lost_args, capacity * sizeof(*grown));
		if (!grown)
			goto out; /* then it merely shows up as a leak */
		lost_args = grown;
		lost_arg_capacity = capacity;
	}
	lost_args[lost_arg_count++] = arg;
out:
	pthread_mutex_unlock(&lost_args_lock);
}

static void event_discard(struct oskr_sim *sim, struct sim_event *event)
{
	if (event->kind == SIM_EV_DELIVER)
		oskr__buf_release(event->deliver.buf);
	if (event->kind == SIM_EV_STATELESS) {
		sim->nodes[event->node].stateless_pending--;
		keep_lost_arg(event->task.arg);
	}
}

/* Remove every queued event of one instance (a crash). */
static void heap_purge_node(struct oskr_sim *sim, uint32_t node_index)
{
	size_t kept = 0;
	for (size_t i = 0; i < sim->heap_count; i++) {
		struct sim_event *event = &sim->heap[i];
		if (event->node == node_index)
			event_discard(sim, event);
		else
			sim->heap[kept++] = *event;
	}
	sim->heap_count = kept;
	for (size_t i = kept / 2; i-- > 0;)
		heap_sift_down(sim, i);
}

/* Cancelled timers stay in the heap until their deadline. A plugin that
 * arms and cancels a long timer per request would pile them up, so once
 * they are the majority of a large heap, sweep them out. */
static void heap_compact_cancelled(struct oskr_sim *sim)
{
	size_t kept = 0;
	for (size_t i = 0; i < sim->heap_count; i++) {
		struct sim_event *event = &sim->heap[i];
		if (event->kind == SIM_EV_TIMER &&
		    !id_set_contains(&sim->nodes[event->node].timers,
				     event->timer.id))
			continue;
		sim->heap[kept++] = *event;
	}
	sim->heap_count = kept;
	for (size_t i = kept / 2; i-- > 0;)
		heap_sift_down(sim, i);
	sim->cancelled_in_heap = 0;
}

/* ---- instances ---- */

static inline struct sim_node *node_of(struct oskr_ctx *ctx)
{
	return (struct sim_node *)ctx;
}

static uint64_t jitter(struct oskr_sim *sim)
{
	return prng_range(&sim->prng, 0, SIM_TASK_JITTER_NS);
}

struct sim_node *oskr__sim_node(struct oskr_sim *sim, int32_t node_id)
{
	if (OSKR_SIM_IS_CLIENT(node_id)) {
		uint32_t k = OSKR_SIM_CLIENT_INDEX(node_id);
		if (k >= sim->client_count)
			return NULL;
		return &sim->nodes[sim->replica_count + k];
	}
	if ((uint32_t)node_id >= sim->replica_count)
		return NULL;
	return &sim->nodes[node_id];
}

/* Run @p fn as the instance's code in the given stage context, so that
 * stateful-only services can tell when they are misused. */
struct sim_running {
	struct sim_node *node;
	bool stateful;
};

static struct sim_running enter(struct sim_node *node, bool stateful)
{
	struct oskr_sim *sim = node->sim;
	struct sim_running saved = { sim->running, sim->running_stateful };
	sim->running = node;
	sim->running_stateful = stateful;
	return saved;
}

static void leave(struct sim_node *node, struct sim_running saved)
{
	node->sim->running = saved.node;
	node->sim->running_stateful = saved.stateful;
}

static int schedule(struct oskr_sim *sim, struct sim_event *event)
{
	int ret = heap_push(sim, event);
	if (ret)
		fprintf(stderr, "sim: out of memory queueing an event\n");
	return ret;
}

static void schedule_drain(struct sim_node *node)
{
	if (node->drain_scheduled || node->fifo_count == 0)
		return;
	struct oskr_sim *sim = node->sim;
	struct sim_event event = {
		.time = sim->now + jitter(sim),
		.kind = SIM_EV_STATEFUL,
		.node = node->index,
	};
	if (schedule(sim, &event) == 0)
		node->drain_scheduled = true;
}

static void fifo_clear(struct sim_node *node)
{
	for (size_t i = 0; i < node->fifo_count; i++)
		keep_lost_arg(node->fifo[(node->fifo_head + i) %
					 node->fifo_capacity].arg);
	free(node->fifo);
	node->fifo = NULL;
	node->fifo_capacity = node->fifo_head = node->fifo_count = 0;
}

static int fifo_push(struct sim_node *node, oskr_task_fn fn, void *arg)
{
	if (node->fifo_count == SIM_QUEUE_LIMIT)
		return -EAGAIN; /* like a full stage ring in oskrd */
	if (node->fifo_count == node->fifo_capacity) {
		size_t capacity = node->fifo_capacity ? node->fifo_capacity * 2
						      : 64;
		struct sim_task *fifo = malloc(capacity * sizeof(*fifo));
		if (!fifo)
			return -EAGAIN;
		for (size_t i = 0; i < node->fifo_count; i++)
			fifo[i] = node->fifo[(node->fifo_head + i) %
					     node->fifo_capacity];
		free(node->fifo);
		node->fifo = fifo;
		node->fifo_capacity = capacity;
		node->fifo_head = 0;
	}
	size_t tail = (node->fifo_head + node->fifo_count) % node->fifo_capacity;
	node->fifo[tail].fn = fn;
	node->fifo[tail].arg = arg;
	node->fifo_count++;
	return 0;
}

/* ---- the network ---- */

static void addr_encode(int32_t node_id, struct oskr_addr *addr)
{
	memset(addr, 0, sizeof(*addr));
	memcpy(addr->bytes, "SIM", 3);
	uint32_t index;
	if (OSKR_SIM_IS_CLIENT(node_id)) {
		addr->bytes[3] = 'c';
		index = OSKR_SIM_CLIENT_INDEX(node_id);
	} else {
		addr->bytes[3] = 'r';
		index = (uint32_t)node_id;
	}
	for (int i = 0; i < 4; i++)
		addr->bytes[4 + i] = (uint8_t)(index >> (8 * i));
}

static bool addr_decode(struct oskr_sim *sim, const struct oskr_addr *addr,
			int32_t *node_id)
{
	if (memcmp(addr->bytes, "SIM", 3) != 0)
		return false;
	for (size_t i = 8; i < sizeof(addr->bytes); i++)
		if (addr->bytes[i])
			return false;
	uint32_t index = 0;
	for (int i = 0; i < 4; i++)
		index |= (uint32_t)addr->bytes[4 + i] << (8 * i);
	if (addr->bytes[3] == 'c' && index < sim->client_count) {
		*node_id = OSKR_SIM_CLIENT(index);
		return true;
	}
	if (addr->bytes[3] == 'r' && index < sim->replica_count) {
		*node_id = (int32_t)index;
		return true;
	}
	return false;
}

static bool partitioned(struct oskr_sim *sim, int32_t src, int32_t dst)
{
	if (!sim->partition_active)
		return false;
	bool src_client = OSKR_SIM_IS_CLIENT(src);
	bool dst_client = OSKR_SIM_IS_CLIENT(dst);
	if (src_client && dst_client)
		return false;
	if (src_client || dst_client) {
		int32_t replica = src_client ? dst : src;
		return sim->partition_isolate_clients &&
		       !((sim->partition_mask >> replica) & 1);
	}
	return ((sim->partition_mask >> src) & 1) !=
	       ((sim->partition_mask >> dst) & 1);
}

static int schedule_delivery(struct oskr_sim *sim, int32_t src, int32_t dst,
			     const uint8_t *data, uint32_t len)
{
	struct oskr_buf *buf = sim_buf_alloc(sim, len);
	if (!buf)
		return -ENOMEM;
	if (len)
		memcpy(buf->data, data, len);
	struct sim_node *target = oskr__sim_node(sim, dst);
	struct sim_event event = {
		.time = sim->now + prng_range(&sim->prng, sim->min_delay_ns,
					      sim->max_delay_ns),
		.kind = SIM_EV_DELIVER,
		.node = target->index,
		.deliver = { .buf = buf, .src = src },
	};
	int ret = schedule(sim, &event);
	if (ret)
		oskr__buf_release(buf);
	return ret;
}

/* One message from @p src to @p dst: filter, then the faults. */
static void net_send_one(struct oskr_sim *sim, int32_t src, int32_t dst,
			 const uint8_t *data, uint32_t len)
{
	sim->net.sent++;
	if (sim->filter) {
		/* The filter edits a scratch copy that may grow up to
		 * max_message; the delivery then copies what it left. */
		memcpy(sim->scratch, data, len);
		uint32_t new_len = len;
		if (!sim->filter(sim->filter_arg, src, dst, sim->scratch,
				 &new_len, sim->max_message)) {
			sim->net.dropped++;
			return;
		}
		if (new_len > sim->max_message)
			new_len = sim->max_message;
		data = sim->scratch;
		len = new_len;
	}
	struct sim_node *target = oskr__sim_node(sim, dst);
	if (target->crashed) {
		sim->net.dropped++;
		return;
	}
	unsigned copies = 1;
	if (src != dst) {
		/* Loopback is local delivery: never lost, duplicated or cut
		 * off by a partition. */
		if (partitioned(sim, src, dst) ||
		    prng_chance(&sim->prng, sim->drop_rate)) {
			sim->net.dropped++;
			return;
		}
		if (prng_chance(&sim->prng, sim->duplicate_rate)) {
			sim->net.duplicated++;
			copies = 2;
		}
	}
	for (unsigned i = 0; i < copies; i++)
		if (schedule_delivery(sim, src, dst, data, len))
			sim->net.dropped++;
}

/* Common checks of every send_*: the buffer is consumed in all cases. */
static int send_prepare(struct sim_node *node, struct oskr_buf *buf)
{
	if (!buf)
		return -EINVAL;
	if (buf->len > buf->capacity)
		return -EINVAL;
	if (buf->len > node->sim->max_message)
		return -EMSGSIZE;
	return 0;
}

static int host_send_to_replica(struct oskr_ctx *ctx, uint32_t replica_id,
				struct oskr_buf *buf)
{
	struct sim_node *node = node_of(ctx);
	struct oskr_sim *sim = node->sim;
	int ret = send_prepare(node, buf);
	if (ret == 0 && replica_id >= sim->replica_count)
		ret = -EINVAL;
	if (ret == 0 && !node->crashed)
		net_send_one(sim, node->id, (int32_t)replica_id, buf->data,
			     buf->len);
	oskr__buf_release(buf);
	return ret;
}

static int host_send_to_all(struct oskr_ctx *ctx, struct oskr_buf *buf)
{
	struct sim_node *node = node_of(ctx);
	struct oskr_sim *sim = node->sim;
	int ret = send_prepare(node, buf);
	if (ret == 0 && !node->crashed) {
		for (uint32_t r = 0; r < sim->replica_count; r++)
			if ((int32_t)r != node->id)
				net_send_one(sim, node->id, (int32_t)r,
					     buf->data, buf->len);
	}
	oskr__buf_release(buf);
	return ret;
}

static int host_send_to_addr(struct oskr_ctx *ctx,
			     const struct oskr_addr *addr,
			     struct oskr_buf *buf)
{
	struct sim_node *node = node_of(ctx);
	struct oskr_sim *sim = node->sim;
	int32_t dst = 0;
	int ret = send_prepare(node, buf);
	if (ret == 0 && (!addr || !addr_decode(sim, addr, &dst)))
		ret = -EINVAL;
	if (ret == 0 && !node->crashed)
		net_send_one(sim, node->id, dst, buf->data, buf->len);
	oskr__buf_release(buf);
	return ret;
}

/* ---- host services ---- */

static const struct oskr_instance_info *host_info(struct oskr_ctx *ctx)
{
	return &node_of(ctx)->info;
}

static int host_buf_alloc(struct oskr_ctx *ctx, size_t capacity,
			  struct oskr_buf **out)
{
	struct sim_node *node = node_of(ctx);
	if (capacity > node->sim->max_message)
		return -EMSGSIZE;
	struct oskr_buf *buf = sim_buf_alloc(node->sim, capacity);
	if (!buf)
		return -ENOMEM;
	*out = buf;
	return 0;
}

/* Stateful-only services check that they run inside a stateful task of
 * their own instance: the sim runs everything on one thread, so a plugin
 * that calls them from a stateless task would work here and race in
 * oskrd. Misuse is logged, counted ("sim_misuse") and refused. */
static void misuse(struct sim_node *node, const char *service,
		   const char *why)
{
	struct sim_counter *c = counter_find(node, "sim_misuse", true);
	if (c)
		c->value++;
	oskr__log(OSKR_LOG_ERROR, "sim %c%u: %s %s",
		  node->is_client ? 'c' : 'r', node->label, service, why);
}

static bool require_stateful(struct sim_node *node, const char *service)
{
	struct oskr_sim *sim = node->sim;
	if (sim->running == node && sim->running_stateful)
		return true;
	misuse(node, service,
	       "called outside a stateful task of this instance");
	return false;
}

static size_t host_signature_size(struct oskr_ctx *ctx)
{
	return oskr__sim_signature_size(node_of(ctx)->sim);
}

static int host_sign(struct oskr_ctx *ctx, const void *data, size_t len,
		     uint8_t *sig, size_t *sig_len)
{
	struct sim_node *node = node_of(ctx);
	if (node->is_client)
		return -ENOKEY;
	return oskr__sim_sign(node->sim, (uint32_t)node->id, data, len, sig,
			      sig_len);
}

static bool host_verify(struct oskr_ctx *ctx, uint32_t replica_id,
			const void *data, size_t len, const uint8_t *sig,
			size_t sig_len)
{
	return oskr__sim_verify(node_of(ctx)->sim, replica_id, data, len, sig,
				sig_len);
}

static void host_digest(struct oskr_ctx *ctx, const void *data, size_t len,
			uint8_t out[OSKR_DIGEST_SIZE])
{
	oskr__sim_sha256(node_of(ctx)->sim, data, len, out);
}

static int host_submit_stateless(struct oskr_ctx *ctx, oskr_task_fn fn,
				 void *arg)
{
	struct sim_node *node = node_of(ctx);
	struct oskr_sim *sim = node->sim;
	if (!fn)
		return -EINVAL;
	if (node->crashed)
		return -EAGAIN;
	if (node->stateless_pending >= SIM_QUEUE_LIMIT)
		return -EAGAIN;
	struct sim_event event = {
		.time = sim->now + jitter(sim),
		.kind = SIM_EV_STATELESS,
		.node = node->index,
		.task = { .fn = fn, .arg = arg },
	};
	if (schedule(sim, &event))
		return -EAGAIN;
	node->stateless_pending++;
	return 0;
}

static int host_submit_stateful(struct oskr_ctx *ctx, oskr_task_fn fn,
				void *arg)
{
	struct sim_node *node = node_of(ctx);
	if (!fn)
		return -EINVAL;
	if (node->crashed)
		return -EAGAIN;
	int ret = fifo_push(node, fn, arg);
	if (ret)
		return ret;
	schedule_drain(node);
	return 0;
}

static int host_timer_arm(struct oskr_ctx *ctx, uint64_t delay_ns,
			  oskr_task_fn fn, void *arg, oskr_timer_id *out)
{
	struct sim_node *node = node_of(ctx);
	struct oskr_sim *sim = node->sim;
	if (!fn || !out)
		return -EINVAL;
	if (!require_stateful(node, "timer_arm"))
		return -EPERM;
	oskr_timer_id id = sim->next_timer_id++;
	if (id_set_insert(&node->timers, id))
		return -ENOMEM;
	struct sim_event event = {
		.time = sim->now + delay_ns,
		.kind = SIM_EV_TIMER,
		.node = node->index,
		.timer = { .fn = fn, .arg = arg, .id = id },
	};
	if (delay_ns > UINT64_MAX - sim->now)
		event.time = UINT64_MAX;
	if (schedule(sim, &event)) {
		id_set_remove(&node->timers, id);
		return -ENOMEM;
	}
	*out = id;
	return 0;
}

static int host_timer_cancel(struct oskr_ctx *ctx, oskr_timer_id timer)
{
	struct sim_node *node = node_of(ctx);
	if (!require_stateful(node, "timer_cancel"))
		return -EPERM;
	/* The heap event stays and is skipped when it comes up: the armed
	 * set is what decides whether a timer fires. */
	if (!id_set_remove(&node->timers, timer))
		return -ENOENT;
	struct oskr_sim *sim = node->sim;
	if (++sim->cancelled_in_heap > SIM_COMPACT_MIN &&
	    sim->cancelled_in_heap > sim->heap_count / 2)
		heap_compact_cancelled(sim);
	return 0;
}

static uint64_t host_now_ns(struct oskr_ctx *ctx)
{
	return node_of(ctx)->sim->now;
}

static int host_app_execute(struct oskr_ctx *ctx, const void *op,
			    size_t op_len, void *result,
			    size_t result_capacity, size_t *result_len)
{
	struct sim_node *node = node_of(ctx);
	if (node->is_client)
		return -ENOTSUP;
	if (!require_stateful(node, "app_execute"))
		return -EPERM;
	size_t produced = 0;
	int ret = node->sim->app_ops->execute(node->app, op, op_len, result,
					      result_capacity, &produced);
	if (ret)
		return ret;
	*result_len = produced;
	oskr__sim_record_execution(node, op, op_len);
	return 0;
}

static int host_app_snapshot(struct oskr_ctx *ctx, void **out,
			     size_t *out_len)
{
	struct sim_node *node = node_of(ctx);
	if (node->is_client)
		return -ENOTSUP;
	if (!require_stateful(node, "app_snapshot"))
		return -EPERM;
	return oskr__sim_snapshot(node, out, out_len);
}

static int host_app_restore(struct oskr_ctx *ctx, const void *snapshot,
			    size_t len)
{
	struct sim_node *node = node_of(ctx);
	if (node->is_client)
		return -ENOTSUP;
	if (!require_stateful(node, "app_restore"))
		return -EPERM;
	return oskr__sim_restore(node, snapshot, len);
}

static void host_blob_free(struct oskr_ctx *ctx, void *blob)
{
	free(blob);
}

static int host_client_complete(struct oskr_ctx *ctx, uint64_t request_number,
				const void *result, size_t len)
{
	struct sim_node *node = node_of(ctx);
	if (!node->is_client)
		return -ENOTSUP;
	if (!require_stateful(node, "client_complete"))
		return -EPERM;
	return oskr__sim_client_complete(node, request_number, result, len);
}

static const struct oskr_conf *host_conf(struct oskr_ctx *ctx)
{
	return node_of(ctx)->sim->options;
}

static void host_log(struct oskr_ctx *ctx, enum oskr_log_level level,
		     const char *fmt, ...)
{
	struct sim_node *node = node_of(ctx);
	if ((int)level > (int)oskr__log_get_level())
		return;
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "sim %c%u t=%" PRIu64,
		 node->is_client ? 'c' : 'r', node->label, node->sim->now);
	va_list ap;
	va_start(ap, fmt);
	oskr__vlog(level, prefix, fmt, ap);
	va_end(ap);
}

static void host_count(struct oskr_ctx *ctx, const char *name, uint64_t delta)
{
	struct sim_node *node = node_of(ctx);
	if (!name)
		return;
	struct sim_counter *c = counter_find(node, name, true);
	if (!c)
		c = counter_find(node, "invalid_counter_name", true);
	if (c)
		c->value += delta;
}

static void host_set_status(struct oskr_ctx *ctx, uint64_t view,
			    int32_t leader, uint64_t committed,
			    uint64_t executed)
{
	struct sim_node *node = node_of(ctx);
	node->status_view = view;
	node->status_leader = leader;
	node->status_committed = committed;
	node->status_executed = executed;
}

/* ---- durable checkpoints (ABI 1.1) ---- */

static void checkpoint_clear(struct sim_checkpoint *checkpoint)
{
	free(checkpoint->app);
	free(checkpoint->protocol);
	memset(checkpoint, 0, sizeof(*checkpoint));
}

/* Copy @p len bytes into a fresh allocation; never NULL on success, even
 * for len 0, so a resumed plugin always gets a pointer. */
static uint8_t *blob_dup(const void *data, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	if (copy && len)
		memcpy(copy, data, len);
	return copy;
}

static int checkpoint_copy(struct sim_checkpoint *dst,
			   const struct sim_checkpoint *src)
{
	*dst = (struct sim_checkpoint){ .valid = src->valid, .op = src->op };
	dst->app = blob_dup(src->app, src->app_len);
	dst->protocol = blob_dup(src->protocol, src->protocol_len);
	if (!dst->app || !dst->protocol) {
		checkpoint_clear(dst);
		return -ENOMEM;
	}
	dst->app_len = src->app_len;
	dst->protocol_len = src->protocol_len;
	return 0;
}

/* The sim's "disk" is the node's latest checkpoint, replaced whole; the
 * write is synchronous (oskrd's is asynchronous, which a plugin cannot
 * observe except through a crash, and then either file is valid). */
static int host_checkpoint_stable(struct oskr_ctx *ctx, uint64_t op_number,
				  const void *app, size_t app_len,
				  const void *protocol_state,
				  size_t protocol_len)
{
	struct sim_node *node = node_of(ctx);
	if (node->is_client)
		return -ENOTSUP;
	if (!require_stateful(node, "checkpoint_stable"))
		return -EPERM;
	if (protocol_len && !protocol_state) {
		misuse(node, "checkpoint_stable",
		       "got protocol_len > 0 with a NULL protocol_state");
		return -EINVAL;
	}
	/* A blob that app_snapshot did not return would be refused only at
	 * the restart; refuse it where the bug is. */
	if (app && !oskr__sim_snapshot_valid(app, app_len)) {
		misuse(node, "checkpoint_stable",
		       "got an app blob that app_snapshot did not return");
		return -EINVAL;
	}
	struct sim_checkpoint next = { .valid = true, .op = op_number };
	if (app) {
		next.app = blob_dup(app, app_len);
		next.app_len = app_len;
		if (!next.app)
			return -ENOMEM;
	} else {
		void *blob = NULL;
		int ret = oskr__sim_snapshot(node, &blob, &next.app_len);
		if (ret)
			return ret;
		next.app = blob;
	}
	next.protocol = blob_dup(protocol_state, protocol_len);
	if (!next.protocol) {
		checkpoint_clear(&next);
		return -ENOMEM;
	}
	next.protocol_len = protocol_len;
	checkpoint_clear(&node->checkpoint);
	node->checkpoint = next;
	node->checkpoint_count++;
	return 0;
}

static int host_checkpoint_resume(struct oskr_ctx *ctx, uint64_t *op_number,
				  const void **protocol_state,
				  size_t *protocol_len)
{
	struct sim_node *node = node_of(ctx);
	if (node->is_client)
		return -ENOENT;
	if (!op_number || !protocol_state || !protocol_len)
		return -EINVAL;
	if (!node->in_init) {
		misuse(node, "checkpoint_resume", "called outside replica_init");
		return -EINVAL;
	}
	if (!node->resume.valid)
		return -ENOENT;
	*op_number = node->resume.op;
	*protocol_state = node->resume.protocol;
	*protocol_len = node->resume.protocol_len;
	return 0;
}

static const struct oskr_host sim_host = {
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

/* ---- running events ---- */

static void run_delivery(struct oskr_sim *sim, struct sim_node *node,
			 struct sim_event *event)
{
	struct oskr_msg msg = {
		.buf = event->deliver.buf,
		.from_replica = OSKR_SIM_IS_CLIENT(event->deliver.src)
					? -1
					: event->deliver.src,
	};
	addr_encode(event->deliver.src, &msg.from);
	sim->net.delivered++;
	if (node->is_client) {
		/* Clients run their receive path on their one thread, as a
		 * stateful task (plugin.h). */
		if (sim->plugin->client_receive) {
			struct sim_running saved = enter(node, true);
			sim->plugin->client_receive(&node->ctx, node->state,
						    &msg);
			leave(node, saved);
		}
	} else {
		struct sim_running saved = enter(node, false);
		sim->plugin->replica_receive(&node->ctx, node->state, &msg);
		leave(node, saved);
	}
	oskr__buf_release(event->deliver.buf);
}

static void run_event(struct oskr_sim *sim, struct sim_event *event)
{
	struct sim_node *node = &sim->nodes[event->node];
	struct sim_running saved;
	switch (event->kind) {
	case SIM_EV_DELIVER:
		run_delivery(sim, node, event);
		break;
	case SIM_EV_STATELESS:
		node->stateless_pending--;
		saved = enter(node, false);
		event->task.fn(&node->ctx, node->state, event->task.arg);
		leave(node, saved);
		break;
	case SIM_EV_STATEFUL: {
		node->drain_scheduled = false;
		if (node->fifo_count == 0)
			break;
		struct sim_task task = node->fifo[node->fifo_head];
		node->fifo_head = (node->fifo_head + 1) % node->fifo_capacity;
		node->fifo_count--;
		saved = enter(node, true);
		task.fn(&node->ctx, node->state, task.arg);
		leave(node, saved);
		schedule_drain(node);
		break;
	}
	case SIM_EV_TIMER:
		if (!id_set_remove(&node->timers, event->timer.id)) {
			/* cancelled: not an event that ran */
			if (sim->cancelled_in_heap)
				sim->cancelled_in_heap--;
			return;
		}
		saved = enter(node, true);
		event->timer.fn(&node->ctx, node->state, event->timer.arg);
		leave(node, saved);
		break;
	}
	sim->events_run++;
	sim->trace = mix64(sim->trace ^ event->time) ^
		     mix64(((uint64_t)event->kind << 32) | event->node);
}

/* Pop and run the next event if it is due by @p limit. */
bool oskr__sim_step(struct oskr_sim *sim, uint64_t limit)
{
	if (sim->heap_count == 0 || sim->heap[0].time > limit)
		return false;
	struct sim_event event;
	heap_pop(sim, &event);
	if (event.time > sim->now)
		sim->now = event.time;
	run_event(sim, &event);
	return true;
}

/* ---- lifecycle ---- */

/* Start an instance; a replica's fresh application is first restored from
 * @p resume_from when that is a valid checkpoint (restart from checkpoint). */
static int node_start(struct oskr_sim *sim, struct sim_node *node,
		      const struct sim_checkpoint *resume_from)
{
	const struct oskr_plugin *plugin = sim->plugin;
	size_t state_size = node->is_client ? plugin->client_state_size
					    : plugin->replica_state_size;
	node->state = calloc(1, state_size ? state_size : 1);
	if (!node->state)
		return -ENOMEM;
	if (!node->is_client) {
		char *err = NULL;
		int ret = sim->app_ops->create(&node->app, NULL, &err);
		if (ret) {
			fprintf(stderr, "sim: app %s: %s\n", sim->app_ops->name,
				err ? err : strerror(-ret));
			free(err);
			node->app = NULL;
			return ret;
		}
		if (resume_from && resume_from->valid) {
			/* A private copy: checkpoint_stable during init may
			 * replace the node's, but what checkpoint_resume hands
			 * out stays valid until replica_init returns. */
			ret = checkpoint_copy(&node->resume, resume_from);
			if (ret == 0)
				ret = oskr__sim_restore(node, node->resume.app,
							node->resume.app_len);
			if (ret) {
				fprintf(stderr,
					"sim: replica %u: restoring the "
					"checkpoint at op %" PRIu64
					" failed: %s\n",
					node->label, resume_from->op,
					strerror(-ret));
				checkpoint_clear(&node->resume);
				return ret;
			}
			oskr__log(OSKR_LOG_DEBUG,
				  "sim r%u: resuming from checkpoint at op "
				  "%" PRIu64,
				  node->label, node->resume.op);
		}
	}
	struct sim_running saved = enter(node, true);
	node->in_init = true;
	int ret = node->is_client ? plugin->client_init(&node->ctx, node->state)
				  : plugin->replica_init(&node->ctx,
							 node->state);
	node->in_init = false;
	leave(node, saved);
	checkpoint_clear(&node->resume);
	if (ret) {
		fprintf(stderr, "sim: %s %s%u: init failed: %s\n", plugin->name,
			node->is_client ? "client " : "replica ", node->label,
			strerror(ret < 0 ? -ret : ret));
		return ret < 0 ? ret : -EINVAL;
	}
	node->initialized = true;
	return 0;
}

/* Tear down one instance: fini (if init succeeded), timers, queues, app. */
static void node_stop(struct oskr_sim *sim, struct sim_node *node)
{
	if (node->initialized) {
		void (*fini)(struct oskr_ctx *, void *) =
			node->is_client ? sim->plugin->client_fini
					: sim->plugin->replica_fini;
		if (fini) {
			struct sim_running saved = enter(node, true);
			fini(&node->ctx, node->state);
			leave(node, saved);
		}
		node->initialized = false;
	}
	heap_purge_node(sim, node->index);
	fifo_clear(node);
	node->drain_scheduled = false;
	id_set_clear(&node->timers);
	free(node->state);
	node->state = NULL;
	if (node->app)
		sim->app_ops->destroy(node->app);
	node->app = NULL;
	oskr__sim_reset_execution(node);
}

static int check_plugin(const struct oskr_plugin *plugin)
{
	if (!plugin) {
		fprintf(stderr, "sim: no plugin\n");
		return -EINVAL;
	}
	if (plugin->abi_major != OSKR_ABI_MAJOR ||
	    plugin->abi_minor > OSKR_ABI_MINOR) {
		fprintf(stderr,
			"sim: plugin ABI %u.%u is not compatible with host "
			"ABI %u.%u\n",
			plugin->abi_major, plugin->abi_minor, OSKR_ABI_MAJOR,
			OSKR_ABI_MINOR);
		return -EINVAL;
	}
	if (plugin->size < sizeof(struct oskr_plugin)) {
		fprintf(stderr, "sim: plugin descriptor size %u < %zu\n",
			plugin->size, sizeof(struct oskr_plugin));
		return -EINVAL;
	}
	if (!plugin->replica_init || !plugin->replica_receive) {
		fprintf(stderr, "sim: plugin %s lacks replica_init or "
				"replica_receive\n",
			plugin->name ? plugin->name : "?");
		return -EINVAL;
	}
	return 0;
}

static int parse_options(struct oskr_sim *sim, const char *text)
{
	if (!text)
		return 0;
	char *err = NULL;
	int ret = oskr__conf_parse("protocol_options", text, strlen(text),
				   &sim->options_root, &err);
	if (ret) {
		fprintf(stderr, "sim: %s\n", err ? err : "bad protocol_options");
		free(err);
		return ret;
	}
	struct oskr_conf *root = sim->options_root;
	if (!root)
		return 0;
	if (root->kind == OSKR_CONF_MAP) {
		sim->options = root;
		return 0;
	}
	if (root->kind == OSKR_CONF_SCALAR &&
	    (!root->scalar || root->scalar[0] == '\0'))
		return 0; /* an empty document: no options */
	fprintf(stderr, "sim: protocol_options: expected a mapping\n");
	return -EINVAL;
}

int oskr_sim_create(struct oskr_sim **out, const struct oskr_sim_config *c)
{
	int ret = check_plugin(c->plugin);
	if (ret)
		return ret;
	if (c->replica_count < 1 || c->replica_count > OSKR_SIM_MAX_REPLICAS) {
		fprintf(stderr, "sim: replica_count %u not in [1, %u]\n",
			c->replica_count, OSKR_SIM_MAX_REPLICAS);
		return -EINVAL;
	}
	if (c->client_count > OSKR_SIM_MAX_CLIENTS) {
		fprintf(stderr, "sim: client_count %u > %u\n", c->client_count,
			OSKR_SIM_MAX_CLIENTS);
		return -EINVAL;
	}
	if (c->client_count && (!c->plugin->client_init ||
				!c->plugin->client_invoke)) {
		fprintf(stderr, "sim: plugin %s has no client side\n",
			c->plugin->name);
		return -EINVAL;
	}
	const struct oskr_app_ops *app_ops =
		oskr__app_find(c->app ? c->app : "null");
	if (!app_ops) {
		fprintf(stderr, "sim: unknown app '%s' (expected null or kv)\n",
			c->app);
		return -EINVAL;
	}

	struct oskr_sim *sim = calloc(1, sizeof(*sim));
	if (!sim)
		return -ENOMEM;
	sim->plugin = c->plugin;
	sim->app_ops = app_ops;
	sim->replica_count = c->replica_count;
	sim->fault_count = c->fault_count;
	sim->client_count = c->client_count;
	sim->seed = c->seed;
	sim->drop_rate = c->drop_rate;
	sim->duplicate_rate = c->duplicate_rate;
	sim->min_delay_ns = c->min_delay_ns;
	sim->max_delay_ns = c->max_delay_ns;
	if (sim->min_delay_ns == 0 && sim->max_delay_ns == 0) {
		sim->min_delay_ns = SIM_DEFAULT_MIN_DELAY_NS;
		sim->max_delay_ns = SIM_DEFAULT_MAX_DELAY_NS;
	}
	if (sim->max_delay_ns < sim->min_delay_ns)
		sim->max_delay_ns = sim->min_delay_ns;
	sim->max_message = c->max_message ? c->max_message
					  : SIM_DEFAULT_MAX_MESSAGE;
	sim->real_signatures = c->real_signatures;
	sim->next_timer_id = 1;
	prng_seed(&sim->prng, c->seed);

	sim->scratch = malloc(sim->max_message);
	if (!sim->scratch) {
		ret = -ENOMEM;
		goto err_free;
	}
	ret = oskr__sim_crypto_init(sim);
	if (ret)
		goto err_free;
	ret = oskr__sim_check_init(sim);
	if (ret)
		goto err_free;
	ret = parse_options(sim, c->protocol_options);
	if (ret)
		goto err_free;
	if (c->plugin->config_check) {
		ret = c->plugin->config_check(&sim_host, sim->options,
					      sim->replica_count,
					      sim->fault_count);
		if (ret) {
			fprintf(stderr, "sim: %s: config_check refused the "
					"options (%d)\n",
				c->plugin->name, ret);
			ret = ret < 0 ? ret : -EINVAL;
			goto err_free;
		}
	}

	size_t node_count = (size_t)sim->replica_count + sim->client_count;
	sim->nodes = calloc(node_count, sizeof(*sim->nodes));
	if (!sim->nodes) {
		ret = -ENOMEM;
		goto err_free;
	}
	for (size_t i = 0; i < node_count; i++) {
		struct sim_node *node = &sim->nodes[i];
		node->ctx.host = &sim_host;
		node->sim = sim;
		node->index = (uint32_t)i;
		node->is_client = i >= sim->replica_count;
		node->label = node->is_client
				      ? (uint32_t)(i - sim->replica_count)
				      : (uint32_t)i;
		node->id = node->is_client ? OSKR_SIM_CLIENT(node->label)
					   : (int32_t)node->label;
		node->status_leader = -1;
		node->info = (struct oskr_instance_info){
			.size = sizeof(struct oskr_instance_info),
			.replica_count = sim->replica_count,
			.fault_count = sim->fault_count,
			.replica_id = node->is_client ? -1 : node->id,
			.client_id = node->is_client
					     ? SIM_CLIENT_ID_BASE + node->label
					     : 0,
			.max_message = sim->max_message,
			.worker_count = SIM_WORKER_COUNT,
		};
	}
	sim->node_count = node_count;
	for (size_t i = 0; i < node_count; i++) {
		ret = node_start(sim, &sim->nodes[i], NULL);
		if (ret)
			goto err_destroy;
	}
	*out = sim;
	return 0;

err_destroy:
	oskr_sim_destroy(sim);
	return ret;
err_free:
	oskr__sim_check_fini(sim);
	oskr__sim_crypto_fini(sim);
	oskr__conf_free(sim->options_root);
	free(sim->scratch);
	free(sim->nodes);
	free(sim);
	return ret;
}

void oskr_sim_destroy(struct oskr_sim *sim)
{
	if (!sim)
		return;
	for (size_t i = 0; i < sim->node_count; i++)
		node_stop(sim, &sim->nodes[i]);
	/* Fini ran and may have sent; nobody will receive any more. */
	while (sim->heap_count) {
		struct sim_event event;
		heap_pop(sim, &event);
		event_discard(sim, &event);
	}
	if (sim->live_buffers)
		fprintf(stderr,
			"sim: %" PRIu64 " buffer(s) still referenced after "
			"fini (leaked by the plugin); freeing them\n",
			sim->live_buffers);
	while (sim->live_buf_head)
		sim_buf_free(&sim->live_buf_head->base);
	for (size_t i = 0; i < sim->node_count; i++) {
		oskr__sim_client_fini(&sim->nodes[i]);
		checkpoint_clear(&sim->nodes[i].checkpoint);
	}
	free(sim->heap);
	free(sim->nodes);
	free(sim->scratch);
	free(sim->idle_clients);
	oskr__conf_free(sim->options_root);
	oskr__sim_check_fini(sim);
	oskr__sim_crypto_fini(sim);
	free(sim);
}

/* ---- faults ---- */

void oskr_sim_set_drop_rate(struct oskr_sim *sim, double rate)
{
	sim->drop_rate = rate;
}

void oskr_sim_set_duplicate_rate(struct oskr_sim *sim, double rate)
{
	sim->duplicate_rate = rate;
}

void oskr_sim_set_delay(struct oskr_sim *sim, uint64_t min_ns, uint64_t max_ns)
{
	sim->min_delay_ns = min_ns;
	sim->max_delay_ns = max_ns < min_ns ? min_ns : max_ns;
}

void oskr_sim_partition(struct oskr_sim *sim, uint64_t side_a_mask,
			bool isolate_clients)
{
	sim->partition_active = true;
	sim->partition_mask = side_a_mask;
	sim->partition_isolate_clients = isolate_clients;
}

void oskr_sim_heal(struct oskr_sim *sim)
{
	sim->partition_active = false;
}

void oskr_sim_crash(struct oskr_sim *sim, uint32_t replica)
{
	if (replica >= sim->replica_count)
		return;
	struct sim_node *node = &sim->nodes[replica];
	if (node->crashed)
		return;
	node->crashed = true;
	heap_purge_node(sim, node->index);
	fifo_clear(node);
	node->drain_scheduled = false;
	id_set_clear(&node->timers);
}

static int restart_node(struct oskr_sim *sim, uint32_t replica,
			bool from_checkpoint)
{
	if (replica >= sim->replica_count)
		return -EINVAL;
	struct sim_node *node = &sim->nodes[replica];
	oskr_sim_crash(sim, replica);
	/* fini sees the old state; anything it sends is dropped (the node
	 * is still crashed), and it cannot arm timers that would survive. */
	node_stop(sim, node);
	node->crashed = false;
	int ret = node_start(sim, node,
			     from_checkpoint ? &node->checkpoint : NULL);
	if (ret) {
		/* Leave it crashed and empty; a later restart may retry. */
		node->crashed = true;
		heap_purge_node(sim, node->index);
		fifo_clear(node);
		id_set_clear(&node->timers);
	}
	return ret;
}

int oskr_sim_restart(struct oskr_sim *sim, uint32_t replica)
{
	return restart_node(sim, replica, false);
}

int oskr_sim_restart_from_checkpoint(struct oskr_sim *sim, uint32_t replica)
{
	return restart_node(sim, replica, true);
}

bool oskr_sim_last_checkpoint(struct oskr_sim *sim, uint32_t replica,
			      uint64_t *op, uint64_t *count)
{
	const struct sim_node *node =
		replica < sim->replica_count ? &sim->nodes[replica] : NULL;
	bool valid = node && node->checkpoint.valid;
	if (op)
		*op = valid ? node->checkpoint.op : 0;
	if (count)
		*count = node ? node->checkpoint_count : 0;
	return valid;
}

bool oskr_sim_is_crashed(struct oskr_sim *sim, uint32_t replica)
{
	return replica < sim->replica_count && sim->nodes[replica].crashed;
}

void oskr_sim_set_filter(struct oskr_sim *sim, oskr_sim_filter_fn fn,
			 void *arg)
{
	sim->filter = fn;
	sim->filter_arg = arg;
}

void oskr_sim_set_byzantine(struct oskr_sim *sim, uint32_t replica, bool on)
{
	if (replica < sim->replica_count)
		sim->nodes[replica].byzantine = on;
}

int oskr_sim_inject(struct oskr_sim *sim, int32_t src, int32_t dst,
		    const void *data, size_t len)
{
	struct sim_node *from = oskr__sim_node(sim, src);
	struct sim_node *to = oskr__sim_node(sim, dst);
	if (!from || !to || (len && !data))
		return -EINVAL;
	if (len > sim->max_message)
		return -EMSGSIZE;
	if (to->crashed)
		return 0; /* a crashed node receives nothing */
	return schedule_delivery(sim, src, dst, data, (uint32_t)len);
}

/* ---- running ---- */

uint64_t oskr_sim_now(struct oskr_sim *sim)
{
	return sim->now;
}

void oskr_sim_run_for(struct oskr_sim *sim, uint64_t ns)
{
	uint64_t end = ns > UINT64_MAX - sim->now ? UINT64_MAX : sim->now + ns;
	while (oskr__sim_step(sim, end))
		;
	sim->now = end;
}

bool oskr_sim_run_until(struct oskr_sim *sim, bool (*pred)(void *arg),
			void *arg, uint64_t max_ns)
{
	uint64_t end = max_ns > UINT64_MAX - sim->now ? UINT64_MAX
						       : sim->now + max_ns;
	if (pred(arg))
		return true;
	while (oskr__sim_step(sim, end)) {
		if (pred(arg))
			return true;
	}
	sim->now = end;
	return pred(arg);
}

uint64_t oskr_sim_events(struct oskr_sim *sim)
{
	return sim->events_run;
}

uint64_t oskr_sim_trace_digest(struct oskr_sim *sim)
{
	return sim->trace;
}

/* ---- inspection ---- */

void *oskr_sim_replica_state(struct oskr_sim *sim, uint32_t replica)
{
	if (replica >= sim->replica_count)
		return NULL;
	return sim->nodes[replica].state;
}

uint64_t oskr_sim_counter(struct oskr_sim *sim, int32_t node_id,
			  const char *name)
{
	struct sim_node *node = oskr__sim_node(sim, node_id);
	if (!node || !name)
		return 0;
	struct sim_counter *c = counter_find(node, name, false);
	return c ? c->value : 0;
}

void oskr_sim_net_stats(struct oskr_sim *sim, struct oskr_sim_net_stats *out)
{
	*out = sim->net;
}

uint64_t oskr_sim_live_buffers(struct oskr_sim *sim)
{
	return sim->live_buffers;
}

uint64_t oskr_sim_live_timers(struct oskr_sim *sim, uint32_t replica)
{
	if (replica >= sim->replica_count)
		return 0;
	return sim->nodes[replica].timers.count;
}

/* ---- clients (the API side; bookkeeping is in sim_check.c) ---- */

int oskr__sim_invoke_node(struct sim_node *node, const void *op,
			  size_t op_len, uint64_t *request_number)
{
	struct oskr_sim *sim = node->sim;
	if (node->client.busy)
		return -EBUSY;
	uint64_t number = node->client.next_request + 1;
	node->client.busy = true;
	node->client.outstanding = number;
	node->client.next_request = number;
	struct sim_running saved = enter(node, true);
	int ret = sim->plugin->client_invoke(&node->ctx, node->state, number,
					     op, op_len);
	leave(node, saved);
	if (ret) {
		/* Not started: the number is burnt (numbers only grow). */
		if (node->client.outstanding == number)
			node->client.busy = false;
		return ret;
	}
	if (request_number)
		*request_number = number;
	return 0;
}

int oskr_sim_invoke(struct oskr_sim *sim, uint32_t client, const void *op,
		    size_t op_len, uint64_t *request_number)
{
	if (client >= sim->client_count)
		return -EINVAL;
	return oskr__sim_invoke_node(&sim->nodes[sim->replica_count + client],
				     op, op_len, request_number);
}

bool oskr_sim_client_busy(struct oskr_sim *sim, uint32_t client)
{
	if (client >= sim->client_count)
		return false;
	return sim->nodes[sim->replica_count + client].client.busy;
}

const uint8_t *oskr_sim_client_result(struct oskr_sim *sim, uint32_t client,
				      size_t *len)
{
	if (client >= sim->client_count)
		return NULL;
	struct sim_node *node = &sim->nodes[sim->replica_count + client];
	if (!node->client.has_result)
		return NULL;
	if (len)
		*len = node->client.result_len;
	/* A zero-length result still returns a non-NULL pointer. */
	return node->client.result ? node->client.result
				   : (const uint8_t *)"";
}

uint64_t oskr_sim_completed(struct oskr_sim *sim)
{
	return sim->completed;
}

/* Default workload ops: an 8-byte counter (null) or a put of a unique key
 * (kv). */
static size_t default_op(struct oskr_sim *sim, uint32_t client, uint64_t seq,
			 uint8_t *op, size_t capacity)
{
	uint64_t counter = sim->workload_counter++;
	if (strcmp(sim->app_ops->name, "kv") == 0) {
		char key[48];
		int key_len = snprintf(key, sizeof(key), "c%u-%" PRIu64,
				       client, seq);
		uint8_t value[8];
		for (int i = 0; i < 8; i++)
			value[i] = (uint8_t)(counter >> (8 * i));
		return oskr_kv_encode_put(op, capacity, key, (size_t)key_len,
					  value, sizeof(value));
	}
	if (capacity < 8)
		return 0;
	for (int i = 0; i < 8; i++)
		op[i] = (uint8_t)(counter >> (8 * i));
	return 8;
}

static void workload_issue(struct oskr_sim *sim, uint32_t client,
			   oskr_sim_op_fn make_op, void *arg)
{
	struct sim_node *node = &sim->nodes[sim->replica_count + client];
	uint64_t seq = node->client.next_request + 1;
	size_t op_len =
		make_op ? make_op(arg, client, seq, sim->scratch,
				  sim->max_message)
			: default_op(sim, client, seq, sim->scratch,
				     sim->max_message);
	if (op_len > sim->max_message)
		op_len = sim->max_message;
	/* The scratch area doubles as the filter's: copy the op out, as
	 * client_invoke may send (and filter) right away. */
	uint8_t *op = malloc(op_len ? op_len : 1);
	if (!op)
		return;
	memcpy(op, sim->scratch, op_len);
	if (oskr__sim_invoke_node(node, op, op_len, NULL) == 0)
		sim->workload_issued++;
	free(op);
}

uint64_t oskr_sim_run_workload(struct oskr_sim *sim, uint64_t total,
			       uint64_t deadline_ns, oskr_sim_op_fn make_op,
			       void *arg)
{
	uint64_t start = sim->completed;
	if (total == 0 || sim->client_count == 0)
		return 0;
	if (!sim->idle_clients) {
		sim->idle_clients =
			calloc(sim->client_count, sizeof(*sim->idle_clients));
		if (!sim->idle_clients)
			return 0;
	}
	sim->workload_issued = 0;
	sim->idle_count = 0;
	for (uint32_t k = 0; k < sim->client_count; k++)
		if (!oskr_sim_client_busy(sim, k))
			sim->idle_clients[sim->idle_count++] = k;
	sim->workload_active = true;
	for (;;) {
		/* Refill idle clients, but never issue more than @p total so
		 * that the run ends with nothing outstanding. */
		while (sim->idle_count && sim->workload_issued < total) {
			uint32_t k = sim->idle_clients[--sim->idle_count];
			if (!oskr_sim_client_busy(sim, k))
				workload_issue(sim, k, make_op, arg);
		}
		if (sim->completed - start >= total)
			break;
		if (!oskr__sim_step(sim, deadline_ns))
			break;
	}
	sim->workload_active = false;
	sim->idle_count = 0;
	return sim->completed - start;
}
