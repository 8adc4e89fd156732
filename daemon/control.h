/* SPDX-License-Identifier: MIT */
/*
 * The control socket (docs/operations.md, oskrctl(8)): a unix stream
 * socket that answers one line command per connection —
 *
 *   status   replica id, protocol, role, view/leader, committed/executed,
 *            uptime, queue depths, durable state ("key: value" lines)
 *   metrics  Prometheus text exposition format 0.0.4
 *   config   the effective configuration, secrets redacted
 *   help     the list above
 *
 * One thread serves it with poll(): the listening socket and every
 * connection are non-blocking, a request is at most
 * OSKR_CONTROL_REQUEST_MAX bytes, a connection lives at most
 * OSKR_CONTROL_TIMEOUT_MS, and at most OSKR_CONTROL_MAX_CONNECTIONS are
 * served at once — a slow or stuck client delays nobody but itself, and
 * never a worker: answers are built from relaxed atomics and counters.
 *
 * Also here: the per-stage task latency histogram the replica runtime
 * fills (relaxed atomics, one histogram per worker so workers never share
 * a cache line), and the renderers, which are pure functions of their
 * inputs so tests can check the output format without a replica.
 */
#ifndef OSKR_DAEMON_CONTROL_H
#define OSKR_DAEMON_CONTROL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oskr/plugin.h>

struct oskr_config;
struct oskr_replica;

#define OSKR_CONTROL_REQUEST_MAX 256
#define OSKR_CONTROL_RESPONSE_MAX (8u << 20)
#define OSKR_CONTROL_TIMEOUT_MS 5000
#define OSKR_CONTROL_MAX_CONNECTIONS 16
/** Default socket of `oskrctl` when neither -s nor -c is given. */
#define OSKR_CONTROL_DEFAULT_SOCKET "/run/oskr/oskrd.sock"

/* ---- a bounded growable text buffer ---- */

struct oskr__text {
	char *data; /* NUL-terminated when non-NULL */
	size_t len, capacity, limit;
	bool overflow; /* an append did not fit under limit (or ENOMEM) */
};

void oskr__text_init(struct oskr__text *text, size_t limit);
void oskr__text_printf(struct oskr__text *text, const char *fmt, ...)
	OSKR_PRINTF(2, 3);
void oskr__text_reset(struct oskr__text *text);
void oskr__text_free(struct oskr__text *text);

/* ---- task latency histogram ---- */

/** Upper bounds of the finite buckets, in ns; one more bucket is +Inf. */
#define OSKR_LATENCY_BUCKETS 16
extern const uint64_t oskr__latency_bounds_ns[OSKR_LATENCY_BUCKETS];

struct oskr__latency_histogram {
	/* non-cumulative: counts[i] holds observations in
	 * (bound[i-1], bound[i]]; counts[OSKR_LATENCY_BUCKETS] the rest */
	_Alignas(64) atomic_uint_fast64_t counts[OSKR_LATENCY_BUCKETS + 1];
	atomic_uint_fast64_t sum_ns;
};

/** Record one duration. Any thread; relaxed atomics only. */
static inline void oskr__latency_observe(struct oskr__latency_histogram *h,
					 uint64_t ns)
{
	unsigned bucket = 0;
	while (bucket < OSKR_LATENCY_BUCKETS &&
	       ns > oskr__latency_bounds_ns[bucket])
		bucket++;
	atomic_fetch_add_explicit(&h->counts[bucket], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

struct oskr__latency_totals {
	uint64_t counts[OSKR_LATENCY_BUCKETS + 1]; /* non-cumulative */
	uint64_t sum_ns;
};

/** Add @p h's current counts to @p totals. */
void oskr__latency_accumulate(const struct oskr__latency_histogram *h,
			      struct oskr__latency_totals *totals);

/** Kinds of stage task timed by the replica runtime. */
enum oskr__task_kind {
	OSKR_TASK_STATELESS,
	OSKR_TASK_STATEFUL,
	OSKR_TASK_KINDS,
};
const char *oskr__task_kind_name(enum oskr__task_kind kind);

/* ---- renderers ---- */

/** Everything `status` and `metrics` show besides counters. */
struct oskr_control_view {
	uint32_t replica_id;
	const char *protocol, *protocol_version, *app;
	unsigned workers;
	uint64_t view, committed, executed;
	int32_t leader;
	uint64_t uptime_ns;
	uint64_t stateless_queued, stateful_queued;
	/* durable state (state_dir) */
	const char *state_dir; /* NULL = none */
	uint64_t applied, restored_applied;
	uint64_t snapshots_written, snapshot_failures, snapshots_superseded;
	uint64_t snapshot_applied, snapshot_bytes, snapshot_unix_ms;
	uint64_t snapshot_duration_ns;
	/* checkpoints (ABI 1.1): written by this process, resumed from */
	uint64_t checkpoints_written, checkpoint_op;
	bool resumed;
	uint64_t resumed_op;
};

struct oskr_control_counter {
	const char *name;
	uint64_t value;
};

void oskr__control_render_status(struct oskr__text *out,
				 const struct oskr_control_view *view);
/**
 * Prometheus text format 0.0.4. Counters named drop_<reason> become one
 * family oskr_drops_total{reason="<reason>"}; every other counter becomes
 * oskr_<name>_total. Counters with the same name are summed (plugin and
 * host may both count e.g. drop_no_buffer). @p latency has
 * OSKR_TASK_KINDS entries, or is NULL.
 */
void oskr__control_render_metrics(struct oskr__text *out,
				  const struct oskr_control_view *view,
				  const struct oskr_control_counter *counters,
				  size_t counter_count,
				  const struct oskr__latency_totals *latency);
/** The effective configuration as flat "key: value" lines. Paths of key
 *  files are shown, never key material; option values whose key looks
 *  secret (secret, password, token, *key) are shown as "redacted". */
void oskr__control_render_config(struct oskr__text *out,
				 const struct oskr_config *config,
				 uint32_t replica_id, const char *protocol,
				 const char *plugin_path);


/* ---- the server ---- */

/** Answer @p command (one line, trimmed) into @p out; called on the
 *  control thread. Return 0, or negative when the answer is an error
 *  (then it should start with "error: "). */
typedef int (*oskr__control_handler)(void *arg, const char *command,
				     struct oskr__text *out);

struct oskr_control;

/**
 * Create the socket at @p path (mode 0660; a stale socket file is replaced
 * only when nothing listens on it) and start the serving thread.
 * @return 0, or negative errno with *err.
 */
int oskr__control_listen(struct oskr_control **out, const char *path,
			 oskr__control_handler handler, void *arg,
			 char **err);
/** Stop the thread, close every connection, remove the socket file (if
 *  it is still ours). NULL-safe. */
void oskr__control_stop(struct oskr_control *control);

/** What oskrd serves. All pointers must outlive the control socket. */
struct oskr_control_target {
	struct oskr_replica *replica;
	const struct oskr_config *config;
	const struct oskr_plugin *plugin;
	const char *plugin_path; /* may be NULL */
	uint32_t replica_id;
};

/** Answer one control command (status, metrics, config, help) for
 *  @p target into @p out, as the control socket does; -EINVAL for an
 *  unknown command (with the error text in @p out). Any thread. */
int oskr__control_answer(const struct oskr_control_target *target,
			 const char *command, struct oskr__text *out);

/** Listen on config->control_socket ("%i" expanded) for @p target. */
int oskr__control_start(struct oskr_control **out,
			const struct oskr_control_target *target, char **err);

#endif
