/* SPDX-License-Identifier: MIT */
/*
 * The sim's safety checker.
 *
 * Replicas: each keeps its execution position p and a digest chain
 * chain_p = SHA-256(chain_{p-1} || SHA-256(op_p)), so equal chains at equal
 * positions mean equal prefixes. A shared ring of the last
 * SIM_REFERENCE_RING positions holds the chain the first correct replica
 * reached at each position; every later correct replica reaching that
 * position is compared with it. Memory stays bounded (about 12 MB of ring
 * at most, touched lazily) however long the run; a replica lagging more
 * than the ring behind is compared again once it is back inside it, and
 * since the chain covers the whole prefix nothing escapes.
 *
 * Snapshots carry the position and chain in front of the app's bytes, so
 * a replica that restores one continues the comparison from there.
 *
 * Clients: each remembers the digests of its last SIM_CLIENT_HISTORY
 * completed requests; completing one of them again with a different result
 * is a violation, and so is completing a request that was never invoked.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/app.h"
#include "daemon/log.h"
#include "sim_internal.h"

#define SIM_SNAPSHOT_MAGIC "OSKRSIM1"
#define SIM_SNAPSHOT_MAGIC_LEN 8
#define SIM_SNAPSHOT_HEADER (SIM_SNAPSHOT_MAGIC_LEN + 8 + OSKR_DIGEST_SIZE)

int oskr__sim_check_init(struct oskr_sim *sim)
{
	/* calloc: pages are touched only as positions are reached. */
	sim->reference = calloc(SIM_REFERENCE_RING, sizeof(*sim->reference));
	return sim->reference ? 0 : -ENOMEM;
}

void oskr__sim_check_fini(struct oskr_sim *sim)
{
	free(sim->reference);
	sim->reference = NULL;
}

static void violation(struct oskr_sim *sim, const char *fmt, ...)
	OSKR_PRINTF(2, 3);

static void violation(struct oskr_sim *sim, const char *fmt, ...)
{
	if (sim->violated)
		return; /* the first one is the interesting one */
	sim->violated = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sim->violation, sizeof(sim->violation), fmt, ap);
	va_end(ap);
	oskr__log(OSKR_LOG_ERROR, "sim: safety violation: %s", sim->violation);
}

static void compare_with_reference(struct sim_node *node)
{
	struct oskr_sim *sim = node->sim;
	if (node->byzantine || node->executed == 0)
		return;
	struct sim_reference *ref =
		&sim->reference[node->executed % SIM_REFERENCE_RING];
	if (ref->position == node->executed) {
		if (memcmp(ref->chain, node->chain, OSKR_DIGEST_SIZE) != 0) {
			struct sim_node *first =
				ref->replica >= 0 &&
						(uint32_t)ref->replica <
							sim->replica_count
					? &sim->nodes[ref->replica]
					: NULL;
			if (first && first->byzantine) {
				/* Recorded before it was marked Byzantine:
				 * the correct replica takes over. */
				memcpy(ref->chain, node->chain,
				       OSKR_DIGEST_SIZE);
				ref->replica = node->id;
				return;
			}
			violation(sim,
				  "replica %d and replica %d executed different "
				  "sequences (they differ at or before op %" PRIu64
				  ")",
				  ref->replica, node->id, node->executed);
		}
	} else if (ref->position < node->executed) {
		ref->position = node->executed;
		memcpy(ref->chain, node->chain, OSKR_DIGEST_SIZE);
		ref->replica = node->id;
	}
	/* else: this replica lags a whole ring behind; it is checked again
	 * when it reaches a position still in the ring. */
}

void oskr__sim_record_execution(struct sim_node *node, const void *op,
				size_t op_len)
{
	struct oskr_sim *sim = node->sim;
	uint8_t link[2 * OSKR_DIGEST_SIZE];
	memcpy(link, node->chain, OSKR_DIGEST_SIZE);
	oskr__sim_sha256(sim, op, op_len, link + OSKR_DIGEST_SIZE);
	oskr__sim_sha256(sim, link, sizeof(link), node->chain);
	node->executed++;
	compare_with_reference(node);
}

void oskr__sim_reset_execution(struct sim_node *node)
{
	node->executed = 0;
	memset(node->chain, 0, sizeof(node->chain));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Snapshot blob: "OSKRSIM1" | u64 position | chain | app snapshot. Two
 * correct replicas at one position produce identical blobs. */
int oskr__sim_snapshot(struct sim_node *node, void **out, size_t *out_len)
{
	struct oskr_sim *sim = node->sim;
	void *app_blob = NULL;
	size_t app_len = 0;
	int ret = sim->app_ops->snapshot(node->app, &app_blob, &app_len);
	if (ret)
		return ret;
	uint8_t *blob = malloc(SIM_SNAPSHOT_HEADER + app_len);
	if (!blob) {
		free(app_blob);
		return -ENOMEM;
	}
	memcpy(blob, SIM_SNAPSHOT_MAGIC, SIM_SNAPSHOT_MAGIC_LEN);
	put_u64(blob + SIM_SNAPSHOT_MAGIC_LEN, node->executed);
	memcpy(blob + SIM_SNAPSHOT_MAGIC_LEN + 8, node->chain,
	       OSKR_DIGEST_SIZE);
	if (app_len)
		memcpy(blob + SIM_SNAPSHOT_HEADER, app_blob, app_len);
	free(app_blob);
	*out = blob;
	*out_len = SIM_SNAPSHOT_HEADER + app_len;
	return 0;
}

/* Has the sim snapshot header (the app's part is checked by restore). */
bool oskr__sim_snapshot_valid(const void *snapshot, size_t len)
{
	return snapshot && len >= SIM_SNAPSHOT_HEADER &&
	       memcmp(snapshot, SIM_SNAPSHOT_MAGIC, SIM_SNAPSHOT_MAGIC_LEN) ==
		       0;
}

int oskr__sim_restore(struct sim_node *node, const void *snapshot, size_t len)
{
	struct oskr_sim *sim = node->sim;
	const uint8_t *p = snapshot;
	if (!oskr__sim_snapshot_valid(snapshot, len))
		return -EINVAL;
	int ret = sim->app_ops->restore(node->app, p + SIM_SNAPSHOT_HEADER,
					len - SIM_SNAPSHOT_HEADER);
	if (ret)
		return ret;
	node->executed = get_u64(p + SIM_SNAPSHOT_MAGIC_LEN);
	memcpy(node->chain, p + SIM_SNAPSHOT_MAGIC_LEN + 8, OSKR_DIGEST_SIZE);
	compare_with_reference(node);
	return 0;
}

/* ---- clients ---- */

static void remember(struct sim_node *node, uint64_t request_number,
		     const uint8_t digest[OSKR_DIGEST_SIZE])
{
	struct sim_client *client = &node->client;
	if (!client->history) {
		client->history =
			calloc(SIM_CLIENT_HISTORY, sizeof(*client->history));
		if (!client->history)
			return; /* history is best effort */
	}
	struct sim_completion *slot =
		&client->history[request_number % SIM_CLIENT_HISTORY];
	slot->request_number = request_number;
	memcpy(slot->digest, digest, OSKR_DIGEST_SIZE);
}

int oskr__sim_client_complete(struct sim_node *node, uint64_t request_number,
			      const void *result, size_t len)
{
	struct oskr_sim *sim = node->sim;
	struct sim_client *client = &node->client;
	if (len && !result)
		return -EINVAL;
	uint8_t digest[OSKR_DIGEST_SIZE];
	oskr__sim_sha256(sim, result ? result : "", len, digest);

	if (!client->busy || request_number != client->outstanding) {
		if (request_number == 0 ||
		    request_number > client->next_request) {
			violation(sim,
				  "client %u completed request %" PRIu64
				  " that was never invoked",
				  node->label, request_number);
			return -EINVAL;
		}
		struct sim_completion *slot =
			client->history ? &client->history[request_number %
							   SIM_CLIENT_HISTORY]
					: NULL;
		if (slot && slot->request_number == request_number &&
		    memcmp(slot->digest, digest, OSKR_DIGEST_SIZE) != 0)
			violation(sim,
				  "client %u accepted two different results "
				  "for request %" PRIu64,
				  node->label, request_number);
		return 0; /* a second completion is ignored */
	}

	if (len > client->result_capacity) {
		uint8_t *copy = realloc(client->result, len);
		if (!copy)
			return -ENOMEM;
		client->result = copy;
		client->result_capacity = len;
	}
	if (len)
		memcpy(client->result, result, len);
	client->result_len = len;
	client->has_result = true;
	client->busy = false;
	remember(node, request_number, digest);
	sim->completed++;
	if (sim->workload_active && sim->idle_clients)
		sim->idle_clients[sim->idle_count++] = node->label;
	return 0;
}

void oskr__sim_client_fini(struct sim_node *node)
{
	free(node->client.result);
	free(node->client.history);
	node->client.result = NULL;
	node->client.history = NULL;
}

/* ---- public checks ---- */

bool oskr_sim_check_safety(struct oskr_sim *sim, char *why, size_t why_len)
{
	if (!sim->violated) {
		/* Belt and braces: replicas at equal positions must hold
		 * equal chains even where the ring no longer has the entry. */
		for (uint32_t a = 0; a < sim->replica_count; a++) {
			struct sim_node *na = &sim->nodes[a];
			if (na->byzantine || na->executed == 0)
				continue;
			for (uint32_t b = a + 1; b < sim->replica_count; b++) {
				struct sim_node *nb = &sim->nodes[b];
				if (nb->byzantine || nb->executed != na->executed)
					continue;
				if (memcmp(na->chain, nb->chain,
					   OSKR_DIGEST_SIZE) != 0)
					violation(sim,
						  "replica %u and replica %u "
						  "executed different "
						  "sequences (differ at or "
						  "before op %" PRIu64 ")",
						  a, b, na->executed);
			}
		}
	}
	if (sim->violated) {
		if (why && why_len)
			snprintf(why, why_len, "%s", sim->violation);
		return false;
	}
	if (why && why_len)
		why[0] = '\0';
	return true;
}

uint64_t oskr_sim_executed(struct oskr_sim *sim, uint32_t replica)
{
	if (replica >= sim->replica_count)
		return 0;
	return sim->nodes[replica].executed;
}
