/* SPDX-License-Identifier: MIT */
/*
 * oskr-bench: closed-loop benchmark client. -t clients each keep one
 * request outstanding for -d seconds after a warm-up; latencies of the
 * measured window are kept exactly (sorted at the end), so percentiles are
 * exact, not bucketed.
 *
 * Workloads:
 *  - "null" sends an op of --op-size bytes (the seed's 0/0 RPC with
 *    --op-size 0);
 *  - "kv" alternates put/get on a per-client key and checks every get
 *    returns the value of that client's last put;
 *  - "ycsb" is a YCSB-style read/update mix over --records keys chosen
 *    with a zipfian (YCSB's scrambled zipfian) or uniform distribution,
 *    after a load phase in which the clients insert every record. Every
 *    value carries (key, writer, version) and a filler derived from them,
 *    so a read checks that it got an intact value of the key it asked
 *    for, and — where that is decidable — that it is not older than this
 *    client's own last completed update of the key (see check_ycsb_read).
 * A wrong result is an error and makes the exit status non-zero.
 *
 * On a terminal (and without --json) a progress line shows the phase,
 * elapsed/total seconds and the current ops/s; otherwise it is quiet.
 * The --json line only ever gains fields: scripts parse it by name.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <oskr/client.h>
#include <oskr/kv.h>

#include "../daemon/config.h"
#include "../daemon/timer.h"

enum workload { WORKLOAD_NULL, WORKLOAD_KV, WORKLOAD_YCSB };

enum key_distribution { DISTRIBUTION_ZIPFIAN, DISTRIBUTION_UNIFORM };

/* A ycsb value starts with this header; the rest is filler derived from
 * it (value_fill). */
#define YCSB_VALUE_HEADER 24
#define YCSB_KEY_MAX 32
/* The own-write check keeps a version per record per client; above this
 * many bytes it is switched off (and said so) rather than eat the RAM. */
#define YCSB_OWN_VERSIONS_MAX_BYTES (256u << 20)
/* The load phase gives up when no put completed for this long. */
#define LOAD_STALL_NS 30000000000ull
/* Requests still outstanding this long after the window closed are
 * abandoned (and reported). */
#define DRAIN_GRACE_NS 5000000000ull

struct ycsb_options {
	double read_ratio;
	uint64_t records;
	size_t value_size;
	enum key_distribution distribution;
	double zipf_theta;
	bool load; /* insert the records before measuring */
	bool load_only; /* the load pass alone, then exit */
	uint64_t seed;
};

struct bench_options {
	const char *config_path;
	const char *protocol;
	unsigned clients;
	unsigned threads;
	double duration_s;
	double warmup_s;
	size_t op_size;
	enum workload workload;
	struct ycsb_options ycsb;
	bool json;
	bool progress;
};

/* YCSB's ZipfianGenerator (Gray et al., "Quickly generating
 * billion-record synthetic databases", SIGMOD'94): item 0 is the most
 * popular; constant time per draw after an O(n) zeta sum. */
struct zipfian {
	uint64_t items;
	double theta, alpha, zetan, eta, second_threshold;
};

struct latency_log {
	uint64_t *samples;
	size_t count, capacity;
};

enum ycsb_op { YCSB_READ, YCSB_UPDATE, YCSB_LOAD };

struct bench_client {
	struct oskr_client *client;
	struct bench_thread *thread;
	unsigned index;
	uint64_t id; /* oskr_client_id() */
	uint64_t started_ns;
	uint64_t sequence;
	bool expecting_get; /* kv: the outstanding op is the get */
	bool outstanding;
	uint64_t last_put_value;
	/* ycsb */
	uint64_t rng;
	enum ycsb_op op;
	uint64_t key_index;
	uint32_t op_version; /* version the outstanding update writes */
	uint32_t next_version;
	uint32_t *own_versions; /* per record, 0 = never updated; or NULL */
	uint64_t load_next; /* next record this client loads */
};

enum phase { PHASE_LOAD, PHASE_MEASURE };

struct bench_thread {
	const struct bench_options *options;
	const struct zipfian *zipf;
	struct bench_client *clients;
	struct oskr_client **handles;
	unsigned client_count;
	enum phase phase;
	uint64_t measure_start_ns, measure_end_ns;
	struct latency_log latencies;
	uint64_t completed, errors, timeouts;
	uint64_t reads, updates, not_found, verify_errors;
	uint64_t loaded;
	uint64_t last_completion_ns;
	atomic_uint_fast64_t finished; /* every completion (progress, completed_total) */
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
		"  -W, --workload NAME   null | kv | ycsb (default: the "
		"config's app)\n"
		"  -T, --threads N       client threads (default 1)\n"
		"  -j, --json            print only the JSON result line\n"
		"  -h, --help            this help\n"
		"\nycsb workload (needs the kv app):\n"
		"  --read-ratio R        fraction of reads, the rest updates "
		"(default 0.95)\n"
		"  --records N           keys user000000000000.. (default "
		"10000)\n"
		"  --value-size BYTES    value size, >= %d (default 100)\n"
		"  --distribution D      zipfian | uniform (default zipfian)\n"
		"  --zipf-theta T        zipfian skew, 0 < T < 1 (default "
		"0.99)\n"
		"  --seed N              key/op choice seed (default 1)\n"
		"  --no-load             skip the load phase (records already "
		"loaded)\n"
		"  --load, --load-only   run only the load phase, then exit\n",
		YCSB_VALUE_HEADER);
}

enum long_only_option {
	OPT_READ_RATIO = 256,
	OPT_RECORDS,
	OPT_VALUE_SIZE,
	OPT_DISTRIBUTION,
	OPT_ZIPF_THETA,
	OPT_SEED,
	OPT_NO_LOAD,
	OPT_LOAD_ONLY,
};

static int parse_double(const char *name, const char *text, double min,
			double max, double *out)
{
	char *end = NULL;
	errno = 0;
	double v = strtod(text, &end);
	if (errno || end == text || *end || !(v >= min && v <= max)) {
		fprintf(stderr,
			"oskr-bench: %s: expected a number in %g..%g, got "
			"'%s'\n",
			name, min, max, text);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int parse_u64(const char *name, const char *text, uint64_t min,
		     uint64_t max, uint64_t *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-' || v < min ||
	    v > max) {
		fprintf(stderr,
			"oskr-bench: %s: expected an integer in %llu..%llu, "
			"got '%s'\n",
			name, (unsigned long long)min,
			(unsigned long long)max, text);
		return -EINVAL;
	}
	*out = v;
	return 0;
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
		{"read-ratio", required_argument, NULL, OPT_READ_RATIO},
		{"records", required_argument, NULL, OPT_RECORDS},
		{"value-size", required_argument, NULL, OPT_VALUE_SIZE},
		{"distribution", required_argument, NULL, OPT_DISTRIBUTION},
		{"zipf-theta", required_argument, NULL, OPT_ZIPF_THETA},
		{"seed", required_argument, NULL, OPT_SEED},
		{"no-load", no_argument, NULL, OPT_NO_LOAD},
		{"load", no_argument, NULL, OPT_LOAD_ONLY},
		{"load-only", no_argument, NULL, OPT_LOAD_ONLY},
		{NULL, 0, NULL, 0},
	};
	*o = (struct bench_options){
		.clients = 1,
		.threads = 1,
		.duration_s = 5,
		.warmup_s = 1,
		.workload = (enum workload)-1,
		.ycsb = {
			.read_ratio = 0.95,
			.records = 10000,
			.value_size = 100,
			.distribution = DISTRIBUTION_ZIPFIAN,
			.zipf_theta = 0.99,
			.load = true,
			.seed = 1,
		},
	};
	int opt;
	uint64_t v;
	while ((opt = getopt_long(argc, argv, "c:m:t:d:w:s:W:T:jh",
				  long_options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			o->config_path = optarg;
			break;
		case 'm':
			o->protocol = optarg;
			break;
		case 't':
			if (parse_u64("-t", optarg, 1, 1000, &v))
				return 2;
			o->clients = (unsigned)v;
			break;
		case 'd':
			if (parse_double("-d", optarg, 0, 86400, &o->duration_s))
				return 2;
			break;
		case 'w':
			if (parse_double("-w", optarg, 0, 86400, &o->warmup_s))
				return 2;
			break;
		case 's':
			if (parse_u64("-s", optarg, 0, 60000, &v))
				return 2;
			o->op_size = (size_t)v;
			break;
		case 'W':
			if (strcmp(optarg, "null") == 0)
				o->workload = WORKLOAD_NULL;
			else if (strcmp(optarg, "kv") == 0)
				o->workload = WORKLOAD_KV;
			else if (strcmp(optarg, "ycsb") == 0)
				o->workload = WORKLOAD_YCSB;
			else {
				fprintf(stderr, "oskr-bench: -W: expected null, "
						"kv or ycsb\n");
				return 2;
			}
			break;
		case 'T':
			if (parse_u64("-T", optarg, 1, 64, &v))
				return 2;
			o->threads = (unsigned)v;
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_READ_RATIO:
			if (parse_double("--read-ratio", optarg, 0, 1,
					 &o->ycsb.read_ratio))
				return 2;
			break;
		case OPT_RECORDS:
			if (parse_u64("--records", optarg, 1, 100000000,
				      &o->ycsb.records))
				return 2;
			break;
		case OPT_VALUE_SIZE:
			if (parse_u64("--value-size", optarg, YCSB_VALUE_HEADER,
				      OSKR_KV_MAX_VALUE, &v))
				return 2;
			o->ycsb.value_size = (size_t)v;
			break;
		case OPT_DISTRIBUTION:
			if (strcmp(optarg, "zipfian") == 0)
				o->ycsb.distribution = DISTRIBUTION_ZIPFIAN;
			else if (strcmp(optarg, "uniform") == 0)
				o->ycsb.distribution = DISTRIBUTION_UNIFORM;
			else {
				fprintf(stderr, "oskr-bench: --distribution: "
						"expected zipfian or uniform\n");
				return 2;
			}
			break;
		case OPT_ZIPF_THETA:
			if (parse_double("--zipf-theta", optarg, 0.01, 0.999,
					 &o->ycsb.zipf_theta))
				return 2;
			break;
		case OPT_SEED:
			if (parse_u64("--seed", optarg, 0, UINT64_MAX,
				      &o->ycsb.seed))
				return 2;
			break;
		case OPT_NO_LOAD:
			o->ycsb.load = false;
			break;
		case OPT_LOAD_ONLY:
			o->ycsb.load_only = true;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "oskr-bench: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	if (!o->config_path) {
		fprintf(stderr, "oskr-bench: -c CONFIG is required\n");
		usage(stderr);
		return 2;
	}
	if (o->ycsb.load_only && !o->ycsb.load) {
		fprintf(stderr, "oskr-bench: --load-only and --no-load "
				"contradict each other\n");
		return 2;
	}
	if (o->threads > o->clients)
		o->threads = o->clients;
	return 0;
}

/* ---- random numbers and keys ---- */

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double random_unit(uint64_t *state)
{
	return (double)(splitmix64(state) >> 11) * 0x1.0p-53;
}

static double zeta(uint64_t n, double theta)
{
	double sum = 0;
	for (uint64_t i = 1; i <= n; i++)
		sum += 1.0 / pow((double)i, theta);
	return sum;
}

static void zipfian_init(struct zipfian *z, uint64_t items, double theta)
{
	z->items = items;
	z->theta = theta;
	z->alpha = 1.0 / (1.0 - theta);
	z->zetan = zeta(items, theta);
	double zeta2 = zeta(2, theta);
	z->eta = items > 1 ? (1.0 - pow(2.0 / (double)items, 1.0 - theta)) /
				     (1.0 - zeta2 / z->zetan)
			   : 0;
	z->second_threshold = 1.0 + pow(0.5, theta);
}

static uint64_t zipfian_next(const struct zipfian *z, uint64_t *rng)
{
	if (z->items <= 1)
		return 0;
	double u = random_unit(rng);
	double uz = u * z->zetan;
	if (uz < 1.0)
		return 0;
	if (uz < z->second_threshold)
		return 1;
	uint64_t item = (uint64_t)((double)z->items *
				   pow(z->eta * u - z->eta + 1.0, z->alpha));
	return item < z->items ? item : z->items - 1;
}

/* FNV-1a over the 8 bytes of @p v: YCSB scatters zipfian ranks with it
 * so the popular keys are not all adjacent. */
static uint64_t fnv1a64(uint64_t v)
{
	uint64_t hash = 0xcbf29ce484222325ull;
	for (int i = 0; i < 8; i++) {
		hash ^= (v >> (8 * i)) & 0xff;
		hash *= 0x100000001b3ull;
	}
	return hash;
}

static uint64_t ycsb_next_key(const struct bench_options *o,
			      const struct zipfian *zipf, uint64_t *rng)
{
	if (o->ycsb.distribution == DISTRIBUTION_UNIFORM)
		return splitmix64(rng) % o->ycsb.records;
	return fnv1a64(zipfian_next(zipf, rng)) % o->ycsb.records;
}

static size_t ycsb_key(uint64_t index, char *key, size_t capacity)
{
	int len = snprintf(key, capacity, "user%012llu",
			   (unsigned long long)index);
	return len > 0 && (size_t)len < capacity ? (size_t)len : 0;
}

/* ---- ycsb values: (key, writer, version) + derived filler ---- */

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint64_t value_seed(uint64_t key_index, uint64_t writer,
			   uint32_t version)
{
	uint64_t state = key_index * 0x9e3779b97f4a7c15ull ^ writer ^
			 ((uint64_t)version << 32);
	return splitmix64(&state);
}

/* Fill @p value with the bytes a (key, writer, version) value must have.
 * The load phase writes writer 0, version 0 (no client has id 0). */
static void value_fill(uint8_t *value, size_t size, uint64_t key_index,
		       uint64_t writer, uint32_t version)
{
	uint64_t state = value_seed(key_index, writer, version);
	put_le(value, key_index, 8);
	put_le(value + 8, writer, 8);
	put_le(value + 16, version, 4);
	put_le(value + 20, (uint32_t)state, 4);
	for (size_t at = YCSB_VALUE_HEADER; at < size; at += 8) {
		uint64_t word = splitmix64(&state);
		size_t n = size - at < 8 ? size - at : 8;
		put_le(value + at, word, (int)n);
	}
}

/* True if @p value is an intact value of record @p key_index; its writer
 * and version are returned. */
static bool value_intact(const uint8_t *value, size_t len, size_t size,
			 uint64_t key_index, uint64_t *writer,
			 uint32_t *version)
{
	if (len != size || len < YCSB_VALUE_HEADER)
		return false;
	if (get_le(value, 8) != key_index)
		return false;
	*writer = get_le(value + 8, 8);
	*version = (uint32_t)get_le(value + 16, 4);
	uint64_t state = value_seed(key_index, *writer, *version);
	if (get_le(value + 20, 4) != (uint32_t)state)
		return false;
	for (size_t at = YCSB_VALUE_HEADER; at < len; at += 8) {
		uint64_t word = splitmix64(&state);
		size_t n = len - at < 8 ? len - at : 8;
		if (get_le(value + at, (int)n) !=
		    (n == 8 ? word : word & ((1ull << (8 * n)) - 1)))
			return false;
	}
	return true;
}

/* ---- ops and results ---- */

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

static size_t make_ycsb_op(struct bench_client *bc, uint8_t *op,
			   size_t capacity)
{
	const struct bench_options *o = bc->thread->options;
	char key[YCSB_KEY_MAX];
	uint8_t value[OSKR_KV_MAX_VALUE];
	uint64_t writer = bc->id;

	if (bc->thread->phase == PHASE_LOAD) {
		bc->op = YCSB_LOAD;
		bc->key_index = bc->load_next;
		bc->op_version = 0;
		writer = 0;
	} else {
		bool read = random_unit(&bc->rng) < o->ycsb.read_ratio;
		bc->op = read ? YCSB_READ : YCSB_UPDATE;
		bc->key_index = ycsb_next_key(o, bc->thread->zipf, &bc->rng);
		if (!read)
			bc->op_version = ++bc->next_version;
	}
	size_t key_len = ycsb_key(bc->key_index, key, sizeof(key));
	if (bc->op == YCSB_READ)
		return oskr_kv_encode_get(op, capacity, key, key_len);
	value_fill(value, o->ycsb.value_size, bc->key_index, writer,
		   bc->op_version);
	return oskr_kv_encode_put(op, capacity, key, key_len, value,
				  o->ycsb.value_size);
}

static size_t make_op(struct bench_client *bc, uint8_t *op, size_t capacity)
{
	const struct bench_options *o = bc->thread->options;
	if (o->workload == WORKLOAD_NULL) {
		memset(op, 0, o->op_size);
		return o->op_size;
	}
	if (o->workload == WORKLOAD_YCSB)
		return make_ycsb_op(bc, op, capacity);
	char key[32];
	int key_len = snprintf(key, sizeof(key), "bench-%016llx",
			       (unsigned long long)bc->id);
	if (bc->expecting_get)
		return oskr_kv_encode_get(op, capacity, key, (size_t)key_len);
	bc->last_put_value = ++bc->sequence;
	char value[24];
	int value_len = snprintf(value, sizeof(value), "%llu",
				 (unsigned long long)bc->last_put_value);
	return oskr_kv_encode_put(op, capacity, key, (size_t)key_len, value,
				  (size_t)value_len);
}

/*
 * A read is checked as far as a closed-loop client can decide:
 *  - the value is intact and belongs to the key asked for;
 *  - if this client's own update of the key completed earlier, the read
 *    must not return the loaded value nor an older update of its own
 *    (linearizability: a completed write is never undone); a value by
 *    another client may be newer, which this client cannot order;
 *  - a value naming this client as writer must be its last update;
 *  - every record exists after the load phase (not found is an error).
 */
static bool check_ycsb_read(struct bench_client *bc, const uint8_t *bytes,
			    size_t len)
{
	struct bench_thread *t = bc->thread;
	uint64_t writer;
	uint32_t version;

	if (len >= 1 && bytes[0] == OSKR_KV_NOT_FOUND) {
		t->not_found++;
		return false;
	}
	if (len < 1 || bytes[0] != OSKR_KV_OK ||
	    !value_intact(bytes + 1, len - 1, t->options->ycsb.value_size,
			  bc->key_index, &writer, &version)) {
		t->verify_errors++;
		return false;
	}
	uint32_t own = bc->own_versions ? bc->own_versions[bc->key_index] : 0;
	bool ok = true;
	if (writer == bc->id)
		ok = bc->own_versions ? version == own : true;
	else if (writer == 0)
		ok = own == 0;
	if (!ok)
		t->verify_errors++;
	return ok;
}

static bool check_result(struct bench_client *bc, const void *result,
			 size_t len)
{
	const struct bench_options *o = bc->thread->options;
	const uint8_t *bytes = result;
	if (o->workload == WORKLOAD_NULL)
		return true;
	if (o->workload == WORKLOAD_YCSB) {
		if (bc->op == YCSB_READ)
			return check_ycsb_read(bc, bytes, len);
		if (len < 1 || bytes[0] != OSKR_KV_OK)
			return false;
		if (bc->op == YCSB_UPDATE && bc->own_versions)
			bc->own_versions[bc->key_index] = bc->op_version;
		return true;
	}
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

/* The next record this client loads: clients split the records by
 * index modulo the client count. */
static bool load_remaining(const struct bench_client *bc)
{
	return bc->load_next < bc->thread->options->ycsb.records;
}

static void on_done(void *arg, uint64_t request_number, const void *result,
		    size_t len)
{
	struct bench_client *bc = arg;
	struct bench_thread *t = bc->thread;
	const struct bench_options *o = t->options;
	uint64_t now = oskr__monotonic_ns();
	bc->outstanding = false;
	t->last_completion_ns = now;
	atomic_fetch_add_explicit(&t->finished, 1, memory_order_relaxed);
	if (!check_result(bc, result, len)) {
		t->errors++;
		if (t->errors <= 5)
			fprintf(stderr,
				"oskr-bench: client %u: wrong result for "
				"request %llu (%zu bytes)\n",
				bc->index, (unsigned long long)request_number,
				len);
	}
	if (t->phase == PHASE_LOAD) {
		t->loaded++;
		bc->load_next += o->clients;
		if (load_remaining(bc))
			issue(bc);
		return;
	}
	if (bc->started_ns >= t->measure_start_ns &&
	    now <= t->measure_end_ns) {
		t->completed++;
		record_latency(&t->latencies, now - bc->started_ns);
		if (o->workload == WORKLOAD_YCSB) {
			if (bc->op == YCSB_READ)
				t->reads++;
			else
				t->updates++;
		}
	}
	if (o->workload == WORKLOAD_KV)
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

static bool any_outstanding(const struct bench_thread *t)
{
	for (unsigned i = 0; i < t->client_count; i++)
		if (t->clients[i].outstanding)
			return true;
	return false;
}

static void run_load(struct bench_thread *t)
{
	t->last_completion_ns = oskr__monotonic_ns();
	for (unsigned i = 0; i < t->client_count; i++)
		if (load_remaining(&t->clients[i]))
			issue(&t->clients[i]);
	while (any_outstanding(t)) {
		if (oskr__monotonic_ns() - t->last_completion_ns >
		    LOAD_STALL_NS) {
			fprintf(stderr, "oskr-bench: load phase: no put "
					"completed for 30 s; giving up\n");
			t->rc = -ETIMEDOUT;
			return;
		}
		int rc = oskr_client_poll(t->handles, t->client_count, 10);
		if (rc < 0) {
			t->rc = rc;
			return;
		}
	}
}

static void run_measure(struct bench_thread *t)
{
	for (unsigned i = 0; i < t->client_count; i++)
		issue(&t->clients[i]);
	/* Run until the window closes and every client's last request has
	 * finished; stragglers get a bounded grace period. */
	uint64_t give_up = t->measure_end_ns + DRAIN_GRACE_NS;
	for (;;) {
		uint64_t now = oskr__monotonic_ns();
		if (now >= t->measure_end_ns) {
			if (!any_outstanding(t))
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
}

/* Threads of the current phase still running: the progress line stops
 * when it drops to zero. */
static atomic_uint threads_running;

static void *thread_main(void *arg)
{
	struct bench_thread *t = arg;
	if (t->phase == PHASE_LOAD)
		run_load(t);
	else
		run_measure(t);
	atomic_fetch_sub(&threads_running, 1);
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

static uint64_t threads_finished(struct bench_thread *threads, unsigned n)
{
	uint64_t sum = 0;
	for (unsigned t = 0; t < n; t++)
		sum += atomic_load_explicit(&threads[t].finished,
					    memory_order_relaxed);
	return sum;
}

/* Start every thread in @p phase and wait for them; on a terminal, show
 * progress meanwhile. Returns the seconds the phase took. */
static double run_phase(const struct bench_options *o,
			struct bench_thread *threads, enum phase phase,
			uint64_t start_ns, uint64_t measure_start_ns,
			uint64_t measure_end_ns)
{
	unsigned started = 0;
	atomic_store(&threads_running, 0);
	for (unsigned t = 0; t < o->threads; t++) {
		threads[t].phase = phase;
		threads[t].measure_start_ns = measure_start_ns;
		threads[t].measure_end_ns = measure_end_ns;
		atomic_fetch_add(&threads_running, 1);
		if (pthread_create(&threads[t].thread, NULL, thread_main,
				   &threads[t])) {
			atomic_fetch_sub(&threads_running, 1);
			fprintf(stderr, "oskr-bench: cannot start a thread\n");
			threads[t].rc = -EAGAIN;
			break;
		}
		started++;
	}
	if (o->progress) {
		uint64_t last_done = threads_finished(threads, o->threads);
		uint64_t last_ns = oskr__monotonic_ns();
		double total = o->warmup_s + o->duration_s;
		while (atomic_load(&threads_running) > 0) {
			usleep(250000);
			uint64_t now = oskr__monotonic_ns();
			uint64_t done = threads_finished(threads, o->threads);
			double current = (double)(done - last_done) * 1e9 /
					 (double)(now - last_ns);
			last_done = done;
			last_ns = now;
			if (phase == PHASE_LOAD)
				fprintf(stderr,
					"\r  load %llu/%llu records  %10.0f "
					"ops/s   ",
					(unsigned long long)done,
					(unsigned long long)o->ycsb.records,
					current);
			else
				fprintf(stderr,
					"\r  %-7s %5.1f/%.1f s  %10.0f ops/s   ",
					now < measure_start_ns ? "warm-up"
							       : "measure",
					(double)(now - start_ns) / 1e9, total,
					current);
		}
		fprintf(stderr, "\r%60s\r", "");
	}
	for (unsigned t = 0; t < started; t++)
		pthread_join(threads[t].thread, NULL);
	return (double)(oskr__monotonic_ns() - start_ns) / 1e9;
}

static const char *workload_name(enum workload w)
{
	switch (w) {
	case WORKLOAD_KV:
		return "kv";
	case WORKLOAD_YCSB:
		return "ycsb";
	default:
		return "null";
	}
}

int main(int argc, char **argv)
{
	struct bench_options o;
	int rc = parse_options(argc, argv, &o);
	if (rc)
		return rc;
	o.progress = isatty(STDERR_FILENO) && !o.json;

	/* The config names the app (default workload) and the protocol. */
	struct oskr_config *config = NULL;
	char *message = NULL;
	if (oskr__config_load(o.config_path, &config, &message) < 0) {
		fprintf(stderr, "oskr-bench: %s\n",
			message ? message : o.config_path);
		free(message);
		return 1;
	}
	bool kv_app = config->app && strcmp(config->app, "kv") == 0;
	if (o.workload == (enum workload)-1)
		o.workload = kv_app ? WORKLOAD_KV : WORKLOAD_NULL;
	if (o.workload != WORKLOAD_NULL && !kv_app) {
		fprintf(stderr,
			"oskr-bench: the %s workload needs the kv app, but %s "
			"runs '%s'\n",
			workload_name(o.workload), o.config_path,
			config->app ? config->app : "null");
		oskr__config_free(config);
		return 2;
	}
	char protocol[128];
	snprintf(protocol, sizeof(protocol), "%s",
		 o.protocol ? o.protocol
			    : (config->protocol ? config->protocol : ""));
	oskr__config_free(config);

	struct zipfian zipf = {0};
	if (o.workload == WORKLOAD_YCSB &&
	    o.ycsb.distribution == DISTRIBUTION_ZIPFIAN)
		zipfian_init(&zipf, o.ycsb.records, o.ycsb.zipf_theta);
	bool own_check = o.workload == WORKLOAD_YCSB &&
			 o.ycsb.records * sizeof(uint32_t) * o.clients <=
				 YCSB_OWN_VERSIONS_MAX_BYTES;
	if (o.workload == WORKLOAD_YCSB && !own_check && !o.json)
		fprintf(stderr, "oskr-bench: note: %llu records x %u clients: "
				"own-write check off (too much memory)\n",
			(unsigned long long)o.ycsb.records, o.clients);

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
	int exit_code = 1;
	unsigned opened = 0;
	for (unsigned i = 0; i < o.clients; i++) {
		rc = oskr_client_open(&handles[i], o.config_path,
				      &client_options, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "oskr-bench: %s\n", err);
			goto out;
		}
		opened++;
		struct bench_client *bc = &clients[i];
		bc->client = handles[i];
		bc->index = i;
		bc->id = oskr_client_id(handles[i]);
		bc->rng = o.ycsb.seed ^ (0x9e3779b97f4a7c15ull * (i + 1));
		bc->load_next = i;
		if (own_check) {
			bc->own_versions = calloc(o.ycsb.records,
						  sizeof(uint32_t));
			if (!bc->own_versions) {
				fprintf(stderr, "oskr-bench: out of memory\n");
				goto out;
			}
		}
	}
	unsigned next = 0;
	for (unsigned t = 0; t < o.threads; t++) {
		unsigned share = o.clients / o.threads +
				 (t < o.clients % o.threads ? 1 : 0);
		threads[t] = (struct bench_thread){
			.options = &o,
			.zipf = &zipf,
			.clients = &clients[next],
			.handles = &handles[next],
			.client_count = share,
		};
		atomic_init(&threads[t].finished, 0);
		for (unsigned i = 0; i < share; i++)
			clients[next + i].thread = &threads[t];
		next += share;
	}

	/* Load phase (ycsb): the clients insert every record. */
	double load_s = 0;
	uint64_t loaded = 0, errors = 0;
	if (o.workload == WORKLOAD_YCSB && o.ycsb.load) {
		uint64_t start = oskr__monotonic_ns();
		load_s = run_phase(&o, threads, PHASE_LOAD, start, 0, 0);
		for (unsigned t = 0; t < o.threads; t++) {
			loaded += threads[t].loaded;
			errors += threads[t].errors;
			threads[t].errors = 0;
			if (threads[t].rc < 0)
				goto out;
			atomic_store(&threads[t].finished, 0);
		}
		if (!o.json)
			fprintf(stderr,
				"oskr-bench: loaded %llu records of %zu bytes "
				"in %.2f s (%.0f ops/s)%s\n",
				(unsigned long long)loaded, o.ycsb.value_size,
				load_s, load_s > 0 ? (double)loaded / load_s : 0,
				errors ? ", with errors" : "");
	}

	uint64_t completed = 0, timeouts = 0, completed_total = 0;
	uint64_t reads = 0, updates = 0, not_found = 0, verify_errors = 0;
	struct latency_log all = {0};
	double duration_s = o.duration_s;
	if (!o.ycsb.load_only || o.workload != WORKLOAD_YCSB) {
		uint64_t start = oskr__monotonic_ns();
		uint64_t measure_start = start + (uint64_t)(o.warmup_s * 1e9);
		uint64_t measure_end =
			measure_start + (uint64_t)(o.duration_s * 1e9);
		run_phase(&o, threads, PHASE_MEASURE, start, measure_start,
			  measure_end);
	} else {
		/* The load pass alone: report it as the run. */
		duration_s = load_s;
		completed = loaded;
	}
	for (unsigned t = 0; t < o.threads; t++) {
		completed += threads[t].completed;
		completed_total += atomic_load(&threads[t].finished);
		errors += threads[t].errors;
		timeouts += threads[t].timeouts;
		reads += threads[t].reads;
		updates += threads[t].updates;
		not_found += threads[t].not_found;
		verify_errors += threads[t].verify_errors;
		for (size_t i = 0; i < threads[t].latencies.count; i++)
			record_latency(&all, threads[t].latencies.samples[i]);
		if (threads[t].rc < 0)
			errors++;
		if (threads[t].timeouts)
			fprintf(stderr,
				"oskr-bench: thread %u: requests still "
				"outstanding 5 s after the window closed\n",
				t);
	}
	if (all.count) /* qsort(NULL, 0, …) is undefined behaviour */
		qsort(all.samples, all.count, sizeof(*all.samples), compare_u64);
	double throughput = duration_s > 0 ? (double)completed / duration_s
					   : 0;
	double p50 = percentile_us(all.samples, all.count, 50);
	double p90 = percentile_us(all.samples, all.count, 90);
	double p99 = percentile_us(all.samples, all.count, 99);
	double p999 = percentile_us(all.samples, all.count, 99.9);
	double max = all.count ? (double)all.samples[all.count - 1] / 1000.0
			       : 0;
	double min = all.count ? (double)all.samples[0] / 1000.0 : 0;
	double sum_ns = 0;
	for (size_t i = 0; i < all.count; i++)
		sum_ns += (double)all.samples[i];
	double mean = all.count ? sum_ns / (double)all.count / 1000.0 : 0;
	const char *workload = workload_name(o.workload);
	if (!o.json) {
		printf("%-10s %8s %12s %10s %10s %10s %10s %8s\n", "workload",
		       "clients", "ops/s", "p50 us", "p90 us", "p99 us",
		       "max us", "errors");
		printf("%-10s %8u %12.0f %10.1f %10.1f %10.1f %10.1f %8llu\n",
		       workload, o.clients, throughput, p50, p90, p99, max,
		       (unsigned long long)errors);
	}
	/* Stable: fields are only ever appended. */
	printf("{\"workload\":\"%s\",\"clients\":%u,\"duration_s\":%.3f,"
	       "\"completed\":%llu,\"ops_per_s\":%.1f,\"p50_us\":%.1f,"
	       "\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,"
	       "\"errors\":%llu,\"protocol\":\"%s\",\"threads\":%u,"
	       "\"warmup_s\":%.3f,\"op_size\":%zu,\"min_us\":%.1f,"
	       "\"mean_us\":%.1f,\"p999_us\":%.1f,\"timeouts\":%llu,"
	       "\"completed_total\":%llu",
	       workload, o.clients, duration_s, (unsigned long long)completed,
	       throughput, p50, p90, p99, max, (unsigned long long)errors,
	       protocol, o.threads, o.warmup_s, o.op_size, min, mean, p999,
	       (unsigned long long)timeouts,
	       (unsigned long long)completed_total);
	if (o.workload == WORKLOAD_YCSB)
		printf(",\"read_ratio\":%.4f,\"records\":%llu,"
		       "\"value_size\":%zu,\"distribution\":\"%s\","
		       "\"zipf_theta\":%.3f,\"loaded\":%llu,\"load_s\":%.3f,"
		       "\"reads\":%llu,\"updates\":%llu,\"not_found\":%llu,"
		       "\"verify_errors\":%llu,\"own_write_check\":%s",
		       o.ycsb.read_ratio, (unsigned long long)o.ycsb.records,
		       o.ycsb.value_size,
		       o.ycsb.distribution == DISTRIBUTION_ZIPFIAN ? "zipfian"
								   : "uniform",
		       o.ycsb.zipf_theta, (unsigned long long)loaded, load_s,
		       (unsigned long long)reads, (unsigned long long)updates,
		       (unsigned long long)not_found,
		       (unsigned long long)verify_errors,
		       own_check ? "true" : "false");
	printf("}\n");
	fflush(stdout);
	free(all.samples);
	if (errors)
		exit_code = 1;
	else if (completed == 0)
		fprintf(stderr, "oskr-bench: no request completed in the "
				"measured window\n");
	else
		exit_code = 0;
out:
	for (unsigned t = 0; t < o.threads; t++)
		free(threads[t].latencies.samples);
	for (unsigned i = 0; i < opened; i++) {
		oskr_client_close(handles[i]);
		free(clients[i].own_versions);
	}
	free(clients);
	free(handles);
	free(threads);
	return exit_code;
}
