/* SPDX-License-Identifier: MIT */
/*
 * oskrd's configuration: a YAML file (libyaml) parsed into a small
 * position-carrying tree (struct oskr_conf), then validated into
 * struct oskr_config. Every error names "file:line:col: message".
 * The schema is documented in docs/config.md and the examples in conf/.
 */
#ifndef OSKR_DAEMON_CONFIG_H
#define OSKR_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <oskr/plugin.h>

/* ---- the YAML tree (struct oskr_conf is opaque to plugins) ---- */

enum oskr__conf_kind {
	OSKR_CONF_SCALAR,
	OSKR_CONF_MAP,
	OSKR_CONF_SEQ,
};

struct oskr_conf {
	enum oskr__conf_kind kind;
	const char *file; /* shared, owned by the tree root */
	unsigned line, column; /* 1-based, of the node's start */
	char *path; /* dotted path for messages, e.g. "protocol.options" */
	char *scalar; /* OSKR_CONF_SCALAR: the text */
	size_t count; /* MAP: pairs; SEQ: items */
	struct oskr_conf **keys; /* MAP: key nodes (scalars) */
	struct oskr_conf **values; /* MAP: values; SEQ: items */
};

/** Parse YAML text into a tree. @p file names the source in messages.
 *  Returns 0, or -EINVAL with *err = "file:line:col: …" (malloc'd). */
int oskr__conf_parse(const char *file, const char *text, size_t len,
		     struct oskr_conf **out, char **err);
int oskr__conf_parse_file(const char *path, struct oskr_conf **out,
			  char **err);
void oskr__conf_free(struct oskr_conf *root);
/** Look up @p key in a MAP node; NULL if absent or not a map. */
const struct oskr_conf *oskr__conf_get(const struct oskr_conf *map,
				       const char *key);

/* The plugin-facing accessors of struct oskr_host (conf_u64, conf_bool,
 * conf_ms, conf_check_keys): errors are logged with oskr__log and the
 * latest one is also kept in this thread's last-error buffer below, so
 * --check-config can show it. */
int oskr__conf_u64(const struct oskr_conf *conf, const char *key,
		   uint64_t min, uint64_t max, uint64_t dflt, uint64_t *out);
int oskr__conf_bool(const struct oskr_conf *conf, const char *key,
		    bool dflt, bool *out);
int oskr__conf_ms(const struct oskr_conf *conf, const char *key,
		  uint64_t min, uint64_t max, uint64_t dflt, uint64_t *out);
int oskr__conf_check_keys(const struct oskr_conf *conf,
			  const char *const *allowed);
/** Read a string; NULL-safe; *out = dflt when absent. */
int oskr__conf_string(const struct oskr_conf *conf, const char *key,
		      const char *dflt, const char **out);
/** The most recent error of the accessors above on this thread
 *  ("" when none since the last clear). Thread-local. */
const char *oskr__conf_last_error(void);
void oskr__conf_clear_last_error(void);

/* The same readers for host code that reports through `char **err`
 * (config validation, apps' options) instead of logging. A YAML null
 * (empty, `~`, `null`) counts as absent. All return 0 or -EINVAL. */
int oskr__conf_errorf(char **err, const struct oskr_conf *node,
		      const char *fmt, ...) OSKR_PRINTF(3, 4);
bool oskr__conf_is_null(const struct oskr_conf *node);
/** "a mapping", "a sequence", "an empty value" or the quoted (shortened)
 *  scalar, for "expected X, got Y"; @p buf needs 64 bytes. */
const char *oskr__conf_describe(const struct oskr_conf *node, char *buf,
				size_t size);
int oskr__conf_node_u64(const struct oskr_conf *node, uint64_t min,
			uint64_t max, uint64_t *out, char **err);
int oskr__conf_read_u64(const struct oskr_conf *conf, const char *key,
			uint64_t min, uint64_t max, uint64_t dflt,
			uint64_t *out, char **err);
int oskr__conf_read_bool(const struct oskr_conf *conf, const char *key,
			 bool dflt, bool *out, char **err);
int oskr__conf_read_ms(const struct oskr_conf *conf, const char *key,
		       uint64_t min, uint64_t max, uint64_t dflt,
		       uint64_t *out, char **err);
int oskr__conf_read_string(const struct oskr_conf *conf, const char *key,
			   const char *dflt, const char **out, char **err);
int oskr__conf_verify_keys(const struct oskr_conf *conf,
			   const char *const *allowed, char **err);

/* ---- the validated configuration ---- */

enum oskr_transport_kind {
	OSKR_TRANSPORT_UDP,
	OSKR_TRANSPORT_DPDK,
	OSKR_TRANSPORT_SIM,
};

struct oskr_config_replica {
	/* UDP: "ip:port" as written; resolved into sockaddr. */
	char *address;
	struct sockaddr_storage sockaddr;
	socklen_t sockaddr_len;
	/* DPDK: "12:34:56:aa:aa:aa%0": MAC and the seed's 7/15-bit id. */
	uint8_t mac[6];
	uint16_t link_id;
	bool has_mac;
	/* Public key PEM (may be a private key file in seed layouts; only
	 * the public half is used). */
	char *public_key;
};

struct oskr_config_dpdk {
	char **eal_args; /* argv-style, NULL terminated (without argv[0]) */
	size_t eal_arg_count;
	char *port_name; /* device name, or NULL to use port_id */
	uint16_t port_id;
	uint16_t rx_queues, tx_queues;
	uint32_t mbuf_count;
	uint16_t burst_size;
	bool has_multicast;
	uint8_t multicast_mac[6];
	uint16_t multicast_id;
	/* idle back-off: spin iterations, then yields, then sleep µs */
	uint32_t idle_spin, idle_yield, idle_sleep_us;
};

/** Default of udp.rx_memory: 256 MiB of received buffers out at once. */
#define OSKR_UDP_RX_MEMORY_DEFAULT (UINT64_C(256) << 20)

struct oskr_config_udp {
	uint32_t rx_threads; /* sockets bound with SO_REUSEPORT, default 1 */
	uint32_t batch; /* recvmmsg/sendmmsg batch, default 32 */
	uint32_t socket_buffer; /* SO_RCVBUF/SO_SNDBUF bytes, 0 = kernel */
	/* Bytes of received buffers handed to the host and not yet
	 * released (queued, or held by the plugin); beyond it datagrams are
	 * dropped as no_buffer. 0 = OSKR_UDP_RX_MEMORY_DEFAULT. */
	uint64_t rx_memory;
};

/** Defaults of the `snapshot:` mapping (docs/config.md). */
#define OSKR_SNAPSHOT_INTERVAL_MS_DEFAULT 1000
#define OSKR_SNAPSHOT_KEEP_FILES_DEFAULT 2

/* When the application snapshot is written to state_dir (docs/operations.md,
 * "Durable state"). Used only with state_dir. */
struct oskr_config_snapshot {
	/* Time-based snapshots, when the app changed, until the plugin
	 * declares its first checkpoint; 0 = only at checkpoints and stop. */
	uint64_t interval_ms;
	uint32_t keep; /* snapshot files kept, >= 1 */
};

struct oskr_config {
	char *file; /* path as given */
	struct oskr_conf *root; /* the parsed tree, owned */

	uint32_t fault_count; /* f */
	uint32_t replica_count; /* n = number of `replicas` entries */
	struct oskr_config_replica *replicas;

	int32_t replica_id; /* -1 when not set (then -i is required) */
	/* Private key path template: "%i" is replaced by the replica id. */
	char *private_key;

	char *protocol; /* plugin name or path (contains '/' or ends .so) */
	const struct oskr_conf *protocol_options; /* may be NULL */

	char *app; /* "null" | "kv" */
	const struct oskr_conf *app_options; /* may be NULL */

	enum oskr_transport_kind transport;
	struct oskr_config_udp udp;
	struct oskr_config_dpdk dpdk;

	uint32_t workers; /* default 2 */
	int *cores; /* CPU ids to pin workers to; NULL = no pinning */
	size_t core_count;
	uint32_t ring_size; /* stage queue slots, power of two, default 65536 */
	uint32_t max_timers; /* timers armed at once per replica, default 65536 */
	/* An rx thread runs a message's tasks itself when every worker
	 * sleeps (oskr__stage_submit_stateless_inline); default true. */
	bool inline_receive;

	char *control_socket; /* NULL = none */
	char *metrics_http; /* "ip:port" ("%i" allowed); NULL = none */
	char *state_dir; /* NULL = none */
	struct oskr_config_snapshot snapshot;
	enum oskr_log_level log_level;
};

/** Load and validate a config file (YAML; a file whose first significant
 *  line is `f N` is read as the seed's plain-text cluster format).
 *  Returns 0, or a negative error with *err = "file:line:col: message". */
int oskr__config_load(const char *path, struct oskr_config **out,
		      char **err);
/** Same, from text already in memory (tests). */
int oskr__config_load_string(const char *file, const char *text,
			     size_t len, struct oskr_config **out,
			     char **err);
void oskr__config_free(struct oskr_config *config);

/** @p template with every "%i" replaced by @p replica_id (malloc'd; NULL
 *  on ENOMEM). Paths and addresses in the config may use it. */
char *oskr__expand_replica_id(const char *template, uint32_t replica_id);

/** The private key path for @p replica_id ("%i" expanded; malloc'd). */
char *oskr__config_private_key_path(const struct oskr_config *config,
				    uint32_t replica_id);

/** Parse "12:34:56:aa:aa:aa%3" into MAC and id. 0 or -EINVAL. */
int oskr__parse_mac_id(const char *text, uint8_t mac[6], uint16_t *id);
/** Parse "ip:port" or "[ip6]:port". 0 or -EINVAL. */
int oskr__parse_ip_port(const char *text, struct sockaddr_storage *out,
			socklen_t *out_len);

#endif
