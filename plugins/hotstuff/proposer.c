/* SPDX-License-Identifier: MIT */
/*
 * The leader's side: Alg. 5 onBeat / Alg. 4 onPropose with batching.
 *
 * The leader of the current view proposes when the pacemaker allows it
 * (a QC for the previous view, or n - f NEW-VIEWs for this one) and there
 * is something to do:
 *  - pending requests not already in the uncommitted chain, up to
 *    block_size; with `adaptive` (default) whatever is pending goes out at
 *    once, otherwise the leader waits up to batch_timeout for a full
 *    block, then proposes what it has: a block is never held back forever
 *    waiting to fill up;
 *  - or, with nothing new, an empty block while the chain below still
 *    holds uncommitted requests: the three-chain rule needs three more
 *    certified blocks on top of a block to commit it, so the tail of a
 *    burst commits when load stops, and the leader goes quiet once
 *    everything is committed.
 */
#include <string.h>

#include "hotstuff.h"

static void on_batch_timeout(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct oskr__hs_replica *rs = state;

	rs->batch_timer = 0;
	rs->batch_due_view = rs->cur_view;
	oskr__hs_try_propose(ctx, rs);
	oskr__hs_pacemaker_refresh(ctx, rs);
}

/**
 * Mark pending requests already in the chain from @p leaf down to the
 * executed block, so they are not proposed twice. Returns whether the
 * chain still needs driving: a non-empty block is uncommitted, or was
 * committed here by qc_high, which only we hold (we formed it from
 * votes): the others commit it when our next block carries that QC.
 */
static bool mark_chain(struct oskr__hs_replica *rs, struct oskr__hs_block *leaf,
		       uint64_t mark)
{
	uint64_t top = rs->qc_high_node->height;
	struct oskr__hs_block *b;
	bool work = false;

	for (b = leaf; b; b = b->parent) {
		if (b->executed && b->height + 2 < top)
			break;
		struct oskr__hs_request_ref req;
		size_t off = 0;

		if (!b->request_count)
			continue;
		work = true;
		while (oskr__hs_next_request(b->requests, b->requests_len, &off,
					     &req)) {
			struct oskr__hs_pending *p =
				oskr__hs_pending_find(&rs->requests,
						      req.client_id);

			if (p && p->request_number == req.request_number)
				p->skip_mark = mark;
		}
	}
	return work;
}

static void propose(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
		    uint64_t mark)
{
	struct oskr__hs_block *parent = rs->b_leaf;
	uint64_t view = rs->cur_view;
	struct oskr__hs_writer w;
	struct oskr__hs_block_ref ref;
	struct oskr__hs_pending *p;
	uint8_t digest[OSKR__HS_DIGEST];
	uint8_t payload[OSKR__HS_PROPOSAL_PAYLOAD];
	uint8_t sig[OSKR_SIGNATURE_MAX];
	size_t count_offset, sig_len = 0, block_len;
	uint32_t count = 0;
	struct oskr_buf *buf;

	if (ctx->host->buf_alloc(ctx, rs->max_message, &buf)) {
		oskr__hs_drop(ctx, "drop_no_memory");
		return;
	}
	oskr__hs_writer_init(&w, buf->data, buf->capacity);
	oskr__hs_put_header(&w, OSKR__HS_MSG_PROPOSAL);
	oskr__hs_put_u32(&w, 0); /* block length, patched */
	/* Alg. 4 createLeaf(b_leaf, cmd, qc_high, b_leaf.height + 1) */
	count_offset = oskr__hs_put_block_head(&w, parent->digest,
					       parent->height + 1, view,
					       (uint16_t)rs->id,
					       rs->qc_high.bytes,
					       rs->qc_high.len);
	for (p = rs->requests.fifo.next; p != &rs->requests.fifo &&
					 count < rs->opt.block_size;
	     p = p->next) {
		if (p->skip_mark == mark)
			continue;
		if (w.len + oskr__hs_request_size(p->op_len) + 1 +
			    OSKR_SIGNATURE_MAX >
		    w.capacity)
			break;
		oskr__hs_put_request(&w, p->client_id, p->request_number,
				     p->addr.bytes, p->op, p->op_len);
		count++;
	}
	oskr__hs_patch_u32(&w, count_offset, count);
	block_len = w.len - OSKR__HS_HEADER_SIZE - 4;
	oskr__hs_patch_u32(&w, OSKR__HS_HEADER_SIZE, (uint32_t)block_len);
	if (w.overflow ||
	    !oskr__hs_decode_block(w.data + OSKR__HS_HEADER_SIZE + 4, block_len,
				   &ref))
		goto err_release;
	ctx->host->digest(ctx, ref.raw, ref.raw_len, digest);
	oskr__hs_proposal_payload(payload, view, digest);
	if (ctx->host->sign(ctx, payload, sizeof(payload), sig, &sig_len) ||
	    sig_len == 0 || sig_len > OSKR_SIGNATURE_MAX)
		goto err_release;
	oskr__hs_put_u8(&w, (uint8_t)sig_len);
	oskr__hs_put_bytes(&w, sig, sig_len);
	if (w.overflow)
		goto err_release;
	buf->len = (uint32_t)w.len;
	rs->last_proposed_view = view;
	if (rs->batch_timer)
		ctx->host->timer_cancel(ctx, rs->batch_timer);
	rs->batch_timer = 0;
	ctx->host->count(ctx, "proposals", 1);
	if (!count)
		ctx->host->count(ctx, "empty_proposals", 1);
	/* Our own copy goes through the same path as everyone's
	 * (Alg. 4: the leader is also a replica and votes for it). */
	oskr__hs_accept_block(ctx, rs, &ref, digest, true, -1);
	ctx->host->send_to_all(ctx, buf);
	return;

err_release:
	ctx->host->buf_release(buf);
	ctx->host->log(ctx, OSKR_LOG_WARN, "could not build proposal for view %llu",
		       (unsigned long long)view);
}

void oskr__hs_try_propose(struct oskr_ctx *ctx, struct oskr__hs_replica *rs)
{
	uint64_t view = rs->cur_view, mark, available = 0;
	struct oskr__hs_pending *p;
	bool chain_work;

	/* The proposal's justify is qc_high: the leader by its block is
	 * the one every replica will check (pacemaker.c). */
	if (!rs->initialized ||
	    oskr__hs_leader(rs, view, rs->qc_high_node) != rs->id ||
	    rs->last_proposed_view >= view)
		return;
	/* Alg. 5: a leader proposes once it has a QC for the previous view
	 * or n - f NEW-VIEWs for this one (then qc_high is the highest of
	 * theirs, which is what keeps the locked replicas able to vote). */
	if (rs->qc_high.view + 1 != view && rs->new_view_ready != view)
		return;
	mark = ++rs->proposer_mark;
	chain_work = mark_chain(rs, rs->b_leaf, mark);
	for (p = rs->requests.fifo.next;
	     p != &rs->requests.fifo && available < rs->opt.block_size;
	     p = p->next)
		if (p->skip_mark != mark)
			available++;
	if (!available && !chain_work)
		return; /* idle: nothing to order, nothing to drive home */
	if (!rs->opt.adaptive && available && available < rs->opt.block_size &&
	    rs->batch_due_view != view) {
		if (!rs->batch_timer &&
		    ctx->host->timer_arm(ctx, rs->opt.batch_timeout_ns,
					 on_batch_timeout, NULL,
					 &rs->batch_timer))
			rs->batch_timer = 0;
		return;
	}
	propose(ctx, rs, mark);
}

void oskr__hs_proposer_fini(struct oskr_ctx *ctx, struct oskr__hs_replica *rs)
{
	if (rs->batch_timer)
		ctx->host->timer_cancel(ctx, rs->batch_timer);
	rs->batch_timer = 0;
}
