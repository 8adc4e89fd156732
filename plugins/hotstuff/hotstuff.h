/* SPDX-License-Identifier: MIT */
/*
 * Chained (event-driven) HotStuff, Yin et al., PODC'19, Algorithms 4 and 5:
 * internal declarations shared by the plugin's files. One idea per file:
 *
 *   codec.c      wire format (length-checked decoders)
 *   options.c    protocol.options parsing and config_check
 *   store.c      block store, stored QCs, orphans, pruning
 *   core.c       Algorithm 4: safeNode, vote, update, commit rule, execute
 *   pacemaker.c  Algorithm 5: leader rotation, view timer, NEW-VIEW
 *   proposer.c   batching: pending requests, building and sending blocks
 *   requests.c   client requests at a replica: dedupe table, replies
 *   fetch.c      catch-up: BLOCK-FETCH and BLOCKS
 *   durable.c    durable checkpoints: declaring them, resuming from one
 *   durable_codec.c  their protocol blob (pure: tests compile it in)
 *   transfer.c   state transfer from a peer's checkpoint (chunks, vouches)
 *   receive.c    stateless decode + signature verification, dispatch
 *   client.c     the client side
 *   plugin.c     the descriptor, replica init/fini
 *
 * The replica state is split: `struct oskr__hs_replica` starts with fields
 * written only by replica_init (options, ids, genesis digest): stateless
 * tasks read only those. Everything after `protocol state` is touched by
 * stateful tasks only.
 */
#ifndef OSKR_PLUGINS_HOTSTUFF_HOTSTUFF_H
#define OSKR_PLUGINS_HOTSTUFF_HOTSTUFF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oskr/plugin.h>

#include "codec.h"

#define OSKR__HS_NAME "hotstuff"

/* ---- options ---- */

struct oskr__hs_options {
	uint64_t block_size; /* max requests per block */
	bool adaptive; /* propose what is pending as soon as allowed */
	uint64_t batch_timeout_ns; /* non-adaptive: wait this long for a full block */
	uint64_t view_timeout_ns; /* base view timer */
	uint64_t backoff; /* multiplier per consecutive timeout */
	uint64_t max_view_timeout_ns; /* back-off cap */
	uint64_t retain_blocks; /* committed blocks kept to serve fetches */
	uint64_t max_pending; /* pending client requests kept */
	uint64_t client_table_size; /* dedupe entries kept (LRU) */
	uint64_t max_uncommitted; /* stored blocks above the executed one */
	uint64_t max_orphans; /* blocks waiting for an ancestor */
	uint64_t fetch_timeout_ns; /* retry a BLOCK-FETCH after this long */
	uint64_t fetch_blocks; /* ancestors sent per fetch */
	uint64_t client_retry_ns; /* client retransmission interval */
	uint64_t verify_split; /* signatures per stateless verify task */
	uint64_t checkpoint_interval; /* executed ops per checkpoint; 0 = none */
	bool leader_reputation; /* leaders from the active set (pacemaker.c) */
	uint64_t reputation_window; /* blocks a replica stays active */
	uint64_t round_robin_every; /* every k-th view is plain round-robin */
};

int oskr__hs_options_read(const struct oskr_host *host,
			  const struct oskr_conf *conf,
			  struct oskr__hs_options *out);
int oskr__hs_config_check(const struct oskr_host *host,
			  const struct oskr_conf *conf, uint32_t replica_count,
			  uint32_t fault_count);

/* ---- stored QC ---- */

/** A verified quorum certificate, kept with its encoding so it can be
 *  re-sent inside proposals and NEW-VIEWs. */
struct oskr__hs_qc {
	uint64_t view;
	uint8_t digest[OSKR__HS_DIGEST];
	uint32_t len;
	uint8_t bytes[OSKR__HS_QC_MAX_BYTES];
};

void oskr__hs_qc_from_ref(struct oskr__hs_qc *dst,
			  const struct oskr__hs_qc_ref *ref);

/* ---- blocks ---- */

struct oskr__hs_block {
	uint8_t digest[OSKR__HS_DIGEST];
	uint8_t parent_digest[OSKR__HS_DIGEST];
	uint64_t height;
	uint64_t view;
	uint32_t proposer;
	uint64_t justify_view;
	uint8_t justify_digest[OSKR__HS_DIGEST];
	const uint8_t *justify_raw; /* into raw */
	size_t justify_len;
	uint32_t request_count;
	const uint8_t *requests; /* into raw */
	size_t requests_len;

	/* Resolved parent; NULL while unknown (orphan) or once pruned. */
	struct oskr__hs_block *parent;
	struct oskr__hs_block *hash_next;
	struct oskr__hs_block *list_prev, *list_next;
	bool connected; /* parent chain reaches the executed block */
	bool executed;
	/* Arrived as a leader's signed proposal and not yet considered for
	 * a vote (it may have to wait for its ancestors). */
	bool live_proposal;
	/* Scratch links: commit order (core.c commit_through) and the
	 * connect queue (core.c process_connected). */
	struct oskr__hs_block *exec_next;
	struct oskr__hs_block *queue_next;
	/* Leader reputation (pacemaker.c), per replica, counted in blocks
	 * along this block's chain up to it (saturating): since it last
	 * proposed or signed a justify QC, and since a view it led failed
	 * (no block of that view on the chain) with no proposal of its own
	 * after (OSKR__HS_NEVER: none). A function of the chain alone, set
	 * when the block connects. */
	uint16_t since_active[OSKR__HS_MAX_REPLICAS];
	uint16_t since_failed[OSKR__HS_MAX_REPLICAS];
	/* Views it led that failed in a row (capped): spaces out its
	 * round-robin views while it stays down. */
	uint8_t fail_streak[OSKR__HS_MAX_REPLICAS];

	size_t raw_len;
	uint8_t raw[];
};

/** Block store: one hash table of every block we hold (connected blocks
 *  and orphans), plus two lists so pruning never scans the table. */
struct oskr__hs_store {
	struct oskr__hs_block **buckets;
	size_t bucket_mask;
	struct oskr__hs_block connected; /* list head (sentinel) */
	struct oskr__hs_block orphans; /* list head (sentinel) */
	uint64_t connected_count;
	uint64_t orphan_count;
	uint64_t bytes;
};

int oskr__hs_store_init(struct oskr__hs_store *s, size_t buckets);
void oskr__hs_store_fini(struct oskr__hs_store *s);
struct oskr__hs_block *oskr__hs_store_find(struct oskr__hs_store *s,
					   const uint8_t *digest);
/** Copy a decoded block into a new stored block. */
int oskr__hs_block_new(const struct oskr__hs_block_ref *ref,
		       const uint8_t digest[OSKR__HS_DIGEST],
		       struct oskr__hs_block **out);
void oskr__hs_store_add(struct oskr__hs_store *s, struct oskr__hs_block *b,
			bool connected);
void oskr__hs_store_mark_connected(struct oskr__hs_store *s,
				   struct oskr__hs_block *b);
void oskr__hs_store_remove(struct oskr__hs_store *s, struct oskr__hs_block *b);
/** True when @p b has @p ancestor on its parent chain (or is it). */
bool oskr__hs_block_extends(const struct oskr__hs_block *b,
			    const struct oskr__hs_block *ancestor);

/* ---- votes, NEW-VIEWs, fetches ---- */

#define OSKR__HS_VOTE_SETS 16
#define OSKR__HS_NEW_VIEW_SETS 8
#define OSKR__HS_MISSING_MAX 64
#define OSKR__HS_WAITING_QCS 4

struct oskr__hs_vote_set {
	bool used;
	bool done; /* the QC was formed: ignore further votes */
	uint64_t view;
	uint8_t digest[OSKR__HS_DIGEST];
	uint64_t signers; /* bit r: replica r voted */
	uint16_t count;
	uint16_t replicas[OSKR__HS_MAX_REPLICAS];
	uint8_t sig_lens[OSKR__HS_MAX_REPLICAS];
	uint8_t sigs[OSKR__HS_MAX_REPLICAS][OSKR_SIGNATURE_MAX];
};

struct oskr__hs_new_view_set {
	bool used;
	uint64_t view;
	uint64_t senders;
	uint16_t count;
};

struct oskr__hs_missing {
	bool used;
	uint8_t digest[OSKR__HS_DIGEST];
	uint64_t height; /* of the missing block; 0 = unknown (a QC's) */
	uint32_t attempts;
	uint32_t next_target;
	uint64_t last_sent_ns;
};

struct oskr__hs_last_vote {
	bool valid;
	uint64_t view;
	uint8_t digest[OSKR__HS_DIGEST];
	uint8_t sig_len;
	uint8_t sig[OSKR_SIGNATURE_MAX];
};

/* ---- state transfer (transfer.c) ---- */

#define OSKR__HS_VOUCH_RING 32

/** What a checkpoint is, as a replica signs it (a vouch): the state
 *  after executing block (height, block_digest). */
struct oskr__hs_ckpt_id {
	uint64_t height;
	uint8_t block_digest[OSKR__HS_DIGEST];
	uint64_t executed_ops;
	uint64_t committed_blocks;
	uint64_t state_len;
	uint8_t state_digest[OSKR__HS_DIGEST];
};

struct oskr__hs_own_vouch {
	bool valid;
	struct oskr__hs_ckpt_id id;
	uint8_t sig_len;
	uint8_t sig[OSKR_SIGNATURE_MAX];
};

/** The one checkpoint this replica serves: its state bytes
 *  (clients_len u32 | client table | app snapshot), root block and QC. */
struct oskr__hs_served {
	bool valid;
	struct oskr__hs_own_vouch vouch;
	uint8_t *state;
	uint8_t *block;
	size_t block_len;
	uint8_t qc[OSKR__HS_QC_MAX_BYTES];
	size_t qc_len;
	uint64_t last_served_ns; /* pinned while a peer downloads it */
};

struct oskr__hs_transfer {
	bool active;
	uint64_t last_start_ns;
	uint32_t attempts; /* timer rounds without progress */
	uint64_t progress_ns;
	oskr_timer_id timer;
	/* the candidate root: verified block and QC (owned copies) */
	bool have_candidate;
	struct oskr__hs_ckpt_id cand; /* as its first offerer claimed */
	uint8_t *block;
	size_t block_len;
	uint8_t qc[OSKR__HS_QC_MAX_BYTES];
	size_t qc_len;
	uint32_t offerer;
	/* signed vouches for the candidate block, by signer */
	uint64_t vouch_mask;
	struct oskr__hs_ckpt_id vouches[OSKR__HS_MAX_REPLICAS];
	/* f + 1 signers agree on this id: download and check against it */
	bool agreed;
	struct oskr__hs_ckpt_id agreed_id;
	uint64_t agreed_mask; /* who vouched for agreed_id */
	uint32_t source;
	uint32_t source_cursor;
	uint8_t *data;
	uint64_t received;
	/* unsolicited offers sent per peer (after a fetch miss) */
	uint64_t last_offer_ns[OSKR__HS_MAX_REPLICAS];
};

/* ---- requests ---- */

/** A client request waiting to be committed (at most one per client: a
 *  client has one outstanding request). Kept by every replica, because
 *  leaders rotate. */
struct oskr__hs_pending {
	uint64_t client_id;
	uint64_t request_number;
	struct oskr_addr addr;
	uint64_t skip_mark; /* == proposer's mark: already in the chain */
	struct oskr__hs_pending *hash_next;
	struct oskr__hs_pending *prev, *next; /* FIFO */
	uint32_t op_len;
	uint8_t op[];
};

/** Execution-side dedupe entry (deterministic: updated only while
 *  executing committed blocks, so every replica has the same table). */
struct oskr__hs_client_entry {
	uint64_t client_id;
	uint64_t last_request_number;
	struct oskr__hs_client_entry *hash_next;
	struct oskr__hs_client_entry *lru_prev, *lru_next;
	uint32_t result_len;
	uint8_t *result;
};

struct oskr__hs_requests {
	struct oskr__hs_pending **pending_buckets;
	size_t pending_mask;
	struct oskr__hs_pending fifo; /* sentinel */
	uint64_t pending_count;

	struct oskr__hs_client_entry **client_buckets;
	size_t client_mask;
	struct oskr__hs_client_entry lru; /* sentinel; most recent at next */
	uint64_t client_count;
};

/* ---- the replica ---- */

struct oskr__hs_replica {
	/* ---- set by replica_init, read-only afterwards (stateless ok) ---- */
	struct oskr__hs_options opt;
	uint32_t n, f, quorum, id;
	uint32_t max_message;
	uint32_t worker_count;
	uint8_t genesis_digest[OSKR__HS_DIGEST];

	/* ---- protocol state (stateful tasks only) ---- */
	struct oskr__hs_store store;
	struct oskr__hs_block *genesis;
	struct oskr__hs_block *b_lock; /* Alg. 4 b_lock */
	struct oskr__hs_block *b_exec; /* Alg. 4 b_exec */
	struct oskr__hs_block *b_leaf; /* Alg. 4/5 b_leaf */
	struct oskr__hs_qc qc_high; /* Alg. 4/5 qc_high */
	struct oskr__hs_block *qc_high_node;
	uint64_t vheight; /* Alg. 4 vheight */
	uint64_t last_voted_view;
	struct oskr__hs_last_vote last_vote;

	/* pacemaker (Alg. 5) */
	uint64_t cur_view;
	uint64_t last_proposed_view;
	uint64_t new_view_ready; /* view for which we hold 2f+1 NEW-VIEWs */
	uint32_t consecutive_timeouts;
	oskr_timer_id view_timer;
	uint64_t view_timer_view;
	uint64_t view_timer_epoch; /* bumped on progress: re-arm */
	uint64_t progress_epoch;
	oskr_timer_id batch_timer;
	oskr_timer_id fetch_timer;

	struct oskr__hs_vote_set votes[OSKR__HS_VOTE_SETS];
	struct oskr__hs_new_view_set new_views[OSKR__HS_NEW_VIEW_SETS];
	struct oskr__hs_missing missing[OSKR__HS_MISSING_MAX];
	struct oskr__hs_qc *waiting_qcs[OSKR__HS_WAITING_QCS];

	struct oskr__hs_requests requests;
	uint64_t proposer_mark;
	uint64_t batch_due_view; /* non-adaptive: batch timer fired */

	uint64_t last_sync_ns[OSKR__HS_MAX_REPLICAS];
	/* last proposal seen per leader (equivocation counter) */
	uint64_t seen_view[OSKR__HS_MAX_REPLICAS];
	uint8_t seen_digest[OSKR__HS_MAX_REPLICAS][OSKR__HS_DIGEST];

	uint64_t committed_blocks;
	uint64_t executed_ops;
	uint64_t committed_height;
	/* executed_ops / checkpoint_interval at the last checkpoint */
	uint64_t checkpoint_epoch;
	struct oskr__hs_own_vouch vouch_ring[OSKR__HS_VOUCH_RING];
	uint32_t vouch_ring_next;
	struct oskr__hs_served served;
	struct oskr__hs_transfer transfer;
	uint8_t *result_scratch;
	size_t result_scratch_size;
	struct oskr__hs_qc *scratch_qc; /* formed QCs */
	bool initialized;
};

/** Committed blocks may exceed retain_blocks by this much before a
 *  pruning pass runs (amortises its cost). */
static inline uint64_t oskr__hs_prune_slack(const struct oskr__hs_replica *rs)
{
	return rs->opt.retain_blocks / 4 + 16;
}

#define OSKR__HS_NEVER UINT16_MAX
/* A replica whose turns failed s times in a row gets one round-robin
 * view in 2^s of its turns, s capped here (pacemaker.c). */
#define OSKR__HS_FAIL_STREAK_CAP 6

/** Alg. 5 getLeader of @p view for a proposal whose justify QC certifies
 *  @p ref (pacemaker.c; docs/hotstuff.md "Leader rotation"). Round-robin
 *  when reputation is off or @p ref is NULL; otherwise a function of
 *  @p view and @p ref's chain only, so every replica that judges one
 *  proposal computes the same leader for it. */
uint32_t oskr__hs_leader(const struct oskr__hs_replica *rs, uint64_t view,
			 const struct oskr__hs_block *ref);
/** The block the next leader's justify QC will most likely certify, as
 *  far as this replica can tell: the block it last voted for when that
 *  is above qc_high (its vote travels in the NEW-VIEW), else qc_high's
 *  block. The reference for leader() in the pacemaker. */
const struct oskr__hs_block *
oskr__hs_pacemaker_ref(struct oskr__hs_replica *rs);
/** True when the leader of a view does not depend on the chain (plain
 *  round-robin): receive.c may then check the proposer statelessly. */
static inline bool oskr__hs_leader_stateless(const struct oskr__hs_replica *rs)
{
	return !rs->opt.leader_reputation || rs->opt.round_robin_every == 1;
}
/** Fill @p b's reputation counters from its parent (connected), or, for
 *  a root without a known record (genesis; a checkpoint resumed from a
 *  version-1 blob), count every replica active at @p b and none failed. */
void oskr__hs_note_activity(const struct oskr__hs_replica *rs,
			    struct oskr__hs_block *b);

/* A block's activity record as a checkpoint carries it (durable_codec.c),
 * so that a root installed by resume or transfer has the counters the
 * replicas holding the real chain computed for it: per replica,
 * since_active u16 | since_failed u16 | fail_streak u8. */
#define OSKR__HS_ACTIVITY_ENTRY 5u
static inline size_t oskr__hs_activity_len(uint32_t n)
{
	return (size_t)n * OSKR__HS_ACTIVITY_ENTRY;
}
void oskr__hs_activity_put(struct oskr__hs_writer *w, uint32_t n,
			   const struct oskr__hs_block *b);
/** Exactly n entries, every fail_streak within OSKR__HS_FAIL_STREAK_CAP
 *  (oskr__hs_leader shifts by it). */
bool oskr__hs_activity_valid(const uint8_t *data, size_t len, uint32_t n);
/** Fill @p b's counters from a valid record. */
void oskr__hs_activity_get(const uint8_t *data, uint32_t n,
			   struct oskr__hs_block *b);

/* ---- receive path (receive.c) ---- */

/** A decoded, verified message on its way to the stateful task. */
struct oskr__hs_inbound {
	enum oskr__hs_msg_type type;
	struct oskr_buf *buf; /* held: refs point into it */
	struct oskr_addr from;
	int32_t from_replica;
	union {
		struct oskr__hs_proposal_ref proposal;
		struct oskr__hs_vote_ref vote;
		struct oskr__hs_new_view_ref new_view;
		struct oskr__hs_fetch_ref fetch;
		struct oskr__hs_request_msg_ref request;
		struct oskr__hs_ckpt_request_ref ckpt_request;
		struct oskr__hs_ckpt_offer_ref ckpt_offer;
		struct oskr__hs_ckpt_fetch_ref ckpt_fetch;
		struct oskr__hs_ckpt_chunk_ref ckpt_chunk;
	} m;
	/* CKPT-OFFER: the bytes its vouch signature covers. */
	uint8_t vouch_payload[OSKR__HS_VOUCH_PAYLOAD];
	/* BLOCKS: decoded blocks, digests (oldest last, as sent). */
	uint32_t block_count;
	struct oskr__hs_block_ref *blocks;
	uint8_t (*block_digests)[OSKR__HS_DIGEST];
	/* PROPOSAL: digest of the block. */
	uint8_t digest[OSKR__HS_DIGEST];
};

void oskr__hs_replica_receive(struct oskr_ctx *ctx, void *state,
			      const struct oskr_msg *msg);
void oskr__hs_inbound_free(struct oskr_ctx *ctx,
			   struct oskr__hs_inbound *in);
/** Structural QC checks that need no crypto: signer ids in range and
 *  distinct, count >= quorum (or the genesis QC). Counts the drop. */
bool oskr__hs_qc_well_formed(struct oskr_ctx *ctx,
			     const struct oskr__hs_replica *rs,
			     const struct oskr__hs_qc_ref *qc);

/* ---- core (core.c): Algorithm 4 ---- */

void oskr__hs_on_proposal(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			  struct oskr__hs_inbound *in);
void oskr__hs_on_vote(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
		      const struct oskr__hs_vote_ref *vote);
/** A verified QC from anywhere (justify, NEW-VIEW, formed). */
void oskr__hs_on_qc(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
		    const struct oskr__hs_qc *qc, int32_t hint_replica);
/** Insert a verified block (proposal or fetched). @p live: it arrived as
 *  the leader's proposal, so it may be voted for. */
void oskr__hs_accept_block(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			   const struct oskr__hs_block_ref *ref,
			   const uint8_t digest[OSKR__HS_DIGEST], bool live,
			   int32_t hint_replica);
/** Make @p root (executed, certified by @p qc_raw) the root of the
 *  tree, as a resumed or transferred checkpoint: every connected block is
 *  dropped, orphans above it are kept. Takes ownership of @p root. Its
 *  activity record comes from @p activity (valid, n entries: what the
 *  replicas with the chain computed for it), or, when NULL (history
 *  unknown), marks everyone active and nobody failed. */
void oskr__hs_install_root(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			   struct oskr__hs_block *root,
			   const uint8_t *activity, uint64_t qc_view,
			   const uint8_t *qc_raw, size_t qc_len);
/** After install_root at run time: connect the orphans that hang off the
 *  root (Alg. 4 runs for them) and fetch the parents of the others. */
void oskr__hs_root_connect_orphans(struct oskr_ctx *ctx,
				   struct oskr__hs_replica *rs);
/** Walk the chain from b_leaf down to b_exec: any block with requests? */
bool oskr__hs_uncommitted_work(const struct oskr__hs_replica *rs);
int oskr__hs_core_init(struct oskr_ctx *ctx, struct oskr__hs_replica *rs);
void oskr__hs_core_fini(struct oskr_ctx *ctx, struct oskr__hs_replica *rs);
void oskr__hs_publish_status(struct oskr_ctx *ctx,
			     struct oskr__hs_replica *rs);

/* ---- pacemaker (pacemaker.c): Algorithm 5 ---- */

/** Advance to @p view if it is higher (counts a view change). */
void oskr__hs_advance_view(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			   uint64_t view);
/** Something moved (vote, QC, commit): restart the view timer. */
void oskr__hs_note_progress(struct oskr__hs_replica *rs);
/** A block committed: reset the back-off. */
void oskr__hs_note_commit(struct oskr__hs_replica *rs);
/** Arm, re-arm or cancel the view timer to match the state. Called at
 *  the end of every stateful task. */
void oskr__hs_pacemaker_refresh(struct oskr_ctx *ctx,
				struct oskr__hs_replica *rs);
void oskr__hs_on_new_view(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			  struct oskr__hs_inbound *in);
void oskr__hs_pacemaker_fini(struct oskr_ctx *ctx,
			     struct oskr__hs_replica *rs);

/* ---- proposer (proposer.c): batching ---- */

/** Alg. 5 onBeat: propose if this replica leads the current view and the
 *  pacemaker allows it. */
void oskr__hs_try_propose(struct oskr_ctx *ctx, struct oskr__hs_replica *rs);
void oskr__hs_proposer_fini(struct oskr_ctx *ctx, struct oskr__hs_replica *rs);

/* ---- requests (requests.c) ---- */

int oskr__hs_requests_init(struct oskr__hs_requests *rq,
			   const struct oskr__hs_options *opt);
void oskr__hs_requests_fini(struct oskr__hs_requests *rq);
void oskr__hs_on_request(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			 struct oskr__hs_inbound *in);
struct oskr__hs_pending *
oskr__hs_pending_find(struct oskr__hs_requests *rq, uint64_t client_id);
/** Execute the requests of a committed block in order (ancestors first is
 *  the caller's job), dedupe, reply. */
void oskr__hs_execute_block(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			    struct oskr__hs_block *b);

/** The client table in a durable checkpoint (durable.c): serialize
 *  (least recently executed first), check, restore, clear. */
int oskr__hs_clients_serialize(const struct oskr__hs_requests *rq,
			       uint8_t **out, size_t *out_len);
bool oskr__hs_clients_valid(const uint8_t *data, size_t len, uint64_t limit);
int oskr__hs_clients_restore(struct oskr__hs_requests *rq,
			     const struct oskr__hs_options *opt,
			     const uint8_t *data, size_t len);
void oskr__hs_clients_clear(struct oskr__hs_requests *rq);

/* ---- durable checkpoints (durable.c) ---- */

/** A decoded protocol blob (refs point into it). */
struct oskr__hs_resume_point {
	uint64_t executed_ops;
	uint64_t committed_blocks;
	uint64_t height;
	uint8_t digest[OSKR__HS_DIGEST];
	struct oskr__hs_block_ref block; /* the last executed block */
	struct oskr__hs_qc_ref qc; /* its QC */
	const uint8_t *clients;
	size_t clients_len;
	/* The block's activity record (n entries, valid); NULL in a
	 * version-1 blob, which predates it. */
	const uint8_t *activity;
};

/** Encode the blob of block @p b. @p with_activity: version 2, with
 *  @p b's activity record (what the plugin writes); false: the version-1
 *  layout without it (old-format seeds and tests only). */
int oskr__hs_resume_encode(uint32_t n, uint32_t f, uint64_t executed_ops,
			   uint64_t committed_blocks,
			   const struct oskr__hs_block *b, bool with_activity,
			   const uint8_t *qc, size_t qc_len,
			   const uint8_t *clients, size_t clients_len,
			   uint8_t **out, size_t *out_len);
/** Length-checked decoder of a protocol blob for a cluster of @p n, @p f.
 *  Checks structure (the QC names the block, the heights agree) but not
 *  digests or signatures. 0, or -EINVAL with *why. */
int oskr__hs_resume_decode(const uint8_t *data, size_t len, uint32_t n,
			   uint32_t f, uint64_t client_limit,
			   struct oskr__hs_resume_point *out, const char **why);
/** After executing block @p b (certified by @p qc, or NULL when its QC is
 *  not at hand): declare a checkpoint if checkpoint_interval ops passed
 *  since the last one. Stateful. */
void oskr__hs_maybe_checkpoint(struct oskr_ctx *ctx,
			       struct oskr__hs_replica *rs,
			       const struct oskr__hs_block *b,
			       const uint8_t *qc, size_t qc_len);
/** replica_init, after core init: resume at the checkpoint the host
 *  restored, if any and valid. 0 or -ENOMEM. */
int oskr__hs_resume(struct oskr_ctx *ctx, struct oskr__hs_replica *rs);

/** Keep (and vouch for) the checkpoint at @p b: @p state is
 *  clients_len u32 | clients | activity record | app, taken over (freed
 *  by transfer.c). */
void oskr__hs_serve_checkpoint(struct oskr_ctx *ctx,
			       struct oskr__hs_replica *rs,
			       const uint8_t *block_raw, size_t block_len,
			       uint64_t height,
			       const uint8_t block_digest[OSKR__HS_DIGEST],
			       const uint8_t *qc, size_t qc_len,
			       uint64_t executed_ops, uint64_t committed_blocks,
			       uint8_t *state, size_t state_len);
/** Build the served state bytes from a client table, the root block's
 *  activity record (@p n entries of @p root) and an app blob. */
int oskr__hs_state_build(const uint8_t *clients, size_t clients_len,
			 uint32_t n, const struct oskr__hs_block *root,
			 const void *app, size_t app_len, uint8_t **out,
			 size_t *out_len);

/* ---- state transfer (transfer.c) ---- */

/** We cannot link to the chain (@p why for the log): ask peers for a
 *  checkpoint above our root. Rate-limited; no-op while one runs. */
void oskr__hs_transfer_need(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			    const char *why);
/** A FETCH for @p digest missed here: tell the asker our checkpoint. */
void oskr__hs_transfer_on_fetch_miss(struct oskr_ctx *ctx,
				     struct oskr__hs_replica *rs,
				     struct oskr__hs_inbound *in);
void oskr__hs_on_ckpt_request(struct oskr_ctx *ctx,
			      struct oskr__hs_replica *rs,
			      struct oskr__hs_inbound *in);
void oskr__hs_on_ckpt_offer(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			    struct oskr__hs_inbound *in);
void oskr__hs_on_ckpt_fetch(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			    struct oskr__hs_inbound *in);
void oskr__hs_on_ckpt_chunk(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			    struct oskr__hs_inbound *in);
void oskr__hs_transfer_fini(struct oskr_ctx *ctx, struct oskr__hs_replica *rs);

/* ---- catch-up (fetch.c) ---- */

/** We need block @p digest (at @p height, 0 when unknown): fetch it
 *  (from @p hint_replica first), now or, with @p defer, after
 *  fetch_timeout if it has not arrived. */
void oskr__hs_want_block(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			 const uint8_t digest[OSKR__HS_DIGEST], uint64_t height,
			 int32_t hint_replica, bool defer);
/** Lowest known height among the blocks we are fetching (0: none). */
uint64_t oskr__hs_lowest_missing(const struct oskr__hs_replica *rs);
bool oskr__hs_is_wanted(const struct oskr__hs_replica *rs,
			const uint8_t digest[OSKR__HS_DIGEST]);
void oskr__hs_got_block(struct oskr__hs_replica *rs,
			const uint8_t digest[OSKR__HS_DIGEST]);
void oskr__hs_on_fetch(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
		       struct oskr__hs_inbound *in);
void oskr__hs_on_blocks(struct oskr_ctx *ctx, struct oskr__hs_replica *rs,
			struct oskr__hs_inbound *in);
void oskr__hs_fetch_fini(struct oskr_ctx *ctx, struct oskr__hs_replica *rs);

/* ---- client (client.c) ---- */

int oskr__hs_client_init(struct oskr_ctx *ctx, void *state);
int oskr__hs_client_invoke(struct oskr_ctx *ctx, void *state,
			   uint64_t request_number, const void *op,
			   size_t op_len);
void oskr__hs_client_receive(struct oskr_ctx *ctx, void *state,
			     const struct oskr_msg *msg);
void oskr__hs_client_fini(struct oskr_ctx *ctx, void *state);

/* ---- small helpers ---- */

static inline void oskr__hs_drop(struct oskr_ctx *ctx, const char *reason)
{
	ctx->host->count(ctx, reason, 1);
}

#endif
