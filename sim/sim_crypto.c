/* SPDX-License-Identifier: MIT */
/*
 * Keys, signatures and digests of the sim.
 *
 * Fast scheme (default): HMAC-SHA256 under a 32-byte secret per replica
 * derived from the seed; 32-byte signatures. Plugins cannot forge it, since
 * the secrets stay in the sim, and it is ~100x cheaper than ECDSA, which
 * matters for long fault-injection runs. The HMAC pads are hashed once at
 * creation; a signature then costs two context copies and two short hashes.
 *
 * Real scheme (`real_signatures`): P-256 keys generated in memory, DER
 * ECDSA over SHA-256, as oskrd's signer produces. OpenSSL 3.0 draws a
 * random nonce, so signature bytes (not their validity, nor the event
 * order) differ between runs of one seed.
 */
#include <string.h>

#include <openssl/evp.h>

#include "sim_internal.h"

#define SIM_P256_SIGNATURE_MAX 72

int oskr__sim_crypto_init(struct oskr_sim *sim)
{
	sim->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	sim->md_ctx = EVP_MD_CTX_new();
	if (!sim->sha256 || !sim->md_ctx)
		return -ENOMEM;
	for (uint32_t r = 0; r < sim->replica_count; r++) {
		if (sim->real_signatures) {
			sim->keys[r] = EVP_PKEY_Q_keygen(NULL, NULL, "EC",
							 "P-256");
			if (!sim->keys[r])
				return -EIO;
			continue;
		}
		/* secret_r = SHA-256("oskr-sim-key" || seed || r): distinct
		 * per replica and per seed, fixed for a seed. */
		uint8_t secret[SIM_FAST_KEY_SIZE];
		uint8_t material[12 + 8 + 4];
		memcpy(material, "oskr-sim-key", 12);
		for (int i = 0; i < 8; i++)
			material[12 + i] = (uint8_t)(sim->seed >> (8 * i));
		for (int i = 0; i < 4; i++)
			material[20 + i] = (uint8_t)(r >> (8 * i));
		oskr__sim_sha256(sim, material, sizeof(material), secret);

		/* HMAC (RFC 2104) with a 64-byte block: keep the hash
		 * states after the inner and outer padded keys. */
		uint8_t ipad[64], opad[64];
		memset(ipad, 0x36, sizeof(ipad));
		memset(opad, 0x5c, sizeof(opad));
		for (size_t i = 0; i < sizeof(secret); i++) {
			ipad[i] ^= secret[i];
			opad[i] ^= secret[i];
		}
		sim->hmac_inner[r] = EVP_MD_CTX_new();
		sim->hmac_outer[r] = EVP_MD_CTX_new();
		if (!sim->hmac_inner[r] || !sim->hmac_outer[r])
			return -ENOMEM;
		if (!EVP_DigestInit_ex(sim->hmac_inner[r], sim->sha256, NULL) ||
		    !EVP_DigestUpdate(sim->hmac_inner[r], ipad, sizeof(ipad)) ||
		    !EVP_DigestInit_ex(sim->hmac_outer[r], sim->sha256, NULL) ||
		    !EVP_DigestUpdate(sim->hmac_outer[r], opad, sizeof(opad)))
			return -EIO;
	}
	return 0;
}

void oskr__sim_crypto_fini(struct oskr_sim *sim)
{
	for (uint32_t r = 0; r < OSKR_SIM_MAX_REPLICAS; r++) {
		EVP_MD_CTX_free(sim->hmac_inner[r]);
		EVP_MD_CTX_free(sim->hmac_outer[r]);
		EVP_PKEY_free(sim->keys[r]);
		sim->hmac_inner[r] = sim->hmac_outer[r] = NULL;
		sim->keys[r] = NULL;
	}
	EVP_MD_CTX_free(sim->md_ctx);
	EVP_MD_free(sim->sha256);
	sim->md_ctx = NULL;
	sim->sha256 = NULL;
}

void oskr__sim_sha256(struct oskr_sim *sim, const void *data, size_t len,
		      uint8_t out[OSKR_DIGEST_SIZE])
{
	unsigned int out_len = 0;
	if (!EVP_DigestInit_ex(sim->md_ctx, sim->sha256, NULL) ||
	    !EVP_DigestUpdate(sim->md_ctx, data, len) ||
	    !EVP_DigestFinal_ex(sim->md_ctx, out, &out_len))
		memset(out, 0, OSKR_DIGEST_SIZE); /* OpenSSL failed: no key */
}

static int hmac(struct oskr_sim *sim, uint32_t replica, const void *data,
		size_t len, uint8_t out[SIM_FAST_KEY_SIZE])
{
	uint8_t inner[OSKR_DIGEST_SIZE];
	unsigned int inner_len = 0, out_len = 0;
	if (!EVP_MD_CTX_copy_ex(sim->md_ctx, sim->hmac_inner[replica]) ||
	    !EVP_DigestUpdate(sim->md_ctx, data, len) ||
	    !EVP_DigestFinal_ex(sim->md_ctx, inner, &inner_len) ||
	    !EVP_MD_CTX_copy_ex(sim->md_ctx, sim->hmac_outer[replica]) ||
	    !EVP_DigestUpdate(sim->md_ctx, inner, inner_len) ||
	    !EVP_DigestFinal_ex(sim->md_ctx, out, &out_len))
		return -EIO;
	return 0;
}

size_t oskr__sim_signature_size(struct oskr_sim *sim)
{
	return sim->real_signatures ? SIM_P256_SIGNATURE_MAX
				    : SIM_FAST_KEY_SIZE;
}

int oskr__sim_sign(struct oskr_sim *sim, uint32_t replica, const void *data,
		   size_t len, uint8_t *sig, size_t *sig_len)
{
	if (replica >= sim->replica_count)
		return -EINVAL;
	if (!sim->real_signatures) {
		int ret = hmac(sim, replica, data, len, sig);
		if (ret == 0)
			*sig_len = SIM_FAST_KEY_SIZE;
		return ret;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	size_t out_len = OSKR_SIGNATURE_MAX;
	int ret = -EIO;
	if (EVP_DigestSignInit(ctx, NULL, sim->sha256, NULL,
			       sim->keys[replica]) == 1 &&
	    EVP_DigestSign(ctx, sig, &out_len, data, len) == 1) {
		*sig_len = out_len;
		ret = 0;
	}
	EVP_MD_CTX_free(ctx);
	return ret;
}

bool oskr__sim_verify(struct oskr_sim *sim, uint32_t replica,
		      const void *data, size_t len, const uint8_t *sig,
		      size_t sig_len)
{
	if (replica >= sim->replica_count || !sig)
		return false;
	if (!sim->real_signatures) {
		uint8_t expected[SIM_FAST_KEY_SIZE];
		if (sig_len != SIM_FAST_KEY_SIZE ||
		    hmac(sim, replica, data, len, expected))
			return false;
		/* The sim is single-threaded and not a timing target, but
		 * keep the habit of a constant-time compare. */
		uint8_t diff = 0;
		for (size_t i = 0; i < SIM_FAST_KEY_SIZE; i++)
			diff |= (uint8_t)(expected[i] ^ sig[i]);
		return diff == 0;
	}
	if (sig_len == 0 || sig_len > OSKR_SIGNATURE_MAX)
		return false;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return false;
	bool ok = EVP_DigestVerifyInit(ctx, NULL, sim->sha256, NULL,
				       sim->keys[replica]) == 1 &&
		  EVP_DigestVerify(ctx, sig, sig_len, data, len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

int oskr_sim_sign_as(struct oskr_sim *sim, uint32_t replica, const void *data,
		     size_t len, uint8_t *sig, size_t *sig_len)
{
	return oskr__sim_sign(sim, replica, data, len, sig, sig_len);
}
