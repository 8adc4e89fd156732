/* SPDX-License-Identifier: MIT */
/* The control socket: the status/metrics/config renderers (format,
 * merging of counters, histogram shape, redaction) and the server (mode
 * 0660, stale and live socket files, bounded requests, slow clients,
 * removal on stop). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/config.h"
#include "daemon/control.h"

/* ---- renderers ---- */

static struct oskr_control_view sample_view(void)
{
	return (struct oskr_control_view){
		.replica_id = 1,
		.protocol = "pbft",
		.protocol_version = "1.0.0",
		.app = "kv",
		.workers = 2,
		.view = 3,
		.committed = 120,
		.executed = 119,
		.leader = 1,
		.uptime_ns = 2500000000ull,
		.stateless_queued = 4,
		.stateful_queued = 5,
	};
}

static char *render_status(const struct oskr_control_view *view)
{
	struct oskr__text out;
	oskr__text_init(&out, 1 << 20);
	oskr__control_render_status(&out, view);
	ck_assert(!out.overflow);
	return out.data;
}

START_TEST(test_status_lines)
{
	struct oskr_control_view view = sample_view();
	char *text = render_status(&view);
	static const char *const expected[] = {
		"replica: 1\n", "protocol: pbft\n", "protocol_version: 1.0.0\n",
		"app: kv\n", "role: leader\n", "view: 3\n", "leader: 1\n",
		"last_committed: 120\n", "last_executed: 119\n",
		"uptime_seconds: 2.500\n", "stateless_queue: 4\n",
		"stateful_queue: 5\n", "state_dir: none\n",
	};
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
		ck_assert_msg(strstr(text, expected[i]), "missing %s in\n%s",
			      expected[i], text);
	/* every line is "key: value" */
	for (char *line = text; *line;) {
		char *end = strchr(line, '\n');
		ck_assert_ptr_nonnull(end);
		char *colon = strstr(line, ": ");
		ck_assert_msg(colon && colon < end, "bad line in\n%s", text);
		line = end + 1;
	}
	free(text);

	view.leader = 0;
	text = render_status(&view);
	ck_assert(strstr(text, "role: backup\n"));
	free(text);
	view.leader = -1;
	text = render_status(&view);
	ck_assert(strstr(text, "role: unknown\n"));
	free(text);

	view.state_dir = "/var/lib/oskr";
	view.snapshots_written = 2;
	view.snapshot_applied = 77;
	text = render_status(&view);
	ck_assert(strstr(text, "state_dir: /var/lib/oskr\n"));
	ck_assert(strstr(text, "snapshot_applied: 77\n"));
	ck_assert(strstr(text, "snapshots_written: 2\n"));
	free(text);
}
END_TEST

/* The value of the line that starts with @p series followed by a blank. */
static bool series_value(const char *text, const char *series,
			 unsigned long long *value)
{
	size_t len = strlen(series);
	for (const char *line = text; line && *line;) {
		if (!strncmp(line, series, len) && line[len] == ' ')
			return sscanf(line + len + 1, "%llu", value) == 1;
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return false;
}

static unsigned count_occurrences(const char *text, const char *needle)
{
	unsigned n = 0;
	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

START_TEST(test_metrics_format)
{
	struct oskr_control_view view = sample_view();
	view.protocol = "we\"ird\\name";
	view.state_dir = "/tmp/x";
	view.snapshots_written = 3;
	const struct oskr_control_counter counters[] = {
		{"commits", 7},
		{"drop_no_buffer", 3}, /* the plugin's */
		{"requests", 9},
		{"drop_bad_signature", 1},
		{"drop_no_buffer", 2}, /* the transport's: same series */
		{"drops", 4},
		{"Bad-Name", 1},
		{"snapshots_written", 10}, /* a plugin reusing a host name */
	};
	struct oskr__latency_totals latency[OSKR_TASK_KINDS];
	memset(latency, 0, sizeof(latency));
	latency[OSKR_TASK_STATELESS].counts[0] = 5;
	latency[OSKR_TASK_STATELESS].counts[3] = 2;
	latency[OSKR_TASK_STATELESS].counts[OSKR_LATENCY_BUCKETS] = 1;
	latency[OSKR_TASK_STATELESS].sum_ns = 2000000000ull;

	struct oskr__text out;
	oskr__text_init(&out, 1 << 20);
	oskr__control_render_metrics(&out, &view, counters,
				     sizeof(counters) / sizeof(counters[0]),
				     latency);
	ck_assert(!out.overflow);
	const char *text = out.data;
	unsigned long long value;

	ck_assert(strstr(text, "protocol=\"we\\\"ird\\\\name\""));
	ck_assert(series_value(text, "oskr_commits_total", &value));
	ck_assert_uint_eq(value, 7);
	ck_assert(series_value(text, "oskr_drops_total{reason=\"no_buffer\"}",
			       &value));
	ck_assert_uint_eq(value, 5);
	ck_assert(series_value(text,
			       "oskr_drops_total{reason=\"bad_signature\"}",
			       &value));
	ck_assert_uint_eq(value, 1);
	ck_assert(series_value(text,
			       "oskr_drops_total{reason=\"unspecified\"}",
			       &value));
	ck_assert_uint_eq(value, 4);
	ck_assert(series_value(text, "oskr_Bad_Name_total", &value));
	ck_assert(series_value(text, "oskr_snapshots_written_total", &value));
	ck_assert_uint_eq(value, 13);
	ck_assert(series_value(text, "oskr_view", &value));
	ck_assert_uint_eq(value, 3);
	ck_assert(series_value(text, "oskr_queue_depth{queue=\"stateful\"}",
			       &value));
	ck_assert_uint_eq(value, 5);
	ck_assert(series_value(text, "oskr_is_leader", &value));
	ck_assert_uint_eq(value, 1);
	/* well-known counters are there even before anything counted them */
	ck_assert(series_value(text, "oskr_view_changes_total", &value));
	ck_assert_uint_eq(value, 0);
	ck_assert(series_value(text, "oskr_checkpoints_total", &value));
	ck_assert_uint_eq(value, 0);

	/* one HELP and one TYPE per family; no series twice */
	ck_assert_uint_eq(count_occurrences(text, "# TYPE oskr_drops_total "),
			  1);
	ck_assert_uint_eq(count_occurrences(text,
					    "# TYPE oskr_snapshots_written_total"),
			  1);
	ck_assert_uint_eq(count_occurrences(text, "reason=\"no_buffer\""), 1);
	ck_assert_uint_eq(count_occurrences(text, "# TYPE "),
			  count_occurrences(text, "# HELP "));
	ck_assert_uint_eq(count_occurrences(text, "\noskr_drops_total{"), 3);
	/* the drop family is contiguous: its TYPE line, then its 3 series */
	const char *drops = strstr(text, "# TYPE oskr_drops_total counter\n");
	ck_assert_ptr_nonnull(drops);
	const char *p = strchr(drops, '\n') + 1;
	for (int i = 0; i < 3; i++) {
		ck_assert_msg(!strncmp(p, "oskr_drops_total{", 17), "%s", p);
		p = strchr(p, '\n') + 1;
	}

	/* histogram: cumulative buckets, +Inf equals _count */
	ck_assert(strstr(text, "# TYPE oskr_task_duration_seconds histogram\n"));
	ck_assert(series_value(text,
			       "oskr_task_duration_seconds_bucket{stage="
			       "\"stateless\",le=\"1e-06\"}",
			       &value));
	ck_assert_uint_eq(value, 5);
	ck_assert(series_value(text,
			       "oskr_task_duration_seconds_bucket{stage="
			       "\"stateless\",le=\"1e-05\"}",
			       &value));
	ck_assert_uint_eq(value, 7);
	ck_assert(series_value(text,
			       "oskr_task_duration_seconds_bucket{stage="
			       "\"stateless\",le=\"+Inf\"}",
			       &value));
	ck_assert_uint_eq(value, 8);
	ck_assert(series_value(text,
			       "oskr_task_duration_seconds_count{stage="
			       "\"stateless\"}",
			       &value));
	ck_assert_uint_eq(value, 8);
	ck_assert(strstr(text, "oskr_task_duration_seconds_sum{stage="
			       "\"stateless\"} 2.000000000\n"));
	ck_assert(series_value(text,
			       "oskr_task_duration_seconds_count{stage="
			       "\"stateful\"}",
			       &value));
	ck_assert_uint_eq(value, 0);
	ck_assert_uint_eq(text[out.len - 1], '\n');
	oskr__text_free(&out);
}
END_TEST

START_TEST(test_text_limit)
{
	struct oskr__text out;
	oskr__text_init(&out, 64);
	oskr__text_printf(&out, "%s", "0123456789");
	ck_assert(!out.overflow);
	for (int i = 0; i < 10; i++)
		oskr__text_printf(&out, "%s", "0123456789");
	ck_assert(out.overflow);
	ck_assert_uint_le(out.len, 63);
	ck_assert_uint_eq(strlen(out.data), out.len);
	oskr__text_free(&out);
}
END_TEST

START_TEST(test_config_redacted)
{
	static const char text[] =
		"cluster:\n"
		"  f: 0\n"
		"  replicas:\n"
		"    - address: 127.0.0.1:7001\n"
		"      public_key: keys/replica-0.pub\n"
		"replica:\n"
		"  id: 0\n"
		"  private_key: keys/replica-%i.key\n"
		"protocol:\n"
		"  name: unreplicated\n"
		"  options:\n"
		"    batch: 8\n"
		"    mac_key: 00112233\n"
		"    auth: {api_token: abc, key_file: /etc/oskr/k.pem}\n"
		"    peers: [a, b]\n"
		"app: kv\n"
		"control_socket: /run/oskr/r%i.sock\n"
		"state_dir: /var/lib/oskr/r%i\n";
	struct oskr_config *config = NULL;
	char *err = NULL;
	ck_assert_msg(oskr__config_load_string("/etc/oskr/t.yaml", text,
					       sizeof(text) - 1, &config,
					       &err) == 0,
		      "%s", err ? err : "");
	struct oskr__text out;
	oskr__text_init(&out, 1 << 20);
	oskr__control_render_config(&out, config, 0, "unreplicated",
				    "/usr/lib/oskr/plugins/unreplicated.so");
	const char *shown = out.data;
	static const char *const expected[] = {
		"file: /etc/oskr/t.yaml\n",
		"cluster.n: 1\n",
		"cluster.replicas.0.address: 127.0.0.1:7001\n",
		"replica.private_key: /etc/oskr/keys/replica-%i.key\n",
		"replica.private_key_file: /etc/oskr/keys/replica-0.key\n",
		"protocol.plugin: /usr/lib/oskr/plugins/unreplicated.so\n",
		"protocol.options.batch: 8\n",
		"protocol.options.mac_key: redacted\n",
		"protocol.options.auth.api_token: redacted\n",
		"protocol.options.auth.key_file: /etc/oskr/k.pem\n",
		"protocol.options.peers.1: b\n",
		"app.name: kv\n",
		"control_socket: /run/oskr/r0.sock\n",
		"state_dir: /var/lib/oskr/r0\n",
		"workers: 2\n",
	};
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
		ck_assert_msg(strstr(shown, expected[i]), "missing %s in\n%s",
			      expected[i], shown);
	ck_assert(!strstr(shown, "00112233"));
	ck_assert(!strstr(shown, "abc"));
	oskr__text_free(&out);
	oskr__config_free(config);
}
END_TEST

START_TEST(test_expand_replica_id)
{
	char *path = oskr__expand_replica_id("/run/oskr/%i/s-%i.sock", 12);
	ck_assert_str_eq(path, "/run/oskr/12/s-12.sock");
	free(path);
	path = oskr__expand_replica_id("plain%", 3);
	ck_assert_str_eq(path, "plain%");
	free(path);
}
END_TEST

/* ---- server ---- */

static char dir[64];
static char socket_path[128];

static void server_setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/oskr-control-test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(socket_path, sizeof(socket_path), "%s/control.sock", dir);
}

static void server_teardown(void)
{
	unlink(socket_path);
	rmdir(dir);
}

static int echo_handler(void *arg, const char *command,
			struct oskr__text *out)
{
	if (!strcmp(command, "big")) {
		for (int i = 0; i < 100000; i++)
			oskr__text_printf(out, "line %d of a long answer\n", i);
		return 0;
	}
	if (!strcmp(command, "huge")) {
		/* beyond OSKR_CONTROL_RESPONSE_MAX */
		for (int i = 0; i < 1000000 && !out->overflow; i++)
			oskr__text_printf(out, "%0100d\n", i);
		return 0;
	}
	oskr__text_printf(out, "you said: %s\n", command);
	return 0;
}

static int connect_to(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	strcpy(addr.sun_path, path);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

/* Read until EOF (bounded by a 20 s poll per read); malloc'd. */
static char *read_all(int fd, size_t *len_out)
{
	size_t capacity = 4096, len = 0;
	char *data = malloc(capacity);
	ck_assert_ptr_nonnull(data);
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ck_assert_msg(poll(&pfd, 1, 20000) == 1, "no answer");
		if (len + 1 >= capacity) {
			capacity *= 2;
			data = realloc(data, capacity);
			ck_assert_ptr_nonnull(data);
		}
		ssize_t n = recv(fd, data + len, capacity - len - 1, 0);
		ck_assert_int_ge(n, 0);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	data[len] = '\0';
	if (len_out)
		*len_out = len;
	return data;
}

static char *ask(const char *request, size_t request_len)
{
	int fd = connect_to(socket_path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(send(fd, request, request_len, MSG_NOSIGNAL),
			 (ssize_t)request_len);
	char *answer = read_all(fd, NULL);
	close(fd);
	return answer;
}

START_TEST(test_server_answers)
{
	struct oskr_control *control = NULL;
	char *err = NULL;
	ck_assert_int_eq(oskr__control_listen(&control, socket_path,
					      echo_handler, NULL, &err),
			 0);
	struct stat st;
	ck_assert_int_eq(stat(socket_path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0660);

	char *answer = ask("status\n", 7);
	ck_assert_str_eq(answer, "you said: status\n");
	free(answer);
	/* blanks and CR trimmed; what follows the first line is ignored */
	answer = ask("  metrics \r\nconfig\n", 19);
	ck_assert_str_eq(answer, "you said: metrics\n");
	free(answer);
	/* no newline, then EOF: the request is what came */
	int fd = connect_to(socket_path);
	ck_assert_int_eq(send(fd, "config", 6, MSG_NOSIGNAL), 6);
	shutdown(fd, SHUT_WR);
	answer = read_all(fd, NULL);
	close(fd);
	ck_assert_str_eq(answer, "you said: config\n");
	free(answer);
	answer = ask("\n", 1);
	ck_assert(!strncmp(answer, "error: empty request", 20));
	free(answer);
	/* a large answer arrives whole */
	size_t len = 0;
	fd = connect_to(socket_path);
	ck_assert_int_eq(send(fd, "big\n", 4, MSG_NOSIGNAL), 4);
	answer = read_all(fd, &len);
	close(fd);
	ck_assert(strstr(answer, "line 99999 of a long answer\n"));
	ck_assert_uint_eq(answer[len - 1], '\n');
	free(answer);
	/* an answer beyond the limit becomes an error, not a truncation */
	answer = ask("huge\n", 5);
	ck_assert_msg(!strncmp(answer, "error: the answer to 'huge'", 27),
		      "%.80s", answer);
	free(answer);

	oskr__control_stop(control);
	ck_assert_int_eq(access(socket_path, F_OK), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(test_server_request_bounded)
{
	struct oskr_control *control = NULL;
	char *err = NULL;
	ck_assert_int_eq(oskr__control_listen(&control, socket_path,
					      echo_handler, NULL, &err),
			 0);
	char request[OSKR_CONTROL_REQUEST_MAX + 100];
	memset(request, 'x', sizeof(request));
	int fd = connect_to(socket_path);
	/* the server answers once it has the limit; the rest may not be
	 * read at all */
	ssize_t sent = send(fd, request, sizeof(request),
			    MSG_NOSIGNAL | MSG_DONTWAIT);
	ck_assert_int_ge(sent, OSKR_CONTROL_REQUEST_MAX);
	char *answer = read_all(fd, NULL);
	close(fd);
	ck_assert_msg(strstr(answer, "error: request longer than"), "%s",
		      answer);
	free(answer);
	oskr__control_stop(control);
}
END_TEST

static bool still_connected(int fd)
{
	char byte;
	ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT);
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

START_TEST(test_server_slow_clients)
{
	struct oskr_control *control = NULL;
	char *err = NULL;
	ck_assert_int_eq(oskr__control_listen(&control, socket_path,
					      echo_handler, NULL, &err),
			 0);
	/* clients that connect and say nothing, or half a line */
	int idle[4];
	for (int i = 0; i < 4; i++) {
		idle[i] = connect_to(socket_path);
		ck_assert_int_ge(idle[i], 0);
	}
	ck_assert_int_eq(send(idle[0], "sta", 3, MSG_NOSIGNAL), 3);
	/* another client is answered while they still hang on: they did
	 * not block it (they are only dropped after the connection
	 * timeout) */
	char *answer = ask("status\n", 7);
	ck_assert_str_eq(answer, "you said: status\n");
	free(answer);
	for (int i = 0; i < 4; i++)
		ck_assert(still_connected(idle[i]));
	/* a client that never finishes its request is disconnected */
	struct pollfd pfd = {.fd = idle[1], .events = POLLIN};
	ck_assert_int_eq(poll(&pfd, 1, OSKR_CONTROL_TIMEOUT_MS + 10000), 1);
	char byte;
	ck_assert_int_eq(recv(idle[1], &byte, 1, 0), 0);
	for (int i = 0; i < 4; i++)
		close(idle[i]);
	oskr__control_stop(control);
}
END_TEST

START_TEST(test_server_socket_file)
{
	char *err = NULL;
	struct oskr_control *control = NULL;

	/* a stale socket (its owner died without removing it) is replaced */
	int stale = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	strcpy(addr.sun_path, socket_path);
	ck_assert_int_eq(bind(stale, (struct sockaddr *)&addr, sizeof(addr)),
			 0);
	close(stale);
	ck_assert_int_eq(oskr__control_listen(&control, socket_path,
					      echo_handler, NULL, &err),
			 0);

	/* while it listens, a second server is refused and leaves it be */
	struct oskr_control *second = NULL;
	ck_assert_int_eq(oskr__control_listen(&second, socket_path,
					      echo_handler, NULL, &err),
			 -EADDRINUSE);
	ck_assert_msg(strstr(err, "another process is listening"), "%s", err);
	free(err);
	err = NULL;
	char *answer = ask("ping\n", 5);
	ck_assert_str_eq(answer, "you said: ping\n");
	free(answer);

	/* replaced behind its back: stop does not remove the new file */
	ck_assert_int_eq(unlink(socket_path), 0);
	int other = open(socket_path, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(other, 0);
	close(other);
	oskr__control_stop(control);
	ck_assert_int_eq(access(socket_path, F_OK), 0);

	/* a regular file is never replaced */
	ck_assert_int_eq(oskr__control_listen(&control, socket_path,
					      echo_handler, NULL, &err),
			 -EINVAL);
	ck_assert_msg(strstr(err, "not a socket"), "%s", err);
	free(err);
	err = NULL;
	ck_assert_int_eq(unlink(socket_path), 0);

	/* a path too long for sun_path */
	char long_path[200];
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	ck_assert_int_eq(oskr__control_listen(&control, long_path,
					      echo_handler, NULL, &err),
			 -ENAMETOOLONG);
	free(err);
}
END_TEST

static Suite *control_suite(void)
{
	Suite *suite = suite_create("control");
	TCase *render = tcase_create("render");
	tcase_add_test(render, test_status_lines);
	tcase_add_test(render, test_metrics_format);
	tcase_add_test(render, test_text_limit);
	tcase_add_test(render, test_config_redacted);
	tcase_add_test(render, test_expand_replica_id);
	suite_add_tcase(suite, render);
	TCase *server = tcase_create("server");
	tcase_add_checked_fixture(server, server_setup, server_teardown);
	tcase_set_timeout(server, 40);
	tcase_add_test(server, test_server_answers);
	tcase_add_test(server, test_server_request_bounded);
	tcase_add_test(server, test_server_slow_clients);
	tcase_add_test(server, test_server_socket_file);
	suite_add_tcase(suite, server);
	return suite;
}

int main(void)
{
	SRunner *runner = srunner_create(control_suite());
	srunner_run_all(runner, CK_ENV);
	int failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
