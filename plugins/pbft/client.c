/* SPDX-License-Identifier: MIT */
/*
 * The client side (TOCS'02 §4.1): send the request to the primary of the
 * last view learned from replies; if no result arrives in time, send it
 * to every replica (backups relay it to the primary and start their
 * view-change timers) and retransmit with exponential back-off. A result
 * is accepted after f+1 replies with the same result from distinct
 * replicas, each signed: at least one comes from a correct replica.
 */
#include "pbft.h"

#include <stdlib.h>

/* Back-off stops doubling at this multiple of the first timeout. */
#define PBFT_CLIENT_BACKOFF_MAX 16

static void send_request(struct oskr_ctx *ctx, struct pbft_client *c,
			 bool to_all)
{
	struct oskr_buf *buf;
	if (ctx->host->buf_alloc(ctx, c->request_len, &buf))
		return;
	memcpy(buf->data, c->request, c->request_len);
	buf->len = (uint32_t)c->request_len;
	if (to_all)
		ctx->host->send_to_all(ctx, buf);
	else
		ctx->host->send_to_replica(ctx, (uint32_t)(c->view % c->n),
					   buf);
}

static void retry_fired(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct pbft_client *c = state;
	c->retry_timer = 0;
	if (!c->busy)
		return;
	ctx->host->count(ctx, "client_retransmits", 1);
	send_request(ctx, c, true);
	if (c->retry_ns < c->retry_base_ns * PBFT_CLIENT_BACKOFF_MAX)
		c->retry_ns *= 2;
	if (ctx->host->timer_arm(ctx, c->retry_ns, retry_fired, NULL,
				 &c->retry_timer))
		c->retry_timer = 0;
}

int oskr__pbft_client_init(struct oskr_ctx *ctx, void *state)
{
	struct pbft_client *c = state;
	const struct oskr_instance_info *info = ctx->host->info(ctx);
	struct pbft_options opt;
	int err = oskr__pbft_options_read(ctx->host, ctx->host->conf(ctx),
					  info->replica_count,
					  info->fault_count, &opt);
	if (err)
		return err;
	c->n = info->replica_count;
	c->f = info->fault_count;
	c->client_id = info->client_id;
	c->retry_base_ns = opt.client_retry_ns;
	c->reply_digest = calloc(c->n, sizeof(*c->reply_digest));
	c->reply_view = calloc(c->n, sizeof(*c->reply_view));
	if (!c->reply_digest || !c->reply_view) {
		free(c->reply_digest);
		free(c->reply_view);
		return -ENOMEM;
	}
	return 0;
}

int oskr__pbft_client_invoke(struct oskr_ctx *ctx, void *state,
			     uint64_t request_number, const void *op,
			     size_t op_len)
{
	struct pbft_client *c = state;
	size_t len = 1 + 8 + 8 + 4 + op_len;
	if (c->busy)
		return -EBUSY;
	if (len > ctx->host->info(ctx)->max_message)
		return -EMSGSIZE;
	uint8_t *request = malloc(len);
	if (!request)
		return -ENOMEM;
	struct pbft_writer w = { .data = request, .capacity = len };
	pbft_put_u8(&w, PBFT_REQUEST);
	pbft_put_u64(&w, c->client_id);
	pbft_put_u64(&w, request_number);
	pbft_put_u32(&w, (uint32_t)op_len);
	pbft_put(&w, op, op_len);
	free(c->request);
	c->request = request;
	c->request_len = len;
	c->request_number = request_number;
	c->reply_mask = 0;
	c->busy = true;
	c->retry_ns = c->retry_base_ns;
	send_request(ctx, c, false);
	if (c->retry_timer)
		ctx->host->timer_cancel(ctx, c->retry_timer);
	if (ctx->host->timer_arm(ctx, c->retry_ns, retry_fired, NULL,
				 &c->retry_timer))
		c->retry_timer = 0;
	return 0;
}

void oskr__pbft_client_receive(struct oskr_ctx *ctx, void *state,
			       const struct oskr_msg *msg)
{
	struct pbft_client *c = state;
	struct pbft_msg m;
	const char *why;
	if (oskr__pbft_decode(msg->buf->data, msg->buf->len, c->n, &m, &why)) {
		oskr__pbft_drop(ctx, why);
		return;
	}
	if (m.type != PBFT_REPLY) {
		oskr__pbft_drop(ctx, "unexpected_type");
		return;
	}
	if (!c->busy || m.reply.client_id != c->client_id ||
	    m.reply.request_number != c->request_number)
		return; /* late or duplicate reply */
	if (!ctx->host->verify(ctx, m.replica, m.signed_body, m.signed_len,
			       m.sig, m.sig_len)) {
		oskr__pbft_drop(ctx, "bad_signature");
		return;
	}
	ctx->host->digest(ctx, m.reply.result, m.reply.result_len,
			  c->reply_digest[m.replica]);
	c->reply_view[m.replica] = m.reply.view;
	c->reply_mask |= UINT64_C(1) << m.replica;

	uint32_t matching = 0;
	uint64_t view = 0;
	for (uint32_t i = 0; i < c->n; i++) {
		if (!(c->reply_mask & (UINT64_C(1) << i)) ||
		    memcmp(c->reply_digest[i], c->reply_digest[m.replica],
			   PBFT_DIGEST))
			continue;
		matching++;
		if (c->reply_view[i] > view)
			view = c->reply_view[i];
	}
	if (matching < c->f + 1)
		return;
	/* f+1 matching replies: at least one correct replica vouches for
	 * the result; their views tell us the primary. */
	if (view > c->view)
		c->view = view;
	c->busy = false;
	if (c->retry_timer) {
		ctx->host->timer_cancel(ctx, c->retry_timer);
		c->retry_timer = 0;
	}
	ctx->host->client_complete(ctx, c->request_number, m.reply.result,
				   m.reply.result_len);
}

void oskr__pbft_client_fini(struct oskr_ctx *ctx, void *state)
{
	struct pbft_client *c = state;
	if (c->retry_timer)
		ctx->host->timer_cancel(ctx, c->retry_timer);
	free(c->request);
	free(c->reply_digest);
	free(c->reply_view);
	memset(c, 0, sizeof(*c));
}
