/* SPDX-License-Identifier: MIT */
/*
 * The client side. A request goes to every replica (leaders rotate every
 * view, so there is no single primary to target); every correct replica
 * executes it once committed and sends a signed reply. f + 1 matching
 * replies from distinct replicas include one from a correct replica, so
 * the result is the committed one. Retransmission to all replicas every
 * client_retry (doubling, capped at 8x) covers lost requests and replies;
 * replicas answer a retransmitted, already executed request from their
 * reply cache.
 */
#include <stdlib.h>
#include <string.h>

#include "hotstuff.h"
#include "client.h"

static void clear_results(struct oskr__hs_client *c)
{
	for (uint32_t i = 0; i < c->result_count; i++)
		free(c->results[i].bytes);
	c->result_count = 0;
	c->replied = 0;
}

static int send_request(struct oskr_ctx *ctx, struct oskr__hs_client *c)
{
	struct oskr__hs_writer w;
	struct oskr_buf *buf;
	int err;

	err = ctx->host->buf_alloc(ctx, OSKR__HS_HEADER_SIZE + 8 + 8 + 4 +
						c->op_len,
				   &buf);
	if (err)
		return err;
	oskr__hs_writer_init(&w, buf->data, buf->capacity);
	oskr__hs_put_header(&w, OSKR__HS_MSG_REQUEST);
	oskr__hs_put_u64(&w, c->client_id);
	oskr__hs_put_u64(&w, c->request_number);
	oskr__hs_put_u32(&w, c->op_len);
	oskr__hs_put_bytes(&w, c->op, c->op_len);
	buf->len = (uint32_t)w.len;
	return ctx->host->send_to_all(ctx, buf);
}

static void on_retry(struct oskr_ctx *ctx, void *state, void *arg);

static void arm_retry(struct oskr_ctx *ctx, struct oskr__hs_client *c)
{
	if (ctx->host->timer_arm(ctx, c->retry_ns, on_retry, NULL,
				 &c->retry_timer))
		c->retry_timer = 0;
}

static void on_retry(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct oskr__hs_client *c = state;

	c->retry_timer = 0;
	if (!c->busy)
		return;
	ctx->host->count(ctx, "retransmissions", 1);
	send_request(ctx, c);
	if (c->retry_ns < c->base_retry_ns * 8)
		c->retry_ns *= 2;
	arm_retry(ctx, c);
}

int oskr__hs_client_init(struct oskr_ctx *ctx, void *state)
{
	struct oskr__hs_client *c = state;
	const struct oskr_instance_info *info = ctx->host->info(ctx);
	struct oskr__hs_options opt;
	int err;

	if (info->replica_count == 0 ||
	    info->replica_count > OSKR__HS_MAX_REPLICAS)
		return -EINVAL;
	err = oskr__hs_options_read(ctx->host, ctx->host->conf(ctx), &opt);
	if (err)
		return err;
	c->client_id = info->client_id;
	c->n = info->replica_count;
	c->f = info->fault_count;
	c->base_retry_ns = opt.client_retry_ns;
	return 0;
}

int oskr__hs_client_invoke(struct oskr_ctx *ctx, void *state,
			   uint64_t request_number, const void *op,
			   size_t op_len)
{
	struct oskr__hs_client *c = state;
	uint8_t *copy;

	if (c->busy)
		return -EBUSY;
	if (op_len > ctx->host->info(ctx)->max_message)
		return -EMSGSIZE;
	copy = malloc(op_len ? op_len : 1);
	if (!copy)
		return -ENOMEM;
	if (op_len)
		memcpy(copy, op, op_len);
	free(c->op);
	c->op = copy;
	c->op_len = (uint32_t)op_len;
	c->request_number = request_number;
	c->busy = true;
	clear_results(c);
	c->retry_ns = c->base_retry_ns;
	/* A failed first send is not an error: the retry timer resends. */
	send_request(ctx, c);
	if (c->retry_timer)
		ctx->host->timer_cancel(ctx, c->retry_timer);
	arm_retry(ctx, c);
	return 0;
}

static void complete(struct oskr_ctx *ctx, struct oskr__hs_client *c,
		     const uint8_t *result, uint32_t len)
{
	c->busy = false;
	if (c->retry_timer)
		ctx->host->timer_cancel(ctx, c->retry_timer);
	c->retry_timer = 0;
	ctx->host->client_complete(ctx, c->request_number, result, len);
	clear_results(c);
}

void oskr__hs_client_receive(struct oskr_ctx *ctx, void *state,
			     const struct oskr_msg *msg)
{
	struct oskr__hs_client *c = state;
	struct oskr__hs_reply_ref r;
	struct oskr__hs_client_result *match = NULL;
	uint8_t digest[OSKR__HS_DIGEST];

	if (!oskr__hs_decode_reply(msg->buf->data, msg->buf->len, &r)) {
		oskr__hs_drop(ctx, "drop_malformed");
		return;
	}
	if (!c->busy || r.client_id != c->client_id ||
	    r.request_number != c->request_number) {
		oskr__hs_drop(ctx, "drop_stale_reply");
		return;
	}
	if (r.replica >= c->n || (c->replied & (1ull << r.replica)))
		return;
	if (!ctx->host->verify(ctx, r.replica, msg->buf->data, r.signed_len,
			       r.sig, r.sig_len)) {
		oskr__hs_drop(ctx, "drop_bad_signature");
		return;
	}
	c->replied |= 1ull << r.replica;
	ctx->host->digest(ctx, r.result, r.result_len, digest);
	for (uint32_t i = 0; i < c->result_count; i++)
		if (!memcmp(c->results[i].digest, digest, OSKR__HS_DIGEST))
			match = &c->results[i];
	if (!match) {
		if (c->result_count >= OSKR__HS_MAX_REPLICAS)
			return;
		match = &c->results[c->result_count];
		match->bytes = malloc(r.result_len ? r.result_len : 1);
		if (!match->bytes)
			return;
		memcpy(match->bytes, r.result, r.result_len);
		memcpy(match->digest, digest, OSKR__HS_DIGEST);
		match->len = r.result_len;
		match->votes = 0;
		c->result_count++;
	}
	/* f + 1 matching replies: at least one correct replica executed
	 * the request at this result. */
	if (++match->votes >= c->f + 1)
		complete(ctx, c, match->bytes, match->len);
}

void oskr__hs_client_fini(struct oskr_ctx *ctx, void *state)
{
	struct oskr__hs_client *c = state;

	if (c->retry_timer)
		ctx->host->timer_cancel(ctx, c->retry_timer);
	c->retry_timer = 0;
	clear_results(c);
	free(c->op);
	c->op = NULL;
}
