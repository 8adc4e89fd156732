/* SPDX-License-Identifier: MIT */
/*
 * Shared bits of the libFuzzer targets in test/fuzz/ (docs/hardening.md).
 * Every target defines LLVMFuzzerTestOneInput; the prototype lives here so
 * the targets build with -Wmissing-prototypes like the rest of the tree.
 *
 * A target checks properties, not only "does not crash": decoders must
 * keep every pointer they return inside the input, and what decodes must
 * re-encode to the same bytes. A violated property aborts, which libFuzzer
 * reports as a crash with its input.
 */
#ifndef OSKR_TEST_FUZZ_H
#define OSKR_TEST_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property check that stays on in every build (assert() would vanish
 * under -DNDEBUG). */
#define FUZZ_CHECK(cond)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: property failed: %s\n",    \
				__FILE__, __LINE__, #cond);                \
			abort();                                           \
		}                                                          \
	} while (0)

/* [p, p + n) lies inside [base, base + size). */
static inline int fuzz_inside(const uint8_t *base, size_t size,
			      const uint8_t *p, size_t n)
{
	if (n == 0)
		return 1;
	if (!p || p < base || p > base + size)
		return 0;
	return (size_t)(base + size - p) >= n;
}

/* Read every byte of a range the decoder handed out: under ASan a range
 * that leaves the input is reported at once, with the decoder's frame. */
static inline unsigned fuzz_touch(const uint8_t *p, size_t n)
{
	volatile unsigned sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += p[i];
	return sum;
}

#endif
