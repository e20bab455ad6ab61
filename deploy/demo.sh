#!/usr/bin/env bash
# A real migration on this machine, from nothing: installs redis-server/redis-tools from the OS
# packages when missing, builds replicant, starts a source and a destination redis-server on
# free loopback ports, fills the source with every type, starts `replicant sync`, keeps writing
# to the source during and after the snapshot, waits until the destination has applied
# everything the source wrote, and compares both datasets. Ends with a verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${DEMO_KEYS:-100000}

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then
  echo "==> installing redis-server and redis-tools from the OS packages"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server redis-tools >/dev/null
fi
echo "==> building replicant"
cargo build --quiet --bin replicant
bin="$(cargo metadata --format-version 1 --no-deps 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/replicant"
[ -x "$bin" ] || bin=target/debug/replicant

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo $p; return; fi
  done
}
start_server() { # name port extra-args...
  local name=$1 port=$2; shift 2
  mkdir -p "$work/$name"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$work/$name" --save '' --appendonly no \
    --enable-debug-command yes --logfile "$work/$name.log" "$@" &
  pids+=($!)
  for _ in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "redis-server $name did not start; see $work/$name.log" >&2
  exit 1
}

src=$(free_port); start_server source "$src" --repl-diskless-sync yes --repl-diskless-sync-delay 0
dst=$(free_port); start_server target "$dst"
echo "==> source on port $src, destination on port $dst"

echo "==> filling the source: $KEYS keys of every type, with TTLs, in db 0 and db 5"
awk -v n="$KEYS" 'BEGIN {
  for (i = 0; i < n; i++) {
    t = i % 7
    if (t == 0) printf "SET str:%d value-%d\n", i, i
    else if (t == 1) printf "SET num:%d %d EX 86400\n", i, i
    else if (t == 2) printf "RPUSH list:%d a b c %d\n", i % 1000, i
    else if (t == 3) printf "SADD set:%d %d m%d\n", i % 1000, i, i
    else if (t == 4) printf "ZADD zset:%d %d.5 m%d\n", i % 1000, i, i
    else if (t == 5) printf "HSET hash:%d f%d v%d\n", i % 1000, i, i
    else printf "XADD stream:%d * field %d\n", i % 100, i
  }
  for (i = 0; i < 200000; i++) printf "RPUSH biglist %d\n", i
  printf "XGROUP CREATE stream:1 readers 0\n"
  printf "SELECT 5\n"
  for (i = 0; i < 1000; i++) printf "SET db5:%d %d\n", i, i
}' | redis-cli -p "$src" --pipe >/dev/null
redis-cli -p "$src" XREADGROUP GROUP readers alice COUNT 3 STREAMS stream:1 '>' >/dev/null

echo "==> starting replicant sync"
"$bin" sync --source "redis://127.0.0.1:$src" --target "redis://127.0.0.1:$dst" \
  --state-dir "$work/state" 2>"$work/replicant.log" &
rpid=$!
pids+=($rpid)

echo "==> writing to the source during the migration (redis-benchmark: SET, INCR, LPUSH, SADD, HSET, ZADD)"
redis-benchmark -p "$src" -n 100000 -r 50000 -P 16 -q -t set,incr,lpush,sadd,hset,zadd >/dev/null

offset() { redis-cli -p "$src" info replication | tr -d '\r' | sed -n "s/^$1//p"; }
echo "==> waiting until the destination has applied everything the source wrote"
for _ in $(seq 1 600); do
  master=$(offset master_repl_offset:)
  acked=$(redis-cli -p "$src" info replication | tr -d '\r' | sed -n 's/^slave0:.*offset=\([0-9]*\).*/\1/p')
  if [ -n "$acked" ] && [ "$acked" = "$master" ]; then break; fi
  if ! kill -0 "$rpid" 2>/dev/null; then echo "replicant exited:"; tail -5 "$work/replicant.log"; exit 1; fi
  sleep 0.2
done
echo "    source offset $master, applied by the destination $acked"

echo "==> what replicant says of itself (redis-cli -p 9478 INFO replication, on its admin port)"
redis-cli -p 9478 info replication | tr -d '\r' | grep -E '^(phase|applied_offset|lag_bytes|lag_seconds|full_resyncs)' | sed 's/^/    /'

kill -TERM "$rpid"
wait "$rpid" && status=0 || status=$?
# replicant's heartbeat keys on the source (lag in seconds) are its own, never copied.
redis-cli -p "$src" --scan --pattern 'replicant:heartbeat:*' | while read -r k; do
  redis-cli -p "$src" del "$k" >/dev/null
done
# Its state keys on the destination (the record of exactly-once delivery) go the same way a
# finished run's do: `replicant cleanup` (a cutover removes them itself).
"$bin" cleanup --target "redis://127.0.0.1:$dst" 2>>"$work/replicant.log" | sed 's/^/    /'
s_digest=$(redis-cli -p "$src" debug digest)
d_digest=$(redis-cli -p "$dst" debug digest)
s_keys=$(redis-cli -p "$src" info keyspace | tr -d '\r' | grep '^db' | tr '\n' ' ')
d_keys=$(redis-cli -p "$dst" info keyspace | tr -d '\r' | grep '^db' | tr '\n' ' ')
echo "    source:      $s_keys digest $s_digest"
echo "    destination: $d_keys digest $d_digest"
grep -E "snapshot planned|sync stopped" "$work/replicant.log" | sed 's/^/    /'
if [ "$status" -eq 0 ] && [ "$s_digest" = "$d_digest" ]; then
  echo "VERDICT: PASS - the destination holds exactly the source's data (DEBUG DIGEST equal), replicant exited cleanly"
else
  echo "VERDICT: FAIL - digests differ or replicant exited with status $status; log:"
  tail -20 "$work/replicant.log"
  exit 1
fi
