/* SPDX-License-Identifier: MIT */
/*
 * The unreplicated plugin: its codec, then the real build/plugins/
 * unreplicated.so loaded through the plugin loader and run on the sim.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oskr/kv.h>
#include <oskr/plugin.h>

#include "daemon/loader.h"
#include "sim/sim.h"

/* The codec is internal to the plugin (hidden in the .so): compile it into
 * this test to check it byte by byte. */
#include "plugins/unreplicated/codec.c"

#define MS 1000000ULL

static struct oskr_loaded_plugin loaded;

static void load_plugin(void)
{
	const char *build = getenv("OSKR_BUILD_DIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/plugins/unreplicated.so",
		 build && *build ? build : "build");
	char *err = NULL;
	int ret = oskr__plugin_load(path, &loaded, &err);
	ck_assert_msg(ret == 0, "loading %s: %s", path, err ? err : "?");
	free(err);
	ck_assert_str_eq(loaded.descriptor->name, "unreplicated");
}

static void unload_plugin(void)
{
	oskr__plugin_unload(&loaded);
}

static struct oskr_sim *make_sim(uint32_t n, uint32_t m, uint64_t seed,
				 const char *options, const char *app,
				 double drop, double dup, bool real)
{
	struct oskr_sim_config c = {
		.plugin = loaded.descriptor,
		.replica_count = n,
		.client_count = m,
		.seed = seed,
		.protocol_options = options,
		.app = app,
		.drop_rate = drop,
		.duplicate_rate = dup,
		.real_signatures = real,
	};
	struct oskr_sim *sim = NULL;
	ck_assert_int_eq(oskr_sim_create(&sim, &c), 0);
	return sim;
}

static void assert_safe(struct oskr_sim *sim)
{
	char why[256];
	ck_assert_msg(oskr_sim_check_safety(sim, why, sizeof(why)), "%s", why);
}

static uint64_t client_total(struct oskr_sim *sim, uint32_t m,
			     const char *name)
{
	uint64_t total = 0;
	for (uint32_t k = 0; k < m; k++)
		total += oskr_sim_counter(sim, OSKR_SIM_CLIENT(k), name);
	return total;
}

/* ---- codec ---- */

START_TEST(test_codec_request_round_trip)
{
	uint8_t op[300];
	for (size_t i = 0; i < sizeof(op); i++)
		op[i] = (uint8_t)(i * 7);
	struct unreplicated_request in = {
		.client_id = 0x0102030405060708ULL,
		.request_number = 99,
		.op = op,
		.op_len = sizeof(op),
	};
	uint8_t wire[400];
	size_t len = unreplicated_encode_request(wire, sizeof(wire), &in);
	ck_assert_uint_eq(len, unreplicated_request_size(sizeof(op)));
	ck_assert_int_eq(wire[0], UNREPLICATED_REQUEST);
	ck_assert_int_eq(wire[1], 0x08); /* little-endian client id */
	struct unreplicated_request out;
	ck_assert(unreplicated_decode_request(wire, len, &out));
	ck_assert_uint_eq(out.client_id, in.client_id);
	ck_assert_uint_eq(out.request_number, 99);
	ck_assert_uint_eq(out.op_len, sizeof(op));
	ck_assert_int_eq(memcmp(out.op, op, sizeof(op)), 0);
	for (size_t cut = 0; cut < len; cut++)
		ck_assert(!unreplicated_decode_request(wire, cut, &out));
	ck_assert(!unreplicated_decode_request(wire, len + 1, &out));
	ck_assert_uint_eq(unreplicated_encode_request(wire, len - 1, &in), 0);
	wire[0] = UNREPLICATED_REPLY;
	ck_assert(!unreplicated_decode_request(wire, len, &out));

	/* An empty op is a valid request. */
	in.op_len = 0;
	len = unreplicated_encode_request(wire, sizeof(wire), &in);
	ck_assert_uint_eq(len, UNREPLICATED_HEADER_SIZE);
	ck_assert(unreplicated_decode_request(wire, len, &out));
	ck_assert_uint_eq(out.op_len, 0);
}
END_TEST

START_TEST(test_codec_reply_round_trip)
{
	const char result[] = "result bytes";
	uint8_t wire[128];
	size_t body = unreplicated_encode_reply_body(wire, sizeof(wire), 7, 8,
						     result, sizeof(result), 32);
	ck_assert_uint_eq(body, UNREPLICATED_HEADER_SIZE + sizeof(result));
	wire[body] = 32;
	memset(wire + body + 1, 0xab, 32);
	size_t len = body + 1 + 32;
	ck_assert_uint_eq(len, unreplicated_reply_size(sizeof(result), 32));
	struct unreplicated_reply out;
	ck_assert(unreplicated_decode_reply(wire, len, &out));
	ck_assert_uint_eq(out.client_id, 7);
	ck_assert_uint_eq(out.request_number, 8);
	ck_assert_uint_eq(out.result_len, sizeof(result));
	ck_assert_int_eq(memcmp(out.result, result, sizeof(result)), 0);
	ck_assert_uint_eq(out.sig_len, 32);
	ck_assert_uint_eq(out.signed_len, body);
	ck_assert_int_eq(out.sig[0], 0xab);
	for (size_t cut = 0; cut < len; cut++)
		ck_assert(!unreplicated_decode_reply(wire, cut, &out));
	ck_assert(!unreplicated_decode_reply(wire, len + 1, &out));

	/* Unsigned: sig_len 0, no signature bytes. */
	wire[body] = 0;
	ck_assert(unreplicated_decode_reply(wire, body + 1, &out));
	ck_assert_uint_eq(out.sig_len, 0);
	ck_assert_ptr_null(out.sig);
	/* Too small a buffer for the signature room. */
	ck_assert_uint_eq(unreplicated_encode_reply_body(wire, body + 32, 7, 8,
							 result,
							 sizeof(result), 32),
			  0);
}
END_TEST

START_TEST(test_codec_garbage)
{
	/* Random bytes, with the type byte forced to each type half of the
	 * time: decoders either refuse or return fields inside the input. */
	uint64_t x = 12345;
	uint8_t wire[256];
	for (int round = 0; round < 20000; round++) {
		size_t len = 0;
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		len = (x >> 33) % sizeof(wire);
		for (size_t i = 0; i < len; i++) {
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			wire[i] = (uint8_t)(x >> 56);
		}
		if (len && (round & 1))
			wire[0] = (uint8_t)(1 + (round & 2) / 2);
		if (len > 20 && (round & 4)) {
			/* a plausible length field */
			uint32_t l = (uint32_t)(len - 21 - (round & 8 ? 1 : 0));
			memcpy(wire + 17, &l, 4);
		}
		struct unreplicated_request request;
		if (unreplicated_decode_request(wire, len, &request))
			ck_assert_uint_eq(
				unreplicated_request_size(request.op_len), len);
		struct unreplicated_reply reply;
		if (unreplicated_decode_reply(wire, len, &reply))
			ck_assert_uint_eq(unreplicated_reply_size(
						  reply.result_len,
						  reply.sig_len),
					  len);
	}
}
END_TEST

/* ---- over the sim ---- */

START_TEST(test_no_faults)
{
	struct oskr_sim *sim = make_sim(1, 4, 1, NULL, NULL, 0, 0, false);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 2000, 100000 * MS, NULL,
						NULL),
			  2000);
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), 2000);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "commits"), 2000);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "requests"), 2000);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "duplicates"), 0);
	ck_assert_uint_eq(client_total(sim, 4, "retransmits"), 0);
	assert_safe(sim);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert_uint_eq(oskr_sim_live_buffers(sim), 0);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_drops_and_duplicates_execute_once)
{
	struct oskr_sim *sim = make_sim(1, 4, 2, "retransmit_ms: 2\n", NULL,
					0.2, 0.2, false);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 1000, 100000 * MS, NULL,
						NULL),
			  1000);
	/* Every request completed, and each executed exactly once however
	 * many copies reached the server. */
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), 1000);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "commits"), 1000);
	ck_assert_uint_gt(client_total(sim, 4, "retransmits"), 0);
	ck_assert_uint_gt(oskr_sim_counter(sim, 0, "duplicates"), 0);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "requests"),
			  1000 + oskr_sim_counter(sim, 0, "duplicates") +
				  oskr_sim_counter(sim, 0, "drop_stale"));
	assert_safe(sim);
	oskr_sim_run_for(sim, 10 * MS);
	ck_assert_uint_eq(oskr_sim_live_buffers(sim), 0);
	oskr_sim_destroy(sim);
}
END_TEST

static bool corrupt_reply_signature(void *arg, int32_t src, int32_t dst,
				    uint8_t *data, uint32_t *len,
				    uint32_t capacity)
{
	bool *on = arg;
	if (*on && OSKR_SIM_IS_CLIENT(dst) && *len > 0)
		data[*len - 1] ^= 0x01; /* last byte of the signature */
	return true;
}

static void run_signed(bool real, uint64_t requests)
{
	struct oskr_sim *sim = make_sim(1, 2, 3,
					"signed: true\nretransmit_ms: 5ms\n",
					NULL, 0, 0, real);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, requests, 100000 * MS,
						NULL, NULL),
			  requests);
	ck_assert_uint_eq(client_total(sim, 2, "drop_bad_signature"), 0);

	bool on = true;
	oskr_sim_set_filter(sim, corrupt_reply_signature, &on);
	uint8_t op[8] = { 0 };
	ck_assert_int_eq(oskr_sim_invoke(sim, 0, op, sizeof(op), NULL), 0);
	oskr_sim_run_for(sim, 12 * MS);
	ck_assert(oskr_sim_client_busy(sim, 0));
	ck_assert_uint_ge(oskr_sim_counter(sim, OSKR_SIM_CLIENT(0),
					   "drop_bad_signature"),
			  2);
	/* The filter off, the next retransmission gets the cached reply,
	 * signed again: the request completes without a second execution. */
	on = false;
	oskr_sim_run_for(sim, 10 * MS);
	ck_assert(!oskr_sim_client_busy(sim, 0));
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), requests + 1);
	ck_assert_uint_gt(oskr_sim_counter(sim, 0, "duplicates"), 0);
	assert_safe(sim);
	oskr_sim_destroy(sim);
}

START_TEST(test_signed_fast)
{
	run_signed(false, 500);
}
END_TEST

START_TEST(test_signed_p256)
{
	run_signed(true, 50);
}
END_TEST

static bool strip_signature(void *arg, int32_t src, int32_t dst,
			    uint8_t *data, uint32_t *len, uint32_t capacity)
{
	struct unreplicated_reply reply;
	if (OSKR_SIM_IS_CLIENT(dst) &&
	    unreplicated_decode_reply(data, *len, &reply)) {
		data[reply.signed_len] = 0;
		*len = (uint32_t)reply.signed_len + 1;
	}
	return true;
}

START_TEST(test_signed_client_refuses_unsigned_reply)
{
	struct oskr_sim *sim = make_sim(1, 1, 4, "signed: true\n", NULL, 0, 0,
					false);
	oskr_sim_set_filter(sim, strip_signature, NULL);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 1, 300 * MS, NULL, NULL),
			  0);
	ck_assert_uint_gt(oskr_sim_counter(sim, OSKR_SIM_CLIENT(0),
					   "drop_bad_signature"),
			  0);
	oskr_sim_destroy(sim);
}
END_TEST

static const uint8_t *run_op(struct oskr_sim *sim, const uint8_t *op,
			     size_t op_len, size_t *result_len)
{
	ck_assert_int_eq(oskr_sim_invoke(sim, 0, op, op_len, NULL), 0);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert(!oskr_sim_client_busy(sim, 0));
	const uint8_t *result = oskr_sim_client_result(sim, 0, result_len);
	ck_assert_ptr_nonnull(result);
	return result;
}

START_TEST(test_kv_results)
{
	struct oskr_sim *sim = make_sim(1, 1, 5, NULL, "kv", 0, 0, false);
	uint8_t op[128];
	size_t len, result_len;
	const uint8_t *result;

	len = oskr_kv_encode_put(op, sizeof(op), "alpha", 5, "one", 3);
	result = run_op(sim, op, len, &result_len);
	ck_assert_uint_eq(result_len, 1);
	ck_assert_int_eq(result[0], OSKR_KV_OK);

	len = oskr_kv_encode_get(op, sizeof(op), "alpha", 5);
	result = run_op(sim, op, len, &result_len);
	ck_assert_uint_eq(result_len, 4);
	ck_assert_int_eq(result[0], OSKR_KV_OK);
	ck_assert_int_eq(memcmp(result + 1, "one", 3), 0);

	len = oskr_kv_encode_del(op, sizeof(op), "alpha", 5);
	result = run_op(sim, op, len, &result_len);
	ck_assert_int_eq(result[0], OSKR_KV_OK);

	len = oskr_kv_encode_get(op, sizeof(op), "alpha", 5);
	result = run_op(sim, op, len, &result_len);
	ck_assert_uint_eq(result_len, 1);
	ck_assert_int_eq(result[0], OSKR_KV_NOT_FOUND);

	result = run_op(sim, (const uint8_t *)"\x09junk", 5, &result_len);
	ck_assert_int_eq(result[0], OSKR_KV_BAD_OP);
	assert_safe(sim);
	oskr_sim_destroy(sim);

	/* The default kv workload (unique puts) under loss. */
	sim = make_sim(1, 3, 6, "retransmit_ms: 1\n", "kv", 0.1, 0.1, false);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 300, 100000 * MS, NULL,
						NULL),
			  300);
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), 300);
	assert_safe(sim);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_malformed_requests_dropped)
{
	struct oskr_sim *sim = make_sim(1, 1, 7, NULL, NULL, 0, 0, false);
	uint8_t op[4] = { 1, 2, 3, 4 };
	struct unreplicated_request request = {
		.client_id = 1000,
		.request_number = 1,
		.op = op,
		.op_len = sizeof(op),
	};
	uint8_t wire[64];
	size_t len = unreplicated_encode_request(wire, sizeof(wire), &request);
	for (size_t cut = 0; cut < len; cut++)
		ck_assert_int_eq(oskr_sim_inject(sim, OSKR_SIM_CLIENT(0), 0,
						 wire, cut),
				 0);
	ck_assert_int_eq(oskr_sim_inject(sim, OSKR_SIM_CLIENT(0), 0, wire,
					 len + 1),
			 0);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "drop_malformed"), len + 1);
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), 0);

	/* Replies the client did not ask for are dropped and counted. */
	uint8_t reply[64];
	size_t body = unreplicated_encode_reply_body(reply, sizeof(reply),
						     4242, 1, "x", 1, 0);
	reply[body] = 0;
	ck_assert_int_eq(oskr_sim_inject(sim, 0, OSKR_SIM_CLIENT(0), reply,
					 body + 1),
			 0);
	body = unreplicated_encode_reply_body(reply, sizeof(reply), 1000, 1,
					      "x", 1, 0);
	reply[body] = 0;
	ck_assert_int_eq(oskr_sim_inject(sim, 0, OSKR_SIM_CLIENT(0), reply,
					 body + 1),
			 0);
	ck_assert_int_eq(oskr_sim_inject(sim, 0, OSKR_SIM_CLIENT(0), reply,
					 body),
			 0);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert_uint_eq(oskr_sim_counter(sim, OSKR_SIM_CLIENT(0),
					   "drop_mismatched"),
			  1);
	ck_assert_uint_eq(oskr_sim_counter(sim, OSKR_SIM_CLIENT(0),
					   "drop_stale"),
			  1);
	ck_assert_uint_eq(oskr_sim_counter(sim, OSKR_SIM_CLIENT(0),
					   "drop_malformed"),
			  1);
	ck_assert_uint_eq(oskr_sim_completed(sim), 0);

	/* Still serving after all that. */
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 10, oskr_sim_now(sim) +
							       100 * MS,
						NULL, NULL),
			  10);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert_uint_eq(oskr_sim_live_buffers(sim), 0);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_stale_and_duplicate_requests)
{
	struct oskr_sim *sim = make_sim(1, 1, 8, NULL, NULL, 0, 0, false);
	uint8_t op[1] = { 'a' };
	uint8_t wire[64];
	struct unreplicated_request request = {
		.client_id = 5555, /* a client the sim does not run */
		.op = op,
		.op_len = 1,
	};
	for (uint64_t rn = 1; rn <= 3; rn++) {
		request.request_number = rn;
		size_t len = unreplicated_encode_request(wire, sizeof(wire),
							 &request);
		ck_assert_int_eq(oskr_sim_inject(sim, OSKR_SIM_CLIENT(0), 0,
						 wire, len),
				 0);
		oskr_sim_run_for(sim, 1 * MS);
	}
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), 3);
	/* The last one again: a duplicate. An older one: stale. */
	size_t len = unreplicated_encode_request(wire, sizeof(wire), &request);
	oskr_sim_inject(sim, OSKR_SIM_CLIENT(0), 0, wire, len);
	request.request_number = 1;
	len = unreplicated_encode_request(wire, sizeof(wire), &request);
	oskr_sim_inject(sim, OSKR_SIM_CLIENT(0), 0, wire, len);
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), 3);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "duplicates"), 1);
	ck_assert_uint_eq(oskr_sim_counter(sim, 0, "drop_stale"), 1);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_client_table_eviction)
{
	/* Two entries for four clients: least recently used ones go, and
	 * every request still executes exactly once (no loss here, so no
	 * retransmission can outlive its entry). */
	struct oskr_sim *sim = make_sim(1, 4, 9, "client_table_size: 2\n",
					NULL, 0, 0, false);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 400, 100000 * MS, NULL,
						NULL),
			  400);
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), 400);
	ck_assert_uint_gt(oskr_sim_counter(sim, 0, "client_table_evictions"),
			  0);
	assert_safe(sim);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_three_replicas_others_idle)
{
	struct oskr_sim *sim = make_sim(3, 2, 10, NULL, NULL, 0, 0, false);
	ck_assert_uint_eq(oskr_sim_run_workload(sim, 100, 100000 * MS, NULL,
						NULL),
			  100);
	ck_assert_uint_eq(oskr_sim_executed(sim, 0), 100);
	ck_assert_uint_eq(oskr_sim_executed(sim, 1), 0);
	uint8_t junk[3] = { 1, 2, 3 };
	oskr_sim_inject(sim, OSKR_SIM_CLIENT(0), 2, junk, sizeof(junk));
	oskr_sim_run_for(sim, 1 * MS);
	ck_assert_uint_eq(oskr_sim_counter(sim, 2, "drop_not_server"), 1);
	oskr_sim_destroy(sim);
}
END_TEST

START_TEST(test_bad_options_refused)
{
	const char *bad[] = {
		"sign: true\n", /* typo of `signed` */
		"client_table_size: 0\n",
		"client_table_size: -1\n",
		"retransmit_ms: 0\n",
		"signed: maybe\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct oskr_sim_config c = {
			.plugin = loaded.descriptor,
			.replica_count = 1,
			.client_count = 1,
			.protocol_options = bad[i],
		};
		struct oskr_sim *sim = NULL;
		ck_assert_msg(oskr_sim_create(&sim, &c) == -EINVAL, "%s",
			      bad[i]);
	}
}
END_TEST

START_TEST(test_determinism)
{
	uint64_t trace[2];
	for (int i = 0; i < 2; i++) {
		struct oskr_sim *sim = make_sim(1, 4, 77, "retransmit_ms: 1\n",
						NULL, 0.1, 0.1, false);
		ck_assert_uint_eq(oskr_sim_run_workload(sim, 500,
							100000 * MS, NULL,
							NULL),
				  500);
		trace[i] = oskr_sim_trace_digest(sim);
		oskr_sim_destroy(sim);
	}
	ck_assert_uint_eq(trace[0], trace[1]);
}
END_TEST

static Suite *unreplicated_suite(void)
{
	Suite *s = suite_create("unreplicated");
	TCase *codec = tcase_create("codec");
	tcase_add_test(codec, test_codec_request_round_trip);
	tcase_add_test(codec, test_codec_reply_round_trip);
	tcase_add_test(codec, test_codec_garbage);
	suite_add_tcase(s, codec);

	TCase *sim = tcase_create("sim");
	tcase_set_timeout(sim, 60);
	tcase_add_checked_fixture(sim, load_plugin, unload_plugin);
	tcase_add_test(sim, test_no_faults);
	tcase_add_test(sim, test_drops_and_duplicates_execute_once);
	tcase_add_test(sim, test_signed_fast);
	tcase_add_test(sim, test_signed_p256);
	tcase_add_test(sim, test_signed_client_refuses_unsigned_reply);
	tcase_add_test(sim, test_kv_results);
	tcase_add_test(sim, test_malformed_requests_dropped);
	tcase_add_test(sim, test_stale_and_duplicate_requests);
	tcase_add_test(sim, test_client_table_eviction);
	tcase_add_test(sim, test_three_replicas_others_idle);
	tcase_add_test(sim, test_bad_options_refused);
	tcase_add_test(sim, test_determinism);
	suite_add_tcase(s, sim);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(unreplicated_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
