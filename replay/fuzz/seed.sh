#!/usr/bin/env bash
# Seeds the fuzz corpora from the repo's test data: every RDB file under tests/data/rdb (with a
# chunk-size byte in front), a recorded replication stream, and real replies.
set -euo pipefail
cd "$(dirname "$0")"
data=../../tests/data
mkdir -p corpus/rdb_snapshot corpus/stream_plan corpus/replies corpus/flags
for f in "$data"/rdb/*/*.rdb; do
  (printf '\x07'; cat "$f") > "corpus/rdb_snapshot/$(basename "$f")"
done
frame() { # RESP array of bulk strings from the arguments
  printf '*%d\r\n' "$#"
  for a in "$@"; do printf '$%d\r\n%s\r\n' "${#a}" "$a"; done
}
{
  printf '\x05'
  frame SELECT 0
  frame SET k v PXAT 4102444800000
  frame MULTI
  frame INCRBY '{t}a' 3
  frame RPUSH '{t}b' x y
  frame EXEC
  frame XADD s MAXLEN = 5 LIMIT 10 '1-1' f v
  frame RENAME a b
  frame SORT l BY 'w_*' STORE d
  frame EVALSHA e0e1f9fabfc9d4800c877a703b823ac0578ff8db 0
  frame MOVE k 3
  frame REPLCONF GETACK '*'
  frame PING
} > corpus/stream_plan/mixed
cp "$data/command/redis-7.0.15.resp" corpus/replies/command-7.0
cp "$data/command/redis-6.2.16.resp" corpus/replies/command-6.2
printf '+OK\r\n-ERR syntax error\r\n:12\r\n$3\r\nabc\r\n*2\r\n$1\r\na\r\n:1\r\n' > corpus/replies/mixed

# Command lines (arguments separated by NUL) and URLs, as the README writes them.
args() { local IFS=$'\x01'; printf '%s' "$*" | tr '\001' '\000'; }
args sync --source redis://127.0.0.1:6379 --target 'rediss://user:p%40ss@[::1]:7000' --db-map 3:0,5:0 > corpus/flags/sync
args verify --source redis://a:1 --target b:2 --mode sample --round-wait 1.5s > corpus/flags/verify
args cleanup --target 'redis://:secret@h/0' --state-key-prefix 'x*:' > corpus/flags/cleanup
args cutover --admin 127.0.0.1:9478,127.0.0.1:9479 --pause-timeout 30 > corpus/flags/cutover
mkdir -p corpus/urls
printf 'rediss://u:%%zz@host:99999/3' > corpus/urls/bad
printf 'redis://user:p%%40ss@[::1]:7000' > corpus/urls/ipv6
printf '1.5s' > corpus/urls/duration
