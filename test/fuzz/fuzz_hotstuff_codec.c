/* SPDX-License-Identifier: MIT */
/*
 * HotStuff wire decoders (plugins/hotstuff/codec.c, compiled in directly).
 * Every input is offered to every decoder. Properties: what decodes
 * points inside the input (QC signatures, block parents, requests, ops,
 * vote and proposal signatures); counts respect the codec's limits; the
 * request and block iterators walk exactly the decoded counts; a decoded
 * QC re-encodes to its raw bytes; state-transfer messages (types 8-11)
 * point inside the input and a chunk lies inside its state.
 */
#include <string.h>

#include "fuzz.h"
#include "plugins/hotstuff/codec.h"

static void check_qc(const uint8_t *base, size_t size,
		     const struct oskr__hs_qc_ref *qc)
{
	FUZZ_CHECK(qc->count <= OSKR__HS_MAX_REPLICAS);
	FUZZ_CHECK(fuzz_inside(base, size, qc->digest, OSKR__HS_DIGEST));
	FUZZ_CHECK(fuzz_inside(base, size, qc->raw, qc->raw_len));
	uint16_t replicas[OSKR__HS_MAX_REPLICAS];
	const uint8_t *sigs[OSKR__HS_MAX_REPLICAS];
	uint8_t lens[OSKR__HS_MAX_REPLICAS];
	for (uint16_t i = 0; i < qc->count; i++) {
		const struct oskr__hs_sig_ref *sig = &qc->sigs[i];
		FUZZ_CHECK(sig->len >= 1 && sig->len <= OSKR_SIGNATURE_MAX);
		FUZZ_CHECK(fuzz_inside(base, size, sig->bytes, sig->len));
		replicas[i] = sig->replica;
		sigs[i] = sig->bytes;
		lens[i] = sig->len;
	}
	uint8_t *out = malloc(qc->raw_len ? qc->raw_len : 1);
	FUZZ_CHECK(out);
	struct oskr__hs_writer w;
	oskr__hs_writer_init(&w, out, qc->raw_len);
	oskr__hs_put_qc(&w, qc->view, qc->digest, qc->count, replicas, sigs,
			lens);
	FUZZ_CHECK(!w.overflow && w.len == qc->raw_len);
	FUZZ_CHECK(memcmp(out, qc->raw, qc->raw_len) == 0);
	free(out);
}

static void check_block(const uint8_t *base, size_t size,
			const struct oskr__hs_block_ref *b)
{
	FUZZ_CHECK(fuzz_inside(base, size, b->raw, b->raw_len));
	FUZZ_CHECK(fuzz_inside(base, size, b->parent, OSKR__HS_DIGEST));
	check_qc(base, size, &b->justify);
	FUZZ_CHECK(fuzz_inside(base, size, b->requests, b->requests_len));
	size_t offset = 0;
	uint32_t count = 0;
	struct oskr__hs_request_ref req;
	while (oskr__hs_next_request(b->requests, b->requests_len, &offset,
				     &req)) {
		FUZZ_CHECK(fuzz_inside(base, size, req.addr, OSKR_ADDR_SIZE));
		FUZZ_CHECK(fuzz_inside(base, size, req.op, req.op_len));
		fuzz_touch(req.op, req.op_len);
		count++;
	}
	FUZZ_CHECK(offset == b->requests_len);
	FUZZ_CHECK(count == b->request_count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	(void)oskr__hs_peek_type(data, size);

	struct oskr__hs_qc_ref qc;
	size_t used = 0;
	if (oskr__hs_decode_qc(data, size, &used, &qc)) {
		FUZZ_CHECK(used <= size && qc.raw_len == used);
		check_qc(data, size, &qc);
	}

	struct oskr__hs_block_ref block;
	if (oskr__hs_decode_block(data, size, &block))
		check_block(data, size, &block);

	struct oskr__hs_proposal_ref proposal;
	if (oskr__hs_decode_proposal(data, size, &proposal)) {
		check_block(data, size, &proposal.block);
		FUZZ_CHECK(fuzz_inside(data, size, proposal.sig,
				       proposal.sig_len));
	}

	struct oskr__hs_vote_ref vote;
	if (oskr__hs_decode_vote(data, size, &vote)) {
		FUZZ_CHECK(fuzz_inside(data, size, vote.digest,
				       OSKR__HS_DIGEST));
		FUZZ_CHECK(fuzz_inside(data, size, vote.sig, vote.sig_len));
	}

	struct oskr__hs_new_view_ref new_view;
	if (oskr__hs_decode_new_view(data, size, &new_view)) {
		check_qc(data, size, &new_view.qc);
		if (new_view.has_vote)
			FUZZ_CHECK(fuzz_inside(data, size, new_view.vote.sig,
					       new_view.vote.sig_len));
		FUZZ_CHECK(new_view.signed_len < size);
		FUZZ_CHECK(fuzz_inside(data, size, new_view.sig,
				       new_view.sig_len));
	}

	struct oskr__hs_fetch_ref fetch;
	if (oskr__hs_decode_fetch(data, size, &fetch)) {
		FUZZ_CHECK(fetch.max_blocks >= 1);
		FUZZ_CHECK(fuzz_inside(data, size, fetch.digest,
				       OSKR__HS_DIGEST));
	}

	struct oskr__hs_blocks_ref blocks;
	if (oskr__hs_decode_blocks(data, size, &blocks)) {
		FUZZ_CHECK(blocks.count >= 1 &&
			   blocks.count <= OSKR__HS_MAX_FETCH_BLOCKS);
		FUZZ_CHECK(fuzz_inside(data, size, blocks.entries,
				       blocks.entries_len));
		size_t offset = 0;
		unsigned count = 0;
		const uint8_t *raw;
		size_t raw_len;
		while (oskr__hs_next_block(&blocks, &offset, &raw, &raw_len)) {
			FUZZ_CHECK(fuzz_inside(data, size, raw, raw_len));
			struct oskr__hs_block_ref inner;
			if (oskr__hs_decode_block(raw, raw_len, &inner))
				check_block(data, size, &inner);
			count++;
		}
		FUZZ_CHECK(count == blocks.count);
	}

	struct oskr__hs_request_msg_ref request;
	if (oskr__hs_decode_request(data, size, &request))
		FUZZ_CHECK(fuzz_inside(data, size, request.op,
				       request.op_len));

	struct oskr__hs_ckpt_request_ref ckpt_request;
	if (oskr__hs_decode_ckpt_request(data, size, &ckpt_request))
		FUZZ_CHECK(fuzz_inside(data, size, ckpt_request.target,
				       OSKR__HS_DIGEST));

	static struct oskr__hs_ckpt_offer_ref offer;
	if (oskr__hs_decode_ckpt_offer(data, size, &offer)) {
		FUZZ_CHECK(fuzz_inside(data, size, offer.vouch.block_digest,
				       OSKR__HS_DIGEST));
		FUZZ_CHECK(fuzz_inside(data, size, offer.vouch.state_digest,
				       OSKR__HS_DIGEST));
		FUZZ_CHECK(fuzz_inside(data, size, offer.vouch.sig,
				       offer.vouch.sig_len));
		FUZZ_CHECK(offer.vouch.height > 0 &&
			   offer.vouch.state_len <= OSKR__HS_STATE_MAX);
		if (offer.has_block) {
			check_block(data, size, &offer.block);
			check_qc(data, size, &offer.qc);
			FUZZ_CHECK(offer.block.height == offer.vouch.height);
		}
	}

	struct oskr__hs_ckpt_fetch_ref ckpt_fetch;
	if (oskr__hs_decode_ckpt_fetch(data, size, &ckpt_fetch))
		FUZZ_CHECK(fuzz_inside(data, size, ckpt_fetch.block_digest,
				       OSKR__HS_DIGEST));

	struct oskr__hs_ckpt_chunk_ref chunk;
	if (oskr__hs_decode_ckpt_chunk(data, size, &chunk)) {
		FUZZ_CHECK(fuzz_inside(data, size, chunk.data, chunk.data_len));
		FUZZ_CHECK(chunk.total <= OSKR__HS_STATE_MAX &&
			   chunk.offset + chunk.data_len <= chunk.total);
		fuzz_touch(chunk.data, chunk.data_len);
	}

	struct oskr__hs_reply_ref reply;
	if (oskr__hs_decode_reply(data, size, &reply)) {
		FUZZ_CHECK(fuzz_inside(data, size, reply.result,
				       reply.result_len));
		FUZZ_CHECK(reply.signed_len < size);
		FUZZ_CHECK(fuzz_inside(data, size, reply.sig, reply.sig_len));
	}
	return 0;
}
