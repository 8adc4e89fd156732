/* SPDX-License-Identifier: MIT */
/*
 * Durable stable checkpoints (ABI 1.1 checkpoint_stable/_resume). When a
 * checkpoint becomes stable (TOCS'02 §4.3) the host persists the
 * application part of its state together with a protocol blob; after a
 * restart the replica resumes at that checkpoint instead of op 0.
 *
 * The blob holds what the application snapshot does not: the ops counter
 * and the client table (the last reply per client, so a request executed
 * before the restart is answered from the table, not executed again), the
 * checkpoint's digest and its proof (2f+1 signed CHECKPOINTs, for our
 * VIEW-CHANGE messages and for laggards), and n, f, K so a blob from
 * another cluster shape is refused.
 *
 * Layout (little-endian):
 *   magic u32 "PBCK" | version u16 (1) | n u16 | f u16 |
 *   checkpoint_interval u32 | seq u64 | digest[32] |
 *   proof_count u8 | proof_count × (replica u16, sig_len u8, sig) |
 *   prefix_len u32 | prefix
 * where prefix is the checkpoint state up to its application part:
 * `ops_executed u64 | client table` (checkpoint.c, requests.c). The
 * digest covers `prefix | app_len u64 | app`, so a restarted replica
 * rebuilds its checkpoint state from the blob and the restored
 * application and checks it against the 2f+1 signed digest.
 */
#include "pbft.h"

#include <stdlib.h>

/* Catch-up ticks (retransmit_ms each) during which a resumed replica
 * announces its checkpoint. */
#define PBFT_ANNOUNCE_TICKS 10

/* ---- persisting (stateful) ---- */

void oskr__pbft_persist_stable(struct oskr_ctx *ctx, struct pbft_replica *r)
{
	if (!OSKR_HOST_HAS(ctx->host, checkpoint_stable) ||
	    !r->stable_state || !r->stable.seq ||
	    r->stable.seq <= r->persisted_seq)
		return;
	size_t prefix_len, app_len;
	const uint8_t *app;
	uint8_t *blob = NULL;
	size_t blob_len = 0;
	/* The app has executed past the checkpoint: pass the app bytes of
	 * the stored checkpoint state, never a fresh snapshot. */
	int err = oskr__pbft_state_split(r->stable_state, r->stable_state_len,
					 &prefix_len, &app, &app_len);
	if (!err)
		err = oskr__pbft_resume_encode(
			r->n, r->f, r->opt.checkpoint_interval, &r->stable,
			r->stable_state, prefix_len, &blob, &blob_len);
	if (!err)
		err = ctx->host->checkpoint_stable(ctx, r->stable.seq, app,
						   app_len, blob, blob_len);
	free(blob);
	if (err) {
		ctx->host->count(ctx, "checkpoint_persist_failures", 1);
		ctx->host->log(ctx, OSKR_LOG_WARN,
			       "pbft: cannot persist checkpoint %llu: %d",
			       (unsigned long long)r->stable.seq, err);
		return;
	}
	r->persisted_seq = r->stable.seq;
}

/* ---- resuming (replica_init) ---- */

/* An empty client table and no ops: what a replica starting from op 0
 * has. */
static void forget_restored(struct pbft_replica *r)
{
	static const uint8_t empty[4];
	struct pbft_reader rd = { .data = empty, .len = sizeof(empty) };
	oskr__pbft_clients_restore(&r->clients, &rd);
	r->ops_executed = 0;
}

static void refuse(struct oskr_ctx *ctx, uint64_t seq, const char *why)
{
	ctx->host->count(ctx, "checkpoint_resume_refused", 1);
	ctx->host->log(ctx, OSKR_LOG_ERROR,
		       "pbft: not resuming at checkpoint %llu: %s; starting "
		       "from op 0 (state transfer catches up)",
		       (unsigned long long)seq, why);
}

int oskr__pbft_resume(struct oskr_ctx *ctx, struct pbft_replica *r)
{
	uint64_t op = 0;
	const void *blob = NULL;
	size_t blob_len = 0;
	struct pbft_resume_point point;
	const char *why = NULL;

	if (!OSKR_HOST_HAS(ctx->host, checkpoint_resume) ||
	    ctx->host->checkpoint_resume(ctx, &op, &blob, &blob_len))
		return 0;
	if (!blob ||
	    oskr__pbft_resume_decode(blob, blob_len, r->n, r->f,
				     r->opt.checkpoint_interval, &point,
				     &why)) {
		refuse(ctx, op, why ? why : "no protocol state");
		return 0;
	}
	if (point.seq != op) {
		refuse(ctx, op, "the host's op number is not the checkpoint's");
		return 0;
	}
	if (!oskr__pbft_verify_proof(ctx, r->f, point.seq, point.digest,
				     &point.proof)) {
		refuse(ctx, op, "its proof does not verify");
		return 0;
	}
	/* Rebuild the checkpoint state from the blob and the restored app;
	 * it must be the state 2f+1 replicas signed. */
	struct pbft_reader rd = { .data = point.prefix + 8,
				  .len = point.prefix_len - 8 };
	if (oskr__pbft_clients_restore(&r->clients, &rd) || rd.bad ||
	    rd.pos != rd.len) {
		forget_restored(r);
		refuse(ctx, op, "its client table does not fit "
				"client_table_size");
		return 0;
	}
	r->ops_executed = point.ops_executed;
	uint8_t *state;
	size_t state_len;
	int err = oskr__pbft_state_take(ctx, r, &state, &state_len);
	if (err) {
		forget_restored(r);
		refuse(ctx, op, "cannot snapshot the application");
		return err == -ENOMEM ? err : 0;
	}
	uint8_t digest[PBFT_DIGEST];
	ctx->host->digest(ctx, state, state_len, digest);
	if (memcmp(digest, point.digest, PBFT_DIGEST)) {
		free(state);
		forget_restored(r);
		refuse(ctx, op, "the restored application does not match the "
				"checkpoint digest");
		return 0;
	}
	/* TOCS'02 §4.3: h = the stable checkpoint; everything up to it is
	 * executed and committed. The primary proposes from h + 1. */
	struct pbft_reader proof = pbft_list_reader(point.proof.data,
						    point.proof.len);
	struct pbft_sig_pair pair;
	r->stable.seq = point.seq;
	memcpy(r->stable.digest, point.digest, PBFT_DIGEST);
	r->stable.count = 0;
	while (r->stable.count < pbft_quorum(r) &&
	       oskr__pbft_next_sig(&proof, &pair)) {
		struct pbft_checkpoint_vote *v = &r->stable.votes[r->stable.count];
		r->stable.replicas[r->stable.count] = pair.replica;
		v->seq = point.seq;
		memcpy(v->digest, point.digest, PBFT_DIGEST);
		v->sig_len = pair.sig_len;
		memcpy(v->sig, pair.sig, pair.sig_len);
		r->stable.count++;
	}
	r->stable_state = state;
	r->stable_state_len = state_len;
	r->low_mark = r->last_executed = r->last_committed = r->next_seq =
		point.seq;
	r->tick_last_executed = point.seq;
	r->persisted_seq = point.seq;
	/* After a whole-cluster restart the replicas may hold different
	 * stable checkpoints (one collected the 2f+1 CHECKPOINTs of the
	 * newest just before the crash): announcing ours lets the others
	 * fetch it by state transfer instead of ordering new requests at
	 * sequence numbers it already covers (normal.c refuses those once
	 * the proof is known). Peers may not be up yet: repeat for a while
	 * on the tick. And as primary, wait for that first tick before
	 * proposing, so that the others' announces (sent at their init)
	 * arrive first. */
	r->announce_ticks = PBFT_ANNOUNCE_TICKS;
	r->resume_settling = true;
	oskr__pbft_announce_stable(ctx, r);
	ctx->host->count(ctx, "checkpoint_resumes", 1);
	ctx->host->log(ctx, OSKR_LOG_INFO,
		       "pbft: resumed at checkpoint %llu (%llu ops executed, "
		       "%zu clients)",
		       (unsigned long long)point.seq,
		       (unsigned long long)point.ops_executed,
		       r->clients.map.count);
	return 0;
}

void oskr__pbft_announce_stable(struct oskr_ctx *ctx, struct pbft_replica *r)
{
	if (!r->announce_ticks)
		return;
	r->announce_ticks--;
	for (uint32_t i = 0; i < r->n; i++)
		if (i != r->id)
			oskr__pbft_send_stable(ctx, r, i);
}
