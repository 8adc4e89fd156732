/* SPDX-License-Identifier: MIT */
/*
 * Durable checkpoints (ABI 1.1 checkpoint_stable/_resume). A committed
 * block is final (PODC'19 §4.3, Alg. 4 onCommit: the three-chain rule),
 * so the state right after executing one is a stable checkpoint. Every
 * `checkpoint_interval` executed ops, right after executing a block and
 * before the next, the replica snapshots the app (app_snapshot) and asks
 * the host to persist those bytes with a protocol blob; it keeps the same
 * bytes to serve state transfers (transfer.c).
 *
 * The blob carries the executed block itself (its encoding, which is what
 * its digest covers) and the QC that certifies it: a restarted replica
 * makes that block the root of its tree, executed, locked and certified,
 * so it never executes a block at or below it again, blocks above it
 * connect to it, and fetching stops there (older blocks are dropped as
 * stale). The QC becomes qc_high, so a whole cluster that restarts from
 * one checkpoint proposes on top of it at once (Alg. 5: a QC for view
 * v - 1 lets the leader of v propose). Only blocks whose QC is known are
 * checkpoints: the committed child that justifies the block carries it
 * (in the steady state every block's child does; after a failed view the
 * checkpoint moves to the next block that has one).
 *
 * The blob also carries the block's activity record (pacemaker.c
 * oskr__hs_note_activity: since_active, since_failed, fail_streak per
 * replica), which the leader of every view above the root is computed
 * from: with it, a resumed replica names the same leaders as the
 * replicas that hold the real chain (docs/hotstuff.md, "Leader
 * rotation").
 *
 * Layout (little-endian):
 *   magic u32 "HSCK" | version u16 (2) | n u16 | f u16 |
 *   executed_ops u64 | committed_blocks u64 | height u64 | digest[32] |
 *   block_len u32 | block | qc_len u32 | qc | clients_len u32 | clients |
 *   n x (since_active u16 | since_failed u16 | fail_streak u8)
 * with the client table as requests.c writes it. Version 1 is the same
 * without the activity record; it is still resumed from (an upgrade in
 * place keeps its checkpoint), the root's history then unknown: everyone
 * counts as active there, as before version 2, and the checkpoint is not
 * served (our vouch would name a record the others do not hold).
 */
#include <stdlib.h>
#include <string.h>

#include "hotstuff.h"

/* ---- declaring checkpoints (stateful, core.c commit_through) ---- */

void oskr__hs_maybe_checkpoint(struct oskr_ctx *ctx,
			       struct oskr__hs_replica *rs,
			       const struct oskr__hs_block *b,
			       const uint8_t *qc, size_t qc_len)
{
	uint64_t interval = rs->opt.checkpoint_interval;
	uint8_t *clients = NULL, *blob = NULL, *state = NULL;
	size_t clients_len = 0, blob_len = 0, state_len = 0, app_len = 0;
	bool durable = OSKR_HOST_HAS(ctx->host, checkpoint_stable);
	void *app = NULL;
	int err;

	if (!interval || rs->executed_ops / interval <= rs->checkpoint_epoch)
		return;
	/* Without its QC this block cannot be a root: the next executed
	 * block whose QC we hold is the checkpoint instead. */
	if (!qc)
		return;
	rs->checkpoint_epoch = rs->executed_ops / interval;
	/* The app holds exactly the state after this block (the next one
	 * is not executed yet): snapshot it once, persist those bytes and
	 * serve the same bytes to lagging peers (transfer.c). */
	err = ctx->host->app_snapshot(ctx, &app, &app_len);
	if (!err)
		err = oskr__hs_clients_serialize(&rs->requests, &clients,
						 &clients_len);
	if (!err && durable)
		err = oskr__hs_resume_encode(rs->n, rs->f, rs->executed_ops,
					     rs->committed_blocks, b, true, qc,
					     qc_len, clients, clients_len,
					     &blob, &blob_len);
	if (!err && durable)
		err = ctx->host->checkpoint_stable(ctx, rs->executed_ops, app,
						   app_len, blob, blob_len);
	if (!err)
		err = oskr__hs_state_build(clients, clients_len, rs->n, b, app,
					   app_len, &state, &state_len);
	if (app)
		ctx->host->blob_free(ctx, app);
	free(clients);
	free(blob);
	if (err) {
		free(state);
		oskr__hs_drop(ctx, "checkpoint_persist_failures");
		ctx->host->log(ctx, OSKR_LOG_WARN,
			       "cannot persist the checkpoint at block height "
			       "%llu: %d",
			       (unsigned long long)b->height, err);
		return;
	}
	oskr__hs_serve_checkpoint(ctx, rs, b->raw, b->raw_len, b->height,
				  b->digest, qc, qc_len, rs->executed_ops,
				  rs->committed_blocks, state, state_len);
	if (durable)
		ctx->host->count(ctx, OSKR_COUNTER_CHECKPOINTS, 1);
}

/* ---- resuming (replica_init) ---- */

static void refuse(struct oskr_ctx *ctx, uint64_t op, const char *why)
{
	ctx->host->count(ctx, "checkpoint_resume_refused", 1);
	ctx->host->log(ctx, OSKR_LOG_ERROR,
		       "not resuming at op %llu: %s; starting from genesis",
		       (unsigned long long)op, why);
}

static bool qc_verifies(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			const struct oskr__hs_qc_ref *qc)
{
	uint8_t payload[OSKR__HS_VOTE_PAYLOAD];

	if (!oskr__hs_qc_well_formed(ctx, rs, qc))
		return false;
	oskr__hs_vote_payload(payload, qc->view, qc->digest);
	for (uint16_t i = 0; i < qc->count; i++)
		if (!ctx->host->verify(ctx, qc->sigs[i].replica, payload,
				       sizeof(payload), qc->sigs[i].bytes,
				       qc->sigs[i].len))
			return false;
	return true;
}

/* A whole cluster may restart at different checkpoints: serve ours at
 * once, so a replica that resumed lower can transfer it. Best effort. */
static void serve_resumed(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			  const struct oskr__hs_resume_point *point,
			  const struct oskr__hs_block *root)
{
	uint8_t *state = NULL;
	size_t state_len = 0, app_len = 0;
	void *app = NULL;

	/* A version-1 blob: the root's record is a guess, our vouch would
	 * not match the others'. */
	if (!point->activity)
		return;
	if (ctx->host->app_snapshot(ctx, &app, &app_len))
		return;
	if (!oskr__hs_state_build(point->clients, point->clients_len, rs->n,
				  root, app, app_len, &state, &state_len))
		oskr__hs_serve_checkpoint(ctx, rs, root->raw, root->raw_len,
					  root->height, root->digest,
					  point->qc.raw, point->qc.raw_len,
					  point->executed_ops,
					  point->committed_blocks, state,
					  state_len);
	ctx->host->blob_free(ctx, app);
}

int oskr__hs_resume(struct oskr_ctx *ctx, struct oskr__hs_replica *rs)
{
	struct oskr__hs_resume_point *point; /* ~5 KB: not on the stack */
	uint64_t op = 0;
	const void *blob = NULL;
	size_t blob_len = 0;
	const char *why = NULL;
	uint8_t digest[OSKR__HS_DIGEST];
	struct oskr__hs_block *root;
	int err;

	if (!OSKR_HOST_HAS(ctx->host, checkpoint_resume) ||
	    ctx->host->checkpoint_resume(ctx, &op, &blob, &blob_len))
		return 0;
	point = malloc(sizeof(*point));
	if (!point)
		return -ENOMEM;
	if (!blob ||
	    oskr__hs_resume_decode(blob, blob_len, rs->n, rs->f,
				   rs->opt.client_table_size, point, &why)) {
		refuse(ctx, op, why ? why : "no protocol state");
		goto out;
	}
	if (point->executed_ops != op) {
		refuse(ctx, op, "the host's op number is not the checkpoint's");
		goto out;
	}
	ctx->host->digest(ctx, point->block.raw, point->block.raw_len, digest);
	if (memcmp(digest, point->digest, OSKR__HS_DIGEST)) {
		refuse(ctx, op, "the block does not match its digest");
		goto out;
	}
	if (!qc_verifies(ctx, rs, &point->qc)) {
		refuse(ctx, op, "the QC does not verify");
		goto out;
	}
	err = oskr__hs_block_new(&point->block, digest, &root);
	if (err)
		goto err_out;
	err = oskr__hs_clients_restore(&rs->requests, &rs->opt,
				       point->clients, point->clients_len);
	if (err) {
		free(root);
		oskr__hs_clients_clear(&rs->requests);
		if (err == -ENOMEM)
			goto err_out;
		refuse(ctx, op, "malformed client table");
		goto out;
	}
	/* The checkpoint block replaces genesis as the root of the tree:
	 * executed, locked, certified (qc_high), and the leaf to extend. Its
	 * parent stays unknown: older blocks are stale (accept_block), so
	 * fetching stops here. We may have voted above it before the crash
	 * but do not know where: vheight and the last voted view start at
	 * the root (docs/hotstuff.md, "Durable checkpoints"). Its activity
	 * record is the one the blob carries. A state transfer installs its
	 * root the same way (transfer.c). */
	oskr__hs_install_root(ctx, rs, root, point->activity, point->qc.view,
			      point->qc.raw, point->qc.raw_len);
	if (!point->activity) {
		ctx->host->count(ctx, "checkpoint_resume_no_activity", 1);
		ctx->host->log(ctx, OSKR_LOG_WARN,
			       "the checkpoint at op %llu predates activity "
			       "records (format version 1): leaders above it "
			       "may disagree with the other replicas' for a "
			       "while",
			       (unsigned long long)point->executed_ops);
	}
	rs->executed_ops = point->executed_ops;
	rs->committed_blocks = point->committed_blocks;
	if (rs->opt.checkpoint_interval)
		rs->checkpoint_epoch =
			point->executed_ops / rs->opt.checkpoint_interval;
	serve_resumed(ctx, rs, point, root);
	ctx->host->count(ctx, "checkpoint_resumes", 1);
	ctx->host->log(ctx, OSKR_LOG_INFO,
		       "resumed at block height %llu (op %llu)",
		       (unsigned long long)root->height,
		       (unsigned long long)point->executed_ops);
out:
	free(point);
	return 0;
err_out:
	free(point);
	return err;
}
