/* SPDX-License-Identifier: MIT */
/*
 * oskrd's configuration: the YAML tree (conf_tree.c) validated into
 * struct oskr_config, plus the seed's plain-text cluster files.
 *
 * Every error points at the offending node ("file:line:col: path: why"),
 * or at the enclosing mapping when a required key is missing, in the
 * spirit of HAProxy's config parser. Relative paths (keys, plugin files)
 * are relative to the config file's directory so a config directory can
 * be moved as a whole.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "log.h"

/* The seed's link ids fit in 15 bits (MAC%id addressing). */

/* ---- addresses ---- */

static bool parse_port(const char *text, uint16_t *out)
{
	uint32_t port = 0;
	size_t digits = 0;
	for (; *text; text++, digits++) {
		if (*text < '0' || *text > '9' || digits >= 5)
			return false;
		port = port * 10 + (uint32_t)(*text - '0');
	}
	if (digits == 0 || port > 65535)
		return false;
	*out = (uint16_t)port;
	return true;
}

/* Returns NULL on success, or why @p text is not an address. */
const char *oskr__config_ip_port_problem(const char *text,
				   struct sockaddr_storage *out,
				   socklen_t *out_len)
{
	char host[64];
	const char *port_text;
	bool ipv6 = text[0] == '[';
	if (ipv6) {
		const char *close = strchr(text, ']');
		if (!close)
			return "missing ']' after the IPv6 address";
		if (close[1] != ':')
			return "missing ':port' after ']'";
		size_t host_len = (size_t)(close - text - 1);
		if (host_len >= sizeof(host))
			return "IPv6 address too long";
		memcpy(host, text + 1, host_len);
		host[host_len] = '\0';
		port_text = close + 2;
	} else {
		const char *colon = strrchr(text, ':');
		if (!colon)
			return "missing ':port'";
		size_t host_len = (size_t)(colon - text);
		if (host_len >= sizeof(host))
			return "address too long";
		memcpy(host, text, host_len);
		host[host_len] = '\0';
		if (strchr(host, ':'))
			return "an IPv6 address needs brackets, like [::1]:7001";
		port_text = colon + 1;
	}
	uint16_t port = 0;
	if (!*port_text)
		return "missing port number after ':'";
	if (!parse_port(port_text, &port))
		return "the port must be a number in [0, 65535]";
	memset(out, 0, sizeof(*out));
	if (ipv6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return "not an IPv6 address";
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		*out_len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)out;
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return "not an IPv4 address (host names are not resolved)";
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		*out_len = sizeof(*sin);
	}
	return NULL;
}

int oskr__parse_ip_port(const char *text, struct sockaddr_storage *out,
			socklen_t *out_len)
{
	return text && oskr__config_ip_port_problem(text, out, out_len) == NULL ? 0
								    : -EINVAL;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

const char *oskr__config_mac_id_problem(const char *text, uint8_t mac[6],
				  uint16_t *id)
{
	const char *cursor = text;
	for (int octet = 0; octet < 6; octet++) {
		int high = hex_value(cursor[0]);
		int low = high < 0 ? -1 : hex_value(cursor[1]);
		if (low < 0)
			return "the MAC must be six two-digit hex octets";
		mac[octet] = (uint8_t)(high << 4 | low);
		cursor += 2;
		char separator = octet < 5 ? ':' : '%';
		if (*cursor != separator)
			return octet < 5 ? "the MAC must be six two-digit hex octets"
					 : "missing '%id' after the MAC";
		cursor++;
	}
	uint32_t value = 0;
	size_t digits = 0;
	for (; *cursor; cursor++, digits++) {
		if (*cursor < '0' || *cursor > '9' || digits >= 5)
			return "the id after '%' must be a number in [0, 32767]";
		value = value * 10 + (uint32_t)(*cursor - '0');
	}
	if (digits == 0 || value > LINK_ID_MAX)
		return "the id after '%' must be a number in [0, 32767]";
	*id = (uint16_t)value;
	return NULL;
}

int oskr__parse_mac_id(const char *text, uint8_t mac[6], uint16_t *id)
{
	return text && oskr__config_mac_id_problem(text, mac, id) == NULL ? 0 : -EINVAL;
}

static bool sockaddr_equal(const struct sockaddr_storage *a,
			   const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a;
		const struct sockaddr_in *y = (const void *)b;
		return x->sin_port == y->sin_port &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a;
	const struct sockaddr_in6 *y = (const void *)b;
	return x->sin6_port == y->sin6_port &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

uint16_t oskr__config_sockaddr_port(const struct sockaddr_storage *address)
{
	if (address->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)address)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)address)->sin6_port);
}

/* ---- paths ---- */

/* "" when @p file has no directory part: relative paths stay as written. */
static char *directory_of(const char *file)
{
	const char *slash = strrchr(file, '/');
	if (!slash)
		return strdup("");
	if (slash == file)
		return strdup("/");
	return strndup(file, (size_t)(slash - file));
}

static char *resolve_path(const char *dir, const char *path)
{
	if (path[0] == '/' || dir[0] == '\0')
		return strdup(path);
	while (path[0] == '.' && path[1] == '/')
		path += 2;
	char *joined = NULL;
	size_t dir_len = strlen(dir);
	bool has_slash = dir[dir_len - 1] == '/';
	if (asprintf(&joined, "%s%s%s", dir, has_slash ? "" : "/", path) < 0)
		return NULL;
	return joined;
}

static bool is_plugin_path(const char *name)
{
	size_t len = strlen(name);
	return strchr(name, '/') ||
	       (len >= 3 && strcmp(name + len - 3, ".so") == 0);
}

static bool is_simple_name(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > CONFIG_MAX_NAME)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* ---- the config object ---- */

static void config_set_defaults(struct oskr_config *config)
{
	config->replica_id = -1;
	config->transport = OSKR_TRANSPORT_UDP;
	config->udp.rx_threads = 1;
	config->udp.batch = 32;
	config->udp.socket_buffer = 0;
	config->udp.rx_memory = OSKR_UDP_RX_MEMORY_DEFAULT;
	config->dpdk.rx_queues = 1;
	config->dpdk.tx_queues = 0;
	config->dpdk.mbuf_count = 8191;
	config->dpdk.burst_size = 32;
	config->dpdk.idle_spin = 1000;
	config->dpdk.idle_yield = 100;
	config->dpdk.idle_sleep_us = 50;
	config->workers = 2;
	config->ring_size = 65536;
	config->max_timers = 65536;
	config->snapshot.interval_ms = OSKR_SNAPSHOT_INTERVAL_MS_DEFAULT;
	config->snapshot.keep = OSKR_SNAPSHOT_KEEP_FILES_DEFAULT;
	config->log_level = OSKR_LOG_INFO;
}

void oskr__config_free(struct oskr_config *config)
{
	if (!config)
		return;
	for (uint32_t i = 0; i < config->replica_count; i++) {
		free(config->replicas[i].address);
		free(config->replicas[i].public_key);
	}
	free(config->replicas);
	free(config->private_key);
	free(config->protocol);
	free(config->app);
	for (size_t i = 0; i < config->dpdk.eal_arg_count; i++)
		free(config->dpdk.eal_args[i]);
	free(config->dpdk.eal_args);
	free(config->dpdk.port_name);
	free(config->cores);
	free(config->control_socket);
	free(config->metrics_http);
	free(config->state_dir);
	oskr__conf_free(config->root);
	free(config->file);
	free(config);
}

char *oskr__expand_replica_id(const char *template, uint32_t replica_id)
{
	char id_text[16];
	int id_len = snprintf(id_text, sizeof(id_text), "%" PRIu32, replica_id);
	size_t occurrences = 0;
	for (const char *p = template; (p = strstr(p, "%i")); p += 2)
		occurrences++;
	char *path = malloc(strlen(template) + occurrences * (size_t)id_len +
			    1);
	if (!path)
		return NULL;
	char *out = path;
	for (const char *p = template; *p;) {
		if (p[0] == '%' && p[1] == 'i') {
			out = stpcpy(out, id_text);
			p += 2;
		} else {
			*out++ = *p++;
		}
	}
	*out = '\0';
	return path;
}

char *oskr__config_private_key_path(const struct oskr_config *config,
				    uint32_t replica_id)
{
	if (!config || !config->private_key)
		return NULL;
	return oskr__expand_replica_id(config->private_key, replica_id);
}

/* Duplicate replicas would make two ids share one endpoint: messages
 * meant for one would reach the other. */
int oskr__config_find_duplicate_replica(const struct oskr_config *config,
				  uint32_t index, bool by_address)
{
	const struct oskr_config_replica *replica = &config->replicas[index];
	for (uint32_t other = 0; other < index; other++) {
		const struct oskr_config_replica *earlier =
			&config->replicas[other];
		if (by_address && earlier->address &&
		    sockaddr_equal(&earlier->sockaddr, &replica->sockaddr))
			return (int)other;
		if (!by_address && earlier->has_mac &&
		    memcmp(earlier->mac, replica->mac, 6) == 0 &&
		    earlier->link_id == replica->link_id)
			return (int)other;
	}
	return -1;
}

/* ---- YAML schema ---- */

struct yaml_load {
	struct oskr_config *config;
	const char *dir; /* of the config file, "" for the working dir */
	char **err;
};

int oskr__config_out_of_memory(char **err)
{
	oskr__errorf(err, "out of memory");
	return -ENOMEM;
}

static const char *where(const struct oskr_conf *map)
{
	return map->path[0] ? map->path : "top level";
}

/* A required key: absent → error at the mapping; present but empty →
 * error at the value. */
static int require(const struct oskr_conf *map, const char *key,
		   const char *expected, const struct oskr_conf **out,
		   char **err)
{
	const struct oskr_conf *value = oskr__conf_get(map, key);
	if (!value)
		return oskr__conf_errorf(err, map,
					 "%s: missing required key '%s' (%s)",
					 where(map), key, expected);
	if (oskr__conf_is_null(value))
		return oskr__conf_errorf(err, value,
					 "%s: expected %s, got an empty value",
					 value->path, expected);
	*out = value;
	return 0;
}

static int expect_kind(const struct oskr_conf *node, enum oskr__conf_kind kind,
		       const char *expected, char **err)
{
	if (node->kind == kind)
		return 0;
	char buf[64];
	return oskr__conf_errorf(err, node, "%s: expected %s, got %s",
				 node->path, expected,
				 oskr__conf_describe(node, buf, sizeof(buf)));
}

/* Optional value present and not null, else NULL. */
static const struct oskr_conf *optional(const struct oskr_conf *map,
					const char *key)
{
	const struct oskr_conf *value = oskr__conf_get(map, key);
	return oskr__conf_is_null(value) ? NULL : value;
}

static int read_u32(const struct oskr_conf *map, const char *key,
		    uint32_t min, uint32_t max, uint32_t dflt, uint32_t *out,
		    char **err)
{
	uint64_t value = 0;
	int rc = oskr__conf_read_u64(map, key, min, max, dflt, &value, err);
	if (!rc)
		*out = (uint32_t)value;
	return rc;
}

static int read_u16(const struct oskr_conf *map, const char *key,
		    uint16_t min, uint16_t max, uint16_t dflt, uint16_t *out,
		    char **err)
{
	uint64_t value = 0;
	int rc = oskr__conf_read_u64(map, key, min, max, dflt, &value, err);
	if (!rc)
		*out = (uint16_t)value;
	return rc;
}

/* An optional string copied out of the tree (NULL when absent). */
static int read_owned_string(const struct oskr_conf *map, const char *key,
			     char **out, char **err)
{
	const char *value = NULL;
	int rc = oskr__conf_read_string(map, key, NULL, &value, err);
	if (rc)
		return rc;
	if (value && !(*out = strdup(value)))
		return oskr__config_out_of_memory(err);
	return 0;
}

static int load_replica_entry(struct yaml_load *load,
			      const struct oskr_conf *item, uint32_t index)
{
	static const char *const keys[] = { "address", "mac", "public_key",
					    NULL };
	struct oskr_config_replica *replica = &load->config->replicas[index];
	char **err = load->err;
	char buf[64];
	int rc = expect_kind(item, OSKR_CONF_MAP,
			     "a mapping {address, mac, public_key}", err);
	if (!rc)
		rc = oskr__conf_verify_keys(item, keys, err);
	if (rc)
		return rc;

	const struct oskr_conf *address = optional(item, "address");
	if (address) {
		rc = expect_kind(address, OSKR_CONF_SCALAR,
				 "an address ip:port", err);
		if (rc)
			return rc;
		const char *problem = oskr__config_ip_port_problem(address->scalar,
						      &replica->sockaddr,
						      &replica->sockaddr_len);
		if (!problem && oskr__config_sockaddr_port(&replica->sockaddr) == 0)
			problem = "port 0 cannot receive";
		if (problem)
			return oskr__conf_errorf(err, address,
						 "%s: bad address %s: %s (expected ip:port or [ipv6]:port)",
						 address->path,
						 oskr__conf_describe(address, buf, sizeof(buf)),
						 problem);
		if (!(replica->address = strdup(address->scalar)))
			return oskr__config_out_of_memory(err);
		int other = oskr__config_find_duplicate_replica(load->config, index, true);
		if (other >= 0)
			return oskr__conf_errorf(err, address,
						 "%s: duplicate replica: %s is also the address of replica %d",
						 address->path, address->scalar,
						 other);
	}

	const struct oskr_conf *mac = optional(item, "mac");
	if (mac) {
		rc = expect_kind(mac, OSKR_CONF_SCALAR, "MAC%id", err);
		if (rc)
			return rc;
		const char *problem =
			oskr__config_mac_id_problem(mac->scalar, replica->mac,
				       &replica->link_id);
		if (problem)
			return oskr__conf_errorf(err, mac,
						 "%s: bad MAC%%id %s: %s (expected like 12:34:56:aa:aa:aa%%0)",
						 mac->path,
						 oskr__conf_describe(mac, buf, sizeof(buf)),
						 problem);
		replica->has_mac = true;
		int other = oskr__config_find_duplicate_replica(load->config, index, false);
		if (other >= 0)
			return oskr__conf_errorf(err, mac,
						 "%s: duplicate replica: %s is also the MAC%%id of replica %d",
						 mac->path, mac->scalar, other);
	}

	const struct oskr_conf *public_key = NULL;
	rc = require(item, "public_key", "a key file path", &public_key, err);
	if (!rc)
		rc = expect_kind(public_key, OSKR_CONF_SCALAR,
				 "a key file path", err);
	if (rc)
		return rc;
	if (!(replica->public_key = resolve_path(load->dir,
						 public_key->scalar)))
		return oskr__config_out_of_memory(err);
	return 0;
}

static int load_cluster(struct yaml_load *load, const struct oskr_conf *root)
{
	static const char *const keys[] = { "f", "replicas", "multicast",
					    NULL };
	struct oskr_config *config = load->config;
	char **err = load->err;
	const struct oskr_conf *cluster = NULL, *f = NULL, *replicas = NULL;
	int rc = require(root, "cluster", "a mapping", &cluster, err);
	if (!rc)
		rc = expect_kind(cluster, OSKR_CONF_MAP, "a mapping", err);
	if (!rc)
		rc = oskr__conf_verify_keys(cluster, keys, err);
	if (!rc)
		rc = require(cluster, "f", "an integer", &f, err);
	if (rc)
		return rc;
	uint64_t fault_count = 0;
	rc = oskr__conf_node_u64(f, 0, UINT32_MAX, &fault_count, err);
	if (!rc)
		rc = require(cluster, "replicas", "a sequence of replicas",
			     &replicas, err);
	if (!rc)
		rc = expect_kind(replicas, OSKR_CONF_SEQ,
				 "a sequence of replicas", err);
	if (rc)
		return rc;
	if (replicas->count == 0)
		return oskr__conf_errorf(err, replicas,
					 "%s: expected at least one replica",
					 replicas->path);
	if (replicas->count > CONFIG_MAX_REPLICAS)
		return oskr__conf_errorf(err, replicas,
					 "%s: %zu replicas is more than the limit of %d",
					 replicas->path, replicas->count,
					 CONFIG_MAX_REPLICAS);
	config->replicas = calloc(replicas->count, sizeof(*config->replicas));
	if (!config->replicas)
		return oskr__config_out_of_memory(err);
	for (size_t i = 0; i < replicas->count; i++) {
		/* Counted as we go so that free() sees what was filled. */
		config->replica_count = (uint32_t)i + 1;
		rc = load_replica_entry(load, replicas->values[i], (uint32_t)i);
		if (rc)
			return rc;
	}
	config->fault_count = (uint32_t)fault_count;
	/* Crash-tolerant protocols need a majority (n >= 2f+1); BFT plugins
	 * check n >= 3f+1 themselves in config_check. */
	if (2 * fault_count + 1 > config->replica_count)
		return oskr__conf_errorf(err, f,
					 "%s: f = %" PRIu64
					 " is too large for n = %" PRIu32
					 " replicas (need n >= 2f+1)",
					 f->path, fault_count,
					 config->replica_count);

	const struct oskr_conf *multicast = optional(cluster, "multicast");
	if (multicast) {
		char buf[64];
		rc = expect_kind(multicast, OSKR_CONF_SCALAR, "MAC%id", err);
		if (rc)
			return rc;
		const char *problem = oskr__config_mac_id_problem(
			multicast->scalar, config->dpdk.multicast_mac,
			&config->dpdk.multicast_id);
		if (problem)
			return oskr__conf_errorf(err, multicast,
						 "%s: bad MAC%%id %s: %s (expected like 01:00:5e:00:00:01%%255)",
						 multicast->path,
						 oskr__conf_describe(multicast, buf, sizeof(buf)),
						 problem);
		config->dpdk.has_multicast = true;
	}
	return 0;
}

static int load_replica_section(struct yaml_load *load,
				const struct oskr_conf *root)
{
	static const char *const keys[] = { "id", "private_key", NULL };
	struct oskr_config *config = load->config;
	char **err = load->err;
	const struct oskr_conf *replica = oskr__conf_get(root, "replica");
	if (oskr__conf_is_null(replica))
		return 0;
	int rc = expect_kind(replica, OSKR_CONF_MAP, "a mapping", err);
	if (!rc)
		rc = oskr__conf_verify_keys(replica, keys, err);
	if (rc)
		return rc;
	const struct oskr_conf *id = optional(replica, "id");
	if (id) {
		uint64_t value = 0;
		rc = oskr__conf_node_u64(id, 0, INT32_MAX, &value, err);
		if (rc)
			return rc;
		if (value >= config->replica_count)
			return oskr__conf_errorf(err, id,
						 "%s: %" PRIu64
						 " is not a replica of this cluster (n = %" PRIu32
						 ", so ids are 0..%" PRIu32 ")",
						 id->path, value,
						 config->replica_count,
						 config->replica_count - 1);
		config->replica_id = (int32_t)value;
	}
	const char *private_key = NULL;
	rc = oskr__conf_read_string(replica, "private_key", NULL, &private_key,
				    err);
	if (rc)
		return rc;
	if (private_key &&
	    !(config->private_key = resolve_path(load->dir, private_key)))
		return oskr__config_out_of_memory(err);
	return 0;
}

/* `key: name` or `key: {name: …, options: {…}}`. */
static int load_named(struct yaml_load *load, const struct oskr_conf *node,
		      const struct oskr_conf **name_out,
		      const struct oskr_conf **options_out)
{
	static const char *const keys[] = { "name", "options", NULL };
	char **err = load->err;
	char buf[64];
	*options_out = NULL;
	if (node->kind == OSKR_CONF_SCALAR) {
		*name_out = node;
		return 0;
	}
	if (node->kind != OSKR_CONF_MAP)
		return oskr__conf_errorf(err, node,
					 "%s: expected a name or a mapping {name, options}, got %s",
					 node->path,
					 oskr__conf_describe(node, buf, sizeof(buf)));
	int rc = oskr__conf_verify_keys(node, keys, err);
	if (!rc)
		rc = require(node, "name", "a name", name_out, err);
	if (!rc)
		rc = expect_kind(*name_out, OSKR_CONF_SCALAR, "a name", err);
	if (rc)
		return rc;
	const struct oskr_conf *options = optional(node, "options");
	if (options) {
		rc = expect_kind(options, OSKR_CONF_MAP, "a mapping", err);
		if (rc)
			return rc;
		*options_out = options;
	}
	return 0;
}

static int load_protocol(struct yaml_load *load, const struct oskr_conf *root)
{
	struct oskr_config *config = load->config;
	char **err = load->err;
	const struct oskr_conf *protocol = optional(root, "protocol");
	if (!protocol)
		return 0; /* oskrd -m supplies it */
	const struct oskr_conf *name = NULL;
	int rc = load_named(load, protocol, &name,
			    &config->protocol_options);
	if (rc)
		return rc;
	if (is_plugin_path(name->scalar)) {
		/* "x.so" alone would send dlopen to the library search path. */
		const char *prefix = strchr(name->scalar, '/') ? "" : "./";
		char *relative = NULL;
		if (asprintf(&relative, "%s%s", prefix, name->scalar) < 0)
			return oskr__config_out_of_memory(err);
		config->protocol = resolve_path(load->dir, relative);
		free(relative);
	} else {
		char buf[64];
		if (!is_simple_name(name->scalar))
			return oskr__conf_errorf(err, name,
						 "%s: %s is neither a plugin name ([a-z0-9_-]) nor a path (containing '/' or ending in .so)",
						 name->path,
						 oskr__conf_describe(name, buf, sizeof(buf)));
		config->protocol = strdup(name->scalar);
	}
	return config->protocol ? 0 : oskr__config_out_of_memory(err);
}

static int load_app(struct yaml_load *load, const struct oskr_conf *root)
{
	struct oskr_config *config = load->config;
	char **err = load->err;
	const struct oskr_conf *app = optional(root, "app");
	const char *name = "null";
	if (app) {
		const struct oskr_conf *name_node = NULL;
		int rc = load_named(load, app, &name_node,
				    &config->app_options);
		if (rc)
			return rc;
		char buf[64];
		if (!is_simple_name(name_node->scalar))
			return oskr__conf_errorf(err, name_node,
						 "%s: %s is not an application name (like null or kv)",
						 name_node->path,
						 oskr__conf_describe(name_node, buf, sizeof(buf)));
		name = name_node->scalar;
	}
	config->app = strdup(name);
	return config->app ? 0 : oskr__config_out_of_memory(err);
}

static int push_eal_arg(struct oskr_config_dpdk *dpdk,
			const struct oskr_conf *node, const char *text,
			size_t len, char **err)
{
	if (dpdk->eal_arg_count >= CONFIG_MAX_EAL_ARGS)
		return oskr__conf_errorf(err, node,
					 "%s: more than %d EAL arguments",
					 node->path, CONFIG_MAX_EAL_ARGS);
	char *arg = strndup(text, len);
	if (!arg)
		return oskr__config_out_of_memory(err);
	dpdk->eal_args[dpdk->eal_arg_count++] = arg;
	dpdk->eal_args[dpdk->eal_arg_count] = NULL;
	return 0;
}

static int load_eal(struct yaml_load *load, const struct oskr_conf *eal)
{
	struct oskr_config_dpdk *dpdk = &load->config->dpdk;
	char **err = load->err;
	dpdk->eal_args = calloc(CONFIG_MAX_EAL_ARGS + 1,
				sizeof(*dpdk->eal_args));
	if (!dpdk->eal_args)
		return oskr__config_out_of_memory(err);
	if (eal->kind == OSKR_CONF_SCALAR) {
		/* One string: split on whitespace, no quoting. */
		const char *cursor = eal->scalar;
		for (;;) {
			cursor += strspn(cursor, " \t\r\n");
			if (!*cursor)
				return 0;
			size_t len = strcspn(cursor, " \t\r\n");
			int rc = push_eal_arg(dpdk, eal, cursor, len, err);
			if (rc)
				return rc;
			cursor += len;
		}
	}
	int rc = expect_kind(eal, OSKR_CONF_SEQ,
			     "a sequence of EAL arguments or one string", err);
	if (rc)
		return rc;
	for (size_t i = 0; i < eal->count; i++) {
		const struct oskr_conf *arg = eal->values[i];
		rc = expect_kind(arg, OSKR_CONF_SCALAR, "a string", err);
		if (!rc)
			rc = push_eal_arg(dpdk, arg, arg->scalar,
					  strlen(arg->scalar), err);
		if (rc)
			return rc;
	}
	return 0;
}

static int load_dpdk(struct yaml_load *load, const struct oskr_conf *transport)
{
	static const char *const idle_keys[] = { "spin", "yield", "sleep_us",
						 NULL };
	struct oskr_config_dpdk *dpdk = &load->config->dpdk;
	char **err = load->err;
	int rc = 0;
	const struct oskr_conf *eal = optional(transport, "eal");
	if (eal)
		rc = load_eal(load, eal);
	if (rc)
		return rc;

	const struct oskr_conf *port = optional(transport, "port");
	if (port) {
		rc = expect_kind(port, OSKR_CONF_SCALAR,
				 "a port id or a device name", err);
		if (rc)
			return rc;
		if (port->scalar[0] >= '0' && port->scalar[0] <= '9' &&
		    !strchr(port->scalar, ':')) {
			uint64_t port_id = 0;
			rc = oskr__conf_node_u64(port, 0, UINT16_MAX, &port_id,
						 err);
			if (rc)
				return rc;
			dpdk->port_id = (uint16_t)port_id;
		} else if (!(dpdk->port_name = strdup(port->scalar))) {
			return oskr__config_out_of_memory(err);
		}
	}

	rc = read_u16(transport, "rx_queues", 1, 1024, 1, &dpdk->rx_queues,
		      err);
	if (!rc)
		rc = read_u16(transport, "tx_queues", 0, 1024, 0,
			      &dpdk->tx_queues, err);
	if (!rc)
		rc = read_u32(transport, "mbufs", 63, 1u << 24, 8191,
			      &dpdk->mbuf_count, err);
	if (!rc)
		rc = read_u16(transport, "burst", 1, 1024, 32,
			      &dpdk->burst_size, err);
	if (rc)
		return rc;

	const struct oskr_conf *idle = optional(transport, "idle");
	if (!idle)
		return 0;
	rc = expect_kind(idle, OSKR_CONF_MAP, "a mapping {spin, yield, sleep_us}",
			 err);
	if (!rc)
		rc = oskr__conf_verify_keys(idle, idle_keys, err);
	if (!rc)
		rc = read_u32(idle, "spin", 0, UINT32_MAX, 1000,
			      &dpdk->idle_spin, err);
	if (!rc)
		rc = read_u32(idle, "yield", 0, UINT32_MAX, 100,
			      &dpdk->idle_yield, err);
	if (!rc)
		rc = read_u32(idle, "sleep_us", 0, 1000000, 50,
			      &dpdk->idle_sleep_us, err);
	return rc;
}

static bool name_in(const char *name, const char *const *names)
{
	for (size_t i = 0; names[i]; i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

static int load_transport(struct yaml_load *load, const struct oskr_conf *root)
{
	static const char *const udp_keys[] = { "kind", "rx_threads", "batch",
						"socket_buffer", "rx_memory",
						NULL };
	static const char *const dpdk_keys[] = {
		"kind",	     "eal",   "port", "rx_queues", "tx_queues",
		"mbufs",     "burst", "idle", NULL,
	};
	static const char *const sim_keys[] = { "kind", NULL };
	struct oskr_config *config = load->config;
	char **err = load->err;
	char buf[64];
	const struct oskr_conf *transport = optional(root, "transport");
	if (!transport)
		return 0;
	const struct oskr_conf *kind = transport;
	if (transport->kind == OSKR_CONF_MAP) {
		kind = optional(transport, "kind");
	} else if (transport->kind != OSKR_CONF_SCALAR) {
		return oskr__conf_errorf(err, transport,
					 "%s: expected udp, dpdk, sim or a mapping {kind, …}, got %s",
					 transport->path,
					 oskr__conf_describe(transport, buf, sizeof(buf)));
	}
	const char *kind_name = kind ? kind->scalar : "udp";
	if (kind && kind->kind != OSKR_CONF_SCALAR)
		return expect_kind(kind, OSKR_CONF_SCALAR, "udp, dpdk or sim",
				   err);
	const char *const *keys;
	if (strcmp(kind_name, "udp") == 0) {
		config->transport = OSKR_TRANSPORT_UDP;
		keys = udp_keys;
	} else if (strcmp(kind_name, "dpdk") == 0) {
		config->transport = OSKR_TRANSPORT_DPDK;
		keys = dpdk_keys;
	} else if (strcmp(kind_name, "sim") == 0) {
		config->transport = OSKR_TRANSPORT_SIM;
		keys = sim_keys;
	} else {
		return oskr__conf_errorf(err, kind,
					 "%s: expected one of udp, dpdk, sim, got %s",
					 kind->path, oskr__conf_describe(kind, buf, sizeof(buf)));
	}
	if (transport->kind != OSKR_CONF_MAP)
		return 0;
	/* Options of the other kinds are refused: they would be ignored. */
	for (size_t i = 0; i < transport->count; i++) {
		const struct oskr_conf *key = transport->keys[i];
		if (name_in(key->scalar, keys))
			continue;
		const char *owner = name_in(key->scalar, udp_keys)    ? "udp"
				    : name_in(key->scalar, dpdk_keys) ? "dpdk"
								      : NULL;
		if (owner)
			return oskr__conf_errorf(err, key,
						 "'%s' is an option of the %s transport, but transport.kind is %s",
						 key->scalar, owner, kind_name);
	}
	int rc = oskr__conf_verify_keys(transport, keys, err);
	if (rc)
		return rc;
	if (config->transport == OSKR_TRANSPORT_DPDK)
		return load_dpdk(load, transport);
	if (config->transport != OSKR_TRANSPORT_UDP)
		return 0;
	rc = read_u32(transport, "rx_threads", 1, 64, 1,
		      &config->udp.rx_threads, err);
	if (!rc)
		rc = read_u32(transport, "batch", 1, 1024, 32,
			      &config->udp.batch, err);
	if (!rc)
		rc = read_u32(transport, "socket_buffer", 0, INT32_MAX, 0,
			      &config->udp.socket_buffer, err);
	/* At least 1 MiB: a few maximum-size messages must fit. */
	if (!rc)
		rc = oskr__conf_read_u64(transport, "rx_memory", UINT64_C(1) << 20,
					 UINT64_C(1) << 40,
					 OSKR_UDP_RX_MEMORY_DEFAULT,
					 &config->udp.rx_memory, err);
	return rc;
}

/* Each replica needs the address kind its transport speaks. */
static int check_replica_addresses(struct yaml_load *load,
				   const struct oskr_conf *root)
{
	struct oskr_config *config = load->config;
	const struct oskr_conf *replicas =
		oskr__conf_get(oskr__conf_get(root, "cluster"), "replicas");
	for (uint32_t i = 0; i < config->replica_count; i++) {
		const struct oskr_config_replica *replica = &config->replicas[i];
		const struct oskr_conf *item = replicas->values[i];
		if (config->transport == OSKR_TRANSPORT_UDP && !replica->address)
			return oskr__conf_errorf(load->err, item,
						 "%s: missing required key 'address' (ip:port, needed by the udp transport)",
						 item->path);
		if (config->transport == OSKR_TRANSPORT_DPDK && !replica->has_mac)
			return oskr__conf_errorf(load->err, item,
						 "%s: missing required key 'mac' (MAC%%id, needed by the dpdk transport)",
						 item->path);
	}
	return 0;
}

static int load_cores(struct yaml_load *load, const struct oskr_conf *root)
{
	struct oskr_config *config = load->config;
	char **err = load->err;
	const struct oskr_conf *cores = optional(root, "cores");
	if (!cores)
		return 0;
	int rc = expect_kind(cores, OSKR_CONF_SEQ, "a sequence of CPU ids", err);
	if (rc)
		return rc;
	if (cores->count == 0)
		return oskr__conf_errorf(err, cores,
					 "%s: expected at least one CPU id (or leave cores out)",
					 cores->path);
	if (cores->count > 1024)
		return oskr__conf_errorf(err, cores, "%s: too many CPU ids",
					 cores->path);
	config->cores = calloc(cores->count, sizeof(*config->cores));
	if (!config->cores)
		return oskr__config_out_of_memory(err);
	for (size_t i = 0; i < cores->count; i++) {
		uint64_t cpu = 0;
		/* CPU_SETSIZE is 1024 on glibc. */
		rc = oskr__conf_node_u64(cores->values[i], 0, 1023, &cpu, err);
		if (rc)
			return rc;
		config->cores[i] = (int)cpu;
	}
	config->core_count = cores->count;
	return 0;
}

static int load_daemon_settings(struct yaml_load *load,
				const struct oskr_conf *root)
{
	struct oskr_config *config = load->config;
	char **err = load->err;
	int rc = read_u32(root, "workers", 1, 64, 2, &config->workers, err);
	if (!rc)
		rc = load_cores(load, root);
	if (!rc)
		rc = read_u32(root, "ring_size", 16, 1u << 24, 65536,
			      &config->ring_size, err);
	if (!rc)
		rc = read_u32(root, "max_timers", 16, 1u << 24, 65536,
			      &config->max_timers, err);
	if (!rc)
		rc = oskr__conf_read_bool(root, "inline_receive", true,
					  &config->inline_receive, err);
	if (rc)
		return rc;
	if (config->ring_size & (config->ring_size - 1)) {
		const struct oskr_conf *ring = oskr__conf_get(root, "ring_size");
		uint32_t next = 1;
		while (next < config->ring_size)
			next <<= 1;
		return oskr__conf_errorf(err, ring,
					 "%s: %" PRIu32
					 " is not a power of two (try %" PRIu32 ")",
					 ring->path, config->ring_size, next);
	}
	rc = read_owned_string(root, "control_socket", &config->control_socket,
			       err);
	if (!rc)
		rc = read_owned_string(root, "metrics_http",
				       &config->metrics_http, err);
	if (!rc && config->metrics_http) {
		/* Checked with %i as replica 0: the id may come from -i. */
		char *sample = oskr__expand_replica_id(config->metrics_http, 0);
		struct sockaddr_storage address;
		socklen_t address_len;
		bool ok = sample && oskr__parse_ip_port(sample, &address,
							&address_len) == 0;
		free(sample);
		if (!ok)
			return oskr__conf_errorf(
				err, oskr__conf_get(root, "metrics_http"),
				"metrics_http: expected ip:port (like "
				"127.0.0.1:9464, [::1]:9464 or 127.0.0.1:946%%i), "
				"got '%s'",
				config->metrics_http);
	}
	if (!rc)
		rc = read_owned_string(root, "state_dir", &config->state_dir,
				       err);
	if (rc)
		return rc;
	const struct oskr_conf *level = optional(root, "log_level");
	if (level) {
		char buf[64];
		if (level->kind != OSKR_CONF_SCALAR ||
		    oskr__log_level_parse(level->scalar, &config->log_level))
			return oskr__conf_errorf(err, level,
						 "%s: expected one of error, warn, info, debug, got %s",
						 level->path,
						 oskr__conf_describe(level, buf, sizeof(buf)));
	}
	return 0;
}

/* snapshot: {interval, keep} — when durable snapshots are written
 * (meaningful with state_dir only; accepted without it, so one file can
 * serve hosts with and without a state directory). */
static int load_snapshot(struct yaml_load *load, const struct oskr_conf *root)
{
	static const char *const keys[] = {"interval", "keep", NULL};
	struct oskr_config_snapshot *snapshot = &load->config->snapshot;
	char **err = load->err;
	const struct oskr_conf *map = optional(root, "snapshot");
	if (!map)
		return 0;
	int rc = expect_kind(map, OSKR_CONF_MAP,
			     "a mapping (interval, keep)", err);
	if (!rc)
		rc = oskr__conf_verify_keys(map, keys, err);
	/* at most a day: a longer one is a typo, "0" turns it off */
	if (!rc)
		rc = oskr__conf_read_ms(map, "interval", 0, 86400000,
					OSKR_SNAPSHOT_INTERVAL_MS_DEFAULT,
					&snapshot->interval_ms, err);
	if (!rc)
		rc = read_u32(map, "keep", 1, 1000,
			      OSKR_SNAPSHOT_KEEP_FILES_DEFAULT,
			      &snapshot->keep, err);
	return rc;
}

static int load_yaml(struct oskr_config *config, const char *file,
		     const char *text, size_t len, char **err)
{
	static const char *const keys[] = {
		"cluster",   "replica",	  "protocol",	    "app",
		"transport", "workers",	  "cores",	    "ring_size",
		"max_timers", "inline_receive", "control_socket", "metrics_http",
		"state_dir", "snapshot",
		"log_level", NULL,
	};
	int rc = oskr__conf_parse(file, text, len, &config->root, err);
	if (rc)
		return rc;
	const struct oskr_conf *root = config->root;
	char buf[64];
	if (root->kind != OSKR_CONF_MAP)
		return oskr__conf_errorf(err, root,
					 "expected a mapping at the top level (cluster:, protocol:, …), got %s",
					 oskr__conf_describe(root, buf, sizeof(buf)));
	char *dir = directory_of(file);
	if (!dir)
		return oskr__config_out_of_memory(err);
	struct yaml_load load = { .config = config, .dir = dir, .err = err };
	rc = oskr__conf_verify_keys(root, keys, err);
	if (!rc)
		rc = load_cluster(&load, root);
	if (!rc)
		rc = load_replica_section(&load, root);
	if (!rc)
		rc = load_protocol(&load, root);
	if (!rc)
		rc = load_app(&load, root);
	if (!rc)
		rc = load_transport(&load, root);
	if (!rc)
		rc = check_replica_addresses(&load, root);
	if (!rc)
		rc = load_daemon_settings(&load, root);
	if (!rc)
		rc = load_snapshot(&load, root);
	free(dir);
	return rc;
}

/* ---- EAL arguments from the environment ----
 *
 * The seed's cluster files name MACs only, and EAL arguments (cores,
 * --vdev, --file-prefix) differ per process anyway: the replicas and the
 * bench of one cluster share the file. So a process takes them from
 * OSKR_EAL_ARGS, split on blanks like the string form of transport.eal.
 * It fills in only what the file does not say: a file's transport.eal
 * wins (and the variable is reported as ignored, once per process).
 */

#define EAL_ARGS_ENV "OSKR_EAL_ARGS"

static int load_eal_env(struct oskr_config *config, char **err)
{
	/* One warning per process is enough (the bench loads the file once
	 * per client). */
	static atomic_flag warned = ATOMIC_FLAG_INIT;
	const char *text = getenv(EAL_ARGS_ENV);
	struct oskr_config_dpdk *dpdk = &config->dpdk;
	if (!text || config->transport != OSKR_TRANSPORT_DPDK)
		return 0;
	if (dpdk->eal_args) {
		if (!atomic_flag_test_and_set(&warned))
			OSKR_WARN("%s: transport.eal is set; ignoring "
				  EAL_ARGS_ENV,
				  config->file);
		return 0;
	}
	dpdk->eal_args = calloc(CONFIG_MAX_EAL_ARGS + 1,
				sizeof(*dpdk->eal_args));
	if (!dpdk->eal_args)
		return oskr__config_out_of_memory(err);
	for (const char *cursor = text;;) {
		cursor += strspn(cursor, " \t\r\n");
		if (!*cursor)
			return 0;
		if (dpdk->eal_arg_count >= CONFIG_MAX_EAL_ARGS)
			return oskr__errorf(err,
					    "%s: more than %d EAL arguments",
					    EAL_ARGS_ENV, CONFIG_MAX_EAL_ARGS);
		size_t len = strcspn(cursor, " \t\r\n");
		char *arg = strndup(cursor, len);
		if (!arg)
			return oskr__config_out_of_memory(err);
		dpdk->eal_args[dpdk->eal_arg_count++] = arg;
		cursor += len;
	}
}

/* ---- entry points ---- */

int oskr__config_load_string(const char *file, const char *text,
			     size_t len, struct oskr_config **out,
			     char **err)
{
	*out = NULL;
	if (!file)
		file = "<config>";
	struct oskr_config *config = calloc(1, sizeof(*config));
	if (!config)
		return oskr__config_out_of_memory(err);
	config_set_defaults(config);
	int rc;
	if (!(config->file = strdup(file))) {
		rc = oskr__config_out_of_memory(err);
		goto err_free;
	}
	if (len > CONFIG_MAX_TEXT) {
		rc = oskr__errorf(err, "%s: larger than %u bytes", file,
				  CONFIG_MAX_TEXT);
		goto err_free;
	}
	const char *nul = memchr(text, '\0', len);
	if (nul) {
		unsigned line = 1, column = 1;
		for (const char *p = text; p < nul; p++) {
			column = *p == '\n' ? 1 : column + 1;
			line += *p == '\n';
		}
		rc = oskr__errorf(err, "%s:%u:%u: NUL byte in a text file",
				  file, line, column);
		goto err_free;
	}
	if (oskr__config_is_seed_format(text, len))
		rc = oskr__config_load_seed(config, file, text, len, err);
	else
		rc = load_yaml(config, file, text, len, err);
	if (!rc)
		rc = load_eal_env(config, err);
	if (rc)
		goto err_free;
	*out = config;
	return 0;

err_free:
	oskr__config_free(config);
	return rc;
}

/* Reads at most CONFIG_MAX_TEXT + 1 bytes, so an oversized file is
 * detected without reading all of it. */
static int read_text(FILE *stream, const char *path, char **text,
		     size_t *len, char **err)
{
	*text = malloc(CONFIG_MAX_TEXT + 1);
	if (!*text)
		return oskr__config_out_of_memory(err);
	errno = 0;
	*len = fread(*text, 1, CONFIG_MAX_TEXT + 1, stream);
	if (ferror(stream)) {
		int saved = errno ? errno : EIO;
		free(*text);
		*text = NULL;
		oskr__errorf(err, "%s: %s", path, strerror(saved));
		return -saved;
	}
	return 0;
}

int oskr__config_load(const char *path, struct oskr_config **out,
		      char **err)
{
	*out = NULL;
	char *opened = strdup(path);
	if (!opened)
		return oskr__config_out_of_memory(err);
	FILE *stream = fopen(path, "rb");
	int rc;
	if (!stream && errno == ENOENT) {
		/* The seed's `-c deploy/shard0` names deploy/shard0.config. */
		free(opened);
		if (asprintf(&opened, "%s%s", path, SEED_SUFFIX) < 0)
			return oskr__config_out_of_memory(err);
		stream = fopen(opened, "rb");
		if (!stream && errno == ENOENT) {
			oskr__errorf(err, "%s: %s (nor %s)", path,
				     strerror(ENOENT), opened);
			rc = -ENOENT;
			goto err_free;
		}
	}
	if (!stream) {
		rc = -errno;
		oskr__errorf(err, "%s: %s", opened, strerror(-rc));
		goto err_free;
	}
	char *text = NULL;
	size_t len = 0;
	rc = read_text(stream, opened, &text, &len, err);
	fclose(stream);
	if (rc)
		goto err_free;
	rc = oskr__config_load_string(opened, text, len, out, err);
	free(text);

err_free:
	free(opened);
	return rc;
}
