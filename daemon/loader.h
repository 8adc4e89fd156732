/* SPDX-License-Identifier: MIT */
/* The plugin loader: dlopen(RTLD_NOW | RTLD_LOCAL), then the descriptor's
 * ABI major/minor and size are checked before any plugin code runs. */
#ifndef OSKR_DAEMON_LOADER_H
#define OSKR_DAEMON_LOADER_H

#include <oskr/plugin.h>

struct oskr_loaded_plugin {
	void *handle; /* dlopen handle */
	char *path; /* resolved file */
	const struct oskr_plugin *descriptor;
};

/** Resolve @p name_or_path: a value containing '/' or ending in ".so" is a
 *  path; otherwise "<dir>/<name>.so" is tried for each directory in
 *  $OSKR_PLUGIN_PATH (colon separated), then the build's plugin dir, then
 *  the installed $(LIBDIR)/oskr/plugins. Returns 0 or negative with *err
 *  naming the file and the reason. */
int oskr__plugin_load(const char *name_or_path, struct oskr_loaded_plugin *out,
		      char **err);
void oskr__plugin_unload(struct oskr_loaded_plugin *plugin);

/** Check a descriptor (also used for statically linked plugins). */
int oskr__plugin_check(const struct oskr_plugin *descriptor, const char *path,
		       char **err);

#endif
