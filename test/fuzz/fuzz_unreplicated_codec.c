/* SPDX-License-Identifier: MIT */
/*
 * Unreplicated wire decoders (plugins/unreplicated/codec.c): every input
 * is offered as a REQUEST and as a REPLY. What decodes must point inside
 * the input, and re-encode to exactly the input bytes (the format has one
 * encoding per message).
 */
#include <string.h>

#include "fuzz.h"
#include "plugins/unreplicated/codec.h"

static void check_request(const uint8_t *data, size_t size)
{
	struct unreplicated_request request;
	if (!unreplicated_decode_request(data, size, &request))
		return;
	FUZZ_CHECK(fuzz_inside(data, size, request.op, request.op_len));
	fuzz_touch(request.op, request.op_len);
	FUZZ_CHECK(unreplicated_request_size(request.op_len) == size);

	uint8_t *copy = malloc(size);
	FUZZ_CHECK(copy);
	FUZZ_CHECK(unreplicated_encode_request(copy, size, &request) == size);
	FUZZ_CHECK(memcmp(copy, data, size) == 0);
	/* One byte less room must be refused, not overrun. */
	FUZZ_CHECK(unreplicated_encode_request(copy, size - 1, &request) == 0);
	free(copy);
}

static void check_reply(const uint8_t *data, size_t size)
{
	struct unreplicated_reply reply;
	if (!unreplicated_decode_reply(data, size, &reply))
		return;
	FUZZ_CHECK(fuzz_inside(data, size, reply.result, reply.result_len));
	FUZZ_CHECK(fuzz_inside(data, size, reply.sig, reply.sig_len));
	FUZZ_CHECK(reply.sig_len == 0 || reply.sig);
	FUZZ_CHECK(reply.signed_len < size);
	fuzz_touch(reply.result, reply.result_len);
	fuzz_touch(reply.sig, reply.sig_len);
	FUZZ_CHECK(unreplicated_reply_size(reply.result_len, reply.sig_len) ==
		   size);

	uint8_t *copy = malloc(size);
	FUZZ_CHECK(copy);
	size_t body = unreplicated_encode_reply_body(
		copy, size, reply.client_id, reply.request_number,
		reply.result, reply.result_len, reply.sig_len);
	FUZZ_CHECK(body == reply.signed_len);
	copy[body] = reply.sig_len;
	if (reply.sig_len)
		memcpy(copy + body + 1, reply.sig, reply.sig_len);
	FUZZ_CHECK(memcmp(copy, data, size) == 0);
	FUZZ_CHECK(unreplicated_encode_reply_body(
			   copy, size - 1, reply.client_id,
			   reply.request_number, reply.result,
			   reply.result_len, reply.sig_len) == 0);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_request(data, size);
	check_reply(data, size);
	return 0;
}
