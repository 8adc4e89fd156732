/* SPDX-License-Identifier: MIT */
/*
 * Named counters for plugins (oskr_host.count) and the host. Names are
 * published once under a mutex and never move, so the hot path (an
 * existing name) is a lock-free scan plus one relaxed atomic add.
 */
#ifndef OSKR_DAEMON_COUNTERS_H
#define OSKR_DAEMON_COUNTERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define OSKR_COUNTERS_MAX 128
#define OSKR_COUNTER_NAME_MAX 64

struct oskr_counters {
	pthread_mutex_t lock; /* only for adding a name */
	atomic_uint count;
	char names[OSKR_COUNTERS_MAX][OSKR_COUNTER_NAME_MAX];
	atomic_uint_fast64_t values[OSKR_COUNTERS_MAX];
	atomic_uint_fast64_t overflow; /* adds to names beyond the table */
};

void oskr__counters_init(struct oskr_counters *counters);
void oskr__counters_destroy(struct oskr_counters *counters);
/** Add @p delta to @p name; invalid names ([a-z0-9_], < 64 bytes) are
 *  counted as "invalid_counter_name". Any thread. */
void oskr__counters_add(struct oskr_counters *counters, const char *name,
			uint64_t delta);
uint64_t oskr__counters_get(struct oskr_counters *counters, const char *name);
void oskr__counters_visit(struct oskr_counters *counters,
			  void (*visit)(void *arg, const char *name,
					uint64_t value),
			  void *arg);

#endif
