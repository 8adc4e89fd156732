/* SPDX-License-Identifier: MIT */
/* The dpdk transport's framing; layout and rationale in frame.h. */
#include "frame.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define ID_TWO_BYTES 0x80u
#define ETHERTYPE_OFFSET 12

size_t oskr__frame_id_size(uint16_t id)
{
	if (id > OSKR_FRAME_ID_MAX)
		return 0;
	return id < ID_TWO_BYTES ? 1 : 2;
}

size_t oskr__frame_header_size(uint16_t dst_id, uint16_t src_id)
{
	size_t dst = oskr__frame_id_size(dst_id);
	size_t src = oskr__frame_id_size(src_id);
	if (!dst || !src)
		return 0;
	return OSKR_FRAME_ETH_SIZE + dst + src + 2;
}

static uint8_t *put_id(uint8_t *cursor, uint16_t id)
{
	if (id < ID_TWO_BYTES) {
		*cursor++ = (uint8_t)id;
	} else {
		*cursor++ = (uint8_t)(ID_TWO_BYTES | (id >> 8));
		*cursor++ = (uint8_t)(id & 0xff);
	}
	return cursor;
}

int oskr__frame_write_header(uint8_t *out, size_t room,
			     const struct oskr__frame_endpoint *dst,
			     const struct oskr__frame_endpoint *src,
			     size_t payload_len)
{
	size_t size = oskr__frame_header_size(dst->id, src->id);
	if (!size)
		return -EINVAL;
	if (payload_len > OSKR_FRAME_PAYLOAD_MAX)
		return -EMSGSIZE;
	if (room < size)
		return -ENOSPC;
	uint8_t *cursor = out;
	memcpy(cursor, dst->mac, OSKR_FRAME_MAC_SIZE);
	cursor += OSKR_FRAME_MAC_SIZE;
	memcpy(cursor, src->mac, OSKR_FRAME_MAC_SIZE);
	cursor += OSKR_FRAME_MAC_SIZE;
	*cursor++ = OSKR_FRAME_ETHERTYPE >> 8;
	*cursor++ = OSKR_FRAME_ETHERTYPE & 0xff;
	cursor = put_id(cursor, dst->id);
	cursor = put_id(cursor, src->id);
	*cursor++ = (uint8_t)(payload_len >> 8);
	*cursor++ = (uint8_t)(payload_len & 0xff);
	return (int)(cursor - out);
}

/* Reads one id at *offset; false if the frame ends inside it. */
static bool take_id(const uint8_t *frame, size_t len, size_t *offset,
		    uint16_t *id)
{
	if (*offset >= len)
		return false;
	uint8_t first = frame[(*offset)++];
	if (!(first & ID_TWO_BYTES)) {
		*id = first;
		return true;
	}
	if (*offset >= len)
		return false;
	*id = (uint16_t)(((first & 0x7fu) << 8) | frame[(*offset)++]);
	return true;
}

static bool mac_equal(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, OSKR_FRAME_MAC_SIZE) == 0;
}

enum oskr__frame_status
oskr__frame_decode(const uint8_t *frame, size_t len,
		   const struct oskr__frame_filter *filter,
		   struct oskr__frame_header *out)
{
	memset(out, 0, sizeof(*out));
	if (!frame || len < OSKR_FRAME_ETH_SIZE)
		return OSKR_FRAME_SHORT;
	memcpy(out->dst.mac, frame, OSKR_FRAME_MAC_SIZE);
	memcpy(out->src.mac, frame + OSKR_FRAME_MAC_SIZE, OSKR_FRAME_MAC_SIZE);
	unsigned ethertype = (unsigned)frame[ETHERTYPE_OFFSET] << 8 |
			     frame[ETHERTYPE_OFFSET + 1];
	if (ethertype != OSKR_FRAME_ETHERTYPE)
		return OSKR_FRAME_WRONG_TYPE;

	size_t offset = OSKR_FRAME_ETH_SIZE;
	if (!take_id(frame, len, &offset, &out->dst.id) ||
	    !take_id(frame, len, &offset, &out->src.id) || len - offset < 2)
		return OSKR_FRAME_SHORT;
	out->payload_len = (uint32_t)frame[offset] << 8 | frame[offset + 1];
	offset += 2;
	out->header_size = (uint32_t)offset;
	if (out->payload_len > len - offset)
		return OSKR_FRAME_TRUNCATED;

	if (!filter)
		return OSKR_FRAME_OK;
	if (mac_equal(out->dst.mac, filter->local.mac))
		return out->dst.id == filter->local.id ? OSKR_FRAME_OK
						       : OSKR_FRAME_UNKNOWN_DEST;
	if (filter->has_multicast &&
	    mac_equal(out->dst.mac, filter->multicast.mac))
		return out->dst.id == filter->multicast.id
			       ? OSKR_FRAME_OK
			       : OSKR_FRAME_UNKNOWN_DEST;
	return OSKR_FRAME_NOT_OURS;
}

const char *oskr__frame_status_name(enum oskr__frame_status status)
{
	static const char *const names[OSKR_FRAME_STATUS_COUNT] = {
		[OSKR_FRAME_OK] = "ok",
		[OSKR_FRAME_SHORT] = "short",
		[OSKR_FRAME_WRONG_TYPE] = "wrong_type",
		[OSKR_FRAME_NOT_OURS] = "not_ours",
		[OSKR_FRAME_UNKNOWN_DEST] = "unknown_dest",
		[OSKR_FRAME_TRUNCATED] = "truncated",
	};
	if ((unsigned)status >= OSKR_FRAME_STATUS_COUNT)
		return "unknown";
	return names[status];
}

enum oskr__drop_reason oskr__frame_drop_reason(enum oskr__frame_status status)
{
	switch (status) {
	case OSKR_FRAME_SHORT:
		return OSKR_DROP_SHORT;
	case OSKR_FRAME_WRONG_TYPE:
	case OSKR_FRAME_NOT_OURS:
		return OSKR_DROP_WRONG_TYPE;
	case OSKR_FRAME_UNKNOWN_DEST:
		return OSKR_DROP_UNKNOWN_DEST;
	case OSKR_FRAME_TRUNCATED:
		return OSKR_DROP_TRUNCATED;
	case OSKR_FRAME_OK:
	case OSKR_FRAME_STATUS_COUNT:
		break;
	}
	/* Not a drop: callers never ask. Count it somewhere visible rather
	 * than index out of range. */
	return OSKR_DROP_WRONG_TYPE;
}

#define ADDR_ID 6
#define ADDR_TAG 8
#define ADDR_USED 9

void oskr__frame_addr_pack(const struct oskr__frame_endpoint *endpoint,
			   struct oskr_addr *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->bytes, endpoint->mac, OSKR_FRAME_MAC_SIZE);
	out->bytes[ADDR_ID] = (uint8_t)(endpoint->id >> 8);
	out->bytes[ADDR_ID + 1] = (uint8_t)(endpoint->id & 0xff);
	out->bytes[ADDR_TAG] = OSKR_FRAME_ADDR_TAG;
}

int oskr__frame_addr_unpack(const struct oskr_addr *addr,
			    struct oskr__frame_endpoint *out)
{
	if (addr->bytes[ADDR_TAG] != OSKR_FRAME_ADDR_TAG)
		return -EINVAL;
	for (size_t i = ADDR_USED; i < sizeof(addr->bytes); i++)
		if (addr->bytes[i])
			return -EINVAL;
	uint16_t id = (uint16_t)(addr->bytes[ADDR_ID] << 8 |
				 addr->bytes[ADDR_ID + 1]);
	if (id > OSKR_FRAME_ID_MAX)
		return -EINVAL;
	memcpy(out->mac, addr->bytes, OSKR_FRAME_MAC_SIZE);
	out->id = id;
	return 0;
}

void oskr__frame_endpoint_format(const struct oskr__frame_endpoint *endpoint,
				 char *out, size_t size)
{
	const uint8_t *m = endpoint->mac;
	snprintf(out, size, "%02x:%02x:%02x:%02x:%02x:%02x%%%u", m[0], m[1],
		 m[2], m[3], m[4], m[5], (unsigned)endpoint->id);
}

bool oskr__frame_endpoint_equal(const struct oskr__frame_endpoint *a,
				const struct oskr__frame_endpoint *b)
{
	return a->id == b->id && mac_equal(a->mac, b->mac);
}

uint32_t oskr__frame_endpoint_hash(const struct oskr__frame_endpoint *endpoint)
{
	/* FNV-1a over MAC and id, then a murmur3 finalizer: consecutive ids
	 * must not land on consecutive rx threads in lock step. */
	uint32_t hash = 2166136261u;
	for (size_t i = 0; i < OSKR_FRAME_MAC_SIZE; i++)
		hash = (hash ^ endpoint->mac[i]) * 16777619u;
	hash = (hash ^ (endpoint->id >> 8)) * 16777619u;
	hash = (hash ^ (endpoint->id & 0xff)) * 16777619u;
	hash ^= hash >> 16;
	hash *= 0x85ebca6bu;
	hash ^= hash >> 13;
	hash *= 0xc2b2ae35u;
	hash ^= hash >> 16;
	return hash;
}
