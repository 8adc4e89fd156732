/* SPDX-License-Identifier: MIT */
/*
 * HotStuff wire format: pure, host-independent encoders and length-checked
 * decoders. Every integer is little-endian and fixed width; every variable
 * part is preceded by its length, and decoders check each length against
 * what is left of the buffer before reading. Decoded "refs" point into the
 * decoded buffer (no copies): the caller keeps the buffer alive.
 *
 * Layout (see docs/hotstuff.md for the full table):
 *   header   := magic u16 (0x5348 "HS") | version u8 (1) | type u8
 *   qc       := view u64 | digest[32] | count u16 | count * sigentry
 *   sigentry := replica u16 | sig_len u8 | sig[sig_len]
 *   block    := parent[32] | height u64 | view u64 | proposer u16 | qc |
 *               request_count u32 | request_count * request
 *   request  := client_id u64 | request_number u64 | addr[32] |
 *               op_len u32 | op[op_len]
 */
#ifndef OSKR_PLUGINS_HOTSTUFF_CODEC_H
#define OSKR_PLUGINS_HOTSTUFF_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oskr/plugin.h>

#define OSKR__HS_MAGIC 0x5348u
#define OSKR__HS_VERSION 1u
#define OSKR__HS_HEADER_SIZE 4u
/** Upper bound on n: signer sets are 64-bit masks. */
#define OSKR__HS_MAX_REPLICAS 64u
#define OSKR__HS_DIGEST OSKR_DIGEST_SIZE
#define OSKR__HS_SIG_ENTRY_MAX (2u + 1u + OSKR_SIGNATURE_MAX)
#define OSKR__HS_QC_FIXED (8u + OSKR__HS_DIGEST + 2u)
#define OSKR__HS_QC_MAX_BYTES \
	(OSKR__HS_QC_FIXED + OSKR__HS_MAX_REPLICAS * OSKR__HS_SIG_ENTRY_MAX)
#define OSKR__HS_BLOCK_FIXED (OSKR__HS_DIGEST + 8u + 8u + 2u)
#define OSKR__HS_REQUEST_FIXED (8u + 8u + OSKR_ADDR_SIZE + 4u)
/** Bytes of the canonical payload a vote (and so a QC) signs. */
#define OSKR__HS_VOTE_PAYLOAD 44u
/** Bytes of the canonical payload a proposal signature covers. */
#define OSKR__HS_PROPOSAL_PAYLOAD 44u

enum oskr__hs_msg_type {
	OSKR__HS_MSG_REQUEST = 1, /* client -> replicas */
	OSKR__HS_MSG_PROPOSAL = 2, /* leader -> replicas */
	OSKR__HS_MSG_VOTE = 3, /* replica -> next leader */
	OSKR__HS_MSG_NEW_VIEW = 4, /* replica -> leader of the new view */
	OSKR__HS_MSG_FETCH = 5, /* replica -> peer: send me block D */
	OSKR__HS_MSG_BLOCKS = 6, /* peer -> replica: D and ancestors */
	OSKR__HS_MSG_REPLY = 7, /* replica -> client */
	/* state transfer (transfer.c; our addition, docs/hotstuff.md) */
	OSKR__HS_MSG_CKPT_REQUEST = 8, /* laggard -> peers: your checkpoint */
	OSKR__HS_MSG_CKPT_OFFER = 9, /* peer -> laggard: signed vouch (+root) */
	OSKR__HS_MSG_CKPT_FETCH = 10, /* laggard -> peer: state bytes at off */
	OSKR__HS_MSG_CKPT_CHUNK = 11, /* peer -> laggard: one chunk */
};

/* ---- decoded views (pointers into the decoded bytes) ---- */

struct oskr__hs_sig_ref {
	uint16_t replica;
	uint8_t len;
	const uint8_t *bytes;
};

struct oskr__hs_qc_ref {
	uint64_t view;
	const uint8_t *digest;
	uint16_t count;
	struct oskr__hs_sig_ref sigs[OSKR__HS_MAX_REPLICAS];
	const uint8_t *raw; /* the whole encoded QC */
	size_t raw_len;
};

struct oskr__hs_block_ref {
	const uint8_t *raw; /* the whole encoded block (what is hashed) */
	size_t raw_len;
	const uint8_t *parent;
	uint64_t height;
	uint64_t view;
	uint16_t proposer;
	struct oskr__hs_qc_ref justify;
	uint32_t request_count;
	const uint8_t *requests; /* request_count encoded requests */
	size_t requests_len;
};

struct oskr__hs_request_ref {
	uint64_t client_id;
	uint64_t request_number;
	const uint8_t *addr; /* OSKR_ADDR_SIZE bytes */
	uint32_t op_len;
	const uint8_t *op;
};

struct oskr__hs_vote_ref {
	uint16_t voter;
	uint64_t view;
	const uint8_t *digest;
	uint8_t sig_len;
	const uint8_t *sig;
};

struct oskr__hs_proposal_ref {
	struct oskr__hs_block_ref block;
	uint8_t sig_len;
	const uint8_t *sig;
};

struct oskr__hs_new_view_ref {
	uint16_t sender;
	uint64_t view; /* the view the sender moves to */
	struct oskr__hs_qc_ref qc; /* sender's highest QC */
	bool has_vote; /* sender's last vote, re-sent to this leader */
	struct oskr__hs_vote_ref vote;
	size_t signed_len; /* signature covers bytes [0, signed_len) */
	uint8_t sig_len;
	const uint8_t *sig;
};

struct oskr__hs_fetch_ref {
	uint16_t max_blocks;
	const uint8_t *digest;
};

struct oskr__hs_blocks_ref {
	uint16_t count;
	const uint8_t *entries; /* count * (len u32 | block) */
	size_t entries_len;
};

struct oskr__hs_request_msg_ref {
	uint64_t client_id;
	uint64_t request_number;
	uint32_t op_len;
	const uint8_t *op;
};

struct oskr__hs_reply_ref {
	uint16_t replica;
	uint64_t client_id;
	uint64_t request_number;
	uint32_t result_len;
	const uint8_t *result;
	size_t signed_len;
	uint8_t sig_len;
	const uint8_t *sig;
};

/** CKPT-REQUEST: the sender wants a checkpoint above @c min_height;
 *  with a target, only a vouch for that checkpoint block. */
struct oskr__hs_ckpt_request_ref {
	uint16_t sender;
	uint64_t min_height;
	bool has_target;
	const uint8_t *target; /* digest[32] (zeros without a target) */
};

/** A replica's signed statement "after executing block (height, digest)
 *  the state (executed_ops, committed_blocks, state_len bytes hashing to
 *  state_digest) is what I checkpointed". */
struct oskr__hs_vouch_ref {
	uint16_t sender;
	uint64_t height;
	const uint8_t *block_digest;
	uint64_t executed_ops;
	uint64_t committed_blocks;
	uint64_t state_len;
	const uint8_t *state_digest;
	uint8_t sig_len;
	const uint8_t *sig;
};

struct oskr__hs_ckpt_offer_ref {
	struct oskr__hs_vouch_ref vouch;
	bool has_block; /* the root block and its QC follow */
	struct oskr__hs_block_ref block;
	struct oskr__hs_qc_ref qc;
};

struct oskr__hs_ckpt_fetch_ref {
	uint16_t sender;
	const uint8_t *block_digest;
	uint64_t offset;
};

struct oskr__hs_ckpt_chunk_ref {
	uint16_t sender;
	const uint8_t *block_digest;
	const uint8_t *state_digest;
	uint64_t total;
	uint64_t offset;
	uint32_t data_len;
	const uint8_t *data;
};

/* ---- writer ---- */

struct oskr__hs_writer {
	uint8_t *data;
	size_t capacity;
	size_t len;
	bool overflow; /* a put did not fit; len stays at the last fit */
};

void oskr__hs_writer_init(struct oskr__hs_writer *w, uint8_t *data,
			  size_t capacity);
void oskr__hs_put_u8(struct oskr__hs_writer *w, uint8_t v);
void oskr__hs_put_u16(struct oskr__hs_writer *w, uint16_t v);
void oskr__hs_put_u32(struct oskr__hs_writer *w, uint32_t v);
void oskr__hs_put_u64(struct oskr__hs_writer *w, uint64_t v);
void oskr__hs_put_bytes(struct oskr__hs_writer *w, const void *p, size_t n);
void oskr__hs_put_header(struct oskr__hs_writer *w, enum oskr__hs_msg_type t);
/** Overwrite a u32 already written at @p offset (request count patch). */
void oskr__hs_patch_u32(struct oskr__hs_writer *w, size_t offset, uint32_t v);

/** Encode a QC from parts. */
void oskr__hs_put_qc(struct oskr__hs_writer *w, uint64_t view,
		     const uint8_t digest[OSKR__HS_DIGEST], uint16_t count,
		     const uint16_t *replicas, const uint8_t *const *sigs,
		     const uint8_t *sig_lens);
/** Start a block; returns the offset of the request count to patch. */
size_t oskr__hs_put_block_head(struct oskr__hs_writer *w,
			       const uint8_t parent[OSKR__HS_DIGEST],
			       uint64_t height, uint64_t view,
			       uint16_t proposer, const uint8_t *qc_raw,
			       size_t qc_len);
void oskr__hs_put_request(struct oskr__hs_writer *w, uint64_t client_id,
			  uint64_t request_number,
			  const uint8_t addr[OSKR_ADDR_SIZE], const void *op,
			  uint32_t op_len);
static inline size_t oskr__hs_request_size(uint32_t op_len)
{
	return OSKR__HS_REQUEST_FIXED + op_len;
}

/** Canonical bytes a vote on (view, digest) signs. */
void oskr__hs_vote_payload(uint8_t out[OSKR__HS_VOTE_PAYLOAD], uint64_t view,
			   const uint8_t digest[OSKR__HS_DIGEST]);
/** Canonical bytes a leader's proposal signature covers. */
void oskr__hs_proposal_payload(uint8_t out[OSKR__HS_PROPOSAL_PAYLOAD],
			       uint64_t view,
			       const uint8_t digest[OSKR__HS_DIGEST]);

/* ---- decoders: return false on any malformed input ---- */

/** Message type of a buffer with a valid header, or 0. */
uint8_t oskr__hs_peek_type(const uint8_t *data, size_t len);
bool oskr__hs_decode_qc(const uint8_t *data, size_t len, size_t *used,
			struct oskr__hs_qc_ref *qc);
/** Decode a block occupying exactly @p len bytes. */
bool oskr__hs_decode_block(const uint8_t *data, size_t len,
			   struct oskr__hs_block_ref *b);
/** Iterate requests: *offset starts at 0; false at the end (or on a
 *  malformed entry, which decode_block has already ruled out). */
bool oskr__hs_next_request(const uint8_t *requests, size_t requests_len,
			   size_t *offset, struct oskr__hs_request_ref *r);

bool oskr__hs_decode_proposal(const uint8_t *data, size_t len,
			      struct oskr__hs_proposal_ref *m);
bool oskr__hs_decode_vote(const uint8_t *data, size_t len,
			  struct oskr__hs_vote_ref *m);
bool oskr__hs_decode_new_view(const uint8_t *data, size_t len,
			      struct oskr__hs_new_view_ref *m);
bool oskr__hs_decode_fetch(const uint8_t *data, size_t len,
			   struct oskr__hs_fetch_ref *m);
bool oskr__hs_decode_blocks(const uint8_t *data, size_t len,
			    struct oskr__hs_blocks_ref *m);
/** Iterate the blocks of a BLOCKS message (each already length-checked
 *  by decode_blocks; the block bytes themselves are decoded here). */
bool oskr__hs_next_block(const struct oskr__hs_blocks_ref *m, size_t *offset,
			 const uint8_t **block, size_t *block_len);
bool oskr__hs_decode_request(const uint8_t *data, size_t len,
			     struct oskr__hs_request_msg_ref *m);
bool oskr__hs_decode_reply(const uint8_t *data, size_t len,
			   struct oskr__hs_reply_ref *m);

bool oskr__hs_decode_ckpt_request(const uint8_t *data, size_t len,
				  struct oskr__hs_ckpt_request_ref *m);
bool oskr__hs_decode_ckpt_offer(const uint8_t *data, size_t len,
				struct oskr__hs_ckpt_offer_ref *m);
bool oskr__hs_decode_ckpt_fetch(const uint8_t *data, size_t len,
				struct oskr__hs_ckpt_fetch_ref *m);
bool oskr__hs_decode_ckpt_chunk(const uint8_t *data, size_t len,
				struct oskr__hs_ckpt_chunk_ref *m);

/** Bytes a vouch signature covers: "HSo1" | sender u16 | height u64 |
 *  block digest | executed_ops u64 | committed_blocks u64 | state_len u64
 *  | state digest. */
#define OSKR__HS_VOUCH_PAYLOAD (4u + 2u + 8u + 32u + 8u + 8u + 8u + 32u)
void oskr__hs_vouch_payload(uint8_t out[OSKR__HS_VOUCH_PAYLOAD],
			    const struct oskr__hs_vouch_ref *v);
/** Append a vouch (without its leading header) to @p w. */
void oskr__hs_put_vouch(struct oskr__hs_writer *w,
			const struct oskr__hs_vouch_ref *v);
/** Fixed bytes of a CKPT-CHUNK before its data. */
#define OSKR__HS_CHUNK_FIXED \
	(OSKR__HS_HEADER_SIZE + 2u + 32u + 32u + 8u + 8u + 4u)
/** Largest application state a replica accepts in a transfer (a
 *  Byzantine peer could claim any length). */
#define OSKR__HS_STATE_MAX (UINT64_C(1) << 32)

/** Largest BLOCKS message entries count we accept. */
#define OSKR__HS_MAX_FETCH_BLOCKS 64u

#endif
