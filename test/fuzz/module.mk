# test/fuzz/: libFuzzer targets (docs/hardening.md), built with clang
# -fsanitize=fuzzer,address,undefined straight from the sources they test.
#
#   make fuzz                     every target for FUZZ_SECONDS (3 s) each
#   make fuzz FUZZ_SECONDS=60     longer
#   make fuzz FUZZ_TARGETS=kv_op  only some
#   make fuzz-corpus              regenerate the seed corpora
#
# The binaries are part of test-bins when clang is installed, so that
# `make test` runs them briefly (test/integration/fuzz_smoke.sh).

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 3
HAVE_FUZZ_CC := $(shell command -v $(FUZZ_CC) >/dev/null 2>&1 && echo 1)
# UBSan findings abort (a report that scrolls by is not a failure).
FUZZ_CFLAGS := -std=gnu11 -g -O1 -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	$(WARN) -Iinclude -I.

FUZZ_SRCS_config := daemon/conf_tree.c daemon/config.c daemon/config_seed.c daemon/log.c
FUZZ_FLAGS_config = $(YAML_CFLAGS) $(YAML_LIBS)
FUZZ_SRCS_frame := transport/frame.c
FUZZ_SRCS_unreplicated_codec := plugins/unreplicated/codec.c
FUZZ_SRCS_kv_op := apps/kv.c
FUZZ_SRCS_kv_snapshot := apps/kv.c
FUZZ_SRCS_snapshot_file := $(wildcard daemon/snapshot_store.c)
FUZZ_SRCS_snapshot_file += $(if $(FUZZ_SRCS_snapshot_file),daemon/log.c apps/kv.c)
FUZZ_FLAGS_snapshot_file = $(CRYPTO_CFLAGS) $(CRYPTO_LIBS) -lpthread
# The plugins' codecs are compiled in directly (they need nothing of the
# host); their targets exist once the codec does.
FUZZ_SRCS_pbft_codec := $(wildcard plugins/pbft/codec.c)
FUZZ_SRCS_hotstuff_codec := $(wildcard plugins/hotstuff/codec.c)
# The durable-checkpoint blobs (durable_codec.c). PBFT's decoder needs
# nothing else; its target walks the proof with codec.c's iterator.
# HotStuff's calls codec.c's block and QC decoders and writer; hotstuff.h
# embeds structs ending in a flexible array (fine for gcc, a -Werror
# warning for clang).
FUZZ_SRCS_pbft_resume := $(wildcard plugins/pbft/durable_codec.c)
FUZZ_SRCS_pbft_resume += $(if $(FUZZ_SRCS_pbft_resume),plugins/pbft/codec.c)
FUZZ_SRCS_hotstuff_resume := $(wildcard plugins/hotstuff/durable_codec.c)
FUZZ_SRCS_hotstuff_resume += $(if $(FUZZ_SRCS_hotstuff_resume),plugins/hotstuff/codec.c)
FUZZ_FLAGS_hotstuff_resume = -Wno-gnu-variable-sized-type-not-at-end

FUZZ_ALL := config frame unreplicated_codec kv_op kv_snapshot \
	$(if $(FUZZ_SRCS_snapshot_file),snapshot_file) \
	$(if $(FUZZ_SRCS_pbft_codec),pbft_codec) \
	$(if $(FUZZ_SRCS_hotstuff_codec),hotstuff_codec) \
	$(if $(FUZZ_SRCS_pbft_resume),pbft_resume) \
	$(if $(FUZZ_SRCS_hotstuff_resume),hotstuff_resume)
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_BINS := $(FUZZ_ALL:%=$(B)/fuzz/fuzz_%)

# Rebuilt when the target, its sources or any header next to them change.
$(B)/fuzz/fuzz_%: test/fuzz/fuzz_%.c test/fuzz/fuzz.h $$(FUZZ_SRCS_$$*) \
		$$(wildcard $$(addsuffix *.h,$$(dir $$(FUZZ_SRCS_$$*)))) \
		$$(wildcard include/oskr/*.h)
	$(quiet) FUZZ $@
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SRCS_$*) $(FUZZ_FLAGS_$*)

ifeq ($(HAVE_FUZZ_CC),1)
fuzz-bins: $(FUZZ_BINS)
test-bins: fuzz-bins
else
fuzz-bins:
	@echo "fuzz: $(FUZZ_CC) not found; install clang and libclang-rt-14-dev (scripts/deps.sh installs them as optional packages)"
endif

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-bins
	@test/fuzz/run.sh $(B) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-corpus:
	@test/fuzz/make-corpus.sh
.PHONY: fuzz fuzz-bins fuzz-corpus
