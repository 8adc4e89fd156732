/* SPDX-License-Identifier: MIT */
/* PBFT wire format: length-checked decoders (see codec.h, docs/pbft.md). */
#include "codec.h"

#include <errno.h>

struct decoder {
	struct pbft_reader r;
	uint32_t replica_count;
	const char *why;
};

static bool decode_fail(struct decoder *d, const char *why)
{
	if (!d->why)
		d->why = why;
	d->r.bad = true;
	return false;
}

static uint16_t get_replica(struct decoder *d)
{
	uint16_t replica = pbft_get_u16(&d->r);
	if (!d->r.bad && replica >= d->replica_count)
		decode_fail(d, "bad_replica");
	return replica;
}

static void get_digest(struct decoder *d, uint8_t out[PBFT_DIGEST])
{
	const uint8_t *p = pbft_get(&d->r, PBFT_DIGEST);
	if (p)
		memcpy(out, p, PBFT_DIGEST);
	else
		memset(out, 0, PBFT_DIGEST);
}

static const uint8_t *get_bytes(struct decoder *d, uint32_t *len_out,
				uint32_t len)
{
	*len_out = len;
	return pbft_get(&d->r, len);
}

/* A signature: u8 length (1..OSKR_SIGNATURE_MAX), then the bytes. */
static const uint8_t *get_sig(struct decoder *d, uint8_t *len_out)
{
	uint8_t len = pbft_get_u8(&d->r);
	if (d->r.bad)
		return NULL;
	if (len == 0 || len > OSKR_SIGNATURE_MAX) {
		decode_fail(d, "bad_signature_length");
		return NULL;
	}
	*len_out = len;
	return pbft_get(&d->r, len);
}

/* A list of @p count sig pairs with distinct replicas. */
static void get_sig_list(struct decoder *d, uint8_t count,
			 struct pbft_sig_list *out)
{
	uint64_t seen = 0;
	out->count = count;
	out->data = d->r.data + d->r.pos;
	size_t start = d->r.pos;
	for (unsigned i = 0; i < count && !d->r.bad; i++) {
		uint16_t replica = get_replica(d);
		uint8_t sig_len;
		get_sig(d, &sig_len);
		if (d->r.bad)
			break;
		if (seen & (UINT64_C(1) << replica)) {
			decode_fail(d, "duplicate_signer");
			break;
		}
		seen |= UINT64_C(1) << replica;
	}
	out->len = d->r.pos - start;
}

static void get_request(struct decoder *d, struct pbft_request *req,
			bool with_addr)
{
	req->client_id = pbft_get_u64(&d->r);
	req->request_number = pbft_get_u64(&d->r);
	memset(&req->addr, 0, sizeof(req->addr));
	if (with_addr) {
		const uint8_t *addr = pbft_get(&d->r, OSKR_ADDR_SIZE);
		if (addr)
			memcpy(req->addr.bytes, addr, OSKR_ADDR_SIZE);
	}
	uint32_t op_len = pbft_get_u32(&d->r);
	req->op = get_bytes(d, &req->op_len, op_len);
}

/* Signed trailer: the body is everything before it; nothing may follow
 * (except for PRE_PREPARE, whose caller handles the batch). */
static void get_trailer(struct decoder *d, struct pbft_msg *m)
{
	m->signed_body = d->r.data;
	m->signed_len = d->r.pos;
	m->sig = get_sig(d, &m->sig_len);
}

static void decode_order(struct decoder *d, struct pbft_msg *m)
{
	m->order.view = pbft_get_u64(&d->r);
	m->order.seq = pbft_get_u64(&d->r);
	get_digest(d, m->order.digest);
	m->replica = get_replica(d);
	get_trailer(d, m);
	m->order.batch = NULL;
	m->order.batch_len = 0;
	if (m->type == PBFT_PRE_PREPARE) {
		uint32_t batch_len = pbft_get_u32(&d->r);
		m->order.batch = get_bytes(d, &m->order.batch_len, batch_len);
		if (!d->r.bad &&
		    oskr__pbft_batch_each(m->order.batch, batch_len, NULL,
					  NULL) < 0)
			decode_fail(d, "bad_batch");
	}
}

static void decode_prepared_list(struct decoder *d, uint16_t count,
				 struct pbft_msg *m)
{
	m->view_change.prepared_count = count;
	m->view_change.prepared = d->r.data + d->r.pos;
	size_t start = d->r.pos;
	uint64_t last_seq = 0;
	for (unsigned i = 0; i < count && !d->r.bad; i++) {
		pbft_get_u64(&d->r); /* view */
		uint64_t seq = pbft_get_u64(&d->r);
		uint8_t digest[PBFT_DIGEST];
		get_digest(d, digest);
		uint8_t sig_len;
		get_sig(d, &sig_len);
		uint8_t prepare_count = pbft_get_u8(&d->r);
		struct pbft_sig_list prepares;
		get_sig_list(d, prepare_count, &prepares);
		/* Strictly increasing seq: one certificate per sequence number
		 * (the highest-view one) makes O's computation unambiguous. */
		if (!d->r.bad && seq <= last_seq)
			decode_fail(d, "unordered_prepared_set");
		last_seq = seq;
	}
	m->view_change.prepared_len = d->r.pos - start;
}

static void decode_new_view(struct decoder *d, struct pbft_msg *m)
{
	m->new_view.view = pbft_get_u64(&d->r);
	m->replica = get_replica(d);
	m->new_view.vc_count = pbft_get_u8(&d->r);
	m->new_view.vcs = d->r.data + d->r.pos;
	uint64_t seen = 0;
	for (unsigned i = 0; i < m->new_view.vc_count && !d->r.bad; i++) {
		uint16_t replica = get_replica(d);
		pbft_get(&d->r, PBFT_DIGEST);
		if (d->r.bad)
			break;
		if (seen & (UINT64_C(1) << replica))
			decode_fail(d, "duplicate_signer");
		seen |= UINT64_C(1) << replica;
	}
	m->new_view.min_s = pbft_get_u64(&d->r);
	m->new_view.max_s = pbft_get_u64(&d->r);
	m->new_view.o_count = pbft_get_u16(&d->r);
	m->new_view.o = d->r.data + d->r.pos;
	size_t start = d->r.pos;
	for (unsigned i = 0; i < m->new_view.o_count && !d->r.bad; i++) {
		uint64_t seq = pbft_get_u64(&d->r);
		pbft_get(&d->r, PBFT_DIGEST);
		uint8_t sig_len;
		get_sig(d, &sig_len);
		/* O holds exactly min_s+1 .. max_s in order. */
		if (!d->r.bad && seq != m->new_view.min_s + 1 + i)
			decode_fail(d, "bad_o_set");
	}
	if (!d->r.bad &&
	    (m->new_view.max_s < m->new_view.min_s ||
	     m->new_view.max_s - m->new_view.min_s != m->new_view.o_count))
		decode_fail(d, "bad_o_set");
	m->new_view.o_len = d->r.pos - start;
}

int oskr__pbft_decode(const uint8_t *data, size_t len, uint32_t replica_count,
		      struct pbft_msg *m, const char **why)
{
	struct decoder d = { .r = { .data = data, .len = len },
			     .replica_count = replica_count };
	memset(m, 0, sizeof(*m));
	m->raw = data;
	m->raw_len = len;
	m->type = pbft_get_u8(&d.r);
	uint8_t count;

	switch (m->type) {
	case PBFT_REQUEST:
		get_request(&d, &m->request, false);
		break;
	case PBFT_RELAY:
		m->replica = get_replica(&d);
		get_request(&d, &m->request, true);
		get_trailer(&d, m);
		break;
	case PBFT_PRE_PREPARE:
	case PBFT_PREPARE:
	case PBFT_COMMIT:
		decode_order(&d, m);
		break;
	case PBFT_REPLY:
		m->reply.view = pbft_get_u64(&d.r);
		m->reply.client_id = pbft_get_u64(&d.r);
		m->reply.request_number = pbft_get_u64(&d.r);
		m->replica = get_replica(&d);
		m->reply.result = get_bytes(&d, &m->reply.result_len,
					    pbft_get_u32(&d.r));
		get_trailer(&d, m);
		break;
	case PBFT_CHECKPOINT:
	case PBFT_STABLE:
		m->checkpoint.seq = pbft_get_u64(&d.r);
		get_digest(&d, m->checkpoint.digest);
		m->replica = get_replica(&d);
		if (m->type == PBFT_STABLE) {
			count = pbft_get_u8(&d.r);
			get_sig_list(&d, count, &m->checkpoint.proof);
		}
		get_trailer(&d, m);
		break;
	case PBFT_VIEW_CHANGE:
		m->view_change.new_view = pbft_get_u64(&d.r);
		m->view_change.stable_seq = pbft_get_u64(&d.r);
		get_digest(&d, m->view_change.stable_digest);
		m->replica = get_replica(&d);
		count = pbft_get_u8(&d.r);
		get_sig_list(&d, count, &m->view_change.proof);
		decode_prepared_list(&d, pbft_get_u16(&d.r), m);
		get_trailer(&d, m);
		break;
	case PBFT_NEW_VIEW:
		decode_new_view(&d, m);
		get_trailer(&d, m);
		break;
	case PBFT_FETCH_VIEW_CHANGE:
	case PBFT_FETCH_NEW_VIEW:
		m->fetch_view.view = pbft_get_u64(&d.r);
		m->replica = get_replica(&d);
		if (m->type == PBFT_FETCH_VIEW_CHANGE)
			m->fetch_view.target = get_replica(&d);
		get_trailer(&d, m);
		break;
	case PBFT_FETCH_ENTRIES:
		m->fetch_entries.from_seq = pbft_get_u64(&d.r);
		m->replica = get_replica(&d);
		get_trailer(&d, m);
		break;
	case PBFT_ENTRY:
		m->entry.view = pbft_get_u64(&d.r);
		m->entry.seq = pbft_get_u64(&d.r);
		get_digest(&d, m->entry.digest);
		m->replica = get_replica(&d);
		count = pbft_get_u8(&d.r);
		get_sig_list(&d, count, &m->entry.commits);
		m->entry.batch = get_bytes(&d, &m->entry.batch_len,
					   pbft_get_u32(&d.r));
		if (!d.r.bad && oskr__pbft_batch_each(m->entry.batch,
						      m->entry.batch_len,
						      NULL, NULL) < 0)
			decode_fail(&d, "bad_batch");
		get_trailer(&d, m);
		break;
	case PBFT_FETCH_BATCH:
	case PBFT_BATCH:
		m->batch.seq = pbft_get_u64(&d.r);
		get_digest(&d, m->batch.digest);
		m->replica = get_replica(&d);
		if (m->type == PBFT_BATCH) {
			m->batch.batch = get_bytes(&d, &m->batch.batch_len,
						   pbft_get_u32(&d.r));
			if (!d.r.bad &&
			    oskr__pbft_batch_each(m->batch.batch,
						  m->batch.batch_len, NULL,
						  NULL) < 0)
				decode_fail(&d, "bad_batch");
		}
		get_trailer(&d, m);
		break;
	case PBFT_FETCH_CHUNK:
	case PBFT_CHUNK:
		m->chunk.seq = pbft_get_u64(&d.r);
		get_digest(&d, m->chunk.digest);
		m->chunk.offset = pbft_get_u64(&d.r);
		m->replica = get_replica(&d);
		if (m->type == PBFT_CHUNK) {
			m->chunk.total = pbft_get_u64(&d.r);
			m->chunk.data = get_bytes(&d, &m->chunk.data_len,
						  pbft_get_u32(&d.r));
			if (!d.r.bad &&
			    (m->chunk.offset > m->chunk.total ||
			     m->chunk.total - m->chunk.offset <
				     m->chunk.data_len))
				decode_fail(&d, "bad_chunk");
		}
		get_trailer(&d, m);
		break;
	default:
		*why = "unknown_type";
		return -EBADMSG;
	}
	if (!d.r.bad && d.r.pos != len)
		decode_fail(&d, "trailing_bytes");
	if (d.r.bad) {
		*why = d.why ? d.why : "truncated";
		return -EBADMSG;
	}
	return 0;
}

bool oskr__pbft_next_sig(struct pbft_reader *r, struct pbft_sig_pair *out)
{
	if (r->pos >= r->len)
		return false;
	out->replica = pbft_get_u16(r);
	out->sig_len = pbft_get_u8(r);
	out->sig = pbft_get(r, out->sig_len);
	return !r->bad;
}

bool oskr__pbft_next_prepared(struct pbft_reader *r,
			      struct pbft_prepared_cert *out)
{
	if (r->pos >= r->len)
		return false;
	out->view = pbft_get_u64(r);
	out->seq = pbft_get_u64(r);
	const uint8_t *digest = pbft_get(r, PBFT_DIGEST);
	if (digest)
		memcpy(out->digest, digest, PBFT_DIGEST);
	out->pp_sig_len = pbft_get_u8(r);
	out->pp_sig = pbft_get(r, out->pp_sig_len);
	out->prepares.count = pbft_get_u8(r);
	out->prepares.data = r->data + r->pos;
	size_t start = r->pos;
	for (unsigned i = 0; i < out->prepares.count && !r->bad; i++) {
		pbft_get_u16(r);
		pbft_get(r, pbft_get_u8(r));
	}
	out->prepares.len = r->pos - start;
	return !r->bad;
}

bool oskr__pbft_next_o_entry(struct pbft_reader *r, struct pbft_o_entry *out)
{
	if (r->pos >= r->len)
		return false;
	out->seq = pbft_get_u64(r);
	const uint8_t *digest = pbft_get(r, PBFT_DIGEST);
	if (digest)
		memcpy(out->digest, digest, PBFT_DIGEST);
	out->sig_len = pbft_get_u8(r);
	out->sig = pbft_get(r, out->sig_len);
	return !r->bad;
}

bool oskr__pbft_next_vc_ref(struct pbft_reader *r, uint16_t *replica,
			    const uint8_t **digest)
{
	if (r->pos >= r->len)
		return false;
	*replica = pbft_get_u16(r);
	*digest = pbft_get(r, PBFT_DIGEST);
	return !r->bad;
}

int oskr__pbft_batch_each(const uint8_t *batch, size_t len,
			  void (*fn)(void *arg, const struct pbft_request *req),
			  void *arg)
{
	struct decoder d = { .r = { .data = batch, .len = len },
			     .replica_count = PBFT_MAX_REPLICAS };
	uint32_t count = pbft_get_u32(&d.r);
	/* Each request takes at least its header: bounds count cheaply. */
	if (d.r.bad || count > len / PBFT_REQUEST_HEADER)
		return -EBADMSG;
	for (uint32_t i = 0; i < count; i++) {
		struct pbft_request req;
		get_request(&d, &req, true);
		if (d.r.bad)
			return -EBADMSG;
		if (fn)
			fn(arg, &req);
	}
	return d.r.pos == len ? 0 : -EBADMSG;
}

void oskr__pbft_put_request(struct pbft_writer *w,
			    const struct pbft_request *req)
{
	pbft_put_u64(w, req->client_id);
	pbft_put_u64(w, req->request_number);
	pbft_put(w, req->addr.bytes, OSKR_ADDR_SIZE);
	pbft_put_u32(w, req->op_len);
	pbft_put(w, req->op, req->op_len);
}

void oskr__pbft_order_body(uint8_t out[PBFT_ORDER_BODY], uint8_t type,
			   uint64_t view, uint64_t seq,
			   const uint8_t digest[PBFT_DIGEST], uint16_t replica)
{
	struct pbft_writer w = { .data = out, .capacity = PBFT_ORDER_BODY };
	pbft_put_u8(&w, type);
	pbft_put_u64(&w, view);
	pbft_put_u64(&w, seq);
	pbft_put(&w, digest, PBFT_DIGEST);
	pbft_put_u16(&w, replica);
}

void oskr__pbft_checkpoint_body(uint8_t out[PBFT_CHECKPOINT_BODY],
				uint64_t seq,
				const uint8_t digest[PBFT_DIGEST],
				uint16_t replica)
{
	struct pbft_writer w = { .data = out,
				 .capacity = PBFT_CHECKPOINT_BODY };
	pbft_put_u8(&w, PBFT_CHECKPOINT);
	pbft_put_u64(&w, seq);
	pbft_put(&w, digest, PBFT_DIGEST);
	pbft_put_u16(&w, replica);
}
