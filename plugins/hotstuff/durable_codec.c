/* SPDX-License-Identifier: MIT */
/*
 * The protocol blob of a durable checkpoint (durable.c has the why and the
 * layout): a pure, length-checked encoder and decoder, kept apart from the
 * host glue so tests can compile them in.
 */
#include <stdlib.h>
#include <string.h>

#include "hotstuff.h"

#define HS_RESUME_MAGIC 0x4b435348u /* "HSCK" */
/* Version 2 appends the block's activity record; version 1 (without it)
 * is still read: the root's history is then unknown (durable.c). */
#define HS_RESUME_VERSION 2u
#define HS_RESUME_VERSION_NO_ACTIVITY 1u

static uint64_t blob_le(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* The client table as requests.c writes it: count u32, then per client
 * client_id u64 | last_request_number u64 | has_result u8 (0/1) |
 * result_len u32 | result (none without a result). */
bool oskr__hs_clients_valid(const uint8_t *data, size_t len, uint64_t limit)
{
	size_t pos = 4;
	uint64_t count;

	if (len < 4)
		return false;
	count = blob_le(data, 4);
	if (count > limit)
		return false;
	for (uint64_t i = 0; i < count; i++) {
		uint64_t result_len;

		if (len - pos < 8 + 8 + 1 + 4 || data[pos + 16] > 1)
			return false;
		result_len = blob_le(data + pos + 17, 4);
		pos += 8 + 8 + 1 + 4;
		if (len - pos < result_len ||
		    (!data[pos - 5] && result_len))
			return false;
		pos += result_len;
	}
	return pos == len;
}

/* ---- the activity record (pacemaker.c oskr__hs_note_activity) ---- */

void oskr__hs_activity_put(struct oskr__hs_writer *w, uint32_t n,
			   const struct oskr__hs_block *b)
{
	for (uint32_t r = 0; r < n; r++) {
		oskr__hs_put_u16(w, b->since_active[r]);
		oskr__hs_put_u16(w, b->since_failed[r]);
		oskr__hs_put_u8(w, b->fail_streak[r]);
	}
}

bool oskr__hs_activity_valid(const uint8_t *data, size_t len, uint32_t n)
{
	if (n > OSKR__HS_MAX_REPLICAS || len != oskr__hs_activity_len(n))
		return false;
	for (uint32_t r = 0; r < n; r++)
		if (data[r * OSKR__HS_ACTIVITY_ENTRY + 4] >
		    OSKR__HS_FAIL_STREAK_CAP)
			return false;
	return true;
}

void oskr__hs_activity_get(const uint8_t *data, uint32_t n,
			   struct oskr__hs_block *b)
{
	for (uint32_t r = 0; r < n; r++) {
		const uint8_t *e = data + r * OSKR__HS_ACTIVITY_ENTRY;

		b->since_active[r] = (uint16_t)blob_le(e, 2);
		b->since_failed[r] = (uint16_t)blob_le(e + 2, 2);
		b->fail_streak[r] = e[4];
	}
}

struct blob_reader {
	const uint8_t *data;
	size_t len, pos;
	bool bad;
};

static const uint8_t *blob_take(struct blob_reader *r, size_t n)
{
	const uint8_t *p;

	if (r->bad || r->len - r->pos < n) {
		r->bad = true;
		return NULL;
	}
	p = r->data + r->pos;
	r->pos += n;
	return p;
}

static uint64_t blob_take_le(struct blob_reader *r, unsigned bytes)
{
	const uint8_t *p = blob_take(r, bytes);

	return p ? blob_le(p, bytes) : 0;
}

int oskr__hs_resume_encode(uint32_t n, uint32_t f, uint64_t executed_ops,
			   uint64_t committed_blocks,
			   const struct oskr__hs_block *b, bool with_activity,
			   const uint8_t *qc, size_t qc_len,
			   const uint8_t *clients, size_t clients_len,
			   uint8_t **out, size_t *out_len)
{
	size_t len = 4 + 2 + 2 + 2 + 8 + 8 + 8 + OSKR__HS_DIGEST + 4 +
		     b->raw_len + 4 + qc_len + 4 + clients_len +
		     (with_activity ? oskr__hs_activity_len(n) : 0);
	struct oskr__hs_writer w;
	uint8_t *data;

	if (b->raw_len > UINT32_MAX || qc_len > UINT32_MAX ||
	    clients_len > UINT32_MAX || n > OSKR__HS_MAX_REPLICAS)
		return -EINVAL;
	data = malloc(len);
	if (!data)
		return -ENOMEM;
	oskr__hs_writer_init(&w, data, len);
	oskr__hs_put_u32(&w, HS_RESUME_MAGIC);
	oskr__hs_put_u16(&w, with_activity ? HS_RESUME_VERSION :
					     HS_RESUME_VERSION_NO_ACTIVITY);
	oskr__hs_put_u16(&w, (uint16_t)n);
	oskr__hs_put_u16(&w, (uint16_t)f);
	oskr__hs_put_u64(&w, executed_ops);
	oskr__hs_put_u64(&w, committed_blocks);
	oskr__hs_put_u64(&w, b->height);
	oskr__hs_put_bytes(&w, b->digest, OSKR__HS_DIGEST);
	oskr__hs_put_u32(&w, (uint32_t)b->raw_len);
	oskr__hs_put_bytes(&w, b->raw, b->raw_len);
	oskr__hs_put_u32(&w, (uint32_t)qc_len);
	oskr__hs_put_bytes(&w, qc, qc_len);
	oskr__hs_put_u32(&w, (uint32_t)clients_len);
	oskr__hs_put_bytes(&w, clients, clients_len);
	if (with_activity)
		oskr__hs_activity_put(&w, n, b);
	if (w.overflow) {
		free(data);
		return -EINVAL;
	}
	*out = data;
	*out_len = w.len;
	return 0;
}

int oskr__hs_resume_decode(const uint8_t *data, size_t len, uint32_t n,
			   uint32_t f, uint64_t client_limit,
			   struct oskr__hs_resume_point *out, const char **why)
{
	struct blob_reader r = { .data = data, .len = len };
	uint64_t magic = blob_take_le(&r, 4);
	uint64_t version = blob_take_le(&r, 2);
	uint64_t blob_n = blob_take_le(&r, 2);
	uint64_t blob_f = blob_take_le(&r, 2);
	const uint8_t *digest, *block, *qc;
	size_t block_len, qc_len, used = 0;

	if (r.bad || magic != HS_RESUME_MAGIC) {
		*why = "not a hotstuff checkpoint";
		return -EINVAL;
	}
	if (version != HS_RESUME_VERSION &&
	    version != HS_RESUME_VERSION_NO_ACTIVITY) {
		*why = "unknown format version";
		return -EINVAL;
	}
	if (blob_n != n || blob_f != f) {
		*why = "written by a cluster of another shape (n, f)";
		return -EINVAL;
	}
	out->executed_ops = blob_take_le(&r, 8);
	out->committed_blocks = blob_take_le(&r, 8);
	out->height = blob_take_le(&r, 8);
	digest = blob_take(&r, OSKR__HS_DIGEST);
	block_len = (size_t)blob_take_le(&r, 4);
	block = blob_take(&r, block_len);
	qc_len = (size_t)blob_take_le(&r, 4);
	qc = blob_take(&r, qc_len);
	out->clients_len = (size_t)blob_take_le(&r, 4);
	out->clients = blob_take(&r, out->clients_len);
	out->activity = NULL;
	if (version == HS_RESUME_VERSION)
		out->activity = blob_take(&r, oskr__hs_activity_len(n));
	if (r.bad || r.pos != len) {
		*why = r.bad ? "truncated" : "trailing bytes";
		return -EINVAL;
	}
	memcpy(out->digest, digest, OSKR__HS_DIGEST);
	if (!oskr__hs_decode_block(block, block_len, &out->block) ||
	    out->block.height != out->height || out->height == 0) {
		*why = "malformed block";
		return -EINVAL;
	}
	/* The QC must certify this very block (votes sign its view). */
	if (!oskr__hs_decode_qc(qc, qc_len, &used, &out->qc) ||
	    used != qc_len || qc_len > OSKR__HS_QC_MAX_BYTES ||
	    out->qc.view != out->block.view ||
	    memcmp(out->qc.digest, out->digest, OSKR__HS_DIGEST) ||
	    out->qc.count < n - f || out->qc.count > n) {
		*why = "malformed QC";
		return -EINVAL;
	}
	if (!oskr__hs_clients_valid(out->clients, out->clients_len,
				    client_limit)) {
		*why = "malformed client table (or larger than "
		       "client_table_size)";
		return -EINVAL;
	}
	if (out->activity &&
	    !oskr__hs_activity_valid(out->activity, oskr__hs_activity_len(n),
				     n)) {
		*why = "malformed activity record";
		return -EINVAL;
	}
	return 0;
}
