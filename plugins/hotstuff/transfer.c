/* SPDX-License-Identifier: MIT */
/*
 * State transfer from a peer's checkpoint. The HotStuff paper has none:
 * it assumes any block a QC or a parent link names can be fetched (§4,
 * "the node is fetched if missing"). With pruning (retain_blocks) and
 * durable checkpoints that stops being true: a replica further behind
 * than peers retain, or one that resumed at an older root than the rest
 * of the cluster, cannot link to the chain. This file is our addition
 * (docs/hotstuff.md, "State transfer"):
 *
 *  - every replica keeps the state bytes of its latest checkpoint
 *    (durable.c: clients_len u32 | client table | the root block's
 *    activity record | app snapshot, the very app bytes it persisted),
 *    the root block and its QC, and signs a
 *    *vouch*: (height, block digest, executed ops, committed blocks,
 *    state length, SHA-256 of the state). It keeps its last
 *    OSKR__HS_VOUCH_RING vouches (digests only);
 *  - a replica that cannot link sends CKPT-REQUEST(min height) to all;
 *    peers whose checkpoint is higher answer CKPT-OFFER: their vouch,
 *    the root block and its QC. The root is authenticated by the QC
 *    (n - f signatures, verified in receive.c); the state is not;
 *  - the highest offered root becomes the candidate; a targeted
 *    CKPT-REQUEST asks every peer for its vouch for that block. Once
 *    f + 1 distinct replicas signed the same vouch, at least one correct
 *    replica executed that block and holds that state: the state is
 *    downloaded (CKPT-FETCH / CKPT-CHUNK, chunks that fit max_message,
 *    resumable at the received offset, from another vouching peer after
 *    each fetch_timeout without progress) and installed only if its
 *    SHA-256 is the agreed one. A Byzantine peer can delay a transfer
 *    (liveness), never make a correct replica install a wrong state;
 *  - the activity record (pacemaker.c oskr__hs_note_activity) is part of
 *    the hashed state, so f + 1 vouches cover it like the rest: the
 *    laggard computes the leaders above the root from the record the
 *    replicas with the chain computed, and a Byzantine server cannot
 *    make it adopt a forged history;
 *  - install: app_restore, the client table, the root as checkpoint
 *    resume makes it (core.c oskr__hs_install_root), then the normal
 *    fetch of the blocks above it; the checkpoint is persisted with
 *    checkpoint_stable and served in turn.
 */
#include <stdlib.h>
#include <string.h>

#include "hotstuff.h"

/* Timer rounds (fetch_timeout each) without progress before a transfer
 * drops its candidate and asks again from scratch, and before it stops. */
#define TRANSFER_STALL_ROUNDS 16
#define TRANSFER_MAX_ROUNDS 64

static uint64_t now(struct oskr_ctx *ctx)
{
	return ctx->host->now_ns(ctx);
}

/* ---- the checkpoint we serve (durable.c calls in) ---- */

int oskr__hs_state_build(const uint8_t *clients, size_t clients_len,
			 uint32_t n, const struct oskr__hs_block *root,
			 const void *app, size_t app_len, uint8_t **out,
			 size_t *out_len)
{
	size_t activity_len = oskr__hs_activity_len(n);
	size_t len = 4 + clients_len + activity_len + app_len;
	struct oskr__hs_writer w;
	uint8_t *state;

	if (clients_len > UINT32_MAX || n > OSKR__HS_MAX_REPLICAS ||
	    len > OSKR__HS_STATE_MAX || len < clients_len ||
	    len < app_len)
		return -EINVAL;
	state = malloc(len);
	if (!state)
		return -ENOMEM;
	for (unsigned i = 0; i < 4; i++)
		state[i] = (uint8_t)(clients_len >> (8 * i));
	if (clients_len)
		memcpy(state + 4, clients, clients_len);
	oskr__hs_writer_init(&w, state + 4 + clients_len, activity_len);
	oskr__hs_activity_put(&w, n, root);
	if (app_len)
		memcpy(state + 4 + clients_len + activity_len, app, app_len);
	*out = state;
	*out_len = len;
	return 0;
}

static void vouch_ref(struct oskr__hs_vouch_ref *v, uint32_t sender,
		      const struct oskr__hs_ckpt_id *id, const uint8_t *sig,
		      uint8_t sig_len)
{
	v->sender = (uint16_t)sender;
	v->height = id->height;
	v->block_digest = id->block_digest;
	v->executed_ops = id->executed_ops;
	v->committed_blocks = id->committed_blocks;
	v->state_len = id->state_len;
	v->state_digest = id->state_digest;
	v->sig = sig;
	v->sig_len = sig_len;
}

static void id_from_vouch(struct oskr__hs_ckpt_id *id,
			  const struct oskr__hs_vouch_ref *v)
{
	id->height = v->height;
	memcpy(id->block_digest, v->block_digest, OSKR__HS_DIGEST);
	id->executed_ops = v->executed_ops;
	id->committed_blocks = v->committed_blocks;
	id->state_len = v->state_len;
	memcpy(id->state_digest, v->state_digest, OSKR__HS_DIGEST);
}

static bool id_equal(const struct oskr__hs_ckpt_id *a,
		     const struct oskr__hs_ckpt_id *b)
{
	return a->height == b->height && a->executed_ops == b->executed_ops &&
	       a->committed_blocks == b->committed_blocks &&
	       a->state_len == b->state_len &&
	       !memcmp(a->block_digest, b->block_digest, OSKR__HS_DIGEST) &&
	       !memcmp(a->state_digest, b->state_digest, OSKR__HS_DIGEST);
}

void oskr__hs_serve_checkpoint(struct oskr_ctx *ctx,
			       struct oskr__hs_replica *rs,
			       const uint8_t *block_raw, size_t block_len,
			       uint64_t height,
			       const uint8_t block_digest[OSKR__HS_DIGEST],
			       const uint8_t *qc, size_t qc_len,
			       uint64_t executed_ops, uint64_t committed_blocks,
			       uint8_t *state, size_t state_len)
{
	struct oskr__hs_served *sv = &rs->served;
	struct oskr__hs_own_vouch vouch = { .valid = true };
	uint8_t payload[OSKR__HS_VOUCH_PAYLOAD];
	struct oskr__hs_vouch_ref ref;
	size_t sig_len = 0;
	uint8_t *block;

	vouch.id.height = height;
	memcpy(vouch.id.block_digest, block_digest, OSKR__HS_DIGEST);
	vouch.id.executed_ops = executed_ops;
	vouch.id.committed_blocks = committed_blocks;
	vouch.id.state_len = state_len;
	ctx->host->digest(ctx, state, state_len, vouch.id.state_digest);
	vouch_ref(&ref, rs->id, &vouch.id, NULL, 0);
	oskr__hs_vouch_payload(payload, &ref);
	if (qc_len > sizeof(sv->qc) ||
	    ctx->host->sign(ctx, payload, sizeof(payload), vouch.sig,
			    &sig_len) ||
	    sig_len == 0 || sig_len > OSKR_SIGNATURE_MAX) {
		free(state);
		return;
	}
	vouch.sig_len = (uint8_t)sig_len;
	rs->vouch_ring[rs->vouch_ring_next++ % OSKR__HS_VOUCH_RING] = vouch;
	/* One state kept. A peer downloading the current one (or just
	 * offered it) keeps it pinned: it would otherwise change under the
	 * download every interval under load. The vouch ring still names
	 * the newer ones. The pin ends after 4 fetch_timeouts without a
	 * request, or when the pinned root falls retain_blocks / 2 behind
	 * (blocks above it must still be fetchable after the install). */
	if (sv->valid && sv->last_served_ns &&
	    now(ctx) - sv->last_served_ns < 4 * rs->opt.fetch_timeout_ns &&
	    sv->vouch.id.height + rs->opt.retain_blocks / 2 >= height) {
		free(state);
		return;
	}
	block = malloc(block_len);
	if (!block) {
		free(state);
		return;
	}
	memcpy(block, block_raw, block_len);
	free(sv->state);
	free(sv->block);
	sv->valid = true;
	sv->vouch = vouch;
	sv->state = state;
	sv->block = block;
	sv->block_len = block_len;
	memcpy(sv->qc, qc, qc_len);
	sv->qc_len = qc_len;
	sv->last_served_ns = 0;
}

/* ---- serving: offers and chunks ---- */

static void send_offer(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
		       const struct oskr_addr *to,
		       const struct oskr__hs_own_vouch *vouch, bool with_block)
{
	const struct oskr__hs_served *sv = &rs->served;
	size_t cap = OSKR__HS_HEADER_SIZE + OSKR__HS_VOUCH_PAYLOAD + 1 +
		     OSKR_SIGNATURE_MAX + 1;
	struct oskr__hs_vouch_ref ref;
	struct oskr__hs_writer w;
	struct oskr_buf *buf;

	if (with_block)
		cap += 4 + sv->block_len + 4 + sv->qc_len;
	if (cap > rs->max_message) {
		/* A root block as large as a proposal plus its QC: does not
		 * fit (docs/hotstuff.md, "Known limitations"). */
		oskr__hs_drop(ctx, "drop_offer_too_large");
		return;
	}
	if (ctx->host->buf_alloc(ctx, cap, &buf))
		return;
	vouch_ref(&ref, rs->id, &vouch->id, vouch->sig, vouch->sig_len);
	oskr__hs_writer_init(&w, buf->data, buf->capacity);
	oskr__hs_put_header(&w, OSKR__HS_MSG_CKPT_OFFER);
	oskr__hs_put_vouch(&w, &ref);
	oskr__hs_put_u8(&w, with_block ? 1 : 0);
	if (with_block) {
		oskr__hs_put_u32(&w, (uint32_t)sv->block_len);
		oskr__hs_put_bytes(&w, sv->block, sv->block_len);
		oskr__hs_put_u32(&w, (uint32_t)sv->qc_len);
		oskr__hs_put_bytes(&w, sv->qc, sv->qc_len);
	}
	if (w.overflow) {
		ctx->host->buf_release(buf);
		return;
	}
	buf->len = (uint32_t)w.len;
	if (with_block)
		rs->served.last_served_ns = now(ctx);
	ctx->host->count(ctx, "ckpt_offers_sent", 1);
	ctx->host->send_to_addr(ctx, to, buf);
}

void oskr__hs_on_ckpt_request(struct oskr_ctx *ctx,
			      struct oskr__hs_replica *rs,
			      struct oskr__hs_inbound *in)
{
	const struct oskr__hs_ckpt_request_ref *m = &in->m.ckpt_request;

	if (m->has_target) {
		if (rs->served.valid &&
		    !memcmp(rs->served.vouch.id.block_digest, m->target,
			    OSKR__HS_DIGEST)) {
			send_offer(ctx, rs, &in->from, &rs->served.vouch,
				   false);
			return;
		}
		for (unsigned i = 0; i < OSKR__HS_VOUCH_RING; i++) {
			const struct oskr__hs_own_vouch *v = &rs->vouch_ring[i];

			if (v->valid && !memcmp(v->id.block_digest, m->target,
						OSKR__HS_DIGEST)) {
				send_offer(ctx, rs, &in->from, v, false);
				return;
			}
		}
		return;
	}
	if (rs->served.valid && rs->served.vouch.id.height > m->min_height)
		send_offer(ctx, rs, &in->from, &rs->served.vouch, true);
}

void oskr__hs_transfer_on_fetch_miss(struct oskr_ctx *ctx,
				     struct oskr__hs_replica *rs,
				     struct oskr__hs_inbound *in)
{
	uint64_t t = now(ctx);
	int32_t peer = in->from_replica;

	if (!rs->served.valid || peer < 0 || (uint32_t)peer >= rs->n)
		return;
	/* At most one per peer per fetch_timeout: a miss costs nothing. */
	if (rs->transfer.last_offer_ns[peer] &&
	    t - rs->transfer.last_offer_ns[peer] < rs->opt.fetch_timeout_ns)
		return;
	rs->transfer.last_offer_ns[peer] = t;
	send_offer(ctx, rs, &in->from, &rs->served.vouch, true);
}

void oskr__hs_on_ckpt_fetch(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			    struct oskr__hs_inbound *in)
{
	const struct oskr__hs_ckpt_fetch_ref *m = &in->m.ckpt_fetch;
	struct oskr__hs_served *sv = &rs->served;
	uint64_t total = sv->vouch.id.state_len, len;
	struct oskr__hs_writer w;
	struct oskr_buf *buf;

	if (!sv->valid ||
	    memcmp(sv->vouch.id.block_digest, m->block_digest,
		   OSKR__HS_DIGEST) ||
	    m->offset > total) {
		ctx->host->count(ctx, "ckpt_fetch_misses", 1);
		return;
	}
	if (rs->max_message <= OSKR__HS_CHUNK_FIXED)
		return;
	len = total - m->offset;
	if (len > rs->max_message - OSKR__HS_CHUNK_FIXED)
		len = rs->max_message - OSKR__HS_CHUNK_FIXED;
	if (ctx->host->buf_alloc(ctx, OSKR__HS_CHUNK_FIXED + len, &buf))
		return;
	oskr__hs_writer_init(&w, buf->data, buf->capacity);
	oskr__hs_put_header(&w, OSKR__HS_MSG_CKPT_CHUNK);
	oskr__hs_put_u16(&w, (uint16_t)rs->id);
	oskr__hs_put_bytes(&w, sv->vouch.id.block_digest, OSKR__HS_DIGEST);
	oskr__hs_put_bytes(&w, sv->vouch.id.state_digest, OSKR__HS_DIGEST);
	oskr__hs_put_u64(&w, total);
	oskr__hs_put_u64(&w, m->offset);
	oskr__hs_put_u32(&w, (uint32_t)len);
	oskr__hs_put_bytes(&w, sv->state + m->offset, len);
	if (w.overflow) {
		ctx->host->buf_release(buf);
		return;
	}
	buf->len = (uint32_t)w.len;
	sv->last_served_ns = now(ctx);
	ctx->host->count(ctx, "ckpt_chunks_served", 1);
	ctx->host->send_to_addr(ctx, &in->from, buf);
}

/* ---- the laggard ---- */

static void send_request(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			 const uint8_t *target)
{
	static const uint8_t zero[OSKR__HS_DIGEST];
	struct oskr__hs_writer w;
	struct oskr_buf *buf;

	if (ctx->host->buf_alloc(ctx, OSKR__HS_HEADER_SIZE + 2 + 8 + 1 +
						OSKR__HS_DIGEST,
				 &buf))
		return;
	oskr__hs_writer_init(&w, buf->data, buf->capacity);
	oskr__hs_put_header(&w, OSKR__HS_MSG_CKPT_REQUEST);
	oskr__hs_put_u16(&w, (uint16_t)rs->id);
	oskr__hs_put_u64(&w, rs->b_exec->height);
	oskr__hs_put_u8(&w, target ? 1 : 0);
	oskr__hs_put_bytes(&w, target ? target : zero, OSKR__HS_DIGEST);
	buf->len = (uint32_t)w.len;
	ctx->host->count(ctx, "ckpt_requests_sent", 1);
	ctx->host->send_to_all(ctx, buf);
}

static void send_chunk_fetch(struct oskr_ctx *ctx, struct oskr__hs_replica *rs)
{
	struct oskr__hs_transfer *t = &rs->transfer;
	struct oskr__hs_writer w;
	struct oskr_buf *buf;

	if (ctx->host->buf_alloc(ctx, OSKR__HS_HEADER_SIZE + 2 +
						OSKR__HS_DIGEST + 8,
				 &buf))
		return;
	oskr__hs_writer_init(&w, buf->data, buf->capacity);
	oskr__hs_put_header(&w, OSKR__HS_MSG_CKPT_FETCH);
	oskr__hs_put_u16(&w, (uint16_t)rs->id);
	oskr__hs_put_bytes(&w, t->agreed_id.block_digest, OSKR__HS_DIGEST);
	oskr__hs_put_u64(&w, t->received);
	buf->len = (uint32_t)w.len;
	ctx->host->send_to_replica(ctx, t->source, buf);
}

/** Next download source: a replica that vouched for the agreed state
 *  (it executed that block; it may still serve it). */
static void next_source(struct oskr__hs_replica *rs)
{
	struct oskr__hs_transfer *t = &rs->transfer;

	for (uint32_t i = 0; i < rs->n; i++) {
		uint32_t r = t->source_cursor++ % rs->n;

		if (r != rs->id && (t->agreed_mask & (1ull << r))) {
			t->source = r;
			return;
		}
	}
}

static void drop_candidate(struct oskr__hs_transfer *t)
{
	free(t->block);
	free(t->data);
	t->block = NULL;
	t->data = NULL;
	t->have_candidate = false;
	t->agreed = false;
	t->vouch_mask = 0;
	t->agreed_mask = 0;
	t->received = 0;
}

static void transfer_stop(struct oskr_ctx *ctx, struct oskr__hs_replica *rs)
{
	struct oskr__hs_transfer *t = &rs->transfer;

	drop_candidate(t);
	t->active = false;
	if (t->timer)
		ctx->host->timer_cancel(ctx, t->timer);
	t->timer = 0;
}

static void on_transfer_timer(struct oskr_ctx *ctx, void *state, void *arg);

static void arm_timer(struct oskr_ctx *ctx, struct oskr__hs_replica *rs)
{
	if (rs->transfer.timer)
		return;
	if (ctx->host->timer_arm(ctx, rs->opt.fetch_timeout_ns,
				 on_transfer_timer, NULL, &rs->transfer.timer))
		rs->transfer.timer = 0;
}

void oskr__hs_transfer_need(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			    const char *why)
{
	struct oskr__hs_transfer *t = &rs->transfer;
	uint64_t at = now(ctx);

	if (t->active || (t->last_start_ns &&
			  at - t->last_start_ns < rs->opt.fetch_timeout_ns))
		return;
	t->active = true;
	t->attempts = 0;
	t->last_start_ns = at;
	t->progress_ns = at;
	ctx->host->log(ctx, OSKR_LOG_INFO,
		       "state transfer: %s; asking peers for a checkpoint "
		       "above height %llu",
		       why, (unsigned long long)rs->b_exec->height);
	send_request(ctx, rs, NULL);
	arm_timer(ctx, rs);
}

/** f + 1 signers agree on one id for the candidate block: at least one
 *  of them is correct, so that is the state after executing it. */
static void check_agreement(struct oskr_ctx *ctx, struct oskr__hs_replica *rs)
{
	struct oskr__hs_transfer *t = &rs->transfer;

	if (t->agreed)
		return;
	for (uint32_t a = 0; a < rs->n; a++) {
		uint64_t mask = 0;

		if (!(t->vouch_mask & (1ull << a)))
			continue;
		for (uint32_t b = 0; b < rs->n; b++)
			if ((t->vouch_mask & (1ull << b)) &&
			    id_equal(&t->vouches[a], &t->vouches[b]))
				mask |= 1ull << b;
		if ((uint32_t)__builtin_popcountll(mask) < rs->f + 1)
			continue;
		t->data = malloc(t->vouches[a].state_len ?
					 t->vouches[a].state_len :
					 1);
		if (!t->data)
			return;
		t->agreed = true;
		t->agreed_id = t->vouches[a];
		t->agreed_mask = mask;
		t->received = 0;
		t->source = t->offerer;
		t->source_cursor = t->offerer + 1;
		if (!(mask & (1ull << t->source)) || t->source == rs->id)
			next_source(rs);
		t->progress_ns = now(ctx);
		t->attempts = 0;
		send_chunk_fetch(ctx, rs);
		return;
	}
}

static void record_vouch(struct oskr__hs_replica *rs,
			 const struct oskr__hs_vouch_ref *v)
{
	struct oskr__hs_transfer *t = &rs->transfer;

	if (!t->have_candidate || v->sender >= rs->n ||
	    v->height != t->cand.height ||
	    memcmp(v->block_digest, t->cand.block_digest, OSKR__HS_DIGEST))
		return;
	/* A signer's first vouch for this block counts (a correct replica
	 * signs one state per block). */
	if (t->vouch_mask & (1ull << v->sender))
		return;
	id_from_vouch(&t->vouches[v->sender], v);
	t->vouch_mask |= 1ull << v->sender;
}

void oskr__hs_on_ckpt_offer(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			    struct oskr__hs_inbound *in)
{
	const struct oskr__hs_ckpt_offer_ref *m = &in->m.ckpt_offer;
	struct oskr__hs_transfer *t = &rs->transfer;
	uint64_t lowest;

	if (m->vouch.sender == rs->id)
		return;
	if (!t->active) {
		/* Unsolicited: a peer missed our fetch and holds a checkpoint
		 * above the block we miss, so it pruned that block. */
		lowest = oskr__hs_lowest_missing(rs);
		if (!m->has_block || m->vouch.height <= rs->b_exec->height ||
		    !lowest || lowest >= m->vouch.height) {
			/* A miss of a block still in flight: nothing pruned. */
			ctx->host->count(ctx, "ckpt_offers_ignored", 1);
			return;
		}
		oskr__hs_transfer_need(ctx, rs,
				       "a peer pruned a block we fetch");
		if (!t->active)
			return;
	}
	if (m->has_block && m->vouch.height > rs->b_exec->height &&
	    (!t->have_candidate ||
	     (!t->agreed && m->vouch.height > t->cand.height))) {
		/* A higher root (its QC verified in receive.c): fetch vouches
		 * for it from everyone. Not once a download runs: under load
		 * newer roots keep coming, and any root we can link above
		 * will do. */
		uint8_t *block = malloc(m->block.raw_len);

		if (!block || m->qc.raw_len > sizeof(t->qc)) {
			free(block);
			return;
		}
		drop_candidate(t);
		memcpy(block, m->block.raw, m->block.raw_len);
		t->block = block;
		t->block_len = m->block.raw_len;
		memcpy(t->qc, m->qc.raw, m->qc.raw_len);
		t->qc_len = m->qc.raw_len;
		id_from_vouch(&t->cand, &m->vouch);
		t->offerer = m->vouch.sender;
		t->have_candidate = true;
		t->progress_ns = now(ctx);
		t->attempts = 0;
		send_request(ctx, rs, t->cand.block_digest);
	}
	record_vouch(rs, &m->vouch);
	check_agreement(ctx, rs);
}

static void install(struct oskr_ctx *ctx, struct oskr__hs_replica *rs)
{
	struct oskr__hs_transfer *t = &rs->transfer;
	const struct oskr__hs_ckpt_id *id = &t->agreed_id;
	struct oskr__hs_block_ref ref;
	struct oskr__hs_qc_ref qc;
	struct oskr__hs_block *root;
	const uint8_t *clients, *activity, *app;
	size_t clients_len, app_len, used = 0;
	size_t activity_len = oskr__hs_activity_len(rs->n);
	uint8_t *blob = NULL, *state;
	size_t blob_len = 0;
	int err;

	if (id->height <= rs->b_exec->height) {
		/* We caught up by fetching meanwhile: never go back. */
		transfer_stop(ctx, rs);
		return;
	}
	clients_len = (size_t)t->data[0] | (size_t)t->data[1] << 8 |
		      (size_t)t->data[2] << 16 | (size_t)t->data[3] << 24;
	if (id->state_len < 4 ||
	    clients_len > id->state_len - 4 ||
	    activity_len > id->state_len - 4 - clients_len ||
	    !oskr__hs_decode_block(t->block, t->block_len, &ref) ||
	    !oskr__hs_decode_qc(t->qc, t->qc_len, &used, &qc) ||
	    used != t->qc_len) {
		/* f + 1 replicas vouched for it: cannot happen with at most
		 * f faults. Refuse rather than install. */
		oskr__hs_drop(ctx, "transfer_bad_state");
		drop_candidate(t);
		return;
	}
	clients = t->data + 4;
	activity = clients + clients_len;
	app = activity + activity_len;
	app_len = id->state_len - 4 - clients_len - activity_len;
	if (!oskr__hs_clients_valid(clients, clients_len,
				    rs->opt.client_table_size) ||
	    !oskr__hs_activity_valid(activity, activity_len, rs->n)) {
		oskr__hs_drop(ctx, "transfer_bad_state");
		drop_candidate(t);
		return;
	}
	if (oskr__hs_block_new(&ref, id->block_digest, &root))
		return;
	err = ctx->host->app_restore(ctx, app, app_len);
	if (err) {
		free(root);
		oskr__hs_drop(ctx, "transfer_bad_state");
		ctx->host->log(ctx, OSKR_LOG_ERROR,
			       "state transfer: the app refused the snapshot "
			       "at op %llu: %d",
			       (unsigned long long)id->executed_ops, err);
		drop_candidate(t);
		return;
	}
	oskr__hs_clients_clear(&rs->requests);
	if (oskr__hs_clients_restore(&rs->requests, &rs->opt, clients,
				     clients_len))
		oskr__hs_clients_clear(&rs->requests); /* ENOMEM only */
	oskr__hs_install_root(ctx, rs, root, activity, qc.view, t->qc,
			      t->qc_len);
	rs->executed_ops = id->executed_ops;
	rs->committed_blocks = id->committed_blocks;
	if (rs->opt.checkpoint_interval)
		rs->checkpoint_epoch =
			id->executed_ops / rs->opt.checkpoint_interval;
	/* Persist it (the same app bytes) and serve it in turn. */
	if (OSKR_HOST_HAS(ctx->host, checkpoint_stable) &&
	    !oskr__hs_resume_encode(rs->n, rs->f, id->executed_ops,
				    id->committed_blocks, root, true, t->qc,
				    t->qc_len, clients, clients_len, &blob,
				    &blob_len)) {
		if (ctx->host->checkpoint_stable(ctx, id->executed_ops, app,
						 app_len, blob, blob_len))
			oskr__hs_drop(ctx, "checkpoint_persist_failures");
		else
			ctx->host->count(ctx, OSKR_COUNTER_CHECKPOINTS, 1);
		free(blob);
	}
	state = t->data;
	t->data = NULL;
	oskr__hs_serve_checkpoint(ctx, rs, root->raw, root->raw_len,
				  root->height, root->digest, t->qc, t->qc_len,
				  id->executed_ops, id->committed_blocks, state,
				  id->state_len);
	ctx->host->count(ctx, "state_transfers", 1);
	ctx->host->log(ctx, OSKR_LOG_INFO,
		       "state transfer: installed the checkpoint at block "
		       "height %llu (op %llu, %llu bytes)",
		       (unsigned long long)root->height,
		       (unsigned long long)id->executed_ops,
		       (unsigned long long)id->state_len);
	transfer_stop(ctx, rs);
	/* Orphans above the root connect now; the rest is fetched. */
	oskr__hs_root_connect_orphans(ctx, rs);
	oskr__hs_publish_status(ctx, rs);
}

void oskr__hs_on_ckpt_chunk(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			    struct oskr__hs_inbound *in)
{
	const struct oskr__hs_ckpt_chunk_ref *m = &in->m.ckpt_chunk;
	struct oskr__hs_transfer *t = &rs->transfer;
	uint8_t digest[OSKR__HS_DIGEST];

	if (!t->active || !t->agreed || m->sender != t->source ||
	    in->from_replica != (int32_t)m->sender ||
	    memcmp(m->block_digest, t->agreed_id.block_digest,
		   OSKR__HS_DIGEST)) {
		oskr__hs_drop(ctx, "drop_unsolicited");
		return;
	}
	if (m->total != t->agreed_id.state_len ||
	    memcmp(m->state_digest, t->agreed_id.state_digest,
		   OSKR__HS_DIGEST)) {
		/* That peer serves another state under this block. */
		oskr__hs_drop(ctx, "drop_bad_chunk");
		next_source(rs);
		send_chunk_fetch(ctx, rs);
		return;
	}
	if (m->offset != t->received)
		return; /* duplicate or late: we asked again meanwhile */
	if (m->data_len)
		memcpy(t->data + t->received, m->data, m->data_len);
	t->received += m->data_len;
	t->progress_ns = now(ctx);
	t->attempts = 0;
	ctx->host->count(ctx, "ckpt_chunks_received", 1);
	if (t->received < t->agreed_id.state_len) {
		if (m->data_len)
			send_chunk_fetch(ctx, rs);
		return;
	}
	ctx->host->digest(ctx, t->data, t->agreed_id.state_len, digest);
	if (memcmp(digest, t->agreed_id.state_digest, OSKR__HS_DIGEST)) {
		/* The source sent other bytes than f + 1 replicas vouched
		 * for: start over from another one. */
		oskr__hs_drop(ctx, "transfer_bad_state");
		t->received = 0;
		next_source(rs);
		send_chunk_fetch(ctx, rs);
		return;
	}
	install(ctx, rs);
}

static void on_transfer_timer(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct oskr__hs_replica *rs = state;
	struct oskr__hs_transfer *t = &rs->transfer;

	t->timer = 0;
	if (!t->active)
		return;
	if (t->have_candidate && t->cand.height <= rs->b_exec->height) {
		/* Caught up by fetching meanwhile. */
		transfer_stop(ctx, rs);
		return;
	}
	if (++t->attempts > TRANSFER_MAX_ROUNDS) {
		ctx->host->count(ctx, "transfer_gave_up", 1);
		ctx->host->log(ctx, OSKR_LOG_WARN,
			       "state transfer: no checkpoint obtained; "
			       "giving up until the next trigger");
		transfer_stop(ctx, rs);
		return;
	}
	if (t->have_candidate && t->attempts % TRANSFER_STALL_ROUNDS == 0) {
		/* Peers moved on from that checkpoint: ask afresh. */
		drop_candidate(t);
	}
	if (!t->have_candidate) {
		send_request(ctx, rs, NULL);
	} else if (!t->agreed) {
		send_request(ctx, rs, t->cand.block_digest);
	} else if (now(ctx) - t->progress_ns >= rs->opt.fetch_timeout_ns) {
		/* Resumable: the next vouching peer goes on at the offset. */
		next_source(rs);
		send_chunk_fetch(ctx, rs);
	}
	arm_timer(ctx, rs);
	oskr__hs_pacemaker_refresh(ctx, rs);
}

void oskr__hs_transfer_fini(struct oskr_ctx *ctx, struct oskr__hs_replica *rs)
{
	transfer_stop(ctx, rs);
	free(rs->served.state);
	free(rs->served.block);
	rs->served.state = NULL;
	rs->served.block = NULL;
	rs->served.valid = false;
}
