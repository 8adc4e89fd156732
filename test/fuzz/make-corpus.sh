#!/bin/bash
# Regenerate the seed corpora in test/fuzz/corpus/<target>/ (checked in):
# binary seeds from the real encoders (test/fuzz/gen_corpus.c), config
# seeds from the example and test configs. Files already there (e.g. the
# inputs of crashes found and fixed, named crash-*) are kept.
#   test/fuzz/make-corpus.sh
set -eu
cd "$(dirname "$0")/../.."
out=test/fuzz/corpus
tmp=$(mktemp -d /tmp/oskr-corpus.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

cc=${CC:-cc}
srcs=(test/fuzz/gen_corpus.c apps/kv.c plugins/unreplicated/codec.c transport/frame.c)
defs=()
if [ -f plugins/pbft/codec.c ]; then
	srcs+=(plugins/pbft/codec.c)
	defs+=(-DHAVE_PBFT)
fi
if [ -f plugins/hotstuff/codec.c ]; then
	srcs+=(plugins/hotstuff/codec.c)
	defs+=(-DHAVE_HOTSTUFF)
fi
# The durable-checkpoint blobs (their targets link durable_codec.c and
# the plugin's codec.c).
if [ -f plugins/pbft/durable_codec.c ] && [ -f plugins/pbft/codec.c ]; then
	srcs+=(plugins/pbft/durable_codec.c)
	defs+=(-DHAVE_PBFT_RESUME)
fi
if [ -f plugins/hotstuff/durable_codec.c ] && [ -f plugins/hotstuff/codec.c ]; then
	srcs+=(plugins/hotstuff/durable_codec.c)
	defs+=(-DHAVE_HOTSTUFF_RESUME)
fi
"$cc" -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Iinclude -I. \
	"${defs[@]}" -o "$tmp/gen_corpus" "${srcs[@]}" \
	$(pkg-config --cflags --libs libcrypto)
mkdir -p "$out"
"$tmp/gen_corpus" "$out"

# Config: every example and test config (YAML and the seed's format).
mkdir -p "$out/config"
for f in conf/*.yaml test/data/config/*; do
	[ -f "$f" ] || continue
	cp "$f" "$out/config/$(basename "$(dirname "$f")")-$(basename "$f")"
done
for d in "$out"/*/; do
	printf '%-22s %3d files\n' "$(basename "$d")" "$(ls "$d" | wc -l)"
done
