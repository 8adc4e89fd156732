/* SPDX-License-Identifier: MIT */
/*
 * Durable state of a replica (docs/operations.md, "Durable state"): the
 * ABI 1.1 checkpoint services, snapshots (at checkpoints, on an interval
 * until the first one, at a graceful stop), and the restore at start.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "replica_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stage.h"
#include "timer.h"

/* ---- durable checkpoints (ABI 1.1; docs/operations.md) ---- */

/* The plugin declares that the app state after @p op_number is stable.
 * The file is named by the host's `applied` count *now*, also when the
 * plugin hands an application blob it took earlier (at op_number): the
 * host does not know how many operations it has applied since, and
 * naming by "now" keeps file numbers growing in the order the files are
 * written, which is all the newest-file rule needs. The number of such a
 * file is then an upper bound of the operations in it, never a lower
 * one, so the restored counter never goes backwards. */
int oskr__replica_checkpoint_stable(struct oskr_ctx *ctx, uint64_t op_number,
				  const void *app, size_t app_len,
				  const void *protocol_state,
				  size_t protocol_len)
{
	struct oskr_replica *r = replica_of(ctx);
	if (!r->snapshot_writer)
		return 0; /* no state_dir: nothing to persist */
	if (protocol_len && !protocol_state)
		return -EINVAL;
	if (protocol_len > SIZE_MAX / 2)
		return -ENOMEM;
	uint8_t *payload;
	size_t blob_len;
	if (app) { /* app_len is ignored when app is NULL (plugin.h) */
		payload = app_len <= SIZE_MAX / 2
				  ? malloc(app_len + protocol_len + 1)
				  : NULL;
		if (!payload)
			return -ENOMEM;
		memcpy(payload, app, app_len);
		blob_len = app_len;
	} else {
		void *blob = NULL;
		int rc = r->app_ops->snapshot(r->app, &blob, &blob_len);
		if (rc < 0) {
			OSKR_ERROR("checkpoint at op %" PRIu64 ": the %s app "
				   "cannot serialise its state: %s",
				   op_number, r->app_ops->name, strerror(-rc));
			return rc;
		}
		/* Append the protocol state to the app's own blob: no copy
		 * of the (large) application state. */
		if (protocol_len) {
			uint8_t *grown = blob_len <= SIZE_MAX / 2
						 ? realloc(blob,
							   blob_len + protocol_len)
						 : NULL;
			if (!grown) {
				free(blob);
				return -ENOMEM;
			}
			blob = grown;
		}
		payload = blob;
	}
	if (protocol_len)
		memcpy(payload + blob_len, protocol_state, protocol_len);
	uint64_t applied = atomic_load_explicit(&r->applied,
						memory_order_relaxed);
	struct oskr_snapshot_meta meta = {
		.applied = applied,
		.checkpoint = true,
		.checkpoint_op = op_number,
		.protocol_state_len = protocol_len,
	};
	snprintf(meta.app, sizeof(meta.app), "%s", r->app_ops->name);
	snprintf(meta.protocol, sizeof(meta.protocol), "%s", r->plugin->name);
	oskr__snapshot_writer_submit(r->snapshot_writer, &meta, payload,
				     blob_len + protocol_len);
	r->snapshot_applied = applied;
	r->snapshot_current = app == NULL;
	r->snapshot_checkpoint = true;
	if (!r->checkpoints_declared) {
		r->checkpoints_declared = true;
		OSKR_INFO("%s declares stable checkpoints: snapshots are "
			  "written at its checkpoints (and at stop) from now "
			  "on, no longer every interval",
			  r->plugin->name);
	}
	oskr__counters_add(&r->counters, "checkpoint_snapshots", 1);
	OSKR_DEBUG("checkpoint at op %" PRIu64 " queued for writing (%zu + "
		   "%zu bytes, %" PRIu64 " applied)",
		   op_number, blob_len, protocol_len, applied);
	return 0;
}

int oskr__replica_checkpoint_resume(struct oskr_ctx *ctx, uint64_t *op_number,
				  const void **protocol_state,
				  size_t *protocol_len)
{
	struct oskr_replica *r = replica_of(ctx);
	if (!op_number || !protocol_state || !protocol_len)
		return -EINVAL;
	if (!r->in_init)
		return -EINVAL; /* the state is freed once init returned */
	if (!r->resume_available)
		return -ENOENT;
	*op_number = r->restored_meta.checkpoint_op;
	*protocol_state = r->resume_state;
	*protocol_len = r->resume_state_len;
	if (!r->resumed) {
		r->resumed = true;
		/* A protocol that resumes from checkpoints declares them:
		 * an interval snapshot (no checkpoint) written before its
		 * first new one would hide the one it resumed from. */
		r->checkpoints_declared = true;
		OSKR_INFO("resuming %s from checkpoint at op %" PRIu64
			  " (file %s)",
			  r->plugin->name, r->restored_meta.checkpoint_op,
			  r->restored_path);
	}
	return 0;
}

/* ---- durable state (docs/operations.md, "Durable state") ----
 *
 * The app is serialised inside a stateful task (the only place the app
 * may be touched) and handed to the snapshot writer thread, which does
 * the file I/O. A snapshot is taken at every checkpoint the plugin
 * declares (checkpoint_stable above); until the first one (forever for a
 * plugin that never declares one), every snapshot.interval if the app
 * changed; and after replica_fini on a graceful stop. At start the newest
 * valid snapshot is restored before replica_init. */

/* A snapshot of the app as it is now, not a checkpoint. */
void oskr__replica_snapshot_take(struct oskr_replica *r, const char *why)
{
	uint64_t applied = atomic_load_explicit(&r->applied,
						memory_order_relaxed);
	if (!r->snapshot_writer)
		return;
	/* Nothing new. After a checkpoint at this very number a stop
	 * snapshot is still written (it replaces that file): the state it
	 * holds may be older, and a stop snapshot carries no checkpoint. */
	if (applied == r->snapshot_applied && r->snapshot_current &&
	    !r->snapshot_checkpoint)
		return;
	void *blob = NULL;
	size_t len = 0;
	int rc = r->app_ops->snapshot(r->app, &blob, &len);
	if (rc < 0) {
		OSKR_ERROR("snapshot (%s): the %s app cannot serialise its "
			   "state: %s",
			   why, r->app_ops->name, strerror(-rc));
		return;
	}
	struct oskr_snapshot_meta meta = {.applied = applied};
	snprintf(meta.app, sizeof(meta.app), "%s", r->app_ops->name);
	snprintf(meta.protocol, sizeof(meta.protocol), "%s", r->plugin->name);
	oskr__snapshot_writer_submit(r->snapshot_writer, &meta, blob, len);
	r->snapshot_applied = applied;
	r->snapshot_current = true;
	r->snapshot_checkpoint = false;
}

static void snapshot_timer_fired(void *a, void *b)
{
	struct oskr_replica *r = a;
	if (r->checkpoints_declared || finished(r))
		return; /* checkpoints took over: the timer is not re-armed */
	oskr__replica_snapshot_take(r, "interval");
	oskr__replica_snapshot_timer_arm(r);
}

void oskr__replica_snapshot_timer_arm(struct oskr_replica *r)
{
	uint64_t id;
	int rc = oskr__timers_arm(r->timers, r->snapshot_interval_ns,
				  snapshot_timer_fired, r, NULL, &id);
	if (rc < 0)
		OSKR_ERROR("periodic snapshots stop: cannot arm a timer: %s",
			   strerror(-rc));
}

struct restore_context {
	struct oskr_replica *replica;
	unsigned skipped;
};

static int restore_accept(void *arg, const char *path,
			  const struct oskr_snapshot_meta *meta,
			  const void *payload, size_t len, char **why)
{
	struct restore_context *context = arg;
	struct oskr_replica *r = context->replica;
	if (strcmp(meta->app, r->app_ops->name) != 0)
		return oskr__errorf(why,
				    "written by the %s app, this replica runs "
				    "%s",
				    meta->app, r->app_ops->name);
	/* payload: the app's blob, then the protocol state (checkpoints) */
	size_t app_len = len - (size_t)meta->protocol_state_len;
	int rc = r->app_ops->restore(r->app, payload, app_len);
	if (rc < 0) {
		oskr__errorf(why, "the %s app refuses its contents: %s",
			     r->app_ops->name, strerror(-rc));
		return rc;
	}
	/* The protocol may resume from it only if this protocol wrote it:
	 * the state blob is the plugin's own, opaque to everyone else. The
	 * header holds the name as written, cut to fit. */
	char protocol[sizeof(meta->protocol)];
	snprintf(protocol, sizeof(protocol), "%s", r->plugin->name);
	if (meta->checkpoint && strcmp(meta->protocol, protocol) == 0) {
		size_t state_len = (size_t)meta->protocol_state_len;
		void *state = malloc(state_len ? state_len : 1);
		if (!state) {
			oskr__errorf(why, "out of memory");
			return -ENOMEM;
		}
		if (state_len)
			memcpy(state, (const uint8_t *)payload + app_len,
			       state_len);
		r->resume_state = state;
		r->resume_state_len = state_len;
		r->resume_available = true;
	}
	return 0;
}

static void restore_report(void *arg, const char *path, const char *why)
{
	struct restore_context *context = arg;
	context->skipped++;
	OSKR_ERROR("%s: %s; skipped, not loaded", path, why);
}

/* What was restored is only needed until replica_init returned. */
void oskr__replica_resume_forget(struct oskr_replica *r)
{
	free(r->resume_state);
	r->resume_state = NULL;
	r->resume_state_len = 0;
	r->resume_available = false;
	free(r->restored_path);
	r->restored_path = NULL;
}

void oskr__replica_durable_close(struct oskr_replica *r)
{
	oskr__snapshot_writer_free(r->snapshot_writer);
	r->snapshot_writer = NULL;
	oskr__state_dir_close(r->state_dir);
	r->state_dir = NULL;
	oskr__replica_resume_forget(r);
}

/* Lock the state directory and restore the newest valid snapshot into the
 * app (before any thread runs). */
int oskr__replica_durable_open(struct oskr_replica *r, uint32_t replica_id,
			char **err)
{
	if (!r->config->state_dir)
		return 0;
	char *path = oskr__expand_replica_id(r->config->state_dir, replica_id);
	if (!path) {
		oskr__errorf(err, "out of memory");
		return -ENOMEM;
	}
	int rc = oskr__state_dir_open(&r->state_dir, path, err);
	free(path);
	if (rc < 0)
		return rc;
	const char *dir = oskr__state_dir_path(r->state_dir);
	struct restore_context context = {.replica = r};
	struct oskr_snapshot_meta meta;
	char *from = NULL;
	rc = oskr__snapshot_load_newest(dir, restore_accept, restore_report,
					&context, &meta, &from, err);
	if (rc == 0) {
		time_t written = (time_t)(meta.created_unix_ms / 1000);
		struct tm tm;
		char when[32] = "?";
		if (gmtime_r(&written, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		char checkpoint[64] = "";
		if (meta.checkpoint)
			snprintf(checkpoint, sizeof(checkpoint),
				 " (checkpoint at op %" PRIu64 ")",
				 meta.checkpoint_op);
		OSKR_INFO("restored %s: %" PRIu64 " operations applied, %" PRIu64
			  " bytes of %s state, written by %s at %s%s",
			  from, meta.applied,
			  meta.payload_len - meta.protocol_state_len, meta.app,
			  meta.protocol[0] ? meta.protocol : "?", when,
			  checkpoint);
		atomic_store_explicit(&r->applied, meta.applied,
				      memory_order_relaxed);
		/* The app holds exactly that file's state now. */
		r->snapshot_applied = meta.applied;
		r->snapshot_current = true;
		r->snapshot_checkpoint = meta.checkpoint;
		r->restored_applied = meta.applied;
		r->restored_meta = meta;
		r->restored_path = from;
	} else if (rc == -ENOENT) {
		if (context.skipped)
			OSKR_ERROR("state_dir %s: none of the %u snapshot "
				   "file(s) is usable; starting with an empty "
				   "%s app",
				   dir, context.skipped, r->app_ops->name);
		else
			OSKR_INFO("state_dir %s: no snapshot yet; starting "
				  "with an empty %s app",
				  dir, r->app_ops->name);
	} else {
		goto err_close;
	}
	rc = oskr__snapshot_writer_create(&r->snapshot_writer, dir,
					  r->config->snapshot.keep);
	if (rc < 0) {
		oskr__errorf(err, "cannot start the snapshot writer: %s",
			     strerror(-rc));
		goto err_close;
	}
	return 0;

err_close:
	oskr__replica_durable_close(r);
	return rc;
}

/* ---- life cycle ---- */

/* Say from where the protocol starts, once replica_init returned (a
 * resume was logged by checkpoint_resume itself). */
void oskr__replica_log_resume_outcome(struct oskr_replica *r)
{
	const struct oskr_snapshot_meta *meta = &r->restored_meta;
	if (!r->restored_path || r->resumed)
		return;
	if (r->resume_available) {
		OSKR_WARN("%s did not resume from the checkpoint at op %" PRIu64
			  " in %s (its replica_init does not call "
			  "checkpoint_resume); the protocol starts from op 0 "
			  "on top of the restored application",
			  r->plugin->name, meta->checkpoint_op,
			  r->restored_path);
		return;
	}
	char why[96];
	if (meta->format_version == OSKR_SNAPSHOT_FORMAT_V1)
		snprintf(why, sizeof(why), "format 1, before checkpoints");
	else if (meta->checkpoint)
		snprintf(why, sizeof(why), "a checkpoint of %s, not of %s",
			 meta->protocol, r->plugin->name);
	else
		snprintf(why, sizeof(why),
			 "not a checkpoint: written at a stop or by the "
			 "interval");
	OSKR_INFO("restored %s (%s); the protocol starts from op 0",
		  r->restored_path, why);
}

void oskr__replica_durable_status(struct oskr_replica *r,
				  struct oskr_replica_durable *out)
{
	*out = (struct oskr_replica_durable){
		.state_dir = r->state_dir ? oskr__state_dir_path(r->state_dir)
					  : NULL,
		.applied = atomic_load_explicit(&r->applied,
						memory_order_relaxed),
		.restored_applied = r->restored_applied,
		/* set in replica_init, before the control socket answers */
		.resumed = r->resumed,
		.resumed_op = r->resumed ? r->restored_meta.checkpoint_op : 0,
	};
	if (r->snapshot_writer)
		oskr__snapshot_writer_stats(r->snapshot_writer, &out->writer);
}
