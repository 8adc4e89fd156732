/* SPDX-License-Identifier: MIT */
/*
 * oskrd's configuration: the YAML tree, the schema, the seed's plain-text
 * cluster files and the plugin-facing accessors. Every error case checks
 * the exact "file:line:col:" prefix and the part of the message an
 * operator needs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/config.h"
#include "daemon/log.h"

#define DATA "test/data/config/"

/* ---- helpers ---- */

static void assert_error_text(int rc, char *err, const char *prefix,
			      const char *part)
{
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
		      "expected prefix \"%s\", got \"%s\"", prefix, err);
	ck_assert_msg(strstr(err, part) != NULL,
		      "expected \"%s\" in \"%s\"", part, err);
	free(err);
}

static void assert_file_error(const char *file, const char *prefix,
			      const char *part)
{
	struct oskr_config *config = (void *)1;
	char *err = NULL;
	int rc = oskr__config_load(file, &config, &err);
	ck_assert_ptr_null(config);
	assert_error_text(rc, err, prefix, part);
}

static void assert_text_error(const char *text, const char *prefix,
			      const char *part)
{
	struct oskr_config *config = (void *)1;
	char *err = NULL;
	int rc = oskr__config_load_string("inline.yaml", text, strlen(text),
					  &config, &err);
	ck_assert_ptr_null(config);
	assert_error_text(rc, err, prefix, part);
}

static struct oskr_config *load_text(const char *file, const char *text)
{
	struct oskr_config *config = NULL;
	char *err = NULL;
	int rc = oskr__config_load_string(file, text, strlen(text), &config,
					  &err);
	ck_assert_msg(rc == 0, "unexpected error: %s", err ? err : "?");
	ck_assert_ptr_nonnull(config);
	return config;
}

/* A valid cluster head to which the inline cases append one section. */
#define CLUSTER_HEAD                          \
	"cluster:\n"                          \
	"  f: 0\n"                            \
	"  replicas:\n"                       \
	"    - address: 127.0.0.1:7001\n"     \
	"      public_key: replica-0.pub\n"

static uint16_t port_of(const struct sockaddr_storage *address)
{
	if (address->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)address)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)address)->sin6_port);
}

/* ---- valid files ---- */

START_TEST(test_valid_file_all_fields)
{
	struct oskr_config *config = NULL;
	char *err = NULL;
	int rc = oskr__config_load(DATA "valid.yaml", &config, &err);
	ck_assert_msg(rc == 0, "%s", err ? err : "?");
	ck_assert_str_eq(config->file, DATA "valid.yaml");
	ck_assert_ptr_nonnull(config->root);
	ck_assert_uint_eq(config->fault_count, 1);
	ck_assert_uint_eq(config->replica_count, 4);

	const struct oskr_config_replica *r = config->replicas;
	ck_assert_str_eq(r[0].address, "127.0.0.1:7001");
	ck_assert_int_eq(r[0].sockaddr.ss_family, AF_INET);
	ck_assert_uint_eq(r[0].sockaddr_len, sizeof(struct sockaddr_in));
	ck_assert_uint_eq(port_of(&r[0].sockaddr), 7001);
	ck_assert(!r[0].has_mac);
	/* Relative key paths are relative to the config file's directory;
	 * absolute ones are kept. */
	ck_assert_str_eq(r[0].public_key, DATA "keys/replica-0.pub");
	ck_assert_str_eq(r[1].public_key, "/etc/oskr/replica-1.pub");
	ck_assert_int_eq(r[2].sockaddr.ss_family, AF_INET6);
	ck_assert_uint_eq(r[2].sockaddr_len, sizeof(struct sockaddr_in6));
	ck_assert_uint_eq(port_of(&r[2].sockaddr), 7003);
	ck_assert(r[3].has_mac);
	const uint8_t mac[6] = { 0x12, 0x34, 0x56, 0xaa, 0xaa, 0xaa };
	ck_assert_mem_eq(r[3].mac, mac, 6);
	ck_assert_uint_eq(r[3].link_id, 3);

	ck_assert_int_eq(config->replica_id, 2);
	ck_assert_str_eq(config->private_key, DATA "keys/replica-%i.key");
	char *key = oskr__config_private_key_path(config, 2);
	ck_assert_str_eq(key, DATA "keys/replica-2.key");
	free(key);

	ck_assert_str_eq(config->protocol, "pbft");
	ck_assert_ptr_nonnull(config->protocol_options);
	ck_assert_int_eq(config->protocol_options->kind, OSKR_CONF_MAP);
	ck_assert_str_eq(config->protocol_options->path, "protocol.options");
	ck_assert_str_eq(config->app, "kv");
	ck_assert_ptr_nonnull(config->app_options);
	const struct oskr_conf *capacity =
		oskr__conf_get(config->app_options, "capacity");
	ck_assert_ptr_nonnull(capacity);
	ck_assert_str_eq(capacity->scalar, "1000");
	ck_assert_uint_eq(capacity->line, 23);
	ck_assert_uint_eq(capacity->column, 15);

	ck_assert_int_eq(config->transport, OSKR_TRANSPORT_UDP);
	ck_assert_uint_eq(config->udp.rx_threads, 2);
	ck_assert_uint_eq(config->udp.batch, 16);
	ck_assert_uint_eq(config->udp.socket_buffer, 4194304);
	ck_assert_uint_eq(config->workers, 3);
	ck_assert_uint_eq(config->core_count, 3);
	ck_assert_int_eq(config->cores[0], 0);
	ck_assert_int_eq(config->cores[2], 1);
	ck_assert_uint_eq(config->ring_size, 1024);
	ck_assert_str_eq(config->control_socket, "/run/oskr/oskrd-2.sock");
	ck_assert_str_eq(config->state_dir, "/var/lib/oskr");
	ck_assert_int_eq(config->log_level, OSKR_LOG_DEBUG);
	oskr__config_free(config);
}
END_TEST

START_TEST(test_valid_dpdk_file)
{
	struct oskr_config *config = NULL;
	char *err = NULL;
	int rc = oskr__config_load(DATA "dpdk.yaml", &config, &err);
	ck_assert_msg(rc == 0, "%s", err ? err : "?");
	ck_assert_int_eq(config->transport, OSKR_TRANSPORT_DPDK);
	ck_assert_uint_eq(config->replica_count, 2);
	ck_assert(config->replicas[1].has_mac);
	ck_assert_uint_eq(config->replicas[1].link_id, 1);
	ck_assert_ptr_null(config->replicas[1].address);
	ck_assert_str_eq(config->protocol, DATA "plugins/custom.so");
	ck_assert_ptr_null(config->protocol_options);

	const struct oskr_config_dpdk *dpdk = &config->dpdk;
	ck_assert_uint_eq(dpdk->eal_arg_count, 4);
	ck_assert_str_eq(dpdk->eal_args[0], "-l");
	ck_assert_str_eq(dpdk->eal_args[1], "0");
	ck_assert_str_eq(dpdk->eal_args[3], "--vdev=net_memif0,role=server");
	ck_assert_ptr_null(dpdk->eal_args[4]);
	ck_assert_str_eq(dpdk->port_name, "net_memif0");
	ck_assert_uint_eq(dpdk->rx_queues, 2);
	ck_assert_uint_eq(dpdk->tx_queues, 3);
	ck_assert_uint_eq(dpdk->mbuf_count, 4095);
	ck_assert_uint_eq(dpdk->burst_size, 64);
	ck_assert_uint_eq(dpdk->idle_spin, 10);
	ck_assert_uint_eq(dpdk->idle_yield, 20);
	ck_assert_uint_eq(dpdk->idle_sleep_us, 30);
	ck_assert(dpdk->has_multicast);
	const uint8_t multicast[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 };
	ck_assert_mem_eq(dpdk->multicast_mac, multicast, 6);
	ck_assert_uint_eq(dpdk->multicast_id, 255);
	oskr__config_free(config);
}
END_TEST

START_TEST(test_defaults)
{
	struct oskr_config *config = NULL;
	char *err = NULL;
	int rc = oskr__config_load(DATA "minimal.yaml", &config, &err);
	ck_assert_msg(rc == 0, "%s", err ? err : "?");
	ck_assert_int_eq(config->replica_id, -1);
	ck_assert_ptr_null(config->private_key);
	ck_assert_ptr_null(oskr__config_private_key_path(config, 0));
	ck_assert_ptr_null(config->protocol);
	ck_assert_str_eq(config->app, "null");
	ck_assert_ptr_null(config->app_options);
	ck_assert_int_eq(config->transport, OSKR_TRANSPORT_UDP);
	ck_assert_uint_eq(config->udp.rx_threads, 1);
	ck_assert_uint_eq(config->udp.batch, 32);
	ck_assert_uint_eq(config->udp.socket_buffer, 0);
	ck_assert_uint_eq(config->udp.rx_memory, OSKR_UDP_RX_MEMORY_DEFAULT);
	ck_assert_uint_eq(config->dpdk.rx_queues, 1);
	ck_assert_uint_eq(config->dpdk.tx_queues, 0);
	ck_assert_uint_eq(config->dpdk.mbuf_count, 8191);
	ck_assert_uint_eq(config->dpdk.burst_size, 32);
	ck_assert_uint_eq(config->dpdk.idle_spin, 1000);
	ck_assert_uint_eq(config->dpdk.idle_yield, 100);
	ck_assert_uint_eq(config->dpdk.idle_sleep_us, 50);
	ck_assert_uint_eq(config->workers, 2);
	ck_assert_ptr_null(config->cores);
	ck_assert_uint_eq(config->ring_size, 65536);
	ck_assert_uint_eq(config->max_timers, 65536);
	ck_assert(config->inline_receive);
	ck_assert_ptr_null(config->control_socket);
	ck_assert_ptr_null(config->state_dir);
	ck_assert_uint_eq(config->snapshot.interval_ms, 1000);
	ck_assert_uint_eq(config->snapshot.keep, 2);
	ck_assert_int_eq(config->log_level, OSKR_LOG_INFO);
	oskr__config_free(config);
}
END_TEST

START_TEST(test_snapshot_settings)
{
	struct oskr_config *config = load_text(
		"inline.yaml", CLUSTER_HEAD "state_dir: /var/lib/oskr\n"
					    "snapshot:\n"
					    "  interval: 2.5s\n"
					    "  keep: 5\n");
	ck_assert_uint_eq(config->snapshot.interval_ms, 2500);
	ck_assert_uint_eq(config->snapshot.keep, 5);
	oskr__config_free(config);

	/* 0 = only at checkpoints and stop; an absent key keeps its
	 * default; an empty mapping or value is all defaults */
	config = load_text("inline.yaml",
			   CLUSTER_HEAD "snapshot: {interval: 0}\n");
	ck_assert_uint_eq(config->snapshot.interval_ms, 0);
	ck_assert_uint_eq(config->snapshot.keep, 2);
	oskr__config_free(config);
	config = load_text("inline.yaml", CLUSTER_HEAD "snapshot: {keep: 1}\n");
	ck_assert_uint_eq(config->snapshot.interval_ms, 1000);
	ck_assert_uint_eq(config->snapshot.keep, 1);
	oskr__config_free(config);
	config = load_text("inline.yaml", CLUSTER_HEAD "snapshot: {}\n");
	ck_assert_uint_eq(config->snapshot.interval_ms, 1000);
	oskr__config_free(config);
	config = load_text("inline.yaml", CLUSTER_HEAD "snapshot:\n");
	ck_assert_uint_eq(config->snapshot.keep, 2);
	oskr__config_free(config);
}
END_TEST

START_TEST(test_example_configs_load)
{
	static const char *const files[] = { "conf/unreplicated.yaml",
					     "conf/pbft.yaml",
					     "conf/hotstuff.yaml" };
	static const char *const protocols[] = { "unreplicated", "pbft",
						 "hotstuff" };
	for (size_t i = 0; i < 3; i++) {
		struct oskr_config *config = NULL;
		char *err = NULL;
		int rc = oskr__config_load(files[i], &config, &err);
		ck_assert_msg(rc == 0, "%s", err ? err : "?");
		ck_assert_str_eq(config->protocol, protocols[i]);
		ck_assert_uint_eq(config->replica_count, i == 0 ? 1 : 4);
		ck_assert_uint_eq(config->fault_count, i == 0 ? 0 : 1);
		ck_assert_int_eq(config->transport, OSKR_TRANSPORT_UDP);
		ck_assert_str_eq(config->replicas[0].public_key,
				 "conf/keys/replica-0.pub");
		char *key = oskr__config_private_key_path(config, 0);
		ck_assert_str_eq(key, "conf/keys/replica-0.key");
		free(key);
		oskr__config_free(config);
	}
}
END_TEST

START_TEST(test_inline_variants_accepted)
{
	/* transport as a scalar; protocol and app as scalars; eal as one
	 * string split on blanks; a numeric dpdk port; a replica sharing a
	 * MAC with another under a different link id. */
	struct oskr_config *config = load_text(
		"dir/inline.yaml",
		"cluster:\n"
		"  f: 0\n"
		"  replicas:\n"
		"    - {mac: '12:34:56:aa:aa:aa%0', public_key: k0}\n"
		"    - {mac: '12:34:56:aa:aa:aa%1', public_key: k1}\n"
		"protocol: {name: plugins/x.so, options: ~}\n"
		"app: ~\n"
		"transport:\n"
		"  kind: dpdk\n"
		"  eal: '-l 0  --no-pci\t--no-huge'\n"
		"  port: 1\n"
		"inline_receive: off\n"
		"metrics_http: '[::1]:946%i'\n"
		"replica: {id: 1, private_key: /abs/%i/r-%i.pem}\n");
	ck_assert(!config->inline_receive);
	ck_assert_str_eq(config->metrics_http, "[::1]:946%i");
	ck_assert_int_eq(config->transport, OSKR_TRANSPORT_DPDK);
	ck_assert_uint_eq(config->dpdk.eal_arg_count, 4);
	ck_assert_str_eq(config->dpdk.eal_args[2], "--no-pci");
	ck_assert_str_eq(config->dpdk.eal_args[3], "--no-huge");
	ck_assert_ptr_null(config->dpdk.port_name);
	ck_assert_uint_eq(config->dpdk.port_id, 1);
	ck_assert_str_eq(config->protocol, "dir/plugins/x.so");
	ck_assert_ptr_null(config->protocol_options);
	ck_assert_str_eq(config->app, "null");
	ck_assert_str_eq(config->replicas[0].public_key, "dir/k0");
	char *key = oskr__config_private_key_path(config, 17);
	ck_assert_str_eq(key, "/abs/17/r-17.pem");
	free(key);
	oskr__config_free(config);

	config = load_text("inline.yaml", CLUSTER_HEAD "transport: sim\n"
						   "protocol: my.so\n");
	ck_assert_int_eq(config->transport, OSKR_TRANSPORT_SIM);
	/* A bare "x.so" stays a path, not a library search. */
	ck_assert_str_eq(config->protocol, "./my.so");
	oskr__config_free(config);
}
END_TEST

/* ---- schema errors from files ---- */

struct file_case {
	const char *file;
	const char *prefix;
	const char *part;
};

static const struct file_case file_cases[] = {
	{ DATA "missing_f.yaml", DATA "missing_f.yaml:2:3: ",
	  "cluster: missing required key 'f'" },
	{ DATA "f_not_int.yaml", DATA "f_not_int.yaml:2:6: ",
	  "cluster.f: expected a non-negative integer, got 'one'" },
	{ DATA "cluster_seq.yaml", DATA "cluster_seq.yaml:2:3: ",
	  "cluster: expected a mapping, got a sequence" },
	{ DATA "unknown_key.yaml", DATA "unknown_key.yaml:6:3: ",
	  "unknown key 'replica_count' in cluster (expected one of f, replicas, multicast)" },
	{ DATA "bad_address_port.yaml", DATA "bad_address_port.yaml:4:16: ",
	  "cluster.replicas[0].address: bad address '127.0.0.1:70001': the port must be a number in [0, 65535]" },
	{ DATA "bad_mac.yaml", DATA "bad_mac.yaml:4:12: ",
	  "cluster.replicas[0].mac: bad MAC%id '12:34:56:aa:aa%0'" },
	{ DATA "duplicate_replica.yaml",
	  DATA "duplicate_replica.yaml:8:16: ",
	  "duplicate replica: 127.0.0.1:7001 is also the address of replica 0" },
	{ DATA "f_too_large.yaml", DATA "f_too_large.yaml:2:6: ",
	  "f = 1 is too large for n = 2 replicas" },
	{ DATA "replica_id.yaml", DATA "replica_id.yaml:7:7: ",
	  "replica.id: 1 is not a replica of this cluster (n = 1" },
	{ DATA "log_level.yaml", DATA "log_level.yaml:6:12: ",
	  "log_level: expected one of error, warn, info, debug, got 'verbose'" },
	{ DATA "ring_size.yaml", DATA "ring_size.yaml:6:12: ",
	  "ring_size: 1000 is not a power of two" },
	{ DATA "syntax.yaml", DATA "syntax.yaml:4:9: ",
	  "did not find expected ',' or ']' (while parsing a flow sequence at line 3, column 13)" },
	{ DATA "empty.yaml", DATA "empty.yaml:1:1: ", "empty configuration" },
	{ DATA "comments_only.yaml", DATA "comments_only.yaml:1:1: ",
	  "empty configuration" },
	{ DATA "duplicate_key.yaml", DATA "duplicate_key.yaml:6:3: ",
	  "duplicate key 'f' in cluster (first at line 2, column 3)" },
	{ DATA "anchor.yaml", DATA "anchor.yaml:2:6: ",
	  "YAML anchors (&faults) are not supported" },
	{ DATA "seed_bad.config", DATA "seed_bad.config:3:9: ",
	  "bad replica '12:34:56:aa:aa:zz%1'" },
};

START_TEST(test_file_errors)
{
	const struct file_case *c = &file_cases[_i];
	assert_file_error(c->file, c->prefix, c->part);
}
END_TEST

/* ---- schema errors inline ---- */

struct text_case {
	const char *text;
	const char *prefix;
	const char *part;
};

static const struct text_case text_cases[] = {
	/* addresses */
	{ "cluster:\n  f: 0\n  replicas:\n    - address: 127.0.0.1\n"
	  "      public_key: k\n",
	  "inline.yaml:4:16: ", "bad address '127.0.0.1': missing ':port'" },
	{ "cluster:\n  f: 0\n  replicas:\n    - address: 300.1.1.1:7001\n"
	  "      public_key: k\n",
	  "inline.yaml:4:16: ", "not an IPv4 address" },
	{ "cluster:\n  f: 0\n  replicas:\n    - address: localhost:7001\n"
	  "      public_key: k\n",
	  "inline.yaml:4:16: ", "host names are not resolved" },
	{ "cluster:\n  f: 0\n  replicas:\n    - address: '::1:7001'\n"
	  "      public_key: k\n",
	  "inline.yaml:4:16: ", "needs brackets" },
	{ "cluster:\n  f: 0\n  replicas:\n    - address: '127.0.0.1:'\n"
	  "      public_key: k\n",
	  "inline.yaml:4:16: ", "missing port number" },
	{ "cluster:\n  f: 0\n  replicas:\n    - address: 127.0.0.1:0\n"
	  "      public_key: k\n",
	  "inline.yaml:4:16: ", "port 0 cannot receive" },
	{ "cluster:\n  f: 0\n  replicas:\n    - address: '[::1:7001'\n"
	  "      public_key: k\n",
	  "inline.yaml:4:16: ", "missing ']'" },
	/* MAC%id */
	{ "cluster:\n  f: 0\n  replicas:\n    - mac: '12:34:56:aa:aa:aa'\n"
	  "      public_key: k\n",
	  "inline.yaml:4:12: ", "missing '%id'" },
	{ "cluster:\n  f: 0\n  replicas:\n    - mac: '12:34:56:aa:aa:aa%32768'\n"
	  "      public_key: k\n",
	  "inline.yaml:4:12: ", "the id after '%' must be a number in [0, 32767]" },
	{ "cluster:\n  f: 0\n  replicas:\n"
	  "    - {mac: '12:34:56:aa:aa:aa%1', public_key: a}\n"
	  "    - {mac: '12:34:56:AA:AA:AA%1', public_key: b}\n"
	  "transport: dpdk\n",
	  "inline.yaml:5:13: ",
	  "cluster.replicas[1].mac: duplicate replica: 12:34:56:AA:AA:AA%1 is also the MAC%id of replica 0" },
	{ CLUSTER_HEAD "  multicast: '01:00:5e:00:00:01'\n",
	  "inline.yaml:6:14: ", "cluster.multicast: bad MAC%id" },
	/* missing and wrong types */
	{ "protocol: pbft\n", "inline.yaml:1:1: ",
	  "top level: missing required key 'cluster'" },
	{ "cluster:\n  f: 0\n", "inline.yaml:2:3: ",
	  "cluster: missing required key 'replicas'" },
	{ "cluster:\n  f: 0\n  replicas: []\n", "inline.yaml:3:13: ",
	  "cluster.replicas: expected at least one replica" },
	{ "cluster:\n  f: 0\n  replicas: {a: 1}\n", "inline.yaml:3:13: ",
	  "cluster.replicas: expected a sequence of replicas, got a mapping" },
	{ "cluster:\n  f: 0\n  replicas:\n    - 127.0.0.1:7001\n",
	  "inline.yaml:4:7: ",
	  "cluster.replicas[0]: expected a mapping {address, mac, public_key}, got '127.0.0.1:7001'" },
	{ "cluster:\n  f: 0\n  replicas:\n    - address: 127.0.0.1:7001\n",
	  "inline.yaml:4:7: ",
	  "cluster.replicas[0]: missing required key 'public_key'" },
	{ "cluster:\n  f: 0\n  replicas:\n    - address: 127.0.0.1:7001\n"
	  "      public_key:\n",
	  "inline.yaml:5:18: ",
	  "cluster.replicas[0].public_key: expected a key file path, got an empty value" },
	{ "cluster:\n  f: -1\n", "inline.yaml:2:6: ",
	  "cluster.f: expected a non-negative integer, got '-1'" },
	{ "cluster:\n  f: [1]\n", "inline.yaml:2:6: ",
	  "cluster.f: expected a non-negative integer, got a sequence" },
	{ CLUSTER_HEAD "workers: two\n", "inline.yaml:6:10: ",
	  "workers: expected an integer in [1, 64], got 'two'" },
	{ CLUSTER_HEAD "workers: 0\n", "inline.yaml:6:10: ",
	  "workers: expected an integer in [1, 64], got '0'" },
	{ CLUSTER_HEAD "workers: 65\n", "inline.yaml:6:10: ",
	  "expected an integer in [1, 64], got '65'" },
	{ CLUSTER_HEAD "replica: [1]\n", "inline.yaml:6:10: ",
	  "replica: expected a mapping, got a sequence" },
	{ CLUSTER_HEAD "replica:\n  id: abc\n", "inline.yaml:7:7: ",
	  "replica.id: expected an integer in [0, 2147483647], got 'abc'" },
	{ CLUSTER_HEAD "cores: [0, 1024]\n", "inline.yaml:6:12: ",
	  "cores[1]: expected an integer in [0, 1023], got '1024'" },
	{ CLUSTER_HEAD "cores: 3\n", "inline.yaml:6:8: ",
	  "cores: expected a sequence of CPU ids, got '3'" },
	{ CLUSTER_HEAD "ring_size: 8\n", "inline.yaml:6:12: ",
	  "ring_size: expected an integer in [16, 16777216], got '8'" },
	{ CLUSTER_HEAD "max_timers: 4\n", "inline.yaml:6:13: ",
	  "max_timers: expected an integer in [16, 16777216], got '4'" },
	{ CLUSTER_HEAD "metrics_http: localhost:9464\n", "inline.yaml:6:15: ",
	  "metrics_http: expected ip:port (like 127.0.0.1:9464, [::1]:9464 or 127.0.0.1:946%i), got 'localhost:9464'" },
	{ CLUSTER_HEAD "metrics_http: 127.0.0.1\n", "inline.yaml:6:15: ",
	  "metrics_http: expected ip:port (like 127.0.0.1:9464, [::1]:9464 or 127.0.0.1:946%i), got '127.0.0.1'" },
	{ CLUSTER_HEAD "inline_receive: maybe\n", "inline.yaml:6:17: ",
	  "inline_receive: expected a boolean (true or false), got 'maybe'" },
	{ CLUSTER_HEAD "log_level: {a: 1}\n", "inline.yaml:6:12: ",
	  "log_level: expected one of error, warn, info, debug, got a mapping" },
	{ CLUSTER_HEAD "control_socket: [a]\n", "inline.yaml:6:17: ",
	  "control_socket: expected a string, got a sequence" },
	/* unknown keys */
	{ CLUSTER_HEAD "worker: 2\n", "inline.yaml:6:1: ",
	  "unknown key 'worker' at top level (expected one of cluster, replica, protocol, app, transport, workers, cores, ring_size, max_timers, inline_receive, control_socket, metrics_http, state_dir, snapshot, log_level)" },
	{ "cluster:\n  f: 0\n  replicas:\n    - address: 127.0.0.1:7001\n"
	  "      public_key: k\n      pubkey: k\n",
	  "inline.yaml:6:7: ",
	  "unknown key 'pubkey' in cluster.replicas[0] (expected one of address, mac, public_key)" },
	{ CLUSTER_HEAD "replica: {id: 0, key: k}\n", "inline.yaml:6:18: ",
	  "unknown key 'key' in replica (expected one of id, private_key)" },
	/* protocol and app */
	{ CLUSTER_HEAD "protocol: {options: {}}\n", "inline.yaml:6:11: ",
	  "protocol: missing required key 'name'" },
	{ CLUSTER_HEAD "protocol: PBFT!\n", "inline.yaml:6:11: ",
	  "protocol: 'PBFT!' is neither a plugin name" },
	{ CLUSTER_HEAD "protocol: {name: pbft, options: [1]}\n",
	  "inline.yaml:6:33: ",
	  "protocol.options: expected a mapping, got a sequence" },
	{ CLUSTER_HEAD "protocol: {name: pbft, option: {}}\n",
	  "inline.yaml:6:24: ",
	  "unknown key 'option' in protocol (expected one of name, options)" },
	{ CLUSTER_HEAD "protocol: [pbft]\n", "inline.yaml:6:11: ",
	  "protocol: expected a name or a mapping {name, options}, got a sequence" },
	{ CLUSTER_HEAD "app: {name: Key Value}\n", "inline.yaml:6:13: ",
	  "app.name: 'Key Value' is not an application name" },
	/* transport */
	{ CLUSTER_HEAD "transport: tcp\n", "inline.yaml:6:12: ",
	  "transport: expected one of udp, dpdk, sim, got 'tcp'" },
	{ CLUSTER_HEAD "transport: {kind: udp, eal: []}\n", "inline.yaml:6:24: ",
	  "'eal' is an option of the dpdk transport, but transport.kind is udp" },
	{ CLUSTER_HEAD "transport: {batch: 8, bach: 8}\n", "inline.yaml:6:23: ",
	  "unknown key 'bach' in transport (expected one of kind, rx_threads, batch, socket_buffer, rx_memory)" },
	{ CLUSTER_HEAD "transport: {kind: udp, rx_memory: 65536}\n",
	  "inline.yaml:6:35: ",
	  "transport.rx_memory: expected an integer in [1048576, 1099511627776], got '65536'" },
	{ CLUSTER_HEAD "transport:\n  kind: dpdk\n", "inline.yaml:4:7: ",
	  "cluster.replicas[0]: missing required key 'mac' (MAC%id, needed by the dpdk transport)" },
	{ "cluster:\n  f: 0\n  replicas:\n    - mac: '12:34:56:aa:aa:aa%0'\n"
	  "      public_key: k\n",
	  "inline.yaml:4:7: ",
	  "cluster.replicas[0]: missing required key 'address' (ip:port, needed by the udp transport)" },
	{ CLUSTER_HEAD "transport: {kind: dpdk, eal: [a, [b]]}\n",
	  "inline.yaml:6:34: ", "transport.eal[1]: expected a string, got a sequence" },
	{ CLUSTER_HEAD "transport: {kind: dpdk, port: 70000}\n",
	  "inline.yaml:6:31: ", "transport.port: expected an integer in [0, 65535]" },
	{ CLUSTER_HEAD "transport: {kind: dpdk, idle: {spin: 1, nap: 2}}\n",
	  "inline.yaml:6:41: ",
	  "unknown key 'nap' in transport.idle (expected one of spin, yield, sleep_us)" },
	{ CLUSTER_HEAD "transport: {kind: udp, batch: 0}\n", "inline.yaml:6:31: ",
	  "transport.batch: expected an integer in [1, 1024], got '0'" },
	/* snapshot */
	{ CLUSTER_HEAD "snapshot: 5s\n", "inline.yaml:6:11: ",
	  "snapshot: expected a mapping (interval, keep), got '5s'" },
	{ CLUSTER_HEAD "snapshot: {interval: 1s, every: 3}\n",
	  "inline.yaml:6:26: ",
	  "unknown key 'every' in snapshot (expected one of interval, keep)" },
	{ CLUSTER_HEAD "snapshot:\n  interval: soon\n", "inline.yaml:7:13: ",
	  "snapshot.interval: expected a duration in [0ms, 86400000ms] (like 250ms or 1.5s), got 'soon'" },
	{ CLUSTER_HEAD "snapshot:\n  interval: 2d\n", "inline.yaml:7:13: ",
	  "snapshot.interval: expected a duration in [0ms, 86400000ms]" },
	{ CLUSTER_HEAD "snapshot: {keep: 0}\n", "inline.yaml:6:18: ",
	  "snapshot.keep: expected an integer in [1, 1000], got '0'" },
	{ CLUSTER_HEAD "snapshot: {keep: [2]}\n", "inline.yaml:6:18: ",
	  "snapshot.keep: expected an integer in [1, 1000], got a sequence" },
	/* YAML features refused */
	{ CLUSTER_HEAD "workers: *w\n", "inline.yaml:6:10: ",
	  "YAML aliases (*w) are not supported" },
	{ CLUSTER_HEAD "workers: !!int 2\n", "inline.yaml:6:10: ",
	  "YAML tags (tag:yaml.org,2002:int) are not supported" },
	{ CLUSTER_HEAD "? [a, b]\n: 1\n", "inline.yaml:6:3: ",
	  "mapping keys must be plain scalars" },
	{ CLUSTER_HEAD "---\nb: 2\n", "inline.yaml:6:1: ",
	  "a second YAML document" },
	{ "- 1\n- 2\n", "inline.yaml:1:1: ",
	  "expected a mapping at the top level" },
	{ "cluster:\n  f: 0\n  f: 0\n  f: 1\n", "inline.yaml:3:3: ",
	  "duplicate key 'f' in cluster (first at line 2, column 3)" },
	{ "a: b: c\n", "inline.yaml:1:5: ",
	  "mapping values are not allowed in this context" },
	{ "cluster:\n\tf: 0\n", "inline.yaml:2:1: ",
	  "found character that cannot start any token" },
	{ "cluster: \"\\0\"\n", "inline.yaml:1:10: ", "NUL character" },
	/* seed format */
	{ "f 1\nreplica 12:34:56:aa:aa:aa%0\nreplicas 12:34:56:aa:aa:aa%1\n",
	  "inline.yaml:3:1: ",
	  "unknown line 'replicas' (expected f, replica or multicast)" },
	{ "f 0\nreplica 127.0.0.1:7001\nreplica 12:34:56:aa:aa:aa%1\n",
	  "inline.yaml:3:9: ",
	  "replica 1 is MAC%id but replica 0 is ip:port" },
	{ "f 0\nreplica 127.0.0.1:7001\nreplica 127.0.0.1:7001\n",
	  "inline.yaml:3:9: ", "duplicate replica: 127.0.0.1:7001 is also replica 0" },
	{ "  # seed\nf 1\nreplica 12:34:56:aa:aa:aa%0\n",
	  "inline.yaml:2:3: ", "f = 1 is too large for n = 1 replicas" },
	{ "f x\nreplica 12:34:56:aa:aa:aa%0\n", "inline.yaml:1:3: ",
	  "expected a non-negative integer after 'f', got 'x'" },
	{ "f 0\nreplica\n", "inline.yaml:2:8: ", "missing value after 'replica'" },
	{ "f 0\nreplica 127.0.0.1:7001 extra\n", "inline.yaml:2:24: ",
	  "unexpected 'extra'" },
	{ "f 0\n", "inline.yaml:1:1: ", "no 'replica' lines" },
	{ "f 0\nf 0\n", "inline.yaml:2:1: ", "a second 'f' line" },
	{ "f 0\nreplica 127.0.0.1:7001\nmulticast 01:00:5e:00:00:01%255\n",
	  "inline.yaml:3:1: ", "'multicast' needs MAC%id replicas" },
	{ "f 0\r\nreplica 12:34:56:aa:aa:aa%0\r\nmulticast 01:00:5e:00:00:01\r\n",
	  "inline.yaml:3:11: ", "bad multicast '01:00:5e:00:00:01'" },
};

START_TEST(test_text_errors)
{
	const struct text_case *c = &text_cases[_i];
	assert_text_error(c->text, c->prefix, c->part);
}
END_TEST

START_TEST(test_reader_error_position)
{
	/* Invalid UTF-8 is a libyaml reader error, reported by offset. */
	const char text[] = CLUSTER_HEAD "state_dir: /var/\xff\n";
	assert_text_error(text, "inline.yaml:6:17: ", "invalid leading UTF-8 octet");
	const char with_nul[] = "cluster:\n  f: 0\0\n";
	struct oskr_config *config = NULL;
	char *err = NULL;
	int rc = oskr__config_load_string("inline.yaml", with_nul,
					  sizeof(with_nul) - 1, &config, &err);
	assert_error_text(rc, err, "inline.yaml:2:7: ", "NUL byte");
}
END_TEST

/* ---- the seed's plain-text format ---- */

START_TEST(test_seed_mac_file)
{
	struct oskr_config *config = NULL;
	char *err = NULL;
	int rc = oskr__config_load(DATA "seed_mac.config", &config, &err);
	ck_assert_msg(rc == 0, "%s", err ? err : "?");
	ck_assert_ptr_null(config->root);
	ck_assert_ptr_null(config->protocol);
	ck_assert_str_eq(config->app, "null");
	ck_assert_int_eq(config->transport, OSKR_TRANSPORT_DPDK);
	ck_assert_uint_eq(config->fault_count, 1);
	ck_assert_uint_eq(config->replica_count, 4);
	const uint8_t mac_b[6] = { 0x12, 0x34, 0x56, 0xbb, 0xbb, 0xbb };
	ck_assert_mem_eq(config->replicas[3].mac, mac_b, 6);
	ck_assert_uint_eq(config->replicas[3].link_id, 1);
	ck_assert(config->replicas[3].has_mac);
	ck_assert(config->dpdk.has_multicast);
	ck_assert_uint_eq(config->dpdk.multicast_id, 255);
	/* PREFIX-N.pem, PREFIX = file name without ".config". */
	ck_assert_str_eq(config->replicas[2].public_key,
			 DATA "seed_mac-2.pem");
	char *key = oskr__config_private_key_path(config, 1);
	ck_assert_str_eq(key, DATA "seed_mac-1.pem");
	free(key);
	ck_assert_int_eq(config->replica_id, -1);
	ck_assert_uint_eq(config->workers, 2);
	oskr__config_free(config);
}
END_TEST

START_TEST(test_seed_udp_file)
{
	struct oskr_config *config = NULL;
	char *err = NULL;
	int rc = oskr__config_load(DATA "seed_udp.config", &config, &err);
	ck_assert_msg(rc == 0, "%s", err ? err : "?");
	ck_assert_int_eq(config->transport, OSKR_TRANSPORT_UDP);
	ck_assert_uint_eq(config->replica_count, 1);
	ck_assert_str_eq(config->replicas[0].address, "127.0.0.1:7001");
	ck_assert_uint_eq(port_of(&config->replicas[0].sockaddr), 7001);
	ck_assert(!config->dpdk.has_multicast);
	oskr__config_free(config);
}
END_TEST

static void write_file(const char *path, const char *text)
{
	FILE *stream = fopen(path, "w");
	ck_assert_ptr_nonnull(stream);
	ck_assert_int_eq(fputs(text, stream) >= 0, 1);
	ck_assert_int_eq(fclose(stream), 0);
}

START_TEST(test_seed_path_without_suffix)
{
	char dir[] = "/tmp/oskr-test-config-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char *file = NULL, *prefix = NULL;
	ck_assert_int_ge(asprintf(&file, "%s/shard0.config", dir), 0);
	ck_assert_int_ge(asprintf(&prefix, "%s/shard0", dir), 0);
	write_file(file, "f 0\nreplica 12:34:56:aa:aa:aa%0\n");

	/* `-c DIR/shard0` finds DIR/shard0.config. */
	struct oskr_config *config = NULL;
	char *err = NULL;
	int rc = oskr__config_load(prefix, &config, &err);
	ck_assert_msg(rc == 0, "%s", err ? err : "?");
	ck_assert_str_eq(config->file, file);
	char *expected_key = NULL;
	ck_assert_int_ge(asprintf(&expected_key, "%s-0.pem", prefix), 0);
	ck_assert_str_eq(config->replicas[0].public_key, expected_key);
	char *key = oskr__config_private_key_path(config, 0);
	ck_assert_str_eq(key, expected_key);
	free(key);
	free(expected_key);
	oskr__config_free(config);

	/* Neither exists: the error names both. */
	char *missing = NULL;
	ck_assert_int_ge(asprintf(&missing, "%s/nothing", dir), 0);
	config = NULL;
	rc = oskr__config_load(missing, &config, &err);
	ck_assert_int_eq(rc, -ENOENT);
	ck_assert_ptr_null(config);
	ck_assert_ptr_nonnull(strstr(err, "nothing.config"));
	free(err);
	free(missing);

	ck_assert_int_eq(unlink(file), 0);
	ck_assert_int_eq(rmdir(dir), 0);
	free(file);
	free(prefix);
}
END_TEST

/* ---- the plugin-facing accessors ---- */

static const char options_yaml[] =
	"cluster:\n"
	"  f: 0\n"
	"  replicas:\n"
	"    - {address: 127.0.0.1:7001, public_key: k}\n"
	"protocol:\n"
	"  name: pbft\n"
	"  options:\n"
	"    batch_size: abc\n"
	"    window: 8\n"
	"    huge: 99999999999999999999\n"
	"    signed: yes\n"
	"    verify: maybe\n"
	"    timeout: 1.5s\n"
	"    short: 250\n"
	"    unit: 250ms\n"
	"    seconds: 2s\n"
	"    fine: 1.0005s\n"
	"    minutes: 5m\n"
	"    label: hello\n"
	"    nested: {a: 1}\n";

static struct oskr_config *load_options(void)
{
	struct oskr_config *config = load_text("conf/pbft.yaml", options_yaml);
	ck_assert_ptr_nonnull(config->protocol_options);
	oskr__conf_clear_last_error();
	return config;
}

START_TEST(test_accessor_u64)
{
	struct oskr_config *config = load_options();
	const struct oskr_conf *options = config->protocol_options;
	uint64_t value = 0;
	ck_assert_int_eq(oskr__conf_u64(options, "window", 1, 64, 4, &value),
			 0);
	ck_assert_uint_eq(value, 8);
	ck_assert_str_eq(oskr__conf_last_error(), "");
	ck_assert_int_eq(oskr__conf_u64(options, "absent", 1, 64, 4, &value),
			 0);
	ck_assert_uint_eq(value, 4);
	ck_assert_int_eq(oskr__conf_u64(NULL, "window", 1, 64, 5, &value), 0);
	ck_assert_uint_eq(value, 5);

	ck_assert_int_eq(oskr__conf_u64(options, "batch_size", 1, 4096, 1,
					&value),
			 -EINVAL);
	ck_assert_str_eq(oskr__conf_last_error(),
			 "conf/pbft.yaml:8:17: protocol.options.batch_size: expected an integer in [1, 4096], got 'abc'");
	ck_assert_int_eq(oskr__conf_u64(options, "window", 16, 64, 16, &value),
			 -EINVAL);
	ck_assert_str_eq(oskr__conf_last_error(),
			 "conf/pbft.yaml:9:13: protocol.options.window: expected an integer in [16, 64], got '8'");
	/* Overflow is a bad value, not a wrap-around. */
	ck_assert_int_eq(oskr__conf_u64(options, "huge", 0, UINT64_MAX, 0,
					&value),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(oskr__conf_last_error(),
				     "conf/pbft.yaml:10:11: protocol.options.huge: expected a non-negative integer"));
	ck_assert_int_eq(oskr__conf_u64(options, "nested", 0, 10, 0, &value),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(oskr__conf_last_error(),
				     "conf/pbft.yaml:20:13: protocol.options.nested: expected an integer in [0, 10], got a mapping"));
	oskr__conf_clear_last_error();
	ck_assert_str_eq(oskr__conf_last_error(), "");
	oskr__config_free(config);
}
END_TEST

START_TEST(test_accessor_bool_string_keys)
{
	struct oskr_config *config = load_options();
	const struct oskr_conf *options = config->protocol_options;
	bool flag = false;
	ck_assert_int_eq(oskr__conf_bool(options, "signed", false, &flag), 0);
	ck_assert(flag);
	ck_assert_int_eq(oskr__conf_bool(options, "absent", true, &flag), 0);
	ck_assert(flag);
	ck_assert_int_eq(oskr__conf_bool(options, "verify", false, &flag),
			 -EINVAL);
	ck_assert_str_eq(oskr__conf_last_error(),
			 "conf/pbft.yaml:12:13: protocol.options.verify: expected a boolean (true or false), got 'maybe'");

	const char *text = NULL;
	ck_assert_int_eq(oskr__conf_string(options, "label", "x", &text), 0);
	ck_assert_str_eq(text, "hello");
	ck_assert_int_eq(oskr__conf_string(options, "absent", "x", &text), 0);
	ck_assert_str_eq(text, "x");
	ck_assert_int_eq(oskr__conf_string(NULL, "label", NULL, &text), 0);
	ck_assert_ptr_null(text);
	ck_assert_int_eq(oskr__conf_string(options, "nested", "x", &text),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(oskr__conf_last_error(),
				     "protocol.options.nested: expected a string, got a mapping"));

	static const char *const all[] = {
		"batch_size", "window", "huge",	   "signed", "verify",
		"timeout",    "short",	"unit",	   "seconds", "fine",
		"minutes",    "label",	"nested", NULL,
	};
	ck_assert_int_eq(oskr__conf_check_keys(options, all), 0);
	ck_assert_int_eq(oskr__conf_check_keys(NULL, all), 0);
	static const char *const few[] = { "batch_size", "window", NULL };
	ck_assert_int_eq(oskr__conf_check_keys(options, few), -EINVAL);
	ck_assert_str_eq(oskr__conf_last_error(),
			 "conf/pbft.yaml:10:5: unknown key 'huge' in protocol.options (expected one of batch_size, window)");
	/* A non-mapping handed to a reader is reported at that node. */
	const struct oskr_conf *nested_a =
		oskr__conf_get(oskr__conf_get(options, "nested"), "a");
	ck_assert_int_eq(oskr__conf_u64(nested_a, "x", 0, 1, 0, &(uint64_t){0}),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(oskr__conf_last_error(),
				     "conf/pbft.yaml:20:17: protocol.options.nested.a: expected a mapping, got '1'"));
	oskr__config_free(config);
}
END_TEST

START_TEST(test_accessor_ms)
{
	struct oskr_config *config = load_options();
	const struct oskr_conf *options = config->protocol_options;
	uint64_t ms = 0;
	ck_assert_int_eq(oskr__conf_ms(options, "timeout", 1, 60000, 0, &ms),
			 0);
	ck_assert_uint_eq(ms, 1500);
	ck_assert_int_eq(oskr__conf_ms(options, "short", 1, 60000, 0, &ms), 0);
	ck_assert_uint_eq(ms, 250);
	ck_assert_int_eq(oskr__conf_ms(options, "unit", 1, 60000, 0, &ms), 0);
	ck_assert_uint_eq(ms, 250);
	ck_assert_int_eq(oskr__conf_ms(options, "seconds", 1, 60000, 0, &ms),
			 0);
	ck_assert_uint_eq(ms, 2000);
	ck_assert_int_eq(oskr__conf_ms(options, "absent", 1, 60000, 77, &ms),
			 0);
	ck_assert_uint_eq(ms, 77);

	ck_assert_int_eq(oskr__conf_ms(options, "fine", 1, 60000, 0, &ms),
			 -EINVAL);
	ck_assert_str_eq(oskr__conf_last_error(),
			 "conf/pbft.yaml:17:11: protocol.options.fine: expected a duration in [1ms, 60000ms] (like 250ms or 1.5s), got '1.0005s'");
	ck_assert_int_eq(oskr__conf_ms(options, "minutes", 1, 60000, 0, &ms),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(oskr__conf_last_error(),
				     "conf/pbft.yaml:18:14: protocol.options.minutes"));
	ck_assert_int_eq(oskr__conf_ms(options, "seconds", 1, 1000, 0, &ms),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(oskr__conf_last_error(), "got '2s'"));
	ck_assert_int_eq(oskr__conf_ms(options, "label", 0, UINT64_MAX, 0, &ms),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(oskr__conf_last_error(),
				     "expected a duration >= 0ms"));
	oskr__config_free(config);
}
END_TEST

static void *read_last_error(void *arg)
{
	(void)arg;
	return (void *)oskr__conf_last_error();
}

START_TEST(test_last_error_is_thread_local)
{
	struct oskr_config *config = load_options();
	uint64_t value;
	ck_assert_int_eq(oskr__conf_u64(config->protocol_options, "batch_size",
					1, 2, 1, &value),
			 -EINVAL);
	ck_assert_str_ne(oskr__conf_last_error(), "");
	/* Another thread has its own, empty, buffer. */
	pthread_t thread;
	void *seen = NULL;
	ck_assert_int_eq(pthread_create(&thread, NULL, read_last_error, NULL),
			 0);
	ck_assert_int_eq(pthread_join(thread, &seen), 0);
	ck_assert_ptr_nonnull(seen);
	ck_assert_str_eq((const char *)seen, "");
	oskr__config_free(config);
}
END_TEST

/* ---- the tree and the low-level parsers ---- */

START_TEST(test_tree_positions_and_paths)
{
	const char text[] = "a:\n  b:\n    - x\n    - {c: 'q'}\n";
	struct oskr_conf *root = NULL;
	char *err = NULL;
	ck_assert_int_eq(oskr__conf_parse("t.yaml", text, sizeof(text) - 1,
					  &root, &err),
			 0);
	ck_assert_int_eq(root->kind, OSKR_CONF_MAP);
	ck_assert_str_eq(root->path, "");
	ck_assert_uint_eq(root->line, 1);
	ck_assert_uint_eq(root->column, 1);
	const struct oskr_conf *b = oskr__conf_get(oskr__conf_get(root, "a"),
						   "b");
	ck_assert_int_eq(b->kind, OSKR_CONF_SEQ);
	ck_assert_uint_eq(b->count, 2);
	ck_assert_str_eq(b->values[0]->scalar, "x");
	ck_assert_str_eq(b->values[0]->path, "a.b[0]");
	ck_assert_uint_eq(b->values[0]->line, 3);
	ck_assert_uint_eq(b->values[0]->column, 7);
	const struct oskr_conf *c = oskr__conf_get(b->values[1], "c");
	ck_assert_str_eq(c->path, "a.b[1].c");
	ck_assert_str_eq(c->scalar, "q");
	ck_assert_str_eq(c->file, "t.yaml");
	ck_assert_ptr_null(oskr__conf_get(b, "c")); /* not a map */
	ck_assert_ptr_null(oskr__conf_get(root, "zz"));
	oskr__conf_free(root);

	/* Deep nesting is refused, not recursed into. */
	char deep[400];
	size_t used = 0;
	for (int i = 0; i < 100; i++)
		deep[used++] = '[';
	for (int i = 0; i < 100; i++)
		deep[used++] = ']';
	root = NULL;
	ck_assert_int_eq(oskr__conf_parse("deep.yaml", deep, used, &root, &err),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "deep.yaml:1:66: nested too deeply"));
	free(err);
	ck_assert_ptr_null(root);
}
END_TEST

START_TEST(test_large_mapping_duplicates)
{
	/* Thousands of keys: duplicate detection stays cheap and reports
	 * the earliest duplicate. */
	size_t keys = 20000;
	char *text = malloc(keys * 16 + 64);
	ck_assert_ptr_nonnull(text);
	size_t used = 0;
	for (size_t i = 0; i < keys; i++)
		used += (size_t)sprintf(text + used, "k%zu: %zu\n", i, i);
	used += (size_t)sprintf(text + used, "k77: 1\nk5: 2\n");
	struct oskr_conf *root = NULL;
	char *err = NULL;
	ck_assert_int_eq(oskr__conf_parse("big.yaml", text, used, &root, &err),
			 -EINVAL);
	ck_assert_str_eq(err,
			 "big.yaml:20001:1: duplicate key 'k77' at top level (first at line 78, column 1)");
	free(err);
	free(text);
}
END_TEST

static uint64_t next_random(uint64_t *state)
{
	*state = *state * 6364136223846793005u + 1442695040888963407u;
	return *state >> 33;
}

static void load_any(const char *text, size_t len)
{
	struct oskr_config *config = NULL;
	char *err = NULL;
	int rc = oskr__config_load_string("fuzz.yaml", text, len, &config,
					  &err);
	if (rc == 0) {
		ck_assert_ptr_nonnull(config);
		oskr__config_free(config);
	} else {
		ck_assert_ptr_null(config);
		ck_assert_ptr_nonnull(err);
		ck_assert_int_eq(strncmp(err, "fuzz.yaml", 9), 0);
	}
	free(err);
}

START_TEST(test_garbage_never_crashes)
{
	/* Deterministic byte soup biased towards YAML punctuation; every
	 * other input starts like a seed file. */
	static const char alphabet[] = "ab:-[]{}#&*!|>'\"\n\t %?,0123456789f.";
	uint64_t state = 0x9e3779b97f4a7c15u;
	char text[256];
	for (int round = 0; round < 3000; round++) {
		size_t len = 0;
		if (round % 2) {
			memcpy(text, "f ", 2);
			len = 2;
		}
		size_t target = len + next_random(&state) % (sizeof(text) - 2);
		while (len < target)
			text[len++] = alphabet[next_random(&state) %
					       (sizeof(alphabet) - 1)];
		load_any(text, len);
	}
}
END_TEST

START_TEST(test_mutated_files_never_crash)
{
	/* Byte flips, deletions and insertions of real files. */
	static const char *const files[] = { DATA "valid.yaml",
					     DATA "dpdk.yaml",
					     DATA "seed_mac.config" };
	uint64_t state = 42;
	for (size_t f = 0; f < 3; f++) {
		FILE *stream = fopen(files[f], "rb");
		ck_assert_ptr_nonnull(stream);
		char original[4096];
		size_t len = fread(original, 1, sizeof(original), stream);
		fclose(stream);
		ck_assert_uint_gt(len, 0);
		char text[4096 + 8];
		for (int round = 0; round < 1500; round++) {
			size_t mutated = len;
			memcpy(text, original, len);
			for (int edit = 0; edit < 1 + round % 4; edit++) {
				size_t at = next_random(&state) % mutated;
				uint8_t byte = (uint8_t)next_random(&state);
				switch (next_random(&state) % 3) {
				case 0:
					text[at] = (char)byte;
					break;
				case 1:
					memmove(text + at, text + at + 1,
						mutated - at - 1);
					mutated--;
					break;
				default:
					if (mutated >= sizeof(text))
						break;
					memmove(text + at + 1, text + at,
						mutated - at);
					text[at] = (char)byte;
					mutated++;
				}
			}
			load_any(text, mutated);
		}
	}
}
END_TEST

START_TEST(test_parse_ip_port)
{
	struct sockaddr_storage address;
	socklen_t len = 0;
	ck_assert_int_eq(oskr__parse_ip_port("10.0.0.1:65535", &address, &len),
			 0);
	ck_assert_uint_eq(port_of(&address), 65535);
	ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
	ck_assert_int_eq(oskr__parse_ip_port("[fe80::1]:80", &address, &len),
			 0);
	ck_assert_int_eq(address.ss_family, AF_INET6);
	ck_assert_uint_eq(port_of(&address), 80);
	static const char *const bad[] = {
		"10.0.0.1",   "10.0.0.1:65536", "10.0.0.1:-1", "10.0.0.1:7a",
		":7001",      "[::1]7001",	"[::1]:",      "fe80::1:80",
		"10.0.0:1",   "",		"10.0.0.1:123456",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(oskr__parse_ip_port(bad[i], &address, &len) ==
				      -EINVAL,
			      "accepted '%s'", bad[i]);
}
END_TEST

START_TEST(test_parse_mac_id)
{
	uint8_t mac[6];
	uint16_t id = 0;
	ck_assert_int_eq(oskr__parse_mac_id("Ab:cD:00:ff:10:01%32767", mac, &id),
			 0);
	const uint8_t expected[6] = { 0xab, 0xcd, 0x00, 0xff, 0x10, 0x01 };
	ck_assert_mem_eq(mac, expected, 6);
	ck_assert_uint_eq(id, 32767);
	static const char *const bad[] = {
		"12:34:56:aa:aa:aa",	   "12:34:56:aa:aa:aa%",
		"12:34:56:aa:aa%0",	   "12:34:56:aa:aa:aa:bb%0",
		"1:34:56:aa:aa:aa%0",	   "12-34-56-aa-aa-aa%0",
		"12:34:56:aa:aa:ag%0",	   "12:34:56:aa:aa:aa%32768",
		"12:34:56:aa:aa:aa%1x",	   "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(oskr__parse_mac_id(bad[i], mac, &id) == -EINVAL,
			      "accepted '%s'", bad[i]);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *suite = suite_create("config");
	TCase *valid = tcase_create("valid");
	tcase_add_test(valid, test_valid_file_all_fields);
	tcase_add_test(valid, test_valid_dpdk_file);
	tcase_add_test(valid, test_defaults);
	tcase_add_test(valid, test_example_configs_load);
	tcase_add_test(valid, test_inline_variants_accepted);
	tcase_add_test(valid, test_snapshot_settings);
	suite_add_tcase(suite, valid);

	TCase *errors = tcase_create("errors");
	tcase_add_loop_test(errors, test_file_errors, 0,
			    (int)(sizeof(file_cases) / sizeof(file_cases[0])));
	tcase_add_loop_test(errors, test_text_errors, 0,
			    (int)(sizeof(text_cases) / sizeof(text_cases[0])));
	tcase_add_test(errors, test_reader_error_position);
	suite_add_tcase(suite, errors);

	TCase *seed = tcase_create("seed");
	tcase_add_test(seed, test_seed_mac_file);
	tcase_add_test(seed, test_seed_udp_file);
	tcase_add_test(seed, test_seed_path_without_suffix);
	suite_add_tcase(suite, seed);

	TCase *accessors = tcase_create("accessors");
	tcase_add_test(accessors, test_accessor_u64);
	tcase_add_test(accessors, test_accessor_bool_string_keys);
	tcase_add_test(accessors, test_accessor_ms);
	tcase_add_test(accessors, test_last_error_is_thread_local);
	suite_add_tcase(suite, accessors);

	TCase *tree = tcase_create("tree");
	tcase_add_test(tree, test_tree_positions_and_paths);
	tcase_add_test(tree, test_large_mapping_duplicates);
	tcase_add_test(tree, test_garbage_never_crashes);
	tcase_add_test(tree, test_mutated_files_never_crash);
	tcase_add_test(tree, test_parse_ip_port);
	tcase_add_test(tree, test_parse_mac_id);
	suite_add_tcase(suite, tree);
	return suite;
}

int main(void)
{
	/* The accessors log their errors; keep the test output readable. */
	oskr__log_set_tag("test_config");
	SRunner *runner = srunner_create(config_suite());
	srunner_run_all(runner, CK_ENV);
	int failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
