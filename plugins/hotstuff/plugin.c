/* SPDX-License-Identifier: MIT */
/*
 * hotstuff: chained (event-driven) HotStuff, Yin, Malkhi, Reiter, Golan
 * Gueta and Abraham, "HotStuff: BFT Consensus with Linearity and
 * Responsiveness", PODC 2019, Algorithms 4 and 5. The descriptor and the
 * replica's life cycle; the protocol lives in the files hotstuff.h lists.
 */
#include <stdlib.h>

#include "client.h"
#include "hotstuff.h"

static int replica_init(struct oskr_ctx *ctx, void *state)
{
	struct oskr__hs_replica *rs = state;
	const struct oskr_instance_info *info = ctx->host->info(ctx);
	int err;

	if (info->replica_count == 0 ||
	    info->replica_count > OSKR__HS_MAX_REPLICAS ||
	    info->replica_count < 3 * info->fault_count + 1 ||
	    info->replica_id < 0 ||
	    (uint32_t)info->replica_id >= info->replica_count) {
		ctx->host->log(ctx, OSKR_LOG_ERROR,
			       "hotstuff needs 3f+1 <= n <= %u replicas "
			       "(n=%u f=%u id=%d)",
			       OSKR__HS_MAX_REPLICAS, info->replica_count,
			       info->fault_count, info->replica_id);
		return -EINVAL;
	}
	err = oskr__hs_options_read(ctx->host, ctx->host->conf(ctx), &rs->opt);
	if (err)
		return err;
	rs->n = info->replica_count;
	rs->f = info->fault_count;
	/* |V[b]| >= n - f (Alg. 4 onReceiveVote) */
	rs->quorum = rs->n - rs->f;
	rs->id = (uint32_t)info->replica_id;
	rs->max_message = info->max_message;
	rs->worker_count = info->worker_count;
	rs->result_scratch_size = rs->max_message;
	rs->result_scratch = malloc(rs->result_scratch_size);
	rs->scratch_qc = malloc(sizeof(*rs->scratch_qc));
	if (!rs->result_scratch || !rs->scratch_qc) {
		err = -ENOMEM;
		goto err_free;
	}
	err = oskr__hs_requests_init(&rs->requests, &rs->opt);
	if (err)
		goto err_free;
	err = oskr__hs_core_init(ctx, rs);
	if (err)
		goto err_requests;
	err = oskr__hs_resume(ctx, rs);
	if (err)
		goto err_requests;
	rs->initialized = true;
	oskr__hs_publish_status(ctx, rs);
	return 0;

err_requests:
	oskr__hs_transfer_fini(ctx, rs);
	oskr__hs_core_fini(ctx, rs);
	oskr__hs_requests_fini(&rs->requests);
err_free:
	free(rs->result_scratch);
	free(rs->scratch_qc);
	rs->result_scratch = NULL;
	rs->scratch_qc = NULL;
	return err;
}

static void replica_fini(struct oskr_ctx *ctx, void *state)
{
	struct oskr__hs_replica *rs = state;

	if (!rs->initialized)
		return;
	oskr__hs_pacemaker_fini(ctx, rs);
	oskr__hs_proposer_fini(ctx, rs);
	oskr__hs_fetch_fini(ctx, rs);
	oskr__hs_transfer_fini(ctx, rs);
	oskr__hs_requests_fini(&rs->requests);
	oskr__hs_core_fini(ctx, rs);
	free(rs->result_scratch);
	free(rs->scratch_qc);
	rs->result_scratch = NULL;
	rs->scratch_qc = NULL;
	rs->initialized = false;
}

OSKR_PLUGIN_EXPORT = {
	OSKR_PLUGIN_HEADER,
	.name = OSKR__HS_NAME,
	.version = "1.0.0",
	.description = "chained HotStuff (PODC'19 Alg. 4-5): rotating "
		       "leaders, pacemaker, batching, block fetch",
	.replica_state_size = sizeof(struct oskr__hs_replica),
	.client_state_size = sizeof(struct oskr__hs_client),
	.config_check = oskr__hs_config_check,
	.replica_init = replica_init,
	.replica_receive = oskr__hs_replica_receive,
	.replica_fini = replica_fini,
	.client_init = oskr__hs_client_init,
	.client_invoke = oskr__hs_client_invoke,
	.client_receive = oskr__hs_client_receive,
	.client_fini = oskr__hs_client_fini,
};
