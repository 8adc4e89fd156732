/* SPDX-License-Identifier: MIT */
/*
 * The durable snapshot loader (daemon/snapshot_store.c): what oskrd reads
 * from its state directory at start-up, then hands to the application's
 * restore. A file there may be truncated by a crash, damaged on disk or
 * planted; its header is parsed before its checksum can be checked.
 *
 * The input is written to a memory file (memfd) and read back with
 * oskr__snapshot_read. The header size follows the format version at
 * offset 8 (1: 128 bytes, checksum at 96; otherwise format 2: 160 bytes,
 * checksum at 128). When the checksum's last byte is odd, the harness
 * first repairs the checksum (SHA-256 over the header before it and the
 * payload), so the fuzzer also gets past it and on into the kv restore of
 * the application part of the payload, as oskrd would at start-up.
 *
 * Properties: a refusal says why; an accepted file gives exactly the
 * payload its header announced, meta fields are NUL-terminated, the
 * protocol state fits in the payload (none in a format-1 file), and the
 * application part either restores into kv or is refused with the state
 * unchanged.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "apps/app.h"
#include "daemon/log.h"
#include "daemon/snapshot_store.h"
#include "fuzz.h"

/* The header size of the format version the input claims. */
static size_t header_size_of(const uint8_t *data, size_t size)
{
	if (size >= 12 && data[8] == OSKR_SNAPSHOT_FORMAT_V1 && !data[9] &&
	    !data[10] && !data[11])
		return OSKR_SNAPSHOT_V1_HEADER_SIZE;
	return OSKR_SNAPSHOT_HEADER_SIZE;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	oskr__log_set_level(OSKR_LOG_ERROR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *file = malloc(size ? size : 1);
	FUZZ_CHECK(file);
	if (size)
		memcpy(file, data, size);
	size_t header = header_size_of(data, size);
	size_t checksum_offset = header - 32;
	if (size >= header && (data[header - 1] & 1)) {
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		FUZZ_CHECK(md);
		FUZZ_CHECK(EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
			   EVP_DigestUpdate(md, file, checksum_offset) &&
			   EVP_DigestUpdate(md, file + header,
					    size - header) &&
			   EVP_DigestFinal_ex(md, file + checksum_offset,
					      NULL));
		EVP_MD_CTX_free(md);
	}

	int fd = memfd_create("fuzz-snapshot", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(write(fd, file, size) == (ssize_t)size);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	struct oskr_snapshot_meta meta;
	void *payload = NULL;
	size_t len = 0;
	char *why = NULL;
	int rc = oskr__snapshot_read(path, &meta, &payload, &len, &why);
	close(fd);
	if (rc) {
		FUZZ_CHECK(rc < 0);
		FUZZ_CHECK(why && why[0]);
		FUZZ_CHECK(payload == NULL);
	} else {
		FUZZ_CHECK(meta.format_version == 1 ||
			   meta.format_version == 2);
		FUZZ_CHECK(header == (meta.format_version == 1
					      ? OSKR_SNAPSHOT_V1_HEADER_SIZE
					      : OSKR_SNAPSHOT_HEADER_SIZE));
		FUZZ_CHECK(size >= header);
		FUZZ_CHECK(len == size - header);
		FUZZ_CHECK(meta.payload_len == len);
		FUZZ_CHECK(len == 0 ||
			   memcmp(payload, file + header, len) == 0);
		FUZZ_CHECK(memchr(meta.app, '\0', sizeof(meta.app)));
		FUZZ_CHECK(memchr(meta.protocol, '\0', sizeof(meta.protocol)));
		FUZZ_CHECK(meta.protocol_state_len <= len);
		FUZZ_CHECK(meta.checkpoint || (meta.protocol_state_len == 0 &&
					       meta.checkpoint_op == 0));
		FUZZ_CHECK(meta.format_version == 2 || !meta.checkpoint);
		/* On into the application, as at start-up: the payload
		 * without the protocol state at its end. */
		void *kv = NULL;
		FUZZ_CHECK(oskr__app_kv.create(&kv, NULL, NULL) == 0);
		int restored = oskr__app_kv.restore(
			kv, payload, len - (size_t)meta.protocol_state_len);
		FUZZ_CHECK(restored == 0 || restored == -EINVAL);
		oskr__app_kv.destroy(kv);
	}
	free(payload);
	free(why);
	free(file);
	return 0;
}
