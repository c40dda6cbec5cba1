#!/bin/sh
# make demo: the agent against the bundled Modbus simulator and the local reference platform,
# with two instruments' session logs; then the sharing report. Everything it starts, it stops.
set -eu
BUILD=${BUILD:-build}
TOP=$(pwd)
AGENT=$TOP/$BUILD/labshare-agent
DIR=$(mktemp -d /tmp/labshare-demo-XXXXXX)
CFG=$DIR/agent.json
PIDS=""

cleanup() {
	for p in $PIDS; do
		if kill -0 "$p" 2>/dev/null; then kill -TERM "$p"; wait "$p" 2>/dev/null || true; fi
	done
}
trap cleanup EXIT INT TERM

# wait_for SECONDS COMMAND…: poll until the command succeeds, or give up.
wait_for() {
	limit=$1; shift
	i=0
	while ! "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt $((limit * 20)) ]; then echo "demo: timed out waiting for: $*" >&2; exit 1; fi
		sleep 0.05
	done
}
say() { printf '\n== %s\n' "$*"; }

mkdir -p "$DIR/logs" "$DIR/certs"
say "labshare-agent demo in $DIR"
sh tests/refplat/mkcerts.sh "$DIR/certs" >/dev/null
(umask 077; echo "demo-token" > "$DIR/token")

# The platform: the reference implementation of the feed, over HTTPS.
"$TOP/$BUILD/refplat" --listen 127.0.0.1:0 --port-file "$DIR/platform.port" \
	--cert "$DIR/certs/server.pem" --key "$DIR/certs/server.key" --db "$DIR/platform.db" \
	--token demo-token </dev/null >"$DIR/platform.log" 2>&1 &
PIDS="$PIDS $!"
# An LC-MS behind a Modbus TCP gateway: its run counter counts seconds while it runs, and it
# draws 850 W (in use above 50 W).
cat >"$DIR/sim.script" <<'SIM'
set 0 1 input 100 u32 big 5040000
auto 0 1 input 100 u32 big 1
set 0 1 holding 200 u32 little 1234
set 0 1 input 10 f32 big 850
SIM
"$TOP/$BUILD/modbus-sim" --tcp 127.0.0.1:0 --units 1 --port-file "$DIR/modbus.port" \
	--script "$DIR/sim.script" </dev/null >"$DIR/sim.log" 2>&1 &
PIDS="$PIDS $!"
wait_for 10 test -s "$DIR/platform.port"
wait_for 10 test -s "$DIR/modbus.port"

# Session logs as instruments write them: the NMR's usage CSV in GBK, the SEM's login log.
D1=$(date -d '2 days ago' +%F)
D2=$(date -d 'yesterday' +%F)
printf '%s\r\n' "开始时间,结束时间,用户,单位,样品数" \
	"$D1 08:30:00,$D1 11:00:00,张三,太原理工大学,3" \
	"$D1 13:00:00,$D1 15:30:00,李四,山西大学,2" \
	"$D2 09:00:00,$D2 12:00:00,王五,中北大学,5" \
	"$D2 14:00:00,$D2 17:30:00,张三,太原理工大学,4" |
	iconv -f UTF-8 -t GBK >"$DIR/logs/nmr-usage-$(date +%Y%m).csv"
cat >"$DIR/logs/sem-sessions.log" <<LOG
$D1 09:00:00 LOGIN user=zhao org=山西大学
$D1 12:00:00 LOGOUT user=zhao
$D2 10:00:00 LOGIN user=qian org=中国科学院山西煤炭化学研究所
$D2 16:00:00 LOGOUT user=qian
LOG

sed -e "s|@DIR@|$DIR|g" -e "s|@PLATFORM_PORT@|$(cat "$DIR/platform.port")|g" \
	-e "s|@MODBUS_PORT@|$(cut -d' ' -f1 "$DIR/modbus.port")|g" config/demo/agent.json.in >"$CFG"

say "labshare-agent check"
"$AGENT" -c "$CFG" check
say "labshare-agent poll"
"$AGENT" -c "$CFG" poll

say "labshare-agent run (in the background)"
"$AGENT" -c "$CFG" run 2>"$DIR/agent.log" &
PIDS="$! $PIDS"
AGENT_PID=$!
running() { "$AGENT" -c "$CFG" status --json | grep -q '"running":[[:space:]]*true'; }
wait_for 15 running

say "labshare-agent record (a paper log entered late)"
"$AGENT" -c "$CFG" record --instrument SX-INS-000456 --start "$D2 18:00" --end "$D2 19:30" \
	--user sun --org 太原理工大学 --samples 1 --note "paper log p.12"

# Everything read and delivered: sessions sealed, daily records of the closed days, all acked.
caught_up() {
	"$AGENT" -c "$CFG" status --json >"$DIR/status.json" &&
	grep -q '"pending":[[:space:]]*0,' "$DIR/status.json" &&
	"$AGENT" -c "$CFG" report --from "$D1" --to "$D2" --format json | grep -q '"date":[[:space:]]*"'"$D2"'"'
}
wait_for 60 caught_up
say "labshare-agent flush"
"$AGENT" -c "$CFG" flush

say "labshare-agent status"
"$AGENT" -c "$CFG" status

say "labshare-agent report --from $D1 --to $D2 (CSV)"
"$AGENT" -c "$CFG" report --from "$D1" --to "$D2"
"$AGENT" -c "$CFG" report --from "$D1" --to "$D2" --format html -o "$DIR/report.html" 2>/dev/null &&
	echo "(HTML report with charts: $DIR/report.html)" || true

say "stop, and labshare-agent verify"
kill -TERM "$AGENT_PID"
wait "$AGENT_PID" || true
"$AGENT" -c "$CFG" verify
say "labshare-agent verify --remote (the chain against the platform's acknowledged copy)"
"$AGENT" -c "$CFG" verify --remote
say "the platform holds"
sqlite3 "$DIR/platform.db" "SELECT COUNT(*) || ' records, seq ' || MIN(seq) || '..' || MAX(seq) FROM records"
echo "demo files kept in $DIR"
