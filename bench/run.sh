#!/usr/bin/env bash
# Builds replicant and the benchmark in release mode and runs a scenario:
#   ./bench/run.sh full-sync|stream|big-key|all [--quick] [--size-mb N] [--elements N] [--requests N]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools >/dev/null
fi
cargo build --release --quiet -p replicant -p replicant-bench
exec target/release/replicant-bench "$@"
