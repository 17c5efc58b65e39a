#!/usr/bin/env bash
# The witness-only demo (scripts/demo.sh runs it when it cannot be root): three agents without
# PostgreSQL on loopback (cluster-configs/local-3.yaml), in ./demo-witness.
# `scripts/demo-witness.sh stop` stops the agents this script started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
PGQ="$PWD/.build/debug/pgquorum"
DIR="$PWD/demo-witness"
NODES=(node1 node2 node3)

# True when the PID file names a running agent of this demo (not a recycled PID).
running() {
  local pidfile="$DIR/$1.pid" pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "agent --config $DIR/local-3.yaml --node $1"
}

stop() {
  # One at a time: a leader that gets SIGTERM hands leadership to a running voter first.
  for node in "${NODES[@]}"; do
    if running "$node"; then
      pid=$(cat "$DIR/$node.pid")
      kill -TERM "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then
        echo "$node (pid $pid) did not stop within 5 s; kept demo-witness/$node.pid (kill -9 $pid to force)"
        continue
      fi
      echo "stopped $node (pid $pid)"
    fi
    rm -f "$DIR/$node.pid"
  done
}

if [ "${1:-}" = "stop" ]; then stop; exit 0; fi

mkdir -p "$DIR"
[ -f "$DIR/local-3.yaml" ] || cp cluster-configs/local-3.yaml "$DIR/local-3.yaml"
[ -f "$DIR/tls/ca.crt" ] || "$PGQ" certs init --config "$DIR/local-3.yaml" >/dev/null
"$PGQ" config validate "$DIR/local-3.yaml"

for node in "${NODES[@]}"; do
  pidfile="$DIR/$node.pid"
  if running "$node"; then
    echo "$node already running (pid $(cat "$pidfile"))"
    continue
  fi
  nohup "$PGQ" agent --config "$DIR/local-3.yaml" --node "$node" >>"$DIR/$node.log" 2>&1 &
  echo $! > "$pidfile"
  echo "started $node (pid $!, log demo-witness/$node.log)"
done

# Wait (bounded) for a leader confirmed by a quorum.
for _ in $(seq 1 100); do
  if "$PGQ" status --config "$DIR/local-3.yaml" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
echo
"$PGQ" status --config "$DIR/local-3.yaml" || true
cat <<TEXT

The demo cluster runs in the background (three witness agents, without PostgreSQL; for a
cluster with PostgreSQL, rehearse with "sudo pgquorum lab up", see docs/lab.md). Try:
  .build/debug/pgquorum status --config demo-witness/local-3.yaml          # the leader view (LANG=zh_CN.UTF-8 for Chinese)
  curl --cacert demo-witness/tls/ca.crt https://127.0.0.1:8401/cluster      # the operator API
  kill -9 \$(cat demo-witness/node1.pid)                                     # crash an agent, then ask status again
  scripts/demo-witness.sh                                            # restarts stopped agents
  scripts/demo-witness.sh stop                                       # stop every demo agent
Walk-through: docs/getting-started.md. The simulated cluster tour: .build/debug/pgquorum demo
TEXT
