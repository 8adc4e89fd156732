/* SPDX-License-Identifier: MIT */
/*
 * PBFT wire decoder (plugins/pbft/codec.c, compiled in directly: the
 * plugin's codec needs nothing of the host). Every message a replica
 * receives goes through oskr__pbft_decode before any signature is
 * checked, so this is the first code a Byzantine peer or client reaches.
 *
 * Each input is decoded for n = 4 and n = 64 (the plugin's maximum).
 * Properties: a refusal names a reason; a decoded message's pointers
 * (op, batch, result, signature, certificate lists) stay inside the input;
 * every signer id is below n; the validated lists iterate to exactly
 * their counts with the list readers; batches parse with batch_each.
 */
#include <string.h>

#include "fuzz.h"
#include "plugins/pbft/codec.h"

struct batch_check {
	const uint8_t *base;
	size_t size;
	unsigned requests;
};

static void check_request(const uint8_t *base, size_t size,
			  const struct pbft_request *req)
{
	FUZZ_CHECK(fuzz_inside(base, size, req->op, req->op_len));
	fuzz_touch(req->op, req->op_len);
}

static void on_request(void *arg, const struct pbft_request *req)
{
	struct batch_check *check = arg;
	check_request(check->base, check->size, req);
	check->requests++;
}

static void check_batch(const uint8_t *base, size_t size,
			const uint8_t *batch, size_t batch_len)
{
	FUZZ_CHECK(fuzz_inside(base, size, batch, batch_len));
	struct batch_check check = { .base = base, .size = size };
	FUZZ_CHECK(oskr__pbft_batch_each(batch, batch_len, on_request,
					 &check) == 0);
	FUZZ_CHECK(batch_len >= 4);
	uint32_t count = (uint32_t)batch[0] | (uint32_t)batch[1] << 8 |
			 (uint32_t)batch[2] << 16 | (uint32_t)batch[3] << 24;
	FUZZ_CHECK(check.requests == count);
}

static void check_sig_list(const uint8_t *base, size_t size,
			   const struct pbft_sig_list *list, uint32_t n)
{
	FUZZ_CHECK(fuzz_inside(base, size, list->data, list->len));
	struct pbft_reader r = pbft_list_reader(list->data, list->len);
	struct pbft_sig_pair pair;
	unsigned count = 0;
	uint64_t seen = 0;
	while (oskr__pbft_next_sig(&r, &pair)) {
		FUZZ_CHECK(pair.replica < n);
		FUZZ_CHECK(!(seen & (UINT64_C(1) << pair.replica)));
		seen |= UINT64_C(1) << pair.replica;
		FUZZ_CHECK(pair.sig_len >= 1 &&
			   pair.sig_len <= OSKR_SIGNATURE_MAX);
		FUZZ_CHECK(fuzz_inside(base, size, pair.sig, pair.sig_len));
		fuzz_touch(pair.sig, pair.sig_len);
		count++;
	}
	FUZZ_CHECK(!r.bad && count == list->count);
}

static void check_message(const uint8_t *data, size_t size, uint32_t n,
			  const struct pbft_msg *m)
{
	FUZZ_CHECK(m->raw == data && m->raw_len == size);
	if (m->type != PBFT_REQUEST) {
		FUZZ_CHECK(m->replica < n);
		FUZZ_CHECK(m->signed_body == data && m->signed_len < size);
		FUZZ_CHECK(m->sig_len >= 1 && m->sig_len <= OSKR_SIGNATURE_MAX);
		FUZZ_CHECK(fuzz_inside(data, size, m->sig, m->sig_len));
	}
	switch (m->type) {
	case PBFT_REQUEST:
	case PBFT_RELAY:
		check_request(data, size, &m->request);
		break;
	case PBFT_PRE_PREPARE:
		check_batch(data, size, m->order.batch, m->order.batch_len);
		break;
	case PBFT_REPLY:
		FUZZ_CHECK(fuzz_inside(data, size, m->reply.result,
				       m->reply.result_len));
		break;
	case PBFT_STABLE:
		check_sig_list(data, size, &m->checkpoint.proof, n);
		break;
	case PBFT_VIEW_CHANGE: {
		check_sig_list(data, size, &m->view_change.proof, n);
		FUZZ_CHECK(fuzz_inside(data, size, m->view_change.prepared,
				       m->view_change.prepared_len));
		struct pbft_reader r = pbft_list_reader(
			m->view_change.prepared, m->view_change.prepared_len);
		struct pbft_prepared_cert cert;
		unsigned count = 0;
		uint64_t last_seq = 0;
		while (oskr__pbft_next_prepared(&r, &cert)) {
			FUZZ_CHECK(count == 0 || cert.seq > last_seq);
			last_seq = cert.seq;
			FUZZ_CHECK(fuzz_inside(data, size, cert.pp_sig,
					       cert.pp_sig_len));
			check_sig_list(data, size, &cert.prepares, n);
			count++;
		}
		FUZZ_CHECK(!r.bad &&
			   count == m->view_change.prepared_count);
		break;
	}
	case PBFT_NEW_VIEW: {
		struct pbft_reader r = pbft_list_reader(
			m->new_view.vcs,
			(size_t)m->new_view.vc_count * (2 + PBFT_DIGEST));
		FUZZ_CHECK(fuzz_inside(data, size, r.data, r.len));
		uint16_t replica;
		const uint8_t *digest;
		unsigned count = 0;
		while (oskr__pbft_next_vc_ref(&r, &replica, &digest)) {
			FUZZ_CHECK(replica < n);
			FUZZ_CHECK(fuzz_inside(data, size, digest,
					       PBFT_DIGEST));
			count++;
		}
		FUZZ_CHECK(!r.bad && count == m->new_view.vc_count);
		FUZZ_CHECK(fuzz_inside(data, size, m->new_view.o,
				       m->new_view.o_len));
		r = pbft_list_reader(m->new_view.o, m->new_view.o_len);
		struct pbft_o_entry entry;
		count = 0;
		while (oskr__pbft_next_o_entry(&r, &entry)) {
			FUZZ_CHECK(entry.seq == m->new_view.min_s + 1 + count);
			FUZZ_CHECK(fuzz_inside(data, size, entry.sig,
					       entry.sig_len));
			count++;
		}
		FUZZ_CHECK(!r.bad && count == m->new_view.o_count);
		FUZZ_CHECK(m->new_view.max_s - m->new_view.min_s ==
			   m->new_view.o_count);
		break;
	}
	case PBFT_FETCH_VIEW_CHANGE:
		FUZZ_CHECK(m->fetch_view.target < n);
		break;
	case PBFT_ENTRY:
		check_sig_list(data, size, &m->entry.commits, n);
		check_batch(data, size, m->entry.batch, m->entry.batch_len);
		break;
	case PBFT_BATCH:
		check_batch(data, size, m->batch.batch, m->batch.batch_len);
		break;
	case PBFT_CHUNK:
		FUZZ_CHECK(fuzz_inside(data, size, m->chunk.data,
				       m->chunk.data_len));
		FUZZ_CHECK(m->chunk.offset <= m->chunk.total &&
			   m->chunk.total - m->chunk.offset >=
				   m->chunk.data_len);
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t replica_counts[] = { 4, PBFT_MAX_REPLICAS };
	for (size_t i = 0; i < 2; i++) {
		struct pbft_msg m;
		const char *why = NULL;
		int rc = oskr__pbft_decode(data, size, replica_counts[i], &m,
					   &why);
		if (rc) {
			FUZZ_CHECK(rc == -EBADMSG);
			FUZZ_CHECK(why && why[0]);
			continue;
		}
		check_message(data, size, replica_counts[i], &m);
	}
	/* The batch decoder on its own (state transfer hands it batches). */
	oskr__pbft_batch_each(data, size, NULL, NULL);
	return 0;
}
