/* SPDX-License-Identifier: MIT */
/*
 * Every member of every public struct of ABI 1.0, as X-macro lists. The
 * plugin built against the frozen 1.0 header (echo.c with EXPORT_LAYOUT)
 * exports the offsets and sizes it was compiled with; test/test_abi.c
 * computes the same lists against the current headers and requires every
 * 1.0 member to sit where it was. Include after the plugin header.
 *
 * When a new minor appends members, do NOT add them to the 1.0 lists:
 * each minor gets its own list of what it appended (OSKR_ABI_1_1_MEMBERS),
 * exported by a plugin built against a newer snapshot header
 * (EXPORT_LAYOUT_1_1) and compared with the current headers likewise.
 */
#ifndef OSKR_TEST_ABI_LAYOUT_H
#define OSKR_TEST_ABI_LAYOUT_H

#define OSKR_ABI_1_0_STRUCTS(X)                                           \
	X(oskr_ctx)                                                       \
	X(oskr_buf)                                                       \
	X(oskr_addr)                                                      \
	X(oskr_msg)                                                       \
	X(oskr_instance_info)                                             \
	X(oskr_host)                                                      \
	X(oskr_plugin)

#define OSKR_ABI_1_0_MEMBERS(X)                                           \
	X(oskr_ctx, host)                                                 \
	X(oskr_buf, data)                                                 \
	X(oskr_buf, len)                                                  \
	X(oskr_buf, capacity)                                             \
	X(oskr_addr, bytes)                                               \
	X(oskr_msg, buf)                                                  \
	X(oskr_msg, from)                                                 \
	X(oskr_msg, from_replica)                                         \
	X(oskr_instance_info, size)                                       \
	X(oskr_instance_info, replica_count)                              \
	X(oskr_instance_info, fault_count)                                \
	X(oskr_instance_info, replica_id)                                 \
	X(oskr_instance_info, client_id)                                  \
	X(oskr_instance_info, max_message)                                \
	X(oskr_instance_info, worker_count)                               \
	X(oskr_host, size)                                                \
	X(oskr_host, abi_major)                                           \
	X(oskr_host, abi_minor)                                           \
	X(oskr_host, info)                                                \
	X(oskr_host, buf_alloc)                                           \
	X(oskr_host, buf_hold)                                            \
	X(oskr_host, buf_release)                                         \
	X(oskr_host, send_to_replica)                                     \
	X(oskr_host, send_to_all)                                         \
	X(oskr_host, send_to_addr)                                        \
	X(oskr_host, signature_size)                                      \
	X(oskr_host, sign)                                                \
	X(oskr_host, verify)                                              \
	X(oskr_host, digest)                                              \
	X(oskr_host, submit_stateless)                                    \
	X(oskr_host, submit_stateful)                                     \
	X(oskr_host, timer_arm)                                           \
	X(oskr_host, timer_cancel)                                        \
	X(oskr_host, now_ns)                                              \
	X(oskr_host, app_execute)                                         \
	X(oskr_host, app_snapshot)                                        \
	X(oskr_host, app_restore)                                         \
	X(oskr_host, blob_free)                                           \
	X(oskr_host, client_complete)                                     \
	X(oskr_host, conf)                                                \
	X(oskr_host, conf_u64)                                            \
	X(oskr_host, conf_bool)                                           \
	X(oskr_host, conf_ms)                                             \
	X(oskr_host, conf_check_keys)                                     \
	X(oskr_host, log)                                                 \
	X(oskr_host, count)                                               \
	X(oskr_host, set_status)                                          \
	X(oskr_plugin, abi_major)                                         \
	X(oskr_plugin, abi_minor)                                         \
	X(oskr_plugin, size)                                              \
	X(oskr_plugin, name)                                              \
	X(oskr_plugin, version)                                           \
	X(oskr_plugin, description)                                       \
	X(oskr_plugin, replica_state_size)                                \
	X(oskr_plugin, client_state_size)                                 \
	X(oskr_plugin, config_check)                                      \
	X(oskr_plugin, replica_init)                                      \
	X(oskr_plugin, replica_receive)                                   \
	X(oskr_plugin, replica_fini)                                      \
	X(oskr_plugin, client_init)                                       \
	X(oskr_plugin, client_invoke)                                     \
	X(oskr_plugin, client_receive)                                    \
	X(oskr_plugin, client_fini)

/* Appended in 1.1. */
#define OSKR_ABI_1_1_MEMBERS(X)                                           \
	X(oskr_host, checkpoint_stable)                                   \
	X(oskr_host, checkpoint_resume)

#endif
