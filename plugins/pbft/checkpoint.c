/* SPDX-License-Identifier: MIT */
/*
 * Checkpoints and garbage collection (TOCS'02 §4.3). Every K sequence
 * numbers a replica digests its state (the client table and the
 * application snapshot) and broadcasts CHECKPOINT(n, d). 2f+1 matching
 * messages make the checkpoint stable: they are kept as its proof, the
 * low water mark h moves to n, and the log below it is discarded.
 *
 * Memory: at most PBFT_MAX_OWN_CHECKPOINTS checkpoints are tracked above
 * h (votes for later ones are only remembered as each replica's latest
 * CHECKPOINT), plus the state of the stable one, which is what peers
 * fetch in a state transfer.
 */
#include "pbft.h"

#include <stdlib.h>

static int stable_alloc(struct pbft_stable *s, uint32_t f)
{
	s->replicas = calloc(2 * f + 1, sizeof(*s->replicas));
	s->votes = calloc(2 * f + 1, sizeof(*s->votes));
	return s->replicas && s->votes ? 0 : -ENOMEM;
}

int oskr__pbft_checkpoints_init(struct pbft_replica *r)
{
	for (int i = 0; i < PBFT_MAX_OWN_CHECKPOINTS; i++) {
		r->own[i].votes = calloc(r->n, sizeof(*r->own[i].votes));
		if (!r->own[i].votes)
			return -ENOMEM;
	}
	r->latest_checkpoint = calloc(r->n, sizeof(*r->latest_checkpoint));
	if (!r->latest_checkpoint || stable_alloc(&r->stable, r->f) ||
	    stable_alloc(&r->known, r->f))
		return -ENOMEM;
	return 0;
}

static void checkpoint_clear(struct pbft_checkpoint *c)
{
	struct pbft_checkpoint_vote *votes = c->votes;
	free(c->state);
	memset(c, 0, sizeof(*c));
	c->votes = votes;
}

void oskr__pbft_checkpoints_fini(struct oskr_ctx *ctx, struct pbft_replica *r)
{
	for (int i = 0; i < PBFT_MAX_OWN_CHECKPOINTS; i++) {
		free(r->own[i].state);
		free(r->own[i].votes);
	}
	free(r->latest_checkpoint);
	free(r->stable.replicas);
	free(r->stable.votes);
	free(r->known.replicas);
	free(r->known.votes);
	free(r->stable_state);
}

/* ---- the state: ops counter, client table, application ---- */

int oskr__pbft_state_take(struct oskr_ctx *ctx, struct pbft_replica *r,
			  uint8_t **out, size_t *out_len)
{
	uint8_t *clients = NULL;
	size_t clients_len = 0;
	void *app = NULL;
	size_t app_len = 0;
	int err = oskr__pbft_clients_serialize(&r->clients, &clients,
					       &clients_len);
	if (err)
		return err;
	if ((err = ctx->host->app_snapshot(ctx, &app, &app_len))) {
		free(clients);
		return err;
	}
	size_t len = 8 + clients_len + 8 + app_len;
	uint8_t *data = malloc(len);
	if (data) {
		struct pbft_writer w = { .data = data, .capacity = len };
		pbft_put_u64(&w, r->ops_executed);
		pbft_put(&w, clients, clients_len);
		pbft_put_u64(&w, app_len);
		pbft_put(&w, app, app_len);
		*out = data;
		*out_len = len;
	}
	free(clients);
	ctx->host->blob_free(ctx, app);
	return data ? 0 : -ENOMEM;
}

int oskr__pbft_state_restore(struct oskr_ctx *ctx, struct pbft_replica *r,
			     const uint8_t *data, size_t len)
{
	struct pbft_reader rd = { .data = data, .len = len };
	uint64_t ops = pbft_get_u64(&rd);
	int err = oskr__pbft_clients_restore(&r->clients, &rd);
	if (err)
		return err;
	uint64_t app_len = pbft_get_u64(&rd);
	const uint8_t *app = pbft_get(&rd, app_len);
	if (rd.bad || rd.pos != len)
		return -EINVAL;
	if ((err = ctx->host->app_restore(ctx, app, app_len)))
		return err;
	r->ops_executed = ops;
	oskr__pbft_pending_prune(&r->pending, &r->clients);
	return 0;
}

/* ---- proofs ---- */

bool oskr__pbft_verify_proof(struct oskr_ctx *ctx, uint32_t f, uint64_t seq,
			     const uint8_t *digest,
			     const struct pbft_sig_list *proof)
{
	if (proof->count < 2 * f + 1)
		return false;
	struct pbft_reader rd = pbft_list_reader(proof->data, proof->len);
	struct pbft_sig_pair pair;
	while (oskr__pbft_next_sig(&rd, &pair)) {
		uint8_t body[PBFT_CHECKPOINT_BODY];
		oskr__pbft_checkpoint_body(body, seq, digest, pair.replica);
		if (!ctx->host->verify(ctx, pair.replica, body, sizeof(body),
				       pair.sig, pair.sig_len))
			return false;
	}
	return true;
}

void oskr__pbft_put_stable_proof(struct pbft_writer *w,
				 const struct pbft_stable *stable)
{
	pbft_put_u8(w, stable->count);
	for (unsigned i = 0; i < stable->count; i++)
		pbft_put_sig_pair(w, stable->replicas[i],
				  stable->votes[i].sig,
				  stable->votes[i].sig_len);
}

static void proof_from_list(struct pbft_stable *s, uint32_t f, uint64_t seq,
			    const uint8_t *digest,
			    const struct pbft_sig_list *proof)
{
	struct pbft_reader rd = pbft_list_reader(proof->data, proof->len);
	struct pbft_sig_pair pair;
	s->seq = seq;
	memcpy(s->digest, digest, PBFT_DIGEST);
	s->count = 0;
	while (s->count < 2 * f + 1 && oskr__pbft_next_sig(&rd, &pair)) {
		s->replicas[s->count] = pair.replica;
		struct pbft_checkpoint_vote *v = &s->votes[s->count];
		v->seq = seq;
		memcpy(v->digest, digest, PBFT_DIGEST);
		v->sig_len = pair.sig_len;
		memcpy(v->sig, pair.sig, pair.sig_len);
		s->count++;
	}
}

/* 2f+1 votes for (seq, digest) among @p votes (indexed by replica). */
static bool proof_from_votes(struct pbft_stable *s, const struct pbft_replica *r,
			     const struct pbft_checkpoint_vote *votes,
			     uint64_t seq, const uint8_t *digest)
{
	s->count = 0;
	for (uint32_t i = 0; i < r->n && s->count < pbft_quorum(r); i++) {
		if (votes[i].seq != seq || !votes[i].sig_len ||
		    memcmp(votes[i].digest, digest, PBFT_DIGEST))
			continue;
		s->replicas[s->count] = (uint16_t)i;
		s->votes[s->count] = votes[i];
		s->count++;
	}
	s->seq = seq;
	memcpy(s->digest, digest, PBFT_DIGEST);
	return s->count >= pbft_quorum(r);
}

void oskr__pbft_send_stable(struct oskr_ctx *ctx, struct pbft_replica *r,
			    uint32_t to)
{
	if (!r->stable.seq)
		return;
	struct pbft_writer w;
	struct oskr_buf *buf = oskr__pbft_alloc(
		ctx, PBFT_CHECKPOINT_BODY + 1 + pbft_quorum(r) * PBFT_SIG_PAIR_MAX,
		&w);
	if (!buf)
		return;
	pbft_put_u8(&w, PBFT_STABLE);
	pbft_put_u64(&w, r->stable.seq);
	pbft_put(&w, r->stable.digest, PBFT_DIGEST);
	pbft_put_u16(&w, (uint16_t)r->id);
	oskr__pbft_put_stable_proof(&w, &r->stable);
	struct pbft_dest dest = { .kind = PBFT_TO_REPLICA, .replica = to };
	oskr__pbft_seal_and_send_async(ctx, buf, w.len, &dest);
}

/* ---- own checkpoints ---- */

static struct pbft_checkpoint *slot_find(struct pbft_replica *r, uint64_t seq)
{
	for (int i = 0; i < PBFT_MAX_OWN_CHECKPOINTS; i++)
		if (r->own[i].seq == seq)
			return &r->own[i];
	return NULL;
}

/* A slot for @p seq: a free one, or the one with the highest seq above it
 * (lower checkpoints become stable first). */
static struct pbft_checkpoint *slot_claim(struct pbft_replica *r, uint64_t seq)
{
	struct pbft_checkpoint *c = slot_find(r, seq), *victim = NULL;
	if (c)
		return c;
	for (int i = 0; i < PBFT_MAX_OWN_CHECKPOINTS; i++) {
		if (!r->own[i].seq)
			return &r->own[i];
		if (r->own[i].seq > seq &&
		    (!victim || r->own[i].seq > victim->seq))
			victim = &r->own[i];
	}
	if (!victim)
		return NULL;
	checkpoint_clear(victim);
	return victim;
}

const struct pbft_checkpoint *
oskr__pbft_own_checkpoint(const struct pbft_replica *r, uint64_t seq,
			  const uint8_t *digest)
{
	for (int i = 0; i < PBFT_MAX_OWN_CHECKPOINTS; i++) {
		const struct pbft_checkpoint *c = &r->own[i];
		if (c->seq == seq && c->state &&
		    !memcmp(c->digest, digest, PBFT_DIGEST))
			return c;
	}
	return NULL;
}

void oskr__pbft_make_stable(struct oskr_ctx *ctx, struct pbft_replica *r,
			    uint64_t seq, const uint8_t *digest,
			    const struct pbft_sig_list *proof,
			    const struct pbft_stable *proof_copy)
{
	struct pbft_checkpoint *c = slot_find(r, seq);
	if (seq <= r->low_mark && r->stable_state)
		return;
	if (proof)
		proof_from_list(&r->stable, r->f, seq, digest, proof);
	else if (proof_copy != &r->stable) {
		r->stable.seq = seq;
		memcpy(r->stable.digest, digest, PBFT_DIGEST);
		r->stable.count = proof_copy->count;
		memcpy(r->stable.replicas, proof_copy->replicas,
		       proof_copy->count * sizeof(*r->stable.replicas));
		memcpy(r->stable.votes, proof_copy->votes,
		       proof_copy->count * sizeof(*r->stable.votes));
	}
	free(r->stable_state);
	r->stable_state = NULL;
	if (c && c->state) {
		r->stable_state = c->state;
		r->stable_state_len = c->state_len;
		c->state = NULL;
	}
	for (int i = 0; i < PBFT_MAX_OWN_CHECKPOINTS; i++)
		if (r->own[i].seq && r->own[i].seq <= seq)
			checkpoint_clear(&r->own[i]);
	if (seq > r->low_mark) {
		r->low_mark = seq;
		oskr__pbft_log_truncate(r, seq);
	}
	if (r->next_seq < seq)
		r->next_seq = seq;
	if (r->last_committed < seq)
		r->last_committed = seq;
	if (r->known.seq <= seq)
		r->known.seq = 0;
	ctx->host->count(ctx, OSKR_COUNTER_CHECKPOINTS, 1);
	/* Stable, and we hold its state: the host may persist it. */
	oskr__pbft_persist_stable(ctx, r);
	oskr__pbft_publish_status(ctx, r);
	/* The window moved: the primary may propose again. */
	oskr__pbft_try_propose(ctx, r);
}

/* Remember a proof of a checkpoint we have not reached. */
static void learn_known(struct oskr_ctx *ctx, struct pbft_replica *r,
			const struct pbft_stable *s)
{
	if (s->seq <= r->known.seq || s->seq <= r->last_executed)
		return;
	r->known.seq = s->seq;
	memcpy(r->known.digest, s->digest, PBFT_DIGEST);
	r->known.count = s->count;
	memcpy(r->known.replicas, s->replicas,
	       s->count * sizeof(*s->replicas));
	memcpy(r->known.votes, s->votes, s->count * sizeof(*s->votes));
	/* A transfer always targets `known` (its proof becomes ours). */
	if (r->transfer.active)
		oskr__pbft_start_transfer(ctx, r, r->known.seq,
					  r->known.digest);
}

/* Is checkpoint slot @p c stable now? */
static void check_stable(struct oskr_ctx *ctx, struct pbft_replica *r,
			 struct pbft_checkpoint *c)
{
	struct pbft_stable proof = { .replicas = NULL };
	uint16_t replicas[PBFT_MAX_REPLICAS];
	struct pbft_checkpoint_vote votes[PBFT_MAX_REPLICAS];
	proof.replicas = replicas;
	proof.votes = votes;

	if (c->state) {
		if (!proof_from_votes(&proof, r, c->votes, c->seq, c->digest))
			return;
		oskr__pbft_make_stable(ctx, r, c->seq, c->digest, NULL,
				       &proof);
		return;
	}
	/* Not reached yet: is there a quorum for some digest? */
	for (uint32_t i = 0; i < r->n; i++) {
		if (c->votes[i].seq != c->seq || !c->votes[i].sig_len)
			continue;
		if (proof_from_votes(&proof, r, c->votes, c->seq,
				     c->votes[i].digest)) {
			learn_known(ctx, r, &proof);
			return;
		}
	}
}

void oskr__pbft_maybe_checkpoint(struct oskr_ctx *ctx, struct pbft_replica *r,
				 uint64_t seq)
{
	if (seq % r->opt.checkpoint_interval)
		return;
	struct pbft_checkpoint *c = slot_claim(r, seq);
	if (!c)
		return;
	uint8_t *state;
	size_t state_len;
	if (oskr__pbft_state_take(ctx, r, &state, &state_len)) {
		ctx->host->log(ctx, OSKR_LOG_ERROR,
			       "pbft: cannot snapshot at %llu",
			       (unsigned long long)seq);
		return;
	}
	uint8_t digest[PBFT_DIGEST];
	ctx->host->digest(ctx, state, state_len, digest);
	if (c->seq == seq && c->state) {
		free(state); /* already taken (cannot happen twice) */
		return;
	}
	c->seq = seq;
	memcpy(c->digest, digest, PBFT_DIGEST);
	c->state = state;
	c->state_len = state_len;
	/* Votes that arrived before we got here. */
	for (uint32_t i = 0; i < r->n; i++) {
		const struct pbft_checkpoint_vote *v = &r->latest_checkpoint[i];
		if (v->seq == seq && !(c->vote_mask & (UINT64_C(1) << i))) {
			c->votes[i] = *v;
			c->vote_mask |= UINT64_C(1) << i;
		}
	}

	uint8_t body[PBFT_CHECKPOINT_BODY];
	oskr__pbft_checkpoint_body(body, seq, digest, (uint16_t)r->id);
	struct pbft_checkpoint_vote *own = &c->votes[r->id];
	size_t sig_len = 0;
	if (ctx->host->sign(ctx, body, sizeof(body), own->sig, &sig_len) ||
	    !sig_len || sig_len > OSKR_SIGNATURE_MAX) {
		oskr__pbft_drop(ctx, "sign_failed");
		return;
	}
	own->seq = seq;
	memcpy(own->digest, digest, PBFT_DIGEST);
	own->sig_len = (uint8_t)sig_len;
	c->vote_mask |= UINT64_C(1) << r->id;

	struct pbft_writer w;
	struct oskr_buf *buf = oskr__pbft_alloc(
		ctx, PBFT_CHECKPOINT_BODY + PBFT_SIG_TRAILER_MAX, &w);
	if (buf) {
		pbft_put(&w, body, sizeof(body));
		pbft_put_u8(&w, own->sig_len);
		pbft_put(&w, own->sig, own->sig_len);
		buf->len = (uint32_t)w.len;
		struct pbft_dest all = { .kind = PBFT_TO_ALL };
		oskr__pbft_send(ctx, buf, &all);
	}
	check_stable(ctx, r, c);
}

/* TOCS'02 §4.3: CHECKPOINT(n, d, i). */
void oskr__pbft_on_checkpoint(struct oskr_ctx *ctx, struct pbft_replica *r,
			      const struct pbft_msg *m)
{
	uint64_t seq = m->checkpoint.seq;
	if (seq == 0 || seq % r->opt.checkpoint_interval) {
		oskr__pbft_drop(ctx, "bad_checkpoint");
		return;
	}
	struct pbft_checkpoint_vote vote = { .seq = seq,
					     .sig_len = m->sig_len };
	memcpy(vote.digest, m->checkpoint.digest, PBFT_DIGEST);
	memcpy(vote.sig, m->sig, m->sig_len);

	struct pbft_checkpoint_vote *latest = &r->latest_checkpoint[m->replica];
	if (seq > latest->seq)
		*latest = vote;
	if (seq <= r->low_mark)
		return; /* old news: already stable here */

	struct pbft_checkpoint *c = slot_find(r, seq);
	if (!c && seq - r->low_mark <= (uint64_t)r->log.window +
						 r->opt.checkpoint_interval)
		c = slot_claim(r, seq);
	if (c) {
		c->seq = seq;
		c->votes[m->replica] = vote;
		c->vote_mask |= UINT64_C(1) << m->replica;
		check_stable(ctx, r, c);
		return;
	}
	/* Far beyond our window: the replicas' latest checkpoints tell
	 * whether 2f+1 of them agree on one we are missing. */
	struct pbft_stable proof;
	uint16_t replicas[PBFT_MAX_REPLICAS];
	struct pbft_checkpoint_vote votes[PBFT_MAX_REPLICAS];
	proof.replicas = replicas;
	proof.votes = votes;
	if (proof_from_votes(&proof, r, r->latest_checkpoint, seq,
			     m->checkpoint.digest))
		learn_known(ctx, r, &proof);
}

void oskr__pbft_on_stable_proof(struct oskr_ctx *ctx, struct pbft_replica *r,
				uint64_t seq, const uint8_t *digest,
				const struct pbft_sig_list *proof, bool force)
{
	if (seq <= r->low_mark)
		return;
	if (oskr__pbft_own_checkpoint(r, seq, digest)) {
		oskr__pbft_make_stable(ctx, r, seq, digest, proof, NULL);
		return;
	}
	struct pbft_stable s;
	uint16_t replicas[PBFT_MAX_REPLICAS];
	struct pbft_checkpoint_vote votes[PBFT_MAX_REPLICAS];
	s.replicas = replicas;
	s.votes = votes;
	proof_from_list(&s, r->f, seq, digest, proof);
	learn_known(ctx, r, &s);
	if (force && r->known.seq == seq)
		oskr__pbft_start_transfer(ctx, r, seq, digest);
}

void oskr__pbft_jump_to(struct oskr_ctx *ctx, struct pbft_replica *r,
			uint64_t seq, const uint8_t *digest,
			const struct pbft_sig_list *proof)
{
	if (seq <= r->low_mark)
		return;
	if (oskr__pbft_own_checkpoint(r, seq, digest) ||
	    r->last_executed >= seq) {
		/* We executed that far; our own checkpoint (if we still
		 * have it) matches the proof. */
		oskr__pbft_make_stable(ctx, r, seq, digest, proof, NULL);
		return;
	}
	oskr__pbft_on_stable_proof(ctx, r, seq, digest, proof, true);
	/* Move the water marks now so the new view's O fits; nothing
	 * executes until the state arrives (last_executed < h). */
	proof_from_list(&r->stable, r->f, seq, digest, proof);
	free(r->stable_state);
	r->stable_state = NULL;
	r->low_mark = seq;
	oskr__pbft_log_truncate(r, seq);
	for (int i = 0; i < PBFT_MAX_OWN_CHECKPOINTS; i++)
		if (r->own[i].seq && r->own[i].seq <= seq)
			checkpoint_clear(&r->own[i]);
	if (r->next_seq < seq)
		r->next_seq = seq;
}

void oskr__pbft_transfer_done(struct oskr_ctx *ctx, struct pbft_replica *r,
			      uint8_t *state, size_t state_len)
{
	uint64_t seq = r->transfer.seq;
	r->last_executed = seq;
	if (r->last_committed < seq)
		r->last_committed = seq;
	if (r->low_mark < seq) {
		r->stable.seq = seq;
		memcpy(r->stable.digest, r->known.digest, PBFT_DIGEST);
		r->stable.count = r->known.count;
		memcpy(r->stable.replicas, r->known.replicas,
		       r->known.count * sizeof(*r->known.replicas));
		memcpy(r->stable.votes, r->known.votes,
		       r->known.count * sizeof(*r->known.votes));
		r->low_mark = seq;
		oskr__pbft_log_truncate(r, seq);
		for (int i = 0; i < PBFT_MAX_OWN_CHECKPOINTS; i++)
			if (r->own[i].seq && r->own[i].seq <= seq)
				checkpoint_clear(&r->own[i]);
	}
	free(r->stable_state);
	r->stable_state = state;
	r->stable_state_len = state_len;
	if (r->known.seq <= seq)
		r->known.seq = 0;
	if (r->next_seq < seq)
		r->next_seq = seq;
	ctx->host->count(ctx, "state_transfers", 1);
	/* A transferred checkpoint is stable too (its digest matched 2f+1
	 * signed CHECKPOINTs) and the app now holds exactly its state. */
	oskr__pbft_persist_stable(ctx, r);
	oskr__pbft_publish_status(ctx, r);
	/* Entries above h may already be committed here. */
	oskr__pbft_execute_ready(ctx, r);
	oskr__pbft_update_vc_timer(ctx, r);
}
