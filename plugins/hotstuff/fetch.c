/* SPDX-License-Identifier: MIT */
/*
 * Catch-up by block fetch. The paper assumes a replica can retrieve any
 * block a QC or a parent link names ("the node is fetched if missing");
 * this file makes that concrete:
 *
 *  - a replica that meets a block whose parent it lacks (or a QC whose
 *    block it lacks) records the digest as missing and sends BLOCK-FETCH
 *    (digest, max) to the replica that referenced it, then to the others
 *    in turn every fetch_timeout;
 *  - a peer answers with BLOCKS: the block and up to max - 1 ancestors,
 *    newest first, as many as fit in one message;
 *  - the receive path checks each block's digest chain and justify QC;
 *    the first block must be a digest we asked for (so nothing unasked
 *    is stored). The blocks are inserted oldest first, which connects
 *    them to the tree when the oldest one's parent is known, or makes the
 *    oldest one's parent the next missing digest.
 *
 * Peers keep retain_blocks executed blocks (core.c prune): a replica that
 * fell further behind than that cannot catch up by fetching blocks. A
 * peer that misses a fetch answers with its checkpoint (an OFFER), and a
 * fetch that gives up asks for one: transfer.c then installs a
 * checkpoint from which fetching goes on.
 */
#include <string.h>

#include "hotstuff.h"

#define FETCH_MAX_ATTEMPTS 32

static uint32_t next_peer(const struct oskr__hs_replica *rs, uint32_t *cursor)
{
	for (uint32_t i = 0; i < rs->n; i++) {
		uint32_t r = (*cursor)++ % rs->n;

		if (r != rs->id)
			return r;
	}
	return rs->id;
}

static void send_fetch(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
		       const uint8_t *digest, uint32_t target)
{
	struct oskr__hs_writer w;
	struct oskr_buf *buf;

	if (target == rs->id || target >= rs->n)
		return;
	if (ctx->host->buf_alloc(ctx, OSKR__HS_HEADER_SIZE + 2 + OSKR__HS_DIGEST,
				 &buf))
		return;
	oskr__hs_writer_init(&w, buf->data, buf->capacity);
	oskr__hs_put_header(&w, OSKR__HS_MSG_FETCH);
	oskr__hs_put_u16(&w, (uint16_t)rs->opt.fetch_blocks);
	oskr__hs_put_bytes(&w, digest, OSKR__HS_DIGEST);
	buf->len = (uint32_t)w.len;
	ctx->host->count(ctx, "fetches_sent", 1);
	ctx->host->send_to_replica(ctx, target, buf);
}

static void on_fetch_timer(struct oskr_ctx *ctx, void *state, void *arg);

static void arm_fetch_timer(struct oskr_ctx *ctx, struct oskr__hs_replica *rs)
{
	if (rs->fetch_timer)
		return;
	if (ctx->host->timer_arm(ctx, rs->opt.fetch_timeout_ns, on_fetch_timer,
				 NULL, &rs->fetch_timer))
		rs->fetch_timer = 0;
}

void oskr__hs_want_block(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			 const uint8_t digest[OSKR__HS_DIGEST], uint64_t height,
			 int32_t hint_replica, bool defer)
{
	struct oskr__hs_missing *slot = NULL;
	uint32_t target;

	if (oskr__hs_store_find(&rs->store, digest))
		return;
	for (unsigned i = 0; i < OSKR__HS_MISSING_MAX; i++) {
		struct oskr__hs_missing *m = &rs->missing[i];

		if (m->used && !memcmp(m->digest, digest, OSKR__HS_DIGEST))
			return;
		/* Bounded: a new want replaces the most-tried one. */
		if (!slot || (slot->used && (!m->used ||
					     m->attempts > slot->attempts)))
			slot = m;
	}
	memset(slot, 0, sizeof(*slot));
	slot->used = true;
	slot->height = height;
	memcpy(slot->digest, digest, OSKR__HS_DIGEST);
	slot->next_target = rs->id + 1;
	if (hint_replica >= 0 && (uint32_t)hint_replica < rs->n &&
	    (uint32_t)hint_replica != rs->id)
		slot->next_target = (uint32_t)hint_replica;
	slot->last_sent_ns = ctx->host->now_ns(ctx);
	/* A QC for a block we lack usually means its proposal is still in
	 * flight (a vote verifies faster than a proposal): give it one
	 * fetch_timeout before asking. A missing parent is fetched now. */
	if (!defer) {
		target = next_peer(rs, &slot->next_target);
		slot->attempts = 1;
		send_fetch(ctx, rs, digest, target);
	}
	arm_fetch_timer(ctx, rs);
}

uint64_t oskr__hs_lowest_missing(const struct oskr__hs_replica *rs)
{
	uint64_t lowest = 0;

	for (unsigned i = 0; i < OSKR__HS_MISSING_MAX; i++)
		if (rs->missing[i].used && rs->missing[i].height &&
		    (!lowest || rs->missing[i].height < lowest))
			lowest = rs->missing[i].height;
	return lowest;
}

bool oskr__hs_is_wanted(const struct oskr__hs_replica *rs,
			const uint8_t digest[OSKR__HS_DIGEST])
{
	for (unsigned i = 0; i < OSKR__HS_MISSING_MAX; i++)
		if (rs->missing[i].used &&
		    !memcmp(rs->missing[i].digest, digest, OSKR__HS_DIGEST))
			return true;
	return false;
}

void oskr__hs_got_block(struct oskr__hs_replica *rs,
			const uint8_t digest[OSKR__HS_DIGEST])
{
	for (unsigned i = 0; i < OSKR__HS_MISSING_MAX; i++)
		if (rs->missing[i].used &&
		    !memcmp(rs->missing[i].digest, digest, OSKR__HS_DIGEST))
			rs->missing[i].used = false;
}

static void on_fetch_timer(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct oskr__hs_replica *rs = state;
	uint64_t now = ctx->host->now_ns(ctx);
	bool any = false, gave_up = false;

	rs->fetch_timer = 0;
	for (unsigned i = 0; i < OSKR__HS_MISSING_MAX; i++) {
		struct oskr__hs_missing *m = &rs->missing[i];

		if (!m->used)
			continue;
		if (oskr__hs_store_find(&rs->store, m->digest)) {
			m->used = false;
			continue;
		}
		any = true;
		if (now - m->last_sent_ns < rs->opt.fetch_timeout_ns)
			continue;
		if (m->attempts >= FETCH_MAX_ATTEMPTS) {
			/* Nobody has it (pruned everywhere, or it never
			 * existed): give up; a newer block will ask again. */
			ctx->host->count(ctx, "fetch_gave_up", 1);
			m->used = false;
			gave_up = true;
			continue;
		}
		m->attempts++;
		m->last_sent_ns = now;
		send_fetch(ctx, rs, m->digest, next_peer(rs, &m->next_target));
	}
	if (any)
		arm_fetch_timer(ctx, rs);
	/* Pruned everywhere (or never existed): only a checkpoint helps. */
	if (gave_up)
		oskr__hs_transfer_need(ctx, rs, "a block fetch gave up");
	oskr__hs_pacemaker_refresh(ctx, rs);
}

/** Serve BLOCK-FETCH: the block and its ancestors, newest first. */
void oskr__hs_on_fetch(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
		       struct oskr__hs_inbound *in)
{
	const struct oskr__hs_fetch_ref *f = &in->m.fetch;
	struct oskr__hs_block *b = oskr__hs_store_find(&rs->store, f->digest);
	uint32_t limit = f->max_blocks, count = 0;
	struct oskr__hs_writer w;
	struct oskr_buf *buf;

	if (!b || !b->connected) {
		ctx->host->count(ctx, "fetch_misses", 1);
		/* Pruned here, perhaps: our checkpoint lets the asker skip
		 * what it cannot fetch any more (transfer.c). */
		oskr__hs_transfer_on_fetch_miss(ctx, rs, in);
		return;
	}
	if (limit > OSKR__HS_MAX_FETCH_BLOCKS)
		limit = OSKR__HS_MAX_FETCH_BLOCKS;
	if (ctx->host->buf_alloc(ctx, rs->max_message, &buf))
		return;
	oskr__hs_writer_init(&w, buf->data, buf->capacity);
	oskr__hs_put_header(&w, OSKR__HS_MSG_BLOCKS);
	oskr__hs_put_u16(&w, 0); /* count, patched below */
	/* Genesis is never sent: every replica has it. */
	for (; b && b->height > 0 && count < limit; b = b->parent) {
		if (w.len + 4 + b->raw_len > w.capacity)
			break;
		oskr__hs_put_u32(&w, (uint32_t)b->raw_len);
		oskr__hs_put_bytes(&w, b->raw, b->raw_len);
		count++;
	}
	if (!count || w.overflow) {
		ctx->host->buf_release(buf);
		return;
	}
	buf->data[OSKR__HS_HEADER_SIZE] = (uint8_t)count;
	buf->data[OSKR__HS_HEADER_SIZE + 1] = (uint8_t)(count >> 8);
	buf->len = (uint32_t)w.len;
	ctx->host->count(ctx, "fetches_served", 1);
	ctx->host->send_to_addr(ctx, &in->from, buf);
}

void oskr__hs_on_blocks(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			struct oskr__hs_inbound *in)
{
	if (!oskr__hs_is_wanted(rs, in->block_digests[0])) {
		oskr__hs_drop(ctx, "drop_unsolicited");
		return;
	}
	ctx->host->count(ctx, "fetches_received", 1);
	for (uint32_t i = in->block_count; i-- > 0;) {
		if (in->blocks[i].height <= rs->b_exec->height)
			continue; /* we executed that height already */
		oskr__hs_accept_block(ctx, rs, &in->blocks[i],
				      in->block_digests[i], false,
				      in->from_replica);
	}
}

void oskr__hs_fetch_fini(struct oskr_ctx *ctx, struct oskr__hs_replica *rs)
{
	if (rs->fetch_timer)
		ctx->host->timer_cancel(ctx, rs->fetch_timer);
	rs->fetch_timer = 0;
}
