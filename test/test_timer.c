/* SPDX-License-Identifier: MIT */
/* Timers: firing not before the deadline, deadline order, cancel (also of
 * an expired timer whose task is queued), bounds, stop, ids. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/stage.h"
#include "daemon/timer.h"

#define WAIT_BOUND_NS (10ull * 1000 * 1000 * 1000)
#define MS (1000ull * 1000)

static struct oskr_stage *stage;
static struct oskr_timers *timers;

static void nap(void)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 200 * 1000 };

	nanosleep(&ts, NULL);
}

static void setup_with(unsigned ring_size, unsigned max_timers, bool start)
{
	struct oskr_stage_config config = {
		.workers = 2,
		.ring_size = ring_size,
	};

	ck_assert_int_eq(oskr__stage_create(&stage, &config), 0);
	ck_assert_int_eq(oskr__timers_create(&timers, stage, max_timers), 0);
	if (start)
		ck_assert_int_eq(oskr__stage_start(stage), 0);
	ck_assert_int_eq(oskr__timers_start(timers), 0);
}

static void setup(void)
{
	setup_with(1024, 1024, true);
}

/* The documented shutdown order. */
static void teardown(void)
{
	oskr__timers_stop(timers);
	oskr__stage_stop(stage);
	oskr__timers_free(timers);
	oskr__stage_free(stage);
	timers = NULL;
	stage = NULL;
}

/* Bounded wait for *counter >= target; true if reached. */
static bool wait_for(atomic_int *counter, int target)
{
	uint64_t give_up_at = oskr__monotonic_ns() + WAIT_BOUND_NS;

	while (atomic_load(counter) < target) {
		if (oskr__monotonic_ns() > give_up_at)
			return false;
		nap();
	}
	return true;
}

/* ---- fires after the delay, as a stateful task ---- */

struct one_shot {
	atomic_int fired;
	_Atomic uint64_t fired_at;
	atomic_bool was_stateful;
};

static void one_shot_fn(void *a, void *b)
{
	struct one_shot *ctx = a;

	atomic_store(&ctx->fired_at, oskr__monotonic_ns());
	atomic_store(&ctx->was_stateful, oskr__stage_in_stateful());
	atomic_fetch_add(&ctx->fired, 1);
}

START_TEST(test_fires_not_before_deadline)
{
	static struct one_shot ctx;
	const uint64_t delay = 20 * MS;
	uint64_t id = 0, armed_at;

	memset(&ctx, 0, sizeof(ctx));
	armed_at = oskr__monotonic_ns();
	ck_assert_int_eq(oskr__timers_arm(timers, delay, one_shot_fn, &ctx,
					  NULL, &id),
			 0);
	ck_assert_uint_ne(id, 0);
	ck_assert(wait_for(&ctx.fired, 1));
	ck_assert_uint_ge(atomic_load(&ctx.fired_at) - armed_at, delay);
	ck_assert(atomic_load(&ctx.was_stateful));
	ck_assert_uint_eq(oskr__timers_armed(timers), 0);
	/* Fired: cancelling it now is a no-op. */
	ck_assert_int_eq(oskr__timers_cancel(timers, id), -ENOENT);
}
END_TEST

/* ---- deadline order ---- */

#define ORDERED 200

struct ordered {
	uint64_t delay[ORDERED];
	uint64_t armed_before[ORDERED], armed_after[ORDERED];
	int fired_order[ORDERED];
	atomic_int fired;
};

static void ordered_fn(void *a, void *b)
{
	struct ordered *ctx = a;
	int position = atomic_load(&ctx->fired);

	/* Stateful tasks are serial: position is ours alone. */
	ctx->fired_order[position] = (int)(uintptr_t)b;
	atomic_store(&ctx->fired, position + 1);
}

START_TEST(test_fire_in_deadline_order)
{
	static struct ordered ctx;
	uint64_t id;

	memset(&ctx, 0, sizeof(ctx));
	/* Shuffled delays 1 ms apart (fixed seed: reproducible). */
	for (int index = 0; index < ORDERED; index++)
		ctx.delay[index] = 30 * MS + (uint64_t)index * MS;
	srand(12345);
	for (int index = ORDERED - 1; index > 0; index--) {
		int other = rand() % (index + 1);
		uint64_t swap = ctx.delay[index];

		ctx.delay[index] = ctx.delay[other];
		ctx.delay[other] = swap;
	}
	for (int index = 0; index < ORDERED; index++) {
		ctx.armed_before[index] = oskr__monotonic_ns();
		ck_assert_int_eq(oskr__timers_arm(timers, ctx.delay[index],
						  ordered_fn, &ctx,
						  (void *)(uintptr_t)index,
						  &id),
				 0);
		ctx.armed_after[index] = oskr__monotonic_ns();
	}
	ck_assert(wait_for(&ctx.fired, ORDERED));
	/* The true deadline of timer i lies in [before_i, after_i] + delay_i.
	 * Firing i before j is wrong only if j's deadline was surely
	 * earlier; arming takes microseconds, the delays differ by 1 ms, so
	 * any ordering other than by deadline shows up here. */
	for (int earlier = 0; earlier < ORDERED; earlier++) {
		for (int later = earlier + 1; later < ORDERED; later++) {
			int i = ctx.fired_order[earlier];
			int j = ctx.fired_order[later];

			ck_assert_msg(ctx.armed_after[j] + ctx.delay[j] >=
					      ctx.armed_before[i] +
						      ctx.delay[i],
				      "timer %d fired before %d", i, j);
		}
	}
}
END_TEST

/* ---- cancel ---- */

static void count_fn(void *a, void *b)
{
	atomic_fetch_add((atomic_int *)a, 1);
}

struct cancel_before {
	atomic_int victim_fired, sentinel_fired;
	int arm_result, armed_between, cancel_result, second_cancel_result;
	int sentinel_result;
	atomic_int done;
};

/* Runs as a stateful task: even if the thread is descheduled past the
 * victim's deadline between arm and cancel, the victim's expiry task can
 * only queue behind us, and the cancel still wins. */
static void cancel_before_task(void *a, void *b, void *c)
{
	struct cancel_before *ctx = a;
	uint64_t victim, sentinel;

	ctx->arm_result = oskr__timers_arm(timers, 20 * MS, count_fn,
					   &ctx->victim_fired, NULL, &victim);
	ctx->armed_between = (int)oskr__timers_armed(timers);
	ctx->cancel_result = oskr__timers_cancel(timers, victim);
	ctx->second_cancel_result = oskr__timers_cancel(timers, victim);
	/* Armed after the victim with a longer delay: a later deadline. */
	ctx->sentinel_result = oskr__timers_arm(timers, 40 * MS, count_fn,
						&ctx->sentinel_fired, NULL,
						&sentinel);
	atomic_store(&ctx->done, 1);
}

START_TEST(test_cancel_before_fire)
{
	static struct cancel_before ctx;

	memset(&ctx, 0, sizeof(ctx));
	ck_assert_int_eq(oskr__stage_submit_stateful(stage, cancel_before_task,
						     &ctx, NULL, NULL),
			 0);
	ck_assert(wait_for(&ctx.done, 1));
	ck_assert_int_eq(ctx.arm_result, 0);
	ck_assert_int_eq(ctx.armed_between, 1);
	ck_assert_int_eq(ctx.cancel_result, 0);
	ck_assert_int_eq(ctx.second_cancel_result, -ENOENT);
	ck_assert_int_eq(ctx.sentinel_result, 0);
	/* Timers fire in deadline order: once the later sentinel fired,
	 * the cancelled one had its chance. */
	ck_assert(wait_for(&ctx.sentinel_fired, 1));
	ck_assert_int_eq(atomic_load(&ctx.victim_fired), 0);
	ck_assert_uint_eq(oskr__timers_armed(timers), 0);
}
END_TEST

struct queued_cancel {
	uint64_t victim;
	int arm_result;
	atomic_int victim_fired, sentinel_fired;
	atomic_bool saw_queued;
	atomic_int cancel_result;
	atomic_int blocker_done;
	bool stop_timers_instead; /* for the stop variant */
};

/* Stateful task: arms the victim itself (so it cannot expire before we
 * run), waits until the victim's expiry task is queued behind us in the
 * stateful ring, then cancels it (or stops the timers). */
static void queued_blocker(void *a, void *b, void *c)
{
	struct queued_cancel *ctx = a;
	uint64_t give_up_at = oskr__monotonic_ns() + WAIT_BOUND_NS;
	struct oskr_stage_stats stats;

	ctx->arm_result = oskr__timers_arm(timers, 1 * MS, count_fn,
					   &ctx->victim_fired, NULL,
					   &ctx->victim);
	do {
		oskr__stage_stats(stage, &stats);
		if (stats.stateful_queued >= 1) {
			atomic_store(&ctx->saw_queued, true);
			break;
		}
		nap();
	} while (oskr__monotonic_ns() < give_up_at);
	if (ctx->stop_timers_instead)
		oskr__timers_stop(timers);
	else
		atomic_store(&ctx->cancel_result,
			     oskr__timers_cancel(timers, ctx->victim));
	atomic_fetch_add(&ctx->blocker_done, 1);
}

/* Bounded wait that outlasts the blocker's own bound. */
static bool wait_for_blocker(struct queued_cancel *ctx)
{
	return wait_for(&ctx->blocker_done, 1) ||
	       wait_for(&ctx->blocker_done, 1);
}

START_TEST(test_cancel_expired_queued_from_stateful)
{
	static struct queued_cancel ctx;
	uint64_t sentinel;

	memset(&ctx, 0, sizeof(ctx));
	atomic_store(&ctx.cancel_result, 1);
	ck_assert_int_eq(oskr__stage_submit_stateful(stage, queued_blocker,
						     &ctx, NULL, NULL),
			 0);
	ck_assert(wait_for_blocker(&ctx));
	ck_assert_int_eq(ctx.arm_result, 0);
	ck_assert(atomic_load(&ctx.saw_queued));
	ck_assert_int_eq(atomic_load(&ctx.cancel_result), 0);
	/* The victim's task ran (it was queued) but must not have fired;
	 * a later timer firing proves the queue moved past it. */
	ck_assert_int_eq(oskr__timers_arm(timers, 1 * MS, count_fn,
					  &ctx.sentinel_fired, NULL,
					  &sentinel),
			 0);
	ck_assert(wait_for(&ctx.sentinel_fired, 1));
	ck_assert_int_eq(atomic_load(&ctx.victim_fired), 0);
	ck_assert_uint_eq(oskr__timers_armed(timers), 0);
}
END_TEST

/* ---- bounds and ids ---- */

START_TEST(test_enospc_at_bound)
{
	static atomic_int fired;
	uint64_t ids[8], extra;

	atomic_store(&fired, 0);
	for (int index = 0; index < 8; index++)
		ck_assert_int_eq(oskr__timers_arm(timers, 60000 * MS, count_fn,
						  &fired, NULL, &ids[index]),
				 0);
	ck_assert_uint_eq(oskr__timers_armed(timers), 8);
	ck_assert_int_eq(oskr__timers_arm(timers, 1 * MS, count_fn, &fired,
					  NULL, &extra),
			 -ENOSPC);
	ck_assert_int_eq(oskr__timers_cancel(timers, ids[3]), 0);
	ck_assert_int_eq(oskr__timers_arm(timers, 60000 * MS, count_fn,
					  &fired, NULL, &extra),
			 0);
	ck_assert_int_eq(oskr__timers_arm(timers, 1 * MS, count_fn, &fired,
					  NULL, &extra),
			 -ENOSPC);
	ck_assert_int_eq(atomic_load(&fired), 0);
}
END_TEST

static void setup_small(void)
{
	setup_with(1024, 8, true);
}

static int compare_ids(const void *left, const void *right)
{
	uint64_t l = *(const uint64_t *)left, r = *(const uint64_t *)right;

	return l < r ? -1 : l > r;
}

START_TEST(test_ids_unique_nonzero)
{
	static atomic_int fired;
	enum { ROUND = 1000 };
	static uint64_t ids[2 * ROUND];

	atomic_store(&fired, 0);
	ck_assert_int_eq(oskr__timers_cancel(timers, 0), -ENOENT);
	/* Two rounds over the same slots: generations keep ids apart. */
	for (int round = 0; round < 2; round++) {
		for (int index = 0; index < ROUND; index++)
			ck_assert_int_eq(
				oskr__timers_arm(timers, 60000 * MS, count_fn,
						 &fired, NULL,
						 &ids[round * ROUND + index]),
				0);
		if (round == 1)
			break;
		for (int index = 0; index < ROUND; index++)
			ck_assert_int_eq(oskr__timers_cancel(timers,
							     ids[index]),
					 0);
	}
	/* The slots are armed again: stale first-round ids must not
	 * cancel the timers that reuse them. */
	for (int index = 0; index < ROUND; index++)
		ck_assert_int_eq(oskr__timers_cancel(timers, ids[index]),
				 -ENOENT);
	ck_assert_uint_eq(oskr__timers_armed(timers), ROUND);
	for (int index = ROUND; index < 2 * ROUND; index++)
		ck_assert_int_eq(oskr__timers_cancel(timers, ids[index]), 0);
	ck_assert_uint_eq(oskr__timers_armed(timers), 0);
	qsort(ids, 2 * ROUND, sizeof(ids[0]), compare_ids);
	ck_assert_uint_ne(ids[0], 0);
	for (int index = 1; index < 2 * ROUND; index++)
		ck_assert_uint_ne(ids[index], ids[index - 1]);
	ck_assert_int_eq(atomic_load(&fired), 0);
}
END_TEST

/* ---- stop ---- */

struct stop_pending {
	atomic_int fired;
	int arm_errors, arm_after_stop;
	atomic_int done;
};

/* Stateful, so timers that expire before the stop can only have their
 * expiry tasks queued behind us: stop must silence those too. */
static void stop_pending_task(void *a, void *b, void *c)
{
	struct stop_pending *ctx = a;
	uint64_t id;

	for (int index = 0; index < 10; index++)
		if (oskr__timers_arm(timers, (20 + (uint64_t)index) * MS,
				     count_fn, &ctx->fired, NULL, &id))
			ctx->arm_errors++;
	oskr__timers_stop(timers);
	ctx->arm_after_stop = oskr__timers_arm(timers, 1 * MS, count_fn,
					       &ctx->fired, NULL, &id);
	atomic_store(&ctx->done, 1);
}

START_TEST(test_stop_pending_never_fire)
{
	static struct stop_pending ctx;
	struct timespec past_deadlines = { .tv_sec = 0,
					   .tv_nsec = 100 * 1000 * 1000 };

	memset(&ctx, 0, sizeof(ctx));
	ck_assert_int_eq(oskr__stage_submit_stateful(stage, stop_pending_task,
						     &ctx, NULL, NULL),
			 0);
	ck_assert(wait_for(&ctx.done, 1));
	ck_assert_int_eq(ctx.arm_errors, 0);
	ck_assert_int_eq(ctx.arm_after_stop, -ESHUTDOWN);
	/* Let every deadline pass, then drain the stage. */
	nanosleep(&past_deadlines, NULL);
	oskr__stage_stop(stage);
	ck_assert_int_eq(atomic_load(&ctx.fired), 0);
}
END_TEST

/* Stop while an expiry task is already queued in the stage: silenced. */
START_TEST(test_stop_silences_queued_expiry)
{
	static struct queued_cancel ctx;

	memset(&ctx, 0, sizeof(ctx));
	ctx.stop_timers_instead = true;
	ck_assert_int_eq(oskr__stage_submit_stateful(stage, queued_blocker,
						     &ctx, NULL, NULL),
			 0);
	ck_assert(wait_for_blocker(&ctx));
	ck_assert_int_eq(ctx.arm_result, 0);
	ck_assert(atomic_load(&ctx.saw_queued));
	oskr__stage_stop(stage); /* runs the queued expiry task */
	ck_assert_int_eq(atomic_load(&ctx.victim_fired), 0);
}
END_TEST

/* ---- a full stateful ring delays timers, never loses them ---- */

static void setup_unstarted_stage(void)
{
	setup_with(64, 256, false);
}

START_TEST(test_full_ring_delays_not_loses)
{
	static struct ordered ctx;
	enum { MANY = 150 }; /* more than the 64-slot ring holds */
	uint64_t give_up_at = oskr__monotonic_ns() + WAIT_BOUND_NS;
	struct oskr_stage_stats stats;
	uint64_t id;

	memset(&ctx, 0, sizeof(ctx));
	for (int index = 0; index < MANY; index++) {
		ctx.delay[index] = (1 + (uint64_t)index / 10) * MS;
		ctx.armed_before[index] = oskr__monotonic_ns();
		ck_assert_int_eq(oskr__timers_arm(timers, ctx.delay[index],
						  ordered_fn, &ctx,
						  (void *)(uintptr_t)index,
						  &id),
				 0);
		ctx.armed_after[index] = oskr__monotonic_ns();
	}
	/* Nothing consumes yet: wait for the timer thread to hit "full". */
	do {
		oskr__stage_stats(stage, &stats);
		if (stats.rejected_full > 0)
			break;
		nap();
	} while (oskr__monotonic_ns() < give_up_at);
	ck_assert_uint_gt(stats.rejected_full, 0);
	ck_assert_int_eq(atomic_load(&ctx.fired), 0);

	ck_assert_int_eq(oskr__stage_start(stage), 0);
	ck_assert(wait_for(&ctx.fired, MANY));
	for (int earlier = 0; earlier < MANY; earlier++) {
		for (int later = earlier + 1; later < MANY; later++) {
			int i = ctx.fired_order[earlier];
			int j = ctx.fired_order[later];

			ck_assert(ctx.armed_after[j] + ctx.delay[j] >=
				  ctx.armed_before[i] + ctx.delay[i]);
		}
	}
	ck_assert_uint_eq(oskr__timers_armed(timers), 0);
}
END_TEST

static Suite *timer_suite(void)
{
	Suite *suite = suite_create("timer");
	TCase *basic = tcase_create("basic");
	TCase *small = tcase_create("small");
	TCase *full = tcase_create("full");

	tcase_add_checked_fixture(basic, setup, teardown);
	tcase_set_timeout(basic, 60);
	tcase_add_test(basic, test_fires_not_before_deadline);
	tcase_add_test(basic, test_fire_in_deadline_order);
	tcase_add_test(basic, test_cancel_before_fire);
	tcase_add_test(basic, test_cancel_expired_queued_from_stateful);
	tcase_add_test(basic, test_ids_unique_nonzero);
	tcase_add_test(basic, test_stop_pending_never_fire);
	tcase_add_test(basic, test_stop_silences_queued_expiry);
	suite_add_tcase(suite, basic);

	tcase_add_checked_fixture(small, setup_small, teardown);
	tcase_set_timeout(small, 60);
	tcase_add_test(small, test_enospc_at_bound);
	suite_add_tcase(suite, small);

	tcase_add_checked_fixture(full, setup_unstarted_stage, teardown);
	tcase_set_timeout(full, 60);
	tcase_add_test(full, test_full_ring_delays_not_loses);
	suite_add_tcase(suite, full);
	return suite;
}

int main(void)
{
	SRunner *runner = srunner_create(timer_suite());
	int failed;

	srunner_run_all(runner, CK_ENV);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
