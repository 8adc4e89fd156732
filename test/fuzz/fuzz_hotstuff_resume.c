/* SPDX-License-Identifier: MIT */
/*
 * HotStuff durable-checkpoint blob (plugins/hotstuff/durable_codec.c,
 * compiled in with plugins/hotstuff/codec.c, whose block and QC decoders
 * it calls). The blob comes back from disk at replica_init through
 * host->checkpoint_resume and reaches oskr__hs_resume_decode before any
 * digest or signature is checked.
 *
 * Each input is decoded for n = 4, f = 1 and, when the blob's header
 * names another shape a replica could run with (n <= 64, 3f + 1 <= n),
 * for that one too; with the default client_table_size (100000) and with
 * a limit of 1. Properties of a successful decode (what durable.c relies
 * on):
 *   - block, QC and client table lie inside the input;
 *   - the block's height is the blob's and nonzero; the QC certifies it
 *     (same view, same digest), has n - f .. n signatures, each inside
 *     the input, and fits qc_high (OSKR__HS_QC_MAX_BYTES);
 *   - the client table holds at most the limit's clients;
 *   - a version-2 blob has its activity record (n entries, fail streaks
 *     within the cap) inside the input, at its end; a version-1 blob has
 *     none;
 *   - decode -> oskr__hs_resume_encode gives back the input bytes (of
 *     the same version, the record read back into the block).
 * oskr__hs_clients_valid is also run on the raw input: what it accepts
 * parses to the end. A refusal returns -EINVAL and names a reason.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "plugins/hotstuff/hotstuff.h"

#define CLIENT_ENTRY_FIXED (8 + 8 + 1 + 4)

static uint64_t le_read(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Walk a client table accepted by oskr__hs_clients_valid: count u32, then
 * per client id u64 | number u64 | has_result u8 | result_len u32 |
 * result. Returns the count. */
static uint64_t walk_clients(const uint8_t *base, size_t size,
			     const uint8_t *clients, size_t len)
{
	FUZZ_CHECK(len >= 4);
	uint64_t count = le_read(clients, 4);
	size_t pos = 4;
	for (uint64_t i = 0; i < count; i++) {
		FUZZ_CHECK(len - pos >= CLIENT_ENTRY_FIXED);
		uint8_t has_result = clients[pos + 16];
		uint64_t result_len = le_read(clients + pos + 17, 4);
		FUZZ_CHECK(has_result <= 1 && (has_result || !result_len));
		pos += CLIENT_ENTRY_FIXED;
		FUZZ_CHECK(len - pos >= result_len);
		FUZZ_CHECK(fuzz_inside(base, size, clients + pos, result_len));
		pos += result_len;
	}
	FUZZ_CHECK(pos == len);
	return count;
}

static void check_resume(const uint8_t *data, size_t size, uint32_t n,
			 uint32_t f, uint64_t client_limit)
{
	/* ~5 KB, as durable.c keeps it off the stack too */
	static struct oskr__hs_resume_point point;
	const char *why = NULL;
	int rc = oskr__hs_resume_decode(data, size, n, f, client_limit, &point,
					&why);
	if (rc) {
		FUZZ_CHECK(rc == -EINVAL);
		FUZZ_CHECK(why && why[0]);
		return;
	}

	const struct oskr__hs_block_ref *b = &point.block;
	FUZZ_CHECK(fuzz_inside(data, size, b->raw, b->raw_len));
	FUZZ_CHECK(fuzz_inside(data, size, b->parent, OSKR__HS_DIGEST));
	FUZZ_CHECK(fuzz_inside(data, size, b->requests, b->requests_len));
	FUZZ_CHECK(b->height == point.height && point.height != 0);

	const struct oskr__hs_qc_ref *qc = &point.qc;
	FUZZ_CHECK(fuzz_inside(data, size, qc->raw, qc->raw_len));
	FUZZ_CHECK(qc->raw_len <= OSKR__HS_QC_MAX_BYTES);
	FUZZ_CHECK(qc->view == b->view);
	FUZZ_CHECK(fuzz_inside(data, size, qc->digest, OSKR__HS_DIGEST));
	FUZZ_CHECK(memcmp(qc->digest, point.digest, OSKR__HS_DIGEST) == 0);
	FUZZ_CHECK(qc->count >= n - f && qc->count <= n);
	for (uint16_t i = 0; i < qc->count; i++) {
		FUZZ_CHECK(qc->sigs[i].len >= 1 &&
			   qc->sigs[i].len <= OSKR_SIGNATURE_MAX);
		FUZZ_CHECK(fuzz_inside(data, size, qc->sigs[i].bytes,
				       qc->sigs[i].len));
	}

	FUZZ_CHECK(fuzz_inside(data, size, point.clients, point.clients_len));
	FUZZ_CHECK(walk_clients(data, size, point.clients,
				point.clients_len) <= client_limit);

	uint64_t version = le_read(data + 4, 2);
	size_t activity_len = oskr__hs_activity_len(n);
	FUZZ_CHECK(version == 1 || version == 2);
	FUZZ_CHECK((version == 2) == (point.activity != NULL));
	if (point.activity) {
		FUZZ_CHECK(fuzz_inside(data, size, point.activity,
				       activity_len));
		FUZZ_CHECK(point.activity + activity_len == data + size);
		FUZZ_CHECK(oskr__hs_activity_valid(point.activity,
						   activity_len, n));
		for (uint32_t r = 0; r < n; r++)
			FUZZ_CHECK(point.activity[r * OSKR__HS_ACTIVITY_ENTRY +
						  4] <=
				   OSKR__HS_FAIL_STREAK_CAP);
	}

	/* The encoder takes the block as the store keeps it (raw bytes
	 * inline); only digest, height and raw bytes are written. */
	struct oskr__hs_block *block = calloc(1, sizeof(*block) + b->raw_len);
	FUZZ_CHECK(block);
	memcpy(block->digest, point.digest, OSKR__HS_DIGEST);
	block->height = point.height;
	memcpy(block->raw, b->raw, b->raw_len);
	block->raw_len = b->raw_len;
	if (point.activity)
		oskr__hs_activity_get(point.activity, n, block);
	uint8_t *out = NULL;
	size_t out_len = 0;
	FUZZ_CHECK(oskr__hs_resume_encode(n, f, point.executed_ops,
					  point.committed_blocks, block,
					  point.activity != NULL, qc->raw,
					  qc->raw_len, point.clients,
					  point.clients_len, &out,
					  &out_len) == 0);
	FUZZ_CHECK(out_len == size && memcmp(out, data, size) == 0);
	free(out);
	free(block);
}

static void check_shape(const uint8_t *data, size_t size, uint32_t n,
			uint32_t f)
{
	check_resume(data, size, n, f, 100000);
	check_resume(data, size, n, f, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_shape(data, size, 4, 1);
	if (size >= 10) {
		uint32_t n = (uint32_t)le_read(data + 6, 2);
		uint32_t f = (uint32_t)le_read(data + 8, 2);
		if (n >= 1 && n <= OSKR__HS_MAX_REPLICAS && 3 * f + 1 <= n &&
		    !(n == 4 && f == 1))
			check_shape(data, size, n, f);
	}
	if (oskr__hs_clients_valid(data, size, UINT32_MAX))
		walk_clients(data, size, data, size);
	return 0;
}
