/* SPDX-License-Identifier: MIT */
/*
 * The pacemaker, PODC'19 Algorithm 5 (and §4.4 "Pacemaker"): round-robin
 * leaders (getLeader = view mod n), a view timer with exponential back-off,
 * and NEW-VIEW messages carrying qc_high to the next leader
 * (onNextSyncView / onReceiveNewView).
 *
 * Decisions where the paper leaves the pacemaker open (docs/hotstuff.md):
 *  - the timer runs only while there is work (a pending request or an
 *    uncommitted non-empty block), so an idle cluster does not churn
 *    through views;
 *  - it restarts on any progress (a vote cast, a higher QC, a commit) and
 *    its length is view_timeout * backoff^k for k consecutive timeouts,
 *    capped at max_view_timeout; a commit resets k;
 *  - NEW-VIEW also carries the sender's last vote, so the leader after a
 *    crashed one can still certify the block whose votes went to the dead
 *    leader (without it, rotation past a dead leader every n views would
 *    never give the commit rule three consecutive certified blocks);
 *  - the leader of view v proposes once it holds a QC for view v-1 or
 *    n - f NEW-VIEWs for v (see proposer.c).
 */
#include <string.h>

#include "hotstuff.h"

void oskr__hs_advance_view(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			   uint64_t view)
{
	if (view > rs->cur_view)
		rs->cur_view = view;
}

void oskr__hs_note_progress(struct oskr__hs_replica *rs)
{
	rs->progress_epoch++;
}

void oskr__hs_note_commit(struct oskr__hs_replica *rs)
{
	rs->consecutive_timeouts = 0;
}

static uint64_t current_timeout(const struct oskr__hs_replica *rs)
{
	uint64_t t = rs->opt.view_timeout_ns;

	for (uint32_t i = 0; i < rs->consecutive_timeouts; i++) {
		if (t >= rs->opt.max_view_timeout_ns / rs->opt.backoff)
			return rs->opt.max_view_timeout_ns;
		t *= rs->opt.backoff;
	}
	return t < rs->opt.max_view_timeout_ns ? t : rs->opt.max_view_timeout_ns;
}

#define NEW_VIEW_TO_ALL UINT32_MAX

/** Alg. 5 onNextSyncView: send NEW-VIEW(view, qc_high) to @p target
 *  (the leader of @p view, or NEW_VIEW_TO_ALL). View 0 is a "sync"
 *  message: it carries our qc_high to a replica that is behind and
 *  counts for no view. */
static void send_new_view(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			  uint64_t view, uint32_t target)
{
	const struct oskr__hs_last_vote *lv = &rs->last_vote;
	bool with_vote = view != 0 && lv->valid &&
			 lv->view >= rs->qc_high.view;
	uint8_t sig[OSKR_SIGNATURE_MAX];
	size_t sig_len = 0;
	struct oskr__hs_writer w;
	struct oskr_buf *buf;
	size_t cap = OSKR__HS_HEADER_SIZE + 2 + 8 + rs->qc_high.len + 1 +
		     8 + OSKR__HS_DIGEST + 1 + OSKR_SIGNATURE_MAX + 1 +
		     OSKR_SIGNATURE_MAX;

	if (ctx->host->buf_alloc(ctx, cap, &buf))
		return;
	oskr__hs_writer_init(&w, buf->data, buf->capacity);
	oskr__hs_put_header(&w, OSKR__HS_MSG_NEW_VIEW);
	oskr__hs_put_u16(&w, (uint16_t)rs->id);
	oskr__hs_put_u64(&w, view);
	oskr__hs_put_bytes(&w, rs->qc_high.bytes, rs->qc_high.len);
	oskr__hs_put_u8(&w, with_vote);
	if (with_vote) {
		oskr__hs_put_u64(&w, lv->view);
		oskr__hs_put_bytes(&w, lv->digest, OSKR__HS_DIGEST);
		oskr__hs_put_u8(&w, lv->sig_len);
		oskr__hs_put_bytes(&w, lv->sig, lv->sig_len);
	}
	if (w.overflow || ctx->host->sign(ctx, w.data, w.len, sig, &sig_len) ||
	    sig_len == 0 || sig_len > OSKR_SIGNATURE_MAX) {
		ctx->host->buf_release(buf);
		return;
	}
	oskr__hs_put_u8(&w, (uint8_t)sig_len);
	oskr__hs_put_bytes(&w, sig, sig_len);
	buf->len = (uint32_t)w.len;
	if (target == NEW_VIEW_TO_ALL)
		ctx->host->send_to_all(ctx, buf);
	else
		ctx->host->send_to_replica(ctx, target, buf);
}

static void on_view_timeout(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct oskr__hs_replica *rs = state;

	rs->view_timer = 0;
	if (rs->consecutive_timeouts < 64)
		rs->consecutive_timeouts++;
	ctx->host->count(ctx, OSKR_COUNTER_VIEW_CHANGES, 1);
	rs->cur_view++;
	/* The first timeout is an ordinary view change: NEW-VIEW to the
	 * next leader only (linear). From the second in a row on, this
	 * replica may simply be behind an idle cluster, with no leader
	 * ever going to send it anything: tell everyone, so any replica
	 * with a newer QC answers with it (sync, see on_new_view). */
	if (rs->consecutive_timeouts >= 2) {
		send_new_view(ctx, rs, rs->cur_view, NEW_VIEW_TO_ALL);
		if (oskr__hs_leader(rs, rs->cur_view) == rs->id)
			send_new_view(ctx, rs, rs->cur_view, rs->id);
	} else {
		send_new_view(ctx, rs, rs->cur_view,
			      oskr__hs_leader(rs, rs->cur_view));
	}
	oskr__hs_pacemaker_refresh(ctx, rs);
}

void oskr__hs_pacemaker_refresh(struct oskr_ctx *ctx,
				struct oskr__hs_replica *rs)
{
	bool work = rs->requests.pending_count > 0 ||
		    oskr__hs_uncommitted_work(rs);

	oskr__hs_publish_status(ctx, rs);
	if (!work) {
		if (rs->view_timer)
			ctx->host->timer_cancel(ctx, rs->view_timer);
		rs->view_timer = 0;
		return;
	}
	if (rs->view_timer && rs->view_timer_view == rs->cur_view &&
	    rs->view_timer_epoch == rs->progress_epoch)
		return;
	if (rs->view_timer)
		ctx->host->timer_cancel(ctx, rs->view_timer);
	rs->view_timer = 0;
	if (ctx->host->timer_arm(ctx, current_timeout(rs), on_view_timeout,
				 NULL, &rs->view_timer))
		rs->view_timer = 0;
	rs->view_timer_view = rs->cur_view;
	rs->view_timer_epoch = rs->progress_epoch;
}

static struct oskr__hs_new_view_set *new_view_set(struct oskr__hs_replica *rs,
						  uint64_t view)
{
	struct oskr__hs_new_view_set *slot = NULL;

	for (unsigned i = 0; i < OSKR__HS_NEW_VIEW_SETS; i++) {
		struct oskr__hs_new_view_set *s = &rs->new_views[i];

		if (s->used && s->view == view)
			return s;
		/* Free or stale (a view we are past) slots are reusable;
		 * otherwise the farthest future view gives way. */
		if (!s->used || s->view < rs->cur_view) {
			if (!slot || slot->used)
				slot = s;
		} else if (!slot || (slot->used && s->view > slot->view)) {
			slot = s;
		}
	}
	if (slot->used && slot->view >= rs->cur_view && slot->view <= view)
		return NULL;
	memset(slot, 0, sizeof(*slot));
	slot->used = true;
	slot->view = view;
	return slot;
}

/** Alg. 5 onReceiveNewView: updateQCHigh(m.justify); the leader of the
 *  new view counts senders. */
void oskr__hs_on_new_view(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			  struct oskr__hs_inbound *in)
{
	const struct oskr__hs_new_view_ref *nv = &in->m.new_view;
	struct oskr__hs_new_view_set *set;

	if (nv->qc.count > 0) {
		oskr__hs_qc_from_ref(rs->scratch_qc, &nv->qc);
		oskr__hs_on_qc(ctx, rs, rs->scratch_qc, nv->sender);
	}
	if (nv->has_vote)
		oskr__hs_on_vote(ctx, rs, &nv->vote);
	/* The sender is behind (it may have missed the last blocks and
	 * have nothing that would make it fetch them): tell it our qc_high;
	 * catch-up (fetch.c) does the rest. Rate-limited per sender. */
	if (nv->view != 0 && nv->sender != rs->id &&
	    nv->qc.view < rs->qc_high.view) {
		uint64_t now = ctx->host->now_ns(ctx);

		if (now - rs->last_sync_ns[nv->sender] >=
		    rs->opt.fetch_timeout_ns) {
			rs->last_sync_ns[nv->sender] = now;
			ctx->host->count(ctx, "syncs_sent", 1);
			send_new_view(ctx, rs, 0, nv->sender);
		}
	}
	if (nv->view == 0 || oskr__hs_leader(rs, nv->view) != rs->id ||
	    nv->view < rs->cur_view)
		return;
	set = new_view_set(rs, nv->view);
	if (!set) {
		oskr__hs_drop(ctx, "drop_new_view_table_full");
		return;
	}
	if (set->senders & (1ull << nv->sender))
		return;
	set->senders |= 1ull << nv->sender;
	set->count++;
	if (set->count < rs->quorum || rs->new_view_ready >= nv->view)
		return;
	/* n - f replicas gave up on the previous view: lead this one. */
	oskr__hs_advance_view(ctx, rs, nv->view);
	rs->new_view_ready = nv->view;
	oskr__hs_note_progress(rs);
	oskr__hs_try_propose(ctx, rs);
}

void oskr__hs_pacemaker_fini(struct oskr_ctx *ctx, struct oskr__hs_replica *rs)
{
	if (rs->view_timer)
		ctx->host->timer_cancel(ctx, rs->view_timer);
	rs->view_timer = 0;
}
