/* SPDX-License-Identifier: MIT */
/* Named counters (oskr_host.count): names, invalid names, the table
 * bound, and exact sums under concurrent adds. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/counters.h"

START_TEST(adds_by_name)
{
	struct oskr_counters c;
	oskr__counters_init(&c);
	oskr__counters_add(&c, "commits", 2);
	oskr__counters_add(&c, "drop_bad_signature", 1);
	oskr__counters_add(&c, "commits", 3);
	ck_assert_uint_eq(oskr__counters_get(&c, "commits"), 5);
	ck_assert_uint_eq(oskr__counters_get(&c, "drop_bad_signature"), 1);
	ck_assert_uint_eq(oskr__counters_get(&c, "never_added"), 0);
	oskr__counters_destroy(&c);
}
END_TEST

START_TEST(invalid_names_are_pooled)
{
	struct oskr_counters c;
	oskr__counters_init(&c);
	oskr__counters_add(&c, "Upper", 1);
	oskr__counters_add(&c, "with space", 1);
	oskr__counters_add(&c, "", 1);
	char long_name[80];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	oskr__counters_add(&c, long_name, 1);
	ck_assert_uint_eq(oskr__counters_get(&c, "invalid_counter_name"), 4);
	ck_assert_uint_eq(oskr__counters_get(&c, "Upper"), 0);
	oskr__counters_destroy(&c);
}
END_TEST

struct visit_sum {
	uint64_t total;
	unsigned names;
	uint64_t overflow;
};

static void sum_visit(void *arg, const char *name, uint64_t value)
{
	struct visit_sum *s = arg;
	if (strcmp(name, "counters_overflow") == 0) {
		s->overflow = value;
		return;
	}
	s->total += value;
	s->names++;
}

START_TEST(table_is_bounded)
{
	struct oskr_counters c;
	oskr__counters_init(&c);
	for (unsigned i = 0; i < OSKR_COUNTERS_MAX + 10; i++) {
		char name[32];
		snprintf(name, sizeof(name), "c%u", i);
		oskr__counters_add(&c, name, 1);
	}
	struct visit_sum s = {0};
	oskr__counters_visit(&c, sum_visit, &s);
	ck_assert_uint_eq(s.names, OSKR_COUNTERS_MAX);
	ck_assert_uint_eq(s.total, OSKR_COUNTERS_MAX);
	ck_assert_uint_eq(s.overflow, 10);
	oskr__counters_destroy(&c);
}
END_TEST

#define THREADS 4
#define ADDS 20000

static void *adder(void *arg)
{
	struct oskr_counters *c = arg;
	for (unsigned i = 0; i < ADDS; i++) {
		char name[16];
		snprintf(name, sizeof(name), "n%u", i % 8);
		oskr__counters_add(c, name, 1);
	}
	return NULL;
}

START_TEST(concurrent_adds_sum_exactly)
{
	struct oskr_counters c;
	oskr__counters_init(&c);
	pthread_t threads[THREADS];
	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&threads[i], NULL, adder, &c),
				 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(threads[i], NULL);
	struct visit_sum s = {0};
	oskr__counters_visit(&c, sum_visit, &s);
	ck_assert_uint_eq(s.names, 8);
	ck_assert_uint_eq(s.total, (uint64_t)THREADS * ADDS);
	ck_assert_uint_eq(oskr__counters_get(&c, "n0"),
			  (uint64_t)THREADS * ADDS / 8);
	oskr__counters_destroy(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("counters");
	TCase *tc = tcase_create("counters");
	tcase_add_test(tc, adds_by_name);
	tcase_add_test(tc, invalid_names_are_pooled);
	tcase_add_test(tc, table_is_bounded);
	tcase_add_test(tc, concurrent_adds_sum_exactly);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
