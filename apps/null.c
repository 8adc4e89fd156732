/* SPDX-License-Identifier: MIT */
/* The null application: every op executes to an empty result and the
 * state is empty. It measures the protocol alone (the seed's 0/0 RPC). */
#include "app.h"

#include <errno.h>
#include <stdlib.h>

/* create() must return a non-NULL handle; the app has no state, so every
 * instance shares this byte. */
static char null_app_instance;

static int null_create(void **out, const struct oskr_conf *options,
		       char **err)
{
	*out = &null_app_instance;
	return 0;
}

static void null_destroy(void *app)
{
}

static int null_execute(void *app, const void *op, size_t op_len,
			void *result, size_t result_capacity,
			size_t *result_len)
{
	*result_len = 0;
	return 0;
}

static int null_snapshot(void *app, void **out, size_t *out_len)
{
	/* An empty state still needs a blob the caller can free. */
	void *blob = malloc(1);
	if (!blob)
		return -ENOMEM;
	*out = blob;
	*out_len = 0;
	return 0;
}

static int null_restore(void *app, const void *snapshot, size_t len)
{
	return len == 0 ? 0 : -EINVAL;
}

const struct oskr_app_ops oskr__app_null = {
	.name = "null",
	.create = null_create,
	.destroy = null_destroy,
	.execute = null_execute,
	.snapshot = null_snapshot,
	.restore = null_restore,
};
