/* SPDX-License-Identifier: MIT */
/* The sim's private data, shared by the sim/ sources only. */
#ifndef OSKR_SIM_INTERNAL_H
#define OSKR_SIM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oskr/kv.h>
#include <oskr/plugin.h>

#include "daemon/buf.h"
#include "sim.h"

struct oskr_app_ops;
struct evp_md_ctx_st;
struct evp_md_st;
struct evp_pkey_st;

#define SIM_DEFAULT_MIN_DELAY_NS 10000
#define SIM_DEFAULT_MAX_DELAY_NS 50000
#define SIM_DEFAULT_MAX_MESSAGE 65000
/* Stateless tasks and the next stateful task run this much after they
 * are submitted, at most: the spread lets seeds explore interleavings. */
#define SIM_TASK_JITTER_NS 2000
/* Per-instance bound on queued tasks, like oskrd's default ring size:
 * a plugin that floods its queues sees -EAGAIN here as well. */
#define SIM_QUEUE_LIMIT 65536
#define SIM_WORKER_COUNT 2
#define SIM_CLIENT_ID_BASE 1000
#define SIM_MAX_COUNTERS 96
/* Positions of the shared reference log kept for the prefix check. */
#define SIM_REFERENCE_RING (1u << 18)
/* Past completions remembered per client, to catch a plugin completing an
 * old request again with a different result. */
#define SIM_CLIENT_HISTORY 256
#define SIM_FAST_KEY_SIZE 32
/* Sweep cancelled timers out of the heap past this many. */
#define SIM_COMPACT_MIN 4096

struct sim_prng {
	uint64_t s[4];
};

enum sim_event_kind {
	SIM_EV_DELIVER,
	SIM_EV_STATELESS,
	SIM_EV_STATEFUL,
	SIM_EV_TIMER,
};

struct sim_event {
	uint64_t time, seq;
	uint32_t kind; /* enum sim_event_kind */
	uint32_t node; /* index into sim->nodes */
	union {
		struct {
			struct oskr_buf *buf;
			int32_t src;
		} deliver;
		struct {
			oskr_task_fn fn;
			void *arg;
		} task;
		struct {
			oskr_task_fn fn;
			void *arg;
			oskr_timer_id id;
		} timer;
	};
};

struct sim_task {
	oskr_task_fn fn;
	void *arg;
};

struct sim_id_set {
	uint64_t *slots; /* 0 = empty */
	size_t capacity; /* power of two */
	size_t count;
};

struct sim_counter {
	uint32_t hash;
	char name[64];
	uint64_t value;
};

struct sim_buf {
	struct oskr__buf base; /* must stay first */
	struct oskr_sim *sim;
	struct sim_buf *prev, *next; /* the sim's live list */
	uint8_t data[];
};

struct sim_completion {
	uint64_t request_number; /* 0 = empty */
	uint8_t digest[OSKR_DIGEST_SIZE];
};

struct sim_client {
	bool busy;
	uint64_t outstanding;
	uint64_t next_request; /* last number handed out */
	bool has_result;
	uint8_t *result;
	size_t result_len, result_capacity;
	struct sim_completion *history; /* SIM_CLIENT_HISTORY, lazily */
};

/* A replica's latest declared checkpoint: its durable storage in the sim. */
struct sim_checkpoint {
	bool valid;
	uint64_t op;
	uint8_t *app; /* a sim snapshot blob (oskr__sim_snapshot format) */
	size_t app_len;
	uint8_t *protocol;
	size_t protocol_len;
};

struct sim_node {
	struct oskr_ctx ctx; /* must stay first: plugins get &ctx */
	struct oskr_sim *sim;
	uint32_t index; /* in sim->nodes */
	int32_t id; /* replica id, or OSKR_SIM_CLIENT(k) */
	uint32_t label; /* r or k, for messages */
	bool is_client;
	bool initialized, crashed, byzantine;
	struct oskr_instance_info info;
	void *state;
	void *app;

	/* stateful FIFO (ring) */
	struct sim_task *fifo;
	size_t fifo_capacity, fifo_head, fifo_count;
	bool drain_scheduled;
	size_t stateless_pending;

	struct sim_id_set timers; /* armed timer ids */

	struct sim_counter counters[SIM_MAX_COUNTERS];
	size_t counter_count;

	uint64_t status_view, status_committed, status_executed;
	int32_t status_leader;

	/* execution record: position and digest chain over every op */
	uint64_t executed;
	uint8_t chain[OSKR_DIGEST_SIZE];

	struct sim_client client;

	/* durable checkpoints: the latest declared one survives restarts */
	struct sim_checkpoint checkpoint;
	uint64_t checkpoint_count;
	/* set while replica_init runs; resume holds a private copy of the
	 * checkpoint restored for it (valid until replica_init returns) */
	bool in_init;
	struct sim_checkpoint resume;
};

struct sim_reference {
	uint64_t position; /* 0 = empty */
	uint8_t chain[OSKR_DIGEST_SIZE];
	int32_t replica; /* who recorded it */
};

struct oskr_sim {
	const struct oskr_plugin *plugin;
	const struct oskr_app_ops *app_ops;
	uint32_t replica_count, fault_count, client_count;
	uint64_t seed;
	struct oskr_conf *options_root; /* parse tree, owned */
	const struct oskr_conf *options; /* the mapping, or NULL */

	struct sim_node *nodes; /* replicas, then clients */
	size_t node_count;

	struct sim_prng prng;
	uint64_t now;
	struct sim_event *heap;
	size_t heap_count, heap_capacity;
	uint64_t next_seq;
	uint64_t next_timer_id;
	uint64_t cancelled_in_heap; /* cancelled timers still queued */
	uint64_t events_run;
	uint64_t trace;

	/* who runs now, for the stateful-only checks */
	struct sim_node *running;
	bool running_stateful;

	/* network */
	double drop_rate, duplicate_rate;
	uint64_t min_delay_ns, max_delay_ns;
	uint32_t max_message;
	bool partition_active, partition_isolate_clients;
	uint64_t partition_mask;
	oskr_sim_filter_fn filter;
	void *filter_arg;
	uint8_t *scratch; /* max_message bytes */
	struct oskr_sim_net_stats net;

	struct sim_buf *live_buf_head;
	uint64_t live_buffers;

	/* crypto */
	bool real_signatures;
	struct evp_md_st *sha256;
	struct evp_md_ctx_st *md_ctx;
	struct evp_md_ctx_st *hmac_inner[OSKR_SIM_MAX_REPLICAS];
	struct evp_md_ctx_st *hmac_outer[OSKR_SIM_MAX_REPLICAS];
	struct evp_pkey_st *keys[OSKR_SIM_MAX_REPLICAS];

	/* safety */
	struct sim_reference *reference; /* SIM_REFERENCE_RING entries */
	bool violated;
	char violation[256];
	uint64_t completed;

	/* workload */
	bool workload_active;
	uint32_t *idle_clients;
	size_t idle_count;
	uint64_t workload_issued;
	uint64_t workload_counter;
};

struct sim_node *oskr__sim_node(struct oskr_sim *sim, int32_t node_id);
bool oskr__sim_step(struct oskr_sim *sim, uint64_t limit);
int oskr__sim_invoke_node(struct sim_node *node, const void *op,
			  size_t op_len, uint64_t *request_number);

/* sim_crypto.c */
int oskr__sim_crypto_init(struct oskr_sim *sim);
void oskr__sim_crypto_fini(struct oskr_sim *sim);
size_t oskr__sim_signature_size(struct oskr_sim *sim);
int oskr__sim_sign(struct oskr_sim *sim, uint32_t replica, const void *data,
		   size_t len, uint8_t *sig, size_t *sig_len);
bool oskr__sim_verify(struct oskr_sim *sim, uint32_t replica,
		      const void *data, size_t len, const uint8_t *sig,
		      size_t sig_len);
void oskr__sim_sha256(struct oskr_sim *sim, const void *data, size_t len,
		      uint8_t out[OSKR_DIGEST_SIZE]);

/* sim_check.c */
int oskr__sim_check_init(struct oskr_sim *sim);
void oskr__sim_check_fini(struct oskr_sim *sim);
void oskr__sim_record_execution(struct sim_node *node, const void *op,
				size_t op_len);
void oskr__sim_reset_execution(struct sim_node *node);
int oskr__sim_snapshot(struct sim_node *node, void **out, size_t *out_len);
int oskr__sim_restore(struct sim_node *node, const void *snapshot,
		      size_t len);
bool oskr__sim_snapshot_valid(const void *snapshot, size_t len);
int oskr__sim_client_complete(struct sim_node *node, uint64_t request_number,
			      const void *result, size_t len);
void oskr__sim_client_fini(struct sim_node *node);

#endif
