/* SPDX-License-Identifier: MIT */
/* Host-side buffer bookkeeping behind the public struct oskr_buf. Every
 * transport allocates buffers of this shape; the reference count and the
 * release hook make zero-copy receive possible (a DPDK mbuf backs the
 * data, and the free hook returns it to its pool). */
#ifndef OSKR_DAEMON_BUF_H
#define OSKR_DAEMON_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <oskr/plugin.h>

struct oskr__buf {
	struct oskr_buf pub; /* must stay first */
	atomic_uint refs;
	/* Called when refs drops to zero; frees the buffer. */
	void (*free_fn)(struct oskr__buf *buf);
	void *owner; /* for free_fn: pool, mbuf, transport… */
	/* Receive metadata, so a received buffer is a self-contained stage
	 * task argument (no allocation per message). Set by transports. */
	struct oskr_addr from;
	int32_t from_replica;
};

static inline struct oskr__buf *oskr__buf_from_pub(struct oskr_buf *pub)
{
	return (struct oskr__buf *)pub;
}

void oskr__buf_hold(struct oskr_buf *buf);
void oskr__buf_release(struct oskr_buf *buf);

/** Heap buffer with room for @p capacity bytes after the header;
 *  refs = 1, len = capacity. Returns NULL on allocation failure. */
struct oskr_buf *oskr__buf_heap_alloc(size_t capacity);
/** Heap buffer holding a copy of @p len bytes. */
struct oskr_buf *oskr__buf_heap_copy(const void *data, size_t len);

#endif
