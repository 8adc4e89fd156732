/* SPDX-License-Identifier: MIT */
/*
 * Host-owned signing with OpenSSL 3 EVP.
 *
 * Per-operation cost matters: every protocol message is signed or verified
 * on a worker, so the signer never builds an OpenSSL context per operation.
 * Each thread keeps a small cache of contexts per signer (one for signing,
 * one per replica for verifying), created on first use and reused:
 *  - ECDSA (P-256, secp256k1): EVP_PKEY_sign_init/EVP_PKEY_verify_init once
 *    per thread, then EVP_PKEY_sign/EVP_PKEY_verify over SHA-256(message);
 *  - Ed25519: one EVP_MD_CTX per thread, re-initialised per operation with a
 *    NULL key, which OpenSSL 3 turns into a cheap re-init of the existing
 *    provider context (no fetch of the signature method).
 * Cache entries are keyed by a signer id that is never reused, so an entry
 * left behind by a freed signer can never be mistaken for a new signer that
 * happens to get the same address. Each context holds its own reference on
 * the key, so a stale entry stays safe to free at any time; stale entries
 * are dropped on the next cache miss of their thread or at thread exit.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "signer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "log.h"

/* A PEM key is a few hundred bytes; anything much larger is not a key. */
#define KEY_FILE_MAX (64 * 1024)
/* Signers a thread keeps contexts for at once (a process normally has one;
 * tests and the simulator have a few per process). */
#define THREAD_CACHE_SLOTS 8
#define ED25519_SIGNATURE_SIZE 64

struct oskr_signer {
	/* Never reused: keys the per-thread context caches. */
	uint64_t id;
	enum oskr_key_type key_type;
	size_t signature_size;
	EVP_PKEY *private_key; /* NULL on a verify-only signer */
	uint32_t replica_count;
	EVP_PKEY **public_keys; /* [replica_count] */
};

/* ---- per-thread context cache ---- */

/* One reusable OpenSSL context: a PKEY_CTX for ECDSA, an MD_CTX for
 * Ed25519 (whose one-shot API in OpenSSL 3.0 is EVP_DigestSign). */
struct op_ctx {
	EVP_PKEY_CTX *pkey_ctx;
	EVP_MD_CTX *md_ctx;
	bool md_initialised;
};

struct cache_slot {
	uint64_t signer_id; /* 0: empty */
	uint64_t last_used;
	struct op_ctx sign;
	uint32_t replica_count;
	struct op_ctx *verify; /* [replica_count], filled lazily */
};

struct thread_cache {
	uint64_t clock;
	struct cache_slot slots[THREAD_CACHE_SLOTS];
};

static __thread struct thread_cache *thread_cache;
static pthread_key_t thread_cache_key;
static pthread_once_t thread_cache_once = PTHREAD_ONCE_INIT;
static bool thread_cache_key_ok;

/* Ids of live signers, consulted on a cache miss to drop stale entries. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t next_signer_id = 1;
static uint64_t *live_ids;
static size_t live_count;
static size_t live_capacity;

static const char *const key_type_names[] = {
	[OSKR_KEY_P256] = "p256",
	[OSKR_KEY_ED25519] = "ed25519",
	[OSKR_KEY_SECP256K1] = "secp256k1",
};

static void op_ctx_free(struct op_ctx *op)
{
	EVP_PKEY_CTX_free(op->pkey_ctx);
	EVP_MD_CTX_free(op->md_ctx);
	*op = (struct op_ctx){ 0 };
}

static void cache_slot_clear(struct cache_slot *slot)
{
	op_ctx_free(&slot->sign);
	for (uint32_t replica_id = 0; slot->verify &&
	     replica_id < slot->replica_count; replica_id++)
		op_ctx_free(&slot->verify[replica_id]);
	free(slot->verify);
	*slot = (struct cache_slot){ 0 };
}

static void thread_cache_destroy(void *arg)
{
	struct thread_cache *cache = arg;

	for (size_t i = 0; i < THREAD_CACHE_SLOTS; i++)
		cache_slot_clear(&cache->slots[i]);
	free(cache);
	thread_cache = NULL;
}

static void thread_cache_key_create(void)
{
	thread_cache_key_ok =
		pthread_key_create(&thread_cache_key, thread_cache_destroy) == 0;
}

static struct thread_cache *thread_cache_get(void)
{
	if (thread_cache)
		return thread_cache;
	pthread_once(&thread_cache_once, thread_cache_key_create);
	if (!thread_cache_key_ok)
		return NULL;
	struct thread_cache *cache = calloc(1, sizeof(*cache));
	if (!cache)
		return NULL;
	if (pthread_setspecific(thread_cache_key, cache) != 0) {
		free(cache);
		return NULL;
	}
	thread_cache = cache;
	return cache;
}

static bool registry_is_live_locked(uint64_t id)
{
	for (size_t i = 0; i < live_count; i++)
		if (live_ids[i] == id)
			return true;
	return false;
}

static int registry_add(uint64_t *id_out)
{
	int ret = 0;

	pthread_mutex_lock(&registry_lock);
	if (live_count == live_capacity) {
		size_t capacity = live_capacity ? live_capacity * 2 : 8;
		uint64_t *ids = realloc(live_ids, capacity * sizeof(*ids));
		if (!ids) {
			ret = -ENOMEM;
			goto out;
		}
		live_ids = ids;
		live_capacity = capacity;
	}
	*id_out = next_signer_id++;
	live_ids[live_count++] = *id_out;
out:
	pthread_mutex_unlock(&registry_lock);
	return ret;
}

static void registry_remove(uint64_t id)
{
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < live_count; i++) {
		if (live_ids[i] == id) {
			live_ids[i] = live_ids[--live_count];
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
}

/* The calling thread's contexts for @p signer; NULL only when out of
 * memory. The miss path (first use per thread and signer) also drops the
 * entries of signers freed since. */
static struct cache_slot *cache_slot_get(const struct oskr_signer *signer)
{
	struct thread_cache *cache = thread_cache_get();
	if (!cache)
		return NULL;
	cache->clock++;
	for (size_t i = 0; i < THREAD_CACHE_SLOTS; i++) {
		struct cache_slot *slot = &cache->slots[i];
		if (slot->signer_id == signer->id) {
			slot->last_used = cache->clock;
			return slot;
		}
	}

	bool stale[THREAD_CACHE_SLOTS] = { false };
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < THREAD_CACHE_SLOTS; i++) {
		uint64_t id = cache->slots[i].signer_id;
		stale[i] = id && !registry_is_live_locked(id);
	}
	pthread_mutex_unlock(&registry_lock);
	for (size_t i = 0; i < THREAD_CACHE_SLOTS; i++)
		if (stale[i])
			cache_slot_clear(&cache->slots[i]);

	struct cache_slot *victim = &cache->slots[0];
	for (size_t i = 0; i < THREAD_CACHE_SLOTS; i++) {
		struct cache_slot *slot = &cache->slots[i];
		if (!slot->signer_id) {
			victim = slot;
			break;
		}
		if (slot->last_used < victim->last_used)
			victim = slot;
	}
	cache_slot_clear(victim);

	victim->verify = calloc(signer->replica_count, sizeof(*victim->verify));
	if (!victim->verify)
		return NULL;
	victim->replica_count = signer->replica_count;
	victim->signer_id = signer->id;
	victim->last_used = cache->clock;
	return victim;
}

/* Build an ECDSA context on first use; later calls return it as is. */
static EVP_PKEY_CTX *ecdsa_ctx(struct op_ctx *op, EVP_PKEY *key, bool sign)
{
	if (op->pkey_ctx)
		return op->pkey_ctx;
	EVP_PKEY_CTX *pkey_ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	if (!pkey_ctx)
		return NULL;
	int ok = sign ? EVP_PKEY_sign_init(pkey_ctx) :
			EVP_PKEY_verify_init(pkey_ctx);
	if (ok <= 0) {
		EVP_PKEY_CTX_free(pkey_ctx);
		return NULL;
	}
	op->pkey_ctx = pkey_ctx;
	return pkey_ctx;
}

/* Ready an Ed25519 MD_CTX for one operation. After the first full
 * initialisation a NULL key re-initialises the existing provider context;
 * if that ever fails, start over with the key. */
static EVP_MD_CTX *ed25519_ctx(struct op_ctx *op, EVP_PKEY *key, bool sign)
{
	if (!op->md_ctx) {
		op->md_ctx = EVP_MD_CTX_new();
		if (!op->md_ctx)
			return NULL;
	}
	if (op->md_initialised) {
		int ok = sign ? EVP_DigestSignInit(op->md_ctx, NULL, NULL, NULL,
						   NULL) :
				EVP_DigestVerifyInit(op->md_ctx, NULL, NULL,
						     NULL, NULL);
		if (ok == 1)
			return op->md_ctx;
		ERR_clear_error();
		EVP_MD_CTX_reset(op->md_ctx);
		op->md_initialised = false;
	}
	int ok = sign ? EVP_DigestSignInit(op->md_ctx, NULL, NULL, NULL, key) :
			EVP_DigestVerifyInit(op->md_ctx, NULL, NULL, NULL, key);
	if (ok != 1) {
		EVP_MD_CTX_reset(op->md_ctx);
		return NULL;
	}
	op->md_initialised = true;
	return op->md_ctx;
}

/* ---- digest ---- */

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void oskr__sha256(const void *data, size_t len,
		  uint8_t out[OSKR_DIGEST_SIZE])
{
	static const uint8_t empty;

	pthread_once(&sha256_once, sha256_fetch);
	if (!data)
		data = &empty;
	/* A pre-fetched EVP_MD skips the per-call algorithm lookup that
	 * SHA256() does in OpenSSL 3 (about twice as fast for short input). */
	if (sha256_md && EVP_Digest(data, len, out, NULL, sha256_md, NULL))
		return;
	ERR_clear_error();
	SHA256(data, len, out);
}

/* ---- sign and verify ---- */

enum oskr_key_type oskr__signer_key_type(const struct oskr_signer *signer)
{
	return signer->key_type;
}

size_t oskr__signer_signature_size(const struct oskr_signer *signer)
{
	return signer->signature_size;
}

bool oskr__signer_can_sign(const struct oskr_signer *signer)
{
	return signer->private_key != NULL;
}

int oskr__signer_sign(struct oskr_signer *signer, const void *data,
		      size_t len, uint8_t *sig, size_t *sig_len)
{
	static const uint8_t empty;

	if (!signer->private_key)
		return -ENOKEY;
	if (!data)
		data = &empty;
	struct cache_slot *slot = cache_slot_get(signer);
	if (!slot)
		return -ENOMEM;

	size_t out_len = OSKR_SIGNATURE_MAX;
	int ok;
	if (signer->key_type == OSKR_KEY_ED25519) {
		EVP_MD_CTX *md_ctx =
			ed25519_ctx(&slot->sign, signer->private_key, true);
		ok = md_ctx && EVP_DigestSign(md_ctx, sig, &out_len, data,
					      len) == 1;
	} else {
		uint8_t digest[OSKR_DIGEST_SIZE];
		oskr__sha256(data, len, digest);
		EVP_PKEY_CTX *pkey_ctx =
			ecdsa_ctx(&slot->sign, signer->private_key, true);
		ok = pkey_ctx && EVP_PKEY_sign(pkey_ctx, sig, &out_len, digest,
					       sizeof(digest)) == 1;
	}
	if (!ok) {
		ERR_clear_error();
		return -EIO;
	}
	*sig_len = out_len;
	return 0;
}

bool oskr__signer_verify(struct oskr_signer *signer, uint32_t replica_id,
			 const void *data, size_t len, const uint8_t *sig,
			 size_t sig_len)
{
	static const uint8_t empty;

	if (replica_id >= signer->replica_count || !sig || sig_len == 0 ||
	    sig_len > signer->signature_size)
		return false;
	if (!data)
		data = &empty;
	struct cache_slot *slot = cache_slot_get(signer);
	if (!slot)
		return false;

	EVP_PKEY *key = signer->public_keys[replica_id];
	struct op_ctx *op = &slot->verify[replica_id];
	bool valid;
	if (signer->key_type == OSKR_KEY_ED25519) {
		if (sig_len != ED25519_SIGNATURE_SIZE)
			return false;
		EVP_MD_CTX *md_ctx = ed25519_ctx(op, key, false);
		valid = md_ctx && EVP_DigestVerify(md_ctx, sig, sig_len, data,
						   len) == 1;
	} else {
		uint8_t digest[OSKR_DIGEST_SIZE];
		oskr__sha256(data, len, digest);
		EVP_PKEY_CTX *pkey_ctx = ecdsa_ctx(op, key, false);
		valid = pkey_ctx && EVP_PKEY_verify(pkey_ctx, sig, sig_len,
						    digest,
						    sizeof(digest)) == 1;
	}
	/* A forged or malformed signature leaves entries in the thread's
	 * OpenSSL error queue; clear them so they cannot pile up or confuse
	 * a later unrelated error report. */
	if (!valid)
		ERR_clear_error();
	return valid;
}

/* ---- key types ---- */

int oskr__key_type_parse(const char *text, enum oskr_key_type *out)
{
	for (size_t i = 0;
	     i < sizeof(key_type_names) / sizeof(key_type_names[0]); i++) {
		if (strcmp(text, key_type_names[i]) == 0) {
			*out = (enum oskr_key_type)i;
			return 0;
		}
	}
	/* The names OpenSSL and the NIST use for the same curve. */
	if (strcmp(text, "P-256") == 0 || strcmp(text, "prime256v1") == 0 ||
	    strcmp(text, "secp256r1") == 0) {
		*out = OSKR_KEY_P256;
		return 0;
	}
	return -EINVAL;
}

const char *oskr__key_type_name(enum oskr_key_type type)
{
	if ((unsigned)type < sizeof(key_type_names) / sizeof(key_type_names[0]))
		return key_type_names[type];
	return "?";
}

/* Classify @p key. 0, or -ENOTSUP with *err naming @p path. */
static int key_type_of(EVP_PKEY *key, const char *path,
		       enum oskr_key_type *out, char **err)
{
	if (EVP_PKEY_is_a(key, "ED25519")) {
		*out = OSKR_KEY_ED25519;
		return 0;
	}
	if (EVP_PKEY_is_a(key, "EC")) {
		char group[80] = "";
		size_t group_len = 0;
		if (!EVP_PKEY_get_group_name(key, group, sizeof(group),
					     &group_len)) {
			ERR_clear_error();
			oskr__errorf(err,
				     "%s: EC key without a named curve is not supported (use p256, ed25519 or secp256k1)",
				     path);
			return -ENOTSUP;
		}
		int nid = OBJ_sn2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		if (nid == NID_X9_62_prime256v1) {
			*out = OSKR_KEY_P256;
			return 0;
		}
		if (nid == NID_secp256k1) {
			*out = OSKR_KEY_SECP256K1;
			return 0;
		}
		oskr__errorf(err,
			     "%s: EC key on curve %s is not supported (use p256, ed25519 or secp256k1)",
			     path, group);
		return -ENOTSUP;
	}
	const char *name = EVP_PKEY_get0_type_name(key);
	oskr__errorf(err,
		     "%s: %s key is not supported (use p256, ed25519 or secp256k1)",
		     path, name ? name : "unknown");
	return -ENOTSUP;
}

/* ---- key files ---- */

static int check_key_stat(const char *path, const struct stat *st,
			  char **err)
{
	if (!S_ISREG(st->st_mode)) {
		oskr__errorf(err, "%s: not a regular file", path);
		return -EINVAL;
	}
	unsigned mode = (unsigned)(st->st_mode & 07777);
	if (st->st_mode & 077) {
		oskr__errorf(err,
			     "%s: mode %04o is group/world %s; run chmod 600 %s",
			     path, mode, (st->st_mode & 044) ? "readable" :
							      "accessible",
			     path);
		return -EPERM;
	}
	if (st->st_uid != geteuid()) {
		oskr__errorf(err,
			     "%s: owned by uid %u, not by uid %u that reads it; run chown %u %s (and chmod 600 %s)",
			     path, (unsigned)st->st_uid, (unsigned)geteuid(),
			     (unsigned)geteuid(), path, path);
		return -EPERM;
	}
	return 0;
}

int oskr__key_check_permissions(const char *path, char **err)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		int error = errno;
		oskr__errorf(err, "%s: %s", path, strerror(error));
		return -error;
	}
	return check_key_stat(path, &st, err);
}

/* Read a whole key file. The private key's owner and mode are checked on
 * the opened descriptor, so the file checked is the file read. The caller
 * cleanses and frees *text_out. */
static int read_key_file(const char *path, bool is_private, char **text_out,
			 size_t *len_out, char **err)
{
	const char *what = is_private ? "private key" : "public key";
	int ret;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		ret = -errno;
		oskr__errorf(err, "%s: cannot open %s: %s", path, what,
			     strerror(-ret));
		return ret;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		oskr__errorf(err, "%s: %s", path, strerror(-ret));
		goto err_close;
	}
	if (is_private) {
		ret = check_key_stat(path, &st, err);
		if (ret < 0)
			goto err_close;
	} else if (!S_ISREG(st.st_mode)) {
		oskr__errorf(err, "%s: not a regular file", path);
		ret = -EINVAL;
		goto err_close;
	}
	if (st.st_size > KEY_FILE_MAX) {
		oskr__errorf(err, "%s: %lld bytes is too large for a PEM %s",
			     path, (long long)st.st_size, what);
		ret = -EFBIG;
		goto err_close;
	}

	char *text = malloc(KEY_FILE_MAX + 1);
	if (!text) {
		ret = -ENOMEM;
		oskr__errorf(err, "%s: out of memory", path);
		goto err_close;
	}
	size_t used = 0;
	for (;;) {
		ssize_t got = read(fd, text + used, KEY_FILE_MAX + 1 - used);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			ret = -errno;
			oskr__errorf(err, "%s: cannot read %s: %s", path, what,
				     strerror(-ret));
			goto err_free;
		}
		if (got == 0)
			break;
		used += (size_t)got;
		if (used > KEY_FILE_MAX) {
			oskr__errorf(err, "%s: too large for a PEM %s", path,
				     what);
			ret = -EFBIG;
			goto err_free;
		}
	}
	close(fd);
	*text_out = text;
	*len_out = used;
	return 0;

err_free:
	OPENSSL_cleanse(text, used);
	free(text);
err_close:
	close(fd);
	return ret;
}

/* Never prompt on a terminal for a passphrase: encrypted keys fail. */
static int no_passphrase(char *buf, int size, int rwflag, void *user)
{
	return -1;
}

static bool pem_has(const char *text, size_t len, const char *label)
{
	return memmem(text, len, label, strlen(label)) != NULL;
}

static EVP_PKEY *pem_private_key(const char *text, size_t len)
{
	BIO *bio = BIO_new_mem_buf(text, (int)len);
	if (!bio)
		return NULL;
	EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	return key;
}

static EVP_PKEY *pem_public_key(const char *text, size_t len)
{
	BIO *bio = BIO_new_mem_buf(text, (int)len);
	if (!bio)
		return NULL;
	EVP_PKEY *key = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	return key;
}

/* A new key holding only the public half of @p key. */
static EVP_PKEY *public_half(EVP_PKEY *key)
{
	unsigned char *der = NULL;
	int der_len = i2d_PUBKEY(key, &der);
	if (der_len <= 0)
		return NULL;
	const unsigned char *cursor = der;
	EVP_PKEY *public_key = d2i_PUBKEY(NULL, &cursor, der_len);
	OPENSSL_free(der);
	return public_key;
}

/* Load a private key (@p is_private) or a public key from @p path. A
 * public key file may hold a private key (the seed's layout): only its
 * public half is kept. */
static int load_key(const char *path, bool is_private, EVP_PKEY **out,
		    char **err)
{
	char *text = NULL;
	size_t len = 0;
	int ret = read_key_file(path, is_private, &text, &len, err);
	if (ret < 0)
		return ret;

	EVP_PKEY *key = NULL;
	if (is_private) {
		key = pem_private_key(text, len);
	} else {
		key = pem_public_key(text, len);
		if (!key) {
			ERR_clear_error();
			EVP_PKEY *private_key = pem_private_key(text, len);
			if (private_key) {
				key = public_half(private_key);
				EVP_PKEY_free(private_key);
			}
		}
	}
	ERR_clear_error();
	if (!key) {
		ret = -EINVAL;
		if (pem_has(text, len, "ENCRYPTED"))
			oskr__errorf(err,
				     "%s: encrypted private keys are not supported; store it unencrypted (openssl pkcs8 -topk8 -nocrypt) with mode 0600",
				     path);
		else if (is_private && pem_has(text, len, "PUBLIC KEY-----"))
			oskr__errorf(err,
				     "%s: holds a public key, not the PEM private key expected here",
				     path);
		else if (is_private)
			oskr__errorf(err,
				     "%s: not a PEM private key (expected -----BEGIN PRIVATE KEY-----)",
				     path);
		else
			oskr__errorf(err,
				     "%s: not a PEM public or private key (expected -----BEGIN PUBLIC KEY----- or -----BEGIN PRIVATE KEY-----)",
				     path);
	}
	OPENSSL_cleanse(text, len);
	free(text);
	*out = key;
	return ret;
}

/* ---- signer lifetime ---- */

void oskr__signer_free(struct oskr_signer *signer)
{
	if (!signer)
		return;
	if (signer->id)
		registry_remove(signer->id);
	/* Thread caches may still hold contexts for this signer; each holds
	 * its own key reference, and the id is never reused, so they are
	 * only ever freed, never used again. */
	for (uint32_t replica_id = 0; signer->public_keys &&
	     replica_id < signer->replica_count; replica_id++)
		EVP_PKEY_free(signer->public_keys[replica_id]);
	free(signer->public_keys);
	EVP_PKEY_free(signer->private_key);
	free(signer);
}

int oskr__signer_create(struct oskr_signer **out, const char *private_key_path,
			const char *const *public_key_paths,
			uint32_t replica_count, char **err)
{
	int ret;

	*out = NULL;
	if (replica_count == 0 || !public_key_paths) {
		oskr__errorf(err, "signer: no replica public keys given");
		return -EINVAL;
	}
	struct oskr_signer *signer = calloc(1, sizeof(*signer));
	if (!signer)
		goto err_nomem;
	signer->public_keys = calloc(replica_count,
				     sizeof(*signer->public_keys));
	if (!signer->public_keys)
		goto err_nomem;
	signer->replica_count = replica_count;

	/* The first key read fixes the type every other key must have. */
	const char *first_path = NULL;
	if (private_key_path) {
		ret = load_key(private_key_path, true, &signer->private_key,
			       err);
		if (ret < 0)
			goto err_free;
		ret = key_type_of(signer->private_key, private_key_path,
				  &signer->key_type, err);
		if (ret < 0)
			goto err_free;
		first_path = private_key_path;
	}
	for (uint32_t replica_id = 0; replica_id < replica_count;
	     replica_id++) {
		const char *path = public_key_paths[replica_id];
		if (!path) {
			oskr__errorf(err,
				     "signer: no public key file for replica %u",
				     replica_id);
			ret = -EINVAL;
			goto err_free;
		}
		ret = load_key(path, false, &signer->public_keys[replica_id],
			       err);
		if (ret < 0)
			goto err_free;
		enum oskr_key_type type;
		ret = key_type_of(signer->public_keys[replica_id], path, &type,
				  err);
		if (ret < 0)
			goto err_free;
		if (!first_path) {
			signer->key_type = type;
			first_path = path;
		} else if (type != signer->key_type) {
			oskr__errorf(err,
				     "%s holds a %s key but %s holds a %s key: all keys of a cluster must be one type",
				     path, oskr__key_type_name(type),
				     first_path,
				     oskr__key_type_name(signer->key_type));
			ret = -EINVAL;
			goto err_free;
		}
	}

	/* A replica whose key no one can check would fail every protocol
	 * round silently; say so at start-up instead. */
	if (signer->private_key) {
		bool listed = false;
		for (uint32_t replica_id = 0; replica_id < replica_count;
		     replica_id++) {
			if (EVP_PKEY_eq(signer->private_key,
					signer->public_keys[replica_id]) == 1) {
				listed = true;
				break;
			}
		}
		ERR_clear_error();
		if (!listed) {
			oskr__errorf(err,
				     "%s: private key matches none of the %u replica public keys",
				     private_key_path, replica_count);
			ret = -EINVAL;
			goto err_free;
		}
	}

	if (signer->key_type == OSKR_KEY_ED25519) {
		signer->signature_size = ED25519_SIGNATURE_SIZE;
	} else {
		int size = EVP_PKEY_get_size(signer->public_keys[0]);
		if (size <= 0 || size > OSKR_SIGNATURE_MAX) {
			oskr__errorf(err,
				     "%s: signatures of %d bytes do not fit OSKR_SIGNATURE_MAX",
				     first_path, size);
			ret = -EINVAL;
			goto err_free;
		}
		signer->signature_size = (size_t)size;
	}

	ret = registry_add(&signer->id);
	if (ret < 0)
		goto err_nomem;
	*out = signer;
	return 0;

err_nomem:
	oskr__errorf(err, "signer: out of memory");
	ret = -ENOMEM;
err_free:
	ERR_clear_error();
	oskr__signer_free(signer);
	return ret;
}

/* ---- key generation ---- */

/* Create @p path exclusively with exactly @p mode (whatever the umask) and
 * write @p len bytes. The file never exists with a wider mode. */
static int write_new_file(const char *path, const void *data, size_t len,
			  mode_t mode, char **err)
{
	int ret;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		      mode);
	if (fd < 0) {
		ret = -errno;
		if (ret == -EEXIST)
			oskr__errorf(err,
				     "%s: already exists; refusing to overwrite a key",
				     path);
		else
			oskr__errorf(err, "%s: cannot create: %s", path,
				     strerror(-ret));
		return ret;
	}
	if (fchmod(fd, mode) < 0) {
		ret = -errno;
		oskr__errorf(err, "%s: chmod: %s", path, strerror(-ret));
		goto err_unlink;
	}
	const char *cursor = data;
	size_t left = len;
	while (left > 0) {
		ssize_t wrote = write(fd, cursor, left);
		if (wrote < 0 && errno == EINTR)
			continue;
		if (wrote < 0) {
			ret = -errno;
			oskr__errorf(err, "%s: write: %s", path,
				     strerror(-ret));
			goto err_unlink;
		}
		cursor += wrote;
		left -= (size_t)wrote;
	}
	if (fsync(fd) < 0) {
		ret = -errno;
		oskr__errorf(err, "%s: fsync: %s", path, strerror(-ret));
		goto err_unlink;
	}
	if (close(fd) < 0) {
		ret = -errno;
		oskr__errorf(err, "%s: close: %s", path, strerror(-ret));
		unlink(path);
		return ret;
	}
	return 0;

err_unlink:
	close(fd);
	unlink(path);
	return ret;
}

static EVP_PKEY *generate_key(enum oskr_key_type type)
{
	switch (type) {
	case OSKR_KEY_P256:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	case OSKR_KEY_SECP256K1:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
	case OSKR_KEY_ED25519:
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	}
	return NULL;
}

int oskr__keygen(enum oskr_key_type type, const char *private_path,
		 const char *public_path, char **err)
{
	int ret;
	BIO *private_pem = NULL, *public_pem = NULL;
	EVP_PKEY *key = generate_key(type);
	if (!key) {
		oskr__errorf(err, "cannot generate a %s key",
			     oskr__key_type_name(type));
		ret = -EIO;
		goto out;
	}
	/* Secure-heap BIO: the PEM text is cleansed when freed. */
	private_pem = BIO_new(BIO_s_secmem());
	public_pem = BIO_new(BIO_s_mem());
	if (!private_pem || !public_pem) {
		oskr__errorf(err, "keygen: out of memory");
		ret = -ENOMEM;
		goto out;
	}
	if (!PEM_write_bio_PKCS8PrivateKey(private_pem, key, NULL, NULL, 0,
					   NULL, NULL) ||
	    !PEM_write_bio_PUBKEY(public_pem, key)) {
		oskr__errorf(err, "cannot encode the %s key as PEM",
			     oskr__key_type_name(type));
		ret = -EIO;
		goto out;
	}
	char *data;
	long len = BIO_get_mem_data(private_pem, &data);
	ret = write_new_file(private_path, data, (size_t)len, 0600, err);
	if (ret < 0)
		goto out;
	len = BIO_get_mem_data(public_pem, &data);
	ret = write_new_file(public_path, data, (size_t)len, 0644, err);
	if (ret < 0)
		unlink(private_path);
out:
	ERR_clear_error();
	BIO_free(private_pem);
	BIO_free(public_pem);
	EVP_PKEY_free(key);
	return ret;
}
