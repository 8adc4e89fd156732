/* SPDX-License-Identifier: MIT */
/*
 * notify_listen: stand in for systemd's notification socket in tests.
 *
 *   notify_listen SOCKET_PATH TIMEOUT_SECONDS
 *
 * Binds a unix datagram socket at SOCKET_PATH (set NOTIFY_SOCKET to it),
 * prints every line of every datagram received on its own line of stdout
 * (flushed at once, so a test can follow it), and exits 0 after a datagram
 * with STOPPING=1, or 1 when TIMEOUT_SECONDS pass first. The socket file
 * is removed on exit (also on SIGTERM/SIGINT).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	stop_requested = 1;
}

static long long now_ms(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: notify_listen SOCKET_PATH "
				"TIMEOUT_SECONDS\n");
		return 2;
	}
	const char *path = argv[1];
	long timeout_s = strtol(argv[2], NULL, 10);
	if (timeout_s <= 0 || timeout_s > 3600) {
		fprintf(stderr, "notify_listen: bad timeout '%s'\n", argv[2]);
		return 2;
	}
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "notify_listen: path too long\n");
		return 2;
	}
	strcpy(addr.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fprintf(stderr, "notify_listen: %s: %s\n", path,
			strerror(errno));
		return 2;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	int rc = 1;
	long long deadline = now_ms() + timeout_s * 1000;
	char datagram[4096 + 1];
	while (!stop_requested) {
		long long left = deadline - now_ms();
		if (left <= 0)
			break;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int ready = poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
		if (ready <= 0)
			continue;
		ssize_t n = recv(fd, datagram, sizeof(datagram) - 1, 0);
		if (n < 0)
			continue;
		datagram[n] = '\0';
		bool stopping = false;
		char *save = NULL;
		for (char *line = strtok_r(datagram, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			printf("%s\n", line);
			if (strcmp(line, "STOPPING=1") == 0)
				stopping = true;
		}
		fflush(stdout);
		if (stopping) {
			rc = 0;
			break;
		}
	}
	if (rc)
		fprintf(stderr, "notify_listen: no STOPPING=1 within %ld s\n",
			timeout_s);
	close(fd);
	unlink(path);
	return rc;
}
