#!/usr/bin/env bash
# Builds replicant and the benchmark in release mode and runs a scenario:
#   ./bench/run.sh full-sync|stream|big-key|all [--quick] [--size-mb N] [--elements N] [--requests N]
#                  [--profile DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools >/dev/null
fi
case " $* " in
  *" --profile "*)
    if ! perf --version >/dev/null 2>&1; then
      # Debian's package; on Ubuntu perf comes with linux-tools-$(uname -r).
      $sudo apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq linux-perf >/dev/null ||
        { echo "--profile needs perf (Debian: linux-perf; Ubuntu: linux-tools-$(uname -r))" >&2; exit 1; }
    fi
    ;;
esac
cargo build --release --quiet -p replicant -p replicant-bench
exec target/release/replicant-bench "$@"
