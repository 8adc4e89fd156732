/* SPDX-License-Identifier: MIT */
/*
 * Unreplicated wire format. All integers are little-endian.
 *
 * REQUEST (client -> replica 0):
 *   u8  type = 1
 *   u64 client_id
 *   u64 request_number
 *   u32 op_len
 *   op_len bytes of op
 *
 * REPLY (replica 0 -> client):
 *   u8  type = 2
 *   u64 client_id
 *   u64 request_number
 *   u32 result_len
 *   result_len bytes of result
 *   u8  sig_len             0 when the server does not sign
 *   sig_len bytes of sig    over every byte before sig_len
 *
 * A message is exactly as long as its fields say: decoders refuse
 * anything shorter, longer or of another type.
 */
#ifndef OSKR_UNREPLICATED_CODEC_H
#define OSKR_UNREPLICATED_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum unreplicated_msg_type {
	UNREPLICATED_REQUEST = 1,
	UNREPLICATED_REPLY = 2,
};

/* type, client_id, request_number, length */
#define UNREPLICATED_HEADER_SIZE (1 + 8 + 8 + 4)

struct unreplicated_request {
	uint64_t client_id;
	uint64_t request_number;
	const uint8_t *op; /* borrowed from the message */
	uint32_t op_len;
};

struct unreplicated_reply {
	uint64_t client_id;
	uint64_t request_number;
	const uint8_t *result; /* borrowed from the message */
	uint32_t result_len;
	const uint8_t *sig; /* borrowed; NULL when sig_len is 0 */
	uint8_t sig_len;
	/* Bytes covered by the signature (everything before sig_len). */
	size_t signed_len;
};

/** Encoded size of a request carrying @p op_len bytes. */
size_t unreplicated_request_size(size_t op_len);
/** Encode into @p out; returns the length, or 0 if it does not fit. */
size_t unreplicated_encode_request(uint8_t *out, size_t capacity,
				   const struct unreplicated_request *request);
bool unreplicated_decode_request(const uint8_t *data, size_t len,
				 struct unreplicated_request *out);

/** Encoded size of a reply with @p result_len bytes and a signature of
 *  @p sig_len bytes. */
size_t unreplicated_reply_size(size_t result_len, size_t sig_len);
/** Encode the signed part of a reply (header and result) into @p out;
 *  returns its length (= the signed length), or 0 if the whole reply with
 *  a signature of @p sig_room bytes would not fit. The caller appends
 *  u8 sig_len and the signature at the returned offset. */
size_t unreplicated_encode_reply_body(uint8_t *out, size_t capacity,
				      uint64_t client_id,
				      uint64_t request_number,
				      const void *result, size_t result_len,
				      size_t sig_room);
bool unreplicated_decode_reply(const uint8_t *data, size_t len,
			       struct unreplicated_reply *out);

#endif
