/* SPDX-License-Identifier: MIT */
/*
 * The stage worker pool (the oskr stage model). N worker threads share two
 * lock-free MPMC rings (Concurrency Kit's ck_ring, tasks stored by value):
 *
 *  - stateless tasks run on any worker, in parallel;
 *  - stateful tasks run one at a time, in FIFO submission order, on
 *    whichever worker currently holds the state token.
 *
 * A worker loop prefers stateful work: if the stateful ring is non-empty
 * and the state token is free, it takes the token, runs a bounded batch of
 * stateful tasks in order, and gives the token back; otherwise it runs one
 * stateless task. Idle workers spin briefly, then sleep on a condition
 * variable that producers signal only when someone sleeps (the enqueue
 * path takes no lock while workers are busy).
 */
#ifndef OSKR_DAEMON_STAGE_H
#define OSKR_DAEMON_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct oskr_stage;

typedef void (*oskr__stage_fn)(void *a, void *b, void *c);

struct oskr_stage_config {
	unsigned workers; /* >= 1 */
	unsigned ring_size; /* slots per ring, power of two >= 64 */
	const int *cores; /* pin worker i to cores[i % core_count]; NULL = no */
	size_t core_count;
	/* Called on worker @p worker after it ran a batch of tasks and
	 * before it sleeps: the transport flushes its per-worker tx batch
	 * here. May be NULL. */
	void (*after_batch)(void *arg, unsigned worker);
	void *after_batch_arg;
};

int oskr__stage_create(struct oskr_stage **out,
		       const struct oskr_stage_config *config);
/** Start the worker threads. */
int oskr__stage_start(struct oskr_stage *stage);
/** Stop accepting new tasks, run what is queued, join workers. */
void oskr__stage_stop(struct oskr_stage *stage);
void oskr__stage_free(struct oskr_stage *stage);

/** Any thread. 0, or -EAGAIN when the ring is full (fn never runs), or
 *  -ESHUTDOWN after stop. */
int oskr__stage_submit_stateless(struct oskr_stage *stage, oskr__stage_fn fn,
				 void *a, void *b, void *c);
int oskr__stage_submit_stateful(struct oskr_stage *stage, oskr__stage_fn fn,
				void *a, void *b, void *c);

/* Tasks an outside thread runs inline (oskr__stage_submit_stateless_inline)
 * before it hands the rest to the workers and returns to its own job: a
 * request on an idle replica is two or three tasks (receive, execute,
 * maybe a signature), so this is a whole request with room to spare, and
 * an rx thread never stops polling for long. */
#define OSKR_STAGE_INLINE_BUDGET 8u

/**
 * Submit a stateless task from a thread outside the pool (a transport's
 * rx thread). When every worker sleeps, the calling thread runs the task
 * itself, and then the tasks it submitted (a bounded number), instead of
 * waking a worker: run to completion on an idle replica. Otherwise, and
 * when called from a worker, the same as oskr__stage_submit_stateless.
 * Same return values.
 */
int oskr__stage_submit_stateless_inline(struct oskr_stage *stage,
					oskr__stage_fn fn, void *a, void *b,
					void *c);
/** Index of the calling worker in [0, workers), or -1 on other threads. */
int oskr__stage_worker_index(void);
/** True while the calling thread runs a stateful task. */
bool oskr__stage_in_stateful(void);

struct oskr_stage_stats {
	uint64_t stateless_run, stateful_run;
	uint64_t stateless_queued, stateful_queued; /* current depths */
	uint64_t rejected_full;
	/* Of the runs above, those by outside threads inline, and how many
	 * times such a thread ran tasks. */
	uint64_t inline_stateless_run, inline_stateful_run, inline_runs;
	/* Workers asleep right now (waiting for a wake-up). */
	uint64_t sleeping;
	/* Worker liveness: bumped by every worker loop iteration and sleep
	 * wake-up; a watchdog sees it advance. */
	uint64_t heartbeat;
};
void oskr__stage_stats(struct oskr_stage *stage, struct oskr_stage_stats *out);

#endif
