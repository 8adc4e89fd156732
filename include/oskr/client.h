/* SPDX-License-Identifier: MIT */
/**
 * @file oskr/client.h
 * @brief liboskr-client: invoke operations on an oskr cluster.
 *
 * A client reads the same YAML config as the replicas, loads the protocol
 * plugin named there and runs the plugin's client side (send, retransmit,
 * decide when a result is final) over the configured transport.
 *
 * Threads: a struct oskr_client is not thread safe. One thread may drive
 * many clients with oskr_client_poll(); use separate clients per thread.
 */
#ifndef OSKR_CLIENT_H
#define OSKR_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct oskr_client;

struct oskr_client_options {
	/** sizeof(struct oskr_client_options). */
	uint32_t size;
	/** Protocol plugin name or path overriding the config's `protocol`
	 *  (the seed's `-m`), or NULL. */
	const char *protocol;
};

/**
 * Open a client for the cluster described by @p config_path.
 * @param options may be NULL.
 * @param err receives a message naming the file and reason on failure.
 * @return 0 or a negative errno.
 */
int oskr_client_open(struct oskr_client **out, const char *config_path,
		     const struct oskr_client_options *options, char *err,
		     size_t err_len);
/** Stop the client's plugin instance and free everything. */
void oskr_client_close(struct oskr_client *client);

/**
 * Invoke @p op and wait for its final result, at most @p timeout_ms.
 * The result is copied to @p result (capacity @p result_capacity).
 * @return 0, -ETIMEDOUT, -ENOSPC (result larger than the capacity; the
 *         request did complete), or another negative errno.
 */
int oskr_client_invoke(struct oskr_client *client, const void *op,
		       size_t op_len, void *result, size_t result_capacity,
		       size_t *result_len, uint64_t timeout_ms);

/** Completion callback: @p result is borrowed for the call. */
typedef void (*oskr_client_done_fn)(void *arg, uint64_t request_number,
				    const void *result, size_t result_len);

/**
 * Start @p op without waiting; @p done runs from oskr_client_poll() when
 * the result is final. At most one request is outstanding per client.
 * @return 0, -EBUSY if one is outstanding, or a negative errno (then done
 *         is never called).
 */
int oskr_client_invoke_async(struct oskr_client *client, const void *op,
			     size_t op_len, oskr_client_done_fn done,
			     void *arg);

/**
 * Run @p count clients for up to @p timeout_ms: receive replies, fire
 * retransmission timers, call completion callbacks. Returns after the
 * first batch of events or the timeout; the number of completions, or a
 * negative errno.
 */
int oskr_client_poll(struct oskr_client *const *clients, size_t count,
		     int timeout_ms);

/** This client's 64-bit id in the cluster. */
uint64_t oskr_client_id(const struct oskr_client *client);

#ifdef __cplusplus
}
#endif

#endif
