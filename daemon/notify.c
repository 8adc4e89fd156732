/* SPDX-License-Identifier: MIT */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

bool oskr__notify_enabled(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	return path && path[0];
}

int oskr__notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !path[0])
		return 0;
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	size_t path_len = strlen(path);
	if (path[0] != '/' && path[0] != '@')
		return -EINVAL;
	if (path_len >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, path_len);
	if (path[0] == '@')
		addr.sun_path[0] = '\0';
	socklen_t addr_len =
		(socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len +
			    (path[0] == '@' ? 0 : 1));
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ssize_t sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
			      (struct sockaddr *)&addr, addr_len);
	int rc = sent < 0 ? -errno : 0;
	close(fd);
	return rc;
}

uint64_t oskr__notify_watchdog_usec(void)
{
	const char *usec = getenv("WATCHDOG_USEC");
	if (!usec)
		return 0;
	const char *pid = getenv("WATCHDOG_PID");
	if (pid && strtoll(pid, NULL, 10) != (long long)getpid())
		return 0;
	return strtoull(usec, NULL, 10);
}
