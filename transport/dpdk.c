/* SPDX-License-Identifier: MIT */
/*
 * The dpdk transport: raw Ethernet frames (transport/frame.h) on a DPDK
 * port. Built into oskrd only, with -DOSKR_HAVE_DPDK; nothing outside this
 * file sees a DPDK type. docs/transport-dpdk.md is the operator's guide.
 *
 * One port per process. EAL can be initialised once per process, so the
 * first open() runs EAL and sets up the port, and every transport opened
 * after it in the same process (oskr-bench opens one client transport per
 * concurrent client) shares that port; the last close() tears it down and
 * runs rte_eal_cleanup(). Each transport is one endpoint `MAC%id` on the
 * port: a replica its configured one, a client an ephemeral id in
 * [128, 0x7fff] on the port's MAC. A table id -> transport routes frames.
 *
 * Receive. Whoever polls an rx queue (a replica's rx thread, or a client's
 * poll()) holds that queue's lock for one burst, decodes each frame and
 * routes it: frames for itself are delivered after the burst, frames for
 * another transport of this process go to that transport's inbox (an MPSC
 * rte_ring), malformed ones are dropped and counted. A replica with N > 1
 * rx threads also routes among its own threads by a hash of the source
 * endpoint (software RSS: non-IP frames get no hardware hash), so one
 * sender's frames that arrive on one queue keep their order. Sends to an
 * endpoint of this process (a replica to itself) never touch the wire:
 * they go straight to the owner's inbox.
 *
 * Zero copy. The mbuf pool carries a struct oskr__buf in each mbuf's
 * private area. A received frame is handed up as that oskr_buf, data
 * pointing at the payload inside the mbuf; its reference count is the
 * oskr__buf one and the last release frees the mbuf. buf_alloc() returns an
 * mbuf the same way, with headroom for the framing; sending it when the
 * caller holds the only reference prepends the header in place and hands
 * the mbuf to the NIC. Any other send (the buffer is still held elsewhere,
 * e.g. send_to_all's one reference per destination, or a received buffer
 * being relayed) copies it into a fresh mbuf: one copy per destination,
 * never more. We copy rather than chain indirect mbufs because messages
 * fit one MTU (a memcpy of <= 1.5 KB is cheaper than the extra segment),
 * and multi-segment transmit is not offered by every PMD.
 *
 * Transmit. Each tx slot (stage worker) batches up to `burst` frames and
 * sends them on its own tx queue at flush(); a queue's lock is uncontended
 * unless the device has fewer queues than slots. tx_burst is retried a
 * bounded number of times (memif accepts nothing, forever, once its peer
 * is gone); the rest is dropped and counted as tx_failed.
 *
 * Idle. No virtual device can wake a blocked thread, so pollers back off
 * when idle: spin `idle.spin` polls, then sched_yield() `idle.yield`
 * times, then sleep `idle.sleep_us` per poll; traffic resets the count.
 */
#define _GNU_SOURCE
#include "dpdk.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pause.h>
#include <rte_ring.h>
#include <rte_rwlock.h>
#include <rte_spinlock.h>

#include "../daemon/buf.h"
#include "../daemon/log.h"
#include "frame.h"

#define DPDK_BURST_MAX 256u
#define DPDK_RX_DESC 1024
#define DPDK_TX_DESC 1024
#define DPDK_POOL_CACHE 256u
/* Frames waiting per inbox (powers of two). A client has a few requests
 * outstanding; a replica's rx threads hand bursts to each other. */
#define DPDK_INBOX_SIZE 4096u
#define DPDK_CLIENT_INBOX_SIZE 1024u
/* tx_burst calls without progress before the rest of a batch is dropped:
 * the first half yield (a peer on the same core drains its ring), the
 * second half sleep DPDK_TX_RETRY_SLEEP_US, so a dead peer costs a worker
 * at most ~0.2 ms per flush. */
#define DPDK_TX_ATTEMPTS 16u
#define DPDK_TX_RETRY_SLEEP_US 20u
#define DPDK_LINK_CHECK_NS 100000000u /* 100 ms */
#define DPDK_CLIENT_ID_MIN 128u
/* A client poll() runs at most this many rounds over the queues so that a
 * flood cannot starve its owner's timers. */
#define DPDK_CLIENT_DRAIN_ROUNDS 16u
#define DPDK_TIMER_SLACK_NS 1000ul

/* ---- counters: one writer each, relaxed load + store (as in udp.c) ---- */

static void counter_add(_Atomic uint64_t *counter, uint64_t delta)
{
	if (!delta)
		return;
	atomic_store_explicit(counter,
			      atomic_load_explicit(counter,
						   memory_order_relaxed) +
				      delta,
			      memory_order_relaxed);
}

static void count_drop(struct oskr__transport_counters *counters,
		       enum oskr__drop_reason reason)
{
	counter_add(&counters->drops[reason], 1);
}

/* ---- the process-wide port ---- */

struct dpdk_port {
	unsigned users; /* open transports; under port_mutex */
	uint16_t port_id;
	char name[RTE_ETH_NAME_MAX_LEN];
	struct rte_mempool *pool;
	uint16_t rx_queue_count, tx_queue_count;
	uint16_t next_tx_queue; /* round-robin hand-out; under port_mutex */
	rte_spinlock_t *rx_locks; /* one poller per rx queue at a time */
	rte_spinlock_t *tx_locks;
	struct rte_ether_addr mac; /* the port's own (after any set) */
	uint32_t max_message;
	/* Link state as last seen by a sender (refreshed at most every
	 * DPDK_LINK_CHECK_NS): a flush to a link that is down gives up at
	 * once instead of spending its retries. */
	_Atomic uint64_t link_checked_ns;
	atomic_bool link_was_up;
	/* CPUs of the EAL lcores (-l / --lcores), main lcore first: rx
	 * thread i polls on lcore i % lcore_count. */
	unsigned lcore_count;
	rte_cpuset_t *lcore_cpus;

	/* Routing: endpoints of this process. Readers (rx dispatch and
	 * local sends) hold table_lock for reading across lookup and
	 * enqueue, so close() can unregister and then free an inbox. */
	rte_rwlock_t table_lock;
	struct oskr_transport **by_id; /* OSKR_FRAME_ID_MAX + 1 entries */
	struct oskr_transport *replica; /* at most one per process */
	/* The replica's MAC, written once before its transport is returned
	 * and never cleared: a stale value only costs a locked lookup. */
	uint8_t replica_mac[OSKR_FRAME_MAC_SIZE];
	bool has_multicast;
	struct oskr__frame_endpoint multicast;
};

static pthread_mutex_t port_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct dpdk_port *the_port; /* under port_mutex */
/* EAL was initialised in this process; it cannot be again, even after
 * rte_eal_cleanup(). Under port_mutex. */
static bool eal_used;

/* ---- a transport: one endpoint on the port ---- */

struct dpdk_idle {
	uint32_t spin, yield, sleep_us;
};

/* One inbox, and for a replica the rx thread polling port queue `index`. */
struct dpdk_rx {
	struct oskr_transport *transport;
	unsigned index;
	struct rte_ring *inbox;
	pthread_t thread;
	bool thread_running;
	struct oskr__transport_counters counters __attribute__((aligned(64)));
};

struct dpdk_tx_slot {
	uint16_t queue;
	uint16_t count;
	struct rte_mbuf **pending; /* burst entries */
	struct oskr__transport_counters counters __attribute__((aligned(64)));
};

struct oskr_transport {
	struct dpdk_port *port;
	int32_t replica_id;
	struct oskr__frame_endpoint local;
	uint32_t replica_count;
	struct oskr__frame_endpoint *replicas;
	uint16_t burst;
	struct dpdk_idle idle;

	unsigned rx_count; /* inboxes; replica: rx threads too */
	struct dpdk_rx *rx;
	unsigned tx_slot_count;
	struct dpdk_tx_slot *slots;

	atomic_bool stopping;
	bool started;
	oskr__deliver_fn deliver;
	void *deliver_arg;
	_Atomic uint64_t alloc_failures; /* buf_alloc, any thread */
};

/* ---- small helpers ---- */

static uint64_t monotonic_ns(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static void sleep_us(uint32_t us)
{
	struct timespec pause = {
		.tv_sec = us / 1000000u,
		.tv_nsec = (long)(us % 1000000u) * 1000,
	};
	nanosleep(&pause, NULL);
}

/* One idle round of the back-off; *rounds counts idle polls since the
 * last traffic. */
static void idle_wait(const struct dpdk_idle *policy, uint32_t *rounds)
{
	uint32_t round = *rounds;
	if (round < policy->spin)
		rte_pause();
	else if (round - policy->spin < policy->yield || !policy->sleep_us)
		sched_yield();
	else
		sleep_us(policy->sleep_us);
	if (round < UINT32_MAX)
		*rounds = round + 1;
}

/* Short sleeps must be short: the default timer slack (50 µs) would make
 * the idle back-off's 10-50 µs naps several times longer. Only the
 * calling thread is affected. */
static void tighten_timer_slack(void)
{
	static __thread bool done;
	if (!done) {
		prctl(PR_SET_TIMERSLACK, DPDK_TIMER_SLACK_NS, 0, 0, 0);
		done = true;
	}
}

/* Zeroed array of cache-line aligned elements (their counters are). */
static void *calloc_aligned(size_t count, size_t size)
{
	size_t bytes = RTE_ALIGN_CEIL(count * size, RTE_CACHE_LINE_SIZE);
	if (count && size > SIZE_MAX / count)
		return NULL;
	void *array = aligned_alloc(RTE_CACHE_LINE_SIZE, bytes ? bytes : 64);
	if (array)
		memset(array, 0, bytes);
	return array;
}

static bool mac_equal(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, OSKR_FRAME_MAC_SIZE) == 0;
}

static void format_mac(const uint8_t *mac, char *out, size_t size)
{
	snprintf(out, size, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1],
		 mac[2], mac[3], mac[4], mac[5]);
}

/* ---- mbuf <-> oskr_buf ---- */

static struct oskr__buf *mbuf_buf(struct rte_mbuf *m)
{
	return rte_mbuf_to_priv(m);
}

static void mbuf_buf_free(struct oskr__buf *b)
{
	rte_pktmbuf_free(b->owner);
}

static struct oskr_buf *mbuf_wrap(struct rte_mbuf *m, uint8_t *data,
				  uint32_t len, uint32_t capacity)
{
	struct oskr__buf *b = mbuf_buf(m);
	b->pub.data = data;
	b->pub.len = len;
	b->pub.capacity = capacity;
	atomic_init(&b->refs, 1);
	b->free_fn = mbuf_buf_free;
	b->owner = m;
	return &b->pub;
}

/* ---- EAL and port set-up ---- */

/*
 * rte_eal_cleanup(), then remove the runtime directory EAL created for our
 * --file-prefix (/var/run/dpdk/PREFIX: config, fbarray and socket files,
 * which rte_eal_cleanup leaves behind), so a stopped oskrd leaves no state.
 * Only a primary process owns it; none exists with --in-memory or
 * --no-shconf.
 */
static void eal_teardown(void)
{
	char dir[PATH_MAX] = "";
	if (rte_eal_process_type() == RTE_PROC_PRIMARY)
		snprintf(dir, sizeof(dir), "%s", rte_eal_get_runtime_dir());
	rte_eal_cleanup();
	DIR *listing = dir[0] ? opendir(dir) : NULL;
	if (!listing)
		return;
	struct dirent *entry;
	while ((entry = readdir(listing)))
		if (entry->d_type != DT_DIR)
			unlinkat(dirfd(listing), entry->d_name, 0);
	closedir(listing);
	rmdir(dir);
}

static bool eal_args_have(const struct oskr_config_dpdk *d, const char *arg)
{
	size_t len = strlen(arg);
	for (size_t i = 0; i < d->eal_arg_count; i++)
		if (strncmp(d->eal_args[i], arg, len) == 0)
			return true;
	return false;
}

/* A hint for an EAL failure, from rte_errno and the arguments given. */
static const char *eal_hint(int error, const struct oskr_config_dpdk *d)
{
	bool no_huge = eal_args_have(d, "--no-huge");
	if (no_huge && eal_args_have(d, "--in-memory"))
		return "EAL rejects --no-huge together with --in-memory: use "
		       "--no-huge -m 256 with a per-process --file-prefix=NAME "
		       "(or --no-shconf)";
	switch (error) {
	case 0:
	case EBUSY:
		return "another DPDK process probably holds the same "
		       "--file-prefix (the default is 'rte'): give each process "
		       "its own --file-prefix=NAME, or use --in-memory with "
		       "hugepages";
	case EACCES:
	case EPERM:
		return "permission denied: run as root, or give the user access "
		       "to /dev/hugepages, /dev/vfio and the device";
	case ENOMEM:
	case EFAULT:
		return no_huge ? "not enough memory: raise -m (MB); --no-huge "
				 "alone gives only 64 MB"
			       : "no hugepages: reserve some (dpdk-hugepages.py "
				 "-p 2M --setup 1G) or run with --no-huge -m 256";
	case EALREADY:
		return "EAL was already initialised in this process";
	case ENODEV:
	case ENOENT:
	case ENOTSUP:
		return "no usable device or driver: bind the NIC to vfio-pci "
		       "(dpdk-devbind.py -b vfio-pci PCI) or pass --vdev=…";
	case EINVAL:
		return "invalid EAL arguments (a typo, or an -l/--lcores CPU "
		       "this machine does not have?): check transport.eal "
		       "against `dpdk-testpmd --help`";
	default:
		return "see the EAL messages above; hugepages? driver? "
		       "permissions? --file-prefix?";
	}
}

static int eal_init(const struct oskr_config_dpdk *d, char **err)
{
	if (eal_used)
		return oskr__errorf(err,
				    "dpdk: EAL cannot be initialised twice in one "
				    "process (it was already used and cleaned "
				    "up)");
	size_t argc = d->eal_arg_count + 1;
	char **argv = calloc(argc + 1, sizeof(*argv));
	if (!argv)
		return -ENOMEM;
	argv[0] = "oskrd";
	for (size_t i = 0; i < d->eal_arg_count; i++)
		argv[i + 1] = d->eal_args[i];

	/* EAL pins the calling thread to its main lcore; every thread the
	 * host creates later would inherit that single CPU. Put the caller
	 * back on the CPUs it had (workers pin themselves from config). */
	cpu_set_t cpus;
	bool have_cpus = sched_getaffinity(0, sizeof(cpus), &cpus) == 0;
	rte_errno = 0;
	int parsed = rte_eal_init((int)argc, argv);
	int error = rte_errno;
	free(argv); /* EAL keeps pointers into the strings, not the array */
	if (have_cpus)
		sched_setaffinity(0, sizeof(cpus), &cpus);
	if (parsed < 0)
		return oskr__errorf(err, "dpdk: EAL initialisation failed: %s "
				    "(rte_errno %d); hint: %s",
				    error ? rte_strerror(error)
					  : "no reason given",
				    error, eal_hint(error, d));
	eal_used = true;
	if ((size_t)parsed != argc - 1) {
		eal_teardown();
		return oskr__errorf(err,
				    "dpdk: transport.eal has %zu argument(s) "
				    "EAL does not take (from '%s'); only EAL "
				    "options belong there",
				    argc - 1 - (size_t)parsed,
				    d->eal_args[parsed]);
	}
	return 0;
}

static int find_port(const struct oskr_config_dpdk *d, uint16_t *out,
		     char **err)
{
	uint16_t available = rte_eth_dev_count_avail();
	if (!available)
		return oskr__errorf(err,
				    "dpdk: EAL found no port. A --vdev that "
				    "failed to probe does not fail EAL (see its "
				    "messages above): for memif, a socket file "
				    "left by a crashed server (remove it) or a "
				    "server socket already in use; for "
				    "af_packet, a missing interface or no "
				    "CAP_NET_RAW. A NIC must be bound to vfio-pci "
				    "or uio (dpdk-devbind.py --status), and "
				    "--no-pci hides NICs");
	if (d->port_name) {
		uint16_t port_id;
		if (rte_eth_dev_get_port_by_name(d->port_name, &port_id) != 0)
			return oskr__errorf(err,
					    "dpdk: no port named '%s' (%u port(s) "
					    "available; vdev ports are named after "
					    "the --vdev, e.g. net_memif0)",
					    d->port_name, available);
		*out = port_id;
		return 0;
	}
	if (!rte_eth_dev_is_valid_port(d->port_id))
		return oskr__errorf(err,
				    "dpdk: port %u does not exist (%u port(s) "
				    "available)",
				    d->port_id, available);
	*out = d->port_id;
	return 0;
}

/* What the device itself counted: drops before our rx loop saw a frame
 * (ring full: imissed; no mbuf: rx_nombuf) show up only here. */
static void port_log_stats(const struct dpdk_port *p)
{
	struct rte_eth_stats stats;
	if (rte_eth_stats_get(p->port_id, &stats) != 0)
		return;
	OSKR_INFO("dpdk: port %s: rx %" PRIu64 " frames, missed %" PRIu64
		  ", errors %" PRIu64 ", no mbuf %" PRIu64 "; tx %" PRIu64
		  " frames, errors %" PRIu64,
		  p->name, stats.ipackets, stats.imissed, stats.ierrors,
		  stats.rx_nombuf, stats.opackets, stats.oerrors);
}

static void port_free(struct dpdk_port *p, bool configured, bool started)
{
	if (started) {
		port_log_stats(p);
		rte_eth_dev_stop(p->port_id);
	}
	if (configured)
		rte_eth_dev_close(p->port_id);
	if (p->pool) {
		unsigned in_use = rte_mempool_in_use_count(p->pool);
		if (in_use)
			/* Someone still holds buffers: freeing the pool under
			 * them would be a use-after-free. */
			OSKR_WARN("dpdk: %u mbuf(s) still held at close; "
				  "leaking the pool",
				  in_use);
		else
			rte_mempool_free(p->pool);
	}
	free(p->rx_locks);
	free(p->tx_locks);
	free(p->by_id);
	free(p->lcore_cpus);
	char name[RTE_ETH_NAME_MAX_LEN];
	snprintf(name, sizeof(name), "%s", p->name);
	free(p);
	eal_teardown();
	/* The last word of a clean shutdown: operators and the cluster test
	 * (test/integration/dpdk_cluster.sh) look for it. */
	if (started)
		OSKR_INFO("dpdk: port %s stopped and closed, EAL cleaned up",
			  name);
}

/* Fix the port's MAC and multicast reception for a replica. Vdevs take
 * every frame anyway; a NIC filters, so its MAC must be the configured one
 * (or it must be promiscuous), and it must accept the multicast group. */
static void port_set_addresses(struct dpdk_port *p,
			       const struct oskr_config *config,
			       const struct oskr__frame_endpoint *local)
{
	bool promiscuous = false;
	char text[24];
	if (!mac_equal(p->mac.addr_bytes, local->mac)) {
		struct rte_ether_addr wanted;
		memcpy(wanted.addr_bytes, local->mac, sizeof(wanted.addr_bytes));
		int rc = rte_eth_dev_default_mac_addr_set(p->port_id, &wanted);
		if (rc == 0) {
			p->mac = wanted;
		} else {
			rc = rte_eth_promiscuous_enable(p->port_id);
			promiscuous = rc == 0;
			format_mac(local->mac, text, sizeof(text));
			if (rc)
				OSKR_WARN("dpdk: port %s takes neither MAC %s "
					  "nor promiscuous mode (%s); frames "
					  "to %s may be filtered",
					  p->name, text, rte_strerror(-rc),
					  text);
		}
	}
	if (!config->dpdk.has_multicast || promiscuous)
		return;
	struct rte_ether_addr group;
	memcpy(group.addr_bytes, config->dpdk.multicast_mac,
	       sizeof(group.addr_bytes));
	if (rte_eth_dev_set_mc_addr_list(p->port_id, &group, 1) == 0 ||
	    rte_eth_allmulticast_enable(p->port_id) == 0 ||
	    rte_eth_promiscuous_enable(p->port_id) == 0)
		return;
	format_mac(group.addr_bytes, text, sizeof(text));
	OSKR_WARN("dpdk: port %s cannot join multicast %s", p->name, text);
}

static int port_create(const struct oskr_config *config, unsigned tx_slots,
		       struct dpdk_port **out, char **err)
{
	const struct oskr_config_dpdk *d = &config->dpdk;
	int rc = eal_init(d, err);
	if (rc)
		return rc;
	struct dpdk_port *p = calloc(1, sizeof(*p));
	if (!p) {
		eal_teardown();
		return -ENOMEM;
	}
	bool configured = false, started = false;
	rte_rwlock_init(&p->table_lock);
	atomic_init(&p->link_checked_ns, 0);
	atomic_init(&p->link_was_up, false);
	rc = find_port(d, &p->port_id, err);
	if (rc)
		goto err;
	rte_eth_dev_get_name_by_port(p->port_id, p->name);

	struct rte_eth_dev_info info;
	rc = rte_eth_dev_info_get(p->port_id, &info);
	if (rc) {
		oskr__errorf(err, "dpdk: port %s: cannot read device info: %s",
			     p->name, rte_strerror(-rc));
		goto err;
	}
	/* memif pairs our tx queue i with the peer's rx queue i: a frame
	 * sent on a queue the peer did not open is refused forever, and an
	 * rx queue the peer did not open reads stale ring memory (measured:
	 * duplicated and corrupt frames). Both ends must agree, so unless
	 * configured, memif gets one queue each way (the tx slots then share
	 * it under its lock). Other devices get a tx queue per slot. */
	bool memif = info.driver_name &&
		     strcmp(info.driver_name, "net_memif") == 0;
	unsigned rx_wanted = d->rx_queues ? d->rx_queues : 1;
	unsigned tx_wanted = d->tx_queues ? d->tx_queues
					  : (memif ? 1 : tx_slots);
	p->rx_queue_count = (uint16_t)RTE_MIN(rx_wanted, info.max_rx_queues);
	p->tx_queue_count = (uint16_t)RTE_MIN(tx_wanted, info.max_tx_queues);
	if (!p->rx_queue_count || !p->tx_queue_count) {
		rc = oskr__errorf(err, "dpdk: port %s offers no rx or tx queue",
				  p->name);
		goto err;
	}
	if (p->rx_queue_count < rx_wanted ||
	    (d->tx_queues && p->tx_queue_count < tx_wanted))
		OSKR_WARN("dpdk: port %s has at most %u rx / %u tx queues; "
			  "using %u / %u",
			  p->name, info.max_rx_queues, info.max_tx_queues,
			  p->rx_queue_count, p->tx_queue_count);
	if (memif && (p->rx_queue_count > 1 || p->tx_queue_count > 1))
		OSKR_WARN("dpdk: memif port %s with %u rx / %u tx queues: its "
			  "peer must open %u rx / %u tx (memif pairs queue i "
			  "with the peer's queue i)",
			  p->name, p->rx_queue_count, p->tx_queue_count,
			  p->tx_queue_count, p->rx_queue_count);

	p->rx_locks = calloc(p->rx_queue_count, sizeof(*p->rx_locks));
	p->tx_locks = calloc(p->tx_queue_count, sizeof(*p->tx_locks));
	p->by_id = calloc(OSKR_FRAME_ID_MAX + 1, sizeof(*p->by_id));
	if (!p->rx_locks || !p->tx_locks || !p->by_id) {
		rc = -ENOMEM;
		goto err;
	}
	for (unsigned q = 0; q < p->rx_queue_count; q++)
		rte_spinlock_init(&p->rx_locks[q]);
	for (unsigned q = 0; q < p->tx_queue_count; q++)
		rte_spinlock_init(&p->tx_locks[q]);
	p->lcore_cpus = calloc(rte_lcore_count(), sizeof(*p->lcore_cpus));
	if (!p->lcore_cpus) {
		rc = -ENOMEM;
		goto err;
	}
	unsigned lcore;
	RTE_LCORE_FOREACH(lcore)
		p->lcore_cpus[p->lcore_count++] = rte_lcore_cpuset(lcore);

	int socket = rte_eth_dev_socket_id(p->port_id);
	if (socket < 0)
		socket = SOCKET_ID_ANY;
	unsigned mbufs = d->mbuf_count ? d->mbuf_count : 8191;
	/* The per-lcore cache may hold at most 1/1.5 of the pool. */
	unsigned cache = RTE_MIN(DPDK_POOL_CACHE, mbufs / 2);
	uint16_t priv_size = (uint16_t)RTE_ALIGN(sizeof(struct oskr__buf),
						 RTE_MBUF_PRIV_ALIGN);
	p->pool = rte_pktmbuf_pool_create("oskr_mbufs", mbufs, cache, priv_size,
					  RTE_MBUF_DEFAULT_BUF_SIZE, socket);
	if (!p->pool) {
		int error = rte_errno;
		rc = oskr__errorf(err,
				  "dpdk: cannot create a pool of %u mbufs: %s; "
				  "hint: %s",
				  mbufs, rte_strerror(error),
				  eal_args_have(d, "--no-huge")
					  ? "raise EAL -m (MB) or lower "
					    "transport.mbufs"
					  : "reserve more hugepages or lower "
					    "transport.mbufs");
		goto err;
	}

	struct rte_eth_conf port_conf;
	memset(&port_conf, 0, sizeof(port_conf));
	rc = rte_eth_dev_configure(p->port_id, p->rx_queue_count,
				   p->tx_queue_count, &port_conf);
	if (rc) {
		oskr__errorf(err, "dpdk: port %s: configure (%u rx, %u tx "
			     "queues) failed: %s",
			     p->name, p->rx_queue_count, p->tx_queue_count,
			     rte_strerror(-rc));
		goto err;
	}
	configured = true;
	uint16_t rx_desc = DPDK_RX_DESC, tx_desc = DPDK_TX_DESC;
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(p->port_id, &rx_desc, &tx_desc);
	if (rc) {
		oskr__errorf(err, "dpdk: port %s: descriptor counts: %s",
			     p->name, rte_strerror(-rc));
		goto err;
	}
	for (uint16_t q = 0; q < p->rx_queue_count; q++) {
		rc = rte_eth_rx_queue_setup(p->port_id, q, rx_desc,
					    (unsigned)socket, NULL, p->pool);
		if (rc) {
			oskr__errorf(err, "dpdk: port %s: rx queue %u: %s",
				     p->name, q, rte_strerror(-rc));
			goto err;
		}
	}
	for (uint16_t q = 0; q < p->tx_queue_count; q++) {
		rc = rte_eth_tx_queue_setup(p->port_id, q, tx_desc,
					    (unsigned)socket, NULL);
		if (rc) {
			oskr__errorf(err, "dpdk: port %s: tx queue %u: %s",
				     p->name, q, rte_strerror(-rc));
			goto err;
		}
	}
	rc = rte_eth_macaddr_get(p->port_id, &p->mac);
	if (rc) {
		oskr__errorf(err, "dpdk: port %s: cannot read its MAC: %s",
			     p->name, rte_strerror(-rc));
		goto err;
	}
	rc = rte_eth_dev_start(p->port_id);
	if (rc) {
		oskr__errorf(err, "dpdk: port %s: start failed: %s%s", p->name,
			     rte_strerror(-rc),
			     strncmp(p->name, "net_memif", 9) == 0
				     ? "; hint: a memif client starts only "
				       "once its server (role=server) is up"
				     : "");
		goto err;
	}
	started = true;

	uint16_t mtu = RTE_ETHER_MTU;
	if (rte_eth_dev_get_mtu(p->port_id, &mtu) != 0 || !mtu)
		mtu = RTE_ETHER_MTU;
	/* A frame is at most the Ethernet header plus the MTU; the mbuf's
	 * data room (2048 bytes after the headroom) must hold it too. */
	uint32_t by_mtu = (uint32_t)mtu -
			  (OSKR_FRAME_HEADER_MAX - OSKR_FRAME_ETH_SIZE);
	uint32_t by_mbuf = RTE_MBUF_DEFAULT_DATAROOM - OSKR_FRAME_HEADER_MAX;
	uint32_t by_mtu_or_mbuf = RTE_MIN(by_mtu, by_mbuf);
	p->max_message =
		RTE_MIN(by_mtu_or_mbuf, (uint32_t)OSKR_FRAME_PAYLOAD_MAX);
	*out = p;
	return 0;

err:
	if (rc > 0)
		rc = -rc;
	port_free(p, configured, started);
	return rc ? rc : -EIO;
}

/* ---- routing ---- */

/* The transport of this process that owns @p dst, or NULL. Call with
 * table_lock held for reading. */
static struct oskr_transport *route(struct dpdk_port *p,
				    const struct oskr__frame_endpoint *dst)
{
	if (p->has_multicast && oskr__frame_endpoint_equal(dst, &p->multicast))
		return p->replica;
	struct oskr_transport *t = p->by_id[dst->id];
	if (t && mac_equal(t->local.mac, dst->mac))
		return t;
	return NULL;
}

/* Why nobody here owns @p dst: one of our MACs with a foreign id, or a
 * frame for another station. Call with table_lock held for reading. */
static enum oskr__frame_status
unrouted_status(struct dpdk_port *p, const struct oskr__frame_endpoint *dst)
{
	if (mac_equal(dst->mac, p->mac.addr_bytes) ||
	    (p->replica && mac_equal(dst->mac, p->replica->local.mac)) ||
	    (p->has_multicast && mac_equal(dst->mac, p->multicast.mac)))
		return OSKR_FRAME_UNKNOWN_DEST;
	return OSKR_FRAME_NOT_OURS;
}

/* Which of @p t's inboxes a frame from @p src goes to. */
static unsigned inbox_for(const struct oskr_transport *t,
			  const struct oskr__frame_endpoint *src)
{
	if (t->rx_count == 1)
		return 0;
	return oskr__frame_endpoint_hash(src) % t->rx_count;
}

/* Decode a frame well enough to route it. Multi-segment frames (a PMD
 * may chain a large one) are made contiguous first. */
static enum oskr__frame_status frame_header(struct rte_mbuf *m,
					    struct oskr__frame_header *h)
{
	if (m->nb_segs > 1 && rte_pktmbuf_linearize(m) != 0)
		return OSKR_FRAME_TRUNCATED;
	return oskr__frame_decode(rte_pktmbuf_mtod(m, const uint8_t *),
				  rte_pktmbuf_data_len(m), NULL, h);
}

/*
 * Route one burst of frames received by @p self on behalf of its rx
 * context @p rx: frames for that context are moved to the front of
 * @p frames (the count is returned), the others are queued to their
 * owner's inbox or dropped.
 */
static unsigned dispatch(struct oskr_transport *self, struct dpdk_rx *rx,
			 struct rte_mbuf **frames, unsigned count)
{
	struct dpdk_port *p = self->port;
	unsigned mine = 0;
	rte_rwlock_read_lock(&p->table_lock);
	for (unsigned i = 0; i < count; i++) {
		struct rte_mbuf *m = frames[i];
		struct oskr__frame_header h;
		enum oskr__frame_status status = frame_header(m, &h);
		struct oskr_transport *owner = NULL;
		if (status == OSKR_FRAME_OK) {
			owner = route(p, &h.dst);
			if (!owner)
				status = unrouted_status(p, &h.dst);
		}
		if (status != OSKR_FRAME_OK) {
			count_drop(&rx->counters,
				   oskr__frame_drop_reason(status));
			rte_pktmbuf_free(m);
			continue;
		}
		unsigned index = inbox_for(owner, &h.src);
		if (owner == self && index == rx->index) {
			frames[mine++] = m;
		} else if (rte_ring_mp_enqueue(owner->rx[index].inbox, m)) {
			count_drop(&rx->counters, OSKR_DROP_QUEUE_FULL);
			rte_pktmbuf_free(m);
		}
	}
	rte_rwlock_read_unlock(&p->table_lock);
	return mine;
}

static int32_t replica_of_source(const struct oskr_transport *t,
				 const struct oskr__frame_endpoint *src)
{
	for (uint32_t i = 0; i < t->replica_count; i++)
		if (oskr__frame_endpoint_equal(&t->replicas[i], src))
			return (int32_t)i;
	return -1;
}

/* Hand one frame routed to @p rx up as a zero-copy buffer. */
static bool deliver_frame(struct oskr_transport *t, struct dpdk_rx *rx,
			  struct rte_mbuf *m, oskr__deliver_fn deliver,
			  void *arg)
{
	struct oskr__frame_header h;
	/* Frames in an inbox were checked by whoever routed them, or built
	 * by a local send; decode again for the header. */
	if (frame_header(m, &h) != OSKR_FRAME_OK) {
		count_drop(&rx->counters, OSKR_DROP_SHORT);
		rte_pktmbuf_free(m);
		return false;
	}
	uint8_t *payload = rte_pktmbuf_mtod_offset(m, uint8_t *, h.header_size);
	struct oskr_buf *buf = mbuf_wrap(m, payload, h.payload_len,
					 h.payload_len);
	struct oskr_addr from;
	oskr__frame_addr_pack(&h.src, &from);
	counter_add(&rx->counters.rx_packets, 1);
	counter_add(&rx->counters.rx_bytes, h.payload_len);
	deliver(arg, buf, &from, replica_of_source(t, &h.src));
	return true;
}

/*
 * One receive round for rx context @p rx: its inbox, then one burst from
 * each of @p queues port rx queues starting at @p first (skipping a queue
 * somebody else is polling). *handled gets the frames taken off the wire
 * or inbox; returns the number delivered.
 */
static unsigned rx_round(struct oskr_transport *t, struct dpdk_rx *rx,
			 uint16_t first, uint16_t queues,
			 oskr__deliver_fn deliver, void *arg,
			 unsigned *handled)
{
	struct dpdk_port *p = t->port;
	struct rte_mbuf *frames[DPDK_BURST_MAX];
	unsigned delivered = 0;
	unsigned n = rte_ring_sc_dequeue_burst(rx->inbox, (void **)frames,
					       t->burst, NULL);
	*handled = n;
	for (unsigned i = 0; i < n; i++)
		delivered += deliver_frame(t, rx, frames[i], deliver, arg);
	for (uint16_t k = 0; k < queues; k++) {
		uint16_t q = (uint16_t)((first + k) % p->rx_queue_count);
		if (!rte_spinlock_trylock(&p->rx_locks[q]))
			continue;
		uint16_t got = rte_eth_rx_burst(p->port_id, q, frames,
						t->burst);
		unsigned mine = got ? dispatch(t, rx, frames, got) : 0;
		rte_spinlock_unlock(&p->rx_locks[q]);
		*handled += got;
		for (unsigned i = 0; i < mine; i++)
			delivered += deliver_frame(t, rx, frames[i], deliver,
						   arg);
	}
	return delivered;
}

static void *rx_thread_main(void *arg)
{
	struct dpdk_rx *rx = arg;
	struct oskr_transport *t = rx->transport;
	char name[16];
	snprintf(name, sizeof(name), "oskr-rx%u", rx->index);
	prctl(PR_SET_NAME, name, 0, 0, 0);
	tighten_timer_slack();
	/* DPDK's convention: a process polls on the cores its EAL -l names.
	 * (eal_init gave the host's threads their CPUs back.) */
	struct dpdk_port *p = t->port;
	if (p->lcore_count)
		pthread_setaffinity_np(pthread_self(), sizeof(rte_cpuset_t),
				       &p->lcore_cpus[rx->index %
						      p->lcore_count]);
	/* An lcore id gives this thread a mempool cache (the rx path
	 * allocates and frees mbufs); without one it still works. */
	bool registered = rte_thread_register() == 0;
	uint32_t idle_rounds = 0;
	while (!atomic_load_explicit(&t->stopping, memory_order_acquire)) {
		unsigned handled;
		rx_round(t, rx, (uint16_t)rx->index, 1, t->deliver,
			 t->deliver_arg, &handled);
		if (handled)
			idle_rounds = 0;
		else
			idle_wait(&t->idle, &idle_rounds);
	}
	if (registered)
		rte_thread_unregister();
	return NULL;
}

/* ---- transmit ---- */

static bool link_up(const struct dpdk_port *p);

/* The link state, queried at most every DPDK_LINK_CHECK_NS: a memif link
 * goes down when its peer leaves. Any thread. */
static bool link_up_recently(struct dpdk_port *p)
{
	uint64_t now = monotonic_ns();
	uint64_t checked =
		atomic_load_explicit(&p->link_checked_ns, memory_order_relaxed);
	if (now - checked >= DPDK_LINK_CHECK_NS) {
		atomic_store_explicit(&p->link_was_up, link_up(p),
				      memory_order_relaxed);
		atomic_store_explicit(&p->link_checked_ns, now,
				      memory_order_relaxed);
	}
	return atomic_load_explicit(&p->link_was_up, memory_order_relaxed);
}

static void slot_flush(struct oskr_transport *t, struct dpdk_tx_slot *slot)
{
	struct dpdk_port *p = t->port;
	uint16_t count = slot->count, sent = 0;
	uint64_t bytes = 0;
	for (uint16_t i = 0; i < count; i++)
		bytes += rte_pktmbuf_pkt_len(slot->pending[i]);

	for (unsigned attempt = 0; sent < count && attempt < DPDK_TX_ATTEMPTS;) {
		/* The lock is uncontended unless slots share the queue; it is
		 * never held across the wait below. */
		rte_spinlock_lock(&p->tx_locks[slot->queue]);
		uint16_t now = rte_eth_tx_burst(p->port_id, slot->queue,
						slot->pending + sent,
						(uint16_t)(count - sent));
		rte_spinlock_unlock(&p->tx_locks[slot->queue]);
		sent = (uint16_t)(sent + now);
		if (now)
			continue;
		/* No progress: the ring is full or the peer is gone. */
		if (!attempt && !link_up_recently(p))
			break;
		if (attempt++ < DPDK_TX_ATTEMPTS / 2)
			sched_yield();
		else
			sleep_us(DPDK_TX_RETRY_SLEEP_US);
	}

	for (uint16_t i = sent; i < count; i++) {
		bytes -= rte_pktmbuf_pkt_len(slot->pending[i]);
		rte_pktmbuf_free(slot->pending[i]);
	}
	slot->count = 0;
	counter_add(&slot->counters.tx_packets, sent);
	counter_add(&slot->counters.tx_bytes, bytes);
	counter_add(&slot->counters.drops[OSKR_DROP_TX_FAILED],
		    (uint64_t)(count - sent));
}

/* The buffer's own mbuf, framed in place, if that is safe: it came from
 * buf_alloc, was never sent, and the caller's is the only reference (so
 * nobody can read or send it concurrently). NULL otherwise. */
static struct rte_mbuf *frame_in_place(struct oskr_transport *t,
				       const struct oskr__frame_endpoint *dst,
				       struct oskr_buf *buf, size_t header)
{
	struct oskr__buf *b = oskr__buf_from_pub(buf);
	if (b->free_fn != mbuf_buf_free)
		return NULL;
	struct rte_mbuf *m = b->owner;
	/* Received mbufs have data_len > 0; one from buf_alloc has 0 and
	 * data at its start until it is sent. */
	if (m->pool != t->port->pool || rte_pktmbuf_data_len(m) != 0 ||
	    buf->data != rte_pktmbuf_mtod(m, uint8_t *) ||
	    rte_pktmbuf_headroom(m) < header ||
	    atomic_load_explicit(&b->refs, memory_order_acquire) != 1)
		return NULL;
	m->data_len = (uint16_t)buf->len;
	m->pkt_len = buf->len;
	uint8_t *start = (uint8_t *)rte_pktmbuf_prepend(m, (uint16_t)header);
	oskr__frame_write_header(start, header, dst, &t->local, buf->len);
	/* The caller's reference is consumed: the oskr__buf in the private
	 * area is dead, the mbuf now belongs to the NIC. */
	return m;
}

static struct rte_mbuf *frame_copy(struct oskr_transport *t,
				   const struct oskr__frame_endpoint *dst,
				   const struct oskr_buf *buf, size_t header)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(t->port->pool);
	if (!m)
		return NULL;
	uint8_t *start =
		(uint8_t *)rte_pktmbuf_append(m, (uint16_t)(header + buf->len));
	if (!start) {
		rte_pktmbuf_free(m);
		return NULL;
	}
	oskr__frame_write_header(start, header, dst, &t->local, buf->len);
	memcpy(start + header, buf->data, buf->len);
	return m;
}

/* A frame for an endpoint of this process skips the wire. Returns false
 * (frame untouched) when nobody here owns @p dst. */
static bool send_local(struct oskr_transport *t, struct dpdk_tx_slot *slot,
		       const struct oskr__frame_endpoint *dst,
		       struct rte_mbuf *m)
{
	struct dpdk_port *p = t->port;
	/* Every endpoint of this process has the port's MAC or (a replica
	 * whose MAC the port did not take) its own: anything else is for
	 * the wire, no need to look. */
	if (!mac_equal(dst->mac, t->local.mac) &&
	    !mac_equal(dst->mac, p->mac.addr_bytes) &&
	    !mac_equal(dst->mac, p->replica_mac))
		return false;
	rte_rwlock_read_lock(&p->table_lock);
	/* Multicast goes on the wire even when this process is a member:
	 * a NIC does not loop it back either. */
	struct oskr_transport *owner =
		p->has_multicast &&
				oskr__frame_endpoint_equal(dst, &p->multicast)
			? NULL
			: route(p, dst);
	if (owner) {
		unsigned index = inbox_for(owner, &t->local);
		if (rte_ring_mp_enqueue(owner->rx[index].inbox, m) == 0) {
			counter_add(&slot->counters.tx_packets, 1);
			counter_add(&slot->counters.tx_bytes,
				    rte_pktmbuf_pkt_len(m));
		} else {
			count_drop(&slot->counters, OSKR_DROP_QUEUE_FULL);
			rte_pktmbuf_free(m);
		}
	}
	rte_rwlock_read_unlock(&p->table_lock);
	return owner != NULL;
}

static void queue_frame(struct oskr_transport *t, struct dpdk_tx_slot *slot,
			const struct oskr__frame_endpoint *dst,
			struct rte_mbuf *m)
{
	if (dst && send_local(t, slot, dst, m))
		return;
	slot->pending[slot->count++] = m;
	if (slot->count >= t->burst)
		slot_flush(t, slot);
}

static int send_to(struct oskr_transport *t, unsigned tx_slot,
		   const struct oskr__frame_endpoint *dst, struct oskr_buf *buf)
{
	if (tx_slot >= t->tx_slot_count) {
		oskr__buf_release(buf);
		return -EINVAL;
	}
	if (buf->len > buf->capacity || buf->len > t->port->max_message) {
		oskr__buf_release(buf);
		return -EMSGSIZE;
	}
	struct dpdk_tx_slot *slot = &t->slots[tx_slot];
	size_t header = oskr__frame_header_size(dst->id, t->local.id);
	struct rte_mbuf *m = frame_in_place(t, dst, buf, header);
	if (!m) {
		m = frame_copy(t, dst, buf, header);
		oskr__buf_release(buf);
		if (!m) {
			count_drop(&slot->counters, OSKR_DROP_NO_BUFFER);
			return -ENOMEM;
		}
	}
	queue_frame(t, slot, dst, m);
	return 0;
}

static int dpdk_send_replica(struct oskr_transport *t, unsigned tx_slot,
			     uint32_t replica_id, struct oskr_buf *buf)
{
	if (!buf)
		return -EINVAL;
	if (replica_id >= t->replica_count) {
		oskr__buf_release(buf);
		return -EINVAL;
	}
	return send_to(t, tx_slot, &t->replicas[replica_id], buf);
}

static int dpdk_send_addr(struct oskr_transport *t, unsigned tx_slot,
			  const struct oskr_addr *addr, struct oskr_buf *buf)
{
	struct oskr__frame_endpoint dst;
	if (!buf)
		return -EINVAL;
	if (!addr || oskr__frame_addr_unpack(addr, &dst) < 0) {
		oskr__buf_release(buf);
		return -EINVAL;
	}
	return send_to(t, tx_slot, &dst, buf);
}

static void dpdk_flush(struct oskr_transport *t, unsigned tx_slot)
{
	if (tx_slot < t->tx_slot_count && t->slots[tx_slot].count)
		slot_flush(t, &t->slots[tx_slot]);
}

int oskr__dpdk_send_raw(struct oskr_transport *t, unsigned tx_slot,
			const void *frame, size_t len)
{
	/* A zero-length mbuf is not a frame; memif even "sends" it with the
	 * stale contents of the descriptor's previous frame. */
	if (tx_slot >= t->tx_slot_count || !frame || !len)
		return -EINVAL;
	if (len > RTE_MBUF_DEFAULT_DATAROOM)
		return -EMSGSIZE;
	struct rte_mbuf *m = rte_pktmbuf_alloc(t->port->pool);
	if (!m)
		return -ENOMEM;
	uint8_t *start = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)len);
	if (!start) {
		rte_pktmbuf_free(m);
		return -EMSGSIZE;
	}
	memcpy(start, frame, len);
	queue_frame(t, &t->slots[tx_slot], NULL, m);
	return 0;
}

/* ---- lifecycle ---- */

static bool link_up(const struct dpdk_port *p)
{
	struct rte_eth_link link;
	memset(&link, 0, sizeof(link));
	return rte_eth_link_get_nowait(p->port_id, &link) == 0 &&
	       link.link_status == RTE_ETH_LINK_UP;
}

bool oskr__dpdk_link_up(struct oskr_transport *t)
{
	return link_up(t->port);
}

int oskr__dpdk_wait_link(struct oskr_transport *t, int timeout_ms)
{
	uint64_t deadline = monotonic_ns() + (uint64_t)timeout_ms * 1000000u;
	while (!link_up(t->port)) {
		if (monotonic_ns() >= deadline)
			return -ETIMEDOUT;
		sleep_us(1000);
	}
	return 0;
}

static void dpdk_stop(struct oskr_transport *t)
{
	if (!t->started)
		return;
	atomic_store_explicit(&t->stopping, true, memory_order_release);
	for (unsigned i = 0; i < t->rx_count; i++) {
		if (t->rx[i].thread_running)
			pthread_join(t->rx[i].thread, NULL);
		t->rx[i].thread_running = false;
	}
	t->started = false;
}

/* An MPSC ring in ordinary heap memory: no memzone, so a bench with a
 * thousand clients does not run into EAL's memzone limit. Free with
 * free(). */
static struct rte_ring *inbox_create(unsigned count)
{
	static _Atomic unsigned serial;
	ssize_t size = rte_ring_get_memsize(count);
	if (size < 0)
		return NULL;
	struct rte_ring *ring = aligned_alloc(
		RTE_CACHE_LINE_SIZE,
		RTE_ALIGN_CEIL((size_t)size, RTE_CACHE_LINE_SIZE));
	if (!ring)
		return NULL;
	char name[RTE_RING_NAMESIZE];
	snprintf(name, sizeof(name), "oskr_inbox%u",
		 atomic_fetch_add(&serial, 1));
	if (rte_ring_init(ring, name, count, RING_F_SC_DEQ) != 0) {
		free(ring);
		return NULL;
	}
	return ring;
}

/* Frees what open_endpoint built; the port itself is released by the
 * caller. */
static void endpoint_free(struct oskr_transport *t)
{
	if (t->slots) {
		for (unsigned i = 0; i < t->tx_slot_count; i++)
			free(t->slots[i].pending);
		free(t->slots);
	}
	if (t->rx) {
		for (unsigned i = 0; i < t->rx_count; i++) {
			struct rte_ring *inbox = t->rx[i].inbox;
			void *frame;
			if (!inbox)
				continue;
			while (rte_ring_sc_dequeue(inbox, &frame) == 0)
				rte_pktmbuf_free(frame);
			free(inbox);
		}
		free(t->rx);
	}
	free(t->replicas);
	free(t);
}

static void unregister_endpoint(struct dpdk_port *p, struct oskr_transport *t)
{
	/* After the write lock no dispatcher holds a pointer to t: its
	 * inboxes can go. */
	rte_rwlock_write_lock(&p->table_lock);
	if (p->by_id[t->local.id] == t)
		p->by_id[t->local.id] = NULL;
	if (p->replica == t) {
		p->replica = NULL;
		p->has_multicast = false;
	}
	rte_rwlock_write_unlock(&p->table_lock);
}

static void port_release(struct dpdk_port *p)
{
	if (--p->users)
		return;
	the_port = NULL;
	port_free(p, true, true);
}

static void dpdk_close(struct oskr_transport *t)
{
	if (!t)
		return;
	dpdk_stop(t);
	/* The owner guarantees no sender runs any more: send what is still
	 * batched (e.g. a client's last request). */
	for (unsigned i = 0; i < t->tx_slot_count; i++)
		dpdk_flush(t, i);
	pthread_mutex_lock(&port_mutex);
	struct dpdk_port *p = t->port;
	unregister_endpoint(p, t);
	endpoint_free(t);
	port_release(p);
	pthread_mutex_unlock(&port_mutex);
}

static uint16_t random_client_id(void)
{
	uint32_t random = 0;
	if (getrandom(&random, sizeof(random), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(random))
		random = (uint32_t)monotonic_ns() ^ (uint32_t)getpid() << 8;
	return (uint16_t)(DPDK_CLIENT_ID_MIN +
			  random % (OSKR_FRAME_ID_MAX + 1 -
				    DPDK_CLIENT_ID_MIN));
}

/* True when @p id is taken by an endpoint here or by a configured replica
 * on the port's MAC (a reply to that id would be ambiguous). Under
 * port_mutex. */
static bool client_id_taken(const struct dpdk_port *p,
			    const struct oskr_config *config, uint16_t id)
{
	if (p->by_id[id] || (p->has_multicast && p->multicast.id == id))
		return true;
	for (uint32_t i = 0; i < config->replica_count; i++)
		if (config->replicas[i].link_id == id)
			return true;
	return false;
}

static int pick_client_id(const struct dpdk_port *p,
			  const struct oskr_config *config, uint16_t *out)
{
	for (int attempt = 0; attempt < 64; attempt++) {
		uint16_t id = random_client_id();
		if (!client_id_taken(p, config, id)) {
			*out = id;
			return 0;
		}
	}
	for (uint32_t id = DPDK_CLIENT_ID_MIN; id <= OSKR_FRAME_ID_MAX; id++) {
		if (!client_id_taken(p, config, (uint16_t)id)) {
			*out = (uint16_t)id;
			return 0;
		}
	}
	return -EADDRINUSE;
}

static int open_endpoint(struct dpdk_port *p, const struct oskr_config *config,
			 int32_t replica_id, unsigned tx_slots,
			 struct oskr_transport **out, char **err)
{
	struct oskr_transport *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->port = p;
	t->replica_id = replica_id;
	t->burst = (uint16_t)RTE_MIN(config->dpdk.burst_size
					     ? config->dpdk.burst_size
					     : 32u,
				     DPDK_BURST_MAX);
	t->idle = (struct dpdk_idle){
		.spin = config->dpdk.idle_spin,
		.yield = config->dpdk.idle_yield,
		.sleep_us = config->dpdk.idle_sleep_us,
	};
	atomic_init(&t->stopping, false);
	atomic_init(&t->alloc_failures, 0);

	t->replica_count = config->replica_count;
	t->replicas = calloc(t->replica_count ? t->replica_count : 1,
			     sizeof(*t->replicas));
	if (!t->replicas)
		goto err_nomem;
	for (uint32_t i = 0; i < t->replica_count; i++) {
		const struct oskr_config_replica *r = &config->replicas[i];
		if (!r->has_mac || r->link_id > OSKR_FRAME_ID_MAX) {
			oskr__errorf(err,
				     "dpdk: replica %u has no MAC%%id address "
				     "(id <= %u)",
				     i, OSKR_FRAME_ID_MAX);
			endpoint_free(t);
			return -EINVAL;
		}
		memcpy(t->replicas[i].mac, r->mac, OSKR_FRAME_MAC_SIZE);
		t->replicas[i].id = r->link_id;
	}

	int rc = 0;
	if (replica_id >= 0) {
		t->local = t->replicas[replica_id];
		if (p->by_id[t->local.id] || p->replica) {
			char text[OSKR_FRAME_ENDPOINT_TEXT];
			oskr__frame_endpoint_format(&t->local, text,
						    sizeof(text));
			oskr__errorf(err, "dpdk: endpoint %s is already open in "
				     "this process",
				     text);
			endpoint_free(t);
			return -EADDRINUSE;
		}
		t->rx_count = p->rx_queue_count;
	} else {
		memcpy(t->local.mac, p->mac.addr_bytes, OSKR_FRAME_MAC_SIZE);
		rc = pick_client_id(p, config, &t->local.id);
		if (rc) {
			oskr__errorf(err, "dpdk: no free client id on port %s",
				     p->name);
			endpoint_free(t);
			return rc;
		}
		t->rx_count = 1;
	}

	t->rx = calloc_aligned(t->rx_count, sizeof(*t->rx));
	t->tx_slot_count = tx_slots;
	t->slots = calloc_aligned(tx_slots, sizeof(*t->slots));
	if (!t->rx || !t->slots)
		goto err_nomem;
	for (unsigned i = 0; i < t->rx_count; i++) {
		t->rx[i].transport = t;
		t->rx[i].index = i;
		t->rx[i].inbox = inbox_create(replica_id >= 0
						      ? DPDK_INBOX_SIZE
						      : DPDK_CLIENT_INBOX_SIZE);
		if (!t->rx[i].inbox)
			goto err_nomem;
	}
	for (unsigned i = 0; i < tx_slots; i++) {
		t->slots[i].pending = calloc(t->burst, sizeof(struct rte_mbuf *));
		if (!t->slots[i].pending)
			goto err_nomem;
		/* Slot i gets a queue of its own while there are enough. */
		t->slots[i].queue = p->next_tx_queue;
		p->next_tx_queue =
			(uint16_t)((p->next_tx_queue + 1) % p->tx_queue_count);
	}

	rte_rwlock_write_lock(&p->table_lock);
	p->by_id[t->local.id] = t;
	if (replica_id >= 0) {
		p->replica = t;
		memcpy(p->replica_mac, t->local.mac, OSKR_FRAME_MAC_SIZE);
		if (config->dpdk.has_multicast) {
			p->has_multicast = true;
			memcpy(p->multicast.mac, config->dpdk.multicast_mac,
			       OSKR_FRAME_MAC_SIZE);
			p->multicast.id = config->dpdk.multicast_id;
		}
	}
	rte_rwlock_write_unlock(&p->table_lock);
	*out = t;
	return 0;

err_nomem:
	endpoint_free(t);
	return -ENOMEM;
}

static int dpdk_open(struct oskr_transport **out,
		     const struct oskr_config *config, int32_t replica_id,
		     unsigned tx_slots, char **err)
{
	if (!out || !config || !tx_slots ||
	    (replica_id >= 0 && (uint32_t)replica_id >= config->replica_count))
		return -EINVAL;
	if (replica_id >= 0 && config->dpdk.has_multicast &&
	    config->dpdk.multicast_id > OSKR_FRAME_ID_MAX)
		return oskr__errorf(err, "dpdk: multicast id %u is above %u",
				    config->dpdk.multicast_id,
				    OSKR_FRAME_ID_MAX);

	pthread_mutex_lock(&port_mutex);
	bool created = false;
	int rc = 0;
	if (!the_port) {
		rc = port_create(config, tx_slots, &the_port, err);
		if (rc) {
			pthread_mutex_unlock(&port_mutex);
			return rc;
		}
		created = true;
	}
	struct dpdk_port *p = the_port;
	p->users++;
	rc = open_endpoint(p, config, replica_id, tx_slots, out, err);
	if (rc) {
		port_release(p);
		pthread_mutex_unlock(&port_mutex);
		return rc;
	}
	struct oskr_transport *t = *out;
	if (replica_id >= 0)
		port_set_addresses(p, config, &t->local);
	pthread_mutex_unlock(&port_mutex);

	char local[OSKR_FRAME_ENDPOINT_TEXT], port_mac[24];
	oskr__frame_endpoint_format(&t->local, local, sizeof(local));
	format_mac(p->mac.addr_bytes, port_mac, sizeof(port_mac));
	if (created)
		OSKR_INFO("dpdk: port %s (id %u, MAC %s): %u rx / %u tx "
			  "queues, max message %u bytes, link %s",
			  p->name, p->port_id, port_mac, p->rx_queue_count,
			  p->tx_queue_count, p->max_message,
			  link_up(p) ? "up" : "down (waiting for the peer)");
	if (replica_id >= 0)
		OSKR_INFO("dpdk: replica %d is %s: %u rx thread(s), %u tx "
			  "slot(s)",
			  replica_id, local, t->rx_count, t->tx_slot_count);
	else
		OSKR_DEBUG("dpdk: client endpoint %s", local);
	return 0;
}

static int dpdk_start(struct oskr_transport *t, oskr__deliver_fn deliver,
		      void *arg)
{
	if (t->replica_id < 0 || !deliver)
		return -EINVAL;
	if (t->started)
		return -EALREADY;
	t->deliver = deliver;
	t->deliver_arg = arg;
	atomic_store_explicit(&t->stopping, false, memory_order_release);
	t->started = true;
	for (unsigned i = 0; i < t->rx_count; i++) {
		int rc = pthread_create(&t->rx[i].thread, NULL, rx_thread_main,
					&t->rx[i]);
		if (rc) {
			dpdk_stop(t);
			return -rc;
		}
		t->rx[i].thread_running = true;
	}
	return 0;
}

static int dpdk_poll(struct oskr_transport *t, oskr__deliver_fn deliver,
		     void *arg, int timeout_ms)
{
	if (t->replica_id >= 0 || !deliver)
		return -EINVAL;
	struct dpdk_port *p = t->port;
	struct dpdk_rx *rx = &t->rx[0];
	uint64_t deadline = timeout_ms > 0 ? monotonic_ns() +
						     (uint64_t)timeout_ms *
							     1000000u
					   : 0;
	uint32_t idle_rounds = 0;
	int delivered = 0;
	for (;;) {
		unsigned handled = 0;
		for (unsigned round = 0; round < DPDK_CLIENT_DRAIN_ROUNDS;
		     round++) {
			unsigned now;
			delivered += (int)rx_round(t, rx, 0, p->rx_queue_count,
						   deliver, arg, &now);
			handled += now;
			if (now < t->burst)
				break;
		}
		if (delivered)
			return delivered;
		if (timeout_ms == 0 ||
		    (timeout_ms > 0 && monotonic_ns() >= deadline))
			return 0;
		if (handled) {
			idle_rounds = 0; /* frames for others: look again */
		} else {
			tighten_timer_slack();
			idle_wait(&t->idle, &idle_rounds);
		}
	}
}

static int dpdk_fd(struct oskr_transport *t)
{
	/* No virtual device can wake a sleeper: callers poll(). */
	return -1;
}

static int dpdk_buf_alloc(struct oskr_transport *t, size_t capacity,
			  struct oskr_buf **out)
{
	if (capacity > t->port->max_message)
		return -EMSGSIZE;
	struct rte_mbuf *m = rte_pktmbuf_alloc(t->port->pool);
	if (!m) {
		atomic_fetch_add_explicit(&t->alloc_failures, 1,
					  memory_order_relaxed);
		return -ENOMEM;
	}
	/* The default headroom (RTE_PKTMBUF_HEADROOM, 128) leaves room to
	 * prepend the framing in place at send. */
	*out = mbuf_wrap(m, rte_pktmbuf_mtod(m, uint8_t *), (uint32_t)capacity,
			 (uint32_t)capacity);
	return 0;
}

static uint32_t dpdk_max_message(struct oskr_transport *t)
{
	return t->port->max_message;
}

static void dpdk_local_addr(struct oskr_transport *t, struct oskr_addr *out)
{
	oskr__frame_addr_pack(&t->local, out);
}

static void dpdk_stats(struct oskr_transport *t,
		       struct oskr_transport_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < t->rx_count; i++)
		oskr__transport_counters_sum(&t->rx[i].counters, out);
	for (unsigned i = 0; i < t->tx_slot_count; i++)
		oskr__transport_counters_sum(&t->slots[i].counters, out);
	out->drops[OSKR_DROP_NO_BUFFER] += atomic_load_explicit(
		&t->alloc_failures, memory_order_relaxed);
}

const struct oskr_transport_ops oskr__dpdk_transport = {
	.name = "dpdk",
	.open = dpdk_open,
	.start = dpdk_start,
	.poll = dpdk_poll,
	.fd = dpdk_fd,
	.stop = dpdk_stop,
	.close = dpdk_close,
	.buf_alloc = dpdk_buf_alloc,
	.send_replica = dpdk_send_replica,
	.send_addr = dpdk_send_addr,
	.flush = dpdk_flush,
	.max_message = dpdk_max_message,
	.local_addr = dpdk_local_addr,
	.stats = dpdk_stats,
};
