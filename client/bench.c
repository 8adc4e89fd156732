/* SPDX-License-Identifier: MIT */
/*
 * oskr-bench: closed-loop benchmark client. -t clients each keep one
 * request outstanding for -d seconds after a warm-up; latencies of the
 * measured window are kept exactly (sorted at the end), so percentiles are
 * exact, not bucketed.
 *
 * Workloads: "null" sends an op of --op-size bytes (the seed's 0/0 RPC
 * with --op-size 0); "kv" alternates put/get on a per-client key and
 * checks every get returns the value of that client's last put — a wrong
 * result is an error and makes the exit status non-zero.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <oskr/client.h>
#include <oskr/kv.h>

#include "../daemon/config.h"
#include "../daemon/timer.h"

enum workload { WORKLOAD_NULL, WORKLOAD_KV };

struct bench_options {
	const char *config_path;
	const char *protocol;
	unsigned clients;
	unsigned threads;
	double duration_s;
	double warmup_s;
	size_t op_size;
	enum workload workload;
	bool json;
	bool progress;
};

struct latency_log {
	uint64_t *samples;
	size_t count, capacity;
};

struct bench_client {
	struct oskr_client *client;
	struct bench_thread *thread;
	unsigned index;
	uint64_t started_ns;
	uint64_t sequence;
	bool expecting_get; /* kv: the outstanding op is the get */
	bool outstanding;
	uint64_t last_put_value;
};

struct bench_thread {
	const struct bench_options *options;
	struct bench_client *clients;
	struct oskr_client **handles;
	unsigned client_count;
	uint64_t measure_start_ns, measure_end_ns;
	struct latency_log latencies;
	uint64_t completed, errors, timeouts;
	pthread_t thread;
	int rc;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: oskr-bench -c CONFIG [-m PROTOCOL] [-t CLIENTS] "
		"[-d SECONDS] [options]\n"
		"Closed-loop benchmark against a running oskr cluster.\n\n"
		"  -c, --config FILE     cluster config (same file as the "
		"replicas)\n"
		"  -m, --protocol NAME   protocol plugin (overrides the "
		"config)\n"
		"  -t, --clients N       concurrent closed-loop clients "
		"(default 1)\n"
		"  -d, --duration S      measured seconds (default 5)\n"
		"  -w, --warmup S        warm-up seconds, not measured "
		"(default 1)\n"
		"  -s, --op-size BYTES   null workload op size (default 0)\n"
		"  -W, --workload NAME   null | kv (default: the config's "
		"app)\n"
		"  -T, --threads N       client threads (default 1)\n"
		"  -j, --json            print only the JSON result line\n"
		"  -h, --help            this help\n");
}

static int parse_options(int argc, char **argv, struct bench_options *o)
{
	static const struct option long_options[] = {
		{"config", required_argument, NULL, 'c'},
		{"protocol", required_argument, NULL, 'm'},
		{"clients", required_argument, NULL, 't'},
		{"duration", required_argument, NULL, 'd'},
		{"warmup", required_argument, NULL, 'w'},
		{"op-size", required_argument, NULL, 's'},
		{"workload", required_argument, NULL, 'W'},
		{"threads", required_argument, NULL, 'T'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	*o = (struct bench_options){
		.clients = 1,
		.threads = 1,
		.duration_s = 5,
		.warmup_s = 1,
		.workload = (enum workload)-1,
	};
	int opt;
	while ((opt = getopt_long(argc, argv, "c:m:t:d:w:s:W:T:jh",
				  long_options, NULL)) != -1) {
		char *end = NULL;
		switch (opt) {
		case 'c':
			o->config_path = optarg;
			break;
		case 'm':
			o->protocol = optarg;
			break;
		case 't':
			o->clients = (unsigned)strtoul(optarg, &end, 10);
			if (*end || o->clients == 0 || o->clients > 1000) {
				fprintf(stderr, "oskr-bench: -t: expected 1..1000 "
						"clients, got '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'd':
		case 'w': {
			double v = strtod(optarg, &end);
			if (*end || v < 0 || v > 86400) {
				fprintf(stderr,
					"oskr-bench: -%c: '%s' is not a number "
					"of seconds\n",
					opt, optarg);
				return 2;
			}
			if (opt == 'd')
				o->duration_s = v;
			else
				o->warmup_s = v;
			break;
		}
		case 's':
			o->op_size = strtoul(optarg, &end, 10);
			if (*end || o->op_size > 60000) {
				fprintf(stderr, "oskr-bench: -s: expected 0..60000 "
						"bytes\n");
				return 2;
			}
			break;
		case 'W':
			if (strcmp(optarg, "null") == 0)
				o->workload = WORKLOAD_NULL;
			else if (strcmp(optarg, "kv") == 0)
				o->workload = WORKLOAD_KV;
			else {
				fprintf(stderr, "oskr-bench: -W: expected null or "
						"kv\n");
				return 2;
			}
			break;
		case 'T':
			o->threads = (unsigned)strtoul(optarg, &end, 10);
			if (*end || o->threads == 0 || o->threads > 64) {
				fprintf(stderr, "oskr-bench: -T: expected 1..64\n");
				return 2;
			}
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o->config_path) {
		fprintf(stderr, "oskr-bench: -c CONFIG is required\n");
		usage(stderr);
		return 2;
	}
	if (o->threads > o->clients)
		o->threads = o->clients;
	return 0;
}

static void record_latency(struct latency_log *log, uint64_t ns)
{
	if (log->count == log->capacity) {
		size_t grown = log->capacity ? log->capacity * 2 : 65536;
		uint64_t *samples = realloc(log->samples,
					    grown * sizeof(*samples));
		if (!samples)
			return; /* keep going; the sample is lost */
		log->samples = samples;
		log->capacity = grown;
	}
	log->samples[log->count++] = ns;
}

static size_t make_op(struct bench_client *bc, uint8_t *op, size_t capacity)
{
	const struct bench_options *o = bc->thread->options;
	if (o->workload == WORKLOAD_NULL) {
		memset(op, 0, o->op_size);
		return o->op_size;
	}
	char key[32];
	int key_len = snprintf(key, sizeof(key), "bench-%016llx",
			       (unsigned long long)oskr_client_id(bc->client));
	if (bc->expecting_get)
		return oskr_kv_encode_get(op, capacity, key, (size_t)key_len);
	bc->last_put_value = ++bc->sequence;
	char value[24];
	int value_len = snprintf(value, sizeof(value), "%llu",
				 (unsigned long long)bc->last_put_value);
	return oskr_kv_encode_put(op, capacity, key, (size_t)key_len, value,
				  (size_t)value_len);
}

static bool check_result(struct bench_client *bc, const void *result,
			 size_t len)
{
	if (bc->thread->options->workload == WORKLOAD_NULL)
		return true;
	const uint8_t *bytes = result;
	if (len < 1 || bytes[0] != OSKR_KV_OK)
		return false;
	if (!bc->expecting_get)
		return true;
	char value[24];
	int value_len = snprintf(value, sizeof(value), "%llu",
				 (unsigned long long)bc->last_put_value);
	return len == 1 + (size_t)value_len &&
	       memcmp(bytes + 1, value, (size_t)value_len) == 0;
}

static void issue(struct bench_client *bc);

static void on_done(void *arg, uint64_t request_number, const void *result,
		    size_t len)
{
	struct bench_client *bc = arg;
	struct bench_thread *t = bc->thread;
	uint64_t now = oskr__monotonic_ns();
	bc->outstanding = false;
	if (!check_result(bc, result, len)) {
		t->errors++;
		if (t->errors <= 5)
			fprintf(stderr,
				"oskr-bench: client %u: wrong result for "
				"request %llu (%zu bytes)\n",
				bc->index, (unsigned long long)request_number,
				len);
	}
	if (bc->started_ns >= t->measure_start_ns &&
	    now <= t->measure_end_ns) {
		t->completed++;
		record_latency(&t->latencies, now - bc->started_ns);
	}
	if (t->options->workload == WORKLOAD_KV)
		bc->expecting_get = !bc->expecting_get;
	if (now < t->measure_end_ns)
		issue(bc);
}

static void issue(struct bench_client *bc)
{
	uint8_t op[65536];
	size_t len = make_op(bc, op, sizeof(op));
	bc->started_ns = oskr__monotonic_ns();
	bc->outstanding = true;
	int rc = oskr_client_invoke_async(bc->client, op, len, on_done, bc);
	if (rc < 0) {
		bc->outstanding = false;
		bc->thread->errors++;
		fprintf(stderr, "oskr-bench: client %u: invoke: %s\n",
			bc->index, strerror(-rc));
	}
}

static void *thread_main(void *arg)
{
	struct bench_thread *t = arg;
	for (unsigned i = 0; i < t->client_count; i++)
		issue(&t->clients[i]);
	/* Run until the window closes and every client's last request has
	 * finished; stragglers get a bounded grace period. */
	uint64_t give_up = t->measure_end_ns + 5000000000ull;
	for (;;) {
		uint64_t now = oskr__monotonic_ns();
		if (now >= t->measure_end_ns) {
			bool outstanding = false;
			for (unsigned i = 0; i < t->client_count; i++)
				outstanding |= t->clients[i].outstanding;
			if (!outstanding)
				break;
			if (now >= give_up) {
				t->timeouts++;
				break;
			}
		}
		int rc = oskr_client_poll(t->handles, t->client_count, 10);
		if (rc < 0) {
			t->rc = rc;
			break;
		}
	}
	return NULL;
}

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double percentile_us(const uint64_t *sorted, size_t count, double p)
{
	if (!count)
		return 0;
	size_t index = (size_t)(p / 100.0 * (double)(count - 1) + 0.5);
	return (double)sorted[index] / 1000.0;
}

int main(int argc, char **argv)
{
	struct bench_options o;
	int rc = parse_options(argc, argv, &o);
	if (rc)
		return rc;
	o.progress = isatty(STDERR_FILENO) && !o.json;

	struct bench_client *clients = calloc(o.clients, sizeof(*clients));
	struct oskr_client **handles = calloc(o.clients, sizeof(*handles));
	struct bench_thread *threads = calloc(o.threads, sizeof(*threads));
	if (!clients || !handles || !threads) {
		fprintf(stderr, "oskr-bench: out of memory\n");
		return 1;
	}
	struct oskr_client_options client_options = {
		.size = sizeof(client_options),
		.protocol = o.protocol,
	};
	char err[512];
	for (unsigned i = 0; i < o.clients; i++) {
		rc = oskr_client_open(&handles[i], o.config_path,
				      &client_options, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "oskr-bench: %s\n", err);
			return 1;
		}
		clients[i].client = handles[i];
		clients[i].index = i;
	}
	if (o.workload == (enum workload)-1) {
		/* default to the app the cluster runs */
		o.workload = WORKLOAD_NULL;
		struct oskr_config *config = NULL;
		char *message = NULL;
		if (oskr__config_load(o.config_path, &config, &message) == 0 &&
		    config->app && strcmp(config->app, "kv") == 0)
			o.workload = WORKLOAD_KV;
		free(message);
		oskr__config_free(config);
	}

	uint64_t start = oskr__monotonic_ns();
	uint64_t measure_start = start + (uint64_t)(o.warmup_s * 1e9);
	uint64_t measure_end = measure_start + (uint64_t)(o.duration_s * 1e9);
	unsigned next = 0;
	for (unsigned t = 0; t < o.threads; t++) {
		unsigned share = o.clients / o.threads +
				 (t < o.clients % o.threads ? 1 : 0);
		threads[t] = (struct bench_thread){
			.options = &o,
			.clients = &clients[next],
			.handles = &handles[next],
			.client_count = share,
			.measure_start_ns = measure_start,
			.measure_end_ns = measure_end,
		};
		for (unsigned i = 0; i < share; i++)
			clients[next + i].thread = &threads[t];
		next += share;
	}
	for (unsigned t = 0; t < o.threads; t++)
		pthread_create(&threads[t].thread, NULL, thread_main,
			       &threads[t]);
	if (o.progress) {
		double total = o.warmup_s + o.duration_s;
		for (;;) {
			uint64_t now = oskr__monotonic_ns();
			if (now >= measure_end)
				break;
			uint64_t done = 0;
			for (unsigned t = 0; t < o.threads; t++)
				done += threads[t].completed;
			double elapsed = (double)(now - start) / 1e9;
			double measured = now > measure_start
						  ? (double)(now - measure_start) /
							    1e9
						  : 0;
			fprintf(stderr, "\r  %5.1f/%.1f s  %10.0f ops/s   ",
				elapsed, total,
				measured > 0 ? (double)done / measured : 0.0);
			usleep(250000);
		}
		fprintf(stderr, "\r%60s\r", "");
	}
	struct latency_log all = {0};
	uint64_t completed = 0, errors = 0;
	for (unsigned t = 0; t < o.threads; t++) {
		pthread_join(threads[t].thread, NULL);
		completed += threads[t].completed;
		errors += threads[t].errors;
		for (size_t i = 0; i < threads[t].latencies.count; i++)
			record_latency(&all, threads[t].latencies.samples[i]);
		free(threads[t].latencies.samples);
		if (threads[t].rc < 0)
			errors++;
		if (threads[t].timeouts)
			fprintf(stderr,
				"oskr-bench: thread %u: requests still "
				"outstanding 5 s after the window closed\n",
				t);
	}
	qsort(all.samples, all.count, sizeof(*all.samples), compare_u64);
	double throughput = o.duration_s > 0 ? (double)completed / o.duration_s
					     : 0;
	double p50 = percentile_us(all.samples, all.count, 50);
	double p90 = percentile_us(all.samples, all.count, 90);
	double p99 = percentile_us(all.samples, all.count, 99);
	double max = all.count ? (double)all.samples[all.count - 1] / 1000.0
			       : 0;
	const char *workload = o.workload == WORKLOAD_KV ? "kv" : "null";
	if (!o.json) {
		printf("%-10s %8s %12s %10s %10s %10s %10s %8s\n", "workload",
		       "clients", "ops/s", "p50 us", "p90 us", "p99 us",
		       "max us", "errors");
		printf("%-10s %8u %12.0f %10.1f %10.1f %10.1f %10.1f %8llu\n",
		       workload, o.clients, throughput, p50, p90, p99, max,
		       (unsigned long long)errors);
	}
	printf("{\"workload\":\"%s\",\"clients\":%u,\"duration_s\":%.3f,"
	       "\"completed\":%llu,\"ops_per_s\":%.1f,\"p50_us\":%.1f,"
	       "\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,"
	       "\"errors\":%llu}\n",
	       workload, o.clients, o.duration_s,
	       (unsigned long long)completed, throughput, p50, p90, p99, max,
	       (unsigned long long)errors);
	for (unsigned i = 0; i < o.clients; i++)
		oskr_client_close(handles[i]);
	free(all.samples);
	free(clients);
	free(handles);
	free(threads);
	if (errors)
		return 1;
	if (completed == 0) {
		fprintf(stderr, "oskr-bench: no request completed in the "
				"measured window\n");
		return 1;
	}
	return 0;
}
