/* SPDX-License-Identifier: MIT */
#include "app.h"

#include <string.h>

static const struct oskr_app_ops *const known_apps[] = {
	&oskr__app_null,
	&oskr__app_kv,
};

const struct oskr_app_ops *oskr__app_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < sizeof(known_apps) / sizeof(known_apps[0]);
	     i++) {
		if (strcmp(known_apps[i]->name, name) == 0)
			return known_apps[i];
	}
	return NULL;
}
