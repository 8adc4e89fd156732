/* SPDX-License-Identifier: MIT */
/* Logging for the host: leveled lines to stderr, safe from any thread. */
#ifndef OSKR_DAEMON_LOG_H
#define OSKR_DAEMON_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include <oskr/plugin.h>

/** Current threshold; lines above it are not formatted. Set at start-up
 *  and on SIGHUP (relaxed atomic store). */
void oskr__log_set_level(enum oskr_log_level level);
enum oskr_log_level oskr__log_get_level(void);
/** Parse "error|warn|info|debug"; returns 0 or -EINVAL. */
int oskr__log_level_parse(const char *text, enum oskr_log_level *out);
const char *oskr__log_level_name(enum oskr_log_level level);
/** Tag put in front of every line, e.g. "oskrd[0]". Not thread safe:
 *  set before threads start. */
void oskr__log_set_tag(const char *tag);

void oskr__log(enum oskr_log_level level, const char *fmt, ...)
	OSKR_PRINTF(2, 3);
void oskr__vlog(enum oskr_log_level level, const char *prefix,
		const char *fmt, va_list ap);

#define OSKR_ERROR(...) oskr__log(OSKR_LOG_ERROR, __VA_ARGS__)
#define OSKR_WARN(...) oskr__log(OSKR_LOG_WARN, __VA_ARGS__)
#define OSKR_INFO(...) oskr__log(OSKR_LOG_INFO, __VA_ARGS__)
#define OSKR_DEBUG(...) oskr__log(OSKR_LOG_DEBUG, __VA_ARGS__)

/** Format into a freshly malloc'd string stored in *err (for the
 *  HAProxy-style `char **err` convention). Frees a previous *err. Returns
 *  -EINVAL so callers can `return oskr__errorf(err, …)`. */
int oskr__errorf(char **err, const char *fmt, ...) OSKR_PRINTF(2, 3);

#endif
