/* SPDX-License-Identifier: MIT */
/*
 * The kv application's op decoder and executor (include/oskr/kv.h,
 * apps/kv.c). Client ops reach execute() unchanged from the network, so
 * this is attacker input on every replica.
 *
 * The input is a script of ops run against one store:
 *   repeat { u8 capacity_class, u16 op_len (LE), op_len bytes }
 * capacity_class picks the result buffer size (0, 1, small, exact-ish,
 * large), so -ENOSPC paths are reached too. Properties:
 *  - the whole input, decoded as one op, re-encodes to the same bytes;
 *  - execute never writes past the result capacity, reports a length
 *    within it, and answers a known status; a malformed op gives BAD_OP;
 *  - a scan result parses with oskr_kv_scan_next, keys ascending;
 *  - at the end, snapshot -> restore into a fresh store -> snapshot gives
 *    identical bytes (replicas compare snapshot digests).
 */
#include <string.h>

#include <oskr/kv.h>

#include "apps/app.h"
#include "fuzz.h"

#define RESULT_MAX (OSKR_KV_MAX_VALUE + 64 * 1024)
#define GUARD 16

static uint8_t result_area[RESULT_MAX + GUARD];

static void check_roundtrip(const uint8_t *data, size_t size)
{
	struct oskr_kv_op op;
	if (!oskr_kv_decode_op(data, size, &op))
		return;
	FUZZ_CHECK(fuzz_inside(data, size, op.key, op.key_len));
	FUZZ_CHECK(fuzz_inside(data, size, op.value, op.value_len));
	uint8_t *out = malloc(size);
	FUZZ_CHECK(out);
	size_t len = 0;
	switch (op.type) {
	case OSKR_KV_GET:
		len = oskr_kv_encode_get(out, size, op.key, op.key_len);
		break;
	case OSKR_KV_DEL:
		len = oskr_kv_encode_del(out, size, op.key, op.key_len);
		break;
	case OSKR_KV_PUT:
		len = oskr_kv_encode_put(out, size, op.key, op.key_len,
					 op.value, op.value_len);
		break;
	case OSKR_KV_SCAN:
		len = oskr_kv_encode_scan(out, size, op.key, op.key_len,
					  op.max_items);
		break;
	}
	FUZZ_CHECK(len == size);
	FUZZ_CHECK(memcmp(out, data, size) == 0);
	free(out);
}

static int key_order(const uint8_t *a, size_t a_len, const uint8_t *b,
		     size_t b_len)
{
	size_t common = a_len < b_len ? a_len : b_len;
	int c = common ? memcmp(a, b, common) : 0;
	if (c)
		return c;
	return (a_len > b_len) - (a_len < b_len);
}

static void check_result(const uint8_t *op_bytes, size_t op_len,
			 const uint8_t *result, size_t len)
{
	struct oskr_kv_op op;
	bool valid = oskr_kv_decode_op(op_bytes, op_len, &op);
	enum oskr_kv_status status = oskr_kv_result_status(result, len);
	FUZZ_CHECK(len >= 1);
	FUZZ_CHECK(status <= OSKR_KV_TOO_LARGE);
	if (!valid) {
		FUZZ_CHECK(status == OSKR_KV_BAD_OP && len == 1);
		return;
	}
	if (op.type == OSKR_KV_SCAN && status == OSKR_KV_OK) {
		size_t offset = 1, items = 0;
		const uint8_t *key, *value, *prev = NULL;
		size_t key_len, value_len, prev_len = 0;
		while (oskr_kv_scan_next(result, len, &offset, &key, &key_len,
					 &value, &value_len)) {
			FUZZ_CHECK(key_len <= OSKR_KV_MAX_KEY);
			FUZZ_CHECK(value_len <= OSKR_KV_MAX_VALUE);
			FUZZ_CHECK(key_order(op.key, op.key_len, key,
					     key_len) <= 0);
			if (prev)
				FUZZ_CHECK(key_order(prev, prev_len, key,
						     key_len) < 0);
			prev = key;
			prev_len = key_len;
			items++;
		}
		FUZZ_CHECK(offset == len); /* nothing unparsed left */
		FUZZ_CHECK(items <= op.max_items);
	}
}

static size_t capacity_for(uint8_t class, size_t op_len)
{
	switch (class % 5) {
	case 0:
		return 0;
	case 1:
		return 1;
	case 2:
		return 1 + class / 5;
	case 3:
		return op_len + class / 5;
	default:
		return RESULT_MAX;
	}
}

static void check_snapshot(void *kv)
{
	void *blob = NULL, *again = NULL;
	size_t blob_len = 0, again_len = 0;
	FUZZ_CHECK(oskr__app_kv.snapshot(kv, &blob, &blob_len) == 0);
	void *copy = NULL;
	FUZZ_CHECK(oskr__app_kv.create(&copy, NULL, NULL) == 0);
	FUZZ_CHECK(oskr__app_kv.restore(copy, blob, blob_len) == 0);
	FUZZ_CHECK(oskr__app_kv.snapshot(copy, &again, &again_len) == 0);
	FUZZ_CHECK(again_len == blob_len);
	FUZZ_CHECK(memcmp(again, blob, blob_len) == 0);
	oskr__app_kv.destroy(copy);
	free(again);
	free(blob);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_roundtrip(data, size);

	void *kv = NULL;
	FUZZ_CHECK(oskr__app_kv.create(&kv, NULL, NULL) == 0);
	size_t at = 0;
	/* The script is bounded by the input: every op consumes >= 3 bytes. */
	while (size - at >= 3) {
		uint8_t class = data[at];
		size_t op_len = (size_t)(data[at + 1] | data[at + 2] << 8);
		at += 3;
		if (op_len > size - at)
			op_len = size - at;
		/* A copy of exactly op_len bytes: ASan sees any over-read. */
		uint8_t *op = malloc(op_len ? op_len : 1);
		FUZZ_CHECK(op);
		if (op_len)
			memcpy(op, data + at, op_len);
		at += op_len;

		size_t capacity = capacity_for(class, op_len);
		if (capacity > RESULT_MAX)
			capacity = RESULT_MAX;
		memset(result_area + capacity, 0xa5, GUARD);
		size_t result_len = (size_t)-1;
		int ret = oskr__app_kv.execute(kv, op, op_len, result_area,
					       capacity, &result_len);
		for (size_t i = 0; i < GUARD; i++)
			FUZZ_CHECK(result_area[capacity + i] == 0xa5);
		FUZZ_CHECK(ret == 0 || ret == -ENOSPC);
		if (ret == 0) {
			FUZZ_CHECK(result_len <= capacity);
			check_result(op, op_len, result_area, result_len);
		}
		free(op);
	}
	check_snapshot(kv);
	oskr__app_kv.destroy(kv);
	return 0;
}
