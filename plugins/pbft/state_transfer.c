/* SPDX-License-Identifier: MIT */
/*
 * Catching up (TOCS'02 §5.3, state transfer, in a simpler form).
 *
 *  - Committed entries: FETCH-ENTRIES(n) asks peers for the batches from
 *    n on that they committed; each ENTRY carries the batch and its
 *    commit certificate (2f+1 signed COMMITs for (v, n, d)), so one reply
 *    from any replica is enough to execute it.
 *  - Batches: after a view change a replica may hold a pre-prepare of O
 *    whose batch it never saw; FETCH-BATCH(n, d) gets it from anyone
 *    (the digest authenticates it).
 *  - Snapshots: a replica that holds a stable checkpoint proof beyond
 *    what it executed (it was partitioned, or restarted empty) fetches
 *    that checkpoint's state in chunks that fit max_message, checks the
 *    digest against the 2f+1 signed CHECKPOINT messages, restores it, and
 *    goes on with committed entries after it.
 */
#include "pbft.h"

#include <stdlib.h>

#define PBFT_FETCH_MAX 16
/* A snapshot larger than this is refused (a Byzantine peer could claim
 * any total). */
#define PBFT_STATE_MAX (UINT64_C(1) << 32)

/* ---- committed entries ---- */

void oskr__pbft_fetch_entries(struct oskr_ctx *ctx, struct pbft_replica *r)
{
	struct pbft_writer w;
	struct oskr_buf *buf = oskr__pbft_alloc(ctx, 1 + 8 + 2, &w);
	if (!buf)
		return;
	pbft_put_u8(&w, PBFT_FETCH_ENTRIES);
	pbft_put_u64(&w, r->last_executed + 1);
	pbft_put_u16(&w, (uint16_t)r->id);
	struct pbft_dest all = { .kind = PBFT_TO_ALL };
	oskr__pbft_seal_and_send_async(ctx, buf, w.len, &all);
}

bool oskr__pbft_verify_commit_cert(struct oskr_ctx *ctx, uint32_t f,
				   const struct pbft_msg *m)
{
	if (m->entry.commits.count < 2 * f + 1)
		return false;
	struct pbft_reader rd = pbft_list_reader(m->entry.commits.data,
						 m->entry.commits.len);
	struct pbft_sig_pair pair;
	while (oskr__pbft_next_sig(&rd, &pair)) {
		uint8_t body[PBFT_ORDER_BODY];
		oskr__pbft_order_body(body, PBFT_COMMIT, m->entry.view,
				      m->entry.seq, m->entry.digest,
				      pair.replica);
		if (!ctx->host->verify(ctx, pair.replica, body, sizeof(body),
				       pair.sig, pair.sig_len))
			return false;
	}
	return true;
}

static bool send_entry(struct oskr_ctx *ctx, struct pbft_replica *r,
		       const struct pbft_entry *e, uint32_t to)
{
	if (!e->committed || !e->batch ||
	    memcmp(e->batch_digest, e->commit_digest, PBFT_DIGEST))
		return false;
	struct pbft_writer w;
	struct oskr_buf *buf = oskr__pbft_alloc(
		ctx,
		1 + 8 + 8 + PBFT_DIGEST + 2 + 1 +
			pbft_quorum(r) * PBFT_SIG_PAIR_MAX + 4 + e->batch_len,
		&w);
	if (!buf)
		return false;
	pbft_put_u8(&w, PBFT_ENTRY);
	pbft_put_u64(&w, e->commit_view);
	pbft_put_u64(&w, e->seq);
	pbft_put(&w, e->commit_digest, PBFT_DIGEST);
	pbft_put_u16(&w, (uint16_t)r->id);
	size_t count_at = w.len;
	uint8_t count = 0;
	pbft_put_u8(&w, 0);
	for (uint32_t i = 0; i < r->n && count < pbft_quorum(r); i++) {
		const struct pbft_vote *v = &e->commits[i];
		if (!(e->commit_mask & (UINT64_C(1) << i)) ||
		    v->view != e->commit_view ||
		    memcmp(v->digest, e->commit_digest, PBFT_DIGEST))
			continue;
		pbft_put_sig_pair(&w, (uint16_t)i, v->sig, v->sig_len);
		count++;
	}
	if (count < pbft_quorum(r) || w.overflow) {
		ctx->host->buf_release(buf);
		return false;
	}
	w.data[count_at] = count;
	pbft_put_u32(&w, e->batch_len);
	pbft_put(&w, e->batch, e->batch_len);
	if (w.overflow) {
		ctx->host->buf_release(buf);
		return false;
	}
	struct pbft_dest dest = { .kind = PBFT_TO_REPLICA, .replica = to };
	oskr__pbft_seal_and_send_async(ctx, buf, w.len, &dest);
	return true;
}

void oskr__pbft_on_fetch_entries(struct oskr_ctx *ctx, struct pbft_replica *r,
				 const struct pbft_msg *m)
{
	uint64_t from = m->fetch_entries.from_seq;
	if (from <= r->low_mark) {
		/* We discarded those: our stable checkpoint replaces them. */
		oskr__pbft_send_stable(ctx, r, m->replica);
		from = r->low_mark + 1;
	}
	for (uint64_t seq = from; seq < from + PBFT_FETCH_MAX; seq++) {
		const struct pbft_entry *e = oskr__pbft_entry_find(r, seq);
		if (!e || !send_entry(ctx, r, e, m->replica))
			break;
	}
}

void oskr__pbft_on_entry(struct oskr_ctx *ctx, struct pbft_replica *r,
			 const struct pbft_msg *m)
{
	uint64_t seq = m->entry.seq;
	if (seq <= r->last_executed)
		return;
	struct pbft_entry *e = oskr__pbft_entry(r, seq);
	if (!e) {
		oskr__pbft_drop(ctx, "out_of_window");
		return;
	}
	if (e->committed &&
	    !memcmp(e->commit_digest, m->entry.digest, PBFT_DIGEST) &&
	    oskr__pbft_entry_has_batch(e))
		return;
	if (oskr__pbft_entry_set_batch(e, m->entry.batch, m->entry.batch_len,
				       m->entry.digest))
		return;
	/* Keep the certificate so we can serve it in turn. */
	struct pbft_reader rd = pbft_list_reader(m->entry.commits.data,
						 m->entry.commits.len);
	struct pbft_sig_pair pair;
	while (oskr__pbft_next_sig(&rd, &pair)) {
		struct pbft_vote *v = &e->commits[pair.replica];
		v->view = m->entry.view;
		memcpy(v->digest, m->entry.digest, PBFT_DIGEST);
		v->sig_len = pair.sig_len;
		memcpy(v->sig, pair.sig, pair.sig_len);
		e->commit_mask |= UINT64_C(1) << pair.replica;
	}
	e->committed = true;
	e->commit_view = m->entry.view;
	memcpy(e->commit_digest, m->entry.digest, PBFT_DIGEST);
	if (seq > r->last_committed)
		r->last_committed = seq;
	ctx->host->count(ctx, "entries_fetched", 1);
	oskr__pbft_execute_ready(ctx, r);
}

/* ---- batches ---- */

void oskr__pbft_fetch_missing_batches(struct oskr_ctx *ctx,
				      struct pbft_replica *r)
{
	unsigned asked = 0;
	for (uint64_t seq = r->low_mark + 1;
	     oskr__pbft_in_window(r, seq) && asked < PBFT_FETCH_MAX; seq++) {
		const struct pbft_entry *e = oskr__pbft_entry_find(r, seq);
		if (!e || seq <= r->last_executed)
			continue;
		const uint8_t *digest = NULL;
		if (e->committed &&
		    (!e->batch ||
		     memcmp(e->batch_digest, e->commit_digest, PBFT_DIGEST)))
			digest = e->commit_digest;
		else if (!e->committed && e->has_preprepare &&
			 !oskr__pbft_entry_has_batch(e))
			digest = e->digest;
		if (!digest)
			continue;
		struct pbft_writer w;
		struct oskr_buf *buf =
			oskr__pbft_alloc(ctx, 1 + 8 + PBFT_DIGEST + 2, &w);
		if (!buf)
			return;
		pbft_put_u8(&w, PBFT_FETCH_BATCH);
		pbft_put_u64(&w, seq);
		pbft_put(&w, digest, PBFT_DIGEST);
		pbft_put_u16(&w, (uint16_t)r->id);
		struct pbft_dest all = { .kind = PBFT_TO_ALL };
		oskr__pbft_seal_and_send_async(ctx, buf, w.len, &all);
		asked++;
	}
}

void oskr__pbft_on_fetch_batch(struct oskr_ctx *ctx, struct pbft_replica *r,
			       const struct pbft_msg *m)
{
	const struct pbft_entry *e = oskr__pbft_entry_find(r, m->batch.seq);
	if (!e || !e->batch ||
	    memcmp(e->batch_digest, m->batch.digest, PBFT_DIGEST))
		return;
	struct pbft_writer w;
	struct oskr_buf *buf = oskr__pbft_alloc(
		ctx, 1 + 8 + PBFT_DIGEST + 2 + 4 + e->batch_len, &w);
	if (!buf)
		return;
	pbft_put_u8(&w, PBFT_BATCH);
	pbft_put_u64(&w, e->seq);
	pbft_put(&w, e->batch_digest, PBFT_DIGEST);
	pbft_put_u16(&w, (uint16_t)r->id);
	pbft_put_u32(&w, e->batch_len);
	pbft_put(&w, e->batch, e->batch_len);
	if (w.overflow) {
		ctx->host->buf_release(buf);
		return;
	}
	struct pbft_dest dest = { .kind = PBFT_TO_REPLICA,
				  .replica = m->replica };
	oskr__pbft_seal_and_send_async(ctx, buf, w.len, &dest);
}

void oskr__pbft_on_batch(struct oskr_ctx *ctx, struct pbft_replica *r,
			 const struct pbft_msg *m)
{
	struct pbft_entry *e = oskr__pbft_entry_find(r, m->batch.seq);
	if (!e)
		return;
	bool wanted = (e->committed && !memcmp(e->commit_digest,
					       m->batch.digest, PBFT_DIGEST)) ||
		      (e->has_preprepare &&
		       !memcmp(e->digest, m->batch.digest, PBFT_DIGEST));
	if (!wanted || (e->batch && !memcmp(e->batch_digest, m->batch.digest,
					    PBFT_DIGEST)))
		return;
	if (oskr__pbft_entry_set_batch(e, m->batch.batch, m->batch.batch_len,
				       m->batch.digest))
		return;
	oskr__pbft_execute_ready(ctx, r);
}

/* ---- snapshots ---- */

static void request_chunk(struct oskr_ctx *ctx, struct pbft_replica *r)
{
	struct pbft_transfer *t = &r->transfer;
	struct pbft_writer w;
	struct oskr_buf *buf =
		oskr__pbft_alloc(ctx, 1 + 8 + PBFT_DIGEST + 8 + 2, &w);
	if (!buf)
		return;
	pbft_put_u8(&w, PBFT_FETCH_CHUNK);
	pbft_put_u64(&w, t->seq);
	pbft_put(&w, t->digest, PBFT_DIGEST);
	pbft_put_u64(&w, t->received);
	pbft_put_u16(&w, (uint16_t)r->id);
	struct pbft_dest dest = { .kind = PBFT_TO_REPLICA,
				  .replica = t->peer };
	oskr__pbft_seal_and_send_async(ctx, buf, w.len, &dest);
	t->progress_ns = ctx->host->now_ns(ctx);
}

static void next_peer(struct pbft_replica *r)
{
	do
		r->transfer.peer = (r->transfer.peer + 1) % r->n;
	while (r->transfer.peer == r->id);
}

void oskr__pbft_start_transfer(struct oskr_ctx *ctx, struct pbft_replica *r,
			       uint64_t seq, const uint8_t *digest)
{
	struct pbft_transfer *t = &r->transfer;
	if (seq <= r->last_executed ||
	    (t->active && t->seq == seq &&
	     !memcmp(t->digest, digest, PBFT_DIGEST)))
		return;
	ctx->host->log(ctx, OSKR_LOG_INFO,
		       "pbft: state transfer to checkpoint %llu",
		       (unsigned long long)seq);
	free(t->data);
	t->data = NULL;
	t->active = true;
	t->seq = seq;
	memcpy(t->digest, digest, PBFT_DIGEST);
	t->total = t->received = 0;
	next_peer(r);
	request_chunk(ctx, r);
}

static void transfer_reset(struct pbft_transfer *t)
{
	free(t->data);
	t->data = NULL;
	t->total = t->received = 0;
}

void oskr__pbft_transfer_tick(struct oskr_ctx *ctx, struct pbft_replica *r)
{
	struct pbft_transfer *t = &r->transfer;
	if (r->known.seq > t->seq) {
		oskr__pbft_start_transfer(ctx, r, r->known.seq,
					  r->known.digest);
		return;
	}
	if (t->seq <= r->last_executed) {
		t->active = false;
		transfer_reset(t);
		return;
	}
	if (ctx->host->now_ns(ctx) - t->progress_ns >= r->opt.retransmit_ns) {
		/* That peer is slow, faulty or moved on: ask another for
		 * the rest (every correct replica's state is the same). */
		next_peer(r);
		request_chunk(ctx, r);
	}
}

void oskr__pbft_on_fetch_chunk(struct oskr_ctx *ctx, struct pbft_replica *r,
			       const struct pbft_msg *m)
{
	const uint8_t *state = NULL;
	size_t state_len = 0;
	if (r->stable_state && r->stable.seq == m->chunk.seq &&
	    !memcmp(r->stable.digest, m->chunk.digest, PBFT_DIGEST)) {
		state = r->stable_state;
		state_len = r->stable_state_len;
	} else {
		const struct pbft_checkpoint *c = oskr__pbft_own_checkpoint(
			r, m->chunk.seq, m->chunk.digest);
		if (c) {
			state = c->state;
			state_len = c->state_len;
		}
	}
	if (!state) {
		/* Tell it about our stable checkpoint instead. */
		oskr__pbft_send_stable(ctx, r, m->replica);
		return;
	}
	if (m->chunk.offset > state_len)
		return;
	size_t header = 1 + 8 + PBFT_DIGEST + 8 + 2 + 8 + 4;
	size_t room = r->max_message - header - PBFT_SIG_TRAILER_MAX;
	size_t len = state_len - m->chunk.offset;
	if (len > room)
		len = room;
	struct pbft_writer w;
	struct oskr_buf *buf = oskr__pbft_alloc(ctx, header + len, &w);
	if (!buf)
		return;
	pbft_put_u8(&w, PBFT_CHUNK);
	pbft_put_u64(&w, m->chunk.seq);
	pbft_put(&w, m->chunk.digest, PBFT_DIGEST);
	pbft_put_u64(&w, m->chunk.offset);
	pbft_put_u16(&w, (uint16_t)r->id);
	pbft_put_u64(&w, state_len);
	pbft_put_u32(&w, (uint32_t)len);
	pbft_put(&w, state + m->chunk.offset, len);
	if (w.overflow) {
		ctx->host->buf_release(buf);
		return;
	}
	struct pbft_dest dest = { .kind = PBFT_TO_REPLICA,
				  .replica = m->replica };
	oskr__pbft_seal_and_send_async(ctx, buf, w.len, &dest);
}

void oskr__pbft_on_chunk(struct oskr_ctx *ctx, struct pbft_replica *r,
			 const struct pbft_msg *m)
{
	struct pbft_transfer *t = &r->transfer;
	if (!t->active || m->chunk.seq != t->seq ||
	    memcmp(m->chunk.digest, t->digest, PBFT_DIGEST))
		return;
	if (m->chunk.total > PBFT_STATE_MAX) {
		oskr__pbft_drop(ctx, "state_too_large");
		return;
	}
	if (t->received == 0 && m->chunk.offset == 0)
		t->total = m->chunk.total;
	if (m->chunk.total != t->total || m->chunk.offset != t->received)
		return; /* out of order or from a disagreeing peer */
	if (m->chunk.data_len) {
		uint8_t *grown = realloc(t->data, t->received + m->chunk.data_len);
		if (!grown)
			return;
		t->data = grown;
		memcpy(t->data + t->received, m->chunk.data,
		       m->chunk.data_len);
		t->received += m->chunk.data_len;
	}
	if (t->received < t->total) {
		if (!m->chunk.data_len)
			return;
		request_chunk(ctx, r);
		return;
	}
	/* Complete: the digest must match the 2f+1 signed CHECKPOINTs. */
	uint8_t digest[PBFT_DIGEST];
	ctx->host->digest(ctx, t->data ? t->data : (const uint8_t *)"",
			  t->total, digest);
	if (memcmp(digest, t->digest, PBFT_DIGEST) ||
	    oskr__pbft_state_restore(ctx, r, t->data, t->total)) {
		oskr__pbft_drop(ctx, "bad_state");
		transfer_reset(t);
		next_peer(r);
		request_chunk(ctx, r);
		return;
	}
	uint8_t *state = t->data;
	size_t state_len = t->total;
	t->data = NULL;
	t->active = false;
	if (!state)
		state = malloc(1);
	oskr__pbft_transfer_done(ctx, r, state, state_len);
	oskr__pbft_fetch_entries(ctx, r);
}
