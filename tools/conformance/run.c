/* SPDX-License-Identifier: MIT */
/*
 * One conformance run: a plugin, a fault schedule and a seed, on the sim.
 *
 * Every run drives the same closed-loop workload (each client keeps one
 * request outstanding) through phases on virtual time:
 *
 *   fault-free prefix ─▶ fault ─▶ heal ─▶ every request must finish
 *                                         within the liveness bound
 *
 * Network faults (drops, duplicates, reordering) are on from the start and
 * heal after --fault-ms or two thirds of the requests. A crash or a
 * partition hits one replica after a third of the requests finished; a
 * partition heals after --fault-ms, a crash never does (crash-stop), a
 * restart brings the replica back empty, a resume from its last declared
 * checkpoint (ABI 1.1). During a fault at most two thirds
 * of the requests are issued, so at least a third must finish after the
 * heal: a protocol that only works while the fault lasts is caught too.
 *
 * Checks:
 *  - safety, by the sim: the executed sequences of correct replicas are
 *    prefixes of each other, and no client accepted two results for one
 *    request;
 *  - exactly once: no replica executes more ops than were requested;
 *  - results: with the kv app every client alternates put and get of its
 *    own key, so a get must return that client's last put (a lost,
 *    duplicated or reordered execution shows up here); with the null app
 *    every result is empty;
 *  - liveness: all requests finish by the heal + --bound-ms (only where
 *    the declared fault model promises it);
 *  - stage discipline: a stateful-only service called from a stateless
 *    task (the sim counts "sim_misuse") fails the run, since it would
 *    race in oskrd.
 */
#include "kit.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oskr/kv.h>

/* Time for stragglers after the last request, before the final checks. */
#define QUIESCE_NS (500 * OSKR_KIT_MS)
#define VALUE_MAX 64

enum op_type { OP_NULL, OP_PUT, OP_GET };

struct kit_client {
	bool outstanding;
	uint64_t request_number;
	enum op_type type;
	uint64_t count; /* requests started */
	uint8_t value[VALUE_MAX]; /* put: written; get: expected */
	size_t value_len;
};

struct kit_run {
	const struct oskr__kit_options *options;
	struct oskr_sim *sim;
	struct oskr__kit_result *result;
	struct kit_client *clients;
	uint64_t seed;
	bool kv;
	uint64_t seen_completions; /* oskr_sim_completed when last looked */
	uint64_t event_limit;      /* absolute oskr_sim_events value */
	bool out_of_events;
	bool failed;
};

static void fail(struct kit_run *run, const char *fmt, ...)
	OSKR_PRINTF(2, 3);

static void fail(struct kit_run *run, const char *fmt, ...)
{
	if (run->failed)
		return; /* the first failure is the one to look at */
	run->failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(run->result->why, sizeof(run->result->why), fmt, ap);
	va_end(ap);
}

static double seconds(uint64_t ns)
{
	return (double)ns / 1e9;
}

/* ---- the workload ---- */

static size_t make_op(struct kit_run *run, uint32_t k, uint8_t *op,
		      size_t capacity)
{
	struct kit_client *client = &run->clients[k];
	if (!run->kv) {
		client->type = OP_NULL;
		uint64_t counter = client->count;
		for (int i = 0; i < 8; i++)
			op[i] = (uint8_t)(counter >> (8 * i));
		return 8;
	}
	char key[24];
	int key_len = snprintf(key, sizeof(key), "client-%u", k);
	/* Even requests put, odd ones get what the last put wrote. */
	if (client->count % 2 == 0) {
		client->type = OP_PUT;
		int len = snprintf((char *)client->value, sizeof(client->value),
				   "seed-%" PRIu64 "-client-%u-put-%" PRIu64,
				   run->seed, k, client->count);
		client->value_len = len < 0 ? 0
				    : (size_t)len < sizeof(client->value)
					    ? (size_t)len
					    : sizeof(client->value) - 1;
		return oskr_kv_encode_put(op, capacity, key, (size_t)key_len,
					  client->value, client->value_len);
	}
	client->type = OP_GET;
	return oskr_kv_encode_get(op, capacity, key, (size_t)key_len);
}

static void check_result(struct kit_run *run, uint32_t k)
{
	struct kit_client *client = &run->clients[k];
	size_t len = 0;
	const uint8_t *result = oskr_sim_client_result(run->sim, k, &len);
	if (!result) {
		fail(run, "client %u: request %" PRIu64 " finished without a "
			  "result", k, client->request_number);
		return;
	}
	switch (client->type) {
	case OP_NULL:
		if (len != 0)
			fail(run, "client %u: request %" PRIu64 ": the null app "
				  "returns an empty result, got %zu bytes",
			     k, client->request_number, len);
		break;
	case OP_PUT:
		if (len != 1 || result[0] != OSKR_KV_OK)
			fail(run, "client %u: request %" PRIu64 " (put): "
				  "expected status ok, got %zu bytes, status %d",
			     k, client->request_number, len,
			     len ? result[0] : -1);
		break;
	case OP_GET:
		if (len < 1 || result[0] != OSKR_KV_OK ||
		    len - 1 != client->value_len ||
		    memcmp(result + 1, client->value, client->value_len) != 0)
			fail(run, "client %u: request %" PRIu64 " (get) did not "
				  "return the client's last put '%.*s' (status "
				  "%d, %zu bytes): an execution was lost, "
				  "repeated or reordered",
			     k, client->request_number, (int)client->value_len,
			     (const char *)client->value,
			     len ? result[0] : -1, len ? len - 1 : 0);
		break;
	}
}

/* Account for every request that finished since the last look. */
static void collect(struct kit_run *run)
{
	run->seen_completions = oskr_sim_completed(run->sim);
	for (uint32_t k = 0; k < run->options->client_count; k++) {
		struct kit_client *client = &run->clients[k];
		if (!client->outstanding || oskr_sim_client_busy(run->sim, k))
			continue;
		client->outstanding = false;
		run->result->completed++;
		run->result->done_at_ns = oskr_sim_now(run->sim);
		check_result(run, k);
	}
}

/* Start a request on every idle client while fewer than @p limit were
 * issued in total. */
static void issue(struct kit_run *run, uint64_t limit)
{
	uint8_t op[128];
	for (uint32_t k = 0; k < run->options->client_count; k++) {
		struct kit_client *client = &run->clients[k];
		if (run->result->issued >= limit || run->failed)
			return;
		if (client->outstanding)
			continue;
		size_t op_len = make_op(run, k, op, sizeof(op));
		uint64_t number = 0;
		int ret = oskr_sim_invoke(run->sim, k, op, op_len, &number);
		if (ret) {
			fail(run, "client %u: client_invoke refused request "
				  "%" PRIu64 " of an idle client: %s",
			     k, client->count + 1, strerror(-ret));
			return;
		}
		client->outstanding = true;
		client->request_number = number;
		client->count++;
		run->result->issued++;
	}
}

/* run_until predicate: a request finished, or the event budget ran out
 * (a plugin that spins on zero-delay timers or tasks never lets virtual
 * time reach the bound). */
static bool progress(void *arg)
{
	struct kit_run *run = arg;
	if (oskr_sim_events(run->sim) >= run->event_limit) {
		run->out_of_events = true;
		return true;
	}
	return oskr_sim_completed(run->sim) != run->seen_completions;
}

/*
 * The closed loop: keep clients busy while fewer than @p issue_limit
 * requests were issued, until @p stop_completed requests finished (true)
 * or virtual time reaches @p until_ns (false). When there is nothing left
 * to issue, time still runs to @p until_ns: a fault lasts its full time.
 */
static bool drive(struct kit_run *run, uint64_t until_ns, uint64_t issue_limit,
		  uint64_t stop_completed)
{
	for (;;) {
		collect(run);
		if (run->failed)
			return false;
		if (run->result->completed >= stop_completed)
			return true;
		issue(run, issue_limit);
		if (run->failed)
			return false;
		uint64_t now = oskr_sim_now(run->sim);
		if (now >= until_ns)
			return false;
		oskr_sim_run_until(run->sim, progress, run, until_ns - now);
		if (run->out_of_events) {
			fail(run, "event budget (%" PRIu64 " events) exhausted "
				  "at t=%.3f s with %" PRIu64 " of %" PRIu64
				  " requests finished: a livelock? (a timer or "
				  "task that re-arms itself without delay; raise "
				  "the budget with --max-events)",
			     run->options->max_events,
			     seconds(oskr_sim_now(run->sim)),
			     run->result->completed, run->options->requests);
			return false;
		}
	}
}

static void list_stuck_clients(struct kit_run *run, char *out, size_t len)
{
	size_t at = 0;
	unsigned listed = 0;
	out[0] = '\0';
	for (uint32_t k = 0; k < run->options->client_count && at < len; k++) {
		if (!run->clients[k].outstanding)
			continue;
		if (listed++ == 8) {
			snprintf(out + at, len - at, " ...");
			return;
		}
		int n = snprintf(out + at, len - at, " %u(request %" PRIu64 ")",
				 k, run->clients[k].request_number);
		if (n < 0)
			return;
		at += (size_t)n;
	}
}

static void fail_liveness(struct kit_run *run, const char *phase,
			  uint64_t from_ns)
{
	char stuck[256];
	list_stuck_clients(run, stuck, sizeof(stuck));
	fail(run, "liveness: %" PRIu64 " of %" PRIu64 " requests finished "
		  "%s (by t=%.3f s, bound %.3f s from t=%.3f s); waiting "
		  "clients:%s",
	     run->result->completed, run->options->requests, phase,
	     seconds(oskr_sim_now(run->sim)), seconds(run->options->bound_ns),
	     seconds(from_ns), stuck[0] ? stuck : " none");
}

/* ---- the schedules ---- */

size_t oskr__kit_schedules(const struct oskr__kit_options *options,
			   struct oskr__kit_schedule *out, size_t capacity)
{
	size_t count = 0;
#define ADD(kind, r, ...)                                                  \
	do {                                                               \
		if (count < capacity) {                                    \
			out[count].fault = (kind);                         \
			out[count].replica = (r);                          \
			snprintf(out[count].name, sizeof(out[count].name), \
				 __VA_ARGS__);                             \
		}                                                          \
		count++;                                                   \
	} while (0)
	ADD(OSKR_KIT_NONE, 0, "none");
	ADD(OSKR_KIT_DROP_REORDER, 0, "drop-reorder");
	ADD(OSKR_KIT_DUPLICATE, 0, "duplicate");
	for (uint32_t r = 0; r < options->replica_count; r++)
		ADD(OSKR_KIT_CRASH, r, "crash-%u", r);
	for (uint32_t r = 0; r < options->replica_count; r++)
		ADD(OSKR_KIT_PARTITION, r, "partition-%u", r);
	for (uint32_t r = 0; r < options->replica_count; r++)
		ADD(OSKR_KIT_RESTART, r, "restart-%u", r);
	for (uint32_t r = 0; r < options->replica_count; r++)
		ADD(OSKR_KIT_RESUME, r, "resume-%u", r);
#undef ADD
	return count;
}

bool oskr__kit_liveness_required(const struct oskr__kit_options *options,
				 const struct oskr__kit_schedule *schedule)
{
	switch (schedule->fault) {
	case OSKR_KIT_CRASH:
	case OSKR_KIT_RESTART:
	case OSKR_KIT_RESUME:
		/* With f = 0 no crash is tolerated by definition. */
		if (!options->crash_tolerated || options->fault_count == 0)
			return false;
		if (schedule->replica == 0 && !options->crash_primary_tolerated)
			return false;
		return true;
	case OSKR_KIT_PARTITION:
		return options->partition_tolerated;
	default:
		return true;
	}
}

static int start_sim(struct kit_run *run)
{
	const struct oskr__kit_options *options = run->options;
	struct oskr_sim_config config = {
		.plugin = options->plugin,
		.replica_count = options->replica_count,
		.fault_count = options->fault_count,
		.client_count = options->client_count,
		.seed = run->seed,
		.protocol_options = options->options_text,
		.app = options->app,
		.real_signatures = options->real_signatures,
	};
	int ret = oskr_sim_create(&run->sim, &config);
	if (ret) {
		fail(run, "the sim could not start the plugin (%s): see the "
			  "message above",
		     strerror(-ret));
		run->sim = NULL;
	}
	return ret;
}

static void network_faults(struct kit_run *run, double drop, double dup,
			   uint64_t spread_ns)
{
	oskr_sim_set_drop_rate(run->sim, drop);
	oskr_sim_set_duplicate_rate(run->sim, dup);
	/* The sim's default delay is 10-50 us: a wide spread reorders. */
	oskr_sim_set_delay(run->sim, 10000, spread_ns ? spread_ns : 50000);
}

static void heal_network(struct kit_run *run)
{
	network_faults(run, 0, 0, 0);
	oskr_sim_heal(run->sim);
}

/* The fault-free third before a replica is hit. */
static bool prefix(struct kit_run *run, uint64_t third)
{
	if (drive(run, run->options->bound_ns, third, third))
		return true;
	if (!run->failed)
		fail_liveness(run, "in the fault-free prefix, before any fault",
			      0);
	return false;
}

static void run_schedule(struct kit_run *run,
			 const struct oskr__kit_schedule *schedule)
{
	const struct oskr__kit_options *options = run->options;
	struct oskr__kit_result *result = run->result;
	uint64_t total = options->requests;
	uint64_t third = total / 3 ? total / 3 : 1;
	uint64_t two_thirds = total - total / 3;
	uint64_t now;

	switch (schedule->fault) {
	case OSKR_KIT_NONE:
		break;
	case OSKR_KIT_DROP_REORDER:
	case OSKR_KIT_DUPLICATE:
		if (schedule->fault == OSKR_KIT_DROP_REORDER)
			network_faults(run, options->drop_rate, 0,
				       options->spread_ns);
		else
			network_faults(run, 0, options->duplicate_rate,
				       options->spread_ns);
		result->fault_at_ns = 0;
		drive(run, options->fault_ns, two_thirds, two_thirds);
		if (run->failed)
			return;
		heal_network(run);
		break;
	case OSKR_KIT_CRASH:
		if (!prefix(run, third))
			return;
		oskr_sim_crash(run->sim, schedule->replica);
		result->fault_at_ns = oskr_sim_now(run->sim);
		break;
	case OSKR_KIT_PARTITION:
	case OSKR_KIT_RESTART:
	case OSKR_KIT_RESUME:
		if (!prefix(run, third))
			return;
		result->fault_at_ns = now = oskr_sim_now(run->sim);
		if (schedule->fault == OSKR_KIT_PARTITION) {
			uint64_t everyone =
				options->replica_count >= 64
					? UINT64_MAX
					: (1ULL << options->replica_count) - 1;
			/* Side A is everybody else, clients included: the
			 * replica is cut off from the whole world. */
			oskr_sim_partition(run->sim,
					   everyone &
						   ~(1ULL << schedule->replica),
					   true);
		} else {
			oskr_sim_crash(run->sim, schedule->replica);
		}
		drive(run, now + options->fault_ns, two_thirds, UINT64_MAX);
		if (run->failed)
			return;
		if (schedule->fault == OSKR_KIT_PARTITION) {
			oskr_sim_heal(run->sim);
		} else {
			/* resume: what a replica restarted by oskrd with a
			 * state directory gets after a crash */
			int ret = schedule->fault == OSKR_KIT_RESUME
					  ? oskr_sim_restart_from_checkpoint(
						    run->sim, schedule->replica)
					  : oskr_sim_restart(run->sim,
							     schedule->replica);
			if (ret) {
				fail(run, "replica %u could not restart: "
					  "replica_init failed (%s)",
				     schedule->replica, strerror(-ret));
				return;
			}
		}
		break;
	}

	result->heal_at_ns = now = oskr_sim_now(run->sim);
	if (!drive(run, now + options->bound_ns, total, total)) {
		if (!run->failed && !result->safety_only)
			fail_liveness(run,
				      schedule->fault == OSKR_KIT_NONE
					      ? "on a clean network"
				      : schedule->fault == OSKR_KIT_CRASH
					      ? "after the crash"
					      : "after the heal",
				      now);
		if (run->failed)
			return;
	} else {
		result->liveness_ok = true;
	}
	/* Let messages in flight land before the final checks. */
	oskr_sim_run_for(run->sim, QUIESCE_NS);
	collect(run);
}

static void final_checks(struct kit_run *run)
{
	const struct oskr__kit_options *options = run->options;
	struct oskr__kit_result *result = run->result;
	struct oskr_sim *sim = run->sim;
	char why[256];

	result->safety_ok = oskr_sim_check_safety(sim, why, sizeof(why));
	if (!result->safety_ok)
		fail(run, "safety: %s", why);

	for (uint32_t r = 0; r < options->replica_count; r++) {
		result->executed[r] = oskr_sim_executed(sim, r);
		result->crashed[r] = oskr_sim_is_crashed(sim, r);
		/* Clients here never give up on a request, so each one
		 * executes at most once: more ops than requests means a
		 * retransmission or a duplicate was executed again. */
		if (result->executed[r] > result->issued)
			fail(run, "exactly once: replica %u executed %" PRIu64
				  " ops but the clients issued only %" PRIu64
				  " requests (a retransmitted or duplicated "
				  "request executed twice)",
			     r, result->executed[r], result->issued);
		result->misuse += oskr_sim_counter(sim, (int32_t)r, "sim_misuse");
	}
	for (uint32_t k = 0; k < options->client_count; k++)
		result->misuse += oskr_sim_counter(sim, OSKR_SIM_CLIENT(k),
						   "sim_misuse");
	for (size_t c = 0; c < options->counter_count; c++) {
		const char *name = options->counters[c];
		for (uint32_t r = 0; r < options->replica_count; r++)
			result->counters[c][r] =
				oskr_sim_counter(sim, (int32_t)r, name);
		for (uint32_t k = 0; k < options->client_count; k++)
			result->counters[c][options->replica_count] +=
				oskr_sim_counter(sim, OSKR_SIM_CLIENT(k), name);
	}
	if (result->misuse)
		fail(run, "stage discipline: %" PRIu64 " call(s) of a "
			  "stateful-only service (timer_*, app_*, "
			  "client_complete) from a stateless task; they race "
			  "in oskrd (run with -vv to see which)",
		     result->misuse);

	if (options->check_convergence && result->liveness_ok) {
		uint64_t most = 0;
		for (uint32_t r = 0; r < options->replica_count; r++)
			if (!result->crashed[r] && result->executed[r] > most)
				most = result->executed[r];
		for (uint32_t r = 0; r < options->replica_count; r++)
			if (!result->crashed[r] && result->executed[r] != most)
				fail(run, "convergence: replica %u executed %"
					  PRIu64 " ops, others %" PRIu64
					  " (%.1f s after the last request)",
				     r, result->executed[r], most,
				     seconds(QUIESCE_NS));
	}

	oskr_sim_net_stats(sim, &result->net);
	result->events = oskr_sim_events(sim);
	result->trace_digest = oskr_sim_trace_digest(sim);
}

int oskr__kit_run(const struct oskr__kit_options *options,
		  const struct oskr__kit_schedule *schedule, uint64_t seed,
		  struct oskr__kit_result *result)
{
	memset(result, 0, sizeof(*result));
	struct kit_run run = {
		.options = options,
		.result = result,
		.seed = seed,
		.kv = options->app && strcmp(options->app, "kv") == 0,
	};
	result->safety_only = !oskr__kit_liveness_required(options, schedule);
	run.clients = calloc(options->client_count ? options->client_count : 1,
			     sizeof(*run.clients));
	if (!run.clients) {
		fail(&run, "out of memory");
		return -ENOMEM;
	}
	int ret = start_sim(&run);
	if (ret) {
		free(run.clients);
		return ret;
	}
	run.event_limit = options->max_events;
	run_schedule(&run, schedule);
	final_checks(&run);
	result->passed = !run.failed;
	if (result->passed && result->safety_only && !result->liveness_ok)
		snprintf(result->why, sizeof(result->why),
			 "safety only: %" PRIu64 " of %" PRIu64 " requests "
			 "finished; liveness is not required %s",
			 result->completed, options->requests,
			 options->fault_count == 0 &&
					 schedule->fault != OSKR_KIT_PARTITION
				 ? "(f = 0 tolerates no crash)"
				 : "under the declared fault model (--faults)");
	oskr_sim_destroy(run.sim);
	free(run.clients);
	return 0;
}
