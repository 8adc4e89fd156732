/* SPDX-License-Identifier: MIT */
/*
 * The stage worker pool. See stage.h for the model and docs/stage.md for
 * the reasoning behind the worker loop, the ordering guarantees and the
 * idle policy.
 *
 * Threads: submit_* from any thread; start/stop/free from one control
 * thread that is not a worker (stop from a worker closes the stage but
 * cannot join itself: it returns and free() joins later).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_setaffinity_np */
#endif
#include "stage.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ck_pr.h>
#include <ck_ring.h>

#include "log.h"

/* Stateful tasks a token holder runs before giving the token back and
 * letting one stateless task through: bounds stateless latency under a
 * stateful flood, and amortises the token CAS. */
#define STAGE_STATEFUL_BATCH 32
/* Tasks a worker runs between two after_batch calls while it stays busy,
 * so a transport's tx batch is flushed even under constant load. */
#define STAGE_FLUSH_EVERY 32
/* Empty polls (each with a pause) before a worker sleeps: a burst that
 * arrives within a few microseconds finds the worker awake. */
#define STAGE_IDLE_SPINS 256
/* Polls for an earlier producer's commit before yielding the CPU to it
 * (stage_ring_enqueue): a commit is a few stores away unless that
 * producer was preempted. */
#define STAGE_COMMIT_SPINS 64
/* Safety net only: wake-ups are signalled, this bounds the damage of a
 * bug in that logic (and lets the heartbeat advance while idle). */
#ifndef OSKR_STAGE_SLEEP_NS
#define OSKR_STAGE_SLEEP_NS (5 * 1000 * 1000L)
#endif
#define STAGE_SLEEP_NS OSKR_STAGE_SLEEP_NS
#define STAGE_MAX_WORKERS 1024u
#define STAGE_MAX_RING (1u << 24)
/* Submissions made by running tasks after stop() began: they still run,
 * up to this many per ring slot, so a task that resubmits itself forever
 * cannot keep stop() from finishing. */
#define STAGE_DRAIN_BUDGET_PER_SLOT 4

/* gate: bit 31 = closed (stop began), low bits = non-worker submitters
 * currently inside submit. stop() closes and waits for the count to drop
 * to zero, so a submit that returned 0 has its task in a ring before the
 * workers look for the last time. */
#define STAGE_GATE_CLOSED 0x80000000u

/* ThreadSanitizer cannot see ck_ring's synchronisation (inline asm), so
 * under TSan the ring's own slot accesses are hidden and the hand-off is
 * declared instead: the producer releases before publishing, the consumer
 * acquires after taking the task. Without this every task argument would
 * look like a race. No code at all in normal builds. */
#if defined(__SANITIZE_THREAD__)
#define STAGE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STAGE_TSAN 1
#endif
#endif
#ifdef STAGE_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
#define stage_tsan_release(addr) __tsan_release(addr)
#define stage_tsan_acquire(addr) __tsan_acquire(addr)
#define stage_tsan_hide_begin() __tsan_ignore_thread_begin()
#define stage_tsan_hide_end() __tsan_ignore_thread_end()
#else
#define stage_tsan_release(addr) ((void)(addr))
#define stage_tsan_acquire(addr) ((void)(addr))
#define stage_tsan_hide_begin() ((void)0)
#define stage_tsan_hide_end() ((void)0)
#endif

struct stage_task {
	oskr__stage_fn fn;
	void *a, *b, *c;
};
CK_RING_PROTOTYPE(stage_task, stage_task)

struct stage_worker {
	/* Written only by the owning worker (relaxed), read by stats():
	 * one cache line per worker so counting is free of contention. */
	_Alignas(64) _Atomic uint64_t stateless_run;
	_Atomic uint64_t stateful_run;
	_Atomic uint64_t heartbeat;
	struct oskr_stage *stage;
	pthread_t thread;
	unsigned index;
};

struct oskr_stage {
	_Alignas(64) struct ck_ring stateless_ring;
	_Alignas(64) struct ck_ring stateful_ring;
	_Alignas(64) atomic_int state_token; /* 1 while a worker holds it */
	_Alignas(64) atomic_uint gate;
	_Alignas(64) atomic_uint sleepers;
	atomic_bool wake_pending; /* a signal is on its way to a sleeper */
	_Alignas(64) atomic_long drain_budget;
	_Atomic uint64_t rejected_full;
	/* Tasks run inline by outside threads, and how often they ran one;
	 * several rx threads may add at once: atomic adds. */
	_Atomic uint64_t inline_stateless_run, inline_stateful_run;
	_Atomic uint64_t inline_runs;

	struct stage_task *stateless_buf, *stateful_buf;
	struct stage_worker *workers;
	unsigned worker_count, ring_size;
	int *cores;
	size_t core_count;
	void (*after_batch)(void *arg, unsigned worker);
	void *after_batch_arg;

	pthread_mutex_t sleep_lock;
	pthread_cond_t sleep_cond;
	unsigned started; /* threads created */
	bool joined;
};

static _Thread_local struct oskr_stage *tls_stage;
static _Thread_local int tls_worker_index = -1;
static _Thread_local bool tls_in_stateful;
/* Set while an outside thread runs tasks inline: what those tasks submit
 * is queued without waking a worker, because this thread runs it next. */
static _Thread_local bool tls_inline;

int oskr__stage_worker_index(void)
{
	return tls_worker_index;
}

bool oskr__stage_in_stateful(void)
{
	return tls_in_stateful;
}

static void counter_bump(_Atomic uint64_t *counter, uint64_t by)
{
	/* Single writer: a load and a store, no locked RMW. */
	atomic_store_explicit(counter,
			      atomic_load_explicit(counter,
						   memory_order_relaxed) + by,
			      memory_order_relaxed);
}

static bool is_power_of_two(unsigned value)
{
	return value != 0 && (value & (value - 1)) == 0;
}

int oskr__stage_create(struct oskr_stage **out,
		       const struct oskr_stage_config *config)
{
	struct oskr_stage *stage;
	pthread_condattr_t cond_attr;
	void *memory;
	int err;

	if (!config || config->workers < 1 ||
	    config->workers > STAGE_MAX_WORKERS ||
	    !is_power_of_two(config->ring_size) || config->ring_size < 64 ||
	    config->ring_size > STAGE_MAX_RING ||
	    (config->cores && config->core_count == 0))
		return -EINVAL;

	if (posix_memalign(&memory, 64, sizeof(*stage)))
		return -ENOMEM;
	stage = memory;
	memset(stage, 0, sizeof(*stage));
	stage->worker_count = config->workers;
	stage->ring_size = config->ring_size;
	stage->after_batch = config->after_batch;
	stage->after_batch_arg = config->after_batch_arg;
	atomic_init(&stage->state_token, 0);
	atomic_init(&stage->gate, 0);
	atomic_init(&stage->sleepers, 0);
	atomic_init(&stage->wake_pending, false);
	atomic_init(&stage->drain_budget, 0);
	atomic_init(&stage->rejected_full, 0);

	err = -ENOMEM;
	if (posix_memalign(&memory, 64,
			   sizeof(struct stage_task) * config->ring_size))
		goto err_stage;
	stage->stateless_buf = memory;
	if (posix_memalign(&memory, 64,
			   sizeof(struct stage_task) * config->ring_size))
		goto err_stateless;
	stage->stateful_buf = memory;
	if (posix_memalign(&memory, 64,
			   sizeof(struct stage_worker) * config->workers))
		goto err_stateful;
	stage->workers = memory;
	memset(stage->workers, 0,
	       sizeof(struct stage_worker) * config->workers);
	for (unsigned index = 0; index < config->workers; index++) {
		stage->workers[index].stage = stage;
		stage->workers[index].index = index;
	}
	if (config->cores) {
		stage->cores = calloc(config->core_count, sizeof(int));
		if (!stage->cores)
			goto err_workers;
		memcpy(stage->cores, config->cores,
		       config->core_count * sizeof(int));
		stage->core_count = config->core_count;
	}
	ck_ring_init(&stage->stateless_ring, config->ring_size);
	ck_ring_init(&stage->stateful_ring, config->ring_size);

	err = -pthread_mutex_init(&stage->sleep_lock, NULL);
	if (err)
		goto err_cores;
	err = -pthread_condattr_init(&cond_attr);
	if (err)
		goto err_mutex;
	/* CLOCK_MONOTONIC: the safety-net timeout must not jump with the
	 * wall clock. */
	pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC);
	err = -pthread_cond_init(&stage->sleep_cond, &cond_attr);
	pthread_condattr_destroy(&cond_attr);
	if (err)
		goto err_mutex;

	*out = stage;
	return 0;

err_mutex:
	pthread_mutex_destroy(&stage->sleep_lock);
err_cores:
	free(stage->cores);
err_workers:
	free(stage->workers);
err_stateful:
	free(stage->stateful_buf);
err_stateless:
	free(stage->stateless_buf);
err_stage:
	free(stage);
	return err;
}

static bool stage_ring_empty(const struct ck_ring *ring)
{
	return ck_ring_size(ring) == 0;
}

static bool stage_token_free(struct oskr_stage *stage)
{
	return atomic_load_explicit(&stage->state_token,
				    memory_order_relaxed) == 0;
}

static bool stage_token_try_take(struct oskr_stage *stage)
{
	int expected = 0;

	/* Test before test-and-set: idle workers poll this, keep the line
	 * shared until it can actually be taken. */
	if (!stage_token_free(stage))
		return false;
	return atomic_compare_exchange_strong_explicit(
		&stage->state_token, &expected, 1, memory_order_acquire,
		memory_order_relaxed);
}

static void stage_token_release(struct oskr_stage *stage)
{
	atomic_store_explicit(&stage->state_token, 0, memory_order_release);
}

/* Work this worker could do right now. A stateful backlog whose token is
 * held is not work for us: its holder re-checks the ring after releasing
 * the token (stage_run_stateful), so sleeping here strands nothing. */
static bool stage_has_work(struct oskr_stage *stage)
{
	if (!stage_ring_empty(&stage->stateless_ring))
		return true;
	return !stage_ring_empty(&stage->stateful_ring) &&
	       stage_token_free(stage);
}

static bool stage_should_exit(struct oskr_stage *stage)
{
	/* Closed, no outside submitter mid-enqueue, and nothing queued.
	 * Tasks still running on other workers may submit more: those
	 * workers are alive and find their own submissions. */
	return atomic_load(&stage->gate) == STAGE_GATE_CLOSED &&
	       stage_ring_empty(&stage->stateless_ring) &&
	       stage_ring_empty(&stage->stateful_ring);
}

static bool stage_dequeue_stateful(struct oskr_stage *stage,
				   struct stage_task *task)
{
	bool taken;

	/* Single consumer while the token is held, so the cheaper
	 * single-consumer dequeue is safe; the token's acquire and
	 * release order the consumer index between holders. */
	stage_tsan_hide_begin();
	taken = ck_ring_dequeue_mpsc_stage_task(&stage->stateful_ring,
						stage->stateful_buf, task);
	stage_tsan_hide_end();
	if (taken)
		stage_tsan_acquire(&stage->stateful_ring);
	return taken;
}

static unsigned stage_run_stateful(struct oskr_stage *stage,
				   struct stage_worker *worker,
				   unsigned max_batch)
{
	struct stage_task task;
	unsigned ran = 0;

	/* At most two rounds, together at most max_batch tasks: the second
	 * only picks up a task enqueued between our last empty dequeue and
	 * the token release, which its producer's worker saw as "token
	 * held" and left to us. */
	for (int round = 0; round < 2; round++) {
		unsigned batch = ran;

		if (stage_ring_empty(&stage->stateful_ring))
			break;
		if (!stage_token_try_take(stage))
			break;
		tls_in_stateful = true;
		while (batch < max_batch &&
		       stage_dequeue_stateful(stage, &task)) {
			task.fn(task.a, task.b, task.c);
			batch++;
		}
		tls_in_stateful = false;
		stage_token_release(stage);
		counter_bump(&worker->stateful_run, batch - ran);
		ran = batch;
		if (batch == max_batch)
			break; /* let stateless work through first */
	}
	return ran;
}

static bool stage_run_one_stateless(struct oskr_stage *stage,
				    struct stage_worker *worker)
{
	struct stage_task task;
	bool taken;

	stage_tsan_hide_begin();
	taken = ck_ring_dequeue_mpmc_stage_task(&stage->stateless_ring,
						stage->stateless_buf, &task);
	stage_tsan_hide_end();
	if (!taken)
		return false;
	stage_tsan_acquire(&stage->stateless_ring);
	task.fn(task.a, task.b, task.c);
	counter_bump(&worker->stateless_run, 1);
	return true;
}

static void stage_wake_one(struct oskr_stage *stage);

static void stage_sleep(struct oskr_stage *stage, struct stage_worker *worker)
{
	struct timespec deadline;
	bool woke_to_work;

	/* Announce, then re-check under the lock: a producer either sees
	 * the announcement (and signals under the same lock) or its task
	 * is visible to the check below (Dekker: both sides fence). The
	 * fences are CK's, matching the ring's own ck_pr accesses. */
	atomic_fetch_add(&stage->sleepers, 1);
	ck_pr_fence_memory();
	pthread_mutex_lock(&stage->sleep_lock);
	while (!(woke_to_work = stage_has_work(stage)) &&
	       !stage_should_exit(stage)) {
		/* Cleared under the lock right before waiting: a producer
		 * that sets it from now on signals only once we wait. */
		atomic_store_explicit(&stage->wake_pending, false,
				      memory_order_relaxed);
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += STAGE_SLEEP_NS / 1000000000L;
		deadline.tv_nsec += STAGE_SLEEP_NS % 1000000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&stage->sleep_cond, &stage->sleep_lock,
				       &deadline);
		/* The signal in flight (if any) has landed: let the next
		 * producer wake another sleeper. */
		atomic_store_explicit(&stage->wake_pending, false,
				      memory_order_relaxed);
		counter_bump(&worker->heartbeat, 1);
	}
	pthread_mutex_unlock(&stage->sleep_lock);
	atomic_fetch_sub(&stage->sleepers, 1);
	/* Producers skipped signalling while our wake-up was pending: if
	 * more than we can take is queued, pass the wake-up on. */
	if (woke_to_work && ck_ring_size(&stage->stateless_ring) > 1)
		stage_wake_one(stage);
}

static void stage_wake_one(struct oskr_stage *stage)
{
	/* Pairs with the fence in stage_sleep: our enqueue (the ring's
	 * p_tail store) is ordered before this load of the sleeper count.
	 * On x86 this is the one mfence of the enqueue path. */
	ck_pr_fence_store_load();
	if (atomic_load_explicit(&stage->sleepers, memory_order_relaxed) == 0)
		return;
	/* One signal in flight at a time: while a woken sleeper has not
	 * run yet, further producers skip the mutex (it would otherwise
	 * be taken on every submit while anyone sleeps). The sleeper
	 * clears the flag under the lock before it waits, so a flag left
	 * set by a signal nobody received cannot outlive the next wait. */
	if (atomic_load_explicit(&stage->wake_pending, memory_order_relaxed) ||
	    atomic_exchange_explicit(&stage->wake_pending, true,
				     memory_order_relaxed))
		return;
	pthread_mutex_lock(&stage->sleep_lock);
	pthread_cond_signal(&stage->sleep_cond);
	pthread_mutex_unlock(&stage->sleep_lock);
}

static void stage_wake_all(struct oskr_stage *stage)
{
	pthread_mutex_lock(&stage->sleep_lock);
	pthread_cond_broadcast(&stage->sleep_cond);
	pthread_mutex_unlock(&stage->sleep_lock);
}

static void stage_worker_pin(struct oskr_stage *stage, unsigned index)
{
	cpu_set_t set;
	int core, err;

	if (!stage->cores)
		return;
	core = stage->cores[index % stage->core_count];
	if (core < 0 || core >= CPU_SETSIZE) {
		OSKR_WARN("stage: worker %u: core %d out of range, not pinned",
			  index, core);
		return;
	}
	CPU_ZERO(&set);
	CPU_SET(core, &set);
	err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (err)
		OSKR_WARN("stage: worker %u: cannot pin to core %d: %s", index,
			  core, strerror(err));
}

static void stage_flush(struct oskr_stage *stage, unsigned index)
{
	if (stage->after_batch)
		stage->after_batch(stage->after_batch_arg, index);
}

static void *stage_worker_main(void *arg)
{
	struct stage_worker *worker = arg;
	struct oskr_stage *stage = worker->stage;
	unsigned since_flush = 0, idle_spins = 0;

	tls_stage = stage;
	tls_worker_index = (int)worker->index;
	stage_worker_pin(stage, worker->index);

	for (;;) {
		unsigned ran;

		counter_bump(&worker->heartbeat, 1);
		/* Stateful first (it is the serial bottleneck), then one
		 * stateless task even if the token holder could go on. */
		ran = stage_run_stateful(stage, worker, STAGE_STATEFUL_BATCH);
		if (stage_run_one_stateless(stage, worker))
			ran++;
		if (ran) {
			idle_spins = 0;
			since_flush += ran;
			if (since_flush >= STAGE_FLUSH_EVERY) {
				stage_flush(stage, worker->index);
				since_flush = 0;
			}
			continue;
		}
		if (since_flush) {
			/* Out of work: flush before spinning or sleeping;
			 * then look again, the hook may have queued tasks. */
			stage_flush(stage, worker->index);
			since_flush = 0;
			continue;
		}
		if (stage_should_exit(stage)) {
			/* Peers sleeping behind a token we held would
			 * otherwise notice only at their safety timeout. */
			if (atomic_load(&stage->sleepers))
				stage_wake_all(stage);
			break;
		}
		if (idle_spins < STAGE_IDLE_SPINS) {
			idle_spins++;
			ck_pr_stall();
			continue;
		}
		stage_sleep(stage, worker);
		idle_spins = 0;
	}

	tls_worker_index = -1;
	tls_stage = NULL;
	return NULL;
}

int oskr__stage_start(struct oskr_stage *stage)
{
	int err;

	if (stage->started || atomic_load(&stage->gate) & STAGE_GATE_CLOSED)
		return -EINVAL;
	for (unsigned index = 0; index < stage->worker_count; index++) {
		err = -pthread_create(&stage->workers[index].thread, NULL,
				      stage_worker_main,
				      &stage->workers[index]);
		if (err) {
			OSKR_ERROR("stage: cannot start worker %u: %s", index,
				   strerror(-err));
			/* The started workers drain what is queued and
			 * exit; free() must not run tasks twice. */
			oskr__stage_stop(stage);
			return err;
		}
		stage->started++;
	}
	return 0;
}

static void stage_discard(struct oskr_stage *stage)
{
	unsigned dropped = ck_ring_size(&stage->stateless_ring) +
			   ck_ring_size(&stage->stateful_ring);

	if (dropped)
		OSKR_DEBUG("stage: never started, %u queued tasks dropped",
			   dropped);
	ck_ring_init(&stage->stateless_ring, stage->ring_size);
	ck_ring_init(&stage->stateful_ring, stage->ring_size);
}

static void stage_join(struct oskr_stage *stage)
{
	for (unsigned index = 0; index < stage->started; index++)
		pthread_join(stage->workers[index].thread, NULL);
	stage->joined = true;
}

void oskr__stage_stop(struct oskr_stage *stage)
{
	if (!(atomic_load(&stage->gate) & STAGE_GATE_CLOSED)) {
		atomic_store(&stage->drain_budget,
			     (long)stage->ring_size *
				     STAGE_DRAIN_BUDGET_PER_SLOT);
		atomic_fetch_or(&stage->gate, STAGE_GATE_CLOSED);
	}
	/* Outside submitters that passed the gate before it closed are a
	 * few instructions from having enqueued; wait for them so the
	 * workers' final emptiness check sees their tasks. */
	while (atomic_load(&stage->gate) != STAGE_GATE_CLOSED)
		sched_yield();

	if (stage->started == 0) {
		stage_discard(stage);
		return;
	}
	stage_wake_all(stage);
	if (tls_stage == stage) {
		/* Joining ourselves would deadlock. The workers drain and
		 * exit on their own; free() (from another thread) joins. */
		OSKR_WARN("stage: stop called from worker %d; closed but not "
			  "joined, call stop from a non-worker thread",
			  tls_worker_index);
		return;
	}
	if (!stage->joined)
		stage_join(stage);
}

void oskr__stage_free(struct oskr_stage *stage)
{
	if (!stage)
		return;
	oskr__stage_stop(stage);
	if (stage->started && !stage->joined)
		stage_join(stage); /* stop was called from a worker */
	pthread_cond_destroy(&stage->sleep_cond);
	pthread_mutex_destroy(&stage->sleep_lock);
	free(stage->cores);
	free(stage->workers);
	free(stage->stateful_buf);
	free(stage->stateless_buf);
	free(stage);
}

/*
 * ck_ring's multi-producer enqueue, with one change: the commit step.
 * Producers reserve slots in order and must publish (advance p_tail) in
 * the same order, so ck's commit spins until every earlier reservation is
 * published. A producer preempted between its reserve and its commit --
 * routine when workers, rx and timer threads outnumber the cores -- then
 * keeps every later producer spinning for a whole time slice (measured: a
 * closed stateless/stateful loop on 2 busy cores spent 97% of its CPU in
 * that spin). Same protocol as ck_ring_enqueue_commit_mpmc, but the wait
 * yields the CPU after a short spin, ideally to the preempted producer.
 */
static bool stage_ring_enqueue(struct ck_ring *ring, struct stage_task *buffer,
			       const struct stage_task *task)
{
	struct stage_task *slot;
	unsigned int ticket, spins = 0;

	slot = ck_ring_enqueue_reserve_mpmc_stage_task(ring, buffer, &ticket);
	if (!slot)
		return false; /* full */
	*slot = *task;
	while (ck_pr_load_uint(&ring->p_tail) != ticket) {
		if (++spins < STAGE_COMMIT_SPINS)
			ck_pr_stall();
		else
			sched_yield();
	}
	ck_pr_fence_store(); /* the slot before the index that publishes it */
	ck_pr_store_uint(&ring->p_tail, ticket + 1);
	return true;
}

/* Returns 0 if the caller may enqueue, -ESHUTDOWN otherwise. Outside
 * threads enter the gate (and must call stage_gate_leave); workers never
 * need to, because a worker that enqueues is alive and will look at the
 * rings again before it can exit. */
static int stage_gate_enter(struct oskr_stage *stage, bool from_worker)
{
	if (from_worker) {
		/* acquire: pairs with stop() setting the budget. */
		if (!(atomic_load_explicit(&stage->gate,
					   memory_order_acquire) &
		      STAGE_GATE_CLOSED))
			return 0;
		/* Draining: tasks may still submit, within a budget. */
		if (atomic_fetch_sub(&stage->drain_budget, 1) <= 0)
			return -ESHUTDOWN;
		return 0;
	}
	if (atomic_fetch_add(&stage->gate, 1) & STAGE_GATE_CLOSED) {
		atomic_fetch_sub(&stage->gate, 1);
		return -ESHUTDOWN;
	}
	return 0;
}

static void stage_gate_leave(struct oskr_stage *stage, bool from_worker)
{
	if (!from_worker)
		atomic_fetch_sub_explicit(&stage->gate, 1,
					  memory_order_release);
}

static int stage_submit(struct oskr_stage *stage, struct ck_ring *ring,
			struct stage_task *buffer, oskr__stage_fn fn, void *a,
			void *b, void *c)
{
	struct stage_task task = { .fn = fn, .a = a, .b = b, .c = c };
	bool from_worker = tls_stage == stage;
	bool queued;
	int err;

	if (!fn)
		return -EINVAL;
	err = stage_gate_enter(stage, from_worker);
	if (err)
		return err;
	stage_tsan_release(ring);
	stage_tsan_hide_begin();
	queued = stage_ring_enqueue(ring, buffer, &task);
	stage_tsan_hide_end();
	if (queued && !tls_inline)
		stage_wake_one(stage);
	stage_gate_leave(stage, from_worker);
	if (!queued) {
		atomic_fetch_add_explicit(&stage->rejected_full, 1,
					  memory_order_relaxed);
		return -EAGAIN;
	}
	return 0;
}

int oskr__stage_submit_stateless(struct oskr_stage *stage, oskr__stage_fn fn,
				 void *a, void *b, void *c)
{
	return stage_submit(stage, &stage->stateless_ring,
			    stage->stateless_buf, fn, a, b, c);
}

int oskr__stage_submit_stateful(struct oskr_stage *stage, oskr__stage_fn fn,
				void *a, void *b, void *c)
{
	return stage_submit(stage, &stage->stateful_ring, stage->stateful_buf,
			    fn, a, b, c);
}

/*
 * Run to completion on an idle pool. Waking a sleeping worker costs a
 * futex wake, a context switch and, on a machine with as many busy
 * threads as cores, a wait for a CPU: on an idle replica that is most of
 * a request's round trip (docs/stage.md, "Inline execution"). When every
 * worker sleeps, the submitting thread therefore runs the task itself,
 * and then what that task submitted (the stateful half of a request),
 * through the rings as usual, so the stateful FIFO order and the state
 * token rules are exactly those of a worker. It wakes a worker as soon as
 * more stateless work is queued than it can take, and when it returns
 * with work left (budget spent, or the token held by a worker).
 */
static void stage_run_inline(struct oskr_stage *stage)
{
	struct stage_worker counters = { .stage = stage };
	unsigned ran_total = 0;

	while (ran_total < OSKR_STAGE_INLINE_BUDGET) {
		unsigned ran = stage_run_stateful(
			stage, &counters, OSKR_STAGE_INLINE_BUDGET - ran_total);

		if (ran_total + ran < OSKR_STAGE_INLINE_BUDGET &&
		    stage_run_one_stateless(stage, &counters))
			ran++;
		if (!ran)
			break;
		ran_total += ran;
		if (ck_ring_size(&stage->stateless_ring) > 1)
			stage_wake_one(stage);
	}
	if (stage_has_work(stage))
		stage_wake_one(stage);
	atomic_fetch_add_explicit(&stage->inline_stateless_run,
				  atomic_load_explicit(&counters.stateless_run,
						       memory_order_relaxed),
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&stage->inline_stateful_run,
				  atomic_load_explicit(&counters.stateful_run,
						       memory_order_relaxed),
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&stage->inline_runs, 1,
				  memory_order_relaxed);
}

int oskr__stage_submit_stateless_inline(struct oskr_stage *stage,
					oskr__stage_fn fn, void *a, void *b,
					void *c)
{
	int err;

	/* Workers and nested calls submit normally; so does everyone while
	 * a worker is awake (it takes the task within its spin) or once
	 * stop() has begun (the workers drain; an rx thread must not). */
	if (tls_stage == stage || tls_inline ||
	    atomic_load_explicit(&stage->sleepers, memory_order_relaxed) <
		    stage->worker_count ||
	    atomic_load_explicit(&stage->gate, memory_order_relaxed) &
		    STAGE_GATE_CLOSED)
		return oskr__stage_submit_stateless(stage, fn, a, b, c);
	tls_inline = true;
	err = oskr__stage_submit_stateless(stage, fn, a, b, c);
	if (!err)
		stage_run_inline(stage);
	tls_inline = false;
	return err;
}

void oskr__stage_stats(struct oskr_stage *stage, struct oskr_stage_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned index = 0; index < stage->worker_count; index++) {
		struct stage_worker *worker = &stage->workers[index];

		out->stateless_run += atomic_load_explicit(
			&worker->stateless_run, memory_order_relaxed);
		out->stateful_run += atomic_load_explicit(
			&worker->stateful_run, memory_order_relaxed);
		out->heartbeat += atomic_load_explicit(&worker->heartbeat,
						       memory_order_relaxed);
	}
	out->stateless_queued = ck_ring_size(&stage->stateless_ring);
	out->stateful_queued = ck_ring_size(&stage->stateful_ring);
	out->rejected_full = atomic_load_explicit(&stage->rejected_full,
						  memory_order_relaxed);
	out->inline_stateless_run = atomic_load_explicit(
		&stage->inline_stateless_run, memory_order_relaxed);
	out->inline_stateful_run = atomic_load_explicit(
		&stage->inline_stateful_run, memory_order_relaxed);
	out->inline_runs = atomic_load_explicit(&stage->inline_runs,
						memory_order_relaxed);
	out->sleeping = atomic_load_explicit(&stage->sleepers,
					     memory_order_relaxed);
	out->stateless_run += out->inline_stateless_run;
	out->stateful_run += out->inline_stateful_run;
}
