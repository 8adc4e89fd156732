/* SPDX-License-Identifier: MIT */
/* The kv and null applications and the public kv encoding (oskr/kv.h). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oskr/kv.h>

#include "apps/app.h"

#define RESULT_CAP 70000

static void *kv;
static uint8_t *result;

static void kv_setup(void)
{
	char *err = NULL;
	ck_assert_int_eq(oskr__app_kv.create(&kv, NULL, &err), 0);
	result = malloc(RESULT_CAP);
	ck_assert_ptr_nonnull(result);
}

static void kv_teardown(void)
{
	oskr__app_kv.destroy(kv);
	free(result);
}

static size_t exec(void *app, const uint8_t *op, size_t op_len)
{
	size_t len = 0;
	ck_assert_int_eq(oskr__app_kv.execute(app, op, op_len, result,
					       RESULT_CAP, &len),
			 0);
	ck_assert_uint_ge(len, 1);
	return len;
}

static int put(void *app, const char *key, const char *value)
{
	uint8_t op[512];
	size_t len = oskr_kv_encode_put(op, sizeof(op), key, strlen(key),
					value, strlen(value));
	ck_assert_uint_gt(len, 0);
	exec(app, op, len);
	return result[0];
}

static int get(void *app, const char *key, char *value, size_t capacity)
{
	uint8_t op[512];
	size_t len = oskr_kv_encode_get(op, sizeof(op), key, strlen(key));
	size_t result_len = exec(app, op, len);
	if (result[0] == OSKR_KV_OK && value) {
		ck_assert_uint_lt(result_len - 1, capacity);
		memcpy(value, result + 1, result_len - 1);
		value[result_len - 1] = '\0';
	}
	return result[0];
}

static int del(void *app, const char *key)
{
	uint8_t op[512];
	size_t len = oskr_kv_encode_del(op, sizeof(op), key, strlen(key));
	exec(app, op, len);
	return result[0];
}

static void snapshot(void *app, uint8_t **blob, size_t *len)
{
	void *out = NULL;
	ck_assert_int_eq(oskr__app_kv.snapshot(app, &out, len), 0);
	*blob = out;
}

static bool same_snapshot(void *a, void *b)
{
	uint8_t *blob_a, *blob_b;
	size_t len_a, len_b;
	snapshot(a, &blob_a, &len_a);
	snapshot(b, &blob_b, &len_b);
	bool same = len_a == len_b && memcmp(blob_a, blob_b, len_a) == 0;
	free(blob_a);
	free(blob_b);
	return same;
}

/* ---- encoding ---- */

START_TEST(test_encode_decode_round_trip)
{
	uint8_t op[128];
	struct oskr_kv_op d;
	size_t len = oskr_kv_encode_put(op, sizeof(op), "key", 3, "value", 5);
	ck_assert_uint_eq(len, OSKR_KV_PUT_OP_SIZE(3, 5));
	ck_assert_int_eq(op[0], OSKR_KV_PUT);
	ck_assert_int_eq(op[1], 3); /* little-endian u16 */
	ck_assert_int_eq(op[2], 0);
	ck_assert(oskr_kv_decode_op(op, len, &d));
	ck_assert_int_eq(d.type, OSKR_KV_PUT);
	ck_assert_uint_eq(d.key_len, 3);
	ck_assert_int_eq(memcmp(d.key, "key", 3), 0);
	ck_assert_uint_eq(d.value_len, 5);
	ck_assert_int_eq(memcmp(d.value, "value", 5), 0);
	for (size_t cut = 0; cut < len; cut++)
		ck_assert(!oskr_kv_decode_op(op, cut, &d));

	len = oskr_kv_encode_get(op, sizeof(op), "k", 1);
	ck_assert_uint_eq(len, OSKR_KV_KEY_OP_SIZE(1));
	ck_assert(oskr_kv_decode_op(op, len, &d));
	ck_assert_int_eq(d.type, OSKR_KV_GET);
	ck_assert(!oskr_kv_decode_op(op, len + 1, &d)); /* trailing byte */

	len = oskr_kv_encode_del(op, sizeof(op), "", 0);
	ck_assert(oskr_kv_decode_op(op, len, &d));
	ck_assert_int_eq(d.type, OSKR_KV_DEL);
	ck_assert_uint_eq(d.key_len, 0);

	len = oskr_kv_encode_scan(op, sizeof(op), "s", 1, 77);
	ck_assert_uint_eq(len, OSKR_KV_SCAN_OP_SIZE(1));
	ck_assert(oskr_kv_decode_op(op, len, &d));
	ck_assert_int_eq(d.type, OSKR_KV_SCAN);
	ck_assert_uint_eq(d.max_items, 77);

	/* Does not fit: 0, nothing written past capacity. */
	ck_assert_uint_eq(oskr_kv_encode_put(op, 10, "key", 3, "value", 5), 0);
	ck_assert_uint_eq(oskr_kv_encode_get(op, 3, "k", 1), 0);
	ck_assert_uint_eq(oskr_kv_encode_scan(op, 7, "k", 1, 1), 0);
	op[0] = 9;
	ck_assert(!oskr_kv_decode_op(op, 3, &d));
}
END_TEST

/* ---- the app ---- */

START_TEST(test_put_get_del)
{
	char value[64];
	ck_assert_int_eq(get(kv, "a", value, sizeof(value)), OSKR_KV_NOT_FOUND);
	ck_assert_int_eq(put(kv, "a", "1"), OSKR_KV_OK);
	ck_assert_int_eq(get(kv, "a", value, sizeof(value)), OSKR_KV_OK);
	ck_assert_str_eq(value, "1");
	ck_assert_int_eq(put(kv, "a", "22"), OSKR_KV_OK); /* new size */
	ck_assert_int_eq(get(kv, "a", value, sizeof(value)), OSKR_KV_OK);
	ck_assert_str_eq(value, "22");
	ck_assert_int_eq(put(kv, "a", "33"), OSKR_KV_OK); /* same size */
	ck_assert_int_eq(get(kv, "a", value, sizeof(value)), OSKR_KV_OK);
	ck_assert_str_eq(value, "33");
	ck_assert_int_eq(put(kv, "", ""), OSKR_KV_OK); /* empty key, value */
	ck_assert_int_eq(get(kv, "", value, sizeof(value)), OSKR_KV_OK);
	ck_assert_str_eq(value, "");
	ck_assert_int_eq(del(kv, "a"), OSKR_KV_OK);
	ck_assert_int_eq(del(kv, "a"), OSKR_KV_NOT_FOUND);
	ck_assert_int_eq(get(kv, "a", value, sizeof(value)), OSKR_KV_NOT_FOUND);
	ck_assert_int_eq(get(kv, "", value, sizeof(value)), OSKR_KV_OK);
}
END_TEST

START_TEST(test_limits)
{
	static uint8_t big[OSKR_KV_MAX_VALUE + 16];
	static uint8_t op[OSKR_KV_MAX_VALUE + 2 * OSKR_KV_MAX_KEY + 64];
	memset(big, 'v', sizeof(big));
	size_t len = oskr_kv_encode_put(op, sizeof(op), big,
					OSKR_KV_MAX_KEY + 1, "v", 1);
	exec(kv, op, len);
	ck_assert_int_eq(result[0], OSKR_KV_TOO_LARGE);
	len = oskr_kv_encode_put(op, sizeof(op), "k", 1, big,
				 OSKR_KV_MAX_VALUE + 1);
	exec(kv, op, len);
	ck_assert_int_eq(result[0], OSKR_KV_TOO_LARGE);
	ck_assert_int_eq(get(kv, "k", NULL, 0), OSKR_KV_NOT_FOUND);
	/* At the limits exactly: accepted. */
	len = oskr_kv_encode_put(op, sizeof(op), big, OSKR_KV_MAX_KEY, big,
				 OSKR_KV_MAX_VALUE);
	exec(kv, op, len);
	ck_assert_int_eq(result[0], OSKR_KV_OK);

	/* A result that does not fit: -ENOSPC, nothing changed. */
	len = oskr_kv_encode_get(op, sizeof(op), big, OSKR_KV_MAX_KEY);
	size_t result_len = 0;
	ck_assert_int_eq(oskr__app_kv.execute(kv, op, len, result, 100,
					      &result_len),
			 -ENOSPC);
	ck_assert_int_eq(oskr__app_kv.execute(kv, op, len, result, 0,
					      &result_len),
			 -ENOSPC);
	len = oskr_kv_encode_put(op, sizeof(op), "x", 1, "y", 1);
	ck_assert_int_eq(oskr__app_kv.execute(kv, op, len, result, 0,
					      &result_len),
			 -ENOSPC);
	ck_assert_int_eq(get(kv, "x", NULL, 0), OSKR_KV_NOT_FOUND);
}
END_TEST

START_TEST(test_malformed_ops)
{
	put(kv, "keep", "me");
	uint8_t *before;
	size_t before_len;
	snapshot(kv, &before, &before_len);

	uint8_t op[64];
	size_t lens[4];
	uint8_t ops[4][64];
	lens[0] = oskr_kv_encode_get(ops[0], 64, "keep", 4);
	lens[1] = oskr_kv_encode_put(ops[1], 64, "keep", 4, "other", 5);
	lens[2] = oskr_kv_encode_del(ops[2], 64, "keep", 4);
	lens[3] = oskr_kv_encode_scan(ops[3], 64, "", 0, 10);
	for (int i = 0; i < 4; i++) {
		for (size_t cut = 0; cut < lens[i]; cut++) {
			ck_assert_uint_eq(exec(kv, ops[i], cut), 1);
			ck_assert_int_eq(result[0], OSKR_KV_BAD_OP);
		}
		memcpy(op, ops[i], lens[i]);
		op[lens[i]] = 0;
		ck_assert_uint_eq(exec(kv, op, lens[i] + 1), 1);
		ck_assert_int_eq(result[0], OSKR_KV_BAD_OP);
	}
	uint8_t unknown[4] = { 0, 0, 0, 0 };
	for (int type = 0; type < 256; type++) {
		if (type >= 1 && type <= 4)
			continue;
		unknown[0] = (uint8_t)type;
		unknown[1] = 1;
		exec(kv, unknown, 4);
		ck_assert_int_eq(result[0], OSKR_KV_BAD_OP);
	}
	/* An empty op too. */
	exec(kv, unknown, 0);
	ck_assert_int_eq(result[0], OSKR_KV_BAD_OP);

	uint8_t *after;
	size_t after_len;
	snapshot(kv, &after, &after_len);
	ck_assert_uint_eq(before_len, after_len);
	ck_assert_int_eq(memcmp(before, after, before_len), 0);
	free(before);
	free(after);
}
END_TEST

struct scan_entry {
	char key[32];
	char value[32];
};

static size_t scan(void *app, const void *start, size_t start_len,
		   uint32_t max_items, size_t capacity,
		   struct scan_entry *out, size_t out_max)
{
	uint8_t op[128];
	size_t len = oskr_kv_encode_scan(op, sizeof(op), start, start_len,
					 max_items);
	size_t result_len = 0;
	ck_assert_int_eq(oskr__app_kv.execute(app, op, len, result, capacity,
					      &result_len),
			 0);
	ck_assert_int_eq(oskr_kv_result_status(result, result_len),
			 OSKR_KV_OK);
	size_t offset = 1, count = 0;
	const uint8_t *key, *value;
	size_t key_len, value_len;
	while (oskr_kv_scan_next(result, result_len, &offset, &key, &key_len,
				 &value, &value_len)) {
		ck_assert_uint_lt(count, out_max);
		ck_assert_uint_lt(key_len, sizeof(out[0].key));
		ck_assert_uint_lt(value_len, sizeof(out[0].value));
		memcpy(out[count].key, key, key_len);
		out[count].key[key_len] = '\0';
		memcpy(out[count].value, value, value_len);
		out[count].value[value_len] = '\0';
		count++;
	}
	ck_assert_uint_eq(offset, result_len); /* consumed exactly */
	return count;
}

START_TEST(test_scan_order)
{
	const char *keys[] = { "m", "b", "a", "ab", "z", "aa", "", "b\x01",
			       "ba" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		put(kv, keys[i], keys[i]);
	struct scan_entry entries[16];
	size_t count = scan(kv, "", 0, 100, RESULT_CAP, entries, 16);
	const char *sorted[] = { "", "a", "aa", "ab", "b", "b\x01", "ba", "m",
				 "z" };
	ck_assert_uint_eq(count, 9);
	for (size_t i = 0; i < count; i++) {
		ck_assert_str_eq(entries[i].key, sorted[i]);
		ck_assert_str_eq(entries[i].value, sorted[i]);
	}
	/* From a start key (inclusive), limited by max_items. */
	count = scan(kv, "ab", 2, 3, RESULT_CAP, entries, 16);
	ck_assert_uint_eq(count, 3);
	ck_assert_str_eq(entries[0].key, "ab");
	ck_assert_str_eq(entries[1].key, "b");
	ck_assert_str_eq(entries[2].key, "b\x01");
	/* A start key between entries. */
	count = scan(kv, "c", 1, 100, RESULT_CAP, entries, 16);
	ck_assert_uint_eq(count, 2);
	ck_assert_str_eq(entries[0].key, "m");
	count = scan(kv, "zz", 2, 100, RESULT_CAP, entries, 16);
	ck_assert_uint_eq(count, 0);
	count = scan(kv, "", 0, 0, RESULT_CAP, entries, 16);
	ck_assert_uint_eq(count, 0);
	/* Limited by the result capacity: whole entries only; continue
	 * from the last key plus a 0 byte. Entries here take 6 + 2 * len
	 * bytes: "" 6, "a" 8, "aa" 10. */
	count = scan(kv, "", 0, 100, 1 + 6 + 8 + 9, entries, 16);
	ck_assert_uint_eq(count, 2);
	ck_assert_str_eq(entries[1].key, "a");
	count = scan(kv, "a\0", 2, 100, RESULT_CAP, entries, 16);
	ck_assert_uint_eq(count, 7);
	ck_assert_str_eq(entries[0].key, "aa");
}
END_TEST

/* Random ops against a plain array model: the treap must agree on every
 * get and on a full scan. */
START_TEST(test_random_against_model)
{
	enum { KEYS = 300, STEPS = 30000 };
	static char model[KEYS][16];
	static bool present[KEYS];
	memset(present, 0, sizeof(present));
	uint64_t x = 99;
	char key[16], value[16], got[64];
	for (int step = 0; step < STEPS; step++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		unsigned k = (unsigned)((x >> 33) % KEYS);
		unsigned action = (unsigned)((x >> 20) % 4);
		snprintf(key, sizeof(key), "k%05u", k);
		switch (action) {
		case 0:
		case 1:
			snprintf(value, sizeof(value), "v%d", step % 1000);
			ck_assert_int_eq(put(kv, key, value), OSKR_KV_OK);
			strcpy(model[k], value);
			present[k] = true;
			break;
		case 2:
			ck_assert_int_eq(del(kv, key), present[k]
							       ? OSKR_KV_OK
							       : OSKR_KV_NOT_FOUND);
			present[k] = false;
			break;
		case 3:
			if (present[k]) {
				ck_assert_int_eq(get(kv, key, got, sizeof(got)),
						 OSKR_KV_OK);
				ck_assert_str_eq(got, model[k]);
			} else {
				ck_assert_int_eq(get(kv, key, got, sizeof(got)),
						 OSKR_KV_NOT_FOUND);
			}
			break;
		}
	}
	static struct scan_entry entries[KEYS];
	size_t count = scan(kv, "", 0, KEYS + 10, RESULT_CAP, entries, KEYS);
	size_t at = 0;
	for (unsigned k = 0; k < KEYS; k++) {
		if (!present[k])
			continue;
		snprintf(key, sizeof(key), "k%05u", k);
		ck_assert_uint_lt(at, count);
		ck_assert_str_eq(entries[at].key, key);
		ck_assert_str_eq(entries[at].value, model[k]);
		at++;
	}
	ck_assert_uint_eq(at, count);
}
END_TEST

START_TEST(test_snapshot_deterministic_and_restore)
{
	void *other;
	char *err = NULL;
	ck_assert_int_eq(oskr__app_kv.create(&other, NULL, &err), 0);
	/* Same state reached by different histories: equal bytes. */
	for (int i = 0; i < 200; i++) {
		char key[16];
		snprintf(key, sizeof(key), "key%d", i);
		put(kv, key, "value");
	}
	for (int i = 299; i >= 0; i--) {
		char key[16];
		snprintf(key, sizeof(key), "key%d", i);
		put(other, key, i % 2 ? "old" : "value");
	}
	for (int i = 200; i < 300; i++) {
		char key[16];
		snprintf(key, sizeof(key), "key%d", i);
		del(other, key);
	}
	for (int i = 1; i < 200; i += 2) {
		char key[16];
		snprintf(key, sizeof(key), "key%d", i);
		put(other, key, "value");
	}
	ck_assert(same_snapshot(kv, other));

	/* Restore into a store with other contents: equal afterwards. */
	void *third;
	ck_assert_int_eq(oskr__app_kv.create(&third, NULL, &err), 0);
	put(third, "stale", "entry");
	uint8_t *blob;
	size_t len;
	snapshot(kv, &blob, &len);
	ck_assert_int_eq(oskr__app_kv.restore(third, blob, len), 0);
	ck_assert(same_snapshot(kv, third));
	ck_assert_int_eq(get(third, "stale", NULL, 0), OSKR_KV_NOT_FOUND);
	char value[32];
	ck_assert_int_eq(get(third, "key42", value, sizeof(value)), OSKR_KV_OK);
	ck_assert_str_eq(value, "value");
	/* And it keeps working after a restore. */
	ck_assert_int_eq(put(third, "key42", "new"), OSKR_KV_OK);
	ck_assert_int_eq(del(third, "key43"), OSKR_KV_OK);
	free(blob);

	/* An empty store round-trips too. */
	void *empty;
	ck_assert_int_eq(oskr__app_kv.create(&empty, NULL, &err), 0);
	snapshot(empty, &blob, &len);
	ck_assert_int_eq(oskr__app_kv.restore(third, blob, len), 0);
	ck_assert(same_snapshot(empty, third));
	free(blob);

	oskr__app_kv.destroy(other);
	oskr__app_kv.destroy(third);
	oskr__app_kv.destroy(empty);
}
END_TEST

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

START_TEST(test_malformed_snapshots)
{
	put(kv, "a", "1");
	put(kv, "bb", "22");
	put(kv, "ccc", "333");
	uint8_t *good;
	size_t good_len;
	snapshot(kv, &good, &good_len);

	void *target;
	char *err = NULL;
	ck_assert_int_eq(oskr__app_kv.create(&target, NULL, &err), 0);
	put(target, "untouched", "yes");
	uint8_t *target_before;
	size_t target_before_len;
	snapshot(target, &target_before, &target_before_len);

	/* Truncated at every byte. */
	for (size_t cut = 0; cut < good_len; cut++)
		ck_assert_int_eq(oskr__app_kv.restore(target, good, cut),
				 -EINVAL);
	/* Trailing garbage. */
	uint8_t *longer = malloc(good_len + 1);
	memcpy(longer, good, good_len);
	longer[good_len] = 0;
	ck_assert_int_eq(oskr__app_kv.restore(target, longer, good_len + 1),
			 -EINVAL);
	/* Every single-byte corruption is refused or yields a consistent
	 * store (a changed value byte is a valid, different snapshot). */
	for (size_t i = 0; i < good_len; i++) {
		memcpy(longer, good, good_len);
		longer[i] ^= 0xff;
		void *scratch;
		ck_assert_int_eq(oskr__app_kv.create(&scratch, NULL, &err), 0);
		if (oskr__app_kv.restore(scratch, longer, good_len) == 0) {
			uint8_t *again;
			size_t again_len;
			snapshot(scratch, &again, &again_len);
			ck_assert_uint_eq(again_len, good_len);
			ck_assert_int_eq(memcmp(again, longer, good_len), 0);
			free(again);
		}
		oskr__app_kv.destroy(scratch);
	}
	free(longer);

	/* Hand-built: header "OSKRKV01" | u64 count | entries. */
	uint8_t bad[64];
	memcpy(bad, "OSKRKV01", 8);
	memset(bad + 8, 0, 8);
	bad[8] = 2;
	size_t at = 16;
	put_u16(bad + at, 1); bad[at + 2] = 'b'; memset(bad + at + 3, 0, 4);
	at += 7;
	put_u16(bad + at, 1); bad[at + 2] = 'a'; memset(bad + at + 3, 0, 4);
	at += 7;
	ck_assert_int_eq(oskr__app_kv.restore(target, bad, at), -EINVAL);
	bad[16 + 2] = 'a'; /* duplicate key */
	ck_assert_int_eq(oskr__app_kv.restore(target, bad, at), -EINVAL);
	bad[16 + 2] = 'Z'; /* sorted now: accepted */
	{
		void *scratch;
		ck_assert_int_eq(oskr__app_kv.create(&scratch, NULL, &err), 0);
		ck_assert_int_eq(oskr__app_kv.restore(scratch, bad, at), 0);
		oskr__app_kv.destroy(scratch);
	}
	memset(bad + 8, 0xff, 8); /* absurd count */
	ck_assert_int_eq(oskr__app_kv.restore(target, bad, at), -EINVAL);
	memset(bad + 8, 0, 8); /* count 0 but entries follow */
	ck_assert_int_eq(oskr__app_kv.restore(target, bad, at), -EINVAL);
	memcpy(bad, "OSKRKV02", 8);
	ck_assert_int_eq(oskr__app_kv.restore(target, bad, 16), -EINVAL);
	/* A key over the limit. */
	uint8_t *huge = calloc(1, 16 + 2 + OSKR_KV_MAX_KEY + 1 + 4);
	memcpy(huge, "OSKRKV01", 8);
	huge[8] = 1;
	put_u16(huge + 16, OSKR_KV_MAX_KEY + 1);
	ck_assert_int_eq(oskr__app_kv.restore(target, huge,
					      16 + 2 + OSKR_KV_MAX_KEY + 1 + 4),
			 -EINVAL);
	free(huge);
	/* Random garbage. */
	uint64_t x = 7;
	uint8_t garbage[256];
	for (int round = 0; round < 2000; round++) {
		size_t len = round % sizeof(garbage);
		for (size_t i = 0; i < len; i++) {
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			garbage[i] = (uint8_t)(x >> 56);
		}
		if (len >= 8 && (round & 1))
			memcpy(garbage, "OSKRKV01", 8);
		void *scratch;
		ck_assert_int_eq(oskr__app_kv.create(&scratch, NULL, &err), 0);
		oskr__app_kv.restore(scratch, garbage, len);
		oskr__app_kv.destroy(scratch);
	}

	/* After all refusals, the target is exactly as before. */
	uint8_t *target_after;
	size_t target_after_len;
	snapshot(target, &target_after, &target_after_len);
	ck_assert_uint_eq(target_before_len, target_after_len);
	ck_assert_int_eq(memcmp(target_before, target_after,
				target_after_len),
			 0);
	free(target_before);
	free(target_after);
	free(good);
	oskr__app_kv.destroy(target);
}
END_TEST

START_TEST(test_null_app_and_registry)
{
	void *app;
	char *err = NULL;
	ck_assert_int_eq(oskr__app_null.create(&app, NULL, &err), 0);
	uint8_t out[4];
	size_t len = 99;
	ck_assert_int_eq(oskr__app_null.execute(app, "anything", 8, out,
						sizeof(out), &len),
			 0);
	ck_assert_uint_eq(len, 0);
	void *blob;
	ck_assert_int_eq(oskr__app_null.snapshot(app, &blob, &len), 0);
	ck_assert_uint_eq(len, 0);
	free(blob);
	ck_assert_int_eq(oskr__app_null.restore(app, "", 0), 0);
	ck_assert_int_eq(oskr__app_null.restore(app, "x", 1), -EINVAL);
	oskr__app_null.destroy(app);

	ck_assert_ptr_eq(oskr__app_find("null"), &oskr__app_null);
	ck_assert_ptr_eq(oskr__app_find("kv"), &oskr__app_kv);
	ck_assert_ptr_null(oskr__app_find("redis"));
	ck_assert_ptr_null(oskr__app_find(NULL));
}
END_TEST

static Suite *kv_suite(void)
{
	Suite *s = suite_create("kv");
	TCase *tc = tcase_create("kv");
	tcase_add_checked_fixture(tc, kv_setup, kv_teardown);
	tcase_add_test(tc, test_encode_decode_round_trip);
	tcase_add_test(tc, test_put_get_del);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_malformed_ops);
	tcase_add_test(tc, test_scan_order);
	tcase_add_test(tc, test_random_against_model);
	tcase_add_test(tc, test_snapshot_deterministic_and_restore);
	tcase_add_test(tc, test_malformed_snapshots);
	tcase_add_test(tc, test_null_app_and_registry);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(kv_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
