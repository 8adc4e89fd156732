/* SPDX-License-Identifier: MIT */
/*
 * Timers: one thread with a min-heap of deadlines (CLOCK_MONOTONIC). When a
 * timer expires, its callback is submitted as a *stateful* task; the
 * generation check happens inside that task, so a timer cancelled by a
 * stateful task before it runs never fires (the guarantee the SDK gives
 * for oskr_host.timer_cancel).
 */
#ifndef OSKR_DAEMON_TIMER_H
#define OSKR_DAEMON_TIMER_H

#include <stdint.h>

#include "stage.h"

struct oskr_timers;

typedef void (*oskr__timer_fn)(void *a, void *b);

/** @p stage receives expired timers as stateful tasks. @p max_timers bounds
 *  the number armed at once (arm returns -ENOSPC beyond it). */
int oskr__timers_create(struct oskr_timers **out, struct oskr_stage *stage,
			unsigned max_timers);
int oskr__timers_start(struct oskr_timers *timers);
/** Stop the thread; pending timers never fire. */
void oskr__timers_stop(struct oskr_timers *timers);
void oskr__timers_free(struct oskr_timers *timers);

/** Arm: fn(a, b) runs as a stateful task after delay_ns. *out != 0. Any
 *  thread. */
int oskr__timers_arm(struct oskr_timers *timers, uint64_t delay_ns,
		     oskr__timer_fn fn, void *a, void *b, uint64_t *out);
/** Cancel; 0, or -ENOENT if it already fired or never existed. When
 *  called from a stateful task, fn is guaranteed not to run afterwards. */
int oskr__timers_cancel(struct oskr_timers *timers, uint64_t id);
/** Number of timers armed. */
unsigned oskr__timers_armed(struct oskr_timers *timers);

uint64_t oskr__monotonic_ns(void);

#endif
