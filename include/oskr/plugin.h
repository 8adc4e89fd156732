/* SPDX-License-Identifier: MIT */
/**
 * @file oskr/plugin.h
 * @brief The oskr plugin SDK, ABI 1.1: the only header a protocol plugin
 *        needs.
 *
 * A protocol plugin is a shared object that exports one constant descriptor,
 * `struct oskr_plugin`, under the symbol named by OSKR_PLUGIN_SYMBOL
 * (use OSKR_PLUGIN_EXPORT). The host (oskrd, the client library, the sim
 * network, the conformance kit) checks the descriptor's ABI version and size
 * before it calls any plugin code.
 *
 * The host then hands every callback a `struct oskr_ctx *` and the table of
 * host services `struct oskr_host` (OpenSSL-provider style): a plugin never
 * links DPDK, OpenSSL or libyaml, never sees a private key, and never exits
 * the process.
 *
 * ### Stage model
 * Work is split in two kinds of task:
 *  - *stateless* tasks (decode, verify, sign, send) run on any worker
 *    thread, concurrently with each other and with the stateful task;
 *  - *stateful* tasks run one at a time, in the FIFO order they were
 *    submitted, and are the only code that may touch the protocol state.
 * `replica_receive` is a stateless task; timers fire as stateful tasks.
 *
 * ### Ownership
 *  - A received buffer is *borrowed* for the duration of the callback. A
 *    plugin that keeps it (e.g. hands it to a stateful task) takes a
 *    reference with `buf_hold` and later drops it with `buf_release`.
 *  - `buf_alloc` returns a buffer holding one reference, owned by the caller.
 *  - Every `send_*` call *consumes* the caller's reference, on success and
 *    on failure alike.
 *
 * ### Errors
 * Actions return 0 or a negative error code (`-errno`, e.g. -EINVAL,
 * -ENOMEM, -EAGAIN, -ENOTSUP). Predicates return bool. Constructors return
 * an int and fill an out pointer.
 *
 * ### Compatibility rules
 * Structs in this header are append-only. A host loads a plugin built for
 * the same major and a minor less than or equal to its own; it refuses a
 * descriptor whose `size` is smaller than the 1.0 layout. A plugin built
 * against a newer minor can test for a host service at run time with
 * OSKR_HOST_HAS().
 *
 * ### Versions
 *  - 1.0: the first stable ABI.
 *  - 1.1: host services checkpoint_stable and checkpoint_resume (durable
 *    checkpoints) appended to struct oskr_host. A plugin that must still
 *    load on 1.0 hosts declares `.abi_minor = 0` and tests for them with
 *    OSKR_HOST_HAS() (docs/plugin-guide.md).
 */
#ifndef OSKR_PLUGIN_H
#define OSKR_PLUGIN_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** ABI major version: a host refuses a plugin with a different major. */
#define OSKR_ABI_MAJOR 1
/** ABI minor version: a host refuses a plugin with a newer minor. */
#define OSKR_ABI_MINOR 1

/** Name of the exported descriptor symbol the loader looks up. */
#define OSKR_PLUGIN_SYMBOL "oskr_plugin_descriptor"

/** Size of a digest produced by `oskr_host.digest` (SHA-256). */
#define OSKR_DIGEST_SIZE 32
/** Largest signature any host key type produces (DER ECDSA P-256/secp256k1
 *  is at most 72 bytes, Ed25519 64). */
#define OSKR_SIGNATURE_MAX 80
/** Size of an opaque transport address. */
#define OSKR_ADDR_SIZE 32

#if defined(__GNUC__)
#define OSKR_PRINTF(fmt_index, first_arg) \
	__attribute__((format(printf, fmt_index, first_arg)))
#define OSKR_EXPORT __attribute__((visibility("default")))
#else
#define OSKR_PRINTF(fmt_index, first_arg)
#define OSKR_EXPORT
#endif

struct oskr_host;

/**
 * Per-instance host context (one replica or one client). Only the first
 * member is public: the host keeps its private instance data behind it.
 * Plugins call services as `ctx->host->send_to_all(ctx, buf)`.
 */
struct oskr_ctx {
	/** The host services table; constant for the instance's lifetime. */
	const struct oskr_host *host;
};
/** Opaque view of a YAML mapping: the plugin's `protocol.options`. */
struct oskr_conf;

/**
 * A message buffer. The first two members are public; the host keeps
 * private bookkeeping (reference count, backing mbuf…) behind them, so a
 * plugin never allocates, copies or frees a `struct oskr_buf` itself.
 */
struct oskr_buf {
	/** Start of the message. Writable only for a buffer from `buf_alloc`
	 *  that has not been sent yet; received buffers are read-only. */
	uint8_t *data;
	/** Length of the message in bytes. After `buf_alloc(cap)` it is set
	 *  to cap; the writer lowers it to what it wrote before sending. */
	uint32_t len;
	/** Capacity of `data` in bytes (>= len). */
	uint32_t capacity;
};

/**
 * A transport address: opaque bytes that identify a peer (a client or a
 * replica) for the transport in use. Plain old data: it may be copied,
 * compared with memcmp, stored and carried inside protocol messages (e.g.
 * a backup relaying a client's request to the primary keeps the client's
 * address so the primary can reply directly).
 */
struct oskr_addr {
	uint8_t bytes[OSKR_ADDR_SIZE];
};

/** Where a received message came from. */
struct oskr_msg {
	/** The message; borrowed for the duration of the callback. */
	struct oskr_buf *buf;
	/** Source transport address; reply to a client with send_to_client. */
	struct oskr_addr from;
	/** Replica id whose configured address sent this message, or -1 when
	 *  the source is not a configured replica (a client). This is a
	 *  routing hint taken from the transport, not authentication:
	 *  protocols that need authenticity verify a signature. */
	int32_t from_replica;
};

/** Log levels, most severe first. */
enum oskr_log_level {
	OSKR_LOG_ERROR = 0,
	OSKR_LOG_WARN = 1,
	OSKR_LOG_INFO = 2,
	OSKR_LOG_DEBUG = 3,
};

/** Well-known counters every plugin should maintain (see `count`). Plugins
 *  may also use their own names. */
#define OSKR_COUNTER_COMMITS "commits"
#define OSKR_COUNTER_VIEW_CHANGES "view_changes"
#define OSKR_COUNTER_CHECKPOINTS "checkpoints"
/** Drops are counted as "drop_<reason>", e.g. "drop_bad_signature". */
#define OSKR_COUNTER_DROP_PREFIX "drop_"

/** Handle of an armed timer; 0 is never a valid handle. */
typedef uint64_t oskr_timer_id;

/** A task body. `state` is the instance state the host allocated
 *  (`replica_state_size` / `client_state_size` bytes, zeroed). */
typedef void (*oskr_task_fn)(struct oskr_ctx *ctx, void *state, void *arg);

/** Static facts about this instance, valid from init to fini. */
struct oskr_instance_info {
	/** Size of this struct as the host filled it. */
	uint32_t size;
	/** Number of replicas n. */
	uint32_t replica_count;
	/** Fault threshold f from config (n >= 3f+1 for BFT plugins). */
	uint32_t fault_count;
	/** This replica's id in [0, n), or -1 for a client. */
	int32_t replica_id;
	/** A 64-bit client id unique in the cluster (clients only; 0 for
	 *  replicas). */
	uint64_t client_id;
	/** Largest message a transport carries (bytes). */
	uint32_t max_message;
	/** Number of worker threads the host runs stateless tasks on. */
	uint32_t worker_count;
};

/**
 * Host services, passed to every plugin callback through `ctx`'s host.
 * Functions marked "any thread" may be called from stateless and stateful
 * tasks alike. Functions marked "stateful" may be called only from a
 * stateful task (which includes timer callbacks and replica/client init).
 */
struct oskr_host {
	/** Size of this table as compiled into the host; see OSKR_HOST_HAS. */
	uint32_t size;
	/** ABI of the host. */
	uint16_t abi_major, abi_minor;

	/* ---- identity ---- */

	/** Static facts about the instance. Any thread. Never NULL. */
	const struct oskr_instance_info *(*info)(struct oskr_ctx *ctx);

	/* ---- buffers ---- */

	/** Allocate a send buffer of @p capacity bytes; *out holds one
	 *  reference owned by the caller. Any thread.
	 *  @return 0, -EMSGSIZE if capacity > max_message, -ENOMEM. */
	int (*buf_alloc)(struct oskr_ctx *ctx, size_t capacity,
			 struct oskr_buf **out);
	/** Take one more reference on @p buf (received or allocated). Any
	 *  thread. */
	void (*buf_hold)(struct oskr_buf *buf);
	/** Drop one reference; the host frees the buffer at zero. Any
	 *  thread. */
	void (*buf_release)(struct oskr_buf *buf);

	/* ---- messaging (every send consumes the caller's reference) ---- */

	/** Send @p buf to replica @p replica_id (which may be this replica:
	 *  the message loops back through the receive path). Any thread.
	 *  @return 0 when queued (delivery is best effort, like UDP),
	 *  -EINVAL for a bad id. */
	int (*send_to_replica)(struct oskr_ctx *ctx, uint32_t replica_id,
			       struct oskr_buf *buf);
	/** Send @p buf to every replica except this one (clients: to every
	 *  replica). Any thread. */
	int (*send_to_all)(struct oskr_ctx *ctx, struct oskr_buf *buf);
	/** Send @p buf to the peer at @p addr (typically a client). Any
	 *  thread. */
	int (*send_to_addr)(struct oskr_ctx *ctx, const struct oskr_addr *addr,
			    struct oskr_buf *buf);

	/* ---- crypto: keys never leave the host ---- */

	/** Bytes of a signature this instance produces (<= OSKR_SIGNATURE_MAX).
	 *  Any thread. */
	size_t (*signature_size)(struct oskr_ctx *ctx);
	/** Sign @p len bytes at @p data with this replica's private key into
	 *  @p sig (room for OSKR_SIGNATURE_MAX bytes); *sig_len gets the
	 *  length. Any thread (runs in the caller: call from a stateless
	 *  task to sign in parallel). @return 0, -ENOKEY for a client. */
	int (*sign)(struct oskr_ctx *ctx, const void *data, size_t len,
		    uint8_t *sig, size_t *sig_len);
	/** Verify that @p sig is replica @p replica_id's signature over
	 *  @p data. Any thread. */
	bool (*verify)(struct oskr_ctx *ctx, uint32_t replica_id,
		       const void *data, size_t len, const uint8_t *sig,
		       size_t sig_len);
	/** SHA-256 of @p len bytes at @p data into @p out. Any thread. */
	void (*digest)(struct oskr_ctx *ctx, const void *data, size_t len,
		       uint8_t out[OSKR_DIGEST_SIZE]);

	/* ---- stage: tasks and timers ---- */

	/** Queue @p fn(ctx, state, arg) to run on any worker, possibly
	 *  concurrently with other tasks. Any thread. If it fails, fn is
	 *  never called (the caller still owns arg). @return 0 or -EAGAIN
	 *  when the queue is full. */
	int (*submit_stateless)(struct oskr_ctx *ctx, oskr_task_fn fn,
				void *arg);
	/** Queue @p fn to run as a stateful task: after every stateful task
	 *  submitted before it from this thread, never concurrently with
	 *  another stateful task. Any thread. If it fails, fn is never
	 *  called. @return 0 or -EAGAIN. */
	int (*submit_stateful)(struct oskr_ctx *ctx, oskr_task_fn fn,
			       void *arg);
	/** Arm a one-shot timer: after @p delay_ns, @p fn runs as a stateful
	 *  task. Stateful only. *out gets a handle for timer_cancel. */
	int (*timer_arm)(struct oskr_ctx *ctx, uint64_t delay_ns,
			 oskr_task_fn fn, void *arg, oskr_timer_id *out);
	/** Cancel a timer. Once this returns (from a stateful task), fn will
	 *  not run. Cancelling a fired or unknown timer is a no-op that
	 *  returns -ENOENT. Stateful only. */
	int (*timer_cancel)(struct oskr_ctx *ctx, oskr_timer_id timer);
	/** Monotonic time in nanoseconds (virtual time in the sim). Any
	 *  thread. */
	uint64_t (*now_ns)(struct oskr_ctx *ctx);

	/* ---- the replicated application (replicas only; stateful) ---- */

	/** Execute one operation on the application, in the order the
	 *  protocol decided. The result is written to @p result (capacity
	 *  @p result_capacity), its length to *result_len. Stateful only.
	 *  @return 0, -ENOSPC if the result does not fit, -ENOTSUP on a
	 *  client. */
	int (*app_execute)(struct oskr_ctx *ctx, const void *op, size_t op_len,
			   void *result, size_t result_capacity,
			   size_t *result_len);
	/** Serialize the application state. *out is a host-allocated blob
	 *  of *out_len bytes that the plugin frees with `blob_free`.
	 *  Stateful only. */
	int (*app_snapshot)(struct oskr_ctx *ctx, void **out, size_t *out_len);
	/** Replace the application state with a snapshot from app_snapshot
	 *  (possibly taken on another replica). Stateful only.
	 *  @return 0, -EINVAL if the snapshot is malformed (state unchanged). */
	int (*app_restore)(struct oskr_ctx *ctx, const void *snapshot,
			   size_t len);
	/** Free a blob returned by the host. Any thread. */
	void (*blob_free)(struct oskr_ctx *ctx, void *blob);

	/* ---- clients only ---- */

	/** Report the final result of request @p request_number to the
	 *  application that invoked it. A second completion of the same
	 *  request is ignored. Stateful only, client only. */
	int (*client_complete)(struct oskr_ctx *ctx, uint64_t request_number,
			       const void *result, size_t len);

	/* ---- configuration (the plugin's `protocol.options` mapping) ---- */

	/** The plugin's options mapping, or NULL when the config has none.
	 *  Any thread. */
	const struct oskr_conf *(*conf)(struct oskr_ctx *ctx);
	/** Read unsigned integer @p key from @p conf into *out, checking
	 *  min <= value <= max; *out = dflt when the key is absent. On a bad
	 *  value, logs "file:line:col: protocol.options.KEY: why" and
	 *  returns -EINVAL. @p conf may be NULL (all keys absent). */
	int (*conf_u64)(const struct oskr_conf *conf, const char *key,
			uint64_t min, uint64_t max, uint64_t dflt,
			uint64_t *out);
	/** Read boolean @p key; same conventions as conf_u64. */
	int (*conf_bool)(const struct oskr_conf *conf, const char *key,
			 bool dflt, bool *out);
	/** Read a duration in milliseconds (`250` or `250ms` or `2s`); same
	 *  conventions as conf_u64. */
	int (*conf_ms)(const struct oskr_conf *conf, const char *key,
		       uint64_t min, uint64_t max, uint64_t dflt,
		       uint64_t *out);
	/** Refuse keys not in the NULL-terminated @p allowed list: logs
	 *  "file:line:col: unknown key 'x' in protocol.options (expected
	 *  one of …)" and returns -EINVAL. */
	int (*conf_check_keys)(const struct oskr_conf *conf,
			       const char *const *allowed);

	/* ---- observability ---- */

	/** printf-style log line, prefixed by the host with the plugin name
	 *  and instance. Any thread. */
	void (*log)(struct oskr_ctx *ctx, enum oskr_log_level level,
		    const char *fmt, ...) OSKR_PRINTF(3, 4);
	/** Add @p delta to the named counter (created on first use; names
	 *  are [a-z0-9_], at most 63 bytes). Any thread. */
	void (*count)(struct oskr_ctx *ctx, const char *name, uint64_t delta);
	/** Publish protocol status for `oskrctl status` and systemd STATUS=:
	 *  view, leader, last committed and last executed op. Any thread. */
	void (*set_status)(struct oskr_ctx *ctx, uint64_t view,
			   int32_t leader, uint64_t committed,
			   uint64_t executed);

	/* ---- durable checkpoints (ABI 1.1: test with OSKR_HOST_HAS) ---- */

	/** Declare a stable checkpoint: the state after executing op
	 *  @p op_number is final and may be persisted (PBFT: 2f+1 matching
	 *  CHECKPOINT messages, §4.3; HotStuff: a committed block, §4.3 of
	 *  the HotStuff paper). The host writes, asynchronously and
	 *  atomically, the application snapshot @p app (@p app_len bytes,
	 *  as app_snapshot returned it at that op) together with
	 *  @p protocol_state, an opaque blob this plugin gets back from
	 *  checkpoint_resume after a restart. When @p app is NULL the host
	 *  snapshots the application now, which must then hold exactly the
	 *  state after @p op_number. Both blobs are copied before the call
	 *  returns. A host without a state directory ignores the call (and
	 *  returns 0). Once a plugin has declared a checkpoint, the host
	 *  stops its own time-based snapshots for it. Stateful only.
	 *  @return 0, -ENOMEM (nothing persisted), -ENOTSUP on a client. */
	int (*checkpoint_stable)(struct oskr_ctx *ctx, uint64_t op_number,
				 const void *app, size_t app_len,
				 const void *protocol_state,
				 size_t protocol_len);
	/** The checkpoint this replica restarts from. When, before
	 *  replica_init, the host restored a snapshot that this protocol
	 *  wrote with checkpoint_stable, this sets *op_number and
	 *  *protocol_state / *protocol_len (host-owned, valid until
	 *  replica_init returns) and returns 0: the application already holds
	 *  the state after *op_number. Returns -ENOENT when there is none (no
	 *  state directory, no valid snapshot, one written by another
	 *  protocol or at a graceful stop): start from op 0 on top of
	 *  whatever the application holds. Call from replica_init only. */
	int (*checkpoint_resume)(struct oskr_ctx *ctx, uint64_t *op_number,
				 const void **protocol_state,
				 size_t *protocol_len);
};

/** True when the host table @p host has member @p member (a member added
 *  in a later minor than the host was built with is absent). */
#define OSKR_HOST_HAS(host, member)                                      \
	((host)->size >= offsetof(struct oskr_host, member) +            \
				 sizeof((host)->member) &&               \
	 (host)->member != NULL)

/**
 * The plugin descriptor. Export exactly one, constant, with
 * OSKR_PLUGIN_EXPORT. Callbacks are called by the host only; `ctx->host`
 * is the host services table.
 */
struct oskr_plugin {
	/** Must be OSKR_ABI_MAJOR as the plugin was compiled. */
	uint16_t abi_major;
	/** Must be OSKR_ABI_MINOR as the plugin was compiled. */
	uint16_t abi_minor;
	/** sizeof(struct oskr_plugin) as the plugin was compiled. */
	uint32_t size;
	/** Protocol name, e.g. "pbft" ([a-z0-9_-]). */
	const char *name;
	/** Plugin version string, e.g. "1.2.0". */
	const char *version;
	/** One-line description for `oskrd --list-plugins` and logs. */
	const char *description;

	/** Bytes of zeroed state the host allocates for each replica. */
	size_t replica_state_size;
	/** Bytes of zeroed state the host allocates for each client. */
	size_t client_state_size;

	/**
	 * Validate the plugin's options (`protocol.options`) and the cluster
	 * shape without starting anything (used by `oskrd --check-config`).
	 * May be NULL. Called on the main thread with no instance running;
	 * use host->conf_* to read and report. @return 0 or -EINVAL.
	 */
	int (*config_check)(const struct oskr_host *host,
			    const struct oskr_conf *conf,
			    uint32_t replica_count, uint32_t fault_count);

	/* ---- replica side ---- */

	/** Initialise a replica. Runs as the first stateful task, before any
	 *  message is delivered. @return 0 or a negative error (the host
	 *  then stops without calling replica_fini). */
	int (*replica_init)(struct oskr_ctx *ctx, void *state);
	/** A message arrived. Runs as a stateless task on any worker,
	 *  concurrently with other receives and with the stateful task: it
	 *  may read only what replica_init set up and never changes (config,
	 *  ids). Decode and verify here, then submit_stateful. */
	void (*replica_receive)(struct oskr_ctx *ctx, void *state,
				const struct oskr_msg *msg);
	/** Stop: release held buffers and timers. Runs as the last stateful
	 *  task; no callback runs after it. May be NULL. */
	void (*replica_fini)(struct oskr_ctx *ctx, void *state);

	/* ---- client side (runs inside the client library) ---- */

	/** Initialise a client instance. Stateful. May be NULL if the
	 *  plugin has no client side (then clients cannot use it). */
	int (*client_init)(struct oskr_ctx *ctx, void *state);
	/** Start request @p request_number (strictly increasing per client;
	 *  at most one outstanding). @p op is borrowed. Stateful. The
	 *  plugin sends it, arms its retransmission timer and later calls
	 *  host->client_complete exactly once. If the application gave up
	 *  on the previous request (timeout), a new invoke supersedes it:
	 *  the plugin drops the old one's state and timers. */
	int (*client_invoke)(struct oskr_ctx *ctx, void *state,
			     uint64_t request_number, const void *op,
			     size_t op_len);
	/** A reply arrived at the client. Stateful (clients run their
	 *  stateless and stateful work on one thread). */
	void (*client_receive)(struct oskr_ctx *ctx, void *state,
			       const struct oskr_msg *msg);
	/** Stop the client. May be NULL. */
	void (*client_fini)(struct oskr_ctx *ctx, void *state);
};

/**
 * Declare the plugin's exported descriptor:
 * @code
 * OSKR_PLUGIN_EXPORT = { OSKR_PLUGIN_HEADER, .name = "x", ... };
 * @endcode
 */
#define OSKR_PLUGIN_EXPORT                                                \
	extern OSKR_EXPORT const struct oskr_plugin oskr_plugin_descriptor; \
	OSKR_EXPORT const struct oskr_plugin oskr_plugin_descriptor

/** Fills the version and size fields of a descriptor. */
#define OSKR_PLUGIN_HEADER                                                \
	.abi_major = OSKR_ABI_MAJOR, .abi_minor = OSKR_ABI_MINOR,         \
	.size = sizeof(struct oskr_plugin)

#ifdef __cplusplus
}
#endif

#endif /* OSKR_PLUGIN_H */
