/* SPDX-License-Identifier: MIT */
/*
 * Timers: one thread, a binary min-heap of deadlines (CLOCK_MONOTONIC)
 * ordered by (deadline, arm sequence), and a fixed table of slots. A timer
 * id is (generation << 32) | (slot + 1): never 0, and a stale id (its slot
 * re-armed since) never matches.
 *
 * Expiry does not call fn: it submits a stateful task that re-checks the
 * slot's generation and state under the lock and only then calls fn. So a
 * stateful task that cancels a timer whose expiry task is already queued
 * behind it wins, which is the guarantee oskr_host.timer_cancel gives.
 *
 * Shutdown order: timers_stop, then stage_stop (which runs the expiry
 * tasks still queued; they see the timers stopped and do not fire), then
 * timers_free, then stage_free. Queued expiry tasks point at the timers,
 * so freeing the timers while the stage still holds some would be a
 * use-after-free; timers_free refuses (logs and leaks) in that case.
 */
#include "timer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

_Static_assert(sizeof(void *) >= sizeof(uint64_t),
	       "timer ids travel through a task's void * argument");

#define TIMERS_MAX (1u << 24)
/* When the stateful ring is full at expiry, try again this much later:
 * the timer stays at the heap top, so deadline order is kept. */
#define TIMERS_RETRY_NS (1000 * 1000ull)
#define TIMERS_NO_SLOT UINT32_MAX

enum timer_state {
	TIMER_FREE,
	TIMER_ARMED, /* in the heap */
	TIMER_QUEUED, /* expired; its stateful task is in the stage */
};

struct timer_slot {
	uint64_t deadline;
	uint64_t sequence; /* arm order: FIFO among equal deadlines */
	oskr__timer_fn fn;
	void *a, *b;
	uint32_t generation;
	uint32_t heap_index;
	uint32_t next_free;
	enum timer_state state;
};

struct oskr_timers {
	struct oskr_stage *stage;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	pthread_t thread;
	bool thread_running;
	bool stopped; /* no arm, no fire, from now on */

	struct timer_slot *slots;
	uint32_t *heap; /* slot indexes */
	unsigned heap_len;
	unsigned max_timers;
	unsigned in_use; /* ARMED + QUEUED */
	unsigned tasks_in_stage; /* expiry tasks submitted, not yet run */
	uint32_t free_head;
	uint64_t next_sequence;
	uint64_t full_retries;
};

uint64_t oskr__monotonic_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

static struct timespec timespec_from_ns(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000ull),
		.tv_nsec = (long)(ns % 1000000000ull),
	};

	return ts;
}

static uint64_t timer_id(const struct oskr_timers *timers, uint32_t slot)
{
	return (uint64_t)timers->slots[slot].generation << 32 |
	       (uint64_t)(slot + 1);
}

/* The slot an id names if it still names it (same generation, in use). */
static struct timer_slot *timer_lookup(struct oskr_timers *timers,
				       uint64_t id)
{
	uint32_t slot_plus_one = (uint32_t)id;
	struct timer_slot *slot;

	if (slot_plus_one == 0 || slot_plus_one > timers->max_timers)
		return NULL;
	slot = &timers->slots[slot_plus_one - 1];
	if (slot->state == TIMER_FREE ||
	    slot->generation != (uint32_t)(id >> 32))
		return NULL;
	return slot;
}

static bool heap_before(const struct oskr_timers *timers, uint32_t left,
			uint32_t right)
{
	const struct timer_slot *l = &timers->slots[left];
	const struct timer_slot *r = &timers->slots[right];

	if (l->deadline != r->deadline)
		return l->deadline < r->deadline;
	return l->sequence < r->sequence;
}

static void heap_place(struct oskr_timers *timers, unsigned index,
		       uint32_t slot)
{
	timers->heap[index] = slot;
	timers->slots[slot].heap_index = index;
}

static void heap_sift_up(struct oskr_timers *timers, unsigned index)
{
	uint32_t slot = timers->heap[index];

	while (index > 0) {
		unsigned parent = (index - 1) / 2;

		if (!heap_before(timers, slot, timers->heap[parent]))
			break;
		heap_place(timers, index, timers->heap[parent]);
		index = parent;
	}
	heap_place(timers, index, slot);
}

static void heap_sift_down(struct oskr_timers *timers, unsigned index)
{
	uint32_t slot = timers->heap[index];

	for (;;) {
		unsigned child = 2 * index + 1;

		if (child >= timers->heap_len)
			break;
		if (child + 1 < timers->heap_len &&
		    heap_before(timers, timers->heap[child + 1],
				timers->heap[child]))
			child++;
		if (!heap_before(timers, timers->heap[child], slot))
			break;
		heap_place(timers, index, timers->heap[child]);
		index = child;
	}
	heap_place(timers, index, slot);
}

static void heap_push(struct oskr_timers *timers, uint32_t slot)
{
	heap_place(timers, timers->heap_len++, slot);
	heap_sift_up(timers, timers->heap_len - 1);
}

static void heap_remove(struct oskr_timers *timers, uint32_t slot)
{
	unsigned index = timers->slots[slot].heap_index;
	uint32_t last = timers->heap[--timers->heap_len];

	if (index == timers->heap_len)
		return; /* it was the last element */
	heap_place(timers, index, last);
	/* The moved element may belong above or below its new place. */
	heap_sift_up(timers, index);
	heap_sift_down(timers, timers->slots[last].heap_index);
}

static void slot_release(struct oskr_timers *timers, uint32_t slot)
{
	timers->slots[slot].state = TIMER_FREE;
	timers->slots[slot].fn = NULL;
	timers->slots[slot].next_free = timers->free_head;
	timers->free_head = slot;
	timers->in_use--;
}

int oskr__timers_create(struct oskr_timers **out, struct oskr_stage *stage,
			unsigned max_timers)
{
	struct oskr_timers *timers;
	pthread_condattr_t cond_attr;
	int err;

	if (!stage || max_timers == 0 || max_timers > TIMERS_MAX)
		return -EINVAL;
	timers = calloc(1, sizeof(*timers));
	if (!timers)
		return -ENOMEM;
	timers->stage = stage;
	timers->max_timers = max_timers;

	err = -ENOMEM;
	timers->slots = calloc(max_timers, sizeof(*timers->slots));
	if (!timers->slots)
		goto err_timers;
	timers->heap = calloc(max_timers, sizeof(*timers->heap));
	if (!timers->heap)
		goto err_slots;
	for (uint32_t slot = 0; slot < max_timers; slot++)
		timers->slots[slot].next_free =
			slot + 1 < max_timers ? slot + 1 : TIMERS_NO_SLOT;
	timers->free_head = 0;

	err = -pthread_mutex_init(&timers->lock, NULL);
	if (err)
		goto err_heap;
	err = -pthread_condattr_init(&cond_attr);
	if (err)
		goto err_mutex;
	pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC);
	err = -pthread_cond_init(&timers->cond, &cond_attr);
	pthread_condattr_destroy(&cond_attr);
	if (err)
		goto err_mutex;

	*out = timers;
	return 0;

err_mutex:
	pthread_mutex_destroy(&timers->lock);
err_heap:
	free(timers->heap);
err_slots:
	free(timers->slots);
err_timers:
	free(timers);
	return err;
}

/* Stateful task: the last word on whether an expired timer fires. */
static void timer_expire_task(void *arg_timers, void *arg_id, void *unused)
{
	struct oskr_timers *timers = arg_timers;
	uint64_t id = (uint64_t)(uintptr_t)arg_id;
	struct timer_slot *slot;
	oskr__timer_fn fn = NULL;
	void *a = NULL, *b = NULL;

	pthread_mutex_lock(&timers->lock);
	timers->tasks_in_stage--;
	slot = timer_lookup(timers, id);
	if (slot && slot->state == TIMER_QUEUED && !timers->stopped) {
		fn = slot->fn;
		a = slot->a;
		b = slot->b;
		/* Released before fn runs: fn may re-arm (periodic timers),
		 * and cancelling its own id from fn returns -ENOENT. */
		slot_release(timers, (uint32_t)(slot - timers->slots));
	}
	pthread_mutex_unlock(&timers->lock);
	if (fn)
		fn(a, b);
}

static void timers_wait_until(struct oskr_timers *timers, uint64_t deadline)
{
	struct timespec ts = timespec_from_ns(deadline);

	pthread_cond_timedwait(&timers->cond, &timers->lock, &ts);
}

static void *timers_thread_main(void *arg)
{
	struct oskr_timers *timers = arg;
	bool full_logged = false;

	pthread_mutex_lock(&timers->lock);
	while (!timers->stopped) {
		uint32_t slot;
		uint64_t now;
		int err;

		if (timers->heap_len == 0) {
			pthread_cond_wait(&timers->cond, &timers->lock);
			continue;
		}
		slot = timers->heap[0];
		now = oskr__monotonic_ns();
		if (timers->slots[slot].deadline > now) {
			timers_wait_until(timers, timers->slots[slot].deadline);
			continue;
		}
		/* Submitting under our lock is fine: submit never blocks,
		 * and the stage never calls into us while holding a lock. */
		err = oskr__stage_submit_stateful(timers->stage,
						  timer_expire_task, timers,
						  (void *)(uintptr_t)timer_id(
							  timers, slot),
						  NULL);
		if (err == -EAGAIN) {
			/* Never drop a timer: it stays at the top, so it
			 * and everything after it keep deadline order. */
			timers->full_retries++;
			if (!full_logged)
				OSKR_WARN("timers: stateful ring full, expiry "
					  "delayed");
			full_logged = true;
			timers_wait_until(timers, now + TIMERS_RETRY_NS);
			continue;
		}
		full_logged = false;
		heap_remove(timers, slot);
		if (err) {
			/* Stage stopped: this timer can never fire. */
			slot_release(timers, slot);
			continue;
		}
		timers->slots[slot].state = TIMER_QUEUED;
		timers->tasks_in_stage++;
	}
	pthread_mutex_unlock(&timers->lock);
	return NULL;
}

int oskr__timers_start(struct oskr_timers *timers)
{
	int err;

	pthread_mutex_lock(&timers->lock);
	if (timers->thread_running || timers->stopped) {
		pthread_mutex_unlock(&timers->lock);
		return -EINVAL;
	}
	/* Under the lock, so a concurrent stop sees a consistent pair of
	 * thread and thread_running; the new thread blocks on the lock
	 * until we are done. */
	err = -pthread_create(&timers->thread, NULL, timers_thread_main,
			      timers);
	if (!err)
		timers->thread_running = true;
	pthread_mutex_unlock(&timers->lock);
	return err;
}

void oskr__timers_stop(struct oskr_timers *timers)
{
	bool join;

	pthread_mutex_lock(&timers->lock);
	/* Also silences expiry tasks already queued in the stage: from
	 * here on nothing fires, whoever joins the thread. */
	timers->stopped = true;
	pthread_cond_signal(&timers->cond);
	/* Claimed under the lock: stop may race with itself (control
	 * thread and a stateful task), and a thread is joined once. */
	join = timers->thread_running;
	timers->thread_running = false;
	pthread_mutex_unlock(&timers->lock);
	if (join)
		pthread_join(timers->thread, NULL);
}

void oskr__timers_free(struct oskr_timers *timers)
{
	unsigned tasks_in_stage;

	if (!timers)
		return;
	oskr__timers_stop(timers);
	pthread_mutex_lock(&timers->lock);
	tasks_in_stage = timers->tasks_in_stage;
	pthread_mutex_unlock(&timers->lock);
	if (tasks_in_stage) {
		OSKR_ERROR("timers: freed with %u expiry tasks still queued "
			   "in the stage (stop the stage first); leaking",
			   tasks_in_stage);
		return;
	}
	pthread_cond_destroy(&timers->cond);
	pthread_mutex_destroy(&timers->lock);
	free(timers->heap);
	free(timers->slots);
	free(timers);
}

int oskr__timers_arm(struct oskr_timers *timers, uint64_t delay_ns,
		     oskr__timer_fn fn, void *a, void *b, uint64_t *out)
{
	struct timer_slot *slot;
	uint32_t index;
	uint64_t now;

	if (!fn || !out)
		return -EINVAL;
	pthread_mutex_lock(&timers->lock);
	if (timers->stopped) {
		pthread_mutex_unlock(&timers->lock);
		return -ESHUTDOWN;
	}
	if (timers->free_head == TIMERS_NO_SLOT) {
		pthread_mutex_unlock(&timers->lock);
		return -ENOSPC;
	}
	index = timers->free_head;
	slot = &timers->slots[index];
	timers->free_head = slot->next_free;
	timers->in_use++;

	now = oskr__monotonic_ns();
	slot->deadline = delay_ns > UINT64_MAX - now ? UINT64_MAX
						      : now + delay_ns;
	slot->sequence = timers->next_sequence++;
	slot->fn = fn;
	slot->a = a;
	slot->b = b;
	slot->generation++;
	slot->state = TIMER_ARMED;
	heap_push(timers, index);
	/* Only a new earliest deadline changes what the thread waits for. */
	if (slot->heap_index == 0)
		pthread_cond_signal(&timers->cond);
	*out = timer_id(timers, index);
	pthread_mutex_unlock(&timers->lock);
	return 0;
}

int oskr__timers_cancel(struct oskr_timers *timers, uint64_t id)
{
	struct timer_slot *slot;
	uint32_t index;

	pthread_mutex_lock(&timers->lock);
	slot = timer_lookup(timers, id);
	if (!slot) {
		pthread_mutex_unlock(&timers->lock);
		return -ENOENT;
	}
	index = (uint32_t)(slot - timers->slots);
	if (slot->state == TIMER_ARMED)
		heap_remove(timers, index);
	/* A QUEUED slot is released too: its expiry task then finds the
	 * slot free (or re-armed under a new generation) and does not
	 * fire. The thread needs no wake-up if we removed the heap top: it
	 * wakes at the old deadline and finds the next one. */
	slot_release(timers, index);
	pthread_mutex_unlock(&timers->lock);
	return 0;
}

unsigned oskr__timers_armed(struct oskr_timers *timers)
{
	unsigned in_use;

	pthread_mutex_lock(&timers->lock);
	in_use = timers->in_use;
	pthread_mutex_unlock(&timers->lock);
	return in_use;
}
