/* SPDX-License-Identifier: MIT */
/*
 * The Prometheus scrape endpoint: GET /metrics (and HEAD) answers the
 * text `oskrctl metrics` prints (Prometheus text format 0.0.4); any other
 * path is 404, any other method 405. libmicrohttpd (Debian's
 * libmicrohttpd-dev) parses HTTP: a hand-written parser on a port that
 * any local process can reach is exactly the code we should not own.
 *
 * One internal polling thread, at most OSKR_CONTROL_MAX_CONNECTIONS
 * connections, each closed after OSKR_CONTROL_TIMEOUT_MS of silence, and a
 * small per-connection memory limit (requests are a few hundred bytes):
 * a slow or hostile client costs one connection slot, never a worker. The
 * answer is built from relaxed atomics and counters, as for the control
 * socket.
 */
#define _GNU_SOURCE
#include "metrics_http.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "config.h"
#include "log.h"

struct oskr_metrics_http {
	struct MHD_Daemon *daemon;
	struct oskr_control_target target;
	char *listen; /* "%i" expanded, for log lines */
};

/* libmicrohttpd's own diagnostics go to our log. */
static void mhd_log(void *arg, const char *fmt, va_list ap)
{
	char line[256];
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t len = strlen(line);
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	OSKR_WARN("metrics_http: %s", line);
}

static enum MHD_Result reply(struct MHD_Connection *connection,
			     unsigned status, const char *content_type,
			     const char *body, size_t len)
{
	struct MHD_Response *response = MHD_create_response_from_buffer(
		len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!response)
		return MHD_NO;
	MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
				content_type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW,
					"GET, HEAD");
	enum MHD_Result queued =
		MHD_queue_response(connection, status, response);
	MHD_destroy_response(response);
	return queued;
}

static enum MHD_Result answer(void *arg, struct MHD_Connection *connection,
			      const char *url, const char *method,
			      const char *version, const char *upload_data,
			      size_t *upload_data_size, void **request_state)
{
	struct oskr_metrics_http *http = arg;
	static const char text[] = "text/plain; charset=utf-8";
	bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
		   strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;

	/* A request body (only a non-GET has one) is read and ignored;
	 * libmicrohttpd calls again for each part and once at the end. */
	if (!get && !*request_state) {
		*request_state = http;
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!get) {
		static const char body[] = "only GET /metrics is served\n";
		return reply(connection, MHD_HTTP_METHOD_NOT_ALLOWED, text,
			     body, sizeof(body) - 1);
	}
	if (strcmp(url, "/metrics") != 0) {
		static const char body[] = "not found: try /metrics\n";
		return reply(connection, MHD_HTTP_NOT_FOUND, text, body,
			     sizeof(body) - 1);
	}
	struct oskr__text out;
	oskr__text_init(&out, OSKR_CONTROL_RESPONSE_MAX);
	int rc = oskr__control_answer(&http->target, "metrics", &out);
	enum MHD_Result result;
	if (rc < 0 || out.overflow || !out.data) {
		static const char body[] = "metrics unavailable\n";
		result = reply(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, text,
			       body, sizeof(body) - 1);
	} else {
		result = reply(connection, MHD_HTTP_OK,
			       "text/plain; version=0.0.4; charset=utf-8",
			       out.data, out.len);
	}
	oskr__text_free(&out);
	return result;
}

int oskr__metrics_http_start(struct oskr_metrics_http **out,
			     const struct oskr_control_target *target,
			     char **err)
{
	const char *configured = target->config->metrics_http;
	if (!configured)
		return oskr__errorf(err, "no metrics_http configured");
	struct oskr_metrics_http *http = calloc(1, sizeof(*http));
	char *listen = oskr__expand_replica_id(configured, target->replica_id);
	if (!http || !listen) {
		free(http);
		free(listen);
		return oskr__errorf(err, "out of memory");
	}
	http->target = *target;
	http->listen = listen;
	struct sockaddr_storage address;
	socklen_t address_len;
	if (oskr__parse_ip_port(listen, &address, &address_len) < 0) {
		oskr__errorf(err,
			     "%s: metrics_http: '%s' is not ip:port (like "
			     "127.0.0.1:9464 or [::1]:9464)",
			     target->config->file, listen);
		goto err_free;
	}
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	if (address.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	uint16_t port = ntohs(address.ss_family == AF_INET6
				      ? ((struct sockaddr_in6 *)&address)->sin6_port
				      : ((struct sockaddr_in *)&address)->sin_port);
	/* The logger first: options before it would log to stderr. */
	http->daemon = MHD_start_daemon(
		flags, port, NULL, NULL, answer, http,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&address,
		MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)OSKR_CONTROL_MAX_CONNECTIONS,
		MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)(OSKR_CONTROL_TIMEOUT_MS / 1000),
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
		MHD_OPTION_END);
	if (!http->daemon) {
		/* libmicrohttpd logged why (mhd_log: bind, listen, …). */
		oskr__errorf(err,
			     "metrics_http: cannot serve on %s (see the "
			     "warning above; another oskrd on the same port? "
			     "use %%i in the port)",
			     listen);
		goto err_free;
	}
	OSKR_INFO("metrics_http: serving http://%s/metrics", listen);
	*out = http;
	return 0;

err_free:
	free(http->listen);
	free(http);
	return -EINVAL;
}

void oskr__metrics_http_stop(struct oskr_metrics_http *http)
{
	if (!http)
		return;
	MHD_stop_daemon(http->daemon);
	free(http->listen);
	free(http);
}
