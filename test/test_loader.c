/* SPDX-License-Identifier: MIT */
/* The plugin loader: a good plugin loads; wrong major, newer minor,
 * too-small descriptor, missing symbol, non-ELF file and missing file are
 * refused with a message naming the file and the versions. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/loader.h"

static char probe_path[512];

static const char *probe(const char *variant)
{
	const char *build = getenv("OSKR_BUILD_DIR");
	snprintf(probe_path, sizeof(probe_path), "%s/test/plugins/probe_%s.so",
		 build ? build : "build", variant);
	return probe_path;
}

static void expect_refused(const char *path, const char *fragment)
{
	struct oskr_loaded_plugin plugin;
	char *err = NULL;
	int rc = oskr__plugin_load(path, &plugin, &err);
	ck_assert_int_lt(rc, 0);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, path) != NULL,
		      "message does not name the file: %s", err);
	ck_assert_msg(strstr(err, fragment) != NULL,
		      "message lacks '%s': %s", fragment, err);
	ck_assert_ptr_null(plugin.handle);
	free(err);
}

START_TEST(good_plugin_loads)
{
	struct oskr_loaded_plugin plugin;
	char *err = NULL;
	int rc = oskr__plugin_load(probe("good"), &plugin, &err);
	ck_assert_msg(rc == 0, "load failed: %s", err ? err : "?");
	ck_assert_str_eq(plugin.descriptor->name, "probe");
	ck_assert_uint_eq(plugin.descriptor->abi_major, OSKR_ABI_MAJOR);
	ck_assert_str_eq(plugin.path, probe_path);
	oskr__plugin_unload(&plugin);
	ck_assert_ptr_null(plugin.handle);
}
END_TEST

START_TEST(wrong_major_refused)
{
	char both[64];
	snprintf(both, sizeof(both), "plugin ABI 2.%d is incompatible with "
				     "this host's ABI %d.%d",
		 OSKR_ABI_MINOR, OSKR_ABI_MAJOR, OSKR_ABI_MINOR);
	expect_refused(probe("wrong_major"), both);
}
END_TEST

START_TEST(newer_minor_refused)
{
	char both[64];
	snprintf(both, sizeof(both), "plugin needs ABI %d.99 but this host "
				     "provides %d.%d",
		 OSKR_ABI_MAJOR, OSKR_ABI_MAJOR, OSKR_ABI_MINOR);
	expect_refused(probe("newer_minor"), both);
}
END_TEST

START_TEST(small_size_refused)
{
	expect_refused(probe("small_size"), "descriptor is 16 bytes");
}
END_TEST

START_TEST(missing_symbol_refused)
{
	expect_refused(probe("no_symbol"), OSKR_PLUGIN_SYMBOL);
}
END_TEST

START_TEST(non_elf_refused)
{
	char dir[] = "/tmp/oskr-loader-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/notelf.so", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("this is not a shared object\n", f);
	fclose(f);
	expect_refused(path, "cannot load plugin");
	unlink(path);
	rmdir(dir);
}
END_TEST

START_TEST(missing_file_refused)
{
	expect_refused("/nonexistent/oskr/plugin.so",
		       "No such file or directory");
}
END_TEST

START_TEST(unknown_name_lists_search_path)
{
	struct oskr_loaded_plugin plugin;
	char *err = NULL;
	ck_assert_int_lt(oskr__plugin_load("no-such-protocol", &plugin, &err),
			 0);
	ck_assert_ptr_nonnull(strstr(err, "plugin 'no-such-protocol' not "
					  "found"));
	free(err);
	err = NULL;
	ck_assert_int_lt(oskr__plugin_load("Bad Name!", &plugin, &err), 0);
	ck_assert_ptr_nonnull(strstr(err, "invalid plugin name"));
	free(err);
}
END_TEST

START_TEST(name_found_on_plugin_path)
{
	/* OSKR_PLUGIN_PATH is searched first: find probe_good by name. */
	const char *build = getenv("OSKR_BUILD_DIR");
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/test/plugins", build ? build : "build");
	char *old = getenv("OSKR_PLUGIN_PATH") ? strdup(getenv("OSKR_PLUGIN_PATH"))
					       : NULL;
	setenv("OSKR_PLUGIN_PATH", dir, 1);
	struct oskr_loaded_plugin plugin;
	char *err = NULL;
	int rc = oskr__plugin_load("probe_good", &plugin, &err);
	ck_assert_msg(rc == 0, "%s", err ? err : "?");
	oskr__plugin_unload(&plugin);
	if (old) {
		setenv("OSKR_PLUGIN_PATH", old, 1);
		free(old);
	} else {
		unsetenv("OSKR_PLUGIN_PATH");
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("loader");
	TCase *tc = tcase_create("loader");
	tcase_add_test(tc, good_plugin_loads);
	tcase_add_test(tc, wrong_major_refused);
	tcase_add_test(tc, newer_minor_refused);
	tcase_add_test(tc, small_size_refused);
	tcase_add_test(tc, missing_symbol_refused);
	tcase_add_test(tc, non_elf_refused);
	tcase_add_test(tc, missing_file_refused);
	tcase_add_test(tc, unknown_name_lists_search_path);
	tcase_add_test(tc, name_found_on_plugin_path);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
