/* SPDX-License-Identifier: MIT */
/*
 * Host-owned signing (OpenSSL EVP). The signer holds this replica's private
 * key (none on a client) and the public keys of all n replicas. Plugins
 * reach it only through oskr_host.sign/verify; they never see a key.
 *
 * Key types: P-256 (recommended default), Ed25519, and secp256k1 (the seed's
 * `openssl ecparam -name secp256k1 -genkey | openssl pkcs8 -topk8 -nocrypt`
 * keys). ECDSA signatures are DER, over SHA-256 of the message.
 *
 * Thread safety: sign/verify may be called from any number of threads at
 * once; each thread reuses its own cached OpenSSL contexts.
 */
#ifndef OSKR_DAEMON_SIGNER_H
#define OSKR_DAEMON_SIGNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oskr/plugin.h>

enum oskr_key_type {
	OSKR_KEY_P256,
	OSKR_KEY_ED25519,
	OSKR_KEY_SECP256K1,
};

struct oskr_signer;

/**
 * Create a signer. @p private_key_path may be NULL (verify only: clients).
 * @p public_key_paths has @p replica_count entries; each file may hold a
 * public key or a private key (only its public half is kept). All keys must
 * be of one type. The private key file is refused when it is group- or
 * world-readable or not owned by the effective user.
 * Returns 0, or a negative error with *err naming the file and the reason.
 */
int oskr__signer_create(struct oskr_signer **out, const char *private_key_path,
			const char *const *public_key_paths,
			uint32_t replica_count, char **err);
void oskr__signer_free(struct oskr_signer *signer);

enum oskr_key_type oskr__signer_key_type(const struct oskr_signer *signer);
/** Upper bound of this signer's signatures (<= OSKR_SIGNATURE_MAX). */
size_t oskr__signer_signature_size(const struct oskr_signer *signer);
bool oskr__signer_can_sign(const struct oskr_signer *signer);

/** @return 0, -ENOKEY without a private key, -EIO on an OpenSSL error. */
int oskr__signer_sign(struct oskr_signer *signer, const void *data,
		      size_t len, uint8_t *sig, size_t *sig_len);
bool oskr__signer_verify(struct oskr_signer *signer, uint32_t replica_id,
			 const void *data, size_t len, const uint8_t *sig,
			 size_t sig_len);

/** SHA-256. Thread safe. */
void oskr__sha256(const void *data, size_t len,
		  uint8_t out[OSKR_DIGEST_SIZE]);

/** Check a private key file's owner and mode. 0 or -EPERM/-ENOENT with
 *  *err like "keys/replica-0.pem: mode 0644 is group/world readable; run
 *  chmod 600 keys/replica-0.pem". */
int oskr__key_check_permissions(const char *path, char **err);

/** Parse "p256" | "ed25519" | "secp256k1". 0 or -EINVAL. */
int oskr__key_type_parse(const char *text, enum oskr_key_type *out);
const char *oskr__key_type_name(enum oskr_key_type type);

/** Generate a key pair: private key PEM (PKCS#8, mode 0600) at
 *  @p private_path and public key PEM (SubjectPublicKeyInfo) at
 *  @p public_path. 0 or negative with *err. */
int oskr__keygen(enum oskr_key_type type, const char *private_path,
		 const char *public_path, char **err);

#endif
