/* SPDX-License-Identifier: MIT */
/* Signer: key loading and checks, sign/verify per key type, the seed's key
 * layout, and the per-thread context cache under concurrency. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "daemon/signer.h"

#define REPLICAS 4

/* One directory per test case, made and removed by an unchecked fixture:
 * under CK_FORK=yes that runs in the parent, so it cleans up even after a
 * failed assertion ended a test's process. Each test gets its own
 * subdirectory (checked fixture), tmp_dir_path. */
static char *case_dir_path;
static char *tmp_dir_path;

static const enum oskr_key_type all_types[] = {
	OSKR_KEY_P256,
	OSKR_KEY_ED25519,
	OSKR_KEY_SECP256K1,
};

static char *make_temp_dir(const char *parent)
{
	char *template;
	if (asprintf(&template, "%s/oskr-test-signer-XXXXXX", parent) < 0)
		return NULL;
	if (!mkdtemp(template)) {
		free(template);
		return NULL;
	}
	return template;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	remove(path);
	return 0;
}

static void remove_tree(char **path)
{
	if (*path)
		nftw(*path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(*path);
	*path = NULL;
}

static void case_setup(void)
{
	const char *tmp = getenv("TMPDIR");
	case_dir_path = make_temp_dir(tmp && *tmp ? tmp : "/tmp");
}

static void case_teardown(void)
{
	remove_tree(&case_dir_path);
}

static void setup(void)
{
	ck_assert_ptr_nonnull(case_dir_path);
	tmp_dir_path = make_temp_dir(case_dir_path);
	ck_assert_ptr_nonnull(tmp_dir_path);
}

static void teardown(void)
{
	remove_tree(&tmp_dir_path);
}

/* Path of NAME in the test directory (static ring of buffers, enough for
 * the few paths one test holds at a time). */
static char *tmp_path(const char *fmt, ...) OSKR_PRINTF(1, 2);
static char *tmp_path(const char *fmt, ...)
{
	static char paths[3 * REPLICAS + 8][512];
	static unsigned next;
	char name[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	char *path = paths[next++ % (sizeof(paths) / sizeof(paths[0]))];
	snprintf(path, sizeof(paths[0]), "%s/%s", tmp_dir_path, name);
	return path;
}

struct cluster_keys {
	char private_paths[REPLICAS][512];
	char public_paths[REPLICAS][512];
	const char *public_list[REPLICAS];
};

/* Generate REPLICAS key pairs named PREFIX-I.key / PREFIX-I.pub. */
static void make_keys(struct cluster_keys *keys, enum oskr_key_type type,
		      const char *prefix)
{
	for (int replica_id = 0; replica_id < REPLICAS; replica_id++) {
		snprintf(keys->private_paths[replica_id], 512, "%s/%s-%d.key",
			 tmp_dir_path, prefix, replica_id);
		snprintf(keys->public_paths[replica_id], 512, "%s/%s-%d.pub",
			 tmp_dir_path, prefix, replica_id);
		keys->public_list[replica_id] = keys->public_paths[replica_id];
		char *err = NULL;
		int ret = oskr__keygen(type, keys->private_paths[replica_id],
				       keys->public_paths[replica_id], &err);
		ck_assert_msg(ret == 0, "keygen: %s", err ? err : "?");
		free(err);
	}
}

static struct oskr_signer *make_signer(const char *private_path,
				       const char *const *public_paths)
{
	struct oskr_signer *signer = NULL;
	char *err = NULL;
	int ret = oskr__signer_create(&signer, private_path, public_paths,
				      REPLICAS, &err);
	ck_assert_msg(ret == 0, "signer_create: %s", err ? err : "?");
	ck_assert_ptr_nonnull(signer);
	free(err);
	return signer;
}

/* Expect oskr__signer_create to fail; return the message (caller frees). */
static char *create_error(const char *private_path,
			  const char *const *public_paths, uint32_t count,
			  int *ret_out)
{
	struct oskr_signer *signer = (struct oskr_signer *)1;
	char *err = NULL;
	int ret = oskr__signer_create(&signer, private_path, public_paths,
				      count, &err);
	ck_assert_int_lt(ret, 0);
	ck_assert_ptr_null(signer);
	ck_assert_ptr_nonnull(err);
	if (ret_out)
		*ret_out = ret;
	return err;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *file = fopen(path, "w");
	ck_assert_ptr_nonnull(file);
	fputs(text, file);
	fclose(file);
	ck_assert_int_eq(chmod(path, mode), 0);
}

static void write_pkcs8(EVP_PKEY *key, const char *path)
{
	BIO *bio = BIO_new_file(path, "w");
	ck_assert_ptr_nonnull(bio);
	ck_assert_int_eq(PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0,
						       NULL, NULL), 1);
	BIO_free(bio);
	ck_assert_int_eq(chmod(path, 0600), 0);
}

/* ---- round trips ---- */

START_TEST(test_round_trip)
{
	enum oskr_key_type type = all_types[_i];
	struct cluster_keys keys;
	make_keys(&keys, type, "replica");
	struct oskr_signer *signer =
		make_signer(keys.private_paths[1], keys.public_list);
	ck_assert_int_eq(oskr__signer_key_type(signer), type);
	ck_assert(oskr__signer_can_sign(signer));
	size_t max = oskr__signer_signature_size(signer);
	ck_assert_uint_le(max, OSKR_SIGNATURE_MAX);
	ck_assert_uint_eq(max, type == OSKR_KEY_ED25519 ? 64 : 72);

	/* Include the empty message: a zero-length sign must work too. */
	static const char *const messages[] = { "", "x", "prepare view=3 seq=17" };
	for (size_t m = 0; m < sizeof(messages) / sizeof(messages[0]); m++) {
		size_t len = strlen(messages[m]);
		uint8_t sig[OSKR_SIGNATURE_MAX];
		size_t sig_len = 0;
		ck_assert_int_eq(oskr__signer_sign(signer, messages[m], len,
						   sig, &sig_len), 0);
		ck_assert_uint_gt(sig_len, 0);
		ck_assert_uint_le(sig_len, max);
		ck_assert(oskr__signer_verify(signer, 1, messages[m], len, sig,
					      sig_len));
		/* Other replicas' keys must reject it. */
		ck_assert(!oskr__signer_verify(signer, 0, messages[m], len,
					       sig, sig_len));
		ck_assert(!oskr__signer_verify(signer, 2, messages[m], len,
					       sig, sig_len));
	}
	oskr__signer_free(signer);
}
END_TEST

START_TEST(test_tampering_rejected)
{
	enum oskr_key_type type = all_types[_i];
	struct cluster_keys keys;
	make_keys(&keys, type, "replica");
	struct oskr_signer *signer =
		make_signer(keys.private_paths[0], keys.public_list);
	char message[] = "commit view=1 seq=42 digest=abcdef";
	size_t len = strlen(message);
	uint8_t sig[OSKR_SIGNATURE_MAX];
	size_t sig_len = 0;
	ck_assert_int_eq(oskr__signer_sign(signer, message, len, sig, &sig_len),
			 0);
	ck_assert(oskr__signer_verify(signer, 0, message, len, sig, sig_len));

	/* Every single-byte change of the message fails. */
	for (size_t at = 0; at < len; at++) {
		message[at] ^= 0x01;
		ck_assert(!oskr__signer_verify(signer, 0, message, len, sig,
					       sig_len));
		message[at] ^= 0x01;
	}
	ck_assert(!oskr__signer_verify(signer, 0, message, len - 1, sig,
				       sig_len));
	/* Every single-byte change of the signature fails. */
	for (size_t at = 0; at < sig_len; at++) {
		sig[at] ^= 0x40;
		ck_assert(!oskr__signer_verify(signer, 0, message, len, sig,
					       sig_len));
		sig[at] ^= 0x40;
	}
	/* Truncated, extended, empty and oversized signatures fail. */
	ck_assert(!oskr__signer_verify(signer, 0, message, len, sig,
				       sig_len - 1));
	uint8_t longer[OSKR_SIGNATURE_MAX + 8] = { 0 };
	memcpy(longer, sig, sig_len);
	ck_assert(!oskr__signer_verify(signer, 0, message, len, longer,
				       sig_len + 1));
	ck_assert(!oskr__signer_verify(signer, 0, message, len, longer,
				       sizeof(longer)));
	ck_assert(!oskr__signer_verify(signer, 0, message, len, sig, 0));
	ck_assert(!oskr__signer_verify(signer, 0, message, len, NULL, sig_len));
	/* Out-of-range replica ids. */
	ck_assert(!oskr__signer_verify(signer, REPLICAS, message, len, sig,
				       sig_len));
	ck_assert(!oskr__signer_verify(signer, UINT32_MAX, message, len, sig,
				       sig_len));
	/* Still fine after all those failures (contexts stay usable). */
	ck_assert(oskr__signer_verify(signer, 0, message, len, sig, sig_len));
	oskr__signer_free(signer);
}
END_TEST

START_TEST(test_verify_only)
{
	struct cluster_keys keys;
	make_keys(&keys, OSKR_KEY_P256, "replica");
	struct oskr_signer *replica =
		make_signer(keys.private_paths[3], keys.public_list);
	struct oskr_signer *client = make_signer(NULL, keys.public_list);
	ck_assert(!oskr__signer_can_sign(client));
	ck_assert_uint_eq(oskr__signer_signature_size(client), 72);

	uint8_t sig[OSKR_SIGNATURE_MAX];
	size_t sig_len = 12345;
	ck_assert_int_eq(oskr__signer_sign(client, "reply", 5, sig, &sig_len),
			 -ENOKEY);
	ck_assert_uint_eq(sig_len, 12345);
	ck_assert_int_eq(oskr__signer_sign(replica, "reply", 5, sig, &sig_len),
			 0);
	ck_assert(oskr__signer_verify(client, 3, "reply", 5, sig, sig_len));
	ck_assert(!oskr__signer_verify(client, 2, "reply", 5, sig, sig_len));
	oskr__signer_free(client);
	oskr__signer_free(replica);
}
END_TEST

/* ---- key files ---- */

START_TEST(test_keygen_files)
{
	enum oskr_key_type type = all_types[_i];
	/* The modes must not depend on the umask. */
	mode_t old_umask = umask(0);
	char *private_path = tmp_path("k.key");
	char *public_path = tmp_path("k.pub");
	char *err = NULL;
	int ret = oskr__keygen(type, private_path, public_path, &err);
	umask(old_umask);
	ck_assert_msg(ret == 0, "keygen: %s", err ? err : "?");

	struct stat st;
	ck_assert_int_eq(stat(private_path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(stat(public_path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0644);
	ck_assert_int_eq(oskr__key_check_permissions(private_path, &err), 0);

	char text[4096] = "";
	FILE *file = fopen(private_path, "r");
	ck_assert_ptr_nonnull(file);
	size_t got = fread(text, 1, sizeof(text) - 1, file);
	fclose(file);
	text[got] = '\0';
	ck_assert_ptr_nonnull(strstr(text, "-----BEGIN PRIVATE KEY-----"));
	file = fopen(public_path, "r");
	ck_assert_ptr_nonnull(file);
	got = fread(text, 1, sizeof(text) - 1, file);
	fclose(file);
	text[got] = '\0';
	ck_assert_ptr_nonnull(strstr(text, "-----BEGIN PUBLIC KEY-----"));
	ck_assert_ptr_null(strstr(text, "PRIVATE"));

	/* Existing keys are never overwritten, and the refusal leaves the
	 * old pair in place. */
	ret = oskr__keygen(type, private_path, public_path, &err);
	ck_assert_int_eq(ret, -EEXIST);
	ck_assert_ptr_nonnull(strstr(err, private_path));
	ck_assert_int_eq(stat(private_path, &st), 0);
	ret = oskr__keygen(type, tmp_path("other.key"), public_path, &err);
	ck_assert_int_eq(ret, -EEXIST);
	ck_assert_ptr_nonnull(strstr(err, public_path));
	ck_assert_int_eq(access(tmp_path("other.key"), F_OK), -1);
	free(err);
}
END_TEST

START_TEST(test_loose_permissions_refused)
{
	static const mode_t loose_modes[] = { 0644, 0640, 0604, 0620, 0700 };
	struct cluster_keys keys;
	make_keys(&keys, OSKR_KEY_P256, "replica");
	const char *path = keys.private_paths[0];
	for (size_t m = 0; m < sizeof(loose_modes) / sizeof(loose_modes[0]);
	     m++) {
		mode_t mode = loose_modes[m];
		ck_assert_int_eq(chmod(path, mode), 0);
		char *err = NULL;
		int ret = oskr__key_check_permissions(path, &err);
		if (mode == 0700) {
			/* Owner-only modes are fine. */
			ck_assert_int_eq(ret, 0);
			free(err);
			continue;
		}
		ck_assert_int_eq(ret, -EPERM);
		char expected_mode[16], expected_fix[600];
		snprintf(expected_mode, sizeof(expected_mode), "mode %04o",
			 (unsigned)mode);
		snprintf(expected_fix, sizeof(expected_fix), "chmod 600 %s",
			 path);
		ck_assert_msg(strstr(err, expected_mode) && strstr(err, expected_fix) &&
				      strncmp(err, path, strlen(path)) == 0,
			      "message: %s", err);
		free(err);

		int create_ret;
		err = create_error(path, keys.public_list, REPLICAS,
				   &create_ret);
		ck_assert_int_eq(create_ret, -EPERM);
		ck_assert_msg(strstr(err, expected_mode) && strstr(err, expected_fix),
			      "message: %s", err);
		free(err);
	}
	/* The header's example wording for the common case. */
	ck_assert_int_eq(chmod(path, 0644), 0);
	char *err = NULL;
	oskr__key_check_permissions(path, &err);
	ck_assert_ptr_nonnull(strstr(err, "group/world readable"));
	free(err);

	/* Public key files may be world readable. */
	ck_assert_int_eq(chmod(path, 0600), 0);
	struct oskr_signer *signer = make_signer(path, keys.public_list);
	oskr__signer_free(signer);
}
END_TEST

START_TEST(test_foreign_owner_refused)
{
	struct cluster_keys keys;
	make_keys(&keys, OSKR_KEY_P256, "replica");
	const char *path = keys.private_paths[0];
	/* Only root can give a file away; elsewhere the check is the same
	 * comparison and the mode tests cover the path. */
	if (geteuid() != 0)
		return;
	ck_assert_int_eq(chown(path, 65534, (gid_t)-1), 0);
	char *err = NULL;
	ck_assert_int_eq(oskr__key_check_permissions(path, &err), -EPERM);
	ck_assert_msg(strstr(err, "owned by uid 65534") && strstr(err, path),
		      "message: %s", err);
	free(err);
	int ret;
	err = create_error(path, keys.public_list, REPLICAS, &ret);
	ck_assert_int_eq(ret, -EPERM);
	free(err);
}
END_TEST

START_TEST(test_missing_and_garbage_files)
{
	struct cluster_keys keys;
	make_keys(&keys, OSKR_KEY_ED25519, "replica");
	int ret;

	char *missing = tmp_path("nope.key");
	char *err = NULL;
	ck_assert_int_eq(oskr__key_check_permissions(missing, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, missing));
	free(err);
	err = create_error(missing, keys.public_list, REPLICAS, &ret);
	ck_assert_int_eq(ret, -ENOENT);
	ck_assert_msg(strstr(err, missing) &&
			      strstr(err, "No such file or directory"),
		      "message: %s", err);
	free(err);

	const char *publics[REPLICAS];
	memcpy(publics, keys.public_list, sizeof(publics));
	publics[2] = missing;
	err = create_error(keys.private_paths[0], publics, REPLICAS, &ret);
	ck_assert_int_eq(ret, -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, missing));
	free(err);

	/* Not PEM, and PEM of the wrong kind. */
	char *garbage = tmp_path("garbage.key");
	write_file(garbage, "this is not a key\n", 0600);
	err = create_error(garbage, keys.public_list, REPLICAS, &ret);
	ck_assert_int_eq(ret, -EINVAL);
	ck_assert_msg(strstr(err, garbage) && strstr(err, "not a PEM"),
		      "message: %s", err);
	free(err);
	publics[2] = garbage;
	err = create_error(keys.private_paths[0], publics, REPLICAS, &ret);
	ck_assert_msg(strstr(err, garbage) && strstr(err, "not a PEM"),
		      "message: %s", err);
	free(err);

	char *empty = tmp_path("empty.pub");
	write_file(empty, "", 0644);
	publics[2] = empty;
	err = create_error(NULL, publics, REPLICAS, &ret);
	ck_assert_ptr_nonnull(strstr(err, empty));
	free(err);

	char *truncated = tmp_path("truncated.pub");
	write_file(truncated,
		   "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
		   0644);
	publics[2] = truncated;
	err = create_error(NULL, publics, REPLICAS, &ret);
	ck_assert_ptr_nonnull(strstr(err, truncated));
	free(err);

	/* A public key where the private key belongs. */
	char *public_copy = tmp_path("public-as-private.key");
	FILE *in = fopen(keys.public_paths[0], "r");
	char text[1024];
	size_t got = fread(text, 1, sizeof(text) - 1, in);
	fclose(in);
	text[got] = '\0';
	write_file(public_copy, text, 0600);
	err = create_error(public_copy, keys.public_list, REPLICAS, &ret);
	ck_assert_msg(strstr(err, public_copy) && strstr(err, "public key"),
		      "message: %s", err);
	free(err);

	/* A directory is not a key file. */
	err = create_error(NULL, (const char *[]){ tmp_dir_path, tmp_dir_path,
						  tmp_dir_path, tmp_dir_path },
			   REPLICAS, &ret);
	ck_assert_ptr_nonnull(strstr(err, tmp_dir_path));
	free(err);

	/* No keys at all. */
	err = create_error(NULL, keys.public_list, 0, &ret);
	ck_assert_int_eq(ret, -EINVAL);
	free(err);
}
END_TEST

START_TEST(test_encrypted_key_refused)
{
	struct cluster_keys keys;
	make_keys(&keys, OSKR_KEY_P256, "replica");
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ck_assert_ptr_nonnull(key);
	char *path = tmp_path("encrypted.key");
	BIO *bio = BIO_new_file(path, "w");
	ck_assert_ptr_nonnull(bio);
	ck_assert_int_eq(PEM_write_bio_PKCS8PrivateKey(bio, key,
						       EVP_aes_128_cbc(),
						       "secret", 6, NULL, NULL),
			 1);
	BIO_free(bio);
	EVP_PKEY_free(key);
	chmod(path, 0600);
	/* Must fail without prompting for a passphrase. */
	int ret;
	char *err = create_error(path, keys.public_list, REPLICAS, &ret);
	ck_assert_msg(strstr(err, path) && strstr(err, "encrypted"),
		      "message: %s", err);
	free(err);
}
END_TEST

START_TEST(test_mixed_key_types_refused)
{
	struct cluster_keys p256, ed25519;
	make_keys(&p256, OSKR_KEY_P256, "p");
	make_keys(&ed25519, OSKR_KEY_ED25519, "e");
	const char *publics[REPLICAS];
	memcpy(publics, p256.public_list, sizeof(publics));
	publics[3] = ed25519.public_paths[3];
	int ret;
	char *err = create_error(p256.private_paths[0], publics, REPLICAS,
				 &ret);
	ck_assert_int_eq(ret, -EINVAL);
	ck_assert_msg(strstr(err, ed25519.public_paths[3]) &&
			      strstr(err, p256.private_paths[0]) &&
			      strstr(err, "ed25519") && strstr(err, "p256"),
		      "message: %s", err);
	free(err);

	/* Verify-only: the first public key sets the type. */
	err = create_error(NULL, publics, REPLICAS, &ret);
	ck_assert_msg(strstr(err, ed25519.public_paths[3]) &&
			      strstr(err, p256.public_paths[0]),
		      "message: %s", err);
	free(err);

	/* The private key's type counts too. */
	err = create_error(ed25519.private_paths[0], p256.public_list,
			   REPLICAS, &ret);
	ck_assert_msg(strstr(err, ed25519.private_paths[0]) &&
			      strstr(err, p256.public_paths[0]),
		      "message: %s", err);
	free(err);

	/* secp256k1 and P-256 are both EC but still different types. */
	struct cluster_keys k1;
	make_keys(&k1, OSKR_KEY_SECP256K1, "k");
	publics[3] = k1.public_paths[3];
	err = create_error(NULL, publics, REPLICAS, &ret);
	ck_assert_msg(strstr(err, "secp256k1") && strstr(err, "p256"),
		      "message: %s", err);
	free(err);
}
END_TEST

START_TEST(test_unsupported_curve_refused)
{
	struct cluster_keys keys;
	make_keys(&keys, OSKR_KEY_P256, "replica");
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	ck_assert_ptr_nonnull(key);
	char *path = tmp_path("p384.key");
	write_pkcs8(key, path);
	EVP_PKEY_free(key);
	int ret;
	char *err = create_error(path, keys.public_list, REPLICAS, &ret);
	ck_assert_msg(strstr(err, path) && strstr(err, "not supported"),
		      "message: %s", err);
	free(err);
}
END_TEST

START_TEST(test_private_key_not_listed)
{
	struct cluster_keys keys, other;
	make_keys(&keys, OSKR_KEY_P256, "replica");
	make_keys(&other, OSKR_KEY_P256, "other");
	int ret;
	char *err = create_error(other.private_paths[0], keys.public_list,
				 REPLICAS, &ret);
	ck_assert_int_eq(ret, -EINVAL);
	ck_assert_msg(strstr(err, other.private_paths[0]) &&
			      strstr(err, "matches none"),
		      "message: %s", err);
	free(err);
}
END_TEST

/* The seed made its keys with
 *   openssl ecparam -name secp256k1 -genkey -noout |
 *   openssl pkcs8 -topk8 -nocrypt -out key.pem
 * and pointed every replica's "public key" at these private key files. */
START_TEST(test_seed_secp256k1_layout)
{
	char private_paths[REPLICAS][512];
	const char *publics[REPLICAS];
	for (int replica_id = 0; replica_id < REPLICAS; replica_id++) {
		EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
		ck_assert_ptr_nonnull(key);
		snprintf(private_paths[replica_id], 512, "%s/seed-%d.pem",
			 tmp_dir_path, replica_id);
		write_pkcs8(key, private_paths[replica_id]);
		EVP_PKEY_free(key);
		publics[replica_id] = private_paths[replica_id];
	}
	/* A seed key file is PKCS#8 ("BEGIN PRIVATE KEY"). */
	FILE *file = fopen(private_paths[0], "r");
	char line[64] = "";
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), file));
	fclose(file);
	ck_assert_str_eq(line, "-----BEGIN PRIVATE KEY-----\n");

	struct oskr_signer *signers[REPLICAS];
	for (int replica_id = 0; replica_id < REPLICAS; replica_id++) {
		signers[replica_id] =
			make_signer(private_paths[replica_id], publics);
		ck_assert_int_eq(oskr__signer_key_type(signers[replica_id]),
				 OSKR_KEY_SECP256K1);
	}
	struct oskr_signer *client = make_signer(NULL, publics);
	for (uint32_t replica_id = 0; replica_id < REPLICAS; replica_id++) {
		uint8_t sig[OSKR_SIGNATURE_MAX];
		size_t sig_len;
		ck_assert_int_eq(oskr__signer_sign(signers[replica_id], "seed",
						   4, sig, &sig_len),
				 0);
		for (uint32_t verifier = 0; verifier < REPLICAS; verifier++)
			ck_assert(oskr__signer_verify(signers[verifier],
						      replica_id, "seed", 4,
						      sig, sig_len));
		ck_assert(oskr__signer_verify(client, replica_id, "seed", 4,
					      sig, sig_len));
		ck_assert(!oskr__signer_verify(client,
					       (replica_id + 1) % REPLICAS,
					       "seed", 4, sig, sig_len));
	}
	for (int replica_id = 0; replica_id < REPLICAS; replica_id++)
		oskr__signer_free(signers[replica_id]);
	oskr__signer_free(client);
}
END_TEST

/* Same layout (public paths pointing at private keys) for every type, and
 * a public-key file mode is not checked even when it holds a private key. */
START_TEST(test_private_files_as_public_keys)
{
	enum oskr_key_type type = all_types[_i];
	struct cluster_keys keys;
	make_keys(&keys, type, "replica");
	const char *publics[REPLICAS];
	for (int replica_id = 0; replica_id < REPLICAS; replica_id++)
		publics[replica_id] = keys.private_paths[replica_id];
	struct oskr_signer *seed_style =
		make_signer(keys.private_paths[2], publics);
	struct oskr_signer *normal = make_signer(NULL, keys.public_list);
	uint8_t sig[OSKR_SIGNATURE_MAX];
	size_t sig_len;
	ck_assert_int_eq(oskr__signer_sign(seed_style, "m", 1, sig, &sig_len),
			 0);
	ck_assert(oskr__signer_verify(normal, 2, "m", 1, sig, sig_len));
	ck_assert(oskr__signer_verify(seed_style, 2, "m", 1, sig, sig_len));
	ck_assert(!oskr__signer_verify(seed_style, 1, "m", 1, sig, sig_len));
	oskr__signer_free(seed_style);
	oskr__signer_free(normal);
}
END_TEST

/* ---- threads and the context cache ---- */

#define THREADS 4
#define OPS_PER_THREAD 2000

struct worker {
	pthread_t thread;
	struct oskr_signer *signers[2]; /* replica 0's and replica 1's */
	unsigned index;
	unsigned ops;
	unsigned failures;
};

static void *worker_run(void *arg)
{
	struct worker *worker = arg;
	for (unsigned op = 0; op < worker->ops; op++) {
		uint32_t replica_id = op & 1;
		struct oskr_signer *signer = worker->signers[replica_id];
		char message[64];
		int len = snprintf(message, sizeof(message),
				   "thread %u op %u", worker->index, op);
		uint8_t sig[OSKR_SIGNATURE_MAX];
		size_t sig_len = 0;
		if (oskr__signer_sign(signer, message, (size_t)len, sig,
				      &sig_len) != 0) {
			worker->failures++;
			continue;
		}
		/* Verify with the other replica's signer (another cache
		 * slot), and check a wrong id is still rejected now and then. */
		struct oskr_signer *verifier = worker->signers[replica_id ^ 1];
		if (!oskr__signer_verify(verifier, replica_id, message,
					 (size_t)len, sig, sig_len))
			worker->failures++;
		if (op % 64 == 0 &&
		    oskr__signer_verify(verifier, replica_id ^ 1, message,
					(size_t)len, sig, sig_len))
			worker->failures++;
	}
	return NULL;
}

static void run_workers(enum oskr_key_type type, unsigned ops)
{
	struct cluster_keys keys;
	make_keys(&keys, type, "replica");
	struct oskr_signer *signers[2] = {
		make_signer(keys.private_paths[0], keys.public_list),
		make_signer(keys.private_paths[1], keys.public_list),
	};
	struct worker workers[THREADS];
	for (unsigned index = 0; index < THREADS; index++) {
		workers[index] = (struct worker){
			.signers = { signers[0], signers[1] },
			.index = index,
			.ops = ops,
		};
		ck_assert_int_eq(pthread_create(&workers[index].thread, NULL,
						worker_run, &workers[index]),
				 0);
	}
	unsigned failures = 0;
	for (unsigned index = 0; index < THREADS; index++) {
		pthread_join(workers[index].thread, NULL);
		failures += workers[index].failures;
	}
	ck_assert_uint_eq(failures, 0);
	oskr__signer_free(signers[0]);
	oskr__signer_free(signers[1]);
}

START_TEST(test_concurrent_p256)
{
	run_workers(OSKR_KEY_P256, OPS_PER_THREAD);
}
END_TEST

START_TEST(test_concurrent_each_type)
{
	/* Fewer ops: secp256k1 is ~10x slower than P-256 in OpenSSL. */
	run_workers(all_types[_i], 100);
}
END_TEST

/* Sign with @p signer, return whether @p verifier accepts it as
 * @p replica_id's. */
static bool signs_as(struct oskr_signer *signer, struct oskr_signer *verifier,
		     uint32_t replica_id)
{
	uint8_t sig[OSKR_SIGNATURE_MAX];
	size_t sig_len;
	ck_assert_int_eq(oskr__signer_sign(signer, "cache", 5, sig, &sig_len),
			 0);
	return oskr__signer_verify(verifier, replica_id, "cache", 5, sig,
				   sig_len);
}

struct free_while_cached {
	struct oskr_signer *signer;
	struct oskr_signer *verifier;
	uint32_t replica_id;
	bool ok;
};

static void *free_while_cached_thread(void *arg)
{
	struct free_while_cached *job = arg;
	job->ok = signs_as(job->signer, job->verifier, job->replica_id);
	return NULL;
}

START_TEST(test_free_while_cached)
{
	struct cluster_keys first, second;
	make_keys(&first, OSKR_KEY_P256, "a");
	make_keys(&second, OSKR_KEY_P256, "b");
	struct oskr_signer *keep = make_signer(first.private_paths[1],
					       first.public_list);
	struct oskr_signer *verifier_a = make_signer(NULL, first.public_list);
	struct oskr_signer *verifier_b = make_signer(NULL, second.public_list);
	struct oskr_signer *doomed = make_signer(first.private_paths[0],
						 first.public_list);
	ck_assert(signs_as(doomed, verifier_a, 0));
	ck_assert(signs_as(keep, verifier_a, 1));

	/* Free a signer this thread has cached contexts for; a new signer
	 * (malloc often hands back the same address) with other keys must
	 * not pick up the stale contexts. */
	oskr__signer_free(doomed);
	for (int round = 0; round < 3; round++) {
		struct oskr_signer *fresh = make_signer(second.private_paths[0],
							second.public_list);
		ck_assert(signs_as(fresh, verifier_b, 0));
		ck_assert(!signs_as(fresh, verifier_a, 0));
		ck_assert(signs_as(keep, verifier_a, 1));
		oskr__signer_free(fresh);
	}

	/* Same from another thread that cached the freed signer. */
	struct oskr_signer *doomed2 = make_signer(first.private_paths[2],
						  first.public_list);
	struct free_while_cached job = { doomed2, verifier_a, 2, false };
	pthread_t thread;
	ck_assert_int_eq(pthread_create(&thread, NULL,
					free_while_cached_thread, &job), 0);
	pthread_join(thread, NULL);
	ck_assert(job.ok);
	oskr__signer_free(doomed2);
	struct oskr_signer *fresh = make_signer(second.private_paths[2],
						second.public_list);
	job = (struct free_while_cached){ fresh, verifier_b, 2, false };
	ck_assert_int_eq(pthread_create(&thread, NULL,
					free_while_cached_thread, &job), 0);
	pthread_join(thread, NULL);
	ck_assert(job.ok);
	oskr__signer_free(fresh);

	/* More signers than a thread caches at once: evictions. */
	struct oskr_signer *many[20];
	for (size_t i = 0; i < 20; i++)
		many[i] = make_signer(first.private_paths[i % REPLICAS],
				      first.public_list);
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < 20; i++)
			ck_assert(signs_as(many[i], many[(i + 1) % 20],
					   (uint32_t)(i % REPLICAS)));
	for (size_t i = 0; i < 20; i++)
		oskr__signer_free(many[i]);

	ck_assert(signs_as(keep, verifier_a, 1));
	oskr__signer_free(keep);
	oskr__signer_free(verifier_a);
	oskr__signer_free(verifier_b);
}
END_TEST

/* ---- small helpers ---- */

START_TEST(test_key_type_names)
{
	for (size_t i = 0; i < sizeof(all_types) / sizeof(all_types[0]); i++) {
		enum oskr_key_type parsed;
		ck_assert_int_eq(oskr__key_type_parse(
					 oskr__key_type_name(all_types[i]),
					 &parsed),
				 0);
		ck_assert_int_eq(parsed, all_types[i]);
	}
	enum oskr_key_type parsed = OSKR_KEY_ED25519;
	ck_assert_int_eq(oskr__key_type_parse("P-256", &parsed), 0);
	ck_assert_int_eq(parsed, OSKR_KEY_P256);
	ck_assert_int_eq(oskr__key_type_parse("rsa", &parsed), -EINVAL);
	ck_assert_int_eq(oskr__key_type_parse("", &parsed), -EINVAL);
	ck_assert_str_eq(oskr__key_type_name(OSKR_KEY_SECP256K1), "secp256k1");
}
END_TEST

START_TEST(test_sha256)
{
	static const uint8_t abc[OSKR_DIGEST_SIZE] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
		0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
		0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
	};
	static const uint8_t empty[OSKR_DIGEST_SIZE] = {
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
		0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
		0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
	};
	uint8_t out[OSKR_DIGEST_SIZE];
	oskr__sha256("abc", 3, out);
	ck_assert_mem_eq(out, abc, sizeof(out));
	oskr__sha256(NULL, 0, out);
	ck_assert_mem_eq(out, empty, sizeof(out));
}
END_TEST

static Suite *signer_suite(void)
{
	Suite *suite = suite_create("signer");
	size_t type_count = sizeof(all_types) / sizeof(all_types[0]);

	TCase *basic = tcase_create("basic");
	tcase_add_unchecked_fixture(basic, case_setup, case_teardown);
	tcase_add_checked_fixture(basic, setup, teardown);
	tcase_set_timeout(basic, 30);
	tcase_add_loop_test(basic, test_round_trip, 0, (int)type_count);
	tcase_add_loop_test(basic, test_tampering_rejected, 0,
			    (int)type_count);
	tcase_add_test(basic, test_verify_only);
	tcase_add_test(basic, test_key_type_names);
	tcase_add_test(basic, test_sha256);
	suite_add_tcase(suite, basic);

	TCase *files = tcase_create("files");
	tcase_add_unchecked_fixture(files, case_setup, case_teardown);
	tcase_add_checked_fixture(files, setup, teardown);
	tcase_set_timeout(files, 30);
	tcase_add_loop_test(files, test_keygen_files, 0, (int)type_count);
	tcase_add_test(files, test_loose_permissions_refused);
	tcase_add_test(files, test_foreign_owner_refused);
	tcase_add_test(files, test_missing_and_garbage_files);
	tcase_add_test(files, test_encrypted_key_refused);
	tcase_add_test(files, test_mixed_key_types_refused);
	tcase_add_test(files, test_unsupported_curve_refused);
	tcase_add_test(files, test_private_key_not_listed);
	tcase_add_test(files, test_seed_secp256k1_layout);
	tcase_add_loop_test(files, test_private_files_as_public_keys, 0,
			    (int)type_count);
	suite_add_tcase(suite, files);

	TCase *threads = tcase_create("threads");
	tcase_add_unchecked_fixture(threads, case_setup, case_teardown);
	tcase_add_checked_fixture(threads, setup, teardown);
	tcase_set_timeout(threads, 50);
	tcase_add_test(threads, test_concurrent_p256);
	tcase_add_loop_test(threads, test_concurrent_each_type, 0,
			    (int)type_count);
	tcase_add_test(threads, test_free_while_cached);
	suite_add_tcase(suite, threads);
	return suite;
}

int main(void)
{
	SRunner *runner = srunner_create(signer_suite());
	srunner_run_all(runner, CK_ENV);
	int failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
