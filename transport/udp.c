/* SPDX-License-Identifier: MIT */
/*
 * The kernel UDP transport: one datagram is one message, no framing header.
 *
 * Replica mode binds `udp.rx_threads` sockets to this replica's configured
 * address with SO_REUSEPORT. The kernel spreads datagrams over them by a
 * 4-tuple hash, so all datagrams of one sender land on one socket and keep
 * their order. Each socket has one rx thread blocked in recvmmsg (with a
 * short SO_RCVTIMEO so stop() is prompt).
 *
 * Client mode binds one socket to an ephemeral port and runs no thread: the
 * owner calls poll(), which delivers inline.
 *
 * Receive lands in per-thread heap buffers of 64 KiB. A short datagram is
 * copied into a buffer of its own length (the receive buffer is reused); a
 * long one is handed over as is and its receive slot gets a fresh buffer.
 * Either way a held buffer pins at most twice its message, so a queue of
 * small messages cannot pin 64 KiB each (docs/transport-udp.md has the
 * measurements behind this).
 *
 * The bytes of delivered buffers not yet released (queued in the stage
 * rings or held by the plugin) are bounded by `udp.rx_memory`: past it a
 * datagram is dropped as no_buffer. Without it a flood of large datagrams
 * that the workers cannot keep up with (say, forged signed messages that
 * each cost a verify) could pin ring_size x 64 KiB, 4 GiB at the default
 * ring size.
 *
 * Send queues up to `udp.batch` messages per tx slot and transmits them with
 * one sendmmsg. Slot s sends on socket s % rx_threads; all sockets share one
 * address, so peers always see this replica's configured source address.
 */
#define _GNU_SOURCE
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../daemon/buf.h"
#include "../daemon/log.h"

/* 65507 is the IPv4 UDP payload limit; 65000 leaves room for IPv6
 * extension headers and keeps one number for both families. */
#define UDP_MAX_MESSAGE 65000u
/* Receive slots are larger than max_message so that a datagram beyond it
 * is seen (and dropped as truncated) instead of silently cut. */
#define UDP_RX_SLOT_SIZE 65536u
/* From this length on a datagram is handed over in the buffer it was
 * received into instead of copied. */
#define UDP_RX_HANDOVER (UDP_RX_SLOT_SIZE / 2)
#define UDP_DEFAULT_BATCH 32u
#define UDP_MAX_BATCH 1024u /* UIO_MAXIOV: the kernel's sendmmsg vlen cap */
#define UDP_MAX_SOCKETS 64u
#define UDP_RX_TIMEOUT_MS 100
/* EAGAIN/ENOBUFS retries per flush before the rest of the batch is
 * dropped: bounds how long a worker can stall on a full socket. */
#define UDP_TX_RETRIES 8
#define UDP_TX_RETRY_WAIT_MS 1
/* A client poll() delivers at most this many batches so a flood cannot
 * starve its owner's timers. */
#define UDP_CLIENT_DRAIN_BATCHES 16

/*
 * struct oskr_addr layout for UDP (all other bytes zero, so memcmp works):
 *   [0]      4 = IPv4, 6 = IPv6 (0: not a UDP address)
 *   [1]      0
 *   [2..3]   port, network byte order
 *   [4..7]   IPv6 scope id, big endian (0 for IPv4)
 *   [8..11]  IPv4 address, network byte order, or
 *   [8..23]  IPv6 address
 *   [24..31] 0
 * An IPv4-mapped IPv6 source (::ffff:a.b.c.d) is stored as IPv4.
 */
#define UDP_ADDR_V4 4
#define UDP_ADDR_V6 6
#define UDP_ADDR_PORT 2
#define UDP_ADDR_SCOPE 4
#define UDP_ADDR_IP 8
#define UDP_ADDR_USED_V4 12
#define UDP_ADDR_USED_V6 24

/* Counters with a single writer each (one rx thread, one tx slot owner):
 * relaxed load + store, no locked instruction on the hot path; stats()
 * reads them from any thread. */
struct udp_rx {
	struct oskr_transport *transport;
	unsigned index;
	int fd;
	pthread_t thread;
	bool thread_running;
	struct mmsghdr *msgs;
	struct iovec *iovs;
	struct sockaddr_storage *sources;
	struct oskr_buf **slots; /* batch receive buffers, UDP_RX_SLOT_SIZE */
	struct oskr__transport_counters counters __attribute__((aligned(64)));
};

struct udp_tx_slot {
	int fd;
	unsigned count;
	struct mmsghdr *msgs;
	struct iovec *iovs;
	struct sockaddr_storage *dests;
	struct oskr_buf **bufs;
	struct oskr__transport_counters counters __attribute__((aligned(64)));
};

struct udp_source_entry {
	struct oskr_addr addr;
	int32_t replica_id; /* -1: empty */
};

/* udp.rx_memory: what delivered buffers may hold at once. A buffer can
 * outlive the transport (a plugin releases it late), so the budget is
 * reference counted: one reference for the transport, one per buffer. */
struct udp_rx_budget {
	_Atomic uint64_t used; /* bytes, header included */
	_Atomic uint64_t refs;
	uint64_t limit;
};

struct oskr_transport {
	int32_t replica_id;
	int family; /* of every socket and every replica address */
	unsigned batch;

	uint32_t replica_count;
	struct sockaddr_storage *replica_sockaddrs;
	socklen_t *replica_sockaddr_lens;

	/* Open-addressing table: source address -> replica id. */
	struct udp_source_entry *sources;
	uint32_t source_mask;

	unsigned socket_count;
	struct udp_rx *rx; /* socket_count entries; rx threads in replica mode */
	unsigned tx_slot_count;
	struct udp_tx_slot *slots;

	struct oskr_addr local;
	struct udp_rx_budget *budget;

	atomic_bool stopping;
	bool started;
	oskr__deliver_fn deliver;
	void *deliver_arg;
};

static void counter_add(_Atomic uint64_t *counter, uint64_t delta)
{
	if (!delta)
		return;
	atomic_store_explicit(counter,
			      atomic_load_explicit(counter,
						   memory_order_relaxed) +
				      delta,
			      memory_order_relaxed);
}

/* Zeroed array of structs that carry counters on their own cache line
 * (calloc only guarantees 16-byte alignment). */
static void *calloc_aligned(size_t count, size_t size)
{
	void *p = NULL;

	if (count > SIZE_MAX / size || posix_memalign(&p, 64, count * size))
		return NULL;
	memset(p, 0, count * size);
	return p;
}

static socklen_t sockaddr_len_for(int family)
{
	return family == AF_INET6 ? sizeof(struct sockaddr_in6)
				  : sizeof(struct sockaddr_in);
}

/* "127.0.0.1:7000" or "[::1]:7000", for messages. */
static void format_sockaddr(const struct sockaddr_storage *ss, char *out,
			    size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(out, size, "%s:%u", ip, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(out, size, "[%s]:%u", ip, ntohs(sin6->sin6_port));
	} else {
		snprintf(out, size, "(address family %d)", ss->ss_family);
	}
}

static void addr_from_sockaddr(const struct sockaddr_storage *ss,
			       struct oskr_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;
		out->bytes[0] = UDP_ADDR_V4;
		memcpy(&out->bytes[UDP_ADDR_PORT], &sin->sin_port, 2);
		memcpy(&out->bytes[UDP_ADDR_IP], &sin->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;
		memcpy(&out->bytes[UDP_ADDR_PORT], &sin6->sin6_port, 2);
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			out->bytes[0] = UDP_ADDR_V4;
			memcpy(&out->bytes[UDP_ADDR_IP],
			       &sin6->sin6_addr.s6_addr[12], 4);
		} else {
			uint32_t scope = htonl(sin6->sin6_scope_id);
			out->bytes[0] = UDP_ADDR_V6;
			memcpy(&out->bytes[UDP_ADDR_SCOPE], &scope, 4);
			memcpy(&out->bytes[UDP_ADDR_IP], &sin6->sin6_addr, 16);
		}
	}
}

static bool bytes_are_zero(const uint8_t *bytes, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (bytes[i])
			return false;
	return true;
}

/* Decode an oskr_addr (possibly carried inside a protocol message, so
 * untrusted) into a destination for a socket of @p family. Non-canonical
 * encodings are refused so that equal peers always compare equal. */
static int addr_to_sockaddr(const struct oskr_addr *addr, int family,
			    struct sockaddr_storage *out, socklen_t *out_len)
{
	const uint8_t *b = addr->bytes;
	uint16_t port;

	memcpy(&port, &b[UDP_ADDR_PORT], 2);
	if (b[1] || !port)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (b[0] == UDP_ADDR_V4) {
		if (!bytes_are_zero(&b[UDP_ADDR_SCOPE], 4) ||
		    !bytes_are_zero(&b[UDP_ADDR_USED_V4],
				    OSKR_ADDR_SIZE - UDP_ADDR_USED_V4))
			return -EINVAL;
		if (family == AF_INET) {
			struct sockaddr_in *sin = (void *)out;
			sin->sin_family = AF_INET;
			sin->sin_port = port;
			memcpy(&sin->sin_addr, &b[UDP_ADDR_IP], 4);
		} else {
			/* IPv4 peer seen through a dual-stack IPv6 socket */
			struct sockaddr_in6 *sin6 = (void *)out;
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = port;
			sin6->sin6_addr.s6_addr[10] = 0xff;
			sin6->sin6_addr.s6_addr[11] = 0xff;
			memcpy(&sin6->sin6_addr.s6_addr[12], &b[UDP_ADDR_IP], 4);
		}
	} else if (b[0] == UDP_ADDR_V6) {
		if (family != AF_INET6)
			return -EAFNOSUPPORT;
		if (!bytes_are_zero(&b[UDP_ADDR_USED_V6],
				    OSKR_ADDR_SIZE - UDP_ADDR_USED_V6))
			return -EINVAL;
		struct sockaddr_in6 *sin6 = (void *)out;
		uint32_t scope;
		memcpy(&scope, &b[UDP_ADDR_SCOPE], 4);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = port;
		sin6->sin6_scope_id = ntohl(scope);
		memcpy(&sin6->sin6_addr, &b[UDP_ADDR_IP], 16);
	} else {
		return -EINVAL;
	}
	*out_len = sockaddr_len_for(family);
	return 0;
}

/* ---- source address -> replica id ---- */

static uint32_t addr_hash(const struct oskr_addr *addr)
{
	uint64_t words[3];

	/* bytes 24..31 are always zero */
	memcpy(words, addr->bytes, sizeof(words));
	uint64_t h = words[0] * 0x9e3779b97f4a7c15ull;
	h ^= words[1] * 0xc2b2ae3d27d4eb4full;
	h ^= words[2] * 0x165667b19e3779f9ull;
	h ^= h >> 29;
	return (uint32_t)(h ^ (h >> 32));
}

static int32_t source_lookup(const struct oskr_transport *t,
			     const struct oskr_addr *addr)
{
	for (uint32_t i = addr_hash(addr);; i++) {
		const struct udp_source_entry *e = &t->sources[i & t->source_mask];
		if (e->replica_id < 0)
			return -1;
		if (!memcmp(&e->addr, addr, sizeof(*addr)))
			return e->replica_id;
	}
}

static int sources_build(struct oskr_transport *t)
{
	uint32_t size = 16;

	while (size < 2 * t->replica_count)
		size *= 2;
	t->sources = calloc(size, sizeof(*t->sources));
	if (!t->sources)
		return -ENOMEM;
	t->source_mask = size - 1;
	for (uint32_t i = 0; i < size; i++)
		t->sources[i].replica_id = -1;
	for (uint32_t id = 0; id < t->replica_count; id++) {
		struct oskr_addr addr;
		addr_from_sockaddr(&t->replica_sockaddrs[id], &addr);
		if (source_lookup(t, &addr) >= 0)
			continue; /* duplicate address: the lower id wins */
		for (uint32_t i = addr_hash(&addr);; i++) {
			struct udp_source_entry *e = &t->sources[i & t->source_mask];
			if (e->replica_id < 0) {
				e->addr = addr;
				e->replica_id = (int32_t)id;
				break;
			}
		}
	}
	return 0;
}

/* ---- sockets ---- */

static void set_buffer_size(int fd, int option, int force_option,
			    uint32_t bytes, bool warn)
{
	const char *what = option == SO_RCVBUF ? "SO_RCVBUF" : "SO_SNDBUF";
	int value = bytes > INT32_MAX / 2 ? INT32_MAX / 2 : (int)bytes;
	int actual = 0;
	socklen_t len = sizeof(actual);

	/* The FORCE variant ignores net.core.[rw]mem_max but needs
	 * CAP_NET_ADMIN; fall back to the capped one. */
	if (setsockopt(fd, SOL_SOCKET, force_option, &value, sizeof(value)) &&
	    setsockopt(fd, SOL_SOCKET, option, &value, sizeof(value))) {
		if (warn)
			OSKR_WARN("udp: cannot set %s to %u: %s", what, bytes,
				  strerror(errno));
		return;
	}
	/* The kernel reports twice the value it granted (bookkeeping). */
	if (warn && !getsockopt(fd, SOL_SOCKET, option, &actual, &len) &&
	    (uint64_t)actual / 2 < bytes)
		OSKR_WARN("udp: %s is %d bytes, not the %u configured "
			  "(raise net.core.%s)",
			  what, actual / 2, bytes,
			  option == SO_RCVBUF ? "rmem_max" : "wmem_max");
}

static int socket_open(const struct oskr_config *config,
		       const struct sockaddr_storage *addr, bool reuseport,
		       bool rx_timeout, bool warn_buffers, int *out_fd,
		       char **err)
{
	char name[INET6_ADDRSTRLEN + 16];
	int one = 1, ret;
	int fd = socket(addr->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	format_sockaddr(addr, name, sizeof(name));
	if (fd < 0) {
		ret = -errno;
		oskr__errorf(err, "udp: socket for %s: %s", name,
			     strerror(errno));
		return ret;
	}
	if (reuseport &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) {
		ret = -errno;
		oskr__errorf(err, "udp: SO_REUSEPORT on %s: %s", name,
			     strerror(errno));
		goto err_close;
	}
	if (config->udp.socket_buffer) {
		/* Only the first socket warns: the others get the same. */
		set_buffer_size(fd, SO_RCVBUF, SO_RCVBUFFORCE,
				config->udp.socket_buffer, warn_buffers);
		set_buffer_size(fd, SO_SNDBUF, SO_SNDBUFFORCE,
				config->udp.socket_buffer, warn_buffers);
	}
	if (rx_timeout) {
		struct timeval tv = { .tv_sec = 0,
				      .tv_usec = UDP_RX_TIMEOUT_MS * 1000 };
		if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv))) {
			ret = -errno;
			oskr__errorf(err, "udp: SO_RCVTIMEO on %s: %s", name,
				     strerror(errno));
			goto err_close;
		}
	}
	if (bind(fd, (const struct sockaddr *)addr,
		 sockaddr_len_for(addr->ss_family))) {
		ret = -errno;
		oskr__errorf(err, "udp: cannot bind %s: %s", name,
			     strerror(errno));
		goto err_close;
	}
	*out_fd = fd;
	return 0;

err_close:
	close(fd);
	return ret;
}

/* SO_REUSEPORT lets any process of the same user join our group, so a
 * second oskrd started with the same replica id would silently take half
 * the traffic. A plain bind first turns that mistake into EADDRINUSE. */
static int probe_exclusive(const struct oskr_config *config,
			   const struct sockaddr_storage *addr, char **err)
{
	int fd, ret;

	ret = socket_open(config, addr, false, false, false, &fd, err);
	if (ret)
		return ret;
	close(fd);
	return 0;
}

static bool sockaddr_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;
		return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
	}
	return false;
}

/* A client binds an ephemeral port in the replicas' family: on loopback
 * when they are (so local_addr is a usable address), else the wildcard. */
static void client_bind_address(const struct sockaddr_storage *replica,
				struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	if (replica->ss_family == AF_INET) {
		struct sockaddr_in *sin = (void *)out;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(sockaddr_is_loopback(replica)
						     ? INADDR_LOOPBACK
						     : INADDR_ANY);
	} else {
		struct sockaddr_in6 *sin6 = (void *)out;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = sockaddr_is_loopback(replica)
					  ? in6addr_loopback
					  : in6addr_any;
	}
}

/* ---- receive ---- */

static int rx_init(struct oskr_transport *t, struct udp_rx *rx,
		   unsigned index, int fd)
{
	rx->transport = t;
	rx->index = index;
	rx->fd = fd;
	rx->msgs = calloc(t->batch, sizeof(*rx->msgs));
	rx->iovs = calloc(t->batch, sizeof(*rx->iovs));
	rx->sources = calloc(t->batch, sizeof(*rx->sources));
	rx->slots = calloc(t->batch, sizeof(*rx->slots));
	if (!rx->msgs || !rx->iovs || !rx->sources || !rx->slots)
		return -ENOMEM;
	for (unsigned i = 0; i < t->batch; i++) {
		/* Pages the kernel never writes are never made resident. */
		rx->slots[i] = oskr__buf_heap_alloc(UDP_RX_SLOT_SIZE);
		if (!rx->slots[i])
			return -ENOMEM;
		rx->iovs[i].iov_base = rx->slots[i]->data;
		rx->iovs[i].iov_len = UDP_RX_SLOT_SIZE;
		rx->msgs[i].msg_hdr.msg_iov = &rx->iovs[i];
		rx->msgs[i].msg_hdr.msg_iovlen = 1;
		rx->msgs[i].msg_hdr.msg_name = &rx->sources[i];
	}
	return 0;
}

static void rx_free(struct udp_rx *rx, unsigned batch)
{
	if (rx->slots)
		for (unsigned i = 0; i < batch; i++)
			oskr__buf_release(rx->slots[i]);
	free(rx->slots);
	free(rx->msgs);
	free(rx->iovs);
	free(rx->sources);
}

/* recvmmsg overwrites these; reset before every call. */
static void rx_rearm(struct udp_rx *rx, unsigned batch)
{
	for (unsigned i = 0; i < batch; i++) {
		rx->msgs[i].msg_hdr.msg_namelen = sizeof(rx->sources[i]);
		rx->msgs[i].msg_hdr.msg_flags = 0;
	}
}

/* ---- the receive memory budget ---- */

static void budget_put(struct udp_rx_budget *budget)
{
	if (atomic_fetch_sub_explicit(&budget->refs, 1,
				      memory_order_acq_rel) == 1)
		free(budget);
}

static uint64_t budget_charge_of(const struct oskr_buf *buf)
{
	return sizeof(struct oskr__buf) + (uint64_t)buf->capacity;
}

/* free_fn of a delivered buffer: its bytes go back to the budget. It is a
 * heap buffer (oskr__buf_heap_alloc: header and data in one malloc'd
 * block), freed the way buf.c frees those. */
static void budget_buf_free(struct oskr__buf *buf)
{
	struct udp_rx_budget *budget = buf->owner;

	atomic_fetch_sub_explicit(&budget->used, budget_charge_of(&buf->pub),
				  memory_order_relaxed);
	free(buf);
	budget_put(budget);
}

/* Charge @p buf to the budget and make its release give the bytes back;
 * false, with nothing charged, when the budget is used up. */
static bool budget_take(struct udp_rx_budget *budget, struct oskr_buf *buf)
{
	uint64_t charge = budget_charge_of(buf);
	uint64_t used = atomic_fetch_add_explicit(&budget->used, charge,
						  memory_order_relaxed);

	if (used + charge > budget->limit) {
		atomic_fetch_sub_explicit(&budget->used, charge,
					  memory_order_relaxed);
		return false;
	}
	atomic_fetch_add_explicit(&budget->refs, 1, memory_order_relaxed);
	struct oskr__buf *inner = oskr__buf_from_pub(buf);
	inner->free_fn = budget_buf_free;
	inner->owner = budget;
	return true;
}

/* The buffer to deliver for the @p len bytes received in slot @p i. */
static struct oskr_buf *rx_claim(struct udp_rx *rx, unsigned i, uint32_t len)
{
	struct oskr_buf *received = rx->slots[i];

	if (len >= UDP_RX_HANDOVER) {
		struct oskr_buf *fresh = oskr__buf_heap_alloc(UDP_RX_SLOT_SIZE);
		if (fresh) {
			rx->slots[i] = fresh;
			rx->iovs[i].iov_base = fresh->data;
			received->len = len;
			return received;
		}
	}
	return oskr__buf_heap_copy(received->data, len);
}

static unsigned rx_deliver(struct oskr_transport *t, struct udp_rx *rx,
			   unsigned count, oskr__deliver_fn deliver, void *arg)
{
	struct oskr__transport_counters *counters = &rx->counters;
	unsigned delivered = 0;

	/* Counters move before deliver() so that whoever sees a message
	 * also sees it (and every drop before it) in stats(). */
	for (unsigned i = 0; i < count; i++) {
		const struct mmsghdr *msg = &rx->msgs[i];
		uint32_t len = msg->msg_len;
		struct oskr_addr from;

		if ((msg->msg_hdr.msg_flags & MSG_TRUNC) ||
		    len > UDP_MAX_MESSAGE) {
			counter_add(&counters->drops[OSKR_DROP_TRUNCATED], 1);
			continue;
		}
		/* No protocol message is empty; an empty datagram is noise. */
		if (!len) {
			counter_add(&counters->drops[OSKR_DROP_SHORT], 1);
			continue;
		}
		struct oskr_buf *buf = rx_claim(rx, i, len);
		if (buf && !budget_take(t->budget, buf)) {
			oskr__buf_release(buf);
			buf = NULL;
		}
		if (!buf) {
			counter_add(&counters->drops[OSKR_DROP_NO_BUFFER], 1);
			continue;
		}
		addr_from_sockaddr(&rx->sources[i], &from);
		counter_add(&counters->rx_packets, 1);
		counter_add(&counters->rx_bytes, len);
		delivered++;
		deliver(arg, buf, &from, source_lookup(t, &from));
	}
	return delivered;
}

static void *rx_thread_main(void *arg)
{
	struct udp_rx *rx = arg;
	struct oskr_transport *t = rx->transport;
	bool warned = false;

	while (!atomic_load_explicit(&t->stopping, memory_order_acquire)) {
		rx_rearm(rx, t->batch);
		/* Blocks for the first datagram (at most SO_RCVTIMEO), then
		 * takes whatever else is already queued. */
		int n = recvmmsg(rx->fd, rx->msgs, t->batch, MSG_WAITFORONE,
				 NULL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				continue;
			if (!warned)
				OSKR_WARN("udp: recvmmsg on socket %u: %s",
					  rx->index, strerror(errno));
			warned = true;
			/* never spin on a persistent error */
			nanosleep(&(struct timespec){ .tv_nsec = 1000000 },
				  NULL);
			continue;
		}
		rx_deliver(t, rx, (unsigned)n, t->deliver, t->deliver_arg);
	}
	return NULL;
}

/* ---- send ---- */

static int slot_init(struct oskr_transport *t, struct udp_tx_slot *slot,
		     int fd)
{
	slot->fd = fd;
	slot->msgs = calloc(t->batch, sizeof(*slot->msgs));
	slot->iovs = calloc(t->batch, sizeof(*slot->iovs));
	slot->dests = calloc(t->batch, sizeof(*slot->dests));
	slot->bufs = calloc(t->batch, sizeof(*slot->bufs));
	if (!slot->msgs || !slot->iovs || !slot->dests || !slot->bufs)
		return -ENOMEM;
	for (unsigned i = 0; i < t->batch; i++) {
		slot->msgs[i].msg_hdr.msg_iov = &slot->iovs[i];
		slot->msgs[i].msg_hdr.msg_iovlen = 1;
		slot->msgs[i].msg_hdr.msg_name = &slot->dests[i];
	}
	return 0;
}

static void slot_free(struct udp_tx_slot *slot)
{
	free(slot->msgs);
	free(slot->iovs);
	free(slot->dests);
	free(slot->bufs);
}

static void tx_wait(int fd, int error)
{
	if (error == EAGAIN || error == EWOULDBLOCK) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		poll(&pfd, 1, UDP_TX_RETRY_WAIT_MS);
	} else {
		/* ENOBUFS: a device queue is full; the socket itself polls
		 * writable, so just give it a moment. */
		nanosleep(&(struct timespec){ .tv_nsec = 100000 }, NULL);
	}
}

static void slot_flush(struct udp_tx_slot *slot)
{
	unsigned count = slot->count, sent = 0, retries = 0;
	uint64_t packets = 0, bytes = 0, failed = 0;

	while (sent < count) {
		int n = sendmmsg(slot->fd, slot->msgs + sent, count - sent,
				 MSG_DONTWAIT);
		if (n > 0) {
			for (unsigned i = sent; i < sent + (unsigned)n; i++)
				bytes += slot->msgs[i].msg_len;
			packets += (unsigned)n;
			sent += (unsigned)n;
			continue;
		}
		int error = n < 0 ? errno : EIO;
		bool transient = error == EAGAIN || error == EWOULDBLOCK ||
				 error == ENOBUFS || error == EINTR;
		if (transient && retries < UDP_TX_RETRIES) {
			retries++;
			if (error != EINTR)
				tx_wait(slot->fd, error);
			continue;
		}
		if (transient) {
			failed += count - sent;
			break;
		}
		/* An error about msgs[sent] alone (unreachable host, a
		 * firewall's EPERM…): drop it, send the rest. */
		failed++;
		sent++;
	}
	for (unsigned i = 0; i < count; i++) {
		oskr__buf_release(slot->bufs[i]);
		slot->bufs[i] = NULL;
	}
	slot->count = 0;
	counter_add(&slot->counters.tx_packets, packets);
	counter_add(&slot->counters.tx_bytes, bytes);
	counter_add(&slot->counters.drops[OSKR_DROP_TX_FAILED], failed);
}

static int check_send(struct oskr_transport *t, unsigned tx_slot,
		      struct oskr_buf *buf)
{
	if (!buf)
		return -EINVAL;
	if (tx_slot >= t->tx_slot_count)
		return -EINVAL;
	if (buf->len > UDP_MAX_MESSAGE || buf->len > buf->capacity)
		return -EMSGSIZE;
	return 0;
}

static void queue_send(struct oskr_transport *t, unsigned tx_slot,
		       const struct sockaddr_storage *dest, socklen_t dest_len,
		       struct oskr_buf *buf)
{
	struct udp_tx_slot *slot = &t->slots[tx_slot];
	unsigned i = slot->count;

	memcpy(&slot->dests[i], dest, dest_len);
	slot->msgs[i].msg_hdr.msg_namelen = dest_len;
	slot->iovs[i].iov_base = buf->data;
	slot->iovs[i].iov_len = buf->len;
	slot->bufs[i] = buf;
	if (++slot->count == t->batch)
		slot_flush(slot);
}

static int udp_send_replica(struct oskr_transport *t, unsigned tx_slot,
			    uint32_t replica_id, struct oskr_buf *buf)
{
	int ret = check_send(t, tx_slot, buf);

	if (!ret && replica_id >= t->replica_count)
		ret = -EINVAL;
	if (ret) {
		oskr__buf_release(buf);
		return ret;
	}
	queue_send(t, tx_slot, &t->replica_sockaddrs[replica_id],
		   t->replica_sockaddr_lens[replica_id], buf);
	return 0;
}

static int udp_send_addr(struct oskr_transport *t, unsigned tx_slot,
			 const struct oskr_addr *addr, struct oskr_buf *buf)
{
	struct sockaddr_storage dest;
	socklen_t dest_len = 0;
	int ret = check_send(t, tx_slot, buf);

	if (!ret)
		ret = addr ? addr_to_sockaddr(addr, t->family, &dest, &dest_len)
			   : -EINVAL;
	if (ret) {
		oskr__buf_release(buf);
		return ret;
	}
	queue_send(t, tx_slot, &dest, dest_len, buf);
	return 0;
}

static void udp_flush(struct oskr_transport *t, unsigned tx_slot)
{
	if (tx_slot < t->tx_slot_count && t->slots[tx_slot].count)
		slot_flush(&t->slots[tx_slot]);
}

/* ---- lifecycle ---- */

static void udp_stop(struct oskr_transport *t)
{
	if (!t->started)
		return;
	atomic_store_explicit(&t->stopping, true, memory_order_release);
	for (unsigned i = 0; i < t->socket_count; i++) {
		if (t->rx[i].thread_running)
			pthread_join(t->rx[i].thread, NULL);
		t->rx[i].thread_running = false;
	}
	t->started = false;
}

static void udp_close(struct oskr_transport *t)
{
	if (!t)
		return;
	udp_stop(t);
	if (t->slots) {
		/* The owner guarantees no sender runs any more: send what
		 * is still queued (e.g. a client's last request). */
		for (unsigned i = 0; i < t->tx_slot_count; i++) {
			if (t->slots[i].count)
				slot_flush(&t->slots[i]);
			slot_free(&t->slots[i]);
		}
		free(t->slots);
	}
	if (t->rx) {
		for (unsigned i = 0; i < t->socket_count; i++) {
			if (t->rx[i].fd >= 0)
				close(t->rx[i].fd);
			rx_free(&t->rx[i], t->batch);
		}
		free(t->rx);
	}
	free(t->sources);
	free(t->replica_sockaddrs);
	free(t->replica_sockaddr_lens);
	if (t->budget)
		budget_put(t->budget);
	free(t);
}

static int copy_replicas(struct oskr_transport *t,
			 const struct oskr_config *config, char **err)
{
	t->replica_count = config->replica_count;
	t->replica_sockaddrs = calloc(t->replica_count,
				      sizeof(*t->replica_sockaddrs));
	t->replica_sockaddr_lens = calloc(t->replica_count,
					  sizeof(*t->replica_sockaddr_lens));
	if (!t->replica_sockaddrs || !t->replica_sockaddr_lens) {
		oskr__errorf(err, "udp: out of memory");
		return -ENOMEM;
	}
	t->family = config->replicas[0].sockaddr.ss_family;
	for (uint32_t id = 0; id < t->replica_count; id++) {
		const struct sockaddr_storage *ss = &config->replicas[id].sockaddr;
		char name[INET6_ADDRSTRLEN + 16];

		format_sockaddr(ss, name, sizeof(name));
		if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6) {
			oskr__errorf(err, "udp: replica %u has no IP address "
					  "(ip:port) configured", id);
			return -EINVAL;
		}
		/* One socket family serves every peer; mixing would make
		 * some replicas unreachable. */
		if (ss->ss_family != t->family) {
			oskr__errorf(err, "udp: replica %u (%s) is %s but "
					  "replica 0 is %s: mixed address "
					  "families are not supported",
				     id, name,
				     ss->ss_family == AF_INET ? "IPv4" : "IPv6",
				     t->family == AF_INET ? "IPv4" : "IPv6");
			return -EINVAL;
		}
		memcpy(&t->replica_sockaddrs[id], ss, sizeof(*ss));
		t->replica_sockaddr_lens[id] = sockaddr_len_for(ss->ss_family);
	}
	return 0;
}

static int open_sockets(struct oskr_transport *t,
			const struct oskr_config *config, char **err)
{
	struct sockaddr_storage bind_addr;
	bool replica = t->replica_id >= 0;
	int ret;

	if (replica) {
		bind_addr = t->replica_sockaddrs[t->replica_id];
		t->socket_count = config->udp.rx_threads ? config->udp.rx_threads
							 : 1;
		if (t->socket_count > UDP_MAX_SOCKETS)
			t->socket_count = UDP_MAX_SOCKETS;
	} else {
		client_bind_address(&t->replica_sockaddrs[0], &bind_addr);
		t->socket_count = 1;
	}
	t->rx = calloc_aligned(t->socket_count, sizeof(*t->rx));
	if (!t->rx) {
		oskr__errorf(err, "udp: out of memory");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < t->socket_count; i++)
		t->rx[i].fd = -1;

	bool reuseport = t->socket_count > 1;
	if (reuseport) {
		ret = probe_exclusive(config, &bind_addr, err);
		if (ret)
			return ret;
	}
	for (unsigned i = 0; i < t->socket_count; i++) {
		int fd;
		ret = socket_open(config, &bind_addr, reuseport, replica,
				  i == 0, &fd, err);
		if (ret)
			return ret;
		t->rx[i].fd = fd;
		if (rx_init(t, &t->rx[i], i, fd)) {
			oskr__errorf(err, "udp: out of memory");
			return -ENOMEM;
		}
	}
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	if (getsockname(t->rx[0].fd, (struct sockaddr *)&local, &len)) {
		ret = -errno;
		oskr__errorf(err, "udp: getsockname: %s", strerror(errno));
		return ret;
	}
	addr_from_sockaddr(&local, &t->local);
	return 0;
}

static int udp_open(struct oskr_transport **out,
		    const struct oskr_config *config, int32_t replica_id,
		    unsigned tx_slots, char **err)
{
	struct oskr_transport *t;
	int ret;

	*out = NULL;
	if (!config || !config->replica_count || !config->replicas)
		return oskr__errorf(err, "udp: no replicas configured");
	if (replica_id < -1 || (replica_id >= 0 &&
				(uint32_t)replica_id >= config->replica_count))
		return oskr__errorf(err, "udp: replica id %d out of range "
					 "(%u replicas)",
				    replica_id, config->replica_count);
	if (!tx_slots)
		return oskr__errorf(err, "udp: need at least one tx slot");

	t = calloc(1, sizeof(*t));
	if (!t) {
		oskr__errorf(err, "udp: out of memory");
		return -ENOMEM;
	}
	t->replica_id = replica_id;
	t->batch = config->udp.batch ? config->udp.batch : UDP_DEFAULT_BATCH;
	if (t->batch > UDP_MAX_BATCH)
		t->batch = UDP_MAX_BATCH;
	atomic_init(&t->stopping, false);
	t->budget = calloc(1, sizeof(*t->budget));
	if (!t->budget) {
		ret = -ENOMEM;
		oskr__errorf(err, "udp: out of memory");
		goto err_close;
	}
	atomic_init(&t->budget->refs, 1);
	t->budget->limit = config->udp.rx_memory ? config->udp.rx_memory
						 : OSKR_UDP_RX_MEMORY_DEFAULT;

	ret = copy_replicas(t, config, err);
	if (ret)
		goto err_close;
	if (sources_build(t)) {
		ret = -ENOMEM;
		oskr__errorf(err, "udp: out of memory");
		goto err_close;
	}
	ret = open_sockets(t, config, err);
	if (ret)
		goto err_close;

	t->slots = calloc_aligned(tx_slots, sizeof(*t->slots));
	if (!t->slots) {
		ret = -ENOMEM;
		oskr__errorf(err, "udp: out of memory");
		goto err_close;
	}
	t->tx_slot_count = tx_slots;
	for (unsigned i = 0; i < tx_slots; i++) {
		if (slot_init(t, &t->slots[i],
			      t->rx[i % t->socket_count].fd)) {
			ret = -ENOMEM;
			oskr__errorf(err, "udp: out of memory");
			goto err_close;
		}
	}
	*out = t;
	return 0;

err_close:
	udp_close(t);
	return ret;
}

static int udp_start(struct oskr_transport *t, oskr__deliver_fn deliver,
		     void *arg)
{
	sigset_t all, old;
	int ret = 0;

	if (t->replica_id < 0 || !deliver)
		return -EINVAL;
	if (t->started)
		return -EALREADY;
	t->deliver = deliver;
	t->deliver_arg = arg;
	atomic_store_explicit(&t->stopping, false, memory_order_relaxed);
	t->started = true;

	/* rx threads take no signals: those belong to the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < t->socket_count; i++) {
		ret = -pthread_create(&t->rx[i].thread, NULL, rx_thread_main,
				      &t->rx[i]);
		if (ret)
			break;
		t->rx[i].thread_running = true;
		char name[16];
		snprintf(name, sizeof(name), "oskr-udp-rx%u", i % 100);
		pthread_setname_np(t->rx[i].thread, name);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		udp_stop(t);
	return ret;
}

/* One non-blocking recvmmsg: the count received, 0 when nothing is
 * queued, or a negative error. */
static int rx_take(struct oskr_transport *t, struct udp_rx *rx)
{
	rx_rearm(rx, t->batch);
	int n = recvmmsg(rx->fd, rx->msgs, t->batch, MSG_DONTWAIT, NULL);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	return -errno;
}

static int udp_poll(struct oskr_transport *t, oskr__deliver_fn deliver,
		    void *arg, int timeout_ms)
{
	struct udp_rx *rx = &t->rx[0];
	int delivered = 0;

	if (t->replica_id >= 0 || !deliver)
		return -EINVAL;
	/* Try first: under load the poll(2) call is saved. */
	int n = rx_take(t, rx);
	if (!n && timeout_ms) {
		struct pollfd pfd = { .fd = rx->fd, .events = POLLIN };
		int ready = poll(&pfd, 1, timeout_ms);
		if (ready < 0)
			return errno == EINTR ? 0 : -errno; /* a signal ends
							     * the wait early */
		if (ready)
			n = rx_take(t, rx);
	}
	for (unsigned round = 1; n > 0; round++) {
		delivered += (int)rx_deliver(t, rx, (unsigned)n, deliver, arg);
		if ((unsigned)n < t->batch || round == UDP_CLIENT_DRAIN_BATCHES)
			break;
		n = rx_take(t, rx);
	}
	if (n < 0 && !delivered)
		return n;
	return delivered;
}

static int udp_fd(struct oskr_transport *t)
{
	return t->replica_id < 0 ? t->rx[0].fd : -1;
}

static int udp_buf_alloc(struct oskr_transport *t, size_t capacity,
			 struct oskr_buf **out)
{
	*out = NULL;
	if (capacity > UDP_MAX_MESSAGE)
		return -EMSGSIZE;
	*out = oskr__buf_heap_alloc(capacity);
	return *out ? 0 : -ENOMEM;
}

static uint32_t udp_max_message(struct oskr_transport *t)
{
	return UDP_MAX_MESSAGE;
}

static void udp_local_addr(struct oskr_transport *t, struct oskr_addr *out)
{
	*out = t->local;
}

static void udp_stats(struct oskr_transport *t,
		      struct oskr_transport_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < t->socket_count; i++)
		oskr__transport_counters_sum(&t->rx[i].counters, out);
	for (unsigned i = 0; i < t->tx_slot_count; i++)
		oskr__transport_counters_sum(&t->slots[i].counters, out);
}

const struct oskr_transport_ops oskr__udp_transport = {
	.name = "udp",
	.open = udp_open,
	.start = udp_start,
	.poll = udp_poll,
	.fd = udp_fd,
	.stop = udp_stop,
	.close = udp_close,
	.buf_alloc = udp_buf_alloc,
	.send_replica = udp_send_replica,
	.send_addr = udp_send_addr,
	.flush = udp_flush,
	.max_message = udp_max_message,
	.local_addr = udp_local_addr,
	.stats = udp_stats,
};
