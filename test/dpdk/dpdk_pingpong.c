/* SPDX-License-Identifier: MIT */
/*
 * dpdk_pingpong: exercises the dpdk transport (transport/dpdk.c) across two
 * processes on a real DPDK port (memif, af_packet over veth, or a NIC).
 *
 *   dpdk_pingpong server --eal "EAL ARGS" --self MAC%ID [options]
 *   dpdk_pingpong client --eal "EAL ARGS" --server MAC%ID [options]
 *
 * The server is replica 0 of a one-replica config: its rx thread echoes
 * pings (half through the received buffer itself: the copy path; half
 * through a fresh buf_alloc: the in-place path), counts a flood, and
 * answers stats requests with its transport counters. It prints READY once
 * its port is up and exits cleanly (stop, close, EAL cleanup) on SIGTERM
 * or SIGINT, or after --max-seconds.
 *
 * The client (an ephemeral client id on its own port) checks that every
 * payload comes back intact, from replica 0, at several sizes up to the
 * largest message; measures round trip (p50/p99/max, 64 B) and a one-way
 * flood; with --inject it sends malformed frames (short, wrong ethertype,
 * foreign MAC, unknown destination id, truncated payload, random bytes)
 * and checks that the server counted each by reason and still answers.
 * Figures are printed as "RESULT key=value" lines; they are reports, not
 * assertions. Exit status 0 means every check passed.
 *
 * Every wait is bounded (--timeout-ms per reply, --max-seconds overall).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "../../daemon/buf.h"
#include "../../daemon/config.h"
#include "../../daemon/log.h"
#include "../../transport/dpdk.h"
#include "../../transport/frame.h"
#include "../../transport/transport.h"

#define MAGIC "OSKR"
#define MSG_HEADER 16 /* magic, type, 3 pad, seq */
#define TYPE_PING_COPY 'P' /* echo the received buffer (copy path) */
#define TYPE_PING_FRESH 'Q' /* echo via buf_alloc (in-place path) */
#define TYPE_FLOOD 'F'
#define TYPE_STATS 'S'
#define TYPE_STATS_REPLY 'R'
#define MAX_EAL_ARGS 64

static const struct oskr_transport_ops *ops = &oskr__dpdk_transport;

struct options {
	bool server;
	char *eal;
	char *port;
	struct oskr__frame_endpoint self, server_endpoint;
	bool has_self, has_server;
	unsigned rx_queues, tx_queues; /* tx 0 = the transport's default */
	unsigned rounds, correctness_rounds, flood;
	unsigned timeout_ms, max_seconds;
	unsigned min_frame; /* af_packet cannot send frames below 14 B */
	bool inject, inject_exact;
	unsigned inject_each, fuzz;
	uint32_t idle_spin, idle_yield, idle_sleep_us;
	const char *label;
	int cpu; /* pin the client's polling thread; -1 = no */
	unsigned echo_slot; /* the server's tx slot for replies */
	unsigned clients; /* client transports in this process */
};

/* The names oskrd's counters use (transport/registry.c, which this
 * program does not link). */
static const char *drop_name(int reason)
{
	static const char *const names[OSKR_DROP_REASON_COUNT] = {
		[OSKR_DROP_SHORT] = "short",
		[OSKR_DROP_WRONG_TYPE] = "wrong_type",
		[OSKR_DROP_UNKNOWN_DEST] = "unknown_dest",
		[OSKR_DROP_TRUNCATED] = "truncated",
		[OSKR_DROP_NO_BUFFER] = "no_buffer",
		[OSKR_DROP_QUEUE_FULL] = "queue_full",
		[OSKR_DROP_TX_FAILED] = "tx_failed",
	};
	return names[reason] ? names[reason] : "?";
}

static uint64_t now_ns(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static int parse_endpoint(const char *text, struct oskr__frame_endpoint *out)
{
	unsigned mac[6], id;
	char tail;
	if (sscanf(text, "%x:%x:%x:%x:%x:%x%%%u%c", &mac[0], &mac[1], &mac[2],
		   &mac[3], &mac[4], &mac[5], &id, &tail) != 7 ||
	    id > OSKR_FRAME_ID_MAX)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (mac[i] > 0xff)
			return -EINVAL;
		out->mac[i] = (uint8_t)mac[i];
	}
	out->id = (uint16_t)id;
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: dpdk_pingpong server --eal ARGS --self MAC%%ID [--port NAME]\n"
		"                     [--rx-queues N] [--tx-queues N] [--max-seconds S]\n"
		"       dpdk_pingpong client --eal ARGS --server MAC%%ID [--port NAME]\n"
		"                     [--rounds N] [--correctness N] [--flood N]\n"
		"                     [--inject] [--inject-exact] [--fuzz N]\n"
		"                     [--min-frame B] [--timeout-ms MS] [--label L]\n"
		"                     [--cpu N] [--clients N] [--echo-slot N (server)]\n"
		"common: [--idle SPIN,YIELD,SLEEP_US] [--max-seconds S]\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longs[] = {
		{ "eal", required_argument, NULL, 'e' },
		{ "self", required_argument, NULL, 's' },
		{ "server", required_argument, NULL, 'S' },
		{ "port", required_argument, NULL, 'p' },
		{ "rx-queues", required_argument, NULL, 'q' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "correctness", required_argument, NULL, 'c' },
		{ "flood", required_argument, NULL, 'f' },
		{ "inject", no_argument, NULL, 'i' },
		{ "inject-exact", no_argument, NULL, 'x' },
		{ "fuzz", required_argument, NULL, 'z' },
		{ "min-frame", required_argument, NULL, 'm' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "max-seconds", required_argument, NULL, 'M' },
		{ "idle", required_argument, NULL, 'I' },
		{ "label", required_argument, NULL, 'l' },
		{ "cpu", required_argument, NULL, 'C' },
		{ "echo-slot", required_argument, NULL, 'E' },
		{ "tx-queues", required_argument, NULL, 'T' },
		{ "clients", required_argument, NULL, 'N' },
		{ NULL, 0, NULL, 0 },
	};
	*o = (struct options){
		.rx_queues = 1,
		.rounds = 20000,
		.correctness_rounds = 1000,
		.flood = 200000,
		.timeout_ms = 1000,
		.max_seconds = 120,
		.min_frame = 0,
		.inject_each = 50,
		.fuzz = 500,
		.idle_spin = 1000,
		.idle_yield = 100,
		.idle_sleep_us = 50,
		.label = "dpdk",
		.cpu = -1,
		.clients = 1,
	};
	if (argc < 2)
		return -EINVAL;
	if (strcmp(argv[1], "server") == 0)
		o->server = true;
	else if (strcmp(argv[1], "client") != 0)
		return -EINVAL;
	optind = 2;
	int opt;
	while ((opt = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (opt) {
		case 'e':
			o->eal = optarg;
			break;
		case 's':
			if (parse_endpoint(optarg, &o->self))
				return -EINVAL;
			o->has_self = true;
			break;
		case 'S':
			if (parse_endpoint(optarg, &o->server_endpoint))
				return -EINVAL;
			o->has_server = true;
			break;
		case 'p':
			o->port = optarg;
			break;
		case 'q':
			o->rx_queues = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			o->rounds = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			o->correctness_rounds =
				(unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'f':
			o->flood = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'i':
			o->inject = true;
			break;
		case 'x':
			o->inject_exact = true;
			break;
		case 'z':
			o->fuzz = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'm':
			o->min_frame = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 't':
			o->timeout_ms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'M':
			o->max_seconds = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'I':
			if (sscanf(optarg, "%u,%u,%u", &o->idle_spin,
				   &o->idle_yield, &o->idle_sleep_us) != 3)
				return -EINVAL;
			break;
		case 'l':
			o->label = optarg;
			break;
		case 'C':
			o->cpu = (int)strtol(optarg, NULL, 10);
			break;
		case 'N':
			o->clients = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'T':
			o->tx_queues = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'E':
			o->echo_slot = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			return -EINVAL;
		}
	}
	if (!o->eal || (o->server && !o->has_self) ||
	    (!o->server && !o->has_server) || !o->rx_queues ||
	    !o->clients || o->clients > 64)
		return -EINVAL;
	return 0;
}

/* The config a oskrd would load: one replica (the server). */
struct harness_config {
	struct oskr_config config;
	struct oskr_config_replica replica;
	char *eal_copy;
	char *eal_args[MAX_EAL_ARGS + 1];
};

static int build_config(const struct options *o, struct harness_config *h)
{
	memset(h, 0, sizeof(*h));
	h->eal_copy = strdup(o->eal);
	if (!h->eal_copy)
		return -ENOMEM;
	size_t count = 0;
	for (char *save = NULL, *arg = strtok_r(h->eal_copy, " ", &save); arg;
	     arg = strtok_r(NULL, " ", &save)) {
		if (count == MAX_EAL_ARGS)
			return -E2BIG;
		h->eal_args[count++] = arg;
	}
	const struct oskr__frame_endpoint *server =
		o->server ? &o->self : &o->server_endpoint;
	memcpy(h->replica.mac, server->mac, 6);
	h->replica.link_id = server->id;
	h->replica.has_mac = true;
	struct oskr_config *c = &h->config;
	c->replica_count = 1;
	c->replicas = &h->replica;
	c->transport = OSKR_TRANSPORT_DPDK;
	c->workers = 1;
	c->dpdk.eal_args = h->eal_args;
	c->dpdk.eal_arg_count = count;
	c->dpdk.port_name = o->port;
	c->dpdk.rx_queues = (uint16_t)o->rx_queues;
	c->dpdk.tx_queues = (uint16_t)o->tx_queues;
	c->dpdk.mbuf_count = 8191;
	c->dpdk.burst_size = 32;
	c->dpdk.idle_spin = o->idle_spin;
	c->dpdk.idle_yield = o->idle_yield;
	c->dpdk.idle_sleep_us = o->idle_sleep_us;
	return 0;
}

/* ---- messages ---- */

struct stats_reply {
	char magic[4];
	uint8_t type;
	uint8_t pad[3];
	uint64_t flood_count, flood_bytes, flood_first_ns, flood_last_ns;
	uint64_t stray, pings;
	uint64_t rx_packets, tx_packets;
	uint64_t drops[OSKR_DROP_REASON_COUNT];
};

static void put_header(uint8_t *data, char type, uint64_t seq)
{
	memcpy(data, MAGIC, 4);
	data[4] = (uint8_t)type;
	data[5] = data[6] = data[7] = 0;
	memcpy(data + 8, &seq, sizeof(seq));
}

static void fill_pattern(uint8_t *data, size_t len, uint64_t seq)
{
	for (size_t j = MSG_HEADER; j < len; j++)
		data[j] = (uint8_t)(seq * 31 + j * 7 + (j >> 8));
}

static bool has_magic(const struct oskr_buf *buf)
{
	return buf->len >= MSG_HEADER && memcmp(buf->data, MAGIC, 4) == 0;
}

/* ---- server ---- */

static volatile sig_atomic_t quit;

static void on_signal(int signo)
{
	quit = 1;
}

struct server {
	struct oskr_transport *t;
	unsigned slot;
	/* written by the one rx thread only */
	uint64_t flood_count, flood_bytes, flood_first_ns, flood_last_ns;
	uint64_t stray, pings, send_errors;
};

static void server_reply_stats(struct server *s, const struct oskr_addr *to)
{
	struct oskr_buf *buf;
	if (ops->buf_alloc(s->t, sizeof(struct stats_reply), &buf) < 0) {
		s->send_errors++;
		return;
	}
	struct stats_reply reply;
	memset(&reply, 0, sizeof(reply));
	memcpy(reply.magic, MAGIC, 4);
	reply.type = TYPE_STATS_REPLY;
	reply.flood_count = s->flood_count;
	reply.flood_bytes = s->flood_bytes;
	reply.flood_first_ns = s->flood_first_ns;
	reply.flood_last_ns = s->flood_last_ns;
	reply.stray = s->stray;
	reply.pings = s->pings;
	struct oskr_transport_stats stats;
	ops->stats(s->t, &stats);
	reply.rx_packets = stats.rx_packets;
	reply.tx_packets = stats.tx_packets;
	memcpy(reply.drops, stats.drops, sizeof(reply.drops));
	memcpy(buf->data, &reply, sizeof(reply));
	buf->len = sizeof(reply);
	if (ops->send_addr(s->t, s->slot, to, buf) < 0)
		s->send_errors++;
	ops->flush(s->t, s->slot);
}

/* Runs on the server's rx thread: tx slot 0 is its own. */
static void server_deliver(void *arg, struct oskr_buf *buf,
			   const struct oskr_addr *from, int32_t from_replica)
{
	struct server *s = arg;
	if (!has_magic(buf)) {
		s->stray++;
		oskr__buf_release(buf);
		return;
	}
	if (!s->pings && !s->flood_count) {
		/* Which rx thread delivers: with 2+ rx threads, a client whose
		 * frames arrive on queue 0 but hash to thread 1 proves the
		 * software-hash handoff. */
		char name[16] = "";
		prctl(PR_GET_NAME, name, 0, 0, 0);
		printf("server: first message delivered on %s\n", name);
		fflush(stdout);
	}
	switch (buf->data[4]) {
	case TYPE_PING_COPY:
		s->pings++;
		/* The received buffer itself: the transport must copy it. */
		if (ops->send_addr(s->t, s->slot, from, buf) < 0)
			s->send_errors++;
		ops->flush(s->t, s->slot);
		return;
	case TYPE_PING_FRESH: {
		s->pings++;
		struct oskr_buf *echo;
		if (ops->buf_alloc(s->t, buf->len, &echo) == 0) {
			memcpy(echo->data, buf->data, buf->len);
			echo->len = buf->len;
			if (ops->send_addr(s->t, s->slot, from, echo) < 0)
				s->send_errors++;
			ops->flush(s->t, s->slot);
		} else {
			s->send_errors++;
		}
		break;
	}
	case TYPE_FLOOD: {
		/* The clock is read for 1 message in 64 (a VM's clock_gettime
		 * costs as much as the rest of the receive path). */
		if (!s->flood_count || s->flood_count % 64 == 0) {
			uint64_t now = now_ns();
			if (!s->flood_count)
				s->flood_first_ns = now;
			s->flood_last_ns = now;
		}
		s->flood_count++;
		s->flood_bytes += buf->len;
		break;
	}
	case TYPE_STATS:
		server_reply_stats(s, from);
		break;
	default:
		s->stray++;
		break;
	}
	oskr__buf_release(buf);
}

static int run_server(const struct options *o, struct harness_config *h)
{
	struct server s;
	memset(&s, 0, sizeof(s));
	char *err = NULL;
	/* Slots 0..echo_slot are "workers" plus one spare, as in oskrd. */
	s.slot = o->echo_slot;
	int rc = ops->open(&s.t, &h->config, 0, o->echo_slot + 2, &err);
	if (rc < 0) {
		fprintf(stderr, "server: open failed: %s\n",
			err ? err : strerror(-rc));
		free(err);
		return 2;
	}
	rc = ops->start(s.t, server_deliver, &s);
	if (rc < 0) {
		fprintf(stderr, "server: start failed: %s\n", strerror(-rc));
		ops->close(s.t);
		return 2;
	}
	struct oskr_addr local;
	struct oskr__frame_endpoint endpoint;
	char text[OSKR_FRAME_ENDPOINT_TEXT];
	ops->local_addr(s.t, &local);
	oskr__frame_addr_unpack(&local, &endpoint);
	oskr__frame_endpoint_format(&endpoint, text, sizeof(text));
	printf("READY %s max_message=%u\n", text, ops->max_message(s.t));
	fflush(stdout);

	uint64_t deadline = now_ns() + (uint64_t)o->max_seconds * 1000000000u;
	while (!quit && now_ns() < deadline)
		usleep(20000);
	ops->stop(s.t);
	struct oskr_transport_stats stats;
	ops->stats(s.t, &stats);
	printf("server: pings=%llu flood=%llu stray=%llu send_errors=%llu "
	       "rx=%llu tx=%llu",
	       (unsigned long long)s.pings, (unsigned long long)s.flood_count,
	       (unsigned long long)s.stray, (unsigned long long)s.send_errors,
	       (unsigned long long)stats.rx_packets,
	       (unsigned long long)stats.tx_packets);
	for (int r = 0; r < OSKR_DROP_REASON_COUNT; r++)
		printf(" drop_%s=%llu", drop_name(r),
		       (unsigned long long)stats.drops[r]);
	printf("\n");
	ops->close(s.t);
	printf("server: clean exit%s\n", quit ? " (signal)" : " (time limit)");
	fflush(stdout);
	return 0;
}

/* ---- client ---- */

struct client {
	const struct options *o;
	struct oskr_transport *t;
	uint32_t max_message;
	struct oskr__frame_endpoint local;
	/* the last reply, copied out */
	bool have_reply;
	uint8_t reply[2048];
	uint32_t reply_len;
	int32_t reply_from;
	uint64_t extra_replies;
	int failures;
};

static void client_deliver(void *arg, struct oskr_buf *buf,
			   const struct oskr_addr *from, int32_t from_replica)
{
	struct client *c = arg;
	if (c->have_reply || buf->len > sizeof(c->reply)) {
		c->extra_replies++;
	} else {
		memcpy(c->reply, buf->data, buf->len);
		c->reply_len = buf->len;
		c->reply_from = from_replica;
		c->have_reply = true;
	}
	oskr__buf_release(buf);
}

static void check(struct client *c, bool ok, const char *what)
{
	if (!ok) {
		c->failures++;
		printf("FAIL %s: %s\n", c->o->label, what);
		fflush(stdout);
	}
}

/* Waits for one reply; false on timeout. */
static bool wait_reply(struct client *c, unsigned timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (!c->have_reply) {
		uint64_t now = now_ns();
		if (now >= deadline)
			return false;
		int left = (int)((deadline - now) / 1000000u) + 1;
		int rc = ops->poll(c->t, client_deliver, c, left);
		if (rc < 0)
			return false;
	}
	return true;
}

static int send_message(struct client *c, const uint8_t *data, size_t len)
{
	struct oskr_buf *buf;
	int rc = ops->buf_alloc(c->t, len, &buf);
	if (rc < 0)
		return rc;
	memcpy(buf->data, data, len);
	buf->len = (uint32_t)len;
	rc = ops->send_replica(c->t, 0, 0, buf);
	ops->flush(c->t, 0);
	return rc;
}

/* One ping of @p len bytes; the round trip in ns, or 0 when it failed
 * (after up to 3 sends). */
static uint64_t ping(struct client *c, uint64_t seq, size_t len, char type)
{
	uint8_t sent[2048];
	put_header(sent, type, seq);
	fill_pattern(sent, len, seq);
	for (int attempt = 0; attempt < 3; attempt++) {
		c->have_reply = false;
		uint64_t start = now_ns();
		if (send_message(c, sent, len) < 0)
			continue;
		while (wait_reply(c, c->o->timeout_ms)) {
			uint64_t seq_back;
			memcpy(&seq_back, c->reply + 8, sizeof(seq_back));
			if (c->reply_len >= MSG_HEADER && seq_back == seq) {
				uint64_t rtt = now_ns() - start;
				check(c, c->reply_len == len,
				      "echo has the wrong length");
				check(c, memcmp(c->reply, sent, len) == 0,
				      "echo payload differs");
				check(c, c->reply_from == 0,
				      "echo not attributed to replica 0");
				return attempt == 0 ? rtt : 1;
			}
			c->have_reply = false; /* a late reply: keep waiting */
		}
	}
	return 0;
}

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static bool request_stats(struct client *c, struct stats_reply *out)
{
	uint8_t request[MSG_HEADER];
	for (int attempt = 0; attempt < 5; attempt++) {
		put_header(request, TYPE_STATS, (uint64_t)attempt);
		c->have_reply = false;
		if (send_message(c, request, sizeof(request)) < 0)
			continue;
		while (wait_reply(c, c->o->timeout_ms)) {
			if (c->reply_len == sizeof(*out) &&
			    c->reply[4] == TYPE_STATS_REPLY) {
				memcpy(out, c->reply, sizeof(*out));
				return true;
			}
			c->have_reply = false;
		}
	}
	return false;
}

static void correctness_phase(struct client *c)
{
	const size_t sizes[] = { MSG_HEADER, 64, 127, 128, 300, 1000,
				 c->max_message };
	const size_t size_count = sizeof(sizes) / sizeof(sizes[0]);
	unsigned lost = 0;
	for (unsigned i = 0; i < c->o->correctness_rounds; i++) {
		size_t len = sizes[i % size_count];
		char type = (i / size_count) % 2 ? TYPE_PING_FRESH
						 : TYPE_PING_COPY;
		if (!ping(c, 1000000u + i, len, type))
			lost++;
	}
	printf("RESULT %s correctness_rounds=%u sizes=16..%u lost=%u\n",
	       c->o->label, c->o->correctness_rounds, c->max_message, lost);
	check(c, lost == 0, "some pings got no echo after 3 sends");
	/* A message one byte over the limit is refused, not sent. */
	struct oskr_buf *buf;
	check(c, ops->buf_alloc(c->t, c->max_message + 1, &buf) == -EMSGSIZE,
	      "buf_alloc above max_message must fail with EMSGSIZE");
}

static void latency_phase(struct client *c)
{
	unsigned rounds = c->o->rounds;
	if (!rounds)
		return;
	uint64_t *rtt = calloc(rounds, sizeof(*rtt));
	if (!rtt) {
		check(c, false, "out of memory");
		return;
	}
	unsigned measured = 0, lost = 0, retried = 0;
	for (unsigned i = 0; i < rounds; i++) {
		uint64_t one = ping(c, i, 64,
				   i % 2 ? TYPE_PING_FRESH : TYPE_PING_COPY);
		if (!one)
			lost++;
		else if (one == 1)
			retried++;
		else
			rtt[measured++] = one;
	}
	qsort(rtt, measured, sizeof(*rtt), compare_u64);
	if (measured) {
		printf("RESULT %s rtt_64B rounds=%u p50_us=%.2f p99_us=%.2f "
		       "max_us=%.1f min_us=%.2f retried=%u lost=%u\n",
		       c->o->label, measured, rtt[measured / 2] / 1e3,
		       rtt[(size_t)(measured * 0.99)] / 1e3,
		       rtt[measured - 1] / 1e3, rtt[0] / 1e3, retried, lost);
	}
	check(c, lost == 0, "latency pings lost");
	free(rtt);
}

static void flood_phase(struct client *c)
{
	unsigned count = c->o->flood;
	if (!count)
		return;
	struct stats_reply before, after;
	check(c, request_stats(c, &before), "no stats reply before the flood");
	uint8_t message[64];
	unsigned sent = 0, alloc_failures = 0;
	uint64_t start = now_ns();
	uint64_t limit = start + 10000000000u; /* 10 s at most */
	for (unsigned i = 0; i < count; i++) {
		if (i % 1024 == 0 && now_ns() >= limit)
			break;
		put_header(message, TYPE_FLOOD, i);
		struct oskr_buf *buf;
		if (ops->buf_alloc(c->t, sizeof(message), &buf) < 0) {
			alloc_failures++;
			ops->flush(c->t, 0);
			continue;
		}
		memcpy(buf->data, message, sizeof(message));
		buf->len = sizeof(message);
		if (ops->send_replica(c->t, 0, 0, buf) == 0)
			sent++;
	}
	ops->flush(c->t, 0);
	uint64_t elapsed = now_ns() - start;
	usleep(300000); /* let the server drain */
	bool got = request_stats(c, &after);
	check(c, got, "no stats reply after the flood");
	if (!got)
		return;
	uint64_t received = after.flood_count - before.flood_count;
	double span = after.flood_last_ns > after.flood_first_ns
			      ? (double)(after.flood_last_ns -
					 after.flood_first_ns)
			      : 1;
	struct oskr_transport_stats stats;
	ops->stats(c->t, &stats);
	printf("RESULT %s flood_64B sent=%u received=%llu loss=%.2f%% "
	       "send_mpps=%.3f recv_mpps=%.3f tx_failed=%llu "
	       "alloc_failures=%u\n",
	       c->o->label, sent, (unsigned long long)received,
	       sent ? 100.0 * (double)(sent - received) / sent : 0.0,
	       sent / (elapsed / 1e3), (double)received / (span / 1e3),
	       (unsigned long long)stats.drops[OSKR_DROP_TX_FAILED],
	       alloc_failures);
	check(c, received > 0, "the server received nothing of the flood");
	check(c, received <= sent, "the server counted more than was sent");
}

static uint32_t next_random(uint32_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return *state;
}

static void inject_raw(struct client *c, const uint8_t *frame, size_t len)
{
	if (oskr__dpdk_send_raw(c->t, 0, frame, len) < 0)
		check(c, false, "cannot queue a raw frame");
	ops->flush(c->t, 0);
}

static void inject_phase(struct client *c)
{
	const struct options *o = c->o;
	struct stats_reply before, after;
	if (!request_stats(c, &before)) {
		check(c, false, "no stats reply before injection");
		return;
	}
	const struct oskr__frame_endpoint *server = &o->server_endpoint;
	uint8_t frame[256];
	uint8_t payload[10] = { 'O', 'S', 'K', 'R', TYPE_PING_COPY };
	unsigned each = o->inject_each;
	for (unsigned i = 0; i < each; i++) {
		/* short: the header ends inside the source id */
		int header = oskr__frame_write_header(frame, sizeof(frame),
						      server, &c->local, 0);
		inject_raw(c, frame, (size_t)header - 3);

		/* wrong ethertype, our MAC */
		oskr__frame_write_header(frame, sizeof(frame), server,
					 &c->local, sizeof(payload));
		frame[12] = 0x08;
		frame[13] = 0x00;
		inject_raw(c, frame, 60);

		/* a MAC that is not the server's (counted as wrong_type:
		 * "not ours") */
		struct oskr__frame_endpoint stranger = *server;
		stranger.mac[0] = 0x02;
		stranger.mac[5] ^= 0x5a;
		header = oskr__frame_write_header(frame, sizeof(frame),
						  &stranger, &c->local,
						  sizeof(payload));
		memcpy(frame + header, payload, sizeof(payload));
		inject_raw(c, frame, (size_t)header + sizeof(payload));

		/* unknown destination id on the server's MAC */
		struct oskr__frame_endpoint nobody = *server;
		nobody.id = server->id == 77 ? 78 : 77;
		header = oskr__frame_write_header(frame, sizeof(frame), &nobody,
						  &c->local, sizeof(payload));
		memcpy(frame + header, payload, sizeof(payload));
		inject_raw(c, frame, (size_t)header + sizeof(payload));

		/* truncated: the length says 1000, 10 bytes follow */
		header = oskr__frame_write_header(frame, sizeof(frame), server,
						  &c->local, 1000);
		memcpy(frame + header, payload, sizeof(payload));
		inject_raw(c, frame, (size_t)header + sizeof(payload));
	}
	/* Random frames: half with our MAC and ethertype so that the id and
	 * length parsing sees garbage too. None is a valid echo request
	 * (the payload would need the magic). */
	uint32_t state = 0x9e3779b9u;
	for (unsigned i = 0; i < o->fuzz; i++) {
		size_t min = o->min_frame ? o->min_frame : 1;
		size_t len = min + next_random(&state) % (200 - min);
		for (size_t j = 0; j < len; j++)
			frame[j] = (uint8_t)next_random(&state);
		if (i % 2 && len >= 14) {
			memcpy(frame, server->mac, 6);
			frame[12] = 0x88;
			frame[13] = 0xd5;
		}
		inject_raw(c, frame, len);
	}
	usleep(200000);
	/* The server must still answer, and echo correctly. */
	check(c, ping(c, 424242, 100, TYPE_PING_COPY) > 0,
	      "no echo after the malformed frames");
	if (!request_stats(c, &after)) {
		check(c, false, "no stats reply after injection");
		return;
	}
	uint64_t delta[OSKR_DROP_REASON_COUNT];
	uint64_t total = 0;
	for (int r = 0; r < OSKR_DROP_REASON_COUNT; r++) {
		delta[r] = after.drops[r] - before.drops[r];
		total += delta[r];
	}
	uint64_t stray = after.stray - before.stray;
	printf("RESULT %s inject each=%u fuzz=%u short=%llu wrong_type=%llu "
	       "unknown_dest=%llu truncated=%llu no_buffer=%llu "
	       "queue_full=%llu fuzz_delivered_as_stray=%llu\n",
	       o->label, each, o->fuzz,
	       (unsigned long long)delta[OSKR_DROP_SHORT],
	       (unsigned long long)delta[OSKR_DROP_WRONG_TYPE],
	       (unsigned long long)delta[OSKR_DROP_UNKNOWN_DEST],
	       (unsigned long long)delta[OSKR_DROP_TRUNCATED],
	       (unsigned long long)delta[OSKR_DROP_NO_BUFFER],
	       (unsigned long long)delta[OSKR_DROP_QUEUE_FULL],
	       (unsigned long long)stray);
	/* The targeted frames are counted under their reason (random ones
	 * may add to any reason, so these are lower bounds), and every
	 * frame sent is accounted for: dropped, or delivered as stray. On
	 * a shared medium (af_packet) the kernel may add frames of its own,
	 * so the total is exact only with --inject-exact. */
	check(c, delta[OSKR_DROP_SHORT] >= each, "short frames not counted");
	check(c, delta[OSKR_DROP_WRONG_TYPE] >= 2u * each,
	      "wrong-ethertype / foreign-MAC frames not counted");
	check(c, delta[OSKR_DROP_UNKNOWN_DEST] >= each,
	      "unknown-destination frames not counted");
	check(c, delta[OSKR_DROP_TRUNCATED] >= each,
	      "truncated frames not counted");
	uint64_t expected = 5u * each + o->fuzz;
	if (o->inject_exact)
		check(c, total + stray == expected,
		      "not every injected frame is accounted for");
	else
		check(c, total + stray >= expected,
		      "injected frames missing from the counters");
}

static int open_client(struct client *c, const struct options *o,
		       struct harness_config *h)
{
	memset(c, 0, sizeof(*c));
	c->o = o;
	char *err = NULL;
	int rc = ops->open(&c->t, &h->config, -1, 1, &err);
	if (rc < 0) {
		fprintf(stderr, "client: open failed: %s\n",
			err ? err : strerror(-rc));
		free(err);
		return rc;
	}
	struct oskr_addr local;
	ops->local_addr(c->t, &local);
	oskr__frame_addr_unpack(&local, &c->local);
	c->max_message = ops->max_message(c->t);
	char text[OSKR_FRAME_ENDPOINT_TEXT];
	oskr__frame_endpoint_format(&c->local, text, sizeof(text));
	printf("client: endpoint %s max_message=%u\n", text, c->max_message);
	return 0;
}

static void *concurrent_main(void *arg)
{
	correctness_phase(arg);
	return NULL;
}

/* --clients N: N client transports in this process share one port (as
 * oskr-bench's -t clients do), each pinging from its own thread. */
static void concurrent_phase(struct client *clients, unsigned count)
{
	pthread_t threads[64];
	unsigned started = 0;
	for (unsigned i = 0; i < count; i++) {
		if (pthread_create(&threads[i], NULL, concurrent_main,
				   &clients[i]) != 0) {
			check(&clients[0], false, "cannot start a client thread");
			break;
		}
		started++;
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
}

static int run_client(const struct options *o, struct harness_config *h)
{
	unsigned count = o->clients;
	struct client *clients = calloc(count, sizeof(*clients));
	if (!clients)
		return 2;
	if (o->cpu >= 0) {
		/* The client polls on this thread: keep it off the server's
		 * rx core, as a DPDK client would run on its own lcore. */
		cpu_set_t cpus;
		CPU_ZERO(&cpus);
		CPU_SET(o->cpu, &cpus);
		if (sched_setaffinity(0, sizeof(cpus), &cpus))
			perror("client: sched_setaffinity");
	}
	unsigned opened = 0;
	for (; opened < count; opened++)
		if (open_client(&clients[opened], o, h) < 0)
			break;
	int failures = opened < count;
	struct client *c = &clients[0];
	if (opened) {
		check(c, oskr__dpdk_wait_link(c->t, 20000) == 0,
		      "link did not come up within 20 s");
		if (!c->failures) {
			/* The first ping may race the peer's own link-up. */
			uint64_t deadline = now_ns() + 20000000000u;
			bool answered = false;
			while (!answered && now_ns() < deadline)
				answered = ping(c, 1, 64, TYPE_PING_COPY) > 0;
			check(c, answered,
			      "server never answered the first ping");
		}
	}
	if (opened == count && !c->failures) {
		if (count > 1)
			concurrent_phase(clients, count);
		else
			correctness_phase(c);
		latency_phase(c);
		flood_phase(c);
		if (o->inject)
			inject_phase(c);
	}
	for (unsigned i = 0; i < opened; i++) {
		struct oskr_transport_stats stats;
		ops->stats(clients[i].t, &stats);
		printf("client %u: rx=%llu tx=%llu extra_replies=%llu "
		       "tx_failed=%llu queue_full=%llu\n",
		       i, (unsigned long long)stats.rx_packets,
		       (unsigned long long)stats.tx_packets,
		       (unsigned long long)clients[i].extra_replies,
		       (unsigned long long)stats.drops[OSKR_DROP_TX_FAILED],
		       (unsigned long long)stats.drops[OSKR_DROP_QUEUE_FULL]);
		failures += clients[i].failures;
	}
	/* Closing in reverse: the last close tears the port down. */
	for (unsigned i = opened; i-- > 0;)
		ops->close(clients[i].t);
	free(clients);
	printf("%s %s\n", failures ? "FAILED" : "PASSED", o->label);
	fflush(stdout);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct options o;
	if (parse_options(argc, argv, &o)) {
		usage();
		return 2;
	}
	oskr__log_set_tag(o.server ? "pingpong-server" : "pingpong-client");
	struct harness_config h;
	if (build_config(&o, &h)) {
		fprintf(stderr, "bad --eal\n");
		return 2;
	}
	struct sigaction action;
	memset(&action, 0, sizeof(action));
	action.sa_handler = on_signal;
	sigaction(SIGTERM, &action, NULL);
	sigaction(SIGINT, &action, NULL);
	/* A client never runs longer than --max-seconds either. */
	if (!o.server)
		alarm(o.max_seconds);
	setvbuf(stdout, NULL, _IOLBF, 0);
	int rc = o.server ? run_server(&o, &h) : run_client(&o, &h);
	free(h.eal_copy);
	return rc;
}
