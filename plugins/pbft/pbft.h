/* SPDX-License-Identifier: MIT */
/*
 * PBFT (Castro & Liskov, OSDI'99; TOCS'02) as an oskr plugin: internal
 * state and the functions the files of this plugin share.
 *
 *   codec.c           wire format (codec.h)
 *   options.c         protocol.options
 *   log.c             the message log, certificates, water marks
 *   requests.c        client table and pending-request queue
 *   normal.c          requests, pre-prepare, prepare, commit, execution
 *   checkpoint.c      checkpoints, stable checkpoints, truncation
 *   view_change.c     view change and new view
 *   state_transfer.c  catching up: committed entries, snapshot chunks
 *   durable.c         persisting stable checkpoints, resuming from one
 *   durable_codec.c   their protocol blob (pure: tests compile it in)
 *   replica.c         descriptor glue: init, receive, fini, timers
 *   client.c          the client side
 *
 * Threading: oskr__pbft_replica_receive (replica.c) is the only code that
 * runs as a stateless task; it reads only the immutable part of the state
 * (options, n, f, id). Everything else runs as stateful tasks.
 */
#ifndef OSKR_PBFT_H
#define OSKR_PBFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oskr/plugin.h>

#include "codec.h"

#define PBFT_MS UINT64_C(1000000)

struct pbft_options {
	uint32_t batch_size; /* requests per batch at most */
	bool adaptive; /* close a batch as soon as the pipeline has room */
	uint32_t max_inflight; /* proposed but unexecuted batches at most */
	uint64_t batch_timeout_ns; /* fixed batching: close a partial batch */
	uint32_t checkpoint_interval; /* K */
	uint32_t watermark_window; /* L */
	/* Neither K nor L was given: replica_init may shrink both so that a
	 * VIEW-CHANGE fits one message of the transport (DPDK: one frame). */
	bool window_auto;
	uint64_t view_change_timeout_ns;
	uint64_t retransmit_ns; /* stall detection / retransmission tick */
	uint32_t client_table_size;
	uint32_t max_pending; /* requests queued for ordering at most */
	uint64_t client_retry_ns; /* client's first retransmission */
};

int oskr__pbft_options_read(const struct oskr_host *host,
			    const struct oskr_conf *conf,
			    uint32_t replica_count, uint32_t fault_count,
			    struct pbft_options *out);

/* ---- u64 -> pointer map (open addressing, backward-shift delete) ---- */

struct pbft_map_slot {
	uint64_t key;
	void *value; /* NULL = empty */
};

struct pbft_map {
	struct pbft_map_slot *slots;
	size_t mask; /* capacity - 1 */
	size_t count;
};

int oskr__pbft_map_init(struct pbft_map *map, size_t max_entries);
void oskr__pbft_map_fini(struct pbft_map *map);
void *oskr__pbft_map_get(const struct pbft_map *map, uint64_t key);
/* The caller keeps count <= max_entries given at init. */
void oskr__pbft_map_put(struct pbft_map *map, uint64_t key, void *value);
void oskr__pbft_map_del(struct pbft_map *map, uint64_t key);

/* ---- client table (TOCS'02 §4.1: last reply per client) ---- */

struct pbft_client_record {
	uint64_t client_id;
	uint64_t request_number; /* last executed */
	uint64_t op_index; /* global op counter at execution (LRU order) */
	uint64_t view; /* view it executed in */
	struct oskr_addr addr;
	uint32_t result_len;
	uint8_t *result;
};

struct pbft_client_table {
	struct pbft_map map; /* client_id -> record */
	uint32_t capacity;
};

/* ---- pending requests: received, not yet executed ---- */

struct pbft_pending {
	struct pbft_pending *prev, *next; /* in queue or proposed list */
	bool proposed; /* in a batch this replica proposed (primary) */
	uint64_t arrival_ns;
	struct pbft_request req; /* req.op points to op_copy */
	uint8_t op_copy[];
};

struct pbft_pending_list {
	struct pbft_pending *head, *tail;
	uint32_t count;
};

struct pbft_pending_set {
	struct pbft_map map; /* client_id -> pending */
	struct pbft_pending_list queue; /* not yet proposed, FIFO */
	struct pbft_pending_list proposed;
	uint32_t capacity;
};

/* ---- the log (TOCS'02 §4.2) ---- */

/** One replica's prepare or commit for a sequence number. */
struct pbft_vote {
	uint64_t view;
	uint8_t digest[PBFT_DIGEST];
	uint8_t sig_len;
	uint8_t sig[OSKR_SIGNATURE_MAX];
};

/** The latest prepared certificate of a sequence number, kept across
 *  view changes for the P set (TOCS'02 §4.4). */
struct pbft_prepared {
	bool valid;
	uint64_t view;
	uint8_t digest[PBFT_DIGEST];
	uint8_t pp_sig_len;
	uint8_t pp_sig[OSKR_SIGNATURE_MAX];
	uint8_t prepare_count;
	uint16_t *prepare_replicas; /* 2f */
	struct pbft_vote *prepare_votes; /* 2f (view/digest as above) */
};

struct pbft_entry {
	uint64_t seq; /* 0 = unused slot */
	/* the accepted pre-prepare of the current view */
	bool has_preprepare;
	uint64_t view;
	uint8_t digest[PBFT_DIGEST];
	uint8_t pp_sig_len;
	uint8_t pp_sig[OSKR_SIGNATURE_MAX];
	/* the batch whose digest is batch_digest (may lag the pre-prepare
	 * after a view change until fetched) */
	uint8_t *batch;
	uint32_t batch_len;
	uint8_t batch_digest[PBFT_DIGEST];
	/* votes per replica, any view; masks say which slots are filled */
	uint64_t prepare_mask, commit_mask;
	struct pbft_vote *prepares; /* n */
	struct pbft_vote *commits; /* n */
	bool sent_prepare, sent_commit;
	bool prepared, committed; /* in entry->view */
	uint64_t commit_view; /* view of the commit certificate */
	uint8_t commit_digest[PBFT_DIGEST];
	uint64_t touched_ns; /* last progress, for retransmission */
	uint64_t answered_ns; /* last answer to a retransmission */
	struct pbft_prepared prepared_cert;
};

struct pbft_log {
	struct pbft_entry *entries; /* watermark_window slots */
	uint32_t window;
	uint32_t used; /* slots with seq != 0 (white-box bound checks) */
};

/* ---- checkpoints (TOCS'02 §4.3) ---- */

struct pbft_checkpoint_vote {
	uint64_t seq;
	uint8_t digest[PBFT_DIGEST];
	uint8_t sig_len;
	uint8_t sig[OSKR_SIGNATURE_MAX];
};

/** A checkpoint this replica produced: its state and the matching votes
 *  (one per replica). */
struct pbft_checkpoint {
	uint64_t seq; /* 0 = unused */
	uint8_t digest[PBFT_DIGEST];
	uint8_t *state; /* client table + app snapshot */
	size_t state_len;
	uint64_t vote_mask;
	struct pbft_checkpoint_vote *votes; /* n */
};

/** A stable checkpoint proof: 2f+1 signed CHECKPOINT messages. */
struct pbft_stable {
	uint64_t seq;
	uint8_t digest[PBFT_DIGEST];
	uint8_t count;
	uint16_t *replicas; /* 2f+1 */
	struct pbft_checkpoint_vote *votes; /* 2f+1 */
};

/* At most L/K + 1 own checkpoints are outstanding above the stable one. */
#define PBFT_MAX_OWN_CHECKPOINTS 8

/* ---- view change (TOCS'02 §4.4, §4.5) ---- */

struct pbft_stored_vc {
	uint64_t view; /* 0 = none */
	uint8_t digest[PBFT_DIGEST]; /* of the whole message */
	uint8_t *raw;
	size_t len;
};

/** A VIEW-CHANGE or NEW-VIEW whose certificates are being checked on the
 *  worker pool: further copies are not checked again meanwhile. */
struct pbft_check_mark {
	uint64_t view; /* 0 = none */
	uint64_t since_ns; /* the mark lapses after view_change_timeout */
};

/** Per-peer pacing of view-change traffic (answers and fetches). */
struct pbft_vc_peer {
	struct pbft_check_mark checking; /* its VIEW-CHANGE, in check */
	uint64_t new_view_sent_ns; /* our NEW-VIEW last sent to it */
	uint64_t fetch_sent_ns; /* its VIEW-CHANGE last fetched */
};

/* ---- state transfer ---- */

struct pbft_transfer {
	bool active;
	uint64_t seq;
	uint8_t digest[PBFT_DIGEST];
	uint8_t *data;
	uint64_t total; /* 0 until the first chunk */
	uint64_t received;
	uint32_t peer; /* whom we ask */
	uint64_t progress_ns;
};

/* ---- the replica ---- */

struct pbft_replica {
	/* Set by replica_fini. A host may still run tasks that were queued
	 * concurrently with fini; they find this and do nothing. */
	bool stopped;
	struct pbft_options opt;
	uint32_t n, f, id;
	uint32_t max_message;
	size_t sig_size;

	/* view (TOCS'02 §4.4) */
	uint64_t view;
	bool view_changing; /* sent VIEW-CHANGE for `view`, no NEW-VIEW yet */
	uint64_t vc_timeout_ns; /* current, doubled on successive changes */
	uint64_t vc_wait_ns; /* how long we wait for this NEW-VIEW */
	oskr_timer_id vc_timer;
	/* the request the view-change timer is waiting for (normal status) */
	uint64_t vc_timer_client, vc_timer_request;
	struct pbft_stored_vc *vcs; /* n: latest VIEW-CHANGE per replica */
	struct pbft_vc_peer *vc_peers; /* n */
	struct pbft_check_mark new_view_checking;
	/* our VIEW-CHANGE is resent with back-off (docs/pbft.md) */
	uint64_t vc_resend_ns, vc_resend_at_ns;
	uint64_t *view_seen; /* n: highest view in a signed msg per replica */
	uint8_t *new_view_msg; /* the NEW-VIEW of `view` (to re-serve) */
	size_t new_view_len;
	uint8_t *pending_new_view; /* a NEW-VIEW waiting for its V */
	size_t pending_new_view_len;

	/* ordering */
	uint64_t next_seq; /* primary: last assigned */
	uint64_t last_executed;
	uint64_t last_committed;
	uint64_t ops_executed;
	struct pbft_log log;
	oskr_timer_id batch_timer;

	/* checkpoints */
	uint64_t low_mark; /* h: seq of the stable checkpoint */
	struct pbft_stable stable;
	struct pbft_checkpoint own[PBFT_MAX_OWN_CHECKPOINTS];
	/* latest CHECKPOINT per replica, any seq (detects being behind) */
	struct pbft_checkpoint_vote *latest_checkpoint; /* n */
	uint8_t *stable_state; /* our state at `stable` (for transfers) */
	size_t stable_state_len;
	/* the newest stable checkpoint handed to host->checkpoint_stable */
	uint64_t persisted_seq;
	/* ticks left to announce the checkpoint we resumed at (durable.c) */
	uint32_t announce_ticks;
	/* resumed, first tick not run yet: the primary does not propose
	 * (peers' announces may show a newer stable checkpoint) */
	bool resume_settling;
	/* the newest stable checkpoint we hold a proof of but not (yet) the
	 * state: the target of a state transfer */
	struct pbft_stable known;

	/* clients */
	struct pbft_client_table clients;
	struct pbft_pending_set pending;

	/* catching up */
	struct pbft_transfer transfer;
	oskr_timer_id tick_timer;
	uint64_t tick_last_executed;

	/* scratch buffer for app results */
	uint8_t *result_buf;
	size_t result_capacity;
};

/* ---- replica.c: plumbing shared by the protocol files ---- */

/** Sign @p body_len bytes already written in @p buf and append the
 *  signature trailer; sets buf->len. Stateful or stateless. */
int oskr__pbft_seal(struct oskr_ctx *ctx, struct oskr_buf *buf,
		    size_t body_len);
/** Where a message goes. */
enum pbft_dest_kind { PBFT_TO_ALL, PBFT_TO_REPLICA, PBFT_TO_ADDR };
struct pbft_dest {
	enum pbft_dest_kind kind;
	uint32_t replica;
	struct oskr_addr addr;
};
/** Sign and send on a stateless task (falls back to inline). Consumes
 *  @p buf. */
void oskr__pbft_seal_and_send_async(struct oskr_ctx *ctx, struct oskr_buf *buf,
				    size_t body_len,
				    const struct pbft_dest *dest);
/** Seal inline and send. Consumes @p buf. */
void oskr__pbft_seal_and_send(struct oskr_ctx *ctx, struct oskr_buf *buf,
			      size_t body_len, const struct pbft_dest *dest);
void oskr__pbft_send(struct oskr_ctx *ctx, struct oskr_buf *buf,
		     const struct pbft_dest *dest);
/** Allocate a buffer of body_cap + signature trailer; NULL on failure
 *  (counted). The writer is set up over it. */
struct oskr_buf *oskr__pbft_alloc(struct oskr_ctx *ctx, size_t body_cap,
				  struct pbft_writer *w);
/** Send a raw stored message (a VIEW-CHANGE, a NEW-VIEW) as is. */
void oskr__pbft_send_raw(struct oskr_ctx *ctx, const uint8_t *data,
			 size_t len, const struct pbft_dest *dest);
void oskr__pbft_drop(struct oskr_ctx *ctx, const char *reason);
void oskr__pbft_publish_status(struct oskr_ctx *ctx, struct pbft_replica *r);
/** (Re)arm the catch-up tick. */
void oskr__pbft_arm_tick(struct oskr_ctx *ctx, struct pbft_replica *r);

static inline uint32_t pbft_primary(const struct pbft_replica *r,
				    uint64_t view)
{
	return (uint32_t)(view % r->n);
}

static inline bool pbft_is_primary(const struct pbft_replica *r)
{
	return pbft_primary(r, r->view) == r->id;
}

static inline uint32_t pbft_quorum(const struct pbft_replica *r)
{
	return 2 * r->f + 1;
}

/* ---- log.c ---- */

int oskr__pbft_log_init(struct pbft_log *log, uint32_t window, uint32_t n,
			uint32_t f);
void oskr__pbft_log_fini(struct pbft_log *log);
/** True when @p seq is within the water marks (h, h + L]. */
bool oskr__pbft_in_window(const struct pbft_replica *r, uint64_t seq);
/** The entry for @p seq (claiming a free slot); NULL outside the window. */
struct pbft_entry *oskr__pbft_entry(struct pbft_replica *r, uint64_t seq);
/** The entry for @p seq only if it is in use. */
struct pbft_entry *oskr__pbft_entry_find(struct pbft_replica *r, uint64_t seq);
/** Discard every entry with seq <= @p seq (TOCS'02 §4.3). */
void oskr__pbft_log_truncate(struct pbft_replica *r, uint64_t seq);
/** Forget the normal-case state of an entry (new view), keeping the
 *  prepared certificate and the batch. */
void oskr__pbft_entry_reset_view(struct pbft_entry *e);
int oskr__pbft_entry_set_batch(struct pbft_entry *e, const uint8_t *batch,
			       uint32_t len, const uint8_t digest[PBFT_DIGEST]);
bool oskr__pbft_entry_has_batch(const struct pbft_entry *e);
/** Count matching votes (view, digest) in @p votes / @p mask; excluding
 *  replica @p exclude (or n to exclude none). */
uint32_t oskr__pbft_count_votes(const struct pbft_replica *r,
				const struct pbft_vote *votes, uint64_t mask,
				uint64_t view, const uint8_t *digest,
				uint32_t exclude);
/** The digest of an empty batch (the null request, TOCS'02 §4.4). */
void oskr__pbft_null_digest(struct oskr_ctx *ctx,
			    uint8_t out[PBFT_DIGEST]);

/* ---- requests.c ---- */

int oskr__pbft_clients_init(struct pbft_client_table *t, uint32_t capacity);
void oskr__pbft_clients_fini(struct pbft_client_table *t);
struct pbft_client_record *oskr__pbft_client_find(struct pbft_client_table *t,
						  uint64_t client_id);
/** Record an executed request (evicting the least recently executed
 *  client when full: deterministic, so it is part of the state). */
int oskr__pbft_client_record(struct pbft_client_table *t,
			     const struct pbft_request *req, uint64_t op_index,
			     uint64_t view, const uint8_t *result,
			     uint32_t result_len);
/** Serialize (sorted by client id) / restore. */
int oskr__pbft_clients_serialize(struct pbft_client_table *t, uint8_t **out,
				 size_t *out_len);
int oskr__pbft_clients_restore(struct pbft_client_table *t,
			       struct pbft_reader *r);

int oskr__pbft_pending_init(struct pbft_pending_set *p, uint32_t capacity);
void oskr__pbft_pending_fini(struct pbft_pending_set *p);
/** Add or replace (newer request number) the pending request of a
 *  client. Returns 0, -EALREADY if not newer, -ENOSPC when full. */
int oskr__pbft_pending_add(struct pbft_pending_set *p,
			   const struct pbft_request *req, uint64_t now_ns);
/** Remove a client's pending request if its number is <= @p upto. */
void oskr__pbft_pending_done(struct pbft_pending_set *p, uint64_t client_id,
			     uint64_t upto);
/** Move every proposed request back to the queue (new view). */
void oskr__pbft_pending_unpropose(struct pbft_pending_set *p);
/** Drop pending requests the client table shows executed. */
void oskr__pbft_pending_prune(struct pbft_pending_set *p,
			      struct pbft_client_table *t);
void oskr__pbft_pending_mark_proposed(struct pbft_pending_set *p,
				      struct pbft_pending *item);
static inline uint32_t pbft_pending_count(const struct pbft_pending_set *p)
{
	return p->queue.count + p->proposed.count;
}

/* ---- normal.c (TOCS'02 §4.2) ---- */

void oskr__pbft_on_request(struct oskr_ctx *ctx, struct pbft_replica *r,
			   const struct pbft_msg *m,
			   const struct oskr_addr *from);
void oskr__pbft_on_pre_prepare(struct oskr_ctx *ctx, struct pbft_replica *r,
			       const struct pbft_msg *m);
void oskr__pbft_on_prepare(struct oskr_ctx *ctx, struct pbft_replica *r,
			   const struct pbft_msg *m);
void oskr__pbft_on_commit(struct oskr_ctx *ctx, struct pbft_replica *r,
			  const struct pbft_msg *m);
/** Primary: close batches while the rules allow (see docs/pbft.md). */
void oskr__pbft_try_propose(struct oskr_ctx *ctx, struct pbft_replica *r);
/** Accept a pre-prepare into the log (normal case or NEW-VIEW's O) and
 *  send our PREPARE if we are a backup. */
void oskr__pbft_accept_pre_prepare(struct oskr_ctx *ctx,
				   struct pbft_replica *r, uint64_t view,
				   uint64_t seq,
				   const uint8_t digest[PBFT_DIGEST],
				   const uint8_t *pp_sig, uint8_t pp_sig_len);
/** Re-evaluate prepared / committed for an entry and execute what can. */
void oskr__pbft_advance(struct oskr_ctx *ctx, struct pbft_replica *r,
			struct pbft_entry *e);
/** Execute committed entries in order (TOCS'02 §4.2). */
void oskr__pbft_execute_ready(struct oskr_ctx *ctx, struct pbft_replica *r);
/** Answer a client from the table (signed reply). */
void oskr__pbft_send_reply(struct oskr_ctx *ctx, struct pbft_replica *r,
			   const struct pbft_client_record *rec,
			   const struct oskr_addr *to);
/** View-change timer bookkeeping (TOCS'02 §4.5.2). */
void oskr__pbft_update_vc_timer(struct oskr_ctx *ctx, struct pbft_replica *r);
/** Resend our own messages for entries that are not committed. */
void oskr__pbft_retransmit(struct oskr_ctx *ctx, struct pbft_replica *r);
/** Relay a pending request to the primary. */
void oskr__pbft_relay(struct oskr_ctx *ctx, struct pbft_replica *r,
		      const struct pbft_request *req);

/* ---- checkpoint.c (TOCS'02 §4.3) ---- */

int oskr__pbft_checkpoints_init(struct pbft_replica *r);
void oskr__pbft_checkpoints_fini(struct oskr_ctx *ctx, struct pbft_replica *r);
/** After executing @p seq: take a checkpoint if it is a multiple of K. */
void oskr__pbft_maybe_checkpoint(struct oskr_ctx *ctx, struct pbft_replica *r,
				 uint64_t seq);
void oskr__pbft_on_checkpoint(struct oskr_ctx *ctx, struct pbft_replica *r,
			      const struct pbft_msg *m);
/** A verified proof (STABLE message or a VIEW-CHANGE's checkpoint). */
void oskr__pbft_on_stable_proof(struct oskr_ctx *ctx, struct pbft_replica *r,
				uint64_t seq, const uint8_t *digest,
				const struct pbft_sig_list *proof, bool force);
/** Send our stable proof to @p to. */
void oskr__pbft_send_stable(struct oskr_ctx *ctx, struct pbft_replica *r,
			    uint32_t to);
/** Serialize our current state (client table + app) into a blob. */
int oskr__pbft_state_take(struct oskr_ctx *ctx, struct pbft_replica *r,
			  uint8_t **out, size_t *out_len);
int oskr__pbft_state_restore(struct oskr_ctx *ctx, struct pbft_replica *r,
			     const uint8_t *data, size_t len);
/** Our own checkpoint state for (seq, digest), or NULL. */
const struct pbft_checkpoint *
oskr__pbft_own_checkpoint(const struct pbft_replica *r, uint64_t seq,
			  const uint8_t *digest);
/** Make (seq, digest, proof) our stable checkpoint; we hold its state. */
void oskr__pbft_make_stable(struct oskr_ctx *ctx, struct pbft_replica *r,
			    uint64_t seq, const uint8_t *digest,
			    const struct pbft_sig_list *proof,
			    const struct pbft_stable *proof_copy);
/** Move the low water mark to a stable checkpoint we may not hold the
 *  state of (a NEW-VIEW's min-s): truncate, and fetch the state if we
 *  have not executed that far. */
void oskr__pbft_jump_to(struct oskr_ctx *ctx, struct pbft_replica *r,
			uint64_t seq, const uint8_t *digest,
			const struct pbft_sig_list *proof);
/** State transfer done: the restored state is that of r->known. */
void oskr__pbft_transfer_done(struct oskr_ctx *ctx, struct pbft_replica *r,
			      uint8_t *state, size_t state_len);
/** Check a checkpoint proof's signatures (any thread). */
bool oskr__pbft_verify_proof(struct oskr_ctx *ctx, uint32_t f, uint64_t seq,
			     const uint8_t *digest,
			     const struct pbft_sig_list *proof);
/** Write our stable proof as (count, pairs). */
void oskr__pbft_put_stable_proof(struct pbft_writer *w,
				 const struct pbft_stable *stable);

/* ---- durable.c, durable_codec.c: durable checkpoints (ABI 1.1) ---- */

/** A decoded protocol blob (pointers into it). */
struct pbft_resume_point {
	uint64_t seq;
	uint8_t digest[PBFT_DIGEST];
	struct pbft_sig_list proof; /* structurally validated */
	uint64_t ops_executed;
	/* `ops_executed | client table`: the checkpoint state before its
	 * application part */
	const uint8_t *prefix;
	size_t prefix_len;
};

/** Find the application part of a checkpoint state (checkpoint.c's
 *  `ops | client table | app_len | app`). 0 or -EINVAL. */
int oskr__pbft_state_split(const uint8_t *state, size_t len,
			   size_t *prefix_len, const uint8_t **app,
			   size_t *app_len);
/** Encode the protocol blob of stable checkpoint @p stable. */
int oskr__pbft_resume_encode(uint32_t n, uint32_t f, uint32_t interval,
			     const struct pbft_stable *stable,
			     const uint8_t *prefix, size_t prefix_len,
			     uint8_t **out, size_t *out_len);
/** Length-checked decoder of a protocol blob written for a cluster of
 *  @p n, @p f and checkpoint interval @p interval. 0, or -EINVAL with
 *  *why saying what is wrong. Checks structure only (not signatures). */
int oskr__pbft_resume_decode(const uint8_t *data, size_t len, uint32_t n,
			     uint32_t f, uint32_t interval,
			     struct pbft_resume_point *out, const char **why);
/** Hand our stable checkpoint to the host to persist (if it is newer
 *  than the last one and the host has the service). Stateful. */
void oskr__pbft_persist_stable(struct oskr_ctx *ctx, struct pbft_replica *r);
/** replica_init: resume at the checkpoint the host restored, if any and
 *  valid; otherwise leave the replica at op 0. 0 or -ENOMEM. */
int oskr__pbft_resume(struct oskr_ctx *ctx, struct pbft_replica *r);
/** Tick: after resuming, tell the others about our stable checkpoint for
 *  a while (a STABLE message with its proof to each). */
void oskr__pbft_announce_stable(struct oskr_ctx *ctx, struct pbft_replica *r);

/* ---- view_change.c (TOCS'02 §4.4, §4.5) ---- */

int oskr__pbft_view_change_init(struct pbft_replica *r);
void oskr__pbft_view_change_fini(struct pbft_replica *r);
void oskr__pbft_start_view_change(struct oskr_ctx *ctx, struct pbft_replica *r,
				  uint64_t new_view);
/**
 * VIEW-CHANGE and NEW-VIEW carry certificates worth hundreds of signature
 * checks, and are resent until answered. The receive path checks only
 * their outer signature; these decide (stateful, cheap) whether a copy is
 * new. Duplicates and stale copies are handled here and return false;
 * for a new one the caller checks the certificates on the worker pool
 * and then calls the _checked function with the result.
 */
bool oskr__pbft_view_change_wanted(struct oskr_ctx *ctx,
				   struct pbft_replica *r,
				   const struct pbft_msg *m);
bool oskr__pbft_new_view_wanted(struct oskr_ctx *ctx, struct pbft_replica *r,
				const struct pbft_msg *m);
void oskr__pbft_on_view_change_checked(struct oskr_ctx *ctx,
				       struct pbft_replica *r,
				       const struct pbft_msg *m, bool valid);
void oskr__pbft_on_new_view_checked(struct oskr_ctx *ctx,
				    struct pbft_replica *r,
				    const struct pbft_msg *m, bool valid);
/** Check a NEW-VIEW's O pre-prepares (any thread). */
bool oskr__pbft_verify_new_view(struct oskr_ctx *ctx, uint32_t n,
				const struct pbft_msg *m);
void oskr__pbft_on_fetch_view(struct oskr_ctx *ctx, struct pbft_replica *r,
			      const struct pbft_msg *m);
/** A signed message showed that @p replica is in @p view. */
void oskr__pbft_saw_view(struct oskr_ctx *ctx, struct pbft_replica *r,
			 uint32_t replica, uint64_t view);
/** Check a VIEW-CHANGE's embedded certificates (any thread). */
bool oskr__pbft_verify_view_change(struct oskr_ctx *ctx, uint32_t n,
				   uint32_t f, uint32_t window,
				   const struct pbft_msg *m);
/** Resend our VIEW-CHANGE, fetch a missing NEW-VIEW (tick). */
void oskr__pbft_view_change_tick(struct oskr_ctx *ctx, struct pbft_replica *r);
/** Worst-case VIEW-CHANGE / NEW-VIEW size for these parameters
 *  (@p sig_size: the host's largest signature). */
size_t oskr__pbft_view_change_max_size(uint32_t n, uint32_t f,
				       uint32_t window, size_t sig_size);

/* ---- state_transfer.c ---- */

void oskr__pbft_on_fetch_entries(struct oskr_ctx *ctx, struct pbft_replica *r,
				 const struct pbft_msg *m);
void oskr__pbft_on_entry(struct oskr_ctx *ctx, struct pbft_replica *r,
			 const struct pbft_msg *m);
void oskr__pbft_on_fetch_batch(struct oskr_ctx *ctx, struct pbft_replica *r,
			       const struct pbft_msg *m);
void oskr__pbft_on_batch(struct oskr_ctx *ctx, struct pbft_replica *r,
			 const struct pbft_msg *m);
void oskr__pbft_on_fetch_chunk(struct oskr_ctx *ctx, struct pbft_replica *r,
			       const struct pbft_msg *m);
void oskr__pbft_on_chunk(struct oskr_ctx *ctx, struct pbft_replica *r,
			 const struct pbft_msg *m);
/** Start (or retarget) fetching the state of a stable checkpoint. */
void oskr__pbft_start_transfer(struct oskr_ctx *ctx, struct pbft_replica *r,
			       uint64_t seq, const uint8_t *digest);
/** Ask peers for committed entries from last_executed + 1. */
void oskr__pbft_fetch_entries(struct oskr_ctx *ctx, struct pbft_replica *r);
/** Ask peers for batches we have a pre-prepare but no batch for. */
void oskr__pbft_fetch_missing_batches(struct oskr_ctx *ctx,
				      struct pbft_replica *r);
/** Periodic: retry a stalled transfer. */
void oskr__pbft_transfer_tick(struct oskr_ctx *ctx, struct pbft_replica *r);
/** Check an ENTRY's commit certificate (any thread). */
bool oskr__pbft_verify_commit_cert(struct oskr_ctx *ctx, uint32_t f,
				   const struct pbft_msg *m);

/* ---- client.c ---- */

/* The client's state (the host allocates client_state_size bytes). */
struct pbft_client {
	uint32_t n, f;
	uint64_t client_id;
	uint64_t view; /* last view learned from replies */
	uint64_t retry_base_ns, retry_ns;
	oskr_timer_id retry_timer;
	bool busy;
	uint64_t request_number;
	uint8_t *request; /* encoded REQUEST, for resends */
	size_t request_len;
	/* one reply per replica: digest of the result */
	uint64_t reply_mask;
	uint8_t (*reply_digest)[PBFT_DIGEST]; /* n */
	uint64_t *reply_view; /* n */
};

int oskr__pbft_client_init(struct oskr_ctx *ctx, void *state);
int oskr__pbft_client_invoke(struct oskr_ctx *ctx, void *state,
			     uint64_t request_number, const void *op,
			     size_t op_len);
void oskr__pbft_client_receive(struct oskr_ctx *ctx, void *state,
			       const struct oskr_msg *msg);
void oskr__pbft_client_fini(struct oskr_ctx *ctx, void *state);

#endif
