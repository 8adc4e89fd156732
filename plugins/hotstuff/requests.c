/* SPDX-License-Identifier: MIT */
/*
 * Client requests at a replica.
 *
 * Pending table (local, nondeterministic): clients send every request to
 * all replicas, and leaders rotate every view, so every replica keeps the
 * requests it has seen until they execute. A client has at most one
 * outstanding request, so the table holds at most one entry per client
 * (the highest request number), bounded by max_pending.
 *
 * Client table (deterministic): updated only while executing committed
 * blocks, in commit order, so it is identical on every correct replica:
 * last executed request number and its result per client, LRU-bounded by
 * client_table_size (eviction order is the execution order, hence the
 * same everywhere). A request at or below the last executed number is a
 * duplicate: it is answered from the cache, never executed again.
 */
#include <stdlib.h>
#include <string.h>

#include "hotstuff.h"

static size_t pow2_at_least(uint64_t n, size_t cap)
{
	size_t size = 64;

	while (size < n && size < cap)
		size <<= 1;
	return size;
}

static size_t hash_id(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull;
	id ^= id >> 33;
	return (size_t)id;
}

int oskr__hs_requests_init(struct oskr__hs_requests *rq,
			   const struct oskr__hs_options *opt)
{
	size_t pending = pow2_at_least(opt->max_pending, 1u << 16);
	size_t clients = pow2_at_least(opt->client_table_size, 1u << 18);

	rq->pending_buckets = calloc(pending, sizeof(*rq->pending_buckets));
	rq->client_buckets = calloc(clients, sizeof(*rq->client_buckets));
	if (!rq->pending_buckets || !rq->client_buckets) {
		free(rq->pending_buckets);
		free(rq->client_buckets);
		rq->pending_buckets = NULL;
		rq->client_buckets = NULL;
		return -ENOMEM;
	}
	rq->pending_mask = pending - 1;
	rq->client_mask = clients - 1;
	rq->fifo.next = rq->fifo.prev = &rq->fifo;
	rq->lru.lru_next = rq->lru.lru_prev = &rq->lru;
	rq->pending_count = 0;
	rq->client_count = 0;
	return 0;
}

void oskr__hs_requests_fini(struct oskr__hs_requests *rq)
{
	struct oskr__hs_pending *p, *pn;
	struct oskr__hs_client_entry *e, *en;

	if (!rq->pending_buckets)
		return;
	for (p = rq->fifo.next; p != &rq->fifo; p = pn) {
		pn = p->next;
		free(p);
	}
	for (e = rq->lru.lru_next; e != &rq->lru; e = en) {
		en = e->lru_next;
		free(e->result);
		free(e);
	}
	free(rq->pending_buckets);
	free(rq->client_buckets);
	rq->pending_buckets = NULL;
	rq->client_buckets = NULL;
}

/* ---- pending ---- */

struct oskr__hs_pending *oskr__hs_pending_find(struct oskr__hs_requests *rq,
					       uint64_t client_id)
{
	struct oskr__hs_pending *p =
		rq->pending_buckets[hash_id(client_id) & rq->pending_mask];

	for (; p; p = p->hash_next)
		if (p->client_id == client_id)
			return p;
	return NULL;
}

static void pending_remove(struct oskr__hs_requests *rq,
			   struct oskr__hs_pending *p)
{
	struct oskr__hs_pending **pp =
		&rq->pending_buckets[hash_id(p->client_id) & rq->pending_mask];

	while (*pp && *pp != p)
		pp = &(*pp)->hash_next;
	if (*pp)
		*pp = p->hash_next;
	p->prev->next = p->next;
	p->next->prev = p->prev;
	rq->pending_count--;
	free(p);
}

static int pending_add(struct oskr__hs_requests *rq, uint64_t client_id,
		       uint64_t request_number, const struct oskr_addr *addr,
		       const uint8_t *op, uint32_t op_len)
{
	struct oskr__hs_pending *p = malloc(sizeof(*p) + op_len);
	size_t i = hash_id(client_id) & rq->pending_mask;

	if (!p)
		return -ENOMEM;
	memset(p, 0, sizeof(*p));
	p->client_id = client_id;
	p->request_number = request_number;
	p->addr = *addr;
	p->op_len = op_len;
	memcpy(p->op, op, op_len);
	p->hash_next = rq->pending_buckets[i];
	rq->pending_buckets[i] = p;
	p->prev = rq->fifo.prev;
	p->next = &rq->fifo;
	rq->fifo.prev->next = p;
	rq->fifo.prev = p;
	rq->pending_count++;
	return 0;
}

/* ---- client table ---- */

static struct oskr__hs_client_entry *client_find(struct oskr__hs_requests *rq,
						 uint64_t client_id)
{
	struct oskr__hs_client_entry *e =
		rq->client_buckets[hash_id(client_id) & rq->client_mask];

	for (; e; e = e->hash_next)
		if (e->client_id == client_id)
			return e;
	return NULL;
}

static void lru_unlink(struct oskr__hs_client_entry *e)
{
	e->lru_prev->lru_next = e->lru_next;
	e->lru_next->lru_prev = e->lru_prev;
}

static void lru_push_front(struct oskr__hs_requests *rq,
			   struct oskr__hs_client_entry *e)
{
	e->lru_next = rq->lru.lru_next;
	e->lru_prev = &rq->lru;
	rq->lru.lru_next->lru_prev = e;
	rq->lru.lru_next = e;
}

static void client_evict(struct oskr__hs_requests *rq,
			 struct oskr__hs_client_entry *e)
{
	struct oskr__hs_client_entry **pp =
		&rq->client_buckets[hash_id(e->client_id) & rq->client_mask];

	while (*pp && *pp != e)
		pp = &(*pp)->hash_next;
	if (*pp)
		*pp = e->hash_next;
	lru_unlink(e);
	rq->client_count--;
	free(e->result);
	free(e);
}

static struct oskr__hs_client_entry *
client_get(struct oskr__hs_requests *rq, uint64_t client_id, uint64_t limit)
{
	struct oskr__hs_client_entry *e = client_find(rq, client_id);
	size_t i;

	if (e) {
		lru_unlink(e);
		lru_push_front(rq, e);
		return e;
	}
	if (rq->client_count >= limit && rq->lru.lru_prev != &rq->lru)
		client_evict(rq, rq->lru.lru_prev);
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->client_id = client_id;
	i = hash_id(client_id) & rq->client_mask;
	e->hash_next = rq->client_buckets[i];
	rq->client_buckets[i] = e;
	lru_push_front(rq, e);
	rq->client_count++;
	return e;
}

/* ---- replies ---- */

struct reply_job {
	struct oskr_addr addr;
	uint64_t client_id;
	uint64_t request_number;
	uint32_t replica;
	uint32_t result_len;
	uint8_t result[];
};

static void reply_task(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct reply_job *job = arg;
	struct oskr__hs_writer w;
	struct oskr_buf *buf;
	uint8_t sig[OSKR_SIGNATURE_MAX];
	size_t sig_len = 0;
	size_t cap = OSKR__HS_HEADER_SIZE + 2 + 8 + 8 + 4 + job->result_len +
		     1 + OSKR_SIGNATURE_MAX;

	if (ctx->host->buf_alloc(ctx, cap, &buf))
		goto out;
	oskr__hs_writer_init(&w, buf->data, buf->capacity);
	oskr__hs_put_header(&w, OSKR__HS_MSG_REPLY);
	oskr__hs_put_u16(&w, (uint16_t)job->replica);
	oskr__hs_put_u64(&w, job->client_id);
	oskr__hs_put_u64(&w, job->request_number);
	oskr__hs_put_u32(&w, job->result_len);
	oskr__hs_put_bytes(&w, job->result, job->result_len);
	/* Signed so the client can count f + 1 matching replies from
	 * distinct replicas. */
	if (w.overflow || ctx->host->sign(ctx, w.data, w.len, sig, &sig_len) ||
	    sig_len == 0 || sig_len > OSKR_SIGNATURE_MAX) {
		ctx->host->buf_release(buf);
		goto out;
	}
	oskr__hs_put_u8(&w, (uint8_t)sig_len);
	oskr__hs_put_bytes(&w, sig, sig_len);
	buf->len = (uint32_t)w.len;
	ctx->host->send_to_addr(ctx, &job->addr, buf);
out:
	free(job);
}

/** Sign and send a reply off the stateful path (a stateless task). */
static void send_reply(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
		       const struct oskr_addr *addr, uint64_t client_id,
		       uint64_t request_number, const uint8_t *result,
		       uint32_t result_len)
{
	struct reply_job *job = malloc(sizeof(*job) + result_len);

	if (!job)
		return;
	job->addr = *addr;
	job->client_id = client_id;
	job->request_number = request_number;
	job->replica = rs->id;
	job->result_len = result_len;
	if (result_len)
		memcpy(job->result, result, result_len);
	if (ctx->host->submit_stateless(ctx, reply_task, job))
		reply_task(ctx, rs, job);
}

/* ---- handlers ---- */

void oskr__hs_on_request(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			 struct oskr__hs_inbound *in)
{
	const struct oskr__hs_request_msg_ref *r = &in->m.request;
	struct oskr__hs_requests *rq = &rs->requests;
	struct oskr__hs_client_entry *e;
	struct oskr__hs_pending *p;

	if (r->request_number == 0) {
		oskr__hs_drop(ctx, "drop_malformed");
		return;
	}
	/* It must fit in a block with a QC of n signatures and the
	 * leader's signature, or no leader could ever propose it. */
	if (oskr__hs_request_size(r->op_len) + OSKR__HS_HEADER_SIZE + 4 +
		    OSKR__HS_BLOCK_FIXED + OSKR__HS_QC_FIXED +
		    (size_t)rs->n * OSKR__HS_SIG_ENTRY_MAX + 4 + 1 +
		    OSKR_SIGNATURE_MAX >
	    rs->max_message) {
		oskr__hs_drop(ctx, "drop_request_too_large");
		return;
	}
	e = client_find(rq, r->client_id);
	if (e && r->request_number <= e->last_request_number) {
		/* Retransmission of an executed request: answer again. */
		if (r->request_number == e->last_request_number && e->result)
			send_reply(ctx, rs, &in->from, r->client_id,
				   r->request_number, e->result, e->result_len);
		ctx->host->count(ctx, "duplicate_requests", 1);
		return;
	}
	p = oskr__hs_pending_find(rq, r->client_id);
	if (p) {
		if (r->request_number <= p->request_number) {
			if (r->request_number == p->request_number)
				p->addr = in->from;
			return;
		}
		pending_remove(rq, p); /* superseded: the client moved on */
	}
	if (rq->pending_count >= rs->opt.max_pending) {
		oskr__hs_drop(ctx, "drop_pending_full");
		return;
	}
	if (pending_add(rq, r->client_id, r->request_number, &in->from, r->op,
			r->op_len)) {
		oskr__hs_drop(ctx, "drop_no_memory");
		return;
	}
	oskr__hs_try_propose(ctx, rs);
}

void oskr__hs_execute_block(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			    struct oskr__hs_block *b)
{
	struct oskr__hs_requests *rq = &rs->requests;
	struct oskr__hs_request_ref req;
	size_t off = 0;

	while (oskr__hs_next_request(b->requests, b->requests_len, &off, &req)) {
		struct oskr__hs_client_entry *e = client_find(rq, req.client_id);
		struct oskr__hs_pending *p;
		struct oskr_addr addr;
		size_t result_len = 0;
		uint8_t *copy;

		memcpy(addr.bytes, req.addr, OSKR_ADDR_SIZE);
		if (e && req.request_number <= e->last_request_number) {
			/* Proposed twice (retransmission raced a commit):
			 * executed once, answered again. */
			if (req.request_number == e->last_request_number &&
			    e->result)
				send_reply(ctx, rs, &addr, req.client_id,
					   req.request_number, e->result,
					   e->result_len);
			continue;
		}
		if (ctx->host->app_execute(ctx, req.op, req.op_len,
					   rs->result_scratch,
					   rs->result_scratch_size,
					   &result_len))
			result_len = 0; /* deterministic on every replica */
		rs->executed_ops++;
		e = client_get(rq, req.client_id, rs->opt.client_table_size);
		if (e) {
			e->last_request_number = req.request_number;
			copy = realloc(e->result, result_len ? result_len : 1);
			if (copy) {
				memcpy(copy, rs->result_scratch, result_len);
				e->result = copy;
				e->result_len = (uint32_t)result_len;
			} else {
				/* Never answer a duplicate with a stale
				 * result: forget it instead. */
				free(e->result);
				e->result = NULL;
				e->result_len = 0;
			}
		}
		p = oskr__hs_pending_find(rq, req.client_id);
		if (p && p->request_number <= req.request_number)
			pending_remove(rq, p);
		send_reply(ctx, rs, &addr, req.client_id, req.request_number,
			   rs->result_scratch, (uint32_t)result_len);
	}
}

/* ---- the client table in a durable checkpoint (durable.c) ---- */

/* Layout: count u32, then per client, least recently executed first (so
 * a restore that inserts in order rebuilds the same LRU order): client_id
 * u64 | last_request_number u64 | has_result u8 | result_len u32 |
 * result. */
int oskr__hs_clients_serialize(const struct oskr__hs_requests *rq,
			       uint8_t **out, size_t *out_len)
{
	const struct oskr__hs_client_entry *e;
	size_t len = 4;
	struct oskr__hs_writer w;
	uint8_t *data;

	for (e = rq->lru.lru_prev; e != &rq->lru; e = e->lru_prev)
		len += 8 + 8 + 1 + 4 + e->result_len;
	data = malloc(len);
	if (!data)
		return -ENOMEM;
	oskr__hs_writer_init(&w, data, len);
	oskr__hs_put_u32(&w, (uint32_t)rq->client_count);
	for (e = rq->lru.lru_prev; e != &rq->lru; e = e->lru_prev) {
		oskr__hs_put_u64(&w, e->client_id);
		oskr__hs_put_u64(&w, e->last_request_number);
		oskr__hs_put_u8(&w, e->result ? 1 : 0);
		oskr__hs_put_u32(&w, e->result ? e->result_len : 0);
		if (e->result)
			oskr__hs_put_bytes(&w, e->result, e->result_len);
	}
	if (w.overflow) {
		free(data);
		return -EINVAL;
	}
	*out = data;
	*out_len = w.len;
	return 0;
}

static uint64_t get_le(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

int oskr__hs_clients_restore(struct oskr__hs_requests *rq,
			     const struct oskr__hs_options *opt,
			     const uint8_t *data, size_t len)
{
	size_t pos = 4;
	uint64_t count;

	if (!oskr__hs_clients_valid(data, len, opt->client_table_size))
		return -EINVAL;
	count = get_le(data, 4);
	for (uint64_t i = 0; i < count; i++) {
		uint64_t client_id = get_le(data + pos, 8);
		uint64_t request_number = get_le(data + pos + 8, 8);
		bool has_result = data[pos + 16];
		uint32_t result_len = (uint32_t)get_le(data + pos + 17, 4);
		struct oskr__hs_client_entry *e;

		pos += 8 + 8 + 1 + 4;
		e = client_get(rq, client_id, opt->client_table_size);
		if (!e)
			return -ENOMEM;
		e->last_request_number = request_number;
		free(e->result);
		e->result = NULL;
		e->result_len = 0;
		if (has_result) {
			e->result = malloc(result_len ? result_len : 1);
			if (!e->result)
				return -ENOMEM;
			memcpy(e->result, data + pos, result_len);
			e->result_len = result_len;
		}
		pos += result_len;
	}
	return 0;
}

void oskr__hs_clients_clear(struct oskr__hs_requests *rq)
{
	while (rq->lru.lru_next != &rq->lru)
		client_evict(rq, rq->lru.lru_next);
}
