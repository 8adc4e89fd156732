/* SPDX-License-Identifier: MIT */
/*
 * oskrctl: ask a running oskrd over its control socket (oskrctl(8)).
 *
 *   oskrctl [-s SOCKET | -c CONFIG [-i ID]] [-t SECONDS] status|metrics|config|help
 *   oskrctl keygen [oskr-keygen arguments]
 *
 * Exit status: 0 answered; 1 oskrd answered with an error; 2 usage or
 * config error; 3 oskrd is not reachable (not running, wrong socket,
 * permission); 4 the conversation failed (timeout, I/O error).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/config.h"
#include "daemon/control.h"

enum exit_code {
	EXIT_ANSWERED = 0,
	EXIT_ERROR_ANSWER = 1,
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,
	EXIT_CONVERSATION = 4,
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: oskrctl [-s SOCKET | -c CONFIG [-i ID]] [-t SECONDS] "
		"COMMAND\n"
		"       oskrctl keygen [oskr-keygen arguments]\n"
		"Ask a running oskrd over its control socket.\n\n"
		"Commands:\n"
		"  status    replica, protocol, role, view, committed and "
		"executed ops,\n"
		"            queue depths, durable state\n"
		"  metrics   Prometheus text format\n"
		"  config    the effective configuration (secrets redacted)\n"
		"  help      the commands this oskrd answers\n\n"
		"Options:\n"
		"  -s, --socket PATH    control socket (default %s)\n"
		"  -c, --config FILE    take control_socket from this config\n"
		"  -i, --id N           replica id for %%i in control_socket\n"
		"  -t, --timeout S      give up after S seconds (default 10)\n"
		"  -h, --help           this help\n"
		"  -V, --version        show the version\n\n"
		"Exit status: 0 answered, 1 error answer, 2 usage/config, "
		"3 oskrd not reachable,\n4 conversation failed.\n",
		OSKR_CONTROL_DEFAULT_SOCKET);
}

/* "pid1, pid2" of processes named oskrd, or "" (best effort: /proc). */
static void running_daemons(char *out, size_t size)
{
	out[0] = '\0';
	DIR *proc = opendir("/proc");
	if (!proc)
		return;
	size_t used = 0;
	struct dirent *entry;
	while ((entry = readdir(proc))) {
		char *end;
		long pid = strtol(entry->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		char path[64], comm[32] = "";
		snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
		if (strcmp(comm, "oskrd") != 0)
			continue;
		int n = snprintf(out + used, size - used, "%s%ld",
				 used ? ", " : "", pid);
		if (n < 0 || (size_t)n >= size - used)
			break;
		used += (size_t)n;
	}
	closedir(proc);
}

static int explain_connect_failure(const char *path, int error)
{
	char pids[256];
	running_daemons(pids, sizeof(pids));
	switch (error) {
	case ENOENT:
		fprintf(stderr, "oskrctl: no control socket at %s: ", path);
		if (pids[0])
			fprintf(stderr,
				"oskrd is running (pid %s) but does not listen "
				"there; check control_socket in its config or "
				"pass -s/-c\n",
				pids);
		else
			fprintf(stderr, "oskrd is not running\n");
		break;
	case ECONNREFUSED:
		fprintf(stderr,
			"oskrctl: %s exists but nobody listens on it: ", path);
		if (pids[0])
			fprintf(stderr,
				"a stale socket; oskrd (pid %s) listens "
				"elsewhere\n",
				pids);
		else
			fprintf(stderr,
				"oskrd is not running (a stale socket left by "
				"a crash; the next oskrd replaces it)\n");
		break;
	case EACCES:
	case EPERM: {
		struct stat st;
		const char *group = NULL;
		if (stat(path, &st) == 0) {
			struct group *g = getgrgid(st.st_gid);
			group = g ? g->gr_name : NULL;
		}
		fprintf(stderr,
			"oskrctl: %s: permission denied: run as root or as a "
			"member of group %s\n",
			path, group ? group : "of the socket");
		break;
	}
	default:
		fprintf(stderr, "oskrctl: %s: %s%s%s%s\n", path,
			strerror(error),
			pids[0] ? " (oskrd is running, pid " : "", pids,
			pids[0] ? ")" : "");
	}
	return EXIT_UNREACHABLE;
}

static int64_t now_ms(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Wait for @p events on @p fd until @p deadline; 0, or -ETIMEDOUT. */
static int wait_for(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pfd = {.fd = fd, .events = events};
		int ready = poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
		if (ready > 0)
			return 0;
		if (ready < 0 && errno != EINTR)
			return -errno;
	}
}

static int converse(const char *path, const char *command, long timeout_s)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "oskrctl: %s: path too long for a unix "
				"socket\n",
			path);
		return EXIT_USAGE;
	}
	memcpy(addr.sun_path, path, strlen(path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "oskrctl: socket: %s\n", strerror(errno));
		return EXIT_CONVERSATION;
	}
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int error = errno;
		close(fd);
		return explain_connect_failure(path, error);
	}
	int64_t deadline = now_ms() + timeout_s * 1000;
	char request[OSKR_CONTROL_REQUEST_MAX + 2];
	int request_len = snprintf(request, sizeof(request), "%s\n", command);
	if (request_len < 0 || (size_t)request_len >= sizeof(request)) {
		fprintf(stderr, "oskrctl: command too long\n");
		close(fd);
		return EXIT_USAGE;
	}
	if (send(fd, request, (size_t)request_len, MSG_NOSIGNAL) !=
	    request_len) {
		fprintf(stderr, "oskrctl: %s: cannot send: %s\n", path,
			strerror(errno));
		close(fd);
		return EXIT_CONVERSATION;
	}
	/* The answer is complete when oskrd closes the connection. */
	size_t capacity = 65536, len = 0;
	char *answer = malloc(capacity);
	int rc = answer ? 0 : -ENOMEM;
	while (rc == 0) {
		rc = wait_for(fd, POLLIN, deadline);
		if (rc < 0)
			break;
		if (len == capacity) {
			if (capacity >= OSKR_CONTROL_RESPONSE_MAX * 2) {
				rc = -EFBIG;
				break;
			}
			char *bigger = realloc(answer, capacity * 2);
			if (!bigger) {
				rc = -ENOMEM;
				break;
			}
			answer = bigger;
			capacity *= 2;
		}
		ssize_t n = recv(fd, answer + len, capacity - len, 0);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (rc < 0) {
		fprintf(stderr, "oskrctl: %s: %s\n", path,
			rc == -ETIMEDOUT ? "no complete answer in time"
					 : strerror(-rc));
		free(answer);
		return EXIT_CONVERSATION;
	}
	if (len == 0) {
		fprintf(stderr, "oskrctl: %s: empty answer\n", path);
		free(answer);
		return EXIT_CONVERSATION;
	}
	bool error = len >= 7 && memcmp(answer, "error: ", 7) == 0;
	fwrite(answer, 1, len, error ? stderr : stdout);
	free(answer);
	if (fflush(stdout) != 0) {
		perror("oskrctl: stdout");
		return EXIT_CONVERSATION;
	}
	return error ? EXIT_ERROR_ANSWER : EXIT_ANSWERED;
}

/* Run oskr-keygen from next to this executable (build tree or install),
 * else from PATH. */
static int run_keygen(int argc, char **argv)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char **args = calloc((size_t)argc + 1, sizeof(*args));
	if (!args)
		return EXIT_USAGE;
	args[0] = "oskr-keygen";
	for (int i = 1; i < argc; i++)
		args[i] = argv[i];
	if (n > 0) {
		self[n] = '\0';
		char candidate[PATH_MAX + 16];
		snprintf(candidate, sizeof(candidate), "%s/oskr-keygen",
			 dirname(self));
		if (access(candidate, X_OK) == 0)
			execv(candidate, args);
	}
	execvp("oskr-keygen", args);
	fprintf(stderr, "oskrctl: cannot run oskr-keygen: %s\n",
		strerror(errno));
	free(args);
	return EXIT_USAGE;
}

/* The socket path from -s, or from the config's control_socket. */
static int socket_path(const char *socket_option, const char *config_path,
		       long replica_id, char **out)
{
	if (socket_option) {
		*out = strdup(socket_option);
		return *out ? 0 : EXIT_USAGE;
	}
	if (!config_path) {
		*out = strdup(OSKR_CONTROL_DEFAULT_SOCKET);
		return *out ? 0 : EXIT_USAGE;
	}
	struct oskr_config *config = NULL;
	char *err = NULL;
	if (oskr__config_load(config_path, &config, &err) < 0) {
		fprintf(stderr, "oskrctl: %s\n", err);
		free(err);
		return EXIT_USAGE;
	}
	int rc = 0;
	if (!config->control_socket) {
		fprintf(stderr,
			"oskrctl: %s has no control_socket (add e.g. "
			"`control_socket: /run/oskr/oskrd.sock`)\n",
			config->file);
		rc = EXIT_USAGE;
		goto out;
	}
	if (replica_id < 0)
		replica_id = config->replica_id;
	if (strstr(config->control_socket, "%i") && replica_id < 0) {
		fprintf(stderr,
			"oskrctl: %s: control_socket %s needs a replica id: "
			"pass -i N\n",
			config->file, config->control_socket);
		rc = EXIT_USAGE;
		goto out;
	}
	*out = oskr__expand_replica_id(config->control_socket,
				       replica_id < 0 ? 0 : (uint32_t)replica_id);
	if (!*out)
		rc = EXIT_USAGE;
out:
	oskr__config_free(config);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
		return run_keygen(argc - 1, argv + 1);

	static const struct option long_options[] = {
		{"socket", required_argument, NULL, 's'},
		{"config", required_argument, NULL, 'c'},
		{"id", required_argument, NULL, 'i'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *socket_option = NULL, *config_path = NULL;
	long replica_id = -1, timeout_s = 10;
	int opt;
	while ((opt = getopt_long(argc, argv, "s:c:i:t:hV", long_options,
				  NULL)) != -1) {
		char *end;
		switch (opt) {
		case 's':
			socket_option = optarg;
			break;
		case 'c':
			config_path = optarg;
			break;
		case 'i':
			errno = 0;
			replica_id = strtol(optarg, &end, 10);
			if (errno || *end || replica_id < 0 ||
			    replica_id > 1000000) {
				fprintf(stderr,
					"oskrctl: -i: '%s' is not a replica "
					"id\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 't':
			errno = 0;
			timeout_s = strtol(optarg, &end, 10);
			if (errno || *end || timeout_s < 1 || timeout_s > 3600) {
				fprintf(stderr,
					"oskrctl: -t: '%s' is not a number of "
					"seconds in [1, 3600]\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return EXIT_ANSWERED;
		case 'V':
			printf("oskrctl %s\n", OSKR_VERSION);
			return EXIT_ANSWERED;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (socket_option && config_path) {
		fprintf(stderr, "oskrctl: give either -s or -c, not both\n");
		return EXIT_USAGE;
	}
	if (argc - optind != 1) {
		fprintf(stderr, argc == optind ? "oskrctl: no command\n"
					       : "oskrctl: one command only\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *command = argv[optind];
	char *path = NULL;
	int rc = socket_path(socket_option, config_path, replica_id, &path);
	if (rc)
		return rc;
	rc = converse(path, command, timeout_s);
	free(path);
	return rc;
}
