/* SPDX-License-Identifier: MIT */
#include "codec.h"

#include <string.h>

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) |
	       ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void encode_header(uint8_t *out, uint8_t type, uint64_t client_id,
			  uint64_t request_number, uint32_t len)
{
	out[0] = type;
	put_u64(out + 1, client_id);
	put_u64(out + 9, request_number);
	put_u32(out + 17, len);
}

size_t unreplicated_request_size(size_t op_len)
{
	return UNREPLICATED_HEADER_SIZE + op_len;
}

size_t unreplicated_encode_request(uint8_t *out, size_t capacity,
				   const struct unreplicated_request *request)
{
	if (request->op_len > capacity ||
	    capacity - request->op_len < UNREPLICATED_HEADER_SIZE)
		return 0;
	encode_header(out, UNREPLICATED_REQUEST, request->client_id,
		      request->request_number, request->op_len);
	if (request->op_len)
		memcpy(out + UNREPLICATED_HEADER_SIZE, request->op,
		       request->op_len);
	return UNREPLICATED_HEADER_SIZE + request->op_len;
}

bool unreplicated_decode_request(const uint8_t *data, size_t len,
				 struct unreplicated_request *out)
{
	if (len < UNREPLICATED_HEADER_SIZE || data[0] != UNREPLICATED_REQUEST)
		return false;
	uint32_t op_len = get_u32(data + 17);
	if (len - UNREPLICATED_HEADER_SIZE != op_len)
		return false;
	out->client_id = get_u64(data + 1);
	out->request_number = get_u64(data + 9);
	out->op = data + UNREPLICATED_HEADER_SIZE;
	out->op_len = op_len;
	return true;
}

size_t unreplicated_reply_size(size_t result_len, size_t sig_len)
{
	return UNREPLICATED_HEADER_SIZE + result_len + 1 + sig_len;
}

size_t unreplicated_encode_reply_body(uint8_t *out, size_t capacity,
				      uint64_t client_id,
				      uint64_t request_number,
				      const void *result, size_t result_len,
				      size_t sig_room)
{
	if (result_len > UINT32_MAX || sig_room > UINT8_MAX ||
	    result_len > capacity ||
	    capacity - result_len < UNREPLICATED_HEADER_SIZE + 1 + sig_room)
		return 0;
	encode_header(out, UNREPLICATED_REPLY, client_id, request_number,
		      (uint32_t)result_len);
	if (result_len)
		memcpy(out + UNREPLICATED_HEADER_SIZE, result, result_len);
	return UNREPLICATED_HEADER_SIZE + result_len;
}

bool unreplicated_decode_reply(const uint8_t *data, size_t len,
			       struct unreplicated_reply *out)
{
	if (len < UNREPLICATED_HEADER_SIZE + 1 || data[0] != UNREPLICATED_REPLY)
		return false;
	uint32_t result_len = get_u32(data + 17);
	size_t rest = len - UNREPLICATED_HEADER_SIZE;
	if (rest < 1 || rest - 1 < result_len)
		return false;
	size_t signed_len = UNREPLICATED_HEADER_SIZE + result_len;
	uint8_t sig_len = data[signed_len];
	if (len - signed_len - 1 != sig_len)
		return false;
	out->client_id = get_u64(data + 1);
	out->request_number = get_u64(data + 9);
	out->result = data + UNREPLICATED_HEADER_SIZE;
	out->result_len = result_len;
	out->sig_len = sig_len;
	out->sig = sig_len ? data + signed_len + 1 : NULL;
	out->signed_len = signed_len;
	return true;
}
