/* SPDX-License-Identifier: MIT */
/*
 * The stateless half of every replica message: decode (length-checked),
 * check structure, verify every signature, then hand the decoded message
 * to the stateful task. Runs concurrently on any worker, so it reads only
 * what replica_init set (n, f, ids, options, the genesis digest).
 *
 * Signature checks of one message are collected into a list. A QC is a
 * vector of 2f+1 signatures (no threshold scheme), so for large n the list
 * is split into chunks of `verify_split` checks, each chunk a stateless
 * task; the last chunk to finish submits the stateful task (or drops the
 * message if any chunk failed).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "hotstuff.h"

struct sig_check {
	uint32_t replica;
	const uint8_t *data;
	size_t len;
	const uint8_t *sig;
	uint8_t sig_len;
	const char *reason; /* drop counter if it fails */
};

struct verify_job;

struct verify_chunk {
	struct verify_job *job;
	uint32_t start, end;
};

struct verify_job {
	struct oskr__hs_inbound *in;
	struct sig_check *checks;
	uint32_t count;
	uint32_t capacity;
	uint8_t (*payloads)[OSKR__HS_VOTE_PAYLOAD];
	uint32_t payload_count;
	struct verify_chunk *chunks;
	atomic_uint remaining;
	atomic_int failed_check; /* -1, or index of a failed check */
};

void oskr__hs_inbound_free(struct oskr_ctx *ctx, struct oskr__hs_inbound *in)
{
	if (!in)
		return;
	if (in->buf)
		ctx->host->buf_release(in->buf);
	free(in->blocks);
	free(in->block_digests);
	free(in);
}

static void verify_job_free(struct verify_job *job)
{
	free(job->checks);
	free(job->payloads);
	free(job->chunks);
	free(job);
}

bool oskr__hs_qc_well_formed(struct oskr_ctx *ctx,
			     const struct oskr__hs_replica *rs,
			     const struct oskr__hs_qc_ref *qc)
{
	uint64_t seen = 0;

	/* The genesis QC is the only QC without signatures: every replica
	 * builds the same genesis block (docs/hotstuff.md). */
	if (qc->count == 0) {
		if (qc->view == 0 &&
		    !memcmp(qc->digest, rs->genesis_digest, OSKR__HS_DIGEST))
			return true;
		oskr__hs_drop(ctx, "drop_qc_too_few");
		return false;
	}
	if (qc->count < rs->quorum) {
		oskr__hs_drop(ctx, "drop_qc_too_few");
		return false;
	}
	for (uint16_t i = 0; i < qc->count; i++) {
		uint16_t r = qc->sigs[i].replica;

		if (r >= rs->n) {
			oskr__hs_drop(ctx, "drop_qc_bad_signer");
			return false;
		}
		if (seen & (1ull << r)) {
			oskr__hs_drop(ctx, "drop_qc_duplicate_signer");
			return false;
		}
		seen |= 1ull << r;
	}
	return true;
}

static int job_reserve(struct verify_job *job, uint32_t checks,
		       uint32_t payloads)
{
	job->checks = calloc(checks ? checks : 1, sizeof(*job->checks));
	job->payloads = calloc(payloads ? payloads : 1,
			       sizeof(*job->payloads));
	if (!job->checks || !job->payloads)
		return -ENOMEM;
	job->capacity = checks;
	return 0;
}

static void add_check(struct verify_job *job, uint32_t replica,
		      const uint8_t *data, size_t len, const uint8_t *sig,
		      uint8_t sig_len, const char *reason)
{
	struct sig_check *c;

	if (job->count >= job->capacity)
		return; /* reserve() sized it: cannot happen */
	c = &job->checks[job->count++];
	c->replica = replica;
	c->data = data;
	c->len = len;
	c->sig = sig;
	c->sig_len = sig_len;
	c->reason = reason;
}

/** Every signer of a QC signs the same vote payload (view, digest). */
static void add_qc_checks(struct verify_job *job,
			  const struct oskr__hs_qc_ref *qc)
{
	uint8_t *payload;

	if (qc->count == 0)
		return;
	payload = job->payloads[job->payload_count++];
	oskr__hs_vote_payload(payload, qc->view, qc->digest);
	for (uint16_t i = 0; i < qc->count; i++)
		add_check(job, qc->sigs[i].replica, payload,
			  OSKR__HS_VOTE_PAYLOAD, qc->sigs[i].bytes,
			  qc->sigs[i].len, "drop_qc_bad_signature");
}

static void finish_job(struct oskr_ctx *ctx, void *state,
		       struct verify_job *job);

static void stateful_dispatch(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct oskr__hs_replica *rs = state;
	struct oskr__hs_inbound *in = arg;

	switch (in->type) {
	case OSKR__HS_MSG_REQUEST:
		oskr__hs_on_request(ctx, rs, in);
		break;
	case OSKR__HS_MSG_PROPOSAL:
		oskr__hs_on_proposal(ctx, rs, in);
		break;
	case OSKR__HS_MSG_VOTE:
		oskr__hs_on_vote(ctx, rs, &in->m.vote);
		break;
	case OSKR__HS_MSG_NEW_VIEW:
		oskr__hs_on_new_view(ctx, rs, in);
		break;
	case OSKR__HS_MSG_FETCH:
		oskr__hs_on_fetch(ctx, rs, in);
		break;
	case OSKR__HS_MSG_BLOCKS:
		oskr__hs_on_blocks(ctx, rs, in);
		break;
	case OSKR__HS_MSG_CKPT_REQUEST:
		oskr__hs_on_ckpt_request(ctx, rs, in);
		break;
	case OSKR__HS_MSG_CKPT_OFFER:
		oskr__hs_on_ckpt_offer(ctx, rs, in);
		break;
	case OSKR__HS_MSG_CKPT_FETCH:
		oskr__hs_on_ckpt_fetch(ctx, rs, in);
		break;
	case OSKR__HS_MSG_CKPT_CHUNK:
		oskr__hs_on_ckpt_chunk(ctx, rs, in);
		break;
	default:
		break;
	}
	oskr__hs_pacemaker_refresh(ctx, rs);
	oskr__hs_inbound_free(ctx, in);
}

static void submit_inbound(struct oskr_ctx *ctx, struct oskr__hs_inbound *in)
{
	if (ctx->host->submit_stateful(ctx, stateful_dispatch, in)) {
		oskr__hs_drop(ctx, "drop_queue_full");
		oskr__hs_inbound_free(ctx, in);
	}
}

static void run_checks(struct oskr_ctx *ctx, struct verify_job *job,
		       uint32_t start, uint32_t end)
{
	for (uint32_t i = start; i < end; i++) {
		const struct sig_check *c = &job->checks[i];
		int expected = -1;

		/* Another chunk already failed: the message is lost anyway. */
		if (atomic_load_explicit(&job->failed_check,
					 memory_order_relaxed) >= 0)
			return;
		if (!ctx->host->verify(ctx, c->replica, c->data, c->len, c->sig,
				       c->sig_len))
			atomic_compare_exchange_strong(&job->failed_check,
						       &expected, (int)i);
	}
}

static void chunk_task(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct verify_chunk *chunk = arg;
	struct verify_job *job = chunk->job;

	run_checks(ctx, job, chunk->start, chunk->end);
	if (atomic_fetch_sub(&job->remaining, 1) == 1)
		finish_job(ctx, state, job);
}

static void finish_job(struct oskr_ctx *ctx, void *state,
		       struct verify_job *job)
{
	int failed = atomic_load(&job->failed_check);

	if (failed >= 0) {
		oskr__hs_drop(ctx, job->checks[failed].reason);
		oskr__hs_inbound_free(ctx, job->in);
	} else {
		submit_inbound(ctx, job->in);
	}
	verify_job_free(job);
}

/** Verify all checks of @p job, in parallel chunks when worth it, then
 *  submit or drop. Takes ownership of the job. */
static void verify_and_submit(struct oskr_ctx *ctx, void *state,
			      struct verify_job *job)
{
	const struct oskr__hs_replica *rs = state;
	uint32_t split = (uint32_t)rs->opt.verify_split;
	uint32_t chunks;

	atomic_init(&job->failed_check, -1);
	chunks = (job->count + split - 1) / split;
	if (chunks <= 1 || rs->worker_count <= 1) {
		run_checks(ctx, job, 0, job->count);
		finish_job(ctx, state, job);
		return;
	}
	job->chunks = calloc(chunks, sizeof(*job->chunks));
	if (!job->chunks) {
		run_checks(ctx, job, 0, job->count);
		finish_job(ctx, state, job);
		return;
	}
	atomic_init(&job->remaining, chunks);
	for (uint32_t i = 0; i < chunks; i++) {
		struct verify_chunk *chunk = &job->chunks[i];

		chunk->job = job;
		chunk->start = i * split;
		chunk->end = chunk->start + split < job->count ?
				     chunk->start + split :
				     job->count;
	}
	/* Chunk 0 runs here, last: until it finishes `remaining` cannot
	 * reach zero, so the job stays alive while we submit the others. A
	 * full queue means we do the work ourselves rather than lose the
	 * message. */
	for (uint32_t i = 1; i < chunks; i++)
		if (ctx->host->submit_stateless(ctx, chunk_task,
						&job->chunks[i]))
			chunk_task(ctx, state, &job->chunks[i]);
	chunk_task(ctx, state, &job->chunks[0]);
}

static struct verify_job *new_job(struct oskr_ctx *ctx,
				  const struct oskr_msg *msg,
				  enum oskr__hs_msg_type type)
{
	struct verify_job *job = calloc(1, sizeof(*job));
	struct oskr__hs_inbound *in = calloc(1, sizeof(*in));

	if (!job || !in) {
		free(job);
		free(in);
		oskr__hs_drop(ctx, "drop_no_memory");
		return NULL;
	}
	in->type = type;
	in->from = msg->from;
	in->from_replica = msg->from_replica;
	ctx->host->buf_hold(msg->buf);
	in->buf = msg->buf;
	job->in = in;
	return job;
}

static void drop_job(struct oskr_ctx *ctx, struct verify_job *job,
		     const char *reason)
{
	if (reason)
		oskr__hs_drop(ctx, reason);
	oskr__hs_inbound_free(ctx, job->in);
	verify_job_free(job);
}

/** Block checks that need no state: height, views, proposer id (that it
 *  leads the view only with round-robin; by reputation the leader depends
 *  on the block the justify QC certifies, checked in core.c). */
static bool block_well_formed(struct oskr_ctx *ctx,
			      const struct oskr__hs_replica *rs,
			      const struct oskr__hs_block_ref *b)
{
	if (b->height == 0 || b->view <= b->justify.view ||
	    b->proposer >= rs->n ||
	    (oskr__hs_leader_stateless(rs) &&
	     b->proposer != oskr__hs_leader(rs, b->view, NULL)) ||
	    b->view > UINT64_MAX / 2) {
		oskr__hs_drop(ctx, "drop_bad_block");
		return false;
	}
	return oskr__hs_qc_well_formed(ctx, rs, &b->justify);
}

static void receive_proposal(struct oskr_ctx *ctx, void *state,
			     const struct oskr_msg *msg)
{
	struct oskr__hs_replica *rs = state;
	struct verify_job *job = new_job(ctx, msg, OSKR__HS_MSG_PROPOSAL);
	struct oskr__hs_proposal_ref *p;
	uint8_t *payload;

	if (!job)
		return;
	p = &job->in->m.proposal;
	if (!oskr__hs_decode_proposal(msg->buf->data, msg->buf->len, p))
		return drop_job(ctx, job, "drop_malformed");
	if (!block_well_formed(ctx, rs, &p->block))
		return drop_job(ctx, job, NULL);
	if (job_reserve(job, 1u + p->block.justify.count, 2))
		return drop_job(ctx, job, "drop_no_memory");
	ctx->host->digest(ctx, p->block.raw, p->block.raw_len, job->in->digest);
	payload = job->payloads[job->payload_count++];
	oskr__hs_proposal_payload(payload, p->block.view, job->in->digest);
	add_check(job, p->block.proposer, payload, OSKR__HS_PROPOSAL_PAYLOAD,
		  p->sig, p->sig_len, "drop_bad_signature");
	add_qc_checks(job, &p->block.justify);
	verify_and_submit(ctx, state, job);
}

static void receive_vote(struct oskr_ctx *ctx, void *state,
			 const struct oskr_msg *msg)
{
	struct oskr__hs_replica *rs = state;
	struct verify_job *job = new_job(ctx, msg, OSKR__HS_MSG_VOTE);
	struct oskr__hs_vote_ref *v;
	uint8_t *payload;

	if (!job)
		return;
	v = &job->in->m.vote;
	if (!oskr__hs_decode_vote(msg->buf->data, msg->buf->len, v))
		return drop_job(ctx, job, "drop_malformed");
	if (v->voter >= rs->n)
		return drop_job(ctx, job, "drop_bad_sender");
	if (job_reserve(job, 1, 1))
		return drop_job(ctx, job, "drop_no_memory");
	payload = job->payloads[job->payload_count++];
	oskr__hs_vote_payload(payload, v->view, v->digest);
	add_check(job, v->voter, payload, OSKR__HS_VOTE_PAYLOAD, v->sig,
		  v->sig_len, "drop_bad_signature");
	verify_and_submit(ctx, state, job);
}

static void receive_new_view(struct oskr_ctx *ctx, void *state,
			     const struct oskr_msg *msg)
{
	struct oskr__hs_replica *rs = state;
	struct verify_job *job = new_job(ctx, msg, OSKR__HS_MSG_NEW_VIEW);
	struct oskr__hs_new_view_ref *nv;
	uint8_t *payload;

	if (!job)
		return;
	nv = &job->in->m.new_view;
	if (!oskr__hs_decode_new_view(msg->buf->data, msg->buf->len, nv))
		return drop_job(ctx, job, "drop_malformed");
	if (nv->sender >= rs->n || nv->view > UINT64_MAX / 2)
		return drop_job(ctx, job, "drop_bad_sender");
	if (!oskr__hs_qc_well_formed(ctx, rs, &nv->qc))
		return drop_job(ctx, job, NULL);
	if (job_reserve(job, 2u + nv->qc.count, 2))
		return drop_job(ctx, job, "drop_no_memory");
	add_check(job, nv->sender, msg->buf->data, nv->signed_len, nv->sig,
		  nv->sig_len, "drop_bad_signature");
	if (nv->has_vote) {
		payload = job->payloads[job->payload_count++];
		oskr__hs_vote_payload(payload, nv->vote.view, nv->vote.digest);
		add_check(job, nv->sender, payload, OSKR__HS_VOTE_PAYLOAD,
			  nv->vote.sig, nv->vote.sig_len, "drop_bad_signature");
	}
	add_qc_checks(job, &nv->qc);
	verify_and_submit(ctx, state, job);
}

/**
 * BLOCKS (answer to a BLOCK-FETCH): blocks newest first, each the parent
 * of the one before. The first must be a digest we asked for (checked in
 * the stateful task); the chain is checked here by hashing, and every
 * block's justify QC is verified like a proposal's.
 */
static void receive_blocks(struct oskr_ctx *ctx, void *state,
			   const struct oskr_msg *msg)
{
	struct oskr__hs_replica *rs = state;
	struct verify_job *job = new_job(ctx, msg, OSKR__HS_MSG_BLOCKS);
	struct oskr__hs_inbound *in;
	struct oskr__hs_blocks_ref blocks;
	const uint8_t *raw;
	size_t raw_len, offset = 0;
	uint32_t sigs = 0;

	if (!job)
		return;
	in = job->in;
	if (!oskr__hs_decode_blocks(msg->buf->data, msg->buf->len, &blocks))
		return drop_job(ctx, job, "drop_malformed");
	in->blocks = calloc(blocks.count, sizeof(*in->blocks));
	in->block_digests = calloc(blocks.count, sizeof(*in->block_digests));
	if (!in->blocks || !in->block_digests)
		return drop_job(ctx, job, "drop_no_memory");
	while (in->block_count < blocks.count &&
	       oskr__hs_next_block(&blocks, &offset, &raw, &raw_len)) {
		struct oskr__hs_block_ref *b = &in->blocks[in->block_count];

		if (!oskr__hs_decode_block(raw, raw_len, b))
			return drop_job(ctx, job, "drop_malformed");
		if (!block_well_formed(ctx, rs, b))
			return drop_job(ctx, job, NULL);
		ctx->host->digest(ctx, raw, raw_len,
				  in->block_digests[in->block_count]);
		if (in->block_count > 0 &&
		    memcmp(in->blocks[in->block_count - 1].parent,
			   in->block_digests[in->block_count],
			   OSKR__HS_DIGEST))
			return drop_job(ctx, job, "drop_bad_chain");
		sigs += b->justify.count;
		in->block_count++;
	}
	if (in->block_count != blocks.count)
		return drop_job(ctx, job, "drop_malformed");
	if (job_reserve(job, sigs, in->block_count))
		return drop_job(ctx, job, "drop_no_memory");
	for (uint32_t i = 0; i < in->block_count; i++)
		add_qc_checks(job, &in->blocks[i].justify);
	verify_and_submit(ctx, state, job);
}

/**
 * CKPT-OFFER (transfer.c): a replica's signed vouch for its checkpoint,
 * with the root block and the QC that certifies it. The vouch signature
 * and, with a block, the QC's n - f signatures are verified here; the
 * block must hash to the vouched digest and the QC must name it.
 */
static void receive_ckpt_offer(struct oskr_ctx *ctx, void *state,
			       const struct oskr_msg *msg)
{
	struct oskr__hs_replica *rs = state;
	struct verify_job *job = new_job(ctx, msg, OSKR__HS_MSG_CKPT_OFFER);
	struct oskr__hs_ckpt_offer_ref *m;

	if (!job)
		return;
	m = &job->in->m.ckpt_offer;
	if (!oskr__hs_decode_ckpt_offer(msg->buf->data, msg->buf->len, m))
		return drop_job(ctx, job, "drop_malformed");
	if (m->vouch.sender >= rs->n)
		return drop_job(ctx, job, "drop_bad_sender");
	if (m->has_block) {
		if (!oskr__hs_qc_well_formed(ctx, rs, &m->qc) ||
		    m->qc.count == 0)
			return drop_job(ctx, job, "drop_bad_qc");
		ctx->host->digest(ctx, m->block.raw, m->block.raw_len,
				  job->in->digest);
		if (memcmp(job->in->digest, m->vouch.block_digest,
			   OSKR__HS_DIGEST) ||
		    memcmp(m->qc.digest, job->in->digest, OSKR__HS_DIGEST))
			return drop_job(ctx, job, "drop_bad_block");
	}
	if (job_reserve(job, 1u + (m->has_block ? m->qc.count : 0u), 1))
		return drop_job(ctx, job, "drop_no_memory");
	oskr__hs_vouch_payload(job->in->vouch_payload, &m->vouch);
	add_check(job, m->vouch.sender, job->in->vouch_payload,
		  OSKR__HS_VOUCH_PAYLOAD, m->vouch.sig, m->vouch.sig_len,
		  "drop_bad_signature");
	if (m->has_block)
		add_qc_checks(job, &m->qc);
	verify_and_submit(ctx, state, job);
}

static void receive_simple(struct oskr_ctx *ctx, const struct oskr_msg *msg,
			   enum oskr__hs_msg_type type)
{
	struct verify_job *job = new_job(ctx, msg, type);
	const uint8_t *data = msg->buf->data;
	uint32_t len = msg->buf->len;
	bool ok;

	if (!job)
		return;
	switch (type) {
	case OSKR__HS_MSG_FETCH:
		ok = oskr__hs_decode_fetch(data, len, &job->in->m.fetch);
		break;
	case OSKR__HS_MSG_CKPT_REQUEST:
		ok = oskr__hs_decode_ckpt_request(data, len,
						  &job->in->m.ckpt_request);
		break;
	case OSKR__HS_MSG_CKPT_FETCH:
		ok = oskr__hs_decode_ckpt_fetch(data, len,
						&job->in->m.ckpt_fetch);
		break;
	case OSKR__HS_MSG_CKPT_CHUNK:
		/* Unsigned: checked against the agreed digest (transfer.c). */
		ok = oskr__hs_decode_ckpt_chunk(data, len,
						&job->in->m.ckpt_chunk);
		break;
	default:
		ok = oskr__hs_decode_request(data, len, &job->in->m.request);
		break;
	}
	if (!ok)
		return drop_job(ctx, job, "drop_malformed");
	submit_inbound(ctx, job->in);
	job->in = NULL;
	verify_job_free(job);
}

void oskr__hs_replica_receive(struct oskr_ctx *ctx, void *state,
			      const struct oskr_msg *msg)
{
	switch (oskr__hs_peek_type(msg->buf->data, msg->buf->len)) {
	case OSKR__HS_MSG_REQUEST:
		receive_simple(ctx, msg, OSKR__HS_MSG_REQUEST);
		break;
	case OSKR__HS_MSG_FETCH:
		/* Unsigned: answering costs bandwidth only, and what we send
		 * is verified by the receiver against digests. */
		if (msg->from_replica < 0) {
			oskr__hs_drop(ctx, "drop_bad_sender");
			break;
		}
		receive_simple(ctx, msg, OSKR__HS_MSG_FETCH);
		break;
	case OSKR__HS_MSG_PROPOSAL:
		receive_proposal(ctx, state, msg);
		break;
	case OSKR__HS_MSG_VOTE:
		receive_vote(ctx, state, msg);
		break;
	case OSKR__HS_MSG_NEW_VIEW:
		receive_new_view(ctx, state, msg);
		break;
	case OSKR__HS_MSG_BLOCKS:
		receive_blocks(ctx, state, msg);
		break;
	case OSKR__HS_MSG_CKPT_OFFER:
		receive_ckpt_offer(ctx, state, msg);
		break;
	case OSKR__HS_MSG_CKPT_REQUEST:
	case OSKR__HS_MSG_CKPT_FETCH:
	case OSKR__HS_MSG_CKPT_CHUNK:
		/* Unsigned, from replicas only: answering costs bandwidth,
		 * and what is installed is checked against f + 1 vouches. */
		if (msg->from_replica < 0) {
			oskr__hs_drop(ctx, "drop_bad_sender");
			break;
		}
		receive_simple(ctx, msg,
			       (enum oskr__hs_msg_type)oskr__hs_peek_type(
				       msg->buf->data, msg->buf->len));
		break;
	default:
		oskr__hs_drop(ctx, "drop_malformed");
		break;
	}
}
