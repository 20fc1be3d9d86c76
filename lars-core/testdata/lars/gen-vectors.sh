#!/usr/bin/env bash
# Regenerates the Lars protobuf byte vectors from vectors.txt with protoc (Debian: protobuf-compiler).
# The tests use the checked-in .bin files; run this only after changing vectors.txt or lars.proto.
set -euo pipefail
cd "$(dirname "$0")"
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
grep -v '^#' vectors.txt | while read -r stem type text; do
    [ -n "$stem" ] || continue
    printf '%s\n' "$text" | protoc --encode="lars.$type" lars.proto > "$stem.bin"
    printf '%-28s %3d bytes  %s\n' "$stem" "$(wc -c < "$stem.bin")" "$(od -An -tx1 -v "$stem.bin" | tr -s ' \n' ' ')"
done
