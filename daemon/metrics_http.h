/* SPDX-License-Identifier: MIT */
/*
 * GET /metrics over HTTP for Prometheus to scrape (config metrics_http),
 * served by libmicrohttpd: the same text as `oskrctl metrics`. Linked into
 * oskrd only (the rest of the host does not need libmicrohttpd).
 */
#ifndef OSKR_DAEMON_METRICS_HTTP_H
#define OSKR_DAEMON_METRICS_HTTP_H

#include "control.h"

struct oskr_metrics_http;

/** Listen on config->metrics_http ("ip:port", "%i" expanded) and answer
 *  GET /metrics for @p target. Returns 0, or a negative errno with *err
 *  (the address and why: in use, not an address, …). */
int oskr__metrics_http_start(struct oskr_metrics_http **out,
			     const struct oskr_control_target *target,
			     char **err);
/** Stop answering and free. NULL-safe. */
void oskr__metrics_http_stop(struct oskr_metrics_http *http);

#endif
