#!/usr/bin/env bash
# Regenerates the README's capture of `make demo`: runs the demo on a new lab (it must not be
# running), prints the leader view after the failover and the rejoin, and the history, then
# removes the demo. Paste its output over the block in README.md ("What make demo shows").
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f demo/lab.json ]; then
  echo "capture-demo: a demo is running in ./demo; stop it first (make demo-stop)" >&2
  exit 1
fi
swift build --product pgquorum >&2
trap 'scripts/demo.sh stop >/dev/null 2>&1 || true' EXIT
output=$(scripts/demo.sh 2>&1 | sed 's/\x1b\[[0-9;]*m//g')
# From the last leader view to the end of the history table.
printf '%s\n' "$output" | awk '
  /^=== pgquorum cluster status ===/ { block = "" ; keep = 1 }
  keep { block = block $0 "\n" }
  /^== The nodes/ { keep = 0 }
  END { sub(/\n== The nodes[^\n]*\n$/, "\n", block); printf "%s", block }'
