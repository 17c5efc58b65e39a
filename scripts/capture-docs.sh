#!/usr/bin/env bash
# Regenerates the captured outputs in the docs from the current build:
#   scripts/capture-docs.sh [lab] [getting-started] [demo] [config]     (default: all; needs root)
# Each section runs its commands for real and writes every capture to a file; then every block
# in the docs that follows a line `<!-- capture NAME -->` is replaced by the file NAME, so a
# capture is never edited by hand. A section that finds the cluster in another state than its
# page describes (another node promoted, say) stops before it changes any page.
#   lab              docs/lab.md: a session on a lab with PostgreSQL in /tmp/labdoc, lab delay,
#                    five nodes, the seed's config (about 6 minutes)
#   getting-started  docs/getting-started.md: three agents with PostgreSQL on loopback, by hand,
#                    in /tmp/pgquorum-tutorial (about 3 minutes)
#   demo             README.md: the end of `make demo` (about 1 minute)
#   config           docs/configuration.md: `pgquorum config validate` (seconds)
# The captures are kept in .build/captures/<section>/ for a look afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
[ "$(id -u)" -eq 0 ] || { echo "capture-docs: run it as root (the lab and the demo need it)" >&2; exit 1; }
swift build --product pgquorum >&2
export PATH="$ROOT/.build/debug:$PATH"
export LANG=C.UTF-8

SECTIONS=("$@")
[ ${#SECTIONS[@]} -gt 0 ] || SECTIONS=(lab getting-started demo config)

CAP=""
# cap NAME COMMAND: appends `# COMMAND` (or `$ COMMAND` with PROMPT='$') and its output to capture NAME.
PROMPT='#'
cap() {
  local name=$1 cmd=$2
  local output
  output=$(bash -c "$cmd" 2>&1 | sed 's/\x1b\[[0-9;]*m//g; s/[[:space:]]*$//' || true)
  { printf '%s %s\n' "$PROMPT" "$cmd"; [ -z "$output" ] || printf '%s\n' "$output"; } >>"$CAP/$name"
}
# quiet COMMAND: a step the page describes but does not show.
quiet() { bash -c "$1" >/dev/null 2>&1 || true; }
# expect WHAT ACTUAL WANTED: stops the section when the cluster is not where the page says.
expect() {
  if [ "$2" != "$3" ]; then
    echo "capture-docs: expected $1 to be '$3', got '$2'; the page's text assumes '$3'; run again" >&2
    exit 1
  fi
}
# fill PAGE: replaces every marked block of PAGE with its capture.
fill() {
  local page=$1 out
  out=$(mktemp)
  awk -v dir="$CAP" -v page="$page" '
    skipping && /^ *```/ { skipping = 0; print; next }
    skipping { next }
    /^ *<!-- capture [a-z0-9-]+ -->$/ {
      indent = $0; sub(/<.*/, "", indent); name = $3; print
      if ((getline) <= 0 || $0 !~ /^ *```/) { print page ": no code block after capture " name > "/dev/stderr"; exit 1 }
      print; file = dir "/" name
      while ((status = (getline line < file)) > 0) print (line == "" ? "" : indent line)
      if (status < 0) { print page ": no capture " name " in " dir > "/dev/stderr"; exit 1 }
      close(file); skipping = 1; next
    }
    { print }' "$page" >"$out"
  cat "$out" >"$page"
  rm -f "$out"
  echo "capture-docs: refreshed $(grep -c '^<!-- capture ' "$page") captures in $page" >&2
}
begin() {
  CAP="$ROOT/.build/captures/$1"
  rm -rf "$CAP"
  mkdir -p "$CAP"
  echo "capture-docs: $1" >&2
}

section_lab() {
  local L=/tmp/labdoc P
  [ ! -e "$L" ] || { echo "capture-docs: $L exists; take that lab down (pgquorum lab down --dir $L) or remove it" >&2; exit 1; }
  begin lab
  # On failure the labs are taken down but their directories kept, for a look at the logs.
  trap 'status=$?; keep=""; [ $status -eq 0 ] || keep=--keep
        for d in /tmp/labdoc /tmp/labdoc5 /tmp/labdoc3dc /tmp/labcrash; do pgquorum lab down --dir $d $keep >/dev/null 2>&1 || true; done
        [ -z "$keep" ] || echo "capture-docs: the labs were taken down; their logs are kept in /tmp/labdoc*" >&2' EXIT
  cap up "pgquorum lab up --dir $L"
  local ID SUBNET HOST
  ID=$(sed -n 's/^lab \([0-9a-f]*\) is up.*/\1/p' "$CAP/up")
  SUBNET=$(sed -n 's/.*subnet 10\.213\.\([0-9]*\)\.0.*/\1/p' "$CAP/up")
  HOST="10.213.$SUBNET"
  P=$(pgquorum lab wait --whole --timeout 180 --dir $L)
  expect "the first primary" "$P" primary
  cap files "ls $L $L/logs $L/tls"
  cap files "cat /run/pgquorum-lab/$SUBNET"
  cap files "ip -br addr show pq$ID-br"
  cap files "ip netns exec pq$ID-n1 ip route"
  cap files "ip netns exec pq$ID-n1 iptables -S"
  cap status "pgquorum status --config $L/cluster.yaml"
  cap psql "psql -X 'host=$HOST.11,$HOST.12,$HOST.13 user=postgres target_session_attrs=read-write' -c 'CREATE TABLE notes (id serial PRIMARY KEY, body text)' -c \"INSERT INTO notes (body) VALUES ('written on the first primary')\" -Atc 'SELECT inet_server_addr()'"
  cap psql "psql -X 'host=$HOST.12 user=postgres' -Atc 'SELECT pg_is_in_recovery(), count(*) FROM notes'"

  # Which node is promoted after a fault depends on the last WAL reports (the most WAL first):
  # the page names nodes by their role, and the commands take the names the cluster gave.
  # Isolate the primary: its lease runs out, it is fenced, the majority promotes a replica.
  cap isolate "pgquorum lab isolate primary --dir $L"
  sleep 4
  local P1 OTHER
  P1=$(pgquorum lab wait --timeout 30 --dir $L)
  [ "$P1" != primary ] || { echo "capture-docs: the isolated primary is still primary" >&2; exit 1; }
  OTHER=secondary1; [ "$P1" != secondary1 ] || OTHER=secondary2
  cap isolate "pgquorum status --config $L/cluster.yaml; echo \"exit code \$?\""
  cap cutrules "ip netns exec pq$ID-n1 iptables -S PGQLAB"
  cap cutrules "ip netns exec pq$ID-n2 iptables -S PGQLAB"
  cap isolated "pgquorum status --endpoint https://$HOST.11:8008 --ca $L/tls/ca.crt --stale"
  cap isolated "curl -s -o /dev/null -w '%{http_code}\n' --cacert $L/tls/ca.crt https://$HOST.11:8008/primary"
  cap isolated "pgquorum lab logs primary --dir $L --lines 5"
  cap isolated "pgquorum lab logs $P1 --dir $L --lines 6"
  cap isolated "psql -X 'host=$HOST.11,$HOST.12,$HOST.13 user=postgres target_session_attrs=read-write' -c \"INSERT INTO notes (body) VALUES ('written on the second primary')\" -Atc 'SELECT inet_server_addr()'"

  cap heal "pgquorum lab heal --dir $L"
  P=$(pgquorum lab wait --whole --timeout 120 --dir $L)
  expect "the primary after the heal" "$P" "$P1"
  cap heal "pgquorum status --config $L/cluster.yaml"
  cap heal "grep -h -e rewind -e 'PostgreSQL' $L/logs/primary.log | tail -n 6"
  cap heal "pgquorum history --config $L/cluster.yaml"

  # One direction: the leader's traffic to a replica.
  cap cut "pgquorum lab cut $P1 primary --dir $L"
  sleep 3
  cap cut "pgquorum status --config $L/cluster.yaml"
  cap cut "pgquorum lab logs primary --dir $L --lines 3"
  cap partition "pgquorum lab heal --dir $L"
  P=$(pgquorum lab wait --whole --timeout 120 --dir $L)
  expect "the primary after the second heal" "$P" "$P1"

  # The primary alone on one side; then a cut that leaves no majority anywhere.
  cap partition "pgquorum lab partition primary,$OTHER $P1 --dir $L"
  sleep 4
  local P2
  P2=$(pgquorum lab wait --timeout 30 --dir $L)
  [ "$P2" != "$P1" ] || { echo "capture-docs: the cut-off primary is still primary" >&2; exit 1; }
  cap partition "pgquorum status --config $L/cluster.yaml"
  cap noquorum "pgquorum lab cut primary $OTHER --dir $L"
  cap noquorum "pgquorum lab status --dir $L"
  sleep 4
  cap noquorum "pgquorum status --config $L/cluster.yaml; echo \"exit code \$?\""
  cap noquorum "for n in 11 12 13; do curl -s -o /dev/null -w \"$HOST.\$n /primary %{http_code}\n\" --cacert $L/tls/ca.crt https://$HOST.\$n:8008/primary; done"
  cap noquorum "pgquorum lab heal --dir $L"
  cap noquorum "pgquorum lab wait --whole --dir $L"
  local P3 P4 R
  P3=$(pgquorum lab wait --whole --timeout 120 --dir $L)

  # Freeze the primary's agent: its fence keeper still stops PostgreSQL.
  cap pause "pgquorum lab pause $P3 --dir $L"
  # Until another node is promoted (at most 30 s).
  for i in $(seq 1 30); do
    P4=$(pgquorum lab wait --timeout 1 --dir $L 2>/dev/null || true)
    [ -z "$P4" ] || [ "$P4" = "$P3" ] || break
  done
  cap pause "pgquorum lab status --dir $L"
  cap pause "pgquorum status --config $L/cluster.yaml"
  cap resume "pgquorum lab resume $P3 --dir $L"
  P4=$(pgquorum lab wait --whole --timeout 120 --dir $L)
  [ "$P4" != "$P3" ] || { echo "capture-docs: the frozen primary is still primary" >&2; exit 1; }
  cap resume "grep -h -e 'lease' -e 'fence' -e rewind -e 'PostgreSQL' $L/logs/$P3.log | tail -n 6"
  cap resume "grep -h -e 'immediate shutdown' -e 'database system is shut down' -e 'not properly shut down' $L/data/$P3/postgres.log | tail -n 2"

  # PostgreSQL alone, then the whole agent of a replica.
  R=$P3
  cap killpg "pgquorum lab kill $R --postgres --dir $L"
  sleep 3
  cap killpg "pgquorum lab logs $R --dir $L --lines 4"
  quiet "pgquorum lab wait --whole --timeout 60 --dir $L"
  cap kill "pgquorum lab kill $R --dir $L"
  sleep 2
  cap kill "pgquorum status --config $L/cluster.yaml"
  cap kill "pgquorum lab kill $R --dir $L"
  cap kill "pgquorum lab restart $R --dir $L"
  cap kill "pgquorum lab wait --whole --dir $L"
  # The primary moved on purpose, and back to the preferred node (the delay below wants it there).
  P=$(pgquorum lab wait --whole --timeout 120 --dir $L)
  if [ "$P" = primary ]; then
    cap switchover "pgquorum switchover --config $L/cluster.yaml --to secondary1 --reason 'maintenance on primary'"
    quiet "pgquorum lab wait --whole --timeout 120 --dir $L"
  fi
  cap switchover "pgquorum switchover --config $L/cluster.yaml --to primary --reason 'back to the preferred node'"
  P=$(pgquorum lab wait --whole --timeout 120 --dir $L)
  expect "the primary after the switchover" "$P" primary
  cap switchover "pgquorum history --config $L/cluster.yaml"

  cap labstatus "pgquorum lab status --dir $L"
  cap logs "pgquorum lab logs $R --dir $L --lines 12"
  cap events "pgquorum lab logs --events --dir $L"

  # Latency between the two regions.
  cap delay "pgquorum lab delay primary secondary2 40 --dir $L"
  cap delay "pgquorum lab status --dir $L"
  cap delayrules "ip netns exec pq$ID-n1 iptables -t nat -S"
  cap delayrules "ip netns exec pq$ID-n2 iptables -t nat -S PGQDELAY"
  cap delayss "ip netns exec pq$ID-n1 ss -tnp | grep -e '^State' -e ':7400 '"
  cap relays "ps -o pid,ppid,args -C pgquorum"
  cap relays "python3 -c \"import json;d=json.load(open('$L/lab.json'));print(json.dumps(d['delays'],indent=2))\""
  sleep 3
  cap delay "pgquorum status --config $L/cluster.yaml"
  cap delaycurl "for n in 11 13; do curl -s -o /dev/null -w \"$HOST.\$n %{http_code} connect=%{time_connect} tls=%{time_appconnect} total=%{time_total}\n\" --cacert $L/tls/ca.crt https://$HOST.\$n:8008/cluster; done"
  cap delaycurl "ip netns exec pq$ID-n1 curl -s -o /dev/null -w '%{http_code} connect=%{time_connect} tls=%{time_appconnect} total=%{time_total}\n' --cacert $L/tls/ca.crt 'https://$HOST.13:8008/cluster?stale=true'"
  cap delaycurl "ip netns exec pq$ID-n1 curl -s -o /dev/null -w '%{http_code} connect=%{time_connect} tls=%{time_appconnect} total=%{time_total}\n' --cacert $L/tls/ca.crt 'https://$HOST.12:8008/cluster?stale=true'"
  cap delaycurl "pgquorum status --endpoint https://$HOST.13:8008 --ca $L/tls/ca.crt --stale"
  cap delaycut "pgquorum lab cut secondary2 primary --dir $L"
  sleep 2
  cap delaycut "tail -n 1 $L/logs/primary.log; tail -n 2 $L/logs/secondary2.log"
  cap delayheal "pgquorum lab heal --dir $L"
  quiet "pgquorum lab wait --whole --timeout 60 --dir $L"
  cap delayheal "ip netns exec pq$ID-n1 iptables -t nat -S PGQDELAY"
  cap delayheal "python3 -c \"import json;print(json.load(open('$L/lab.json'))['delays'])\""
  cap delayheal "tail -n 3 $L/events.jsonl"
  quiet "pgquorum lab delay primary secondary2 40 --dir $L"
  cap delayoff "pgquorum lab delay primary secondary2 0 --dir $L"
  cap delayoff "tail -n 1 $L/events.jsonl"

  # Tear down, keep the directory, and what a kept directory answers.
  cap down "pgquorum lab down --dir $L --keep"
  cap down "ip netns list"
  cap down "ls /run/pgquorum-lab"
  cap down "ls $L"
  cap downagain "pgquorum lab down --dir $L"
  cap downagain "pgquorum lab up --dir $L"
  rm -rf "$L"

  # A lab up killed half-way, and the lab down that cleans up after it.
  [ ! -e /tmp/labcrash ] || { echo "capture-docs: /tmp/labcrash exists; remove it" >&2; exit 1; }
  cap crash "pgquorum lab up --dir /tmp/labcrash >/dev/null 2>&1 & sleep 0.6; kill -9 \$!"
  cap crash "ip netns list | grep pq"
  cap crash "pgquorum lab down --dir /tmp/labcrash"

  # Five nodes: two of them cut off from the other three.
  local L5=/tmp/labdoc5
  [ ! -e "$L5" ] || { echo "capture-docs: $L5 exists; take that lab down first" >&2; exit 1; }
  cap five "pgquorum lab up --nodes 5 --dir $L5"
  quiet "pgquorum lab wait --whole --timeout 240 --dir $L5"
  cap fivepart "pgquorum lab partition node1,node2 node3,node4,node5 --dir $L5"
  sleep 4
  cap fivepart "pgquorum status --config $L5/cluster.yaml"
  cap fivedown "pgquorum lab down --dir $L5"

  # The seed's own config, and a config with a problem.
  [ ! -e /tmp/labdoc3dc ] || { echo "capture-docs: /tmp/labdoc3dc exists; take that lab down first" >&2; exit 1; }
  cap threedc "pgquorum lab up --config cluster-configs/three-dc.yaml --dir /tmp/labdoc3dc | head -n 6"
  quiet "pgquorum lab down --dir /tmp/labdoc3dc"
  rm -rf /tmp/labdoc-cfg /tmp/labdoc-bad
  mkdir -p /tmp/labdoc-cfg
  sed 's/election_timeout_ms: .*/election_timeout_ms: 300/' cluster-configs/lab-3dc.yaml >/tmp/labdoc-cfg/bad.yaml
  cap bad "pgquorum lab up --config /tmp/labdoc-cfg/bad.yaml --dir /tmp/labdoc-bad; echo \"exit code \$?\""
  rm -rf /tmp/labdoc-cfg /tmp/labdoc-bad
  trap - EXIT
  fill docs/lab.md
}

# tutorial_whole: waits (at most 180 s) for one primary and two streaming replicas on loopback
# and prints the primary's name.
tutorial_whole() {
  local i n primary replicas
  for i in $(seq 1 360); do
    primary=""; replicas=0
    for n in 1 2 3; do
      [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert tls/ca.crt https://127.0.0.1:844$n/primary)" = 200 ] && primary=node$n
      [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert tls/ca.crt https://127.0.0.1:844$n/replica)" = 200 ] && replicas=$((replicas + 1))
    done
    if [ -n "$primary" ] && [ "$replicas" = 2 ]; then echo "$primary"; return 0; fi
    sleep 0.5
  done
  echo "capture-docs: no primary with two streaming replicas within 180 s" >&2
  exit 1
}

section_getting_started() {
  local T=/tmp/pgquorum-tutorial
  [ ! -e "$T" ] || { echo "capture-docs: $T exists; stop its agents and remove it" >&2; exit 1; }
  begin getting-started
  PROMPT='$'
  mkdir -p "$T"
  cp cluster-configs/local-3-postgres.yaml "$T/"
  cd "$T"
  trap 'for n in node1 node2 node3; do [ -f /tmp/pgquorum-tutorial/$n.pid ] && kill -9 $(cat /tmp/pgquorum-tutorial/$n.pid) 2>/dev/null; done; true' EXIT
  cap validate-missing "pgquorum config validate local-3-postgres.yaml"
  cap certs "pgquorum certs init --config local-3-postgres.yaml"
  cap certs "pgquorum certs check --config local-3-postgres.yaml"
  cap validate "pgquorum config validate local-3-postgres.yaml"
  for n in node1 node2 node3; do
    pgquorum agent --config local-3-postgres.yaml --node $n >$n.log 2>&1 &
    echo $! >$n.pid
    disown
  done
  local i P
  P=$(tutorial_whole)
  expect "the first primary" "$P" node1
  cap log1 "grep -v -e 'role changed' node1.log | head -n 14"
  cap status "pgquorum status --config local-3-postgres.yaml"
  cap status-json "pgquorum status --endpoint https://127.0.0.1:8443 --ca tls/ca.crt --json | head -n 12"
  cap status-zh "LANG=zh_CN.UTF-8 pgquorum status --config local-3-postgres.yaml"
  cap psql "psql -X 'host=127.0.0.1,127.0.0.1,127.0.0.1 port=5441,5442,5443 user=postgres target_session_attrs=read-write' -c 'CREATE TABLE notes (id serial PRIMARY KEY, body text)' -c \"INSERT INTO notes (body) VALUES ('hello')\" -Atc 'SHOW port'"
  cap psql "psql -X 'host=127.0.0.1 port=5443 user=postgres' -Atc 'SELECT pg_is_in_recovery(), body FROM notes'"
  cap api "curl -s --cacert tls/ca.crt https://127.0.0.1:8441/primary"
  cap api "curl -s -o /dev/null -w '%{http_code}\n' --cacert tls/ca.crt https://127.0.0.1:8442/primary"
  cap api "curl -s --cacert tls/ca.crt 'https://127.0.0.1:8442/replica?lag=16MB'"
  cap api "curl -s --cacert tls/ca.crt https://127.0.0.1:8443/cluster | head -n 12"

  # Kill the primary's agent: its PostgreSQL dies with it, node2 takes over.
  local START END
  START=$(date +%s%N)
  cap kill "kill -9 \$(cat node1.pid)"
  for i in $(seq 1 300); do
    curl -s -o /dev/null -w '%{http_code}' --cacert tls/ca.crt https://127.0.0.1:8442/primary | grep -q 200 && break
    sleep 0.05
  done
  END=$(date +%s%N)
  echo "$(( (END - START) / 1000000 ))" >"$CAP/kill-ms"
  sleep 1
  cap kill "pgquorum status --config local-3-postgres.yaml"
  cap kill-log "grep -e 'leader changed' -e 'primary' -e 'promot' node2.log | tail -n 5"
  cap kill-psql "psql -X 'host=127.0.0.1,127.0.0.1,127.0.0.1 port=5441,5442,5443 user=postgres target_session_attrs=read-write' -c \"INSERT INTO notes (body) VALUES ('after the failover')\" -Atc 'SHOW port'"
  cap back "pgquorum agent --config local-3-postgres.yaml --node node1 >>node1.log 2>&1 & echo \$! > node1.pid"
  P=$(tutorial_whole)
  expect "the primary after node1 came back" "$P" node2
  cap back "pgquorum status --config local-3-postgres.yaml"
  cap back-log "grep -e rewind -e 'started PostgreSQL' node1.log | tail -n 3"
  cap history "pgquorum history --config local-3-postgres.yaml"

  cap switchover "pgquorum switchover --config local-3-postgres.yaml --to node1 --reason 'back to the preferred node'"
  P=$(tutorial_whole)
  expect "the primary after the switchover" "$P" node1
  cap switchover "psql -X 'host=127.0.0.1,127.0.0.1,127.0.0.1 port=5441,5442,5443 user=postgres target_session_attrs=read-write' -Atc 'SHOW port' -Atc 'SELECT count(*) FROM notes'"

  cap sigterm "kill -TERM \$(cat node1.pid)"
  sleep 6
  cap sigterm "tail -n 6 node1.log"
  cap sigterm "pgquorum status --config local-3-postgres.yaml"

  cap quorum "kill -TERM \$(cat node3.pid)"
  sleep 6
  cap quorum "pgquorum status --config local-3-postgres.yaml; echo \"exit code \$?\""
  cap quorum "pgquorum status --config local-3-postgres.yaml --stale"
  cap quorum "psql -X 'host=127.0.0.1 port=5442 user=postgres' -Atc 'SELECT pg_is_in_recovery()'"

  cap stop "kill -TERM \$(cat node2.pid)"
  for i in $(seq 1 300); do kill -0 "$(cat node2.pid)" 2>/dev/null || break; sleep 0.1; done
  cap stop "tail -n 3 node2.log"
  cap stop "ls"
  trap - EXIT
  cd "$ROOT"
  rm -rf "$T"
  PROMPT='#'
  fill docs/getting-started.md
}

section_config() {
  local D=/tmp/pgquorum-config
  begin config
  PROMPT='$'
  rm -rf "$D" /tmp/pgquorum-node2
  mkdir -p "$D" /tmp/pgquorum-node2/tls
  cp cluster-configs/local-3.yaml "$D/"
  cd "$D"
  cap validate "pgquorum config validate local-3.yaml; echo \"exit code \$?\""
  cap validate "pgquorum config validate local-3.yaml --skip-tls-files"
  cap validate "pgquorum certs init --config local-3.yaml | tail -n 1"
  cap validate "pgquorum config validate local-3.yaml"
  cap validate "pgquorum config validate local-3.yaml --node node9; echo \"exit code \$?\""
  # A machine with only the CA certificate and its own key pair.
  cp tls/ca.crt tls/node2.crt tls/node2.key /tmp/pgquorum-node2/tls/
  cp local-3.yaml /tmp/pgquorum-node2/
  cd /tmp/pgquorum-node2
  cap node2 "pgquorum config validate local-3.yaml --node node2"
  cap node2 "pgquorum config validate local-3.yaml"
  cd "$D"
  cat >broken.yaml <<'YAML'
cluster: Local Test
tls:
  dir: tls
data_dir: data
timing:
  heartbeat_ms: 100
  election_timeout_ms: 300
nodes:
  - name: node1
    host: 127.0.0.1
    agent_port: 7401
    api_port: 8401
    prority: 0
  - name: node2
    host: 127.0.0.1
    agent_port: 7401
    api_port: 8402
    priority: -1
  - name: node3
    host: 127.0.0.1
    agent_port: 7403
    api_port: 84030
    tags:
      replicate_from: node9
YAML
  cap broken "cat broken.yaml"
  cap broken "pgquorum config validate broken.yaml; echo \"exit code \$?\""
  cd "$ROOT"
  rm -rf "$D" /tmp/pgquorum-node2
  PROMPT='#'
  fill docs/configuration.md
}

section_demo() {
  [ ! -f demo/lab.json ] || { echo "capture-docs: a demo is running in ./demo; stop it first (make demo-stop)" >&2; exit 1; }
  begin demo
  trap 'scripts/demo.sh stop >/dev/null 2>&1 || true' EXIT
  scripts/demo.sh 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >"$CAP/raw"
  # From the last leader view to the end of the history table.
  awk '
    /^=== pgquorum cluster status ===/ { block = ""; keep = 1 }
    keep { block = block $0 "\n" }
    /^== The nodes/ { keep = 0 }
    END { sub(/\n== The nodes[^\n]*\n$/, "\n", block); printf "%s", block }' "$CAP/raw" >"$CAP/demo-end"
  scripts/demo.sh stop >/dev/null 2>&1 || true
  trap - EXIT
  fill README.md
}

for section in "${SECTIONS[@]}"; do
  case "$section" in
    lab) section_lab ;;
    getting-started) section_getting_started ;;
    demo) section_demo ;;
    config) section_config ;;
    *) echo "capture-docs: no section $section (lab, getting-started, demo, config)" >&2; exit 64 ;;
  esac
done
