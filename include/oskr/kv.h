/* SPDX-License-Identifier: MIT */
/**
 * @file oskr/kv.h
 * @brief Wire encoding of the `kv` application's operations and results.
 *
 * Clients build ops with these helpers and decode the results the protocol
 * returns; the host's kv application (apps/kv.c) uses the same helpers, so
 * both sides agree byte for byte. Header only: nothing here calls into the
 * host, a client program may include it on its own.
 *
 * All integers are little-endian.
 *
 * Op:
 *   u8 type               1 get, 2 put, 3 del, 4 scan
 *   u16 key_len, key      (scan: the start key, inclusive)
 *   put:  u32 value_len, value
 *   scan: u32 max_items
 * Nothing may follow; any other shape is a malformed op.
 *
 * Result:
 *   u8 status             0 ok, 1 not found, 2 bad op, 3 too large
 *   get (ok):  the value (the rest of the result)
 *   scan (ok): repeated { u16 key_len, key, u32 value_len, value } in
 *              ascending key order (memcmp, shorter prefix first), at most
 *              max_items entries and at most what fits in the result
 *              buffer; continue from the last key plus a 0 byte.
 * Keys are at most OSKR_KV_MAX_KEY bytes, values OSKR_KV_MAX_VALUE bytes;
 * a put over either limit executes to status 3 and changes nothing. A
 * malformed op executes to status 2 on every replica.
 */
#ifndef OSKR_KV_H
#define OSKR_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

enum oskr_kv_op_type {
	OSKR_KV_GET = 1,
	OSKR_KV_PUT = 2,
	OSKR_KV_DEL = 3,
	OSKR_KV_SCAN = 4,
};

enum oskr_kv_status {
	OSKR_KV_OK = 0,
	OSKR_KV_NOT_FOUND = 1,
	OSKR_KV_BAD_OP = 2,
	OSKR_KV_TOO_LARGE = 3,
};

/** Largest key, in bytes. */
#define OSKR_KV_MAX_KEY 1024
/** Largest value, in bytes. */
#define OSKR_KV_MAX_VALUE 32768

/** Encoded size of a get/del op on a key of @p key_len bytes. */
#define OSKR_KV_KEY_OP_SIZE(key_len) (1 + 2 + (size_t)(key_len))
/** Encoded size of a put op. */
#define OSKR_KV_PUT_OP_SIZE(key_len, value_len) \
	(1 + 2 + (size_t)(key_len) + 4 + (size_t)(value_len))
/** Encoded size of a scan op. */
#define OSKR_KV_SCAN_OP_SIZE(key_len) (1 + 2 + (size_t)(key_len) + 4)

static inline void oskr_kv_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void oskr_kv_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint16_t oskr_kv_get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t oskr_kv_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) |
	       ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Common head of every op: type, key length, key. Returns the bytes
 * written, or 0 when it does not fit or the key is too long for u16. */
static inline size_t oskr_kv__encode_head(uint8_t *out, size_t capacity,
					  size_t need, uint8_t type,
					  const void *key, size_t key_len)
{
	if (key_len > UINT16_MAX || need > capacity)
		return 0;
	out[0] = type;
	oskr_kv_put_u16(out + 1, (uint16_t)key_len);
	if (key_len)
		memcpy(out + 3, key, key_len);
	return 3 + key_len;
}

/** Encode a get. @return the op length, or 0 if it does not fit. */
static inline size_t oskr_kv_encode_get(uint8_t *out, size_t capacity,
					const void *key, size_t key_len)
{
	return oskr_kv__encode_head(out, capacity, OSKR_KV_KEY_OP_SIZE(key_len),
				    OSKR_KV_GET, key, key_len);
}

/** Encode a del. @return the op length, or 0 if it does not fit. */
static inline size_t oskr_kv_encode_del(uint8_t *out, size_t capacity,
					const void *key, size_t key_len)
{
	return oskr_kv__encode_head(out, capacity, OSKR_KV_KEY_OP_SIZE(key_len),
				    OSKR_KV_DEL, key, key_len);
}

/** Encode a put. @return the op length, or 0 if it does not fit. */
static inline size_t oskr_kv_encode_put(uint8_t *out, size_t capacity,
					const void *key, size_t key_len,
					const void *value, size_t value_len)
{
	if (value_len > UINT32_MAX)
		return 0;
	size_t head = oskr_kv__encode_head(
		out, capacity, OSKR_KV_PUT_OP_SIZE(key_len, value_len),
		OSKR_KV_PUT, key, key_len);
	if (!head)
		return 0;
	oskr_kv_put_u32(out + head, (uint32_t)value_len);
	if (value_len)
		memcpy(out + head + 4, value, value_len);
	return head + 4 + value_len;
}

/** Encode a scan from @p start_key (inclusive) of at most @p max_items.
 *  @return the op length, or 0 if it does not fit. */
static inline size_t oskr_kv_encode_scan(uint8_t *out, size_t capacity,
					 const void *start_key,
					 size_t start_key_len,
					 uint32_t max_items)
{
	size_t head = oskr_kv__encode_head(
		out, capacity, OSKR_KV_SCAN_OP_SIZE(start_key_len),
		OSKR_KV_SCAN, start_key, start_key_len);
	if (!head)
		return 0;
	oskr_kv_put_u32(out + head, max_items);
	return head + 4;
}

/** A decoded op; pointers borrow from the encoded bytes. */
struct oskr_kv_op {
	enum oskr_kv_op_type type;
	const uint8_t *key;
	size_t key_len;
	const uint8_t *value; /* put */
	size_t value_len; /* put */
	uint32_t max_items; /* scan */
};

/** Decode an op, checking every length. @return false if malformed. */
static inline bool oskr_kv_decode_op(const void *data, size_t len,
				     struct oskr_kv_op *op)
{
	const uint8_t *p = (const uint8_t *)data;
	if (len < 3)
		return false;
	uint8_t type = p[0];
	size_t key_len = oskr_kv_get_u16(p + 1);
	size_t at = 3;
	if (len - at < key_len)
		return false;
	op->key = p + at;
	op->key_len = key_len;
	op->value = NULL;
	op->value_len = 0;
	op->max_items = 0;
	at += key_len;
	switch (type) {
	case OSKR_KV_GET:
	case OSKR_KV_DEL:
		break;
	case OSKR_KV_PUT:
		if (len - at < 4)
			return false;
		op->value_len = oskr_kv_get_u32(p + at);
		at += 4;
		if (len - at < op->value_len)
			return false;
		op->value = p + at;
		at += op->value_len;
		break;
	case OSKR_KV_SCAN:
		if (len - at < 4)
			return false;
		op->max_items = oskr_kv_get_u32(p + at);
		at += 4;
		break;
	default:
		return false;
	}
	if (at != len)
		return false;
	op->type = (enum oskr_kv_op_type)type;
	return true;
}

/** Status of a result (OSKR_KV_BAD_OP for an empty result). */
static inline enum oskr_kv_status oskr_kv_result_status(const void *result,
							size_t len)
{
	if (len < 1)
		return OSKR_KV_BAD_OP;
	return (enum oskr_kv_status)((const uint8_t *)result)[0];
}

/** Iterate over the entries of a scan result: start with *offset = 1
 *  (after the status byte). @return true with the next entry, false at
 *  the end or on a malformed result. */
static inline bool oskr_kv_scan_next(const void *result, size_t len,
				     size_t *offset, const uint8_t **key,
				     size_t *key_len, const uint8_t **value,
				     size_t *value_len)
{
	const uint8_t *p = (const uint8_t *)result;
	size_t at = *offset;
	if (at >= len || len - at < 2)
		return false;
	size_t klen = oskr_kv_get_u16(p + at);
	at += 2;
	if (len - at < klen)
		return false;
	*key = p + at;
	*key_len = klen;
	at += klen;
	if (len - at < 4)
		return false;
	size_t vlen = oskr_kv_get_u32(p + at);
	at += 4;
	if (len - at < vlen)
		return false;
	*value = p + at;
	*value_len = vlen;
	*offset = at + vlen;
	return true;
}

#ifdef __cplusplus
}
#endif

#endif /* OSKR_KV_H */
