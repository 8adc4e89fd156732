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
 * codecs are linked in), the durable-checkpoint blobs only with
 * -DHAVE_PBFT_RESUME / -DHAVE_HOTSTUFF_RESUME (durable_codec.c linked in
 * too). Seeds are small on purpose (< 2 KiB).
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
#ifdef HAVE_PBFT_RESUME
#include "plugins/pbft/pbft.h"
#endif
#ifdef HAVE_HOTSTUFF_RESUME
#include "plugins/hotstuff/hotstuff.h"
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

/* A format-1 snapshot file (oskrd before ABI 1.1, still read) around
 * @p payload, with a right or a wrong checksum. fuzz_snapshot_file
 * recomputes the checksum when byte 127 is odd, so a wrong one is kept
 * even there to reach the checksum refusal. */
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

/* A format-2 file: @p app then @p state (a checkpoint when @p op_or_0
 * and @p state_len say so); checksum at 128, repaired by the harness when
 * byte 159 is odd. */
static void snapshot_file_v2(const char *name, const void *app,
			     size_t app_len, const void *state,
			     size_t state_len, bool checkpoint, uint64_t op,
			     bool good_checksum)
{
	uint8_t file[4096] = { 0 };
	size_t len = app_len + state_len;
	if (160 + len > sizeof(file))
		exit(1);
	memcpy(file, "OSKRSNAP", 8);
	put_le(file + 8, 2, 4);
	put_le(file + 12, 160, 4);
	put_le(file + 16, 42, 8);
	put_le(file + 24, len, 8);
	put_le(file + 32, 1700000000000ull, 8);
	memcpy(file + 40, "kv", 2);
	memcpy(file + 72, "pbft", 4);
	put_le(file + 96, checkpoint ? op : 0, 8);
	put_le(file + 104, checkpoint ? state_len : 0, 8);
	put_le(file + 112, checkpoint ? 1 : 0, 4);
	memcpy(file + 160, app, app_len);
	memcpy(file + 160 + app_len, state, state_len);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(md, file, 128) ||
	    !EVP_DigestUpdate(md, file + 160, len) ||
	    !EVP_DigestFinal_ex(md, file + 128, NULL))
		exit(1);
	EVP_MD_CTX_free(md);
	if (!good_checksum) {
		file[130] ^= 0x01;
		file[159] &= 0xfe;
	}
	write_seed("snapshot_file", name, file, 160 + len);
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
	static const uint8_t protocol_state[24] = "PBCK protocol state....";
	snapshot_file_v2("v2_kv", blob, blob_len, "", 0, false, 0, true);
	snapshot_file_v2("v2_checkpoint", blob, blob_len, protocol_state,
			 sizeof(protocol_state), true, 300, true);
	snapshot_file_v2("v2_checkpoint_flipped_checksum", blob, blob_len,
			 protocol_state, sizeof(protocol_state), true, 300,
			 false);
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

	/* state transfer (plugins/hotstuff/transfer.c) */
	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_CKPT_REQUEST);
	oskr__hs_put_u16(&w, 3);
	oskr__hs_put_u64(&w, 17);
	oskr__hs_put_u8(&w, 1);
	oskr__hs_put_bytes(&w, digest, sizeof(digest));
	hs_write("ckpt_request", &w);

	struct oskr__hs_vouch_ref vouch = {
		.sender = 1,
		.height = 2,
		.block_digest = digest,
		.executed_ops = 40,
		.committed_blocks = 2,
		.state_len = 100,
		.state_digest = digest,
		.sig_len = sizeof(sig),
		.sig = sig,
	};
	size_t root_qc_len = hs_qc(qc, sizeof(qc), 2, 3);
	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_CKPT_OFFER);
	oskr__hs_put_vouch(&w, &vouch);
	oskr__hs_put_u8(&w, 1);
	oskr__hs_put_u32(&w, (uint32_t)block_len);
	oskr__hs_put_bytes(&w, block, block_len);
	oskr__hs_put_u32(&w, (uint32_t)root_qc_len);
	oskr__hs_put_bytes(&w, qc, root_qc_len);
	hs_write("ckpt_offer", &w);

	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_CKPT_OFFER);
	oskr__hs_put_vouch(&w, &vouch);
	oskr__hs_put_u8(&w, 0);
	hs_write("ckpt_vouch", &w);

	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_CKPT_FETCH);
	oskr__hs_put_u16(&w, 3);
	oskr__hs_put_bytes(&w, digest, sizeof(digest));
	oskr__hs_put_u64(&w, 64);
	hs_write("ckpt_fetch", &w);

	oskr__hs_writer_init(&w, buf, sizeof(buf));
	oskr__hs_put_header(&w, OSKR__HS_MSG_CKPT_CHUNK);
	oskr__hs_put_u16(&w, 1);
	oskr__hs_put_bytes(&w, digest, sizeof(digest));
	oskr__hs_put_bytes(&w, digest, sizeof(digest));
	oskr__hs_put_u64(&w, 100);
	oskr__hs_put_u64(&w, 64);
	oskr__hs_put_u32(&w, 36);
	oskr__hs_put_bytes(&w, block, 36);
	hs_write("ckpt_chunk", &w);
}
#endif

/* ---- durable checkpoints: the plugins' protocol blobs ---- */

/* Write @p data and, as "<name>_cut<k>", its first bytes at a few cuts
 * (inside the header, the proof or block, the last byte missing): the
 * torn writes a crash leaves. */
static void write_with_cuts(const char *target, const char *name,
			    const uint8_t *data, size_t len,
			    const size_t *cuts, size_t ncuts)
{
	char cut_name[64];
	write_seed(target, name, data, len);
	for (size_t i = 0; i < ncuts; i++) {
		size_t cut = cuts[i] < len ? cuts[i] : len - 1;
		snprintf(cut_name, sizeof(cut_name), "%s_cut%zu", name, cut);
		write_seed(target, cut_name, data, cut);
	}
}

#ifdef HAVE_PBFT_RESUME
/* A checkpoint state as checkpoint.c takes it: ops_executed | client
 * table (requests.c: count, then id, number, op_index, addr, result) |
 * app_len u64 | app (a real kv snapshot). */
static size_t pbft_state(uint8_t *out, size_t room, uint64_t ops,
			 unsigned clients)
{
	struct pbft_writer w = { .data = out, .capacity = room };
	pbft_put_u64(&w, ops);
	pbft_put_u32(&w, clients);
	for (unsigned i = 0; i < clients; i++) {
		uint8_t addr[OSKR_ADDR_SIZE] = { 4, 0, 0, 1, (uint8_t)i };
		pbft_put_u64(&w, 100 + i);
		pbft_put_u64(&w, 7 + i);
		pbft_put_u64(&w, ops - i);
		pbft_put(&w, addr, sizeof(addr));
		pbft_put_u32(&w, i ? 2 : 0); /* a result, or none */
		pbft_put(&w, "\x00v", i ? 2 : 0);
	}
	void *kv = NULL, *blob = NULL;
	size_t blob_len = 0, result_len;
	uint8_t op[32], result[16];
	if (oskr__app_kv.create(&kv, NULL, NULL))
		exit(1);
	size_t len = kv_put(op, sizeof(op), "key", "value");
	oskr__app_kv.execute(kv, op, len, result, sizeof(result), &result_len);
	if (oskr__app_kv.snapshot(kv, &blob, &blob_len))
		exit(1);
	pbft_put_u64(&w, blob_len);
	pbft_put(&w, blob, blob_len);
	free(blob);
	oskr__app_kv.destroy(kv);
	if (w.overflow) {
		fprintf(stderr, "pbft_resume: state does not fit\n");
		exit(1);
	}
	return w.len;
}

/* The blob durable.c hands to checkpoint_stable: @p signers proof
 * signatures (replicas 0..signers-1, as STABLE carries them). */
static void pbft_resume_seed(const char *name, uint32_t n, uint32_t f,
			     uint32_t interval, uint64_t seq, unsigned clients,
			     unsigned signers)
{
	uint8_t state[1024];
	size_t state_len = pbft_state(state, sizeof(state), seq, clients);
	size_t prefix_len, app_len;
	const uint8_t *app;
	if (oskr__pbft_state_split(state, state_len, &prefix_len, &app,
				   &app_len)) {
		fprintf(stderr, "pbft_resume: state does not split\n");
		exit(1);
	}
	uint16_t replicas[PBFT_MAX_REPLICAS];
	struct pbft_checkpoint_vote votes[PBFT_MAX_REPLICAS];
	struct pbft_stable stable = { .seq = seq, .count = (uint8_t)signers,
				      .replicas = replicas, .votes = votes };
	memset(stable.digest, 0xc4, PBFT_DIGEST);
	for (unsigned i = 0; i < signers; i++) {
		replicas[i] = (uint16_t)(signers - 1 - i); /* any order */
		votes[i].seq = seq;
		memcpy(votes[i].digest, stable.digest, PBFT_DIGEST);
		votes[i].sig_len = 64;
		memset(votes[i].sig, 0x30 + i, 64);
	}
	uint8_t *blob;
	size_t blob_len;
	if (oskr__pbft_resume_encode(n, f, interval, &stable, state,
				     prefix_len, &blob, &blob_len)) {
		fprintf(stderr, "pbft_resume: cannot encode %s\n", name);
		exit(1);
	}
	/* header 14, seq and digest 40, proof count 1, first pair 67 */
	static const size_t cuts[] = { 10, 60, 100, (size_t)-1 };
	write_with_cuts("pbft_resume", name, blob, blob_len, cuts,
			sizeof(cuts) / sizeof(cuts[0]));
	free(blob);
}

static void seeds_pbft_resume(void)
{
	pbft_resume_seed("n4_quorum", 4, 1, 100, 200, 0, 3);
	pbft_resume_seed("n4_clients", 4, 1, 100, 100, 2, 4);
	pbft_resume_seed("n7_interval10", 7, 2, 10, 30, 1, 5);
	/* The checkpoint state itself (oskr__pbft_state_split). */
	uint8_t state[1024];
	size_t state_len = pbft_state(state, sizeof(state), 300, 2);
	write_seed("pbft_resume", "state", state, state_len);
}
#endif

#ifdef HAVE_HOTSTUFF_RESUME
/* The blob durable.c hands to checkpoint_stable after executing a block:
 * the block (its digest the real SHA-256, as the host's digest), a QC of
 * @p signers votes for it, a client table of @p clients (requests.c:
 * count, then id, number, has_result, result_len, result) and, unless
 * @p old_format (version 1), the block's activity record: replica n - 1
 * down for a while (inactive, its views failing), the others active. */
static void hs_resume_seed(const char *name, uint32_t n, uint32_t f,
			   unsigned signers, unsigned clients, bool old_format)
{
	struct oskr__hs_block *b = calloc(1, sizeof(*b) + 1024);
	if (!b)
		exit(1);
	b->raw_len = hs_block(b->raw, 1024, 2);
	b->height = 2; /* as hs_block writes it, in view 2 */
	for (uint32_t r = 0; r < n; r++) {
		b->since_active[r] = (uint16_t)r;
		b->since_failed[r] = OSKR__HS_NEVER;
	}
	b->since_active[n - 1] = 300;
	b->since_failed[n - 1] = 5;
	b->fail_streak[n - 1] = 3;
	unsigned len;
	if (!EVP_Digest(b->raw, b->raw_len, b->digest, &len, EVP_sha256(),
			NULL))
		exit(1);

	uint8_t qc[1024], sig[64];
	uint16_t replicas[OSKR__HS_MAX_REPLICAS];
	const uint8_t *sigs[OSKR__HS_MAX_REPLICAS];
	uint8_t lens[OSKR__HS_MAX_REPLICAS];
	memset(sig, 0x6b, sizeof(sig));
	for (unsigned i = 0; i < signers; i++) {
		replicas[i] = (uint16_t)i;
		sigs[i] = sig;
		lens[i] = sizeof(sig);
	}
	struct oskr__hs_writer w;
	oskr__hs_writer_init(&w, qc, sizeof(qc));
	oskr__hs_put_qc(&w, 2, b->digest, (uint16_t)signers, replicas, sigs,
			lens);
	size_t qc_len = w.len;

	uint8_t table[256];
	oskr__hs_writer_init(&w, table, sizeof(table));
	oskr__hs_put_u32(&w, clients);
	for (unsigned i = 0; i < clients; i++) {
		oskr__hs_put_u64(&w, 100 + i);
		oskr__hs_put_u64(&w, 3 + i);
		oskr__hs_put_u8(&w, i & 1);
		oskr__hs_put_u32(&w, (i & 1) ? 2 : 0);
		if (i & 1)
			oskr__hs_put_bytes(&w, "\x00v", 2);
	}
	if (w.overflow)
		exit(1);

	uint8_t *blob;
	size_t blob_len;
	if (oskr__hs_resume_encode(n, f, 128, 7, b, !old_format, qc, qc_len,
				   table, w.len, &blob, &blob_len)) {
		fprintf(stderr, "hotstuff_resume: cannot encode %s\n", name);
		exit(1);
	}
	/* header 10, counters and digest 56, inside the block, the QC */
	static const size_t cuts[] = { 8, 60, 120, (size_t)-1 };
	write_with_cuts("hotstuff_resume", name, blob, blob_len, cuts,
			sizeof(cuts) / sizeof(cuts[0]));
	free(blob);
	free(b);
}

static void seeds_hotstuff_resume(void)
{
	hs_resume_seed("n4_quorum", 4, 1, 3, 0, false);
	hs_resume_seed("n4_clients", 4, 1, 4, 3, false);
	hs_resume_seed("n7", 7, 2, 5, 1, false);
	/* version 1, before the activity record: still resumed from */
	hs_resume_seed("n4_v1", 4, 1, 3, 2, true);
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
#ifdef HAVE_PBFT_RESUME
	seeds_pbft_resume();
#endif
#ifdef HAVE_HOTSTUFF_RESUME
	seeds_hotstuff_resume();
#endif
	return 0;
}
