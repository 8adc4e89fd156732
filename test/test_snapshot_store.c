/* SPDX-License-Identifier: MIT */
/* Durable snapshots: round trip (format 2, with and without a checkpoint's
 * protocol state), format 1 files still read, every truncation and every
 * flipped bit refused in each kind of file, newest-valid selection,
 * pruning, the state directory lock, the background writer, and an
 * interrupted write leaving no file behind. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "daemon/snapshot_store.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/oskr-snapshot-test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *entry;
		while ((entry = readdir(d)))
			if (entry->d_name[0] != '.' ||
			    (strcmp(entry->d_name, ".") &&
			     strcmp(entry->d_name, "..")))
				unlinkat(dirfd(d), entry->d_name, 0);
		closedir(d);
	}
	rmdir(dir);
}

static struct oskr_snapshot_meta meta_for(uint64_t applied)
{
	struct oskr_snapshot_meta meta = {.applied = applied};
	strcpy(meta.app, "kv");
	strcpy(meta.protocol, "pbft");
	return meta;
}

/* A payload whose bytes depend on @p seed, so different snapshots differ. */
static void fill(uint8_t *payload, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		payload[i] = (uint8_t)(i * 31 + seed * 7 + 1);
}

static char *write_one(uint64_t applied, const void *payload, size_t len)
{
	struct oskr_snapshot_meta meta = meta_for(applied);
	char *err = NULL;
	int rc = oskr__snapshot_write(dir, &meta, payload, len, &err);
	ck_assert_msg(rc == 0, "write: %s", err ? err : "?");
	free(err);
	char *path = oskr__snapshot_path(dir, applied);
	ck_assert_ptr_nonnull(path);
	return path;
}

static unsigned count_entries(const char *prefix)
{
	unsigned n = 0;
	DIR *d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	struct dirent *entry;
	while ((entry = readdir(d)))
		if (!strncmp(entry->d_name, prefix, strlen(prefix)))
			n++;
	closedir(d);
	return n;
}

static void read_file(const char *path, uint8_t **data, size_t *len)
{
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	long size = ftell(f);
	ck_assert_int_ge(size, 0);
	rewind(f);
	*data = malloc((size_t)size + 1);
	ck_assert_ptr_nonnull(*data);
	ck_assert_uint_eq(fread(*data, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	*len = (size_t)size;
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

/* Read @p path expecting a refusal whose reason contains @p reason (any
 * reason when NULL). */
static void expect_refused(const char *path, const char *reason,
			   const char *context)
{
	struct oskr_snapshot_meta meta;
	void *payload = NULL;
	size_t len = 0;
	char *why = NULL;
	int rc = oskr__snapshot_read(path, &meta, &payload, &len, &why);
	ck_assert_msg(rc == -EINVAL, "%s: read returned %d (%s)", context, rc,
		      why ? why : "");
	ck_assert_ptr_null(payload);
	ck_assert_ptr_nonnull(why);
	if (reason)
		ck_assert_msg(strstr(why, reason), "%s: reason '%s' lacks '%s'",
			      context, why, reason);
	free(why);
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void sha256_parts(const void *a, size_t a_len, const void *b,
			 size_t b_len, uint8_t out[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ck_assert_ptr_nonnull(md);
	ck_assert(EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
		  EVP_DigestUpdate(md, a, a_len) &&
		  (b_len == 0 || EVP_DigestUpdate(md, b, b_len)) &&
		  EVP_DigestFinal_ex(md, out, NULL));
	EVP_MD_CTX_free(md);
}

/* A format-1 file as oskrd before ABI 1.1 wrote it, built here from the
 * documented layout (not by the code under test): 128-byte header, the
 * sha256 at 96 over [0, 96) and the payload. */
static char *write_v1(uint64_t applied, const void *payload, size_t len)
{
	uint8_t header[OSKR_SNAPSHOT_V1_HEADER_SIZE] = {0};
	memcpy(header, "OSKRSNAP", 8);
	put_le(header + 8, 1, 4);
	put_le(header + 12, OSKR_SNAPSHOT_V1_HEADER_SIZE, 4);
	put_le(header + 16, applied, 8);
	put_le(header + 24, len, 8);
	put_le(header + 32, 1700000000000ull, 8);
	strcpy((char *)header + 40, "kv");
	strcpy((char *)header + 72, "pbft");
	sha256_parts(header, 96, payload, len, header + 96);
	char *path = oskr__snapshot_path(dir, applied);
	ck_assert_ptr_nonnull(path);
	uint8_t *file = malloc(sizeof(header) + len + 1);
	ck_assert_ptr_nonnull(file);
	memcpy(file, header, sizeof(header));
	if (len)
		memcpy(file + sizeof(header), payload, len);
	write_file(path, file, sizeof(header) + len);
	free(file);
	return path;
}

/* A checkpoint: app blob then protocol state. */
static char *write_checkpoint(uint64_t applied, uint64_t op,
			      const void *app, size_t app_len,
			      const void *state, size_t state_len)
{
	struct oskr_snapshot_meta meta = meta_for(applied);
	meta.checkpoint = true;
	meta.checkpoint_op = op;
	meta.protocol_state_len = state_len;
	uint8_t *payload = malloc(app_len + state_len + 1);
	ck_assert_ptr_nonnull(payload);
	if (app_len)
		memcpy(payload, app, app_len);
	if (state_len)
		memcpy(payload + app_len, state, state_len);
	char *err = NULL;
	int rc = oskr__snapshot_write(dir, &meta, payload, app_len + state_len,
				      &err);
	ck_assert_msg(rc == 0, "write: %s", err ? err : "?");
	free(payload);
	return oskr__snapshot_path(dir, applied);
}

struct load_log {
	unsigned reports;
	char reported[4][256];
	uint64_t reject_applied; /* accept() refuses this one */
	unsigned accepted_calls;
};

static void record_report(void *arg, const char *path, const char *why)
{
	struct load_log *log = arg;
	if (log->reports < 4)
		snprintf(log->reported[log->reports], 256, "%s: %s", path,
			 why);
	log->reports++;
}

static int accept_unless(void *arg, const char *path,
			 const struct oskr_snapshot_meta *meta,
			 const void *payload, size_t len, char **why)
{
	struct load_log *log = arg;
	log->accepted_calls++;
	if (meta->applied == log->reject_applied) {
		*why = strdup("the application refused it");
		return -EINVAL;
	}
	return 0;
}

START_TEST(test_round_trip)
{
	uint8_t payload[1000];
	fill(payload, sizeof(payload), 3);
	char *path = write_one(1234, payload, sizeof(payload));
	ck_assert(strstr(path, "/snapshot-00000000000000001234.bin"));

	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_uint_eq((size_t)st.st_size,
			  OSKR_SNAPSHOT_HEADER_SIZE + sizeof(payload));

	struct oskr_snapshot_meta meta;
	void *back = NULL;
	size_t len = 0;
	char *why = NULL;
	ck_assert_int_eq(oskr__snapshot_read(path, &meta, &back, &len, &why), 0);
	ck_assert_uint_eq(len, sizeof(payload));
	ck_assert_mem_eq(back, payload, len);
	ck_assert_uint_eq(meta.applied, 1234);
	ck_assert_uint_eq(meta.payload_len, sizeof(payload));
	ck_assert_str_eq(meta.app, "kv");
	ck_assert_str_eq(meta.protocol, "pbft");
	ck_assert_uint_gt(meta.created_unix_ms, 0);
	ck_assert_uint_eq(meta.format_version, 2);
	ck_assert(!meta.checkpoint);
	ck_assert_uint_eq(meta.checkpoint_op, 0);
	ck_assert_uint_eq(meta.protocol_state_len, 0);
	free(back);

	/* an empty payload (the null app) round-trips too */
	char *empty = write_one(7, "", 0);
	ck_assert_int_eq(oskr__snapshot_read(empty, &meta, &back, &len, &why),
			 0);
	ck_assert_uint_eq(len, 0);
	ck_assert_uint_eq(meta.applied, 7);
	free(back);
	free(empty);
	free(path);
}
END_TEST

START_TEST(test_checkpoint_round_trip)
{
	uint8_t app[500], state[40];
	fill(app, sizeof(app), 1);
	fill(state, sizeof(state), 2);
	char *path = write_checkpoint(300, 12345, app, sizeof(app), state,
				      sizeof(state));
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq((size_t)st.st_size, OSKR_SNAPSHOT_HEADER_SIZE +
						      sizeof(app) +
						      sizeof(state));
	struct oskr_snapshot_meta meta;
	void *back = NULL;
	size_t len = 0;
	char *why = NULL;
	ck_assert_int_eq(oskr__snapshot_read(path, &meta, &back, &len, &why), 0);
	ck_assert_uint_eq(meta.format_version, 2);
	ck_assert(meta.checkpoint);
	ck_assert_uint_eq(meta.checkpoint_op, 12345);
	ck_assert_uint_eq(meta.applied, 300);
	ck_assert_uint_eq(meta.protocol_state_len, sizeof(state));
	ck_assert_uint_eq(meta.payload_len, sizeof(app) + sizeof(state));
	ck_assert_uint_eq(len, sizeof(app) + sizeof(state));
	ck_assert_mem_eq(back, app, sizeof(app));
	ck_assert_mem_eq((uint8_t *)back + sizeof(app), state, sizeof(state));
	free(back);
	free(path);

	/* a checkpoint without protocol state, one at op 0, one of an
	 * empty app: all distinct from "not a checkpoint" */
	path = write_checkpoint(301, 0, app, 10, NULL, 0);
	ck_assert_int_eq(oskr__snapshot_read(path, &meta, &back, &len, &why), 0);
	ck_assert(meta.checkpoint);
	ck_assert_uint_eq(meta.checkpoint_op, 0);
	ck_assert_uint_eq(meta.protocol_state_len, 0);
	ck_assert_uint_eq(len, 10);
	free(back);
	free(path);
	path = write_checkpoint(302, 9, "", 0, state, 8);
	ck_assert_int_eq(oskr__snapshot_read(path, &meta, &back, &len, &why), 0);
	ck_assert_uint_eq(meta.protocol_state_len, 8);
	ck_assert_uint_eq(len, 8);
	ck_assert_mem_eq(back, state, 8);
	free(back);
	free(path);
}
END_TEST

START_TEST(test_write_refuses_inconsistent_meta)
{
	uint8_t payload[16] = {0};
	char *err = NULL;
	/* protocol state longer than the payload */
	struct oskr_snapshot_meta meta = meta_for(8);
	meta.checkpoint = true;
	meta.protocol_state_len = 17;
	ck_assert_int_eq(oskr__snapshot_write(dir, &meta, payload, 16, &err),
			 -EINVAL);
	ck_assert_ptr_nonnull(err);
	free(err);
	err = NULL;
	/* checkpoint fields without the checkpoint flag */
	meta = meta_for(8);
	meta.checkpoint_op = 3;
	ck_assert_int_eq(oskr__snapshot_write(dir, &meta, payload, 16, &err),
			 -EINVAL);
	free(err);
	ck_assert_uint_eq(count_entries("snapshot-"), 0);
	ck_assert_uint_eq(count_entries(".snapshot-"), 0);
}
END_TEST

START_TEST(test_v1_file_still_loads)
{
	uint8_t payload[200];
	fill(payload, sizeof(payload), 4);
	char *path = write_v1(77, payload, sizeof(payload));
	struct oskr_snapshot_meta meta;
	void *back = NULL;
	size_t len = 0;
	char *why = NULL;
	ck_assert_msg(oskr__snapshot_read(path, &meta, &back, &len, &why) == 0,
		      "%s", why ? why : "?");
	ck_assert_uint_eq(meta.format_version, 1);
	ck_assert(!meta.checkpoint);
	ck_assert_uint_eq(meta.protocol_state_len, 0);
	ck_assert_uint_eq(meta.applied, 77);
	ck_assert_uint_eq(meta.created_unix_ms, 1700000000000ull);
	ck_assert_str_eq(meta.app, "kv");
	ck_assert_str_eq(meta.protocol, "pbft");
	ck_assert_uint_eq(len, sizeof(payload));
	ck_assert_mem_eq(back, payload, len);
	free(back);
	char *empty = write_v1(78, "", 0);
	ck_assert_int_eq(oskr__snapshot_read(empty, &meta, &back, &len, &why),
			 0);
	ck_assert_uint_eq(len, 0);
	free(back);

	/* an upgraded state_dir: v1 files next to v2 ones, newest wins
	 * whatever its format */
	struct load_log log = {.reject_applied = UINT64_MAX};
	char *chosen = NULL, *err = NULL;
	char *v2 = write_checkpoint(90, 5, payload, 20, payload, 4);
	ck_assert_int_eq(oskr__snapshot_load_newest(dir, accept_unless,
						    record_report, &log, &meta,
						    &chosen, &err),
			 0);
	ck_assert_str_eq(chosen, v2);
	ck_assert(meta.checkpoint);
	free(chosen);
	ck_assert_int_eq(unlink(v2), 0);
	ck_assert_int_eq(oskr__snapshot_load_newest(dir, accept_unless,
						    record_report, &log, &meta,
						    &chosen, &err),
			 0);
	ck_assert_str_eq(chosen, empty);
	ck_assert_uint_eq(meta.format_version, 1);
	ck_assert_uint_eq(log.reports, 0);
	free(chosen);
	free(v2);
	free(empty);
	free(path);
}
END_TEST

/* The kinds of file a state_dir may hold, for the damage tests. */
enum file_kind { PLAIN_V2, CHECKPOINT_V2, FORMAT_V1, FILE_KINDS };

static char *write_kind(enum file_kind kind, uint64_t applied,
			const uint8_t *payload, size_t len)
{
	switch (kind) {
	case CHECKPOINT_V2:
		/* the last 24 bytes are protocol state */
		return write_checkpoint(applied, 4242, payload, len - 24,
					payload + len - 24, 24);
	case FORMAT_V1:
		return write_v1(applied, payload, len);
	default:
		return write_one(applied, payload, len);
	}
}

static size_t header_of(enum file_kind kind)
{
	return kind == FORMAT_V1 ? OSKR_SNAPSHOT_V1_HEADER_SIZE
				 : OSKR_SNAPSHOT_HEADER_SIZE;
}

START_TEST(test_truncated_at_every_length)
{
	enum file_kind kind = (enum file_kind)_i;
	uint8_t payload[300];
	fill(payload, sizeof(payload), 5);
	char *path = write_kind(kind, 42, payload, sizeof(payload));
	uint8_t *file;
	size_t file_len;
	read_file(path, &file, &file_len);
	char *cut = NULL;
	ck_assert_int_ge(asprintf(&cut, "%s/cut.bin", dir), 0);
	for (size_t len = 0; len < file_len; len++) {
		write_file(cut, file, len);
		char context[32];
		snprintf(context, sizeof(context), "length %zu", len);
		expect_refused(cut, "truncated", context);
	}
	/* one byte too many is refused as well */
	uint8_t *longer = malloc(file_len + 1);
	ck_assert_ptr_nonnull(longer);
	memcpy(longer, file, file_len);
	longer[file_len] = 0;
	write_file(cut, longer, file_len + 1);
	expect_refused(cut, "bad length", "one extra byte");
	/* and the untouched copy still reads */
	write_file(cut, file, file_len);
	struct oskr_snapshot_meta meta;
	void *back = NULL;
	size_t len = 0;
	char *why = NULL;
	ck_assert_int_eq(oskr__snapshot_read(cut, &meta, &back, &len, &why), 0);
	free(back);
	free(longer);
	free(file);
	free(cut);
	free(path);
}
END_TEST

START_TEST(test_every_flipped_bit_refused)
{
	enum file_kind kind = (enum file_kind)_i;
	uint8_t payload[64];
	fill(payload, sizeof(payload), 9);
	char *path = write_kind(kind, 99, payload, sizeof(payload));
	uint8_t *file;
	size_t file_len;
	read_file(path, &file, &file_len);
	char *bad = NULL;
	ck_assert_int_ge(asprintf(&bad, "%s/flipped.bin", dir), 0);
	for (size_t at = 0; at < file_len; at++) {
		for (int bit = 0; bit < 8; bit++) {
			file[at] ^= (uint8_t)(1u << bit);
			write_file(bad, file, file_len);
			char context[48];
			snprintf(context, sizeof(context), "byte %zu bit %d",
				 at, bit);
			expect_refused(bad, NULL, context);
			file[at] ^= (uint8_t)(1u << bit);
		}
	}
	/* the reasons name what is wrong */
	file[0] ^= 1;
	write_file(bad, file, file_len);
	expect_refused(bad, "bad magic", "magic");
	file[0] ^= 1;
	file[8] ^= 2;
	write_file(bad, file, file_len);
	expect_refused(bad, "format version", "version");
	file[8] ^= 2;
	file[header_of(kind) + 10] ^= 4;
	write_file(bad, file, file_len);
	expect_refused(bad, "checksum mismatch", "payload");
	file[header_of(kind) + 10] ^= 4;
	if (kind == CHECKPOINT_V2) {
		/* in the protocol state at the end too */
		file[file_len - 1] ^= 1;
		write_file(bad, file, file_len);
		expect_refused(bad, "checksum mismatch", "protocol state");
		file[file_len - 1] ^= 1;
	}
	/* a v2 header claiming format 1 has the wrong size for it */
	if (kind != FORMAT_V1) {
		file[8] = 1;
		write_file(bad, file, file_len);
		expect_refused(bad, "header size", "v2 as v1");
		file[8] = 2;
	}
	free(file);
	free(bad);
	free(path);
}
END_TEST

START_TEST(test_header_fields_checked_past_checksum)
{
	/* Header fields a future writer might set are refused even with a
	 * matching checksum (a file this oskrd cannot understand is not
	 * loaded half-understood). */
	uint8_t payload[32];
	fill(payload, sizeof(payload), 6);
	char *path = write_one(5, payload, sizeof(payload));
	uint8_t *file;
	size_t file_len;
	read_file(path, &file, &file_len);
	char *bad = NULL;
	ck_assert_int_ge(asprintf(&bad, "%s/reforged.bin", dir), 0);
	static const struct {
		size_t at;
		uint8_t value;
		const char *reason;
	} cases[] = {
		{112, 2, "unknown flags"}, /* an unknown flag */
		{120, 1, "reserved"}, /* a reserved byte */
		{104, 1, "not a checkpoint"}, /* state without the flag */
		{96, 1, "not a checkpoint"}, /* an op without the flag */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t saved = file[cases[i].at];
		file[cases[i].at] = cases[i].value;
		sha256_parts(file, 128, file + OSKR_SNAPSHOT_HEADER_SIZE,
			     file_len - OSKR_SNAPSHOT_HEADER_SIZE, file + 128);
		write_file(bad, file, file_len);
		expect_refused(bad, cases[i].reason, cases[i].reason);
		file[cases[i].at] = saved;
	}
	/* a protocol state longer than the payload, flag set */
	file[112] = 1;
	put_le(file + 104, sizeof(payload) + 1, 8);
	sha256_parts(file, 128, file + OSKR_SNAPSHOT_HEADER_SIZE,
		     file_len - OSKR_SNAPSHOT_HEADER_SIZE, file + 128);
	write_file(bad, file, file_len);
	expect_refused(bad, "protocol state of 33 bytes", "state too long");
	free(bad);
	free(file);
	free(path);
}
END_TEST

START_TEST(test_newest_valid_selected)
{
	struct load_log log = {.reject_applied = UINT64_MAX};
	struct oskr_snapshot_meta meta;
	char *chosen = NULL;
	char *err = NULL;
	/* empty directory: nothing */
	ck_assert_int_eq(oskr__snapshot_load_newest(dir, accept_unless,
						    record_report, &log, &meta,
						    &chosen, &err),
			 -ENOENT);
	ck_assert_uint_eq(log.reports, 0);

	uint8_t payload[32];
	char *paths[4];
	for (unsigned i = 0; i < 4; i++) {
		fill(payload, sizeof(payload), i);
		paths[i] = write_one(10 * (i + 1), payload, sizeof(payload));
	}
	/* unrelated files are ignored */
	char *other = NULL;
	ck_assert_int_ge(asprintf(&other, "%s/notes.txt", dir), 0);
	write_file(other, (const uint8_t *)"x", 1);

	/* corrupt the newest (40) */
	uint8_t *file;
	size_t file_len;
	read_file(paths[3], &file, &file_len);
	file[file_len - 1] ^= 0xff;
	write_file(paths[3], file, file_len);
	free(file);
	/* a copy of 10 under a bigger name: header and name disagree */
	char *renamed = oskr__snapshot_path(dir, 50);
	read_file(paths[0], &file, &file_len);
	write_file(renamed, file, file_len);
	free(file);

	ck_assert_int_eq(oskr__snapshot_load_newest(dir, accept_unless,
						    record_report, &log, &meta,
						    &chosen, &err),
			 0);
	ck_assert_uint_eq(meta.applied, 30);
	ck_assert_str_eq(chosen, paths[2]);
	ck_assert_uint_eq(log.reports, 2);
	ck_assert_msg(strstr(log.reported[0], "snapshot-00000000000000000050") &&
			      strstr(log.reported[0], "file name says 50"),
		      "%s", log.reported[0]);
	ck_assert_msg(strstr(log.reported[1], paths[3]) &&
			      strstr(log.reported[1], "checksum mismatch"),
		      "%s", log.reported[1]);
	free(chosen);
	chosen = NULL;

	/* the application refusing 30 falls back to 20 */
	log = (struct load_log){.reject_applied = 30};
	ck_assert_int_eq(oskr__snapshot_load_newest(dir, accept_unless,
						    record_report, &log, &meta,
						    &chosen, &err),
			 0);
	ck_assert_uint_eq(meta.applied, 20);
	ck_assert_uint_eq(log.reports, 3);
	ck_assert(strstr(log.reported[2], "the application refused it"));
	free(chosen);

	/* nothing valid at all: -ENOENT after reporting every file */
	for (unsigned i = 0; i < 3; i++)
		ck_assert_int_eq(truncate(paths[i], 10), 0);
	log = (struct load_log){.reject_applied = UINT64_MAX};
	chosen = NULL;
	ck_assert_int_eq(oskr__snapshot_load_newest(dir, accept_unless,
						    record_report, &log, &meta,
						    &chosen, &err),
			 -ENOENT);
	ck_assert_ptr_null(chosen);
	ck_assert_uint_eq(log.reports, 5);
	ck_assert_uint_eq(log.accepted_calls, 0);

	for (unsigned i = 0; i < 4; i++)
		free(paths[i]);
	free(renamed);
	free(other);
	free(err);
}
END_TEST

START_TEST(test_unreadable_directory)
{
	char *missing = NULL;
	ck_assert_int_ge(asprintf(&missing, "%s/absent", dir), 0);
	char *err = NULL;
	ck_assert_int_eq(oskr__snapshot_load_newest(missing, accept_unless,
						    NULL, NULL, NULL, NULL,
						    &err),
			 -ENOENT);
	ck_assert_ptr_nonnull(err);
	ck_assert(strstr(err, missing));
	free(err);
	free(missing);
}
END_TEST

START_TEST(test_prune_keeps_newest)
{
	uint8_t payload[8] = {0};
	for (uint64_t n = 10; n <= 50; n += 10)
		free(write_one(n, payload, sizeof(payload)));
	/* 50 is "above" the newest written: never touched */
	ck_assert_int_eq(oskr__snapshot_prune(dir, 40, 2), 2);
	ck_assert_uint_eq(count_entries("snapshot-"), 3);
	for (uint64_t n = 30; n <= 50; n += 10) {
		char *path = oskr__snapshot_path(dir, n);
		ck_assert_int_eq(access(path, F_OK), 0);
		free(path);
	}
	ck_assert_int_eq(oskr__snapshot_prune(dir, 50, 1), 2);
	ck_assert_uint_eq(count_entries("snapshot-"), 1);
}
END_TEST

START_TEST(test_name_parse)
{
	uint64_t n = 0;
	ck_assert(oskr__snapshot_name_parse("snapshot-00000000000000000012.bin",
					    &n));
	ck_assert_uint_eq(n, 12);
	ck_assert(oskr__snapshot_name_parse("snapshot-7.bin", &n));
	ck_assert_uint_eq(n, 7);
	ck_assert(oskr__snapshot_name_parse("snapshot-18446744073709551615.bin",
					    &n));
	ck_assert_uint_eq(n, UINT64_MAX);
	ck_assert(!oskr__snapshot_name_parse("snapshot-18446744073709551616.bin",
					     &n));
	ck_assert(!oskr__snapshot_name_parse("snapshot-.bin", &n));
	ck_assert(!oskr__snapshot_name_parse("snapshot-12.bin.tmp", &n));
	ck_assert(!oskr__snapshot_name_parse(".snapshot-Ab12Cd", &n));
	ck_assert(!oskr__snapshot_name_parse("snapshot-1x.bin", &n));
	ck_assert(!oskr__snapshot_name_parse("snapshot--1.bin", &n));
}
END_TEST

START_TEST(test_failed_write_leaves_nothing)
{
	/* A write that fails half way (file size limit: EFBIG, as a full
	 * disk would give ENOSPC) leaves neither a final file nor a
	 * temporary one. */
	size_t len = 1 << 20;
	uint8_t *payload = calloc(1, len);
	ck_assert_ptr_nonnull(payload);
	struct rlimit saved, limited;
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
	limited = saved;
	limited.rlim_cur = 64 * 1024;
	void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &limited), 0);
	struct oskr_snapshot_meta meta = meta_for(5);
	char *err = NULL;
	int rc = oskr__snapshot_write(dir, &meta, payload, len, &err);
	setrlimit(RLIMIT_FSIZE, &saved);
	signal(SIGXFSZ, old_handler);
	ck_assert_int_eq(rc, -EFBIG);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, "cannot write"), "%s", err);
	ck_assert_uint_eq(count_entries("snapshot-"), 0);
	ck_assert_uint_eq(count_entries(".snapshot-"), 0);
	free(err);
	err = NULL;

	/* a directory that does not exist: an error, nothing created */
	char *missing = NULL;
	ck_assert_int_ge(asprintf(&missing, "%s/absent", dir), 0);
	rc = oskr__snapshot_write(missing, &meta, payload, 10, &err);
	ck_assert_int_eq(rc, -ENOENT);
	ck_assert(strstr(err, "temporary"));
	ck_assert_int_eq(access(missing, F_OK), -1);
	free(err);
	free(missing);

	/* a successful write leaves exactly the final file */
	free(write_one(6, payload, 100));
	ck_assert_uint_eq(count_entries("snapshot-"), 1);
	ck_assert_uint_eq(count_entries(".snapshot-"), 0);
	free(payload);
}
END_TEST

START_TEST(test_crash_leftovers_cleaned)
{
	/* what a crash between create and rename leaves */
	char *temp = NULL;
	ck_assert_int_ge(asprintf(&temp, "%s/.snapshot-Ab12Cd", dir), 0);
	write_file(temp, (const uint8_t *)"OSKRSNAP partial", 16);
	uint8_t payload[4] = {1, 2, 3, 4};
	free(write_one(3, payload, sizeof(payload)));

	struct oskr_snapshot_meta meta;
	struct load_log log = {.reject_applied = UINT64_MAX};
	char *err = NULL;
	ck_assert_int_eq(oskr__snapshot_load_newest(dir, accept_unless,
						    record_report, &log, &meta,
						    NULL, &err),
			 0);
	ck_assert_uint_eq(meta.applied, 3);
	ck_assert_uint_eq(log.reports, 0); /* temporaries are not candidates */
	ck_assert_int_eq(oskr__snapshot_clean_temporaries(dir), 1);
	ck_assert_int_eq(access(temp, F_OK), -1);
	free(temp);
}
END_TEST

START_TEST(test_state_dir_lock)
{
	char *nested = NULL;
	ck_assert_int_ge(asprintf(&nested, "%s/a/b", dir), 0);
	struct oskr_state_dir *first = NULL, *second = NULL;
	char *err = NULL;
	ck_assert_int_eq(oskr__state_dir_open(&first, nested, &err), 0);
	struct stat st;
	ck_assert_int_eq(stat(nested, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	ck_assert_str_eq(oskr__state_dir_path(first), nested);

	/* a second holder (another daemon) is refused, naming the pid */
	ck_assert_int_eq(oskr__state_dir_open(&second, nested, &err),
			 -EWOULDBLOCK);
	char pid[32];
	snprintf(pid, sizeof(pid), "pid %ld", (long)getpid());
	ck_assert_msg(strstr(err, "in use") && strstr(err, pid), "%s", err);
	free(err);
	err = NULL;
	oskr__state_dir_close(first);
	ck_assert_int_eq(oskr__state_dir_open(&second, nested, &err), 0);
	oskr__state_dir_close(second);

	/* a file where the directory should be */
	char *file = NULL;
	ck_assert_int_ge(asprintf(&file, "%s/plain", dir), 0);
	write_file(file, (const uint8_t *)"x", 1);
	ck_assert_int_eq(oskr__state_dir_open(&second, file, &err), -ENOTDIR);
	free(err);

	char *lock = NULL;
	ck_assert_int_ge(asprintf(&lock, "%s/oskrd.lock", nested), 0);
	unlink(lock);
	rmdir(nested);
	*strrchr(nested, '/') = '\0';
	rmdir(nested);
	free(lock);
	free(file);
	free(nested);
}
END_TEST

START_TEST(test_writer)
{
	struct oskr_snapshot_writer *writer = NULL;
	ck_assert_int_eq(oskr__snapshot_writer_create(&writer, dir, 2), 0);
	enum { SUBMITTED = 20 };
	for (unsigned i = 1; i <= SUBMITTED; i++) {
		uint8_t *payload = malloc(256);
		ck_assert_ptr_nonnull(payload);
		fill(payload, 256, i);
		struct oskr_snapshot_meta meta = meta_for(i * 100);
		oskr__snapshot_writer_submit(writer, &meta, payload, 256);
	}
	ck_assert_int_eq(oskr__snapshot_writer_flush(writer), 0);
	struct oskr_snapshot_writer_stats stats;
	oskr__snapshot_writer_stats(writer, &stats);
	ck_assert_uint_eq(stats.written + stats.superseded, SUBMITTED);
	ck_assert_uint_eq(stats.failed, 0);
	ck_assert_uint_eq(stats.last_applied, SUBMITTED * 100);
	ck_assert_uint_eq(stats.last_bytes, 256);
	ck_assert(!stats.last_checkpoint);
	ck_assert_uint_eq(stats.checkpoints_written, 0);
	/* the newest is on disk and valid; at most `keep` files remain */
	char *newest = oskr__snapshot_path(dir, SUBMITTED * 100);
	struct oskr_snapshot_meta meta;
	void *payload = NULL;
	size_t len = 0;
	char *why = NULL;
	ck_assert_int_eq(oskr__snapshot_read(newest, &meta, &payload, &len,
					     &why),
			 0);
	uint8_t expected[256];
	fill(expected, sizeof(expected), SUBMITTED);
	ck_assert_mem_eq(payload, expected, sizeof(expected));
	free(payload);
	free(newest);
	ck_assert_uint_le(count_entries("snapshot-"), 2);

	/* a checkpoint goes through the writer with its fields */
	uint8_t *cp = malloc(48);
	ck_assert_ptr_nonnull(cp);
	fill(cp, 48, 3);
	struct oskr_snapshot_meta cp_meta = meta_for(SUBMITTED * 100 + 1);
	cp_meta.checkpoint = true;
	cp_meta.checkpoint_op = 640;
	cp_meta.protocol_state_len = 16;
	oskr__snapshot_writer_submit(writer, &cp_meta, cp, 48);
	ck_assert_int_eq(oskr__snapshot_writer_flush(writer), 0);
	oskr__snapshot_writer_stats(writer, &stats);
	ck_assert(stats.last_checkpoint);
	ck_assert_uint_eq(stats.last_checkpoint_op, 640);
	ck_assert_uint_eq(stats.checkpoints_written, 1);
	newest = oskr__snapshot_path(dir, SUBMITTED * 100 + 1);
	ck_assert_int_eq(oskr__snapshot_read(newest, &meta, &payload, &len,
					     &why),
			 0);
	ck_assert(meta.checkpoint);
	ck_assert_uint_eq(meta.checkpoint_op, 640);
	ck_assert_uint_eq(meta.protocol_state_len, 16);
	free(payload);
	free(newest);

	/* free() writes what is still pending */
	uint8_t *last = malloc(16);
	ck_assert_ptr_nonnull(last);
	fill(last, 16, 77);
	struct oskr_snapshot_meta last_meta = meta_for(999999);
	oskr__snapshot_writer_submit(writer, &last_meta, last, 16);
	oskr__snapshot_writer_free(writer);
	char *final = oskr__snapshot_path(dir, 999999);
	ck_assert_int_eq(access(final, F_OK), 0);
	free(final);
}
END_TEST

static Suite *snapshot_suite(void)
{
	Suite *suite = suite_create("snapshot_store");
	TCase *tc = tcase_create("files");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_checkpoint_round_trip);
	tcase_add_test(tc, test_write_refuses_inconsistent_meta);
	tcase_add_test(tc, test_v1_file_still_loads);
	tcase_add_loop_test(tc, test_truncated_at_every_length, 0, FILE_KINDS);
	tcase_add_loop_test(tc, test_every_flipped_bit_refused, 0, FILE_KINDS);
	tcase_add_test(tc, test_header_fields_checked_past_checksum);
	tcase_add_test(tc, test_newest_valid_selected);
	tcase_add_test(tc, test_unreadable_directory);
	tcase_add_test(tc, test_prune_keeps_newest);
	tcase_add_test(tc, test_name_parse);
	tcase_add_test(tc, test_failed_write_leaves_nothing);
	tcase_add_test(tc, test_crash_leftovers_cleaned);
	tcase_add_test(tc, test_state_dir_lock);
	tcase_add_test(tc, test_writer);
	suite_add_tcase(suite, tc);
	return suite;
}

int main(void)
{
	SRunner *runner = srunner_create(snapshot_suite());
	srunner_run_all(runner, CK_ENV);
	int failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
