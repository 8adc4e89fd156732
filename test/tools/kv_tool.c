/* SPDX-License-Identifier: MIT */
/*
 * kv_tool: write and verify keys of the kv app through liboskr-client,
 * for the durability and protocol-swap integration tests.
 *
 *   kv_tool -c CONFIG [-m PROTOCOL] put PREFIX COUNT   PREFIX-i = v-PREFIX-i
 *   kv_tool -c CONFIG [-m PROTOCOL] check PREFIX COUNT every key has its value
 *   kv_tool -c CONFIG [-m PROTOCOL] load PREFIX SECONDS  puts until time is up
 *
 * put/check stop at the first failure, naming the key; exit 0 only if
 * every operation succeeded. load prints how many puts completed; it runs
 * until SECONDS pass or a put fails (e.g. the replica was killed).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oskr/client.h>
#include <oskr/kv.h>

#define TIMEOUT_MS 5000

static struct oskr_client *client;

static double now_s(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + now.tv_nsec / 1e9;
}

static int invoke(const uint8_t *op, size_t op_len, uint8_t *result,
		  size_t capacity, size_t *result_len, const char *what)
{
	int rc = oskr_client_invoke(client, op, op_len, result, capacity,
				    result_len, TIMEOUT_MS);
	if (rc < 0)
		fprintf(stderr, "kv_tool: %s: %s\n", what, strerror(-rc));
	return rc;
}

static int put(const char *prefix, unsigned long i)
{
	char key[128], value[160];
	int key_len = snprintf(key, sizeof(key), "%s-%lu", prefix, i);
	int value_len = snprintf(value, sizeof(value), "v-%s", key);
	uint8_t op[512], result[64];
	size_t op_len = oskr_kv_encode_put(op, sizeof(op), key, (size_t)key_len,
					   value, (size_t)value_len);
	size_t result_len = 0;
	if (!op_len) {
		fprintf(stderr, "kv_tool: key too long\n");
		return -EINVAL;
	}
	int rc = invoke(op, op_len, result, sizeof(result), &result_len, key);
	if (rc < 0)
		return rc;
	if (oskr_kv_result_status(result, result_len) != OSKR_KV_OK) {
		fprintf(stderr, "kv_tool: put %s: status %d\n", key,
			oskr_kv_result_status(result, result_len));
		return -EIO;
	}
	return 0;
}

static int check(const char *prefix, unsigned long i)
{
	char key[128], value[160];
	int key_len = snprintf(key, sizeof(key), "%s-%lu", prefix, i);
	int value_len = snprintf(value, sizeof(value), "v-%s", key);
	uint8_t op[256], result[512];
	size_t op_len = oskr_kv_encode_get(op, sizeof(op), key,
					   (size_t)key_len);
	size_t result_len = 0;
	int rc = invoke(op, op_len, result, sizeof(result), &result_len, key);
	if (rc < 0)
		return rc;
	enum oskr_kv_status status = oskr_kv_result_status(result, result_len);
	if (status != OSKR_KV_OK) {
		fprintf(stderr, "kv_tool: get %s: %s\n", key,
			status == OSKR_KV_NOT_FOUND ? "not found"
						    : "error status");
		return -ENOENT;
	}
	if (result_len - 1 != (size_t)value_len ||
	    memcmp(result + 1, value, (size_t)value_len) != 0) {
		fprintf(stderr, "kv_tool: get %s: wrong value '%.*s'\n", key,
			(int)(result_len - 1), (const char *)result + 1);
		return -EIO;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: kv_tool -c CONFIG [-m PROTOCOL] "
			"put|check PREFIX COUNT | load PREFIX SECONDS\n");
}

int main(int argc, char **argv)
{
	const char *config = NULL, *protocol = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "c:m:")) != -1) {
		if (opt == 'c')
			config = optarg;
		else if (opt == 'm')
			protocol = optarg;
		else {
			usage();
			return 2;
		}
	}
	if (!config || argc - optind != 3) {
		usage();
		return 2;
	}
	const char *command = argv[optind], *prefix = argv[optind + 1];
	char *end;
	unsigned long count = strtoul(argv[optind + 2], &end, 10);
	if (*end || count == 0 || count > 10000000) {
		usage();
		return 2;
	}
	struct oskr_client_options options = {
		.size = sizeof(options),
		.protocol = protocol,
	};
	char err[512];
	int rc = oskr_client_open(&client, config, &options, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "kv_tool: %s\n", err);
		return 1;
	}
	unsigned long done = 0;
	if (!strcmp(command, "put") || !strcmp(command, "check")) {
		bool is_put = command[0] == 'p';
		for (; done < count; done++) {
			rc = is_put ? put(prefix, done) : check(prefix, done);
			if (rc < 0)
				break;
		}
		printf("%s %s: %lu of %lu ok\n", command, prefix, done, count);
	} else if (!strcmp(command, "load")) {
		double until = now_s() + (double)count;
		while (now_s() < until) {
			rc = put(prefix, done);
			if (rc < 0)
				break;
			done++;
		}
		printf("load %s: %lu puts\n", prefix, done);
		fflush(stdout);
	} else {
		usage();
		rc = -EINVAL;
	}
	oskr_client_close(client);
	return rc < 0 ? 1 : 0;
}
