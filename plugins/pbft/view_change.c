/* SPDX-License-Identifier: MIT */
/*
 * View change (TOCS'02 §4.4, liveness rules §4.5.2).
 *
 * VIEW-CHANGE(v+1, n, C, P, i): n and C are the stable checkpoint and its
 * proof; P holds, for each sequence number above n that prepared here,
 * the prepared certificate with the highest view (the pre-prepare without
 * its batch, and 2f prepares). Certificates carry digests only, so the
 * message is bounded by L certificates (checked against max_message at
 * init).
 *
 * NEW-VIEW(v+1, V, O): V names the 2f+1 VIEW-CHANGE messages by (replica,
 * digest of the message) instead of carrying them (they would not fit one
 * message); a backup that lacks one fetches it from the new primary. O
 * has a signed pre-prepare for each n in (min-s, max-s], with the digest
 * of the highest-view prepared certificate for n in V, or the null
 * request. Backups recompute O from V before entering the view.
 */
#include "pbft.h"

#include <stdlib.h>

/* Our VIEW-CHANGE is resent after 1, 2, 4, … retransmit intervals, at
 * most this many apart. */
#define PBFT_VC_RESEND_MAX 16

int oskr__pbft_view_change_init(struct pbft_replica *r)
{
	r->vcs = calloc(r->n, sizeof(*r->vcs));
	r->vc_peers = calloc(r->n, sizeof(*r->vc_peers));
	r->view_seen = calloc(r->n, sizeof(*r->view_seen));
	return r->vcs && r->vc_peers && r->view_seen ? 0 : -ENOMEM;
}

void oskr__pbft_view_change_fini(struct pbft_replica *r)
{
	for (uint32_t i = 0; r->vcs && i < r->n; i++)
		free(r->vcs[i].raw);
	free(r->vcs);
	free(r->vc_peers);
	r->vc_peers = NULL;
	free(r->view_seen);
	free(r->new_view_msg);
	free(r->pending_new_view);
}

size_t oskr__pbft_view_change_max_size(uint32_t n, uint32_t f,
				       uint32_t window, size_t sig_size)
{
	size_t pair = 2 + 1 + sig_size, trailer = 1 + sig_size;
	size_t cert = 8 + 8 + PBFT_DIGEST + 1 + sig_size + 1 + 2 * f * pair;
	size_t vc = 1 + 8 + 8 + PBFT_DIGEST + 2 + 1 + (2 * f + 1) * pair + 2 +
		    window * cert + trailer;
	size_t nv = 1 + 8 + 2 + 1 + (2 * f + 1) * (2 + PBFT_DIGEST) + 8 + 8 +
		    2 + window * (8 + PBFT_DIGEST + 1 + sig_size) + trailer;
	return vc > nv ? vc : nv;
}

/* ---- verification (stateless) ---- */

bool oskr__pbft_verify_view_change(struct oskr_ctx *ctx, uint32_t n,
				   uint32_t f, uint32_t window,
				   const struct pbft_msg *m)
{
	uint64_t stable_seq = m->view_change.stable_seq;
	if (m->view_change.new_view == 0)
		return false;
	if (stable_seq == 0) {
		/* the genesis checkpoint needs no proof */
		static const uint8_t zero[PBFT_DIGEST];
		if (m->view_change.proof.count ||
		    memcmp(m->view_change.stable_digest, zero, PBFT_DIGEST))
			return false;
	} else if (!oskr__pbft_verify_proof(ctx, f, stable_seq,
					    m->view_change.stable_digest,
					    &m->view_change.proof)) {
		return false;
	}
	struct pbft_reader rd = pbft_list_reader(m->view_change.prepared,
						 m->view_change.prepared_len);
	struct pbft_prepared_cert cert;
	while (oskr__pbft_next_prepared(&rd, &cert)) {
		uint32_t primary = (uint32_t)(cert.view % n);
		uint8_t body[PBFT_ORDER_BODY];
		if (cert.view >= m->view_change.new_view ||
		    cert.seq <= stable_seq || cert.seq - stable_seq > window ||
		    cert.prepares.count < 2 * f)
			return false;
		oskr__pbft_order_body(body, PBFT_PRE_PREPARE, cert.view,
				      cert.seq, cert.digest, (uint16_t)primary);
		if (!ctx->host->verify(ctx, primary, body, sizeof(body),
				       cert.pp_sig, cert.pp_sig_len))
			return false;
		struct pbft_reader pr = pbft_list_reader(cert.prepares.data,
							 cert.prepares.len);
		struct pbft_sig_pair pair;
		while (oskr__pbft_next_sig(&pr, &pair)) {
			if (pair.replica == primary)
				return false;
			oskr__pbft_order_body(body, PBFT_PREPARE, cert.view,
					      cert.seq, cert.digest,
					      pair.replica);
			if (!ctx->host->verify(ctx, pair.replica, body,
					       sizeof(body), pair.sig,
					       pair.sig_len))
				return false;
		}
	}
	return true;
}

bool oskr__pbft_verify_new_view(struct oskr_ctx *ctx, uint32_t n,
				const struct pbft_msg *m)
{
	if (m->replica != m->new_view.view % n)
		return false;
	struct pbft_reader o = pbft_list_reader(m->new_view.o,
						m->new_view.o_len);
	struct pbft_o_entry entry;
	while (oskr__pbft_next_o_entry(&o, &entry)) {
		uint8_t body[PBFT_ORDER_BODY];
		oskr__pbft_order_body(body, PBFT_PRE_PREPARE, m->new_view.view,
				      entry.seq, entry.digest, m->replica);
		if (!ctx->host->verify(ctx, m->replica, body, sizeof(body),
				       entry.sig, entry.sig_len))
			return false;
	}
	return true;
}

/* ---- pacing (docs/pbft.md, "view-change traffic") ---- */

/* A check in progress for @p view. The mark lapses after the base
 * view-change timeout in case the check's result was lost (a full task
 * queue), so a later copy is checked then. */
static bool checking(const struct pbft_replica *r,
		     const struct pbft_check_mark *mark, uint64_t view,
		     uint64_t now)
{
	return mark->view == view &&
	       now - mark->since_ns < r->opt.view_change_timeout_ns;
}

static void mark_checking(struct pbft_check_mark *mark, uint64_t view,
			  uint64_t now)
{
	mark->view = view;
	mark->since_ns = now;
}

/* At most once per retransmission interval per peer. */
static bool paced(const struct pbft_replica *r, uint64_t *last, uint64_t now)
{
	if (*last && now - *last < r->opt.retransmit_ns)
		return false;
	*last = now;
	return true;
}

/* The new primary answers a replica that seems to lack its NEW-VIEW (it
 * resent its VIEW-CHANGE, or asked). */
static void resend_new_view(struct oskr_ctx *ctx, struct pbft_replica *r,
			    uint32_t to)
{
	uint64_t now = ctx->host->now_ns(ctx);
	if (!paced(r, &r->vc_peers[to].new_view_sent_ns, now))
		return;
	struct pbft_dest dest = { .kind = PBFT_TO_REPLICA, .replica = to };
	oskr__pbft_send_raw(ctx, r->new_view_msg, r->new_view_len, &dest);
}

/* ---- timers ---- */

static void vc_timer_fired(struct oskr_ctx *ctx, void *state, void *arg);

/* TOCS'02 §4.5.2: a replica that has 2f+1 VIEW-CHANGEs for the view it
 * moves to (its own included) starts a timer; if the NEW-VIEW does not
 * come in time it moves on to the next view, waiting twice as long. A
 * replica that is alone in wanting a view change never gets 2f+1, so it
 * does not climb views nobody joins (it resends its VIEW-CHANGE each
 * tick and waits). */
static void maybe_arm_vc_timer(struct oskr_ctx *ctx, struct pbft_replica *r)
{
	if (!r->view_changing || r->vc_timer)
		return;
	uint32_t count = 0;
	for (uint32_t i = 0; i < r->n; i++)
		if (r->vcs[i].view == r->view)
			count++;
	if (count < pbft_quorum(r))
		return;
	ctx->host->log(ctx, OSKR_LOG_DEBUG,
		       "pbft: 2f+1 VIEW-CHANGEs for view %llu: waiting %llu ms "
		       "for its NEW-VIEW",
		       (unsigned long long)r->view,
		       (unsigned long long)(r->vc_wait_ns / PBFT_MS));
	if (ctx->host->timer_arm(ctx, r->vc_wait_ns, vc_timer_fired, NULL,
				 &r->vc_timer))
		r->vc_timer = 0;
}

static void vc_timer_fired(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct pbft_replica *r = state;
	if (r->stopped)
		return;
	r->vc_timer = 0;
	ctx->host->log(ctx, OSKR_LOG_DEBUG, "pbft: no NEW-VIEW for view %llu",
		       (unsigned long long)r->view);
	oskr__pbft_start_view_change(ctx, r, r->view + 1);
}

/* ---- VIEW-CHANGE ---- */

static void put_prepared_cert(struct pbft_writer *w,
			      const struct pbft_entry *e)
{
	const struct pbft_prepared *cert = &e->prepared_cert;
	pbft_put_u64(w, cert->view);
	pbft_put_u64(w, e->seq);
	pbft_put(w, cert->digest, PBFT_DIGEST);
	pbft_put_u8(w, cert->pp_sig_len);
	pbft_put(w, cert->pp_sig, cert->pp_sig_len);
	pbft_put_u8(w, cert->prepare_count);
	for (unsigned i = 0; i < cert->prepare_count; i++)
		pbft_put_sig_pair(w, cert->prepare_replicas[i],
				  cert->prepare_votes[i].sig,
				  cert->prepare_votes[i].sig_len);
}

static void store_vc(struct pbft_stored_vc *slot, struct oskr_ctx *ctx,
		     uint64_t view, const uint8_t *raw, size_t len)
{
	uint8_t *copy = malloc(len);
	if (!copy)
		return;
	memcpy(copy, raw, len);
	free(slot->raw);
	slot->raw = copy;
	slot->len = len;
	slot->view = view;
	ctx->host->digest(ctx, raw, len, slot->digest);
}

static void try_new_view(struct oskr_ctx *ctx, struct pbft_replica *r);

void oskr__pbft_start_view_change(struct oskr_ctx *ctx, struct pbft_replica *r,
				  uint64_t new_view)
{
	if (new_view <= r->view && (r->view_changing || new_view < r->view))
		return;
	r->view = new_view;
	r->view_changing = true;
	if (r->batch_timer) {
		ctx->host->timer_cancel(ctx, r->batch_timer);
		r->batch_timer = 0;
	}
	ctx->host->log(ctx, OSKR_LOG_INFO, "pbft: view change to %llu",
		       (unsigned long long)new_view);

	struct pbft_writer w;
	struct oskr_buf *buf = oskr__pbft_alloc(ctx, r->max_message, &w);
	if (buf) {
		pbft_put_u8(&w, PBFT_VIEW_CHANGE);
		pbft_put_u64(&w, new_view);
		pbft_put_u64(&w, r->stable.seq);
		if (r->stable.seq)
			pbft_put(&w, r->stable.digest, PBFT_DIGEST);
		else
			pbft_put(&w, (uint8_t[PBFT_DIGEST]){ 0 }, PBFT_DIGEST);
		pbft_put_u16(&w, (uint16_t)r->id);
		if (r->stable.seq)
			oskr__pbft_put_stable_proof(&w, &r->stable);
		else
			pbft_put_u8(&w, 0);
		size_t count_at = w.len;
		uint16_t count = 0;
		pbft_put_u16(&w, 0);
		for (uint64_t seq = r->low_mark + 1;
		     oskr__pbft_in_window(r, seq); seq++) {
			const struct pbft_entry *e =
				oskr__pbft_entry_find(r, seq);
			if (e && e->prepared_cert.valid) {
				put_prepared_cert(&w, e);
				count++;
			}
		}
		w.data[count_at] = (uint8_t)count;
		w.data[count_at + 1] = (uint8_t)(count >> 8);
		if (w.overflow || oskr__pbft_seal(ctx, buf, w.len)) {
			ctx->host->log(ctx, OSKR_LOG_ERROR,
				       "pbft: cannot build VIEW-CHANGE");
			ctx->host->buf_release(buf);
		} else {
			store_vc(&r->vcs[r->id], ctx, new_view, buf->data,
				 buf->len);
			ctx->host->log(ctx, OSKR_LOG_DEBUG,
				       "pbft: VIEW-CHANGE for view %llu: %u "
				       "bytes, %u prepared certificates",
				       (unsigned long long)new_view, buf->len,
				       count);
			struct pbft_dest all = { .kind = PBFT_TO_ALL };
			oskr__pbft_send(ctx, buf, &all);
		}
	}
	/* The next one waits twice as long unless a request executes. */
	if (r->vc_timer) {
		ctx->host->timer_cancel(ctx, r->vc_timer);
		r->vc_timer = 0;
	}
	r->vc_wait_ns = r->vc_timeout_ns;
	if (r->vc_timeout_ns < UINT64_C(1) << 62)
		r->vc_timeout_ns *= 2;
	r->vc_resend_ns = r->opt.retransmit_ns;
	r->vc_resend_at_ns = ctx->host->now_ns(ctx) + r->vc_resend_ns;
	oskr__pbft_publish_status(ctx, r);
	maybe_arm_vc_timer(ctx, r);
	try_new_view(ctx, r);
}

/* ---- computing O (TOCS'02 §4.4) ---- */

struct o_set {
	uint64_t min_s, max_s;
	uint8_t min_digest[PBFT_DIGEST];
	uint32_t min_source; /* replica whose VIEW-CHANGE proves min-s */
	uint8_t (*digests)[PBFT_DIGEST]; /* max_s - min_s entries */
	uint64_t *views;
	bool *has_cert;
};

static void o_set_free(struct o_set *o)
{
	free(o->digests);
	free(o->views);
	free(o->has_cert);
}

/* Compute O from the VIEW-CHANGE messages of @p replicas. */
static int compute_o(struct oskr_ctx *ctx, struct pbft_replica *r,
		     const uint16_t *replicas, uint32_t count, struct o_set *o)
{
	struct pbft_msg vc;
	const char *why;
	memset(o, 0, sizeof(*o));
	for (uint32_t k = 0; k < count; k++) {
		const struct pbft_stored_vc *s = &r->vcs[replicas[k]];
		if (oskr__pbft_decode(s->raw, s->len, r->n, &vc, &why))
			return -EINVAL;
		if (k == 0 || vc.view_change.stable_seq > o->min_s) {
			o->min_s = vc.view_change.stable_seq;
			memcpy(o->min_digest, vc.view_change.stable_digest,
			       PBFT_DIGEST);
			o->min_source = replicas[k];
		}
	}
	o->max_s = o->min_s;
	for (uint32_t k = 0; k < count; k++) {
		const struct pbft_stored_vc *s = &r->vcs[replicas[k]];
		oskr__pbft_decode(s->raw, s->len, r->n, &vc, &why);
		struct pbft_reader rd = pbft_list_reader(
			vc.view_change.prepared, vc.view_change.prepared_len);
		struct pbft_prepared_cert cert;
		while (oskr__pbft_next_prepared(&rd, &cert))
			if (cert.seq > o->max_s)
				o->max_s = cert.seq;
	}
	/* Each VIEW-CHANGE's certificates lie within L of its own stable
	 * checkpoint, which is <= min-s: O fits in the window. */
	uint64_t span = o->max_s - o->min_s;
	if (span > r->log.window)
		return -EINVAL;
	o->digests = calloc(span ? span : 1, PBFT_DIGEST);
	o->views = calloc(span ? span : 1, sizeof(*o->views));
	o->has_cert = calloc(span ? span : 1, sizeof(*o->has_cert));
	if (!o->digests || !o->views || !o->has_cert)
		return -ENOMEM;
	for (uint32_t k = 0; k < count; k++) {
		const struct pbft_stored_vc *s = &r->vcs[replicas[k]];
		oskr__pbft_decode(s->raw, s->len, r->n, &vc, &why);
		struct pbft_reader rd = pbft_list_reader(
			vc.view_change.prepared, vc.view_change.prepared_len);
		struct pbft_prepared_cert cert;
		while (oskr__pbft_next_prepared(&rd, &cert)) {
			if (cert.seq <= o->min_s)
				continue;
			uint64_t i = cert.seq - o->min_s - 1;
			if (!o->has_cert[i] || cert.view > o->views[i]) {
				o->has_cert[i] = true;
				o->views[i] = cert.view;
				memcpy(o->digests[i], cert.digest,
				       PBFT_DIGEST);
			}
		}
	}
	uint8_t null_digest[PBFT_DIGEST];
	oskr__pbft_null_digest(ctx, null_digest);
	for (uint64_t i = 0; i < span; i++)
		if (!o->has_cert[i])
			memcpy(o->digests[i], null_digest, PBFT_DIGEST);
	return 0;
}

/* ---- entering a view ---- */

static void install_new_view(struct oskr_ctx *ctx, struct pbft_replica *r,
			     const struct pbft_msg *nv, const struct o_set *o)
{
	uint64_t view = nv->new_view.view;
	r->view = view;
	r->view_changing = false;
	if (r->vc_timer) {
		ctx->host->timer_cancel(ctx, r->vc_timer);
		r->vc_timer = 0;
	}
	ctx->host->count(ctx, OSKR_COUNTER_VIEW_CHANGES, 1);
	ctx->host->log(ctx, OSKR_LOG_INFO, "pbft: entered view %llu",
		       (unsigned long long)view);
	uint8_t *copy = malloc(nv->raw_len);
	if (copy) {
		memcpy(copy, nv->raw, nv->raw_len);
		free(r->new_view_msg);
		r->new_view_msg = copy;
		r->new_view_len = nv->raw_len;
	}
	free(r->pending_new_view);
	r->pending_new_view = NULL;

	/* min-s: the latest stable checkpoint in V. */
	if (o->min_s > r->low_mark) {
		struct pbft_msg vc;
		const char *why;
		const struct pbft_stored_vc *s = &r->vcs[o->min_source];
		if (!oskr__pbft_decode(s->raw, s->len, r->n, &vc, &why))
			oskr__pbft_jump_to(ctx, r, o->min_s, o->min_digest,
					   &vc.view_change.proof);
	}
	/* Forget the old views' pre-prepares; prepared certificates and
	 * batches stay. */
	for (uint32_t i = 0; i < r->log.window; i++)
		if (r->log.entries[i].seq)
			oskr__pbft_entry_reset_view(&r->log.entries[i]);

	static const uint8_t empty_batch[4] = { 0 };
	struct pbft_reader rd = pbft_list_reader(nv->new_view.o,
						 nv->new_view.o_len);
	struct pbft_o_entry entry;
	uint64_t i = 0;
	while (oskr__pbft_next_o_entry(&rd, &entry)) {
		bool is_null = !o->has_cert[i++];
		if (entry.seq <= r->low_mark)
			continue;
		struct pbft_entry *e = oskr__pbft_entry(r, entry.seq);
		if (!e)
			continue;
		if (is_null)
			oskr__pbft_entry_set_batch(e, empty_batch,
						   sizeof(empty_batch),
						   entry.digest);
		oskr__pbft_accept_pre_prepare(ctx, r, view, entry.seq,
					      entry.digest, entry.sig,
					      entry.sig_len);
	}
	if (r->next_seq < o->max_s)
		r->next_seq = o->max_s;
	if (r->next_seq < r->low_mark)
		r->next_seq = r->low_mark;
	/* Sequence numbers above max-s that old views assigned are free
	 * again for the new primary. */
	if (pbft_is_primary(r)) {
		r->next_seq = o->max_s > r->low_mark ? o->max_s : r->low_mark;
		if (r->next_seq < r->last_executed)
			r->next_seq = r->last_executed;
	}

	/* Requests in flight survive: the new primary proposes what it has
	 * pending; backups hand theirs to it. */
	oskr__pbft_pending_prune(&r->pending, &r->clients);
	if (pbft_is_primary(r)) {
		oskr__pbft_pending_unpropose(&r->pending);
		oskr__pbft_try_propose(ctx, r);
	} else {
		for (const struct pbft_pending *p = r->pending.queue.head; p;
		     p = p->next)
			oskr__pbft_relay(ctx, r, &p->req);
		oskr__pbft_update_vc_timer(ctx, r);
	}
	oskr__pbft_fetch_missing_batches(ctx, r);
	oskr__pbft_publish_status(ctx, r);
	oskr__pbft_execute_ready(ctx, r);
}

/* New primary: 2f+1 VIEW-CHANGEs for our view (ours included). */
static void try_new_view(struct oskr_ctx *ctx, struct pbft_replica *r)
{
	if (!r->view_changing || !pbft_is_primary(r) ||
	    r->vcs[r->id].view != r->view)
		return;
	uint16_t replicas[PBFT_MAX_REPLICAS];
	uint32_t count = 0;
	replicas[count++] = (uint16_t)r->id;
	for (uint32_t i = 0; i < r->n && count < pbft_quorum(r); i++)
		if (i != r->id && r->vcs[i].view == r->view)
			replicas[count++] = (uint16_t)i;
	if (count < pbft_quorum(r))
		return;

	struct o_set o;
	if (compute_o(ctx, r, replicas, count, &o)) {
		o_set_free(&o);
		return;
	}
	struct pbft_writer w;
	struct oskr_buf *buf = oskr__pbft_alloc(ctx, r->max_message, &w);
	if (!buf) {
		o_set_free(&o);
		return;
	}
	pbft_put_u8(&w, PBFT_NEW_VIEW);
	pbft_put_u64(&w, r->view);
	pbft_put_u16(&w, (uint16_t)r->id);
	pbft_put_u8(&w, (uint8_t)count);
	for (uint32_t k = 0; k < count; k++) {
		pbft_put_u16(&w, replicas[k]);
		pbft_put(&w, r->vcs[replicas[k]].digest, PBFT_DIGEST);
	}
	pbft_put_u64(&w, o.min_s);
	pbft_put_u64(&w, o.max_s);
	pbft_put_u16(&w, (uint16_t)(o.max_s - o.min_s));
	for (uint64_t seq = o.min_s + 1; seq <= o.max_s; seq++) {
		const uint8_t *digest = o.digests[seq - o.min_s - 1];
		uint8_t body[PBFT_ORDER_BODY], sig[OSKR_SIGNATURE_MAX];
		size_t sig_len = 0;
		oskr__pbft_order_body(body, PBFT_PRE_PREPARE, r->view, seq,
				      digest, (uint16_t)r->id);
		ctx->host->sign(ctx, body, sizeof(body), sig, &sig_len);
		pbft_put_u64(&w, seq);
		pbft_put(&w, digest, PBFT_DIGEST);
		pbft_put_u8(&w, (uint8_t)sig_len);
		pbft_put(&w, sig, sig_len);
	}
	struct pbft_msg nv;
	const char *why;
	if (w.overflow || oskr__pbft_seal(ctx, buf, w.len) ||
	    oskr__pbft_decode(buf->data, buf->len, r->n, &nv, &why)) {
		ctx->host->log(ctx, OSKR_LOG_ERROR,
			       "pbft: cannot build NEW-VIEW");
		ctx->host->buf_release(buf);
		o_set_free(&o);
		return;
	}
	ctx->host->buf_hold(buf);
	ctx->host->log(ctx, OSKR_LOG_DEBUG,
		       "pbft: NEW-VIEW for view %llu: %u bytes, O of %llu",
		       (unsigned long long)r->view, buf->len,
		       (unsigned long long)(o.max_s - o.min_s));
	struct pbft_dest all = { .kind = PBFT_TO_ALL };
	oskr__pbft_send(ctx, buf, &all);
	install_new_view(ctx, r, &nv, &o);
	ctx->host->buf_release(buf);
	o_set_free(&o);
}

/* ---- receiving ---- */

void oskr__pbft_saw_view(struct oskr_ctx *ctx, struct pbft_replica *r,
			 uint32_t replica, uint64_t view)
{
	if (view > r->view_seen[replica])
		r->view_seen[replica] = view;
}

static void fetch_view_message(struct oskr_ctx *ctx, struct pbft_replica *r,
			       uint8_t type, uint64_t view, uint16_t target)
{
	struct pbft_writer w;
	struct oskr_buf *buf = oskr__pbft_alloc(ctx, 1 + 8 + 2 + 2, &w);
	if (!buf)
		return;
	pbft_put_u8(&w, type);
	pbft_put_u64(&w, view);
	pbft_put_u16(&w, (uint16_t)r->id);
	if (type == PBFT_FETCH_VIEW_CHANGE)
		pbft_put_u16(&w, target);
	struct pbft_dest dest = { .kind = PBFT_TO_REPLICA,
				  .replica = pbft_primary(r, view) };
	oskr__pbft_seal_and_send_async(ctx, buf, w.len, &dest);
}

/* Check a NEW-VIEW against the VIEW-CHANGEs it names and enter its
 * view. Returns false (and asks for them) when some are missing. */
static bool process_new_view(struct oskr_ctx *ctx, struct pbft_replica *r,
			     const struct pbft_msg *m)
{
	uint64_t view = m->new_view.view;
	uint16_t replicas[PBFT_MAX_REPLICAS];
	uint32_t count = 0;
	bool missing = false;
	struct pbft_reader rd = pbft_list_reader(
		m->new_view.vcs, m->new_view.vc_count * (2 + PBFT_DIGEST));
	uint16_t replica;
	const uint8_t *digest;
	while (oskr__pbft_next_vc_ref(&rd, &replica, &digest)) {
		const struct pbft_stored_vc *s = &r->vcs[replica];
		if (s->view != view ||
		    memcmp(s->digest, digest, PBFT_DIGEST)) {
			missing = true;
			/* Not while a copy is in check; paced: the answer
			 * costs the primary up to max_message bytes and us
			 * a certificate check. */
			struct pbft_vc_peer *peer = &r->vc_peers[replica];
			uint64_t now = ctx->host->now_ns(ctx);
			if (!checking(r, &peer->checking, view, now) &&
			    paced(r, &peer->fetch_sent_ns, now)) {
				ctx->host->log(ctx, OSKR_LOG_DEBUG,
					       "pbft: NEW-VIEW %llu names a "
					       "VIEW-CHANGE of replica %u we "
					       "lack: fetching it",
					       (unsigned long long)view,
					       replica);
				fetch_view_message(ctx, r,
						   PBFT_FETCH_VIEW_CHANGE, view,
						   replica);
			}
			continue;
		}
		replicas[count++] = replica;
	}
	if (missing)
		return false;
	if (count < pbft_quorum(r)) {
		oskr__pbft_drop(ctx, "bad_new_view");
		return true;
	}
	struct o_set o;
	bool valid = !compute_o(ctx, r, replicas, count, &o) &&
		     o.min_s == m->new_view.min_s &&
		     o.max_s == m->new_view.max_s;
	if (valid) {
		struct pbft_reader ord = pbft_list_reader(m->new_view.o,
							  m->new_view.o_len);
		struct pbft_o_entry entry;
		while (oskr__pbft_next_o_entry(&ord, &entry))
			if (memcmp(entry.digest,
				   o.digests[entry.seq - o.min_s - 1],
				   PBFT_DIGEST))
				valid = false;
	}
	if (valid)
		install_new_view(ctx, r, m, &o);
	else {
		/* TOCS'02 §4.4: a NEW-VIEW whose O does not follow from V
		 * proves the new primary faulty: move on. */
		oskr__pbft_drop(ctx, "bad_new_view");
		oskr__pbft_start_view_change(ctx, r, view + 1);
	}
	o_set_free(&o);
	return true;
}

static void on_new_view(struct oskr_ctx *ctx, struct pbft_replica *r,
			const struct pbft_msg *m)
{
	uint64_t view = m->new_view.view;
	oskr__pbft_saw_view(ctx, r, m->replica, view);
	if (view < r->view || (view == r->view && !r->view_changing)) {
		oskr__pbft_drop(ctx, "old_new_view");
		return;
	}
	if (!process_new_view(ctx, r, m)) {
		/* Keep it until the VIEW-CHANGEs it names arrive. */
		uint8_t *copy = malloc(m->raw_len);
		if (!copy)
			return;
		memcpy(copy, m->raw, m->raw_len);
		free(r->pending_new_view);
		r->pending_new_view = copy;
		r->pending_new_view_len = m->raw_len;
	}
}

static void retry_pending_new_view(struct oskr_ctx *ctx,
				   struct pbft_replica *r)
{
	struct pbft_msg nv;
	const char *why;
	if (!r->pending_new_view)
		return;
	uint8_t *raw = r->pending_new_view;
	r->pending_new_view = NULL;
	if (!oskr__pbft_decode(raw, r->pending_new_view_len, r->n, &nv,
			       &why) &&
	    (nv.new_view.view > r->view ||
	     (nv.new_view.view == r->view && r->view_changing)) &&
	    !process_new_view(ctx, r, &nv)) {
		r->pending_new_view = raw;
		return;
	}
	free(raw);
}

/* Our NEW-VIEW, if we are the primary of the view @p view we run. */
static bool serves_new_view(const struct pbft_replica *r, uint64_t view)
{
	return view == r->view && !r->view_changing && r->new_view_msg &&
	       pbft_is_primary(r);
}

bool oskr__pbft_new_view_wanted(struct oskr_ctx *ctx, struct pbft_replica *r,
				const struct pbft_msg *m)
{
	uint64_t view = m->new_view.view;
	oskr__pbft_saw_view(ctx, r, m->replica, view);
	if (view < r->view || (view == r->view && !r->view_changing)) {
		oskr__pbft_drop(ctx, "old_new_view");
		return false;
	}
	if (r->pending_new_view && r->pending_new_view_len == m->raw_len &&
	    !memcmp(r->pending_new_view, m->raw, m->raw_len)) {
		/* checked already; it waits for the VIEW-CHANGEs it names */
		oskr__pbft_drop(ctx, "duplicate_new_view");
		return false;
	}
	uint64_t now = ctx->host->now_ns(ctx);
	if (checking(r, &r->new_view_checking, view, now)) {
		oskr__pbft_drop(ctx, "duplicate_new_view");
		return false;
	}
	mark_checking(&r->new_view_checking, view, now);
	return true;
}

void oskr__pbft_on_new_view_checked(struct oskr_ctx *ctx,
				    struct pbft_replica *r,
				    const struct pbft_msg *m, bool valid)
{
	if (r->new_view_checking.view == m->new_view.view)
		r->new_view_checking.view = 0;
	if (!valid) {
		oskr__pbft_drop(ctx, "bad_certificate");
		return;
	}
	on_new_view(ctx, r, m);
}

/* A faulty replica may send different VIEW-CHANGEs for one view to
 * different replicas. When the NEW-VIEW we hold names another one than
 * ours, a copy of that one (fetched from the primary) replaces ours. */
static bool named_by_pending_new_view(struct oskr_ctx *ctx,
				      struct pbft_replica *r,
				      const struct pbft_msg *vc)
{
	struct pbft_msg nv;
	const char *why;
	const struct pbft_stored_vc *slot = &r->vcs[vc->replica];
	if (!r->pending_new_view ||
	    oskr__pbft_decode(r->pending_new_view, r->pending_new_view_len,
			      r->n, &nv, &why) ||
	    nv.new_view.view != vc->view_change.new_view)
		return false;
	struct pbft_reader rd = pbft_list_reader(
		nv.new_view.vcs, nv.new_view.vc_count * (2 + PBFT_DIGEST));
	uint16_t replica;
	const uint8_t *named;
	while (oskr__pbft_next_vc_ref(&rd, &replica, &named)) {
		if (replica != vc->replica ||
		    !memcmp(named, slot->digest, PBFT_DIGEST))
			continue;
		uint8_t digest[PBFT_DIGEST];
		ctx->host->digest(ctx, vc->raw, vc->raw_len, digest);
		return !memcmp(named, digest, PBFT_DIGEST);
	}
	return false;
}

bool oskr__pbft_view_change_wanted(struct oskr_ctx *ctx,
				   struct pbft_replica *r,
				   const struct pbft_msg *m)
{
	uint64_t view = m->view_change.new_view;
	const struct pbft_stored_vc *slot = &r->vcs[m->replica];
	struct pbft_vc_peer *peer = &r->vc_peers[m->replica];
	if (view < slot->view) {
		oskr__pbft_drop(ctx, "old_view_change");
		return false;
	}
	if (view == slot->view && !named_by_pending_new_view(ctx, r, m)) {
		/* A resend (a correct replica sends one VIEW-CHANGE per
		 * view): the sender may have missed our NEW-VIEW. */
		oskr__pbft_drop(ctx, "duplicate_view_change");
		if (serves_new_view(r, view))
			resend_new_view(ctx, r, m->replica);
		return false;
	}
	uint64_t now = ctx->host->now_ns(ctx);
	if (checking(r, &peer->checking, view, now)) {
		oskr__pbft_drop(ctx, "duplicate_view_change");
		return false;
	}
	mark_checking(&peer->checking, view, now);
	return true;
}

static void on_view_change(struct oskr_ctx *ctx, struct pbft_replica *r,
			   const struct pbft_msg *m);

void oskr__pbft_on_view_change_checked(struct oskr_ctx *ctx,
				       struct pbft_replica *r,
				       const struct pbft_msg *m, bool valid)
{
	struct pbft_vc_peer *peer = &r->vc_peers[m->replica];
	if (peer->checking.view == m->view_change.new_view)
		peer->checking.view = 0;
	if (!valid) {
		oskr__pbft_drop(ctx, "bad_certificate");
		return;
	}
	on_view_change(ctx, r, m);
}

static void on_view_change(struct oskr_ctx *ctx, struct pbft_replica *r,
			   const struct pbft_msg *m)
{
	uint64_t view = m->view_change.new_view;
	struct pbft_stored_vc *slot = &r->vcs[m->replica];
	if (view < slot->view ||
	    (view == slot->view && !named_by_pending_new_view(ctx, r, m))) {
		/* a newer one was stored while this one was in check */
		oskr__pbft_drop(ctx, "old_view_change");
		return;
	}
	store_vc(slot, ctx, view, m->raw, m->raw_len);
	if (serves_new_view(r, view))
		resend_new_view(ctx, r, m->replica);

	/* TOCS'02 §4.5.2: f+1 replicas want a view above ours: join the
	 * smallest of them, without waiting for our timer. */
	uint64_t smallest = UINT64_MAX;
	uint32_t above = 0;
	for (uint32_t i = 0; i < r->n; i++) {
		if (i == r->id || r->vcs[i].view <= r->view)
			continue;
		above++;
		if (r->vcs[i].view < smallest)
			smallest = r->vcs[i].view;
	}
	if (above >= r->f + 1)
		oskr__pbft_start_view_change(ctx, r, smallest);

	maybe_arm_vc_timer(ctx, r);
	retry_pending_new_view(ctx, r);
	try_new_view(ctx, r);
}

void oskr__pbft_on_fetch_view(struct oskr_ctx *ctx, struct pbft_replica *r,
			      const struct pbft_msg *m)
{
	struct pbft_dest dest = { .kind = PBFT_TO_REPLICA,
				  .replica = m->replica };
	if (m->type == PBFT_FETCH_VIEW_CHANGE) {
		const struct pbft_stored_vc *s = &r->vcs[m->fetch_view.target];
		if (s->view == m->fetch_view.view && s->raw)
			oskr__pbft_send_raw(ctx, s->raw, s->len, &dest);
		return;
	}
	if (r->new_view_msg && !r->view_changing &&
	    r->view >= m->fetch_view.view)
		resend_new_view(ctx, r, m->replica);
}

void oskr__pbft_view_change_tick(struct oskr_ctx *ctx, struct pbft_replica *r)
{
	/* Resend our VIEW-CHANGE with back-off: every copy costs each
	 * receiver a signature check and a digest (docs/pbft.md). */
	struct pbft_dest all = { .kind = PBFT_TO_ALL };
	uint64_t now = ctx->host->now_ns(ctx);
	if (r->view_changing && r->vcs[r->id].view == r->view &&
	    now >= r->vc_resend_at_ns) {
		oskr__pbft_send_raw(ctx, r->vcs[r->id].raw, r->vcs[r->id].len,
				    &all);
		if (r->vc_resend_ns < PBFT_VC_RESEND_MAX * r->opt.retransmit_ns)
			r->vc_resend_ns *= 2;
		r->vc_resend_at_ns = now + r->vc_resend_ns;
	}
	retry_pending_new_view(ctx, r);

	/* A replica that missed a view change (it was partitioned, or
	 * restarted) learns the view from signed messages: when f+1
	 * replicas are in a view above ours, at least one correct replica
	 * is, and that view's primary can send us its NEW-VIEW. */
	uint64_t views[PBFT_MAX_REPLICAS];
	uint32_t count = 0;
	for (uint32_t i = 0; i < r->n; i++)
		if (i != r->id && (r->view_seen[i] > r->view ||
				   (r->view_changing &&
				    r->view_seen[i] == r->view)))
			views[count++] = r->view_seen[i];
	if (count < r->f + 1)
		return;
	/* the (f+1)-th largest view */
	for (uint32_t i = 0; i <= r->f; i++)
		for (uint32_t j = i + 1; j < count; j++)
			if (views[j] > views[i]) {
				uint64_t t = views[i];
				views[i] = views[j];
				views[j] = t;
			}
	uint64_t target = views[r->f];
	if (target > r->view || (target == r->view && r->view_changing))
		fetch_view_message(ctx, r, PBFT_FETCH_NEW_VIEW, target, 0);
}
