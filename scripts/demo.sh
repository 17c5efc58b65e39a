#!/usr/bin/env bash
# `make demo`: a three-node cluster with PostgreSQL in the partition lab (network namespaces,
# one agent and one PostgreSQL server per node), in ./demo. It shows the leader view, crashes
# the primary, shows the failover and the rejoin, and leaves the cluster running.
# `scripts/demo.sh stop` (or `make demo-stop`) removes it.
# The lab needs root (namespaces, a bridge, iptables); without root and without password-less
# sudo, the demo falls back to three witness agents on loopback (scripts/demo-witness.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PGQ="$PWD/.build/debug/pgquorum"
DIR="demo"

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "The PostgreSQL demo runs in network namespaces and needs root (or password-less sudo)."
  echo "Starting the witness-only demo on loopback instead (agents without PostgreSQL)."
  exec scripts/demo-witness.sh "$@"
fi
pgq() { "${SUDO[@]}" "$PGQ" "$@"; }

if [ "${1:-}" = "stop" ]; then
  if [ -f "$DIR/lab.json" ]; then pgq lab down --dir "$DIR"; else echo "no demo lab in ./$DIR"; fi
  exit 0
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ -f "$DIR/lab.json" ] && pgq lab wait --dir "$DIR" --timeout 5 >/dev/null 2>&1; then
  step "The demo cluster is already running in ./$DIR"
else
  [ -f "$DIR/lab.json" ] && pgq lab down --dir "$DIR" >/dev/null
  step "Starting three nodes (primary, secondary1, secondary2), each an agent with its own PostgreSQL, in ./$DIR"
  pgq lab up --dir "$DIR"
fi

step "Waiting for a primary and two streaming replicas (on a new cluster: initdb, then pg_basebackup)"
PRIMARY=$(pgq lab wait --whole --dir "$DIR" --timeout 180)
echo "primary: $PRIMARY"
pgq status --config "$DIR/cluster.yaml" || true

step "Crashing the primary: SIGKILL of the agent on $PRIMARY (its PostgreSQL dies with it)"
START=$(date +%s%N)
pgq lab kill "$PRIMARY" --dir "$DIR"
NEW=$(pgq lab wait --dir "$DIR" --timeout 60)
END=$(date +%s%N)
echo "new primary: $NEW, writable $(( (END - START) / 1000000 )) ms after the crash"
pgq status --config "$DIR/cluster.yaml" || true

step "Restarting $PRIMARY: it comes back as a replica of $NEW (pg_rewind when its timeline diverged)"
pgq lab restart "$PRIMARY" --dir "$DIR"
pgq lab wait --whole --dir "$DIR" --timeout 180 >/dev/null
pgq status --config "$DIR/cluster.yaml" || true
step "History (every promotion, with its reason)"
pgq history --config "$DIR/cluster.yaml" || true

step "The nodes: each answers its API on https://ADDRESS:8008 (client certificates in $DIR/tls) and PostgreSQL on ADDRESS:5432"
pgq lab status --dir "$DIR"

SUDO_TEXT="${SUDO[*]}${SUDO:+ }"
cat <<TEXT

The demo cluster keeps running in ./$DIR (logs in $DIR/logs, fault events in $DIR/events.jsonl).
Stop it and remove everything with: make demo-stop   (or ${SUDO_TEXT}.build/debug/pgquorum lab down --dir $DIR)
Try:
  ${SUDO_TEXT}.build/debug/pgquorum status --config $DIR/cluster.yaml         # the leader view (LANG=zh_CN.UTF-8 for Chinese)
  ${SUDO_TEXT}.build/debug/pgquorum lab isolate $NEW --dir $DIR               # cut the primary off; watch status
  ${SUDO_TEXT}.build/debug/pgquorum lab partition primary,secondary1 secondary2 --dir $DIR
  ${SUDO_TEXT}.build/debug/pgquorum lab heal --dir $DIR
  ${SUDO_TEXT}.build/debug/pgquorum switchover --config $DIR/cluster.yaml --reason "trying it"
  ${SUDO_TEXT}.build/debug/pgquorum lab scenario partition-primary --trials 3  # a checked scenario on its own lab
  ${SUDO_TEXT}.build/debug/pgquorum lab down --dir $DIR                       # or: make demo-stop
Walk-throughs: docs/getting-started.md, docs/lab.md, docs/failure-scenarios.md.
TEXT
