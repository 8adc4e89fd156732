/* SPDX-License-Identifier: MIT */
/*
 * HotStuff wire format (see codec.h). Pure functions: no host services, so
 * the same file is compiled into the codec tests.
 */
#include <string.h>

#include "codec.h"

/* ---- writer ---- */

void oskr__hs_writer_init(struct oskr__hs_writer *w, uint8_t *data,
			  size_t capacity)
{
	w->data = data;
	w->capacity = capacity;
	w->len = 0;
	w->overflow = false;
}

static uint8_t *writer_reserve(struct oskr__hs_writer *w, size_t n)
{
	uint8_t *p;

	if (w->overflow || n > w->capacity - w->len) {
		w->overflow = true;
		return NULL;
	}
	p = w->data + w->len;
	w->len += n;
	return p;
}

static void store_le(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t load_le(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put_le(struct oskr__hs_writer *w, uint64_t v, unsigned bytes)
{
	uint8_t *p = writer_reserve(w, bytes);

	if (p)
		store_le(p, v, bytes);
}

void oskr__hs_put_u8(struct oskr__hs_writer *w, uint8_t v)
{
	put_le(w, v, 1);
}

void oskr__hs_put_u16(struct oskr__hs_writer *w, uint16_t v)
{
	put_le(w, v, 2);
}

void oskr__hs_put_u32(struct oskr__hs_writer *w, uint32_t v)
{
	put_le(w, v, 4);
}

void oskr__hs_put_u64(struct oskr__hs_writer *w, uint64_t v)
{
	put_le(w, v, 8);
}

void oskr__hs_put_bytes(struct oskr__hs_writer *w, const void *src, size_t n)
{
	uint8_t *p = writer_reserve(w, n);

	if (p && n)
		memcpy(p, src, n);
}

void oskr__hs_put_header(struct oskr__hs_writer *w, enum oskr__hs_msg_type t)
{
	oskr__hs_put_u16(w, OSKR__HS_MAGIC);
	oskr__hs_put_u8(w, OSKR__HS_VERSION);
	oskr__hs_put_u8(w, (uint8_t)t);
}

void oskr__hs_patch_u32(struct oskr__hs_writer *w, size_t offset, uint32_t v)
{
	if (!w->overflow && offset + 4 <= w->len)
		store_le(w->data + offset, v, 4);
}

void oskr__hs_put_qc(struct oskr__hs_writer *w, uint64_t view,
		     const uint8_t digest[OSKR__HS_DIGEST], uint16_t count,
		     const uint16_t *replicas, const uint8_t *const *sigs,
		     const uint8_t *sig_lens)
{
	oskr__hs_put_u64(w, view);
	oskr__hs_put_bytes(w, digest, OSKR__HS_DIGEST);
	oskr__hs_put_u16(w, count);
	for (uint16_t i = 0; i < count; i++) {
		oskr__hs_put_u16(w, replicas[i]);
		oskr__hs_put_u8(w, sig_lens[i]);
		oskr__hs_put_bytes(w, sigs[i], sig_lens[i]);
	}
}

size_t oskr__hs_put_block_head(struct oskr__hs_writer *w,
			       const uint8_t parent[OSKR__HS_DIGEST],
			       uint64_t height, uint64_t view,
			       uint16_t proposer, const uint8_t *qc_raw,
			       size_t qc_len)
{
	size_t count_offset;

	oskr__hs_put_bytes(w, parent, OSKR__HS_DIGEST);
	oskr__hs_put_u64(w, height);
	oskr__hs_put_u64(w, view);
	oskr__hs_put_u16(w, proposer);
	oskr__hs_put_bytes(w, qc_raw, qc_len);
	count_offset = w->len;
	oskr__hs_put_u32(w, 0);
	return count_offset;
}

void oskr__hs_put_request(struct oskr__hs_writer *w, uint64_t client_id,
			  uint64_t request_number,
			  const uint8_t addr[OSKR_ADDR_SIZE], const void *op,
			  uint32_t op_len)
{
	oskr__hs_put_u64(w, client_id);
	oskr__hs_put_u64(w, request_number);
	oskr__hs_put_bytes(w, addr, OSKR_ADDR_SIZE);
	oskr__hs_put_u32(w, op_len);
	oskr__hs_put_bytes(w, op, op_len);
}

static void signed_payload(uint8_t out[44], const char tag[4], uint64_t view,
			   const uint8_t digest[OSKR__HS_DIGEST])
{
	memcpy(out, tag, 4);
	store_le(out + 4, view, 8);
	memcpy(out + 12, digest, OSKR__HS_DIGEST);
}

void oskr__hs_vote_payload(uint8_t out[OSKR__HS_VOTE_PAYLOAD], uint64_t view,
			   const uint8_t digest[OSKR__HS_DIGEST])
{
	/* Domain-separated so a vote can never pass as a proposal. */
	signed_payload(out, "HSv1", view, digest);
}

void oskr__hs_proposal_payload(uint8_t out[OSKR__HS_PROPOSAL_PAYLOAD],
			       uint64_t view,
			       const uint8_t digest[OSKR__HS_DIGEST])
{
	signed_payload(out, "HSp1", view, digest);
}

/* ---- reader ---- */

struct reader {
	const uint8_t *data;
	size_t len;
	size_t pos;
	bool bad;
};

static void reader_init(struct reader *r, const uint8_t *data, size_t len)
{
	r->data = data;
	r->len = len;
	r->pos = 0;
	r->bad = false;
}

static const uint8_t *take(struct reader *r, size_t n)
{
	const uint8_t *p;

	if (r->bad || n > r->len - r->pos) {
		r->bad = true;
		return NULL;
	}
	p = r->data + r->pos;
	r->pos += n;
	return p;
}

static uint64_t get_le(struct reader *r, unsigned bytes)
{
	const uint8_t *p = take(r, bytes);

	return p ? load_le(p, bytes) : 0;
}

static bool reader_done(const struct reader *r)
{
	return !r->bad && r->pos == r->len;
}

static bool read_header(struct reader *r, enum oskr__hs_msg_type t)
{
	if (get_le(r, 2) != OSKR__HS_MAGIC || get_le(r, 1) != OSKR__HS_VERSION)
		return false;
	return get_le(r, 1) == (uint64_t)t && !r->bad;
}

static bool read_sig(struct reader *r, uint8_t *len, const uint8_t **sig)
{
	*len = (uint8_t)get_le(r, 1);
	if (r->bad || *len == 0 || *len > OSKR_SIGNATURE_MAX) {
		r->bad = true;
		return false;
	}
	*sig = take(r, *len);
	return *sig != NULL;
}

uint8_t oskr__hs_peek_type(const uint8_t *data, size_t len)
{
	if (len < OSKR__HS_HEADER_SIZE || load_le(data, 2) != OSKR__HS_MAGIC ||
	    data[2] != OSKR__HS_VERSION)
		return 0;
	return data[3];
}

static bool read_qc(struct reader *r, struct oskr__hs_qc_ref *qc)
{
	size_t start = r->pos;

	qc->view = get_le(r, 8);
	qc->digest = take(r, OSKR__HS_DIGEST);
	qc->count = (uint16_t)get_le(r, 2);
	if (r->bad || qc->count > OSKR__HS_MAX_REPLICAS) {
		r->bad = true;
		return false;
	}
	for (uint16_t i = 0; i < qc->count; i++) {
		qc->sigs[i].replica = (uint16_t)get_le(r, 2);
		if (!read_sig(r, &qc->sigs[i].len, &qc->sigs[i].bytes))
			return false;
	}
	qc->raw = r->data + start;
	qc->raw_len = r->pos - start;
	return !r->bad;
}

bool oskr__hs_decode_qc(const uint8_t *data, size_t len, size_t *used,
			struct oskr__hs_qc_ref *qc)
{
	struct reader r;

	reader_init(&r, data, len);
	if (!read_qc(&r, qc))
		return false;
	*used = r.pos;
	return true;
}

static bool read_request(struct reader *r, struct oskr__hs_request_ref *req)
{
	req->client_id = get_le(r, 8);
	req->request_number = get_le(r, 8);
	req->addr = take(r, OSKR_ADDR_SIZE);
	req->op_len = (uint32_t)get_le(r, 4);
	req->op = take(r, req->op_len);
	return !r->bad;
}

bool oskr__hs_decode_block(const uint8_t *data, size_t len,
			   struct oskr__hs_block_ref *b)
{
	struct reader r;
	struct oskr__hs_request_ref req;
	size_t start;

	reader_init(&r, data, len);
	b->raw = data;
	b->raw_len = len;
	b->parent = take(&r, OSKR__HS_DIGEST);
	b->height = get_le(&r, 8);
	b->view = get_le(&r, 8);
	b->proposer = (uint16_t)get_le(&r, 2);
	if (r.bad || !read_qc(&r, &b->justify))
		return false;
	b->request_count = (uint32_t)get_le(&r, 4);
	start = r.pos;
	/* Each request needs at least its fixed part: reject absurd counts
	 * before looping. */
	if (r.bad || b->request_count > (len - start) / OSKR__HS_REQUEST_FIXED)
		return false;
	for (uint32_t i = 0; i < b->request_count; i++)
		if (!read_request(&r, &req))
			return false;
	b->requests = data + start;
	b->requests_len = r.pos - start;
	return reader_done(&r);
}

bool oskr__hs_next_request(const uint8_t *requests, size_t requests_len,
			   size_t *offset, struct oskr__hs_request_ref *req)
{
	struct reader r;

	if (*offset >= requests_len)
		return false;
	reader_init(&r, requests, requests_len);
	r.pos = *offset;
	if (!read_request(&r, req))
		return false;
	*offset = r.pos;
	return true;
}

bool oskr__hs_decode_proposal(const uint8_t *data, size_t len,
			      struct oskr__hs_proposal_ref *m)
{
	struct reader r;
	uint32_t block_len;
	const uint8_t *block;

	reader_init(&r, data, len);
	if (!read_header(&r, OSKR__HS_MSG_PROPOSAL))
		return false;
	block_len = (uint32_t)get_le(&r, 4);
	block = take(&r, block_len);
	if (!block || !oskr__hs_decode_block(block, block_len, &m->block))
		return false;
	if (!read_sig(&r, &m->sig_len, &m->sig))
		return false;
	return reader_done(&r);
}

static bool read_vote_body(struct reader *r, struct oskr__hs_vote_ref *v)
{
	v->view = get_le(r, 8);
	v->digest = take(r, OSKR__HS_DIGEST);
	if (r->bad)
		return false;
	return read_sig(r, &v->sig_len, &v->sig);
}

bool oskr__hs_decode_vote(const uint8_t *data, size_t len,
			  struct oskr__hs_vote_ref *m)
{
	struct reader r;

	reader_init(&r, data, len);
	if (!read_header(&r, OSKR__HS_MSG_VOTE))
		return false;
	m->voter = (uint16_t)get_le(&r, 2);
	if (!read_vote_body(&r, m))
		return false;
	return reader_done(&r);
}

bool oskr__hs_decode_new_view(const uint8_t *data, size_t len,
			      struct oskr__hs_new_view_ref *m)
{
	struct reader r;
	uint64_t has_vote;

	reader_init(&r, data, len);
	if (!read_header(&r, OSKR__HS_MSG_NEW_VIEW))
		return false;
	m->sender = (uint16_t)get_le(&r, 2);
	m->view = get_le(&r, 8);
	if (r.bad || !read_qc(&r, &m->qc))
		return false;
	has_vote = get_le(&r, 1);
	if (r.bad || has_vote > 1)
		return false;
	m->has_vote = has_vote == 1;
	if (m->has_vote) {
		m->vote.voter = m->sender;
		if (!read_vote_body(&r, &m->vote))
			return false;
	}
	m->signed_len = r.pos;
	if (!read_sig(&r, &m->sig_len, &m->sig))
		return false;
	return reader_done(&r);
}

bool oskr__hs_decode_fetch(const uint8_t *data, size_t len,
			   struct oskr__hs_fetch_ref *m)
{
	struct reader r;

	reader_init(&r, data, len);
	if (!read_header(&r, OSKR__HS_MSG_FETCH))
		return false;
	m->max_blocks = (uint16_t)get_le(&r, 2);
	m->digest = take(&r, OSKR__HS_DIGEST);
	return reader_done(&r) && m->max_blocks >= 1;
}

bool oskr__hs_decode_blocks(const uint8_t *data, size_t len,
			    struct oskr__hs_blocks_ref *m)
{
	struct reader r;
	size_t start;

	reader_init(&r, data, len);
	if (!read_header(&r, OSKR__HS_MSG_BLOCKS))
		return false;
	m->count = (uint16_t)get_le(&r, 2);
	if (r.bad || m->count == 0 || m->count > OSKR__HS_MAX_FETCH_BLOCKS)
		return false;
	start = r.pos;
	for (uint16_t i = 0; i < m->count; i++) {
		uint32_t block_len = (uint32_t)get_le(&r, 4);

		if (!take(&r, block_len))
			return false;
	}
	m->entries = data + start;
	m->entries_len = r.pos - start;
	return reader_done(&r);
}

bool oskr__hs_next_block(const struct oskr__hs_blocks_ref *m, size_t *offset,
			 const uint8_t **block, size_t *block_len)
{
	struct reader r;

	if (*offset >= m->entries_len)
		return false;
	reader_init(&r, m->entries, m->entries_len);
	r.pos = *offset;
	*block_len = (uint32_t)get_le(&r, 4);
	*block = take(&r, *block_len);
	if (!*block)
		return false;
	*offset = r.pos;
	return true;
}

bool oskr__hs_decode_request(const uint8_t *data, size_t len,
			     struct oskr__hs_request_msg_ref *m)
{
	struct reader r;

	reader_init(&r, data, len);
	if (!read_header(&r, OSKR__HS_MSG_REQUEST))
		return false;
	m->client_id = get_le(&r, 8);
	m->request_number = get_le(&r, 8);
	m->op_len = (uint32_t)get_le(&r, 4);
	m->op = take(&r, m->op_len);
	return reader_done(&r);
}

bool oskr__hs_decode_reply(const uint8_t *data, size_t len,
			   struct oskr__hs_reply_ref *m)
{
	struct reader r;

	reader_init(&r, data, len);
	if (!read_header(&r, OSKR__HS_MSG_REPLY))
		return false;
	m->replica = (uint16_t)get_le(&r, 2);
	m->client_id = get_le(&r, 8);
	m->request_number = get_le(&r, 8);
	m->result_len = (uint32_t)get_le(&r, 4);
	m->result = take(&r, m->result_len);
	if (r.bad)
		return false;
	m->signed_len = r.pos;
	if (!read_sig(&r, &m->sig_len, &m->sig))
		return false;
	return reader_done(&r);
}

/* ---- state transfer (transfer.c) ---- */

void oskr__hs_vouch_payload(uint8_t out[OSKR__HS_VOUCH_PAYLOAD],
			    const struct oskr__hs_vouch_ref *v)
{
	/* Domain-separated from votes and proposals ("HSo1"). */
	memcpy(out, "HSo1", 4);
	store_le(out + 4, v->sender, 2);
	store_le(out + 6, v->height, 8);
	memcpy(out + 14, v->block_digest, OSKR__HS_DIGEST);
	store_le(out + 46, v->executed_ops, 8);
	store_le(out + 54, v->committed_blocks, 8);
	store_le(out + 62, v->state_len, 8);
	memcpy(out + 70, v->state_digest, OSKR__HS_DIGEST);
}

void oskr__hs_put_vouch(struct oskr__hs_writer *w,
			const struct oskr__hs_vouch_ref *v)
{
	oskr__hs_put_u16(w, v->sender);
	oskr__hs_put_u64(w, v->height);
	oskr__hs_put_bytes(w, v->block_digest, OSKR__HS_DIGEST);
	oskr__hs_put_u64(w, v->executed_ops);
	oskr__hs_put_u64(w, v->committed_blocks);
	oskr__hs_put_u64(w, v->state_len);
	oskr__hs_put_bytes(w, v->state_digest, OSKR__HS_DIGEST);
	oskr__hs_put_u8(w, v->sig_len);
	oskr__hs_put_bytes(w, v->sig, v->sig_len);
}

bool oskr__hs_decode_ckpt_request(const uint8_t *data, size_t len,
				  struct oskr__hs_ckpt_request_ref *m)
{
	struct reader r;
	uint64_t has_target;

	reader_init(&r, data, len);
	if (!read_header(&r, OSKR__HS_MSG_CKPT_REQUEST))
		return false;
	m->sender = (uint16_t)get_le(&r, 2);
	m->min_height = get_le(&r, 8);
	has_target = get_le(&r, 1);
	m->target = take(&r, OSKR__HS_DIGEST);
	m->has_target = has_target == 1;
	return reader_done(&r) && has_target <= 1;
}

bool oskr__hs_decode_ckpt_offer(const uint8_t *data, size_t len,
				struct oskr__hs_ckpt_offer_ref *m)
{
	struct oskr__hs_vouch_ref *v = &m->vouch;
	struct reader r;
	uint64_t has_block;

	reader_init(&r, data, len);
	if (!read_header(&r, OSKR__HS_MSG_CKPT_OFFER))
		return false;
	v->sender = (uint16_t)get_le(&r, 2);
	v->height = get_le(&r, 8);
	v->block_digest = take(&r, OSKR__HS_DIGEST);
	v->executed_ops = get_le(&r, 8);
	v->committed_blocks = get_le(&r, 8);
	v->state_len = get_le(&r, 8);
	v->state_digest = take(&r, OSKR__HS_DIGEST);
	if (!read_sig(&r, &v->sig_len, &v->sig))
		return false;
	has_block = get_le(&r, 1);
	if (r.bad || has_block > 1 || v->height == 0 ||
	    v->state_len > OSKR__HS_STATE_MAX)
		return false;
	m->has_block = has_block == 1;
	if (m->has_block) {
		size_t block_len = (size_t)get_le(&r, 4);
		const uint8_t *block = take(&r, block_len);
		size_t qc_start, qc_len;

		if (!block || !oskr__hs_decode_block(block, block_len,
						     &m->block))
			return false;
		qc_len = (size_t)get_le(&r, 4);
		qc_start = r.pos;
		if (r.bad || qc_len > OSKR__HS_QC_MAX_BYTES ||
		    !read_qc(&r, &m->qc) || r.pos - qc_start != qc_len)
			return false;
		if (m->block.height != v->height || m->qc.view != m->block.view)
			return false;
	}
	return reader_done(&r);
}

bool oskr__hs_decode_ckpt_fetch(const uint8_t *data, size_t len,
				struct oskr__hs_ckpt_fetch_ref *m)
{
	struct reader r;

	reader_init(&r, data, len);
	if (!read_header(&r, OSKR__HS_MSG_CKPT_FETCH))
		return false;
	m->sender = (uint16_t)get_le(&r, 2);
	m->block_digest = take(&r, OSKR__HS_DIGEST);
	m->offset = get_le(&r, 8);
	return reader_done(&r) && m->offset <= OSKR__HS_STATE_MAX;
}

bool oskr__hs_decode_ckpt_chunk(const uint8_t *data, size_t len,
				struct oskr__hs_ckpt_chunk_ref *m)
{
	struct reader r;

	reader_init(&r, data, len);
	if (!read_header(&r, OSKR__HS_MSG_CKPT_CHUNK))
		return false;
	m->sender = (uint16_t)get_le(&r, 2);
	m->block_digest = take(&r, OSKR__HS_DIGEST);
	m->state_digest = take(&r, OSKR__HS_DIGEST);
	m->total = get_le(&r, 8);
	m->offset = get_le(&r, 8);
	m->data_len = (uint32_t)get_le(&r, 4);
	m->data = take(&r, m->data_len);
	if (!reader_done(&r) || m->total > OSKR__HS_STATE_MAX)
		return false;
	/* the chunk lies inside the state */
	return m->offset <= m->total && m->data_len <= m->total - m->offset;
}
