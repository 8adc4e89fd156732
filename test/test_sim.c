/* SPDX-License-Identifier: MIT */
/*
 * The sim itself, driven by a small in-file plugin ("toy"):
 *  - clients send [u8 1 | u64 client_id | u64 rn | op] to every replica and
 *    retransmit on a timer until replica 0 answers [u8 2 | u64 rn |
 *    u8 result_len | result | u8 sig_len | sig];
 *  - every replica executes a client's request when its number is above
 *    the last one it executed for that client (so replicas may skip ops
 *    under loss: that is what the safety checker is for);
 *  - replica 0 replies from a stateless task and tells the others
 *    [u8 3] ("notify") after each execution, which makes replica-to-replica
 *    traffic for partition tests.
 * Options steer planted bugs (corrupt_replica, double_complete) and
 * features under test (tick_ms, sign, snapshot_at, checkpoint_every,
 * checkpoint_delayed).
 *
 * Checkpoints: with checkpoint_every N, a replica declares a checkpoint
 * (host->checkpoint_stable) after every N-th op it executed, with its
 * protocol state (ops executed + last request number per client). With
 * checkpoint_delayed it takes the app snapshot at op N and declares it one
 * op later, as PBFT does once 2f+1 CHECKPOINTs arrive. replica_init
 * resumes from host->checkpoint_resume when it returns one.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oskr/kv.h>
#include <oskr/plugin.h>

#include "sim/sim.h"

#define MS 1000000ULL
#define TOY_MAX_CLIENTS 256

enum { TOY_REQUEST = 1, TOY_REPLY = 2, TOY_NOTIFY = 3, TOY_SNAPSHOT = 4 };

struct toy_options {
	uint64_t corrupt_replica;
	bool double_complete;
	uint64_t tick_ms;
	bool sign;
	uint64_t snapshot_at;
	uint64_t retransmit_ms;
	bool churn;
	uint64_t checkpoint_every;
	bool checkpoint_delayed;
};

/* The toy's protocol state in a checkpoint: ops executed, then the last
 * request number executed for each client. */
struct toy_protocol_state {
	uint64_t ops;
	uint64_t last_rn[TOY_MAX_CLIENTS];
};

struct toy_replica {
	struct toy_options options;
	const struct oskr_instance_info *info;
	uint64_t last_rn[TOY_MAX_CLIENTS];
	oskr_timer_id tick;
	oskr_timer_id churn;
	bool snapshot_sent;
	uint64_t ops;
	/* checkpoint_delayed: taken at op pending.ops, declared later */
	void *pending_app;
	size_t pending_app_len;
	struct toy_protocol_state pending;
};

struct toy_client {
	struct toy_options options;
	const struct oskr_instance_info *info;
	uint64_t rn;
	uint8_t op[256];
	size_t op_len;
	bool waiting;
	oskr_timer_id retransmit;
};

struct toy_message {
	struct oskr_addr from;
	int32_t from_replica;
	uint32_t len;
	uint8_t data[];
};

struct toy_reply_task {
	struct oskr_addr to;
	uint64_t rn;
	size_t result_len;
	uint8_t result[64];
};

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int toy_read_options(const struct oskr_host *host,
			    const struct oskr_conf *conf,
			    struct toy_options *o)
{
	static const char *const keys[] = { "corrupt_replica",
					    "double_complete",
					    "tick_ms",
					    "sign",
					    "snapshot_at",
					    "retransmit_ms",
					    "churn",
					    "checkpoint_every",
					    "checkpoint_delayed",
					    NULL };
	if (host->conf_check_keys(conf, keys) ||
	    host->conf_u64(conf, "corrupt_replica", 0, 1000, 1000,
			   &o->corrupt_replica) ||
	    host->conf_bool(conf, "double_complete", false,
			    &o->double_complete) ||
	    host->conf_ms(conf, "tick_ms", 0, 1000, 0, &o->tick_ms) ||
	    host->conf_bool(conf, "sign", false, &o->sign) ||
	    host->conf_u64(conf, "snapshot_at", 0, 1000000, 0,
			   &o->snapshot_at) ||
	    host->conf_ms(conf, "retransmit_ms", 1, 10000, 1,
			  &o->retransmit_ms) ||
	    host->conf_bool(conf, "churn", false, &o->churn) ||
	    host->conf_u64(conf, "checkpoint_every", 0, 1000000, 0,
			   &o->checkpoint_every) ||
	    host->conf_bool(conf, "checkpoint_delayed", false,
			    &o->checkpoint_delayed))
		return -EINVAL;
	return 0;
}

static int toy_config_check(const struct oskr_host *host,
			    const struct oskr_conf *conf, uint32_t n,
			    uint32_t f)
{
	struct toy_options o;
	return toy_read_options(host, conf, &o);
}

static void toy_tick(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct toy_replica *r = state;
	ctx->host->count(ctx, "ticks", 1);
	ctx->host->timer_arm(ctx, r->options.tick_ms * MS, toy_tick, NULL,
			     &r->tick);
}

static void toy_churn(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct toy_replica *r = state;
	r->churn = 0;
	ctx->host->count(ctx, "churn_fired", 1);
}

static void toy_never(struct oskr_ctx *ctx, void *state, void *arg)
{
	ctx->host->count(ctx, "never_fired", 1);
}

static int toy_replica_init(struct oskr_ctx *ctx, void *state)
{
	struct toy_replica *r = state;
	const struct oskr_host *host = ctx->host;
	if (toy_read_options(host, host->conf(ctx), &r->options))
		return -EINVAL;
	r->info = host->info(ctx);
	if (r->options.tick_ms)
		host->timer_arm(ctx, r->options.tick_ms * MS, toy_tick, NULL,
				&r->tick);
	/* A timer cancelled at once never fires; an unknown one is ENOENT. */
	oskr_timer_id never;
	if (host->timer_arm(ctx, 1 * MS, toy_never, NULL, &never) == 0 &&
	    host->timer_cancel(ctx, never) == 0)
		host->count(ctx, "cancelled", 1);
	if (host->timer_cancel(ctx, 987654321) == -ENOENT)
		host->count(ctx, "cancel_enoent", 1);
	if (OSKR_HOST_HAS(host, checkpoint_resume)) {
		uint64_t op = 0;
		const void *blob = NULL;
		size_t len = 0;
		int ret = host->checkpoint_resume(ctx, &op, &blob, &len);
		if (ret == 0 && len == sizeof(struct toy_protocol_state)) {
			struct toy_protocol_state saved;
			memcpy(&saved, blob, sizeof(saved));
			if (saved.ops != op)
				return -EINVAL;
			r->ops = saved.ops;
			memcpy(r->last_rn, saved.last_rn, sizeof(r->last_rn));
			host->count(ctx, "resumed", 1);
		} else if (ret != -ENOENT) {
			return ret ? ret : -EINVAL;
		}
	}
	return 0;
}

static void toy_checkpoint(struct oskr_ctx *ctx, struct toy_replica *r)
{
	const struct oskr_host *host = ctx->host;
	if (!r->options.checkpoint_every ||
	    !OSKR_HOST_HAS(host, checkpoint_stable))
		return;
	if (!r->options.checkpoint_delayed) {
		if (r->ops % r->options.checkpoint_every)
			return;
		struct toy_protocol_state now = { .ops = r->ops };
		memcpy(now.last_rn, r->last_rn, sizeof(now.last_rn));
		if (host->checkpoint_stable(ctx, r->ops, NULL, 0, &now,
					    sizeof(now)) == 0)
			host->count(ctx, "checkpoints", 1);
		return;
	}
	/* Declare the state taken one op ago: the app has moved on, so the
	 * host must persist the blob given, not the app as it is now. */
	if (r->pending_app) {
		if (host->checkpoint_stable(ctx, r->pending.ops,
					    r->pending_app,
					    r->pending_app_len, &r->pending,
					    sizeof(r->pending)) == 0)
			host->count(ctx, "checkpoints", 1);
		host->blob_free(ctx, r->pending_app);
		r->pending_app = NULL;
	}
	if (r->ops % r->options.checkpoint_every == 0 &&
	    host->app_snapshot(ctx, &r->pending_app, &r->pending_app_len) ==
		    0) {
		r->pending.ops = r->ops;
		memcpy(r->pending.last_rn, r->last_rn,
		       sizeof(r->pending.last_rn));
	}
}

static void toy_send_reply(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct toy_reply_task *task = arg;
	const struct oskr_host *host = ctx->host;
	struct toy_replica *r = state;
	struct oskr_buf *buf;
	if (host->buf_alloc(ctx, 128 + OSKR_SIGNATURE_MAX, &buf) == 0) {
		buf->data[0] = TOY_REPLY;
		put_u64(buf->data + 1, task->rn);
		buf->data[9] = (uint8_t)task->result_len;
		memcpy(buf->data + 10, task->result, task->result_len);
		size_t at = 10 + task->result_len;
		size_t sig_len = 0;
		if (r->options.sign)
			host->sign(ctx, buf->data, at, buf->data + at + 1,
				   &sig_len);
		buf->data[at] = (uint8_t)sig_len;
		buf->len = (uint32_t)(at + 1 + sig_len);
		host->send_to_addr(ctx, &task->to, buf);
		host->count(ctx, "replies", 1);
	}
	free(task);
}

static void toy_misuse(struct oskr_ctx *ctx, void *state, void *arg)
{
	oskr_timer_id id;
	if (ctx->host->timer_arm(ctx, MS, toy_never, NULL, &id) == -EPERM)
		ctx->host->count(ctx, "refused", 1);
	if (ctx->host->checkpoint_stable(ctx, 1, NULL, 0, NULL, 0) == -EPERM)
		ctx->host->count(ctx, "refused", 1);
}

/* A stateful task that misuses the checkpoint services: resume outside
 * replica_init, and an app blob app_snapshot never returned. */
static void toy_checkpoint_misuse(struct oskr_ctx *ctx, void *state, void *arg)
{
	const struct oskr_host *host = ctx->host;
	uint64_t op;
	const void *blob;
	size_t len;
	if (host->checkpoint_resume(ctx, &op, &blob, &len) == -EINVAL)
		host->count(ctx, "refused", 1);
	if (host->checkpoint_stable(ctx, 1, "not a snapshot", 14, NULL, 0) ==
	    -EINVAL)
		host->count(ctx, "refused", 1);
}

static void toy_execute(struct oskr_ctx *ctx, struct toy_replica *r,
			struct toy_message *m)
{
	const struct oskr_host *host = ctx->host;
	uint64_t client_id = get_u64(m->data + 1);
	uint64_t rn = get_u64(m->data + 9);
	if (client_id < 1000 || client_id >= 1000 + TOY_MAX_CLIENTS)
		return;
	uint64_t *last = &r->last_rn[client_id - 1000];
	if (rn <= *last && r->info->replica_id != 0)
		return;
	struct toy_reply_task *task = calloc(1, sizeof(*task));
	if (!task)
		return;
	task->to = m->from;
	task->rn = rn;
	if (rn > *last) {
		uint8_t op[256];
		size_t op_len = m->len - 17;
		if (op_len > sizeof(op))
			op_len = sizeof(op);
		memcpy(op, m->data + 17, op_len);
		if ((uint64_t)r->info->replica_id == r->options.corrupt_replica &&
		    op_len)
			op[0] ^= 1; /* the planted divergence */
		if (host->app_execute(ctx, op, op_len, task->result,
				      sizeof(task->result),
				      &task->result_len) != 0) {
			free(task);
			return;
		}
		*last = rn;
		r->ops++;
		host->count(ctx, "executed", 1);
		toy_checkpoint(ctx, r);
		if (r->options.churn) {
			/* One long timer per op, the previous one cancelled:
			 * the sim must sweep the dead ones out of its heap
			 * without losing the live one. */
			if (r->churn)
				host->timer_cancel(ctx, r->churn);
			host->timer_arm(ctx, 1000 * MS, toy_churn, NULL,
					&r->churn);
		}
		if (r->info->replica_id == 0) {
			struct oskr_buf *notify;
			if (host->buf_alloc(ctx, 1, &notify) == 0) {
				notify->data[0] = TOY_NOTIFY;
				host->send_to_all(ctx, notify);
			}
		}
	} else {
		host->count(ctx, "duplicates", 1);
	}
	if (r->info->replica_id != 0) {
		free(task);
		return;
	}
	if (host->submit_stateless(ctx, toy_send_reply, task))
		free(task);
	if (r->options.snapshot_at && !r->snapshot_sent &&
	    host->app_execute && r->last_rn[client_id - 1000] ==
					 r->options.snapshot_at) {
		void *blob;
		size_t blob_len;
		struct oskr_buf *buf;
		if (host->app_snapshot(ctx, &blob, &blob_len) == 0) {
			if (host->buf_alloc(ctx, 1 + blob_len, &buf) == 0) {
				buf->data[0] = TOY_SNAPSHOT;
				memcpy(buf->data + 1, blob, blob_len);
				host->send_to_replica(ctx, 1, buf);
				r->snapshot_sent = true;
			}
			host->blob_free(ctx, blob);
		}
	}
}

static void toy_stateful(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct toy_replica *r = state;
	struct toy_message *m = arg;
	const struct oskr_host *host = ctx->host;
	switch (m->data[0]) {
	case TOY_REQUEST:
		toy_execute(ctx, r, m);
		break;
	case TOY_NOTIFY:
		host->count(ctx, "notified", 1);
		break;
	case TOY_SNAPSHOT:
		if (host->app_restore(ctx, m->data + 1, m->len - 1) == 0)
			host->count(ctx, "restored", 1);
		break;
	}
	free(m);
}

static void toy_replica_receive(struct oskr_ctx *ctx, void *state,
				const struct oskr_msg *msg)
{
	const struct oskr_host *host = ctx->host;
	const struct oskr_buf *buf = msg->buf;
	if (buf->len < 1 || (buf->data[0] == TOY_REQUEST && buf->len < 17)) {
		host->count(ctx, "drop_malformed", 1);
		return;
	}
	if (buf->data[0] == TOY_REQUEST && buf->len == 17 + 4 &&
	    memcmp(buf->data + 17, "MISU", 4) == 0) {
		host->submit_stateless(ctx, toy_misuse, NULL);
		return;
	}
	if (buf->data[0] == TOY_REQUEST && buf->len == 17 + 4 &&
	    memcmp(buf->data + 17, "CKPT", 4) == 0) {
		host->submit_stateful(ctx, toy_checkpoint_misuse, NULL);
		return;
	}
	struct toy_message *m = malloc(sizeof(*m) + buf->len);
	if (!m)
		return;
	m->from = msg->from;
	m->from_replica = msg->from_replica;
	m->len = buf->len;
	memcpy(m->data, buf->data, buf->len);
	if (host->submit_stateful(ctx, toy_stateful, m))
		free(m);
}

static void toy_replica_fini(struct oskr_ctx *ctx, void *state)
{
	struct toy_replica *r = state;
	if (r->tick)
		ctx->host->timer_cancel(ctx, r->tick);
	if (r->churn)
		ctx->host->timer_cancel(ctx, r->churn);
	if (r->pending_app)
		ctx->host->blob_free(ctx, r->pending_app);
}

static int toy_client_init(struct oskr_ctx *ctx, void *state)
{
	struct toy_client *c = state;
	c->info = ctx->host->info(ctx);
	return toy_read_options(ctx->host, ctx->host->conf(ctx), &c->options);
}

static void toy_client_send(struct oskr_ctx *ctx, struct toy_client *c)
{
	struct oskr_buf *buf;
	if (ctx->host->buf_alloc(ctx, 17 + c->op_len, &buf))
		return;
	buf->data[0] = TOY_REQUEST;
	put_u64(buf->data + 1, c->info->client_id);
	put_u64(buf->data + 9, c->rn);
	memcpy(buf->data + 17, c->op, c->op_len);
	ctx->host->send_to_all(ctx, buf);
}

static void toy_client_timer(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct toy_client *c = state;
	c->retransmit = 0;
	if (!c->waiting)
		return;
	ctx->host->count(ctx, "retransmits", 1);
	toy_client_send(ctx, c);
	ctx->host->timer_arm(ctx, c->options.retransmit_ms * MS,
			     toy_client_timer, NULL, &c->retransmit);
}

static int toy_client_invoke(struct oskr_ctx *ctx, void *state, uint64_t rn,
			     const void *op, size_t op_len)
{
	struct toy_client *c = state;
	if (op_len > sizeof(c->op))
		return -EMSGSIZE;
	c->rn = rn;
	memcpy(c->op, op, op_len);
	c->op_len = op_len;
	c->waiting = true;
	toy_client_send(ctx, c);
	return ctx->host->timer_arm(ctx, c->options.retransmit_ms * MS,
				    toy_client_timer, NULL, &c->retransmit);
}

static void toy_client_receive(struct oskr_ctx *ctx, void *state,
			       const struct oskr_msg *msg)
{
	struct toy_client *c = state;
	const struct oskr_host *host = ctx->host;
	const struct oskr_buf *buf = msg->buf;
	if (buf->len < 11 || buf->data[0] != TOY_REPLY ||
	    msg->from_replica != 0)
		return;
	uint64_t rn = get_u64(buf->data + 1);
	size_t result_len = buf->data[9];
	if (buf->len < 11 + result_len) {
		host->count(ctx, "drop_malformed", 1);
		return;
	}
	size_t at = 10 + result_len;
	size_t sig_len = buf->data[at];
	if (buf->len != at + 1 + sig_len) {
		host->count(ctx, "drop_malformed", 1);
		return;
	}
	if (c->options.sign &&
	    !host->verify(ctx, 0, buf->data, at, buf->data + at + 1,
			  sig_len)) {
		host->count(ctx, "drop_bad_signature", 1);
		return;
	}
	if (!c->waiting || rn != c->rn)
		return;
	c->waiting = false;
	host->timer_cancel(ctx, c->retransmit);
	c->retransmit = 0;
	host->client_complete(ctx, rn, buf->data + 10, result_len);
	if (c->options.double_complete)
		host->client_complete(ctx, rn, "different", 9);
}

static void toy_client_fini(struct oskr_ctx *ctx, void *state)
{
	struct toy_client *c = state;
	if (c->retransmit)
		ctx->host->timer_cancel(ctx, c->retransmit);
}

static const struct oskr_plugin toy_plugin = {
	OSKR_PLUGIN_HEADER,
	.name = "toy",
	.version = "0",
	.description = "sim test plugin",
	.replica_state_size = sizeof(struct toy_replica),
	.client_state_size = sizeof(struct toy_client),
	.config_check = toy_config_check,
	.replica_init = toy_replica_init,
	.replica_receive = toy_replica_receive,
	.replica_fini = toy_replica_fini,
	.client_init = toy_client_init,
	.client_invoke = toy_client_invoke,
	.client_receive = toy_client_receive,
	.client_fini = toy_client_fini,
};

/* ---- helpers ---- */

static struct oskr_sim *make_sim(uint32_t n, uint32_t m, uint64_t seed,
				 const char *options, double drop, double dup)
{
	struct oskr_sim_config c = {
		.plugin = &toy_plugin,
		.replica_count = n,
		.fault_count = 0,
		.client_count = m,
		.seed = seed,
		.protocol_options = options,
		.drop_rate = drop,
		.duplicate_rate = dup,
	};
	struct oskr_sim *sim = NULL;
	ck_assert_int_eq(oskr_sim_create(&sim, &c), 0);
	ck_assert_ptr_nonnull(sim);
	return sim;
}

/* ---- tests ---- */

struct run_summary {
	uint64_t trace, events, now, completed;
	uint64_t executed[3];
	uint64_t retransmits;
	struct oskr_sim_net_stats net;
};

static void run_once(uint64_t seed, struct run_summary *s)
{
	struct oskr_sim *sim = make_sim(3, 4, seed, NULL, 0.1, 0.1);
	s->completed = oskr_sim_run_workload(sim, 300, 10000 * MS, NULL, NULL);
	s->trace = oskr_sim_trace_digest(sim);
	s->events = oskr_sim_events(sim);
	s->now = oskr_sim_now(sim);
	for (uint32_t r = 0; r < 3; r++)
		s->executed[r] = oskr_sim_executed(sim, r);
	s->retransmits = 0;
	for (uint32_t k = 0; k < 4; k++)
		s->retransmits += oskr_sim_counter(sim, OSKR_SIM_CLIENT(k),
						   "retransmits");
	oskr_sim_net_stats(sim, &s->net);
	oskr_sim_destroy(sim);
}

START_TEST(test_determinism)
{
	struct run_summary a, b, c;
	run_once(42, &a);
	run_once(42, &b);
	run_once(43, &c);
	ck_assert_uint_eq(a.completed, 300);
	ck_assert_uint_eq(a.trace, b.trace);
	ck_assert_uint_eq(a.events, b.events);
	ck_assert_uint_eq(a.now, b.now);
	ck_assert_uint_eq(a.retransmits, b.retransmits);
	ck_assert_uint_eq(a.net.sent, b.net.sent);
	ck_assert_uint_eq(a.net.dropped, b.net.dropped);
	for (int r = 0; r < 3; r++)
		ck_assert_uint_eq(a.executed[r], b.executed[r]);
	ck_assert_uint_ne(a.trace, c.trace);
	ck_assert_uint_ne(a.now, c.now);
}
END_TEST

START_TEST(test_drop_and_duplicate_rates)
{
	struct oskr_sim *sim = make_sim(1, 2, 7, NULL, 0.3, 0.2);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 2000, 100000 * MS, NULL,
						NULL),
			  2000);
	struct oskr_sim_net_stats net;
	oskr_sim_net_stats(sim, &net);
	double drop = (double)net.dropped / (double)net.sent;
	double dup = (double)net.duplicated / (double)(net.sent - net.dropped);
	ck_assert_msg(drop > 0.25 && drop < 0.35, "drop rate %f", drop);
	ck_assert_msg(dup > 0.15 && dup < 0.25, "duplicate rate %f", dup);
	/* Retransmission made up for the loss; duplicates were absorbed. */
	ck_assert_uint_gt(oskr_sim_counter(sim, OSKR_SIM_CLIENT(0),
					   "retransmits"),
			  0);
	ck_assert_uint_gt(oskr_sim_counter(sim, 0, "duplicates"), 0);
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), 2000);
	oskr_sim_run_for(sim, 10 * MS);
	ck_assert_uint_eq(oskr_sim_live_buffers(sim), 0);
	char why[256];
	ck_assert_msg(oskr_sim_check_safety(sim, why, sizeof(why)), "%s", why);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_partition_and_heal)
{
	struct oskr_sim *sim = make_sim(3, 1, 3, NULL, 0, 0);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 10, 1000 * MS, NULL, NULL),
			  10);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert_uint_eq(oskr_sim_counter(sim, 1, "notified"), 10);
	ck_assert_uint_eq(oskr_sim_counter(sim, 2, "notified"), 10);

	/* {0, 1} | {2}: replica 2 hears nothing from replica 0, but clients
	 * still reach everyone. */
	oskr_sim_partition(sim, 0x3, false);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 10, oskr_sim_now(sim) +
							       1000 * MS,
						NULL, NULL),
			  10);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert_uint_eq(oskr_sim_counter(sim, 1, "notified"), 20);
	ck_assert_uint_eq(oskr_sim_counter(sim, 2, "notified"), 10);
	ck_assert_uint_eq(oskr_sim_executed(sim, 2), 20);

	/* Clients isolated to side A ({0}) : replicas 1 and 2 get nothing. */
	oskr_sim_partition(sim, 0x1, true);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 5, oskr_sim_now(sim) +
							      1000 * MS,
						NULL, NULL),
			  5);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), 25);
	ck_assert_uint_eq(oskr_sim_executed(sim, 1), 20);
	ck_assert_uint_eq(oskr_sim_executed(sim, 2), 20);

	oskr_sim_heal(sim);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 5, oskr_sim_now(sim) +
							      1000 * MS,
						NULL, NULL),
			  5);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert_uint_eq(oskr_sim_counter(sim, 2, "notified"), 15);
	ck_assert_uint_eq(oskr_sim_executed(sim, 1), 25);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_crash_and_restart)
{
	struct oskr_sim *sim = make_sim(3, 1, 5, "tick_ms: 1\n", 0, 0);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 10, 1000 * MS, NULL, NULL),
			  10);
	oskr_sim_crash(sim, 1);
	ck_assert(oskr_sim_is_crashed(sim, 1));
	uint64_t executed = oskr_sim_executed(sim, 1);
	ck_assert_uint_eq(oskr_sim_live_timers(sim, 1), 0);
	uint64_t ticks = oskr_sim_counter(sim, 1, "ticks");
	uint64_t notified = oskr_sim_counter(sim, 1, "notified");
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 10, oskr_sim_now(sim) +
							       1000 * MS,
						NULL, NULL),
			  10);
	oskr_sim_run_for(sim, 5 * MS);
	ck_assert_uint_eq(oskr_sim_executed(sim, 1), executed);
	ck_assert_uint_eq(oskr_sim_counter(sim, 1, "ticks"), ticks);
	ck_assert_uint_eq(oskr_sim_counter(sim, 1, "notified"), notified);
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), 20);

	ck_assert_int_eq(oskr_sim_restart(sim, 1), 0);
	ck_assert(!oskr_sim_is_crashed(sim, 1));
	ck_assert_uint_eq(oskr_sim_executed(sim, 1), 0);
	ck_assert_uint_eq(oskr_sim_live_timers(sim, 1), 1); /* the tick */
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 3, oskr_sim_now(sim) +
							      1000 * MS,
						NULL, NULL),
			  3);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert_uint_eq(oskr_sim_executed(sim, 1), 3);
	oskr_sim_run_for(sim, 5 * MS);
	ck_assert_uint_gt(oskr_sim_counter(sim, 1, "ticks"), ticks);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_timers)
{
	struct oskr_sim *sim = make_sim(1, 0, 1, "tick_ms: 1ms\n", 0, 0);
	oskr_sim_run_for(sim, 10 * MS);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "ticks"), 10);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "cancelled"), 1);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "never_fired"), 0);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "cancel_enoent"), 1);
	ck_assert_uint_eq(oskr_sim_live_timers(sim, 0), 1);
	ck_assert_uint_eq(oskr_sim_now(sim), 10 * MS);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_cancelled_timers_never_fire)
{
	struct oskr_sim *sim = make_sim(1, 4, 1, "churn: true\n", 0, 0);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 10000, 1000 * MS, NULL,
						NULL),
			  10000);
	ck_assert_uint_eq(oskr_sim_live_timers(sim, 0), 1);
	oskr_sim_run_for(sim, 2000 * MS);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "churn_fired"), 1);
	ck_assert_uint_eq(oskr_sim_live_timers(sim, 0), 0);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_stateful_only_services_refused_in_stateless)
{
	struct oskr_sim *sim = make_sim(1, 1, 1, NULL, 0, 0);
	uint8_t msg[21] = { TOY_REQUEST };
	memcpy(msg + 17, "MISU", 4);
	ck_assert_int_eq(oskr_sim_inject(sim, OSKR_SIM_CLIENT(0), 0, msg,
					 sizeof(msg)),
			 0);
	oskr_sim_run_for(sim, 1 * MS);
	/* timer_arm and checkpoint_stable from a stateless task */
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "refused"), 2);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "sim_misuse"), 2);

	/* checkpoint_resume outside init, a foreign app blob: refused,
	 * counted, and no checkpoint recorded */
	memcpy(msg + 17, "CKPT", 4);
	ck_assert_int_eq(oskr_sim_inject(sim, OSKR_SIM_CLIENT(0), 0, msg,
					 sizeof(msg)),
			 0);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "refused"), 4);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "sim_misuse"), 4);
	uint64_t count = 99;
	ck_assert(!oskr_sim_last_checkpoint(sim, 0, NULL, &count));
	ck_assert_uint_eq(count, 0);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_safety_detects_divergence)
{
	char why[256];
	struct oskr_sim *sim = make_sim(2, 1, 9, NULL, 0, 0);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 20, 1000 * MS, NULL, NULL),
			  20);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert_uint_eq(oskr_sim_executed(sim, 1), 20);
	ck_assert_msg(oskr_sim_check_safety(sim, why, sizeof(why)), "%s", why);
	oskr_sim_destroy(sim);

	sim = make_sim(2, 1, 9, "corrupt_replica: 1\n", 0, 0);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 20, 1000 * MS, NULL, NULL),
			  20);
	ck_assert(!oskr_sim_check_safety(sim, why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "different sequences"));
	oskr_sim_destroy(sim);

	/* The bad replica marked Byzantine is excluded. */
	sim = make_sim(2, 1, 9, "corrupt_replica: 1\n", 0, 0);
	oskr_sim_set_byzantine(sim, 1, true);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 20, 1000 * MS, NULL, NULL),
			  20);
	ck_assert_msg(oskr_sim_check_safety(sim, why, sizeof(why)), "%s", why);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_safety_detects_two_results)
{
	char why[256];
	struct oskr_sim *sim = make_sim(1, 1, 9, "double_complete: true\n", 0,
					0);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 2, 1000 * MS, NULL, NULL),
			  2);
	ck_assert(!oskr_sim_check_safety(sim, why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "two different results"));
	oskr_sim_destroy(sim);
}
END_TEST

static bool drop_client_to_replica_1(void *arg, int32_t src, int32_t dst,
				     uint8_t *data, uint32_t *len,
				     uint32_t capacity)
{
	bool *cut = arg;
	return !(*cut && OSKR_SIM_IS_CLIENT(src) && dst == 1);
}

START_TEST(test_snapshot_restore_continues_position)
{
	char why[256];
	struct oskr_sim_config c = {
		.plugin = &toy_plugin,
		.replica_count = 2,
		.client_count = 1,
		.seed = 11,
		.app = "kv",
		.protocol_options = "snapshot_at: 10\n",
	};
	struct oskr_sim *sim;
	ck_assert_int_eq(oskr_sim_create(&sim, &c), 0);
	/* Replica 1 misses ops 1..10 (clients cannot reach it), then
	 * restores replica 0's snapshot taken at op 10 and continues from
	 * there. */
	bool cut = true;
	oskr_sim_set_filter(sim, drop_client_to_replica_1, &cut);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 10, 1000 * MS, NULL, NULL),
			  10);
	ck_assert_uint_eq(oskr_sim_executed(sim, 1), 0);
	cut = false;
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert_uint_eq(oskr_sim_counter(sim, 1, "restored"), 1);
	ck_assert_uint_ge(oskr_sim_executed(sim, 1), 10);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 10, oskr_sim_now(sim) +
							       1000 * MS,
						NULL, NULL),
			  10);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), 20);
	ck_assert_uint_eq(oskr_sim_executed(sim, 1), 20);
	ck_assert_msg(oskr_sim_check_safety(sim, why, sizeof(why)), "%s", why);
	oskr_sim_destroy(sim);
}
END_TEST

static struct oskr_sim *make_kv_sim(uint32_t n, uint64_t seed,
				    const char *options)
{
	struct oskr_sim_config c = {
		.plugin = &toy_plugin,
		.replica_count = n,
		.client_count = 1,
		.seed = seed,
		.app = "kv",
		.protocol_options = options,
	};
	struct oskr_sim *sim = NULL;
	ck_assert_int_eq(oskr_sim_create(&sim, &c), 0);
	return sim;
}

START_TEST(test_checkpoint_restart_resumes)
{
	char why[256];
	uint64_t op = 0, count = 0;
	struct oskr_sim *sim = make_kv_sim(3, 21, "checkpoint_every: 5\n");
	ck_assert(!oskr_sim_last_checkpoint(sim, 1, &op, &count));
	ck_assert_uint_eq(count, 0);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 12, 1000 * MS, NULL, NULL),
			  12);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert(oskr_sim_last_checkpoint(sim, 1, &op, &count));
	ck_assert_uint_eq(op, 10);
	ck_assert_uint_eq(count, 2);

	/* Replica 1 comes back holding op 10's state, not empty: the
	 * protocol state (ops, last request numbers) came back with it. */
	ck_assert_int_eq(oskr_sim_restart_from_checkpoint(sim, 1), 0);
	ck_assert_uint_eq(oskr_sim_executed(sim, 1), 10);
	ck_assert_uint_eq(oskr_sim_counter(sim, 1, "resumed"), 1);
	const struct toy_replica *r = oskr_sim_replica_state(sim, 1);
	ck_assert_uint_eq(r->ops, 10);
	ck_assert_uint_eq(r->last_rn[0], 10);
	/* The checker compared the restored position with the others. */
	ck_assert_msg(oskr_sim_check_safety(sim, why, sizeof(why)), "%s", why);

	/* The checkpoint survives a restart: restarting again resumes from
	 * it again; a plain restart ignores it. */
	ck_assert_int_eq(oskr_sim_restart_from_checkpoint(sim, 1), 0);
	ck_assert_uint_eq(oskr_sim_counter(sim, 1, "resumed"), 2);
	ck_assert_int_eq(oskr_sim_restart(sim, 1), 0);
	ck_assert_uint_eq(oskr_sim_executed(sim, 1), 0);
	ck_assert_uint_eq(oskr_sim_counter(sim, 1, "resumed"), 2);
	r = oskr_sim_replica_state(sim, 1);
	ck_assert_uint_eq(r->ops, 0);
	ck_assert(oskr_sim_last_checkpoint(sim, 1, &op, NULL));
	ck_assert_uint_eq(op, 10);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_checkpoint_resume_continues)
{
	char why[256];
	uint64_t op = 0, count = 0;
	/* Crash exactly at a checkpoint: the resumed replica takes part in
	 * the ops after it as if it had never been down. */
	struct oskr_sim *sim = make_kv_sim(3, 22, "checkpoint_every: 5\n");
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 10, 1000 * MS, NULL, NULL),
			  10);
	oskr_sim_run_for(sim, 1 * MS);
	oskr_sim_crash(sim, 2);
	ck_assert_int_eq(oskr_sim_restart_from_checkpoint(sim, 2), 0);
	ck_assert_uint_eq(oskr_sim_executed(sim, 2), 10);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 10, oskr_sim_now(sim) +
							       1000 * MS,
						NULL, NULL),
			  10);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert_uint_eq(oskr_sim_executed(sim, 2), 20);
	/* ops continued from 10, so checkpoints at 15 and 20 followed */
	ck_assert(oskr_sim_last_checkpoint(sim, 2, &op, &count));
	ck_assert_uint_eq(op, 20);
	ck_assert_uint_eq(count, 4);
	ck_assert_msg(oskr_sim_check_safety(sim, why, sizeof(why)), "%s", why);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_checkpoint_given_blob_is_kept)
{
	char why[256];
	uint64_t op = 0;
	/* The snapshot taken at op 5 is declared at op 6: the sim keeps the
	 * blob it was given, so the replica comes back at op 5. */
	struct oskr_sim *sim = make_kv_sim(
		3, 23, "checkpoint_every: 5\ncheckpoint_delayed: true\n");
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 6, 1000 * MS, NULL, NULL),
			  6);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert(oskr_sim_last_checkpoint(sim, 1, &op, NULL));
	ck_assert_uint_eq(op, 5);
	ck_assert_int_eq(oskr_sim_restart_from_checkpoint(sim, 1), 0);
	ck_assert_uint_eq(oskr_sim_executed(sim, 1), 5);
	const struct toy_replica *r = oskr_sim_replica_state(sim, 1);
	ck_assert_uint_eq(r->ops, 5);
	ck_assert_msg(oskr_sim_check_safety(sim, why, sizeof(why)), "%s", why);

	/* The toy has no state transfer: replica 1 never gets op 6 and
	 * executes op 7 at position 6. The record is "checkpoint + ops
	 * after", so the checker sees the gap. */
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 3, oskr_sim_now(sim) +
							      1000 * MS,
						NULL, NULL),
			  3);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert(!oskr_sim_check_safety(sim, why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "different sequences"));
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_checkpoint_restart_without_one_is_plain)
{
	struct oskr_sim *sim = make_kv_sim(3, 24, NULL);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 7, 1000 * MS, NULL, NULL),
			  7);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert(!oskr_sim_last_checkpoint(sim, 1, NULL, NULL));
	ck_assert_int_eq(oskr_sim_restart_from_checkpoint(sim, 1), 0);
	ck_assert(!oskr_sim_is_crashed(sim, 1));
	ck_assert_uint_eq(oskr_sim_executed(sim, 1), 0);
	ck_assert_uint_eq(oskr_sim_counter(sim, 1, "resumed"), 0);
	ck_assert_int_eq(oskr_sim_restart_from_checkpoint(sim, 3), -EINVAL);
	oskr_sim_destroy(sim);
}
END_TEST

static bool corrupt_reply_signature(void *arg, int32_t src, int32_t dst,
				    uint8_t *data, uint32_t *len,
				    uint32_t capacity)
{
	if (OSKR_SIM_IS_CLIENT(dst) && *len > 2 && data[0] == TOY_REPLY)
		data[*len - 1] ^= 0x40;
	return true;
}

static void run_signed(bool real)
{
	struct oskr_sim_config c = {
		.plugin = &toy_plugin,
		.replica_count = 1,
		.client_count = 1,
		.seed = 5,
		.protocol_options = "sign: true\n",
		.real_signatures = real,
	};
	struct oskr_sim *sim;
	ck_assert_int_eq(oskr_sim_create(&sim, &c), 0);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 20, 1000 * MS, NULL, NULL),
			  20);
	ck_assert_uint_eq(oskr_sim_counter(sim, OSKR_SIM_CLIENT(0),
					   "drop_bad_signature"),
			  0);
	oskr_sim_set_filter(sim, corrupt_reply_signature, NULL);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 1, oskr_sim_now(sim) +
							      20 * MS,
						NULL, NULL),
			  0);
	ck_assert_uint_gt(oskr_sim_counter(sim, OSKR_SIM_CLIENT(0),
					   "drop_bad_signature"),
			  0);
	oskr_sim_set_filter(sim, NULL, NULL);
	oskr_sim_run_for(sim, 20 * MS);
	ck_assert(!oskr_sim_client_busy(sim, 0));

	/* sign_as makes the same signatures as the replica's own key. */
	uint8_t sig[OSKR_SIGNATURE_MAX];
	size_t sig_len = 0;
	ck_assert_int_eq(oskr_sim_sign_as(sim, 0, "abc", 3, sig, &sig_len), 0);
	ck_assert_uint_gt(sig_len, 0);
	ck_assert_int_eq(oskr_sim_sign_as(sim, 1, "abc", 3, sig, &sig_len),
			 -EINVAL);
	oskr_sim_destroy(sim);
}

START_TEST(test_fast_signatures)
{
	run_signed(false);
}
END_TEST

START_TEST(test_real_signatures)
{
	run_signed(true);
}
END_TEST

START_TEST(test_bad_config_refused)
{
	struct oskr_sim_config c = {
		.plugin = &toy_plugin,
		.replica_count = 1,
		.client_count = 1,
		.protocol_options = "no_such_key: 1\n",
	};
	struct oskr_sim *sim = NULL;
	ck_assert_int_eq(oskr_sim_create(&sim, &c), -EINVAL);
	c.protocol_options = "tick_ms: [1, 2]\n";
	ck_assert_int_eq(oskr_sim_create(&sim, &c), -EINVAL);
	c.protocol_options = NULL;
	c.app = "nope";
	ck_assert_int_eq(oskr_sim_create(&sim, &c), -EINVAL);
	c.app = NULL;
	c.replica_count = 0;
	ck_assert_int_eq(oskr_sim_create(&sim, &c), -EINVAL);
}
END_TEST

START_TEST(test_invoke_busy_and_results)
{
	struct oskr_sim_config c = {
		.plugin = &toy_plugin,
		.replica_count = 1,
		.client_count = 1,
		.seed = 2,
		.app = "kv",
	};
	struct oskr_sim *sim;
	ck_assert_int_eq(oskr_sim_create(&sim, &c), 0);
	uint8_t op[64];
	size_t op_len = oskr_kv_encode_put(op, sizeof(op), "k", 1, "v1", 2);
	uint64_t rn = 0;
	ck_assert_int_eq(oskr_sim_invoke(sim, 0, op, op_len, &rn), 0);
	ck_assert_uint_eq(rn, 1);
	ck_assert_int_eq(oskr_sim_invoke(sim, 0, op, op_len, NULL), -EBUSY);
	ck_assert(oskr_sim_client_busy(sim, 0));
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert(!oskr_sim_client_busy(sim, 0));
	op_len = oskr_kv_encode_get(op, sizeof(op), "k", 1);
	ck_assert_int_eq(oskr_sim_invoke(sim, 0, op, op_len, &rn), 0);
	ck_assert_uint_eq(rn, 2);
	oskr_sim_run_for(sim, 1 * MS);
	size_t len = 0;
	const uint8_t *result = oskr_sim_client_result(sim, 0, &len);
	ck_assert_ptr_nonnull(result);
	ck_assert_uint_eq(len, 3);
	ck_assert_int_eq(result[0], OSKR_KV_OK);
	ck_assert_int_eq(memcmp(result + 1, "v1", 2), 0);
	ck_assert_uint_eq(oskr_sim_completed(sim), 2);
	oskr_sim_destroy(sim);
}
END_TEST

static Suite *sim_suite(void)
{
	Suite *s = suite_create("sim");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_determinism);
	tcase_add_test(tc, test_drop_and_duplicate_rates);
	tcase_add_test(tc, test_partition_and_heal);
	tcase_add_test(tc, test_crash_and_restart);
	tcase_add_test(tc, test_timers);
	tcase_add_test(tc, test_cancelled_timers_never_fire);
	tcase_add_test(tc, test_stateful_only_services_refused_in_stateless);
	tcase_add_test(tc, test_safety_detects_divergence);
	tcase_add_test(tc, test_safety_detects_two_results);
	tcase_add_test(tc, test_snapshot_restore_continues_position);
	tcase_add_test(tc, test_checkpoint_restart_resumes);
	tcase_add_test(tc, test_checkpoint_resume_continues);
	tcase_add_test(tc, test_checkpoint_given_blob_is_kept);
	tcase_add_test(tc, test_checkpoint_restart_without_one_is_plain);
	tcase_add_test(tc, test_fast_signatures);
	tcase_add_test(tc, test_real_signatures);
	tcase_add_test(tc, test_bad_config_refused);
	tcase_add_test(tc, test_invoke_busy_and_results);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sim_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
