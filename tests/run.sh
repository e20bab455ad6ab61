#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs redis-server and redis-cli from the OS
# packages when they are missing, checks formatting and lints, builds, and runs every test
# (unit tests and the end-to-end tests against real redis-server processes).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "==> installing redis-server and redis-tools from the OS packages"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools >/dev/null
fi
echo "==> $(redis-server --version)"
# Prometheus and promtool, for the tests of deploy/prometheus and deploy/grafana (the tests start
# their own prometheus on a free port; a system service the package may start is not used).
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  echo "==> installing prometheus from the OS packages"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
echo "==> $(prometheus --version 2>&1 | head -n 1)"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo build"
cargo build --workspace
echo "==> cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Tests that need what this machine may lack (another server version) write
# "SKIPPED <name>: <why>" to this file: they are counted as skipped, not passed.
skips=$(mktemp)
trap 'rm -f "$log" "$skips"' EXIT
REPLICANT_SKIP_LOG="$skips" cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee "$log"
# Totals over every test binary, for the closing line.
read -r passed failed < <(awk '/^test result:/ { p += $4; f += $6 } END { print p + 0, f + 0 }' "$log")
skipped=$(grep -c '^SKIPPED ' "$skips" || true)
passed=$((passed - skipped))
echo "==> benchmark smoke test (debug build, quick sizes; figures are not meaningful here)"
target="${CARGO_TARGET_DIR:-$(pwd)/target}"
REPLICANT_BIN="$target/debug/replicant" "$target/debug/replicant-bench" all --quick
echo "==> all tests"
cat "$skips"
echo "tests: $passed passed, $failed failed, $skipped skipped"
