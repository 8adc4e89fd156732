/* SPDX-License-Identifier: MIT */
/*
 * Replicated applications hosted by oskrd: the protocol decides the order,
 * the host executes ops on the application through these hooks. All hooks
 * are called from the stateful task only (one at a time).
 */
#ifndef OSKR_APPS_APP_H
#define OSKR_APPS_APP_H

#include <stddef.h>
#include <stdint.h>

#include <oskr/plugin.h>

struct oskr_app_ops {
	const char *name;
	/** @p options is the config's `app.options` (may be NULL). 0 or
	 *  negative with *err. */
	int (*create)(void **out, const struct oskr_conf *options, char **err);
	void (*destroy)(void *app);
	/** Execute one op; writes at most @p result_capacity bytes.
	 *  0, or -ENOSPC. A malformed op is not an error: it executes
	 *  deterministically to an error result on every replica. */
	int (*execute)(void *app, const void *op, size_t op_len, void *result,
		       size_t result_capacity, size_t *result_len);
	/** Serialize the whole state into a malloc'd blob (deterministic:
	 *  equal states give equal bytes, so replicas can compare digests). */
	int (*snapshot)(void *app, void **out, size_t *out_len);
	/** Replace the state; -EINVAL on a malformed snapshot (unchanged). */
	int (*restore)(void *app, const void *snapshot, size_t len);
};

extern const struct oskr_app_ops oskr__app_null;
extern const struct oskr_app_ops oskr__app_kv;

/** Look up "null" or "kv"; NULL if unknown. */
const struct oskr_app_ops *oskr__app_find(const char *name);

#endif
