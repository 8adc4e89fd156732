/* SPDX-License-Identifier: MIT */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "log.h"

/* ---- the seed's plain-text cluster files ----
 *
 *   f 1
 *   replica 12:34:56:aa:aa:aa%0      (one line per replica, in id order)
 *   multicast 01:00:5e:00:00:01%255  (optional)
 *
 * Keys live next to the file: PREFIX-N.pem, PREFIX being the file name
 * without ".config". A replica written as ip:port selects udp instead
 * of dpdk.
 */

bool oskr__config_is_seed_format(const char *text, size_t len)
{
	size_t i = 0;
	while (i < len) {
		while (i < len && (text[i] == ' ' || text[i] == '\t' ||
				   text[i] == '\r'))
			i++;
		if (i < len && text[i] != '\n' && text[i] != '#')
			return len - i >= 2 && text[i] == 'f' &&
			       (text[i + 1] == ' ' || text[i + 1] == '\t');
		while (i < len && text[i] != '\n')
			i++;
		i++;
	}
	return false;
}

struct seed_token {
	const char *text; /* not NUL terminated */
	size_t len;
	unsigned column;
};

struct seed_load {
	struct oskr_config *config;
	const char *file;
	char **err;
	size_t replica_capacity;
	bool has_f, by_address;
	unsigned f_line, f_column;
	unsigned multicast_line, multicast_column;
};

static int seed_error(struct seed_load *load, unsigned line, unsigned column,
		      const char *fmt, ...) OSKR_PRINTF(4, 5);
static int seed_error(struct seed_load *load, unsigned line, unsigned column,
		      const char *fmt, ...)
{
	char *message = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&message, fmt, ap) < 0)
		message = NULL;
	va_end(ap);
	oskr__errorf(load->err, "%s:%u:%u: %s", load->file, line, column,
		     message ? message : "out of memory");
	free(message);
	return -EINVAL;
}

static int seed_replica(struct seed_load *load, unsigned line,
			const struct seed_token *arg, const char *value)
{
	struct oskr_config *config = load->config;
	if (config->replica_count >= CONFIG_MAX_REPLICAS)
		return seed_error(load, line, arg->column,
				  "more than %d replicas", CONFIG_MAX_REPLICAS);
	if (config->replica_count == load->replica_capacity) {
		size_t grown = load->replica_capacity ? 2 * load->replica_capacity
						      : 8;
		struct oskr_config_replica *replicas =
			realloc(config->replicas, grown * sizeof(*replicas));
		if (!replicas)
			return oskr__config_out_of_memory(load->err);
		config->replicas = replicas;
		load->replica_capacity = grown;
	}
	uint32_t index = config->replica_count;
	struct oskr_config_replica *replica = &config->replicas[index];
	memset(replica, 0, sizeof(*replica));
	config->replica_count++;

	/* MAC%id has a '%'; anything else must be an ip:port. */
	bool by_address = !strchr(value, '%');
	const char *problem =
		by_address ? oskr__config_ip_port_problem(value, &replica->sockaddr,
					     &replica->sockaddr_len)
			   : oskr__config_mac_id_problem(value, replica->mac,
					    &replica->link_id);
	if (!problem && by_address && oskr__config_sockaddr_port(&replica->sockaddr) == 0)
		problem = "port 0 cannot receive";
	if (problem)
		return seed_error(load, line, arg->column,
				  "bad replica '%s': %s (expected MAC%%id like 12:34:56:aa:aa:aa%%0, or ip:port)",
				  value, problem);
	if (index > 0 && by_address != load->by_address)
		return seed_error(load, line, arg->column,
				  "replica %" PRIu32
				  " is %s but replica 0 is %s: one cluster uses one transport",
				  index, by_address ? "ip:port" : "MAC%id",
				  by_address ? "MAC%id" : "ip:port");
	load->by_address = by_address;
	if (by_address) {
		if (!(replica->address = strdup(value)))
			return oskr__config_out_of_memory(load->err);
	} else {
		replica->has_mac = true;
	}
	int other = oskr__config_find_duplicate_replica(config, index, by_address);
	if (other >= 0)
		return seed_error(load, line, arg->column,
				  "duplicate replica: %s is also replica %d",
				  value, other);
	return 0;
}

static int seed_line(struct seed_load *load, unsigned line,
		     const struct seed_token *tokens, size_t count)
{
	struct oskr_config *config = load->config;
	const struct seed_token *directive = &tokens[0];
	char name[16] = "";
	if (directive->len < sizeof(name))
		memcpy(name, directive->text, directive->len);
	bool is_f = strcmp(name, "f") == 0;
	bool is_replica = strcmp(name, "replica") == 0;
	bool is_multicast = strcmp(name, "multicast") == 0;
	if (!is_f && !is_replica && !is_multicast)
		return seed_error(load, line, directive->column,
				  "unknown line '%.*s' (expected f, replica or multicast)",
				  (int)(directive->len > 40 ? 40 : directive->len),
				  directive->text);
	if (count < 2)
		return seed_error(load, line,
				  directive->column + (unsigned)directive->len,
				  "missing value after '%s'", name);
	if (count > 2)
		return seed_error(load, line, tokens[2].column,
				  "unexpected '%.*s' after the value of '%s'",
				  (int)(tokens[2].len > 40 ? 40 : tokens[2].len),
				  tokens[2].text, name);
	const struct seed_token *arg = &tokens[1];
	char *value = strndup(arg->text, arg->len);
	if (!value)
		return oskr__config_out_of_memory(load->err);
	int rc = 0;
	if (is_f) {
		char *end = NULL;
		errno = 0;
		unsigned long long f = strtoull(value, &end, 10);
		if (load->has_f)
			rc = seed_error(load, line, directive->column,
					"a second 'f' line (the first is at line %u)",
					load->f_line);
		else if (value[0] < '0' || value[0] > '9' || *end ||
			 errno || f > UINT32_MAX)
			rc = seed_error(load, line, arg->column,
					"expected a non-negative integer after 'f', got '%s'",
					value);
		load->has_f = true;
		load->f_line = line;
		load->f_column = arg->column;
		config->fault_count = (uint32_t)f;
	} else if (is_replica) {
		rc = seed_replica(load, line, arg, value);
	} else if (config->dpdk.has_multicast) {
		rc = seed_error(load, line, directive->column,
				"a second 'multicast' line");
	} else {
		const char *problem = oskr__config_mac_id_problem(
			value, config->dpdk.multicast_mac,
			&config->dpdk.multicast_id);
		if (problem)
			rc = seed_error(load, line, arg->column,
					"bad multicast '%s': %s (expected MAC%%id like 01:00:5e:00:00:01%%255)",
					value, problem);
		config->dpdk.has_multicast = true;
		load->multicast_line = line;
		load->multicast_column = directive->column;
	}
	free(value);
	return rc;
}

int oskr__config_load_seed(struct oskr_config *config, const char *file,
		     const char *text, size_t len, char **err)
{
	struct seed_load load = { .config = config, .file = file, .err = err };
	unsigned line = 0;
	size_t i = 0;
	int rc;
	while (i < len) {
		line++;
		size_t end = i;
		while (end < len && text[end] != '\n')
			end++;
		/* Split the line [i, end) on blanks, stopping at '#'. */
		struct seed_token tokens[3];
		size_t count = 0;
		size_t cursor = i;
		while (cursor < end && text[cursor] != '#' && count < 3) {
			char c = text[cursor];
			if (c == ' ' || c == '\t' || c == '\r') {
				cursor++;
				continue;
			}
			tokens[count].text = text + cursor;
			tokens[count].column = (unsigned)(cursor - i + 1);
			while (cursor < end && text[cursor] != ' ' &&
			       text[cursor] != '\t' && text[cursor] != '\r' &&
			       text[cursor] != '#')
				cursor++;
			tokens[count].len =
				(size_t)(text + cursor - tokens[count].text);
			count++;
		}
		if (count > 0) {
			rc = seed_line(&load, line, tokens, count);
			if (rc)
				return rc;
		}
		i = end + 1;
	}
	if (config->replica_count == 0)
		return seed_error(&load, load.f_line, 1,
				  "no 'replica' lines: a cluster needs at least one replica");
	if (2 * (uint64_t)config->fault_count + 1 > config->replica_count)
		return seed_error(&load, load.f_line, load.f_column,
				  "f = %" PRIu32 " is too large for n = %" PRIu32
				  " replicas (need n >= 2f+1)",
				  config->fault_count, config->replica_count);
	config->transport = load.by_address ? OSKR_TRANSPORT_UDP
					    : OSKR_TRANSPORT_DPDK;
	if (load.by_address && config->dpdk.has_multicast)
		return seed_error(&load, load.multicast_line,
				  load.multicast_column,
				  "'multicast' needs MAC%%id replicas (the dpdk transport)");

	/* Keys: PREFIX-N.pem; the signer derives the public half. */
	size_t file_len = strlen(file);
	size_t suffix_len = strlen(SEED_SUFFIX);
	size_t prefix_len = file_len;
	if (file_len > suffix_len &&
	    strcmp(file + file_len - suffix_len, SEED_SUFFIX) == 0)
		prefix_len -= suffix_len;
	if (asprintf(&config->private_key, "%.*s-%%i.pem", (int)prefix_len,
		     file) < 0) {
		config->private_key = NULL;
		return oskr__config_out_of_memory(err);
	}
	for (uint32_t id = 0; id < config->replica_count; id++) {
		config->replicas[id].public_key =
			oskr__config_private_key_path(config, id);
		if (!config->replicas[id].public_key)
			return oskr__config_out_of_memory(err);
	}
	config->app = strdup("null");
	return config->app ? 0 : oskr__config_out_of_memory(err);
}

