/* SPDX-License-Identifier: MIT */
/*
 * The configuration parser: the libyaml-backed tree (daemon/conf_tree.c,
 * oskr__conf_parse) and the validation into struct oskr_config
 * (daemon/config.c, oskr__config_load_string), including the seed's
 * plain-text cluster format. A config file is trusted more than a packet,
 * but `oskrd --check-config` is run on files being edited, and a parser
 * crash there is still a bug.
 *
 * Properties: parse either fails with a message naming the file or gives
 * a well-formed tree (every map key a scalar, counts and arrays agree,
 * positions 1-based); every typed reader on every node either reads or
 * fails with a message; a loaded config is consistent (n >= 1, f fits,
 * every replica has an endpoint, key paths expand).
 */
#include <string.h>

#include "daemon/config.h"
#include "daemon/log.h"
#include "fuzz.h"

#define FILE_NAME "/fuzz/etc/cluster.yaml"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* Readers that log are not used here; keep stderr quiet anyway. */
	oskr__log_set_level(OSKR_LOG_ERROR);
	return 0;
}

static void expect_error(int rc, char *err)
{
	if (rc == 0) {
		FUZZ_CHECK(err == NULL);
		return;
	}
	FUZZ_CHECK(rc < 0);
	FUZZ_CHECK(err != NULL && err[0] != '\0');
}

static void read_all_ways(const struct oskr_conf *map, const char *key)
{
	uint64_t u64;
	bool flag;
	const char *text;
	char *err = NULL;
	int rc = oskr__conf_read_u64(map, key, 0, UINT64_MAX, 7, &u64, &err);
	expect_error(rc, err);
	free(err);
	err = NULL;
	rc = oskr__conf_read_u64(map, key, 3, 1000, 7, &u64, &err);
	expect_error(rc, err);
	if (rc == 0)
		FUZZ_CHECK(u64 >= 3 && u64 <= 1000);
	free(err);
	err = NULL;
	rc = oskr__conf_read_bool(map, key, false, &flag, &err);
	expect_error(rc, err);
	free(err);
	err = NULL;
	rc = oskr__conf_read_ms(map, key, 1, 60000, 100, &u64, &err);
	expect_error(rc, err);
	if (rc == 0)
		FUZZ_CHECK(u64 >= 1 && u64 <= 60000);
	free(err);
	err = NULL;
	rc = oskr__conf_read_string(map, key, "default", &text, &err);
	expect_error(rc, err);
	if (rc == 0)
		FUZZ_CHECK(text != NULL);
	free(err);
}

/* Depth is bounded by the parser (64 levels), so recursion is safe. */
static void walk(const struct oskr_conf *node, unsigned depth)
{
	FUZZ_CHECK(depth <= 70);
	FUZZ_CHECK(node->line >= 1 && node->column >= 1);
	FUZZ_CHECK(node->path != NULL && node->file != NULL);
	char shown[64];
	const char *described = oskr__conf_describe(node, shown, sizeof(shown));
	FUZZ_CHECK(described && strlen(described) < sizeof(shown));
	(void)oskr__conf_is_null(node);
	switch (node->kind) {
	case OSKR_CONF_SCALAR:
		FUZZ_CHECK(node->scalar != NULL);
		FUZZ_CHECK(node->count == 0);
		{
			uint64_t value;
			char *err = NULL;
			int rc = oskr__conf_node_u64(node, 0, 65535, &value,
						     &err);
			expect_error(rc, err);
			free(err);
		}
		break;
	case OSKR_CONF_MAP: {
		FUZZ_CHECK(node->count == 0 || (node->keys && node->values));
		static const char *const allowed[] = { "a", "f", NULL };
		char *err = NULL;
		int rc = oskr__conf_verify_keys(node, allowed, &err);
		expect_error(rc, err);
		free(err);
		for (size_t i = 0; i < node->count; i++) {
			const struct oskr_conf *key = node->keys[i];
			FUZZ_CHECK(key->kind == OSKR_CONF_SCALAR);
			FUZZ_CHECK(oskr__conf_get(node, key->scalar) != NULL);
			read_all_ways(node, key->scalar);
			walk(node->values[i], depth + 1);
		}
		read_all_ways(node, "absent-key");
		break;
	}
	case OSKR_CONF_SEQ:
		FUZZ_CHECK(node->count == 0 || node->values);
		for (size_t i = 0; i < node->count; i++)
			walk(node->values[i], depth + 1);
		break;
	default:
		FUZZ_CHECK(!"unknown node kind");
	}
}

static void check_config(const struct oskr_config *config)
{
	FUZZ_CHECK(config->replica_count >= 1 && config->replicas);
	FUZZ_CHECK(config->replica_id < (int32_t)config->replica_count);
	FUZZ_CHECK(config->workers >= 1);
	FUZZ_CHECK(config->ring_size &&
		   (config->ring_size & (config->ring_size - 1)) == 0);
	for (uint32_t i = 0; i < config->replica_count; i++) {
		const struct oskr_config_replica *replica = &config->replicas[i];
		FUZZ_CHECK(replica->address || replica->has_mac);
		if (replica->public_key)
			fuzz_touch((const uint8_t *)replica->public_key,
				   strlen(replica->public_key));
		char *key = oskr__config_private_key_path(config, i);
		FUZZ_CHECK(!config->private_key || key);
		free(key);
	}
	for (size_t i = 0; i < config->dpdk.eal_arg_count; i++)
		FUZZ_CHECK(config->dpdk.eal_args[i]);
	FUZZ_CHECK(!config->dpdk.eal_args ||
		   !config->dpdk.eal_args[config->dpdk.eal_arg_count]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct oskr_conf *root = NULL;
	char *err = NULL;
	int rc = oskr__conf_parse(FILE_NAME, text, size, &root, &err);
	expect_error(rc, err);
	if (rc == 0) {
		FUZZ_CHECK(root != NULL);
		walk(root, 0);
	} else {
		FUZZ_CHECK(root == NULL);
		FUZZ_CHECK(strncmp(err, FILE_NAME, strlen(FILE_NAME)) == 0 ||
			   strstr(err, "out of memory"));
	}
	oskr__conf_free(root);
	free(err);

	struct oskr_config *config = NULL;
	err = NULL;
	rc = oskr__config_load_string(FILE_NAME, text, size, &config, &err);
	expect_error(rc, err);
	if (rc == 0)
		check_config(config);
	else
		FUZZ_CHECK(config == NULL);
	oskr__config_free(config);
	free(err);
	return 0;
}
