/* SPDX-License-Identifier: MIT */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* vasprintf */
#endif
#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Atomic int current_level = OSKR_LOG_INFO;
static char log_tag[64] = "oskr";

static const char *const level_names[] = {
	[OSKR_LOG_ERROR] = "error",
	[OSKR_LOG_WARN] = "warn",
	[OSKR_LOG_INFO] = "info",
	[OSKR_LOG_DEBUG] = "debug",
};

void oskr__log_set_level(enum oskr_log_level level)
{
	atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
}

enum oskr_log_level oskr__log_get_level(void)
{
	return (enum oskr_log_level)atomic_load_explicit(&current_level,
							 memory_order_relaxed);
}

int oskr__log_level_parse(const char *text, enum oskr_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	     i++) {
		if (strcmp(text, level_names[i]) == 0) {
			*out = (enum oskr_log_level)i;
			return 0;
		}
	}
	if (strcmp(text, "warning") == 0) {
		*out = OSKR_LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

const char *oskr__log_level_name(enum oskr_log_level level)
{
	if ((unsigned)level < sizeof(level_names) / sizeof(level_names[0]))
		return level_names[level];
	return "?";
}

void oskr__log_set_tag(const char *tag)
{
	snprintf(log_tag, sizeof(log_tag), "%s", tag);
}

void oskr__vlog(enum oskr_log_level level, const char *prefix,
		const char *fmt, va_list ap)
{
	if ((int)level > atomic_load_explicit(&current_level,
					      memory_order_relaxed))
		return;
	/* Format the whole line first so concurrent writers never interleave
	 * inside a line (one write(2) per line). */
	char line[1024];
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct tm tm;
	gmtime_r(&now.tv_sec, &tm);
	int used = snprintf(line, sizeof(line),
			    "%02d:%02d:%02d.%03ld %s %s: %s%s", tm.tm_hour,
			    tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000,
			    log_tag, oskr__log_level_name(level),
			    prefix ? prefix : "", prefix ? ": " : "");
	if (used < 0)
		return;
	if ((size_t)used < sizeof(line))
		used += vsnprintf(line + used, sizeof(line) - (size_t)used,
				  fmt, ap);
	if ((size_t)used >= sizeof(line) - 1)
		used = (int)sizeof(line) - 2;
	line[used++] = '\n';
	fwrite(line, 1, (size_t)used, stderr);
}

void oskr__log(enum oskr_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	oskr__vlog(level, NULL, fmt, ap);
	va_end(ap);
}

int oskr__errorf(char **err, const char *fmt, ...)
{
	if (!err)
		return -EINVAL;
	free(*err);
	*err = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(err, fmt, ap) < 0)
		*err = NULL;
	va_end(ap);
	return -EINVAL;
}
