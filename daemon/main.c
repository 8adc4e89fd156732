/* SPDX-License-Identifier: MIT */
/*
 * oskrd: one process per replica. It owns the transport, the worker pool,
 * timers, keys and the application, and runs the protocol plugin named in
 * the config. The main thread only handles signals (sigtimedwait): SIGINT
 * and SIGTERM stop gracefully, SIGHUP re-reads the config.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <oskr/plugin.h>

#include "config.h"
#include "control.h"
#include "metrics_http.h"
#include "loader.h"
#include "log.h"
#include "notify.h"
#include "replica.h"
#include "signer.h"
#include "timer.h"

struct options {
	const char *config_path;
	const char *protocol; /* -m: overrides the config */
	long replica_id; /* -1 = from config */
	bool check_config;
	const char *log_level;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: oskrd -c CONFIG [-i REPLICA_ID] [-m PROTOCOL] "
		"[options]\n"
		"Run one replica of an oskr cluster.\n\n"
		"  -c, --config FILE      cluster config (YAML, or the seed's "
		"plain-text\n"
		"                         cluster file; FILE.config is tried "
		"too)\n"
		"  -i, --id N             this replica's id (overrides "
		"replica.id)\n"
		"  -m, --protocol NAME    protocol plugin name or .so path "
		"(overrides protocol)\n"
		"      --check-config     validate config, plugin options and "
		"keys, then exit\n"
		"  -l, --log-level LEVEL  error|warn|info|debug (overrides "
		"log_level)\n"
		"  -h, --help             show this help\n"
		"  -V, --version          show version and plugin ABI\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option long_options[] = {
		{"config", required_argument, NULL, 'c'},
		{"id", required_argument, NULL, 'i'},
		{"protocol", required_argument, NULL, 'm'},
		{"check-config", no_argument, NULL, 'C'},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	*o = (struct options){.replica_id = -1};
	int opt;
	while ((opt = getopt_long(argc, argv, "c:i:m:l:hV", long_options,
				  NULL)) != -1) {
		switch (opt) {
		case 'c':
			o->config_path = optarg;
			break;
		case 'i': {
			char *end;
			errno = 0;
			o->replica_id = strtol(optarg, &end, 10);
			if (errno || *end || o->replica_id < 0 ||
			    o->replica_id > 1000000) {
				fprintf(stderr,
					"oskrd: -i: '%s' is not a replica id\n",
					optarg);
				return 2;
			}
			break;
		}
		case 'm':
			o->protocol = optarg;
			break;
		case 'C':
			o->check_config = true;
			break;
		case 'l':
			o->log_level = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("oskrd %s (plugin ABI %d.%d)\n", OSKR_VERSION,
			       OSKR_ABI_MAJOR, OSKR_ABI_MINOR);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "oskrd: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	if (!o->config_path) {
		fprintf(stderr, "oskrd: -c CONFIG is required\n");
		usage(stderr);
		return 2;
	}
	return 0;
}

/* config_check runs before any instance exists: it gets a host table with
 * only the config accessors and logging. */
static void check_log(struct oskr_ctx *ctx, enum oskr_log_level level,
		      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	oskr__vlog(level, "config_check", fmt, ap);
	va_end(ap);
}

static const struct oskr_host config_check_host = {
	.size = sizeof(struct oskr_host),
	.abi_major = OSKR_ABI_MAJOR,
	.abi_minor = OSKR_ABI_MINOR,
	.conf_u64 = oskr__conf_u64,
	.conf_bool = oskr__conf_bool,
	.conf_ms = oskr__conf_ms,
	.conf_check_keys = oskr__conf_check_keys,
	.log = check_log,
};

/* Keys are checked by building (and dropping) the signer: permissions of
 * the private key, every public key readable and of one type. */
static int check_keys(const struct oskr_config *config, uint32_t replica_id,
		      char **err)
{
	char *private_key = oskr__config_private_key_path(config, replica_id);
	const char **public_keys =
		calloc(config->replica_count, sizeof(*public_keys));
	if (!private_key || !public_keys) {
		free(private_key);
		free(public_keys);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < config->replica_count; i++)
		public_keys[i] = config->replicas[i].public_key;
	struct oskr_signer *signer = NULL;
	int rc = oskr__signer_create(&signer, private_key, public_keys,
				     config->replica_count, err);
	oskr__signer_free(signer);
	free(private_key);
	free(public_keys);
	return rc;
}

/* SIGHUP: re-read the file; apply what is safe live (log level), report
 * what needs a restart, and keep running on the old config if the new one
 * is invalid — never half-apply. */
static void reload_config(const struct options *o,
			  const struct oskr_config *running)
{
	struct oskr_config *fresh = NULL;
	char *err = NULL;
	if (oskr__config_load(o->config_path, &fresh, &err) < 0) {
		OSKR_ERROR("reload: %s; keeping the running configuration",
			   err);
		free(err);
		return;
	}
	if (!o->log_level && fresh->log_level != oskr__log_get_level()) {
		oskr__log_set_level(fresh->log_level);
		OSKR_WARN("reload: log_level is now %s",
			  oskr__log_level_name(fresh->log_level));
	}
	bool restart = false;
	if (!o->protocol &&
	    strcmp(fresh->protocol ? fresh->protocol : "",
		   running->protocol ? running->protocol : "") != 0)
		restart = true;
	if (fresh->replica_count != running->replica_count ||
	    fresh->fault_count != running->fault_count ||
	    fresh->workers != running->workers ||
	    fresh->inline_receive != running->inline_receive ||
	    fresh->transport != running->transport ||
	    strcmp(fresh->app ? fresh->app : "",
		   running->app ? running->app : "") != 0)
		restart = true;
	if (strcmp(fresh->state_dir ? fresh->state_dir : "",
		   running->state_dir ? running->state_dir : "") != 0 ||
	    fresh->snapshot.interval_ms != running->snapshot.interval_ms ||
	    fresh->snapshot.keep != running->snapshot.keep)
		restart = true;
	if (restart)
		OSKR_WARN("reload: %s changes cluster, protocol, app, "
			  "transport, workers, inline_receive, state_dir or "
			  "snapshot: those apply only after a restart",
			  o->config_path);
	else
		OSKR_INFO("reload: %s re-read", o->config_path);
	oskr__config_free(fresh);
}

static void publish_status(struct oskr_replica *replica,
			   const struct oskr_plugin *plugin)
{
	if (!oskr__notify_enabled())
		return;
	struct oskr_replica_status s;
	oskr__replica_status(replica, &s);
	char line[256];
	snprintf(line, sizeof(line),
		 "STATUS=%s view %llu leader %d committed %llu executed %llu",
		 plugin->name, (unsigned long long)s.view, s.leader,
		 (unsigned long long)s.committed,
		 (unsigned long long)s.executed);
	oskr__notify(line);
}

static int run(const struct options *o, struct oskr_config *config,
	       const struct oskr_plugin *plugin, const char *plugin_path,
	       uint32_t replica_id)
{
	char *err = NULL;
	/* Signals go to this thread only: block them before any thread
	 * starts so workers inherit the mask. */
	sigset_t signals;
	sigemptyset(&signals);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct oskr_replica *replica = NULL;
	int rc = oskr__replica_create(&replica, config, replica_id, plugin,
				      &err);
	if (rc < 0) {
		OSKR_ERROR("%s", err);
		free(err);
		return 1;
	}
	rc = oskr__replica_start(replica, &err);
	if (rc < 0) {
		OSKR_ERROR("%s", err);
		free(err);
		oskr__replica_free(replica);
		return 1;
	}
	/* The control socket and the HTTP metrics (docs/operations.md)
	 * come up before READY=1 and go down before the replica stops. */
	const struct oskr_control_target target = {
		.replica = replica,
		.config = config,
		.plugin = plugin,
		.plugin_path = plugin_path,
		.replica_id = replica_id,
	};
	struct oskr_control *control = NULL;
	if (config->control_socket) {
		if (oskr__control_start(&control, &target, &err) < 0) {
			OSKR_ERROR("%s", err);
			free(err);
			oskr__replica_stop(replica);
			oskr__replica_free(replica);
			return 1;
		}
	}
	/* GET /metrics for Prometheus, the same text as `oskrctl metrics`. */
	struct oskr_metrics_http *metrics_http = NULL;
	if (config->metrics_http) {
		if (oskr__metrics_http_start(&metrics_http, &target, &err) <
		    0) {
			OSKR_ERROR("%s", err);
			free(err);
			oskr__control_stop(control);
			oskr__replica_stop(replica);
			oskr__replica_free(replica);
			return 1;
		}
	}
	OSKR_INFO("replica %u ready: protocol %s %s, %u replicas (f=%u), "
		  "%u workers, app %s",
		  replica_id, plugin->name, plugin->version,
		  config->replica_count, config->fault_count, config->workers,
		  config->app ? config->app : "null");
	oskr__notify("READY=1");

	uint64_t watchdog_usec = oskr__notify_watchdog_usec();
	uint64_t last_heartbeat = 0;
	for (;;) {
		struct timespec wait = {.tv_sec = 1};
		if (watchdog_usec && watchdog_usec < 2000000) {
			wait.tv_sec = 0;
			wait.tv_nsec = (long)(watchdog_usec * 1000 / 2);
		}
		int sig = sigtimedwait(&signals, NULL, &wait);
		if (sig == SIGINT || sig == SIGTERM) {
			OSKR_INFO("%s: stopping", strsignal(sig));
			break;
		}
		if (sig == SIGHUP)
			reload_config(o, config);
		publish_status(replica, plugin);
		if (watchdog_usec) {
			/* Ping only while the worker pool makes progress
			 * (its heartbeat moves even when idle). */
			struct oskr_replica_status s;
			oskr__replica_status(replica, &s);
			if (s.heartbeat != last_heartbeat)
				oskr__notify("WATCHDOG=1");
			last_heartbeat = s.heartbeat;
		}
	}
	oskr__notify("STOPPING=1");
	oskr__metrics_http_stop(metrics_http);
	oskr__control_stop(control);
	oskr__replica_stop(replica);
	oskr__replica_free(replica);
	OSKR_INFO("stopped");
	return 0;
}

int main(int argc, char **argv)
{
	struct options o;
	int rc = parse_options(argc, argv, &o);
	if (rc)
		return rc;
	char *err = NULL;
	struct oskr_config *config = NULL;
	if (oskr__config_load(o.config_path, &config, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		free(err);
		return 1;
	}
	oskr__log_set_level(config->log_level);
	if (o.log_level) {
		enum oskr_log_level level;
		if (oskr__log_level_parse(o.log_level, &level) < 0) {
			fprintf(stderr,
				"oskrd: --log-level: '%s' is not one of "
				"error, warn, info, debug\n",
				o.log_level);
			oskr__config_free(config);
			return 2;
		}
		oskr__log_set_level(level);
	}
	int exit_code = 1;
	const char *protocol = o.protocol ? o.protocol : config->protocol;
	if (!protocol) {
		fprintf(stderr,
			"%s: no protocol: set `protocol:` in the config or "
			"pass -m NAME\n",
			config->file);
		goto out_config;
	}
	struct oskr_loaded_plugin plugin;
	if (oskr__plugin_load(protocol, &plugin, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		goto out_config;
	}
	const struct oskr_plugin *descriptor = plugin.descriptor;
	if (descriptor->config_check &&
	    descriptor->config_check(&config_check_host,
				     config->protocol_options,
				     config->replica_count,
				     config->fault_count) < 0) {
		const char *why = oskr__conf_last_error();
		fprintf(stderr, "%s: protocol %s rejects this configuration%s%s\n",
			config->file, descriptor->name,
			why && why[0] ? ": " : "", why ? why : "");
		goto out_plugin;
	}
	long replica_id = o.replica_id >= 0 ? o.replica_id
					    : config->replica_id;
	if (replica_id >= (long)config->replica_count) {
		fprintf(stderr,
			"%s: replica id %ld is out of range (the cluster has "
			"%u replicas)\n",
			config->file, replica_id, config->replica_count);
		goto out_plugin;
	}
	char tag[32];
	snprintf(tag, sizeof(tag), "oskrd[%ld]", replica_id);
	oskr__log_set_tag(tag);

	if (o.check_config) {
		if (replica_id >= 0 &&
		    check_keys(config, (uint32_t)replica_id, &err) < 0) {
			fprintf(stderr, "%s\n", err);
			goto out_plugin;
		}
		printf("%s: configuration OK: protocol %s %s (%s), %u "
		       "replicas, f=%u%s\n",
		       config->file, descriptor->name, descriptor->version,
		       plugin.path, config->replica_count,
		       config->fault_count,
		       replica_id >= 0 ? ", keys OK"
				       : " (no replica id: keys not checked)");
		exit_code = 0;
		goto out_plugin;
	}
	if (replica_id < 0) {
		fprintf(stderr,
			"%s: no replica id: set replica.id in the config or "
			"pass -i N\n",
			config->file);
		goto out_plugin;
	}
	exit_code = run(&o, config, descriptor, plugin.path,
			(uint32_t)replica_id);

out_plugin:
	oskr__plugin_unload(&plugin);
out_config:
	free(err);
	oskr__config_free(config);
	return exit_code;
}
