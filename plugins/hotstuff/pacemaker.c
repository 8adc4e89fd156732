/* SPDX-License-Identifier: MIT */
/*
 * The pacemaker, PODC'19 Algorithm 5 (and §4.4 "Pacemaker"): leaders
 * (getLeader: round-robin, or by reputation over the chain of the block a
 * proposal's justify QC certifies, see oskr__hs_leader), a view timer
 * with exponential back-off,
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
 *    n - f NEW-VIEWs for v (see proposer.c); every replica counts
 *    NEW-VIEWs, and f + 1 of them for a view ahead of ours make us join
 *    it (a replica one view behind would otherwise stay behind).
 */
#include <string.h>

#include "hotstuff.h"

/* ---- leader rotation (docs/hotstuff.md, "Leader rotation") ---- */

/* Failed views between a block and its parent whose leaders are marked:
 * enough to name every replica that led one, bounded per block. */
#define FAILED_VIEWS_SCANNED(n) (4 * (uint64_t)(n))
/* OSKR__HS_FAIL_STREAK_CAP (hotstuff.h): a dead replica costs about log2
 * of the views it stays down, and one back for a long time still gets a
 * turn every 2^cap * round_robin_every * n views. */

static uint16_t age(uint16_t blocks)
{
	return blocks == OSKR__HS_NEVER ? OSKR__HS_NEVER : blocks + 1;
}

void oskr__hs_note_activity(const struct oskr__hs_replica *rs,
			    struct oskr__hs_block *b)
{
	const struct oskr__hs_block *parent = b->parent;
	struct oskr__hs_qc_ref qc;
	size_t used = 0;

	if (!parent) {
		/* A root without a record: genesis (the same on every
		 * replica), or a checkpoint resumed from a version-1 blob,
		 * whose history we lack: everyone is presumed active, nobody
		 * failed. Resumed and transferred checkpoints carry the
		 * root's record (core.c oskr__hs_install_root). */
		for (uint32_t r = 0; r < rs->n; r++) {
			b->since_active[r] = 0;
			b->since_failed[r] = OSKR__HS_NEVER;
			b->fail_streak[r] = 0;
		}
		return;
	}
	for (uint32_t r = 0; r < rs->n; r++) {
		b->since_active[r] = age(parent->since_active[r]);
		b->since_failed[r] = age(parent->since_failed[r]);
		b->fail_streak[r] = parent->fail_streak[r];
	}
	/* Views strictly between the parent's and b's produced no block on
	 * this chain: their leaders (by the same rule, on the same parent)
	 * failed. A crashed leader is excluded after its first such view,
	 * not only once reputation_window blocks passed without it. */
	if (rs->opt.leader_reputation) {
		uint64_t last = b->view - 1;

		if (last - parent->view > FAILED_VIEWS_SCANNED(rs->n))
			last = parent->view + FAILED_VIEWS_SCANNED(rs->n);
		for (uint64_t w = parent->view + 1; w <= last; w++) {
			uint32_t r = oskr__hs_leader(rs, w, parent);

			b->since_failed[r] = 0;
			if (parent->fail_streak[r] < OSKR__HS_FAIL_STREAK_CAP &&
			    b->fail_streak[r] == parent->fail_streak[r])
				b->fail_streak[r]++;
		}
	}
	if (b->proposer < rs->n) {
		b->since_active[b->proposer] = 0;
		b->since_failed[b->proposer] = OSKR__HS_NEVER;
		b->fail_streak[b->proposer] = 0;
	}
	/* The justify QC's signers voted recently: they are alive. A
	 * replica that recovers re-enters the active set this way as soon
	 * as one of its votes makes it into a QC. */
	if (oskr__hs_decode_qc(b->justify_raw, b->justify_len, &used, &qc))
		for (uint16_t i = 0; i < qc.count; i++)
			if (qc.sigs[i].replica < rs->n)
				b->since_active[qc.sigs[i].replica] = 0;
}

/**
 * Leader reputation in the manner of DiemBFT v4 (§"Leader reputation"):
 * the leader of view v is picked from the replicas active in the last
 * `reputation_window` blocks (they proposed, or signed a QC) and whose
 * last turn as leader in that window did not fail, but counted on the
 * chain of the block the proposal's justify QC certifies (@p ref) rather
 * than on the local committed ledger. Every replica that judges a given
 * proposal computes the same leader for it, whatever it has committed;
 * the voters for block b all send their votes to leader(v + 1, b), which
 * is what the leader that forms b's QC checks. Replicas may disagree on
 * whom to send a NEW-VIEW to while their qc_high differs; that costs a
 * view timeout (liveness, never safety), after which NEW-VIEWs go to
 * everyone carrying qc_high, and qc_high converges.
 *
 * Fewer than f + 1 candidates (maybe all faulty) fall back to the active
 * ones, then to round-robin. Every `round_robin_every`-th view is plain
 * round-robin over all n, so a replica that was excluded gets a turn and
 * re-enters the set; one whose turns keep failing gets only one in
 * 2^streak of those views (the others go to the active set).
 */
uint32_t oskr__hs_leader(const struct oskr__hs_replica *rs, uint64_t view,
			 const struct oskr__hs_block *ref)
{
	uint64_t every = rs->opt.round_robin_every;
	uint64_t window = rs->opt.reputation_window;
	uint32_t good[OSKR__HS_MAX_REPLICAS], active[OSKR__HS_MAX_REPLICAS];
	uint32_t good_count = 0, active_count = 0;

	if (!rs->opt.leader_reputation || !ref)
		return (uint32_t)(view % rs->n); /* Alg. 5 getLeader */
	if (view % every == 0) {
		uint32_t r = (uint32_t)((view / every) % rs->n);
		uint64_t turn = view / every / rs->n;

		/* Its round-robin view, unless its last turns failed: then
		 * only every 2^streak-th of them (exponential back-off). */
		if (turn % (1ull << ref->fail_streak[r]) == 0)
			return r;
	}
	for (uint32_t r = 0; r < rs->n; r++) {
		if (ref->since_active[r] >= window)
			continue;
		active[active_count++] = r;
		if (ref->since_failed[r] >= window)
			good[good_count++] = r;
	}
	if (good_count > rs->f)
		return good[view % good_count];
	if (active_count > rs->f)
		return active[view % active_count];
	return (uint32_t)(view % rs->n);
}

const struct oskr__hs_block *
oskr__hs_pacemaker_ref(struct oskr__hs_replica *rs)
{
	const struct oskr__hs_last_vote *lv = &rs->last_vote;
	const struct oskr__hs_block *voted;

	if (lv->valid && lv->view > rs->qc_high.view) {
		voted = oskr__hs_store_find(&rs->store, lv->digest);
		if (voted && voted->connected)
			return voted;
	}
	return rs->qc_high_node;
}

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
		send_new_view(ctx, rs, rs->cur_view, rs->id);
	} else {
		send_new_view(ctx, rs, rs->cur_view,
			      oskr__hs_leader(rs, rs->cur_view,
					      oskr__hs_pacemaker_ref(rs)));
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
	struct oskr__hs_new_view_set *reusable = NULL, *farthest = NULL;

	for (unsigned i = 0; i < OSKR__HS_NEW_VIEW_SETS; i++) {
		struct oskr__hs_new_view_set *s = &rs->new_views[i];

		if (s->used && s->view == view)
			return s;
		/* Free or stale (a view we are past) slots are reusable;
		 * otherwise the farthest future view gives way. */
		if (!s->used || s->view < rs->cur_view) {
			if (!reusable || reusable->used)
				reusable = s;
		} else if (!farthest || s->view > farthest->view) {
			farthest = s;
		}
	}
	if (!reusable) {
		if (farthest->view <= view)
			return NULL;
		reusable = farthest;
	}
	memset(reusable, 0, sizeof(*reusable));
	reusable->used = true;
	reusable->view = view;
	return reusable;
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
	if (nv->view == 0 || nv->view < rs->cur_view)
		return;
	/* Every replica counts NEW-VIEWs, not only the one that thinks it
	 * leads the view: with reputation, who leads depends on qc_high,
	 * which may change while they arrive (try_propose decides). */
	set = new_view_set(rs, nv->view);
	if (!set) {
		oskr__hs_drop(ctx, "drop_new_view_table_full");
		return;
	}
	if (set->senders & (1ull << nv->sender))
		return;
	set->senders |= 1ull << nv->sender;
	set->count++;
	if (set->count == rs->f + 1 && nv->view > rs->cur_view &&
	    !(set->senders & (1ull << rs->id))) {
		/* f + 1 replicas, one of them correct, timed out into a view
		 * ahead of ours: join it and say so to everyone. Otherwise a
		 * replica one view behind (it missed a proposal, so it never
		 * voted its way forward) stays one timeout behind for ever,
		 * timers being equally long, and no view gathers n - f. */
		oskr__hs_advance_view(ctx, rs, nv->view);
		send_new_view(ctx, rs, nv->view, NEW_VIEW_TO_ALL);
		set->senders |= 1ull << rs->id;
		set->count++;
		ctx->host->count(ctx, "view_joins", 1);
	}
	if (set->count < rs->quorum || rs->new_view_ready >= nv->view)
		return;
	/* n - f replicas gave up on the previous view: its leader may
	 * propose (try_propose checks whether that is us). */
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
