/* SPDX-License-Identifier: MIT */
/*
 * primary-backup: a small, complete oskr protocol plugin, written only
 * against the installed SDK (<oskr/plugin.h>). It is the example that
 * docs/plugin-guide.md walks through.
 *
 * ## Protocol
 *
 * Replica 0 is the primary, fixed for the life of the cluster; replicas
 * 1..n-1 are backups.
 *
 *  0. A backup that starts (or restarts) first takes the primary's
 *     state: it says hello (an ACK flagged "not synced") until the
 *     primary's application snapshot arrives, installs it and only then
 *     executes prepares. So all replicas start from the primary's state,
 *     even when the host restored each one's application from its own
 *     disk snapshot (oskrd's `state_dir`).
 *  1. A client sends REQUEST(client_id, request_number, op) to the
 *     primary and retransmits it until the REPLY arrives.
 *  2. The primary's client table drops stale requests and answers a
 *     duplicate of a finished one from its cache (exactly once). A new
 *     request gets the next sequence number and goes into the log as
 *     PREPARE(primary_incarnation, seq, committed, op), which is sent to
 *     every backup.
 *  3. A backup executes prepares strictly in sequence order (it buffers a
 *     few that arrive early) and answers ACK(have = the highest seq it
 *     executed). Acks are cumulative.
 *  4. Sequence number s is *committed* once f backups acknowledged it, so
 *     f + 1 replicas hold it. The primary then executes s and replies to
 *     the client.
 *  5. A backup that falls behind is caught up with go-back-N: the
 *     primary keeps up to `log_window` entries, resends from the backup's
 *     last ack when the backup stops making progress, and keeps at most a
 *     window of catch-up messages in flight. A backup that needs an entry
 *     the log no longer has gets the primary's application snapshot in
 *     chunks (state transfer), then the entries after it.
 *
 * ## Fault model
 *
 * Crash-stop replicas and an asynchronous, unreliable network: messages
 * may be lost, duplicated, delayed and reordered, and the network may
 * partition and heal. No Byzantine behaviour (use PBFT or HotStuff for
 * that): a message's claimed sender is trusted, so nothing is signed.
 *
 *  - Safety holds under every such fault, the primary's crash included.
 *  - Liveness needs the primary and at least f backups up and connected:
 *    with n = 2f + 1 any f backups may crash. A backup that restarts
 *    (empty) rejoins through state transfer.
 *  - A crash of the primary is NOT tolerated: the service stops (it never
 *    answers wrongly). Automatic fail-over needs a view change, which is
 *    what turns this protocol into Viewstamped Replication (Oki & Liskov,
 *    PODC'88) — deliberately left out to keep the example small. Run
 *    the conformance kit with `--faults crash-primary-not-tolerated`.
 *
 * ## Why it is safe
 *
 *  (1) Only the primary assigns sequence numbers, each once: its counter
 *      only grows. A primary restarted without its state would reuse
 *      them, so backups pin the primary's incarnation (chosen at init) and
 *      ignore any other: a restarted primary never gathers an ack, so it
 *      never commits, executes or answers anything.
 *  (2) Every replica executes in sequence order without gaps: a backup
 *      executes s only right after s - 1, the primary executes s only
 *      after every s' < s, and a snapshot installed at s is the primary's
 *      state right after it executed s. So every replica's executed sequence is
 *      a prefix of the primary's order: the replicas agree.
 *  (3) A client accepts only the primary's reply to its outstanding
 *      request, and the primary's client table assigns a sequence number
 *      to a (client, request) pair at most once, so a retransmitted
 *      request is never executed twice (while the client is in the table:
 *      size `client_table_size` above the number of active clients).
 *  (4) A reply is sent only for a committed op: it is on f + 1 replicas,
 *      so any f of them may lose it and it still exists (what an operator
 *      promoting a backup by hand would rely on).
 *
 * ## Stage model
 *
 * replica_receive (stateless, any worker, concurrently) decodes and
 * length-checks every message, checks where it may come from, holds the
 * buffer and submits a stateful task; everything that touches the log or
 * the application runs in those stateful tasks, one at a time.
 *
 * ## Options (protocol.options)
 *
 *   log_window: 1024          log entries kept for slow backups (and the
 *                             most uncommitted requests in flight)
 *   resend_ms: 20             primary -> backup retransmission tick
 *   retransmit_ms: 100        client retransmission interval
 *   client_table_size: 4096   clients remembered for exactly-once replies
 */
#include <stdlib.h>
#include <string.h>

#include <oskr/plugin.h>

#define PRIMARY 0
/* Early prepares a backup holds while it waits for the gap to fill. */
#define PENDING_SLOTS 128
/* Catch-up messages in flight to one lagging backup (go-back-N window). */
#define CATCH_UP_WINDOW 64
/* Largest application snapshot sent or accepted. */
#define SNAPSHOT_MAX (256u << 20)

/* ---- wire format (all integers little-endian) ---- */

enum pb_type {
	PB_REQUEST = 1,  /* client -> primary */
	PB_REPLY = 2,    /* primary -> client */
	PB_PREPARE = 3,  /* primary -> backup */
	PB_ACK = 4,      /* backup -> primary */
	PB_SNAPSHOT = 5, /* primary -> backup, one chunk */
};

/* u8 type, u64 client_id, u64 request_number, u32 len | len bytes */
#define REQUEST_HEADER (1 + 8 + 8 + 4)
#define REPLY_HEADER REQUEST_HEADER
/* u8 type, u64 primary_incarnation, u64 seq, u64 committed, u32 op_len */
#define PREPARE_HEADER (1 + 8 + 8 + 8 + 4)
/* u8 type, u64 backup_incarnation, u64 primary_incarnation, u64 have,
 * u8 flags */
#define ACK_SIZE (1 + 8 + 8 + 8 + 1)
/* ACK flag: the backup holds the primary's state (step 0 is done). */
#define ACK_SYNCED 1
/* u8 type, u64 primary_incarnation, u64 seq, u32 total, u32 chunk_size,
 * u32 offset, u32 len | len bytes */
#define SNAPSHOT_HEADER (1 + 8 + 8 + 4 + 4 + 4 + 4)

/* A decoded message; pointers borrow from the received buffer. */
struct pb_message {
	enum pb_type type;
	uint64_t client_id, request_number;  /* REQUEST, REPLY */
	uint64_t incarnation;                /* PREPARE, SNAPSHOT: primary's;
						ACK: backup's */
	uint64_t primary_incarnation;        /* ACK */
	uint64_t seq;                        /* PREPARE, SNAPSHOT */
	uint64_t committed;                  /* PREPARE */
	uint64_t have;                       /* ACK */
	bool synced;                         /* ACK */
	uint32_t total, chunk_size, offset;  /* SNAPSHOT */
	const uint8_t *payload;              /* op, result or chunk */
	uint32_t payload_len;
};

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) |
	       ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32);
}

/* Every decoder checks the exact length: a message is as long as its
 * fields say, never shorter, never longer. */
static bool decode(const uint8_t *data, size_t len, struct pb_message *m)
{
	if (len < 1)
		return false;
	memset(m, 0, sizeof(*m));
	m->type = (enum pb_type)data[0];
	switch (m->type) {
	case PB_REQUEST:
	case PB_REPLY:
		if (len < REQUEST_HEADER)
			return false;
		m->client_id = get_u64(data + 1);
		m->request_number = get_u64(data + 9);
		m->payload_len = get_u32(data + 17);
		m->payload = data + REQUEST_HEADER;
		/* Client ids are never 0 (the client table's empty mark). */
		return len - REQUEST_HEADER == m->payload_len &&
		       m->client_id != 0;
	case PB_PREPARE:
		if (len < PREPARE_HEADER)
			return false;
		m->incarnation = get_u64(data + 1);
		m->seq = get_u64(data + 9);
		m->committed = get_u64(data + 17);
		m->payload_len = get_u32(data + 25);
		m->payload = data + PREPARE_HEADER;
		return len - PREPARE_HEADER == m->payload_len && m->seq > 0;
	case PB_ACK:
		if (len != ACK_SIZE)
			return false;
		m->incarnation = get_u64(data + 1);
		m->primary_incarnation = get_u64(data + 9);
		m->have = get_u64(data + 17);
		m->synced = data[25] & ACK_SYNCED;
		return (data[25] & ~ACK_SYNCED) == 0;
	case PB_SNAPSHOT:
		if (len < SNAPSHOT_HEADER)
			return false;
		m->incarnation = get_u64(data + 1);
		m->seq = get_u64(data + 9);
		m->total = get_u32(data + 17);
		m->chunk_size = get_u32(data + 21);
		m->offset = get_u32(data + 25);
		m->payload_len = get_u32(data + 29);
		m->payload = data + SNAPSHOT_HEADER;
		/* Chunks are cut at multiples of chunk_size; the last one
		 * may be short (or empty, for an empty snapshot). */
		return len - SNAPSHOT_HEADER == m->payload_len &&
		       m->chunk_size > 0 && m->total <= SNAPSHOT_MAX &&
		       m->offset % m->chunk_size == 0 &&
		       (m->offset < m->total || m->offset == 0) &&
		       m->payload_len == (m->total - m->offset < m->chunk_size
						  ? m->total - m->offset
						  : m->chunk_size);
	}
	return false;
}

/* ---- state ---- */

struct pb_options {
	uint64_t log_window;
	uint64_t resend_ms;
	uint64_t retransmit_ms;
	uint64_t client_table_size;
};

/* One sequence number on the primary. */
struct log_entry {
	struct oskr_buf *prepare; /* one reference held: resent as is */
	struct oskr_addr client;  /* where the reply goes */
	uint64_t client_id, request_number;
};

/* What the primary knows of one backup. */
struct backup {
	uint64_t incarnation;  /* from its acks; 0: never heard of it */
	bool synced;           /* it installed our state (step 0) */
	bool snapshot_sent;    /* step 0 under way: do not repeat */
	uint64_t match;        /* highest seq it acknowledged */
	uint64_t sent;         /* highest seq sent to it */
	uint64_t match_at_tick;/* match at the previous resend tick */
};

struct client_entry {
	uint64_t client_id;
	uint64_t request_number; /* highest request accepted */
	bool done;               /* it executed; result below */
	uint8_t *result;
	size_t result_len, result_capacity;
	uint64_t last_used;
};

/* Client id -> entry, open addressing with linear probing; full means
 * evicting the least recently used entry (a scan: rare when the table is
 * sized above the active clients). */
struct client_table {
	struct client_entry *slots;
	size_t capacity, count, limit;
	uint64_t clock;
};

struct pb_replica {
	struct pb_options options;
	const struct oskr_instance_info *info;
	uint64_t incarnation; /* this run of this replica */
	uint8_t *result;      /* execution scratch */
	size_t result_capacity;

	/* primary */
	bool primary;
	struct log_entry *log; /* ring: seq s lives at s % log_window */
	uint64_t log_start;    /* oldest seq kept (log empty if > assigned) */
	uint64_t assigned, committed;
	struct backup *backups; /* indexed by replica id; [0] unused */
	struct client_table table;
	oskr_timer_id resend_timer;
	void *snapshot;        /* cached, from app_snapshot */
	size_t snapshot_len;
	uint64_t snapshot_seq;

	/* backup */
	uint64_t primary_incarnation; /* pinned from the first prepare */
	bool synced;          /* holds the primary's state (step 0) */
	oskr_timer_id hello_timer;
	uint64_t executed, known_committed;
	bool gap_reported;     /* told the primary about the current gap */
	struct oskr_buf *pending[PENDING_SLOTS]; /* held early prepares */
	uint64_t pending_seq[PENDING_SLOTS];
	uint8_t *assembly;     /* snapshot being received */
	uint8_t *assembly_chunks; /* one byte per chunk: received */
	uint64_t assembly_seq;
	uint32_t assembly_total, assembly_chunk_size, assembly_missing;
};

struct pb_client {
	struct pb_options options;
	const struct oskr_instance_info *info;
	uint64_t request_number;
	uint8_t *op;
	size_t op_len, op_capacity;
	bool waiting;
	oskr_timer_id retransmit_timer;
};

/* A received message on its way from the stateless to the stateful
 * stage: the buffer is held, `message` points into it. */
struct receive_task {
	struct oskr_buf *buf;
	struct oskr_addr from;
	int32_t from_replica;
	struct pb_message message;
};

/* ---- options ---- */

static const char *const option_keys[] = {
	"log_window", "resend_ms", "retransmit_ms", "client_table_size", NULL,
};

static int read_options(const struct oskr_host *host,
			const struct oskr_conf *conf, struct pb_options *out)
{
	if (host->conf_check_keys(conf, option_keys) ||
	    host->conf_u64(conf, "log_window", 4, 1u << 20, 1024,
			   &out->log_window) ||
	    host->conf_ms(conf, "resend_ms", 1, 60000, 20, &out->resend_ms) ||
	    host->conf_ms(conf, "retransmit_ms", 1, 60000, 100,
			  &out->retransmit_ms) ||
	    host->conf_u64(conf, "client_table_size", 1, 1u << 20, 4096,
			   &out->client_table_size))
		return -EINVAL;
	return 0;
}

static int pb_config_check(const struct oskr_host *host,
			   const struct oskr_conf *conf, uint32_t replica_count,
			   uint32_t fault_count)
{
	struct pb_options options;
	/* f + 1 copies of every committed op need f + 1 replicas. */
	if (replica_count < fault_count + 1)
		return -EINVAL;
	return read_options(host, conf, &options);
}

/* ---- the client table (primary) ---- */

static size_t table_home(const struct client_table *table, uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	return (size_t)id & (table->capacity - 1);
}

static int table_init(struct client_table *table, size_t limit)
{
	size_t capacity = 16;
	while (capacity < 2 * limit)
		capacity *= 2;
	table->slots = calloc(capacity, sizeof(*table->slots));
	if (!table->slots)
		return -ENOMEM;
	table->capacity = capacity;
	table->limit = limit;
	return 0;
}

static void table_fini(struct client_table *table)
{
	for (size_t i = 0; i < table->capacity && table->slots; i++)
		free(table->slots[i].result);
	free(table->slots);
	table->slots = NULL;
}

/* Client ids are never 0 (the host draws them nonzero), so 0 marks an
 * empty slot. */
static struct client_entry *table_find(struct client_table *table,
				       uint64_t client_id)
{
	for (size_t i = table_home(table, client_id);;
	     i = (i + 1) & (table->capacity - 1)) {
		if (table->slots[i].client_id == client_id) {
			table->slots[i].last_used = ++table->clock;
			return &table->slots[i];
		}
		if (table->slots[i].client_id == 0)
			return NULL;
	}
}

/* Remove slot @p hole, pulling later members of its probe run back so
 * that lookups never stop early. */
static void table_remove(struct client_table *table, size_t hole)
{
	free(table->slots[hole].result);
	size_t mask = table->capacity - 1;
	for (size_t j = (hole + 1) & mask; table->slots[j].client_id;
	     j = (j + 1) & mask) {
		size_t home = table_home(table, table->slots[j].client_id);
		bool stays = hole <= j ? (hole < home && home <= j)
				       : (hole < home || home <= j);
		if (!stays) {
			table->slots[hole] = table->slots[j];
			hole = j;
		}
	}
	memset(&table->slots[hole], 0, sizeof(table->slots[hole]));
	table->count--;
}

static struct client_entry *table_insert(struct oskr_ctx *ctx,
					 struct client_table *table,
					 uint64_t client_id)
{
	if (table->count == table->limit) {
		size_t oldest = 0;
		uint64_t oldest_use = UINT64_MAX;
		for (size_t i = 0; i < table->capacity; i++) {
			if (table->slots[i].client_id &&
			    table->slots[i].last_used < oldest_use) {
				oldest = i;
				oldest_use = table->slots[i].last_used;
			}
		}
		table_remove(table, oldest);
		ctx->host->count(ctx, "client_table_evictions", 1);
	}
	size_t i = table_home(table, client_id);
	while (table->slots[i].client_id)
		i = (i + 1) & (table->capacity - 1);
	struct client_entry *entry = &table->slots[i];
	memset(entry, 0, sizeof(*entry));
	entry->client_id = client_id;
	entry->last_used = ++table->clock;
	table->count++;
	return entry;
}

static void cache_result(struct client_entry *entry, const uint8_t *result,
			 size_t len)
{
	if (len > entry->result_capacity) {
		uint8_t *bigger = realloc(entry->result, len);
		if (!bigger)
			return; /* a duplicate then goes unanswered */
		entry->result = bigger;
		entry->result_capacity = len;
	}
	if (len)
		memcpy(entry->result, result, len);
	entry->result_len = len;
	entry->done = true;
}

/* ---- sending ---- */

static void send_reply(struct oskr_ctx *ctx, const struct oskr_addr *to,
		       uint64_t client_id, uint64_t request_number,
		       const uint8_t *result, size_t len)
{
	const struct oskr_host *host = ctx->host;
	struct oskr_buf *buf;
	if (host->buf_alloc(ctx, REPLY_HEADER + len, &buf)) {
		host->count(ctx, "drop_no_buffer", 1);
		return;
	}
	buf->data[0] = PB_REPLY;
	put_u64(buf->data + 1, client_id);
	put_u64(buf->data + 9, request_number);
	put_u32(buf->data + 17, (uint32_t)len);
	if (len)
		memcpy(buf->data + REPLY_HEADER, result, len);
	buf->len = (uint32_t)(REPLY_HEADER + len);
	host->send_to_addr(ctx, to, buf); /* consumes buf */
}

static void send_ack(struct oskr_ctx *ctx, struct pb_replica *replica)
{
	const struct oskr_host *host = ctx->host;
	struct oskr_buf *buf;
	if (host->buf_alloc(ctx, ACK_SIZE, &buf)) {
		host->count(ctx, "drop_no_buffer", 1);
		return;
	}
	buf->data[0] = PB_ACK;
	put_u64(buf->data + 1, replica->incarnation);
	put_u64(buf->data + 9, replica->primary_incarnation);
	put_u64(buf->data + 17, replica->executed);
	buf->data[25] = replica->synced ? ACK_SYNCED : 0;
	buf->len = ACK_SIZE;
	host->send_to_replica(ctx, PRIMARY, buf);
}

/* Send log entry @p seq to backup @p id. The log keeps its reference:
 * take one for the send, which consumes it. */
static void send_entry(struct oskr_ctx *ctx, struct pb_replica *replica,
		       uint32_t id, uint64_t seq)
{
	struct oskr_buf *prepare =
		replica->log[seq % replica->options.log_window].prepare;
	ctx->host->buf_hold(prepare);
	ctx->host->send_to_replica(ctx, id, prepare);
}

/* State transfer: send backup @p id the primary's state as of
 * `committed`, in chunks; false if that failed. */
static bool send_snapshot(struct oskr_ctx *ctx, struct pb_replica *replica,
			  uint32_t id)
{
	const struct oskr_host *host = ctx->host;
	/* The cached snapshot serves while the entries after it are still
	 * in the log; otherwise take a fresh one. The primary executes
	 * exactly the committed prefix, so its state is at `committed`. */
	if (!replica->snapshot || replica->snapshot_seq + 1 < replica->log_start) {
		if (replica->snapshot)
			host->blob_free(ctx, replica->snapshot);
		replica->snapshot = NULL;
		if (host->app_snapshot(ctx, &replica->snapshot,
				       &replica->snapshot_len)) {
			host->count(ctx, "snapshot_failures", 1);
			return false;
		}
		replica->snapshot_seq = replica->committed;
		if (replica->snapshot_len > SNAPSHOT_MAX) {
			host->log(ctx, OSKR_LOG_ERROR,
				  "application snapshot of %zu bytes exceeds "
				  "the %u-byte limit: backup %u cannot catch up",
				  replica->snapshot_len, SNAPSHOT_MAX, id);
			host->blob_free(ctx, replica->snapshot);
			replica->snapshot = NULL;
			return false;
		}
	}
	uint32_t total = (uint32_t)replica->snapshot_len;
	uint32_t chunk_size = replica->info->max_message - SNAPSHOT_HEADER;
	uint32_t offset = 0;
	do {
		uint32_t len = total - offset < chunk_size ? total - offset
							   : chunk_size;
		struct oskr_buf *buf;
		if (host->buf_alloc(ctx, SNAPSHOT_HEADER + len, &buf)) {
			host->count(ctx, "drop_no_buffer", 1);
			return false;
		}
		uint8_t *p = buf->data;
		p[0] = PB_SNAPSHOT;
		put_u64(p + 1, replica->incarnation);
		put_u64(p + 9, replica->snapshot_seq);
		put_u32(p + 17, total);
		put_u32(p + 21, chunk_size);
		put_u32(p + 25, offset);
		put_u32(p + 29, len);
		if (len)
			memcpy(p + SNAPSHOT_HEADER,
			       (const uint8_t *)replica->snapshot + offset, len);
		buf->len = SNAPSHOT_HEADER + len;
		host->send_to_replica(ctx, id, buf);
		offset += len;
	} while (offset < total);
	host->count(ctx, "snapshots_sent", 1);
	replica->backups[id].sent = replica->snapshot_seq;
	return true;
}

/* Go-back-N: send backup @p id what follows the last entry sent to it,
 * keeping at most @p window entries beyond its last ack in flight. */
static void catch_up(struct oskr_ctx *ctx, struct pb_replica *replica,
		     uint32_t id, uint64_t window)
{
	struct backup *backup = &replica->backups[id];
	if (!backup->synced) {
		/* Step 0 first: the entries follow once it acknowledges. */
		if (!backup->snapshot_sent)
			backup->snapshot_sent = send_snapshot(ctx, replica, id);
		return;
	}
	uint64_t limit = backup->match + window;
	if (limit > replica->assigned)
		limit = replica->assigned;
	while (backup->sent < limit) {
		uint64_t seq = backup->sent + 1;
		if (seq < replica->log_start) {
			if (!send_snapshot(ctx, replica, id))
				return;
			continue;
		}
		send_entry(ctx, replica, id, seq);
		backup->sent = seq;
	}
}

/* ---- primary ---- */

/* Drop log entries every backup has, and (when @p need_room) the oldest
 * committed one: a backup that still needed it gets a snapshot. */
static void trim_log(struct oskr_ctx *ctx, struct pb_replica *replica,
		     bool need_room)
{
	uint32_t n = replica->info->replica_count;
	while (replica->log_start <= replica->committed) {
		bool everyone = true;
		for (uint32_t id = 1; id < n; id++)
			if (replica->backups[id].synced &&
			    replica->backups[id].match < replica->log_start)
				everyone = false; /* it may still need it */
		bool full = replica->assigned + 1 - replica->log_start >=
			    replica->options.log_window;
		if (!everyone && !(need_room && full))
			break;
		struct log_entry *entry =
			&replica->log[replica->log_start %
				      replica->options.log_window];
		ctx->host->buf_release(entry->prepare);
		entry->prepare = NULL;
		replica->log_start++;
	}
}

/* Execute everything that f backups now hold (step 4). */
static void advance_commit(struct oskr_ctx *ctx, struct pb_replica *replica)
{
	const struct oskr_host *host = ctx->host;
	uint32_t n = replica->info->replica_count;
	uint32_t f = replica->info->fault_count;
	/* The f-th highest match: f backups have at least that. */
	uint64_t target = replica->assigned;
	if (f > 0) {
		target = 0;
		for (uint32_t id = 1; id < n; id++) {
			uint64_t candidate = replica->backups[id].match;
			uint32_t at_least = 0;
			for (uint32_t other = 1; other < n; other++)
				if (replica->backups[other].match >= candidate)
					at_least++;
			if (at_least >= f && candidate > target)
				target = candidate;
		}
	}
	while (replica->committed < target) {
		uint64_t seq = ++replica->committed;
		struct log_entry *entry =
			&replica->log[seq % replica->options.log_window];
		const uint8_t *op = entry->prepare->data + PREPARE_HEADER;
		size_t op_len = entry->prepare->len - PREPARE_HEADER;
		size_t result_len = 0;
		if (host->app_execute(ctx, op, op_len, replica->result,
				      replica->result_capacity, &result_len)) {
			/* Cannot happen with a result buffer of a whole
			 * message; an empty reply keeps the order intact. */
			host->count(ctx, "execute_failures", 1);
			result_len = 0;
		}
		host->count(ctx, OSKR_COUNTER_COMMITS, 1);
		struct client_entry *client =
			table_find(&replica->table, entry->client_id);
		if (client && client->request_number == entry->request_number)
			cache_result(client, replica->result, result_len);
		send_reply(ctx, &entry->client, entry->client_id,
			   entry->request_number, replica->result, result_len);
	}
	host->set_status(ctx, 0, PRIMARY, replica->committed,
			 replica->committed);
	trim_log(ctx, replica, false);
}

/* Steps 2 and 4: a client request reaches the primary. */
static void on_request(struct oskr_ctx *ctx, struct pb_replica *replica,
		       struct receive_task *task)
{
	const struct oskr_host *host = ctx->host;
	const struct pb_message *m = &task->message;
	struct client_entry *client = table_find(&replica->table, m->client_id);
	if (client && m->request_number < client->request_number) {
		host->count(ctx, "drop_stale", 1);
		return;
	}
	if (client && m->request_number == client->request_number) {
		host->count(ctx, "duplicates", 1);
		if (client->done) /* its reply was lost: answer again */
			send_reply(ctx, &task->from, m->client_id,
				   m->request_number, client->result,
				   client->result_len);
		return; /* otherwise it is in progress */
	}
	if (PREPARE_HEADER + (size_t)m->payload_len >
	    replica->info->max_message) {
		host->count(ctx, "drop_too_large", 1);
		return;
	}
	trim_log(ctx, replica, true);
	if (replica->assigned + 1 - replica->log_start >=
	    replica->options.log_window) {
		/* Full of uncommitted entries: fewer than f backups keep up.
		 * The client retries; nothing is lost. */
		host->count(ctx, "drop_log_full", 1);
		return;
	}
	struct oskr_buf *prepare;
	if (host->buf_alloc(ctx, PREPARE_HEADER + m->payload_len, &prepare)) {
		host->count(ctx, "drop_no_buffer", 1);
		return;
	}
	if (!client)
		client = table_insert(ctx, &replica->table, m->client_id);
	client->request_number = m->request_number;
	client->done = false;

	uint64_t seq = ++replica->assigned;
	uint8_t *p = prepare->data;
	p[0] = PB_PREPARE;
	put_u64(p + 1, replica->incarnation);
	put_u64(p + 9, seq);
	put_u64(p + 17, replica->committed);
	put_u32(p + 25, m->payload_len);
	if (m->payload_len)
		memcpy(p + PREPARE_HEADER, m->payload, m->payload_len);
	prepare->len = PREPARE_HEADER + m->payload_len;
	struct log_entry *entry = &replica->log[seq % replica->options.log_window];
	entry->prepare = prepare; /* the log owns this reference */
	entry->client = task->from;
	entry->client_id = m->client_id;
	entry->request_number = m->request_number;

	/* Backups in step get it now; lagging ones through catch_up. */
	for (uint32_t id = 1; id < replica->info->replica_count; id++) {
		struct backup *backup = &replica->backups[id];
		if (backup->synced && backup->sent + 1 == seq) {
			send_entry(ctx, replica, id, seq);
			backup->sent = seq;
		}
	}
	advance_commit(ctx, replica); /* f = 0 commits at once */
}

static void on_ack(struct oskr_ctx *ctx, struct pb_replica *replica,
		   struct receive_task *task)
{
	const struct pb_message *m = &task->message;
	uint32_t id = (uint32_t)task->from_replica;
	struct backup *backup = &replica->backups[id];
	/* 0: a hello from a backup that has not heard from any primary. */
	if (m->primary_incarnation != replica->incarnation &&
	    m->primary_incarnation != 0) {
		ctx->host->count(ctx, "drop_stale_ack", 1);
		return;
	}
	if (m->incarnation < backup->incarnation) {
		/* From before the backup restarted (incarnations come from a
		 * monotonic clock, so a restart only makes them grow). */
		ctx->host->count(ctx, "drop_stale_ack", 1);
		return;
	}
	uint64_t have = m->have < replica->assigned ? m->have
						    : replica->assigned;
	if (m->incarnation != backup->incarnation) {
		/* First contact, or the backup restarted empty: believe its
		 * position and resend from there. */
		if (backup->incarnation)
			ctx->host->count(ctx, "backup_restarts", 1);
		backup->incarnation = m->incarnation;
		backup->synced = m->synced;
		backup->snapshot_sent = false;
		backup->match = have;
		backup->sent = have;
	} else {
		if (m->synced && !backup->synced) {
			backup->synced = true;
			backup->snapshot_sent = false;
		}
		if (have > backup->match)
			backup->match = have;
	}
	if (backup->sent < backup->match)
		backup->sent = backup->match;
	advance_commit(ctx, replica);
	/* Each ack opens the window again: a backup that answers catches
	 * up at the speed it acknowledges. */
	catch_up(ctx, replica, id, CATCH_UP_WINDOW);
}

/* Step 5: a backup that made no progress for a whole tick lost something
 * (or is down): go back to its last ack and probe with one entry only, so
 * a crashed backup costs one message per tick; its ack reopens the
 * window. */
static void resend_tick(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct pb_replica *replica = state;
	const struct oskr_host *host = ctx->host;
	replica->resend_timer = 0;
	for (uint32_t id = 1; id < replica->info->replica_count; id++) {
		struct backup *backup = &replica->backups[id];
		bool behind = backup->synced ? backup->match < replica->assigned
					     : backup->incarnation != 0;
		if (behind && backup->match == backup->match_at_tick) {
			host->count(ctx, "resends", 1);
			backup->sent = backup->match; /* go back */
			backup->snapshot_sent = false;
			catch_up(ctx, replica, id, 1);
		}
		backup->match_at_tick = backup->match;
	}
	if (host->timer_arm(ctx, replica->options.resend_ms * 1000000ULL,
			    resend_tick, NULL, &replica->resend_timer))
		host->count(ctx, "timer_failures", 1);
}

/* ---- backup ---- */

/* Pin the primary's incarnation; false for a message of another one. */
static bool from_current_primary(struct oskr_ctx *ctx,
				 struct pb_replica *replica,
				 uint64_t incarnation)
{
	if (replica->primary_incarnation == 0)
		replica->primary_incarnation = incarnation;
	if (incarnation == replica->primary_incarnation)
		return true;
	/* A restarted primary lost its state; following it could assign
	 * a sequence number twice. */
	ctx->host->count(ctx, "drop_foreign_primary", 1);
	return false;
}

static void execute_op(struct oskr_ctx *ctx, struct pb_replica *replica,
		       const uint8_t *op, size_t op_len)
{
	size_t result_len;
	if (ctx->host->app_execute(ctx, op, op_len, replica->result,
				   replica->result_capacity, &result_len))
		ctx->host->count(ctx, "execute_failures", 1);
	replica->executed++;
	replica->gap_reported = false;
}

/* Execute held early prepares that are now next in line. */
static void drain_pending(struct oskr_ctx *ctx, struct pb_replica *replica)
{
	for (;;) {
		size_t slot = (replica->executed + 1) % PENDING_SLOTS;
		struct oskr_buf *buf = replica->pending[slot];
		if (!buf || replica->pending_seq[slot] != replica->executed + 1)
			return;
		replica->pending[slot] = NULL;
		execute_op(ctx, replica, buf->data + PREPARE_HEADER,
			   buf->len - PREPARE_HEADER);
		ctx->host->buf_release(buf);
	}
}

static void drop_pending_through(struct oskr_ctx *ctx,
				 struct pb_replica *replica, uint64_t seq)
{
	for (size_t slot = 0; slot < PENDING_SLOTS; slot++) {
		if (replica->pending[slot] && replica->pending_seq[slot] <= seq) {
			ctx->host->buf_release(replica->pending[slot]);
			replica->pending[slot] = NULL;
		}
	}
}

/* Step 3. */
static void on_prepare(struct oskr_ctx *ctx, struct pb_replica *replica,
		       struct receive_task *task)
{
	const struct oskr_host *host = ctx->host;
	const struct pb_message *m = &task->message;
	if (!from_current_primary(ctx, replica, m->incarnation))
		return;
	if (m->committed > replica->known_committed)
		replica->known_committed = m->committed;
	if (replica->synced && m->seq <= replica->executed) {
		/* A resend or a duplicate: our ack was probably lost. */
		host->count(ctx, "duplicates", 1);
		send_ack(ctx, replica);
		return;
	}
	if (replica->synced && m->seq == replica->executed + 1) {
		execute_op(ctx, replica, m->payload, m->payload_len);
		drain_pending(ctx, replica);
		send_ack(ctx, replica);
	} else if (m->seq > replica->executed &&
		   m->seq - replica->executed <= PENDING_SLOTS) {
		/* Early: keep the buffer (a reference of our own) until the
		 * gap fills. */
		size_t slot = m->seq % PENDING_SLOTS;
		if (replica->pending[slot])
			host->buf_release(replica->pending[slot]);
		host->buf_hold(task->buf);
		replica->pending[slot] = task->buf;
		replica->pending_seq[slot] = m->seq;
		if (!replica->gap_reported) {
			/* Tell the primary where we are once per gap: after a
			 * restart it would otherwise never learn it. */
			replica->gap_reported = true;
			send_ack(ctx, replica);
		}
	} else {
		host->count(ctx, "drop_too_far_ahead", 1);
		if (!replica->gap_reported) {
			replica->gap_reported = true;
			send_ack(ctx, replica);
		}
	}
	host->set_status(ctx, 0, PRIMARY, replica->known_committed,
			 replica->executed);
}

static void reset_assembly(struct pb_replica *replica)
{
	free(replica->assembly);
	free(replica->assembly_chunks);
	replica->assembly = NULL;
	replica->assembly_chunks = NULL;
	replica->assembly_seq = 0;
}

/* State transfer, receiving side. */
static void on_snapshot(struct oskr_ctx *ctx, struct pb_replica *replica,
			struct receive_task *task)
{
	const struct oskr_host *host = ctx->host;
	const struct pb_message *m = &task->message;
	if (!from_current_primary(ctx, replica, m->incarnation))
		return;
	if (replica->synced && m->seq <= replica->executed) {
		send_ack(ctx, replica); /* already past it */
		return;
	}
	if (!replica->assembly || replica->assembly_seq != m->seq ||
	    replica->assembly_total != m->total ||
	    replica->assembly_chunk_size != m->chunk_size) {
		reset_assembly(replica);
		uint32_t chunks = m->total / m->chunk_size +
				  (m->total % m->chunk_size ? 1 : 0);
		if (chunks == 0)
			chunks = 1; /* an empty snapshot is one empty chunk */
		replica->assembly = malloc(m->total ? m->total : 1);
		replica->assembly_chunks = calloc(chunks, 1);
		if (!replica->assembly || !replica->assembly_chunks) {
			reset_assembly(replica);
			host->count(ctx, "drop_no_memory", 1);
			return;
		}
		replica->assembly_seq = m->seq;
		replica->assembly_total = m->total;
		replica->assembly_chunk_size = m->chunk_size;
		replica->assembly_missing = chunks;
	}
	uint32_t index = m->offset / m->chunk_size;
	if (replica->assembly_chunks[index])
		return; /* a duplicate chunk */
	replica->assembly_chunks[index] = 1;
	if (m->payload_len)
		memcpy(replica->assembly + m->offset, m->payload,
		       m->payload_len);
	if (--replica->assembly_missing)
		return;
	int ret = host->app_restore(ctx, replica->assembly,
				    replica->assembly_total);
	uint64_t seq = replica->assembly_seq;
	reset_assembly(replica);
	if (ret) {
		host->count(ctx, "snapshot_rejected", 1);
		return;
	}
	host->count(ctx, "snapshots_installed", 1);
	replica->synced = true;
	replica->executed = seq;
	replica->gap_reported = false;
	drop_pending_through(ctx, replica, seq);
	drain_pending(ctx, replica);
	send_ack(ctx, replica);
	host->set_status(ctx, 0, PRIMARY, replica->known_committed,
			 replica->executed);
}

/* Step 0: until it holds the primary's state, a backup says hello every
 * resend_ms (the primary may not know it exists, or the snapshot was
 * lost). */
static void hello_tick(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct pb_replica *replica = state;
	replica->hello_timer = 0;
	if (replica->synced)
		return;
	send_ack(ctx, replica);
	if (ctx->host->timer_arm(ctx, replica->options.resend_ms * 1000000ULL,
				 hello_tick, NULL, &replica->hello_timer))
		ctx->host->count(ctx, "timer_failures", 1);
}

/* ---- replica callbacks ---- */

static int pb_replica_init(struct oskr_ctx *ctx, void *state)
{
	struct pb_replica *replica = state;
	const struct oskr_host *host = ctx->host;
	int ret = read_options(host, host->conf(ctx), &replica->options);
	if (ret)
		return ret;
	replica->info = host->info(ctx);
	if (replica->info->max_message <= SNAPSHOT_HEADER + REPLY_HEADER)
		return -EINVAL;
	/* Distinct for every start of a replica and growing (a monotonic
	 * clock; never 0): how the others notice a restart that lost the
	 * state. */
	replica->incarnation = host->now_ns(ctx) | 1;
	replica->result_capacity = replica->info->max_message - REPLY_HEADER;
	replica->result = malloc(replica->result_capacity);
	if (!replica->result)
		return -ENOMEM;
	replica->primary = replica->info->replica_id == PRIMARY;
	if (!replica->primary) {
		host->set_status(ctx, 0, PRIMARY, 0, 0);
		hello_tick(ctx, replica, NULL);
		return 0;
	}
	replica->log = calloc(replica->options.log_window,
			      sizeof(*replica->log));
	replica->backups = calloc(replica->info->replica_count,
				  sizeof(*replica->backups));
	if (!replica->log || !replica->backups ||
	    table_init(&replica->table, replica->options.client_table_size)) {
		ret = -ENOMEM;
		goto err_free;
	}
	replica->log_start = 1;
	ret = host->timer_arm(ctx, replica->options.resend_ms * 1000000ULL,
			      resend_tick, NULL, &replica->resend_timer);
	if (ret)
		goto err_free;
	host->set_status(ctx, 0, PRIMARY, 0, 0);
	return 0;

err_free:
	table_fini(&replica->table);
	free(replica->backups);
	free(replica->log);
	free(replica->result);
	return ret;
}

static void pb_replica_fini(struct oskr_ctx *ctx, void *state)
{
	struct pb_replica *replica = state;
	const struct oskr_host *host = ctx->host;
	if (replica->resend_timer)
		host->timer_cancel(ctx, replica->resend_timer);
	if (replica->hello_timer)
		host->timer_cancel(ctx, replica->hello_timer);
	if (replica->log) {
		for (uint64_t seq = replica->log_start; seq <= replica->assigned;
		     seq++)
			host->buf_release(
				replica->log[seq % replica->options.log_window]
					.prepare);
	}
	for (size_t slot = 0; slot < PENDING_SLOTS; slot++)
		if (replica->pending[slot])
			host->buf_release(replica->pending[slot]);
	if (replica->snapshot)
		host->blob_free(ctx, replica->snapshot);
	reset_assembly(replica);
	table_fini(&replica->table);
	free(replica->backups);
	free(replica->log);
	free(replica->result);
}

/* Stateful: everything that reads or writes the protocol state. */
static void handle_message(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct pb_replica *replica = state;
	struct receive_task *task = arg;
	switch (task->message.type) {
	case PB_REQUEST:
		on_request(ctx, replica, task);
		break;
	case PB_ACK:
		on_ack(ctx, replica, task);
		break;
	case PB_PREPARE:
		on_prepare(ctx, replica, task);
		break;
	case PB_SNAPSHOT:
		on_snapshot(ctx, replica, task);
		break;
	default:
		break;
	}
	ctx->host->buf_release(task->buf);
	free(task);
}

/* Stateless, on any worker: decode, check the routing, hand over. Reads
 * only what init set and never changes (replica->primary, info). */
static void pb_replica_receive(struct oskr_ctx *ctx, void *state,
			       const struct oskr_msg *msg)
{
	const struct pb_replica *replica = state;
	const struct oskr_host *host = ctx->host;
	struct pb_message m;
	if (!decode(msg->buf->data, msg->buf->len, &m)) {
		host->count(ctx, "drop_malformed", 1);
		return;
	}
	bool wanted;
	switch (m.type) {
	case PB_REQUEST:
		wanted = replica->primary;
		break;
	case PB_ACK:
		wanted = replica->primary && msg->from_replica > 0 &&
			 (uint32_t)msg->from_replica <
				 replica->info->replica_count;
		break;
	case PB_PREPARE:
	case PB_SNAPSHOT:
		wanted = !replica->primary && msg->from_replica == PRIMARY;
		break;
	default:
		wanted = false;
	}
	if (!wanted) {
		host->count(ctx, "drop_misrouted", 1);
		return;
	}
	struct receive_task *task = malloc(sizeof(*task));
	if (!task) {
		host->count(ctx, "drop_no_memory", 1);
		return;
	}
	/* The buffer is borrowed for this call only: keep a reference for
	 * the stateful task (m's pointers point into it). */
	host->buf_hold(msg->buf);
	task->buf = msg->buf;
	task->from = msg->from;
	task->from_replica = msg->from_replica;
	task->message = m;
	if (host->submit_stateful(ctx, handle_message, task)) {
		/* The task never runs: undo what it would have undone. */
		host->count(ctx, "drop_queue_full", 1);
		host->buf_release(msg->buf);
		free(task);
	}
}

/* ---- client ---- */

static int pb_client_init(struct oskr_ctx *ctx, void *state)
{
	struct pb_client *client = state;
	client->info = ctx->host->info(ctx);
	if (client->info->max_message <= PREPARE_HEADER)
		return -EINVAL;
	return read_options(ctx->host, ctx->host->conf(ctx), &client->options);
}

static void pb_client_fini(struct oskr_ctx *ctx, void *state)
{
	struct pb_client *client = state;
	if (client->retransmit_timer)
		ctx->host->timer_cancel(ctx, client->retransmit_timer);
	free(client->op);
}

static void send_request(struct oskr_ctx *ctx, struct pb_client *client)
{
	const struct oskr_host *host = ctx->host;
	struct oskr_buf *buf;
	if (host->buf_alloc(ctx, REQUEST_HEADER + client->op_len, &buf)) {
		host->count(ctx, "drop_no_buffer", 1);
		return; /* the retransmission timer tries again */
	}
	buf->data[0] = PB_REQUEST;
	put_u64(buf->data + 1, client->info->client_id);
	put_u64(buf->data + 9, client->request_number);
	put_u32(buf->data + 17, (uint32_t)client->op_len);
	if (client->op_len)
		memcpy(buf->data + REQUEST_HEADER, client->op, client->op_len);
	buf->len = (uint32_t)(REQUEST_HEADER + client->op_len);
	host->send_to_replica(ctx, PRIMARY, buf);
}

static void retransmit(struct oskr_ctx *ctx, void *state, void *arg)
{
	struct pb_client *client = state;
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

static int pb_client_invoke(struct oskr_ctx *ctx, void *state,
			    uint64_t request_number, const void *op,
			    size_t op_len)
{
	struct pb_client *client = state;
	const struct oskr_host *host = ctx->host;
	/* The op travels inside a PREPARE, the largest of the two. */
	if (op_len > client->info->max_message - PREPARE_HEADER)
		return -EMSGSIZE;
	if (op_len > client->op_capacity) {
		uint8_t *bigger = realloc(client->op, op_len);
		if (!bigger)
			return -ENOMEM;
		client->op = bigger;
		client->op_capacity = op_len;
	}
	/* A new request supersedes one the application gave up on: its
	 * timer goes, and a late reply to it is dropped as stale. */
	if (client->retransmit_timer)
		host->timer_cancel(ctx, client->retransmit_timer);
	client->retransmit_timer = 0;
	if (op_len)
		memcpy(client->op, op, op_len);
	client->op_len = op_len;
	client->request_number = request_number;
	int ret = host->timer_arm(ctx,
				  client->options.retransmit_ms * 1000000ULL,
				  retransmit, NULL, &client->retransmit_timer);
	if (ret) {
		client->waiting = false;
		return ret; /* then it is never completed */
	}
	client->waiting = true;
	send_request(ctx, client);
	return 0;
}

static void pb_client_receive(struct oskr_ctx *ctx, void *state,
			      const struct oskr_msg *msg)
{
	struct pb_client *client = state;
	const struct oskr_host *host = ctx->host;
	struct pb_message m;
	if (!decode(msg->buf->data, msg->buf->len, &m) || m.type != PB_REPLY) {
		host->count(ctx, "drop_malformed", 1);
		return;
	}
	if (msg->from_replica != PRIMARY ||
	    m.client_id != client->info->client_id) {
		host->count(ctx, "drop_misrouted", 1);
		return;
	}
	if (!client->waiting || m.request_number != client->request_number) {
		host->count(ctx, "drop_stale", 1);
		return;
	}
	/* Exactly once: waiting goes false before completing. */
	client->waiting = false;
	if (client->retransmit_timer)
		host->timer_cancel(ctx, client->retransmit_timer);
	client->retransmit_timer = 0;
	host->client_complete(ctx, m.request_number, m.payload, m.payload_len);
}

OSKR_PLUGIN_EXPORT = {
	OSKR_PLUGIN_HEADER,
	.name = "primary-backup",
	.version = "1.0.0",
	.description = "fixed primary, f backup acks before a reply; crash "
		       "faults of backups (example plugin)",
	.replica_state_size = sizeof(struct pb_replica),
	.client_state_size = sizeof(struct pb_client),
	.config_check = pb_config_check,
	.replica_init = pb_replica_init,
	.replica_receive = pb_replica_receive,
	.replica_fini = pb_replica_fini,
	.client_init = pb_client_init,
	.client_invoke = pb_client_invoke,
	.client_receive = pb_client_receive,
	.client_fini = pb_client_fini,
};
