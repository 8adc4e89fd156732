/* SPDX-License-Identifier: MIT */
/* protocol.options for PBFT: every key validated, with the host's
 * "file:line:col: protocol.options.KEY: why" messages. docs/pbft.md lists
 * them with their defaults. */
#include "pbft.h"

static const char *const pbft_option_keys[] = {
	"batch_size",
	"adaptive",
	"max_inflight",
	"batch_timeout_ms",
	"checkpoint_interval",
	"watermark_window",
	"view_change_timeout_ms",
	"retransmit_ms",
	"client_table_size",
	"max_pending",
	"client_retry_ms",
	NULL,
};

int oskr__pbft_options_read(const struct oskr_host *host,
			    const struct oskr_conf *conf,
			    uint32_t replica_count, uint32_t fault_count,
			    struct pbft_options *out)
{
	uint64_t v;
	int err;

	if (replica_count < 3 * fault_count + 1 ||
	    replica_count > PBFT_MAX_REPLICAS || fault_count < 1) {
		/* PBFT needs n >= 3f + 1 with f >= 1 (and n <= 64 here, vote
		 * sets are 64-bit masks). The host has no instance to log
		 * through here; it reports the refused shape itself. */
		return -EINVAL;
	}
	if ((err = host->conf_check_keys(conf, pbft_option_keys)))
		return err;

#define READ_U64(key, min, max, dflt, field)                                \
	do {                                                                \
		if ((err = host->conf_u64(conf, key, min, max, dflt, &v)))  \
			return err;                                         \
		out->field = v;                                             \
	} while (0)
#define READ_MS(key, min, max, dflt, field)                                 \
	do {                                                                \
		if ((err = host->conf_ms(conf, key, min, max, dflt, &v)))   \
			return err;                                         \
		out->field = v * PBFT_MS;                                   \
	} while (0)

	READ_U64("batch_size", 1, 100000, 64, batch_size);
	if ((err = host->conf_bool(conf, "adaptive", true, &out->adaptive)))
		return err;
	READ_U64("max_inflight", 1, 1000, 2, max_inflight);
	READ_MS("batch_timeout_ms", 0, 10000, 1, batch_timeout_ns);
	READ_U64("checkpoint_interval", 1, 1000000, 100, checkpoint_interval);
	/* L >= 2K so that a new checkpoint can be taken while the previous
	 * one is becoming stable (TOCS'02 §4.3). */
	READ_U64("watermark_window", 2 * (uint64_t)out->checkpoint_interval,
		 2000000, 2 * (uint64_t)out->checkpoint_interval,
		 watermark_window);
	/* Absent keys read as 0 with this default; present ones are >= 1. */
	uint64_t given_interval = 0, given_window = 0;
	host->conf_u64(conf, "checkpoint_interval", 0, UINT64_MAX, 0,
		       &given_interval);
	host->conf_u64(conf, "watermark_window", 0, UINT64_MAX, 0,
		       &given_window);
	out->window_auto = given_interval == 0 && given_window == 0;
	if (out->max_inflight > out->watermark_window) {
		/* Reuse the host's error format: re-read with a max that
		 * the value exceeds. */
		host->conf_u64(conf, "max_inflight", 1, out->watermark_window,
			       2, &v);
		return -EINVAL;
	}
	READ_MS("view_change_timeout_ms", 1, 3600000, 1000,
		view_change_timeout_ns);
	READ_MS("retransmit_ms", 1, 600000, 100, retransmit_ns);
	READ_U64("client_table_size", 1, 100000000, 65536, client_table_size);
	READ_U64("max_pending", 1, 10000000, 65536, max_pending);
	READ_MS("client_retry_ms", 1, 3600000, 500, client_retry_ns);
#undef READ_U64
#undef READ_MS
	return 0;
}
