/* SPDX-License-Identifier: MIT */
/* Client instance state (client.c); the descriptor needs its size. */
#ifndef OSKR_PLUGINS_HOTSTUFF_CLIENT_H
#define OSKR_PLUGINS_HOTSTUFF_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include <oskr/plugin.h>

#include "codec.h"

struct oskr__hs_client_result {
	uint8_t digest[OSKR__HS_DIGEST];
	uint32_t votes;
	uint32_t len;
	uint8_t *bytes;
};

struct oskr__hs_client {
	uint64_t client_id;
	uint32_t n, f;
	uint64_t base_retry_ns;
	uint64_t retry_ns;
	oskr_timer_id retry_timer;

	bool busy;
	uint64_t request_number;
	uint8_t *op;
	uint32_t op_len;

	/* replies to the outstanding request, grouped by result digest */
	uint64_t replied; /* bit r: replica r answered */
	uint32_t result_count;
	struct oskr__hs_client_result results[OSKR__HS_MAX_REPLICAS];
};

#endif
