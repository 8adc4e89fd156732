/* SPDX-License-Identifier: MIT */
/*
 * protocol.options for hotstuff. Every key is validated with its range;
 * unknown keys are refused (a typo must not silently fall back to a
 * default). See docs/hotstuff.md for the meaning of each.
 */
#include "hotstuff.h"

#define MS 1000000ull

static const char *const allowed_keys[] = {
	"block_size",
	"adaptive",
	"batch_timeout_ms",
	"view_timeout_ms",
	"backoff",
	"max_view_timeout_ms",
	"retain_blocks",
	"max_pending",
	"client_table_size",
	"max_uncommitted",
	"max_orphans",
	"fetch_timeout_ms",
	"fetch_blocks",
	"client_retry_ms",
	"verify_split",
	"checkpoint_interval",
	"leader_reputation",
	"reputation_window",
	"round_robin_every",
	NULL,
};

int oskr__hs_options_read(const struct oskr_host *host,
			  const struct oskr_conf *conf,
			  struct oskr__hs_options *o)
{
	uint64_t batch_ms, view_ms, max_view_ms, fetch_ms, retry_ms;
	int err = 0;

	if (host->conf_check_keys(conf, allowed_keys))
		return -EINVAL;
	err |= host->conf_u64(conf, "block_size", 1, 10000, 100, &o->block_size);
	err |= host->conf_bool(conf, "adaptive", true, &o->adaptive);
	err |= host->conf_ms(conf, "batch_timeout_ms", 0, 10000, 2, &batch_ms);
	err |= host->conf_ms(conf, "view_timeout_ms", 1, 3600000, 500, &view_ms);
	err |= host->conf_u64(conf, "backoff", 1, 16, 2, &o->backoff);
	err |= host->conf_ms(conf, "max_view_timeout_ms", 1, 86400000, 60000,
			     &max_view_ms);
	err |= host->conf_u64(conf, "retain_blocks", 4, 1000000, 1024,
			      &o->retain_blocks);
	err |= host->conf_u64(conf, "max_pending", 1, 10000000, 100000,
			      &o->max_pending);
	err |= host->conf_u64(conf, "client_table_size", 1, 10000000, 100000,
			      &o->client_table_size);
	err |= host->conf_u64(conf, "max_uncommitted", 16, 1000000, 4096,
			      &o->max_uncommitted);
	err |= host->conf_u64(conf, "max_orphans", 4, 100000, 1024,
			      &o->max_orphans);
	err |= host->conf_ms(conf, "fetch_timeout_ms", 1, 600000, 100,
			     &fetch_ms);
	err |= host->conf_u64(conf, "fetch_blocks", 1, OSKR__HS_MAX_FETCH_BLOCKS,
			      32, &o->fetch_blocks);
	err |= host->conf_ms(conf, "client_retry_ms", 1, 3600000, 1000,
			     &retry_ms);
	err |= host->conf_u64(conf, "verify_split", 1, OSKR__HS_MAX_REPLICAS, 8,
			      &o->verify_split);
	err |= host->conf_u64(conf, "checkpoint_interval", 0, 1000000000, 128,
			      &o->checkpoint_interval);
	err |= host->conf_bool(conf, "leader_reputation", true,
			       &o->leader_reputation);
	err |= host->conf_u64(conf, "reputation_window", 1, 10000, 16,
			      &o->reputation_window);
	err |= host->conf_u64(conf, "round_robin_every", 1, 1000000, 32,
			      &o->round_robin_every);
	if (err)
		return -EINVAL;
	/* A cap below the base timeout would shrink the timer: raise it
	 * (documented in docs/hotstuff.md). */
	if (max_view_ms < view_ms)
		max_view_ms = view_ms;
	o->batch_timeout_ns = batch_ms * MS;
	o->view_timeout_ns = view_ms * MS;
	o->max_view_timeout_ns = max_view_ms * MS;
	o->fetch_timeout_ns = fetch_ms * MS;
	o->client_retry_ns = retry_ms * MS;
	return 0;
}

int oskr__hs_config_check(const struct oskr_host *host,
			  const struct oskr_conf *conf, uint32_t replica_count,
			  uint32_t fault_count)
{
	struct oskr__hs_options o;

	/* HotStuff needs n >= 3f + 1; signer sets are 64-bit masks. */
	if (replica_count < 3 * fault_count + 1 ||
	    replica_count > OSKR__HS_MAX_REPLICAS || replica_count == 0)
		return -EINVAL;
	return oskr__hs_options_read(host, conf, &o);
}
