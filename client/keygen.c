/* SPDX-License-Identifier: MIT */
/*
 * oskr-keygen: make the key pairs of a cluster, or measure the signer.
 *
 *   oskr-keygen [-t p256|ed25519|secp256k1] -n N [-o DIR] [-p PREFIX] [--force]
 *   oskr-keygen --speed [-t TYPE] [-d SECONDS]
 *
 * Keys go through the same code as the daemon's (oskr__keygen): private
 * keys are PKCS#8 PEM created with mode 0600, public keys
 * SubjectPublicKeyInfo PEM with mode 0644. --speed times the daemon's own
 * signer (cached per-thread contexts), single thread, and prints one line
 * the benchmark script parses:
 *   p256 sign_us=35.1 verify_us=64.8
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/signer.h"

#define MAX_REPLICAS 1024
#define SPEED_ROUNDS 5
#define SPEED_MESSAGE_SIZE 64
#define SPEED_DEFAULT_SECONDS 1.0

static void usage(FILE *out)
{
	fprintf(out,
		"usage: oskr-keygen [-t TYPE] -n N [-o DIR] [-p PREFIX] [--force]\n"
		"       oskr-keygen --speed [-t TYPE] [-d SECONDS]\n"
		"\n"
		"Write DIR/PREFIX-I.key (private, PKCS#8 PEM, mode 0600) and\n"
		"DIR/PREFIX-I.pub (public, PEM, mode 0644) for I in 0..N-1.\n"
		"\n"
		"  -t, --type TYPE      p256 (default), ed25519 or secp256k1\n"
		"  -n, --count N        number of replicas (1..%d)\n"
		"  -o, --output DIR     directory for the keys (default .; created if missing)\n"
		"  -p, --prefix PREFIX  file name prefix (default replica)\n"
		"  -f, --force          replace existing key files\n"
		"  -s, --speed          print single-thread sign and verify CPU microseconds\n"
		"                       per operation (median of %d rounds) and exit\n"
		"  -d, --duration SEC   CPU time --speed spends measuring (default %.1f)\n"
		"  -h, --help           this text\n",
		MAX_REPLICAS, SPEED_ROUNDS, SPEED_DEFAULT_SECONDS);
}

static double clock_seconds(clockid_t clock)
{
	struct timespec now;
	clock_gettime(clock, &now);
	return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static bool path_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static int key_paths(const char *dir, const char *prefix, long index,
		     char private_path[PATH_MAX], char public_path[PATH_MAX])
{
	int private_len = snprintf(private_path, PATH_MAX, "%s/%s-%ld.key",
				   dir, prefix, index);
	int public_len = snprintf(public_path, PATH_MAX, "%s/%s-%ld.pub", dir,
				  prefix, index);
	if (private_len < 0 || private_len >= PATH_MAX || public_len < 0 ||
	    public_len >= PATH_MAX) {
		fprintf(stderr, "oskr-keygen: %s/%s-%ld.key: path too long\n",
			dir, prefix, index);
		return -ENAMETOOLONG;
	}
	return 0;
}

static int generate(enum oskr_key_type type, long count, const char *dir,
		    const char *prefix, bool force)
{
	char private_path[PATH_MAX], public_path[PATH_MAX];

	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		int error = errno;
		fprintf(stderr, "oskr-keygen: %s: cannot create directory: %s\n",
			dir, strerror(error));
		return -error;
	}
	/* Check every target first so a refusal writes nothing at all. */
	for (long index = 0; index < count; index++) {
		if (key_paths(dir, prefix, index, private_path, public_path))
			return -ENAMETOOLONG;
		const char *paths[] = { private_path, public_path };
		for (size_t p = 0; p < 2; p++) {
			if (!path_exists(paths[p]))
				continue;
			if (!force) {
				fprintf(stderr,
					"oskr-keygen: %s exists; refusing to overwrite keys (use --force to replace them)\n",
					paths[p]);
				return -EEXIST;
			}
			if (unlink(paths[p]) < 0) {
				int error = errno;
				fprintf(stderr,
					"oskr-keygen: %s: cannot remove: %s\n",
					paths[p], strerror(error));
				return -error;
			}
		}
	}
	for (long index = 0; index < count; index++) {
		key_paths(dir, prefix, index, private_path, public_path);
		char *err = NULL;
		int ret = oskr__keygen(type, private_path, public_path, &err);
		if (ret < 0) {
			fprintf(stderr, "oskr-keygen: %s\n",
				err ? err : strerror(-ret));
			free(err);
			return ret;
		}
		printf("wrote %s and %s (%s)\n", private_path, public_path,
		       oskr__key_type_name(type));
	}
	return 0;
}

/* CPU microseconds per call of sign (or verify). The calling thread's CPU
 * time is what a crypto-bound model multiplies, and unlike wall time it
 * barely moves when other processes share the cores. A round ends after
 * @p seconds of CPU time, or five times that of wall time on a machine too
 * busy to give us the CPU. Calls go in batches so the clock is not what
 * gets measured. */
static int time_round(struct oskr_signer *signer, bool verify,
		      double seconds, const uint8_t *message,
		      const uint8_t *sig, size_t sig_len, double *us_out)
{
	uint8_t out[OSKR_SIGNATURE_MAX];
	size_t out_len;
	unsigned long ops = 0;
	double cpu_start = clock_seconds(CLOCK_THREAD_CPUTIME_ID);
	double wall_start = clock_seconds(CLOCK_MONOTONIC);
	double cpu_used;
	do {
		for (int batch = 0; batch < 8; batch++, ops++) {
			if (verify) {
				if (!oskr__signer_verify(signer, 0, message,
							 SPEED_MESSAGE_SIZE,
							 sig, sig_len)) {
					fprintf(stderr,
						"oskr-keygen: a valid signature failed to verify\n");
					return -EIO;
				}
			} else {
				int ret = oskr__signer_sign(signer, message,
							    SPEED_MESSAGE_SIZE,
							    out, &out_len);
				if (ret < 0) {
					fprintf(stderr,
						"oskr-keygen: sign failed: %s\n",
						strerror(-ret));
					return ret;
				}
			}
		}
		cpu_used = clock_seconds(CLOCK_THREAD_CPUTIME_ID) - cpu_start;
	} while (cpu_used < seconds &&
		 clock_seconds(CLOCK_MONOTONIC) - wall_start < 5 * seconds);
	*us_out = cpu_used / (double)ops * 1e6;
	return 0;
}

static int speed(enum oskr_key_type type, double seconds)
{
	const char *tmp = getenv("TMPDIR");
	/* Room left in the paths for the "/k.key" file names. */
	char dir[PATH_MAX - 16], private_path[PATH_MAX], public_path[PATH_MAX];
	int ret;

	int dir_len = snprintf(dir, sizeof(dir), "%s/oskr-keygen-speed-XXXXXX",
			       tmp && *tmp ? tmp : "/tmp");
	if (dir_len < 0 || (size_t)dir_len >= sizeof(dir)) {
		fprintf(stderr, "oskr-keygen: TMPDIR is too long\n");
		return -ENAMETOOLONG;
	}
	if (!mkdtemp(dir)) {
		int error = errno;
		fprintf(stderr, "oskr-keygen: %s: %s\n", dir, strerror(error));
		return -error;
	}
	snprintf(private_path, sizeof(private_path), "%s/k.key", dir);
	snprintf(public_path, sizeof(public_path), "%s/k.pub", dir);

	char *err = NULL;
	struct oskr_signer *signer = NULL;
	ret = oskr__keygen(type, private_path, public_path, &err);
	if (ret == 0) {
		const char *publics[] = { public_path };
		ret = oskr__signer_create(&signer, private_path, publics, 1,
					  &err);
	}
	unlink(private_path);
	unlink(public_path);
	rmdir(dir);
	if (ret < 0) {
		fprintf(stderr, "oskr-keygen: %s\n", err ? err : strerror(-ret));
		free(err);
		return ret;
	}

	uint8_t message[SPEED_MESSAGE_SIZE];
	for (size_t i = 0; i < sizeof(message); i++)
		message[i] = (uint8_t)(i * 131 + 7);
	uint8_t sig[OSKR_SIGNATURE_MAX];
	size_t sig_len;
	ret = oskr__signer_sign(signer, message, sizeof(message), sig,
				&sig_len);
	if (ret < 0) {
		fprintf(stderr, "oskr-keygen: sign failed: %s\n",
			strerror(-ret));
		goto out;
	}
	/* Warm the thread's cached contexts outside the measurement. */
	oskr__signer_verify(signer, 0, message, sizeof(message), sig, sig_len);

	double round_seconds = seconds / (2 * SPEED_ROUNDS);
	double sign_us[SPEED_ROUNDS], verify_us[SPEED_ROUNDS];
	for (int round = 0; round < SPEED_ROUNDS; round++) {
		ret = time_round(signer, false, round_seconds, message, sig,
				 sig_len, &sign_us[round]);
		if (ret < 0)
			goto out;
		ret = time_round(signer, true, round_seconds, message, sig,
				 sig_len, &verify_us[round]);
		if (ret < 0)
			goto out;
	}
	qsort(sign_us, SPEED_ROUNDS, sizeof(double), compare_doubles);
	qsort(verify_us, SPEED_ROUNDS, sizeof(double), compare_doubles);
	printf("%s sign_us=%.1f verify_us=%.1f\n", oskr__key_type_name(type),
	       sign_us[SPEED_ROUNDS / 2], verify_us[SPEED_ROUNDS / 2]);
out:
	oskr__signer_free(signer);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "type", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'n' },
		{ "output", required_argument, NULL, 'o' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "force", no_argument, NULL, 'f' },
		{ "speed", no_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum oskr_key_type type = OSKR_KEY_P256;
	long count = -1;
	const char *dir = ".";
	const char *prefix = "replica";
	bool force = false, run_speed = false;
	double seconds = SPEED_DEFAULT_SECONDS;
	int option;

	while ((option = getopt_long(argc, argv, "t:n:o:p:fsd:h", options,
				     NULL)) != -1) {
		char *end;
		switch (option) {
		case 't':
			if (oskr__key_type_parse(optarg, &type) < 0) {
				fprintf(stderr,
					"oskr-keygen: unknown key type '%s' (want p256, ed25519 or secp256k1)\n",
					optarg);
				return 2;
			}
			break;
		case 'n':
			errno = 0;
			count = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || count < 1 ||
			    count > MAX_REPLICAS) {
				fprintf(stderr,
					"oskr-keygen: -n wants a replica count from 1 to %d, not '%s'\n",
					MAX_REPLICAS, optarg);
				return 2;
			}
			break;
		case 'o':
			dir = optarg;
			break;
		case 'p':
			prefix = optarg;
			if (!*prefix || strchr(prefix, '/')) {
				fprintf(stderr,
					"oskr-keygen: -p wants a file name prefix without '/', not '%s'\n",
					prefix);
				return 2;
			}
			break;
		case 'f':
			force = true;
			break;
		case 's':
			run_speed = true;
			break;
		case 'd':
			errno = 0;
			seconds = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(seconds > 0) ||
			    seconds > 600) {
				fprintf(stderr,
					"oskr-keygen: -d wants seconds between 0 and 600, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "oskr-keygen: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	if (run_speed)
		return speed(type, seconds) < 0 ? 1 : 0;
	if (count < 0) {
		fprintf(stderr, "oskr-keygen: -n N (the number of replicas) is required\n");
		usage(stderr);
		return 2;
	}
	return generate(type, count, dir, prefix, force) < 0 ? 1 : 0;
}
