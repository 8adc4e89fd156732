/* SPDX-License-Identifier: MIT */
#include "counters.h"

#include <stdbool.h>
#include <string.h>

void oskr__counters_init(struct oskr_counters *c)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
}

void oskr__counters_destroy(struct oskr_counters *c)
{
	pthread_mutex_destroy(&c->lock);
}

static bool valid_name(const char *name)
{
	size_t len = 0;
	for (const char *p = name; *p; p++, len++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '_'))
			return false;
	}
	return len > 0 && len < OSKR_COUNTER_NAME_MAX;
}

static int find(struct oskr_counters *c, const char *name, unsigned limit)
{
	for (unsigned i = 0; i < limit; i++)
		if (strcmp(c->names[i], name) == 0)
			return (int)i;
	return -1;
}

void oskr__counters_add(struct oskr_counters *c, const char *name,
			uint64_t delta)
{
	/* acquire pairs with the release below: a published index has its
	 * name fully written. Published names are valid, so the hot path
	 * (a name seen before) skips the validation. */
	unsigned published = atomic_load_explicit(&c->count,
						  memory_order_acquire);
	int index = find(c, name, published);
	if (index < 0 && !valid_name(name)) {
		name = "invalid_counter_name";
		index = find(c, name, published);
	}
	if (index < 0) {
		pthread_mutex_lock(&c->lock);
		published = atomic_load_explicit(&c->count,
						 memory_order_relaxed);
		index = find(c, name, published);
		if (index < 0 && published < OSKR_COUNTERS_MAX) {
			index = (int)published;
			strcpy(c->names[index], name);
			atomic_store_explicit(&c->count, published + 1,
					      memory_order_release);
		}
		pthread_mutex_unlock(&c->lock);
	}
	if (index < 0) {
		atomic_fetch_add_explicit(&c->overflow, delta,
					  memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&c->values[index], delta,
				  memory_order_relaxed);
}

uint64_t oskr__counters_get(struct oskr_counters *c, const char *name)
{
	unsigned published = atomic_load_explicit(&c->count,
						  memory_order_acquire);
	int index = find(c, name, published);
	return index < 0 ? 0
			 : atomic_load_explicit(&c->values[index],
						memory_order_relaxed);
}

void oskr__counters_visit(struct oskr_counters *c,
			  void (*visit)(void *arg, const char *name,
					uint64_t value),
			  void *arg)
{
	unsigned published = atomic_load_explicit(&c->count,
						  memory_order_acquire);
	for (unsigned i = 0; i < published; i++)
		visit(arg, c->names[i],
		      atomic_load_explicit(&c->values[i],
					   memory_order_relaxed));
	uint64_t overflow = atomic_load_explicit(&c->overflow,
						 memory_order_relaxed);
	if (overflow)
		visit(arg, "counters_overflow", overflow);
}
