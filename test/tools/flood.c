/* SPDX-License-Identifier: MIT */
/*
 * flood: a hostile load generator for test/integration/flood.sh. It
 * floods one replica's UDP address from loopback with a mix of
 *
 *   garbage     random bytes of random length (0 .. 1500), now and then a
 *               datagram over the 65000-byte message limit;
 *   fresh       well-formed Unreplicated kv GET requests, each from a new
 *               random client id (fills and churns the client table);
 *   truncated   a request whose op_len runs past the datagram;
 *   oversized   a request followed by trailing bytes;
 *   replay      old request numbers of earlier fake clients (stale);
 *   large       (-L per mille of the mix) 33..65 KB of garbage, which the
 *               UDP transport hands over in its 64 KiB receive buffer;
 *
 * from several source sockets (distinct source ports), for -d seconds at
 * most -r datagrams per second (0: as fast as the kernel takes them).
 * Everything is bounded: duration, rate and the size of each datagram.
 * Prints one JSON line with what it sent. Built by test/module.mk's
 * test/tools rule into BUILD/test/tools/flood.
 *
 *   flood -a 127.0.0.1:7001 -d 3 [-r 20000] [-s SEED]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <oskr/kv.h>

#include "plugins/unreplicated/codec.h"

#define SOCKETS 8
#define BATCH 32
#define GARBAGE_MAX 1500
#define HUGE_DATAGRAM 65200 /* over the 65000-byte message limit */
#define SLOT_SIZE 65536
#define REPLAY_IDS 1024

enum kind { GARBAGE, FRESH, TRUNCATED, OVERSIZED, REPLAY, HUGE, LARGE,
	    KINDS };
static const char *const kind_names[KINDS] = {
	"garbage", "fresh_clients", "truncated", "oversized", "replay", "huge",
	"large",
};
/* Large garbage: datagrams the UDP transport hands over in their 64 KiB
 * receive buffer instead of copying (transport/udp.c), the most memory a
 * queued datagram can pin. Per mille of the mix (-L). */
static unsigned large_per_mille;

static uint64_t rng_state;

static uint64_t next_random(void)
{
	/* splitmix64: reproducible from -s, good enough for noise. */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int parse_address(const char *text, struct sockaddr_in *out)
{
	char host[64];
	const char *colon = strrchr(text, ':');
	if (!colon || (size_t)(colon - text) >= sizeof(host))
		return -EINVAL;
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port <= 0 || port > 65535)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &out->sin_addr) != 1)
		return -EINVAL;
	/* Tests flood loopback only. */
	if ((ntohl(out->sin_addr.s_addr) >> 24) != 127)
		return -EPERM;
	return 0;
}

static uint64_t replay_ids[REPLAY_IDS];
static size_t replay_count;

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* An Unreplicated REQUEST (plugins/unreplicated/codec.h) carrying a kv
 * GET: written here so the tool links with nothing of the plugin. */
static size_t make_request(uint8_t *out, uint64_t client_id,
			   uint64_t request_number)
{
	uint8_t *op = out + UNREPLICATED_HEADER_SIZE;
	size_t op_len = oskr_kv_encode_get(op, 64, "flood", 5);
	out[0] = UNREPLICATED_REQUEST;
	put_le(out + 1, client_id, 8);
	put_le(out + 9, request_number, 8);
	put_le(out + 17, op_len, 4);
	return UNREPLICATED_HEADER_SIZE + op_len;
}

/* Fill @p out with one datagram of @p kind; returns its length. */
static size_t make_datagram(enum kind kind, uint8_t *out)
{
	size_t len;
	switch (kind) {
	case GARBAGE:
		len = next_random() % (GARBAGE_MAX + 1);
		for (size_t i = 0; i < len; i += 8) {
			uint64_t r = next_random();
			memcpy(out + i, &r, len - i < 8 ? len - i : 8);
		}
		/* Now and then a datagram that almost looks right. */
		if (len && next_random() % 4 == 0)
			out[0] = UNREPLICATED_REQUEST;
		return len;
	case FRESH: {
		uint64_t id = next_random();
		if (replay_count < REPLAY_IDS)
			replay_ids[replay_count++] = id;
		else
			replay_ids[next_random() % REPLAY_IDS] = id;
		return make_request(out, id, 5);
	}
	case TRUNCATED:
		len = make_request(out, next_random(), 1);
		return len - 1 - next_random() % 4; /* op_len now lies */
	case OVERSIZED:
		len = make_request(out, next_random(), 1);
		memset(out + len, 0xee, 16);
		return len + 1 + next_random() % 16;
	case REPLAY:
		if (!replay_count)
			return make_request(out, 1, 1);
		return make_request(out,
				    replay_ids[next_random() % replay_count],
				    1 + next_random() % 4);
	case HUGE:
		memset(out, 0x42, HUGE_DATAGRAM);
		return HUGE_DATAGRAM;
	case LARGE:
		len = 33000 + next_random() % 32000;
		memset(out, 0x43, len);
		return len;
	case KINDS:
		break;
	}
	return 0;
}

static enum kind pick_kind(void)
{
	uint64_t r = next_random() % 1000;
	if (next_random() % 1000 < large_per_mille)
		return LARGE;
	if (r < 2)
		return HUGE;
	if (r < 350)
		return GARBAGE;
	if (r < 700)
		return FRESH;
	if (r < 800)
		return TRUNCATED;
	if (r < 900)
		return OVERSIZED;
	return REPLAY;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: flood -a IP:PORT -d SECONDS [-r PER_SECOND] "
		     "[-s SEED] [-L LARGE_PER_MILLE]\n"
		     "Flood a replica on 127.0.0.0/8 with garbage and fake "
		     "Unreplicated clients.\n");
}

int main(int argc, char **argv)
{
	const char *address = NULL;
	double seconds = 0;
	uint64_t rate = 0;
	rng_state = 0x666c6f6f64ull;
	int opt;
	while ((opt = getopt(argc, argv, "a:d:r:s:L:h")) != -1) {
		switch (opt) {
		case 'a':
			address = optarg;
			break;
		case 'd':
			seconds = strtod(optarg, NULL);
			break;
		case 'r':
			rate = strtoull(optarg, NULL, 10);
			break;
		case 's':
			rng_state = strtoull(optarg, NULL, 0);
			break;
		case 'L':
			large_per_mille = (unsigned)strtoul(optarg, NULL, 10);
			if (large_per_mille > 1000)
				large_per_mille = 1000;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	/* Bounded by construction: at most 10 minutes. */
	if (!address || seconds <= 0 || seconds > 600) {
		usage(stderr);
		return 2;
	}
	struct sockaddr_in target;
	int rc = parse_address(address, &target);
	if (rc) {
		fprintf(stderr, "flood: %s: %s\n", address,
			rc == -EPERM ? "only 127.0.0.0/8 may be flooded"
				     : "expected IPv4 ip:port");
		return 2;
	}

	int fds[SOCKETS];
	for (int i = 0; i < SOCKETS; i++) {
		fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fds[i] < 0) {
			perror("flood: socket");
			return 1;
		}
		/* Replies to fake clients come back here: never read them,
		 * a small receive buffer just drops them in the kernel. */
		int small = 4096;
		setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small,
			   sizeof(small));
	}

	static uint8_t slots[BATCH][SLOT_SIZE];
	struct mmsghdr msgs[BATCH];
	struct iovec iovs[BATCH];
	enum kind kinds[BATCH];
	uint64_t sent[KINDS] = { 0 }, failed = 0, total = 0;
	uint64_t start = now_ns();
	uint64_t deadline = start + (uint64_t)(seconds * 1e9);
	unsigned socket_index = 0;

	for (uint64_t now = start; now < deadline; now = now_ns()) {
		unsigned batch = BATCH;
		if (rate) {
			/* Pace: never ahead of rate * elapsed. */
			uint64_t allowed = (uint64_t)((double)rate *
						      (double)(now - start) /
						      1e9);
			if (allowed <= total) {
				nanosleep(&(struct timespec){
						  .tv_nsec = 200000 },
					  NULL);
				continue;
			}
			if (allowed - total < batch)
				batch = (unsigned)(allowed - total);
		}
		for (unsigned i = 0; i < batch; i++) {
			kinds[i] = pick_kind();
			iovs[i].iov_base = slots[i];
			iovs[i].iov_len = make_datagram(kinds[i], slots[i]);
			memset(&msgs[i], 0, sizeof(msgs[i]));
			msgs[i].msg_hdr.msg_iov = &iovs[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_name = &target;
			msgs[i].msg_hdr.msg_namelen = sizeof(target);
		}
		int fd = fds[socket_index++ % SOCKETS];
		int n = sendmmsg(fd, msgs, batch, 0);
		if (n < 0) {
			if (errno != EAGAIN && errno != ENOBUFS &&
			    errno != EINTR && errno != ECONNREFUSED) {
				perror("flood: sendmmsg");
				return 1;
			}
			failed += batch;
			total += batch;
			continue;
		}
		for (int i = 0; i < n; i++)
			sent[kinds[i]]++;
		failed += batch - (unsigned)n;
		total += batch;
	}
	double elapsed = (double)(now_ns() - start) / 1e9;
	uint64_t sum = 0;
	printf("{\"seconds\":%.2f", elapsed);
	for (int k = 0; k < KINDS; k++) {
		printf(",\"%s\":%llu", kind_names[k],
		       (unsigned long long)sent[k]);
		sum += sent[k];
	}
	printf(",\"sent\":%llu,\"send_failed\":%llu,\"per_second\":%.0f}\n",
	       (unsigned long long)sum, (unsigned long long)failed,
	       elapsed > 0 ? (double)sum / elapsed : 0.0);
	for (int i = 0; i < SOCKETS; i++)
		close(fds[i]);
	return 0;
}
