/* SPDX-License-Identifier: MIT */
/*
 * Event-driven HotStuff, PODC'19 Algorithm 4: the safety rules.
 *
 *   Alg. 4 onReceiveProposal (safeNode) -> oskr__hs_on_proposal, consider_vote
 *   Alg. 4 update(b*)                   -> update_with_qc (run for every QC)
 *   Alg. 4 onCommit(b)                  -> commit_through
 *   Alg. 4 onReceiveVote                -> oskr__hs_on_vote
 *   Alg. 5 updateQCHigh                 -> update_qc_high
 *
 * Blocks reach this file verified (signatures, QC vectors) by receive.c.
 * Heights are always parent.height + 1 (checked when a block connects),
 * so "b''.parent = b'" in the commit rule is a pointer comparison.
 */
#include <stdlib.h>
#include <string.h>

#include "hotstuff.h"

static void process_connected(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			      struct oskr__hs_block *root);
static void update_with_qc(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			   struct oskr__hs_block *b2, uint64_t qc_view,
			   const uint8_t *qc_raw, size_t qc_len);

void oskr__hs_publish_status(struct oskr_ctx *ctx, struct oskr__hs_replica *rs)
{
	ctx->host->set_status(ctx, rs->cur_view,
			      (int32_t)oskr__hs_leader(
				      rs, rs->cur_view,
				      oskr__hs_pacemaker_ref(rs)),
			      rs->b_exec->height, rs->executed_ops);
}

/* ---- genesis ---- */

int oskr__hs_core_init(struct oskr_ctx *ctx, struct oskr__hs_replica *rs)
{
	static const uint8_t zero[OSKR__HS_DIGEST];
	uint8_t raw[OSKR__HS_BLOCK_FIXED + OSKR__HS_QC_FIXED + 4];
	struct oskr__hs_writer w;
	struct oskr__hs_block_ref ref;
	struct oskr__hs_block *g;
	uint8_t qc_raw[OSKR__HS_QC_FIXED];
	struct oskr__hs_writer qw;
	int err;

	err = oskr__hs_store_init(&rs->store, 4096);
	if (err)
		return err;
	/* Every replica builds the same genesis block: height 0, view 0,
	 * no requests, justified by an empty QC on the zero digest. Its
	 * own QC (view 0, no signatures) is the initial qc_high; receive.c
	 * accepts a signature-less QC for this digest only. */
	oskr__hs_writer_init(&qw, qc_raw, sizeof(qc_raw));
	oskr__hs_put_qc(&qw, 0, zero, 0, NULL, NULL, NULL);
	oskr__hs_writer_init(&w, raw, sizeof(raw));
	oskr__hs_put_block_head(&w, zero, 0, 0, 0, qc_raw, qw.len);
	if (w.overflow || !oskr__hs_decode_block(raw, w.len, &ref))
		return -EINVAL;
	ctx->host->digest(ctx, raw, w.len, rs->genesis_digest);
	err = oskr__hs_block_new(&ref, rs->genesis_digest, &g);
	if (err)
		return err;
	g->executed = true;
	oskr__hs_note_activity(rs, g);
	oskr__hs_store_add(&rs->store, g, true);
	rs->genesis = g;
	rs->b_lock = rs->b_exec = rs->b_leaf = rs->qc_high_node = g;

	oskr__hs_writer_init(&qw, rs->qc_high.bytes, sizeof(rs->qc_high.bytes));
	oskr__hs_put_qc(&qw, 0, rs->genesis_digest, 0, NULL, NULL, NULL);
	rs->qc_high.len = (uint32_t)qw.len;
	rs->qc_high.view = 0;
	memcpy(rs->qc_high.digest, rs->genesis_digest, OSKR__HS_DIGEST);
	rs->cur_view = 1;
	return 0;
}

void oskr__hs_core_fini(struct oskr_ctx *ctx, struct oskr__hs_replica *rs)
{
	oskr__hs_store_fini(&rs->store);
	for (unsigned i = 0; i < OSKR__HS_WAITING_QCS; i++) {
		free(rs->waiting_qcs[i]);
		rs->waiting_qcs[i] = NULL;
	}
}

/* ---- QCs ---- */

/** Alg. 5 updateQCHigh: keep the QC whose block is highest; b_leaf
 *  follows it unless b_leaf already extends the new QC's block. */
static void update_qc_high(struct oskr__hs_replica *rs,
			   struct oskr__hs_block *node, uint64_t view,
			   const uint8_t *raw, size_t len)
{
	if (node->height <= rs->qc_high_node->height)
		return;
	rs->qc_high.view = view;
	memcpy(rs->qc_high.digest, node->digest, OSKR__HS_DIGEST);
	memcpy(rs->qc_high.bytes, raw, len);
	rs->qc_high.len = (uint32_t)len;
	rs->qc_high_node = node;
	if (!oskr__hs_block_extends(rs->b_leaf, node))
		rs->b_leaf = node;
	oskr__hs_note_progress(rs);
}

static void wait_for_qc_node(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			     const struct oskr__hs_qc *qc, int32_t hint)
{
	unsigned slot = 0;

	for (unsigned i = 0; i < OSKR__HS_WAITING_QCS; i++) {
		struct oskr__hs_qc *w = rs->waiting_qcs[i];

		if (w && !memcmp(w->digest, qc->digest, OSKR__HS_DIGEST))
			return;
		if (!w) {
			slot = i;
			break;
		}
		if (w->view < rs->waiting_qcs[slot]->view)
			slot = i;
	}
	if (!rs->waiting_qcs[slot]) {
		rs->waiting_qcs[slot] = malloc(sizeof(struct oskr__hs_qc));
		if (!rs->waiting_qcs[slot])
			return;
	} else if (rs->waiting_qcs[slot]->view >= qc->view) {
		return; /* all slots hold newer QCs */
	}
	*rs->waiting_qcs[slot] = *qc;
	oskr__hs_want_block(ctx, rs, qc->digest, 0, hint, true);
}

void oskr__hs_on_qc(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
		    const struct oskr__hs_qc *qc, int32_t hint_replica)
{
	struct oskr__hs_block *node = oskr__hs_store_find(&rs->store, qc->digest);

	if (!node || !node->connected) {
		/* Catch-up: a certified block we lack. */
		if (qc->view > rs->qc_high.view)
			wait_for_qc_node(ctx, rs, qc, hint_replica);
		return;
	}
	if (node->view != qc->view) {
		/* Votes sign (block view, digest): a QC with another view
		 * was not made by correct replicas for this block. */
		oskr__hs_drop(ctx, "drop_bad_qc");
		return;
	}
	update_with_qc(ctx, rs, node, qc->view, qc->bytes, qc->len);
	oskr__hs_try_propose(ctx, rs);
}

/* ---- votes ---- */

static struct oskr__hs_vote_set *vote_set_get(struct oskr__hs_replica *rs,
					      uint64_t view,
					      const uint8_t *digest)
{
	struct oskr__hs_vote_set *victim = NULL;

	for (unsigned i = 0; i < OSKR__HS_VOTE_SETS; i++) {
		struct oskr__hs_vote_set *s = &rs->votes[i];

		if (s->used && s->view == view &&
		    !memcmp(s->digest, digest, OSKR__HS_DIGEST))
			return s;
		if (!s->used) {
			if (!victim || victim->used)
				victim = s;
		} else if (!victim || (victim->used && s->view < victim->view)) {
			victim = s;
		}
	}
	/* Bounded: evict the set of the lowest view, never a newer one. */
	if (victim->used && victim->view >= view)
		return NULL;
	memset(victim, 0, sizeof(*victim) - sizeof(victim->sigs));
	victim->used = true;
	victim->view = view;
	memcpy(victim->digest, digest, OSKR__HS_DIGEST);
	return victim;
}

/**
 * n - f replicas voted in @p view but for different blocks (an
 * equivocating leader split them): no QC can form, yet they all moved on
 * to view + 1 and wait for its leader. Let that leader propose now rather
 * than after a timeout, like n - f NEW-VIEWs would (docs/hotstuff.md).
 */
static void view_vote_quorum(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			     uint64_t view)
{
	uint64_t voters = 0;

	if (oskr__hs_leader(rs, view + 1, rs->qc_high_node) != rs->id ||
	    rs->new_view_ready >= view + 1 || view + 1 < rs->cur_view)
		return;
	for (unsigned i = 0; i < OSKR__HS_VOTE_SETS; i++)
		if (rs->votes[i].used && rs->votes[i].view == view)
			voters |= rs->votes[i].signers;
	if ((uint32_t)__builtin_popcountll(voters) < rs->quorum)
		return;
	ctx->host->count(ctx, "split_votes", 1);
	oskr__hs_advance_view(ctx, rs, view + 1);
	rs->new_view_ready = view + 1;
	oskr__hs_try_propose(ctx, rs);
}

/** Alg. 4 onReceiveVote: collect distinct signers; n - f form a QC. */
void oskr__hs_on_vote(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
		      const struct oskr__hs_vote_ref *vote)
{
	struct oskr__hs_vote_set *set;
	const uint8_t *sigs[OSKR__HS_MAX_REPLICAS];
	struct oskr__hs_writer w;
	struct oskr__hs_qc *qc = rs->scratch_qc;

	if (vote->view < rs->qc_high.view) {
		/* a QC at least as new is already known */
		oskr__hs_drop(ctx, "drop_stale_vote");
		return;
	}
	set = vote_set_get(rs, vote->view, vote->digest);
	if (!set) {
		oskr__hs_drop(ctx, "drop_vote_table_full");
		return;
	}
	if (set->done || (set->signers & (1ull << vote->voter))) {
		/* Alg. 4 onReceiveVote: duplicates ignored (and votes after
		 * the QC formed are redundant): counted, as every drop is */
		oskr__hs_drop(ctx, set->done ? "drop_late_vote"
					     : "drop_duplicate_vote");
		return;
	}
	set->signers |= 1ull << vote->voter;
	set->replicas[set->count] = vote->voter;
	set->sig_lens[set->count] = vote->sig_len;
	memcpy(set->sigs[set->count], vote->sig, vote->sig_len);
	set->count++;
	if (set->count < rs->quorum) {
		view_vote_quorum(ctx, rs, vote->view);
		return;
	}
	set->done = true;
	for (uint16_t i = 0; i < set->count; i++)
		sigs[i] = set->sigs[i];
	oskr__hs_writer_init(&w, qc->bytes, sizeof(qc->bytes));
	oskr__hs_put_qc(&w, set->view, set->digest, set->count, set->replicas,
			sigs, set->sig_lens);
	qc->len = (uint32_t)w.len;
	qc->view = set->view;
	memcpy(qc->digest, set->digest, OSKR__HS_DIGEST);
	ctx->host->count(ctx, "qcs_formed", 1);
	oskr__hs_on_qc(ctx, rs, qc, -1);
}

static void send_vote(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
		      struct oskr__hs_block *b)
{
	uint8_t payload[OSKR__HS_VOTE_PAYLOAD];
	struct oskr__hs_last_vote *lv = &rs->last_vote;
	struct oskr__hs_writer w;
	struct oskr_buf *buf;
	size_t sig_len = 0;

	oskr__hs_vote_payload(payload, b->view, b->digest);
	if (ctx->host->sign(ctx, payload, sizeof(payload), lv->sig, &sig_len) ||
	    sig_len == 0 || sig_len > OSKR_SIGNATURE_MAX) {
		lv->valid = false;
		return;
	}
	lv->valid = true;
	lv->view = b->view;
	memcpy(lv->digest, b->digest, OSKR__HS_DIGEST);
	lv->sig_len = (uint8_t)sig_len;
	if (ctx->host->buf_alloc(ctx, 64 + OSKR_SIGNATURE_MAX, &buf))
		return;
	oskr__hs_writer_init(&w, buf->data, buf->capacity);
	oskr__hs_put_header(&w, OSKR__HS_MSG_VOTE);
	oskr__hs_put_u16(&w, (uint16_t)rs->id);
	oskr__hs_put_u64(&w, b->view);
	oskr__hs_put_bytes(&w, b->digest, OSKR__HS_DIGEST);
	oskr__hs_put_u8(&w, lv->sig_len);
	oskr__hs_put_bytes(&w, lv->sig, lv->sig_len);
	buf->len = (uint32_t)w.len;
	/* Alg. 4 onReceiveProposal sends the vote to getLeader(); with
	 * Alg. 5's rotation that is the leader of the next view, which
	 * extends b if it goes well (so every voter for b picks the same
	 * one). Our own vote loops back through the network path. */
	ctx->host->send_to_replica(ctx, oskr__hs_leader(rs, b->view + 1, b),
				   buf);
}

/* ---- Alg. 4 onReceiveProposal: the voting rule ---- */

/** The proposer of @p b leads its view. With reputation this depends on
 *  the block b's justify QC certifies (pacemaker.c), so it is checked
 *  here once that block is connected, not in receive.c. */
static bool proposer_leads(const struct oskr__hs_replica *rs,
			   const struct oskr__hs_block *b,
			   const struct oskr__hs_block *justify_node)
{
	if (oskr__hs_leader_stateless(rs))
		return b->proposer == oskr__hs_leader(rs, b->view, NULL);
	return justify_node &&
	       b->proposer == oskr__hs_leader(rs, b->view, justify_node);
}

static void consider_vote(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			  struct oskr__hs_block *b,
			  struct oskr__hs_block *justify_node)
{
	bool extends_lock, higher_justify;

	if (!b->live_proposal)
		return;
	b->live_proposal = false;
	if (!proposer_leads(rs, b, justify_node)) {
		oskr__hs_drop(ctx, "drop_not_leader");
		return;
	}
	/* One vote per view, and (paper) one per height: vheight. */
	if (b->view <= rs->last_voted_view || b->height <= rs->vheight)
		return;
	/* safeNode (Alg. 4 onReceiveProposal): extends b_lock, or the justify QC is for
	 * a block higher than b_lock (liveness rule). */
	extends_lock = oskr__hs_block_extends(b, rs->b_lock);
	higher_justify = justify_node &&
			 justify_node->height > rs->b_lock->height;
	if (!extends_lock && !higher_justify) {
		ctx->host->count(ctx, "unsafe_proposals", 1);
		return;
	}
	rs->vheight = b->height;
	rs->last_voted_view = b->view;
	send_vote(ctx, rs, b);
	/* The pacemaker follows the view we voted in (docs: a replica
	 * ahead through lonely timeouts rejoins the cluster's view). */
	rs->cur_view = b->view + 1;
	oskr__hs_note_progress(rs);
}

/* ---- Alg. 4 update / onCommit ---- */

static void prune(struct oskr_ctx *ctx, struct oskr__hs_replica *rs);

/** Alg. 4 onCommit: execute b and its uncommitted ancestors, oldest
 *  first. @p b_child is b's child whose justify certifies b (b' of the
 *  three-chain). */
static void commit_through(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			   struct oskr__hs_block *b,
			   const struct oskr__hs_block *b_child)
{
	struct oskr__hs_block *x, *chain = NULL;

	if (b->height <= rs->b_exec->height)
		return;
	if (!oskr__hs_block_extends(b, rs->b_exec)) {
		/* Would mean two conflicting commits: impossible with at
		 * most f faults. Refuse loudly rather than diverge. */
		ctx->host->log(ctx, OSKR_LOG_ERROR,
			       "commit of height %llu does not extend the "
			       "executed block: refusing",
			       (unsigned long long)b->height);
		ctx->host->count(ctx, "safety_violations", 1);
		return;
	}
	/* Reverse the parent chain so execution runs oldest first. */
	for (x = b; x != rs->b_exec; x = x->parent) {
		x->exec_next = chain;
		chain = x;
	}
	for (x = chain; x; x = x->exec_next) {
		/* x's QC, if at hand: its child on the chain justifies it
		 * (the steady state), or x is b and b_child does. */
		const struct oskr__hs_block *child =
			x->exec_next ? x->exec_next : b_child;
		bool certified = child &&
				 !memcmp(child->justify_digest, x->digest,
					 OSKR__HS_DIGEST) &&
				 child->justify_view == x->view;

		oskr__hs_execute_block(ctx, rs, x);
		x->executed = true;
		rs->b_exec = x;
		rs->committed_blocks++;
		ctx->host->count(ctx, OSKR_COUNTER_COMMITS, 1);
		/* A durable checkpoint is taken between blocks: the app
		 * holds exactly the state after x. */
		oskr__hs_maybe_checkpoint(ctx, rs, x,
					  certified ? child->justify_raw : NULL,
					  certified ? child->justify_len : 0);
	}
	oskr__hs_note_commit(rs);
	oskr__hs_note_progress(rs);
	prune(ctx, rs);
}

/**
 * Alg. 4 update(b*) with b'' = b*.justify.node, b' = b''.justify.node,
 * b = b'.justify.node. Only b*.justify is used, so this runs for every
 * new verified QC (for b'' = @p b2), whether it arrived inside a proposal,
 * a NEW-VIEW or was formed from votes here: a replica learns commits as
 * soon as it sees the QC, even when the block carrying it is lost or its
 * leader crashed (docs/hotstuff.md).
 */
static void update_with_qc(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			   struct oskr__hs_block *b2, uint64_t qc_view,
			   const uint8_t *qc_raw, size_t qc_len)
{
	struct oskr__hs_block *b1, *b0;

	/* pre-commit phase on b'' */
	update_qc_high(rs, b2, qc_view, qc_raw, qc_len);
	/* Alg. 5: a QC for view v lets the leader of v+1 propose. */
	oskr__hs_advance_view(ctx, rs, qc_view + 1);
	b1 = oskr__hs_store_find(&rs->store, b2->justify_digest);
	if (!b1 || !b1->connected)
		return;
	/* commit phase on b' */
	if (b1->height > rs->b_lock->height)
		rs->b_lock = b1;
	b0 = oskr__hs_store_find(&rs->store, b1->justify_digest);
	if (!b0 || !b0->connected)
		return;
	/* decide phase on b: a direct-parent three-chain */
	if (b2->parent == b1 && b1->parent == b0)
		commit_through(ctx, rs, b0, b1);
}

static void update(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
		   struct oskr__hs_block *b_star, struct oskr__hs_block *b2)
{
	if (b2)
		update_with_qc(ctx, rs, b2, b_star->justify_view,
			       b_star->justify_raw, b_star->justify_len);
}

/** The block that @p b's justify QC certifies, if we hold it connected
 *  on b's own chain; NULL when it is older than what we keep. */
static bool resolve_justify(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			    struct oskr__hs_block *b,
			    struct oskr__hs_block **out)
{
	struct oskr__hs_block *j = oskr__hs_store_find(&rs->store,
						       b->justify_digest);

	*out = NULL;
	if (!j || !j->connected) {
		/* Pruned (old QC): harmless, just useless for update. */
		if (b->justify_view <= rs->b_exec->view)
			return true;
		return false;
	}
	/* A leader extends b_leaf, which always extends qc_high's block
	 * (Alg. 4 createLeaf): the justified block is an ancestor. */
	if (j->view != b->justify_view ||
	    !oskr__hs_block_extends(b->parent, j))
		return false;
	*out = j;
	return true;
}

/** A block just connected to the tree: run Alg. 4 for it. */
static bool on_connected(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			 struct oskr__hs_block *b)
{
	struct oskr__hs_block *justify_node;

	/* A root (oskr__hs_root_connect_orphans runs this for it) got its
	 * record from install_root: recomputing it without a parent would
	 * replace the checkpoint's record with "history unknown". */
	if (b->parent)
		oskr__hs_note_activity(rs, b);
	if (!resolve_justify(ctx, rs, b, &justify_node)) {
		oskr__hs_drop(ctx, "drop_bad_justify");
		return false;
	}
	if (b->live_proposal && !proposer_leads(rs, b, justify_node)) {
		/* Not the leader of its view: what the round-robin check in
		 * receive.c drops, dropped here. */
		oskr__hs_drop(ctx, "drop_not_leader");
		return false;
	}
	/* Alg. 4 onReceiveProposal: vote decision first, then update. */
	consider_vote(ctx, rs, b, justify_node);
	update(ctx, rs, b, justify_node);
	/* b_leaf: the highest block we know on top of qc_high's block, so
	 * the next leader extends a block replicas may already have voted
	 * at (docs/hotstuff.md, "leaf after a failed view"). */
	if (b->height > rs->b_leaf->height &&
	    oskr__hs_block_extends(b, rs->qc_high_node))
		rs->b_leaf = b;
	return true;
}

static bool parent_fits(const struct oskr__hs_block *b,
			const struct oskr__hs_block *parent)
{
	return b->height == parent->height + 1 && b->view > parent->view;
}

static void check_waiting_qcs(struct oskr_ctx *ctx,
			      struct oskr__hs_replica *rs,
			      struct oskr__hs_block *b)
{
	for (unsigned i = 0; i < OSKR__HS_WAITING_QCS; i++) {
		struct oskr__hs_qc *qc = rs->waiting_qcs[i];

		if (qc && !memcmp(qc->digest, b->digest, OSKR__HS_DIGEST)) {
			rs->waiting_qcs[i] = NULL;
			oskr__hs_on_qc(ctx, rs, qc, -1);
			free(qc);
		}
	}
}

/** Connect @p root and, transitively, every orphan waiting for it. */
static void process_connected(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			      struct oskr__hs_block *root)
{
	struct oskr__hs_block *queue = root, *tail = root;

	root->queue_next = NULL;
	while (queue) {
		struct oskr__hs_block *b = queue, *o, *next;

		queue = b->queue_next;
		if (!queue)
			tail = NULL;
		if (!on_connected(ctx, rs, b)) {
			/* Invalid block: forget it (its orphans stay orphans
			 * until pruned). */
			if (b != rs->b_exec && b != rs->b_lock &&
			    b != rs->b_leaf && b != rs->qc_high_node)
				oskr__hs_store_remove(&rs->store, b);
			continue;
		}
		check_waiting_qcs(ctx, rs, b);
		for (o = rs->store.orphans.list_next; o != &rs->store.orphans;
		     o = next) {
			next = o->list_next;
			if (memcmp(o->parent_digest, b->digest, OSKR__HS_DIGEST))
				continue;
			if (!parent_fits(o, b)) {
				oskr__hs_drop(ctx, "drop_bad_block");
				oskr__hs_store_remove(&rs->store, o);
				continue;
			}
			o->parent = b;
			oskr__hs_store_mark_connected(&rs->store, o);
			o->queue_next = NULL;
			if (tail)
				tail->queue_next = o;
			else
				queue = o;
			tail = o;
		}
	}
}

static struct oskr__hs_block *highest_orphan(struct oskr__hs_replica *rs)
{
	struct oskr__hs_block *o, *best = NULL;

	for (o = rs->store.orphans.list_next; o != &rs->store.orphans;
	     o = o->list_next)
		if (!best || o->height > best->height)
			best = o;
	return best;
}

void oskr__hs_accept_block(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			   const struct oskr__hs_block_ref *ref,
			   const uint8_t digest[OSKR__HS_DIGEST], bool live,
			   int32_t hint_replica)
{
	struct oskr__hs_block *b, *parent;

	b = oskr__hs_store_find(&rs->store, digest);
	if (b) {
		/* Known already (fetched before the proposal arrived, or a
		 * duplicate): a late proposal may still earn our vote. */
		if (live && b->connected && !b->executed) {
			struct oskr__hs_block *j = NULL;

			b->live_proposal = true;
			if (resolve_justify(ctx, rs, b, &j))
				consider_vote(ctx, rs, b, j);
		} else if (live && !b->connected) {
			b->live_proposal = true;
		}
		return;
	}
	/* Nothing at or below the executed height can matter any more:
	 * it is committed (and we have it) or on a dead fork. A block just
	 * above it must hang off the executed block itself. */
	if (ref->height <= rs->b_exec->height ||
	    (ref->height == rs->b_exec->height + 1 &&
	     memcmp(ref->parent, rs->b_exec->digest, OSKR__HS_DIGEST))) {
		oskr__hs_drop(ctx, "drop_stale_block");
		/* A certified-looking block just above our root that does
		 * not hang off it: the cluster goes on from another root
		 * (a whole-cluster restart at different checkpoints). */
		if (ref->height == rs->b_exec->height + 1 && !rs->b_exec->parent)
			oskr__hs_transfer_need(ctx, rs,
					       "a block above our root names "
					       "another parent");
		return;
	}
	if (rs->store.connected_count >= rs->opt.retain_blocks +
						 oskr__hs_prune_slack(rs) +
						 rs->opt.max_uncommitted) {
		oskr__hs_drop(ctx, "drop_store_full");
		return;
	}
	parent = oskr__hs_store_find(&rs->store, ref->parent);
	if (oskr__hs_block_new(ref, digest, &b)) {
		oskr__hs_drop(ctx, "drop_no_memory");
		return;
	}
	b->live_proposal = live;
	if (parent && parent->connected) {
		if (!parent_fits(b, parent)) {
			oskr__hs_drop(ctx, "drop_bad_block");
			free(b);
			return;
		}
		b->parent = parent;
		oskr__hs_store_add(&rs->store, b, true);
		oskr__hs_got_block(rs, digest);
		process_connected(ctx, rs, b);
		return;
	}
	/* Orphan: keep it (bounded) and fetch the missing ancestor. When
	 * full, keep the lowest blocks: they are the ones that connect
	 * first; higher ones come again with later proposals. */
	if (rs->store.orphan_count >= rs->opt.max_orphans) {
		struct oskr__hs_block *top = highest_orphan(rs);

		if (!top || top->height <= b->height) {
			oskr__hs_drop(ctx, "drop_orphans_full");
			free(b);
			return;
		}
		oskr__hs_store_remove(&rs->store, top);
	}
	oskr__hs_store_add(&rs->store, b, false);
	oskr__hs_got_block(rs, digest);
	if (!parent)
		oskr__hs_want_block(ctx, rs, ref->parent, ref->height - 1,
				    hint_replica, false);
	/* Further above our executed block than peers retain: the blocks
	 * between are pruned on correct peers, fetching cannot link us. */
	if (b->height > rs->b_exec->height + rs->opt.retain_blocks +
				oskr__hs_prune_slack(rs))
		oskr__hs_transfer_need(ctx, rs, "a block far above our root");
}

/** Proposal from the leader of its view (signature and QC verified). */
void oskr__hs_on_proposal(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			  struct oskr__hs_inbound *in)
{
	const struct oskr__hs_block_ref *b = &in->m.proposal.block;
	uint32_t proposer = b->proposer;
	struct oskr__hs_block *justified;

	/* By reputation the leader depends on the justified block: when we
	 * hold it, drop a non-leader's proposal before it counts for
	 * anything; else on_connected checks it once it is connected. */
	if (!oskr__hs_leader_stateless(rs)) {
		justified = oskr__hs_store_find(&rs->store, b->justify.digest);
		if (justified && justified->connected &&
		    proposer != oskr__hs_leader(rs, b->view, justified)) {
			oskr__hs_drop(ctx, "drop_not_leader");
			return;
		}
	}

	/* A leader proposes once per view: a second, different block for
	 * the same view is proof of equivocation. Safety does not depend
	 * on noticing (one vote per view), but operators want to know. */
	if (rs->seen_view[proposer] == b->view &&
	    memcmp(rs->seen_digest[proposer], in->digest, OSKR__HS_DIGEST))
		ctx->host->count(ctx, "equivocations", 1);
	if (b->view >= rs->seen_view[proposer]) {
		rs->seen_view[proposer] = b->view;
		memcpy(rs->seen_digest[proposer], in->digest, OSKR__HS_DIGEST);
	}
	oskr__hs_accept_block(ctx, rs, b, in->digest, true, (int32_t)proposer);
}

void oskr__hs_install_root(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			   struct oskr__hs_block *root,
			   const uint8_t *activity, uint64_t qc_view,
			   const uint8_t *qc_raw, size_t qc_len)
{
	struct oskr__hs_store *s = &rs->store;
	struct oskr__hs_block *b, *next;

	/* Everything connected is at or below the new root or hangs off
	 * an older one: none of it can execute any more. Orphans above the
	 * root may still connect to it. */
	for (b = s->connected.list_next; b != &s->connected; b = next) {
		next = b->list_next;
		oskr__hs_store_remove(s, b);
	}
	for (b = s->orphans.list_next; b != &s->orphans; b = next) {
		next = b->list_next;
		if (b->height <= root->height)
			oskr__hs_store_remove(s, b);
	}
	rs->genesis = NULL;
	memset(rs->missing, 0, sizeof(rs->missing));
	root->executed = true;
	root->parent = NULL;
	/* The leader of the views above it is computed from its record:
	 * take the one the replicas with the chain computed (carried by the
	 * checkpoint), so we agree with them. Without one (an old blob) its
	 * history is unknown: every replica counts as active at it
	 * (docs/hotstuff.md, "Leader rotation"). */
	if (activity)
		oskr__hs_activity_get(activity, rs->n, root);
	else
		oskr__hs_note_activity(rs, root);
	oskr__hs_store_add(s, root, true);
	rs->b_exec = rs->b_lock = rs->b_leaf = rs->qc_high_node = root;
	rs->qc_high.view = qc_view;
	memcpy(rs->qc_high.digest, root->digest, OSKR__HS_DIGEST);
	memcpy(rs->qc_high.bytes, qc_raw, qc_len);
	rs->qc_high.len = (uint32_t)qc_len;
	/* Never vote again at or below what we voted before. */
	if (rs->vheight < root->height)
		rs->vheight = root->height;
	if (rs->last_voted_view < root->view)
		rs->last_voted_view = root->view;
	if (rs->cur_view < root->view + 1)
		rs->cur_view = root->view + 1;
}

void oskr__hs_root_connect_orphans(struct oskr_ctx *ctx,
				   struct oskr__hs_replica *rs)
{
	struct oskr__hs_store *s = &rs->store;
	struct oskr__hs_block *b;

	process_connected(ctx, rs, rs->b_exec);
	/* What is still an orphan waits for an ancestor above the root. */
	for (b = s->orphans.list_next; b != &s->orphans; b = b->list_next)
		if (!oskr__hs_store_find(s, b->parent_digest))
			oskr__hs_want_block(ctx, rs, b->parent_digest,
					    b->height - 1, -1, false);
	oskr__hs_note_progress(rs);
}

bool oskr__hs_uncommitted_work(const struct oskr__hs_replica *rs)
{
	const struct oskr__hs_block *b;

	for (b = rs->b_leaf; b && b != rs->b_exec; b = b->parent)
		if (b->request_count)
			return true;
	return false;
}

/* ---- pruning ---- */

static bool pinned(const struct oskr__hs_replica *rs,
		   const struct oskr__hs_block *b)
{
	return b == rs->b_exec || b == rs->b_lock || b == rs->b_leaf ||
	       b == rs->qc_high_node;
}

/**
 * Free what can no longer matter, so memory stays bounded however long
 * the run: executed blocks more than retain_blocks below b_exec (kept
 * that long only to serve BLOCK-FETCH to lagging replicas), blocks at or
 * below b_exec that were never executed (dead forks), and orphans at or
 * below b_exec. Runs only when the store grew past a slack, so its cost
 * is amortised to O(1) per commit.
 */
static void prune(struct oskr_ctx *ctx, struct oskr__hs_replica *rs)
{
	struct oskr__hs_store *s = &rs->store;
	uint64_t slack = oskr__hs_prune_slack(rs);
	uint64_t exec_height = rs->b_exec->height;
	uint64_t keep_from = exec_height > rs->opt.retain_blocks ?
				     exec_height - rs->opt.retain_blocks :
				     0;
	struct oskr__hs_block *b, *next;

	if (s->connected_count < rs->opt.retain_blocks + slack &&
	    s->orphan_count < rs->opt.max_orphans / 2)
		return;
	/* First pass: cut parent pointers into what goes away. */
	for (b = s->connected.list_next; b != &s->connected; b = b->list_next) {
		struct oskr__hs_block *p = b->parent;

		if (p && !pinned(rs, p) &&
		    ((p->executed && p->height < keep_from) ||
		     (!p->executed && p->height <= exec_height)))
			b->parent = NULL;
	}
	for (b = s->connected.list_next; b != &s->connected; b = next) {
		next = b->list_next;
		if (pinned(rs, b))
			continue;
		if ((b->executed && b->height < keep_from) ||
		    (!b->executed && b->height <= exec_height)) {
			if (b == rs->genesis)
				rs->genesis = NULL;
			oskr__hs_store_remove(s, b);
		}
	}
	for (b = s->orphans.list_next; b != &s->orphans; b = next) {
		next = b->list_next;
		if (b->height <= exec_height)
			oskr__hs_store_remove(s, b);
	}
	ctx->host->count(ctx, "prunes", 1);
}
