/* SPDX-License-Identifier: MIT */
/*
 * Plugin loader. The descriptor is checked before any plugin code runs
 * (Knot DNS, GStreamer): same ABI major, plugin minor <= host minor, and a
 * `size` at least the 1.0 layout (SQLite's lesson: a size field catches a
 * struct that changed without a version bump).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif
#include "loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* The 1.0 descriptor ends with client_fini: anything smaller is a plugin
 * compiled against a header we never shipped. */
#define OSKR_PLUGIN_SIZE_1_0                                              \
	(offsetof(struct oskr_plugin, client_fini) +                      \
	 sizeof(((struct oskr_plugin *)0)->client_fini))

int oskr__plugin_check(const struct oskr_plugin *d, const char *path,
		       char **err)
{
	if (d->abi_major != OSKR_ABI_MAJOR)
		return oskr__errorf(err,
				    "%s: plugin ABI %u.%u is incompatible with "
				    "this host's ABI %u.%u (major differs)",
				    path, d->abi_major, d->abi_minor,
				    OSKR_ABI_MAJOR, OSKR_ABI_MINOR);
	if (d->abi_minor > OSKR_ABI_MINOR)
		return oskr__errorf(err,
				    "%s: plugin needs ABI %u.%u but this host "
				    "provides %u.%u (upgrade oskrd)",
				    path, d->abi_major, d->abi_minor,
				    OSKR_ABI_MAJOR, OSKR_ABI_MINOR);
	if (d->size < OSKR_PLUGIN_SIZE_1_0)
		return oskr__errorf(err,
				    "%s: plugin descriptor is %u bytes, smaller "
				    "than the ABI %u.0 layout (%zu bytes): "
				    "rebuild it against the oskr headers",
				    path, d->size, OSKR_ABI_MAJOR,
				    (size_t)OSKR_PLUGIN_SIZE_1_0);
	if (!d->name || !d->name[0])
		return oskr__errorf(err, "%s: plugin descriptor has no name",
				    path);
	if (!d->version)
		return oskr__errorf(err, "%s: plugin '%s' has no version",
				    path, d->name);
	if (!d->replica_init || !d->replica_receive)
		return oskr__errorf(err,
				    "%s: plugin '%s' lacks replica_init or "
				    "replica_receive",
				    path, d->name);
	if (d->client_init && (!d->client_invoke || !d->client_receive))
		return oskr__errorf(err,
				    "%s: plugin '%s' has client_init but lacks "
				    "client_invoke or client_receive",
				    path, d->name);
	return 0;
}

static bool looks_like_path(const char *name)
{
	size_t len = strlen(name);
	return strchr(name, '/') != NULL ||
	       (len > 3 && strcmp(name + len - 3, ".so") == 0);
}

static bool valid_plugin_name(const char *name)
{
	if (!*name)
		return false;
	for (const char *p = name; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      *p == '_' || *p == '-'))
			return false;
	}
	return true;
}

/* Directory of the running executable, e.g. "/usr/sbin" or ".../build". */
static char *executable_dir(void)
{
	char path[4096];
	ssize_t len = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (len <= 0)
		return NULL;
	path[len] = '\0';
	char *slash = strrchr(path, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	return strdup(path);
}

/* Search order: $OSKR_PLUGIN_PATH, next to the executable (the build tree:
 * build/oskrd finds build/plugins), the install layout relative to the
 * executable (a DESTDIR tree: usr/sbin/oskrd finds usr/lib/oskr/plugins),
 * then the configured PLUGINDIR. An installed oskrd finds its plugins by
 * name with no path in the config. */
static char *find_plugin(const char *name, char **err)
{
	const char *env = getenv("OSKR_PLUGIN_PATH");
	char *exe_dir = executable_dir();
	char *dirs = NULL;
	if (asprintf(&dirs, "%s%s%s/plugins:%s/../lib/oskr/plugins:%s",
		     env ? env : "", env ? ":" : "", exe_dir ? exe_dir : ".",
		     exe_dir ? exe_dir : ".", OSKR_INSTALL_PLUGIN_DIR) < 0) {
		free(exe_dir);
		return NULL;
	}
	free(exe_dir);
	char *searched = strdup(dirs);
	char *saveptr = NULL;
	char *found = NULL;
	for (char *dir = strtok_r(dirs, ":", &saveptr); dir;
	     dir = strtok_r(NULL, ":", &saveptr)) {
		char *candidate = NULL;
		if (asprintf(&candidate, "%s/%s.so", dir, name) < 0)
			break;
		if (access(candidate, F_OK) == 0) {
			found = candidate;
			break;
		}
		free(candidate);
	}
	if (!found)
		oskr__errorf(err,
			     "plugin '%s' not found: no %s.so in %s "
			     "(set OSKR_PLUGIN_PATH or give a path)",
			     name, name, searched ? searched : "?");
	free(searched);
	free(dirs);
	return found;
}

int oskr__plugin_load(const char *name_or_path, struct oskr_loaded_plugin *out,
		      char **err)
{
	memset(out, 0, sizeof(*out));
	char *path;
	if (looks_like_path(name_or_path)) {
		path = strdup(name_or_path);
	} else {
		if (!valid_plugin_name(name_or_path))
			return oskr__errorf(err,
					    "invalid plugin name '%s' (expected "
					    "[a-z0-9_-]+ or a path to a .so)",
					    name_or_path);
		path = find_plugin(name_or_path, err);
		if (!path)
			return -ENOENT;
	}
	if (!path)
		return -ENOMEM;
	if (access(path, R_OK) != 0) {
		int e = errno;
		oskr__errorf(err, "%s: cannot load plugin: %s", path,
			     strerror(e));
		free(path);
		return -e;
	}
	/* RTLD_LOCAL: two plugins may export the same internal names. */
	void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!handle) {
		oskr__errorf(err, "%s: cannot load plugin: %s", path,
			     dlerror());
		free(path);
		return -ENOEXEC;
	}
	dlerror();
	const struct oskr_plugin *d = dlsym(handle, OSKR_PLUGIN_SYMBOL);
	const char *dl_error = dlerror();
	if (!d || dl_error) {
		oskr__errorf(err,
			     "%s: not an oskr plugin: symbol '%s' not found "
			     "(declare it with OSKR_PLUGIN_EXPORT)",
			     path, OSKR_PLUGIN_SYMBOL);
		dlclose(handle);
		free(path);
		return -ENOENT;
	}
	int rc = oskr__plugin_check(d, path, err);
	if (rc < 0) {
		dlclose(handle);
		free(path);
		return rc;
	}
	out->handle = handle;
	out->path = path;
	out->descriptor = d;
	return 0;
}

void oskr__plugin_unload(struct oskr_loaded_plugin *plugin)
{
	if (plugin->handle)
		dlclose(plugin->handle);
	free(plugin->path);
	memset(plugin, 0, sizeof(*plugin));
}
