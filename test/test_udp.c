/* SPDX-License-Identifier: MIT */
/*
 * The kernel UDP transport (transport/udp.c) and the transport registry,
 * on loopback only. Ports are found by binding port 0; opening a cluster
 * retries with fresh ports if one was taken in between.
 */
#define _GNU_SOURCE
#include <check.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon/buf.h"
#include "daemon/config.h"
#include "transport/transport.h"

#define MAX_REPLICAS 4
#define INBOX_MAX 1200
#define WAIT_MS 10000
#define OPEN_ATTEMPTS 5

static const struct oskr_transport_ops *const udp = &oskr__udp_transport;

/* ---- buffers whose release the test can count ---- */

static atomic_int tracked_live;

static void tracked_free(struct oskr__buf *buf)
{
	atomic_fetch_sub(&tracked_live, 1);
	free(buf);
}

/* Tracked buffers not yet released. */
static int live_buffers(void)
{
	return atomic_load(&tracked_live);
}

static struct oskr_buf *tracked_buf(const void *data, size_t len)
{
	struct oskr_buf *buf = oskr__buf_heap_alloc(len);

	ck_assert_ptr_nonnull(buf);
	if (data)
		memcpy(buf->data, data, len);
	oskr__buf_from_pub(buf)->free_fn = tracked_free;
	atomic_fetch_add(&tracked_live, 1);
	return buf;
}

static struct oskr_buf *tracked_text(const char *text)
{
	return tracked_buf(text, strlen(text));
}

/* A message carrying a sequence number and the tx slot it went out on. */
static struct oskr_buf *tracked_seq(uint32_t slot, uint32_t seq, size_t len)
{
	uint32_t header[2] = { slot, seq };
	struct oskr_buf *buf = tracked_buf(NULL, len);

	memset(buf->data, 'x', len);
	memcpy(buf->data, header, sizeof(header));
	return buf;
}

static void seq_of(const struct oskr_buf *buf, uint32_t *slot, uint32_t *seq)
{
	uint32_t header[2];

	ck_assert_uint_ge(buf->len, sizeof(header));
	memcpy(header, buf->data, sizeof(header));
	*slot = header[0];
	*seq = header[1];
}

/* ---- an inbox that deliver() fills; it keeps every buffer it gets ---- */

struct received {
	struct oskr_buf *buf;
	struct oskr_addr from;
	int32_t from_replica;
};

struct inbox {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned count;
	unsigned overflow;
	struct received items[INBOX_MAX];
};

static struct inbox *inbox_new(void)
{
	struct inbox *inbox = calloc(1, sizeof(*inbox));

	ck_assert_ptr_nonnull(inbox);
	pthread_mutex_init(&inbox->lock, NULL);
	pthread_cond_init(&inbox->cond, NULL);
	return inbox;
}

static void inbox_free(struct inbox *inbox)
{
	for (unsigned i = 0; i < inbox->count; i++)
		oskr__buf_release(inbox->items[i].buf);
	pthread_mutex_destroy(&inbox->lock);
	pthread_cond_destroy(&inbox->cond);
	free(inbox);
}

static void inbox_deliver(void *arg, struct oskr_buf *buf,
			  const struct oskr_addr *from, int32_t from_replica)
{
	struct inbox *inbox = arg;

	pthread_mutex_lock(&inbox->lock);
	if (inbox->count < INBOX_MAX) {
		inbox->items[inbox->count++] = (struct received){
			.buf = buf, .from = *from, .from_replica = from_replica
		};
	} else {
		inbox->overflow++;
		oskr__buf_release(buf);
	}
	pthread_cond_broadcast(&inbox->cond);
	pthread_mutex_unlock(&inbox->lock);
}

static unsigned inbox_count(struct inbox *inbox)
{
	pthread_mutex_lock(&inbox->lock);
	unsigned count = inbox->count;
	pthread_mutex_unlock(&inbox->lock);
	return count;
}

/* Wait until the inbox holds @p count messages (or WAIT_MS passed). */
static bool inbox_wait(struct inbox *inbox, unsigned count)
{
	struct timespec deadline;
	bool reached;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WAIT_MS / 1000;
	pthread_mutex_lock(&inbox->lock);
	while (inbox->count < count &&
	       pthread_cond_timedwait(&inbox->cond, &inbox->lock, &deadline) !=
		       ETIMEDOUT)
		;
	reached = inbox->count >= count;
	pthread_mutex_unlock(&inbox->lock);
	return reached;
}

/* Client mode: poll until @p count messages arrived (bounded). */
static bool client_wait(struct oskr_transport *client, struct inbox *inbox,
			unsigned count)
{
	for (int round = 0; round < WAIT_MS / 100 && inbox_count(inbox) < count;
	     round++)
		ck_assert_int_ge(udp->poll(client, inbox_deliver, inbox, 100), 0);
	return inbox_count(inbox) >= count;
}

static bool buf_is(const struct oskr_buf *buf, const char *text)
{
	return buf->len == strlen(text) && !memcmp(buf->data, text, buf->len);
}

/* ---- a hand-built config on loopback ---- */

struct cluster {
	struct oskr_config config;
	struct oskr_config_replica replicas[MAX_REPLICAS];
	int family;
};

static void loopback(int family, uint16_t port, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (void *)out;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		struct sockaddr_in6 *sin6 = (void *)out;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sin6->sin6_addr = in6addr_loopback;
	}
}

static socklen_t family_len(int family)
{
	return family == AF_INET ? sizeof(struct sockaddr_in)
				 : sizeof(struct sockaddr_in6);
}

/* Give every replica a port the kernel just handed out (all probes are
 * held open together so the ports differ). false if @p family cannot be
 * bound here (no IPv6). */
static bool cluster_pick_ports(struct cluster *c)
{
	int fds[MAX_REPLICAS];
	bool ok = true;
	uint32_t n = c->config.replica_count;

	for (uint32_t id = 0; id < n; id++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		fds[id] = socket(c->family, SOCK_DGRAM, 0);
		loopback(c->family, 0, &ss);
		if (fds[id] < 0 ||
		    bind(fds[id], (struct sockaddr *)&ss, family_len(c->family)) ||
		    getsockname(fds[id], (struct sockaddr *)&ss, &len)) {
			ok = false;
			n = id + 1;
			break;
		}
		c->replicas[id].sockaddr = ss;
		c->replicas[id].sockaddr_len = family_len(c->family);
	}
	for (uint32_t id = 0; id < n; id++)
		if (fds[id] >= 0)
			close(fds[id]);
	return ok;
}

static bool cluster_init(struct cluster *c, uint32_t n, int family,
			 uint32_t rx_threads, uint32_t batch)
{
	memset(c, 0, sizeof(*c));
	ck_assert_uint_le(n, MAX_REPLICAS);
	c->family = family;
	c->config.replica_count = n;
	c->config.replicas = c->replicas;
	c->config.replica_id = -1;
	c->config.transport = OSKR_TRANSPORT_UDP;
	c->config.udp.rx_threads = rx_threads;
	c->config.udp.batch = batch;
	c->config.workers = 1;
	return cluster_pick_ports(c);
}

static uint16_t replica_port(const struct cluster *c, uint32_t id)
{
	const struct sockaddr_in *sin = (const void *)&c->replicas[id].sockaddr;
	return ntohs(sin->sin_port); /* same offset in sockaddr_in6 */
}

/* Open replicas 0..count-1; if a port got taken since it was picked,
 * close them, pick new ports and try again. */
static void cluster_open(struct cluster *c, uint32_t count, unsigned tx_slots,
			 struct oskr_transport **out)
{
	char *err = NULL;
	int ret = 0;

	for (int attempt = 0; attempt < OPEN_ATTEMPTS; attempt++) {
		uint32_t opened = 0;
		for (; opened < count; opened++) {
			ret = udp->open(&out[opened], &c->config,
					(int32_t)opened, tx_slots, &err);
			if (ret)
				break;
		}
		if (!ret)
			break;
		for (uint32_t id = 0; id < opened; id++)
			udp->close(out[id]);
		ck_assert_msg(ret == -EADDRINUSE, "open: %d %s", ret, err);
		ck_assert(cluster_pick_ports(c));
	}
	ck_assert_msg(ret == 0, "open: %d %s", ret, err);
	ck_assert_ptr_null(err);
}

static struct oskr_transport *client_open(struct cluster *c,
					  unsigned tx_slots)
{
	struct oskr_transport *client = NULL;
	char *err = NULL;
	int ret = udp->open(&client, &c->config, -1, tx_slots, &err);

	ck_assert_msg(ret == 0, "client open: %d %s", ret, err);
	return client;
}

/* A plain socket outside the transport, on loopback. */
static int raw_socket(int family, const struct sockaddr_storage *bind_to,
		      struct sockaddr_storage *local)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct timeval tv = { .tv_sec = WAIT_MS / 1000 };
	int fd = socket(family, SOCK_DGRAM, 0);

	ck_assert_int_ge(fd, 0);
	if (bind_to)
		ss = *bind_to;
	else
		loopback(family, 0, &ss);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&ss, family_len(family)),
			 0);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
				    sizeof(tv)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)local, &len), 0);
	return fd;
}

static void raw_send(int fd, const struct cluster *c, uint32_t replica_id,
		     const void *data, size_t len)
{
	ssize_t sent = sendto(fd, data, len, 0,
			      (const struct sockaddr *)&c->replicas[replica_id].sockaddr,
			      family_len(c->family));
	ck_assert_int_eq(sent, (ssize_t)len);
}

/* The documented oskr_addr layout for an IPv4 endpoint. */
static void expect_v4_addr(const struct oskr_addr *addr, uint16_t port)
{
	struct oskr_addr expected;
	uint16_t port_be = htons(port);
	uint32_t ip_be = htonl(INADDR_LOOPBACK);

	memset(&expected, 0, sizeof(expected));
	expected.bytes[0] = 4;
	memcpy(&expected.bytes[2], &port_be, 2);
	memcpy(&expected.bytes[8], &ip_be, 4);
	ck_assert_mem_eq(addr->bytes, expected.bytes, OSKR_ADDR_SIZE);
}

static uint16_t sockaddr_port(const struct sockaddr_storage *ss)
{
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static void setup(void)
{
	atomic_store(&tracked_live, 0);
}

/* ---- tests ---- */

START_TEST(test_replica_to_replica)
{
	struct cluster c;
	struct oskr_transport *t[2];
	struct inbox *in0 = inbox_new(), *in1 = inbox_new();
	struct oskr_addr addr0, addr1;
	struct oskr_transport_stats stats;

	ck_assert(cluster_init(&c, 3, AF_INET, 1, 32));
	cluster_open(&c, 2, 2, t);
	ck_assert_int_eq(udp->start(t[0], inbox_deliver, in0), 0);
	ck_assert_int_eq(udp->start(t[1], inbox_deliver, in1), 0);
	ck_assert_int_eq(udp->start(t[1], inbox_deliver, in1), -EALREADY);
	udp->local_addr(t[0], &addr0);
	udp->local_addr(t[1], &addr1);
	expect_v4_addr(&addr0, replica_port(&c, 0));
	expect_v4_addr(&addr1, replica_port(&c, 1));

	/* slot 0 is a worker's, slot 1 the non-worker slot */
	ck_assert_int_eq(udp->send_replica(t[0], 0, 1, tracked_text("hello")), 0);
	ck_assert_int_eq(udp->send_replica(t[0], 1, 1, tracked_text("world")), 0);
	udp->flush(t[0], 0);
	udp->flush(t[0], 1);
	ck_assert(inbox_wait(in1, 2));
	unsigned hello = buf_is(in1->items[0].buf, "hello") ? 0 : 1;
	ck_assert(buf_is(in1->items[hello].buf, "hello"));
	ck_assert(buf_is(in1->items[1 - hello].buf, "world"));
	for (unsigned i = 0; i < 2; i++) {
		ck_assert_int_eq(in1->items[i].from_replica, 0);
		ck_assert_mem_eq(in1->items[i].from.bytes, addr0.bytes,
				 OSKR_ADDR_SIZE);
	}

	/* to itself: loops back through the receive path */
	ck_assert_int_eq(udp->send_replica(t[0], 0, 0, tracked_text("self")), 0);
	udp->flush(t[0], 0);
	ck_assert(inbox_wait(in0, 1));
	ck_assert(buf_is(in0->items[0].buf, "self"));
	ck_assert_int_eq(in0->items[0].from_replica, 0);

	/* and back, replica 1 -> replica 0 */
	ck_assert_int_eq(udp->send_replica(t[1], 1, 0, tracked_text("back")), 0);
	udp->flush(t[1], 1);
	ck_assert(inbox_wait(in0, 2));
	ck_assert(buf_is(in0->items[1].buf, "back"));
	ck_assert_int_eq(in0->items[1].from_replica, 1);

	udp->stats(t[0], &stats);
	ck_assert_uint_eq(stats.tx_packets, 3);
	ck_assert_uint_eq(stats.tx_bytes, 14);
	ck_assert_uint_eq(stats.rx_packets, 2);
	ck_assert_uint_eq(stats.rx_bytes, 8);
	udp->stats(t[1], &stats);
	ck_assert_uint_eq(stats.rx_packets, 2);
	ck_assert_uint_eq(stats.rx_bytes, 10);
	for (unsigned r = 0; r < OSKR_DROP_REASON_COUNT; r++)
		ck_assert_uint_eq(stats.drops[r], 0);

	udp->stop(t[0]);
	udp->stop(t[1]);
	udp->close(t[0]);
	udp->close(t[1]);
	inbox_free(in0);
	inbox_free(in1);
	ck_assert_int_eq(live_buffers(), 0);
}
END_TEST

START_TEST(test_client_request_reply)
{
	struct cluster c;
	struct oskr_transport *replica, *client;
	struct inbox *replica_in = inbox_new(), *client_in = inbox_new();
	struct oskr_addr client_addr;

	ck_assert(cluster_init(&c, 1, AF_INET, 1, 32));
	cluster_open(&c, 1, 2, &replica);
	client = client_open(&c, 1);
	ck_assert_int_eq(udp->start(replica, inbox_deliver, replica_in), 0);

	ck_assert_int_ge(udp->fd(client), 0);
	ck_assert_int_eq(udp->fd(replica), -1);
	ck_assert_int_eq(udp->start(client, inbox_deliver, client_in), -EINVAL);
	ck_assert_int_eq(udp->poll(replica, inbox_deliver, replica_in, 0),
			 -EINVAL);
	/* nothing queued: a zero timeout returns at once */
	ck_assert_int_eq(udp->poll(client, inbox_deliver, client_in, 0), 0);

	/* replicas on loopback: the client binds loopback, ephemeral port */
	udp->local_addr(client, &client_addr);
	uint16_t client_port_be;
	memcpy(&client_port_be, &client_addr.bytes[2], 2);
	ck_assert_uint_ne(client_port_be, 0);
	expect_v4_addr(&client_addr, ntohs(client_port_be));

	ck_assert_int_eq(udp->send_replica(client, 0, 0,
					   tracked_text("request")), 0);
	udp->flush(client, 0);
	ck_assert(inbox_wait(replica_in, 1));
	ck_assert(buf_is(replica_in->items[0].buf, "request"));
	ck_assert_int_eq(replica_in->items[0].from_replica, -1);
	ck_assert_mem_eq(replica_in->items[0].from.bytes, client_addr.bytes,
			 OSKR_ADDR_SIZE);

	ck_assert_int_eq(udp->send_addr(replica, 0, &replica_in->items[0].from,
					tracked_text("reply")), 0);
	udp->flush(replica, 0);
	ck_assert(client_wait(client, client_in, 1));
	ck_assert(buf_is(client_in->items[0].buf, "reply"));
	ck_assert_int_eq(client_in->items[0].from_replica, 0);

	udp->close(client);
	udp->close(replica);
	inbox_free(replica_in);
	inbox_free(client_in);
	ck_assert_int_eq(live_buffers(), 0);
}
END_TEST

/* 1000 messages through one slot arrive complete and in order. The sender
 * keeps at most WINDOW in flight so a slow receiver on this 2-core box does
 * not overflow its socket buffer (the kernel would drop, not the
 * transport). */
START_TEST(test_one_slot_keeps_order)
{
	enum { MESSAGES = 1000, WINDOW = 128, BATCH = 32 };
	struct cluster c;
	struct oskr_transport *t[2];
	struct inbox *in1 = inbox_new();
	struct oskr_transport_stats stats;

	ck_assert(cluster_init(&c, 2, AF_INET, 1, BATCH));
	c.config.udp.socket_buffer = 1 << 20;
	cluster_open(&c, 2, 1, t);
	ck_assert_int_eq(udp->start(t[1], inbox_deliver, in1), 0);

	for (uint32_t seq = 0; seq < MESSAGES; seq++) {
		if (seq >= WINDOW && seq % BATCH == 0)
			ck_assert(inbox_wait(in1, seq - WINDOW));
		ck_assert_int_eq(udp->send_replica(t[0], 0, 1,
						   tracked_seq(0, seq, 100)), 0);
		/* a full batch goes out without flush() */
		if (seq % BATCH == BATCH - 1) {
			udp->stats(t[0], &stats);
			ck_assert_uint_eq(stats.tx_packets, seq + 1);
		}
	}
	udp->flush(t[0], 0);
	ck_assert(inbox_wait(in1, MESSAGES));
	for (uint32_t i = 0; i < MESSAGES; i++) {
		uint32_t slot, seq;
		seq_of(in1->items[i].buf, &slot, &seq);
		ck_assert_uint_eq(seq, i);
		ck_assert_uint_eq(in1->items[i].buf->len, 100);
		ck_assert_int_eq(in1->items[i].from_replica, 0);
	}
	udp->stats(t[0], &stats);
	ck_assert_uint_eq(stats.tx_packets, MESSAGES);
	ck_assert_uint_eq(stats.tx_bytes, MESSAGES * 100);
	ck_assert_uint_eq(stats.drops[OSKR_DROP_TX_FAILED], 0);
	udp->stats(t[1], &stats);
	ck_assert_uint_eq(stats.rx_packets, MESSAGES);

	udp->close(t[0]);
	udp->close(t[1]);
	ck_assert_uint_eq(in1->overflow, 0);
	inbox_free(in1);
	ck_assert_int_eq(live_buffers(), 0);
}
END_TEST

START_TEST(test_two_rx_threads)
{
	enum { PER_SLOT = 10, SLOTS = 3 };
	struct cluster c;
	struct oskr_transport *t[2], *client, *again = NULL;
	struct inbox *in1 = inbox_new(), *client_in = inbox_new();
	struct oskr_addr client_addr;
	char *err = NULL;

	ck_assert(cluster_init(&c, 2, AF_INET, 2, 4));
	cluster_open(&c, 2, SLOTS, t);
	client = client_open(&c, 1);
	udp->local_addr(client, &client_addr);
	ck_assert_int_eq(udp->start(t[1], inbox_deliver, in1), 0);

	/* slots 0 and 2 share socket 0, slot 1 uses socket 1: every one
	 * carries replica 0's source address */
	for (uint32_t seq = 0; seq < PER_SLOT; seq++) {
		for (uint32_t slot = 0; slot < SLOTS; slot++)
			ck_assert_int_eq(udp->send_replica(t[0], slot, 1,
							   tracked_seq(slot, seq, 16)),
					 0);
		ck_assert_int_eq(udp->send_replica(client, 0, 1,
						   tracked_seq(9, seq, 16)), 0);
	}
	for (uint32_t slot = 0; slot < SLOTS; slot++)
		udp->flush(t[0], slot);
	udp->flush(client, 0);
	ck_assert(inbox_wait(in1, (SLOTS + 1) * PER_SLOT));

	uint32_t next[10] = { 0 };
	for (unsigned i = 0; i < (SLOTS + 1) * PER_SLOT; i++) {
		uint32_t slot, seq;
		seq_of(in1->items[i].buf, &slot, &seq);
		ck_assert(slot < SLOTS || slot == 9);
		/* per sender socket the order holds */
		ck_assert_uint_eq(seq, next[slot]++);
		if (slot == 9) {
			ck_assert_int_eq(in1->items[i].from_replica, -1);
			ck_assert_mem_eq(in1->items[i].from.bytes,
					 client_addr.bytes, OSKR_ADDR_SIZE);
		} else {
			ck_assert_int_eq(in1->items[i].from_replica, 0);
		}
	}

	/* the reply leaves on whichever socket, the client still gets it */
	ck_assert_int_eq(udp->send_addr(t[1], 1, &client_addr,
					tracked_text("reply")), 0);
	udp->flush(t[1], 1);
	ck_assert(client_wait(client, client_in, 1));
	ck_assert_int_eq(client_in->items[0].from_replica, 1);

	/* a second replica 1 in the same reuseport group is refused */
	int ret = udp->open(&again, &c.config, 1, 1, &err);
	ck_assert_int_eq(ret, -EADDRINUSE);
	ck_assert_ptr_null(again);
	char name[32];
	snprintf(name, sizeof(name), "127.0.0.1:%u", replica_port(&c, 1));
	ck_assert_msg(err && strstr(err, name) &&
			      strstr(err, strerror(EADDRINUSE)),
		      "message: %s", err);
	free(err);
	err = NULL;

	/* and with one rx thread (no SO_REUSEPORT) as well */
	c.config.udp.rx_threads = 1;
	ret = udp->open(&again, &c.config, 1, 1, &err);
	ck_assert_int_eq(ret, -EADDRINUSE);
	ck_assert_msg(err && strstr(err, name), "message: %s", err);
	free(err);

	udp->close(client);
	udp->close(t[0]);
	udp->close(t[1]);
	inbox_free(in1);
	inbox_free(client_in);
	ck_assert_int_eq(live_buffers(), 0);
}
END_TEST

START_TEST(test_oversize_and_bad_sends)
{
	struct cluster c;
	struct oskr_transport *t;
	struct inbox *in = inbox_new();
	struct oskr_buf *buf = NULL;
	struct oskr_addr zero;
	struct oskr_transport_stats stats;

	ck_assert(cluster_init(&c, 1, AF_INET, 1, 32));
	cluster_open(&c, 1, 2, &t);
	ck_assert_uint_eq(udp->max_message(t), 65000);

	ck_assert_int_eq(udp->buf_alloc(t, 65001, &buf), -EMSGSIZE);
	ck_assert_ptr_null(buf);
	ck_assert_int_eq(udp->buf_alloc(t, 65000, &buf), 0);
	ck_assert_uint_eq(buf->capacity, 65000);
	oskr__buf_release(buf);

	/* every failed send still consumes the reference */
	ck_assert_int_eq(udp->send_replica(t, 0, 0, tracked_buf(NULL, 65001)),
			 -EMSGSIZE);
	memset(&zero, 0, sizeof(zero));
	ck_assert_int_eq(udp->send_addr(t, 0, &zero, tracked_buf(NULL, 65001)),
			 -EMSGSIZE);
	ck_assert_int_eq(udp->send_replica(t, 0, 1, tracked_text("x")), -EINVAL);
	ck_assert_int_eq(udp->send_replica(t, 2, 0, tracked_text("x")), -EINVAL);
	ck_assert_int_eq(udp->send_addr(t, 0, &zero, tracked_text("x")), -EINVAL);
	struct oskr_addr junk;
	memset(&junk, 0xab, sizeof(junk));
	ck_assert_int_eq(udp->send_addr(t, 0, &junk, tracked_text("x")), -EINVAL);
	ck_assert_int_eq(live_buffers(), 0);

	/* the largest message goes through intact */
	ck_assert_int_eq(udp->start(t, inbox_deliver, in), 0);
	struct oskr_buf *big = tracked_buf(NULL, 65000);
	for (uint32_t i = 0; i < 65000; i++)
		big->data[i] = (uint8_t)(i * 7);
	ck_assert_int_eq(udp->send_replica(t, 0, 0, big), 0);
	udp->flush(t, 0);
	ck_assert(inbox_wait(in, 1));
	ck_assert_uint_eq(in->items[0].buf->len, 65000);
	uint8_t *expected = malloc(65000);
	ck_assert_ptr_nonnull(expected);
	for (uint32_t i = 0; i < 65000; i++)
		expected[i] = (uint8_t)(i * 7);
	bool intact = !memcmp(in->items[0].buf->data, expected, 65000);
	free(expected);
	ck_assert(intact);

	/* from outside: too long and empty datagrams are dropped, counted;
	 * the next good one shows they were processed (one socket, in
	 * order) */
	struct sockaddr_storage raw_addr;
	int raw = raw_socket(AF_INET, NULL, &raw_addr);
	uint8_t *huge = calloc(1, 65001);
	ck_assert_ptr_nonnull(huge);
	raw_send(raw, &c, 0, huge, 65001);
	raw_send(raw, &c, 0, huge, 0);
	raw_send(raw, &c, 0, "ok", 2);
	free(huge);
	ck_assert(inbox_wait(in, 2));
	ck_assert(buf_is(in->items[1].buf, "ok"));
	udp->stats(t, &stats);
	ck_assert_uint_eq(stats.drops[OSKR_DROP_TRUNCATED], 1);
	ck_assert_uint_eq(stats.drops[OSKR_DROP_SHORT], 1);
	ck_assert_uint_eq(stats.rx_packets, 2);
	close(raw);

	udp->close(t);
	inbox_free(in);
	ck_assert_int_eq(live_buffers(), 0);
}
END_TEST

START_TEST(test_unknown_sender)
{
	struct cluster c;
	struct oskr_transport *t;
	struct inbox *in = inbox_new();
	struct sockaddr_storage raw_addr, spoof_addr;
	char reply[16];

	ck_assert(cluster_init(&c, 3, AF_INET, 1, 32));
	cluster_open(&c, 1, 1, &t);
	ck_assert_int_eq(udp->start(t, inbox_deliver, in), 0);

	int raw = raw_socket(AF_INET, NULL, &raw_addr);
	raw_send(raw, &c, 0, "junk", 4);
	ck_assert(inbox_wait(in, 1));
	ck_assert(buf_is(in->items[0].buf, "junk"));
	ck_assert_int_eq(in->items[0].from_replica, -1);
	expect_v4_addr(&in->items[0].from, sockaddr_port(&raw_addr));

	/* a reply reaches the stranger's address */
	ck_assert_int_eq(udp->send_addr(t, 0, &in->items[0].from,
					tracked_text("go away")), 0);
	udp->flush(t, 0);
	ssize_t got = recv(raw, reply, sizeof(reply), 0);
	ck_assert_int_eq(got, 7);
	ck_assert_mem_eq(reply, "go away", 7);

	/* a socket on replica 2's configured address is replica 2: the
	 * mapping is by source address, for replicas this one never
	 * opened too */
	int as_replica2 = raw_socket(AF_INET, &c.replicas[2].sockaddr,
				     &spoof_addr);
	raw_send(as_replica2, &c, 0, "from 2", 6);
	ck_assert(inbox_wait(in, 2));
	ck_assert_int_eq(in->items[1].from_replica, 2);
	close(as_replica2);
	close(raw);

	udp->close(t);
	inbox_free(in);
	ck_assert_int_eq(live_buffers(), 0);
}
END_TEST

START_TEST(test_stop_restart_close)
{
	struct cluster c;
	struct oskr_transport *t[2];
	struct inbox *in0 = inbox_new(), *in1 = inbox_new();

	ck_assert(cluster_init(&c, 2, AF_INET, 2, 8));
	cluster_open(&c, 2, 2, t);
	udp->stop(t[1]); /* never started: a no-op */
	ck_assert_int_eq(udp->start(t[1], inbox_deliver, in1), 0);
	udp->stop(t[1]);
	udp->stop(t[1]);

	/* a stopped replica can start again */
	ck_assert_int_eq(udp->start(t[1], inbox_deliver, in1), 0);
	ck_assert_int_eq(udp->send_replica(t[0], 0, 1, tracked_text("a")), 0);
	udp->flush(t[0], 0);
	ck_assert(inbox_wait(in1, 1));

	/* close sends what is still queued and releases it */
	ck_assert_int_eq(udp->send_replica(t[0], 0, 1, tracked_text("b")), 0);
	ck_assert_int_eq(udp->send_replica(t[0], 1, 1, tracked_text("c")), 0);
	ck_assert_int_eq(live_buffers(), 2);
	udp->close(t[0]);
	ck_assert_int_eq(live_buffers(), 0);
	ck_assert(inbox_wait(in1, 3));

	/* close of a running replica stops its threads first */
	udp->close(t[1]);
	inbox_free(in0);
	inbox_free(in1);
}
END_TEST

/* Buffers a receiver keeps stay intact while later datagrams arrive: a
 * short one (copied out of the receive buffer) and a long one (handed over
 * in the receive buffer itself). */
START_TEST(test_held_buffers_stay_valid)
{
	enum { LATER = 300, SHORT = 1000, LONG = 40000, WINDOW = 48 };
	struct cluster c;
	struct oskr_transport *t[2];
	struct inbox *in1 = inbox_new();
	uint8_t *first = malloc(SHORT), *second = malloc(LONG);

	ck_assert(first && second);
	ck_assert(cluster_init(&c, 2, AF_INET, 1, 32));
	c.config.udp.socket_buffer = 4 << 20;
	cluster_open(&c, 2, 1, t);
	ck_assert_int_eq(udp->start(t[1], inbox_deliver, in1), 0);

	memset(first, 'A', SHORT);
	memset(second, 'B', LONG);
	ck_assert_int_eq(udp->send_replica(t[0], 0, 1,
					   tracked_buf(first, SHORT)), 0);
	ck_assert_int_eq(udp->send_replica(t[0], 0, 1,
					   tracked_buf(second, LONG)), 0);
	udp->flush(t[0], 0);
	ck_assert(inbox_wait(in1, 2));
	struct oskr_buf *held[2] = { in1->items[0].buf, in1->items[1].buf };
	const uint8_t *held_data[2] = { held[0]->data, held[1]->data };

	/* every 8th later message is long too, so receive slots that were
	 * handed over get reused */
	for (uint32_t seq = 0; seq < LATER; seq++) {
		if (seq >= WINDOW && seq % 8 == 0)
			ck_assert(inbox_wait(in1, 2 + seq - WINDOW));
		ck_assert_int_eq(udp->send_replica(t[0], 0, 1,
						   tracked_seq(0, seq,
							       seq % 8 ? SHORT : LONG)),
				 0);
		if (seq % 8 == 7)
			udp->flush(t[0], 0);
	}
	udp->flush(t[0], 0);
	ck_assert(inbox_wait(in1, 2 + LATER));
	for (unsigned h = 0; h < 2; h++)
		ck_assert_ptr_eq(held[h]->data, held_data[h]);
	ck_assert_uint_eq(held[0]->len, SHORT);
	ck_assert_uint_eq(held[1]->len, LONG);
	ck_assert(!memcmp(held[0]->data, first, SHORT));
	ck_assert(!memcmp(held[1]->data, second, LONG));
	/* and the later ones are distinct buffers with their own bytes */
	for (uint32_t i = 2; i < 2 + LATER; i++) {
		uint32_t slot, seq;
		ck_assert_ptr_ne(in1->items[i].buf, held[0]);
		ck_assert_ptr_ne(in1->items[i].buf, held[1]);
		seq_of(in1->items[i].buf, &slot, &seq);
		ck_assert_uint_eq(seq, i - 2);
		ck_assert_uint_eq(in1->items[i].buf->len,
				  seq % 8 ? SHORT : LONG);
	}

	udp->close(t[0]);
	udp->close(t[1]);
	inbox_free(in1);
	free(first);
	free(second);
	ck_assert_int_eq(live_buffers(), 0);
}
END_TEST

/* Wait until @p count datagrams are accounted for: delivered to @p in, or
 * dropped as no_buffer (bounded by WAIT_MS). */
static void wait_accounted(struct oskr_transport *t, struct inbox *in,
			   uint64_t count)
{
	struct oskr_transport_stats stats;

	for (int round = 0; round < WAIT_MS; round++) {
		udp->stats(t, &stats);
		if (inbox_count(in) + stats.drops[OSKR_DROP_NO_BUFFER] >= count)
			return;
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	ck_abort_msg("%" PRIu64 " datagrams not accounted for in %d ms",
		     count, WAIT_MS);
}

/* udp.rx_memory bounds the bytes delivered buffers hold at once: with
 * 1 MiB, held 40 KB datagrams (each handed over in a 64 KiB receive
 * buffer) stop being delivered once the next would not fit, the rest are
 * dropped as no_buffer, and releasing the held ones makes room again.
 * Buffers released after close still give their bytes back safely. */
START_TEST(test_rx_memory_bound)
{
	enum { LONG = 40000, SENT = 30, LIMIT = 1 << 20 };
	struct cluster c;
	struct oskr_transport *t;
	struct inbox *in = inbox_new();
	struct sockaddr_storage raw_addr;
	struct oskr_transport_stats stats;
	uint8_t *payload = malloc(LONG);

	ck_assert_ptr_nonnull(payload);
	memset(payload, 'L', LONG);
	ck_assert(cluster_init(&c, 1, AF_INET, 1, 32));
	c.config.udp.rx_memory = LIMIT;
	cluster_open(&c, 1, 1, &t);
	ck_assert_int_eq(udp->start(t, inbox_deliver, in), 0);
	int raw = raw_socket(AF_INET, NULL, &raw_addr);

	/* One at a time, so no socket buffer size can lose any. */
	for (uint64_t sent = 1; sent <= SENT; sent++) {
		raw_send(raw, &c, 0, payload, LONG);
		wait_accounted(t, in, sent);
	}
	uint64_t per_buffer = sizeof(struct oskr__buf) + 65536;
	unsigned fit = (unsigned)(LIMIT / per_buffer);
	udp->stats(t, &stats);
	ck_assert_uint_eq(inbox_count(in), fit);
	ck_assert_uint_eq(stats.drops[OSKR_DROP_NO_BUFFER], SENT - fit);

	/* Release what is held: the next ones are delivered again. */
	pthread_mutex_lock(&in->lock);
	for (unsigned i = 0; i < in->count; i++)
		oskr__buf_release(in->items[i].buf);
	in->count = 0;
	pthread_mutex_unlock(&in->lock);
	for (uint64_t sent = 1; sent <= 3; sent++) {
		raw_send(raw, &c, 0, payload, LONG);
		wait_accounted(t, in, SENT - fit + sent);
	}
	udp->stats(t, &stats);
	ck_assert_uint_eq(inbox_count(in), 3);
	ck_assert_uint_eq(stats.drops[OSKR_DROP_NO_BUFFER], SENT - fit);
	ck_assert_uint_eq(in->items[0].buf->len, LONG);

	/* The transport goes first; the held buffers are released after. */
	close(raw);
	udp->close(t);
	inbox_free(in);
	free(payload);
}
END_TEST

START_TEST(test_ipv6_loopback)
{
	struct cluster c;
	struct oskr_transport *replica, *client;
	struct inbox *replica_in = inbox_new(), *client_in = inbox_new();
	struct oskr_addr client_addr;

	if (!cluster_init(&c, 1, AF_INET6, 1, 32)) {
		fprintf(stderr, "test_ipv6_loopback: no ::1 here, skipped\n");
		goto out;
	}
	cluster_open(&c, 1, 1, &replica);
	client = client_open(&c, 1);
	ck_assert_int_eq(udp->start(replica, inbox_deliver, replica_in), 0);
	udp->local_addr(client, &client_addr);
	ck_assert_uint_eq(client_addr.bytes[0], 6);
	ck_assert_mem_eq(&client_addr.bytes[8], &in6addr_loopback, 16);
	ck_assert(!client_addr.bytes[24] && !client_addr.bytes[31]);

	ck_assert_int_eq(udp->send_replica(client, 0, 0, tracked_text("v6")), 0);
	udp->flush(client, 0);
	ck_assert(inbox_wait(replica_in, 1));
	ck_assert_int_eq(replica_in->items[0].from_replica, -1);
	ck_assert_mem_eq(replica_in->items[0].from.bytes, client_addr.bytes,
			 OSKR_ADDR_SIZE);
	ck_assert_int_eq(udp->send_addr(replica, 0, &replica_in->items[0].from,
					tracked_text("six")), 0);
	udp->flush(replica, 0);
	ck_assert(client_wait(client, client_in, 1));
	ck_assert(buf_is(client_in->items[0].buf, "six"));
	ck_assert_int_eq(client_in->items[0].from_replica, 0);

	udp->close(client);
	udp->close(replica);
out:
	inbox_free(replica_in);
	inbox_free(client_in);
	ck_assert_int_eq(live_buffers(), 0);
}
END_TEST

START_TEST(test_open_errors)
{
	struct cluster c;
	struct oskr_transport *t = NULL;
	char *err = NULL;

	ck_assert(cluster_init(&c, 2, AF_INET, 1, 32));
	ck_assert_int_eq(udp->open(&t, &c.config, 2, 1, &err), -EINVAL);
	ck_assert_ptr_null(t);
	ck_assert_msg(err && strstr(err, "replica id 2"), "message: %s", err);
	ck_assert_int_eq(udp->open(&t, &c.config, 0, 0, &err), -EINVAL);
	ck_assert_ptr_null(t);

	/* a replica without an IP address (a DPDK-only entry) */
	struct sockaddr_storage saved = c.replicas[1].sockaddr;
	memset(&c.replicas[1].sockaddr, 0, sizeof(c.replicas[1].sockaddr));
	ck_assert_int_eq(udp->open(&t, &c.config, 0, 1, &err), -EINVAL);
	ck_assert_msg(err && strstr(err, "replica 1"), "message: %s", err);

	/* mixed families */
	loopback(AF_INET6, 7000, &c.replicas[1].sockaddr);
	ck_assert_int_eq(udp->open(&t, &c.config, 0, 1, &err), -EINVAL);
	ck_assert_msg(err && strstr(err, "mixed"), "message: %s", err);
	c.replicas[1].sockaddr = saved;

	/* an address this host does not have: bind fails, no packet sent */
	struct sockaddr_in *sin = (void *)&c.replicas[0].sockaddr;
	inet_pton(AF_INET, "192.0.2.1", &sin->sin_addr);
	int ret = udp->open(&t, &c.config, 0, 1, &err);
	ck_assert_int_eq(ret, -EADDRNOTAVAIL);
	ck_assert_ptr_null(t);
	char name[32];
	snprintf(name, sizeof(name), "192.0.2.1:%u", replica_port(&c, 0));
	ck_assert_msg(err && strstr(err, name) &&
			      strstr(err, strerror(EADDRNOTAVAIL)),
		      "message: %s", err);
	free(err);
}
END_TEST

START_TEST(test_registry)
{
	ck_assert_ptr_eq(oskr__transport_for(OSKR_TRANSPORT_UDP),
			 &oskr__udp_transport);
	ck_assert_str_eq(oskr__transport_for(OSKR_TRANSPORT_UDP)->name, "udp");
	ck_assert_ptr_null(oskr__transport_for(OSKR_TRANSPORT_SIM));
	/* DPDK is linked into oskrd only; this binary may or may not have it */
	const struct oskr_transport_ops *dpdk =
		oskr__transport_for(OSKR_TRANSPORT_DPDK);
	if (dpdk)
		ck_assert_str_eq(dpdk->name, "dpdk");

	for (unsigned a = 0; a < OSKR_DROP_REASON_COUNT; a++) {
		const char *name = oskr__drop_reason_name(a);
		ck_assert_ptr_nonnull(name);
		ck_assert_str_ne(name, "unknown");
		ck_assert_uint_eq(strspn(name, "abcdefghijklmnopqrstuvwxyz_"),
				  strlen(name));
		for (unsigned b = 0; b < a; b++)
			ck_assert_str_ne(name, oskr__drop_reason_name(b));
	}
	ck_assert_str_eq(oskr__drop_reason_name(OSKR_DROP_TX_FAILED),
			 "tx_failed");
	ck_assert_str_eq(oskr__drop_reason_name(OSKR_DROP_REASON_COUNT),
			 "unknown");
}
END_TEST

static Suite *udp_suite(void)
{
	Suite *suite = suite_create("udp");
	TCase *tc = tcase_create("loopback");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_replica_to_replica);
	tcase_add_test(tc, test_client_request_reply);
	tcase_add_test(tc, test_one_slot_keeps_order);
	tcase_add_test(tc, test_two_rx_threads);
	tcase_add_test(tc, test_oversize_and_bad_sends);
	tcase_add_test(tc, test_unknown_sender);
	tcase_add_test(tc, test_stop_restart_close);
	tcase_add_test(tc, test_held_buffers_stay_valid);
	tcase_add_test(tc, test_rx_memory_bound);
	tcase_add_test(tc, test_ipv6_loopback);
	tcase_add_test(tc, test_open_errors);
	tcase_add_test(tc, test_registry);
	suite_add_tcase(suite, tc);
	return suite;
}

int main(void)
{
	SRunner *runner = srunner_create(udp_suite());

	srunner_run_all(runner, CK_ENV);
	int failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
