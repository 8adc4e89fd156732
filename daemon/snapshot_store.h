/* SPDX-License-Identifier: MIT */
/*
 * Durable application snapshots in a replica's state directory
 * (docs/operations.md, "Durable state").
 *
 * A snapshot file is `snapshot-<applied>.bin`, <applied> zero-padded to 20
 * digits so that names sort like numbers. <applied> counts the operations
 * applied to the application over its whole durable history (ops executed,
 * reads included, plus restores by state transfer) at the moment the file
 * was handed to the writer, so it only grows across restarts and the
 * largest valid number is the newest file. (A checkpoint's application
 * blob may have been taken some ops before that moment: its number is an
 * upper bound of the ops it contains; see daemon/replica.c.)
 *
 * File layout, format version 2 (little-endian): a 160-byte header, then
 * the payload = the application's own snapshot blob followed by the
 * protocol state of a checkpoint (host->checkpoint_stable, ABI 1.1):
 *
 *     0  magic "OSKRSNAP"
 *     8  u32 format version (2)
 *    12  u32 header size (160)
 *    16  u64 applied
 *    24  u64 payload length (application blob + protocol state)
 *    32  u64 wall-clock time of the snapshot, ms since the epoch
 *    40  char app[32]          NUL-padded application name
 *    72  char protocol[24]     NUL-padded protocol plugin name
 *    96  u64 checkpoint op number (0 unless flag CHECKPOINT)
 *   104  u64 protocol state length, <= payload length (0 unless CHECKPOINT)
 *   112  u32 flags: bit 0 CHECKPOINT = written by checkpoint_stable (the
 *        protocol may resume from it); other bits must be 0
 *   116  u8 reserved[12], zero
 *   128  u8 sha256[32]         over bytes [0, 128) and the payload
 *
 * The protocol state comes last so that the host appends it to the blob
 * app_snapshot returned (realloc) instead of copying the application
 * state. Format version 1 (oskrd before ABI 1.1) is still read: a 128-byte
 * header without the fields at 96..128, the sha256 at offset 96 over
 * bytes [0, 96) and the payload, and the payload is the application blob
 * alone; such a file is never a checkpoint.
 *
 * A file is written to a temporary `.snapshot-XXXXXX` in the same
 * directory, fsync'ed, renamed into place and the directory fsync'ed: a
 * crash leaves either the old set of files or the new one, plus maybe a
 * temporary file that the next start removes. A file that fails any check
 * (short, bad magic, version, length, checksum, name/header mismatch) is
 * reported with its path and the reason, and never loaded.
 */
#ifndef OSKR_DAEMON_SNAPSHOT_STORE_H
#define OSKR_DAEMON_SNAPSHOT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OSKR_SNAPSHOT_MAGIC "OSKRSNAP"
/** The version written; OSKR_SNAPSHOT_FORMAT_V1 is still read. */
#define OSKR_SNAPSHOT_FORMAT_VERSION 2
#define OSKR_SNAPSHOT_FORMAT_V1 1
/** Header size of the version written (2). */
#define OSKR_SNAPSHOT_HEADER_SIZE 160
#define OSKR_SNAPSHOT_V1_HEADER_SIZE 128
/** Largest payload accepted when reading (a bound, not a goal). */
#define OSKR_SNAPSHOT_MAX_PAYLOAD (UINT64_C(1) << 38)

struct oskr_snapshot_meta {
	uint64_t applied;
	uint64_t payload_len; /* application blob + protocol state */
	uint64_t created_unix_ms;
	char app[32];
	char protocol[24];
	/* Written by checkpoint_stable: @p checkpoint_op is the protocol's
	 * op number the application state corresponds to, and the last
	 * @p protocol_state_len bytes of the payload are the protocol's
	 * state. Both 0 when !checkpoint. */
	bool checkpoint;
	uint64_t checkpoint_op;
	uint64_t protocol_state_len;
	/* Set by read: the file's format version (1 or 2). */
	uint32_t format_version;
};

/** "DIR/snapshot-<applied 20 digits>.bin", malloc'd (NULL on ENOMEM). */
char *oskr__snapshot_path(const char *dir, uint64_t applied);
/** True if @p name is "snapshot-<digits>.bin"; *applied gets the number. */
bool oskr__snapshot_name_parse(const char *name, uint64_t *applied);

/**
 * Write one snapshot atomically (temp file, fsync, rename, fsync dir), in
 * format version 2. @p payload is the application blob followed by
 * meta->protocol_state_len bytes of protocol state (0 unless
 * meta->checkpoint). meta->payload_len is set from @p len (and
 * created_unix_ms from the clock when 0). A file of the same name is
 * replaced. -EINVAL when protocol_state_len > len, or when it or
 * checkpoint_op is nonzero without meta->checkpoint. A failure before the rename leaves nothing behind, neither
 * under the final name nor as a temporary file; a failure to fsync the
 * directory after it is reported, the (valid) file stays.
 * @return 0, or negative errno with *err naming the file and the step.
 */
int oskr__snapshot_write(const char *dir, struct oskr_snapshot_meta *meta,
			 const void *payload, size_t len, char **err);

/**
 * Read and check one snapshot file (format version 1 or 2). On success
 * *payload is malloc'd (free()), *len its size (application blob, then
 * meta->protocol_state_len bytes of protocol state).
 * @return 0, -EINVAL with *why (the reason, without the path) for a file
 *         that is not a valid snapshot, or another negative errno (e.g.
 *         -ENOENT, -EIO) with *why.
 */
int oskr__snapshot_read(const char *path, struct oskr_snapshot_meta *meta,
			void **payload, size_t *len, char **why);

/** Called with each valid candidate, newest first, until it returns 0. A
 *  negative return rejects the candidate (with *why set: it is reported
 *  and the next older one is tried). The payload is borrowed. */
typedef int (*oskr__snapshot_accept_fn)(void *arg, const char *path,
					const struct oskr_snapshot_meta *meta,
					const void *payload, size_t len,
					char **why);

/** Called for every file that is skipped, with its path and why. */
typedef void (*oskr__snapshot_report_fn)(void *arg, const char *path,
					 const char *why);

/**
 * Find the newest valid snapshot in @p dir and hand it to @p accept.
 * Invalid or rejected files are reported through @p report (may be NULL)
 * and skipped. *out_meta and *out_path (malloc'd; may be NULL) describe
 * the accepted one.
 * @return 0 when one was accepted, -ENOENT when there is none (no files,
 *         or every one was skipped), another negative errno with *err when
 *         the directory cannot be read.
 */
int oskr__snapshot_load_newest(const char *dir, oskr__snapshot_accept_fn accept,
			       oskr__snapshot_report_fn report, void *arg,
			       struct oskr_snapshot_meta *out_meta,
			       char **out_path, char **err);

/** Delete snapshot files numbered below @p newest except the (keep - 1)
 *  largest of them; files numbered above @p newest are left alone. Returns
 *  the number deleted, or a negative errno. */
int oskr__snapshot_prune(const char *dir, uint64_t newest, unsigned keep);

/** Remove temporary files a crash left behind (".snapshot-*"). Returns the
 *  number removed, or a negative errno. */
int oskr__snapshot_clean_temporaries(const char *dir);

/* ---- the state directory ---- */

struct oskr_state_dir;

/**
 * Create @p path if needed (mode 0700, parents too), take an exclusive
 * lock on PATH/oskrd.lock so that two daemons never share one directory,
 * and remove stale temporaries.
 * @return 0, or negative errno with *err (e.g. "…: in use by pid N").
 */
int oskr__state_dir_open(struct oskr_state_dir **out, const char *path,
			 char **err);
const char *oskr__state_dir_path(const struct oskr_state_dir *dir);
/** Release the lock. NULL-safe. */
void oskr__state_dir_close(struct oskr_state_dir *dir);

/* ---- background writer ---- */

/*
 * One thread that writes snapshots so that the stateful task only pays for
 * serialising the application, never for disk I/O. There is one pending
 * slot: a newer snapshot submitted while an older one still waits replaces
 * it (the older is superseded, counted, never written).
 */
struct oskr_snapshot_writer;

struct oskr_snapshot_writer_stats {
	uint64_t written, failed, superseded;
	uint64_t last_applied; /* of the newest file written (0 = none) */
	uint64_t last_bytes; /* its payload */
	uint64_t last_duration_ns; /* write + fsync + rename */
	uint64_t last_unix_ms; /* when it was written */
	bool last_checkpoint; /* the newest file written is a checkpoint */
	uint64_t last_checkpoint_op; /* its op number */
	uint64_t checkpoints_written; /* of `written` */
	uint64_t newest_checkpoint_op; /* op of the newest checkpoint written */
};

/** A writer into @p dir that keeps the @p keep newest files (config
 *  snapshot.keep; 0 counts as 1). */
int oskr__snapshot_writer_create(struct oskr_snapshot_writer **out,
				 const char *dir, unsigned keep);
/** Queue @p payload (malloc'd; the writer frees it) for writing. Any
 *  thread; never blocks on I/O. */
void oskr__snapshot_writer_submit(struct oskr_snapshot_writer *writer,
				  const struct oskr_snapshot_meta *meta,
				  void *payload, size_t len);
/** Wait until nothing is pending. Returns the result of the last write
 *  (0 or negative errno). */
int oskr__snapshot_writer_flush(struct oskr_snapshot_writer *writer);
void oskr__snapshot_writer_stats(struct oskr_snapshot_writer *writer,
				 struct oskr_snapshot_writer_stats *out);
/** Write what is pending, stop the thread, free. NULL-safe. */
void oskr__snapshot_writer_free(struct oskr_snapshot_writer *writer);

#endif
