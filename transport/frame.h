/* SPDX-License-Identifier: MIT */
/*
 * The Ethernet framing of the dpdk transport, in pure C (no DPDK headers):
 * it is linked into the host core, unit tested and fuzzed on its own.
 *
 * Wire layout (all multi-byte fields big endian):
 *
 *   0      6 B   destination MAC
 *   6      6 B   source MAC
 *   12     2 B   ethertype 0x88d5 (IEEE "local experimental" range)
 *   14     1-2 B destination id
 *   ..     1-2 B source id
 *   ..     2 B   payload length L
 *   ..     L B   payload (the plugin's message)
 *   ..           anything after the payload is link padding and ignored
 *
 * An id is 15 bits (0..0x7fff), encoded in one byte when id < 128 (top bit
 * clear) and otherwise in two bytes, the first with its top bit set:
 *   id < 128:  [id]
 *   id >= 128: [0x80 | id >> 8] [id & 0xff]
 * A two-byte encoding of an id below 128 is accepted on receive (it
 * decodes to the same id) and never produced.
 *
 * Seed compatibility: the addressing is the seed's (the Rust "oskr"
 * project): `MAC%id` endpoints on ethertype 0x88d5, destination id then
 * source id right after the Ethernet header, replica ids < 128 in one
 * byte, client (ephemeral) ids up to 0x7fff. We could not find the seed's
 * exact 7/15-bit code in the public copies we searched (they show two
 * older layouts: one-byte ids at bytes 14/15, and big-endian 16-bit ids at
 * bytes 14/16), so the layout above is ours, chosen to agree with the
 * seed's one-byte form for replica ids. The explicit payload length is
 * ours too: real NICs pad frames to the 60-byte Ethernet minimum, so
 * without it a short message's length is ambiguous (the seed's messages
 * were self-delimiting; plugin messages here are not).
 *
 * Note the seed's example multicast id 255 needs the two-byte form here.
 */
#ifndef OSKR_TRANSPORT_FRAME_H
#define OSKR_TRANSPORT_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oskr/plugin.h>

#include "transport.h"

#define OSKR_FRAME_ETHERTYPE 0x88d5
#define OSKR_FRAME_MAC_SIZE 6
#define OSKR_FRAME_ETH_SIZE 14
/** Largest id the 7/15-bit encoding carries. */
#define OSKR_FRAME_ID_MAX 0x7fff
/** Header bytes before the payload: 18 with two one-byte ids, 20 with two
 *  two-byte ids. */
#define OSKR_FRAME_HEADER_MIN 18
#define OSKR_FRAME_HEADER_MAX 20
/** The length field is 16 bits. */
#define OSKR_FRAME_PAYLOAD_MAX 0xffff

/** One end of a link: "12:34:56:aa:aa:aa%3". */
struct oskr__frame_endpoint {
	uint8_t mac[OSKR_FRAME_MAC_SIZE];
	uint16_t id; /* <= OSKR_FRAME_ID_MAX */
};

/** What a receiver accepts: frames to its own endpoint, and (optionally)
 *  to one multicast endpoint. */
struct oskr__frame_filter {
	struct oskr__frame_endpoint local;
	bool has_multicast;
	struct oskr__frame_endpoint multicast;
};

/** Every outcome of decoding one frame. */
enum oskr__frame_status {
	OSKR_FRAME_OK = 0,
	OSKR_FRAME_SHORT, /* ends inside the Ethernet header, ids or length */
	OSKR_FRAME_WRONG_TYPE, /* ethertype is not 0x88d5 */
	OSKR_FRAME_NOT_OURS, /* destination MAC is neither ours nor multicast */
	OSKR_FRAME_UNKNOWN_DEST, /* our MAC, but not our (multicast) id */
	OSKR_FRAME_TRUNCATED, /* payload length runs past the frame */
	OSKR_FRAME_STATUS_COUNT,
};

struct oskr__frame_header {
	struct oskr__frame_endpoint dst, src;
	uint32_t header_size; /* bytes before the payload */
	uint32_t payload_len;
};

/** Bytes the encoding of @p id takes: 1 or 2 (0 if id is out of range). */
size_t oskr__frame_id_size(uint16_t id);
/** Header size for a frame between these ids (0 if one is out of range). */
size_t oskr__frame_header_size(uint16_t dst_id, uint16_t src_id);

/**
 * Write the header of a frame carrying @p payload_len bytes into @p out
 * (room for @p room bytes); the payload goes right after it.
 * @return the header size, or -EINVAL (id out of range), -EMSGSIZE
 * (payload_len > OSKR_FRAME_PAYLOAD_MAX) or -ENOSPC (room too small).
 */
int oskr__frame_write_header(uint8_t *out, size_t room,
			     const struct oskr__frame_endpoint *dst,
			     const struct oskr__frame_endpoint *src,
			     size_t payload_len);

/**
 * Decode the frame of @p len bytes at @p frame. Reads only inside
 * [frame, frame + len). With a @p filter, a frame not addressed to it is
 * refused (NOT_OURS / UNKNOWN_DEST); NULL accepts any destination.
 * On OSKR_FRAME_OK, *out describes the frame and
 * out->header_size + out->payload_len <= len. On any other status *out
 * holds whatever could be parsed (possibly nothing).
 */
enum oskr__frame_status
oskr__frame_decode(const uint8_t *frame, size_t len,
		   const struct oskr__frame_filter *filter,
		   struct oskr__frame_header *out);

/** "ok", "short", "wrong_type", "not_ours", "unknown_dest", "truncated". */
const char *oskr__frame_status_name(enum oskr__frame_status status);
/** The transport drop reason a failed decode is counted under (NOT_OURS
 *  counts as OSKR_DROP_WRONG_TYPE: "wrong ethertype / not ours"). Must not
 *  be called with OSKR_FRAME_OK. */
enum oskr__drop_reason oskr__frame_drop_reason(enum oskr__frame_status status);

/**
 * struct oskr_addr layout for the dpdk transport (other bytes zero, so
 * memcmp compares endpoints):
 *   [0..5]  MAC
 *   [6..7]  id, big endian
 *   [8]     OSKR_FRAME_ADDR_TAG (0 would be "not a dpdk address")
 */
#define OSKR_FRAME_ADDR_TAG 0xe1
void oskr__frame_addr_pack(const struct oskr__frame_endpoint *endpoint,
			   struct oskr_addr *out);
/** 0, or -EINVAL if @p addr is not a dpdk address (wrong tag, non-zero
 *  padding, id out of range): it may come from a message on the wire. */
int oskr__frame_addr_unpack(const struct oskr_addr *addr,
			    struct oskr__frame_endpoint *out);

/** "12:34:56:aa:aa:aa%3" into @p out (at least OSKR_FRAME_ENDPOINT_TEXT). */
#define OSKR_FRAME_ENDPOINT_TEXT 24
void oskr__frame_endpoint_format(const struct oskr__frame_endpoint *endpoint,
				 char *out, size_t size);
bool oskr__frame_endpoint_equal(const struct oskr__frame_endpoint *a,
				const struct oskr__frame_endpoint *b);
/** A well-mixed 32-bit hash of an endpoint (spreads senders over rx
 *  threads). */
uint32_t oskr__frame_endpoint_hash(const struct oskr__frame_endpoint *endpoint);

#endif
