/* SPDX-License-Identifier: MIT */
/*
 * Durable application snapshots: atomic file writes, checked reads, the
 * newest-valid selection, the state directory lock and a background
 * writer. The format is described in snapshot_store.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "snapshot_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"

#define NAME_PREFIX "snapshot-"
#define NAME_SUFFIX ".bin"
#define NAME_DIGITS 20
#define TEMP_PREFIX ".snapshot-"
#define LOCK_NAME "oskrd.lock"

/* header field offsets */
#define OFF_MAGIC 0
#define OFF_VERSION 8
#define OFF_HEADER_SIZE 12
#define OFF_APPLIED 16
#define OFF_PAYLOAD_LEN 24
#define OFF_CREATED 32
#define OFF_APP 40
#define OFF_PROTOCOL 72
#define OFF_CHECKPOINT_OP 96 /* version 2 on */
#define OFF_PROTOCOL_LEN 104
#define OFF_FLAGS 112
#define OFF_RESERVED 116
#define OFF_CHECKSUM_V1 96
#define OFF_CHECKSUM 128
#define CHECKSUM_SIZE 32
/* the first bytes of every version: magic, version, header size */
#define PREAMBLE_SIZE 16

#define FLAG_CHECKPOINT 1u
#define KNOWN_FLAGS FLAG_CHECKPOINT

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* SHA-256 over the header's first @p covered bytes (everything before
 * the checksum) and the payload, without copying the payload next to the
 * header. */
static int checksum(const uint8_t *header, size_t covered,
		    const void *payload, size_t len,
		    uint8_t out[CHECKSUM_SIZE])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md)
		return -ENOMEM;
	unsigned out_len = 0;
	int ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
		 EVP_DigestUpdate(md, header, covered) &&
		 (len == 0 || EVP_DigestUpdate(md, payload, len)) &&
		 EVP_DigestFinal_ex(md, out, &out_len) &&
		 out_len == CHECKSUM_SIZE;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -EIO;
}

char *oskr__snapshot_path(const char *dir, uint64_t applied)
{
	char *path = NULL;
	if (asprintf(&path, "%s/" NAME_PREFIX "%0*" PRIu64 NAME_SUFFIX, dir,
		     NAME_DIGITS, applied) < 0)
		return NULL;
	return path;
}

bool oskr__snapshot_name_parse(const char *name, uint64_t *applied)
{
	size_t prefix = strlen(NAME_PREFIX), suffix = strlen(NAME_SUFFIX);
	size_t len = strlen(name);
	if (len <= prefix + suffix || strncmp(name, NAME_PREFIX, prefix) != 0 ||
	    strcmp(name + len - suffix, NAME_SUFFIX) != 0)
		return false;
	size_t digits = len - prefix - suffix;
	if (digits > NAME_DIGITS)
		return false;
	uint64_t value = 0;
	for (size_t i = 0; i < digits; i++) {
		char c = name[prefix + i];
		if (c < '0' || c > '9')
			return false;
		uint64_t digit = (uint64_t)(c - '0');
		if (value > (UINT64_MAX - digit) / 10)
			return false;
		value = value * 10 + digit;
	}
	*applied = value;
	return true;
}

static int write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Returns the bytes read (short only at end of file), or -errno. */
static ssize_t read_full(int fd, void *data, size_t len)
{
	uint8_t *p = data;
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, p + done, len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int fsync_directory(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

static int encode_header(uint8_t header[OSKR_SNAPSHOT_HEADER_SIZE],
			 const struct oskr_snapshot_meta *meta,
			 const void *payload, size_t len)
{
	memset(header, 0, OSKR_SNAPSHOT_HEADER_SIZE);
	memcpy(header + OFF_MAGIC, OSKR_SNAPSHOT_MAGIC, 8);
	put_u32(header + OFF_VERSION, OSKR_SNAPSHOT_FORMAT_VERSION);
	put_u32(header + OFF_HEADER_SIZE, OSKR_SNAPSHOT_HEADER_SIZE);
	put_u64(header + OFF_APPLIED, meta->applied);
	put_u64(header + OFF_PAYLOAD_LEN, len);
	put_u64(header + OFF_CREATED, meta->created_unix_ms);
	/* the names are NUL-padded and always NUL-terminated */
	memcpy(header + OFF_APP, meta->app,
	       strnlen(meta->app, sizeof(meta->app) - 1));
	memcpy(header + OFF_PROTOCOL, meta->protocol,
	       strnlen(meta->protocol, sizeof(meta->protocol) - 1));
	put_u64(header + OFF_CHECKPOINT_OP, meta->checkpoint_op);
	put_u64(header + OFF_PROTOCOL_LEN, meta->protocol_state_len);
	put_u32(header + OFF_FLAGS, meta->checkpoint ? FLAG_CHECKPOINT : 0);
	return checksum(header, OFF_CHECKSUM, payload, len,
			header + OFF_CHECKSUM);
}

static uint64_t unix_ms_now(void)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

int oskr__snapshot_write(const char *dir, struct oskr_snapshot_meta *meta,
			 const void *payload, size_t len, char **err)
{
	if (meta->protocol_state_len > len ||
	    (!meta->checkpoint &&
	     (meta->protocol_state_len || meta->checkpoint_op))) {
		oskr__errorf(err,
			     "%s: inconsistent snapshot metadata (protocol "
			     "state of %" PRIu64 " bytes in a payload of %zu)",
			     dir, meta->protocol_state_len, len);
		return -EINVAL;
	}
	meta->payload_len = len;
	meta->format_version = OSKR_SNAPSHOT_FORMAT_VERSION;
	if (!meta->created_unix_ms)
		meta->created_unix_ms = unix_ms_now();
	uint8_t header[OSKR_SNAPSHOT_HEADER_SIZE];
	int rc = encode_header(header, meta, payload, len);
	if (rc < 0) {
		oskr__errorf(err, "%s: cannot checksum a snapshot: %s", dir,
			     strerror(-rc));
		return rc;
	}
	char *final_path = oskr__snapshot_path(dir, meta->applied);
	char *temp_path = NULL;
	if (!final_path ||
	    asprintf(&temp_path, "%s/" TEMP_PREFIX "XXXXXX", dir) < 0) {
		free(final_path);
		oskr__errorf(err, "out of memory");
		return -ENOMEM;
	}
	int fd = mkostemp(temp_path, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		oskr__errorf(err, "%s: cannot create a temporary file: %s", dir,
			     strerror(-rc));
		goto out;
	}
	const char *step = "write";
	rc = write_all(fd, header, sizeof(header));
	if (!rc && len)
		rc = write_all(fd, payload, len);
	if (!rc) {
		step = "fsync";
		rc = fsync(fd) < 0 ? -errno : 0;
	}
	if (close(fd) < 0 && !rc) {
		step = "close";
		rc = -errno;
	}
	if (!rc) {
		step = "rename into place";
		rc = rename(temp_path, final_path) < 0 ? -errno : 0;
	}
	if (rc) {
		unlink(temp_path);
		oskr__errorf(err, "%s: cannot %s: %s", final_path, step,
			     strerror(-rc));
		goto out;
	}
	/* The rename is durable only once the directory is. The file is in
	 * place and valid either way; report, but it stays. */
	rc = fsync_directory(dir);
	if (rc)
		oskr__errorf(err, "%s: cannot fsync the directory: %s", dir,
			     strerror(-rc));
out:
	free(temp_path);
	free(final_path);
	return rc;
}

static int invalid(char **why, const char *fmt, ...) OSKR_PRINTF(2, 3);
static int invalid(char **why, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	free(*why);
	if (vasprintf(why, fmt, ap) < 0)
		*why = NULL;
	va_end(ap);
	return -EINVAL;
}

static bool name_terminated(const uint8_t *field, size_t size)
{
	return memchr(field, '\0', size) != NULL;
}

int oskr__snapshot_read(const char *path, struct oskr_snapshot_meta *meta,
			void **payload, size_t *len, char **why)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int rc = -errno;
		oskr__errorf(why, "cannot open: %s", strerror(-rc));
		return rc;
	}
	int rc;
	uint8_t *data = NULL;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		oskr__errorf(why, "cannot stat: %s", strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = invalid(why, "not a regular file");
		goto out;
	}
	uint64_t file_size = (uint64_t)st.st_size;
	/* The preamble says which version, and so how long the header is. */
	uint8_t header[OSKR_SNAPSHOT_HEADER_SIZE];
	ssize_t got = read_full(fd, header, PREAMBLE_SIZE);
	if (got < 0) {
		rc = (int)got;
		oskr__errorf(why, "cannot read: %s", strerror(-rc));
		goto out;
	}
	if ((size_t)got < PREAMBLE_SIZE) {
		rc = invalid(why,
			     "truncated: %zd bytes, shorter than any snapshot "
			     "header",
			     got);
		goto out;
	}
	if (memcmp(header + OFF_MAGIC, OSKR_SNAPSHOT_MAGIC, 8) != 0) {
		rc = invalid(why, "not an oskr snapshot (bad magic)");
		goto out;
	}
	uint32_t version = get_u32(header + OFF_VERSION);
	if (version != OSKR_SNAPSHOT_FORMAT_VERSION &&
	    version != OSKR_SNAPSHOT_FORMAT_V1) {
		rc = invalid(why,
			     "unsupported format version %" PRIu32
			     " (this oskrd reads %d and %d)",
			     version, OSKR_SNAPSHOT_FORMAT_V1,
			     OSKR_SNAPSHOT_FORMAT_VERSION);
		goto out;
	}
	bool v1 = version == OSKR_SNAPSHOT_FORMAT_V1;
	uint32_t expected_header = v1 ? OSKR_SNAPSHOT_V1_HEADER_SIZE
				      : OSKR_SNAPSHOT_HEADER_SIZE;
	size_t checksum_at = v1 ? OFF_CHECKSUM_V1 : OFF_CHECKSUM;
	uint32_t header_size = get_u32(header + OFF_HEADER_SIZE);
	if (header_size != expected_header) {
		rc = invalid(why,
			     "unexpected header size %" PRIu32
			     " for format version %" PRIu32,
			     header_size, version);
		goto out;
	}
	got = read_full(fd, header + PREAMBLE_SIZE,
			header_size - PREAMBLE_SIZE);
	if (got < 0) {
		rc = (int)got;
		oskr__errorf(why, "cannot read: %s", strerror(-rc));
		goto out;
	}
	if ((size_t)got < header_size - PREAMBLE_SIZE) {
		rc = invalid(why,
			     "truncated: %zd bytes, shorter than the %" PRIu32
			     "-byte header",
			     got + PREAMBLE_SIZE, header_size);
		goto out;
	}
	uint64_t payload_len = get_u64(header + OFF_PAYLOAD_LEN);
	if (payload_len > OSKR_SNAPSHOT_MAX_PAYLOAD ||
	    payload_len > SIZE_MAX - 1) {
		rc = invalid(why, "implausible payload length %" PRIu64,
			     payload_len);
		goto out;
	}
	uint64_t expected = header_size + payload_len;
	if (file_size != expected) {
		rc = invalid(why,
			     "%s: the header announces %" PRIu64
			     " payload bytes, so %" PRIu64
			     " bytes in all, but the file has %" PRIu64,
			     file_size < expected ? "truncated" : "bad length",
			     payload_len, expected, file_size);
		goto out;
	}
	if (!name_terminated(header + OFF_APP, sizeof(meta->app)) ||
	    !name_terminated(header + OFF_PROTOCOL, sizeof(meta->protocol))) {
		rc = invalid(why, "malformed header (unterminated name)");
		goto out;
	}
	bool checkpoint = false;
	uint64_t checkpoint_op = 0, protocol_len = 0;
	if (!v1) {
		uint32_t flags = get_u32(header + OFF_FLAGS);
		checkpoint = flags & FLAG_CHECKPOINT;
		checkpoint_op = get_u64(header + OFF_CHECKPOINT_OP);
		protocol_len = get_u64(header + OFF_PROTOCOL_LEN);
		static const uint8_t zero[OFF_CHECKSUM - OFF_RESERVED];
		if (flags & ~KNOWN_FLAGS ||
		    memcmp(header + OFF_RESERVED, zero, sizeof(zero)) != 0) {
			rc = invalid(why, "malformed header (unknown flags "
					  "or reserved bytes set)");
			goto out;
		}
		if (protocol_len > payload_len ||
		    (!checkpoint && (protocol_len || checkpoint_op))) {
			rc = invalid(why,
				     "malformed header (protocol state of "
				     "%" PRIu64 " bytes in a payload of "
				     "%" PRIu64 "%s)",
				     protocol_len, payload_len,
				     checkpoint ? "" : ", not a checkpoint");
			goto out;
		}
	}
	data = malloc(payload_len ? (size_t)payload_len : 1);
	if (!data) {
		rc = -ENOMEM;
		oskr__errorf(why, "out of memory for %" PRIu64 " bytes",
			     payload_len);
		goto out;
	}
	got = read_full(fd, data, (size_t)payload_len);
	if (got < 0) {
		rc = (int)got;
		oskr__errorf(why, "cannot read: %s", strerror(-rc));
		goto out;
	}
	if ((uint64_t)got != payload_len) {
		rc = invalid(why, "truncated while reading (%zd of %" PRIu64
				  " payload bytes)",
			     got, payload_len);
		goto out;
	}
	uint8_t sum[CHECKSUM_SIZE];
	rc = checksum(header, checksum_at, data, (size_t)payload_len, sum);
	if (rc < 0) {
		oskr__errorf(why, "cannot checksum: %s", strerror(-rc));
		goto out;
	}
	if (memcmp(sum, header + checksum_at, CHECKSUM_SIZE) != 0) {
		rc = invalid(why, "checksum mismatch: the file is corrupted");
		goto out;
	}
	*meta = (struct oskr_snapshot_meta){
		.applied = get_u64(header + OFF_APPLIED),
		.payload_len = payload_len,
		.created_unix_ms = get_u64(header + OFF_CREATED),
		.checkpoint = checkpoint,
		.checkpoint_op = checkpoint_op,
		.protocol_state_len = protocol_len,
		.format_version = version,
	};
	memcpy(meta->app, header + OFF_APP, sizeof(meta->app));
	memcpy(meta->protocol, header + OFF_PROTOCOL, sizeof(meta->protocol));
	*payload = data;
	*len = (size_t)payload_len;
	data = NULL;
	rc = 0;
out:
	free(data);
	close(fd);
	return rc;
}

/* ---- directory listing ---- */

struct listed_snapshot {
	uint64_t applied;
	char *name;
};

struct snapshot_list {
	struct listed_snapshot *items;
	size_t count, capacity;
};

static int compare_newest_first(const void *a, const void *b)
{
	const struct listed_snapshot *x = a, *y = b;
	if (x->applied != y->applied)
		return x->applied < y->applied ? 1 : -1;
	return strcmp(x->name, y->name);
}

static void free_list(struct snapshot_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i].name);
	free(list->items);
}

/* Every snapshot-N.bin in @p dir, newest first. A name written by hand
 * with fewer digits ("snapshot-5.bin") counts too, under its own name. */
static int list_snapshots(const char *dir, struct snapshot_list *out)
{
	*out = (struct snapshot_list){0};
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	int rc = 0;
	struct dirent *entry;
	while ((entry = readdir(d))) {
		uint64_t applied;
		if (!oskr__snapshot_name_parse(entry->d_name, &applied))
			continue;
		if (out->count == out->capacity) {
			size_t grown = out->capacity ? out->capacity * 2 : 16;
			struct listed_snapshot *items =
				realloc(out->items, grown * sizeof(*items));
			if (!items) {
				rc = -ENOMEM;
				break;
			}
			out->items = items;
			out->capacity = grown;
		}
		char *name = strdup(entry->d_name);
		if (!name) {
			rc = -ENOMEM;
			break;
		}
		out->items[out->count++] = (struct listed_snapshot){
			.applied = applied,
			.name = name,
		};
	}
	closedir(d);
	if (rc) {
		free_list(out);
		return rc;
	}
	if (out->count)
		qsort(out->items, out->count, sizeof(*out->items),
		      compare_newest_first);
	return 0;
}

int oskr__snapshot_load_newest(const char *dir, oskr__snapshot_accept_fn accept,
			       oskr__snapshot_report_fn report, void *arg,
			       struct oskr_snapshot_meta *out_meta,
			       char **out_path, char **err)
{
	struct snapshot_list list;
	int rc = list_snapshots(dir, &list);
	if (rc < 0) {
		oskr__errorf(err, "%s: cannot list snapshots: %s", dir,
			     strerror(-rc));
		return rc;
	}
	rc = -ENOENT;
	for (size_t i = 0; i < list.count && rc == -ENOENT; i++) {
		const struct listed_snapshot *item = &list.items[i];
		char *path = NULL;
		if (asprintf(&path, "%s/%s", dir, item->name) < 0) {
			rc = -ENOMEM;
			break;
		}
		struct oskr_snapshot_meta meta;
		void *payload = NULL;
		size_t len = 0;
		char *why = NULL;
		int one = oskr__snapshot_read(path, &meta, &payload, &len, &why);
		if (one == 0 && meta.applied != item->applied)
			one = invalid(&why,
				      "the file name says %" PRIu64
				      " but the header says %" PRIu64,
				      item->applied, meta.applied);
		if (one == 0)
			one = accept(arg, path, &meta, payload, len, &why);
		if (one == 0) {
			if (out_meta)
				*out_meta = meta;
			if (out_path) {
				*out_path = path;
				path = NULL;
			}
			rc = 0;
		} else if (report) {
			report(arg, path, why ? why : strerror(-one));
		}
		free(why);
		free(payload);
		free(path);
	}
	free_list(&list);
	if (rc == -ENOMEM)
		oskr__errorf(err, "out of memory");
	return rc;
}

int oskr__snapshot_prune(const char *dir, uint64_t newest, unsigned keep)
{
	struct snapshot_list list;
	int rc = list_snapshots(dir, &list);
	if (rc < 0)
		return rc;
	if (keep == 0)
		keep = 1;
	unsigned kept_below = 0;
	int removed = 0;
	for (size_t i = 0; i < list.count; i++) {
		if (list.items[i].applied >= newest)
			continue;
		if (kept_below + 1 < keep) {
			kept_below++;
			continue;
		}
		char *path = NULL;
		if (asprintf(&path, "%s/%s", dir, list.items[i].name) < 0)
			continue;
		if (unlink(path) == 0)
			removed++;
		free(path);
	}
	free_list(&list);
	return removed;
}

int oskr__snapshot_clean_temporaries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	int removed = 0;
	struct dirent *entry;
	while ((entry = readdir(d))) {
		if (strncmp(entry->d_name, TEMP_PREFIX, strlen(TEMP_PREFIX)))
			continue;
		if (unlinkat(dirfd(d), entry->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	return removed;
}

/* ---- state directory ---- */

struct oskr_state_dir {
	char *path;
	int lock_fd;
};

static int make_directories(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	int rc = 0;
	for (char *p = copy + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(copy, 0700) < 0 && errno != EEXIST) {
			rc = -errno;
			break;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
	free(copy);
	if (!rc) {
		struct stat st;
		if (stat(path, &st) < 0)
			rc = -errno;
		else if (!S_ISDIR(st.st_mode))
			rc = -ENOTDIR;
	}
	return rc;
}

int oskr__state_dir_open(struct oskr_state_dir **out, const char *path,
			 char **err)
{
	if (!path || !path[0])
		return oskr__errorf(err, "state_dir is empty");
	int rc = make_directories(path);
	if (rc < 0) {
		oskr__errorf(err, "state_dir %s: cannot create: %s", path,
			     strerror(-rc));
		return rc;
	}
	struct oskr_state_dir *dir = calloc(1, sizeof(*dir));
	if (!dir || !(dir->path = strdup(path))) {
		free(dir);
		oskr__errorf(err, "out of memory");
		return -ENOMEM;
	}
	char *lock_path = NULL;
	if (asprintf(&lock_path, "%s/" LOCK_NAME, path) < 0) {
		rc = -ENOMEM;
		oskr__errorf(err, "out of memory");
		goto err_free;
	}
	dir->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (dir->lock_fd < 0) {
		rc = -errno;
		oskr__errorf(err, "%s: cannot open: %s", lock_path,
			     strerror(-rc));
		goto err_free;
	}
	if (flock(dir->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = -errno;
		char holder[32] = "";
		ssize_t n = pread(dir->lock_fd, holder, sizeof(holder) - 1, 0);
		holder[n > 0 ? n : 0] = '\0';
		holder[strcspn(holder, "\n")] = '\0';
		if (rc == -EWOULDBLOCK)
			oskr__errorf(err,
				     "state_dir %s is in use by another oskrd "
				     "(pid %s): each replica needs its own "
				     "(use %%i in state_dir)",
				     path, holder[0] ? holder : "unknown");
		else
			oskr__errorf(err, "%s: cannot lock: %s", lock_path,
				     strerror(-rc));
		goto err_close;
	}
	char pid[32];
	int pid_len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(dir->lock_fd, 0) == 0)
		(void)!pwrite(dir->lock_fd, pid, (size_t)pid_len, 0);
	rc = oskr__snapshot_clean_temporaries(path);
	if (rc > 0)
		OSKR_WARN("state_dir %s: removed %d unfinished snapshot "
			  "file(s) left by a crash",
			  path, rc);
	free(lock_path);
	*out = dir;
	return 0;

err_close:
	close(dir->lock_fd);
err_free:
	free(lock_path);
	free(dir->path);
	free(dir);
	return rc;
}

const char *oskr__state_dir_path(const struct oskr_state_dir *dir)
{
	return dir->path;
}

void oskr__state_dir_close(struct oskr_state_dir *dir)
{
	if (!dir)
		return;
	close(dir->lock_fd); /* releases the lock */
	free(dir->path);
	free(dir);
}

/* ---- background writer ---- */

struct oskr_snapshot_writer {
	char *dir;
	unsigned keep;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* work or stop */
	pthread_cond_t idle; /* nothing pending, nothing being written */
	bool stopping, busy, has_pending;
	struct oskr_snapshot_meta pending_meta;
	void *pending;
	size_t pending_len;
	int last_rc;
	uint64_t consecutive_failures;
	struct oskr_snapshot_writer_stats stats;
};

static uint64_t monotonic_ns(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static void *writer_main(void *arg)
{
	struct oskr_snapshot_writer *w = arg;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->has_pending && !w->stopping)
			pthread_cond_wait(&w->wake, &w->lock);
		if (!w->has_pending)
			break; /* stopping with nothing left */
		struct oskr_snapshot_meta meta = w->pending_meta;
		void *payload = w->pending;
		size_t len = w->pending_len;
		w->pending = NULL;
		w->has_pending = false;
		w->busy = true;
		pthread_mutex_unlock(&w->lock);

		uint64_t start = monotonic_ns();
		char *err = NULL;
		int rc = oskr__snapshot_write(w->dir, &meta, payload, len, &err);
		uint64_t took = monotonic_ns() - start;
		free(payload);
		if (rc == 0) {
			int removed = oskr__snapshot_prune(w->dir, meta.applied,
							   w->keep);
			if (meta.checkpoint)
				OSKR_DEBUG("snapshot %" PRIu64 " (checkpoint at "
					   "op %" PRIu64 ") written to %s (%zu "
					   "bytes, %.1f ms, %d older removed)",
					   meta.applied, meta.checkpoint_op,
					   w->dir, len, took / 1e6,
					   removed > 0 ? removed : 0);
			else
				OSKR_DEBUG("snapshot %" PRIu64 " written to %s "
					   "(%zu bytes, %.1f ms, %d older "
					   "removed)",
					   meta.applied, w->dir, len,
					   took / 1e6,
					   removed > 0 ? removed : 0);
		}

		pthread_mutex_lock(&w->lock);
		w->last_rc = rc;
		if (rc == 0) {
			if (w->consecutive_failures)
				OSKR_INFO("snapshot: writing works again "
					  "after %" PRIu64 " failure(s)",
					  w->consecutive_failures);
			w->consecutive_failures = 0;
			w->stats.written++;
			w->stats.last_applied = meta.applied;
			w->stats.last_bytes = len;
			w->stats.last_duration_ns = took;
			w->stats.last_unix_ms = meta.created_unix_ms;
			w->stats.last_checkpoint = meta.checkpoint;
			w->stats.last_checkpoint_op = meta.checkpoint_op;
			if (meta.checkpoint) {
				w->stats.checkpoints_written++;
				w->stats.newest_checkpoint_op =
					meta.checkpoint_op;
			}
		} else {
			w->stats.failed++;
			/* log the 1st, 2nd, 4th, 8th… failure in a row: a
			 * full disk must not flood the log every second */
			uint64_t n = ++w->consecutive_failures;
			if ((n & (n - 1)) == 0)
				OSKR_ERROR("snapshot: %s (failure %" PRIu64
					   " in a row)",
					   err ? err : strerror(-rc), n);
		}
		free(err);
		w->busy = false;
		pthread_cond_broadcast(&w->idle);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int oskr__snapshot_writer_create(struct oskr_snapshot_writer **out,
				 const char *dir, unsigned keep)
{
	struct oskr_snapshot_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->dir = strdup(dir);
	if (!w->dir) {
		free(w);
		return -ENOMEM;
	}
	w->keep = keep ? keep : 1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	pthread_cond_init(&w->idle, NULL);
	int rc = -pthread_create(&w->thread, NULL, writer_main, w);
	if (rc) {
		pthread_cond_destroy(&w->idle);
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->lock);
		free(w->dir);
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

void oskr__snapshot_writer_submit(struct oskr_snapshot_writer *w,
				  const struct oskr_snapshot_meta *meta,
				  void *payload, size_t len)
{
	pthread_mutex_lock(&w->lock);
	if (w->has_pending) {
		free(w->pending);
		w->stats.superseded++;
	}
	w->pending_meta = *meta;
	if (!w->pending_meta.created_unix_ms)
		w->pending_meta.created_unix_ms = unix_ms_now();
	w->pending = payload;
	w->pending_len = len;
	w->has_pending = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

int oskr__snapshot_writer_flush(struct oskr_snapshot_writer *w)
{
	pthread_mutex_lock(&w->lock);
	while (w->has_pending || w->busy)
		pthread_cond_wait(&w->idle, &w->lock);
	int rc = w->last_rc;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

void oskr__snapshot_writer_stats(struct oskr_snapshot_writer *w,
				 struct oskr_snapshot_writer_stats *out)
{
	pthread_mutex_lock(&w->lock);
	*out = w->stats;
	pthread_mutex_unlock(&w->lock);
}

void oskr__snapshot_writer_free(struct oskr_snapshot_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	free(w->pending);
	pthread_cond_destroy(&w->idle);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w->dir);
	free(w);
}
