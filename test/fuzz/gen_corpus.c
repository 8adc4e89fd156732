/* SPDX-License-Identifier: MIT */
/*
 * Seed inputs for the fuzz targets, built with the real encoders so the
 * fuzzer starts from messages that pass every length check and reaches
 * the deep paths at once. Run by test/fuzz/make-corpus.sh:
 *
 *   gen_corpus OUTDIR
 *
 * writes OUTDIR/<target>/<name> files. The PBFT and HotStuff seeds are
 * built only when compiled with -DHAVE_PBFT / -DHAVE_HOTSTUFF (their
 * codecs are linked in). Seeds are small on purpose (< 2 KiB).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <oskr/kv.h>

#include <openssl/evp.h>

#include "apps/app.h"
#include "plugins/unreplicated/codec.h"
#include "transport/frame.h"
#ifdef HAVE_PBFT
#include "plugins/pbft/codec.h"
#endif
#ifdef HAVE_HOTSTUFF
#include "plugins/hotstuff/codec.h"
#endif

static const char *out_dir;

static void write_seed(const char *target, const char *name, const void *data,
		       size_t len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", out_dir, target);
	if (mkdir(path, 0755) && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f)) {
		perror(path);
		exit(1);
	}
}

/* ---- kv ---- */

static size_t kv_put(uint8_t *out, size_t room, const char *key,
		     const char *value)
{
	return oskr_kv_encode_put(out, room, key, strlen(key), value,
				  strlen(value));
}

/* A kv_op script record: capacity class, u16 length, op bytes. */
static size_t script_add(uint8_t *script, size_t at, uint8_t class,
			 const uint8_t *op, size_t op_len)
{
	script[at] = class;
	script[at + 1] = (uint8_t)op_len;
	script[at + 2] = (uint8_t)(op_len >> 8);
	memcpy(script + at + 3, op, op_len);
	return at + 3 + op_len;
}

static void seeds_kv(void)
{
	uint8_t op[256], script[2048];
	size_t len, at = 0;

	len = oskr_kv_encode_get(op, sizeof(op), "key", 3);
	write_seed("kv_op", "get", op, len);
	len = kv_put(op, sizeof(op), "key", "value");
	write_seed("kv_op", "put", op, len);
	len = oskr_kv_encode_del(op, sizeof(op), "key", 3);
	write_seed("kv_op", "del", op, len);
	len = oskr_kv_encode_scan(op, sizeof(op), "", 0, 10);
	write_seed("kv_op", "scan", op, len);

	/* A script: puts, an overwrite of another size, get, scan with
	 * small and large result buffers, del, a malformed op. */
	static const char *const keys[] = { "alpha", "beta", "gamma", "" };
	for (size_t i = 0; i < 4; i++) {
		len = kv_put(op, sizeof(op), keys[i], "v");
		at = script_add(script, at, 4, op, len);
	}
	len = kv_put(op, sizeof(op), "beta", "a longer value");
	at = script_add(script, at, 4, op, len);
	len = oskr_kv_encode_get(op, sizeof(op), "beta", 4);
	at = script_add(script, at, 2 + 5 * 3, op, len);
	len = oskr_kv_encode_scan(op, sizeof(op), "b", 1, 2);
	at = script_add(script, at, 2 + 5 * 4, op, len);
	len = oskr_kv_encode_scan(op, sizeof(op), "", 0, 100);
	at = script_add(script, at, 4, op, len);
	len = oskr_kv_encode_del(op, sizeof(op), "alpha", 5);
	at = script_add(script, at, 1, op, len);
	at = script_add(script, at, 4, (const uint8_t *)"\x09\x01", 2);
	write_seed("kv_op", "script", script, at);

	/* Snapshots from a real store. */
	void *kv = NULL, *blob = NULL;
	size_t blob_len = 0, result_len;
	uint8_t result[64];
	if (oskr__app_kv.create(&kv, NULL, NULL) ||
	    oskr__app_kv.snapshot(kv, &blob, &blob_len)) {
		fprintf(stderr, "kv: cannot snapshot\n");
		exit(1);
	}
	write_seed("kv_snapshot", "empty", blob, blob_len);
	free(blob);
	for (size_t i = 0; i < 4; i++) {
		len = kv_put(op, sizeof(op), keys[i], keys[(i + 1) % 4]);
		oskr__app_kv.execute(kv, op, len, result, sizeof(result),
				     &result_len);
	}
	oskr__app_kv.snapshot(kv, &blob, &blob_len);
	write_seed("kv_snapshot", "four", blob, blob_len);
	free(blob);
	oskr__app_kv.destroy(kv);
}

/* ---- durable snapshot files (daemon/snapshot_store.h layout) ---- */

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A snapshot file around @p payload, with a right or a wrong checksum.
 * fuzz_snapshot_file recomputes the checksum when byte 127 is odd, so a
 * wrong one is kept even there to reach the checksum refusal. */
static void snapshot_file(const char *name, const void *payload, size_t len,
			  bool good_checksum)
{
	uint8_t file[4096] = { 0 };
	if (128 + len > sizeof(file))
		exit(1);
	memcpy(file, "OSKRSNAP", 8);
	put_le(file + 8, 1, 4);
	put_le(file + 12, 128, 4);
	put_le(file + 16, 42, 8);
	put_le(file + 24, len, 8);
	put_le(file + 32, 1700000000000ull, 8);
	memcpy(file + 40, "kv", 2);
	memcpy(file + 72, "pbft", 4);
	memcpy(file + 128, payload, len);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(md, file, 96) ||
	    !EVP_DigestUpdate(md, file + 128, len) ||
	    !EVP_DigestFinal_ex(md, file + 96, NULL))
		exit(1);
	EVP_MD_CTX_free(md);
	if (!good_checksum) {
		file[100] ^= 0x01;
		file[127] &= 0xfe;
	}
	write_seed("snapshot_file", name, file, 128 + len);
}

static void seeds_snapshot_file(void)
{
	void *kv = NULL, *blob = NULL;
	size_t blob_len = 0, result_len;
	uint8_t op[64], result[16];
	if (oskr__app_kv.create(&kv, NULL, NULL))
		exit(1);
	size_t len = kv_put(op, sizeof(op), "key", "value");
	oskr__app_kv.execute(kv, op, len, result, sizeof(result), &result_len);
	if (oskr__app_kv.snapshot(kv, &blob, &blob_len))
		exit(1);
	snapshot_file("kv", blob, blob_len, true);
	snapshot_file("kv_flipped_checksum", blob, blob_len, false);
	snapshot_file("empty_payload", "", 0, true);
	free(blob);
	oskr__app_kv.destroy(kv);
}

/* ---- unreplicated ---- */

static void seeds_unreplicated(void)
{
	uint8_t op[64], msg[256];
	size_t op_len = kv_put(op, sizeof(op), "k", "v");
	struct unreplicated_request request = {
		.client_id = 0x1122334455667788ull,
		.request_number = 1,
		.op = op,
		.op_len = (uint32_t)op_len,
	};
	size_t len = unreplicated_encode_request(msg, sizeof(msg), &request);
	write_seed("unreplicated_codec", "request", msg, len);
	request.op_len = 0;
	len = unreplicated_encode_request(msg, sizeof(msg), &request);
	write_seed("unreplicated_codec", "request_empty", msg, len);

	static const uint8_t result[] = { 0, 'v' };
	len = unreplicated_encode_reply_body(msg, sizeof(msg), 7, 1, result,
					     sizeof(result), 0);
	msg[len] = 0;
	write_seed("unreplicated_codec", "reply", msg, len + 1);
	len = unreplicated_encode_reply_body(msg, sizeof(msg), 7, 1, result,
					     sizeof(result), 64);
	msg[len] = 64;
	memset(msg + len + 1, 0x5a, 64);
	write_seed("unreplicated_codec", "reply_signed", msg, len + 65);
}

/* ---- dpdk framing ---- */

static void seeds_frame(void)
{
	struct oskr__frame_endpoint a = { { 0x12, 0x34, 0x56, 0xaa, 0xaa, 0xaa },
					  0 };
	struct oskr__frame_endpoint b = { { 0x12, 0x34, 0x56, 0xaa, 0xaa, 0xab },
					  3 };
	struct oskr__frame_endpoint client = {
		{ 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 }, 0x1234
	};
	uint8_t frame[128];
	int header = oskr__frame_write_header(frame, sizeof(frame), &a, &b, 5);
	memcpy(frame + header, "hello", 5);
	write_seed("frame", "short_ids", frame, (size_t)header + 5);
	/* Padded to the Ethernet minimum, as a NIC delivers it. */
	memset(frame + header + 5, 0, 60 - (size_t)header - 5);
	write_seed("frame", "padded", frame, 60);
	header = oskr__frame_write_header(frame, sizeof(frame), &b, &client, 4);
	memcpy(frame + header, "ping", 4);
	write_seed("frame", "long_id", frame, (size_t)header + 4);

	struct oskr_addr addr;
	oskr__frame_addr_pack(&client, &addr);
	write_seed("frame", "addr", addr.bytes, sizeof(addr.bytes));
}

#ifdef HAVE_PBFT
/* ---- PBFT ---- */

static void pbft_sig(struct pbft_writer *w, uint8_t fill)
{
	uint8_t sig[64];
	memset(sig, fill, sizeof(sig));
	pbft_put_u8(w, sizeof(sig));
	pbft_put(w, sig, sizeof(sig));
}

static void pbft_write(const char *name, struct pbft_writer *w)
{
	if (w->overflow) {
		fprintf(stderr, "pbft seed %s does not fit\n", name);
		exit(1);
	}
	write_seed("pbft_codec", name, w->data, w->len);
}

static void pbft_batch(struct pbft_writer *w, unsigned count)
{
	uint8_t op[32];
	size_t op_len = kv_put(op, sizeof(op), "k", "v");
	pbft_put_u32(w, count);
	for (unsigned i = 0; i < count; i++) {
		struct pbft_request req = {
			.client_id = 100 + i,
			.request_number = 1,
			.op = op,
			.op_len = (uint32_t)op_len,
		};
		req.addr.bytes[0] = 4;
		req.addr.bytes[3] = 1;
		oskr__pbft_put_request(w, &req);
	}
}

static void seeds_pbft(void)
{
	uint8_t buf[2048], digest[PBFT_DIGEST];
	memset(digest, 0xd1, sizeof(digest));
	struct pbft_writer w;
#define PBFT_BEGIN() (w = (struct pbft_writer){ .data = buf, .capacity = sizeof(buf) })

	PBFT_BEGIN();
	pbft_put_u8(&w, PBFT_REQUEST);
	pbft_put_u64(&w, 42);
	pbft_put_u64(&w, 1);
	pbft_put_u32(&w, 3);
	pbft_put(&w, "\x01\x00\x00", 3);
	pbft_write("request", &w);

	PBFT_BEGIN();
	pbft_put_u8(&w, PBFT_RELAY);
	pbft_put_u16(&w, 1);
	{
		struct pbft_request req = { .client_id = 42,
					    .request_number = 1,
					    .op = (const uint8_t *)"op",
					    .op_len = 2 };
		req.addr.bytes[0] = 4;
		oskr__pbft_put_request(&w, &req);
	}
	pbft_sig(&w, 1);
	pbft_write("relay", &w);

	/* PRE-PREPARE: signed header, then the batch. */
	PBFT_BEGIN();
	pbft_put_u8(&w, PBFT_PRE_PREPARE);
	pbft_put_u64(&w, 0);
	pbft_put_u64(&w, 1);
	pbft_put(&w, digest, PBFT_DIGEST);
	pbft_put_u16(&w, 0);
	pbft_sig(&w, 2);
	{
		uint8_t batch[512];
		struct pbft_writer bw = { .data = batch,
					  .capacity = sizeof(batch) };
		pbft_batch(&bw, 2);
		pbft_put_u32(&w, (uint32_t)bw.len);
		pbft_put(&w, batch, bw.len);
	}
	pbft_write("pre_prepare", &w);

	static const uint8_t order_types[] = { PBFT_PREPARE, PBFT_COMMIT };
	static const char *const order_names[] = { "prepare", "commit" };
	for (size_t i = 0; i < 2; i++) {
		PBFT_BEGIN();
		pbft_put_u8(&w, order_types[i]);
		pbft_put_u64(&w, 0);
		pbft_put_u64(&w, 1);
		pbft_put(&w, digest, PBFT_DIGEST);
		pbft_put_u16(&w, 2);
		pbft_sig(&w, 3);
		pbft_write(order_names[i], &w);
	}

	PBFT_BEGIN();
	pbft_put_u8(&w, PBFT_REPLY);
	pbft_put_u64(&w, 0);
	pbft_put_u64(&w, 42);
	pbft_put_u64(&w, 1);
	pbft_put_u16(&w, 3);
	pbft_put_u32(&w, 2);
	pbft_put(&w, "\x00v", 2);
	pbft_sig(&w, 4);
	pbft_write("reply", &w);

	PBFT_BEGIN();
	pbft_put_u8(&w, PBFT_CHECKPOINT);
	pbft_put_u64(&w, 100);
	pbft_put(&w, digest, PBFT_DIGEST);
	pbft_put_u16(&w, 1);
	pbft_sig(&w, 5);
	pbft_write("checkpoint", &w);

	PBFT_BEGIN();
	pbft_put_u8(&w, PBFT_STABLE);
	pbft_put_u64(&w, 100);
	pbft_put(&w, digest, PBFT_DIGEST);
	pbft_put_u16(&w, 1);
	pbft_put_u8(&w, 3);
	for (uint16_t r = 0; r < 3; r++) {
		pbft_put_u16(&w, r);
		pbft_sig(&w, (uint8_t)(6 + r));
	}
	pbft_sig(&w, 9);
	pbft_write("stable", &w);

	/* VIEW-CHANGE with a checkpoint proof and one prepared cert. */
	PBFT_BEGIN();
	pbft_put_u8(&w, PBFT_VIEW_CHANGE);
	pbft_put_u64(&w, 1);
	pbft_put_u64(&w, 0);
	pbft_put(&w, digest, PBFT_DIGEST);
	pbft_put_u16(&w, 2);
	pbft_put_u8(&w, 0); /* no proof for seq 0 */
	pbft_put_u16(&w, 1);
	pbft_put_u64(&w, 0);
	pbft_put_u64(&w, 1);
	pbft_put(&w, digest, PBFT_DIGEST);
	pbft_sig(&w, 10);
	pbft_put_u8(&w, 2);
	for (uint16_t r = 1; r < 3; r++) {
		pbft_put_u16(&w, r);
		pbft_sig(&w, (uint8_t)(11 + r));
	}
	pbft_sig(&w, 14);
	pbft_write("view_change", &w);

	/* NEW-VIEW: 3 view-change refs, O = {1}. */
	PBFT_BEGIN();
	pbft_put_u8(&w, PBFT_NEW_VIEW);
	pbft_put_u64(&w, 1);
	pbft_put_u16(&w, 1);
	pbft_put_u8(&w, 3);
	for (uint16_t r = 0; r < 3; r++) {
		pbft_put_u16(&w, r);
		pbft_put(&w, digest, PBFT_DIGEST);
	}
	pbft_put_u64(&w, 0);
	pbft_put_u64(&w, 1);
	pbft_put_u16(&w, 1);
	pbft_put_u64(&w, 1);
	pbft_put(&w, digest, PBFT_DIGEST);
	pbft_sig(&w, 15);
	pbft_sig(&w, 16);
	pbft_write("new_view", &w);

	PBFT_BEGIN();
	pbft_put_u8(&w, PBFT_FETCH_VIEW_CHANGE);
	pbft_put_u64(&w, 1);
	pbft_put_u16(&w, 0);
	pbft_put_u16(&w, 2);
	pbft_sig(&w, 17);
	pbft_write("fetch_view_change", &w);

	PBFT_BEGIN();
	pbft_put_u8(&w, PBFT_FETCH_ENTRIES);
	pbft_put_u64(&w, 1);
	pbft_put_u16(&w, 3);
	pbft_sig(&w, 18);
	pbft_write("fetch_entries", &w);

	PBFT_BEGIN();
	pbft_put_u8(&w, PBFT_ENTRY);
	pbft_put_u64(&w, 0);
	pbft_put_u64(&w, 1);
	pbft_put(&w, digest, PBFT_DIGEST);
	pbft_put_u16(&w, 0);
	pbft_put_u8(&w, 1);
	pbft_put_u16(&w, 1);
	pbft_sig(&w, 19);
	{
		uint8_t batch[256];
		struct pbft_writer bw = { .data = batch,
					  .capacity = sizeof(batch) };
		pbft_batch(&bw, 1);
		pbft_put_u32(&w, (uint32_t)bw.len);
		pbft_put(&w, batch, bw.len);
	}
	pbft_sig(&w, 20);
	pbft_write("entry", &w);

	PBFT_BEGIN();
	pbft_put_u8(&w, PBFT_CHUNK);
	pbft_put_u64(&w, 100);
	pbft_put(&w, digest, PBFT_DIGEST);
	pbft_put_u64(&w, 0);
	pbft_put_u16(&w, 1);
	pbft_put_u64(&w, 8);
	pbft_put_u32(&w, 8);
	pbft_put(&w, "OSKRKV01", 8);
	pbft_sig(&w, 21);
	pbft_write("chunk", &w);
#undef PBFT_BEGIN
}
#endif

#ifdef HAVE_HOTSTUFF
/* ---- HotStuff ---- */

static size_t hs_qc(uint8_t *out, size_t room, uint64_t view, unsigned count)
{
	uint8_t digest[OSKR__HS_DIGEST], sig[64];
	uint16_t replicas[4];
	const uint8_t *sigs[4];
	uint8_t lens[4];
	memset(digest, 0xab, sizeof(digest));
	memset(sig, 0x5a, sizeof(sig));
	for (unsigned i = 0; i < count; i++) {
		replicas[i] = (uint16_t)i;
		sigs[i] = sig;
		lens[i] = sizeof(sig);
	}
	struct oskr__hs_writer w;
	oskr__hs_writer_init(&w, out, room);
	oskr__hs_put_qc(&w, view, digest, (uint16_t)count, replicas, sigs,
			lens);
	return w.len;
}

static size_t hs_block(uint8_t *out, size_t room, unsigned requests)
{
	uint8_t parent[OSKR__HS_DIGEST], qc[512], addr[OSKR_ADDR_SIZE] = { 4 };
	memset(parent, 0xcd, sizeof(parent));
	size_t qc_len = hs_qc(qc, sizeof(qc), 1, 3);
	struct oskr__hs_writer w;
	oskr__hs_writer_init(&w, out, room);
	size_t count_at = oskr__hs_put_block_head(&w, parent, 2, 2, 1, qc,
						  qc_len);
	for (unsigned i = 0; i < requests; i++)
		oskr__hs_put_request(&w, 100 + i, 1, addr, "\x01\x01\x00k", 4);
	oskr__hs_patch_u32(&w, count_at, requests);
	return w.len;
}

static void hs_write(const char *name, struct oskr__hs_writer *w)
{
	if (w->overflow) {
		fprintf(stderr, "hotstuff seed %s does not fit\n", name);
		exit(1);
	}
	write_seed("hotstuff_codec", name, w->data, w->len);
}

static void seeds_hotstuff(void)
{
	uint8_t buf[2048], block[1024], qc[512], sig[64], digest[32];
	memset(sig, 0x77, sizeof(sig));
	memset(digest, 0xee, sizeof(digest));
	struct oskr__hs_writer w;

	size_t qc_len = hs_qc(qc, sizeof(qc), 3, 3);
	write_seed("hotstuff_codec", "qc", qc, qc_len);
	size_t block_len = hs_block(block, sizeof(block), 2);
	write_seed("hotstuff_codec", "block", block, block_len);

	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_REQUEST);
	oskr__hs_put_u64(&w, 42);
	oskr__hs_put_u64(&w, 1);
	oskr__hs_put_u32(&w, 3);
	oskr__hs_put_bytes(&w, "\x01\x00\x00", 3);
	hs_write("request", &w);

	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_PROPOSAL);
	oskr__hs_put_u32(&w, (uint32_t)block_len);
	oskr__hs_put_bytes(&w, block, block_len);
	oskr__hs_put_u8(&w, sizeof(sig));
	oskr__hs_put_bytes(&w, sig, sizeof(sig));
	hs_write("proposal", &w);

	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_VOTE);
	oskr__hs_put_u16(&w, 2);
	oskr__hs_put_u64(&w, 2);
	oskr__hs_put_bytes(&w, digest, sizeof(digest));
	oskr__hs_put_u8(&w, sizeof(sig));
	oskr__hs_put_bytes(&w, sig, sizeof(sig));
	hs_write("vote", &w);

	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_NEW_VIEW);
	oskr__hs_put_u16(&w, 1);
	oskr__hs_put_u64(&w, 4);
	oskr__hs_put_bytes(&w, qc, qc_len);
	oskr__hs_put_u8(&w, 1);
	oskr__hs_put_u64(&w, 3);
	oskr__hs_put_bytes(&w, digest, sizeof(digest));
	oskr__hs_put_u8(&w, sizeof(sig));
	oskr__hs_put_bytes(&w, sig, sizeof(sig));
	oskr__hs_put_u8(&w, sizeof(sig));
	oskr__hs_put_bytes(&w, sig, sizeof(sig));
	hs_write("new_view", &w);

	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_FETCH);
	oskr__hs_put_u16(&w, 8);
	oskr__hs_put_bytes(&w, digest, sizeof(digest));
	hs_write("fetch", &w);

	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_BLOCKS);
	oskr__hs_put_u16(&w, 1);
	oskr__hs_put_u32(&w, (uint32_t)block_len);
	oskr__hs_put_bytes(&w, block, block_len);
	hs_write("blocks", &w);

	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_REPLY);
	oskr__hs_put_u16(&w, 0);
	oskr__hs_put_u64(&w, 42);
	oskr__hs_put_u64(&w, 1);
	oskr__hs_put_u32(&w, 2);
	oskr__hs_put_bytes(&w, "\x00v", 2);
	oskr__hs_put_u8(&w, sizeof(sig));
	oskr__hs_put_bytes(&w, sig, sizeof(sig));
	hs_write("reply", &w);
}
#endif

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus OUTDIR\n");
		return 2;
	}
	out_dir = argv[1];
	seeds_kv();
	seeds_snapshot_file();
	seeds_unreplicated();
	seeds_frame();
#ifdef HAVE_PBFT
	seeds_pbft();
#endif
#ifdef HAVE_HOTSTUFF
	seeds_hotstuff();
#endif
	return 0;
}
