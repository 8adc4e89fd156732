/* SPDX-License-Identifier: MIT */
/*
 * oskr-plugin-test, the plugin conformance kit: shared declarations of the
 * command line (main.c) and the schedule runner (run.c).
 */
#ifndef OSKR_TOOLS_CONFORMANCE_KIT_H
#define OSKR_TOOLS_CONFORMANCE_KIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oskr/plugin.h>

#include "sim/sim.h"

#define OSKR_KIT_MS ((uint64_t)1000000)
/* --counter names shown per run, at most. */
#define OSKR_KIT_MAX_COUNTERS 8

/** What a schedule does to the cluster. */
enum oskr__kit_fault {
	OSKR_KIT_NONE,          /* a clean network */
	OSKR_KIT_DROP_REORDER,  /* random loss and delay spread */
	OSKR_KIT_DUPLICATE,     /* random duplicates and delay spread */
	OSKR_KIT_CRASH,         /* crash-stop of one replica, never back */
	OSKR_KIT_PARTITION,     /* cut one replica off, then heal */
	OSKR_KIT_RESTART,       /* crash one replica, restart it empty */
	OSKR_KIT_RESUME,        /* crash one replica, restart it from its last
				 * declared checkpoint (ABI 1.1; empty when it
				 * declared none) */
};

struct oskr__kit_schedule {
	enum oskr__kit_fault fault;
	uint32_t replica; /* CRASH, PARTITION, RESTART, RESUME */
	char name[32];    /* "none", "crash-2", ... */
};

/** Everything the command line decides. */
struct oskr__kit_options {
	const char *plugin_arg;      /* as given: name or path */
	const char *plugin_path;     /* resolved file */
	const struct oskr_plugin *plugin;
	uint32_t replica_count;
	uint32_t fault_count;
	uint32_t client_count;
	uint64_t requests;
	uint64_t first_seed;
	uint32_t seed_count;
	const char *app;
	const char *options_file;    /* --options FILE, or NULL */
	const char *options_inline;  /* --options-yaml TEXT, or NULL */
	char *options_text;          /* what the sim gets (file or inline) */
	const char *schedule_arg;    /* --schedule as given, or NULL */
	const char *faults_arg;      /* --faults as given, or NULL */
	const char *faults_note;     /* --faults-note as given, or NULL */
	bool crash_primary_tolerated;
	bool crash_tolerated;        /* any crash at all */
	bool partition_tolerated;
	double drop_rate;
	double duplicate_rate;
	uint64_t spread_ns;          /* max delay while reordering */
	uint64_t fault_ns;           /* how long a healed fault lasts */
	uint64_t bound_ns;           /* liveness bound after the heal */
	uint64_t max_events;         /* per run: a livelock guard */
	bool real_signatures;
	bool check_convergence;      /* correct replicas must converge */
	bool determinism;            /* replay the first run, compare */
	int verbosity;
	const char *counters[OSKR_KIT_MAX_COUNTERS]; /* --counter NAME */
	size_t counter_count;
	char *const *argv;           /* for the reproduce line */
	int argc;
};

/** What one run found. */
struct oskr__kit_result {
	bool passed;
	bool safety_only;       /* the fault is outside the declared model */
	bool liveness_ok;
	bool safety_ok;
	uint64_t completed;     /* requests that finished (first completion) */
	uint64_t issued;
	uint64_t fault_at_ns;   /* when the fault began (0: from the start) */
	uint64_t heal_at_ns;    /* when it healed / the crash happened */
	uint64_t done_at_ns;    /* when the last request finished */
	uint64_t events;
	uint64_t trace_digest;
	struct oskr_sim_net_stats net;
	uint64_t executed[OSKR_SIM_MAX_REPLICAS];
	bool crashed[OSKR_SIM_MAX_REPLICAS];
	uint64_t misuse;        /* stateful-only services used wrongly */
	/* --counter values per replica, then summed over the clients */
	uint64_t counters[OSKR_KIT_MAX_COUNTERS][OSKR_SIM_MAX_REPLICAS + 1];
	char why[512];          /* first failure, or a note */
};

/** The schedules for the options (all of them, before --schedule). */
size_t oskr__kit_schedules(const struct oskr__kit_options *options,
			   struct oskr__kit_schedule *out, size_t capacity);
/** Whether liveness is required under @p schedule (the declared fault
 *  model); otherwise only safety is checked. */
bool oskr__kit_liveness_required(const struct oskr__kit_options *options,
				 const struct oskr__kit_schedule *schedule);
/** Run one schedule with one seed. Returns 0 (see result->passed), or a
 *  negative errno when the sim could not even start (result->why says). */
int oskr__kit_run(const struct oskr__kit_options *options,
		  const struct oskr__kit_schedule *schedule, uint64_t seed,
		  struct oskr__kit_result *result);

#endif
