/* SPDX-License-Identifier: MIT */
/*
 * The durable snapshot loader (daemon/snapshot_store.c): what oskrd reads
 * from its state directory at start-up, then hands to the application's
 * restore. A file there may be truncated by a crash, damaged on disk or
 * planted; its header is parsed before its checksum can be checked.
 *
 * The input is written to a memory file (memfd) and read back with
 * oskr__snapshot_read. When the checksum's last byte (offset 127) is odd,
 * the harness first repairs the checksum (SHA-256 over header[0, 96) and the payload,
 * at offset 96), so the fuzzer also gets past it and on into the kv
 * restore of the payload, as oskrd would at start-up.
 *
 * Properties: a refusal says why; an accepted file gives exactly the
 * payload its header announced, meta fields are NUL-terminated, and the
 * payload either restores into kv or is refused with the state unchanged.
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

#define CHECKSUM_OFFSET 96

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
	if (size >= OSKR_SNAPSHOT_HEADER_SIZE &&
	    (data[OSKR_SNAPSHOT_HEADER_SIZE - 1] & 1)) {
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		FUZZ_CHECK(md);
		FUZZ_CHECK(EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
			   EVP_DigestUpdate(md, file, CHECKSUM_OFFSET) &&
			   EVP_DigestUpdate(md,
					    file + OSKR_SNAPSHOT_HEADER_SIZE,
					    size - OSKR_SNAPSHOT_HEADER_SIZE) &&
			   EVP_DigestFinal_ex(md, file + CHECKSUM_OFFSET,
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
		FUZZ_CHECK(size >= OSKR_SNAPSHOT_HEADER_SIZE);
		FUZZ_CHECK(len == size - OSKR_SNAPSHOT_HEADER_SIZE);
		FUZZ_CHECK(meta.payload_len == len);
		FUZZ_CHECK(len == 0 ||
			   memcmp(payload, file + OSKR_SNAPSHOT_HEADER_SIZE,
				  len) == 0);
		FUZZ_CHECK(memchr(meta.app, '\0', sizeof(meta.app)));
		FUZZ_CHECK(memchr(meta.protocol, '\0', sizeof(meta.protocol)));
		/* On into the application, as at start-up. */
		void *kv = NULL;
		FUZZ_CHECK(oskr__app_kv.create(&kv, NULL, NULL) == 0);
		int restored = oskr__app_kv.restore(kv, payload, len);
		FUZZ_CHECK(restored == 0 || restored == -EINVAL);
		oskr__app_kv.destroy(kv);
	}
	free(payload);
	free(why);
	free(file);
	return 0;
}
