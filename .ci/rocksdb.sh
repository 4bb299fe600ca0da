#!/usr/bin/env bash
# RocksDB's C++ library, built once per machine and per librocksdb-sys
# version, outside the clone. Prints the two variables that make cargo link
# it instead of compiling it again:
#
#   eval "$(bash .ci/rocksdb.sh)"
#
# Why not leave it to cargo's cache: the -sys crate's build output is keyed
# on its build dependencies too (bindgen and what it shares with other build
# tools, such as tonic-prost-build), so an unrelated dependency change makes
# cargo compile the whole C++ library again, once for `cargo build` and once
# for `cargo clippy`: 30 to 50 minutes each on two cores. The library itself
# only changes with librocksdb-sys' version and its compiler flags, which
# make the key here.
#
# Cache: ${PIER_ROCKSDB_CACHE:-$HOME/.cache/pier-rocksdb}/<version>-sse42/librocksdb.a
# Progress goes to stderr; stdout carries only the exports.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(awk '/^name = "librocksdb-sys"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
if [ -z "$version" ]; then
  echo "rocksdb.sh: librocksdb-sys not found in Cargo.lock" >&2
  exit 1
fi
cache="${PIER_ROCKSDB_CACHE:-$HOME/.cache/pier-rocksdb}"
# The compiler flags are part of the key: .cargo/config.toml gives RocksDB
# SSE4.2 and PCLMUL (hardware CRC32C); a library built without them is not
# reused.
dir="$cache/$version-sse42"
if [ ! -s "$dir/librocksdb.a" ]; then
  echo "rocksdb.sh: building RocksDB for librocksdb-sys $version once (long: C++)" >&2
  build="$cache/build"
  # The store's library pulls librocksdb-sys with the features the project
  # uses (lz4), in the workspace's dev profile (RocksDB at opt-level 3).
  env -u ROCKSDB_LIB_DIR -u ROCKSDB_STATIC CARGO_TARGET_DIR="$build" \
    cargo build --quiet -p pier-store --lib >&2
  lib=$(ls -t "$build"/debug/build/librocksdb-sys-*/out/librocksdb.a | head -n 1)
  mkdir -p "$dir.tmp"
  cp "$lib" "$dir.tmp/librocksdb.a"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  # The objects are no longer needed once the archive is kept.
  rm -rf "$build"
fi
printf 'export ROCKSDB_LIB_DIR=%q\nexport ROCKSDB_STATIC=1\n' "$dir"
