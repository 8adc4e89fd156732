/* SPDX-License-Identifier: MIT */
/*
 * What the control socket answers, as text: the `status` lines, the
 * `metrics` page (Prometheus text format 0.0.4) and the effective
 * `config` with secrets redacted; plus the bounded text buffer and the
 * task latency histogram they are built from. No sockets here: the
 * server is control.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "control.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "replica.h"

/* ---- text buffer ---- */

void oskr__text_init(struct oskr__text *text, size_t limit)
{
	*text = (struct oskr__text){.limit = limit};
}

void oskr__text_reset(struct oskr__text *text)
{
	text->len = 0;
	text->overflow = false;
	if (text->data)
		text->data[0] = '\0';
}

void oskr__text_free(struct oskr__text *text)
{
	free(text->data);
	*text = (struct oskr__text){.limit = text->limit};
}

void oskr__text_printf(struct oskr__text *text, const char *fmt, ...)
{
	if (text->overflow)
		return;
	for (int attempt = 0; attempt < 2; attempt++) {
		size_t room = text->capacity - text->len;
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(text->data ? text->data + text->len : NULL,
				  room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			text->overflow = true;
			return;
		}
		if ((size_t)n < room) {
			text->len += (size_t)n;
			return;
		}
		size_t need = text->len + (size_t)n + 1;
		if (need > text->limit) {
			text->overflow = true;
			if (text->data)
				text->data[text->len] = '\0';
			return;
		}
		size_t grown = text->capacity ? text->capacity : 4096;
		while (grown < need)
			grown *= 2;
		if (grown > text->limit)
			grown = text->limit;
		char *data = realloc(text->data, grown);
		if (!data) {
			text->overflow = true;
			return;
		}
		text->data = data;
		text->capacity = grown;
	}
}

/* ---- latency ---- */

const uint64_t oskr__latency_bounds_ns[OSKR_LATENCY_BUCKETS] = {
	1000,	 2500,	  5000,	    10000,    25000,	50000,
	100000,	 250000,  500000,   1000000,  2500000,	5000000,
	10000000, 25000000, 100000000, 1000000000,
};

void oskr__latency_accumulate(const struct oskr__latency_histogram *h,
			      struct oskr__latency_totals *totals)
{
	for (unsigned i = 0; i <= OSKR_LATENCY_BUCKETS; i++)
		totals->counts[i] += atomic_load_explicit(
			&h->counts[i], memory_order_relaxed);
	totals->sum_ns += atomic_load_explicit(&h->sum_ns,
					       memory_order_relaxed);
}

const char *oskr__task_kind_name(enum oskr__task_kind kind)
{
	switch (kind) {
	case OSKR_TASK_STATELESS:
		return "stateless";
	case OSKR_TASK_STATEFUL:
		return "stateful";
	default:
		return "unknown";
	}
}

/* ---- status ---- */

static const char *role_of(const struct oskr_control_view *view)
{
	if (view->leader < 0)
		return "unknown";
	return (uint32_t)view->leader == view->replica_id ? "leader" : "backup";
}

void oskr__control_render_status(struct oskr__text *out,
				 const struct oskr_control_view *v)
{
	oskr__text_printf(out, "replica: %" PRIu32 "\n", v->replica_id);
	oskr__text_printf(out, "pid: %ld\n", (long)getpid());
	oskr__text_printf(out, "oskrd_version: %s\n", OSKR_VERSION);
	oskr__text_printf(out, "protocol: %s\n", v->protocol);
	oskr__text_printf(out, "protocol_version: %s\n", v->protocol_version);
	oskr__text_printf(out, "app: %s\n", v->app);
	oskr__text_printf(out, "role: %s\n", role_of(v));
	oskr__text_printf(out, "view: %" PRIu64 "\n", v->view);
	oskr__text_printf(out, "leader: %" PRId32 "\n", v->leader);
	oskr__text_printf(out, "last_committed: %" PRIu64 "\n", v->committed);
	oskr__text_printf(out, "last_executed: %" PRIu64 "\n", v->executed);
	oskr__text_printf(out, "uptime_seconds: %.3f\n", v->uptime_ns / 1e9);
	oskr__text_printf(out, "workers: %u\n", v->workers);
	oskr__text_printf(out, "stateless_queue: %" PRIu64 "\n",
			  v->stateless_queued);
	oskr__text_printf(out, "stateful_queue: %" PRIu64 "\n",
			  v->stateful_queued);
	oskr__text_printf(out, "log_level: %s\n",
			  oskr__log_level_name(oskr__log_get_level()));
	oskr__text_printf(out, "app_applied: %" PRIu64 "\n", v->applied);
	oskr__text_printf(out, "state_dir: %s\n",
			  v->state_dir ? v->state_dir : "none");
	if (!v->state_dir)
		return;
	oskr__text_printf(out, "restored_applied: %" PRIu64 "\n",
			  v->restored_applied);
	if (v->snapshots_written) {
		oskr__text_printf(out, "snapshot_applied: %" PRIu64 "\n",
				  v->snapshot_applied);
		oskr__text_printf(out, "snapshot_bytes: %" PRIu64 "\n",
				  v->snapshot_bytes);
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		uint64_t now_ms = (uint64_t)now.tv_sec * 1000 +
				  (uint64_t)now.tv_nsec / 1000000;
		oskr__text_printf(out, "snapshot_age_seconds: %.3f\n",
				  now_ms > v->snapshot_unix_ms
					  ? (now_ms - v->snapshot_unix_ms) / 1e3
					  : 0.0);
	} else if (v->restored_applied) {
		/* nothing new written yet: the restored file is the newest */
		oskr__text_printf(out, "snapshot_applied: %" PRIu64 "\n",
				  v->restored_applied);
	} else {
		oskr__text_printf(out, "snapshot_applied: none\n");
	}
	oskr__text_printf(out, "snapshots_written: %" PRIu64 "\n",
			  v->snapshots_written);
	oskr__text_printf(out, "snapshot_failures: %" PRIu64 "\n",
			  v->snapshot_failures);
	/* The newest stable checkpoint on disk: written by this process,
	 * else the one the protocol resumed from. */
	if (v->checkpoints_written)
		oskr__text_printf(out, "checkpoint_op: %" PRIu64 "\n",
				  v->checkpoint_op);
	else if (v->resumed)
		oskr__text_printf(out, "checkpoint_op: %" PRIu64 "\n",
				  v->resumed_op);
	else
		oskr__text_printf(out, "checkpoint_op: none\n");
	if (v->resumed)
		oskr__text_printf(out, "resumed_from_checkpoint: %" PRIu64 "\n",
				  v->resumed_op);
	else
		oskr__text_printf(out, "resumed_from_checkpoint: none\n");
}

/* ---- metrics (Prometheus text format 0.0.4) ---- */

/* Label values: backslash, double quote and line feed are escaped. */
static void print_label_value(struct oskr__text *out, const char *value)
{
	for (const char *p = value; *p; p++) {
		if (*p == '\\')
			oskr__text_printf(out, "\\\\");
		else if (*p == '"')
			oskr__text_printf(out, "\\\"");
		else if (*p == '\n')
			oskr__text_printf(out, "\\n");
		else
			oskr__text_printf(out, "%c", *p);
	}
}

/* Counter names are [a-z0-9_] by construction (counters.h); anything else
 * becomes '_' so a metric name is always valid. */
static void sanitize_name(char *name)
{
	for (char *p = name; *p; p++) {
		bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '_';
		if (!ok)
			*p = '_';
	}
}

struct named_value {
	char *name;
	uint64_t value;
};

static int compare_names(const void *a, const void *b)
{
	return strcmp(((const struct named_value *)a)->name,
		      ((const struct named_value *)b)->name);
}

/* Sort and sum duplicates in place; returns the new count. */
static size_t merge_duplicates(struct named_value *items, size_t count)
{
	if (!count)
		return 0;
	qsort(items, count, sizeof(*items), compare_names);
	size_t kept = 0;
	for (size_t i = 1; i < count; i++) {
		if (strcmp(items[i].name, items[kept].name) == 0) {
			items[kept].value += items[i].value;
			free(items[i].name);
		} else {
			items[++kept] = items[i];
		}
	}
	return kept + 1;
}

static const char *counter_help(const char *name)
{
	static const struct {
		const char *name, *help;
	} known[] = {
		{"commits", "Operations committed by the protocol."},
		{"view_changes", "View changes started or completed."},
		{"checkpoints", "Stable checkpoints reached."},
		{"requests", "Client requests received."},
		{"rx_packets", "Packets received by the transport."},
		{"tx_packets", "Packets sent by the transport."},
		{"rx_bytes", "Bytes received by the transport."},
		{"tx_bytes", "Bytes sent by the transport."},
		{"stage_stateless_run", "Stateless stage tasks run."},
		{"stage_stateful_run", "Stateful stage tasks run."},
		{"stage_rejected_full",
		 "Stage tasks refused because a queue was full."},
		{"stage_inline_runs",
		 "Times an rx thread ran a message's tasks itself on an idle pool."},
		{"stage_inline_tasks",
		 "Stage tasks run inline by rx threads (included in the run counts)."},
		{"snapshots_written",
		 "Application snapshots written to the state directory."},
		{"snapshot_failures",
		 "Application snapshots that could not be written."},
		{"snapshots_superseded",
		 "Snapshots replaced by a newer one before being written."},
		{"checkpoint_snapshots",
		 "Stable checkpoints the plugin declared, queued for writing "
		 "to the state directory."},
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(known[i].name, name) == 0)
			return known[i].help;
	return NULL;
}

static void print_family(struct oskr__text *out, const char *name,
			 const char *type, const char *help)
{
	oskr__text_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
			  name, type);
}

static void print_gauge(struct oskr__text *out, const char *name,
			const char *help, double value)
{
	print_family(out, name, "gauge", help);
	oskr__text_printf(out, "%s %.17g\n", name, value);
}

static void print_u64_gauge(struct oskr__text *out, const char *name,
			    const char *help, uint64_t value)
{
	print_family(out, name, "gauge", help);
	oskr__text_printf(out, "%s %" PRIu64 "\n", name, value);
}

static void render_latency(struct oskr__text *out,
			   const struct oskr__latency_totals *latency)
{
	print_family(out, "oskr_task_duration_seconds", "histogram",
		     "Run time of one stage task, by stage.");
	for (int kind = 0; kind < OSKR_TASK_KINDS; kind++) {
		const char *stage = oskr__task_kind_name(kind);
		const struct oskr__latency_totals *t = &latency[kind];
		uint64_t cumulative = 0;
		for (unsigned i = 0; i < OSKR_LATENCY_BUCKETS; i++) {
			cumulative += t->counts[i];
			oskr__text_printf(out,
					  "oskr_task_duration_seconds_bucket{"
					  "stage=\"%s\",le=\"%g\"} %" PRIu64
					  "\n",
					  stage,
					  oskr__latency_bounds_ns[i] / 1e9,
					  cumulative);
		}
		/* +Inf and _count from the same reads: they must agree */
		cumulative += t->counts[OSKR_LATENCY_BUCKETS];
		oskr__text_printf(out,
				  "oskr_task_duration_seconds_bucket{stage="
				  "\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
				  stage, cumulative);
		oskr__text_printf(out,
				  "oskr_task_duration_seconds_sum{stage=\"%s\"}"
				  " %.9f\n",
				  stage, t->sum_ns / 1e9);
		oskr__text_printf(out,
				  "oskr_task_duration_seconds_count{stage="
				  "\"%s\"} %" PRIu64 "\n",
				  stage, cumulative);
	}
}

void oskr__control_render_metrics(struct oskr__text *out,
				  const struct oskr_control_view *v,
				  const struct oskr_control_counter *counters,
				  size_t counter_count,
				  const struct oskr__latency_totals *latency)
{
	print_family(out, "oskr_replica_info", "gauge",
		     "Identity of this replica; the value is always 1.");
	oskr__text_printf(out, "oskr_replica_info{replica=\"%" PRIu32
			       "\",protocol=\"",
			  v->replica_id);
	print_label_value(out, v->protocol);
	oskr__text_printf(out, "\",protocol_version=\"");
	print_label_value(out, v->protocol_version);
	oskr__text_printf(out, "\",app=\"");
	print_label_value(out, v->app);
	oskr__text_printf(out, "\",oskrd_version=\"%s\"} 1\n", OSKR_VERSION);

	print_u64_gauge(out, "oskr_view", "Current view (or epoch).", v->view);
	print_gauge(out, "oskr_leader",
		    "Replica id of the current leader, -1 when unknown.",
		    v->leader);
	print_gauge(out, "oskr_is_leader",
		    "1 when this replica is the current leader.",
		    v->leader >= 0 && (uint32_t)v->leader == v->replica_id);
	print_u64_gauge(out, "oskr_last_committed_op",
			"Number of the last committed operation.",
			v->committed);
	print_u64_gauge(out, "oskr_last_executed_op",
			"Number of the last executed operation.", v->executed);
	print_gauge(out, "oskr_uptime_seconds",
		    "Seconds since the replica started.", v->uptime_ns / 1e9);
	print_u64_gauge(out, "oskr_workers", "Stage worker threads.",
			v->workers);
	print_family(out, "oskr_queue_depth", "gauge",
		     "Tasks waiting in a stage queue.");
	oskr__text_printf(out, "oskr_queue_depth{queue=\"stateless\"} %" PRIu64
			       "\n",
			  v->stateless_queued);
	oskr__text_printf(out, "oskr_queue_depth{queue=\"stateful\"} %" PRIu64
			       "\n",
			  v->stateful_queued);
	print_u64_gauge(out, "oskr_app_applied",
			"Operations applied to the application over its "
			"durable history (executed ops plus restores).",
			v->applied);
	if (v->state_dir) {
		print_u64_gauge(out, "oskr_snapshot_last_applied",
				"app_applied of the newest snapshot on disk "
				"(written or restored by this process).",
				v->snapshots_written ? v->snapshot_applied
						     : v->restored_applied);
		print_u64_gauge(out, "oskr_checkpoint_last_op",
				"Op number of the newest stable checkpoint on "
				"disk (written, or resumed from; 0 = none).",
				v->checkpoints_written
					? v->checkpoint_op
					: (v->resumed ? v->resumed_op : 0));
		print_u64_gauge(out, "oskr_snapshot_last_bytes",
				"Payload size of the newest snapshot written.",
				v->snapshot_bytes);
		print_family(out, "oskr_snapshot_last_timestamp_seconds",
			     "gauge",
			     "Unix time of the newest snapshot written.");
		oskr__text_printf(out,
				  "oskr_snapshot_last_timestamp_seconds "
				  "%" PRIu64 ".%03u\n",
				  v->snapshot_unix_ms / 1000,
				  (unsigned)(v->snapshot_unix_ms % 1000));
		print_gauge(out, "oskr_snapshot_last_duration_seconds",
			    "Time to write, fsync and rename the newest "
			    "snapshot.",
			    v->snapshot_duration_ns / 1e9);
	}

	/* counters: copy, add the well-known ones (so dashboards always find
	 * them, at 0 until the plugin counts) and the host's snapshot
	 * counters, sanitize, merge */
	static const char *const well_known[] = {
		OSKR_COUNTER_COMMITS,
		OSKR_COUNTER_VIEW_CHANGES,
		OSKR_COUNTER_CHECKPOINTS,
		"requests",
	};
	const size_t well_known_count =
		sizeof(well_known) / sizeof(well_known[0]);
	size_t extra = well_known_count + (v->state_dir ? 3 : 0);
	struct named_value *items =
		calloc(counter_count + extra + 1, sizeof(*items));
	if (!items) {
		out->overflow = true;
		return;
	}
	size_t count = 0;
	bool failed = false;
	for (size_t i = 0; i < counter_count + extra && !failed; i++) {
		const char *name;
		uint64_t value;
		if (i < counter_count) {
			name = counters[i].name;
			value = counters[i].value;
		} else if (i < counter_count + well_known_count) {
			name = well_known[i - counter_count];
			value = 0;
		} else if (i == counter_count + well_known_count) {
			name = "snapshots_written";
			value = v->snapshots_written;
		} else if (i == counter_count + well_known_count + 1) {
			name = "snapshot_failures";
			value = v->snapshot_failures;
		} else {
			name = "snapshots_superseded";
			value = v->snapshots_superseded;
		}
		if (!name || !name[0])
			continue;
		/* a plain "drops" counter joins the drop family */
		if (strcmp(name, "drops") == 0)
			name = OSKR_COUNTER_DROP_PREFIX "unspecified";
		items[count].name = strdup(name);
		if (!items[count].name) {
			failed = true;
			break;
		}
		sanitize_name(items[count].name);
		items[count].value = value;
		count++;
	}
	if (!failed)
		count = merge_duplicates(items, count);
	size_t prefix = strlen(OSKR_COUNTER_DROP_PREFIX);
	for (size_t i = 0; i < count && !failed; i++) {
		const char *name = items[i].name;
		if (strncmp(name, OSKR_COUNTER_DROP_PREFIX, prefix) == 0 &&
		    name[prefix])
			continue;
		char metric[128];
		snprintf(metric, sizeof(metric), "oskr_%s_total", name);
		const char *help = counter_help(name);
		char generic[160];
		if (!help) {
			snprintf(generic, sizeof(generic),
				 "Counter %s of the protocol plugin or the "
				 "host.",
				 name);
			help = generic;
		}
		print_family(out, metric, "counter", help);
		oskr__text_printf(out, "%s %" PRIu64 "\n", metric,
				  items[i].value);
	}
	bool drop_family = false;
	for (size_t i = 0; i < count && !failed; i++) {
		const char *name = items[i].name;
		if (strncmp(name, OSKR_COUNTER_DROP_PREFIX, prefix) != 0 ||
		    !name[prefix])
			continue;
		if (!drop_family) {
			print_family(out, "oskr_drops_total", "counter",
				     "Messages dropped, by reason (transport, "
				     "stage and protocol plugin).");
			drop_family = true;
		}
		oskr__text_printf(out, "oskr_drops_total{reason=\"");
		print_label_value(out, name + prefix);
		oskr__text_printf(out, "\"} %" PRIu64 "\n", items[i].value);
	}
	for (size_t i = 0; i < count; i++)
		free(items[i].name);
	free(items);
	if (failed) {
		out->overflow = true;
		return;
	}
	if (latency)
		render_latency(out, latency);
}

/* ---- config ---- */

/* Values are printed as written; anything outside printable ASCII is
 * shown as a quoted, escaped string so one value is always one line. */
static void print_value(struct oskr__text *out, const char *value)
{
	bool plain = value[0] != '\0' && value[0] != '"' && value[0] != ' ';
	for (const char *p = value; *p && plain; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			plain = false;
	if (plain) {
		oskr__text_printf(out, "%s", value);
		return;
	}
	oskr__text_printf(out, "\"");
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (*p == '"' || *p == '\\')
			oskr__text_printf(out, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			oskr__text_printf(out, "\\x%02x", *p);
		else
			oskr__text_printf(out, "%c", *p);
	}
	oskr__text_printf(out, "\"");
}

static void print_setting(struct oskr__text *out, const char *key,
			  const char *value)
{
	oskr__text_printf(out, "%s: ", key);
	print_value(out, value ? value : "");
	oskr__text_printf(out, "\n");
}

/* An option key that may hold a secret: its value is never shown. Paths
 * of key files (public_key, private_key, key_file…) are fine to show. */
static bool looks_secret(const char *key)
{
	static const char *const words[] = {"secret", "password", "passwd",
					    "token", "credential", NULL};
	char lower[128];
	size_t i;
	for (i = 0; key[i] && i + 1 < sizeof(lower); i++)
		lower[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] + 32
								 : key[i]);
	lower[i] = '\0';
	for (size_t w = 0; words[w]; w++)
		if (strstr(lower, words[w]))
			return true;
	size_t len = strlen(lower);
	bool is_path = strstr(lower, "file") || strstr(lower, "path") ||
		       strcmp(lower, "public_key") == 0 ||
		       strcmp(lower, "private_key") == 0;
	if (is_path)
		return false;
	return strcmp(lower, "key") == 0 ||
	       (len > 4 && strcmp(lower + len - 4, "_key") == 0);
}

/* Flatten a plugin's or app's option tree into "path: value" lines. */
static void print_tree(struct oskr__text *out, const char *path,
		       const struct oskr_conf *node, bool secret,
		       unsigned depth)
{
	if (depth > 64)
		return;
	switch (node->kind) {
	case OSKR_CONF_SCALAR:
		if (secret)
			oskr__text_printf(out, "%s: redacted\n", path);
		else
			print_setting(out, path,
				      node->scalar ? node->scalar : "");
		break;
	case OSKR_CONF_MAP:
		if (node->count == 0)
			oskr__text_printf(out, "%s: {}\n", path);
		for (size_t i = 0; i < node->count; i++) {
			const char *key = node->keys[i]->scalar
						  ? node->keys[i]->scalar
						  : "?";
			char *child = NULL;
			if (asprintf(&child, "%s.%s", path, key) < 0) {
				out->overflow = true;
				return;
			}
			print_tree(out, child, node->values[i],
				   secret || looks_secret(key), depth + 1);
			free(child);
		}
		break;
	case OSKR_CONF_SEQ:
		if (node->count == 0)
			oskr__text_printf(out, "%s: []\n", path);
		for (size_t i = 0; i < node->count; i++) {
			char *child = NULL;
			if (asprintf(&child, "%s.%zu", path, i) < 0) {
				out->overflow = true;
				return;
			}
			print_tree(out, child, node->values[i], secret,
				   depth + 1);
			free(child);
		}
		break;
	}
}

static const char *transport_name(enum oskr_transport_kind kind)
{
	switch (kind) {
	case OSKR_TRANSPORT_UDP:
		return "udp";
	case OSKR_TRANSPORT_DPDK:
		return "dpdk";
	case OSKR_TRANSPORT_SIM:
		return "sim";
	}
	return "unknown";
}

static void print_mac(struct oskr__text *out, const char *key,
		      const uint8_t mac[6], uint16_t id)
{
	oskr__text_printf(out,
			  "%s: %02x:%02x:%02x:%02x:%02x:%02x%%%" PRIu16 "\n",
			  key, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
			  id);
}

void oskr__control_render_config(struct oskr__text *out,
				 const struct oskr_config *c,
				 uint32_t replica_id, const char *protocol,
				 const char *plugin_path)
{
	oskr__text_printf(out,
			  "# effective configuration of oskrd %s, replica "
			  "%" PRIu32 "; key material is never shown\n",
			  OSKR_VERSION, replica_id);
	print_setting(out, "file", c->file);
	oskr__text_printf(out, "cluster.f: %" PRIu32 "\n", c->fault_count);
	oskr__text_printf(out, "cluster.n: %" PRIu32 "\n", c->replica_count);
	for (uint32_t i = 0; i < c->replica_count; i++) {
		const struct oskr_config_replica *r = &c->replicas[i];
		char key[96];
		if (r->address) {
			snprintf(key, sizeof(key),
				 "cluster.replicas.%" PRIu32 ".address", i);
			print_setting(out, key, r->address);
		}
		if (r->has_mac) {
			snprintf(key, sizeof(key),
				 "cluster.replicas.%" PRIu32 ".mac", i);
			print_mac(out, key, r->mac, r->link_id);
		}
		if (r->public_key) {
			snprintf(key, sizeof(key),
				 "cluster.replicas.%" PRIu32 ".public_key", i);
			print_setting(out, key, r->public_key);
		}
	}
	if (c->dpdk.has_multicast)
		print_mac(out, "cluster.multicast", c->dpdk.multicast_mac,
			  c->dpdk.multicast_id);
	oskr__text_printf(out, "replica.id: %" PRIu32 "\n", replica_id);
	if (c->private_key) {
		print_setting(out, "replica.private_key", c->private_key);
		char *path = oskr__config_private_key_path(c, replica_id);
		if (path)
			print_setting(out, "replica.private_key_file", path);
		free(path);
	}
	print_setting(out, "protocol.name", protocol);
	if (plugin_path)
		print_setting(out, "protocol.plugin", plugin_path);
	if (c->protocol_options)
		print_tree(out, "protocol.options", c->protocol_options, false,
			   0);
	print_setting(out, "app.name", c->app ? c->app : "null");
	if (c->app_options)
		print_tree(out, "app.options", c->app_options, false, 0);
	print_setting(out, "transport.kind", transport_name(c->transport));
	if (c->transport == OSKR_TRANSPORT_UDP) {
		oskr__text_printf(out, "transport.rx_threads: %" PRIu32 "\n",
				  c->udp.rx_threads);
		oskr__text_printf(out, "transport.batch: %" PRIu32 "\n",
				  c->udp.batch);
		oskr__text_printf(out, "transport.socket_buffer: %" PRIu32 "\n",
				  c->udp.socket_buffer);
	} else if (c->transport == OSKR_TRANSPORT_DPDK) {
		for (size_t i = 0; i < c->dpdk.eal_arg_count; i++) {
			char key[48];
			snprintf(key, sizeof(key), "transport.eal.%zu", i);
			print_setting(out, key, c->dpdk.eal_args[i]);
		}
		if (c->dpdk.port_name)
			print_setting(out, "transport.port", c->dpdk.port_name);
		else
			oskr__text_printf(out, "transport.port: %" PRIu16 "\n",
					  c->dpdk.port_id);
		oskr__text_printf(out,
				  "transport.rx_queues: %" PRIu16 "\n"
				  "transport.tx_queues: %" PRIu16 "\n"
				  "transport.mbufs: %" PRIu32 "\n"
				  "transport.burst: %" PRIu16 "\n"
				  "transport.idle.spin: %" PRIu32 "\n"
				  "transport.idle.yield: %" PRIu32 "\n"
				  "transport.idle.sleep_us: %" PRIu32 "\n",
				  c->dpdk.rx_queues, c->dpdk.tx_queues,
				  c->dpdk.mbuf_count, c->dpdk.burst_size,
				  c->dpdk.idle_spin, c->dpdk.idle_yield,
				  c->dpdk.idle_sleep_us);
	}
	oskr__text_printf(out, "workers: %" PRIu32 "\n", c->workers);
	if (c->core_count) {
		oskr__text_printf(out, "cores: ");
		for (size_t i = 0; i < c->core_count; i++)
			oskr__text_printf(out, "%s%d", i ? "," : "",
					  c->cores[i]);
		oskr__text_printf(out, "\n");
	} else {
		oskr__text_printf(out, "cores: none\n");
	}
	oskr__text_printf(out, "ring_size: %" PRIu32 "\n", c->ring_size);
	oskr__text_printf(out, "inline_receive: %s\n",
			  c->inline_receive ? "true" : "false");
	char *socket_path = c->control_socket
				    ? oskr__expand_replica_id(c->control_socket,
							      replica_id)
				    : NULL;
	print_setting(out, "control_socket", socket_path ? socket_path : "none");
	free(socket_path);
	char *http = c->metrics_http
			     ? oskr__expand_replica_id(c->metrics_http, replica_id)
			     : NULL;
	print_setting(out, "metrics_http", http ? http : "none");
	free(http);
	char *state_dir = c->state_dir
				  ? oskr__expand_replica_id(c->state_dir,
							    replica_id)
				  : NULL;
	print_setting(out, "state_dir", state_dir ? state_dir : "none");
	free(state_dir);
	/* the live value: SIGHUP may have changed it */
	print_setting(out, "log_level",
		      oskr__log_level_name(oskr__log_get_level()));
}

