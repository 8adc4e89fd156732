/* SPDX-License-Identifier: MIT */
/*
 * Unreplicated: one server executes client operations in arrival order and
 * answers. It is the baseline every replicated protocol is measured
 * against (the seed's "Unreplicated"), and with `signed: true` the
 * "Unreplicated Signed" variant whose server signs every reply, which
 * isolates the cost of signing from the cost of agreement.
 *
 * Replica 0 is the server. With n > 1 the other replicas start, count and
 * drop whatever reaches them ("drop_not_server") and otherwise stay idle,
 * so the plugin runs unchanged on any cluster file.
 *
 * Stage model:
 *  - replica_receive (stateless, any worker): decode and length-check the
 *    request, hold the buffer, submit_stateful;
 *  - execute (stateful): the client table decides between executing,
 *    re-sending the cached reply of a duplicate, or ignoring a stale
 *    request, so a retransmitted request is never executed twice;
 *  - signing (stateless): with `signed: true` the reply is signed and sent
 *    from a stateless task, so signatures are made on all workers in
 *    parallel while the stateful task executes the next request.
 *
 * The client table is bounded (`client_table_size` entries, least recently
 * used evicted first). A client evicted while it still retransmits an old
 * request would see it executed again, so size the table above the number
 * of concurrently active clients. Each entry caches its last result (at
 * most one message), which bounds memory to size x max_message.
 *
 * Client side: send to replica 0, retransmit every `retransmit_ms` until
 * the reply for the outstanding request arrives (verified when signed),
 * then complete exactly once; stale, duplicate and foreign replies are
 * dropped and counted.
 *
 * Options (protocol.options):
 *   signed: false             sign every reply
 *   client_table_size: 4096   clients remembered for exactly-once replies
 *   retransmit_ms: 100        client retransmission interval
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <oskr/plugin.h>

#include "codec.h"

#define SERVER_REPLICA 0
#define NO_ENTRY UINT32_MAX
#define TABLE_SIZE_MAX (1u << 20)

struct unreplicated_options {
	bool sign_replies;
	uint64_t client_table_size;
	uint64_t retransmit_ms;
};

struct client_entry {
	uint64_t client_id;
	uint64_t last_request; /* highest request number executed */
	uint8_t *result; /* its result, for duplicates */
	uint32_t result_len, result_capacity;
	bool has_result; /* false only if caching ran out of memory */
	uint32_t lru_prev, lru_next; /* towards newer / older entries */
};

/* Client id -> entry: an open-addressing index (slot = entry + 1, 0 is
 * empty) over a fixed array of entries chained in LRU order. The hash is
 * keyed per process so that chosen client ids cannot pile up in one probe
 * run; the table's behaviour does not depend on the key. */
struct client_table {
	struct client_entry *entries;
	uint32_t capacity, count;
	uint32_t *slots;
	uint32_t slot_mask;
	uint32_t newest, oldest;
	uint64_t hash_key;
};

struct unreplicated_replica {
	struct unreplicated_options options;
	const struct oskr_instance_info *info;
	bool server;
	size_t signature_size;
	struct client_table table;
	uint8_t *result; /* execution scratch, result_capacity bytes */
	size_t result_capacity;
	uint64_t executed;
};

struct unreplicated_client {
	struct unreplicated_options options;
	const struct oskr_instance_info *info;
	uint64_t request_number;
	uint8_t *op;
	size_t op_len, op_capacity;
	bool waiting;
	oskr_timer_id retransmit_timer;
};

/* A request on its way from the stateless to the stateful stage. */
struct request_task {
	struct oskr_buf *buf; /* held */
	struct oskr_addr from;
	struct unreplicated_request request; /* points into buf */
};

/* A reply on its way to be signed and sent. */
struct sign_task {
	struct oskr_buf *buf; /* owned; body already written */
	struct oskr_addr to;
	size_t body_len;
};

/* ---- options ---- */

static const char *const option_keys[] = {
	"signed",
	"client_table_size",
	"retransmit_ms",
	NULL,
};

static int read_options(const struct oskr_host *host,
			const struct oskr_conf *conf,
			struct unreplicated_options *options)
{
	if (host->conf_check_keys(conf, option_keys))
		return -EINVAL;
	if (host->conf_bool(conf, "signed", false, &options->sign_replies))
		return -EINVAL;
	if (host->conf_u64(conf, "client_table_size", 1, TABLE_SIZE_MAX, 4096,
			   &options->client_table_size))
		return -EINVAL;
	if (host->conf_ms(conf, "retransmit_ms", 1, 60000, 100,
			  &options->retransmit_ms))
		return -EINVAL;
	return 0;
}

static int unreplicated_config_check(const struct oskr_host *host,
				     const struct oskr_conf *conf,
				     uint32_t replica_count,
				     uint32_t fault_count)
{
	struct unreplicated_options options;
	if (replica_count < 1)
		return -EINVAL;
	return read_options(host, conf, &options);
}

/* ---- the client table ---- */

static uint64_t hash_client(const struct client_table *table,
			    uint64_t client_id)
{
	uint64_t x = client_id ^ table->hash_key;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

static int table_init(struct client_table *table, uint32_t capacity)
{
	uint32_t slots = 16;
	while (slots < 2 * capacity)
		slots *= 2;
	table->entries = calloc(capacity, sizeof(*table->entries));
	table->slots = calloc(slots, sizeof(*table->slots));
	if (!table->entries || !table->slots) {
		free(table->entries);
		free(table->slots);
		table->entries = NULL;
		table->slots = NULL;
		return -ENOMEM;
	}
	table->capacity = capacity;
	table->count = 0;
	table->slot_mask = slots - 1;
	table->newest = table->oldest = NO_ENTRY;
	if (getrandom(&table->hash_key, sizeof(table->hash_key), 0) !=
	    (ssize_t)sizeof(table->hash_key))
		table->hash_key = (uint64_t)(uintptr_t)table ^
				  0x9e3779b97f4a7c15ULL;
	return 0;
}

static void table_fini(struct client_table *table)
{
	for (uint32_t i = 0; i < table->count; i++)
		free(table->entries[i].result);
	free(table->entries);
	free(table->slots);
	table->entries = NULL;
	table->slots = NULL;
}

/* Slot holding @p client_id, or the empty slot where it would go. */
static uint32_t table_slot(const struct client_table *table,
			   uint64_t client_id)
{
	uint32_t i = (uint32_t)hash_client(table, client_id) & table->slot_mask;
	while (table->slots[i] &&
	       table->entries[table->slots[i] - 1].client_id != client_id)
		i = (i + 1) & table->slot_mask;
	return i;
}

static void lru_unlink(struct client_table *table, uint32_t index)
{
	struct client_entry *entry = &table->entries[index];
	if (entry->lru_prev != NO_ENTRY)
		table->entries[entry->lru_prev].lru_next = entry->lru_next;
	else
		table->newest = entry->lru_next;
	if (entry->lru_next != NO_ENTRY)
		table->entries[entry->lru_next].lru_prev = entry->lru_prev;
	else
		table->oldest = entry->lru_prev;
}

static void lru_push_newest(struct client_table *table, uint32_t index)
{
	struct client_entry *entry = &table->entries[index];
	entry->lru_prev = NO_ENTRY;
	entry->lru_next = table->newest;
	if (table->newest != NO_ENTRY)
		table->entries[table->newest].lru_prev = index;
	table->newest = index;
	if (table->oldest == NO_ENTRY)
		table->oldest = index;
}

/* Remove the index slot at @p hole, shifting later members of its probe
 * run back so lookups never stop early. */
static void table_remove_slot(struct client_table *table, uint32_t hole)
{
	uint32_t j = hole;
	for (;;) {
		j = (j + 1) & table->slot_mask;
		uint32_t slot = table->slots[j];
		if (!slot)
			break;
		uint32_t home = (uint32_t)hash_client(
					table,
					table->entries[slot - 1].client_id) &
				table->slot_mask;
		bool stays = hole <= j ? (hole < home && home <= j)
				       : (hole < home || home <= j);
		if (!stays) {
			table->slots[hole] = slot;
			hole = j;
		}
	}
	table->slots[hole] = 0;
}

static struct client_entry *table_find(struct client_table *table,
				       uint64_t client_id)
{
	uint32_t slot = table->slots[table_slot(table, client_id)];
	if (!slot)
		return NULL;
	lru_unlink(table, slot - 1);
	lru_push_newest(table, slot - 1);
	return &table->entries[slot - 1];
}

/* A fresh entry for @p client_id, evicting the least recently used one
 * when full. @p evicted is set when that happened. */
static struct client_entry *table_insert(struct client_table *table,
					 uint64_t client_id, bool *evicted)
{
	uint32_t index;
	*evicted = false;
	if (table->count < table->capacity) {
		index = table->count++;
	} else {
		index = table->oldest;
		lru_unlink(table, index);
		table_remove_slot(table, table_slot(
					  table,
					  table->entries[index].client_id));
		*evicted = true;
	}
	struct client_entry *entry = &table->entries[index];
	entry->client_id = client_id;
	entry->last_request = 0;
	entry->result_len = 0; /* keep the result allocation for reuse */
	entry->has_result = false;
	table->slots[table_slot(table, client_id)] = index + 1;
	lru_push_newest(table, index);
	return entry;
}

/* ---- replica ---- */

static int unreplicated_replica_init(struct oskr_ctx *ctx, void *state)
{
	struct unreplicated_replica *replica = state;
	const struct oskr_host *host = ctx->host;
	int ret = read_options(host, host->conf(ctx), &replica->options);
	if (ret)
		return ret;
	replica->info = host->info(ctx);
	replica->server = replica->info->replica_id == SERVER_REPLICA;
	if (!replica->server) {
		host->log(ctx, OSKR_LOG_INFO,
			  "unreplicated: replica %d is idle (replica %d "
			  "serves)",
			  replica->info->replica_id, SERVER_REPLICA);
		return 0;
	}
	replica->signature_size =
		replica->options.sign_replies ? host->signature_size(ctx) : 0;
	if (replica->signature_size > UINT8_MAX)
		return -EINVAL;
	size_t overhead = unreplicated_reply_size(0, replica->signature_size);
	if (replica->info->max_message <= overhead)
		return -EINVAL;
	replica->result_capacity = replica->info->max_message - overhead;
	replica->result = malloc(replica->result_capacity);
	if (!replica->result)
		return -ENOMEM;
	ret = table_init(&replica->table,
			 (uint32_t)replica->options.client_table_size);
	if (ret) {
		free(replica->result);
		replica->result = NULL;
		return ret;
	}
	host->set_status(ctx, 0, SERVER_REPLICA, 0, 0);
	return 0;
}

static void unreplicated_replica_fini(struct oskr_ctx *ctx, void *state)
{
	struct unreplicated_replica *replica = state;
	table_fini(&replica->table);
	free(replica->result);
	replica->result = NULL;
}

/* Stateless: sign a finished reply body and send it. */
static void sign_and_send(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct sign_task *task = arg;
	const struct oskr_host *host = ctx->host;
	struct oskr_buf *buf = task->buf;
	size_t sig_len = 0;
	uint8_t sig[OSKR_SIGNATURE_MAX];
	if (host->sign(ctx, buf->data, task->body_len, sig, &sig_len) ||
	    sig_len > UINT8_MAX ||
	    task->body_len + 1 + sig_len > buf->capacity) {
		host->count(ctx, "sign_failures", 1);
		host->buf_release(buf);
		free(task);
		return;
	}
	buf->data[task->body_len] = (uint8_t)sig_len;
	memcpy(buf->data + task->body_len + 1, sig, sig_len);
	buf->len = (uint32_t)(task->body_len + 1 + sig_len);
	host->send_to_addr(ctx, &task->to, buf);
	free(task);
}

static void send_reply(struct oskr_ctx *ctx,
		       struct unreplicated_replica *replica,
		       const struct oskr_addr *to, uint64_t client_id,
		       uint64_t request_number, const uint8_t *result,
		       size_t result_len)
{
	const struct oskr_host *host = ctx->host;
	size_t size = unreplicated_reply_size(result_len,
					      replica->signature_size);
	struct oskr_buf *buf;
	if (host->buf_alloc(ctx, size, &buf)) {
		host->count(ctx, "drop_no_buffer", 1);
		return;
	}
	size_t body = unreplicated_encode_reply_body(
		buf->data, buf->capacity, client_id, request_number, result,
		result_len, replica->signature_size);
	if (!body) {
		host->buf_release(buf);
		host->count(ctx, "drop_reply_too_large", 1);
		return;
	}
	if (!replica->options.sign_replies) {
		buf->data[body] = 0;
		buf->len = (uint32_t)(body + 1);
		host->send_to_addr(ctx, to, buf);
		return;
	}
	struct sign_task *task = malloc(sizeof(*task));
	if (!task) {
		host->buf_release(buf);
		host->count(ctx, "drop_no_memory", 1);
		return;
	}
	task->buf = buf;
	task->to = *to;
	task->body_len = body;
	/* Signing is the expensive part: hand it to the workers. If the
	 * queue is full, sign here rather than lose the reply. */
	if (host->submit_stateless(ctx, sign_and_send, task))
		sign_and_send(ctx, replica, task);
}

static int cache_result(struct client_entry *entry, const uint8_t *result,
			size_t result_len)
{
	if (result_len > entry->result_capacity) {
		uint8_t *copy = realloc(entry->result, result_len);
		if (!copy)
			return -ENOMEM;
		entry->result = copy;
		entry->result_capacity = (uint32_t)result_len;
	}
	if (result_len)
		memcpy(entry->result, result, result_len);
	entry->result_len = (uint32_t)result_len;
	return 0;
}

/* Stateful: exactly-once execution through the client table. */
static void execute_request(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct unreplicated_replica *replica = state;
	struct request_task *task = arg;
	const struct oskr_host *host = ctx->host;
	const struct unreplicated_request *request = &task->request;
	host->count(ctx, "requests", 1);

	struct client_entry *entry =
		table_find(&replica->table, request->client_id);
	if (entry && request->request_number < entry->last_request) {
		host->count(ctx, "drop_stale", 1);
		goto out;
	}
	if (entry && request->request_number == entry->last_request) {
		/* The reply was lost or is late: send the cached one. */
		host->count(ctx, "duplicates", 1);
		if (!entry->has_result) {
			host->count(ctx, "drop_duplicate_uncached", 1);
			goto out;
		}
		send_reply(ctx, replica, &task->from, request->client_id,
			   request->request_number, entry->result,
			   entry->result_len);
		goto out;
	}

	size_t result_len = 0;
	int ret = host->app_execute(ctx, request->op, request->op_len,
				    replica->result, replica->result_capacity,
				    &result_len);
	if (ret) {
		/* Not executed (the result cannot fit a reply): the client
		 * will retry, and fail the same way. */
		host->count(ctx, "drop_execute_failed", 1);
		goto out;
	}
	replica->executed++;
	host->count(ctx, OSKR_COUNTER_COMMITS, 1);
	host->set_status(ctx, 0, SERVER_REPLICA, replica->executed,
			 replica->executed);
	if (!entry) {
		bool evicted;
		entry = table_insert(&replica->table, request->client_id,
				     &evicted);
		if (evicted)
			host->count(ctx, "client_table_evictions", 1);
	}
	entry->last_request = request->request_number;
	entry->has_result =
		cache_result(entry, replica->result, result_len) == 0;
	if (!entry->has_result) {
		/* A duplicate cannot be answered now (it is not executed
		 * again either); answering this one is still right. */
		entry->result_len = 0;
		host->count(ctx, "cache_failures", 1);
	}
	send_reply(ctx, replica, &task->from, request->client_id,
		   request->request_number, replica->result, result_len);
out:
	host->buf_release(task->buf);
	free(task);
}

static void unreplicated_replica_receive(struct oskr_ctx *ctx, void *state,
					 const struct oskr_msg *msg)
{
	struct unreplicated_replica *replica = state;
	const struct oskr_host *host = ctx->host;
	if (!replica->server) {
		host->count(ctx, "drop_not_server", 1);
		return;
	}
	struct unreplicated_request request;
	if (!unreplicated_decode_request(msg->buf->data, msg->buf->len,
					 &request)) {
		host->count(ctx, "drop_malformed", 1);
		return;
	}
	struct request_task *task = malloc(sizeof(*task));
	if (!task) {
		host->count(ctx, "drop_no_memory", 1);
		return;
	}
	host->buf_hold(msg->buf);
	task->buf = msg->buf;
	task->from = msg->from;
	task->request = request;
	if (host->submit_stateful(ctx, execute_request, task)) {
		host->count(ctx, "drop_queue_full", 1);
		host->buf_release(msg->buf);
		free(task);
	}
}

/* ---- client ---- */

static int unreplicated_client_init(struct oskr_ctx *ctx, void *state)
{
	struct unreplicated_client *client = state;
	const struct oskr_host *host = ctx->host;
	client->info = host->info(ctx);
	return read_options(host, host->conf(ctx), &client->options);
}

static void unreplicated_client_fini(struct oskr_ctx *ctx, void *state)
{
	struct unreplicated_client *client = state;
	if (client->retransmit_timer)
		ctx->host->timer_cancel(ctx, client->retransmit_timer);
	client->retransmit_timer = 0;
	free(client->op);
	client->op = NULL;
}

static int send_request(struct oskr_ctx *ctx,
			struct unreplicated_client *client)
{
	const struct oskr_host *host = ctx->host;
	struct unreplicated_request request = {
		.client_id = client->info->client_id,
		.request_number = client->request_number,
		.op = client->op,
		.op_len = (uint32_t)client->op_len,
	};
	struct oskr_buf *buf;
	int ret = host->buf_alloc(ctx, unreplicated_request_size(client->op_len),
				  &buf);
	if (ret)
		return ret;
	size_t len = unreplicated_encode_request(buf->data, buf->capacity,
						 &request);
	if (!len) {
		host->buf_release(buf);
		return -EMSGSIZE;
	}
	buf->len = (uint32_t)len;
	return host->send_to_replica(ctx, SERVER_REPLICA, buf);
}

static void retransmit(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct unreplicated_client *client = state;
	const struct oskr_host *host = ctx->host;
	client->retransmit_timer = 0;
	if (!client->waiting)
		return;
	host->count(ctx, "retransmits", 1);
	send_request(ctx, client);
	if (host->timer_arm(ctx, client->options.retransmit_ms * 1000000ULL,
			    retransmit, NULL, &client->retransmit_timer))
		host->count(ctx, "timer_failures", 1);
}

static int unreplicated_client_invoke(struct oskr_ctx *ctx, void *state,
				      uint64_t request_number, const void *op,
				      size_t op_len)
{
	struct unreplicated_client *client = state;
	const struct oskr_host *host = ctx->host;
	if (client->waiting)
		return -EBUSY;
	if (unreplicated_request_size(op_len) > client->info->max_message ||
	    op_len > UINT32_MAX)
		return -EMSGSIZE;
	if (op_len > client->op_capacity) {
		uint8_t *copy = realloc(client->op, op_len);
		if (!copy)
			return -ENOMEM;
		client->op = copy;
		client->op_capacity = op_len;
	}
	if (op_len)
		memcpy(client->op, op, op_len);
	client->op_len = op_len;
	client->request_number = request_number;
	int ret = send_request(ctx, client);
	if (ret)
		return ret;
	ret = host->timer_arm(ctx, client->options.retransmit_ms * 1000000ULL,
			      retransmit, NULL, &client->retransmit_timer);
	if (ret)
		return ret;
	client->waiting = true;
	return 0;
}

static void unreplicated_client_receive(struct oskr_ctx *ctx, void *state,
					const struct oskr_msg *msg)
{
	struct unreplicated_client *client = state;
	const struct oskr_host *host = ctx->host;
	struct unreplicated_reply reply;
	if (!unreplicated_decode_reply(msg->buf->data, msg->buf->len, &reply)) {
		host->count(ctx, "drop_malformed", 1);
		return;
	}
	if (reply.client_id != client->info->client_id) {
		host->count(ctx, "drop_mismatched", 1);
		return;
	}
	if (!client->waiting || reply.request_number != client->request_number) {
		host->count(ctx, "drop_stale", 1);
		return;
	}
	if (client->options.sign_replies &&
	    (reply.sig_len == 0 ||
	     !host->verify(ctx, SERVER_REPLICA, msg->buf->data,
			   reply.signed_len, reply.sig, reply.sig_len))) {
		host->count(ctx, "drop_bad_signature", 1);
		return;
	}
	client->waiting = false;
	if (client->retransmit_timer)
		host->timer_cancel(ctx, client->retransmit_timer);
	client->retransmit_timer = 0;
	host->client_complete(ctx, reply.request_number, reply.result,
			      reply.result_len);
}

OSKR_PLUGIN_EXPORT = {
	OSKR_PLUGIN_HEADER,
	.name = "unreplicated",
	.version = "1.0.0",
	.description = "one server, no replication (optionally signed "
		       "replies): the baseline",
	.replica_state_size = sizeof(struct unreplicated_replica),
	.client_state_size = sizeof(struct unreplicated_client),
	.config_check = unreplicated_config_check,
	.replica_init = unreplicated_replica_init,
	.replica_receive = unreplicated_replica_receive,
	.replica_fini = unreplicated_replica_fini,
	.client_init = unreplicated_client_init,
	.client_invoke = unreplicated_client_invoke,
	.client_receive = unreplicated_client_receive,
	.client_fini = unreplicated_client_fini,
};
