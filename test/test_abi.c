/* SPDX-License-Identifier: MIT */
/*
 * ABI stability of the plugin SDK.
 *
 * 1. The layout of every public struct (include/oskr/plugin.h and
 *    client.h) is pinned below with _Static_assert: moving, resizing or
 *    inserting a member fails the BUILD of this test. Appending a member
 *    in a new minor is the only allowed change: add a PIN for it and
 *    update the struct's PIN_SIZE; never edit an existing PIN.
 * 2. A plugin compiled against the frozen 1.0 header (test/abi/
 *    plugin-1.0.h) loads into the current (1.1) host and runs on the sim,
 *    and the layout it was compiled with matches the current headers
 *    member by member (the "older minor" compatibility test).
 * 3. A plugin compiled against a simulated newer minor (test/abi/
 *    plugin-1.2-draft.h) that declares 1.1 loads, sees the 1.1 members
 *    where this host has them, and tests for the newer host service at
 *    run time with OSKR_HOST_HAS: absent on this host, used when a host
 *    table does have it. The same plugin declaring 1.2 is refused.
 *
 * The pins are for LP64 (x86_64, aarch64), the data model oskr ships for.
 */
#include <check.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oskr/client.h>
#include <oskr/plugin.h>

#include "daemon/loader.h"
#include "sim/sim.h"
#include "test/abi/layout.h"

#if UINTPTR_MAX != UINT64_MAX || !defined(__LP64__)
#error "the pinned ABI layout below is for LP64: add pins for this data model"
#endif

#define PIN_SIZE(s, n)                                                     \
	_Static_assert(sizeof(struct s) == (n),                            \
		       "sizeof(struct " #s ") changed: ABI 1.x structs only "  \
		       "grow by appending members in a new minor (then add "  \
		       "a PIN for the new member and update this size)")
#define PIN(s, m, offset, n)                                               \
	_Static_assert(offsetof(struct s, m) == (offset) &&                \
			       sizeof(((struct s *)0)->m) == (n),          \
		       "struct " #s "." #m " moved or changed size: an ABI "   \
		       "1.x member never moves (plugins built against 1.0 "   \
		       "would read the wrong field)")

/* Constants compiled into plugins. */
_Static_assert(OSKR_ABI_MAJOR == 1, "ABI major changed");
_Static_assert(OSKR_DIGEST_SIZE == 32, "OSKR_DIGEST_SIZE is ABI");
_Static_assert(OSKR_SIGNATURE_MAX == 80, "OSKR_SIGNATURE_MAX is ABI");
_Static_assert(OSKR_ADDR_SIZE == 32, "OSKR_ADDR_SIZE is ABI");
_Static_assert(OSKR_LOG_ERROR == 0 && OSKR_LOG_WARN == 1 &&
		       OSKR_LOG_INFO == 2 && OSKR_LOG_DEBUG == 3,
	       "log level values are ABI");
_Static_assert(sizeof(oskr_timer_id) == 8, "oskr_timer_id is ABI");

PIN_SIZE(oskr_ctx, 8);
PIN(oskr_ctx, host, 0, 8);
PIN_SIZE(oskr_buf, 16);
PIN(oskr_buf, data, 0, 8);
PIN(oskr_buf, len, 8, 4);
PIN(oskr_buf, capacity, 12, 4);
PIN_SIZE(oskr_addr, 32);
PIN(oskr_addr, bytes, 0, 32);
PIN_SIZE(oskr_msg, 48);
PIN(oskr_msg, buf, 0, 8);
PIN(oskr_msg, from, 8, 32);
PIN(oskr_msg, from_replica, 40, 4);
PIN_SIZE(oskr_instance_info, 32);
PIN(oskr_instance_info, size, 0, 4);
PIN(oskr_instance_info, replica_count, 4, 4);
PIN(oskr_instance_info, fault_count, 8, 4);
PIN(oskr_instance_info, replica_id, 12, 4);
PIN(oskr_instance_info, client_id, 16, 8);
PIN(oskr_instance_info, max_message, 24, 4);
PIN(oskr_instance_info, worker_count, 28, 4);
PIN_SIZE(oskr_host, 256);
PIN(oskr_host, size, 0, 4);
PIN(oskr_host, abi_major, 4, 2);
PIN(oskr_host, abi_minor, 6, 2);
PIN(oskr_host, info, 8, 8);
PIN(oskr_host, buf_alloc, 16, 8);
PIN(oskr_host, buf_hold, 24, 8);
PIN(oskr_host, buf_release, 32, 8);
PIN(oskr_host, send_to_replica, 40, 8);
PIN(oskr_host, send_to_all, 48, 8);
PIN(oskr_host, send_to_addr, 56, 8);
PIN(oskr_host, signature_size, 64, 8);
PIN(oskr_host, sign, 72, 8);
PIN(oskr_host, verify, 80, 8);
PIN(oskr_host, digest, 88, 8);
PIN(oskr_host, submit_stateless, 96, 8);
PIN(oskr_host, submit_stateful, 104, 8);
PIN(oskr_host, timer_arm, 112, 8);
PIN(oskr_host, timer_cancel, 120, 8);
PIN(oskr_host, now_ns, 128, 8);
PIN(oskr_host, app_execute, 136, 8);
PIN(oskr_host, app_snapshot, 144, 8);
PIN(oskr_host, app_restore, 152, 8);
PIN(oskr_host, blob_free, 160, 8);
PIN(oskr_host, client_complete, 168, 8);
PIN(oskr_host, conf, 176, 8);
PIN(oskr_host, conf_u64, 184, 8);
PIN(oskr_host, conf_bool, 192, 8);
PIN(oskr_host, conf_ms, 200, 8);
PIN(oskr_host, conf_check_keys, 208, 8);
PIN(oskr_host, log, 216, 8);
PIN(oskr_host, count, 224, 8);
PIN(oskr_host, set_status, 232, 8);
/* appended in 1.1 */
PIN(oskr_host, checkpoint_stable, 240, 8);
PIN(oskr_host, checkpoint_resume, 248, 8);
PIN_SIZE(oskr_plugin, 112);
PIN(oskr_plugin, abi_major, 0, 2);
PIN(oskr_plugin, abi_minor, 2, 2);
PIN(oskr_plugin, size, 4, 4);
PIN(oskr_plugin, name, 8, 8);
PIN(oskr_plugin, version, 16, 8);
PIN(oskr_plugin, description, 24, 8);
PIN(oskr_plugin, replica_state_size, 32, 8);
PIN(oskr_plugin, client_state_size, 40, 8);
PIN(oskr_plugin, config_check, 48, 8);
PIN(oskr_plugin, replica_init, 56, 8);
PIN(oskr_plugin, replica_receive, 64, 8);
PIN(oskr_plugin, replica_fini, 72, 8);
PIN(oskr_plugin, client_init, 80, 8);
PIN(oskr_plugin, client_invoke, 88, 8);
PIN(oskr_plugin, client_receive, 96, 8);
PIN(oskr_plugin, client_fini, 104, 8);
PIN_SIZE(oskr_client_options, 16);
PIN(oskr_client_options, size, 0, 4);
PIN(oskr_client_options, protocol, 8, 8);

static const char *build_dir(void)
{
	const char *build = getenv("OSKR_BUILD_DIR");
	return build && *build ? build : "build";
}

static char *abi_plugin_path(const char *name)
{
	static char path[4][512];
	static unsigned next;
	char *out = path[next++ % 4];
	snprintf(out, sizeof(path[0]), "%s/test/abi/%s.so", build_dir(), name);
	return out;
}

static void load(const char *name, struct oskr_loaded_plugin *out)
{
	const char *path = abi_plugin_path(name);
	char *err = NULL;
	int ret = oskr__plugin_load(path, out, &err);
	ck_assert_msg(ret == 0, "loading %s: %s (built by `make test-bins`)",
		      path, err ? err : "?");
	free(err);
}

/* Run @p plugin on the sim with the kv app until @p requests finished:
 * a plugin built against another header does real work in this host. */
static struct oskr_sim *run_plugin(const struct oskr_plugin *plugin,
				   uint64_t requests)
{
	struct oskr_sim_config config = {
		.plugin = plugin,
		.replica_count = 3,
		.client_count = 2,
		.seed = 7,
		.app = "kv",
	};
	struct oskr_sim *sim = NULL;
	ck_assert_int_eq(oskr_sim_create(&sim, &config), 0);
	uint64_t done = oskr_sim_run_workload(sim, requests,
					      10ULL * 1000 * 1000 * 1000, NULL,
					      NULL);
	ck_assert_uint_eq(done, requests);
	char why[256];
	ck_assert_msg(oskr_sim_check_safety(sim, why, sizeof(why)), "%s", why);
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), requests);
	return sim;
}

/* ---- 1. pinned layout (the static asserts above); the run-time half ---- */

START_TEST(layout_is_pinned)
{
	/* The 1.0 size the loader requires is the pinned descriptor end. */
	ck_assert_uint_eq(offsetof(struct oskr_plugin, client_fini) +
				  sizeof(void *),
			  112);
	ck_assert_uint_le(112, sizeof(struct oskr_plugin));
	ck_assert_str_eq(OSKR_PLUGIN_SYMBOL, "oskr_plugin_descriptor");
	/* Every 1.0 member is listed in layout.h (the list the snapshot
	 * plugin exports): count them against the pins. */
	size_t members = 0;
#define COUNT(s, m) members++;
	OSKR_ABI_1_0_MEMBERS(COUNT)
#undef COUNT
	ck_assert_uint_eq(members, 1 + 3 + 1 + 3 + 7 + 32 + 16);
	size_t members_1_1 = 0;
#define COUNT(s, m) members_1_1++;
	OSKR_ABI_1_1_MEMBERS(COUNT)
#undef COUNT
	ck_assert_uint_eq(members_1_1, 2);
	/* 1.1 appended exactly those two to the host table */
	ck_assert_uint_eq(offsetof(struct oskr_host, checkpoint_stable),
			  offsetof(struct oskr_host, set_status) +
				  sizeof(void *));
	ck_assert_uint_eq(sizeof(struct oskr_host),
			  offsetof(struct oskr_host, checkpoint_resume) +
				  sizeof(void *));
	ck_assert_uint_eq(OSKR_ABI_MINOR, 1);
}
END_TEST

/* ---- OSKR_HOST_HAS on hand-made host tables ---- */

static void fake_set_status(struct oskr_ctx *ctx, uint64_t view,
			    int32_t leader, uint64_t committed,
			    uint64_t executed)
{
}

static void fake_count(struct oskr_ctx *ctx, const char *name, uint64_t delta)
{
}

static int fake_checkpoint_stable(struct oskr_ctx *ctx, uint64_t op,
				  const void *app, size_t app_len,
				  const void *state, size_t state_len)
{
	return 0;
}

static int fake_checkpoint_resume(struct oskr_ctx *ctx, uint64_t *op,
				  const void **state, size_t *state_len)
{
	return -ENOENT;
}

START_TEST(host_has_checks_size_and_null)
{
	struct oskr_host host;
	memset(&host, 0, sizeof(host));
	host.size = sizeof(host);
	host.count = fake_count;
	host.set_status = fake_set_status;
	ck_assert(OSKR_HOST_HAS(&host, set_status));
	ck_assert(OSKR_HOST_HAS(&host, count));
	ck_assert(!OSKR_HOST_HAS(&host, log)); /* NULL: not provided */
	/* A host built before set_status existed: its table ends earlier
	 * and the member is beyond it, whatever the bytes there hold. */
	host.size = offsetof(struct oskr_host, set_status);
	ck_assert(!OSKR_HOST_HAS(&host, set_status));
	ck_assert(OSKR_HOST_HAS(&host, count));
	host.size = offsetof(struct oskr_host, set_status) + 4;
	ck_assert(!OSKR_HOST_HAS(&host, set_status)); /* partly covered */
	/* A 1.0 host's table ends after set_status: a plugin built for 1.1
	 * sees no checkpoint services there, whatever follows in memory. */
	host.size = offsetof(struct oskr_host, set_status) + sizeof(void *);
	host.checkpoint_stable = fake_checkpoint_stable;
	host.checkpoint_resume = fake_checkpoint_resume;
	ck_assert(OSKR_HOST_HAS(&host, set_status));
	ck_assert(!OSKR_HOST_HAS(&host, checkpoint_stable));
	ck_assert(!OSKR_HOST_HAS(&host, checkpoint_resume));
	host.size = sizeof(host);
	ck_assert(OSKR_HOST_HAS(&host, checkpoint_stable));
	ck_assert(OSKR_HOST_HAS(&host, checkpoint_resume));
}
END_TEST

/* ---- 2. a plugin built against the frozen 1.0 header ---- */

START_TEST(older_minor_layout_matches)
{
	struct oskr_loaded_plugin loaded;
	load("echo_1_0", &loaded);
	const struct oskr_plugin *d = loaded.descriptor;
	ck_assert_uint_eq(d->abi_major, 1);
	ck_assert_uint_eq(d->abi_minor, 0);
	ck_assert_uint_eq(d->size, 112);
	ck_assert_uint_le(d->abi_minor, OSKR_ABI_MINOR);

	const uint32_t *members = dlsym(loaded.handle, "oskr_abi_test_members");
	const uint32_t *structs = dlsym(loaded.handle, "oskr_abi_test_structs");
	ck_assert_ptr_nonnull(members);
	ck_assert_ptr_nonnull(structs);
	size_t i = 0;
#define CHECK_MEMBER(s, m)                                                 \
	ck_assert_msg(members[i] == offsetof(struct s, m) &&               \
			      members[i + 1] == sizeof(((struct s *)0)->m), \
		      "struct " #s "." #m ": 1.0 had offset %u size %u, now " \
		      "%zu %zu",                                           \
		      members[i], members[i + 1], offsetof(struct s, m),   \
		      sizeof(((struct s *)0)->m));                         \
	i += 2;
	OSKR_ABI_1_0_MEMBERS(CHECK_MEMBER)
#undef CHECK_MEMBER
	size_t j = 0;
	/* Structs may grow at the end, except oskr_addr, which plugins
	 * copy and embed by value. */
#define CHECK_STRUCT(s)                                                    \
	ck_assert_msg(strcmp(#s, "oskr_addr") == 0                         \
			      ? structs[j] == sizeof(struct s)             \
			      : structs[j] <= sizeof(struct s),            \
		      "struct " #s ": 1.0 size %u, now %zu", structs[j],   \
		      sizeof(struct s));                                   \
	j++;
	OSKR_ABI_1_0_STRUCTS(CHECK_STRUCT)
#undef CHECK_STRUCT
	oskr__plugin_unload(&loaded);
}
END_TEST

START_TEST(older_minor_plugin_runs)
{
	struct oskr_loaded_plugin loaded;
	load("echo_1_0", &loaded);
	struct oskr_sim *sim = run_plugin(loaded.descriptor, 40);
	/* It reached the host's services through its 1.0 view of the
	 * table, OSKR_HOST_HAS included; a 1.0 plugin never declares a
	 * checkpoint, so the host keeps its own snapshots for it. */
	for (int32_t r = 0; r < 3; r++)
		ck_assert_uint_eq(oskr_sim_counter(sim, r, "has_set_status"), 1);
	ck_assert_uint_eq(oskr_sim_counter(sim, OSKR_SIM_CLIENT(0),
					   "has_set_status"),
			  1);
	oskr_sim_destroy(sim);
	oskr__plugin_unload(&loaded);
}
END_TEST

/* ---- 3. a plugin built against a newer minor ---- */

START_TEST(newer_sdk_plugin_sees_1_1_members_in_place)
{
	struct oskr_loaded_plugin loaded;
	load("echo_1_2_compat", &loaded);
	const uint32_t *members =
		dlsym(loaded.handle, "oskr_abi_test_members_1_1");
	ck_assert_ptr_nonnull(members);
	size_t i = 0;
#define CHECK_MEMBER(s, m)                                                 \
	ck_assert_msg(members[i] == offsetof(struct s, m) &&               \
			      members[i + 1] == sizeof(((struct s *)0)->m), \
		      "struct " #s "." #m ": the 1.2 draft has offset %u "  \
		      "size %u, this host %zu %zu",                        \
		      members[i], members[i + 1], offsetof(struct s, m),   \
		      sizeof(((struct s *)0)->m));                         \
	i += 2;
	OSKR_ABI_1_1_MEMBERS(CHECK_MEMBER)
#undef CHECK_MEMBER
	oskr__plugin_unload(&loaded);
}
END_TEST

START_TEST(newer_sdk_plugin_declaring_1_1_runs_without_the_service)
{
	struct oskr_loaded_plugin loaded;
	load("echo_1_2_compat", &loaded);
	const struct oskr_plugin *d = loaded.descriptor;
	ck_assert_uint_eq(d->abi_minor, 1);
	/* Its descriptor is larger than this host's: accepted, the extra
	 * member is never looked at. */
	ck_assert_uint_gt(d->size, sizeof(struct oskr_plugin));
	struct oskr_sim *sim = run_plugin(d, 40);
	for (int32_t r = 0; r < 3; r++) {
		ck_assert_uint_eq(oskr_sim_counter(sim, r,
						   "future_service_absent"),
				  1);
		ck_assert_uint_eq(oskr_sim_counter(sim, r,
						   "future_service_used"),
				  0);
		/* the 1.1 service is there and answers */
		ck_assert_uint_eq(oskr_sim_counter(sim, r,
						   "checkpoint_resume_enoent"),
				  1);
	}
	ck_assert_uint_eq(oskr_sim_counter(sim, OSKR_SIM_CLIENT(1),
					   "future_service_absent"),
			  1);
	oskr_sim_destroy(sim);
	oskr__plugin_unload(&loaded);
}
END_TEST

/* A 1.2 host table: the 1.1 table followed by the appended service. */
struct host_1_2 {
	struct oskr_host base;
	int (*future_service)(struct oskr_ctx *ctx, uint64_t value);
};

static uint64_t future_calls;

static int fake_future_service(struct oskr_ctx *ctx, uint64_t value)
{
	future_calls++;
	return 1000 + (int)value;
}

START_TEST(newer_sdk_plugin_uses_the_service_when_present)
{
	struct oskr_loaded_plugin loaded;
	load("echo_1_2_compat", &loaded);
	const struct oskr_plugin *d = loaded.descriptor;
	struct host_1_2 host;
	memset(&host, 0, sizeof(host));
	/* The member sits right after checkpoint_resume, as the draft
	 * appends it. */
	ck_assert_uint_eq(offsetof(struct host_1_2, future_service),
			  sizeof(struct oskr_host));
	host.base.abi_major = 1;
	host.base.abi_minor = 2;
	host.future_service = fake_future_service;

	/* config_check gets the table itself; it calls future_service
	 * only when the table's size covers it and it is not NULL. */
	future_calls = 0;
	host.base.size = sizeof(struct oskr_host);
	ck_assert_int_eq(d->config_check(&host.base, NULL, 3, 1), 0);
	ck_assert_uint_eq(future_calls, 0);
	host.base.size = sizeof(host);
	ck_assert_int_eq(d->config_check(&host.base, NULL, 3, 1), 1003);
	ck_assert_uint_eq(future_calls, 1);
	host.future_service = NULL;
	ck_assert_int_eq(d->config_check(&host.base, NULL, 3, 1), 0);
	ck_assert_uint_eq(future_calls, 1);
	oskr__plugin_unload(&loaded);
}
END_TEST

START_TEST(newer_minor_declared_is_refused)
{
	const char *path = abi_plugin_path("echo_1_2");
	struct oskr_loaded_plugin loaded;
	char *err = NULL;
	ck_assert_int_lt(oskr__plugin_load(path, &loaded, &err), 0);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, path) && strstr(err, "1.2") &&
			      strstr(err, "1.1"),
		      "message should name the file and both versions: %s",
		      err);
	free(err);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("abi");
	TCase *layout = tcase_create("layout");
	tcase_add_test(layout, layout_is_pinned);
	tcase_add_test(layout, host_has_checks_size_and_null);
	suite_add_tcase(s, layout);
	TCase *compat = tcase_create("compatibility");
	tcase_add_test(compat, older_minor_layout_matches);
	tcase_add_test(compat, older_minor_plugin_runs);
	tcase_add_test(compat, newer_sdk_plugin_sees_1_1_members_in_place);
	tcase_add_test(compat,
		       newer_sdk_plugin_declaring_1_1_runs_without_the_service);
	tcase_add_test(compat, newer_sdk_plugin_uses_the_service_when_present);
	tcase_add_test(compat, newer_minor_declared_is_refused);
	suite_add_tcase(s, compat);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
