/* SPDX-License-Identifier: MIT */
/*
 * A tiny but complete plugin for the ABI compatibility tests, compiled
 * against a header snapshot instead of include/oskr/plugin.h
 * (test/abi/module.mk):
 *
 *   -DABI_HEADER='"plugin-1.0.h"' -DEXPORT_LAYOUT
 *       built against the frozen 1.0 header; also exports the offsets and
 *       sizes it was compiled with (layout.h) for test_abi to compare;
 *   -DABI_HEADER='"plugin-1.2-draft.h"' -DABI_FUTURE -DDECLARE_MINOR=1
 *       -DEXPORT_LAYOUT_1_1
 *       built against a simulated 1.2 but declaring 1.1, so a 1.1 host
 *       loads it; it uses the 1.2-only host service only after
 *       OSKR_HOST_HAS says the host has it, calls the 1.1 service
 *       checkpoint_resume (tested for too, as a plugin that also runs on
 *       1.0 hosts would), and exports where it sees the 1.1 members;
 *   -DABI_HEADER='"plugin-1.2-draft.h"' -DABI_FUTURE
 *       the same declaring 1.2: a 1.1 host must refuse it.
 *
 * Protocol ("echo"): a client sends u64 request_number | op to replica 0
 * and retransmits every 50 ms; replica 0 executes the op on the
 * application (a stateful task) and replies u64 request_number | result.
 * Other replicas count what reaches them and drop it. Enough to run on
 * the sim and in oskrd with either app.
 */
#include ABI_HEADER

#ifdef OSKR_PLUGIN_H
#error "echo.c must see only the snapshot header, not include/oskr/plugin.h"
#endif

#include <stdlib.h>
#include <string.h>

#include "layout.h"

#define SERVER 0
#define RETRANSMIT_NS 50000000ULL

struct echo_replica {
	uint8_t *result;
	size_t result_capacity;
};

struct echo_client {
	const struct oskr_instance_info *info;
	uint64_t request_number;
	uint8_t *op;
	size_t op_len;
	bool waiting;
	oskr_timer_id timer;
};

struct echo_task {
	struct oskr_buf *buf; /* held */
	struct oskr_addr from;
};

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

/* What the plugin sees of the host it runs in, as counters the test
 * reads back (oskr_sim_counter). */
static void probe_host(struct oskr_ctx *ctx)
{
	const struct oskr_host *host = ctx->host;
	host->count(ctx, OSKR_HOST_HAS(host, set_status) ? "has_set_status"
							 : "lacks_set_status",
		    1);
#ifdef ABI_FUTURE
	if (OSKR_HOST_HAS(host, future_service)) {
		host->future_service(ctx, 1);
		host->count(ctx, "future_service_used", 1);
	} else {
		host->count(ctx, "future_service_absent", 1);
	}
	/* A 1.1 service: a fresh instance has no checkpoint to resume. */
	if (OSKR_HOST_HAS(host, checkpoint_resume)) {
		uint64_t op = 0;
		const void *blob = NULL;
		size_t len = 0;
		host->count(ctx,
			    host->checkpoint_resume(ctx, &op, &blob, &len) ==
					    -ENOENT
				    ? "checkpoint_resume_enoent"
				    : "checkpoint_resume_other",
			    1);
	} else {
		host->count(ctx, "checkpoint_resume_absent", 1);
	}
#endif
}

/* config_check receives the host table directly, so the test can also
 * hand it a table that does have the 1.1 service. */
static int echo_config_check(const struct oskr_host *host,
			     const struct oskr_conf *conf,
			     uint32_t replica_count, uint32_t fault_count)
{
#ifdef ABI_FUTURE
	if (OSKR_HOST_HAS(host, future_service))
		return host->future_service(NULL, replica_count);
#endif
	return 0;
}

static int echo_replica_init(struct oskr_ctx *ctx, void *state)
{
	struct echo_replica *replica = state;
	const struct oskr_instance_info *info = ctx->host->info(ctx);
	probe_host(ctx);
	if (info->max_message <= 8)
		return -EINVAL;
	replica->result_capacity = info->max_message - 8;
	replica->result = malloc(replica->result_capacity);
	return replica->result ? 0 : -ENOMEM;
}

static void echo_replica_fini(struct oskr_ctx *ctx, void *state)
{
	struct echo_replica *replica = state;
	free(replica->result);
}

static void echo_execute(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct echo_replica *replica = state;
	struct echo_task *task = arg;
	const struct oskr_host *host = ctx->host;
	struct oskr_buf *request = task->buf;
	size_t result_len = 0;
	struct oskr_buf *reply;
	if (host->app_execute(ctx, request->data + 8, request->len - 8,
			      replica->result, replica->result_capacity,
			      &result_len) == 0 &&
	    host->buf_alloc(ctx, 8 + result_len, &reply) == 0) {
		memcpy(reply->data, request->data, 8);
		if (result_len)
			memcpy(reply->data + 8, replica->result, result_len);
		reply->len = (uint32_t)(8 + result_len);
		host->send_to_addr(ctx, &task->from, reply);
	}
	host->buf_release(request);
	free(task);
}

static void echo_replica_receive(struct oskr_ctx *ctx, void *state,
				 const struct oskr_msg *msg)
{
	const struct oskr_host *host = ctx->host;
	if (host->info(ctx)->replica_id != SERVER || msg->buf->len < 8) {
		host->count(ctx, "drop_echo", 1);
		return;
	}
	struct echo_task *task = malloc(sizeof(*task));
	if (!task)
		return;
	host->buf_hold(msg->buf);
	task->buf = msg->buf;
	task->from = msg->from;
	if (host->submit_stateful(ctx, echo_execute, task)) {
		host->buf_release(msg->buf);
		free(task);
	}
}

static int echo_client_init(struct oskr_ctx *ctx, void *state)
{
	struct echo_client *client = state;
	client->info = ctx->host->info(ctx);
	probe_host(ctx);
	return 0;
}

static void echo_client_fini(struct oskr_ctx *ctx, void *state)
{
	struct echo_client *client = state;
	if (client->timer)
		ctx->host->timer_cancel(ctx, client->timer);
	free(client->op);
}

static void echo_send(struct oskr_ctx *ctx, struct echo_client *client)
{
	struct oskr_buf *buf;
	if (ctx->host->buf_alloc(ctx, 8 + client->op_len, &buf))
		return;
	put_u64(buf->data, client->request_number);
	if (client->op_len)
		memcpy(buf->data + 8, client->op, client->op_len);
	buf->len = (uint32_t)(8 + client->op_len);
	ctx->host->send_to_replica(ctx, SERVER, buf);
}

static void echo_retransmit(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct echo_client *client = state;
	client->timer = 0;
	if (!client->waiting)
		return;
	echo_send(ctx, client);
	ctx->host->timer_arm(ctx, RETRANSMIT_NS, echo_retransmit, NULL,
			     &client->timer);
}

static int echo_client_invoke(struct oskr_ctx *ctx, void *state,
			      uint64_t request_number, const void *op,
			      size_t op_len)
{
	struct echo_client *client = state;
	if (op_len + 8 > client->info->max_message)
		return -EMSGSIZE;
	uint8_t *copy = malloc(op_len ? op_len : 1);
	if (!copy)
		return -ENOMEM;
	if (op_len)
		memcpy(copy, op, op_len);
	free(client->op);
	client->op = copy;
	client->op_len = op_len;
	client->request_number = request_number;
	if (client->timer)
		ctx->host->timer_cancel(ctx, client->timer);
	client->timer = 0;
	int ret = ctx->host->timer_arm(ctx, RETRANSMIT_NS, echo_retransmit,
				       NULL, &client->timer);
	if (ret)
		return ret;
	client->waiting = true;
	echo_send(ctx, client);
	return 0;
}

static void echo_client_receive(struct oskr_ctx *ctx, void *state,
				const struct oskr_msg *msg)
{
	struct echo_client *client = state;
	if (msg->buf->len < 8 || !client->waiting ||
	    get_u64(msg->buf->data) != client->request_number)
		return;
	client->waiting = false;
	if (client->timer)
		ctx->host->timer_cancel(ctx, client->timer);
	client->timer = 0;
	ctx->host->client_complete(ctx, client->request_number,
				   msg->buf->data + 8, msg->buf->len - 8);
}

#ifdef ABI_FUTURE
static void echo_future_callback(struct oskr_ctx *ctx, void *state)
{
	/* A 1.0 host does not know this member and never calls it. */
	abort();
}
#endif

#ifdef EXPORT_LAYOUT_1_1
/* Where this plugin, built against a newer snapshot, sees the members 1.1
 * appended: (offset, size) each, in layout.h's order. */
#define MEMBER_LAYOUT_1_1(s, m)                                            \
	(uint32_t)offsetof(struct s, m), (uint32_t)sizeof(((struct s *)0)->m),
extern OSKR_EXPORT const uint32_t oskr_abi_test_members_1_1[];
OSKR_EXPORT const uint32_t oskr_abi_test_members_1_1[] = {
	OSKR_ABI_1_1_MEMBERS(MEMBER_LAYOUT_1_1)
};
#endif

#ifdef EXPORT_LAYOUT
/* The layout this plugin was compiled with: (offset, size) per member,
 * then sizeof per struct, in layout.h's order. */
#define MEMBER_LAYOUT(s, m)                                                \
	(uint32_t)offsetof(struct s, m), (uint32_t)sizeof(((struct s *)0)->m),
#define STRUCT_SIZE(s) (uint32_t)sizeof(struct s),
extern OSKR_EXPORT const uint32_t oskr_abi_test_members[];
extern OSKR_EXPORT const uint32_t oskr_abi_test_structs[];
OSKR_EXPORT const uint32_t oskr_abi_test_members[] = {
	OSKR_ABI_1_0_MEMBERS(MEMBER_LAYOUT)
};
OSKR_EXPORT const uint32_t oskr_abi_test_structs[] = {
	OSKR_ABI_1_0_STRUCTS(STRUCT_SIZE)
};
#endif

OSKR_PLUGIN_EXPORT = {
#ifdef DECLARE_MINOR
	/* Built with a newer SDK, declaring the oldest minor it needs. */
	.abi_major = OSKR_ABI_MAJOR,
	.abi_minor = DECLARE_MINOR,
	.size = sizeof(struct oskr_plugin),
#else
	OSKR_PLUGIN_HEADER,
#endif
	.name = "abi-echo",
	.version = "1.0.0",
	.description = "ABI compatibility test plugin",
	.replica_state_size = sizeof(struct echo_replica),
	.client_state_size = sizeof(struct echo_client),
	.config_check = echo_config_check,
	.replica_init = echo_replica_init,
	.replica_receive = echo_replica_receive,
	.replica_fini = echo_replica_fini,
	.client_init = echo_client_init,
	.client_invoke = echo_client_invoke,
	.client_receive = echo_client_receive,
	.client_fini = echo_client_fini,
#ifdef ABI_FUTURE
	.future_callback = echo_future_callback,
#endif
};
