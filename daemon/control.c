/* SPDX-License-Identifier: MIT */
/*
 * The control socket: the server thread (one line command per
 * connection, bounded, non-blocking) and oskrd's handler that answers
 * with the renderers of control_render.c. See control.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "replica.h"

/* ---- server ---- */

enum connection_state {
	CONNECTION_FREE,
	CONNECTION_READING,
	CONNECTION_WRITING,
	/* answered: discard what the client still sends until it closes
	 * (closing with unread input would reset the connection and the
	 * client could lose the answer) */
	CONNECTION_DRAINING,
};

struct connection {
	enum connection_state state;
	int fd;
	uint64_t deadline_ns;
	char request[OSKR_CONTROL_REQUEST_MAX + 1];
	size_t request_len;
	struct oskr__text response;
	size_t sent;
};

struct oskr_control {
	char *path;
	dev_t dev;
	ino_t ino;
	int listen_fd;
	int wake_pipe[2];
	pthread_t thread;
	bool thread_started;
	oskr__control_handler handler;
	void *arg;
	void *owned_arg; /* freed by stop */
	struct connection connections[OSKR_CONTROL_MAX_CONNECTIONS];
};

static uint64_t now_ns(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static void connection_close(struct connection *c)
{
	if (c->state == CONNECTION_FREE)
		return;
	close(c->fd);
	oskr__text_free(&c->response);
	c->state = CONNECTION_FREE;
	c->fd = -1;
}

/* Build the answer for the request read so far and switch to writing. */
static void connection_answer(struct oskr_control *control,
			      struct connection *c, bool too_long)
{
	oskr__text_init(&c->response, OSKR_CONTROL_RESPONSE_MAX);
	c->sent = 0;
	c->state = CONNECTION_WRITING;
	if (too_long) {
		oskr__text_printf(&c->response,
				  "error: request longer than %d bytes\n",
				  OSKR_CONTROL_REQUEST_MAX);
		return;
	}
	c->request[c->request_len] = '\0';
	char *command = c->request;
	command[strcspn(command, "\r\n")] = '\0';
	while (*command == ' ' || *command == '\t')
		command++;
	size_t len = strlen(command);
	while (len && (command[len - 1] == ' ' || command[len - 1] == '\t'))
		command[--len] = '\0';
	if (!command[0]) {
		oskr__text_printf(&c->response,
				  "error: empty request (try: help)\n");
		return;
	}
	control->handler(control->arg, command, &c->response);
	if (c->response.overflow) {
		oskr__text_reset(&c->response);
		oskr__text_printf(&c->response,
				  "error: the answer to '%s' is larger than "
				  "%u bytes (or memory ran out)\n",
				  command, OSKR_CONTROL_RESPONSE_MAX);
	}
}

static void connection_read(struct oskr_control *control,
			    struct connection *c)
{
	for (;;) {
		size_t room = OSKR_CONTROL_REQUEST_MAX - c->request_len;
		if (room == 0) {
			connection_answer(control, c, true);
			return;
		}
		ssize_t n = recv(c->fd, c->request + c->request_len, room,
				 MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				connection_close(c);
			return;
		}
		if (n == 0) {
			/* EOF: whatever came is the request */
			connection_answer(control, c, false);
			return;
		}
		bool line_done = memchr(c->request + c->request_len, '\n',
					(size_t)n) != NULL;
		c->request_len += (size_t)n;
		if (line_done) {
			connection_answer(control, c, false);
			return;
		}
	}
}

static void connection_write(struct connection *c)
{
	while (c->sent < c->response.len) {
		ssize_t n = send(c->fd, c->response.data + c->sent,
				 c->response.len - c->sent,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				connection_close(c);
			return;
		}
		c->sent += (size_t)n;
	}
	shutdown(c->fd, SHUT_WR);
	c->state = CONNECTION_DRAINING;
}

static void connection_drain(struct connection *c)
{
	char discard[512];
	for (;;) {
		ssize_t n = recv(c->fd, discard, sizeof(discard),
				 MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		connection_close(c); /* EOF or error */
		return;
	}
}

static void accept_connections(struct oskr_control *control)
{
	for (;;) {
		struct connection *slot = NULL;
		for (int i = 0; i < OSKR_CONTROL_MAX_CONNECTIONS; i++) {
			if (control->connections[i].state == CONNECTION_FREE) {
				slot = &control->connections[i];
				break;
			}
		}
		if (!slot)
			return; /* the rest wait in the backlog */
		int fd = accept4(control->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				OSKR_WARN("control: accept: %s",
					  strerror(errno));
			return;
		}
		*slot = (struct connection){
			.state = CONNECTION_READING,
			.fd = fd,
			.deadline_ns = now_ns() +
				       OSKR_CONTROL_TIMEOUT_MS * 1000000ull,
		};
	}
}

static void *control_main(void *arg)
{
	struct oskr_control *control = arg;
	struct pollfd fds[2 + OSKR_CONTROL_MAX_CONNECTIONS];
	int owner[2 + OSKR_CONTROL_MAX_CONNECTIONS];
	for (;;) {
		uint64_t now = now_ns();
		uint64_t next_deadline = UINT64_MAX;
		bool room = false;
		nfds_t count = 0;
		fds[count] = (struct pollfd){.fd = control->wake_pipe[0],
					     .events = POLLIN};
		owner[count++] = -1;
		for (int i = 0; i < OSKR_CONTROL_MAX_CONNECTIONS; i++) {
			struct connection *c = &control->connections[i];
			if (c->state == CONNECTION_FREE) {
				room = true;
				continue;
			}
			if (now >= c->deadline_ns) {
				OSKR_DEBUG("control: closing a connection "
					   "that took more than %d ms",
					   OSKR_CONTROL_TIMEOUT_MS);
				connection_close(c);
				room = true;
				continue;
			}
			if (c->deadline_ns < next_deadline)
				next_deadline = c->deadline_ns;
			fds[count] = (struct pollfd){
				.fd = c->fd,
				.events = c->state == CONNECTION_WRITING
						  ? POLLOUT
						  : POLLIN,
			};
			owner[count++] = i;
		}
		if (room) {
			fds[count] = (struct pollfd){.fd = control->listen_fd,
						     .events = POLLIN};
			owner[count++] = -2;
		}
		int timeout = -1;
		if (next_deadline != UINT64_MAX)
			timeout = (int)((next_deadline - now) / 1000000) + 1;
		int ready = poll(fds, count, timeout);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			OSKR_ERROR("control: poll: %s; the control socket "
				   "stops answering",
				   strerror(errno));
			return NULL;
		}
		for (nfds_t i = 0; i < count; i++) {
			if (!fds[i].revents)
				continue;
			if (owner[i] == -1)
				return NULL; /* stop */
			if (owner[i] == -2) {
				accept_connections(control);
				continue;
			}
			struct connection *c =
				&control->connections[owner[i]];
			/* a request that just completed is answered at
			 * once: the socket is almost always writable */
			if (c->state == CONNECTION_READING)
				connection_read(control, c);
			else if (c->state == CONNECTION_DRAINING)
				connection_drain(c);
			if (c->state == CONNECTION_WRITING)
				connection_write(c);
			if (c->state == CONNECTION_DRAINING)
				connection_drain(c);
		}
	}
}

/* A socket file at @p path: replace it only if nobody listens on it. */
static int claim_path(const char *path, const struct sockaddr_un *addr,
		      char **err)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		int rc = -errno;
		oskr__errorf(err, "control socket %s: %s", path, strerror(-rc));
		return rc;
	}
	if (!S_ISSOCK(st.st_mode))
		return oskr__errorf(err,
				    "control socket %s: the path exists and "
				    "is not a socket; refusing to replace it",
				    path);
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return -errno;
	int rc = connect(probe, (const struct sockaddr *)addr, sizeof(*addr));
	int connect_errno = errno;
	close(probe);
	if (rc == 0) {
		oskr__errorf(err,
			     "control socket %s: another process is listening "
			     "on it (is another oskrd running with this "
			     "config?)",
			     path);
		return -EADDRINUSE;
	}
	if (connect_errno != ECONNREFUSED) {
		oskr__errorf(err, "control socket %s: cannot tell whether it "
				  "is in use: %s",
			     path, strerror(connect_errno));
		return -connect_errno;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		rc = -errno;
		oskr__errorf(err, "control socket %s: cannot remove the stale "
				  "socket: %s",
			     path, strerror(-rc));
		return rc;
	}
	OSKR_INFO("control socket %s: replaced a stale socket file", path);
	return 0;
}

int oskr__control_listen(struct oskr_control **out, const char *path,
			 oskr__control_handler handler, void *arg, char **err)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (!path || !path[0])
		return oskr__errorf(err, "control socket: empty path");
	if (strlen(path) >= sizeof(addr.sun_path)) {
		oskr__errorf(err,
			     "control socket %s: the path is longer than the "
			     "%zu bytes a unix socket allows",
			     path, sizeof(addr.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(addr.sun_path, path, strlen(path));
	int rc = claim_path(path, &addr, err);
	if (rc < 0)
		return rc;

	struct oskr_control *control = calloc(1, sizeof(*control));
	if (!control || !(control->path = strdup(path))) {
		free(control);
		oskr__errorf(err, "out of memory");
		return -ENOMEM;
	}
	control->handler = handler;
	control->arg = arg;
	control->wake_pipe[0] = control->wake_pipe[1] = -1;
	for (int i = 0; i < OSKR_CONTROL_MAX_CONNECTIONS; i++)
		control->connections[i].fd = -1;
	control->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
						     SOCK_CLOEXEC,
				    0);
	if (control->listen_fd < 0) {
		rc = -errno;
		oskr__errorf(err, "control socket: %s", strerror(-rc));
		goto err_free;
	}
	/* Never visible with looser permissions than 0660: bind under a
	 * strict umask, then open up to the group. */
	mode_t old_umask = umask(0177);
	rc = bind(control->listen_fd, (struct sockaddr *)&addr, sizeof(addr));
	int bind_errno = errno;
	umask(old_umask);
	if (rc < 0) {
		rc = -bind_errno;
		oskr__errorf(err, "control socket %s: bind: %s", path,
			     strerror(-rc));
		goto err_close;
	}
	struct stat st;
	if (chmod(path, 0660) < 0 || stat(path, &st) < 0) {
		rc = -errno;
		oskr__errorf(err, "control socket %s: chmod: %s", path,
			     strerror(-rc));
		goto err_unlink;
	}
	control->dev = st.st_dev;
	control->ino = st.st_ino;
	if (listen(control->listen_fd, 16) < 0 ||
	    pipe2(control->wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = -errno;
		oskr__errorf(err, "control socket %s: %s", path, strerror(-rc));
		goto err_unlink;
	}
	rc = -pthread_create(&control->thread, NULL, control_main, control);
	if (rc) {
		oskr__errorf(err, "control socket: cannot start its thread: %s",
			     strerror(-rc));
		goto err_unlink;
	}
	control->thread_started = true;
	*out = control;
	return 0;

err_unlink:
	unlink(path);
err_close:
	if (control->wake_pipe[0] >= 0) {
		close(control->wake_pipe[0]);
		close(control->wake_pipe[1]);
	}
	close(control->listen_fd);
err_free:
	free(control->path);
	free(control);
	return rc;
}

void oskr__control_stop(struct oskr_control *control)
{
	if (!control)
		return;
	if (control->thread_started) {
		char byte = 1;
		while (write(control->wake_pipe[1], &byte, 1) < 0 &&
		       errno == EINTR)
			;
		pthread_join(control->thread, NULL);
	}
	for (int i = 0; i < OSKR_CONTROL_MAX_CONNECTIONS; i++)
		connection_close(&control->connections[i]);
	close(control->listen_fd);
	close(control->wake_pipe[0]);
	close(control->wake_pipe[1]);
	/* Remove the file only if it is still ours (not replaced by a
	 * newer daemon that found it stale). */
	struct stat st;
	if (lstat(control->path, &st) == 0 && st.st_dev == control->dev &&
	    st.st_ino == control->ino)
		unlink(control->path);
	free(control->owned_arg);
	free(control->path);
	free(control);
}

/* ---- oskrd's handler ---- */

static void fill_view(const struct oskr_control_target *t,
		      struct oskr_control_view *v)
{
	struct oskr_replica_status s;
	oskr__replica_status(t->replica, &s);
	struct oskr_replica_durable d;
	oskr__replica_durable_status(t->replica, &d);
	*v = (struct oskr_control_view){
		.replica_id = t->replica_id,
		.protocol = t->plugin->name,
		.protocol_version = t->plugin->version,
		.app = t->config->app ? t->config->app : "null",
		.workers = t->config->workers,
		.view = s.view,
		.committed = s.committed,
		.executed = s.executed,
		.leader = s.leader,
		.uptime_ns = s.uptime_ns,
		.stateless_queued = s.stateless_queued,
		.stateful_queued = s.stateful_queued,
		.state_dir = d.state_dir,
		.applied = d.applied,
		.restored_applied = d.restored_applied,
		.snapshots_written = d.writer.written,
		.snapshot_failures = d.writer.failed,
		.snapshots_superseded = d.writer.superseded,
		.snapshot_applied = d.writer.last_applied,
		.snapshot_bytes = d.writer.last_bytes,
		.snapshot_unix_ms = d.writer.last_unix_ms,
		.snapshot_duration_ns = d.writer.last_duration_ns,
		.checkpoints_written = d.writer.checkpoints_written,
		.checkpoint_op = d.writer.newest_checkpoint_op,
		.resumed = d.resumed,
		.resumed_op = d.resumed_op,
	};
}

struct counter_list {
	struct oskr_control_counter *items;
	size_t count, capacity;
	bool failed;
};

static void collect_counter(void *arg, const char *name, uint64_t value)
{
	struct counter_list *list = arg;
	if (list->failed)
		return;
	if (list->count == list->capacity) {
		size_t grown = list->capacity ? list->capacity * 2 : 64;
		struct oskr_control_counter *items =
			realloc(list->items, grown * sizeof(*items));
		if (!items) {
			list->failed = true;
			return;
		}
		list->items = items;
		list->capacity = grown;
	}
	/* names may live in the visitor's stack buffer: copy */
	char *copy = strdup(name);
	if (!copy) {
		list->failed = true;
		return;
	}
	list->items[list->count++] = (struct oskr_control_counter){
		.name = copy,
		.value = value,
	};
}

static int replica_handler(void *arg, const char *command,
			   struct oskr__text *out)
{
	const struct oskr_control_target *t = arg;
	if (strcmp(command, "status") == 0) {
		struct oskr_control_view view;
		fill_view(t, &view);
		oskr__control_render_status(out, &view);
		return 0;
	}
	if (strcmp(command, "metrics") == 0) {
		struct oskr_control_view view;
		fill_view(t, &view);
		struct counter_list list = {0};
		oskr__replica_counters(t->replica, collect_counter, &list);
		struct oskr__latency_totals latency[OSKR_TASK_KINDS];
		memset(latency, 0, sizeof(latency));
		for (int kind = 0; kind < OSKR_TASK_KINDS; kind++)
			oskr__replica_task_latency(t->replica, kind,
						   &latency[kind]);
		if (list.failed)
			out->overflow = true;
		else
			oskr__control_render_metrics(out, &view, list.items,
						     list.count, latency);
		for (size_t i = 0; i < list.count; i++)
			free((char *)list.items[i].name);
		free(list.items);
		return 0;
	}
	if (strcmp(command, "config") == 0) {
		oskr__control_render_config(out, t->config, t->replica_id,
					    t->plugin->name, t->plugin_path);
		return 0;
	}
	if (strcmp(command, "help") == 0) {
		oskr__text_printf(out,
				  "status: replica, protocol, role, view, "
				  "committed and executed ops, queues, "
				  "durable state\n"
				  "metrics: Prometheus text format 0.0.4\n"
				  "config: the effective configuration "
				  "(secrets redacted)\n"
				  "help: this list\n");
		return 0;
	}
	char shown[64];
	snprintf(shown, sizeof(shown), "%s", command);
	for (char *p = shown; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	oskr__text_printf(out,
			  "error: unknown command '%s' (try: status, metrics, "
			  "config, help)\n",
			  shown);
	return -EINVAL;
}

int oskr__control_answer(const struct oskr_control_target *target,
			 const char *command, struct oskr__text *out)
{
	return replica_handler((void *)target, command, out);
}

int oskr__control_start(struct oskr_control **out,
			const struct oskr_control_target *target, char **err)
{
	if (!target->config->control_socket)
		return oskr__errorf(err, "no control_socket configured");
	char *path = oskr__expand_replica_id(target->config->control_socket,
					     target->replica_id);
	struct oskr_control_target *copy = malloc(sizeof(*copy));
	if (!path || !copy) {
		free(path);
		free(copy);
		oskr__errorf(err, "out of memory");
		return -ENOMEM;
	}
	*copy = *target;
	int rc = oskr__control_listen(out, path, replica_handler, copy, err);
	if (rc < 0) {
		free(copy);
	} else {
		(*out)->owned_arg = copy;
		OSKR_INFO("control socket %s: listening", path);
	}
	free(path);
	return rc;
}
