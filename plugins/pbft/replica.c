/* SPDX-License-Identifier: MIT */
/*
 * The plugin descriptor and the replica plumbing: init/fini, the
 * stateless receive path (decode, length checks, signature checks, then
 * hand the decoded message to the stateful task), signing and sending,
 * and the periodic catch-up tick.
 */
#include "pbft.h"

#include <stdio.h>
#include <stdlib.h>

void oskr__pbft_drop(struct oskr_ctx *ctx, const char *reason)
{
	char name[64];
	snprintf(name, sizeof(name), OSKR_COUNTER_DROP_PREFIX "%s", reason);
	ctx->host->count(ctx, name, 1);
	ctx->host->log(ctx, OSKR_LOG_DEBUG, "pbft: dropped a message: %s",
		       reason);
}

void oskr__pbft_publish_status(struct oskr_ctx *ctx, struct pbft_replica *r)
{
	ctx->host->set_status(ctx, r->view, (int32_t)pbft_primary(r, r->view),
			      r->last_committed, r->last_executed);
}

/* ---- signing and sending ---- */

struct oskr_buf *oskr__pbft_alloc(struct oskr_ctx *ctx, size_t body_cap,
				  struct pbft_writer *w)
{
	struct oskr_buf *buf;
	size_t capacity = body_cap + PBFT_SIG_TRAILER_MAX;
	const struct oskr_instance_info *info = ctx->host->info(ctx);
	if (capacity > info->max_message)
		capacity = info->max_message;
	if (ctx->host->buf_alloc(ctx, capacity, &buf)) {
		oskr__pbft_drop(ctx, "alloc_failed");
		return NULL;
	}
	*w = (struct pbft_writer){ .data = buf->data,
				   .capacity = capacity - PBFT_SIG_TRAILER_MAX };
	return buf;
}

int oskr__pbft_seal(struct oskr_ctx *ctx, struct oskr_buf *buf,
		    size_t body_len)
{
	uint8_t sig[OSKR_SIGNATURE_MAX];
	size_t sig_len = 0;
	int err = ctx->host->sign(ctx, buf->data, body_len, sig, &sig_len);
	if (err)
		return err;
	if (sig_len == 0 || sig_len > OSKR_SIGNATURE_MAX ||
	    body_len + 1 + sig_len > buf->capacity)
		return -EMSGSIZE;
	buf->data[body_len] = (uint8_t)sig_len;
	memcpy(buf->data + body_len + 1, sig, sig_len);
	buf->len = (uint32_t)(body_len + 1 + sig_len);
	return 0;
}

void oskr__pbft_send(struct oskr_ctx *ctx, struct oskr_buf *buf,
		     const struct pbft_dest *dest)
{
	switch (dest->kind) {
	case PBFT_TO_ALL:
		ctx->host->send_to_all(ctx, buf);
		break;
	case PBFT_TO_REPLICA:
		ctx->host->send_to_replica(ctx, dest->replica, buf);
		break;
	case PBFT_TO_ADDR:
		ctx->host->send_to_addr(ctx, &dest->addr, buf);
		break;
	}
}

void oskr__pbft_seal_and_send(struct oskr_ctx *ctx, struct oskr_buf *buf,
			      size_t body_len, const struct pbft_dest *dest)
{
	if (oskr__pbft_seal(ctx, buf, body_len)) {
		oskr__pbft_drop(ctx, "sign_failed");
		ctx->host->buf_release(buf);
		return;
	}
	oskr__pbft_send(ctx, buf, dest);
}

struct seal_task {
	struct oskr_buf *buf;
	size_t body_len;
	struct pbft_dest dest;
};

static void seal_task_run(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct seal_task *task = arg;
	oskr__pbft_seal_and_send(ctx, task->buf, task->body_len, &task->dest);
	free(task);
}

void oskr__pbft_seal_and_send_async(struct oskr_ctx *ctx, struct oskr_buf *buf,
				    size_t body_len,
				    const struct pbft_dest *dest)
{
	struct seal_task *task = malloc(sizeof(*task));
	if (task) {
		task->buf = buf;
		task->body_len = body_len;
		task->dest = *dest;
		if (!ctx->host->submit_stateless(ctx, seal_task_run, task))
			return;
		free(task);
	}
	oskr__pbft_seal_and_send(ctx, buf, body_len, dest);
}

void oskr__pbft_send_raw(struct oskr_ctx *ctx, const uint8_t *data,
			 size_t len, const struct pbft_dest *dest)
{
	struct oskr_buf *buf;
	if (ctx->host->buf_alloc(ctx, len, &buf)) {
		oskr__pbft_drop(ctx, "alloc_failed");
		return;
	}
	memcpy(buf->data, data, len);
	buf->len = (uint32_t)len;
	oskr__pbft_send(ctx, buf, dest);
}

/* ---- the receive path ---- */

struct received {
	struct pbft_msg msg;
	struct oskr_buf *buf;
	struct oskr_addr from;
	/* VIEW-CHANGE / NEW-VIEW: the certificate check ran, and its result */
	bool certs_checked, certs_valid;
};

static bool verify_signed(struct oskr_ctx *ctx, const struct pbft_msg *m)
{
	return ctx->host->verify(ctx, m->replica, m->signed_body,
				 m->signed_len, m->sig, m->sig_len);
}

static bool digest_matches(struct oskr_ctx *ctx, const uint8_t *data,
			   size_t len, const uint8_t *expected)
{
	uint8_t digest[PBFT_DIGEST];
	ctx->host->digest(ctx, data, len, digest);
	return !memcmp(digest, expected, PBFT_DIGEST);
}

/* Stateless: everything that needs no protocol state, including every
 * signature check (TOCS'02 §4: replicas discard messages with bad
 * signatures) except the certificates inside VIEW-CHANGE and NEW-VIEW,
 * which are checked once the stateful side knows the copy is new (see
 * check_certs_later below). Returns the drop reason or NULL. */
static const char *check_message(struct oskr_ctx *ctx,
				 const struct pbft_replica *r,
				 const struct pbft_msg *m)
{
	if (m->type == PBFT_REQUEST)
		return NULL; /* unsigned by design: see docs/pbft.md */
	if (m->type == PBFT_REPLY)
		return "unexpected_type";
	if (m->replica == r->id)
		return "from_self";
	if (!verify_signed(ctx, m))
		return "bad_signature";
	switch (m->type) {
	case PBFT_PRE_PREPARE:
		if (!digest_matches(ctx, m->order.batch, m->order.batch_len,
				    m->order.digest))
			return "bad_digest";
		break;
	case PBFT_BATCH:
		if (!digest_matches(ctx, m->batch.batch, m->batch.batch_len,
				    m->batch.digest))
			return "bad_digest";
		break;
	case PBFT_ENTRY:
		if (!digest_matches(ctx, m->entry.batch, m->entry.batch_len,
				    m->entry.digest))
			return "bad_digest";
		if (!oskr__pbft_verify_commit_cert(ctx, r->f, m))
			return "bad_certificate";
		break;
	case PBFT_STABLE:
		if (!oskr__pbft_verify_proof(ctx, r->f, m->checkpoint.seq,
					     m->checkpoint.digest,
					     &m->checkpoint.proof))
			return "bad_certificate";
		break;
	case PBFT_VIEW_CHANGE:
		if (m->view_change.new_view == 0)
			return "bad_certificate";
		break;
	case PBFT_NEW_VIEW:
		if (m->replica != m->new_view.view % r->n)
			return "bad_certificate";
		break;
	default:
		break;
	}
	return NULL;
}

/* The certificates of a VIEW-CHANGE (its checkpoint proof and prepared
 * certificates: up to 3L signatures) or of a NEW-VIEW (L pre-prepares).
 * Any thread: reads only what init set up. */
static void run_cert_check(struct oskr_ctx *ctx, const struct pbft_replica *r,
			   struct received *in)
{
	const struct pbft_msg *m = &in->msg;
	in->certs_valid =
		m->type == PBFT_VIEW_CHANGE
			? oskr__pbft_verify_view_change(
				  ctx, r->n, r->f, r->opt.watermark_window, m)
			: oskr__pbft_verify_new_view(ctx, r->n, m);
	in->certs_checked = true;
}

static void handle_received(struct oskr_ctx *ctx, void *state, void *arg);

static void cert_check_task(struct oskr_ctx *ctx, void *state, void *arg)
{
	const struct pbft_replica *r = state;
	struct received *in = arg;
	if (!r->stopped)
		run_cert_check(ctx, r, in);
	if (r->stopped ||
	    ctx->host->submit_stateful(ctx, handle_received, in)) {
		/* (the check mark lapses by itself: view_change.c) */
		oskr__pbft_drop(ctx, "queue_full");
		ctx->host->buf_release(in->buf);
		free(in);
	}
}

/* Hand a new VIEW-CHANGE or NEW-VIEW to the worker pool for its
 * certificate check; it comes back to handle_received with the result.
 * A stateful task must stay short: with hundreds of signatures, the
 * check would hold up everything else this replica does. True when
 * queued (it owns @p in then); false: checked inline instead. */
static bool check_certs_later(struct oskr_ctx *ctx, struct pbft_replica *r,
			      struct received *in)
{
	if (!ctx->host->submit_stateless(ctx, cert_check_task, in))
		return true;
	run_cert_check(ctx, r, in);
	return false;
}

static void handle_received(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct pbft_replica *r = state;
	struct received *in = arg;
	const struct pbft_msg *m = &in->msg;

	switch (r->stopped ? 0 : m->type) {
	case PBFT_REQUEST:
	case PBFT_RELAY:
		oskr__pbft_on_request(ctx, r, m, &in->from);
		break;
	case PBFT_PRE_PREPARE:
		oskr__pbft_on_pre_prepare(ctx, r, m);
		break;
	case PBFT_PREPARE:
		oskr__pbft_on_prepare(ctx, r, m);
		break;
	case PBFT_COMMIT:
		oskr__pbft_on_commit(ctx, r, m);
		break;
	case PBFT_CHECKPOINT:
		oskr__pbft_on_checkpoint(ctx, r, m);
		break;
	case PBFT_STABLE:
		oskr__pbft_on_stable_proof(ctx, r, m->checkpoint.seq,
					   m->checkpoint.digest,
					   &m->checkpoint.proof, false);
		break;
	case PBFT_VIEW_CHANGE:
		if (!in->certs_checked) {
			if (!oskr__pbft_view_change_wanted(ctx, r, m))
				break;
			if (check_certs_later(ctx, r, in))
				return;
		}
		oskr__pbft_on_view_change_checked(ctx, r, m, in->certs_valid);
		break;
	case PBFT_NEW_VIEW:
		if (!in->certs_checked) {
			if (!oskr__pbft_new_view_wanted(ctx, r, m))
				break;
			if (check_certs_later(ctx, r, in))
				return;
		}
		oskr__pbft_on_new_view_checked(ctx, r, m, in->certs_valid);
		break;
	case PBFT_FETCH_VIEW_CHANGE:
	case PBFT_FETCH_NEW_VIEW:
		oskr__pbft_on_fetch_view(ctx, r, m);
		break;
	case PBFT_FETCH_ENTRIES:
		oskr__pbft_on_fetch_entries(ctx, r, m);
		break;
	case PBFT_ENTRY:
		oskr__pbft_on_entry(ctx, r, m);
		break;
	case PBFT_FETCH_BATCH:
		oskr__pbft_on_fetch_batch(ctx, r, m);
		break;
	case PBFT_BATCH:
		oskr__pbft_on_batch(ctx, r, m);
		break;
	case PBFT_FETCH_CHUNK:
		oskr__pbft_on_fetch_chunk(ctx, r, m);
		break;
	case PBFT_CHUNK:
		oskr__pbft_on_chunk(ctx, r, m);
		break;
	default:
		break;
	}
	ctx->host->buf_release(in->buf);
	free(in);
}

static void pbft_replica_receive(struct oskr_ctx *ctx, void *state,
				 const struct oskr_msg *msg)
{
	const struct pbft_replica *r = state;
	struct received *in;
	const char *why = NULL;

	if (r->stopped)
		return;
	in = malloc(sizeof(*in));
	if (!in) {
		oskr__pbft_drop(ctx, "no_memory");
		return;
	}
	if (oskr__pbft_decode(msg->buf->data, msg->buf->len, r->n, &in->msg,
			      &why) ||
	    (why = check_message(ctx, r, &in->msg))) {
		oskr__pbft_drop(ctx, why);
		free(in);
		return;
	}
	in->from = msg->from;
	in->buf = msg->buf;
	in->certs_checked = in->certs_valid = false;
	ctx->host->buf_hold(msg->buf);
	if (ctx->host->submit_stateful(ctx, handle_received, in)) {
		oskr__pbft_drop(ctx, "queue_full");
		ctx->host->buf_release(msg->buf);
		free(in);
	}
}

/* ---- the catch-up tick ---- */

static bool has_outstanding_work(struct pbft_replica *r)
{
	if (r->known.seq > r->last_executed ||
	    pbft_pending_count(&r->pending) > 0)
		return true;
	for (uint32_t i = 0; i < r->log.window; i++) {
		const struct pbft_entry *e = &r->log.entries[i];
		if (e->seq > r->last_executed)
			return true;
	}
	return false;
}

static void tick(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct pbft_replica *r = state;
	if (r->stopped)
		return;
	r->tick_timer = 0;
	bool stalled = r->last_executed == r->tick_last_executed &&
		       has_outstanding_work(r);
	r->tick_last_executed = r->last_executed;

	if (r->transfer.active) {
		oskr__pbft_transfer_tick(ctx, r);
	} else if (stalled) {
		/* A replica that stopped executing while others may have
		 * gone on: catch up from a stable checkpoint we hold a proof
		 * of, or resend our votes and ask for committed entries
		 * (docs/pbft.md, "retransmission"). */
		if (r->known.seq > r->last_executed)
			oskr__pbft_start_transfer(ctx, r, r->known.seq,
						  r->known.digest);
		else {
			oskr__pbft_retransmit(ctx, r);
			oskr__pbft_fetch_entries(ctx, r);
			oskr__pbft_fetch_missing_batches(ctx, r);
		}
	}
	oskr__pbft_view_change_tick(ctx, r);
	oskr__pbft_announce_stable(ctx, r);
	if (r->resume_settling) {
		r->resume_settling = false;
		oskr__pbft_try_propose(ctx, r);
	}
	oskr__pbft_arm_tick(ctx, r);
}

void oskr__pbft_arm_tick(struct oskr_ctx *ctx, struct pbft_replica *r)
{
	if (r->tick_timer)
		return;
	if (ctx->host->timer_arm(ctx, r->opt.retransmit_ns, tick, NULL,
				 &r->tick_timer))
		r->tick_timer = 0;
}

/* ---- init / fini ---- */

static void pbft_replica_fini(struct oskr_ctx *ctx, void *state)
{
	struct pbft_replica *r = state;
	if (r->stopped)
		return;
	if (r->tick_timer)
		ctx->host->timer_cancel(ctx, r->tick_timer);
	if (r->vc_timer)
		ctx->host->timer_cancel(ctx, r->vc_timer);
	if (r->batch_timer)
		ctx->host->timer_cancel(ctx, r->batch_timer);
	oskr__pbft_log_fini(&r->log);
	oskr__pbft_checkpoints_fini(ctx, r);
	oskr__pbft_view_change_fini(r);
	oskr__pbft_clients_fini(&r->clients);
	oskr__pbft_pending_fini(&r->pending);
	free(r->transfer.data);
	free(r->result_buf);
	/* Keep n, f, id and the options readable: a stateless receive may
	 * still be running; it sees `stopped` and drops the message. */
	r->log.entries = NULL;
	r->vcs = NULL;
	r->result_buf = NULL;
	r->transfer.data = NULL;
	r->stopped = true;
}

static int pbft_replica_init(struct oskr_ctx *ctx, void *state)
{
	struct pbft_replica *r = state;
	const struct oskr_instance_info *info = ctx->host->info(ctx);
	int err;

	r->n = info->replica_count;
	r->f = info->fault_count;
	r->id = (uint32_t)info->replica_id;
	r->max_message = info->max_message;
	r->sig_size = ctx->host->signature_size(ctx);
	err = oskr__pbft_options_read(ctx->host, ctx->host->conf(ctx), r->n,
				      r->f, &r->opt);
	if (err) {
		ctx->host->log(ctx, OSKR_LOG_ERROR,
			       "pbft: bad options or cluster shape (n=%u f=%u)",
			       r->n, r->f);
		return err;
	}
	if (r->sig_size == 0 || r->sig_size > OSKR_SIGNATURE_MAX) {
		ctx->host->log(ctx, OSKR_LOG_ERROR,
			       "pbft: bad host signature size %zu",
			       r->sig_size);
		return -EINVAL;
	}
	size_t vc_max = oskr__pbft_view_change_max_size(
		r->n, r->f, r->opt.watermark_window, r->sig_size);
	if (vc_max > r->max_message && r->opt.window_auto) {
		/* The defaults (K=100, L=2K) assume UDP's 64 KB messages; on
		 * a transport with small messages (DPDK frames) pick the
		 * largest K with L = 2K whose VIEW-CHANGE still fits. */
		uint32_t interval = r->opt.checkpoint_interval;
		while (interval > 1 && vc_max > r->max_message) {
			interval--;
			vc_max = oskr__pbft_view_change_max_size(
				r->n, r->f, 2 * interval, r->sig_size);
		}
		if (vc_max <= r->max_message &&
		    r->opt.max_inflight <= 2 * interval) {
			r->opt.checkpoint_interval = interval;
			r->opt.watermark_window = 2 * interval;
			ctx->host->log(ctx, OSKR_LOG_INFO,
				       "pbft: checkpoint_interval %u, "
				       "watermark_window %u chosen so a "
				       "VIEW-CHANGE fits the transport's %u "
				       "bytes",
				       interval, 2 * interval,
				       r->max_message);
		} else {
			vc_max = oskr__pbft_view_change_max_size(
				r->n, r->f, r->opt.watermark_window,
				r->sig_size);
		}
	}
	if (vc_max > r->max_message) {
		ctx->host->log(ctx, OSKR_LOG_ERROR,
			       "pbft: a VIEW-CHANGE may need %zu bytes but the "
			       "transport carries %u: lower watermark_window "
			       "(now %u) or checkpoint_interval",
			       vc_max, r->max_message,
			       r->opt.watermark_window);
		return -EINVAL;
	}
	if (r->max_message < 1024) {
		ctx->host->log(ctx, OSKR_LOG_ERROR,
			       "pbft: max_message %u is too small",
			       r->max_message);
		return -EINVAL;
	}
	r->vc_timeout_ns = r->opt.view_change_timeout_ns;
	/* A reply carries the result: it must fit one message. */
	r->result_capacity = r->max_message - 64 - PBFT_SIG_TRAILER_MAX;
	r->result_buf = malloc(r->result_capacity);
	if (!r->result_buf ||
	    (err = oskr__pbft_log_init(&r->log, r->opt.watermark_window, r->n,
				       r->f)) ||
	    (err = oskr__pbft_checkpoints_init(r)) ||
	    (err = oskr__pbft_view_change_init(r)) ||
	    (err = oskr__pbft_clients_init(&r->clients,
					   r->opt.client_table_size)) ||
	    (err = oskr__pbft_pending_init(&r->pending,
					   r->opt.max_pending))) {
		pbft_replica_fini(ctx, r);
		return err ? err : -ENOMEM;
	}
	if ((err = oskr__pbft_resume(ctx, r))) {
		pbft_replica_fini(ctx, r);
		return err;
	}
	oskr__pbft_arm_tick(ctx, r);
	oskr__pbft_publish_status(ctx, r);
	return 0;
}

static int pbft_config_check(const struct oskr_host *host,
			     const struct oskr_conf *conf,
			     uint32_t replica_count, uint32_t fault_count)
{
	struct pbft_options opt;
	return oskr__pbft_options_read(host, conf, replica_count, fault_count,
				       &opt);
}

OSKR_PLUGIN_EXPORT = {
	OSKR_PLUGIN_HEADER,
	.name = "pbft",
	.version = "1.0.0",
	.description = "PBFT (Castro & Liskov, TOCS'02): batching, "
		       "checkpoints, view change, state transfer",
	.replica_state_size = sizeof(struct pbft_replica),
	.client_state_size = sizeof(struct pbft_client),
	.config_check = pbft_config_check,
	.replica_init = pbft_replica_init,
	.replica_receive = pbft_replica_receive,
	.replica_fini = pbft_replica_fini,
	.client_init = oskr__pbft_client_init,
	.client_invoke = oskr__pbft_client_invoke,
	.client_receive = oskr__pbft_client_receive,
	.client_fini = oskr__pbft_client_fini,
};
