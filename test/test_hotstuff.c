/* SPDX-License-Identifier: MIT */
/*
 * plugins/hotstuff on the sim: seeded, deterministic runs that check
 * safety (oskr_sim_check_safety: the executed sequences of correct
 * replicas are prefixes of one another, no client accepted two results)
 * and liveness (every request of the workload completes) under the faults
 * issue 5 lists, plus codec round trips and malformed input.
 *
 * The plugin is loaded from $OSKR_BUILD_DIR/plugins/hotstuff.so with
 * dlopen, like oskrd does. The plugin's codec is compiled in here (it is
 * pure) so tests can craft Byzantine messages; its state layout is
 * included for white-box memory-bound checks.
 */
#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "sim/sim.h"
/* White-box: a durable-checkpoint test corrupts the sim's stored copy of
 * a replica's checkpoint (its "disk"). */
#include "sim/sim_internal.h"

#include "plugins/hotstuff/codec.c"
#include "plugins/hotstuff/durable_codec.c"
#include "plugins/hotstuff/hotstuff.h"

#define MS 1000000ull
#define SEC 1000000000ull

static const struct oskr_plugin *plugin;
/* OSKR_TEST_SEED=k shifts every seed by k (default 0): the suite stays
 * deterministic, and other seeds can be explored by hand. */
static uint64_t seed_offset;

static void sha256(const void *data, size_t len, uint8_t out[32])
{
	unsigned int out_len = 32;

	ck_assert(EVP_Digest(data, len, out, &out_len, EVP_sha256(), NULL));
}

/* Options most tests share: short timers keep virtual time (and so the
 * number of simulated events while waiting) small. */
#define FAST_OPTIONS                                                    \
	"view_timeout_ms: 20\nmax_view_timeout_ms: 1000\n"              \
	"client_retry_ms: 100\nfetch_timeout_ms: 10\n"

static struct oskr_sim *make_sim(uint32_t n, uint32_t f, uint32_t clients,
				 uint64_t seed, const char *options)
{
	struct oskr_sim_config c = {
		.plugin = plugin,
		.replica_count = n,
		.fault_count = f,
		.client_count = clients,
		.seed = seed + seed_offset,
		.protocol_options = options,
	};
	struct oskr_sim *sim = NULL;

	ck_assert_int_eq(oskr_sim_create(&sim, &c), 0);
	return sim;
}

static void assert_safe(struct oskr_sim *sim)
{
	char why[512] = "";

	ck_assert_msg(oskr_sim_check_safety(sim, why, sizeof(why)),
		      "safety violated: %s", why);
}

static uint64_t counter_sum(struct oskr_sim *sim, uint32_t n, const char *name)
{
	uint64_t sum = 0;

	for (uint32_t r = 0; r < n; r++)
		sum += oskr_sim_counter(sim, (int32_t)r, name);
	return sum;
}

static struct oskr__hs_replica *state_of(struct oskr_sim *sim, uint32_t r)
{
	return oskr_sim_replica_state(sim, r);
}

/** Run a closed-loop workload and insist every request completes. */
static void run_all(struct oskr_sim *sim, uint64_t total, uint64_t max_ns)
{
	uint64_t done = oskr_sim_run_workload(sim, total,
					      oskr_sim_now(sim) + max_ns, NULL,
					      NULL);

	ck_assert_msg(done == total, "only %llu of %llu requests completed",
		      (unsigned long long)done, (unsigned long long)total);
}

/** After load stops, the empty-block rule must commit the tail on every
 *  live replica. */
static void assert_all_executed(struct oskr_sim *sim, uint32_t n,
				uint64_t expected)
{
	for (uint32_t r = 0; r < n; r++) {
		if (oskr_sim_is_crashed(sim, r))
			continue;
		ck_assert_msg(oskr_sim_executed(sim, r) == expected,
			      "replica %u executed %llu, expected %llu", r,
			      (unsigned long long)oskr_sim_executed(sim, r),
			      (unsigned long long)expected);
	}
}

/* ---- codec ---- */

START_TEST(test_codec_round_trip)
{
	uint8_t buf[4096], digest[32], parent[32], sig_a[70], sig_b[64];
	const uint8_t *sigs[2] = { sig_a, sig_b };
	uint16_t replicas[2] = { 3, 1 };
	uint8_t sig_lens[2] = { sizeof(sig_a), sizeof(sig_b) };
	uint8_t addr[OSKR_ADDR_SIZE] = { 7 };
	uint8_t qc_raw[512];
	struct oskr__hs_writer w, qw;
	static struct oskr__hs_proposal_ref p;
	struct oskr__hs_request_ref req;
	size_t count_offset, block_len, off = 0;

	memset(digest, 0xab, sizeof(digest));
	memset(parent, 0xcd, sizeof(parent));
	memset(sig_a, 1, sizeof(sig_a));
	memset(sig_b, 2, sizeof(sig_b));
	oskr__hs_writer_init(&qw, qc_raw, sizeof(qc_raw));
	oskr__hs_put_qc(&qw, 41, digest, 2, replicas, sigs, sig_lens);
	ck_assert(!qw.overflow);

	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_PROPOSAL);
	oskr__hs_put_u32(&w, 0);
	count_offset = oskr__hs_put_block_head(&w, parent, 9, 42, 2, qc_raw,
					       qw.len);
	oskr__hs_put_request(&w, 77, 5, addr, "hello", 5);
	oskr__hs_put_request(&w, 78, 1, addr, "", 0);
	oskr__hs_patch_u32(&w, count_offset, 2);
	block_len = w.len - 8;
	oskr__hs_patch_u32(&w, 4, (uint32_t)block_len);
	oskr__hs_put_u8(&w, 3);
	oskr__hs_put_bytes(&w, "sig", 3);
	ck_assert(!w.overflow);

	ck_assert_int_eq(oskr__hs_peek_type(buf, w.len), OSKR__HS_MSG_PROPOSAL);
	ck_assert(oskr__hs_decode_proposal(buf, w.len, &p));
	ck_assert_uint_eq(p.block.height, 9);
	ck_assert_uint_eq(p.block.view, 42);
	ck_assert_uint_eq(p.block.proposer, 2);
	ck_assert_uint_eq(p.block.justify.view, 41);
	ck_assert_uint_eq(p.block.justify.count, 2);
	ck_assert_uint_eq(p.block.justify.sigs[0].replica, 3);
	ck_assert_uint_eq(p.block.justify.sigs[1].len, sizeof(sig_b));
	ck_assert_mem_eq(p.block.justify.digest, digest, 32);
	ck_assert_mem_eq(p.block.parent, parent, 32);
	ck_assert_uint_eq(p.block.request_count, 2);
	ck_assert(oskr__hs_next_request(p.block.requests, p.block.requests_len,
					&off, &req));
	ck_assert_uint_eq(req.client_id, 77);
	ck_assert_uint_eq(req.request_number, 5);
	ck_assert_uint_eq(req.op_len, 5);
	ck_assert_mem_eq(req.op, "hello", 5);
	ck_assert(oskr__hs_next_request(p.block.requests, p.block.requests_len,
					&off, &req));
	ck_assert_uint_eq(req.op_len, 0);
	ck_assert(!oskr__hs_next_request(p.block.requests,
					 p.block.requests_len, &off, &req));
	ck_assert_uint_eq(p.sig_len, 3);

	/* Every truncation and every trailing byte is rejected. */
	for (size_t cut = 0; cut < w.len; cut++)
		ck_assert_msg(!oskr__hs_decode_proposal(buf, cut, &p),
			      "accepted a proposal cut at %zu", cut);
	buf[w.len] = 0;
	ck_assert(!oskr__hs_decode_proposal(buf, w.len + 1, &p));
}
END_TEST

START_TEST(test_codec_rejects_malformed)
{
	uint8_t buf[256];
	struct oskr__hs_writer w;
	struct oskr__hs_vote_ref v;
	struct oskr__hs_blocks_ref blocks;
	static struct oskr__hs_new_view_ref nv;
	uint8_t digest[32] = { 0 };

	/* vote: valid, then zero-length and oversized signatures */
	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_VOTE);
	oskr__hs_put_u16(&w, 1);
	oskr__hs_put_u64(&w, 7);
	oskr__hs_put_bytes(&w, digest, 32);
	oskr__hs_put_u8(&w, 4);
	oskr__hs_put_bytes(&w, "abcd", 4);
	ck_assert(oskr__hs_decode_vote(buf, w.len, &v));
	ck_assert_uint_eq(v.view, 7);
	buf[w.len - 5] = 0;
	ck_assert(!oskr__hs_decode_vote(buf, w.len, &v));
	buf[w.len - 5] = OSKR_SIGNATURE_MAX + 1;
	ck_assert(!oskr__hs_decode_vote(buf, w.len, &v));
	/* wrong magic */
	buf[w.len - 5] = 4;
	ck_assert(oskr__hs_decode_vote(buf, w.len, &v));
	buf[0] ^= 0xff;
	ck_assert_int_eq(oskr__hs_peek_type(buf, w.len), 0);
	ck_assert(!oskr__hs_decode_vote(buf, w.len, &v));

	/* BLOCKS: a count larger than what follows */
	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_BLOCKS);
	oskr__hs_put_u16(&w, 3);
	oskr__hs_put_u32(&w, 2);
	oskr__hs_put_bytes(&w, "xx", 2);
	ck_assert(!oskr__hs_decode_blocks(buf, w.len, &blocks));
	/* ... and a block length past the end */
	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_BLOCKS);
	oskr__hs_put_u16(&w, 1);
	oskr__hs_put_u32(&w, 0xffffffffu);
	ck_assert(!oskr__hs_decode_blocks(buf, w.len, &blocks));

	/* NEW-VIEW: QC with a count above the replica limit */
	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_NEW_VIEW);
	oskr__hs_put_u16(&w, 0);
	oskr__hs_put_u64(&w, 5);
	oskr__hs_put_u64(&w, 4);
	oskr__hs_put_bytes(&w, digest, 32);
	oskr__hs_put_u16(&w, OSKR__HS_MAX_REPLICAS + 1);
	ck_assert(!oskr__hs_decode_new_view(buf, w.len, &nv));

	/* A block whose request count claims more than the bytes hold. */
	{
		uint8_t qc[64];
		struct oskr__hs_writer qw;
		static struct oskr__hs_block_ref b;
		size_t off;

		oskr__hs_writer_init(&qw, qc, sizeof(qc));
		oskr__hs_put_qc(&qw, 0, digest, 0, NULL, NULL, NULL);
		oskr__hs_writer_init(&w, buf, sizeof(buf));
		off = oskr__hs_put_block_head(&w, digest, 1, 1, 0, qc, qw.len);
		oskr__hs_patch_u32(&w, off, 1000000);
		ck_assert(!oskr__hs_decode_block(buf, w.len, &b));
		oskr__hs_patch_u32(&w, off, 0);
		ck_assert(oskr__hs_decode_block(buf, w.len, &b));
	}
}
END_TEST

static struct oskr_sim *make_transfer_sim(uint32_t clients, uint64_t seed,
					  uint32_t max_message);

/* Encodings of the four state-transfer messages, valid, for the decoder
 * tests (and the fuzz seeds' shape). */
struct transfer_msgs {
	uint8_t request[64], offer[1024], fetch[64], chunk[256];
	size_t request_len, offer_len, fetch_len, chunk_len;
};

static void build_transfer_msgs(struct transfer_msgs *t)
{
	static const uint8_t digest[32] = { 1, 2, 3 };
	static const uint8_t state_digest[32] = { 9, 8, 7 };
	uint8_t qc[256], block[256], sig[8] = "signatur";
	const uint8_t *sigs[3] = { sig, sig, sig };
	uint16_t replicas[3] = { 0, 1, 2 };
	uint8_t lens[3] = { 8, 8, 8 };
	struct oskr__hs_writer w, qw, bw;
	struct oskr__hs_vouch_ref v = {
		.sender = 1,
		.height = 5,
		.block_digest = digest,
		.executed_ops = 40,
		.committed_blocks = 5,
		.state_len = 100,
		.state_digest = state_digest,
		.sig_len = 8,
		.sig = sig,
	};
	uint8_t block_digest[32];

	oskr__hs_writer_init(&w, t->request, sizeof(t->request));
	oskr__hs_put_header(&w, OSKR__HS_MSG_CKPT_REQUEST);
	oskr__hs_put_u16(&w, 3);
	oskr__hs_put_u64(&w, 17);
	oskr__hs_put_u8(&w, 1);
	oskr__hs_put_bytes(&w, digest, 32);
	ck_assert(!w.overflow);
	t->request_len = w.len;

	/* a block at height 5, view 6, and a QC for it */
	oskr__hs_writer_init(&qw, qc, sizeof(qc));
	oskr__hs_put_qc(&qw, 4, digest, 3, replicas, sigs, lens);
	oskr__hs_writer_init(&bw, block, sizeof(block));
	oskr__hs_put_block_head(&bw, digest, 5, 6, 2, qc, qw.len);
	sha256(block, bw.len, block_digest);
	v.block_digest = block_digest;
	oskr__hs_writer_init(&qw, qc, sizeof(qc));
	oskr__hs_put_qc(&qw, 6, block_digest, 3, replicas, sigs, lens);
	oskr__hs_writer_init(&w, t->offer, sizeof(t->offer));
	oskr__hs_put_header(&w, OSKR__HS_MSG_CKPT_OFFER);
	oskr__hs_put_vouch(&w, &v);
	oskr__hs_put_u8(&w, 1);
	oskr__hs_put_u32(&w, (uint32_t)bw.len);
	oskr__hs_put_bytes(&w, block, bw.len);
	oskr__hs_put_u32(&w, (uint32_t)qw.len);
	oskr__hs_put_bytes(&w, qc, qw.len);
	ck_assert(!w.overflow);
	t->offer_len = w.len;

	oskr__hs_writer_init(&w, t->fetch, sizeof(t->fetch));
	oskr__hs_put_header(&w, OSKR__HS_MSG_CKPT_FETCH);
	oskr__hs_put_u16(&w, 3);
	oskr__hs_put_bytes(&w, digest, 32);
	oskr__hs_put_u64(&w, 64);
	t->fetch_len = w.len;

	oskr__hs_writer_init(&w, t->chunk, sizeof(t->chunk));
	oskr__hs_put_header(&w, OSKR__HS_MSG_CKPT_CHUNK);
	oskr__hs_put_u16(&w, 1);
	oskr__hs_put_bytes(&w, digest, 32);
	oskr__hs_put_bytes(&w, state_digest, 32);
	oskr__hs_put_u64(&w, 100);
	oskr__hs_put_u64(&w, 64);
	oskr__hs_put_u32(&w, 36);
	oskr__hs_put_bytes(&w, block, 36);
	ck_assert(!w.overflow);
	t->chunk_len = w.len;
}

/* Decode @p data of @p len with every state-transfer decoder; returns a
 * bit mask of those that accepted it. */
static unsigned decode_transfer(const uint8_t *data, size_t len)
{
	static struct oskr__hs_ckpt_offer_ref offer;
	struct oskr__hs_ckpt_request_ref request;
	struct oskr__hs_ckpt_fetch_ref fetch;
	struct oskr__hs_ckpt_chunk_ref chunk;
	unsigned ok = 0;

	ok |= oskr__hs_decode_ckpt_request(data, len, &request) ? 1u : 0;
	ok |= oskr__hs_decode_ckpt_offer(data, len, &offer) ? 2u : 0;
	ok |= oskr__hs_decode_ckpt_fetch(data, len, &fetch) ? 4u : 0;
	ok |= oskr__hs_decode_ckpt_chunk(data, len, &chunk) ? 8u : 0;
	if (ok & 8u)
		ck_assert(chunk.offset + chunk.data_len <= chunk.total);
	return ok;
}

START_TEST(test_transfer_decoders)
{
	static struct transfer_msgs t;
	static struct oskr__hs_ckpt_offer_ref offer;
	struct oskr__hs_ckpt_chunk_ref chunk;
	uint8_t *copy;
	struct {
		const uint8_t *data;
		size_t len;
		unsigned bit;
	} msgs[4];
	uint64_t rng = 0x9e3779b97f4a7c15ull;

	build_transfer_msgs(&t);
	msgs[0].data = t.request, msgs[0].len = t.request_len, msgs[0].bit = 1;
	msgs[1].data = t.offer, msgs[1].len = t.offer_len, msgs[1].bit = 2;
	msgs[2].data = t.fetch, msgs[2].len = t.fetch_len, msgs[2].bit = 4;
	msgs[3].data = t.chunk, msgs[3].len = t.chunk_len, msgs[3].bit = 8;

	ck_assert(oskr__hs_decode_ckpt_offer(t.offer, t.offer_len, &offer));
	ck_assert(offer.has_block);
	ck_assert_uint_eq(offer.vouch.height, 5);
	ck_assert_uint_eq(offer.block.height, 5);
	ck_assert_uint_eq(offer.qc.count, 3);
	ck_assert(oskr__hs_decode_ckpt_chunk(t.chunk, t.chunk_len, &chunk));
	ck_assert_uint_eq(chunk.offset, 64);
	ck_assert_uint_eq(chunk.data_len, 36);

	for (unsigned m = 0; m < 4; m++) {
		/* exactly its own decoder accepts it */
		ck_assert_uint_eq(decode_transfer(msgs[m].data, msgs[m].len),
				  msgs[m].bit);
		/* every truncation and one trailing byte are refused, in a
		 * heap copy of exactly that length (ASan sees overreads) */
		for (size_t len = 0; len <= msgs[m].len + 1; len++) {
			if (len == msgs[m].len)
				continue;
			copy = malloc(len ? len : 1);
			ck_assert_ptr_nonnull(copy);
			memcpy(copy, msgs[m].data,
			       len < msgs[m].len ? len : msgs[m].len);
			if (len > msgs[m].len)
				copy[len - 1] = 0;
			ck_assert_msg(decode_transfer(copy, len) == 0,
				      "message %u accepted at length %zu", m,
				      len);
			free(copy);
		}
		/* every flipped byte: no crash, whatever it decodes to */
		for (size_t i = 0; i < msgs[m].len; i++) {
			copy = malloc(msgs[m].len);
			ck_assert_ptr_nonnull(copy);
			memcpy(copy, msgs[m].data, msgs[m].len);
			copy[i] ^= 0xa5;
			(void)decode_transfer(copy, msgs[m].len);
			free(copy);
		}
	}
	/* a chunk reaching past its state's total, an absurd total */
	t.chunk[OSKR__HS_HEADER_SIZE + 2 + 64] = 90; /* total 100 -> 90 */
	ck_assert(!oskr__hs_decode_ckpt_chunk(t.chunk, t.chunk_len, &chunk));
	t.chunk[OSKR__HS_HEADER_SIZE + 2 + 64 + 5] = 0x7f; /* > 2^32 */
	ck_assert(!oskr__hs_decode_ckpt_chunk(t.chunk, t.chunk_len, &chunk));
	/* garbage behind a valid header of each type */
	for (unsigned i = 0; i < 2000; i++) {
		uint8_t junk[300];
		size_t len = 4 + i % 290;

		for (size_t k = 0; k < len; k++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			junk[k] = (uint8_t)rng;
		}
		junk[0] = 0x48, junk[1] = 0x53, junk[2] = 1;
		junk[3] = (uint8_t)(8 + i % 4);
		(void)decode_transfer(junk, len);
	}
}
END_TEST

START_TEST(test_transfer_garbage_dropped_by_replicas)
{
	/* Malformed state-transfer messages reach a running cluster from a
	 * replica address and from a client: dropped and counted, nothing
	 * else happens, the cluster keeps working. */
	struct oskr_sim *sim = make_transfer_sim(2, 57, 0);
	static struct transfer_msgs t;
	uint64_t before;

	build_transfer_msgs(&t);
	run_all(sim, 50, 20 * SEC);
	before = oskr_sim_counter(sim, 0, "drop_malformed");
	for (size_t len = 0; len < t.offer_len; len += 7)
		ck_assert_int_eq(oskr_sim_inject(sim, 1, 0, t.offer, len), 0);
	for (size_t len = 0; len < t.chunk_len; len += 5)
		ck_assert_int_eq(oskr_sim_inject(sim, 1, 0, t.chunk, len), 0);
	/* a well-formed offer whose signature and QC do not verify */
	ck_assert_int_eq(oskr_sim_inject(sim, 1, 0, t.offer, t.offer_len), 0);
	/* unsolicited well-formed chunk, fetch and request */
	ck_assert_int_eq(oskr_sim_inject(sim, 1, 0, t.chunk, t.chunk_len), 0);
	ck_assert_int_eq(oskr_sim_inject(sim, 1, 0, t.fetch, t.fetch_len), 0);
	ck_assert_int_eq(oskr_sim_inject(sim, 1, 0, t.request, t.request_len),
			 0);
	/* from a client: not a replica */
	ck_assert_int_eq(oskr_sim_inject(sim, OSKR_SIM_CLIENT(0), 0, t.fetch,
					 t.fetch_len),
			 0);
	oskr_sim_run_for(sim, 100 * MS);
	ck_assert_uint_ge(oskr_sim_counter(sim, 0, "drop_malformed"),
			  before + t.offer_len / 7 + t.chunk_len / 5);
	ck_assert_uint_ge(oskr_sim_counter(sim, 0, "drop_bad_qc") +
				  oskr_sim_counter(sim, 0, "drop_bad_block") +
				  oskr_sim_counter(sim, 0,
						   "drop_qc_bad_signature") +
				  oskr_sim_counter(sim, 0, "drop_bad_signature"),
			  1);
	ck_assert_uint_ge(oskr_sim_counter(sim, 0, "drop_unsolicited"), 1);
	ck_assert_uint_ge(oskr_sim_counter(sim, 0, "drop_bad_sender"), 1);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "state_transfers"), 0);
	run_all(sim, 50, 20 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	assert_safe(sim);
	assert_all_executed(sim, 4, 100);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_resume_blob_decoder)
{
	static const uint8_t parent[32] = { 9 };
	uint8_t block_raw[512], qc_raw[512], digest[32], sigs_store[3][64];
	const uint8_t *sigs[3] = { sigs_store[0], sigs_store[1], sigs_store[2] };
	uint16_t replicas[3] = { 0, 1, 3 };
	uint8_t sig_lens[3] = { 64, 64, 64 };
	uint8_t clients[256];
	struct oskr__hs_writer w, qw, cw;
	struct oskr__hs_block_ref ref;
	struct oskr__hs_block *b, *root;
	struct oskr__hs_resume_point *point = malloc(sizeof(*point));
	uint8_t *blob, *copy;
	size_t blob_len, old_len;
	const char *why = NULL;

	memset(sigs_store, 7, sizeof(sigs_store));
	/* the block: height 12, view 15, no requests, justified by some QC */
	oskr__hs_writer_init(&qw, qc_raw, sizeof(qc_raw));
	oskr__hs_put_qc(&qw, 14, parent, 3, replicas, sigs, sig_lens);
	oskr__hs_writer_init(&w, block_raw, sizeof(block_raw));
	oskr__hs_put_block_head(&w, parent, 12, 15, 3, qc_raw, qw.len);
	ck_assert(!w.overflow && oskr__hs_decode_block(block_raw, w.len, &ref));
	sha256(block_raw, w.len, digest);
	/* what the encoder reads of a stored block */
	b = calloc(1, sizeof(*b) + w.len);
	ck_assert_ptr_nonnull(b);
	memcpy(b->raw, block_raw, w.len);
	b->raw_len = w.len;
	b->height = ref.height;
	memcpy(b->digest, digest, 32);
	/* its activity record: replica 2 down for a while, 3 failing */
	for (uint32_t r = 0; r < 4; r++) {
		b->since_active[r] = (uint16_t)r;
		b->since_failed[r] = OSKR__HS_NEVER;
	}
	b->since_active[2] = 40;
	b->since_failed[3] = 2;
	b->fail_streak[3] = OSKR__HS_FAIL_STREAK_CAP;
	/* its QC: view 15, this digest */
	oskr__hs_writer_init(&qw, qc_raw, sizeof(qc_raw));
	oskr__hs_put_qc(&qw, 15, digest, 3, replicas, sigs, sig_lens);
	/* a client table of two, the second without a result */
	oskr__hs_writer_init(&cw, clients, sizeof(clients));
	oskr__hs_put_u32(&cw, 2);
	oskr__hs_put_u64(&cw, 1001);
	oskr__hs_put_u64(&cw, 4);
	oskr__hs_put_u8(&cw, 1);
	oskr__hs_put_u32(&cw, 3);
	oskr__hs_put_bytes(&cw, "abc", 3);
	oskr__hs_put_u64(&cw, 1002);
	oskr__hs_put_u64(&cw, 9);
	oskr__hs_put_u8(&cw, 0);
	oskr__hs_put_u32(&cw, 0);
	ck_assert(oskr__hs_clients_valid(clients, cw.len, 2));
	ck_assert(!oskr__hs_clients_valid(clients, cw.len, 1));
	ck_assert(!oskr__hs_clients_valid(clients, cw.len - 1, 2));

	ck_assert_int_eq(oskr__hs_resume_encode(4, 1, 57, 12, b, true, qc_raw,
						qw.len, clients, cw.len, &blob,
						&blob_len),
			 0);
	ck_assert_int_eq(oskr__hs_resume_decode(blob, blob_len, 4, 1, 100,
						point, &why),
			 0);
	ck_assert_uint_eq(point->executed_ops, 57);
	ck_assert_uint_eq(point->committed_blocks, 12);
	ck_assert_uint_eq(point->height, 12);
	ck_assert_uint_eq(point->block.view, 15);
	ck_assert(!memcmp(point->digest, digest, 32));
	ck_assert_uint_eq(point->qc.view, 15);
	ck_assert_uint_eq(point->qc.count, 3);
	ck_assert_uint_eq(point->clients_len, cw.len);
	/* the activity record comes back as written */
	ck_assert_ptr_nonnull(point->activity);
	root = calloc(1, sizeof(*root));
	ck_assert_ptr_nonnull(root);
	oskr__hs_activity_get(point->activity, 4, root);
	ck_assert(!memcmp(root->since_active, b->since_active,
			  4 * sizeof(b->since_active[0])));
	ck_assert(!memcmp(root->since_failed, b->since_failed,
			  4 * sizeof(b->since_failed[0])));
	ck_assert(!memcmp(root->fail_streak, b->fail_streak, 4));
	free(root);
	/* a fail streak over the cap (the leader rule shifts by it) */
	copy = malloc(blob_len);
	memcpy(copy, blob, blob_len);
	copy[blob_len - 1] = OSKR__HS_FAIL_STREAK_CAP + 1;
	ck_assert_int_ne(oskr__hs_resume_decode(copy, blob_len, 4, 1, 100,
						point, &why),
			 0);
	ck_assert_ptr_nonnull(strstr(why, "activity"));
	free(copy);
	/* a version-1 blob (before the record) is still accepted, the
	 * record unknown: durable.c then marks the history unknown */
	ck_assert_int_eq(oskr__hs_resume_encode(4, 1, 57, 12, b, false,
						qc_raw, qw.len, clients,
						cw.len, &copy, &old_len),
			 0);
	ck_assert_uint_eq(old_len, blob_len - oskr__hs_activity_len(4));
	ck_assert_uint_eq(copy[4], 1);
	ck_assert_int_eq(oskr__hs_resume_decode(copy, old_len, 4, 1, 100,
						point, &why),
			 0);
	ck_assert_ptr_null(point->activity);
	ck_assert_uint_eq(point->clients_len, cw.len);
	/* ... but not with a record appended, nor a version 2 without */
	ck_assert_int_ne(oskr__hs_resume_decode(blob, blob_len - 1, 4, 1, 100,
						point, &why),
			 0);
	copy[4] = 2;
	ck_assert_int_ne(oskr__hs_resume_decode(copy, old_len, 4, 1, 100,
						point, &why),
			 0);
	free(copy);

	/* another cluster shape; a client table over client_table_size */
	ck_assert_int_ne(oskr__hs_resume_decode(blob, blob_len, 7, 2, 100,
						point, &why),
			 0);
	ck_assert_ptr_nonnull(strstr(why, "shape"));
	ck_assert_int_ne(oskr__hs_resume_decode(blob, blob_len, 4, 1, 1, point,
						&why),
			 0);
	/* every truncation is refused; a flipped byte never crashes */
	for (size_t len = 0; len < blob_len; len++) {
		why = NULL;
		ck_assert_msg(oskr__hs_resume_decode(blob, len, 4, 1, 100, point,
						     &why) != 0,
			      "accepted a blob cut at %zu of %zu", len,
			      blob_len);
		ck_assert_ptr_nonnull(why);
	}
	copy = malloc(blob_len);
	for (size_t i = 0; i < blob_len; i++) {
		memcpy(copy, blob, blob_len);
		copy[i] ^= 0xff;
		oskr__hs_resume_decode(copy, blob_len, 4, 1, 100, point, &why);
	}
	/* the QC must name the stored block: flip a byte of the stored
	 * digest (after magic, version, n, f, ops, blocks, height) */
	memcpy(copy, blob, blob_len);
	copy[4 + 2 + 2 + 2 + 8 + 8 + 8] ^= 1;
	ck_assert_int_ne(oskr__hs_resume_decode(copy, blob_len, 4, 1, 100,
						point, &why),
			 0);
	ck_assert_ptr_nonnull(strstr(why, "QC"));
	free(copy);
	free(blob);
	free(b);
	free(point);
}
END_TEST

/* ---- sim runs ---- */

START_TEST(test_no_faults_block_size_1)
{
	struct oskr_sim *sim = make_sim(4, 1, 4, 1, FAST_OPTIONS "block_size: 1\n");
	uint64_t views_before, proposals_before;

	run_all(sim, 300, 10 * SEC);
	assert_safe(sim);
	/* The tail commits through empty blocks once load stops ... */
	oskr_sim_run_for(sim, 200 * MS);
	assert_all_executed(sim, 4, 300);
	ck_assert_uint_eq(counter_sum(sim, 4, "safety_violations"), 0);
	/* ... and an idle cluster does not churn through views. */
	views_before = counter_sum(sim, 4, OSKR_COUNTER_VIEW_CHANGES);
	proposals_before = counter_sum(sim, 4, "proposals");
	oskr_sim_run_for(sim, 2 * SEC);
	ck_assert_uint_eq(counter_sum(sim, 4, OSKR_COUNTER_VIEW_CHANGES),
			  views_before);
	ck_assert_uint_eq(counter_sum(sim, 4, "proposals"), proposals_before);
	assert_safe(sim);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_no_faults_block_size_100)
{
	struct oskr_sim *sim =
		make_sim(4, 1, 64, 2, FAST_OPTIONS "block_size: 100\n");
	uint64_t proposals;

	run_all(sim, 5000, 20 * SEC);
	oskr_sim_run_for(sim, 200 * MS);
	assert_safe(sim);
	assert_all_executed(sim, 4, 5000);
	/* Batching happened: far fewer blocks than requests. */
	proposals = counter_sum(sim, 4, "proposals");
	ck_assert_msg(proposals < 5000 / 4, "%llu proposals for 5000 requests",
		      (unsigned long long)proposals);
	ck_assert_uint_eq(counter_sum(sim, 4, OSKR_COUNTER_VIEW_CHANGES), 0);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_fixed_batch_not_adaptive)
{
	/* Fixed block size with fewer clients than block_size: blocks never
	 * fill, the batch timeout must still get them proposed. */
	struct oskr_sim *sim = make_sim(4, 1, 8, 3,
					FAST_OPTIONS "block_size: 50\n"
						     "adaptive: false\n"
						     "batch_timeout_ms: 1\n");

	run_all(sim, 400, 20 * SEC);
	oskr_sim_run_for(sim, 200 * MS);
	assert_safe(sim);
	assert_all_executed(sim, 4, 400);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_drop_and_reorder)
{
	struct oskr_sim *sim = make_sim(4, 1, 16, 4, FAST_OPTIONS);

	oskr_sim_set_drop_rate(sim, 0.10);
	/* A wide delay spread reorders messages. */
	oskr_sim_set_delay(sim, 10000, 2 * MS);
	run_all(sim, 600, 120 * SEC);
	assert_safe(sim);
	oskr_sim_set_drop_rate(sim, 0);
	oskr_sim_run_for(sim, 2 * SEC);
	assert_safe(sim);
	/* Every replica converges (missed blocks are fetched). */
	assert_all_executed(sim, 4, 600);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_crashed_replica)
{
	struct oskr_sim *sim = make_sim(4, 1, 8, 5, FAST_OPTIONS);

	run_all(sim, 100, 10 * SEC);
	/* Replica 3 leads every view = 3 mod 4: those views time out and
	 * the next leader takes over with the NEW-VIEWs. */
	oskr_sim_crash(sim, 3);
	run_all(sim, 500, 120 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	assert_safe(sim);
	assert_all_executed(sim, 4, 600);
	ck_assert_uint_gt(counter_sum(sim, 3, OSKR_COUNTER_VIEW_CHANGES), 0);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_seven_replicas_two_crashed)
{
	/* n = 7, f = 2: quorum 5 with two leaders out of seven dead. */
	struct oskr_sim *sim = make_sim(7, 2, 8, 13, FAST_OPTIONS);

	run_all(sim, 100, 10 * SEC);
	oskr_sim_crash(sim, 2);
	oskr_sim_crash(sim, 5);
	run_all(sim, 300, 120 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	assert_safe(sim);
	assert_all_executed(sim, 7, 400);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_small_messages)
{
	/* A small transport MTU: blocks are cut by size, not by count, and
	 * QCs, NEW-VIEWs and fetch answers still fit. */
	struct oskr_sim_config c = {
		.plugin = plugin,
		.replica_count = 4,
		.fault_count = 1,
		.client_count = 32,
		.seed = 14 + seed_offset,
		.protocol_options = FAST_OPTIONS "block_size: 100\n",
		.max_message = 1400,
	};
	struct oskr_sim *sim = NULL;

	ck_assert_int_eq(oskr_sim_create(&sim, &c), 0);
	oskr_sim_set_drop_rate(sim, 0.05);
	run_all(sim, 1000, 120 * SEC);
	oskr_sim_set_drop_rate(sim, 0);
	oskr_sim_run_for(sim, 2 * SEC);
	assert_safe(sim);
	assert_all_executed(sim, 4, 1000);
	ck_assert_uint_eq(counter_sum(sim, 4, "drop_request_too_large"), 0);
	oskr_sim_destroy(sim);
}
END_TEST

/* Byzantine leader: replica 1 sends one block to replicas 0 and 1 and a
 * different block at the same height and view to replicas 2 and 3. */
struct equivocation {
	struct oskr_sim *sim;
	uint32_t replica;
	uint64_t rewrites;
};

static bool equivocate(void *arg, int32_t src, int32_t dst, uint8_t *data,
		       uint32_t *len, uint32_t capacity)
{
	struct equivocation *eq = arg;
	static struct oskr__hs_proposal_ref p;
	static uint8_t out[70000];
	struct oskr__hs_writer w;
	uint8_t digest[32], payload[OSKR__HS_PROPOSAL_PAYLOAD];
	uint8_t sig[OSKR_SIGNATURE_MAX], addr[OSKR_ADDR_SIZE] = { 0 };
	size_t count_offset, block_len, sig_len = 0;
	const struct oskr__hs_block_ref *b = &p.block;

	if (src != (int32_t)eq->replica || (dst != 2 && dst != 3))
		return true;
	if (oskr__hs_peek_type(data, *len) != OSKR__HS_MSG_PROPOSAL ||
	    !oskr__hs_decode_proposal(data, *len, &p))
		return true;
	oskr__hs_writer_init(&w, out, sizeof(out));
	oskr__hs_put_header(&w, OSKR__HS_MSG_PROPOSAL);
	oskr__hs_put_u32(&w, 0);
	count_offset = oskr__hs_put_block_head(&w, b->parent, b->height,
					       b->view, b->proposer,
					       b->justify.raw,
					       b->justify.raw_len);
	if (b->request_count == 0) {
		/* A request of a client that does not exist. */
		oskr__hs_put_request(&w, 0xbadull, b->view, addr, "evil", 4);
		oskr__hs_patch_u32(&w, count_offset, 1);
	}
	block_len = w.len - 8;
	oskr__hs_patch_u32(&w, 4, (uint32_t)block_len);
	sha256(out + 8, block_len, digest);
	oskr__hs_proposal_payload(payload, b->view, digest);
	ck_assert_int_eq(oskr_sim_sign_as(eq->sim, eq->replica, payload,
					  sizeof(payload), sig, &sig_len),
			 0);
	oskr__hs_put_u8(&w, (uint8_t)sig_len);
	oskr__hs_put_bytes(&w, sig, sig_len);
	ck_assert(!w.overflow && w.len <= capacity);
	memcpy(data, out, w.len);
	*len = (uint32_t)w.len;
	eq->rewrites++;
	return true;
}

START_TEST(test_byzantine_leader_equivocates)
{
	struct oskr_sim *sim = make_sim(4, 1, 8, 6, FAST_OPTIONS);
	struct equivocation eq = { .sim = sim, .replica = 1 };

	oskr_sim_set_byzantine(sim, 1, true);
	oskr_sim_set_filter(sim, equivocate, &eq);
	run_all(sim, 400, 120 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	assert_safe(sim);
	ck_assert_uint_gt(eq.rewrites, 0);
	/* The correct replicas agree on one sequence (no fork committed)
	 * and every request completed. */
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), oskr_sim_executed(sim, 2));
	ck_assert_uint_eq(oskr_sim_executed(sim, 2), oskr_sim_executed(sim, 3));
	ck_assert_uint_eq(counter_sum(sim, 4, "safety_violations"), 0);
	oskr_sim_destroy(sim);
}
END_TEST

/* A NEW-VIEW from replica 1 (validly signed by it) whose QC is bad in
 * the way @p kind says; injected into replica 0. */
enum bad_qc { QC_TOO_FEW, QC_DUPLICATE, QC_BAD_SIGNATURE, QC_BAD_SIGNER };

static void inject_bad_qc(struct oskr_sim *sim, enum bad_qc kind)
{
	uint8_t buf[2048], qc_raw[1024], payload[OSKR__HS_VOTE_PAYLOAD];
	uint8_t digest[32], sigs_store[4][OSKR_SIGNATURE_MAX];
	const uint8_t *sigs[4];
	uint8_t sig_lens[4];
	uint16_t signers[4] = { 1, 2, 3, 0 };
	uint16_t count = 3;
	struct oskr__hs_writer w, qw;
	uint8_t sig[OSKR_SIGNATURE_MAX];
	size_t sig_len = 0;

	memset(digest, 0x5a, sizeof(digest));
	oskr__hs_vote_payload(payload, 7, digest);
	if (kind == QC_TOO_FEW)
		count = 2;
	if (kind == QC_DUPLICATE)
		signers[1] = 1;
	for (unsigned i = 0; i < count; i++) {
		size_t len = 0;
		uint32_t signer = signers[i] < 4 ? signers[i] : 0;

		ck_assert_int_eq(oskr_sim_sign_as(sim, signer, payload,
						  sizeof(payload),
						  sigs_store[i], &len),
				 0);
		sigs[i] = sigs_store[i];
		sig_lens[i] = (uint8_t)len;
	}
	if (kind == QC_BAD_SIGNATURE)
		sigs_store[2][0] ^= 0x01;
	if (kind == QC_BAD_SIGNER)
		signers[2] = 9;
	oskr__hs_writer_init(&qw, qc_raw, sizeof(qc_raw));
	oskr__hs_put_qc(&qw, 7, digest, count, signers, sigs, sig_lens);
	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_NEW_VIEW);
	oskr__hs_put_u16(&w, 1);
	oskr__hs_put_u64(&w, 8);
	oskr__hs_put_bytes(&w, qc_raw, qw.len);
	oskr__hs_put_u8(&w, 0);
	ck_assert_int_eq(oskr_sim_sign_as(sim, 1, buf, w.len, sig, &sig_len), 0);
	oskr__hs_put_u8(&w, (uint8_t)sig_len);
	oskr__hs_put_bytes(&w, sig, sig_len);
	ck_assert(!w.overflow);
	ck_assert_int_eq(oskr_sim_inject(sim, 1, 0, buf, w.len), 0);
}

START_TEST(test_invalid_qcs_rejected)
{
	struct oskr_sim *sim = make_sim(4, 1, 4, 7, FAST_OPTIONS);
	static const struct {
		enum bad_qc kind;
		const char *counter;
	} cases[] = {
		{ QC_TOO_FEW, "drop_qc_too_few" },
		{ QC_DUPLICATE, "drop_qc_duplicate_signer" },
		{ QC_BAD_SIGNATURE, "drop_qc_bad_signature" },
		{ QC_BAD_SIGNER, "drop_qc_bad_signer" },
	};
	uint8_t junk[64];

	run_all(sim, 50, 10 * SEC);
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t before = oskr_sim_counter(sim, 0, cases[i].counter);

		inject_bad_qc(sim, cases[i].kind);
		oskr_sim_run_for(sim, 10 * MS);
		ck_assert_msg(oskr_sim_counter(sim, 0, cases[i].counter) ==
				      before + 1,
			      "%s not counted", cases[i].counter);
	}
	/* The forged QCs changed nothing: replica 0 neither took the fake
	 * block as certified nor went looking for it. */
	{
		struct oskr__hs_replica *rs = state_of(sim, 0);
		uint8_t fake[32];

		memset(fake, 0x5a, sizeof(fake));
		ck_assert(memcmp(rs->qc_high.digest, fake, 32));
		for (unsigned i = 0; i < OSKR__HS_MISSING_MAX; i++)
			ck_assert(!rs->missing[i].used ||
				  memcmp(rs->missing[i].digest, fake, 32));
		for (unsigned i = 0; i < OSKR__HS_WAITING_QCS; i++)
			ck_assert(!rs->waiting_qcs[i] ||
				  memcmp(rs->waiting_qcs[i]->digest, fake, 32));
	}
	/* Garbage and truncated messages are dropped and counted. */
	memset(junk, 0x42, sizeof(junk));
	ck_assert_int_eq(oskr_sim_inject(sim, 2, 0, junk, sizeof(junk)), 0);
	ck_assert_int_eq(oskr_sim_inject(sim, 2, 0, junk, 1), 0);
	oskr_sim_run_for(sim, 10 * MS);
	ck_assert_uint_ge(oskr_sim_counter(sim, 0, "drop_malformed"), 2);
	run_all(sim, 50, 10 * SEC);
	oskr_sim_run_for(sim, 100 * MS);
	assert_safe(sim);
	assert_all_executed(sim, 4, 100);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_lagging_replica_catches_up)
{
	struct oskr_sim *sim = make_sim(4, 1, 16, 8, FAST_OPTIONS);

	run_all(sim, 100, 10 * SEC);
	/* Replica 3 is cut off from the other replicas (clients still reach
	 * it) while 0, 1, 2 -- exactly n - f -- go on. */
	oskr_sim_partition(sim, 0x7, false);
	run_all(sim, 800, 120 * SEC);
	ck_assert_uint_lt(oskr_sim_executed(sim, 3), 900);
	oskr_sim_heal(sim);
	run_all(sim, 200, 120 * SEC);
	oskr_sim_run_for(sim, 2 * SEC);
	assert_safe(sim);
	assert_all_executed(sim, 4, 1100);
	ck_assert_uint_gt(oskr_sim_counter(sim, 3, "fetches_received"), 0);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_memory_bounded_by_pruning)
{
	const uint32_t clients = 100;
	struct oskr_sim *sim = make_sim(4, 1, clients, 9,
					FAST_OPTIONS "block_size: 100\n"
						     "retain_blocks: 64\n");
	uint64_t max_blocks = 0, max_buffers = 0, max_bytes = 0;

	for (int round = 0; round < 10; round++) {
		run_all(sim, 10000, 600 * SEC);
		for (uint32_t r = 0; r < 4; r++) {
			struct oskr__hs_replica *rs = state_of(sim, r);
			uint64_t blocks = rs->store.connected_count +
					  rs->store.orphan_count;

			if (blocks > max_blocks)
				max_blocks = blocks;
			if (rs->store.bytes > max_bytes)
				max_bytes = rs->store.bytes;
			ck_assert_uint_le(rs->requests.pending_count, clients);
			ck_assert_uint_le(rs->requests.client_count, clients);
		}
		if (oskr_sim_live_buffers(sim) > max_buffers)
			max_buffers = oskr_sim_live_buffers(sim);
	}
	oskr_sim_run_for(sim, 200 * MS);
	assert_safe(sim);
	assert_all_executed(sim, 4, 100000);
	/* retain_blocks + prune slack + the uncommitted tail */
	ck_assert_msg(max_blocks <= 64 + 64 / 4 + 16 + 16,
		      "block store grew to %llu blocks",
		      (unsigned long long)max_blocks);
	ck_assert_msg(max_buffers < 4 * clients * 4,
		      "%llu live buffers", (unsigned long long)max_buffers);
	ck_assert_uint_gt(counter_sum(sim, 4, "prunes"), 0);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_real_signatures)
{
	struct oskr_sim_config c = {
		.plugin = plugin,
		.replica_count = 4,
		.fault_count = 1,
		.client_count = 2,
		.seed = 10 + seed_offset,
		.protocol_options = FAST_OPTIONS,
		.real_signatures = true,
	};
	struct oskr_sim *sim = NULL;

	ck_assert_int_eq(oskr_sim_create(&sim, &c), 0);
	run_all(sim, 20, 10 * SEC);
	oskr_sim_run_for(sim, 100 * MS);
	assert_safe(sim);
	assert_all_executed(sim, 4, 20);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_options_validated)
{
	static const char *const bad[] = {
		"block_size: 0\n",
		"blok_size: 10\n",
		"adaptive: maybe\n",
		"view_timeout_ms: 0\n",
		"backoff: 100\n",
		"leader_reputation: sometimes\n",
		"reputation_window: 0\n",
		"round_robin_every: 0\n",
	};

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct oskr_sim_config c = {
			.plugin = plugin,
			.replica_count = 4,
			.fault_count = 1,
			.client_count = 1,
			.seed = 11,
			.protocol_options = bad[i],
		};
		struct oskr_sim *sim = NULL;

		ck_assert_msg(oskr_sim_create(&sim, &c) != 0,
			      "accepted options: %s", bad[i]);
	}
	/* n < 3f + 1 is refused. */
	{
		struct oskr_sim_config c = {
			.plugin = plugin,
			.replica_count = 3,
			.fault_count = 1,
			.client_count = 1,
			.seed = 12,
		};
		struct oskr_sim *sim = NULL;

		ck_assert(oskr_sim_create(&sim, &c) != 0);
	}
}
END_TEST

/* ---- leader rotation (docs/hotstuff.md, "Leader rotation") ---- */

#define REPUTATION_WINDOW 8
#define ROUND_ROBIN_EVERY 16
#define REPUTATION_OPTIONS                                              \
	FAST_OPTIONS "reputation_window: 8\nround_robin_every: 16\n"
#define ROUND_ROBIN_OPTIONS FAST_OPTIONS "leader_reputation: false\n"

struct crash_run {
	uint64_t timeouts; /* max over replicas 0..2 while 3 was down */
	uint64_t views; /* views replica 0 went through meanwhile */
};

/** 100 requests with all four up, crash replica 3, 600 more: count the
 *  view timeouts of the live replicas over the 600. */
static struct crash_run run_with_crashed_leader(const char *options,
						uint64_t seed)
{
	struct oskr_sim *sim = make_sim(4, 1, 8, seed, options);
	struct crash_run out = { 0 };
	uint64_t before[3], view0;

	run_all(sim, 100, 20 * SEC);
	oskr_sim_crash(sim, 3);
	for (uint32_t r = 0; r < 3; r++)
		before[r] = oskr_sim_counter(sim, (int32_t)r,
					     OSKR_COUNTER_VIEW_CHANGES);
	view0 = state_of(sim, 0)->cur_view;
	run_all(sim, 600, 300 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	assert_safe(sim);
	assert_all_executed(sim, 4, 700);
	for (uint32_t r = 0; r < 3; r++) {
		uint64_t t = oskr_sim_counter(sim, (int32_t)r,
					      OSKR_COUNTER_VIEW_CHANGES) -
			     before[r];

		if (t > out.timeouts)
			out.timeouts = t;
	}
	out.views = state_of(sim, 0)->cur_view - view0;
	ck_assert_uint_eq(counter_sum(sim, 4, "safety_violations"), 0);
	oskr_sim_destroy(sim);
	return out;
}

/*
 * One replica crashed: by reputation it leaves the active set once
 * reputation_window blocks pass without it, so it leads (and times out)
 * only until then, at most one view in n while in the set, plus its
 * round-robin views (one in round_robin_every * n). Round-robin times
 * out every n views. Counts, not timings: both runs commit the same 600
 * requests.
 */
START_TEST(test_reputation_skips_crashed_leader)
{
	struct crash_run rep = run_with_crashed_leader(REPUTATION_OPTIONS, 21);
	struct crash_run rr = run_with_crashed_leader(ROUND_ROBIN_OPTIONS, 21);
	uint64_t bound = REPUTATION_WINDOW / 2 + 2 +
			 rep.views / (ROUND_ROBIN_EVERY * 4) + 2;

	ck_assert_msg(rep.timeouts <= bound,
		      "reputation: %llu timeouts over %llu views (bound %llu)",
		      (unsigned long long)rep.timeouts,
		      (unsigned long long)rep.views,
		      (unsigned long long)bound);
	/* Round-robin: the dead replica leads every 4th view. */
	ck_assert_msg(rr.timeouts >= rr.views / 8,
		      "round-robin: %llu timeouts over %llu views",
		      (unsigned long long)rr.timeouts,
		      (unsigned long long)rr.views);
	ck_assert_uint_lt(rep.timeouts * 4, rr.timeouts);
}
END_TEST

static uint64_t blocks_since_active(struct oskr_sim *sim, uint32_t observer,
				    uint32_t r)
{
	return state_of(sim, observer)->b_leaf->since_active[r];
}

/*
 * The crashed replica restarts (empty: it fetches the chain) and leads
 * again within a bounded number of views: its round-robin view comes at
 * least once every round_robin_every * n views, and its votes in QCs
 * bring it back into the active set.
 */
START_TEST(test_reputation_restarted_replica_leads_again)
{
	struct oskr_sim *sim = make_sim(4, 1, 8, 22, REPUTATION_OPTIONS);
	uint64_t proposals, view0, views;
	unsigned rounds;

	run_all(sim, 100, 20 * SEC);
	oskr_sim_crash(sim, 3);
	run_all(sim, 300, 120 * SEC);
	/* Out of the active set on every live replica's chain. */
	for (uint32_t r = 0; r < 3; r++)
		ck_assert_uint_ge(blocks_since_active(sim, r, 3),
				  REPUTATION_WINDOW);
	ck_assert_int_eq(oskr_sim_restart(sim, 3), 0);
	proposals = oskr_sim_counter(sim, 3, "proposals");
	view0 = state_of(sim, 0)->cur_view;
	for (rounds = 0; rounds < 50; rounds++) {
		if (oskr_sim_counter(sim, 3, "proposals") > proposals)
			break;
		run_all(sim, 8, 20 * SEC);
	}
	views = state_of(sim, 0)->cur_view - view0;
	ck_assert_msg(oskr_sim_counter(sim, 3, "proposals") > proposals,
		      "replica 3 never proposed in %llu views",
		      (unsigned long long)views);
	/* Catching up (fetching ~400 blocks) plus one round-robin period
	 * for its turn; the rounds of 8 requests add a few views each. */
	ck_assert_msg(views <= 2 * ROUND_ROBIN_EVERY * 4 + 32,
		      "replica 3 proposed only after %llu views",
		      (unsigned long long)views);
	/* It stays in: active again on every replica's chain. */
	run_all(sim, 200, 60 * SEC);
	for (uint32_t r = 0; r < 4; r++)
		ck_assert_uint_lt(blocks_since_active(sim, r, 3),
				  REPUTATION_WINDOW);
	oskr_sim_run_for(sim, 1 * SEC);
	assert_safe(sim);
	ck_assert_uint_eq(oskr_sim_executed(sim, 3),
			  oskr_sim_executed(sim, 0));
	ck_assert_uint_eq(counter_sum(sim, 4, "safety_violations"), 0);
	oskr_sim_destroy(sim);
}
END_TEST

/* Drop every message of type @p type sent by replica @p replica. */
struct silence {
	int32_t replica;
	enum oskr__hs_msg_type type[2];
	uint64_t dropped;
};

static bool silence_filter(void *arg, int32_t src, int32_t dst, uint8_t *data,
			   uint32_t *len, uint32_t capacity)
{
	struct silence *sl = arg;
	int type = oskr__hs_peek_type(data, *len);

	if (src != sl->replica || OSKR_SIM_IS_CLIENT(dst) ||
	    (type != (int)sl->type[0] && type != (int)sl->type[1]))
		return true;
	sl->dropped++;
	return false;
}

/*
 * The restarted replica's votes never reach anyone, so it cannot re-enter
 * the active set by signing QCs: its round-robin views (one in
 * round_robin_every * n) alone bring it back, and then it stays.
 */
START_TEST(test_reputation_round_robin_view_readmits)
{
	struct oskr_sim *sim = make_sim(4, 1, 8, 25, REPUTATION_OPTIONS);
	struct silence sl = { .replica = 3,
			      .type = { OSKR__HS_MSG_VOTE,
					OSKR__HS_MSG_NEW_VIEW } };
	uint64_t proposals, view0, views, streak;

	run_all(sim, 100, 20 * SEC);
	oskr_sim_crash(sim, 3);
	run_all(sim, 200, 120 * SEC);
	ck_assert_uint_ge(blocks_since_active(sim, 0, 3), REPUTATION_WINDOW);
	/* Its round-robin views failed while it was down: they are spaced
	 * out (one in 2^streak). */
	streak = state_of(sim, 0)->qc_high_node->fail_streak[3];
	ck_assert_uint_ge(streak, 1);
	ck_assert_int_eq(oskr_sim_restart(sim, 3), 0);
	oskr_sim_set_filter(sim, silence_filter, &sl);
	proposals = oskr_sim_counter(sim, 3, "proposals");
	view0 = state_of(sim, 0)->cur_view;
	for (unsigned rounds = 0; rounds < 100; rounds++) {
		if (oskr_sim_counter(sim, 3, "proposals") > proposals)
			break;
		run_all(sim, 8, 20 * SEC);
	}
	views = state_of(sim, 0)->cur_view - view0;
	ck_assert_msg(oskr_sim_counter(sim, 3, "proposals") > proposals,
		      "replica 3 never proposed in %llu views",
		      (unsigned long long)views);
	/* Catching up takes a few views; then its round-robin view comes
	 * within 2^streak * round_robin_every * n views. */
	ck_assert_msg(views <= ((uint64_t)ROUND_ROBIN_EVERY * 4 << streak) + 32,
		      "replica 3 proposed only after %llu views",
		      (unsigned long long)views);
	ck_assert_uint_gt(sl.dropped, 0);
	oskr_sim_set_filter(sim, NULL, NULL);
	run_all(sim, 100, 60 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	assert_safe(sim);
	assert_all_executed(sim, 4, oskr_sim_executed(sim, 0));
	oskr_sim_destroy(sim);
}
END_TEST

/** Replica 1 votes but its proposals never leave it (Byzantine or
 *  half-broken): max view timeouts of the others over 600 requests. */
static uint64_t silent_leader_timeouts(const char *options, uint64_t seed)
{
	struct oskr_sim *sim = make_sim(4, 1, 8, seed, options);
	struct silence sl = { .replica = 1,
			      .type = { OSKR__HS_MSG_PROPOSAL,
					OSKR__HS_MSG_PROPOSAL } };
	uint64_t most = 0;

	oskr_sim_set_byzantine(sim, 1, true);
	oskr_sim_set_filter(sim, silence_filter, &sl);
	run_all(sim, 600, 300 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	assert_safe(sim);
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), oskr_sim_executed(sim, 2));
	ck_assert_uint_eq(oskr_sim_executed(sim, 2), oskr_sim_executed(sim, 3));
	for (uint32_t r = 0; r < 4; r++) {
		uint64_t t;

		if (r == 1)
			continue;
		t = oskr_sim_counter(sim, (int32_t)r,
				     OSKR_COUNTER_VIEW_CHANGES);
		if (t > most)
			most = t;
	}
	oskr_sim_destroy(sim);
	return most;
}

/*
 * A replica that stays active (it votes) but whose turns as leader fail:
 * each failure excludes it for reputation_window blocks, so it costs a
 * timeout about once per window, where round-robin pays one every n views.
 */
START_TEST(test_reputation_excludes_failing_leader)
{
	uint64_t rep = silent_leader_timeouts(REPUTATION_OPTIONS, 26);
	uint64_t rr = silent_leader_timeouts(ROUND_ROBIN_OPTIONS, 26);

	ck_assert_msg(rep * 2 < rr,
		      "reputation %llu timeouts, round-robin %llu",
		      (unsigned long long)rep, (unsigned long long)rr);
}
END_TEST

/* Safety and progress with reputation under drops, reordering and a
 * crash in the middle (the leader sets of replicas may then differ for a
 * while: only liveness may suffer, and it recovers). */
START_TEST(test_reputation_drops_reorder_crash)
{
	struct oskr_sim *sim = make_sim(4, 1, 16, 23, REPUTATION_OPTIONS);

	oskr_sim_set_drop_rate(sim, 0.05);
	oskr_sim_set_delay(sim, 10000, 2 * MS);
	run_all(sim, 300, 120 * SEC);
	oskr_sim_crash(sim, 2);
	run_all(sim, 300, 120 * SEC);
	assert_safe(sim);
	oskr_sim_set_drop_rate(sim, 0);
	oskr_sim_run_for(sim, 2 * SEC);
	assert_safe(sim);
	assert_all_executed(sim, 4, 600);
	ck_assert_uint_eq(counter_sum(sim, 4, "safety_violations"), 0);
	oskr_sim_destroy(sim);
}
END_TEST

/* Plain round-robin stays available and correct. */
START_TEST(test_round_robin_crashed_replica)
{
	struct crash_run rr = run_with_crashed_leader(ROUND_ROBIN_OPTIONS, 24);

	ck_assert_uint_gt(rr.timeouts, 0);
}
END_TEST

/* ---- durable checkpoints (ABI 1.1: checkpoint_stable / _resume) ---- */

#define DURABLE_OPTIONS FAST_OPTIONS "checkpoint_interval: 10\n"

static struct oskr_sim *make_kv_sim(uint32_t clients, uint64_t seed)
{
	struct oskr_sim_config c = {
		.plugin = plugin,
		.replica_count = 4,
		.fault_count = 1,
		.client_count = clients,
		.seed = seed + seed_offset,
		.protocol_options = DURABLE_OPTIONS,
		.app = "kv",
	};
	struct oskr_sim *sim = NULL;

	ck_assert_int_eq(oskr_sim_create(&sim, &c), 0);
	return sim;
}

/* Replica @p r resumed at its checkpoint at op @p op: the checkpoint block
 * is the root of its tree (executed, locked, certified) and the sim's
 * execution record starts there, not at 0. */
static void assert_resumed_at(struct oskr_sim *sim, uint32_t r, uint64_t op)
{
	struct oskr__hs_replica *st = state_of(sim, r);

	ck_assert_uint_eq(oskr_sim_counter(sim, (int32_t)r,
					   "checkpoint_resumes"),
			  1);
	ck_assert_uint_eq(st->executed_ops, op);
	ck_assert_uint_eq(oskr_sim_executed(sim, r), op);
	ck_assert_uint_gt(st->b_exec->height, 0);
	ck_assert_ptr_null(st->b_exec->parent);
	ck_assert(st->b_exec->executed);
	ck_assert_ptr_eq(st->b_lock, st->b_exec);
	ck_assert_ptr_eq(st->qc_high_node, st->b_exec);
	ck_assert_uint_eq(st->qc_high.view, st->b_exec->view);
	ck_assert_uint_eq(st->cur_view, st->b_exec->view + 1);
	ck_assert_uint_gt(st->requests.client_count, 0);
	ck_assert_uint_eq(st->store.connected_count, 1);
}

START_TEST(test_resume_one_replica_from_checkpoint)
{
	struct oskr_sim *sim = make_kv_sim(4, 41);
	uint64_t op = 0, count = 0;

	run_all(sim, 200, 20 * SEC);
	ck_assert(oskr_sim_last_checkpoint(sim, 2, &op, &count));
	ck_assert_uint_ge(count, 5);
	ck_assert_uint_ge(op, 150);
	oskr_sim_crash(sim, 2);
	run_all(sim, 200, 20 * SEC);
	ck_assert_int_eq(oskr_sim_restart_from_checkpoint(sim, 2), 0);
	assert_resumed_at(sim, 2, op);
	/* It fetches the blocks above its root (not below: fetching stops
	 * there), executes only those, and takes part again. A block at or
	 * below the root executed again would show as a divergence in the
	 * sim's execution record (see the next test but one). */
	run_all(sim, 200, 20 * SEC);
	oskr_sim_run_for(sim, 2 * SEC);
	assert_safe(sim);
	assert_all_executed(sim, 4, 600);
	ck_assert_uint_eq(state_of(sim, 2)->executed_ops, 600);
	ck_assert_uint_gt(oskr_sim_counter(sim, 2, "fetches_received"), 0);
	/* it votes again: with replica 3 down, progress needs it */
	oskr_sim_crash(sim, 3);
	run_all(sim, 100, 20 * SEC);
	oskr_sim_run_for(sim, 2 * SEC);
	assert_safe(sim);
	assert_all_executed(sim, 4, 700);
	oskr_sim_destroy(sim);
}
END_TEST

/* Counts replies to one (client, request) with the expected result. */
struct reply_watch {
	uint64_t client_id, request_number;
	uint8_t result[256];
	uint32_t result_len;
	uint32_t matching, other;
};

static bool watch_replies(void *arg, int32_t src, int32_t dst, uint8_t *data,
			  uint32_t *len, uint32_t capacity)
{
	struct reply_watch *watch = arg;
	struct oskr__hs_reply_ref m;

	if (src < 0 || oskr__hs_peek_type(data, *len) != OSKR__HS_MSG_REPLY ||
	    !oskr__hs_decode_reply(data, *len, &m))
		return true;
	if (m.client_id == watch->client_id &&
	    m.request_number == watch->request_number &&
	    m.result_len == watch->result_len &&
	    !memcmp(m.result, watch->result, m.result_len))
		watch->matching++;
	else
		watch->other++;
	return true;
}

START_TEST(test_resume_whole_cluster_from_checkpoint)
{
	struct oskr_sim *sim = make_kv_sim(4, 42);
	struct oskr__hs_client_entry *e;
	struct reply_watch watch = { 0 };
	struct oskr__hs_writer w;
	uint8_t request[64];
	uint64_t op = 0, executed[4];

	/* With no faults every replica executes all 200 ops and the last
	 * checkpoint of each is the block that reached op 200. */
	run_all(sim, 200, 20 * SEC);
	oskr_sim_run_for(sim, 2 * SEC);
	assert_all_executed(sim, 4, 200);
	for (uint32_t r = 0; r < 4; r++) {
		ck_assert(oskr_sim_last_checkpoint(sim, r, &op, NULL));
		ck_assert_uint_eq(op, 200);
	}
	for (uint32_t r = 0; r < 4; r++)
		oskr_sim_crash(sim, r);
	for (uint32_t r = 0; r < 4; r++) {
		ck_assert_int_eq(oskr_sim_restart_from_checkpoint(sim, r), 0);
		assert_resumed_at(sim, r, 200);
	}
	ck_assert(!memcmp(state_of(sim, 0)->b_exec->digest,
			  state_of(sim, 3)->b_exec->digest, OSKR__HS_DIGEST));

	/* Exactly-once across the restart: a retransmission of a request
	 * executed before it is answered from the restored client table. */
	e = state_of(sim, 0)->requests.lru.lru_next;
	ck_assert_ptr_nonnull(e->result);
	ck_assert_uint_le(e->result_len, sizeof(watch.result));
	watch.client_id = e->client_id;
	watch.request_number = e->last_request_number;
	watch.result_len = e->result_len;
	memcpy(watch.result, e->result, e->result_len);
	oskr__hs_writer_init(&w, request, sizeof(request));
	oskr__hs_put_header(&w, OSKR__HS_MSG_REQUEST);
	oskr__hs_put_u64(&w, e->client_id);
	oskr__hs_put_u64(&w, e->last_request_number);
	oskr__hs_put_u32(&w, 3);
	oskr__hs_put_bytes(&w, "old", 3);
	for (uint32_t r = 0; r < 4; r++)
		executed[r] = oskr_sim_executed(sim, r);
	oskr_sim_set_filter(sim, watch_replies, &watch);
	for (uint32_t r = 0; r < 4; r++)
		ck_assert_int_eq(oskr_sim_inject(sim, OSKR_SIM_CLIENT(0),
						 (int32_t)r, request, w.len),
				 0);
	oskr_sim_run_for(sim, 200 * MS);
	oskr_sim_set_filter(sim, NULL, NULL);
	ck_assert_uint_eq(watch.matching, 4);
	ck_assert_uint_eq(watch.other, 0);
	for (uint32_t r = 0; r < 4; r++)
		ck_assert_uint_eq(oskr_sim_executed(sim, r), executed[r]);

	/* The cluster goes on from the common root. */
	run_all(sim, 100, 20 * SEC);
	oskr_sim_run_for(sim, 2 * SEC);
	assert_safe(sim);
	assert_all_executed(sim, 4, 300);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_refused_checkpoint_reexecutes_and_is_caught)
{
	/* The bug the resume point fixes, made visible: replica 2's
	 * protocol blob is corrupted, so it is refused (logged, counted)
	 * and the replica starts from genesis on top of the restored
	 * application -- as before durable checkpoints. It fetches the
	 * chain from genesis and executes blocks the restored state already
	 * holds: the sim's safety checker sees the execution record diverge.
	 * (Test of the checker: with a valid blob, the test above passes.) */
	struct oskr_sim *sim = make_kv_sim(4, 43);
	struct sim_checkpoint *disk;
	char why[512] = "";

	run_all(sim, 100, 20 * SEC);
	oskr_sim_crash(sim, 2);
	run_all(sim, 50, 20 * SEC);
	disk = &sim->nodes[2].checkpoint;
	ck_assert(disk->valid && disk->protocol_len > 0);
	disk->protocol[0] ^= 0x5a;
	ck_assert_int_eq(oskr_sim_restart_from_checkpoint(sim, 2), 0);
	ck_assert_uint_eq(oskr_sim_counter(sim, 2, "checkpoint_resume_refused"),
			  1);
	ck_assert_uint_eq(state_of(sim, 2)->executed_ops, 0);
	ck_assert_uint_eq(state_of(sim, 2)->b_exec->height, 0);
	ck_assert(oskr_sim_check_safety(sim, why, sizeof(why)));
	run_all(sim, 50, 20 * SEC);
	oskr_sim_run_for(sim, 2 * SEC);
	ck_assert(!oskr_sim_check_safety(sim, why, sizeof(why)));
	ck_assert_ptr_nonnull(strstr(why, "different sequences"));
	oskr_sim_destroy(sim);
}
END_TEST

/* ---- state transfer (transfer.c) ---- */

/* Small retain_blocks so that a replica falls behind what peers keep in
 * a few hundred requests; frequent checkpoints so there is one to send. */
#define TRANSFER_OPTIONS                                                \
	FAST_OPTIONS "checkpoint_interval: 10\nretain_blocks: 16\n"

static struct oskr_sim *make_transfer_sim(uint32_t clients, uint64_t seed,
					  uint32_t max_message)
{
	struct oskr_sim_config c = {
		.plugin = plugin,
		.replica_count = 4,
		.fault_count = 1,
		.client_count = clients,
		.seed = seed + seed_offset,
		.protocol_options = TRANSFER_OPTIONS,
		.app = "kv",
		.max_message = max_message,
	};
	struct oskr_sim *sim = NULL;

	ck_assert_int_eq(oskr_sim_create(&sim, &c), 0);
	return sim;
}

/* The laggard's executed sequence now starts at the installed snapshot:
 * the root has no parent and it executed only what is above it. */
static void assert_transferred(struct oskr_sim *sim, uint32_t r)
{
	struct oskr__hs_replica *st = state_of(sim, r);

	ck_assert_uint_ge(oskr_sim_counter(sim, (int32_t)r, "state_transfers"),
			  1);
	ck_assert_uint_eq(oskr_sim_counter(sim, (int32_t)r,
					   "safety_violations"),
			  0);
	/* installed checkpoints are persisted and served in turn */
	ck_assert(st->served.valid);
	ck_assert_uint_ge(oskr_sim_counter(sim, (int32_t)r, "checkpoints"), 1);
}

struct transfer_watch {
	struct oskr_sim *sim;
	uint32_t replica;
};

static bool transferred(void *arg)
{
	struct transfer_watch *w = arg;

	return oskr_sim_counter(w->sim, (int32_t)w->replica,
				"state_transfers") > 0;
}

/* The plugin's functions are hidden in the .so: look a connected block
 * up by walking the store's list. */
static const struct oskr__hs_block *
find_connected(const struct oskr__hs_replica *rs,
	       const uint8_t digest[OSKR__HS_DIGEST])
{
	const struct oskr__hs_block *b;

	for (b = rs->store.connected.list_next; b != &rs->store.connected;
	     b = b->list_next)
		if (!memcmp(b->digest, digest, OSKR__HS_DIGEST))
			return b;
	return NULL;
}

/* Leader reputation after a root installed by transfer or resume: every
 * connected block replica @p r holds (the root and what it connected
 * above it) has the activity record that each live peer holding the same
 * block computed from the real chain. The leader of every view above a
 * block is a function of that record and the (shared) options alone
 * (pacemaker.c oskr__hs_leader), so they name the same leaders. Returns
 * how many (peer, block) pairs were compared; the root must be among
 * them. */
static uint32_t assert_same_records(struct oskr_sim *sim, uint32_t r)
{
	const struct oskr__hs_replica *mine = state_of(sim, r);
	const struct oskr__hs_block *b;
	uint32_t compared = 0;
	bool root_compared = false;

	for (b = mine->store.connected.list_next;
	     b != &mine->store.connected; b = b->list_next) {
		for (uint32_t p = 0; p < mine->n; p++) {
			const struct oskr__hs_block *theirs;

			if (p == r || oskr_sim_is_crashed(sim, p))
				continue;
			theirs = find_connected(state_of(sim, p), b->digest);
			if (!theirs || !theirs->parent)
				continue; /* not on their chain, or a root */
			compared++;
			if (!b->parent)
				root_compared = true;
			for (uint32_t q = 0; q < mine->n; q++)
				ck_assert_msg(
					b->since_active[q] ==
							theirs->since_active[q] &&
						b->since_failed[q] ==
							theirs->since_failed[q] &&
						b->fail_streak[q] ==
							theirs->fail_streak[q],
					"record of replica %u at height %llu: "
					"%u/%u/%u on replica %u, %u/%u/%u on "
					"replica %u",
					q, (unsigned long long)b->height,
					b->since_active[q], b->since_failed[q],
					b->fail_streak[q], r,
					theirs->since_active[q],
					theirs->since_failed[q],
					theirs->fail_streak[q], p);
		}
	}
	ck_assert_msg(root_compared, "no live peer holds replica %u's root", r);
	return compared;
}

START_TEST(test_transfer_after_partition)
{
	struct oskr_sim *sim = make_transfer_sim(4, 51, 0);
	struct transfer_watch watch = { .sim = sim, .replica = 3 };
	uint64_t persisted_before = 0, persisted = 0, op = 0;

	run_all(sim, 100, 20 * SEC);
	/* Replica 3 is cut off from the other replicas while 0, 1, 2 commit
	 * far more than retain_blocks (16) blocks: what it would need to
	 * fetch is pruned everywhere. */
	oskr_sim_partition(sim, 0x7, false);
	run_all(sim, 600, 60 * SEC);
	ck_assert_uint_gt(state_of(sim, 0)->b_exec->height,
			  state_of(sim, 3)->b_exec->height + 16 + 20);
	ck_assert_uint_eq(oskr_sim_counter(sim, 3, "state_transfers"), 0);
	ck_assert(oskr_sim_last_checkpoint(sim, 3, NULL, &persisted_before));
	oskr_sim_heal(sim);
	/* No load: replica 3's view timer sends NEW-VIEWs, a peer answers
	 * with its newer QC (sync), the fetch of that block shows a block
	 * far above replica 3's root. */
	ck_assert(oskr_sim_run_until(sim, transferred, &watch, 10 * SEC));
	assert_same_records(sim, 3);
	/* The installed checkpoint was persisted in the same task, at the
	 * op the replica now holds. */
	ck_assert(oskr_sim_last_checkpoint(sim, 3, &op, &persisted));
	ck_assert_uint_gt(persisted, persisted_before);
	ck_assert_uint_eq(op, state_of(sim, 3)->served.vouch.id.executed_ops);
	ck_assert_uint_ge(op, 600);
	run_all(sim, 200, 60 * SEC);
	oskr_sim_run_for(sim, 2 * SEC);
	assert_safe(sim);
	assert_all_executed(sim, 4, 900);
	assert_transferred(sim, 3);
	ck_assert_uint_gt(oskr_sim_counter(sim, 3, "ckpt_chunks_received"), 0);
	/* It follows normally afterwards: with replica 0 down, progress
	 * needs its votes. */
	oskr_sim_crash(sim, 0);
	run_all(sim, 100, 60 * SEC);
	oskr_sim_run_for(sim, 2 * SEC);
	assert_safe(sim);
	assert_all_executed(sim, 4, 1000);
	oskr_sim_destroy(sim);
}
END_TEST

/* A replica resumed from its checkpoint while another replica is down
 * names the leaders the others name: the root's activity record comes
 * with the checkpoint (durable_codec.c, version 2). It used to be "history
 * unknown: everyone active, nobody failed" at the root, so the resumed
 * replica counted the dead replica 3 as a candidate leader where the
 * others did not; with replica 3 down every proposal needs all of 0, 1
 * and 2. */
START_TEST(test_resume_keeps_activity_record)
{
	struct oskr_sim *sim = make_kv_sim(4, 43);
	const struct oskr__hs_block *root;
	uint64_t op = 0;

	run_all(sim, 100, 20 * SEC);
	oskr_sim_crash(sim, 3);
	run_all(sim, 300, 60 * SEC);
	oskr_sim_crash(sim, 2);
	ck_assert(oskr_sim_last_checkpoint(sim, 2, &op, NULL));
	ck_assert_uint_gt(op, 100);
	ck_assert_int_eq(oskr_sim_restart_from_checkpoint(sim, 2), 0);
	assert_resumed_at(sim, 2, op);
	root = state_of(sim, 2)->b_exec;
	/* The chain says replica 3 was neither active nor leading lately
	 * (default reputation_window: 16 blocks) ... */
	ck_assert_uint_ge(root->since_active[3], 16);
	ck_assert_uint_gt(root->fail_streak[3], 0);
	/* ... and so does the resumed root, exactly as 0 and 1 hold it. */
	assert_same_records(sim, 2);
	run_all(sim, 200, 60 * SEC);
	oskr_sim_run_for(sim, 2 * SEC);
	assert_safe(sim);
	assert_all_executed(sim, 4, 600);
	assert_same_records(sim, 2);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_transfer_restarted_empty_small_frames)
{
	/* DPDK-sized frames: the kv state (hundreds of keys) takes many
	 * chunks. The replica restarts empty (no checkpoint of its own). */
	struct oskr_sim *sim = make_transfer_sim(4, 52, 1400);
	uint64_t chunks;

	run_all(sim, 100, 20 * SEC);
	oskr_sim_crash(sim, 2);
	run_all(sim, 600, 60 * SEC);
	ck_assert_int_eq(oskr_sim_restart(sim, 2), 0);
	run_all(sim, 200, 60 * SEC);
	oskr_sim_run_for(sim, 2 * SEC);
	assert_safe(sim);
	assert_all_executed(sim, 4, 900);
	assert_transferred(sim, 2);
	chunks = oskr_sim_counter(sim, 2, "ckpt_chunks_received");
	ck_assert_msg(chunks >= 10, "only %llu chunks",
		      (unsigned long long)chunks);
	oskr_sim_destroy(sim);
}
END_TEST

/* Whole-cluster crash; replica 3 crashed @p ahead requests earlier, so it
 * resumes at an older checkpoint than the others. */
static void whole_cluster_at_different_checkpoints(uint64_t seed,
						   uint64_t ahead,
						   const char *trigger)
{
	struct oskr_sim *sim = make_transfer_sim(4, seed, 0);
	uint64_t op3 = 0, op0 = 0;

	run_all(sim, 200, 20 * SEC);
	oskr_sim_crash(sim, 3);
	run_all(sim, ahead, 60 * SEC);
	for (uint32_t r = 0; r < 3; r++)
		oskr_sim_crash(sim, r);
	ck_assert(oskr_sim_last_checkpoint(sim, 3, &op3, NULL));
	ck_assert(oskr_sim_last_checkpoint(sim, 0, &op0, NULL));
	ck_assert_uint_gt(op0, op3);
	for (uint32_t r = 0; r < 4; r++)
		ck_assert_int_eq(oskr_sim_restart_from_checkpoint(sim, r), 0);
	ck_assert_uint_eq(state_of(sim, 3)->executed_ops, op3);
	ck_assert_uint_eq(state_of(sim, 0)->executed_ops, op0);
	/* The three at the newer root go on; replica 3 cannot link its
	 * root to their blocks and transfers their checkpoint. */
	run_all(sim, 100, 60 * SEC);
	oskr_sim_run_for(sim, 2 * SEC);
	assert_safe(sim);
	assert_transferred(sim, 3);
	if (trigger) /* counted by the peers */
		ck_assert_uint_gt(counter_sum(sim, 3, trigger), 0);
	ck_assert_uint_eq(oskr_sim_executed(sim, 3), oskr_sim_executed(sim, 0));
	ck_assert_uint_eq(state_of(sim, 3)->executed_ops,
			  state_of(sim, 0)->executed_ops);
	/* and it follows: with replica 1 down, progress needs it */
	oskr_sim_crash(sim, 1);
	run_all(sim, 100, 60 * SEC);
	oskr_sim_run_for(sim, 2 * SEC);
	assert_safe(sim);
	ck_assert_uint_eq(oskr_sim_executed(sim, 3), oskr_sim_executed(sim, 0));
	ck_assert_uint_ge(oskr_sim_executed(sim, 3), op0 + 200);
	oskr_sim_destroy(sim);
}

START_TEST(test_transfer_whole_cluster_far_apart)
{
	/* the others' root is far more than retain_blocks above */
	whole_cluster_at_different_checkpoints(53, 300, NULL);
}
END_TEST

START_TEST(test_transfer_whole_cluster_close)
{
	/* A few blocks apart: every block above the others' root is
	 * retained, but the root's parent is on no replica. A fetch of it
	 * misses; the peer answers with its checkpoint (an unsolicited
	 * OFFER), which proves the block is pruned there. */
	whole_cluster_at_different_checkpoints(56, 20, "fetch_misses");
}
END_TEST

/* Byzantine replica 0, as seen by the laggard (replica 3). */
enum liar { LIE_CHUNKS, LIE_VOUCH };

struct liar_filter {
	struct oskr_sim *sim;
	enum liar kind;
	uint32_t byzantine, laggard;
	uint32_t lies;
};

static bool lying_peer(void *arg, int32_t src, int32_t dst, uint8_t *data,
		       uint32_t *len, uint32_t capacity)
{
	struct liar_filter *lf = arg;
	uint8_t type = oskr__hs_peek_type(data, *len);

	if (src < 0 || dst != (int32_t)lf->laggard)
		return true;
	if (type == OSKR__HS_MSG_CKPT_OFFER && src != (int32_t)lf->byzantine) {
		/* The correct peers' full offers are lost: the Byzantine
		 * one's root is the candidate (their vouches still pass). */
		struct oskr__hs_ckpt_offer_ref m;

		return !oskr__hs_decode_ckpt_offer(data, *len, &m) ||
		       !m.has_block;
	}
	if (src != (int32_t)lf->byzantine)
		return true;
	if (type == OSKR__HS_MSG_CKPT_CHUNK && lf->kind == LIE_CHUNKS &&
	    *len > OSKR__HS_CHUNK_FIXED) {
		/* other bytes than it vouched for */
		data[*len - 1] ^= 0x55;
		lf->lies++;
	}
	if (type == OSKR__HS_MSG_CKPT_OFFER && lf->kind == LIE_VOUCH) {
		/* A wrong state digest, validly signed by the liar. */
		struct oskr__hs_ckpt_offer_ref m;
		uint8_t payload[OSKR__HS_VOUCH_PAYLOAD];
		uint8_t sig[OSKR_SIGNATURE_MAX];
		size_t sig_len = 0, digest_at;

		ck_assert(oskr__hs_decode_ckpt_offer(data, *len, &m));
		digest_at = (size_t)(m.vouch.state_digest - data);
		data[digest_at] ^= 0xff;
		ck_assert(oskr__hs_decode_ckpt_offer(data, *len, &m));
		oskr__hs_vouch_payload(payload, &m.vouch);
		ck_assert_int_eq(oskr_sim_sign_as(lf->sim, lf->byzantine,
						  payload, sizeof(payload), sig,
						  &sig_len),
				 0);
		ck_assert_uint_eq(sig_len, m.vouch.sig_len);
		memcpy((uint8_t *)m.vouch.sig, sig, sig_len);
		lf->lies++;
	}
	return true;
}

static void run_with_liar(enum liar kind, uint64_t seed)
{
	struct oskr_sim *sim = make_transfer_sim(4, seed, 1400);
	struct liar_filter lf = { .sim = sim, .kind = kind, .byzantine = 0,
				  .laggard = 3 };

	run_all(sim, 100, 20 * SEC);
	oskr_sim_partition(sim, 0x7, false);
	run_all(sim, 600, 60 * SEC);
	oskr_sim_set_filter(sim, lying_peer, &lf);
	oskr_sim_heal(sim);
	run_all(sim, 200, 60 * SEC);
	oskr_sim_run_for(sim, 2 * SEC);
	oskr_sim_set_filter(sim, NULL, NULL);
	/* The laggard installed only the state f + 1 replicas vouched for
	 * (the checker compares its executed sequence with the others'). */
	ck_assert_uint_gt(lf.lies, 0);
	assert_safe(sim);
	assert_all_executed(sim, 4, 900);
	assert_transferred(sim, 3);
	if (kind == LIE_CHUNKS)
		ck_assert_uint_ge(oskr_sim_counter(sim, 3,
						   "transfer_bad_state"),
				  1);
	oskr_sim_destroy(sim);
}

START_TEST(test_transfer_byzantine_chunks_refused)
{
	run_with_liar(LIE_CHUNKS, 54);
}
END_TEST

START_TEST(test_transfer_byzantine_vouch_refused)
{
	run_with_liar(LIE_VOUCH, 55);
}
END_TEST

static Suite *hotstuff_suite(void)
{
	Suite *s = suite_create("hotstuff");
	TCase *codec = tcase_create("codec");
	TCase *sim = tcase_create("sim");

	tcase_add_test(codec, test_codec_round_trip);
	tcase_add_test(codec, test_codec_rejects_malformed);
	tcase_add_test(codec, test_resume_blob_decoder);
	tcase_add_test(codec, test_transfer_decoders);
	suite_add_tcase(s, codec);

	tcase_set_timeout(sim, 60);
	tcase_add_test(sim, test_options_validated);
	tcase_add_test(sim, test_no_faults_block_size_1);
	tcase_add_test(sim, test_no_faults_block_size_100);
	tcase_add_test(sim, test_fixed_batch_not_adaptive);
	tcase_add_test(sim, test_drop_and_reorder);
	tcase_add_test(sim, test_crashed_replica);
	tcase_add_test(sim, test_seven_replicas_two_crashed);
	tcase_add_test(sim, test_small_messages);
	tcase_add_test(sim, test_byzantine_leader_equivocates);
	tcase_add_test(sim, test_invalid_qcs_rejected);
	tcase_add_test(sim, test_lagging_replica_catches_up);
	tcase_add_test(sim, test_memory_bounded_by_pruning);
	tcase_add_test(sim, test_real_signatures);
	tcase_add_test(sim, test_resume_one_replica_from_checkpoint);
	tcase_add_test(sim, test_resume_whole_cluster_from_checkpoint);
	tcase_add_test(sim, test_refused_checkpoint_reexecutes_and_is_caught);
	tcase_add_test(sim, test_transfer_after_partition);
	tcase_add_test(sim, test_resume_keeps_activity_record);
	tcase_add_test(sim, test_transfer_garbage_dropped_by_replicas);
	tcase_add_test(sim, test_transfer_restarted_empty_small_frames);
	tcase_add_test(sim, test_transfer_whole_cluster_far_apart);
	tcase_add_test(sim, test_transfer_whole_cluster_close);
	tcase_add_test(sim, test_transfer_byzantine_chunks_refused);
	tcase_add_test(sim, test_transfer_byzantine_vouch_refused);
	tcase_add_test(sim, test_reputation_skips_crashed_leader);
	tcase_add_test(sim, test_reputation_restarted_replica_leads_again);
	tcase_add_test(sim, test_reputation_drops_reorder_crash);
	tcase_add_test(sim, test_reputation_round_robin_view_readmits);
	tcase_add_test(sim, test_reputation_excludes_failing_leader);
	tcase_add_test(sim, test_round_robin_crashed_replica);
	suite_add_tcase(s, sim);
	return s;
}

int main(void)
{
	const char *dir = getenv("OSKR_BUILD_DIR");
	char path[4096];
	void *handle;
	SRunner *sr;
	int failed;

	if (getenv("OSKR_TEST_SEED"))
		seed_offset = strtoull(getenv("OSKR_TEST_SEED"), NULL, 0);
	snprintf(path, sizeof(path), "%s/plugins/hotstuff.so",
		 dir && *dir ? dir : "build");
	handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!handle) {
		fprintf(stderr, "test_hotstuff: %s\n", dlerror());
		return 1;
	}
	plugin = dlsym(handle, OSKR_PLUGIN_SYMBOL);
	if (!plugin) {
		fprintf(stderr, "test_hotstuff: %s\n", dlerror());
		return 1;
	}
	sr = srunner_create(hotstuff_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	dlclose(handle);
	return failed ? 1 : 0;
}
