#!/bin/sh
# make demo: run the agent on the demo configuration and show what it sealed.
set -eu
BUILD=${BUILD:-build}
AGENT=$(pwd)/$BUILD/labshare-agent
DIR=$(mktemp -d /tmp/labshare-demo-XXXXXX)
STATE=$DIR/state
PID=

cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -TERM "$PID"; wait "$PID" || true; fi
}
trap cleanup EXIT INT TERM

# Wait up to $1 seconds for the command in the remaining arguments to succeed.
wait_for() {
	limit=$1; shift
	i=0
	while ! "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -le $((limit * 20)) ] || { echo "demo: timed out waiting for: $*" >&2; exit 1; }
		sleep 0.05
	done
}

mkdir -p "$DIR/logs" "$DIR/certs"
umask 077
echo "demo-token-$(date +%s)" > "$DIR/token"
umask 022
: > "$DIR/certs/ca.pem"
sed -e "s|@STATE@|$STATE|g" -e "s|@DIR@|$DIR|g" -e "s|@PLATFORM_PORT@|8443|g" \
	config/demo/agent.json.in > "$DIR/agent.json"

echo "== labshare-agent demo in $DIR"
echo "== check"
"$AGENT" -c "$DIR/agent.json" check

echo "== run (the daemon, in the background)"
"$AGENT" -c "$DIR/agent.json" run 2> "$DIR/agent.log" &
PID=$!
running() { "$AGENT" -c "$DIR/agent.json" status --json | grep -q '"running": *true'; }
wait_for 10 running

echo "== record: two paper-log sessions entered late"
"$AGENT" -c "$DIR/agent.json" record --instrument SX-INS-000123 \
	--start "2026-11-02 08:00" --end "2026-11-02 10:30" \
	--user 张三 --org 太原理工大学 --samples 3 --note "paper log p.12"
"$AGENT" -c "$DIR/agent.json" record --instrument SX-INS-000456 \
	--start "2026-11-02 13:00" --end "2026-11-02 14:15" \
	--user li.si --org 山西大学 --external no

echo "== status"
"$AGENT" -c "$DIR/agent.json" status

echo "== stop (SIGTERM) and verify the chain"
kill -TERM "$PID"; wait "$PID"; PID=
"$AGENT" -c "$DIR/agent.json" verify
echo "== sealed records"
sqlite3 "$STATE/buffer.db" 'SELECT line FROM records ORDER BY seq'
echo "== the daemon's log"
cat "$DIR/agent.log"
echo "== demo files kept in $DIR"
