/* SPDX-License-Identifier: MIT */
/* systemd's readiness protocol (sd_notify(3)), spoken directly: one
 * datagram with "KEY=VALUE\n" lines to the unix socket in $NOTIFY_SOCKET
 * (a leading '@' means the abstract namespace). Without the variable every
 * call is a no-op, so oskrd runs the same with and without systemd. */
#ifndef OSKR_DAEMON_NOTIFY_H
#define OSKR_DAEMON_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/** Send @p state (e.g. "READY=1\nSTATUS=…"). 0, or negative errno; 0 also
 *  when NOTIFY_SOCKET is unset. */
int oskr__notify(const char *state);
/** True when NOTIFY_SOCKET is set. */
bool oskr__notify_enabled(void);
/** The watchdog interval from $WATCHDOG_USEC (0 = disabled), honouring
 *  $WATCHDOG_PID when set. */
uint64_t oskr__notify_watchdog_usec(void);

#endif
