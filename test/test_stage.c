/* SPDX-License-Identifier: MIT */
/* The stage worker pool: exclusivity and FIFO order of stateful tasks,
 * parallel stateless tasks, full rings, stop/drain, hooks. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/stage.h"

/* Every wait in this file gives up after this long; none should come
 * close on a healthy run. */
#define WAIT_BOUND_NS (10ull * 1000 * 1000 * 1000)

static uint64_t now_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

static void nap(void)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 50 * 1000 };

	nanosleep(&ts, NULL);
}

static struct oskr_stage *make_stage(unsigned workers, unsigned ring_size)
{
	struct oskr_stage_config config = {
		.workers = workers,
		.ring_size = ring_size,
	};
	struct oskr_stage *stage = NULL;

	ck_assert_int_eq(oskr__stage_create(&stage, &config), 0);
	ck_assert_ptr_nonnull(stage);
	return stage;
}

static void burn_cpu(unsigned rounds)
{
	volatile unsigned sink = 0;

	for (unsigned i = 0; i < rounds; i++)
		sink = sink * 31 + i;
}

/* ---- stateful exclusivity and FIFO under contention ---- */

#define PRODUCERS 3
#define PER_PRODUCER 20000

struct contention {
	struct oskr_stage *stage;
	atomic_int inside;
	atomic_int max_inside;
	atomic_uint order_errors;
	atomic_uint not_stateful;
	_Atomic uint64_t next_expected[PRODUCERS];
	_Atomic uint64_t stateful_ran;
	_Atomic uint64_t stateless_ran;
	_Atomic uint64_t eagain;
	atomic_bool gave_up;
};

struct producer_arg {
	struct contention *ctx;
	uintptr_t producer;
};

static void contention_stateful(void *a, void *b, void *c)
{
	struct contention *ctx = a;
	uintptr_t producer = (uintptr_t)b, sequence = (uintptr_t)c;
	int inside = atomic_fetch_add(&ctx->inside, 1) + 1;
	int seen = atomic_load(&ctx->max_inside);

	while (inside > seen &&
	       !atomic_compare_exchange_weak(&ctx->max_inside, &seen, inside))
		;
	if (!oskr__stage_in_stateful())
		atomic_fetch_add(&ctx->not_stateful, 1);
	/* Widen the window in which a second stateful task would overlap. */
	burn_cpu(50);
	if (atomic_load_explicit(&ctx->next_expected[producer],
				 memory_order_relaxed) != sequence)
		atomic_fetch_add(&ctx->order_errors, 1);
	atomic_store_explicit(&ctx->next_expected[producer], sequence + 1,
			      memory_order_relaxed);
	atomic_fetch_add(&ctx->stateful_ran, 1);
	atomic_fetch_sub(&ctx->inside, 1);
}

static void contention_stateless(void *a, void *b, void *c)
{
	struct contention *ctx = a;

	if (oskr__stage_in_stateful())
		atomic_fetch_add(&ctx->not_stateful, 1);
	burn_cpu(500);
	atomic_fetch_add(&ctx->stateless_ran, 1);
}

/* Submit, retrying while the ring is full; false if the ring stayed full
 * for the whole bound (the workers are stuck). */
static bool submit_retrying(struct contention *ctx, bool stateful,
			    oskr__stage_fn fn, void *a, void *b, void *c)
{
	uint64_t give_up_at = now_ns() + WAIT_BOUND_NS;

	for (;;) {
		int err = stateful ? oskr__stage_submit_stateful(ctx->stage,
								 fn, a, b, c)
				   : oskr__stage_submit_stateless(ctx->stage,
								  fn, a, b, c);

		if (err == 0)
			return true;
		if (err != -EAGAIN || now_ns() > give_up_at)
			return false;
		atomic_fetch_add(&ctx->eagain, 1);
		sched_yield();
	}
}

static void *producer_main(void *arg)
{
	struct producer_arg *producer = arg;
	struct contention *ctx = producer->ctx;

	for (uintptr_t sequence = 0; sequence < PER_PRODUCER; sequence++) {
		if (!submit_retrying(ctx, true, contention_stateful, ctx,
				     (void *)producer->producer,
				     (void *)sequence))
			goto err_gave_up;
		if (sequence % 4 == 0 &&
		    !submit_retrying(ctx, false, contention_stateless, ctx,
				     NULL, NULL))
			goto err_gave_up;
	}
	return NULL;

err_gave_up:
	atomic_store(&ctx->gave_up, true);
	return NULL;
}

START_TEST(test_stateful_exclusive_and_fifo)
{
	static struct contention ctx;
	struct producer_arg args[PRODUCERS];
	pthread_t threads[PRODUCERS];
	struct oskr_stage_stats stats;
	const uint64_t stateless_expected =
		(uint64_t)PRODUCERS * ((PER_PRODUCER + 3) / 4);

	memset(&ctx, 0, sizeof(ctx));
	/* A small ring so producers hit "full" and retry too. */
	ctx.stage = make_stage(4, 1024);
	ck_assert_int_eq(oskr__stage_start(ctx.stage), 0);
	for (int index = 0; index < PRODUCERS; index++) {
		args[index].ctx = &ctx;
		args[index].producer = (uintptr_t)index;
		ck_assert_int_eq(pthread_create(&threads[index], NULL,
						producer_main, &args[index]),
				 0);
	}
	for (int index = 0; index < PRODUCERS; index++)
		pthread_join(threads[index], NULL);
	oskr__stage_stop(ctx.stage);
	oskr__stage_stats(ctx.stage, &stats);

	ck_assert(!atomic_load(&ctx.gave_up));
	ck_assert_int_eq(atomic_load(&ctx.max_inside), 1);
	ck_assert_uint_eq(atomic_load(&ctx.order_errors), 0);
	ck_assert_uint_eq(atomic_load(&ctx.not_stateful), 0);
	for (int index = 0; index < PRODUCERS; index++)
		ck_assert_uint_eq(atomic_load(&ctx.next_expected[index]),
				  PER_PRODUCER);
	ck_assert_uint_eq(atomic_load(&ctx.stateful_ran),
			  (uint64_t)PRODUCERS * PER_PRODUCER);
	ck_assert_uint_eq(atomic_load(&ctx.stateless_ran), stateless_expected);
	ck_assert_uint_eq(stats.stateful_run,
			  (uint64_t)PRODUCERS * PER_PRODUCER);
	ck_assert_uint_eq(stats.stateless_run, stateless_expected);
	ck_assert_uint_eq(stats.rejected_full, atomic_load(&ctx.eagain));
	ck_assert_uint_eq(stats.stateful_queued, 0);
	ck_assert_uint_eq(stats.stateless_queued, 0);
	oskr__stage_free(ctx.stage);
}
END_TEST

/* ---- stateless tasks run in parallel ---- */

struct rendezvous {
	atomic_int inside;
	atomic_int max_inside;
	atomic_int finished;
};

static void rendezvous_task(void *a, void *b, void *c)
{
	struct rendezvous *ctx = a;
	int inside = atomic_fetch_add(&ctx->inside, 1) + 1;
	uint64_t give_up_at = now_ns() + WAIT_BOUND_NS;
	int seen = atomic_load(&ctx->max_inside);

	while (inside > seen &&
	       !atomic_compare_exchange_weak(&ctx->max_inside, &seen, inside))
		;
	/* Wait (bounded) for a second task to be running at the same time;
	 * a serial pool never gets there and the assertion below fails. */
	while (atomic_load(&ctx->max_inside) < 2 && now_ns() < give_up_at)
		nap();
	atomic_fetch_sub(&ctx->inside, 1);
	atomic_fetch_add(&ctx->finished, 1);
}

START_TEST(test_stateless_parallel)
{
	static struct rendezvous ctx;
	struct oskr_stage *stage = make_stage(4, 64);

	memset(&ctx, 0, sizeof(ctx));
	ck_assert_int_eq(oskr__stage_start(stage), 0);
	for (int task = 0; task < 4; task++)
		ck_assert_int_eq(oskr__stage_submit_stateless(
					 stage, rendezvous_task, &ctx, NULL,
					 NULL),
				 0);
	oskr__stage_stop(stage);
	ck_assert_int_eq(atomic_load(&ctx.finished), 4);
	ck_assert_int_ge(atomic_load(&ctx.max_inside), 2);
	oskr__stage_free(stage);
}
END_TEST

/* ---- full ring ---- */

static atomic_int full_ran, full_must_not_run;

static void full_task(void *a, void *b, void *c)
{
	atomic_fetch_add(&full_ran, 1);
}

static void full_rejected_task(void *a, void *b, void *c)
{
	atomic_fetch_add(&full_must_not_run, 1);
}

START_TEST(test_ring_full)
{
	/* Not started yet: nothing drains the rings while we fill them. */
	struct oskr_stage *stage = make_stage(2, 64);
	struct oskr_stage_stats stats;
	int accepted[2] = { 0, 0 }, rejected = 0;

	atomic_store(&full_ran, 0);
	atomic_store(&full_must_not_run, 0);
	for (int stateful = 0; stateful < 2; stateful++) {
		int err = 0;

		for (int attempt = 0; attempt < 128; attempt++) {
			err = stateful ? oskr__stage_submit_stateful(
						 stage, full_task, NULL, NULL,
						 NULL)
				       : oskr__stage_submit_stateless(
						 stage, full_task, NULL, NULL,
						 NULL);
			if (err)
				break;
			accepted[stateful]++;
		}
		ck_assert_int_eq(err, -EAGAIN);
		ck_assert_int_gt(accepted[stateful], 0);
		rejected++;
		/* Still full: these are refused and must never run. */
		for (int attempt = 0; attempt < 3; attempt++) {
			err = stateful ? oskr__stage_submit_stateful(
						 stage, full_rejected_task,
						 NULL, NULL, NULL)
				       : oskr__stage_submit_stateless(
						 stage, full_rejected_task,
						 NULL, NULL, NULL);
			ck_assert_int_eq(err, -EAGAIN);
			rejected++;
		}
	}
	oskr__stage_stats(stage, &stats);
	ck_assert_uint_eq(stats.rejected_full, (uint64_t)rejected);
	ck_assert_uint_eq(stats.stateless_queued, (uint64_t)accepted[0]);
	ck_assert_uint_eq(stats.stateful_queued, (uint64_t)accepted[1]);

	ck_assert_int_eq(oskr__stage_start(stage), 0);
	oskr__stage_stop(stage);
	ck_assert_int_eq(atomic_load(&full_ran), accepted[0] + accepted[1]);
	ck_assert_int_eq(atomic_load(&full_must_not_run), 0);
	oskr__stage_free(stage);
}
END_TEST

/* ---- stop drains, then refuses ---- */

struct drain {
	struct oskr_stage *stage;
	atomic_bool closed_seen;
	atomic_bool blocker_timed_out;
	atomic_int stateless_ran, stateful_ran, drain_children_ran;
	atomic_int probes_accepted;
	atomic_int drain_submit_errors;
};

static void drain_count_stateless(void *a, void *b, void *c)
{
	struct drain *ctx = a;

	burn_cpu(200);
	atomic_fetch_add(&ctx->stateless_ran, 1);
}

static void drain_count_stateful(void *a, void *b, void *c)
{
	struct drain *ctx = a;

	atomic_fetch_add(&ctx->stateful_ran, 1);
}

/* Submitted by a task while stop() drains: resubmits itself @p b times. */
static void drain_child(void *a, void *b, void *c)
{
	struct drain *ctx = a;
	uintptr_t remaining = (uintptr_t)b;

	atomic_fetch_add(&ctx->drain_children_ran, 1);
	if (remaining > 0 &&
	    oskr__stage_submit_stateful(ctx->stage, drain_child, ctx,
					(void *)(remaining - 1), NULL) != 0)
		atomic_fetch_add(&ctx->drain_submit_errors, 1);
}

static void drain_blocker(void *a, void *b, void *c)
{
	struct drain *ctx = a;
	uint64_t give_up_at = now_ns() + WAIT_BOUND_NS;

	/* Hold the token until stop() has closed the stage, so the tasks
	 * queued behind us are drained by stop, not before it. */
	while (!atomic_load(&ctx->closed_seen)) {
		if (now_ns() > give_up_at) {
			atomic_store(&ctx->blocker_timed_out, true);
			return;
		}
		nap();
	}
	if (oskr__stage_submit_stateful(ctx->stage, drain_child, ctx,
					(void *)(uintptr_t)3, NULL) != 0)
		atomic_fetch_add(&ctx->drain_submit_errors, 1);
	if (oskr__stage_submit_stateless(ctx->stage, drain_child, ctx, NULL,
					 NULL) != 0)
		atomic_fetch_add(&ctx->drain_submit_errors, 1);
}

static void noop_task(void *a, void *b, void *c)
{
	struct drain *ctx = a;

	atomic_fetch_add(&ctx->stateless_ran, 1);
}

/* Outside thread: probes until submit says the stage is shut. */
static void *drain_prober(void *arg)
{
	struct drain *ctx = arg;
	uint64_t give_up_at = now_ns() + WAIT_BOUND_NS;

	while (now_ns() < give_up_at) {
		int err = oskr__stage_submit_stateless(ctx->stage, noop_task,
						       ctx, NULL, NULL);

		if (err == 0)
			atomic_fetch_add(&ctx->probes_accepted, 1);
		if (err == -ESHUTDOWN) {
			atomic_store(&ctx->closed_seen, true);
			break;
		}
		nap();
	}
	return NULL;
}

START_TEST(test_stop_drains_then_refuses)
{
	static struct drain ctx;
	pthread_t prober;
	enum { QUEUED = 500 };

	memset(&ctx, 0, sizeof(ctx));
	ctx.stage = make_stage(2, 1024);
	ck_assert_int_eq(oskr__stage_start(ctx.stage), 0);
	ck_assert_int_eq(oskr__stage_submit_stateful(ctx.stage, drain_blocker,
						     &ctx, NULL, NULL),
			 0);
	for (int task = 0; task < QUEUED; task++) {
		ck_assert_int_eq(oskr__stage_submit_stateful(
					 ctx.stage, drain_count_stateful, &ctx,
					 NULL, NULL),
				 0);
		ck_assert_int_eq(oskr__stage_submit_stateless(
					 ctx.stage, drain_count_stateless,
					 &ctx, NULL, NULL),
				 0);
	}
	ck_assert_int_eq(pthread_create(&prober, NULL, drain_prober, &ctx), 0);
	oskr__stage_stop(ctx.stage);
	pthread_join(prober, NULL);

	ck_assert(atomic_load(&ctx.closed_seen));
	ck_assert(!atomic_load(&ctx.blocker_timed_out));
	/* Everything accepted before stop ran ... */
	ck_assert_int_eq(atomic_load(&ctx.stateful_ran), QUEUED);
	ck_assert_int_eq(atomic_load(&ctx.stateless_ran),
			 QUEUED + atomic_load(&ctx.probes_accepted));
	/* ... and so did what tasks submitted during the drain:
	 * a chain of 4 stateful children and 1 stateless one. */
	ck_assert_int_eq(atomic_load(&ctx.drain_submit_errors), 0);
	ck_assert_int_eq(atomic_load(&ctx.drain_children_ran), 5);

	ck_assert_int_eq(oskr__stage_submit_stateful(ctx.stage, noop_task,
						     &ctx, NULL, NULL),
			 -ESHUTDOWN);
	ck_assert_int_eq(oskr__stage_submit_stateless(ctx.stage, noop_task,
						      &ctx, NULL, NULL),
			 -ESHUTDOWN);
	oskr__stage_free(ctx.stage);
}
END_TEST

/* A task that resubmits itself forever cannot keep stop from returning. */
static atomic_int forever_ran;

static void forever_task(void *a, void *b, void *c)
{
	struct oskr_stage *stage = a;

	atomic_fetch_add(&forever_ran, 1);
	oskr__stage_submit_stateful(stage, forever_task, stage, NULL, NULL);
}

START_TEST(test_stop_bounds_resubmission)
{
	struct oskr_stage *stage = make_stage(2, 64);

	atomic_store(&forever_ran, 0);
	ck_assert_int_eq(oskr__stage_start(stage), 0);
	ck_assert_int_eq(oskr__stage_submit_stateful(stage, forever_task,
						     stage, NULL, NULL),
			 0);
	oskr__stage_stop(stage); /* returns: the drain budget runs out */
	ck_assert_int_gt(atomic_load(&forever_ran), 0);
	oskr__stage_free(stage);
}
END_TEST

/* ---- stateful tasks submitting stateful tasks ---- */

#define ROOTS 2000

struct nested {
	struct oskr_stage *stage;
	int roots_seen, children_seen; /* only touched by stateful tasks */
	int root_done[ROOTS];
	atomic_int errors;
};

static void nested_child(void *a, void *b, void *c)
{
	struct nested *ctx = a;
	int index = (int)(uintptr_t)b;

	if (index != ctx->children_seen || !ctx->root_done[index])
		atomic_fetch_add(&ctx->errors, 1);
	ctx->children_seen++;
}

static void nested_root(void *a, void *b, void *c)
{
	struct nested *ctx = a;
	int index = (int)(uintptr_t)b;

	if (index != ctx->roots_seen)
		atomic_fetch_add(&ctx->errors, 1);
	ctx->roots_seen++;
	ctx->root_done[index] = 1;
	if (oskr__stage_submit_stateful(ctx->stage, nested_child, ctx, b,
					NULL) != 0)
		atomic_fetch_add(&ctx->errors, 1);
}

START_TEST(test_nested_stateful_order)
{
	static struct nested ctx;

	memset(&ctx, 0, sizeof(ctx));
	/* The ring holds every root and child at once: no -EAGAIN. */
	ctx.stage = make_stage(4, 8192);
	ck_assert_int_eq(oskr__stage_start(ctx.stage), 0);
	for (int index = 0; index < ROOTS; index++) {
		ck_assert_int_eq(oskr__stage_submit_stateful(
					 ctx.stage, nested_root, &ctx,
					 (void *)(uintptr_t)index, NULL),
				 0);
		/* Keep workers busy with stateless work in between, so
		 * the token moves between workers. */
		ck_assert_int_eq(oskr__stage_submit_stateless(
					 ctx.stage, full_task, NULL, NULL,
					 NULL),
				 0);
		if (index % 256 == 0)
			sched_yield();
	}
	oskr__stage_stop(ctx.stage);
	ck_assert_int_eq(atomic_load(&ctx.errors), 0);
	ck_assert_int_eq(ctx.roots_seen, ROOTS);
	ck_assert_int_eq(ctx.children_seen, ROOTS);
	oskr__stage_free(ctx.stage);
}
END_TEST

/* ---- a stateful flood does not starve stateless work ---- */

struct flood {
	struct oskr_stage *stage;
	atomic_bool stateless_ran;
	atomic_int stateful_ran;
	atomic_int resubmit_errors;
};

/* Keeps the stateful ring non-empty until the stateless task has run
 * (or a bound is hit, which fails the test). */
static void flood_stateful(void *a, void *b, void *c)
{
	struct flood *ctx = a;

	if (atomic_load(&ctx->stateless_ran) ||
	    atomic_fetch_add(&ctx->stateful_ran, 1) >= 1000000)
		return;
	if (oskr__stage_submit_stateful(ctx->stage, flood_stateful, ctx, NULL,
					NULL) != 0)
		atomic_fetch_add(&ctx->resubmit_errors, 1);
}

static void flood_stateless(void *a, void *b, void *c)
{
	struct flood *ctx = a;

	atomic_store(&ctx->stateless_ran, true);
}

START_TEST(test_stateful_flood_lets_stateless_run)
{
	static struct flood ctx;

	memset(&ctx, 0, sizeof(ctx));
	/* One worker: only the token holder itself can run the stateless
	 * task, so it must interleave it with the endless stateful run. */
	ctx.stage = make_stage(1, 64);
	for (int task = 0; task < 8; task++)
		ck_assert_int_eq(oskr__stage_submit_stateful(
					 ctx.stage, flood_stateful, &ctx, NULL,
					 NULL),
				 0);
	ck_assert_int_eq(oskr__stage_submit_stateless(ctx.stage,
						      flood_stateless, &ctx,
						      NULL, NULL),
			 0);
	ck_assert_int_eq(oskr__stage_start(ctx.stage), 0);
	oskr__stage_stop(ctx.stage);
	ck_assert(atomic_load(&ctx.stateless_ran));
	ck_assert_int_lt(atomic_load(&ctx.stateful_ran), 1000000);
	ck_assert_int_eq(atomic_load(&ctx.resubmit_errors), 0);
	oskr__stage_free(ctx.stage);
}
END_TEST

/* ---- one worker; thread-local state; after_batch; heartbeat ---- */

struct single {
	atomic_int stateful_ok, stateless_ok, wrong;
	atomic_int after_batch_calls, after_batch_wrong;
	atomic_int tasks_run;
	atomic_int tasks_run_at_first_flush;
};

static void single_stateful(void *a, void *b, void *c)
{
	struct single *ctx = a;

	if (oskr__stage_in_stateful() && oskr__stage_worker_index() == 0)
		atomic_fetch_add(&ctx->stateful_ok, 1);
	else
		atomic_fetch_add(&ctx->wrong, 1);
	atomic_fetch_add(&ctx->tasks_run, 1);
}

static void single_stateless(void *a, void *b, void *c)
{
	struct single *ctx = a;

	if (!oskr__stage_in_stateful() && oskr__stage_worker_index() == 0)
		atomic_fetch_add(&ctx->stateless_ok, 1);
	else
		atomic_fetch_add(&ctx->wrong, 1);
	atomic_fetch_add(&ctx->tasks_run, 1);
}

static void single_after_batch(void *arg, unsigned worker)
{
	struct single *ctx = arg;
	int expected = -1;

	if (worker != 0 || oskr__stage_worker_index() != 0 ||
	    oskr__stage_in_stateful())
		atomic_fetch_add(&ctx->after_batch_wrong, 1);
	atomic_compare_exchange_strong(&ctx->tasks_run_at_first_flush,
				       &expected,
				       atomic_load(&ctx->tasks_run));
	atomic_fetch_add(&ctx->after_batch_calls, 1);
}

START_TEST(test_one_worker)
{
	static struct single ctx;
	struct oskr_stage_config config = {
		.workers = 1,
		.ring_size = 1024,
		.after_batch = single_after_batch,
		.after_batch_arg = &ctx,
	};
	struct oskr_stage *stage = NULL;
	struct oskr_stage_stats stats;
	enum { EACH = 300 };

	memset(&ctx, 0, sizeof(ctx));
	atomic_store(&ctx.tasks_run_at_first_flush, -1);
	ck_assert_int_eq(oskr__stage_create(&stage, &config), 0);
	ck_assert_int_eq(oskr__stage_worker_index(), -1);
	ck_assert(!oskr__stage_in_stateful());
	ck_assert_int_eq(oskr__stage_start(stage), 0);
	for (int task = 0; task < EACH; task++) {
		ck_assert_int_eq(oskr__stage_submit_stateful(
					 stage, single_stateful, &ctx, NULL,
					 NULL),
				 0);
		ck_assert_int_eq(oskr__stage_submit_stateless(
					 stage, single_stateless, &ctx, NULL,
					 NULL),
				 0);
	}
	oskr__stage_stop(stage);
	oskr__stage_stats(stage, &stats);

	ck_assert_int_eq(atomic_load(&ctx.wrong), 0);
	ck_assert_int_eq(atomic_load(&ctx.stateful_ok), EACH);
	ck_assert_int_eq(atomic_load(&ctx.stateless_ok), EACH);
	ck_assert_uint_eq(stats.stateful_run, EACH);
	ck_assert_uint_eq(stats.stateless_run, EACH);
	ck_assert_uint_gt(stats.heartbeat, 0);
	/* after_batch ran on the worker, and only after tasks had run. */
	ck_assert_int_gt(atomic_load(&ctx.after_batch_calls), 0);
	ck_assert_int_eq(atomic_load(&ctx.after_batch_wrong), 0);
	ck_assert_int_gt(atomic_load(&ctx.tasks_run_at_first_flush), 0);
	oskr__stage_free(stage);
}
END_TEST

START_TEST(test_create_rejects_bad_config)
{
	struct oskr_stage *stage = NULL;
	struct oskr_stage_config config = { .workers = 0, .ring_size = 64 };

	ck_assert_int_eq(oskr__stage_create(&stage, &config), -EINVAL);
	config.workers = 1;
	config.ring_size = 100;
	ck_assert_int_eq(oskr__stage_create(&stage, &config), -EINVAL);
	config.ring_size = 32;
	ck_assert_int_eq(oskr__stage_create(&stage, &config), -EINVAL);
	ck_assert_ptr_null(stage);
}
END_TEST

/* Pinning to a core that does not exist only warns. */
START_TEST(test_pinning_failure_is_harmless)
{
	/* 1000 fits a cpu_set_t but is no core of this machine. */
	static const int cores[] = { 0, 1000 };
	struct oskr_stage_config config = {
		.workers = 2,
		.ring_size = 64,
		.cores = cores,
		.core_count = 2,
	};
	struct oskr_stage *stage = NULL;

	atomic_store(&full_ran, 0);
	ck_assert_int_eq(oskr__stage_create(&stage, &config), 0);
	ck_assert_int_eq(oskr__stage_start(stage), 0);
	ck_assert_int_eq(oskr__stage_submit_stateful(stage, full_task, NULL,
						     NULL, NULL),
			 0);
	oskr__stage_stop(stage);
	ck_assert_int_eq(atomic_load(&full_ran), 1);
	oskr__stage_free(stage);
}
END_TEST

/* ---- inline execution on an idle pool (oskr__stage_submit_stateless_inline) ---- */

/* Waits (bounded) until every worker of @p stage sleeps. */
static void wait_all_asleep(struct oskr_stage *stage, unsigned workers)
{
	uint64_t deadline = now_ns() + WAIT_BOUND_NS;
	struct oskr_stage_stats stats;

	do {
		oskr__stage_stats(stage, &stats);
		if (stats.sleeping == workers)
			return;
		nap();
	} while (now_ns() < deadline);
	ck_abort_msg("workers never went to sleep (%" PRIu64 " of %u)",
		     stats.sleeping, workers);
}

struct inline_probe {
	struct oskr_stage *stage;
	pthread_t caller;
	atomic_int stateless_on_caller, stateless_elsewhere;
	atomic_int stateful_on_caller, stateful_elsewhere, stateful_not_exclusive;
	atomic_int worker_index_seen;
};

static void probe_stateful(void *a, void *b, void *c)
{
	struct inline_probe *p = a;

	if (!oskr__stage_in_stateful())
		atomic_fetch_add(&p->stateful_not_exclusive, 1);
	if (pthread_equal(pthread_self(), p->caller))
		atomic_fetch_add(&p->stateful_on_caller, 1);
	else
		atomic_fetch_add(&p->stateful_elsewhere, 1);
}

/* The stateless half of a "request": it submits the stateful half, as
 * a plugin's receive does. */
static void probe_stateless(void *a, void *b, void *c)
{
	struct inline_probe *p = a;

	atomic_store(&p->worker_index_seen, oskr__stage_worker_index());
	if (pthread_equal(pthread_self(), p->caller))
		atomic_fetch_add(&p->stateless_on_caller, 1);
	else
		atomic_fetch_add(&p->stateless_elsewhere, 1);
	ck_assert_int_eq(oskr__stage_submit_stateful(p->stage, probe_stateful,
						     p, NULL, NULL),
			 0);
}

/* Every worker asleep: the caller runs the task and the stateful task it
 * submitted before submit returns, and no worker is involved. A worker
 * wakes on its own now and then (the 5 ms safety net); a submission that
 * meets one awake is queued instead, so the test tries until it has seen
 * three inline runs (each attempt checked), within a bound. */
START_TEST(test_inline_runs_to_completion_when_idle)
{
	static struct inline_probe p;
	struct oskr_stage *stage = make_stage(2, 64);
	struct oskr_stage_stats stats;

	memset(&p, 0, sizeof(p));
	p.stage = stage;
	p.caller = pthread_self();
	ck_assert_int_eq(oskr__stage_start(stage), 0);
	int inline_rounds = 0, attempts = 0;
	for (; attempts < 50 && inline_rounds < 3; attempts++) {
		int before = atomic_load(&p.stateless_on_caller);
		int elsewhere = atomic_load(&p.stateful_elsewhere);

		wait_all_asleep(stage, 2);
		ck_assert_int_eq(oskr__stage_submit_stateless_inline(
					 stage, probe_stateless, &p, NULL, NULL),
				 0);
		if (atomic_load(&p.stateless_on_caller) == before) {
			/* Met a worker awake: it was queued; let it finish. */
			uint64_t deadline = now_ns() + WAIT_BOUND_NS;
			while (atomic_load(&p.stateful_elsewhere) == elsewhere &&
			       now_ns() < deadline)
				nap();
			continue;
		}
		inline_rounds++;
		/* No waiting: both halves ran inside the call, on it. */
		ck_assert_int_eq(atomic_load(&p.stateless_on_caller),
				 inline_rounds);
		ck_assert_int_eq(atomic_load(&p.stateful_on_caller),
				 inline_rounds);
		ck_assert_int_eq(atomic_load(&p.worker_index_seen), -1);
	}
	ck_assert_int_eq(inline_rounds, 3);
	ck_assert_int_eq(atomic_load(&p.stateful_not_exclusive), 0);
	oskr__stage_stats(stage, &stats);
	ck_assert_uint_eq(stats.inline_runs, 3);
	ck_assert_uint_eq(stats.inline_stateless_run, 3);
	ck_assert_uint_eq(stats.inline_stateful_run, 3);
	ck_assert_uint_eq(stats.stateless_run, (uint64_t)attempts);
	ck_assert_uint_eq(stats.stateful_run, (uint64_t)attempts);
	oskr__stage_free(stage);
}
END_TEST

static atomic_int blocker_release, blocker_running;

static void blocker_task(void *a, void *b, void *c)
{
	uint64_t deadline = now_ns() + WAIT_BOUND_NS;

	atomic_store(&blocker_running, 1);
	while (!atomic_load(&blocker_release) && now_ns() < deadline)
		nap();
}

/* A worker is awake (busy): the task is queued for the workers, the
 * caller does not run it. */
START_TEST(test_inline_queues_when_a_worker_is_awake)
{
	static struct inline_probe p;
	struct oskr_stage *stage = make_stage(2, 64);
	struct oskr_stage_stats stats;
	uint64_t deadline;

	memset(&p, 0, sizeof(p));
	p.stage = stage;
	p.caller = pthread_self();
	atomic_store(&blocker_release, 0);
	atomic_store(&blocker_running, 0);
	ck_assert_int_eq(oskr__stage_start(stage), 0);
	ck_assert_int_eq(oskr__stage_submit_stateless(stage, blocker_task,
						      NULL, NULL, NULL),
			 0);
	deadline = now_ns() + WAIT_BOUND_NS;
	while (!atomic_load(&blocker_running) && now_ns() < deadline)
		nap();
	ck_assert(atomic_load(&blocker_running));
	ck_assert_int_eq(oskr__stage_submit_stateless_inline(
				 stage, probe_stateless, &p, NULL, NULL),
			 0);
	ck_assert_int_eq(atomic_load(&p.stateless_on_caller), 0);
	atomic_store(&blocker_release, 1);
	deadline = now_ns() + WAIT_BOUND_NS;
	while (atomic_load(&p.stateful_elsewhere) < 1 && now_ns() < deadline)
		nap();
	ck_assert_int_eq(atomic_load(&p.stateless_elsewhere), 1);
	ck_assert_int_eq(atomic_load(&p.stateful_elsewhere), 1);
	ck_assert_int_ge(atomic_load(&p.worker_index_seen), 0);
	oskr__stage_stats(stage, &stats);
	ck_assert_uint_eq(stats.inline_runs, 0);
	oskr__stage_free(stage);
}
END_TEST

/* A chain longer than the inline budget: the caller hands the rest to
 * the workers; every link runs exactly once and in order. */
#define CHAIN_LENGTH 500
static atomic_int chain_next, chain_wrong;
static struct oskr_stage *chain_stage;

static void chain_link(void *a, void *b, void *c)
{
	intptr_t index = (intptr_t)a;

	if (atomic_load(&chain_next) != index || !oskr__stage_in_stateful())
		atomic_fetch_add(&chain_wrong, 1);
	atomic_store(&chain_next, (int)index + 1);
	if (index + 1 < CHAIN_LENGTH)
		ck_assert_int_eq(oskr__stage_submit_stateful(
					 chain_stage, chain_link,
					 (void *)(index + 1), NULL, NULL),
				 0);
}

static void chain_start(void *a, void *b, void *c)
{
	ck_assert_int_eq(oskr__stage_submit_stateful(chain_stage, chain_link,
						     (void *)0, NULL, NULL),
			 0);
}

START_TEST(test_inline_hands_long_chains_to_workers)
{
	struct oskr_stage_stats stats;
	int attempt = 0;

	/* As above: retried when the submission met a worker awake. */
	do {
		uint64_t deadline;

		chain_stage = make_stage(2, 64);
		atomic_store(&chain_next, 0);
		atomic_store(&chain_wrong, 0);
		ck_assert_int_eq(oskr__stage_start(chain_stage), 0);
		wait_all_asleep(chain_stage, 2);
		ck_assert_int_eq(oskr__stage_submit_stateless_inline(
					 chain_stage, chain_start, NULL, NULL,
					 NULL),
				 0);
		deadline = now_ns() + WAIT_BOUND_NS;
		while (atomic_load(&chain_next) < CHAIN_LENGTH &&
		       now_ns() < deadline)
			nap();
		/* Every link ran once, in order, exclusively. */
		ck_assert_int_eq(atomic_load(&chain_next), CHAIN_LENGTH);
		ck_assert_int_eq(atomic_load(&chain_wrong), 0);
		oskr__stage_stats(chain_stage, &stats);
		ck_assert_uint_eq(stats.stateful_run, CHAIN_LENGTH);
		/* The caller ran at most its budget; the workers the rest. */
		ck_assert_uint_le(stats.inline_stateless_run +
					  stats.inline_stateful_run,
				  OSKR_STAGE_INLINE_BUDGET);
		oskr__stage_free(chain_stage);
	} while (stats.inline_runs == 0 && ++attempt < 20);
	ck_assert_uint_eq(stats.inline_runs, 1);
	ck_assert_uint_gt(stats.inline_stateful_run, 0);
}
END_TEST

/* Inline and queued submissions from several threads at once: stateful
 * tasks stay exclusive and each producer's stay in its order. */
#define MIXED_PRODUCERS 3
#define MIXED_EACH 3000
struct mixed {
	struct oskr_stage *stage;
	atomic_int in_stateful, overlap, out_of_order;
	int last[MIXED_PRODUCERS]; /* only touched in stateful tasks */
	atomic_int done;
};
static struct mixed mixed;

static void mixed_stateful(void *a, void *b, void *c)
{
	intptr_t producer = (intptr_t)a, seq = (intptr_t)b;

	if (atomic_fetch_add(&mixed.in_stateful, 1) != 0)
		atomic_fetch_add(&mixed.overlap, 1);
	if (mixed.last[producer] + 1 != seq)
		atomic_fetch_add(&mixed.out_of_order, 1);
	mixed.last[producer] = (int)seq;
	atomic_fetch_sub(&mixed.in_stateful, 1);
	atomic_fetch_add(&mixed.done, 1);
}

static void mixed_stateless(void *a, void *b, void *c)
{
	atomic_fetch_add(&mixed.done, 1);
}

static void *mixed_producer(void *arg)
{
	intptr_t producer = (intptr_t)arg;
	uint64_t deadline = now_ns() + WAIT_BOUND_NS;

	for (intptr_t seq = 1; seq <= MIXED_EACH; seq++) {
		while (oskr__stage_submit_stateful(mixed.stage, mixed_stateful,
						   (void *)producer,
						   (void *)seq, NULL) == -EAGAIN &&
		       now_ns() < deadline)
			sched_yield();
		while (oskr__stage_submit_stateless_inline(
			       mixed.stage, mixed_stateless, NULL, NULL,
			       NULL) == -EAGAIN &&
		       now_ns() < deadline)
			sched_yield();
		if (seq % 64 == 0)
			nap(); /* let the workers fall asleep now and then */
	}
	return NULL;
}

START_TEST(test_inline_keeps_stateful_order_and_exclusion)
{
	pthread_t threads[MIXED_PRODUCERS];
	struct oskr_stage_stats stats;

	memset(&mixed, 0, sizeof(mixed));
	mixed.stage = make_stage(2, 1024);
	ck_assert_int_eq(oskr__stage_start(mixed.stage), 0);
	for (intptr_t i = 0; i < MIXED_PRODUCERS; i++)
		ck_assert_int_eq(pthread_create(&threads[i], NULL,
						mixed_producer, (void *)i),
				 0);
	for (int i = 0; i < MIXED_PRODUCERS; i++)
		pthread_join(threads[i], NULL);
	oskr__stage_stop(mixed.stage);
	ck_assert_int_eq(atomic_load(&mixed.done),
			 2 * MIXED_PRODUCERS * MIXED_EACH);
	ck_assert_int_eq(atomic_load(&mixed.overlap), 0);
	ck_assert_int_eq(atomic_load(&mixed.out_of_order), 0);
	for (int i = 0; i < MIXED_PRODUCERS; i++)
		ck_assert_int_eq(mixed.last[i], MIXED_EACH);
	oskr__stage_stats(mixed.stage, &stats);
	ck_assert_uint_eq(stats.stateful_run, MIXED_PRODUCERS * MIXED_EACH);
	oskr__stage_free(mixed.stage);
}
END_TEST

static atomic_int after_stop_ran;

static void after_stop_task(void *a, void *b, void *c)
{
	atomic_fetch_add(&after_stop_ran, 1);
}

START_TEST(test_inline_refused_after_stop)
{
	struct oskr_stage *stage = make_stage(1, 64);

	atomic_store(&after_stop_ran, 0);
	ck_assert_int_eq(oskr__stage_start(stage), 0);
	oskr__stage_stop(stage);
	ck_assert_int_eq(oskr__stage_submit_stateless_inline(
				 stage, after_stop_task, NULL, NULL, NULL),
			 -ESHUTDOWN);
	ck_assert_int_eq(atomic_load(&after_stop_ran), 0);
	oskr__stage_free(stage);
}
END_TEST

static Suite *stage_suite(void)
{
	Suite *suite = suite_create("stage");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_create_rejects_bad_config);
	tcase_add_test(tc, test_one_worker);
	tcase_add_test(tc, test_ring_full);
	tcase_add_test(tc, test_stateless_parallel);
	tcase_add_test(tc, test_stateful_exclusive_and_fifo);
	tcase_add_test(tc, test_nested_stateful_order);
	tcase_add_test(tc, test_stateful_flood_lets_stateless_run);
	tcase_add_test(tc, test_stop_drains_then_refuses);
	tcase_add_test(tc, test_stop_bounds_resubmission);
	tcase_add_test(tc, test_pinning_failure_is_harmless);
	tcase_add_test(tc, test_inline_runs_to_completion_when_idle);
	tcase_add_test(tc, test_inline_queues_when_a_worker_is_awake);
	tcase_add_test(tc, test_inline_hands_long_chains_to_workers);
	tcase_add_test(tc, test_inline_keeps_stateful_order_and_exclusion);
	tcase_add_test(tc, test_inline_refused_after_stop);
	suite_add_tcase(suite, tc);
	return suite;
}

int main(void)
{
	SRunner *runner = srunner_create(stage_suite());
	int failed;

	srunner_run_all(runner, CK_ENV);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
