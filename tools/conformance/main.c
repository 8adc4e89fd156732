/* SPDX-License-Identifier: MIT */
/*
 * oskr-plugin-test: the conformance kit for oskr protocol plugins.
 *
 * Loads any plugin .so (by name, looked up like oskrd does, or by path)
 * into the deterministic sim with n replicas and m clients and runs seeded
 * fault schedules against it: a clean network; drops with reordering;
 * duplicates; a crash of each replica; a partition of each replica that
 * then heals (and, on request, a restart or resume of each replica). Each run checks
 * safety and liveness (see run.c) and prints one line; a failure prints
 * the reason and the exact command that replays it from its seed. The exit
 * status is 0 when every run passed, 1 when one failed, 2 for a usage
 * error or a plugin that cannot be loaded.
 *
 * A plugin declares what it does not tolerate with --faults (e.g. a fixed
 * primary: --faults crash-primary-not-tolerated); those runs still check
 * safety, and are reported as "safety only".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "kit.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"
#include "daemon/loader.h"
#include "daemon/log.h"

#define MAX_SCHEDULES (3 + 3 * OSKR_SIM_MAX_REPLICAS)

static void usage(FILE *out, const char *program)
{
	fprintf(out,
		"Usage: %s [options] PLUGIN\n"
		"Run an oskr protocol plugin through seeded fault schedules on "
		"the\ndeterministic sim and check safety and liveness.\n\n"
		"  PLUGIN                a plugin name (found like oskrd finds "
		"it: $OSKR_PLUGIN_PATH,\n"
		"                        then the install's plugin dir) or a "
		"path to a .so\n"
		"  -n, --replicas N      replicas (default 4)\n"
		"  -f, --fault-threshold F\n"
		"                        f given to the plugin (default "
		"(n-1)/3)\n"
		"  -c, --clients M       closed-loop clients (default 4)\n"
		"  -r, --requests R      requests per run (default 300)\n"
		"  -s, --seeds K         seeds per schedule (default 3)\n"
		"      --seed S          first seed (default 1): runs seeds "
		"S..S+K-1\n"
		"  -a, --app APP         null or kv (default kv: results are "
		"checked)\n"
		"  -o, --options FILE    protocol.options: a YAML mapping in "
		"FILE\n"
		"      --options-yaml TEXT  the same, inline "
		"(e.g. 'batch_size: 4')\n"
		"  -S, --schedule LIST   comma-separated schedules or kinds "
		"(see -l); default\n"
		"                        none,drop-reorder,duplicate,crash,"
		"partition\n"
		"      --faults MODEL    the plugin's declared fault model, "
		"comma-separated:\n"
		"                        crash-primary-not-tolerated (replica 0 "
		"is a fixed primary),\n"
		"                        crash-not-tolerated, "
		"partition-not-tolerated; those runs\n"
		"                        check safety only\n"
		"      --drop-rate P     drop-reorder: loss probability "
		"(default 0.05)\n"
		"      --duplicate-rate P  duplicate: duplication probability "
		"(default 0.2)\n"
		"      --spread-ms MS    largest delay while reordering "
		"(default 2)\n"
		"      --fault-ms MS     how long a healed fault lasts "
		"(default 1000, virtual)\n"
		"      --bound-ms MS     liveness bound after the heal "
		"(default 60000, virtual)\n"
		"      --max-events N    per-run event budget, a livelock "
		"guard (default 50000000)\n"
		"      --converge        also require correct replicas to "
		"have executed\n"
		"                        the same number of ops at the end\n"
		"      --real-signatures P-256 signatures instead of the sim's "
		"fast scheme\n"
		"      --no-determinism  skip replaying the first run to "
		"compare traces\n"
		"      --counter NAME    show the plugin's counter NAME per "
		"replica (and summed\n"
		"                        over clients) after every run; "
		"repeatable\n"
		"  -l, --list            list the schedules for these options "
		"and exit\n"
		"  -v, --verbose         show plugin logs (repeat for more)\n"
		"  -h, --help            this text\n\n"
		"Exit status: 0 all runs passed, 1 a run failed, 2 usage or "
		"load error.\n",
		program);
}

enum long_only {
	OPT_SEED = 256,
	OPT_OPTIONS_YAML,
	OPT_FAULTS,
	OPT_DROP_RATE,
	OPT_DUPLICATE_RATE,
	OPT_SPREAD_MS,
	OPT_FAULT_MS,
	OPT_BOUND_MS,
	OPT_MAX_EVENTS,
	OPT_CONVERGE,
	OPT_REAL_SIGNATURES,
	OPT_NO_DETERMINISM,
	OPT_COUNTER,
};

static const struct option long_options[] = {
	{ "replicas", required_argument, NULL, 'n' },
	{ "fault-threshold", required_argument, NULL, 'f' },
	{ "clients", required_argument, NULL, 'c' },
	{ "requests", required_argument, NULL, 'r' },
	{ "seeds", required_argument, NULL, 's' },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "app", required_argument, NULL, 'a' },
	{ "options", required_argument, NULL, 'o' },
	{ "options-yaml", required_argument, NULL, OPT_OPTIONS_YAML },
	{ "schedule", required_argument, NULL, 'S' },
	{ "faults", required_argument, NULL, OPT_FAULTS },
	{ "drop-rate", required_argument, NULL, OPT_DROP_RATE },
	{ "duplicate-rate", required_argument, NULL, OPT_DUPLICATE_RATE },
	{ "spread-ms", required_argument, NULL, OPT_SPREAD_MS },
	{ "fault-ms", required_argument, NULL, OPT_FAULT_MS },
	{ "bound-ms", required_argument, NULL, OPT_BOUND_MS },
	{ "max-events", required_argument, NULL, OPT_MAX_EVENTS },
	{ "converge", no_argument, NULL, OPT_CONVERGE },
	{ "real-signatures", no_argument, NULL, OPT_REAL_SIGNATURES },
	{ "no-determinism", no_argument, NULL, OPT_NO_DETERMINISM },
	{ "counter", required_argument, NULL, OPT_COUNTER },
	{ "list", no_argument, NULL, 'l' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_u64(const char *what, const char *text, uint64_t min,
		     uint64_t max, uint64_t *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long long value = strtoull(text, &end, 10);
	if (errno || !end || end == text || *end || text[0] == '-' ||
	    value < min || value > max) {
		fprintf(stderr,
			"oskr-plugin-test: %s: '%s' is not a whole number in "
			"[%" PRIu64 ", %" PRIu64 "]\n",
			what, text, min, max);
		return -EINVAL;
	}
	*out = value;
	return 0;
}

static int parse_rate(const char *what, const char *text, double *out)
{
	char *end = NULL;
	errno = 0;
	double value = strtod(text, &end);
	if (errno || !end || end == text || *end || !(value >= 0) ||
	    value > 1) {
		fprintf(stderr,
			"oskr-plugin-test: %s: '%s' is not a probability in "
			"[0, 1]\n",
			what, text);
		return -EINVAL;
	}
	*out = value;
	return 0;
}

static int parse_faults(struct oskr__kit_options *options, const char *text)
{
	char *copy = strdup(text);
	if (!copy)
		return -ENOMEM;
	int ret = 0;
	char *saveptr = NULL;
	for (char *word = strtok_r(copy, ",", &saveptr); word;
	     word = strtok_r(NULL, ",", &saveptr)) {
		if (strcmp(word, "crash-primary-not-tolerated") == 0) {
			options->crash_primary_tolerated = false;
		} else if (strcmp(word, "crash-not-tolerated") == 0) {
			options->crash_tolerated = false;
		} else if (strcmp(word, "partition-not-tolerated") == 0) {
			options->partition_tolerated = false;
		} else if (strcmp(word, "all-tolerated") == 0) {
			/* the default, accepted for symmetry */
		} else {
			fprintf(stderr,
				"oskr-plugin-test: --faults: unknown '%s' "
				"(expected crash-primary-not-tolerated, "
				"crash-not-tolerated, partition-not-tolerated)\n",
				word);
			ret = -EINVAL;
			break;
		}
	}
	free(copy);
	return ret;
}

static char *read_file(const char *path)
{
	FILE *file = fopen(path, "r");
	if (!file) {
		fprintf(stderr, "oskr-plugin-test: %s: %s\n", path,
			strerror(errno));
		return NULL;
	}
	char *text = NULL;
	size_t len = 0, capacity = 0;
	for (;;) {
		if (len + 4096 + 1 > capacity) {
			capacity = capacity ? capacity * 2 : 8192;
			char *grown = realloc(text, capacity);
			if (!grown) {
				free(text);
				fclose(file);
				return NULL;
			}
			text = grown;
		}
		size_t got = fread(text + len, 1, 4096, file);
		len += got;
		if (got < 4096)
			break;
		if (len > (16u << 20)) {
			fprintf(stderr, "oskr-plugin-test: %s: larger than "
					"16 MiB\n", path);
			free(text);
			fclose(file);
			return NULL;
		}
	}
	bool bad = ferror(file);
	fclose(file);
	if (bad) {
		fprintf(stderr, "oskr-plugin-test: %s: read error\n", path);
		free(text);
		return NULL;
	}
	text[len] = '\0';
	return text;
}

/* Parse the options once here so that a YAML error names the user's file
 * (the sim names its copy "protocol_options"). */
static int load_protocol_options(struct oskr__kit_options *options)
{
	const char *name = options->options_file;
	if (options->options_file) {
		options->options_text = read_file(options->options_file);
		if (!options->options_text)
			return -EINVAL;
	} else if (options->options_inline) {
		name = "--options-yaml";
		options->options_text = strdup(options->options_inline);
		if (!options->options_text)
			return -ENOMEM;
	} else {
		return 0;
	}
	struct oskr_conf *root = NULL;
	char *err = NULL;
	int ret = oskr__conf_parse(name, options->options_text,
				   strlen(options->options_text), &root, &err);
	if (ret) {
		fprintf(stderr, "oskr-plugin-test: %s\n",
			err ? err : "bad protocol options");
		free(err);
		return ret;
	}
	bool mapping = !root || root->kind == OSKR_CONF_MAP ||
		       (root->kind == OSKR_CONF_SCALAR &&
			(!root->scalar || !root->scalar[0]));
	if (!mapping)
		fprintf(stderr,
			"oskr-plugin-test: %s:%u:%u: protocol options must be "
			"a mapping (key: value lines)\n",
			name, root->line, root->column);
	oskr__conf_free(root);
	return mapping ? 0 : -EINVAL;
}

/* ---- schedule selection ---- */

static bool default_schedule(const struct oskr__kit_schedule *schedule)
{
	return schedule->fault != OSKR_KIT_RESTART &&
	       schedule->fault != OSKR_KIT_RESUME;
}

static const char *kind_name(enum oskr__kit_fault fault)
{
	switch (fault) {
	case OSKR_KIT_NONE:
		return "none";
	case OSKR_KIT_DROP_REORDER:
		return "drop-reorder";
	case OSKR_KIT_DUPLICATE:
		return "duplicate";
	case OSKR_KIT_CRASH:
		return "crash";
	case OSKR_KIT_PARTITION:
		return "partition";
	case OSKR_KIT_RESTART:
		return "restart";
	case OSKR_KIT_RESUME:
		return "resume";
	}
	return "?";
}

/* Keep the schedules named in --schedule (names or kinds, or "all"). */
static int select_schedules(const char *list,
			    struct oskr__kit_schedule *schedules, size_t *count)
{
	bool keep[MAX_SCHEDULES] = { false };
	if (!list) {
		for (size_t i = 0; i < *count; i++)
			keep[i] = default_schedule(&schedules[i]);
	} else {
		char *copy = strdup(list);
		if (!copy)
			return -ENOMEM;
		char *saveptr = NULL;
		int ret = 0;
		for (char *word = strtok_r(copy, ",", &saveptr); word;
		     word = strtok_r(NULL, ",", &saveptr)) {
			bool matched = false;
			for (size_t i = 0; i < *count; i++) {
				if (strcmp(word, "all") == 0 ||
				    strcmp(word, schedules[i].name) == 0 ||
				    strcmp(word,
					   kind_name(schedules[i].fault)) == 0) {
					keep[i] = true;
					matched = true;
				}
			}
			if (!matched) {
				fprintf(stderr,
					"oskr-plugin-test: --schedule: no "
					"schedule '%s' (see --list)\n",
					word);
				ret = -EINVAL;
			}
		}
		free(copy);
		if (ret)
			return ret;
	}
	size_t kept = 0;
	for (size_t i = 0; i < *count; i++)
		if (keep[i])
			schedules[kept++] = schedules[i];
	*count = kept;
	return 0;
}

/* ---- the report ---- */

/* Append @p word to @p out shell-quoted. */
static void append_quoted(char *out, size_t len, const char *word)
{
	size_t at = strlen(out);
	bool plain = *word != '\0';
	for (const char *p = word; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789-_./=:,+@%", *p))
			plain = false;
	if (at && at + 1 < len)
		out[at++] = ' ';
	if (plain) {
		snprintf(out + at, len - at, "%s", word);
		return;
	}
	if (at < len)
		out[at++] = '\'';
	for (const char *p = word; *p && at + 5 < len; p++) {
		if (*p == '\'') {
			memcpy(out + at, "'\\''", 4);
			at += 4;
		} else {
			out[at++] = *p;
		}
	}
	if (at + 1 < len)
		out[at++] = '\'';
	out[at < len ? at : len - 1] = '\0';
}

static void append_option(char *out, size_t len, const char *flag,
			  const char *value)
{
	append_quoted(out, len, flag);
	append_quoted(out, len, value);
}

/* The command that replays exactly one run. */
static void reproduce_command(const struct oskr__kit_options *options,
			      const struct oskr__kit_schedule *schedule,
			      uint64_t seed, char *out, size_t len)
{
	char number[64];
	out[0] = '\0';
	append_quoted(out, len, options->argv[0]);
#define NUM(flag, fmt, value)                                          \
	do {                                                           \
		snprintf(number, sizeof(number), fmt, value);          \
		append_option(out, len, flag, number);                 \
	} while (0)
	NUM("-n", "%u", options->replica_count);
	NUM("-f", "%u", options->fault_count);
	NUM("-c", "%u", options->client_count);
	NUM("-r", "%" PRIu64, options->requests);
	append_option(out, len, "-a", options->app);
	if (options->options_file)
		append_option(out, len, "-o", options->options_file);
	else if (options->options_inline)
		append_option(out, len, "--options-yaml",
			      options->options_inline);
	if (options->faults_arg)
		append_option(out, len, "--faults", options->faults_arg);
	if (options->drop_rate != 0.05)
		NUM("--drop-rate", "%g", options->drop_rate);
	if (options->duplicate_rate != 0.2)
		NUM("--duplicate-rate", "%g", options->duplicate_rate);
	if (options->spread_ns != 2 * OSKR_KIT_MS)
		NUM("--spread-ms", "%" PRIu64, options->spread_ns / OSKR_KIT_MS);
	if (options->fault_ns != 1000 * OSKR_KIT_MS)
		NUM("--fault-ms", "%" PRIu64, options->fault_ns / OSKR_KIT_MS);
	if (options->bound_ns != 60000 * OSKR_KIT_MS)
		NUM("--bound-ms", "%" PRIu64, options->bound_ns / OSKR_KIT_MS);
	if (options->max_events != 50000000)
		NUM("--max-events", "%" PRIu64, options->max_events);
	if (options->check_convergence)
		append_quoted(out, len, "--converge");
	if (options->real_signatures)
		append_quoted(out, len, "--real-signatures");
	append_option(out, len, "--schedule", schedule->name);
	NUM("--seed", "%" PRIu64, seed);
	append_option(out, len, "--seeds", "1");
	append_quoted(out, len, "-v");
	append_quoted(out, len, options->plugin_path);
#undef NUM
}

static void print_result(const struct oskr__kit_options *options,
			 const struct oskr__kit_schedule *schedule,
			 uint64_t seed, const struct oskr__kit_result *result)
{
	const char *verdict = !result->passed	   ? "FAIL"
			      : result->safety_only ? "SAFE"
						    : "PASS";
	printf("%s  %-14s seed %-4" PRIu64 " %4" PRIu64 "/%-4" PRIu64
	       " done",
	       verdict, schedule->name, seed, result->completed,
	       options->requests);
	if (result->liveness_ok)
		printf(" t=%7.3fs", (double)result->done_at_ns / 1e9);
	else
		printf(" %10s", "-");
	printf("  msgs %6" PRIu64 " sent %5" PRIu64 " lost %5" PRIu64
	       " dup  events %8" PRIu64 "  executed",
	       result->net.sent, result->net.dropped, result->net.duplicated,
	       result->events);
	for (uint32_t r = 0; r < options->replica_count; r++)
		printf(" %s%" PRIu64, result->crashed[r] ? "x" : "",
		       result->executed[r]);
	printf("\n");
	for (size_t c = 0; c < options->counter_count; c++) {
		printf("      %s:", options->counters[c]);
		for (uint32_t r = 0; r < options->replica_count; r++)
			printf(" %" PRIu64, result->counters[c][r]);
		printf("  clients %" PRIu64 "\n",
		       result->counters[c][options->replica_count]);
	}
	if (!result->passed || result->safety_only)
		printf("      %s\n", result->why);
	fflush(stdout);
}

/* ---- main ---- */

static int parse_arguments(int argc, char **argv,
			   struct oskr__kit_options *options, bool *list)
{
	uint64_t value;
	bool f_given = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "n:f:c:r:s:a:o:S:lvh",
				  long_options, NULL)) != -1) {
		switch (opt) {
		case 'n':
			if (parse_u64("-n", optarg, 1, OSKR_SIM_MAX_REPLICAS,
				      &value))
				return -EINVAL;
			options->replica_count = (uint32_t)value;
			break;
		case 'f':
			if (parse_u64("-f", optarg, 0, OSKR_SIM_MAX_REPLICAS,
				      &value))
				return -EINVAL;
			options->fault_count = (uint32_t)value;
			f_given = true;
			break;
		case 'c':
			if (parse_u64("-c", optarg, 1, OSKR_SIM_MAX_CLIENTS,
				      &value))
				return -EINVAL;
			options->client_count = (uint32_t)value;
			break;
		case 'r':
			if (parse_u64("-r", optarg, 1, 10000000,
				      &options->requests))
				return -EINVAL;
			break;
		case 's':
			if (parse_u64("-s", optarg, 1, 1000000, &value))
				return -EINVAL;
			options->seed_count = (uint32_t)value;
			break;
		case OPT_SEED:
			if (parse_u64("--seed", optarg, 0, UINT64_MAX,
				      &options->first_seed))
				return -EINVAL;
			break;
		case 'a':
			if (strcmp(optarg, "null") && strcmp(optarg, "kv")) {
				fprintf(stderr, "oskr-plugin-test: -a: unknown "
						"app '%s' (expected null or "
						"kv)\n", optarg);
				return -EINVAL;
			}
			options->app = optarg;
			break;
		case 'o':
			options->options_file = optarg;
			break;
		case OPT_OPTIONS_YAML:
			options->options_inline = optarg;
			break;
		case 'S':
			options->schedule_arg = optarg;
			break;
		case OPT_FAULTS:
			options->faults_arg = optarg;
			if (parse_faults(options, optarg))
				return -EINVAL;
			break;
		case OPT_DROP_RATE:
			if (parse_rate("--drop-rate", optarg,
				       &options->drop_rate))
				return -EINVAL;
			break;
		case OPT_DUPLICATE_RATE:
			if (parse_rate("--duplicate-rate", optarg,
				       &options->duplicate_rate))
				return -EINVAL;
			break;
		case OPT_SPREAD_MS:
			if (parse_u64("--spread-ms", optarg, 1, 60000, &value))
				return -EINVAL;
			options->spread_ns = value * OSKR_KIT_MS;
			break;
		case OPT_FAULT_MS:
			if (parse_u64("--fault-ms", optarg, 1, 3600000, &value))
				return -EINVAL;
			options->fault_ns = value * OSKR_KIT_MS;
			break;
		case OPT_BOUND_MS:
			if (parse_u64("--bound-ms", optarg, 1, 36000000,
				      &value))
				return -EINVAL;
			options->bound_ns = value * OSKR_KIT_MS;
			break;
		case OPT_MAX_EVENTS:
			if (parse_u64("--max-events", optarg, 1000, UINT64_MAX,
				      &options->max_events))
				return -EINVAL;
			break;
		case OPT_CONVERGE:
			options->check_convergence = true;
			break;
		case OPT_REAL_SIGNATURES:
			options->real_signatures = true;
			break;
		case OPT_NO_DETERMINISM:
			options->determinism = false;
			break;
		case OPT_COUNTER:
			if (options->counter_count == OSKR_KIT_MAX_COUNTERS) {
				fprintf(stderr, "oskr-plugin-test: at most %d "
						"--counter\n",
					OSKR_KIT_MAX_COUNTERS);
				return -EINVAL;
			}
			options->counters[options->counter_count++] = optarg;
			break;
		case 'l':
			*list = true;
			break;
		case 'v':
			options->verbosity++;
			break;
		case 'h':
			usage(stdout, argv[0]);
			exit(0);
		default:
			usage(stderr, argv[0]);
			return -EINVAL;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "oskr-plugin-test: expected one PLUGIN (a name "
				"or a path to a .so)\n");
		usage(stderr, argv[0]);
		return -EINVAL;
	}
	options->plugin_arg = argv[optind];
	if (!f_given)
		options->fault_count = (options->replica_count - 1) / 3;
	if (options->options_file && options->options_inline) {
		fprintf(stderr, "oskr-plugin-test: give --options or "
				"--options-yaml, not both\n");
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct oskr__kit_options options = {
		.replica_count = 4,
		.client_count = 4,
		.requests = 300,
		.first_seed = 1,
		.seed_count = 3,
		.app = "kv",
		.crash_primary_tolerated = true,
		.crash_tolerated = true,
		.partition_tolerated = true,
		.drop_rate = 0.05,
		.duplicate_rate = 0.2,
		.spread_ns = 2 * OSKR_KIT_MS,
		.fault_ns = 1000 * OSKR_KIT_MS,
		.bound_ns = 60000 * OSKR_KIT_MS,
		.max_events = 50000000,
		.determinism = true,
		.argv = argv,
		.argc = argc,
	};
	bool list = false;
	if (parse_arguments(argc, argv, &options, &list))
		return 2;
	static const enum oskr_log_level levels[] = {
		OSKR_LOG_ERROR, OSKR_LOG_WARN, OSKR_LOG_INFO, OSKR_LOG_DEBUG,
	};
	oskr__log_set_level(levels[options.verbosity > 3 ? 3
							 : options.verbosity]);
	oskr__log_set_tag("oskr-plugin-test");

	struct oskr__kit_schedule schedules[MAX_SCHEDULES];
	size_t schedule_count =
		oskr__kit_schedules(&options, schedules, MAX_SCHEDULES);
	if (select_schedules(options.schedule_arg, schedules, &schedule_count))
		return 2;
	if (list) {
		struct oskr__kit_schedule all[MAX_SCHEDULES];
		size_t all_count =
			oskr__kit_schedules(&options, all, MAX_SCHEDULES);
		for (size_t i = 0; i < all_count; i++)
			printf("%-16s %s%s\n", all[i].name,
			       default_schedule(&all[i]) ? "default"
							 : "on request",
			       oskr__kit_liveness_required(&options, &all[i])
				       ? ""
				       : ", safety only (fault model)");
		return 0;
	}

	struct oskr_loaded_plugin loaded;
	char *err = NULL;
	if (oskr__plugin_load(options.plugin_arg, &loaded, &err)) {
		printf("FAIL  cannot load plugin: %s\n",
		       err ? err : options.plugin_arg);
		fprintf(stderr, "oskr-plugin-test: %s\n",
			err ? err : "cannot load the plugin");
		free(err);
		return 2;
	}
	options.plugin = loaded.descriptor;
	/* Shown and replayed as an absolute, clean path. */
	char *absolute = realpath(loaded.path, NULL);
	options.plugin_path = absolute ? absolute : loaded.path;
	if (load_protocol_options(&options)) {
		free(options.options_text);
		free(absolute);
		oskr__plugin_unload(&loaded);
		return 2;
	}

	const struct oskr_plugin *plugin = options.plugin;
	printf("oskr-plugin-test: %s %s (%s), ABI %u.%u\n", plugin->name,
	       plugin->version, options.plugin_path, plugin->abi_major,
	       plugin->abi_minor);
	printf("  n=%u f=%u clients=%u requests=%" PRIu64 " app=%s seeds=%"
	       PRIu64 "..%" PRIu64 " fault=%" PRIu64 "ms bound=%" PRIu64
	       "ms%s%s\n",
	       options.replica_count, options.fault_count,
	       options.client_count, options.requests, options.app,
	       options.first_seed, options.first_seed + options.seed_count - 1,
	       options.fault_ns / OSKR_KIT_MS, options.bound_ns / OSKR_KIT_MS,
	       options.options_text ? " options=" : "",
	       options.options_file	 ? options.options_file
	       : options.options_inline ? options.options_inline
					: "");
	printf("  fault model: %s%s%s%s%s\n",
	       options.fault_count == 0 || !options.crash_tolerated
		       ? "no crash tolerated"
	       : options.crash_primary_tolerated
		       ? "any one replica may crash"
		       : "backups may crash, replica 0 (the primary) may not",
	       options.partition_tolerated ? "; partitions heal"
					   : "; partitions not tolerated",
	       options.faults_arg ? " (declared: --faults " : "",
	       options.faults_arg ? options.faults_arg : "",
	       options.faults_arg ? ")" : "");
	printf("\n");
	fflush(stdout);

	uint64_t runs = 0, passed = 0, safety_only = 0, failed = 0;
	char (*reproduce)[1024] = calloc(16, sizeof(*reproduce));
	size_t reproduce_count = 0;
	bool replayed = !options.determinism;
	for (size_t i = 0; i < schedule_count; i++) {
		for (uint32_t s = 0; s < options.seed_count; s++) {
			uint64_t seed = options.first_seed + s;
			struct oskr__kit_result result;
			int started = oskr__kit_run(&options, &schedules[i],
						    seed, &result);
			runs++;
			print_result(&options, &schedules[i], seed, &result);
			if (!result.passed) {
				failed++;
				char command[1024];
				reproduce_command(&options, &schedules[i], seed,
						  command, sizeof(command));
				printf("      reproduce: %s\n", command);
				if (reproduce && reproduce_count < 16)
					memcpy(reproduce[reproduce_count++],
					       command, sizeof(command));
				if (started < 0) {
					/* config_check or an init refused:
					 * every other run would fail alike. */
					printf("      (stopping: the plugin does "
					       "not start with these options)\n");
					i = schedule_count;
					break;
				}
				continue;
			}
			if (result.safety_only)
				safety_only++;
			else
				passed++;
			if (replayed)
				continue;
			/* One replay shows whether a seed pins the whole run:
			 * a plugin drawing on the wall clock or its own
			 * randomness makes failures unreproducible. */
			replayed = true;
			struct oskr__kit_result again;
			oskr__kit_run(&options, &schedules[i], seed, &again);
			if (again.trace_digest != result.trace_digest ||
			    again.completed != result.completed)
				printf("WARN  %s seed %" PRIu64 " ran differently "
				       "twice (trace %016" PRIx64 " then %016"
				       PRIx64 "): the plugin depends on "
				       "something outside the sim (wall clock, "
				       "getrandom, pointer values); a failure "
				       "may not replay from its seed\n",
				       schedules[i].name, seed,
				       result.trace_digest, again.trace_digest);
			else
				printf("      (replayed %s seed %" PRIu64 ": "
				       "identical trace %016" PRIx64 ")\n",
				       schedules[i].name, seed,
				       result.trace_digest);
		}
	}

	printf("\n%s: %" PRIu64 " runs: %" PRIu64 " passed, %" PRIu64
	       " safety only (outside the declared fault model), %" PRIu64
	       " failed\n",
	       plugin->name, runs, passed, safety_only, failed);
	for (size_t i = 0; i < reproduce_count; i++)
		printf("  reproduce: %s\n", reproduce[i]);
	if (failed > reproduce_count)
		printf("  (%" PRIu64 " more failures above)\n",
		       failed - reproduce_count);
	free(reproduce);
	free(options.options_text);
	free(absolute);
	oskr__plugin_unload(&loaded);
	return failed ? 1 : 0;
}
