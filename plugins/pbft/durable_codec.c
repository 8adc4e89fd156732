/* SPDX-License-Identifier: MIT */
/*
 * The protocol blob of a durable stable checkpoint (durable.c has the why
 * and the layout): a pure, length-checked encoder and decoder, kept apart
 * from the host glue so tests can compile them in.
 */
#include "pbft.h"

#include <stdlib.h>

#define PBFT_RESUME_MAGIC UINT32_C(0x4b434250) /* "PBCK" */
#define PBFT_RESUME_VERSION 1

int oskr__pbft_state_split(const uint8_t *state, size_t len,
			   size_t *prefix_len, const uint8_t **app,
			   size_t *app_len)
{
	struct pbft_reader rd = { .data = state, .len = len };
	pbft_get_u64(&rd); /* ops_executed */
	uint32_t count = pbft_get_u32(&rd);
	for (uint32_t i = 0; i < count && !rd.bad; i++) {
		pbft_get(&rd, 8 + 8 + 8 + OSKR_ADDR_SIZE);
		uint32_t result_len = pbft_get_u32(&rd);
		pbft_get(&rd, result_len);
	}
	size_t prefix = rd.pos;
	uint64_t length = pbft_get_u64(&rd);
	if (rd.bad || length != rd.len - rd.pos)
		return -EINVAL;
	*prefix_len = prefix;
	*app = state + rd.pos;
	*app_len = (size_t)length;
	return 0;
}

int oskr__pbft_resume_encode(uint32_t n, uint32_t f, uint32_t interval,
			     const struct pbft_stable *stable,
			     const uint8_t *prefix, size_t prefix_len,
			     uint8_t **out, size_t *out_len)
{
	if (prefix_len > UINT32_MAX)
		return -EINVAL;
	size_t len = 4 + 2 + 2 + 2 + 4 + 8 + PBFT_DIGEST + 1 +
		     (size_t)stable->count * PBFT_SIG_PAIR_MAX + 4 + prefix_len;
	uint8_t *data = malloc(len);
	if (!data)
		return -ENOMEM;
	struct pbft_writer w = { .data = data, .capacity = len };
	pbft_put_u32(&w, PBFT_RESUME_MAGIC);
	pbft_put_u16(&w, PBFT_RESUME_VERSION);
	pbft_put_u16(&w, (uint16_t)n);
	pbft_put_u16(&w, (uint16_t)f);
	pbft_put_u32(&w, interval);
	pbft_put_u64(&w, stable->seq);
	pbft_put(&w, stable->digest, PBFT_DIGEST);
	pbft_put_u8(&w, stable->count);
	for (unsigned i = 0; i < stable->count; i++)
		pbft_put_sig_pair(&w, stable->replicas[i],
				  stable->votes[i].sig,
				  stable->votes[i].sig_len);
	pbft_put_u32(&w, (uint32_t)prefix_len);
	pbft_put(&w, prefix, prefix_len);
	if (w.overflow) {
		free(data);
		return -EINVAL;
	}
	*out = data;
	*out_len = w.len;
	return 0;
}

int oskr__pbft_resume_decode(const uint8_t *data, size_t len, uint32_t n,
			     uint32_t f, uint32_t interval,
			     struct pbft_resume_point *out, const char **why)
{
	struct pbft_reader rd = { .data = data, .len = len };
	uint32_t magic = pbft_get_u32(&rd);
	uint16_t version = pbft_get_u16(&rd);
	uint16_t blob_n = pbft_get_u16(&rd);
	uint16_t blob_f = pbft_get_u16(&rd);
	uint32_t blob_interval = pbft_get_u32(&rd);
	if (rd.bad || magic != PBFT_RESUME_MAGIC) {
		*why = "not a pbft checkpoint";
		return -EINVAL;
	}
	if (version != PBFT_RESUME_VERSION) {
		*why = "unknown format version";
		return -EINVAL;
	}
	if (blob_n != n || blob_f != f) {
		*why = "written by a cluster of another shape (n, f)";
		return -EINVAL;
	}
	if (blob_interval != interval) {
		*why = "written with another checkpoint_interval";
		return -EINVAL;
	}
	out->seq = pbft_get_u64(&rd);
	const uint8_t *digest = pbft_get(&rd, PBFT_DIGEST);
	uint8_t count = pbft_get_u8(&rd);
	if (rd.bad) {
		*why = "truncated";
		return -EINVAL;
	}
	if (out->seq == 0 || !interval || out->seq % interval) {
		*why = "not a checkpoint sequence number";
		return -EINVAL;
	}
	if (count < 2 * f + 1 || count > n) {
		*why = "proof without 2f+1 signatures";
		return -EINVAL;
	}
	memcpy(out->digest, digest, PBFT_DIGEST);
	/* The proof is a sig list as in a STABLE message: replicas in
	 * range and distinct, signature lengths in range. */
	uint64_t seen = 0;
	size_t proof_start = rd.pos;
	for (unsigned i = 0; i < count; i++) {
		uint16_t replica = pbft_get_u16(&rd);
		uint8_t sig_len = pbft_get_u8(&rd);
		if (rd.bad || replica >= n || (seen & (UINT64_C(1) << replica)) ||
		    sig_len == 0 || sig_len > OSKR_SIGNATURE_MAX ||
		    !pbft_get(&rd, sig_len)) {
			*why = "malformed proof";
			return -EINVAL;
		}
		seen |= UINT64_C(1) << replica;
	}
	out->proof.count = count;
	out->proof.data = data + proof_start;
	out->proof.len = rd.pos - proof_start;
	uint32_t prefix_len = pbft_get_u32(&rd);
	out->prefix = pbft_get(&rd, prefix_len);
	out->prefix_len = prefix_len;
	if (rd.bad || rd.pos != len) {
		*why = rd.bad ? "truncated" : "trailing bytes";
		return -EINVAL;
	}
	/* The prefix must be exactly `ops_executed | client table`. */
	struct pbft_reader pr = { .data = out->prefix, .len = prefix_len };
	out->ops_executed = pbft_get_u64(&pr);
	uint32_t clients = pbft_get_u32(&pr);
	for (uint32_t i = 0; i < clients && !pr.bad; i++) {
		pbft_get(&pr, 8 + 8 + 8 + OSKR_ADDR_SIZE);
		uint32_t result_len = pbft_get_u32(&pr);
		pbft_get(&pr, result_len);
	}
	if (pr.bad || pr.pos != prefix_len) {
		*why = "malformed client table";
		return -EINVAL;
	}
	return 0;
}
