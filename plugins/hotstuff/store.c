/* SPDX-License-Identifier: MIT */
/*
 * Block store: every block this replica holds, keyed by digest. Blocks are
 * self-contained copies of their encoding (so no received buffer is kept
 * alive by the tree), with parent pointers resolved when the parent is
 * present. Connected blocks (whose parent chain reaches the executed
 * block) and orphans (waiting for an ancestor, see fetch.c) live on two
 * lists, so pruning (core.c) visits only stored blocks, never the table.
 */
#include <stdlib.h>
#include <string.h>

#include "hotstuff.h"

static void list_init(struct oskr__hs_block *head)
{
	head->list_next = head;
	head->list_prev = head;
}

static void list_unlink(struct oskr__hs_block *b)
{
	b->list_prev->list_next = b->list_next;
	b->list_next->list_prev = b->list_prev;
	b->list_next = b->list_prev = NULL;
}

static void list_append(struct oskr__hs_block *head, struct oskr__hs_block *b)
{
	b->list_prev = head->list_prev;
	b->list_next = head;
	head->list_prev->list_next = b;
	head->list_prev = b;
}

static size_t bucket_of(const struct oskr__hs_store *s, const uint8_t *digest)
{
	uint64_t h;

	/* Digests are SHA-256 outputs: any 8 bytes are uniformly spread. */
	memcpy(&h, digest, sizeof(h));
	return (size_t)h & s->bucket_mask;
}

int oskr__hs_store_init(struct oskr__hs_store *s, size_t buckets)
{
	size_t size = 64;

	while (size < buckets)
		size <<= 1;
	s->buckets = calloc(size, sizeof(*s->buckets));
	if (!s->buckets)
		return -ENOMEM;
	s->bucket_mask = size - 1;
	list_init(&s->connected);
	list_init(&s->orphans);
	s->connected_count = 0;
	s->orphan_count = 0;
	s->bytes = 0;
	return 0;
}

void oskr__hs_store_fini(struct oskr__hs_store *s)
{
	if (!s->buckets)
		return;
	for (size_t i = 0; i <= s->bucket_mask; i++) {
		struct oskr__hs_block *b = s->buckets[i];

		while (b) {
			struct oskr__hs_block *next = b->hash_next;

			free(b);
			b = next;
		}
	}
	free(s->buckets);
	s->buckets = NULL;
}

struct oskr__hs_block *oskr__hs_store_find(struct oskr__hs_store *s,
					   const uint8_t *digest)
{
	struct oskr__hs_block *b = s->buckets[bucket_of(s, digest)];

	for (; b; b = b->hash_next)
		if (!memcmp(b->digest, digest, OSKR__HS_DIGEST))
			return b;
	return NULL;
}

int oskr__hs_block_new(const struct oskr__hs_block_ref *ref,
		       const uint8_t digest[OSKR__HS_DIGEST],
		       struct oskr__hs_block **out)
{
	struct oskr__hs_block *b = malloc(sizeof(*b) + ref->raw_len);

	if (!b)
		return -ENOMEM;
	memset(b, 0, sizeof(*b));
	b->raw_len = ref->raw_len;
	memcpy(b->raw, ref->raw, ref->raw_len);
	memcpy(b->digest, digest, OSKR__HS_DIGEST);
	memcpy(b->parent_digest, ref->parent, OSKR__HS_DIGEST);
	b->height = ref->height;
	b->view = ref->view;
	b->proposer = ref->proposer;
	b->justify_view = ref->justify.view;
	memcpy(b->justify_digest, ref->justify.digest, OSKR__HS_DIGEST);
	b->justify_raw = b->raw + (ref->justify.raw - ref->raw);
	b->justify_len = ref->justify.raw_len;
	b->request_count = ref->request_count;
	b->requests = b->raw + (ref->requests - ref->raw);
	b->requests_len = ref->requests_len;
	*out = b;
	return 0;
}

void oskr__hs_store_add(struct oskr__hs_store *s, struct oskr__hs_block *b,
			bool connected)
{
	size_t i = bucket_of(s, b->digest);

	b->hash_next = s->buckets[i];
	s->buckets[i] = b;
	b->connected = connected;
	if (connected) {
		list_append(&s->connected, b);
		s->connected_count++;
	} else {
		list_append(&s->orphans, b);
		s->orphan_count++;
	}
	s->bytes += sizeof(*b) + b->raw_len;
}

void oskr__hs_store_mark_connected(struct oskr__hs_store *s,
				   struct oskr__hs_block *b)
{
	if (b->connected)
		return;
	list_unlink(b);
	s->orphan_count--;
	b->connected = true;
	list_append(&s->connected, b);
	s->connected_count++;
}

void oskr__hs_store_remove(struct oskr__hs_store *s, struct oskr__hs_block *b)
{
	struct oskr__hs_block **pp = &s->buckets[bucket_of(s, b->digest)];

	while (*pp && *pp != b)
		pp = &(*pp)->hash_next;
	if (*pp)
		*pp = b->hash_next;
	list_unlink(b);
	if (b->connected)
		s->connected_count--;
	else
		s->orphan_count--;
	s->bytes -= sizeof(*b) + b->raw_len;
	free(b);
}

bool oskr__hs_block_extends(const struct oskr__hs_block *b,
			    const struct oskr__hs_block *ancestor)
{
	/* Heights strictly decrease along parent links (checked on insert),
	 * so this walk is bounded by the height difference. */
	while (b && b != ancestor && b->height > ancestor->height)
		b = b->parent;
	return b == ancestor;
}

void oskr__hs_qc_from_ref(struct oskr__hs_qc *dst,
			  const struct oskr__hs_qc_ref *ref)
{
	dst->view = ref->view;
	memcpy(dst->digest, ref->digest, OSKR__HS_DIGEST);
	dst->len = (uint32_t)ref->raw_len;
	memcpy(dst->bytes, ref->raw, ref->raw_len);
}
