/* SPDX-License-Identifier: MIT */
/*
 * The kv snapshot loader (apps/kv.c restore). A snapshot arrives from
 * another replica during state transfer, so it is attacker input for a
 * BFT protocol until its digest is checked, and a loader bug would be
 * reachable before that check in a careless plugin.
 *
 * Properties: restore either refuses (-EINVAL, state unchanged) or
 * accepts; an accepted snapshot is canonical, so snapshot() returns the
 * very same bytes; a refused one leaves the previous state intact.
 */
#include <string.h>

#include <oskr/kv.h>

#include "apps/app.h"
#include "fuzz.h"

static void *baseline_blob;
static size_t baseline_len;

/* A small non-empty store, so "state unchanged" means something. */
static void fill(void *kv)
{
	static const char *const keys[] = { "a", "b", "zz" };
	uint8_t op[64], result[16];
	for (size_t i = 0; i < 3; i++) {
		size_t len = oskr_kv_encode_put(op, sizeof(op), keys[i],
						strlen(keys[i]), "v", 1);
		size_t result_len;
		FUZZ_CHECK(oskr__app_kv.execute(kv, op, len, result,
						sizeof(result),
						&result_len) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	void *kv = NULL;
	FUZZ_CHECK(oskr__app_kv.create(&kv, NULL, NULL) == 0);
	fill(kv);
	if (!baseline_blob)
		FUZZ_CHECK(oskr__app_kv.snapshot(kv, &baseline_blob,
						 &baseline_len) == 0);

	int ret = oskr__app_kv.restore(kv, data, size);
	FUZZ_CHECK(ret == 0 || ret == -EINVAL || ret == -ENOMEM);
	void *blob = NULL;
	size_t blob_len = 0;
	FUZZ_CHECK(oskr__app_kv.snapshot(kv, &blob, &blob_len) == 0);
	if (ret == 0) {
		FUZZ_CHECK(blob_len == size);
		FUZZ_CHECK(memcmp(blob, data, size) == 0);
		/* The restored tree answers: scan everything. */
		uint8_t op[16], result[4096];
		size_t len = oskr_kv_encode_scan(op, sizeof(op), "", 0, 100);
		size_t result_len;
		FUZZ_CHECK(oskr__app_kv.execute(kv, op, len, result,
						sizeof(result),
						&result_len) == 0);
	} else {
		FUZZ_CHECK(blob_len == baseline_len);
		FUZZ_CHECK(memcmp(blob, baseline_blob, blob_len) == 0);
	}
	free(blob);
	oskr__app_kv.destroy(kv);
	return 0;
}
