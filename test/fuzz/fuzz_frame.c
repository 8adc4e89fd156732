/* SPDX-License-Identifier: MIT */
/*
 * The dpdk transport's Ethernet framing (transport/frame.c), which parses
 * every frame a NIC hands over before anything else looks at it.
 *
 * Each input is decoded without a filter and with a filter built from its
 * last bytes (so the fuzzer can reach the "ours" paths). A frame that
 * decodes must describe a header and payload inside the input, and its
 * header must re-encode and decode to the same endpoints and length.
 * Bytes that look like a struct oskr_addr are unpacked too: such an
 * address can arrive inside a protocol message.
 */
#include <string.h>

#include "fuzz.h"
#include "transport/frame.h"

static void check_frame(const uint8_t *data, size_t size,
			const struct oskr__frame_filter *filter)
{
	struct oskr__frame_header header;
	enum oskr__frame_status status =
		oskr__frame_decode(data, size, filter, &header);
	FUZZ_CHECK((unsigned)status < OSKR_FRAME_STATUS_COUNT);
	FUZZ_CHECK(oskr__frame_status_name(status) != NULL);
	if (status != OSKR_FRAME_OK) {
		FUZZ_CHECK((unsigned)oskr__frame_drop_reason(status) <
			   OSKR_DROP_REASON_COUNT);
		return;
	}
	FUZZ_CHECK(header.header_size >= OSKR_FRAME_HEADER_MIN &&
		   header.header_size <= OSKR_FRAME_HEADER_MAX);
	FUZZ_CHECK(header.header_size <= size &&
		   header.payload_len <= size - header.header_size);
	FUZZ_CHECK(header.dst.id <= OSKR_FRAME_ID_MAX &&
		   header.src.id <= OSKR_FRAME_ID_MAX);
	fuzz_touch(data + header.header_size, header.payload_len);

	/* Re-encode the header (canonical id encoding) and decode again. */
	uint8_t out[OSKR_FRAME_HEADER_MAX];
	int written = oskr__frame_write_header(out, sizeof(out), &header.dst,
					       &header.src,
					       header.payload_len);
	FUZZ_CHECK(written >= OSKR_FRAME_HEADER_MIN &&
		   (size_t)written <= header.header_size);
	FUZZ_CHECK((size_t)written ==
		   oskr__frame_header_size(header.dst.id, header.src.id));
	FUZZ_CHECK(oskr__frame_write_header(out, (size_t)written - 1,
					    &header.dst, &header.src,
					    header.payload_len) == -ENOSPC);
	uint8_t *again = malloc((size_t)written + header.payload_len);
	FUZZ_CHECK(again);
	memcpy(again, out, (size_t)written);
	if (header.payload_len)
		memcpy(again + written, data + header.header_size,
		       header.payload_len);
	struct oskr__frame_header decoded;
	FUZZ_CHECK(oskr__frame_decode(again,
				      (size_t)written + header.payload_len,
				      NULL, &decoded) == OSKR_FRAME_OK);
	FUZZ_CHECK(oskr__frame_endpoint_equal(&decoded.dst, &header.dst));
	FUZZ_CHECK(oskr__frame_endpoint_equal(&decoded.src, &header.src));
	FUZZ_CHECK(decoded.payload_len == header.payload_len);
	FUZZ_CHECK(decoded.header_size == (uint32_t)written);
	free(again);

	char text[OSKR_FRAME_ENDPOINT_TEXT];
	oskr__frame_endpoint_format(&header.src, text, sizeof(text));
	FUZZ_CHECK(memchr(text, '\0', sizeof(text)) != NULL);
	(void)oskr__frame_endpoint_hash(&header.src);
}

static void check_addr(const uint8_t *data, size_t size)
{
	struct oskr_addr addr;
	if (size < sizeof(addr.bytes))
		return;
	memcpy(addr.bytes, data, sizeof(addr.bytes));
	struct oskr__frame_endpoint endpoint;
	if (oskr__frame_addr_unpack(&addr, &endpoint) != 0)
		return;
	FUZZ_CHECK(endpoint.id <= OSKR_FRAME_ID_MAX);
	struct oskr_addr packed;
	oskr__frame_addr_pack(&endpoint, &packed);
	/* One canonical form: what unpacks packs back to the same bytes. */
	FUZZ_CHECK(memcmp(&packed, &addr, sizeof(addr)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_frame(data, size, NULL);
	check_addr(data, size);

	/* A filter from the input's tail: local MAC%id, maybe multicast. */
	if (size >= 2 * OSKR_FRAME_MAC_SIZE + 5) {
		const uint8_t *tail = data + size - (2 * OSKR_FRAME_MAC_SIZE + 5);
		struct oskr__frame_filter filter;
		memset(&filter, 0, sizeof(filter));
		memcpy(filter.local.mac, tail, OSKR_FRAME_MAC_SIZE);
		filter.local.id = (uint16_t)((tail[6] << 8 | tail[7]) &
					     OSKR_FRAME_ID_MAX);
		filter.has_multicast = tail[8] & 1;
		memcpy(filter.multicast.mac, tail + 9, OSKR_FRAME_MAC_SIZE);
		filter.multicast.id = (uint16_t)((tail[15] << 8 | tail[16]) &
						 OSKR_FRAME_ID_MAX);
		check_frame(data, size, &filter);
	}
	return 0;
}
