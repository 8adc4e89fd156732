/* SPDX-License-Identifier: MIT */
/*
 * PBFT durable-checkpoint blob (plugins/pbft/durable_codec.c, compiled in
 * with plugins/pbft/codec.c for the proof iterator). The blob comes back
 * from disk at replica_init through host->checkpoint_resume: a torn or
 * tampered file reaches oskr__pbft_resume_decode before any signature is
 * checked. oskr__pbft_state_split, the other decoder in the file, splits
 * the checkpoint state the replica persists from.
 *
 * Each input is decoded for n = 4, f = 1, interval 100 (the defaults the
 * seeds are written with) and, when the blob's own header names a shape
 * a replica could run with (options.c: f >= 1, 3f + 1 <= n <= 64,
 * interval 1..10^6), for that shape too, so mutations of n, f and the interval reach the proof
 * checks. Properties of a successful decode (what durable.c relies on):
 *   - seq is a nonzero multiple of the interval;
 *   - the proof lies inside the input and walks, with oskr__pbft_next_sig,
 *     exactly its count (2f+1 .. n) of distinct replicas < n with valid
 *     signature lengths;
 *   - the prefix lies inside the input, is at least ops_executed u64 +
 *     client count u32 long, and starts with ops_executed;
 *   - decode -> oskr__pbft_resume_encode gives back the input bytes.
 * A refusal returns -EINVAL and names a reason.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "plugins/pbft/pbft.h"

struct shape {
	uint32_t n, f, interval;
};

static uint64_t le_read(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Walk the proof as durable.c does; rebuild what the encoder takes. */
static void check_proof(const uint8_t *data, size_t size,
			const struct shape *s,
			const struct pbft_resume_point *point,
			struct pbft_stable *stable)
{
	FUZZ_CHECK(point->proof.count >= 2 * s->f + 1 &&
		   point->proof.count <= s->n);
	FUZZ_CHECK(fuzz_inside(data, size, point->proof.data,
			       point->proof.len));
	struct pbft_reader r = pbft_list_reader(point->proof.data,
						point->proof.len);
	struct pbft_sig_pair pair;
	uint64_t seen = 0;
	unsigned count = 0;
	while (count < PBFT_MAX_REPLICAS && oskr__pbft_next_sig(&r, &pair)) {
		FUZZ_CHECK(pair.replica < s->n);
		FUZZ_CHECK(!(seen & (UINT64_C(1) << pair.replica)));
		seen |= UINT64_C(1) << pair.replica;
		FUZZ_CHECK(pair.sig_len >= 1 &&
			   pair.sig_len <= OSKR_SIGNATURE_MAX);
		FUZZ_CHECK(fuzz_inside(data, size, pair.sig, pair.sig_len));
		stable->replicas[count] = pair.replica;
		stable->votes[count].seq = point->seq;
		memcpy(stable->votes[count].digest, point->digest,
		       PBFT_DIGEST);
		stable->votes[count].sig_len = pair.sig_len;
		memcpy(stable->votes[count].sig, pair.sig, pair.sig_len);
		count++;
	}
	FUZZ_CHECK(!r.bad && count == point->proof.count);
	stable->count = (uint8_t)count;
}

static void check_resume(const uint8_t *data, size_t size,
			 const struct shape *s)
{
	struct pbft_resume_point point;
	const char *why = NULL;
	int rc = oskr__pbft_resume_decode(data, size, s->n, s->f, s->interval,
					  &point, &why);
	if (rc) {
		FUZZ_CHECK(rc == -EINVAL);
		FUZZ_CHECK(why && why[0]);
		return;
	}
	FUZZ_CHECK(point.seq != 0 && point.seq % s->interval == 0);

	static uint16_t replicas[PBFT_MAX_REPLICAS];
	static struct pbft_checkpoint_vote votes[PBFT_MAX_REPLICAS];
	struct pbft_stable stable = { .seq = point.seq,
				      .replicas = replicas,
				      .votes = votes };
	memcpy(stable.digest, point.digest, PBFT_DIGEST);
	check_proof(data, size, s, &point, &stable);

	/* durable.c reads the client table at prefix + 8. */
	FUZZ_CHECK(point.prefix_len >= 8 + 4);
	FUZZ_CHECK(fuzz_inside(data, size, point.prefix, point.prefix_len));
	fuzz_touch(point.prefix, point.prefix_len);
	FUZZ_CHECK(le_read(point.prefix, 8) == point.ops_executed);

	uint8_t *out = NULL;
	size_t out_len = 0;
	FUZZ_CHECK(oskr__pbft_resume_encode(s->n, s->f, s->interval, &stable,
					    point.prefix, point.prefix_len,
					    &out, &out_len) == 0);
	FUZZ_CHECK(out_len == size && memcmp(out, data, size) == 0);
	free(out);
}

/* A checkpoint state: `ops | client table | app_len u64 | app`. */
static void check_state_split(const uint8_t *data, size_t size)
{
	size_t prefix_len = 0, app_len = 0;
	const uint8_t *app = NULL;
	if (oskr__pbft_state_split(data, size, &prefix_len, &app, &app_len))
		return;
	FUZZ_CHECK(prefix_len >= 8 + 4 && prefix_len <= size - 8);
	FUZZ_CHECK(le_read(data + prefix_len, 8) == app_len);
	FUZZ_CHECK(app == data + prefix_len + 8);
	FUZZ_CHECK(prefix_len + 8 + app_len == size);
	fuzz_touch(app, app_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct shape fixed = { 4, 1, 100 };
	check_resume(data, size, &fixed);
	if (size >= 14) {
		struct shape own = {
			.n = (uint32_t)le_read(data + 6, 2),
			.f = (uint32_t)le_read(data + 8, 2),
			.interval = (uint32_t)le_read(data + 10, 4),
		};
		if (own.f >= 1 && 3 * own.f + 1 <= own.n &&
		    own.n <= PBFT_MAX_REPLICAS && own.interval >= 1 &&
		    own.interval <= 1000000 &&
		    memcmp(&own, &fixed, sizeof(own)))
			check_resume(data, size, &own);
	}
	check_state_split(data, size);
	return 0;
}
