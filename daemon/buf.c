/* SPDX-License-Identifier: MIT */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

void oskr__buf_hold(struct oskr_buf *buf)
{
	atomic_fetch_add_explicit(&oskr__buf_from_pub(buf)->refs, 1,
				  memory_order_relaxed);
}

void oskr__buf_release(struct oskr_buf *buf)
{
	if (!buf)
		return;
	struct oskr__buf *b = oskr__buf_from_pub(buf);
	/* acq_rel: the freeing thread must see every write made by the
	 * threads that dropped earlier references. */
	if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
		b->free_fn(b);
}

static void heap_free(struct oskr__buf *buf)
{
	free(buf);
}

struct oskr_buf *oskr__buf_heap_alloc(size_t capacity)
{
	if (capacity > UINT32_MAX)
		return NULL;
	struct oskr__buf *b = malloc(sizeof(*b) + capacity);
	if (!b)
		return NULL;
	b->pub.data = (uint8_t *)(b + 1);
	b->pub.len = (uint32_t)capacity;
	b->pub.capacity = (uint32_t)capacity;
	atomic_init(&b->refs, 1);
	b->free_fn = heap_free;
	b->owner = NULL;
	memset(&b->from, 0, sizeof(b->from));
	b->from_replica = -1;
	return &b->pub;
}

struct oskr_buf *oskr__buf_heap_copy(const void *data, size_t len)
{
	struct oskr_buf *buf = oskr__buf_heap_alloc(len);
	if (buf && len)
		memcpy(buf->data, data, len);
	return buf;
}
