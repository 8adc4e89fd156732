/* SPDX-License-Identifier: MIT */
/* What daemon/config.c (YAML) and daemon/config_seed.c (the seed's
 * plain-text cluster files) share: limits and the parsers that explain
 * why a value is wrong. Not for use outside the config code. */
#ifndef OSKR_DAEMON_CONFIG_INTERNAL_H
#define OSKR_DAEMON_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

#define CONFIG_MAX_TEXT (1u << 20)
#define CONFIG_MAX_REPLICAS 1024
#define CONFIG_MAX_EAL_ARGS 128
#define CONFIG_MAX_NAME 64
#define LINK_ID_MAX 0x7fff
#define SEED_SUFFIX ".config"

/** NULL when @p text is a valid "ip:port", else why not. */
const char *oskr__config_ip_port_problem(const char *text,
					 struct sockaddr_storage *out,
					 socklen_t *out_len);
/** NULL when @p text is a valid "MAC%id", else why not. */
const char *oskr__config_mac_id_problem(const char *text, uint8_t mac[6],
					uint16_t *id);
uint16_t oskr__config_sockaddr_port(const struct sockaddr_storage *address);
/** Index of an earlier replica with the same address (or MAC%id), or -1. */
int oskr__config_find_duplicate_replica(const struct oskr_config *config,
					uint32_t index, bool by_address);
/** Sets *err to "out of memory"; returns -ENOMEM. */
int oskr__config_out_of_memory(char **err);

/** The first significant line starts with "f ": the seed's format. */
bool oskr__config_is_seed_format(const char *text, size_t len);
/** Fill @p config (defaults already set) from a seed cluster file. */
int oskr__config_load_seed(struct oskr_config *config, const char *file,
			   const char *text, size_t len, char **err);

#endif
