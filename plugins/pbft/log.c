/* SPDX-License-Identifier: MIT */
/*
 * The message log (TOCS'02 §4.2-§4.3): one slot per sequence number
 * between the water marks h and h + L, allocated once at init, so the
 * log's memory is fixed however long the replica runs. A slot holds the
 * accepted pre-prepare, one prepare and one commit per replica (with
 * signatures, to build certificates), the batch, and the latest prepared
 * certificate of that sequence number (kept across views for the P set).
 */
#include "pbft.h"

#include <stdlib.h>

int oskr__pbft_log_init(struct pbft_log *log, uint32_t window, uint32_t n,
			uint32_t f)
{
	log->window = window;
	log->used = 0;
	log->entries = calloc(window, sizeof(*log->entries));
	if (!log->entries)
		return -ENOMEM;
	for (uint32_t i = 0; i < window; i++) {
		struct pbft_entry *e = &log->entries[i];
		e->prepares = calloc(n, sizeof(*e->prepares));
		e->commits = calloc(n, sizeof(*e->commits));
		e->prepared_cert.prepare_replicas =
			calloc(2 * f, sizeof(uint16_t));
		e->prepared_cert.prepare_votes =
			calloc(2 * f, sizeof(struct pbft_vote));
		if (!e->prepares || !e->commits ||
		    !e->prepared_cert.prepare_replicas ||
		    !e->prepared_cert.prepare_votes)
			return -ENOMEM; /* log_fini frees the partial log */
	}
	return 0;
}

void oskr__pbft_log_fini(struct pbft_log *log)
{
	if (!log->entries)
		return;
	for (uint32_t i = 0; i < log->window; i++) {
		struct pbft_entry *e = &log->entries[i];
		free(e->prepares);
		free(e->commits);
		free(e->prepared_cert.prepare_replicas);
		free(e->prepared_cert.prepare_votes);
		free(e->batch);
	}
	free(log->entries);
	log->entries = NULL;
}

bool oskr__pbft_in_window(const struct pbft_replica *r, uint64_t seq)
{
	return seq > r->low_mark && seq - r->low_mark <= r->log.window;
}

/* Clear a slot for reuse, keeping its allocations. */
static void entry_clear(struct pbft_log *log, struct pbft_entry *e)
{
	if (e->seq)
		log->used--;
	struct pbft_vote *prepares = e->prepares, *commits = e->commits;
	uint16_t *cert_replicas = e->prepared_cert.prepare_replicas;
	struct pbft_vote *cert_votes = e->prepared_cert.prepare_votes;
	free(e->batch);
	memset(e, 0, sizeof(*e));
	e->prepares = prepares;
	e->commits = commits;
	e->prepared_cert.prepare_replicas = cert_replicas;
	e->prepared_cert.prepare_votes = cert_votes;
}

struct pbft_entry *oskr__pbft_entry(struct pbft_replica *r, uint64_t seq)
{
	if (!oskr__pbft_in_window(r, seq))
		return NULL;
	struct pbft_entry *e = &r->log.entries[seq % r->log.window];
	if (e->seq != seq) {
		/* A slot still holding an older seq is below h (truncation
		 * is lazy for slots it did not reach). */
		entry_clear(&r->log, e);
		e->seq = seq;
		r->log.used++;
	}
	return e;
}

struct pbft_entry *oskr__pbft_entry_find(struct pbft_replica *r, uint64_t seq)
{
	if (!oskr__pbft_in_window(r, seq))
		return NULL;
	struct pbft_entry *e = &r->log.entries[seq % r->log.window];
	return e->seq == seq ? e : NULL;
}

void oskr__pbft_log_truncate(struct pbft_replica *r, uint64_t seq)
{
	/* Called after low_mark moved to seq: every slot holding a seq at
	 * or below it is garbage (TOCS'02 §4.3). */
	for (uint32_t i = 0; i < r->log.window; i++) {
		struct pbft_entry *e = &r->log.entries[i];
		if (e->seq && e->seq <= seq)
			entry_clear(&r->log, e);
	}
}

void oskr__pbft_entry_reset_view(struct pbft_entry *e)
{
	e->has_preprepare = false;
	e->sent_prepare = e->sent_commit = false;
	e->prepared = false;
	/* committed stays: a committed decision never changes */
}

int oskr__pbft_entry_set_batch(struct pbft_entry *e, const uint8_t *batch,
			       uint32_t len, const uint8_t digest[PBFT_DIGEST])
{
	if (e->batch && !memcmp(e->batch_digest, digest, PBFT_DIGEST))
		return 0;
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, batch, len);
	free(e->batch);
	e->batch = copy;
	e->batch_len = len;
	memcpy(e->batch_digest, digest, PBFT_DIGEST);
	return 0;
}

bool oskr__pbft_entry_has_batch(const struct pbft_entry *e)
{
	return e->batch && e->has_preprepare &&
	       !memcmp(e->batch_digest, e->digest, PBFT_DIGEST);
}

uint32_t oskr__pbft_count_votes(const struct pbft_replica *r,
				const struct pbft_vote *votes, uint64_t mask,
				uint64_t view, const uint8_t *digest,
				uint32_t exclude)
{
	uint32_t count = 0;
	for (uint32_t i = 0; i < r->n; i++) {
		if (i == exclude || !(mask & (UINT64_C(1) << i)))
			continue;
		if (votes[i].view == view &&
		    !memcmp(votes[i].digest, digest, PBFT_DIGEST))
			count++;
	}
	return count;
}

void oskr__pbft_null_digest(struct oskr_ctx *ctx, uint8_t out[PBFT_DIGEST])
{
	static const uint8_t empty_batch[4] = { 0 };
	ctx->host->digest(ctx, empty_batch, sizeof(empty_batch), out);
}
