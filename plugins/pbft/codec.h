/* SPDX-License-Identifier: MIT */
/*
 * PBFT wire format (docs/pbft.md has the byte layouts). Every integer is
 * little-endian. Every message starts with a one-byte type. Every message
 * except a client REQUEST is signed by the sending replica: the body is
 * followed by `u8 sig_len, sig[sig_len]`, the signature covering the body.
 * PRE-PREPARE is the one exception in layout: its signature covers only
 * the fixed header (type, view, seq, digest, replica) and the batch follows
 * the signature, bound by the digest. That makes a pre-prepare storable and
 * forwardable inside certificates without its batch (TOCS'02 §4.4 "without
 * the corresponding client message").
 *
 * Certificates (checkpoint proofs, prepared certificates, commit
 * certificates) carry only `(replica, sig)` pairs: the verifier rebuilds
 * the signed body of the original message from the fields they share.
 *
 * Decoders are length-checked and validate structure (counts, ids, sizes);
 * they never verify signatures (oskr__pbft_verify_msg does, in the
 * stateless receive task).
 */
#ifndef OSKR_PBFT_CODEC_H
#define OSKR_PBFT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <oskr/plugin.h>

/* n is limited to 64 so that vote sets are one 64-bit mask. */
#define PBFT_MAX_REPLICAS 64

enum pbft_msg_type {
	PBFT_REQUEST = 1, /* client -> replica, unsigned */
	PBFT_RELAY = 2, /* backup -> primary: a client's request + address */
	PBFT_PRE_PREPARE = 3,
	PBFT_PREPARE = 4,
	PBFT_COMMIT = 5,
	PBFT_REPLY = 6,
	PBFT_CHECKPOINT = 7,
	PBFT_VIEW_CHANGE = 8,
	PBFT_NEW_VIEW = 9,
	PBFT_FETCH_VIEW_CHANGE = 10,
	PBFT_FETCH_NEW_VIEW = 11,
	PBFT_FETCH_ENTRIES = 12,
	PBFT_ENTRY = 13,
	PBFT_STABLE = 14,
	PBFT_FETCH_BATCH = 15,
	PBFT_BATCH = 16,
	PBFT_FETCH_CHUNK = 17,
	PBFT_CHUNK = 18,
	PBFT_MSG_TYPE_END,
};

/* Fixed sizes. */
#define PBFT_DIGEST OSKR_DIGEST_SIZE
/* type, view, seq, digest, replica */
#define PBFT_ORDER_BODY (1 + 8 + 8 + PBFT_DIGEST + 2)
/* type, seq, digest, replica */
#define PBFT_CHECKPOINT_BODY (1 + 8 + PBFT_DIGEST + 2)
/* client_id, request_number, addr, op_len (then op) */
#define PBFT_REQUEST_HEADER (8 + 8 + OSKR_ADDR_SIZE + 4)
/* a (replica, sig) pair at most */
#define PBFT_SIG_PAIR_MAX (2 + 1 + OSKR_SIGNATURE_MAX)
/* the trailer of a signed message at most */
#define PBFT_SIG_TRAILER_MAX (1 + OSKR_SIGNATURE_MAX)

/* ---- byte writer / reader ---- */

struct pbft_writer {
	uint8_t *data;
	size_t len, capacity;
	bool overflow;
};

static inline void pbft_put(struct pbft_writer *w, const void *src, size_t n)
{
	if (w->overflow || w->capacity - w->len < n) {
		w->overflow = true;
		return;
	}
	if (n)
		memcpy(w->data + w->len, src, n);
	w->len += n;
}

static inline void pbft_put_u8(struct pbft_writer *w, uint8_t v)
{
	pbft_put(w, &v, 1);
}

static inline void pbft_put_u16(struct pbft_writer *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	pbft_put(w, b, 2);
}

static inline void pbft_put_u32(struct pbft_writer *w, uint32_t v)
{
	uint8_t b[4];
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	pbft_put(w, b, 4);
}

static inline void pbft_put_u64(struct pbft_writer *w, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	pbft_put(w, b, 8);
}

struct pbft_reader {
	const uint8_t *data;
	size_t len, pos;
	bool bad;
};

static inline const uint8_t *pbft_get(struct pbft_reader *r, size_t n)
{
	if (r->bad || r->len - r->pos < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->data + r->pos;
	r->pos += n;
	return p;
}

static inline uint8_t pbft_get_u8(struct pbft_reader *r)
{
	const uint8_t *p = pbft_get(r, 1);
	return p ? p[0] : 0;
}

static inline uint16_t pbft_get_u16(struct pbft_reader *r)
{
	const uint8_t *p = pbft_get(r, 2);
	return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

static inline uint32_t pbft_get_u32(struct pbft_reader *r)
{
	const uint8_t *p = pbft_get(r, 4);
	uint32_t v = 0;
	for (int i = 0; p && i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static inline uint64_t pbft_get_u64(struct pbft_reader *r)
{
	const uint8_t *p = pbft_get(r, 8);
	uint64_t v = 0;
	for (int i = 0; p && i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* ---- decoded messages (pointers into the received bytes) ---- */

/** One client request, as carried in REQUEST, RELAY and batches. */
struct pbft_request {
	uint64_t client_id;
	uint64_t request_number;
	struct oskr_addr addr; /* where replies go (zero in a REQUEST) */
	uint32_t op_len;
	const uint8_t *op;
};

/** A (replica, signature) pair inside a certificate. */
struct pbft_sig_pair {
	uint16_t replica;
	uint8_t sig_len;
	const uint8_t *sig;
};

/** A list of sig pairs, already structurally validated. */
struct pbft_sig_list {
	uint8_t count;
	const uint8_t *data;
	size_t len;
};

/** One prepared certificate inside a VIEW-CHANGE (TOCS'02 §4.4, P set):
 *  the pre-prepare (view, seq, digest, primary's sig) and 2f prepares. */
struct pbft_prepared_cert {
	uint64_t view, seq;
	uint8_t digest[PBFT_DIGEST];
	uint8_t pp_sig_len;
	const uint8_t *pp_sig;
	struct pbft_sig_list prepares;
};

/** One pre-prepare of a NEW-VIEW's O set (view and primary implied). */
struct pbft_o_entry {
	uint64_t seq;
	uint8_t digest[PBFT_DIGEST];
	uint8_t sig_len;
	const uint8_t *sig;
};

struct pbft_msg {
	uint8_t type;
	uint16_t replica; /* signer (not for REQUEST) */
	/* the signed region and the signature (not for REQUEST) */
	const uint8_t *signed_body;
	size_t signed_len;
	uint8_t sig_len;
	const uint8_t *sig;
	/* the whole message */
	const uint8_t *raw;
	size_t raw_len;
	union {
		struct pbft_request request; /* REQUEST, RELAY */
		struct { /* PRE_PREPARE, PREPARE, COMMIT */
			uint64_t view, seq;
			uint8_t digest[PBFT_DIGEST];
			const uint8_t *batch; /* PRE_PREPARE only */
			uint32_t batch_len;
		} order;
		struct {
			uint64_t view, client_id, request_number;
			const uint8_t *result;
			uint32_t result_len;
		} reply;
		struct { /* CHECKPOINT, STABLE (proof) */
			uint64_t seq;
			uint8_t digest[PBFT_DIGEST];
			struct pbft_sig_list proof; /* STABLE only */
		} checkpoint;
		struct {
			uint64_t new_view, stable_seq;
			uint8_t stable_digest[PBFT_DIGEST];
			struct pbft_sig_list proof;
			uint16_t prepared_count;
			const uint8_t *prepared;
			size_t prepared_len;
		} view_change;
		struct {
			uint64_t view;
			uint8_t vc_count;
			const uint8_t *vcs; /* (u16 replica, digest) pairs */
			uint64_t min_s, max_s;
			uint16_t o_count;
			const uint8_t *o;
			size_t o_len;
		} new_view;
		struct { /* FETCH_VIEW_CHANGE, FETCH_NEW_VIEW */
			uint64_t view;
			uint16_t target;
		} fetch_view;
		struct { /* FETCH_ENTRIES */
			uint64_t from_seq;
		} fetch_entries;
		struct { /* ENTRY: a committed batch with its commit cert */
			uint64_t view, seq;
			uint8_t digest[PBFT_DIGEST];
			struct pbft_sig_list commits;
			const uint8_t *batch;
			uint32_t batch_len;
		} entry;
		struct { /* FETCH_BATCH, BATCH */
			uint64_t seq;
			uint8_t digest[PBFT_DIGEST];
			const uint8_t *batch; /* BATCH only */
			uint32_t batch_len;
		} batch;
		struct { /* FETCH_CHUNK, CHUNK */
			uint64_t seq;
			uint8_t digest[PBFT_DIGEST];
			uint64_t offset;
			uint64_t total; /* CHUNK only */
			const uint8_t *data;
			uint32_t data_len;
		} chunk;
	};
};

/** Decode @p len bytes into @p out, checking every length and that
 *  replica ids are below @p replica_count. Returns 0 or -EBADMSG (with
 *  *why naming the reason, a static string usable as a counter suffix). */
int oskr__pbft_decode(const uint8_t *data, size_t len, uint32_t replica_count,
		      struct pbft_msg *out, const char **why);

/* List iteration over validated lists: each returns false at the end. */
bool oskr__pbft_next_sig(struct pbft_reader *r, struct pbft_sig_pair *out);
bool oskr__pbft_next_prepared(struct pbft_reader *r,
			      struct pbft_prepared_cert *out);
bool oskr__pbft_next_o_entry(struct pbft_reader *r, struct pbft_o_entry *out);
bool oskr__pbft_next_vc_ref(struct pbft_reader *r, uint16_t *replica,
			    const uint8_t **digest);
static inline struct pbft_reader pbft_list_reader(const uint8_t *data,
						  size_t len)
{
	return (struct pbft_reader){ .data = data, .len = len };
}

/** Decode the requests of a batch: calls @p fn for each. A batch is
 *  `u32 count, count × request`. Returns 0 or -EBADMSG. With @p fn NULL
 *  it only validates. */
int oskr__pbft_batch_each(const uint8_t *batch, size_t len,
			  void (*fn)(void *arg, const struct pbft_request *req),
			  void *arg);
/** Append one request to a batch being built (the count is patched by
 *  the caller at offset 0). */
void oskr__pbft_put_request(struct pbft_writer *w,
			    const struct pbft_request *req);
static inline size_t pbft_request_size(uint32_t op_len)
{
	return PBFT_REQUEST_HEADER + op_len;
}

/* ---- signed bodies rebuilt for certificate verification ---- */

/** Body of PRE_PREPARE / PREPARE / COMMIT (PBFT_ORDER_BODY bytes). */
void oskr__pbft_order_body(uint8_t out[PBFT_ORDER_BODY], uint8_t type,
			   uint64_t view, uint64_t seq,
			   const uint8_t digest[PBFT_DIGEST], uint16_t replica);
/** Body of CHECKPOINT (PBFT_CHECKPOINT_BODY bytes). */
void oskr__pbft_checkpoint_body(uint8_t out[PBFT_CHECKPOINT_BODY],
				uint64_t seq,
				const uint8_t digest[PBFT_DIGEST],
				uint16_t replica);

/** Put a `(u16 replica, u8 len, sig)` pair. */
static inline void pbft_put_sig_pair(struct pbft_writer *w, uint16_t replica,
				     const uint8_t *sig, uint8_t sig_len)
{
	pbft_put_u16(w, replica);
	pbft_put_u8(w, sig_len);
	pbft_put(w, sig, sig_len);
}

#endif
