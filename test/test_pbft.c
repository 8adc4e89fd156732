/* SPDX-License-Identifier: MIT */
/*
 * PBFT: the codec (compiled in, byte by byte), then build/plugins/pbft.so
 * loaded through the plugin loader and run on the sim under faults. Every
 * sim test checks safety (correct replicas execute one sequence; clients
 * never accept two results for one request) and liveness (every request
 * completes once the fault heals).
 */
#include <check.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oskr/plugin.h>

#include "daemon/loader.h"
#include "sim/sim.h"
/* White-box: the durable-checkpoint tests corrupt the sim's stored copy
 * of a replica's checkpoint (its "disk"). */
#include "sim/sim_internal.h"

/* The codec and the replica state layout are internal to the plugin
 * (hidden in the .so): compile the codec in, read the state white-box. */
#include "plugins/pbft/codec.c"
#include "plugins/pbft/pbft.h"
#include "plugins/pbft/requests.c"
#include "plugins/pbft/durable_codec.c"

#define MS 1000000ULL
#define SEC (1000 * MS)

static struct oskr_loaded_plugin loaded;

static void load_plugin(void)
{
	const char *build = getenv("OSKR_BUILD_DIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/plugins/pbft.so",
		 build && *build ? build : "build");
	char *err = NULL;
	int ret = oskr__plugin_load(path, &loaded, &err);
	ck_assert_msg(ret == 0, "loading %s: %s", path, err ? err : "?");
	free(err);
	ck_assert_str_eq(loaded.descriptor->name, "pbft");
}

static void unload_plugin(void)
{
	oskr__plugin_unload(&loaded);
}

struct sim_params {
	uint32_t n, f, clients;
	uint64_t seed;
	const char *options;
	const char *app;
	double drop, dup;
	uint64_t min_delay, max_delay;
	bool real;
};

/* OSKR_TEST_SEED shifts every seed: the same scenarios, other schedules. */
static uint64_t seed_offset(void)
{
	const char *env = getenv("OSKR_TEST_SEED");
	return env ? strtoull(env, NULL, 0) * 1000 : 0;
}

static struct oskr_sim *make_sim(const struct sim_params *p)
{
	struct oskr_sim_config c = {
		.plugin = loaded.descriptor,
		.replica_count = p->n ? p->n : 4,
		.fault_count = p->f ? p->f : 1,
		.client_count = p->clients ? p->clients : 4,
		.seed = p->seed + seed_offset(),
		.protocol_options = p->options,
		.app = p->app,
		.drop_rate = p->drop,
		.duplicate_rate = p->dup,
		.min_delay_ns = p->min_delay,
		.max_delay_ns = p->max_delay,
		.real_signatures = p->real,
	};
	struct oskr_sim *sim = NULL;
	ck_assert_int_eq(oskr_sim_create(&sim, &c), 0);
	return sim;
}

static void assert_safe(struct oskr_sim *sim)
{
	char why[512];
	ck_assert_msg(oskr_sim_check_safety(sim, why, sizeof(why)), "%s", why);
}

static struct pbft_replica *replica(struct oskr_sim *sim, uint32_t id)
{
	return oskr_sim_replica_state(sim, id);
}

static const char *const dump_counters[] = {
	"commits", "view_changes", "checkpoints", "state_transfers",
	"entries_fetched", "drop_bad_signature", "drop_wrong_view",
	"drop_out_of_window", "drop_not_primary", "drop_truncated",
	"drop_unknown_type", "drop_from_self", "drop_bad_digest",
	"drop_bad_certificate", "drop_conflicting_pre_prepare",
	"drop_pending_full", "drop_stale_request", "drop_bad_new_view",
	"drop_trailing_bytes", "drop_bad_batch", "drop_alloc_failed",
	"drop_queue_full", "drop_sign_failed", NULL,
};

/* On a liveness failure, show where each replica stands. */
static void dump_state(struct oskr_sim *sim)
{
	for (uint32_t r = 0; r < 4; r++) {
		struct pbft_replica *st = oskr_sim_replica_state(sim, r);
		fprintf(stderr,
			"r%u: view %" PRIu64 "%s exec %" PRIu64 " h %" PRIu64
			" next %" PRIu64 " pending %u known %" PRIu64 "\n",
			r, st->view, st->view_changing ? " (changing)" : "",
			st->last_executed, st->low_mark, st->next_seq,
			pbft_pending_count(&st->pending), st->known.seq);
		for (int i = 0; dump_counters[i]; i++) {
			uint64_t v = oskr_sim_counter(sim, (int32_t)r,
						      dump_counters[i]);
			if (v)
				fprintf(stderr, "  %s=%" PRIu64 "\n",
					dump_counters[i], v);
		}
	}
}

/* Run @p total requests to completion (liveness) within a virtual
 * deadline. */
static void run_all(struct oskr_sim *sim, uint64_t total, uint64_t within)
{
	uint64_t done = oskr_sim_run_workload(
		sim, total, oskr_sim_now(sim) + within, NULL, NULL);
	if (done != total)
		dump_state(sim);
	ck_assert_msg(done == total, "only %" PRIu64 " of %" PRIu64
		      " requests completed", done, total);
}

static uint64_t counter_sum(struct oskr_sim *sim, uint32_t n,
			    const char *name)
{
	uint64_t total = 0;
	for (uint32_t r = 0; r < n; r++)
		total += oskr_sim_counter(sim, (int32_t)r, name);
	return total;
}

/* Every replica in @p mask executed the same number of ops. */
static void assert_same_executed(struct oskr_sim *sim, uint64_t mask,
				 uint32_t n)
{
	uint64_t first = UINT64_MAX;
	for (uint32_t r = 0; r < n; r++) {
		if (!(mask & (1ULL << r)))
			continue;
		uint64_t executed = oskr_sim_executed(sim, r);
		if (first == UINT64_MAX)
			first = executed;
		ck_assert_msg(executed == first,
			      "replica %u executed %" PRIu64 ", not %" PRIu64,
			      r, executed, first);
	}
}

/* ---- codec ---- */

static size_t build_order(uint8_t *wire, uint8_t type, uint64_t view,
			  uint64_t seq, const uint8_t *batch, uint32_t batch_len)
{
	struct pbft_writer w = { .data = wire, .capacity = 4096 };
	uint8_t digest[PBFT_DIGEST];
	SHA256(batch ? batch : (const uint8_t *)"", batch_len, digest);
	uint8_t body[PBFT_ORDER_BODY];
	oskr__pbft_order_body(body, type, view, seq, digest, 2);
	pbft_put(&w, body, sizeof(body));
	pbft_put_u8(&w, 32);
	for (int i = 0; i < 32; i++)
		pbft_put_u8(&w, (uint8_t)i);
	if (type == PBFT_PRE_PREPARE) {
		pbft_put_u32(&w, batch_len);
		pbft_put(&w, batch, batch_len);
	}
	return w.len;
}

static size_t build_batch(uint8_t *out, uint32_t count)
{
	struct pbft_writer w = { .data = out, .capacity = 4096 };
	pbft_put_u32(&w, count);
	for (uint32_t i = 0; i < count; i++) {
		uint8_t op[5] = { 1, 2, 3, 4, (uint8_t)i };
		struct pbft_request req = { .client_id = 100 + i,
					    .request_number = 7,
					    .op = op,
					    .op_len = sizeof(op) };
		req.addr.bytes[0] = (uint8_t)i;
		oskr__pbft_put_request(&w, &req);
	}
	return w.len;
}

START_TEST(test_codec_order_round_trip)
{
	uint8_t batch[1024], wire[4096];
	size_t batch_len = build_batch(batch, 3);
	size_t len = build_order(wire, PBFT_PRE_PREPARE, 5, 9, batch,
				 (uint32_t)batch_len);
	struct pbft_msg m;
	const char *why = NULL;
	ck_assert_int_eq(oskr__pbft_decode(wire, len, 4, &m, &why), 0);
	ck_assert_int_eq(m.type, PBFT_PRE_PREPARE);
	ck_assert_uint_eq(m.order.view, 5);
	ck_assert_uint_eq(m.order.seq, 9);
	ck_assert_uint_eq(m.replica, 2);
	ck_assert_uint_eq(m.signed_len, PBFT_ORDER_BODY);
	ck_assert_uint_eq(m.sig_len, 32);
	ck_assert_uint_eq(m.order.batch_len, batch_len);
	ck_assert_int_eq(memcmp(m.order.batch, batch, batch_len), 0);
	/* Every truncation and one extra byte are refused. */
	for (size_t cut = 0; cut < len; cut++)
		ck_assert_int_ne(oskr__pbft_decode(wire, cut, 4, &m, &why), 0);
	ck_assert_int_ne(oskr__pbft_decode(wire, len + 1, 4, &m, &why), 0);
	/* A replica id outside the cluster is refused. */
	ck_assert_int_ne(oskr__pbft_decode(wire, len, 2, &m, &why), 0);
	ck_assert_str_eq(why, "bad_replica");

	len = build_order(wire, PBFT_COMMIT, 5, 9, NULL, 0);
	ck_assert_uint_eq(len, PBFT_ORDER_BODY + 1 + 32);
	ck_assert_int_eq(oskr__pbft_decode(wire, len, 4, &m, &why), 0);
	ck_assert_int_eq(m.type, PBFT_COMMIT);
	ck_assert_ptr_null(m.order.batch);
	/* signature length 0 or above the maximum is malformed */
	wire[PBFT_ORDER_BODY] = 0;
	ck_assert_int_ne(oskr__pbft_decode(wire, len, 4, &m, &why), 0);
	wire[PBFT_ORDER_BODY] = OSKR_SIGNATURE_MAX + 1;
	ck_assert_int_ne(oskr__pbft_decode(wire, len, 4, &m, &why), 0);
}
END_TEST

START_TEST(test_codec_batch)
{
	uint8_t batch[1024];
	size_t len = build_batch(batch, 4);
	int seen = 0;
	ck_assert_int_eq(oskr__pbft_batch_each(batch, len, NULL, NULL), 0);
	for (size_t cut = 0; cut < len; cut++)
		ck_assert_int_ne(oskr__pbft_batch_each(batch, cut, NULL, NULL),
				 0);
	/* A count larger than the bytes can hold is refused before any
	 * request is looked at. */
	batch[0] = 0xff;
	batch[1] = 0xff;
	ck_assert_int_ne(oskr__pbft_batch_each(batch, len, NULL, NULL), 0);
	(void)seen;
	uint8_t empty[4] = { 0 };
	ck_assert_int_eq(oskr__pbft_batch_each(empty, 4, NULL, NULL), 0);
}
END_TEST

START_TEST(test_codec_certificates)
{
	/* A VIEW-CHANGE with a 3-signature proof and one prepared
	 * certificate; duplicated signers and unordered certificates are
	 * refused. */
	uint8_t wire[4096];
	struct pbft_writer w = { .data = wire, .capacity = sizeof(wire) };
	uint8_t sig[32] = { 9 };
	pbft_put_u8(&w, PBFT_VIEW_CHANGE);
	pbft_put_u64(&w, 3);
	pbft_put_u64(&w, 100);
	pbft_put(&w, sig, 32); /* digest */
	pbft_put_u16(&w, 1);
	pbft_put_u8(&w, 3);
	for (uint16_t r = 0; r < 3; r++)
		pbft_put_sig_pair(&w, r, sig, sizeof(sig));
	pbft_put_u16(&w, 2);
	for (uint64_t seq = 101; seq <= 102; seq++) {
		pbft_put_u64(&w, 2);
		pbft_put_u64(&w, seq);
		pbft_put(&w, sig, 32);
		pbft_put_u8(&w, 32);
		pbft_put(&w, sig, 32);
		pbft_put_u8(&w, 2);
		pbft_put_sig_pair(&w, 0, sig, 32);
		pbft_put_sig_pair(&w, 1, sig, 32);
	}
	size_t body = w.len;
	pbft_put_u8(&w, 32);
	pbft_put(&w, sig, 32);
	struct pbft_msg m;
	const char *why = NULL;
	ck_assert_int_eq(oskr__pbft_decode(wire, w.len, 4, &m, &why), 0);
	ck_assert_uint_eq(m.view_change.new_view, 3);
	ck_assert_uint_eq(m.view_change.proof.count, 3);
	ck_assert_uint_eq(m.view_change.prepared_count, 2);
	ck_assert_uint_eq(m.signed_len, body);
	struct pbft_reader rd = pbft_list_reader(m.view_change.prepared,
						 m.view_change.prepared_len);
	struct pbft_prepared_cert cert;
	int certs = 0;
	while (oskr__pbft_next_prepared(&rd, &cert)) {
		ck_assert_uint_eq(cert.seq, 101 + certs);
		ck_assert_uint_eq(cert.prepares.count, 2);
		certs++;
	}
	ck_assert_int_eq(certs, 2);
	for (size_t cut = 0; cut < w.len; cut++)
		ck_assert_int_ne(oskr__pbft_decode(wire, cut, 4, &m, &why), 0);

	/* the proof's second signer repeated */
	uint8_t bad[4096];
	memcpy(bad, wire, w.len);
	size_t proof_at = 1 + 8 + 8 + 32 + 2 + 1;
	bad[proof_at + (2 + 1 + 32)] = 0; /* replica 1 -> 0 */
	ck_assert_int_ne(oskr__pbft_decode(bad, w.len, 4, &m, &why), 0);
	ck_assert_str_eq(why, "duplicate_signer");
	/* certificates out of order */
	memcpy(bad, wire, w.len);
	size_t certs_at = proof_at + 3 * (2 + 1 + 32) + 2;
	bad[certs_at + 8] = 200; /* first cert's seq 101 -> 200 */
	ck_assert_int_ne(oskr__pbft_decode(bad, w.len, 4, &m, &why), 0);
	ck_assert_str_eq(why, "unordered_prepared_set");
}
END_TEST

START_TEST(test_codec_garbage)
{
	/* Random bytes with plausible type bytes: the decoder refuses them
	 * or returns fields inside the input; never reads past it. */
	uint64_t x = 987654321;
	uint8_t *wire = malloc(512);
	for (int round = 0; round < 50000; round++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		size_t len = (x >> 33) % 512;
		for (size_t i = 0; i < len; i++) {
			x = x * 6364136223846793005ULL +
			    1442695040888963407ULL;
			wire[i] = (uint8_t)(x >> 56);
		}
		if (len)
			wire[0] = (uint8_t)(round % (PBFT_MSG_TYPE_END + 1));
		/* small counts so list decoders get exercised */
		if (len > 60 && (round & 1))
			memset(wire + 40, 0, 8);
		struct pbft_msg m;
		const char *why = NULL;
		if (oskr__pbft_decode(wire, len, 4, &m, &why) == 0) {
			ck_assert_uint_eq(m.raw_len, len);
			if (m.type != PBFT_REQUEST)
				ck_assert_uint_le(m.signed_len + 1 + m.sig_len,
						  len);
		} else {
			ck_assert_ptr_nonnull(why);
		}
	}
	free(wire);
}
END_TEST

/* ---- client table, pending set, map ---- */

START_TEST(test_map_delete_keeps_probe_chains)
{
	/* Insert, delete half in a scattered order, check every survivor is
	 * still found and every deleted key is gone. */
	struct pbft_map map;
	static int values[2000];
	ck_assert_int_eq(oskr__pbft_map_init(&map, 2000), 0);
	for (uint64_t k = 0; k < 2000; k++)
		oskr__pbft_map_put(&map, k * 7919, &values[k]);
	for (uint64_t k = 0; k < 2000; k += 2)
		oskr__pbft_map_del(&map, ((k * 37) % 2000) * 7919);
	ck_assert_uint_eq(map.count, 1000);
	for (uint64_t k = 0; k < 2000; k++) {
		bool deleted = false;
		for (uint64_t j = 0; j < 2000 && !deleted; j += 2)
			deleted = (j * 37) % 2000 == k;
		void *v = oskr__pbft_map_get(&map, k * 7919);
		if (deleted)
			ck_assert_ptr_null(v);
		else
			ck_assert_ptr_eq(v, &values[k]);
	}
	oskr__pbft_map_fini(&map);
}
END_TEST

START_TEST(test_client_table_evicts_and_round_trips)
{
	struct pbft_client_table t, copy;
	ck_assert_int_eq(oskr__pbft_clients_init(&t, 3), 0);
	ck_assert_int_eq(oskr__pbft_clients_init(&copy, 3), 0);
	for (uint64_t c = 1; c <= 4; c++) {
		uint8_t result[2] = { (uint8_t)c, 0xee };
		struct pbft_request req = { .client_id = c * 100,
					    .request_number = c };
		ck_assert_int_eq(oskr__pbft_client_record(&t, &req, c, 0,
							  result, 2),
				 0);
	}
	/* capacity 3: the least recently executed client (100) is gone */
	ck_assert_ptr_null(oskr__pbft_client_find(&t, 100));
	ck_assert_ptr_nonnull(oskr__pbft_client_find(&t, 400));
	uint8_t *blob, *blob2;
	size_t len, len2;
	ck_assert_int_eq(oskr__pbft_clients_serialize(&t, &blob, &len), 0);
	struct pbft_reader rd = { .data = blob, .len = len };
	ck_assert_int_eq(oskr__pbft_clients_restore(&copy, &rd), 0);
	ck_assert_uint_eq(rd.pos, len);
	ck_assert_int_eq(oskr__pbft_clients_serialize(&copy, &blob2, &len2),
			 0);
	/* deterministic: equal tables give equal bytes */
	ck_assert_uint_eq(len, len2);
	ck_assert_int_eq(memcmp(blob, blob2, len), 0);
	const struct pbft_client_record *rec =
		oskr__pbft_client_find(&copy, 300);
	ck_assert_uint_eq(rec->request_number, 3);
	ck_assert_uint_eq(rec->result_len, 2);
	ck_assert_int_eq(rec->result[0], 3);
	/* truncated blobs are refused */
	for (size_t cut = 0; cut < len; cut++) {
		struct pbft_reader bad = { .data = blob, .len = cut };
		ck_assert_int_ne(oskr__pbft_clients_restore(&copy, &bad), 0);
	}
	free(blob);
	free(blob2);
	oskr__pbft_clients_fini(&t);
	oskr__pbft_clients_fini(&copy);
}
END_TEST

/* A checkpoint state as checkpoint.c lays it out: ops, client table,
 * app_len, app. */
static size_t build_checkpoint_state(uint8_t *out, size_t cap,
				     size_t *prefix_len)
{
	struct pbft_client_table t;
	ck_assert_int_eq(oskr__pbft_clients_init(&t, 8), 0);
	for (uint64_t id = 1; id <= 3; id++) {
		uint8_t result[3] = { (uint8_t)id, 2, 3 };
		struct pbft_request req = { .client_id = id * 1000,
					    .request_number = id + 5 };
		ck_assert_int_eq(oskr__pbft_client_record(&t, &req, id, 0,
							  result, 3),
				 0);
	}
	uint8_t *table;
	size_t table_len;
	ck_assert_int_eq(oskr__pbft_clients_serialize(&t, &table, &table_len),
			 0);
	struct pbft_writer w = { .data = out, .capacity = cap };
	pbft_put_u64(&w, 77);
	pbft_put(&w, table, table_len);
	*prefix_len = w.len;
	pbft_put_u64(&w, 5);
	pbft_put(&w, "hello", 5);
	ck_assert(!w.overflow);
	free(table);
	oskr__pbft_clients_fini(&t);
	return w.len;
}

START_TEST(test_resume_blob_decoder)
{
	uint8_t state[1024];
	size_t prefix_len;
	size_t state_len = build_checkpoint_state(state, sizeof(state),
						  &prefix_len);
	size_t split_prefix, app_len;
	const uint8_t *app;
	ck_assert_int_eq(oskr__pbft_state_split(state, state_len, &split_prefix,
						&app, &app_len),
			 0);
	ck_assert_uint_eq(split_prefix, prefix_len);
	ck_assert_uint_eq(app_len, 5);
	ck_assert(!memcmp(app, "hello", 5));
	ck_assert_int_ne(oskr__pbft_state_split(state, state_len - 1,
						&split_prefix, &app, &app_len),
			 0);

	uint16_t replicas[3] = { 0, 2, 3 };
	struct pbft_checkpoint_vote votes[3];
	memset(votes, 0, sizeof(votes));
	for (int i = 0; i < 3; i++) {
		votes[i].sig_len = (uint8_t)(40 + i);
		memset(votes[i].sig, 0x60 + i, votes[i].sig_len);
	}
	struct pbft_stable stable = { .seq = 120, .count = 3,
				      .replicas = replicas, .votes = votes };
	memset(stable.digest, 0x5a, PBFT_DIGEST);
	uint8_t *blob;
	size_t blob_len;
	ck_assert_int_eq(oskr__pbft_resume_encode(4, 1, 10, &stable, state,
						  prefix_len, &blob, &blob_len),
			 0);

	struct pbft_resume_point point;
	const char *why = NULL;
	ck_assert_int_eq(oskr__pbft_resume_decode(blob, blob_len, 4, 1, 10,
						  &point, &why),
			 0);
	ck_assert_uint_eq(point.seq, 120);
	ck_assert(!memcmp(point.digest, stable.digest, PBFT_DIGEST));
	ck_assert_uint_eq(point.proof.count, 3);
	ck_assert_uint_eq(point.ops_executed, 77);
	ck_assert_uint_eq(point.prefix_len, prefix_len);
	ck_assert(!memcmp(point.prefix, state, prefix_len));
	struct pbft_reader proof = pbft_list_reader(point.proof.data,
						    point.proof.len);
	struct pbft_sig_pair pair;
	for (int i = 0; i < 3; i++) {
		ck_assert(oskr__pbft_next_sig(&proof, &pair));
		ck_assert_uint_eq(pair.replica, replicas[i]);
		ck_assert_uint_eq(pair.sig_len, votes[i].sig_len);
	}

	/* Another cluster shape or interval: refused, with a reason. */
	ck_assert_int_ne(oskr__pbft_resume_decode(blob, blob_len, 7, 2, 10,
						  &point, &why),
			 0);
	ck_assert_ptr_nonnull(strstr(why, "shape"));
	ck_assert_int_ne(oskr__pbft_resume_decode(blob, blob_len, 4, 1, 20,
						  &point, &why),
			 0);
	ck_assert_ptr_nonnull(strstr(why, "checkpoint_interval"));
	/* Every truncation is refused. */
	for (size_t len = 0; len < blob_len; len++) {
		why = NULL;
		ck_assert_msg(oskr__pbft_resume_decode(blob, len, 4, 1, 10,
						       &point, &why) != 0,
			      "accepted a blob cut at %zu of %zu", len,
			      blob_len);
		ck_assert_ptr_nonnull(why);
	}
	/* A flipped byte anywhere never crashes; in the structure it is
	 * refused (a flip in a signature, the digest or a result passes
	 * here and is caught by the proof or digest check at resume). */
	uint8_t *copy = malloc(blob_len);
	for (size_t i = 0; i < blob_len; i++) {
		memcpy(copy, blob, blob_len);
		copy[i] ^= 0xff;
		oskr__pbft_resume_decode(copy, blob_len, 4, 1, 10, &point,
					 &why);
	}
	memcpy(copy, blob, blob_len);
	copy[0] ^= 1; /* magic */
	ck_assert_int_ne(oskr__pbft_resume_decode(copy, blob_len, 4, 1, 10,
						  &point, &why),
			 0);
	memcpy(copy, blob, blob_len);
	copy[4] = 9; /* version */
	ck_assert_int_ne(oskr__pbft_resume_decode(copy, blob_len, 4, 1, 10,
						  &point, &why),
			 0);
	memcpy(copy, blob, blob_len);
	copy[14] ^= 1; /* seq 121: not a checkpoint */
	ck_assert_int_ne(oskr__pbft_resume_decode(copy, blob_len, 4, 1, 10,
						  &point, &why),
			 0);
	free(copy);
	/* Too few signatures. */
	stable.count = 2;
	uint8_t *short_blob;
	size_t short_len;
	ck_assert_int_eq(oskr__pbft_resume_encode(4, 1, 10, &stable, state,
						  prefix_len, &short_blob,
						  &short_len),
			 0);
	ck_assert_int_ne(oskr__pbft_resume_decode(short_blob, short_len, 4, 1,
						  10, &point, &why),
			 0);
	free(short_blob);
	free(blob);
}
END_TEST

START_TEST(test_pending_set)
{
	struct pbft_pending_set p;
	ck_assert_int_eq(oskr__pbft_pending_init(&p, 2), 0);
	uint8_t op[3] = { 1, 2, 3 };
	struct pbft_request req = { .client_id = 1, .request_number = 5,
				    .op = op, .op_len = 3 };
	ck_assert_int_eq(oskr__pbft_pending_add(&p, &req, 0), 0);
	ck_assert_int_eq(oskr__pbft_pending_add(&p, &req, 0), -EALREADY);
	req.request_number = 6; /* newer replaces older */
	ck_assert_int_eq(oskr__pbft_pending_add(&p, &req, 0), 0);
	ck_assert_uint_eq(pbft_pending_count(&p), 1);
	req.client_id = 2;
	ck_assert_int_eq(oskr__pbft_pending_add(&p, &req, 0), 0);
	req.client_id = 3;
	ck_assert_int_eq(oskr__pbft_pending_add(&p, &req, 0), -ENOSPC);
	oskr__pbft_pending_mark_proposed(&p, p.queue.head);
	ck_assert_uint_eq(p.queue.count, 1);
	oskr__pbft_pending_unpropose(&p);
	ck_assert_uint_eq(p.queue.count, 2);
	ck_assert_uint_eq(p.queue.head->req.client_id, 1);
	oskr__pbft_pending_done(&p, 1, 6);
	oskr__pbft_pending_done(&p, 2, 5); /* older number: kept */
	ck_assert_uint_eq(pbft_pending_count(&p), 1);
	oskr__pbft_pending_fini(&p);
}
END_TEST

/* ---- normal case ---- */

static void run_normal(const char *options, uint32_t clients, uint64_t total,
		       uint64_t seed)
{
	struct sim_params p = { .clients = clients, .seed = seed,
				.options = options };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, total, 60 * SEC);
	oskr_sim_run_for(sim, 50 * MS);
	assert_safe(sim);
	assert_same_executed(sim, 0xf, 4);
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), total);
	ck_assert_uint_eq(counter_sum(sim, 4, "view_changes"), 0);
	for (uint32_t r = 0; r < 4; r++) {
		ck_assert_uint_eq(replica(sim, r)->view, 0);
		ck_assert_uint_le(replica(sim, r)->log.used,
				  replica(sim, r)->log.window);
	}
	oskr_sim_destroy(sim);
}

START_TEST(test_no_faults_batch_1)
{
	run_normal("batch_size: 1\nadaptive: false\n", 4, 600, 1);
}
END_TEST

START_TEST(test_no_faults_batch_100_fixed)
{
	run_normal("batch_size: 100\nadaptive: false\nbatch_timeout_ms: 1\n",
		   32, 3000, 2);
}
END_TEST

START_TEST(test_no_faults_adaptive)
{
	run_normal("batch_size: 100\nadaptive: true\n", 32, 3000, 3);
}
END_TEST

START_TEST(test_batches_fill)
{
	/* Fixed batching of 10 with 40 closed-loop clients: the primary
	 * orders far fewer batches than requests. */
	struct sim_params p = { .clients = 40, .seed = 4,
				.options = "batch_size: 10\nadaptive: false\n"
					   "batch_timeout_ms: 5\n" };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 2000, 60 * SEC);
	assert_safe(sim);
	uint64_t batches = oskr_sim_counter(sim, 1, "commits");
	ck_assert_uint_le(batches, 2000 / 5);
	ck_assert_uint_ge(batches, 2000 / 10);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_real_signatures)
{
	struct sim_params p = { .clients = 2, .seed = 5, .real = true,
				.options = "batch_size: 4\n" };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 30, 60 * SEC);
	oskr_sim_run_for(sim, 50 * MS);
	assert_safe(sim);
	assert_same_executed(sim, 0xf, 4);
	ck_assert_uint_eq(counter_sum(sim, 4, "drop_bad_signature"), 0);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_duplicates_answered_from_table)
{
	/* Clients time out quickly and retransmit to everyone: replicas
	 * answer duplicates from the client table; nothing executes twice. */
	struct sim_params p = { .clients = 4, .seed = 6,
				.min_delay = 1 * MS, .max_delay = 3 * MS,
				.options = "client_retry_ms: 2\n" };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 200, 60 * SEC);
	oskr_sim_run_for(sim, 100 * MS);
	assert_safe(sim);
	uint64_t retransmits = 0;
	for (uint32_t k = 0; k < 4; k++)
		retransmits += oskr_sim_counter(sim, OSKR_SIM_CLIENT(k),
						"client_retransmits");
	ck_assert_uint_gt(retransmits, 0);
	for (uint32_t r = 0; r < 4; r++)
		ck_assert_uint_eq(oskr_sim_executed(sim, r), 200);
	oskr_sim_destroy(sim);
}
END_TEST

/* ---- network faults ---- */

START_TEST(test_drop_duplicate_reorder)
{
	struct sim_params p = { .clients = 8, .seed = 7, .drop = 0.10,
				.dup = 0.10, .min_delay = 10000,
				.max_delay = 2 * MS,
				.options = "batch_size: 8\n"
					   "checkpoint_interval: 20\n"
					   "retransmit_ms: 20\n"
					   "client_retry_ms: 50\n" };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 600, 120 * SEC);
	/* heal, then everyone converges */
	oskr_sim_set_drop_rate(sim, 0);
	oskr_sim_set_duplicate_rate(sim, 0);
	run_all(sim, 40, 60 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	assert_safe(sim);
	assert_same_executed(sim, 0xf, 4);
	struct oskr_sim_net_stats stats;
	oskr_sim_net_stats(sim, &stats);
	ck_assert_uint_gt(stats.dropped, 0);
	ck_assert_uint_gt(stats.duplicated, 0);
	oskr_sim_destroy(sim);
}
END_TEST

/* ---- view changes ---- */

START_TEST(test_primary_crash)
{
	struct sim_params p = { .clients = 8, .seed = 8,
				.options = "batch_size: 10\n"
					   "checkpoint_interval: 20\n"
					   "view_change_timeout_ms: 200\n"
					   "client_retry_ms: 100\n" };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 300, 60 * SEC);
	oskr_sim_crash(sim, 0);
	run_all(sim, 300, 60 * SEC);
	oskr_sim_run_for(sim, 500 * MS);
	assert_safe(sim);
	assert_same_executed(sim, 0xe, 4);
	for (uint32_t r = 1; r < 4; r++) {
		ck_assert_uint_ge(replica(sim, r)->view, 1);
		ck_assert(!replica(sim, r)->view_changing);
		ck_assert_uint_ge(oskr_sim_counter(sim, r, "view_changes"), 1);
	}
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_two_successive_view_changes)
{
	/* n = 7, f = 2: the primary crashes, then the next one too. */
	struct sim_params p = { .n = 7, .f = 2, .clients = 8, .seed = 9,
				.options = "batch_size: 10\n"
					   "checkpoint_interval: 20\n"
					   "view_change_timeout_ms: 200\n"
					   "client_retry_ms: 100\n" };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 200, 60 * SEC);
	oskr_sim_crash(sim, 0);
	run_all(sim, 200, 60 * SEC);
	ck_assert_uint_eq(replica(sim, 2)->view, 1);
	oskr_sim_crash(sim, 1);
	run_all(sim, 200, 60 * SEC);
	oskr_sim_run_for(sim, 500 * MS);
	assert_safe(sim);
	assert_same_executed(sim, 0x7c, 7);
	for (uint32_t r = 2; r < 7; r++) {
		ck_assert_uint_eq(replica(sim, r)->view, 2);
		ck_assert_uint_ge(oskr_sim_counter(sim, r, "view_changes"), 2);
	}
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_requests_survive_view_change)
{
	/* Crash the primary while every client has a request in flight:
	 * all of them complete in the new view, each executed once. */
	struct sim_params p = { .clients = 16, .seed = 10,
				.options = "batch_size: 16\n"
					   "view_change_timeout_ms: 200\n"
					   "client_retry_ms: 100\n" };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 100, 60 * SEC);
	for (uint32_t k = 0; k < 16; k++) {
		uint8_t op[8] = { (uint8_t)k };
		ck_assert_int_eq(oskr_sim_invoke(sim, k, op, sizeof(op), NULL),
				 0);
	}
	oskr_sim_run_for(sim, 20000); /* requests reach the primary */
	oskr_sim_crash(sim, 0);
	uint64_t before = oskr_sim_completed(sim);
	for (int i = 0; i < 100 && oskr_sim_completed(sim) < before + 16;
	     i++) {
		bool busy = false;
		oskr_sim_run_for(sim, 100 * MS);
		for (uint32_t k = 0; k < 16; k++)
			busy |= oskr_sim_client_busy(sim, k);
		if (!busy)
			break;
	}
	for (uint32_t k = 0; k < 16; k++)
		ck_assert(!oskr_sim_client_busy(sim, k));
	oskr_sim_run_for(sim, 200 * MS);
	assert_safe(sim);
	assert_same_executed(sim, 0xe, 4);
	ck_assert_uint_eq(oskr_sim_executed(sim, 1), 116);
	oskr_sim_destroy(sim);
}
END_TEST

/* A Byzantine primary (replica 0) sends backups 2 and 3 a different
 * batch (empty) than backup 1 for every sequence number in view 0,
 * re-signed with its own key. */
struct equivocation {
	struct oskr_sim *sim;
	uint64_t rewritten;
};

static bool equivocate(void *arg, int32_t src, int32_t dst, uint8_t *data,
		       uint32_t *len, uint32_t capacity)
{
	struct equivocation *eq = arg;
	struct pbft_msg m;
	const char *why;
	if (src != 0 || (dst != 2 && dst != 3) ||
	    oskr__pbft_decode(data, *len, 4, &m, &why) ||
	    m.type != PBFT_PRE_PREPARE || m.order.view != 0)
		return true;
	uint8_t empty[4] = { 0 }, digest[PBFT_DIGEST];
	SHA256(empty, sizeof(empty), digest);
	uint8_t body[PBFT_ORDER_BODY], sig[OSKR_SIGNATURE_MAX];
	size_t sig_len = 0;
	oskr__pbft_order_body(body, PBFT_PRE_PREPARE, 0, m.order.seq, digest,
			      0);
	ck_assert_int_eq(oskr_sim_sign_as(eq->sim, 0, body, sizeof(body), sig,
					  &sig_len),
			 0);
	struct pbft_writer w = { .data = data, .capacity = capacity };
	pbft_put(&w, body, sizeof(body));
	pbft_put_u8(&w, (uint8_t)sig_len);
	pbft_put(&w, sig, sig_len);
	pbft_put_u32(&w, 4);
	pbft_put(&w, empty, 4);
	*len = (uint32_t)w.len;
	eq->rewritten++;
	return true;
}

START_TEST(test_byzantine_primary_equivocates)
{
	struct sim_params p = { .clients = 8, .seed = 11,
				.options = "batch_size: 10\n"
					   "view_change_timeout_ms: 200\n"
					   "client_retry_ms: 100\n" };
	struct oskr_sim *sim = make_sim(&p);
	struct equivocation eq = { .sim = sim };
	oskr_sim_set_byzantine(sim, 0, true);
	oskr_sim_set_filter(sim, equivocate, &eq);
	run_all(sim, 300, 120 * SEC);
	oskr_sim_run_for(sim, 500 * MS);
	ck_assert_uint_gt(eq.rewritten, 0);
	assert_safe(sim);
	assert_same_executed(sim, 0xe, 4);
	for (uint32_t r = 1; r < 4; r++) {
		ck_assert_uint_ge(replica(sim, r)->view, 1);
		ck_assert_uint_ge(oskr_sim_counter(sim, r, "view_changes"), 1);
	}
	oskr_sim_destroy(sim);
}
END_TEST

/* ---- bad messages ---- */

struct recorder {
	uint8_t commit[512];
	uint32_t commit_len;
};

static bool record_first_commit(void *arg, int32_t src, int32_t dst,
				uint8_t *data, uint32_t *len, uint32_t capacity)
{
	struct recorder *rec = arg;
	if (!rec->commit_len && src == 1 && dst == 2 && *len > 0 &&
	    data[0] == PBFT_COMMIT && *len <= sizeof(rec->commit)) {
		memcpy(rec->commit, data, *len);
		rec->commit_len = *len;
	}
	return true;
}

START_TEST(test_bad_messages_ignored)
{
	struct sim_params p = { .clients = 4, .seed = 12,
				.options = "batch_size: 4\n"
					   "checkpoint_interval: 10\n" };
	struct oskr_sim *sim = make_sim(&p);
	struct recorder rec = { .commit_len = 0 };
	oskr_sim_set_filter(sim, record_first_commit, &rec);
	run_all(sim, 200, 60 * SEC);
	oskr_sim_set_filter(sim, NULL, NULL);
	ck_assert_uint_gt(rec.commit_len, 0);

	/* 1. garbage from replica 3 */
	uint64_t x = 77;
	for (int i = 0; i < 200; i++) {
		uint8_t junk[100];
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		size_t len = 1 + (x >> 40) % sizeof(junk);
		for (size_t k = 0; k < len; k++) {
			x = x * 6364136223846793005ULL +
			    1442695040888963407ULL;
			junk[k] = (uint8_t)(x >> 56);
		}
		junk[0] = (uint8_t)(1 + i % (PBFT_MSG_TYPE_END - 1));
		ck_assert_int_eq(oskr_sim_inject(sim, 3, i % 3, junk, len), 0);
	}
	/* 2. a well-formed COMMIT claiming to be from replica 1, with a
	 *    broken signature */
	uint8_t forged[512];
	memcpy(forged, rec.commit, rec.commit_len);
	forged[rec.commit_len - 1] ^= 0x5a;
	for (int32_t r = 0; r < 4; r += r == 0 ? 2 : 1)
		ck_assert_int_eq(oskr_sim_inject(sim, 3, r, forged,
						 rec.commit_len),
				 0);
	/* 3. the genuine old COMMIT replayed: its sequence number is below
	 *    the low water mark now */
	ck_assert_int_eq(oskr_sim_inject(sim, 3, 2, rec.commit,
					 rec.commit_len),
			 0);
	oskr_sim_run_for(sim, 10 * MS);
	uint64_t bad_sig = counter_sum(sim, 4, "drop_bad_signature");
	ck_assert_uint_ge(bad_sig, 3);
	ck_assert_uint_ge(oskr_sim_counter(sim, 2, "drop_out_of_window"), 1);
	uint64_t malformed = counter_sum(sim, 3, "drop_truncated") +
			     counter_sum(sim, 3, "drop_bad_replica") +
			     counter_sum(sim, 3, "drop_trailing_bytes") +
			     counter_sum(sim, 3, "drop_bad_signature_length");
	ck_assert_uint_gt(malformed, 50);
	/* still live and safe */
	run_all(sim, 100, 60 * SEC);
	assert_safe(sim);
	assert_same_executed(sim, 0xf, 4);
	oskr_sim_destroy(sim);
}
END_TEST

/* ---- catching up ---- */

/* Replica 3 is partitioned away while the others run on and truncate
 * their logs; after healing it catches up by state transfer. With
 * isolate_clients false, clients' broadcasts reach it during the
 * partition, so it also starts a view change that nobody joins. */
static void partitioned_catches_up(bool isolate_clients)
{
	struct sim_params p = { .clients = 8, .seed = 13,
				.options = "batch_size: 4\n"
					   "checkpoint_interval: 10\n"
					   "retransmit_ms: 20\n" };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 100, 60 * SEC);
	oskr_sim_partition(sim, 0x7, isolate_clients); /* 3 cut off */
	run_all(sim, 1500, 60 * SEC);
	struct pbft_replica *lagging = replica(sim, 3), *r0 = replica(sim, 0);
	/* The others truncated their logs well past where 3 stopped. */
	ck_assert_uint_gt(r0->low_mark, lagging->last_executed +
						r0->log.window);
	ck_assert_uint_le(r0->log.used, r0->log.window);
	uint64_t behind = oskr_sim_executed(sim, 3);
	ck_assert_uint_lt(behind, oskr_sim_executed(sim, 0));

	oskr_sim_heal(sim);
	run_all(sim, 200, 60 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	ck_assert_uint_ge(oskr_sim_counter(sim, 3, "state_transfers"), 1);
	ck_assert_uint_eq(lagging->last_executed, r0->last_executed);
	ck_assert_uint_eq(oskr_sim_executed(sim, 3), oskr_sim_executed(sim, 0));
	assert_safe(sim);
	oskr_sim_destroy(sim);
}

START_TEST(test_partitioned_replica_catches_up)
{
	partitioned_catches_up(true);
}
END_TEST

START_TEST(test_partitioned_replica_catches_up_while_changing_view)
{
	partitioned_catches_up(false);
}
END_TEST

START_TEST(test_primary_crash_under_drops)
{
	struct sim_params p = { .clients = 8, .seed = 16, .drop = 0.05,
				.dup = 0.05, .min_delay = 10000,
				.max_delay = 1 * MS,
				.options = "batch_size: 8\n"
					   "checkpoint_interval: 20\n"
					   "view_change_timeout_ms: 200\n"
					   "retransmit_ms: 20\n"
					   "client_retry_ms: 50\n" };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 200, 120 * SEC);
	oskr_sim_crash(sim, 0);
	run_all(sim, 200, 120 * SEC);
	oskr_sim_set_drop_rate(sim, 0);
	oskr_sim_set_duplicate_rate(sim, 0);
	run_all(sim, 20, 60 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	assert_safe(sim);
	assert_same_executed(sim, 0xe, 4);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_restarted_replica_catches_up)
{
	struct sim_params p = { .clients = 8, .seed = 14, .app = "kv",
				.options = "batch_size: 4\n"
					   "checkpoint_interval: 10\n"
					   "retransmit_ms: 20\n" };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 300, 60 * SEC);
	oskr_sim_crash(sim, 2);
	run_all(sim, 300, 60 * SEC);
	ck_assert_int_eq(oskr_sim_restart(sim, 2), 0);
	run_all(sim, 300, 60 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	ck_assert_uint_ge(oskr_sim_counter(sim, 2, "state_transfers"), 1);
	ck_assert_uint_eq(replica(sim, 2)->last_executed,
			  replica(sim, 0)->last_executed);
	assert_safe(sim);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_old_primary_restarts_into_new_view)
{
	/* The primary crashes, the others move to view 1 and go on; the
	 * old primary restarts empty, learns the view from f+1 replicas'
	 * signed messages, fetches the NEW-VIEW (and the VIEW-CHANGEs it
	 * names), restores a checkpoint and takes part again. */
	struct sim_params p = { .clients = 8, .seed = 17,
				.options = "batch_size: 4\n"
					   "checkpoint_interval: 10\n"
					   "view_change_timeout_ms: 200\n"
					   "retransmit_ms: 20\n"
					   "client_retry_ms: 100\n" };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 200, 60 * SEC);
	oskr_sim_crash(sim, 0);
	run_all(sim, 300, 60 * SEC);
	ck_assert_int_eq(oskr_sim_restart(sim, 0), 0);
	run_all(sim, 300, 60 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	struct pbft_replica *r0 = replica(sim, 0), *r1 = replica(sim, 1);
	ck_assert_uint_eq(r0->view, r1->view);
	ck_assert(!r0->view_changing);
	ck_assert_uint_ge(oskr_sim_counter(sim, 0, "state_transfers"), 1);
	ck_assert_uint_eq(r0->last_executed, r1->last_executed);
	/* It votes again: with replica 1 crashed, progress needs it. */
	oskr_sim_crash(sim, 1);
	run_all(sim, 100, 60 * SEC);
	assert_safe(sim);
	oskr_sim_destroy(sim);
}
END_TEST

/* Drop every NEW-VIEW for view `view` to the replicas in `to_mask` (all
 * copies: the original, resends and fetch answers). */
struct new_view_blocker {
	uint64_t view;
	uint64_t to_mask;
	uint64_t dropped;
};

static bool block_new_view(void *arg, int32_t src, int32_t dst, uint8_t *data,
			   uint32_t *len, uint32_t capacity)
{
	struct new_view_blocker *b = arg;
	struct pbft_msg m;
	const char *why;
	if (OSKR_SIM_IS_CLIENT(dst) || !(b->to_mask & (1ULL << dst)) ||
	    oskr__pbft_decode(data, *len, 4, &m, &why) ||
	    m.type != PBFT_NEW_VIEW || m.new_view.view != b->view)
		return true;
	b->dropped++;
	return false;
}

static const char *const crash_options = "batch_size: 10\n"
					 "checkpoint_interval: 20\n"
					 "view_change_timeout_ms: 200\n"
					 "client_retry_ms: 100\n";

START_TEST(test_backups_time_out_past_new_primary)
{
	/* The new primary (1) enters view 1 but its NEW-VIEW reaches no one
	 * (as if it came after the backups' timers): 2 and 3 time out into
	 * view 2 while 1 runs view 1. Replica 1 must follow them (f+1
	 * VIEW-CHANGEs for a view above its own, TOCS'02 §4.5.2) so that
	 * view 2 gets its 2f+1 VIEW-CHANGEs; the primary of view 2 then
	 * sends a NEW-VIEW everyone accepts. */
	struct sim_params p = { .clients = 8, .seed = 19,
				.options = crash_options };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 200, 60 * SEC);
	struct new_view_blocker b = { .view = 1, .to_mask = 0xf };
	oskr_sim_set_filter(sim, block_new_view, &b);
	oskr_sim_crash(sim, 0);
	run_all(sim, 200, 60 * SEC);
	ck_assert_uint_gt(b.dropped, 0);
	oskr_sim_run_for(sim, 500 * MS);
	assert_safe(sim);
	assert_same_executed(sim, 0xe, 4);
	/* 1 entered view 1 (its own NEW-VIEW), then view 2 with the others */
	ck_assert_uint_ge(oskr_sim_counter(sim, 1, "view_changes"), 2);
	for (uint32_t r = 1; r < 4; r++) {
		ck_assert_uint_eq(replica(sim, r)->view, 2);
		ck_assert(!replica(sim, r)->view_changing);
	}
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_backup_left_behind_in_view_change)
{
	/* Replica 3 never gets the NEW-VIEW of view 1: 1 and 2 enter view
	 * 1 without it and cannot order anything alone (3 of the 3 live
	 * replicas are needed). 3 times out into view 2, 2 follows when
	 * its request timer expires, 1 joins by the f+1 rule: all three
	 * end in view 2 and every request completes. */
	struct sim_params p = { .clients = 8, .seed = 20,
				.options = crash_options };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 200, 60 * SEC);
	struct new_view_blocker b = { .view = 1, .to_mask = 1u << 3 };
	oskr_sim_set_filter(sim, block_new_view, &b);
	oskr_sim_crash(sim, 0);
	run_all(sim, 200, 60 * SEC);
	ck_assert_uint_gt(b.dropped, 0);
	oskr_sim_run_for(sim, 500 * MS);
	assert_safe(sim);
	assert_same_executed(sim, 0xe, 4);
	ck_assert_uint_eq(oskr_sim_counter(sim, 3, "view_changes"), 1);
	for (uint32_t r = 1; r < 4; r++) {
		ck_assert_uint_eq(replica(sim, r)->view, 2);
		ck_assert(!replica(sim, r)->view_changing);
	}
	oskr_sim_destroy(sim);
}
END_TEST

/* Byzantine replica 2 (n = 7) sends its genuine VIEW-CHANGE to replica 1
 * and another one, with an empty P set and re-signed, to 3..6. */
struct vc_equivocation {
	struct oskr_sim *sim;
	uint64_t rewritten;
};

static bool equivocate_view_change(void *arg, int32_t src, int32_t dst,
				   uint8_t *data, uint32_t *len,
				   uint32_t capacity)
{
	struct vc_equivocation *eq = arg;
	struct pbft_msg m;
	const char *why;
	if (src != 2 || dst < 3 || oskr__pbft_decode(data, *len, 7, &m, &why) ||
	    m.type != PBFT_VIEW_CHANGE)
		return true;
	/* the body up to the P set's count, with the count set to 0 */
	size_t body = (size_t)(m.view_change.prepared - data);
	data[body - 2] = 0;
	data[body - 1] = 0;
	size_t sig_len = 0;
	ck_assert_int_eq(oskr_sim_sign_as(eq->sim, 2, data, body,
					  data + body + 1, &sig_len),
			 0);
	data[body] = (uint8_t)sig_len;
	*len = (uint32_t)(body + 1 + sig_len);
	eq->rewritten++;
	return true;
}

START_TEST(test_equivocating_view_change_fetched)
{
	/* The new primary (1) names replica 2's VIEW-CHANGE as it got it;
	 * the others hold another one from 2 for the same view. They fetch
	 * the named one from the primary and enter view 1, instead of
	 * timing out into views whose NEW-VIEWs a faulty replica can spoil
	 * the same way. */
	struct sim_params p = { .n = 7, .f = 2, .clients = 8, .seed = 21,
				.options = crash_options };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 200, 60 * SEC);
	struct vc_equivocation eq = { .sim = sim };
	oskr_sim_set_byzantine(sim, 2, true);
	oskr_sim_set_filter(sim, equivocate_view_change, &eq);
	oskr_sim_crash(sim, 0);
	run_all(sim, 200, 60 * SEC);
	oskr_sim_run_for(sim, 500 * MS);
	ck_assert_uint_gt(eq.rewritten, 0);
	assert_safe(sim);
	assert_same_executed(sim, 0x7a, 7);
	for (uint32_t r = 1; r < 7; r++) {
		if (r == 2)
			continue;
		ck_assert_uint_eq(replica(sim, r)->view, 1);
		ck_assert(!replica(sim, r)->view_changing);
	}
	oskr_sim_destroy(sim);
}
END_TEST

/* ---- a slow host (regression: liveness after a primary crash) ----
 *
 * On a loaded 2-core machine a P-256 check costs ~1 ms, and oskrd checks
 * signatures on its worker pool in arrival order. The sim checks them in
 * zero virtual time, so a plugin that spends far more CPU than the host
 * has (e.g. re-checking every certificate of every VIEW-CHANGE resend)
 * looks fine there. This model puts the cost back, deterministically:
 * every message to a replica waits in a FIFO (the receive queue) and is
 * handed over only when the replica is idle; each signature check the
 * replica runs (counted through a wrapped host) keeps it busy for
 * SLOW_VERIFY_NS of virtual time. Timers run on time, as in oskrd. */

#define SLOW_VERIFY_NS (1 * MS)
#define SLOW_STEP_NS (100 * 1000)
#define SLOW_QUEUE_MAX 4096

struct slow_msg {
	int32_t src;
	uint32_t len;
	uint8_t *data;
};

struct slow_model {
	struct oskr_sim *sim;
	struct slow_msg queue[4][SLOW_QUEUE_MAX];
	uint32_t head[4], count[4];
	uint64_t busy_until[4];
	uint64_t charged[4]; /* verifications already turned into busy time */
	uint64_t queue_full; /* messages lost to a full receive queue */
	uint64_t max_depth;
};

static struct oskr_plugin slow_plugin;
static struct oskr_host slow_host;
static const struct oskr_host *sim_host;
static uint64_t slow_verifies[OSKR_SIM_MAX_REPLICAS];

static bool slow_verify(struct oskr_ctx *ctx, uint32_t replica_id,
			const void *data, size_t len, const uint8_t *sig,
			size_t sig_len)
{
	int32_t self = sim_host->info(ctx)->replica_id;
	if (self >= 0 && self < OSKR_SIM_MAX_REPLICAS)
		slow_verifies[self]++;
	return sim_host->verify(ctx, replica_id, data, len, sig, sig_len);
}

static int slow_replica_init(struct oskr_ctx *ctx, void *state)
{
	/* The host table is constant for the instance's lifetime: swap it
	 * before the plugin sees it. */
	if (ctx->host != &slow_host) {
		sim_host = ctx->host;
		slow_host = *sim_host;
		slow_host.verify = slow_verify;
		ctx->host = &slow_host;
	}
	return loaded.descriptor->replica_init(ctx, state);
}

static bool slow_filter(void *arg, int32_t src, int32_t dst, uint8_t *data,
			uint32_t *len, uint32_t capacity)
{
	struct slow_model *m = arg;
	if (OSKR_SIM_IS_CLIENT(dst) || dst == src || dst >= 4)
		return true;
	if (m->count[dst] == SLOW_QUEUE_MAX) {
		m->queue_full++;
		return false;
	}
	struct slow_msg *q =
		&m->queue[dst][(m->head[dst] + m->count[dst]) % SLOW_QUEUE_MAX];
	q->data = malloc(*len ? *len : 1);
	ck_assert_ptr_nonnull(q->data);
	memcpy(q->data, data, *len);
	q->len = *len;
	q->src = src;
	m->count[dst]++;
	if (m->count[dst] > m->max_depth)
		m->max_depth = m->count[dst];
	return false; /* delivered later by slow_run */
}

/* Run @p ns of virtual time under the model, keeping every idle client
 * busy with a new request (closed loop). */
static void slow_run(struct slow_model *m, uint32_t clients, uint64_t ns)
{
	uint64_t end = oskr_sim_now(m->sim) + ns;
	static uint64_t op_counter;
	while (oskr_sim_now(m->sim) < end) {
		uint64_t now = oskr_sim_now(m->sim);
		for (uint32_t k = 0; k < clients; k++) {
			if (oskr_sim_client_busy(m->sim, k))
				continue;
			uint8_t op[8];
			op_counter++;
			memcpy(op, &op_counter, sizeof(op));
			ck_assert_int_eq(oskr_sim_invoke(m->sim, k, op,
							 sizeof(op), NULL),
					 0);
		}
		for (uint32_t r = 0; r < 4; r++) {
			if (oskr_sim_is_crashed(m->sim, r)) {
				while (m->count[r]) {
					free(m->queue[r][m->head[r]].data);
					m->head[r] = (m->head[r] + 1) %
						     SLOW_QUEUE_MAX;
					m->count[r]--;
				}
				continue;
			}
			if (!m->count[r] || m->busy_until[r] > now)
				continue;
			struct slow_msg *q = &m->queue[r][m->head[r]];
			ck_assert_int_eq(oskr_sim_inject(m->sim, q->src,
							 (int32_t)r, q->data,
							 q->len),
					 0);
			free(q->data);
			m->head[r] = (m->head[r] + 1) % SLOW_QUEUE_MAX;
			m->count[r]--;
		}
		oskr_sim_run_for(m->sim, SLOW_STEP_NS);
		now = oskr_sim_now(m->sim);
		for (uint32_t r = 0; r < 4; r++) {
			uint64_t work = slow_verifies[r] - m->charged[r];
			m->charged[r] = slow_verifies[r];
			if (m->busy_until[r] < now)
				m->busy_until[r] = now;
			m->busy_until[r] += work * SLOW_VERIFY_NS;
		}
	}
}

static void slow_model_free(struct slow_model *m)
{
	for (uint32_t r = 0; r < 4; r++)
		for (; m->count[r]; m->count[r]--) {
			free(m->queue[r][m->head[r]].data);
			m->head[r] = (m->head[r] + 1) % SLOW_QUEUE_MAX;
		}
	free(m);
}

START_TEST(test_primary_crash_on_slow_host)
{
	/* The integration run (test/integration/pbft_udp.sh) in the model:
	 * default options (K = 100, L = 200, 1 s view-change timeout, 100 ms
	 * tick), 4 clients, the primary killed after 2 s. Before the fix
	 * the backups resent their VIEW-CHANGE (dozens of prepared
	 * certificates, ~3 checks each) every tick and every copy was
	 * checked again: the receive queues grew without bound, NEW-VIEW
	 * came after the timers, replicas climbed views apart and no
	 * request completed after the crash. */
	slow_plugin = *loaded.descriptor;
	slow_plugin.replica_init = slow_replica_init;
	memset(slow_verifies, 0, sizeof(slow_verifies));
	struct sim_params p = { .clients = 4, .seed = 18 };
	struct oskr_sim_config c = {
		.plugin = &slow_plugin,
		.replica_count = 4,
		.fault_count = 1,
		.client_count = p.clients,
		.seed = p.seed + seed_offset(),
	};
	struct oskr_sim *sim = NULL;
	ck_assert_int_eq(oskr_sim_create(&sim, &c), 0);
	struct slow_model *m = calloc(1, sizeof(*m));
	ck_assert_ptr_nonnull(m);
	m->sim = sim;
	oskr_sim_set_filter(sim, slow_filter, m);

	slow_run(m, p.clients, 2 * SEC);
	uint64_t before = oskr_sim_completed(sim);
	ck_assert_uint_gt(before, 100);
	oskr_sim_crash(sim, 0);
	slow_run(m, p.clients, 10 * SEC);
	uint64_t after = oskr_sim_completed(sim);
	if (after < before + 100) {
		dump_state(sim);
		fprintf(stderr,
			"slow host: receive queues up to %" PRIu64
			" messages, %" PRIu64 " lost\n",
			m->max_depth, m->queue_full);
	}
	ck_assert_msg(after >= before + 100,
		      "only %" PRIu64 " requests completed in the 10 s after "
		      "the crash",
		      after - before);
	/* one view change, completed at the first attempt */
	for (uint32_t r = 1; r < 4; r++) {
		ck_assert_uint_eq(replica(sim, r)->view, 1);
		ck_assert(!replica(sim, r)->view_changing);
	}
	oskr_sim_set_filter(sim, NULL, NULL);
	oskr_sim_run_for(sim, 1 * SEC);
	assert_safe(sim);
	assert_same_executed(sim, 0xe, 4);
	oskr_sim_destroy(sim);
	slow_model_free(m);
}
END_TEST

/* ---- durable checkpoints (ABI 1.1: checkpoint_stable / _resume) ---- */

/* Replica @p id resumed at checkpoint @p op: water marks, proof, client
 * table and the sim's execution record all start there, not at 0. */
static void assert_resumed_at(struct oskr_sim *sim, uint32_t id, uint64_t op)
{
	struct pbft_replica *st = replica(sim, id);
	ck_assert_uint_eq(oskr_sim_counter(sim, (int32_t)id,
					   "checkpoint_resumes"),
			  1);
	ck_assert_uint_eq(st->low_mark, op);
	ck_assert_uint_eq(st->last_executed, op);
	ck_assert_uint_eq(st->last_committed, op);
	ck_assert_uint_eq(st->next_seq, op);
	ck_assert_uint_eq(st->stable.seq, op);
	ck_assert_uint_ge(st->stable.count, 3);
	ck_assert_ptr_nonnull(st->stable_state);
	ck_assert_uint_gt(st->ops_executed, 0);
	ck_assert_uint_gt(st->clients.map.count, 0);
	ck_assert_uint_eq(oskr_sim_executed(sim, id), st->ops_executed);
}

START_TEST(test_resume_one_replica_from_checkpoint)
{
	struct sim_params p = { .clients = 8, .seed = 31, .app = "kv",
				.options = "batch_size: 4\n"
					   "checkpoint_interval: 10\n"
					   "retransmit_ms: 20\n" };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 300, 60 * SEC);
	uint64_t op = 0, count = 0;
	ck_assert(oskr_sim_last_checkpoint(sim, 2, &op, &count));
	/* several stable checkpoints, each handed to the host once */
	ck_assert_uint_ge(count, 3);
	ck_assert_uint_eq(count, oskr_sim_counter(sim, 2, "checkpoints"));
	ck_assert_uint_eq(op, replica(sim, 2)->stable.seq);
	oskr_sim_crash(sim, 2);
	run_all(sim, 300, 60 * SEC);
	ck_assert_int_eq(oskr_sim_restart_from_checkpoint(sim, 2), 0);
	assert_resumed_at(sim, 2, op);
	run_all(sim, 300, 60 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	/* caught up (by state transfer from its checkpoint on) */
	ck_assert_uint_gt(replica(sim, 2)->low_mark, op);
	ck_assert_uint_eq(replica(sim, 2)->last_executed,
			  replica(sim, 0)->last_executed);
	assert_safe(sim);
	assert_same_executed(sim, 0xf, 4);
	oskr_sim_destroy(sim);
}
END_TEST

/* The whole cluster stops on a stable checkpoint and restarts from it.
 * batch_size 1 and no faults: sequence numbers are requests, and 200 is
 * a multiple of K, so nothing executed is newer than the checkpoint. */
#define DURABLE_OPTIONS                                                   \
	"batch_size: 1\ncheckpoint_interval: 10\nretransmit_ms: 20\n"     \
	"view_change_timeout_ms: 200\nclient_retry_ms: 100\n"

static struct oskr_sim *restart_whole_cluster(uint64_t seed, uint64_t *op_out)
{
	struct sim_params p = { .clients = 4, .seed = seed, .app = "kv",
				.options = DURABLE_OPTIONS };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 200, 60 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	uint64_t op = 0;
	for (uint32_t r = 0; r < 4; r++) {
		uint64_t at = 0;
		ck_assert(oskr_sim_last_checkpoint(sim, r, &at, NULL));
		if (r == 0)
			op = at;
		ck_assert_uint_eq(at, op);
		ck_assert_uint_eq(replica(sim, r)->last_executed, op);
	}
	ck_assert_uint_eq(op, 200);
	for (uint32_t r = 0; r < 4; r++)
		oskr_sim_crash(sim, r);
	for (uint32_t r = 0; r < 4; r++) {
		ck_assert_int_eq(oskr_sim_restart_from_checkpoint(sim, r), 0);
		assert_resumed_at(sim, r, op);
		ck_assert_uint_eq(replica(sim, r)->ops_executed, 200);
	}
	*op_out = op;
	return sim;
}

/* Replies to one (client, request) with one result, as sent. */
struct reply_watch {
	uint64_t client_id, request_number;
	uint8_t result[256];
	uint32_t result_len;
	uint32_t matching, other;
};

static bool watch_replies(void *arg, int32_t src, int32_t dst, uint8_t *data,
			  uint32_t *len, uint32_t capacity)
{
	struct reply_watch *watch = arg;
	struct pbft_msg m;
	const char *why;
	if (src < 0 || *len == 0 || data[0] != PBFT_REPLY ||
	    oskr__pbft_decode(data, *len, 4, &m, &why))
		return true;
	if (m.reply.client_id == watch->client_id &&
	    m.reply.request_number == watch->request_number &&
	    m.reply.result_len == watch->result_len &&
	    !memcmp(m.reply.result, watch->result, watch->result_len))
		watch->matching++;
	else
		watch->other++;
	return true;
}

START_TEST(test_resume_whole_cluster_from_checkpoint)
{
	uint64_t op;
	struct oskr_sim *sim = restart_whole_cluster(32, &op);
	/* Exactly-once across the restart: a client retransmitting a
	 * request executed before it gets the cached reply from the
	 * restored client table; nothing executes again. */
	const struct pbft_client_record *rec = NULL;
	struct pbft_replica *r0 = replica(sim, 0);
	for (size_t i = 0; i <= r0->clients.map.mask && !rec; i++)
		rec = r0->clients.map.slots[i].value;
	ck_assert_ptr_nonnull(rec);
	ck_assert_uint_le(rec->result_len, sizeof(((struct reply_watch *)0)->result));
	struct reply_watch watch = { .client_id = rec->client_id,
				     .request_number = rec->request_number,
				     .result_len = rec->result_len };
	memcpy(watch.result, rec->result, rec->result_len);
	uint64_t executed[4];
	for (uint32_t r = 0; r < 4; r++)
		executed[r] = oskr_sim_executed(sim, r);
	uint8_t request[64];
	struct pbft_writer w = { .data = request, .capacity = sizeof(request) };
	pbft_put_u8(&w, PBFT_REQUEST);
	pbft_put_u64(&w, rec->client_id);
	pbft_put_u64(&w, rec->request_number);
	pbft_put_u32(&w, 3);
	pbft_put(&w, "old", 3);
	oskr_sim_set_filter(sim, watch_replies, &watch);
	for (uint32_t r = 0; r < 4; r++)
		ck_assert_int_eq(oskr_sim_inject(sim, OSKR_SIM_CLIENT(0),
						 (int32_t)r, request, w.len),
				 0);
	oskr_sim_run_for(sim, 200 * MS);
	oskr_sim_set_filter(sim, NULL, NULL);
	ck_assert_uint_eq(watch.matching, 4);
	ck_assert_uint_eq(watch.other, 0);
	for (uint32_t r = 0; r < 4; r++)
		ck_assert_uint_eq(oskr_sim_executed(sim, r), executed[r]);

	/* New requests are ordered from the checkpoint on. */
	run_all(sim, 100, 60 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	for (uint32_t r = 0; r < 4; r++) {
		ck_assert_uint_eq(replica(sim, r)->ops_executed, 300);
		ck_assert_uint_eq(oskr_sim_executed(sim, r), 300);
		ck_assert_uint_gt(replica(sim, r)->last_executed, op);
	}
	assert_safe(sim);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_view_change_after_whole_cluster_resume)
{
	/* The primary of view 0 dies right after the restart: the others'
	 * VIEW-CHANGEs carry the restored checkpoint proofs, which must
	 * verify for the new view to form (TOCS'02 §4.4). */
	uint64_t op;
	struct oskr_sim *sim = restart_whole_cluster(33, &op);
	oskr_sim_crash(sim, 0);
	run_all(sim, 100, 60 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	for (uint32_t r = 1; r < 4; r++) {
		struct pbft_replica *st = replica(sim, r);
		ck_assert_uint_ge(st->view, 1);
		ck_assert(!st->view_changing);
		ck_assert_uint_eq(st->ops_executed, 300);
		ck_assert_uint_eq(oskr_sim_counter(sim, (int32_t)r,
						   "drop_bad_certificate"),
				  0);
	}
	ck_assert_uint_ge(counter_sum(sim, 4, "view_changes"), 1);
	assert_safe(sim);
	assert_same_executed(sim, 0xe, 4);
	oskr_sim_destroy(sim);
}
END_TEST

/* Drop the CHECKPOINT messages for one sequence number to the replicas in
 * a mask: only the others can make that checkpoint stable. */
struct checkpoint_blocker {
	uint64_t seq;
	uint64_t to_mask;
};

static bool block_checkpoint(void *arg, int32_t src, int32_t dst,
			     uint8_t *data, uint32_t *len, uint32_t capacity)
{
	const struct checkpoint_blocker *b = arg;
	struct pbft_msg m;
	const char *why;
	if (dst < 0 || !(b->to_mask & (UINT64_C(1) << dst)) || *len == 0 ||
	    data[0] != PBFT_CHECKPOINT ||
	    oskr__pbft_decode(data, *len, 4, &m, &why))
		return true;
	return m.checkpoint.seq != b->seq;
}

START_TEST(test_whole_cluster_resumes_at_different_checkpoints)
{
	/* Just before the whole cluster crashes, only replica 1 collects the
	 * 2f+1 CHECKPOINTs of 200; the others persisted 190. After the
	 * restart the primary (0) must not order new requests at 191..200
	 * -- 2f+1 replicas executed those before the crash -- but fetch
	 * checkpoint 200, which replica 1 announces. */
	struct sim_params p = { .clients = 4, .seed = 35, .app = "kv",
				.options = DURABLE_OPTIONS };
	struct oskr_sim *sim = make_sim(&p);
	struct checkpoint_blocker blocker = { .seq = 200, .to_mask = 0xd };
	oskr_sim_set_filter(sim, block_checkpoint, &blocker);
	run_all(sim, 200, 60 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	oskr_sim_set_filter(sim, NULL, NULL);
	for (uint32_t r = 0; r < 4; r++) {
		uint64_t at = 0;
		ck_assert(oskr_sim_last_checkpoint(sim, r, &at, NULL));
		ck_assert_uint_eq(at, r == 1 ? 200 : 190);
		oskr_sim_crash(sim, r);
	}
	for (uint32_t r = 0; r < 4; r++)
		ck_assert_int_eq(oskr_sim_restart_from_checkpoint(sim, r), 0);
	assert_resumed_at(sim, 1, 200);
	assert_resumed_at(sim, 0, 190);
	run_all(sim, 100, 60 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	for (uint32_t r = 0; r < 4; r++) {
		ck_assert_uint_eq(replica(sim, r)->ops_executed, 300);
		ck_assert_uint_eq(oskr_sim_executed(sim, r), 300);
	}
	ck_assert_uint_ge(counter_sum(sim, 4, "state_transfers"), 3);
	assert_safe(sim);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_corrupted_checkpoint_refused)
{
	/* A protocol blob that does not match the restored application
	 * (one byte flipped in the client table: the rebuilt state's digest
	 * differs from the 2f+1 signed one) is refused with a log line: the
	 * replica starts from op 0 and catches up by state transfer. */
	struct sim_params p = { .clients = 8, .seed = 34, .app = "kv",
				.options = "batch_size: 4\n"
					   "checkpoint_interval: 10\n"
					   "retransmit_ms: 20\n" };
	struct oskr_sim *sim = make_sim(&p);
	run_all(sim, 300, 60 * SEC);
	oskr_sim_crash(sim, 2);
	run_all(sim, 100, 60 * SEC);
	struct sim_checkpoint *disk = &sim->nodes[2].checkpoint;
	ck_assert(disk->valid && disk->protocol_len > 0);
	disk->protocol[disk->protocol_len - 1] ^= 0x5a;
	ck_assert_int_eq(oskr_sim_restart_from_checkpoint(sim, 2), 0);
	struct pbft_replica *st = replica(sim, 2);
	ck_assert_uint_eq(oskr_sim_counter(sim, 2, "checkpoint_resume_refused"),
			  1);
	ck_assert_uint_eq(oskr_sim_counter(sim, 2, "checkpoint_resumes"), 0);
	ck_assert_uint_eq(st->low_mark, 0);
	ck_assert_uint_eq(st->last_executed, 0);
	ck_assert_uint_eq(st->ops_executed, 0);
	ck_assert_uint_eq(st->clients.map.count, 0);
	ck_assert_ptr_null(st->stable_state);
	/* A truncated blob too (the decoder is length-checked). */
	oskr_sim_crash(sim, 2);
	disk->protocol_len -= 7;
	ck_assert_int_eq(oskr_sim_restart_from_checkpoint(sim, 2), 0);
	ck_assert_uint_eq(oskr_sim_counter(sim, 2, "checkpoint_resume_refused"),
			  2);
	ck_assert_uint_eq(replica(sim, 2)->low_mark, 0);
	run_all(sim, 300, 60 * SEC);
	oskr_sim_run_for(sim, 1 * SEC);
	ck_assert_uint_ge(oskr_sim_counter(sim, 2, "state_transfers"), 1);
	ck_assert_uint_eq(replica(sim, 2)->last_executed,
			  replica(sim, 0)->last_executed);
	assert_safe(sim);
	oskr_sim_destroy(sim);
}
END_TEST

/* ---- memory bounds ---- */

START_TEST(test_long_run_bounded)
{
	struct sim_params p = { .clients = 64, .seed = 15,
				.options = "batch_size: 64\n"
					   "adaptive: true\n"
					   "checkpoint_interval: 50\n"
					   "client_table_size: 1000\n" };
	struct oskr_sim *sim = make_sim(&p);
	uint64_t max_buffers = 0;
	for (int round = 0; round < 10; round++) {
		run_all(sim, 10000, 600 * SEC);
		uint64_t buffers = oskr_sim_live_buffers(sim);
		if (buffers > max_buffers)
			max_buffers = buffers;
		for (uint32_t r = 0; r < 4; r++) {
			struct pbft_replica *st = replica(sim, r);
			ck_assert_uint_le(st->log.used, st->log.window);
			ck_assert_uint_le(st->clients.map.count, 1000);
			ck_assert_uint_le(pbft_pending_count(&st->pending), 64);
			ck_assert_uint_le(st->last_executed - st->low_mark,
					  st->log.window);
			ck_assert_uint_le(oskr_sim_live_timers(sim, r), 4);
		}
	}
	oskr_sim_run_for(sim, 100 * MS);
	ck_assert_uint_ge(oskr_sim_executed(sim, 0), 100000);
	/* Buffers in flight are bounded by the closed loop, not by the
	 * length of the run. */
	ck_assert_uint_lt(max_buffers, 5000);
	ck_assert_uint_gt(replica(sim, 0)->low_mark, 100);
	ck_assert_uint_ge(oskr_sim_counter(sim, 0, "checkpoints"),
			  replica(sim, 0)->low_mark / 50 - 1);
	assert_safe(sim);
	assert_same_executed(sim, 0xf, 4);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_bad_options_refused)
{
	const char *bad[] = {
		"batch_size: 0\n",
		"checkpoint_interval: 100\nwatermark_window: 150\n",
		"no_such_option: 1\n",
		"adaptive: maybe\n",
		"view_change_timeout_ms: 0\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct oskr_sim_config c = {
			.plugin = loaded.descriptor,
			.replica_count = 4,
			.fault_count = 1,
			.client_count = 1,
			.seed = 1,
			.protocol_options = bad[i],
		};
		struct oskr_sim *sim = NULL;
		ck_assert_msg(oskr_sim_create(&sim, &c) != 0, "accepted: %s",
			      bad[i]);
	}
	/* A VIEW-CHANGE of L certificates must fit the transport. */
	struct oskr_sim_config small = { .plugin = loaded.descriptor,
					 .replica_count = 4,
					 .fault_count = 1,
					 .client_count = 1,
					 .max_message = 8000 };
	struct oskr_sim *refused = NULL;
	/* an explicit window that cannot fit is refused… */
	small.protocol_options = "watermark_window: 200\n";
	ck_assert_int_ne(oskr_sim_create(&refused, &small), 0);
	small.protocol_options = "checkpoint_interval: 10\n";
	ck_assert_int_eq(oskr_sim_create(&refused, &small), 0);
	oskr_sim_destroy(refused);
	/* …while the defaults shrink K and L to fit (DPDK frames), and the
	 * cluster still orders requests through checkpoints. */
	small.protocol_options = NULL;
	small.max_message = 1494;
	struct oskr_sim *fitted = NULL;
	ck_assert_int_eq(oskr_sim_create(&fitted, &small), 0);
	ck_assert_uint_eq(oskr_sim_run_workload(fitted, 200, 20000000000ull,
						NULL, NULL),
			  200);
	ck_assert(oskr_sim_counter(fitted, 0, OSKR_COUNTER_CHECKPOINTS) > 0);
	char why[256];
	ck_assert_msg(oskr_sim_check_safety(fitted, why, sizeof(why)), "%s",
		      why);
	oskr_sim_destroy(fitted);
	/* n < 3f + 1 */
	struct oskr_sim_config c = { .plugin = loaded.descriptor,
				     .replica_count = 3,
				     .fault_count = 1,
				     .client_count = 1 };
	struct oskr_sim *sim = NULL;
	ck_assert_int_ne(oskr_sim_create(&sim, &c), 0);
}
END_TEST

static Suite *pbft_suite(void)
{
	Suite *s = suite_create("pbft");
	TCase *codec = tcase_create("codec");
	tcase_add_test(codec, test_codec_order_round_trip);
	tcase_add_test(codec, test_codec_batch);
	tcase_add_test(codec, test_codec_certificates);
	tcase_add_test(codec, test_codec_garbage);
	tcase_add_test(codec, test_map_delete_keeps_probe_chains);
	tcase_add_test(codec, test_client_table_evicts_and_round_trips);
	tcase_add_test(codec, test_pending_set);
	tcase_add_test(codec, test_resume_blob_decoder);
	suite_add_tcase(s, codec);

	TCase *sim = tcase_create("sim");
	tcase_add_unchecked_fixture(sim, load_plugin, unload_plugin);
	tcase_set_timeout(sim, 120);
	tcase_add_test(sim, test_no_faults_batch_1);
	tcase_add_test(sim, test_no_faults_batch_100_fixed);
	tcase_add_test(sim, test_no_faults_adaptive);
	tcase_add_test(sim, test_batches_fill);
	tcase_add_test(sim, test_real_signatures);
	tcase_add_test(sim, test_duplicates_answered_from_table);
	tcase_add_test(sim, test_drop_duplicate_reorder);
	tcase_add_test(sim, test_primary_crash);
	tcase_add_test(sim, test_two_successive_view_changes);
	tcase_add_test(sim, test_requests_survive_view_change);
	tcase_add_test(sim, test_byzantine_primary_equivocates);
	tcase_add_test(sim, test_bad_messages_ignored);
	tcase_add_test(sim, test_partitioned_replica_catches_up);
	tcase_add_test(sim, test_partitioned_replica_catches_up_while_changing_view);
	tcase_add_test(sim, test_primary_crash_under_drops);
	tcase_add_test(sim, test_restarted_replica_catches_up);
	tcase_add_test(sim, test_old_primary_restarts_into_new_view);
	tcase_add_test(sim, test_primary_crash_on_slow_host);
	tcase_add_test(sim, test_backups_time_out_past_new_primary);
	tcase_add_test(sim, test_backup_left_behind_in_view_change);
	tcase_add_test(sim, test_equivocating_view_change_fetched);
	tcase_add_test(sim, test_resume_one_replica_from_checkpoint);
	tcase_add_test(sim, test_resume_whole_cluster_from_checkpoint);
	tcase_add_test(sim, test_view_change_after_whole_cluster_resume);
	tcase_add_test(sim, test_whole_cluster_resumes_at_different_checkpoints);
	tcase_add_test(sim, test_corrupted_checkpoint_refused);
	tcase_add_test(sim, test_long_run_bounded);
	tcase_add_test(sim, test_bad_options_refused);
	suite_add_tcase(s, sim);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pbft_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
