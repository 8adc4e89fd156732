/* SPDX-License-Identifier: MIT */
/*
 * The normal case (TOCS'02 §4.2): requests, batching at the primary,
 * pre-prepare, prepare, commit, in-order execution and replies. Also the
 * view-change timer of §4.5.2 and the retransmission of our own votes.
 */
#include "pbft.h"

#include <stdlib.h>

static const struct pbft_dest to_all = { .kind = PBFT_TO_ALL };

/* Largest batch that fits in one PRE-PREPARE. */
static size_t max_batch_bytes(const struct pbft_replica *r)
{
	return r->max_message - PBFT_ORDER_BODY - PBFT_SIG_TRAILER_MAX - 4;
}

/* ---- replies (TOCS'02 §4.1) ---- */

void oskr__pbft_send_reply(struct oskr_ctx *ctx, struct pbft_replica *r,
			   const struct pbft_client_record *rec,
			   const struct oskr_addr *to)
{
	struct pbft_writer w;
	struct oskr_buf *buf =
		oskr__pbft_alloc(ctx, 1 + 8 * 3 + 2 + 4 + rec->result_len, &w);
	if (!buf)
		return;
	pbft_put_u8(&w, PBFT_REPLY);
	pbft_put_u64(&w, r->view);
	pbft_put_u64(&w, rec->client_id);
	pbft_put_u64(&w, rec->request_number);
	pbft_put_u16(&w, (uint16_t)r->id);
	pbft_put_u32(&w, rec->result_len);
	pbft_put(&w, rec->result, rec->result_len);
	if (w.overflow) {
		oskr__pbft_drop(ctx, "reply_too_large");
		ctx->host->buf_release(buf);
		return;
	}
	/* Replies are the most frequent signed message (one per request,
	 * not per batch): sign them on the worker pool. */
	struct pbft_dest dest = { .kind = PBFT_TO_ADDR, .addr = *to };
	oskr__pbft_seal_and_send_async(ctx, buf, w.len, &dest);
}

/* ---- the view-change timer (TOCS'02 §4.5.2) ---- */

static void vc_timer_fired(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct pbft_replica *r = state;
	if (r->stopped)
		return;
	r->vc_timer = 0;
	oskr__pbft_start_view_change(ctx, r, r->view + 1);
}

/* A backup waits for the oldest pending request: the timer runs while
 * that request is not executed; when it is, the timer restarts for the
 * next one. Progress on other requests does not reset it, so a primary
 * cannot starve one client while serving others. */
void oskr__pbft_update_vc_timer(struct oskr_ctx *ctx, struct pbft_replica *r)
{
	if (r->view_changing)
		return; /* the timer waits for NEW-VIEW (view_change.c) */
	const struct pbft_pending *oldest = r->pending.queue.head;
	if (!oldest || pbft_is_primary(r)) {
		if (r->vc_timer) {
			ctx->host->timer_cancel(ctx, r->vc_timer);
			r->vc_timer = 0;
		}
		return;
	}
	if (r->vc_timer && r->vc_timer_client == oldest->req.client_id &&
	    r->vc_timer_request == oldest->req.request_number)
		return;
	if (r->vc_timer)
		ctx->host->timer_cancel(ctx, r->vc_timer);
	r->vc_timer_client = oldest->req.client_id;
	r->vc_timer_request = oldest->req.request_number;
	if (ctx->host->timer_arm(ctx, r->vc_timeout_ns, vc_timer_fired, NULL,
				 &r->vc_timer))
		r->vc_timer = 0;
}

/* ---- requests ---- */

void oskr__pbft_relay(struct oskr_ctx *ctx, struct pbft_replica *r,
		      const struct pbft_request *req)
{
	struct pbft_writer w;
	struct oskr_buf *buf = oskr__pbft_alloc(
		ctx, 1 + 2 + pbft_request_size(req->op_len), &w);
	if (!buf)
		return;
	pbft_put_u8(&w, PBFT_RELAY);
	pbft_put_u16(&w, (uint16_t)r->id);
	oskr__pbft_put_request(&w, req);
	struct pbft_dest dest = { .kind = PBFT_TO_REPLICA,
				  .replica = pbft_primary(r, r->view) };
	oskr__pbft_seal_and_send_async(ctx, buf, w.len, &dest);
}

/* A client's REQUEST, or a backup's RELAY of one (TOCS'02 §4.1, §4.2). */
void oskr__pbft_on_request(struct oskr_ctx *ctx, struct pbft_replica *r,
			   const struct pbft_msg *m,
			   const struct oskr_addr *from)
{
	struct pbft_request req = m->request;
	if (m->type == PBFT_REQUEST)
		req.addr = *from;
	if (pbft_request_size(req.op_len) + 4 > max_batch_bytes(r)) {
		oskr__pbft_drop(ctx, "request_too_large");
		return;
	}
	const struct pbft_client_record *rec =
		oskr__pbft_client_find(&r->clients, req.client_id);
	if (rec && req.request_number <= rec->request_number) {
		/* Executed already: answer from the table, never execute
		 * twice. Older numbers are stale and dropped. */
		if (req.request_number == rec->request_number)
			oskr__pbft_send_reply(ctx, r, rec, &req.addr);
		else
			oskr__pbft_drop(ctx, "stale_request");
		return;
	}
	int err = oskr__pbft_pending_add(&r->pending, &req,
					 ctx->host->now_ns(ctx));
	if (err == -ENOSPC || err == -ENOMEM) {
		oskr__pbft_drop(ctx, "pending_full");
		return;
	}
	if (r->view_changing)
		return; /* kept: proposed or relayed in the new view */
	if (pbft_is_primary(r)) {
		oskr__pbft_try_propose(ctx, r);
		return;
	}
	/* A backup relays a client's request to the primary (the client may
	 * have broadcast it because the primary ignored it) and starts its
	 * timer (TOCS'02 §4.5.2). */
	if (m->type == PBFT_REQUEST)
		oskr__pbft_relay(ctx, r, &req);
	oskr__pbft_update_vc_timer(ctx, r);
}

/* ---- batching at the primary ---- */

static void batch_timer_fired(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct pbft_replica *r = state;
	if (r->stopped)
		return;
	r->batch_timer = 0;
	oskr__pbft_try_propose(ctx, r);
}

static void send_pre_prepare(struct oskr_ctx *ctx, struct pbft_replica *r,
			     const struct pbft_entry *e,
			     const struct pbft_dest *dest)
{
	struct pbft_writer w;
	struct oskr_buf *buf = oskr__pbft_alloc(
		ctx, PBFT_ORDER_BODY + PBFT_SIG_TRAILER_MAX + 4 + e->batch_len,
		&w);
	if (!buf)
		return;
	uint8_t body[PBFT_ORDER_BODY];
	oskr__pbft_order_body(body, PBFT_PRE_PREPARE, e->view, e->seq,
			      e->digest, (uint16_t)r->id);
	pbft_put(&w, body, sizeof(body));
	pbft_put_u8(&w, e->pp_sig_len);
	pbft_put(&w, e->pp_sig, e->pp_sig_len);
	pbft_put_u32(&w, e->batch_len);
	pbft_put(&w, e->batch, e->batch_len);
	if (w.overflow) {
		ctx->host->buf_release(buf);
		return;
	}
	buf->len = (uint32_t)w.len;
	oskr__pbft_send(ctx, buf, dest);
}

/* Sign the fixed part of an ordering message into @p sig. */
static int sign_order(struct oskr_ctx *ctx, uint8_t type, uint64_t view,
		      uint64_t seq, const uint8_t *digest, uint16_t replica,
		      uint8_t *sig, uint8_t *sig_len)
{
	uint8_t body[PBFT_ORDER_BODY];
	size_t len = 0;
	oskr__pbft_order_body(body, type, view, seq, digest, replica);
	int err = ctx->host->sign(ctx, body, sizeof(body), sig, &len);
	if (err || len == 0 || len > OSKR_SIGNATURE_MAX)
		return err ? err : -EINVAL;
	*sig_len = (uint8_t)len;
	return 0;
}

static int propose(struct oskr_ctx *ctx, struct pbft_replica *r,
		   const uint8_t *batch, uint32_t batch_len)
{
	uint64_t seq = r->next_seq + 1;
	struct pbft_entry *e = oskr__pbft_entry(r, seq);
	uint8_t digest[PBFT_DIGEST], sig[OSKR_SIGNATURE_MAX], sig_len;
	if (!e)
		return -ERANGE;
	ctx->host->digest(ctx, batch, batch_len, digest);
	int err = sign_order(ctx, PBFT_PRE_PREPARE, r->view, seq, digest,
			     (uint16_t)r->id, sig, &sig_len);
	if (err || (err = oskr__pbft_entry_set_batch(e, batch, batch_len,
						     digest)))
		return err;
	r->next_seq = seq;
	oskr__pbft_accept_pre_prepare(ctx, r, r->view, seq, digest, sig,
				      sig_len);
	send_pre_prepare(ctx, r, e, &to_all);
	return 0;
}

/* Batching rule (docs/pbft.md): the primary closes a batch when the
 * pipeline has room (fewer than max_inflight batches proposed and not
 * executed, and the next seq is under the high water mark h + L) and
 *  - adaptive: at once, with whatever is queued (up to batch_size), so a
 *    lightly loaded system does not wait and a loaded one batches more;
 *  - fixed: when batch_size requests are queued, or batch_timeout after
 *    the oldest queued request arrived. */
void oskr__pbft_try_propose(struct oskr_ctx *ctx, struct pbft_replica *r)
{
	if (r->view_changing || !pbft_is_primary(r))
		return;
	while (r->pending.queue.head) {
		/* 2f+1 replicas signed a checkpoint above what we would
		 * propose: those numbers are decided; catch up first (only
		 * after a restart can the primary be behind; durable.c). */
		if (r->known.seq > r->next_seq || r->resume_settling)
			return;
		if (r->next_seq - r->last_executed >= r->opt.max_inflight ||
		    !oskr__pbft_in_window(r, r->next_seq + 1))
			return;
		if (!r->opt.adaptive &&
		    r->pending.queue.count < r->opt.batch_size) {
			uint64_t due = r->pending.queue.head->arrival_ns +
				       r->opt.batch_timeout_ns;
			uint64_t now = ctx->host->now_ns(ctx);
			if (now < due) {
				if (!r->batch_timer &&
				    ctx->host->timer_arm(ctx, due - now,
							 batch_timer_fired,
							 NULL, &r->batch_timer))
					r->batch_timer = 0;
				return;
			}
		}
		size_t cap = max_batch_bytes(r);
		uint8_t *batch = malloc(cap);
		if (!batch)
			return;
		struct pbft_writer w = { .data = batch, .capacity = cap };
		uint32_t count = 0;
		pbft_put_u32(&w, 0);
		struct pbft_pending *item = r->pending.queue.head;
		while (item && count < r->opt.batch_size) {
			struct pbft_pending *next = item->next;
			if (w.capacity - w.len <
			    pbft_request_size(item->req.op_len))
				break;
			oskr__pbft_put_request(&w, &item->req);
			oskr__pbft_pending_mark_proposed(&r->pending, item);
			count++;
			item = next;
		}
		struct pbft_writer count_writer = { .data = batch,
						    .capacity = 4 };
		pbft_put_u32(&count_writer, count);
		int err = propose(ctx, r, batch, (uint32_t)w.len);
		free(batch);
		if (err) {
			ctx->host->log(ctx, OSKR_LOG_WARN,
				       "pbft: cannot propose: %d", err);
			oskr__pbft_pending_unpropose(&r->pending);
			return;
		}
	}
}

/* ---- pre-prepare / prepare / commit ---- */

static void record_vote(struct pbft_vote *votes, uint64_t *mask,
			uint32_t replica, uint64_t view, const uint8_t *digest,
			const uint8_t *sig, uint8_t sig_len)
{
	struct pbft_vote *v = &votes[replica];
	v->view = view;
	memcpy(v->digest, digest, PBFT_DIGEST);
	v->sig_len = sig_len;
	memcpy(v->sig, sig, sig_len);
	*mask |= UINT64_C(1) << replica;
}

static bool same_vote(const struct pbft_vote *votes, uint64_t mask,
		      uint32_t replica, uint64_t view, const uint8_t *digest)
{
	return (mask & (UINT64_C(1) << replica)) &&
	       votes[replica].view == view &&
	       !memcmp(votes[replica].digest, digest, PBFT_DIGEST);
}

static void send_vote(struct oskr_ctx *ctx, struct pbft_replica *r,
		      uint8_t type, const struct pbft_vote *vote, uint64_t seq,
		      const struct pbft_dest *dest)
{
	struct pbft_writer w;
	/* The signature is already made: it is written like the body. */
	struct oskr_buf *buf = oskr__pbft_alloc(
		ctx, PBFT_ORDER_BODY + PBFT_SIG_TRAILER_MAX, &w);
	if (!buf)
		return;
	uint8_t body[PBFT_ORDER_BODY];
	oskr__pbft_order_body(body, type, vote->view, seq, vote->digest,
			      (uint16_t)r->id);
	pbft_put(&w, body, sizeof(body));
	pbft_put_u8(&w, vote->sig_len);
	pbft_put(&w, vote->sig, vote->sig_len);
	buf->len = (uint32_t)w.len;
	oskr__pbft_send(ctx, buf, dest);
}

/* Sign and broadcast our PREPARE or COMMIT, keeping the signature in the
 * log for certificates. Signed inline: the signature is part of the
 * state (docs/pbft.md, "where signing runs"). */
static void cast_vote(struct oskr_ctx *ctx, struct pbft_replica *r,
		      struct pbft_entry *e, uint8_t type)
{
	uint8_t sig[OSKR_SIGNATURE_MAX], sig_len;
	if (sign_order(ctx, type, e->view, e->seq, e->digest, (uint16_t)r->id,
		       sig, &sig_len)) {
		oskr__pbft_drop(ctx, "sign_failed");
		return;
	}
	struct pbft_vote *votes = type == PBFT_PREPARE ? e->prepares
						       : e->commits;
	uint64_t *mask = type == PBFT_PREPARE ? &e->prepare_mask
					      : &e->commit_mask;
	record_vote(votes, mask, r->id, e->view, e->digest, sig, sig_len);
	if (type == PBFT_PREPARE)
		e->sent_prepare = true;
	else
		e->sent_commit = true;
	send_vote(ctx, r, type, &votes[r->id], e->seq, &to_all);
}

/* Our messages for @p e again, to a replica that retransmitted (it is
 * stuck on this sequence number), at most once per tick per entry so two
 * replicas never answer each other forever. */
static void answer_retransmission(struct oskr_ctx *ctx, struct pbft_replica *r,
				  struct pbft_entry *e, uint32_t to)
{
	uint64_t now = ctx->host->now_ns(ctx);
	if (e->answered_ns && now - e->answered_ns < r->opt.retransmit_ns)
		return;
	e->answered_ns = now;
	struct pbft_dest dest = { .kind = PBFT_TO_REPLICA, .replica = to };
	if (e->has_preprepare && pbft_primary(r, e->view) == r->id &&
	    oskr__pbft_entry_has_batch(e))
		send_pre_prepare(ctx, r, e, &dest);
	if (e->sent_prepare)
		send_vote(ctx, r, PBFT_PREPARE, &e->prepares[r->id], e->seq,
			  &dest);
	if (e->sent_commit)
		send_vote(ctx, r, PBFT_COMMIT, &e->commits[r->id], e->seq,
			  &dest);
}

void oskr__pbft_accept_pre_prepare(struct oskr_ctx *ctx,
				   struct pbft_replica *r, uint64_t view,
				   uint64_t seq,
				   const uint8_t digest[PBFT_DIGEST],
				   const uint8_t *pp_sig, uint8_t pp_sig_len)
{
	struct pbft_entry *e = oskr__pbft_entry(r, seq);
	if (!e) {
		oskr__pbft_drop(ctx, "out_of_window");
		return;
	}
	if (e->has_preprepare && e->view == view) {
		/* TOCS'02 §4.2: accept no second pre-prepare for (v, n)
		 * with another digest — an equivocating primary. */
		if (memcmp(e->digest, digest, PBFT_DIGEST))
			oskr__pbft_drop(ctx, "conflicting_pre_prepare");
		else
			answer_retransmission(ctx, r, e,
					      pbft_primary(r, view));
		return;
	}
	e->has_preprepare = true;
	e->view = view;
	memcpy(e->digest, digest, PBFT_DIGEST);
	e->pp_sig_len = pp_sig_len;
	memcpy(e->pp_sig, pp_sig, pp_sig_len);
	e->sent_prepare = e->sent_commit = false;
	e->prepared = false;
	e->touched_ns = ctx->host->now_ns(ctx);
	if (pbft_primary(r, view) != r->id)
		cast_vote(ctx, r, e, PBFT_PREPARE);
	oskr__pbft_advance(ctx, r, e);
}

/* TOCS'02 §4.2: a backup accepts a pre-prepare in its view, signed by
 * the primary, with a digest matching the batch, between the water
 * marks, and not conflicting with one it accepted. */
void oskr__pbft_on_pre_prepare(struct oskr_ctx *ctx, struct pbft_replica *r,
			       const struct pbft_msg *m)
{
	oskr__pbft_saw_view(ctx, r, m->replica, m->order.view);
	if (m->order.view != r->view || r->view_changing) {
		oskr__pbft_drop(ctx, "wrong_view");
		return;
	}
	if (m->replica != pbft_primary(r, r->view)) {
		oskr__pbft_drop(ctx, "not_primary");
		return;
	}
	if (m->order.seq <= r->known.seq) {
		/* Covered by a stable checkpoint we hold a proof of: decided
		 * already, we fetch its state instead (see try_propose). */
		oskr__pbft_drop(ctx, "below_stable_checkpoint");
		return;
	}
	struct pbft_entry *e = oskr__pbft_entry(r, m->order.seq);
	if (!e) {
		oskr__pbft_drop(ctx, "out_of_window");
		return;
	}
	if (!(e->has_preprepare && e->view == m->order.view) &&
	    oskr__pbft_entry_set_batch(e, m->order.batch, m->order.batch_len,
				       m->order.digest))
		return;
	oskr__pbft_accept_pre_prepare(ctx, r, m->order.view, m->order.seq,
				      m->order.digest, m->sig, m->sig_len);
}

static void on_vote(struct oskr_ctx *ctx, struct pbft_replica *r,
		    const struct pbft_msg *m)
{
	oskr__pbft_saw_view(ctx, r, m->replica, m->order.view);
	if (m->order.view != r->view || r->view_changing) {
		oskr__pbft_drop(ctx, "wrong_view");
		return;
	}
	if (m->type == PBFT_PREPARE &&
	    m->replica == pbft_primary(r, m->order.view)) {
		oskr__pbft_drop(ctx, "prepare_from_primary");
		return;
	}
	struct pbft_entry *e = oskr__pbft_entry(r, m->order.seq);
	if (!e) {
		oskr__pbft_drop(ctx, "out_of_window");
		return;
	}
	bool prepare = m->type == PBFT_PREPARE;
	struct pbft_vote *votes = prepare ? e->prepares : e->commits;
	uint64_t *mask = prepare ? &e->prepare_mask : &e->commit_mask;
	if (same_vote(votes, *mask, m->replica, m->order.view,
		      m->order.digest)) {
		answer_retransmission(ctx, r, e, m->replica);
		return;
	}
	record_vote(votes, mask, m->replica, m->order.view, m->order.digest,
		    m->sig, m->sig_len);
	oskr__pbft_advance(ctx, r, e);
}

void oskr__pbft_on_prepare(struct oskr_ctx *ctx, struct pbft_replica *r,
			   const struct pbft_msg *m)
{
	on_vote(ctx, r, m);
}

void oskr__pbft_on_commit(struct oskr_ctx *ctx, struct pbft_replica *r,
			  const struct pbft_msg *m)
{
	on_vote(ctx, r, m);
}

/* Keep the prepared certificate: the pre-prepare and 2f prepares from
 * distinct backups (TOCS'02 §4.4, the P set). */
static void save_prepared_cert(struct pbft_replica *r, struct pbft_entry *e)
{
	struct pbft_prepared *cert = &e->prepared_cert;
	uint32_t primary = pbft_primary(r, e->view), k = 0;
	cert->valid = true;
	cert->view = e->view;
	memcpy(cert->digest, e->digest, PBFT_DIGEST);
	cert->pp_sig_len = e->pp_sig_len;
	memcpy(cert->pp_sig, e->pp_sig, e->pp_sig_len);
	for (uint32_t i = 0; i < r->n && k < 2 * r->f; i++) {
		if (i == primary ||
		    !same_vote(e->prepares, e->prepare_mask, i, e->view,
			       e->digest))
			continue;
		cert->prepare_replicas[k] = (uint16_t)i;
		cert->prepare_votes[k] = e->prepares[i];
		k++;
	}
	cert->prepare_count = (uint8_t)k;
}

void oskr__pbft_advance(struct oskr_ctx *ctx, struct pbft_replica *r,
			struct pbft_entry *e)
{
	if (!e->has_preprepare || e->view != r->view || r->view_changing)
		return;
	if (!e->prepared &&
	    oskr__pbft_count_votes(r, e->prepares, e->prepare_mask, e->view,
				   e->digest, pbft_primary(r, e->view)) >=
		    2 * r->f) {
		/* prepared(m, v, n, i) (TOCS'02 §4.2) */
		e->prepared = true;
		e->touched_ns = ctx->host->now_ns(ctx);
		save_prepared_cert(r, e);
		cast_vote(ctx, r, e, PBFT_COMMIT);
	}
	if (e->prepared && (!e->committed || e->commit_view != e->view) &&
	    oskr__pbft_count_votes(r, e->commits, e->commit_mask, e->view,
				   e->digest, r->n) >= pbft_quorum(r)) {
		/* committed-local(m, v, n, i). Committed again in a later
		 * view (re-proposed in O): the newest certificate is the one
		 * whose votes the log still holds. */
		e->commit_view = e->view;
		memcpy(e->commit_digest, e->digest, PBFT_DIGEST);
		if (e->committed)
			return;
		e->committed = true;
		if (e->seq > r->last_committed)
			r->last_committed = e->seq;
		ctx->host->count(ctx, OSKR_COUNTER_COMMITS, 1);
		oskr__pbft_execute_ready(ctx, r);
	}
}

/* ---- execution (TOCS'02 §4.2: strictly in sequence order) ---- */

struct execute_ctx {
	struct oskr_ctx *ctx;
	struct pbft_replica *r;
};

static void execute_request(void *arg, const struct pbft_request *req)
{
	struct execute_ctx *x = arg;
	struct oskr_ctx *ctx = x->ctx;
	struct pbft_replica *r = x->r;
	struct pbft_client_record *rec =
		oskr__pbft_client_find(&r->clients, req->client_id);

	if (rec && req->request_number <= rec->request_number) {
		/* ordered twice (a retransmission, or re-proposed after a
		 * view change): executed once only */
		oskr__pbft_pending_done(&r->pending, req->client_id,
					req->request_number);
		return;
	}
	size_t result_len = 0;
	if (ctx->host->app_execute(ctx, req->op, req->op_len, r->result_buf,
				   r->result_capacity, &result_len)) {
		/* Deterministic on every replica: an empty result. */
		result_len = 0;
	}
	r->ops_executed++;
	if (oskr__pbft_client_record(&r->clients, req, r->ops_executed, r->view,
				     r->result_buf, (uint32_t)result_len)) {
		oskr__pbft_drop(ctx, "no_memory");
		return;
	}
	oskr__pbft_pending_done(&r->pending, req->client_id,
				req->request_number);
	rec = oskr__pbft_client_find(&r->clients, req->client_id);
	oskr__pbft_send_reply(ctx, r, rec, &req->addr);
}

void oskr__pbft_execute_ready(struct oskr_ctx *ctx, struct pbft_replica *r)
{
	uint64_t before = r->last_executed;
	struct execute_ctx x = { ctx, r };

	/* While a state transfer is pending (last_executed < h) nothing
	 * executes: the entries above h wait for the restored state. */
	while (r->last_executed >= r->low_mark) {
		struct pbft_entry *e =
			oskr__pbft_entry_find(r, r->last_executed + 1);
		if (!e || !e->committed)
			break;
		if (!e->batch ||
		    memcmp(e->batch_digest, e->commit_digest, PBFT_DIGEST))
			break; /* fetched by the tick (state_transfer.c) */
		oskr__pbft_batch_each(e->batch, e->batch_len, execute_request,
				      &x);
		r->last_executed = e->seq;
		oskr__pbft_maybe_checkpoint(ctx, r, e->seq);
	}
	if (r->last_executed == before)
		return;
	/* Progress: the next view change starts from the base timeout. */
	r->vc_timeout_ns = r->opt.view_change_timeout_ns;
	oskr__pbft_publish_status(ctx, r);
	oskr__pbft_update_vc_timer(ctx, r);
	oskr__pbft_try_propose(ctx, r);
}

/* ---- retransmission (docs/pbft.md) ---- */

#define PBFT_RETRANSMIT_MAX 16

void oskr__pbft_retransmit(struct oskr_ctx *ctx, struct pbft_replica *r)
{
	if (r->view_changing)
		return;
	unsigned sent = 0;
	for (uint64_t seq = r->last_executed + 1;
	     oskr__pbft_in_window(r, seq) && sent < PBFT_RETRANSMIT_MAX;
	     seq++) {
		struct pbft_entry *e = oskr__pbft_entry_find(r, seq);
		if (!e || !e->has_preprepare || e->view != r->view ||
		    e->committed)
			continue;
		sent++;
		if (pbft_primary(r, e->view) == r->id &&
		    oskr__pbft_entry_has_batch(e))
			send_pre_prepare(ctx, r, e, &to_all);
		if (e->sent_prepare)
			send_vote(ctx, r, PBFT_PREPARE, &e->prepares[r->id],
				  seq, &to_all);
		if (e->sent_commit)
			send_vote(ctx, r, PBFT_COMMIT, &e->commits[r->id], seq,
				  &to_all);
	}
	/* Backups also re-relay what they wait for: the primary may have
	 * lost it. */
	if (!pbft_is_primary(r)) {
		unsigned relayed = 0;
		for (const struct pbft_pending *p = r->pending.queue.head;
		     p && relayed < PBFT_RETRANSMIT_MAX; p = p->next) {
			oskr__pbft_relay(ctx, r, &p->req);
			relayed++;
		}
	}
}
